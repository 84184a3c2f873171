//! Run mode: every requested method on the test scans of a trained run's split(s), written into
//! `results/<run>/relevance/` (see the parent module's table).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};

use adni_data::cohort::CohortScan;
use adni_data::fsutil::write_bytes_atomically;
use adni_data::preprocess::Normalizer;
use adni_data::run_layout::{RelevanceLayout, RunLayout};
use adni_data::volume::{OutputType, Volume, write_volume};
use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use model::data::ScanItem;
use model::{ClassificationModel3D, Cpu};
use relevance::Target;
use relevance::methods::{MapMean, MethodParams, compute_map, to_tensor};
use report::interpretation::{ConservationRow, GroundTruthRow, IndexRow, InterpretationTables, ScanId, ScanRow};

use super::shard::merge_shards;
use super::{InterpretArgs, Params, apply_overrides};
use crate::commands::{cohort_of, load_config_file, lock_folder, progress_bar};
use crate::config::ProjectConfig;
use crate::inputs::{ScanInputs, completed_scans, find_run, load_fold, test_items};
use crate::relevance_config::{Method, RelevanceSection};

/// What a run-mode interpretation produced.
#[derive(Debug)]
pub struct InterpretOutcome {
    /// `results/<run>/relevance`.
    pub dir: PathBuf,
    /// Scans explained.
    pub scans: usize,
    /// Whether the outputs were already complete (nothing computed).
    pub skipped: bool,
}

/// Run mode: every requested method on the test scans of the run's split(s).
pub fn run_mode(args: &InterpretArgs, run: &Path) -> Result<InterpretOutcome> {
    let run = RunLayout::new(find_run(run)?);
    let mut cfg = match &args.config {
        Some(c) => load_config_file(c)?,
        None => {
            let resolved = run.resolved_config();
            if !resolved.exists() {
                bail!("{} is not a training run folder: it has no resolved_config.toml", run.root().display());
            }
            ProjectConfig::load(&resolved)?
        }
    };
    apply_overrides(&mut cfg.relevance, args);
    let params = Params::new(cfg.relevance.clone())?;
    let methods = params.section.methods.clone();
    let merged = run.relevance();
    if let Some(count) = args.merge_shards {
        let _lock = lock_folder(merged.dir())?;
        let scans = merge_shards(&merged, count, &methods)?;
        eprintln!("interpret: merged {count} shards ({scans} scans) into {}", merged.dir().display());
        return Ok(InterpretOutcome { dir: merged.dir().to_path_buf(), scans, skipped: false });
    }
    // A shard writes into its own folder (per-scan maps excepted: one file per scan).
    let out = match args.shard {
        Some(s) => merged.shard(s.index, s.count),
        None => merged.clone(),
    };
    let _lock = lock_folder(out.dir())?;
    if !args.force
        && let Some(scans) = complete_with(&out, &methods)?
    {
        eprintln!("interpret: {} is complete (use --force to recompute)", out.dir().display());
        return Ok(InterpretOutcome { dir: out.dir().to_path_buf(), scans, skipped: true });
    }
    // A new computation: the old marker no longer describes the folder.
    let _ = std::fs::remove_file(out.complete());

    let splits = splits_to_explain(&run, &params.section.split)?;
    let cohort = cohort_of(&cfg)?;
    let atlas_required = params.section.methods.contains(&Method::AreaOcclusion);
    let inputs = ScanInputs::open(&cfg, &cohort, atlas_required, "interpret")?;
    let mut jobs = test_scans(&run, &splits, &cohort.scans, &params.section)?;
    let all = jobs.len();
    if let Some(s) = args.shard {
        jobs = jobs.drain(s.range(all)).collect();
    }
    eprintln!(
        "interpret: {} test scans{} of {} on grid {}, methods {}{} → {}",
        jobs.len(),
        args.shard.map(|s| format!(" (shard {}/{} of {all})", s.index, s.count)).unwrap_or_default(),
        splits.join(", "),
        model::format_grid(inputs.grid.shape),
        methods.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
        if inputs.truth.is_some() && params.section.random_baseline { " (+ random-weights baseline)" } else { "" },
        out.dir().display()
    );
    let maps = explain(&run, &merged, &jobs, &inputs, &params)?;

    // Outputs; the marker last.
    let mut tables = maps.tables;
    let affine = inputs.grid.affine;
    for ((method, group), mean) in &maps.means {
        let file = RelevanceLayout::mean_map_name(method.name(), group);
        write_volume(&out.dir().join(&file), &Volume { data: mean.mean(), affine }, OutputType::Float32)?;
        tables.push_index(IndexRow {
            method: method.name().to_string(),
            group: group.to_string(),
            n_scans: mean.count(),
            file,
        });
    }
    write_volume(&out.background(), &Volume { data: maps.background.mean(), affine }, OutputType::Float32)?;
    tables.write(&out)?;
    cfg.write_resolved(out.dir())?;
    let mut marker = serde_json::json!({
        "methods": methods.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "scans": jobs.len(),
        "splits": splits,
        "grid": inputs.grid.shape,
        "atlas": inputs.atlas.as_ref().map(|a| a.name.clone()),
        "ground_truth": inputs.truth.is_some(),
    });
    if let Some(s) = args.shard {
        marker["shard"] = serde_json::json!(format!("{}/{}", s.index, s.count));
    }
    write_bytes_atomically(&out.complete(), serde_json::to_string_pretty(&marker)?.as_bytes())?;
    for (method, model_kind, n, secs) in tables.timings() {
        eprintln!("  {method:<22} {model_kind:<8} {n:>4} scans  {:>8.2} s/scan", secs / n as f64);
    }
    eprintln!("interpret: wrote {}", out.dir().display());
    Ok(InterpretOutcome { dir: out.dir().to_path_buf(), scans: jobs.len(), skipped: false })
}

/// The number of scans of a complete relevance folder that holds every one of `methods`
/// (`None`: incomplete, or some method missing).
fn complete_with(out: &RelevanceLayout, methods: &[Method]) -> Result<Option<usize>> {
    let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
    completed_scans(&out.complete(), "methods", &names)
}

/// The splits whose test scans are explained: `wanted` if given (it must be trained), else the
/// hold-out model if trained, else every finished fold.
pub(crate) fn splits_to_explain(run: &RunLayout, wanted: &str) -> Result<Vec<String>> {
    if !wanted.is_empty() {
        let fold = run.fold(wanted);
        if !fold.is_finished() {
            bail!(
                "split `{wanted}` has no finished model in {} (no fold_result.json): train it first",
                fold.dir().display()
            );
        }
        return Ok(vec![wanted.to_string()]);
    }
    if run.fold("holdout").is_finished() {
        return Ok(vec!["holdout".into()]);
    }
    let folds_dir = run.folds_dir();
    let mut folds: Vec<String> = std::fs::read_dir(&folds_dir)
        .with_context(|| format!("{} has no folds/: train the run first (`cargo xtask train`)", run.root().display()))?
        .filter_map(|e| e.ok().and_then(|e| e.file_name().to_str().map(str::to_owned)))
        .filter(|n| run.fold(n).is_finished())
        .collect();
    folds.sort();
    if folds.is_empty() {
        bail!("no finished fold in {}: train the run first (`cargo xtask train`)", folds_dir.display());
    }
    Ok(folds)
}

/// The scans to explain: each split's test scans in the split file's order, at most
/// `scans_per_patient` of each patient (per class).
pub(crate) fn test_scans(
    run: &RunLayout,
    splits: &[String],
    cohort: &[CohortScan],
    section: &RelevanceSection,
) -> Result<Vec<(String, ScanItem)>> {
    let mut jobs = Vec::new();
    for split in splits {
        let mut per_patient: BTreeMap<String, usize> = BTreeMap::new();
        for item in test_items(run, split, cohort)? {
            let seen = per_patient.entry(item.ptid.clone()).or_default();
            *seen += 1;
            let limit = section.scans_per_patient_of(item.label == 1);
            if limit > 0 && *seen > limit {
                continue;
            }
            jobs.push((split.clone(), item));
        }
    }
    if jobs.is_empty() {
        bail!("the split(s) {} have no test scans", splits.join(", "));
    }
    Ok(jobs)
}

/// One scan's input to every method.
struct MapJob<'a> {
    /// The normalised scan.
    x: &'a ndarray::Array3<f32>,
    /// The atlas labels (area occlusion).
    labels: Option<&'a ndarray::Array3<i32>>,
    params: &'a MethodParams,
    id: &'a ScanId,
}

impl MapJob<'_> {
    /// `method`'s map with the `kind` (`trained` or `random`) model, its time and (LRP) its
    /// conservation recorded in `tables`.
    fn map(
        &self,
        tables: &mut InterpretationTables,
        method: Method,
        kind: &'static str,
        ad: &ClassificationModel3D<Autodiff<Cpu>>,
        inner: &ClassificationModel3D<Cpu>,
    ) -> Result<ndarray::Array3<f32>> {
        let t = Instant::now();
        let weights = if kind == "random" { " (random weights)" } else { "" };
        let (map, balance) = compute_map(method, ad, inner, self.x, self.labels, self.params)
            .with_context(|| format!("{method}{weights} of image {}", self.id.image_id))?;
        if let Some(b) = balance {
            tables.push_conservation(ConservationRow {
                split: self.id.split.clone(),
                image_id: self.id.image_id,
                model: kind,
                logit: b.logit,
                relevance_sum: b.total,
            });
        }
        tables.add_time(method as usize, method.name(), kind, t.elapsed().as_secs_f64());
        Ok(map)
    }
}

/// The maps of every scan, reduced: mean maps per (method, group), the mean input and the tables.
struct Maps {
    means: BTreeMap<(Method, &'static str), MapMean>,
    background: MapMean,
    tables: InterpretationTables,
}

/// Computes every method's map of every scan (and of the random-weights model where there is a
/// ground truth), writing scan maps when asked.
fn explain(
    run: &RunLayout,
    out: &RelevanceLayout,
    jobs: &[(String, ScanItem)],
    inputs: &ScanInputs,
    params: &Params,
) -> Result<Maps> {
    let section = &params.section;
    let shape = inputs.grid.shape;
    let device = Default::default();
    let downsample = inputs.source.spec.downsample;
    let mut maps =
        Maps { means: BTreeMap::new(), background: MapMean::new(shape), tables: InterpretationTables::new() };
    let bar = progress_bar(jobs.len() * section.methods.len(), "maps");
    let random = if inputs.truth.is_some() && section.random_baseline {
        <Cpu as Backend>::seed(&device, section.seed);
        let model = inputs.network.init::<Cpu>(shape, &device)?;
        // Lazily initialised parameters would be redrawn by every clone: fix them now.
        relevance::materialize_parameters(&model);
        Some(model)
    } else {
        None
    };
    let labels = inputs.atlas.as_ref().map(|a| a.labels.clone());
    let brain = inputs.brain.as_ref().map(|b| b.view());
    let mut current: Option<(String, ClassificationModel3D<Cpu>, Normalizer)> = None;
    for (split, scan) in jobs {
        if current.as_ref().is_none_or(|(s, _, _)| s != split) {
            let (model, norm) = load_fold(&run.fold(split), shape)?;
            current = Some((split.clone(), model, norm));
        }
        let (_, inner, norm) = current.as_ref().expect("set above");
        let raw = inputs.source.load(scan)?;
        maps.background.add(&raw);
        let mut x = raw;
        norm.apply(&mut x).with_context(|| format!("image {} ({})", scan.image_id, scan.path.display()))?;
        let logits = inner.forward_eval(to_tensor::<Cpu>(&x, &device));
        let probs: Vec<f32> = burn::tensor::activation::softmax(logits, 1)
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| anyhow!("{e:?}"))?;
        let predicted = usize::from(probs[1] > probs[0]);
        let target = match params.target() {
            Target::Predicted => predicted,
            Target::Class(c) => c,
        };
        let id =
            ScanId { split: split.clone(), ptid: scan.ptid.clone(), image_id: scan.image_id, label: scan.label.into() };
        maps.tables.push_scan(ScanRow { scan: id.clone(), p_ad: f64::from(probs[1]), predicted, target });
        let group = if scan.label == 1 { "AD" } else { "CN" };
        let truth_mask = match &inputs.truth {
            Some(t) => t.mask(scan.image_id, downsample, section.ground_truth_fraction)?,
            None => None,
        };
        let trained = ClassificationModel3D::<Autodiff<Cpu>>::from_inner(inner.clone());
        let random_ad = random.as_ref().map(|r| (ClassificationModel3D::<Autodiff<Cpu>>::from_inner(r.clone()), r));
        let job = MapJob { x: &x, labels: labels.as_ref(), params: &params.methods, id: &id };
        for &method in &section.methods {
            bar.set_message(format!("{method} · {}", scan.image_id));
            let map = job.map(&mut maps.tables, method, "trained", &trained, inner)?;
            for g in [group, "all"] {
                maps.means.entry((method, g)).or_insert_with(|| MapMean::new(shape)).add(&map);
            }
            if section.save_scan_maps {
                let path = out.scan_map(method.name(), scan.image_id);
                write_volume(&path, &Volume { data: map.clone(), affine: inputs.grid.affine }, OutputType::Float32)?;
            }
            if let Some(atlas) = &inputs.atlas {
                maps.tables.push_regions(map.view(), atlas, method.name(), &id)?;
            }
            let Some(mask) = &truth_mask else {
                bar.inc(1);
                continue;
            };
            let scores = report::ground_truth::score_map(map.view(), mask.view(), brain)?;
            let row = |model, scores| GroundTruthRow {
                method: method.name(),
                model,
                ptid: scan.ptid.clone(),
                image_id: scan.image_id,
                scores,
            };
            maps.tables.push_ground_truth(row("trained", scores));
            if let Some((rad, rinner)) = &random_ad {
                let rmap = job.map(&mut maps.tables, method, "random", rad, rinner)?;
                let scores = report::ground_truth::score_map(rmap.view(), mask.view(), brain)?;
                maps.tables.push_ground_truth(row("random", scores));
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(maps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use adni_data::splits::{Split, SplitRow, SplitSet, write_split_csv};
    use adni_data::table::{Diagnosis, ScanDate, ScanRecord};

    /// A scan of patient `ptid` (AD when `ad`).
    fn scan(ptid: &str, image_id: i64, ad: bool) -> CohortScan {
        let record = ScanRecord {
            rid: 1,
            ptid: ptid.into(),
            viscode: "bl".into(),
            dx: if ad { Diagnosis::Dementia } else { Diagnosis::CN },
            examdate: "2006-09-12".into(),
            image_id,
            scan_date: ScanDate { month: 9, day: 12, year: 6 },
            sequence: "MPR".into(),
            visit: "Baseline".into(),
            month_bl: 0.0,
            screen_diagnosis: "AD".into(),
            study_id: 1,
            series_id: 2,
            label_three_fold: None,
            label_cn_ad: None,
            label_cn_mci: None,
            label_mci_ad: None,
        };
        CohortScan { record, path: format!("{image_id}.nii.gz").into(), label: u8::from(ad) }
    }

    /// A run with splits `fold1` and `holdout` written, and `finished` of them marked finished.
    fn run_with(dir: &Path, finished: &[&str]) -> RunLayout {
        let run = RunLayout::new(dir);
        let rows = |sets: &[(&str, i64, SplitSet)]| {
            sets.iter().map(|&(p, id, set)| SplitRow { ptid: p.into(), image_id: id, set }).collect()
        };
        let fold1 = Split {
            name: "fold1".into(),
            rows: rows(&[
                ("002_S_0001", 1, SplitSet::Test),
                ("002_S_0001", 2, SplitSet::Test),
                ("002_S_0001", 3, SplitSet::Test),
                ("002_S_0002", 4, SplitSet::Test),
                ("002_S_0002", 5, SplitSet::Test),
                ("002_S_0003", 6, SplitSet::Train),
            ]),
        };
        let holdout = Split { name: "holdout".into(), rows: rows(&[("002_S_0003", 6, SplitSet::Test)]) };
        for split in [&fold1, &holdout] {
            write_split_csv(&run.split_csv(&split.name), split).unwrap();
        }
        for name in finished {
            let fold = run.fold(name);
            std::fs::create_dir_all(fold.dir()).unwrap();
            std::fs::write(fold.result(), "{}").unwrap();
        }
        run
    }

    #[test]
    fn the_holdout_model_is_explained_when_trained_else_every_finished_fold() {
        let dir = tempfile::tempdir().unwrap();
        let run = run_with(dir.path(), &["fold2", "fold1"]);
        std::fs::create_dir_all(run.fold("fold3").dir()).unwrap();
        assert_eq!(splits_to_explain(&run, "").unwrap(), ["fold1", "fold2"], "fold3 is unfinished");
        assert_eq!(splits_to_explain(&run, "fold2").unwrap(), ["fold2"]);
        let e = splits_to_explain(&run, "fold3").unwrap_err().to_string();
        assert!(e.contains("split `fold3` has no finished model") && e.contains("train it first"), "{e}");
        let run = run_with(dir.path(), &["holdout"]);
        assert_eq!(splits_to_explain(&run, "").unwrap(), ["holdout"]);
    }

    #[test]
    fn an_untrained_run_says_to_train_first() {
        let dir = tempfile::tempdir().unwrap();
        let e = splits_to_explain(&RunLayout::new(dir.path()), "").unwrap_err().to_string();
        assert!(e.contains("has no folds/: train the run first"), "{e}");
        std::fs::create_dir_all(dir.path().join("folds/fold1")).unwrap();
        let e = splits_to_explain(&RunLayout::new(dir.path()), "").unwrap_err().to_string();
        assert!(e.contains("no finished fold in") && e.contains("cargo xtask train"), "{e}");
    }

    #[test]
    fn test_scans_follow_the_split_and_the_per_patient_limits() {
        let dir = tempfile::tempdir().unwrap();
        let run = run_with(dir.path(), &["fold1"]);
        let cohort = vec![
            scan("002_S_0001", 1, true),
            scan("002_S_0001", 2, true),
            scan("002_S_0001", 3, true),
            scan("002_S_0002", 4, false),
            scan("002_S_0002", 5, false),
            scan("002_S_0003", 6, false),
        ];
        let ids = |section: &RelevanceSection| -> Vec<i64> {
            let jobs = test_scans(&run, &["fold1".to_string()], &cohort, section).unwrap();
            assert!(jobs.iter().all(|(s, _)| s == "fold1"));
            jobs.iter().map(|(_, item)| item.image_id).collect()
        };
        let mut section = RelevanceSection { scans_per_patient: 0, cn_scans_per_patient: None, ..Default::default() };
        assert_eq!(ids(&section), [1, 2, 3, 4, 5], "every test scan, in the split file's order");
        section.scans_per_patient = 2;
        assert_eq!(ids(&section), [1, 2, 4, 5]);
        section.cn_scans_per_patient = Some(1);
        assert_eq!(ids(&section), [1, 2, 4], "the CN limit applies to CN patients only");

        let e = test_scans(&run, &["fold1".to_string()], &cohort[1..], &section).unwrap_err().to_string();
        assert!(e.contains("fold1.csv: Image.ID 1 is not in the cohort"), "{e}");
        let e = test_scans(&run, &["holdout".to_string()], &cohort[..5], &section).unwrap_err().to_string();
        assert!(e.contains("Image.ID 6 is not in the cohort"), "{e}");
    }

    #[test]
    fn a_complete_folder_is_reused_only_when_it_holds_every_method() {
        let dir = tempfile::tempdir().unwrap();
        let out = RelevanceLayout::new(dir.path());
        assert_eq!(complete_with(&out, &[Method::Sensitivity]).unwrap(), None, "no marker");
        std::fs::write(out.complete(), r#"{"methods": ["sensitivity", "occlusion"], "scans": 7}"#).unwrap();
        assert_eq!(complete_with(&out, &[Method::Sensitivity]).unwrap(), Some(7));
        assert_eq!(complete_with(&out, &[Method::Occlusion, Method::Sensitivity]).unwrap(), Some(7));
        assert_eq!(complete_with(&out, &[Method::GradCam]).unwrap(), None);
        std::fs::write(out.complete(), "{ cut").unwrap();
        let e = complete_with(&out, &[Method::Sensitivity]).unwrap_err().to_string();
        assert!(e.contains("complete.json is not JSON"), "{e}");
    }
}
