//! Training mechanics on a tiny phantom cohort with a reduced network: determinism, resume after
//! a kill, per-fold jobs then merge, leakage refused, bad settings named, keep = best.
//!
//! The cohort is `SynthConfig::quick()` (40×48×40 phantom, 3 CN + 3 AD patients kept) at full
//! resolution, and the network has 2 channels per block with pools 2, 2, 1, 1, so a whole run
//! takes seconds on two cores.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use adni_data::cohort::{Cohort, CohortFilter, build_cohort};
use adni_data::preprocess::Normalizer;
use adni_data::preprocess::PreprocessSpec;
use adni_data::splits::{Split, SplitSet, holdout_split, kfold_splits};
use adni_data::synth::{Anatomy, BRAIN_MASK_FILE, IMAGES_DIR, KNOWN_CORRUPT_FILE, SynthConfig, TABLE_FILE, generate};
use adni_data::table::read_adni_table;
use model::checkpoint::read_json;
use model::data::{NormalizedScans, ScanItem, VolumeSource};
use model::train::{
    FoldResult, KeepEpoch, RunSpec, TrainConfig, TrainError, TrainMode, TrainOptions, load_fold_model, predict,
    train_run,
};
use model::{Cpu, CpuTrain, NetworkConfig};

/// A fold's folder, as the run folder's documented layout has it (`folds/<split>/`).
fn fold_dir(run: &Path, split: &str) -> PathBuf {
    run.join("folds").join(split)
}

/// Files of a run that must be identical between runs with the same settings.
const COMPARED: [&str; 5] =
    ["metrics_epochs.csv", "metrics_folds.csv", "summary.csv", "predictions.csv", "splits/fold1.csv"];

struct Fixture {
    root: PathBuf,
    cohort: Cohort,
    source: VolumeSource,
}

/// The phantom cohort, generated once per test binary (the directory is kept until exit).
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = tempfile::tempdir().unwrap().keep();
        let synth = root.join("synth");
        let cfg = SynthConfig::quick();
        generate(&cfg, &Anatomy::phantom(cfg.phantom_shape).unwrap(), &synth, &|_, _| {}).unwrap();
        let table = read_adni_table(&synth.join(TABLE_FILE)).unwrap();
        let known_corrupt = std::fs::read_to_string(synth.join(KNOWN_CORRUPT_FILE))
            .unwrap()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect();
        let filter = CohortFilter { known_corrupt, ..CohortFilter::default() };
        let cohort = build_cohort(&table, &synth.join(IMAGES_DIR), &filter).unwrap();
        let spec = PreprocessSpec { mask: Some(synth.join(BRAIN_MASK_FILE)), downsample: 1 };
        let source = VolumeSource::open(&root.join("cache"), spec, &cohort.scans[0].path).unwrap();
        Fixture { root, cohort, source }
    })
}

fn tiny_network() -> NetworkConfig {
    NetworkConfig {
        channels: [2, 2, 2, 2],
        pools: [2, 2, 1, 1],
        dense: [8, 4],
        dropout: 0.5,
        ..NetworkConfig::default()
    }
}

fn train_config() -> TrainConfig {
    TrainConfig { epochs: 3, batch_size: 4, bootstrap_samples: 200, ..TrainConfig::default() }
}

/// A 2-fold run in a new folder.
fn spec(name: &str) -> RunSpec {
    let fx = fixture();
    RunSpec {
        dir: fx.root.join("runs").join(name),
        network: tiny_network(),
        train: train_config(),
        cohort: fx.cohort.clone(),
        splits: kfold_splits(&fx.cohort.scans, 2, 2018).unwrap(),
        source: fx.source.clone(),
        normalization_max_scans: 200,
        normalization_seed: 2018,
    }
}

fn run(spec: &RunSpec, options: TrainOptions) -> Result<model::train::RunOutcome, TrainError> {
    train_run::<CpuTrain>(spec, &options, &Default::default(), &|_| {})
}

/// The uninterrupted reference run, trained once.
fn reference() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let spec = spec("reference");
        let outcome = run(&spec, TrainOptions::default()).unwrap();
        assert_eq!(outcome.trained, vec!["fold1", "fold2"]);
        assert!(outcome.summary.is_some());
        spec.dir
    })
}

fn assert_same_outputs(a: &Path, b: &Path) {
    for file in COMPARED {
        let (x, y) = (std::fs::read(a.join(file)).unwrap(), std::fs::read(b.join(file)).unwrap());
        assert!(x == y, "{file} differs:\n{}\nvs\n{}", String::from_utf8_lossy(&x), String::from_utf8_lossy(&y));
    }
}

#[test]
fn reference_run_writes_every_output() {
    let dir = reference();
    for file in COMPARED.iter().copied().chain([
        "summary.md",
        "timing.csv",
        "splits/fold2.csv",
        "folds/fold1/model.safetensors",
    ]) {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    for fold in ["fold1", "fold2"] {
        let d = fold_dir(dir, fold);
        assert!(d.join("normalization/normalization.json").is_file());
        assert!(d.join("fold_result.json").is_file());
        assert!(!d.join("checkpoint").exists(), "checkpoint removed once the fold is finished");
    }
    let epochs = std::fs::read_to_string(dir.join("metrics_epochs.csv")).unwrap();
    let header = epochs.lines().next().unwrap();
    for col in ["split", "epoch", "train_loss", "test_roc_auc", "test_auc_argmax_paper", "test_balanced_accuracy"] {
        assert!(header.split(',').any(|c| c == col), "{col} not in {header}");
    }
    assert_eq!(epochs.lines().count(), 1 + 2 * 3, "one row per fold and epoch");
    let preds = std::fs::read_to_string(dir.join("predictions.csv")).unwrap();
    let header = preds.lines().next().unwrap();
    for col in ["PTID", "Image.ID", "fold", "true_label", "p_ad", "DX", "Visit"] {
        assert!(header.split(',').any(|c| c == col), "{col} not in {header}");
    }
    let test_scans: usize = spec("x").splits.iter().map(|s| s.scan_count(SplitSet::Test)).sum();
    assert_eq!(preds.lines().count(), 1 + test_scans, "every scan is tested exactly once over the folds");
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("model after the last epoch"), "{md}");
    assert!(md.contains("resamples of **patients**"), "{md}");
    // An interval resting on fewer resamples than drawn (a metric undefined in some) says so.
    let drawn = spec("x").train.bootstrap_samples;
    let summary = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    for line in summary.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let (metric, valid) = (cells[0], cells[7].parse::<usize>().unwrap());
        let row = md.lines().find(|l| l.starts_with(&format!("| {metric} |"))).expect("metric row");
        let note = format!("({valid} of {drawn} resamples)");
        assert_eq!(row.contains(&note), valid < drawn && !row.ends_with("| n/a |"), "{row} ({valid} valid)");
    }
    // Where each epoch's time went: waiting for data and the steps are parts of the training
    // loop, which is part of the epoch.
    let timing = std::fs::read_to_string(dir.join("timing.csv")).unwrap();
    let mut lines = timing.lines();
    assert_eq!(lines.next().unwrap(), "split,epoch,seconds,train_seconds,step_seconds,data_wait_seconds");
    let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').skip(2).map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows.len(), 2 * 3, "one row per fold and epoch");
    for r in &rows {
        let [epoch, train, step, wait] = r[..] else { panic!("{r:?}") };
        assert!(step > 0.0 && wait >= 0.0 && step + wait <= train && train <= epoch, "{r:?}");
    }
}

#[test]
fn same_seed_same_numbers_other_seed_other_numbers() {
    let again = spec("again");
    run(&again, TrainOptions::default()).unwrap();
    assert_same_outputs(reference(), &again.dir);
    let mut other = spec("other-seed");
    other.train.seed = 7;
    run(&other, TrainOptions::default()).unwrap();
    let a = std::fs::read(reference().join("metrics_epochs.csv")).unwrap();
    assert_ne!(a, std::fs::read(other.dir.join("metrics_epochs.csv")).unwrap());
}

#[test]
fn killed_and_resumed_run_equals_uninterrupted_run() {
    let spec = spec("resumed");
    // 3 steps: fold1 is killed in the middle of epoch 2 (2 steps per epoch).
    let stop = |n| TrainOptions { stop_after_batches: Some(n), resume: true, ..TrainOptions::default() };
    assert!(matches!(run(&spec, stop(3)), Err(TrainError::Stopped { batches: 3 })));
    let state = fold_dir(&spec.dir, "fold1").join("checkpoint/state.json");
    assert!(state.is_file(), "epoch 1 was checkpointed");
    // Without --resume the interrupted fold is refused, not overwritten.
    let err = run(&spec, TrainOptions::default()).unwrap_err().to_string();
    assert!(err.contains("--resume"), "{err}");
    // Resume: fold1 finishes (from epoch 2), fold2 is killed in its first epoch.
    assert!(matches!(run(&spec, stop(5)), Err(TrainError::Stopped { .. })));
    assert!(fold_dir(&spec.dir, "fold1").join("fold_result.json").is_file());
    let outcome = run(&spec, TrainOptions { resume: true, ..TrainOptions::default() }).unwrap();
    assert_eq!(outcome.trained, vec!["fold2"]);
    assert_eq!(outcome.skipped, vec!["fold1"]);
    assert_same_outputs(reference(), &spec.dir);
}

#[test]
fn single_fold_jobs_then_merge_equal_the_full_run() {
    let spec = spec("jobs");
    let only = |k| TrainOptions { fold: Some(k), ..TrainOptions::default() };
    let first = run(&spec, only(2)).unwrap();
    assert_eq!(first.trained, vec!["fold2"]);
    assert_eq!(first.pending, vec!["fold1"]);
    assert!(first.summary.is_none() && !spec.dir.join("summary.csv").exists());
    let err = run(&spec, TrainOptions { merge_only: true, ..TrainOptions::default() }).unwrap_err().to_string();
    assert!(err.contains("fold1") && err.contains("not finished"), "{err}");
    let second = run(&spec, only(1)).unwrap();
    assert!(second.summary.is_some(), "the last fold job merges");
    std::fs::remove_file(spec.dir.join("summary.csv")).unwrap();
    let merged = run(&spec, TrainOptions { merge_only: true, ..TrainOptions::default() }).unwrap();
    assert!(merged.trained.is_empty());
    assert_same_outputs(reference(), &spec.dir);
    assert!(run(&spec, only(3)).unwrap_err().to_string().contains("1 ≤ K ≤ 2"));
}

#[test]
fn finished_folds_with_other_settings_are_refused() {
    let dir = reference();
    let mut changed = spec("reference");
    assert_eq!(changed.dir, dir);
    changed.train.learning_rate = 1e-3;
    let err = run(&changed, TrainOptions { merge_only: true, ..TrainOptions::default() }).unwrap_err().to_string();
    assert!(err.contains("other settings") && err.contains("learning_rate"), "{err}");
}

#[test]
fn finished_folds_trained_on_other_images_or_labels_are_refused() {
    let dir = reference();
    // Two scans' files swapped under the same Image.IDs (a regenerated or re-registered cohort).
    let mut swapped = spec("reference");
    assert_eq!(swapped.dir, dir);
    let n = swapped.cohort.scans.len();
    let first = swapped.cohort.scans[0].path.clone();
    swapped.cohort.scans[0].path = swapped.cohort.scans[n - 1].path.clone();
    swapped.cohort.scans[n - 1].path = first;
    let err = run(&swapped, TrainOptions { merge_only: true, ..TrainOptions::default() }).unwrap_err().to_string();
    assert!(err.contains("other settings") && err.contains("differing: data"), "{err}");
    // One label flipped (a corrected diagnosis; the sanity check's shuffled labels).
    let mut relabelled = spec("reference");
    relabelled.cohort.scans[0].label ^= 1;
    let err = run(&relabelled, TrainOptions::default()).unwrap_err().to_string();
    assert!(err.contains("differing: data"), "{err}");
    // The same data again: skipped as before.
    let again = run(&spec("reference"), TrainOptions::default()).unwrap();
    assert_eq!(again.skipped, vec!["fold1", "fold2"]);
}

#[test]
fn a_scan_neither_cn_nor_dementia_is_refused_before_training() {
    let mut spec = spec("mci");
    spec.cohort.scans[0].record.dx = adni_data::table::Diagnosis::MCI;
    let err = run(&spec, TrainOptions::default()).unwrap_err().to_string();
    let s = &spec.cohort.scans[0].record;
    assert!(err.contains(&s.ptid) && err.contains(&s.image_id.to_string()) && err.contains("MCI"), "{err}");
    assert!(!spec.dir.join("folds").exists(), "nothing trained");
}

#[test]
fn leaky_split_is_refused_before_training() {
    let mut spec = spec("leaky");
    let split = &mut spec.splits[0];
    let test_ptid = split.rows.iter().find(|r| r.set == SplitSet::Test).unwrap().ptid.clone();
    // Put one of the test patient's scans in training.
    let row = split.rows.iter_mut().find(|r| r.ptid == test_ptid).unwrap();
    row.set = SplitSet::Train;
    if split.rows.iter().filter(|r| r.ptid == test_ptid).count() == 1 {
        // A single-scan patient: add a scan of theirs on the other side instead.
        let mut extra = split.rows.iter().find(|r| r.ptid == test_ptid).unwrap().clone();
        extra.set = SplitSet::Test;
        extra.image_id = -1;
        split.rows.push(extra);
    }
    let err = run(&spec, TrainOptions::default()).unwrap_err();
    assert!(matches!(err, TrainError::Split { .. }), "{err}");
    assert!(err.to_string().contains(&test_ptid), "{err}");
    assert!(!spec.dir.join("folds").exists(), "nothing trained");
}

#[test]
fn bad_settings_name_the_key() {
    let mut spec = spec("bad");
    spec.train.epochs = 0;
    let err = run(&spec, TrainOptions::default()).unwrap_err().to_string();
    assert!(err.contains("`[train] epochs`"), "{err}");
    let mut spec = self::spec("bad");
    spec.train.learning_rate = -1.0;
    assert!(run(&spec, TrainOptions::default()).unwrap_err().to_string().contains("learning_rate"));
    let mut spec = self::spec("bad");
    spec.network.pools = [2, 2, 2, 2];
    let err = run(&spec, TrainOptions::default()).unwrap_err().to_string();
    assert!(err.contains("too small"), "{err}");
    assert!(!spec.dir.exists(), "nothing written for refused settings");
}

#[test]
fn holdout_with_best_epoch_on_inner_validation() {
    let fx = fixture();
    let mut spec = spec("holdout-best");
    spec.splits = vec![holdout_split(&fx.cohort.scans, 1, 1, 2018).unwrap()];
    spec.train.mode = TrainMode::Holdout;
    spec.train.keep = KeepEpoch::Best;
    spec.train.evaluate_test_each_epoch = false;
    let outcome = run(&spec, TrainOptions::default()).unwrap();
    let summary = outcome.summary.unwrap();
    let (name, kept, test) = &summary.folds[0];
    assert_eq!(name, "holdout");
    assert!((1..=3).contains(kept));
    assert_eq!(test.n, spec.splits[0].scan_count(SplitSet::Test));
    let folds = std::fs::read_to_string(spec.dir.join("metrics_folds.csv")).unwrap();
    assert!(folds.lines().next().unwrap().contains("validation_balanced_accuracy"), "{folds}");
    let epochs = std::fs::read_to_string(spec.dir.join("metrics_epochs.csv")).unwrap();
    let header = epochs.lines().next().unwrap();
    assert!(header.contains("validation_loss") && !header.contains("test_loss"), "{header}");
    assert!(summary.markdown.contains("best validation loss"), "{}", summary.markdown);
    // Validation patients are training patients of the split, never test patients.
    let result = std::fs::read_to_string(fold_dir(&spec.dir, "holdout").join("predictions.csv")).unwrap();
    let test_patients = spec.splits[0].patients(SplitSet::Test);
    for line in result.lines().skip(1).filter(|l| l.contains(",validation,")) {
        let ptid = line.split(',').next().unwrap();
        assert!(!test_patients.contains(ptid), "{ptid} is a test patient");
    }
}

#[test]
fn kept_model_reloads_and_reproduces_its_predictions() {
    let dir = fold_dir(reference(), "fold1");
    let result: FoldResult = read_json(&dir.join("fold_result.json")).unwrap();
    let model = load_fold_model::<Cpu>(&dir, &Default::default()).unwrap();
    let norm = Normalizer::load(&dir.join("normalization")).unwrap();
    let spec = spec("x");
    let fx = fixture();
    let test: Vec<ScanItem> = result
        .predictions
        .iter()
        .map(|p| ScanItem::from_cohort(fx.cohort.scans.iter().find(|s| s.record.image_id == p.image_id).unwrap()))
        .collect();
    let data = NormalizedScans { source: &spec.source, normalizer: &norm, scans: &test };
    let again = predict(&model, data, 3, &Default::default()).unwrap();
    for (p, q) in result.predictions.iter().zip(&again) {
        assert_eq!(p.prediction, *q, "Image.ID {}", p.image_id);
    }
    assert_eq!(again.len(), spec.splits[0].scan_count(SplitSet::Test));
}

#[test]
fn each_fold_is_normalised_on_its_training_scans_only() {
    let spec = spec("x");
    for split in &spec.splits {
        let norm = Normalizer::load(&fold_dir(reference(), &split.name).join("normalization")).unwrap();
        let mut fitted = norm.image_ids.clone();
        fitted.sort_unstable();
        let mut train = split.image_ids(SplitSet::Train);
        train.sort_unstable();
        assert_eq!(fitted, train, "{}: fitted on exactly its training scans (fewer than 200)", split.name);
    }
}

#[test]
fn batches_are_normalised_volumes_in_c_order() {
    let fx = fixture();
    let scans: Vec<ScanItem> = fx.cohort.scans.iter().take(3).map(ScanItem::from_cohort).collect();
    let norm = fx.source.fit_normalizer(&scans, 200, 1).unwrap();
    let data = NormalizedScans { source: &fx.source, normalizer: &norm, scans: &scans };
    let batch = data.batch(&[2, 0]).unwrap();
    let [d, h, w] = fx.source.model_grid().shape;
    assert_eq!(batch.shape, [2, 1, d, h, w]);
    assert_eq!(batch.labels, vec![scans[2].label, scans[0].label]);
    let mut expected = fx.source.load(&scans[2]).unwrap();
    norm.apply(&mut expected).unwrap();
    let first: Vec<f32> = expected.iter().copied().collect();
    assert_eq!(&batch.values[..d * h * w], &first[..]);
    // Voxel (i, j, k) of the second scan sits at ((1·D + i)·H + j)·W + k.
    let mut second = fx.source.load(&scans[0]).unwrap();
    norm.apply(&mut second).unwrap();
    let (i, j, k) = (d / 2, h / 3, w / 4);
    assert_eq!(batch.values[((d + i) * h + j) * w + k], second[[i, j, k]]);
    assert!(data.batch(&[7]).is_err(), "an index past the set is an error");
}

/// Guard against a silently different split: the reference run's split files are what
/// `kfold_splits` gives.
#[test]
fn split_files_are_the_trained_splits() {
    let dir = reference();
    let split: Split = adni_data::splits::read_split_csv(&dir.join("splits/fold1.csv")).unwrap();
    assert_eq!(split.rows, spec("x").splits[0].rows);
}
