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
use crate::inputs::{
    Completion, INPUTS_KEY, ScanInputs, completion, find_run, fold_fingerprint, load_fold, read_marker, remove_outputs,
    test_items,
};
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
    // What the maps depend on, before anything is touched (an untrained split, or a split file
    // rewritten after training, is an error here).
    let splits = splits_to_explain(&run, &params.section.split)?;
    let inputs_fp = map_inputs(&run, &splits, &params)?;
    if let Some(count) = args.merge_shards {
        let _lock = lock_folder(merged.dir())?;
        let scans = merge_shards(&merged, count, &methods, &inputs_fp, params.section.save_scan_maps)?;
        eprintln!("interpret: merged {count} shards ({scans} scans) into {}", merged.dir().display());
        return Ok(InterpretOutcome { dir: merged.dir().to_path_buf(), scans, skipped: false });
    }
    // A shard writes into its own folder (per-scan maps excepted: one file per scan).
    let out = match args.shard {
        Some(s) => merged.shard(s.index, s.count),
        None => merged.clone(),
    };
    let _lock = lock_folder(out.dir())?;
    let previous =
        if args.force { None } else { completion_of(&out, &methods, &inputs_fp, params.section.save_scan_maps)? };
    match previous {
        Some(Completion::Complete { scans }) => {
            eprintln!("interpret: {} is complete (use --force to recompute)", out.dir().display());
            return Ok(InterpretOutcome { dir: out.dir().to_path_buf(), scans, skipped: true });
        }
        Some(Completion::Stale { differing }) => eprintln!(
            "interpret: {} holds maps of other inputs (differing: {}): recomputing them",
            out.dir().display(),
            differing.join(", ")
        ),
        None => {}
    }
    // A new computation: the old marker no longer describes the folder, and nothing of the
    // earlier computation stays beside the new outputs (a shard's per-scan maps lie in the merged
    // folder, where the other shards' lie too: they are overwritten scan by scan).
    remove_relevance_outputs(&out, args.shard.is_none())?;

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
    if methods.contains(&Method::Occlusion) {
        let o = &params.section.occlusion;
        let uncovered =
            relevance::occlusion::OcclusionGrid::new(&inputs.grid.shape, o.size, o.stride)?.uncovered_border();
        if uncovered.iter().any(|&u| u > 0) {
            eprintln!(
                "interpret: warning: occlusion cubes of size {} every {} voxels leave the last {} voxels of the grid's \
                 axes (in order) unoccluded (the original's placement); their relevance is the nearest cube's (spread nearest) or \
                 0 (spread mean)",
                o.size,
                o.stride,
                uncovered.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
            );
        }
    }
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
        "save_scan_maps": params.section.save_scan_maps,
        INPUTS_KEY: inputs_fp,
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

/// What the maps of `splits` depend on, as recorded under `inputs` in `complete.json`: each
/// split's model, normaliser, training record and rows ([`fold_fingerprint`]) and the
/// `[relevance]` settings that change a map ([`Params::output_settings`]).
pub(crate) fn map_inputs(run: &RunLayout, splits: &[String], params: &Params) -> Result<serde_json::Value> {
    let mut models = serde_json::Map::new();
    for split in splits {
        models.insert(split.clone(), fold_fingerprint(run, split)?.into());
    }
    Ok(serde_json::json!({ "models": models, "relevance": params.output_settings()? }))
}

/// Whether the relevance folder `out` is complete for `methods` and `inputs` (and holds every
/// scan's map when `save_scan_maps`); `None` without a `complete.json`.
pub(crate) fn completion_of(
    out: &RelevanceLayout,
    methods: &[Method],
    inputs: &serde_json::Value,
    save_scan_maps: bool,
) -> Result<Option<Completion>> {
    let Some(done) = read_marker(&out.complete())? else { return Ok(None) };
    Ok(Some(marker_completion(&done, methods, inputs, save_scan_maps)))
}

/// [`completion_of`] on a parsed marker.
pub(crate) fn marker_completion(
    done: &serde_json::Value,
    methods: &[Method],
    inputs: &serde_json::Value,
    save_scan_maps: bool,
) -> Completion {
    let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
    let found = completion(done, "methods", &names, inputs);
    if !save_scan_maps || done["save_scan_maps"] == serde_json::Value::Bool(true) {
        return found;
    }
    let lacking = "save_scan_maps (the per-scan maps were not saved)".to_owned();
    match found {
        Completion::Complete { .. } => Completion::Stale { differing: vec![lacking] },
        Completion::Stale { mut differing } => {
            differing.push(lacking);
            Completion::Stale { differing }
        }
    }
}

/// Removes what an earlier computation left in the relevance folder `out`: its tables, mean
/// maps, background and resolved config, and with `scan_maps` its per-scan maps too. The
/// shards' folders are left alone (each records its own inputs).
pub(crate) fn remove_relevance_outputs(out: &RelevanceLayout, scan_maps: bool) -> Result<()> {
    let files = [
        out.complete(),
        out.index(),
        out.scans(),
        out.scan_regions(),
        out.ground_truth(),
        out.lrp_conservation(),
        out.timing(),
        out.background(),
        out.resolved_config(),
    ];
    let maps = out.dir().join("maps");
    if scan_maps {
        return remove_outputs(&files, &[maps]);
    }
    // The mean maps only: `maps/*.nii.gz`, not `maps/scans/`.
    let mut all = files.to_vec();
    if let Ok(entries) = std::fs::read_dir(&maps) {
        all.extend(entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()));
    }
    remove_outputs(&all, &[])
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
        // The random-weights model explains the same class as the trained one (its own
        // prediction would compare maps of different classes).
        let scan_params = params.for_scan(target, scan.image_id);
        let job = MapJob { x: &x, labels: labels.as_ref(), params: &scan_params, id: &id };
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
            let split = [&fold1, &holdout].into_iter().find(|s| s.name == *name);
            let rows = split.map_or(serde_json::json!([]), |s| serde_json::to_value(&s.rows).unwrap());
            record_training(&run, name, rows);
        }
        run
    }

    /// Writes the `fold_result.json` of a fold trained on `rows` (only what the runner reads:
    /// the settings with the split), and its model and normaliser files.
    fn record_training(run: &RunLayout, name: &str, rows: serde_json::Value) {
        let fold = run.fold(name);
        std::fs::create_dir_all(fold.normalization()).unwrap();
        let settings = serde_json::json!({"epochs": 2, "split": {"name": name, "rows": rows}}).to_string();
        std::fs::write(fold.result(), serde_json::json!({ "settings": settings }).to_string()).unwrap();
        std::fs::write(fold.model(), format!("weights of {name}")).unwrap();
        std::fs::write(fold.normalization().join("normalization.json"), "{}").unwrap();
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
        let run = run_with(dir.path(), &["fold1", "holdout"]);
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
    fn a_split_file_rewritten_after_training_is_refused_naming_the_scans_trained_on() {
        let dir = tempfile::tempdir().unwrap();
        let run = run_with(dir.path(), &["fold1"]);
        let cohort: Vec<CohortScan> = (1..=6).map(|i| scan(&format!("002_S_000{}", (i + 2) / 3), i, i <= 3)).collect();
        assert_eq!(test_scans(&run, &["fold1".into()], &cohort, &RelevanceSection::default()).unwrap().len(), 5);
        fold_fingerprint(&run, "fold1").unwrap();
        // `split` with another seed: patient 3's scan (trained on) is now a test scan, patient
        // 2's are training scans.
        let set = |p: &str, id, set| SplitRow { ptid: p.into(), image_id: id, set };
        let rewritten = Split {
            name: "fold1".into(),
            rows: vec![
                set("002_S_0001", 1, SplitSet::Test),
                set("002_S_0001", 2, SplitSet::Test),
                set("002_S_0001", 3, SplitSet::Test),
                set("002_S_0002", 4, SplitSet::Train),
                set("002_S_0002", 5, SplitSet::Train),
                set("002_S_0003", 6, SplitSet::Test),
            ],
        };
        write_split_csv(&run.split_csv("fold1"), &rewritten).unwrap();
        let e =
            format!("{:#}", test_scans(&run, &["fold1".into()], &cohort, &RelevanceSection::default()).unwrap_err());
        assert!(
            e.contains("splits/fold1.csv is not the split")
                && e.contains("folds/fold1/fold_result.json was trained on")
                && e.contains("1 of its test scans were in the model's training set: Image.ID 6")
                && e.contains("changed after training"),
            "{e}"
        );
        let e = fold_fingerprint(&run, "fold1").unwrap_err().to_string();
        assert!(e.contains("is not the split"), "no fingerprint of a rewritten split: {e}");
        // Rows reordered only: still not the split trained on (the file's order is the scans').
        let mut reordered = rewritten.clone();
        reordered.rows.reverse();
        let rows = serde_json::to_value(&reordered.rows).unwrap();
        record_training(&run, "fold1", rows);
        let e = checked_split_error(&run, "fold1");
        assert!(e.contains("(its rows differ)"), "{e}");
        // A fold without a record of its split (not trained by this project) is refused too.
        std::fs::write(run.fold("fold1").result(), "{}").unwrap();
        let e = checked_split_error(&run, "fold1");
        assert!(e.contains("fold_result.json: no `settings`"), "{e}");
    }

    fn checked_split_error(run: &RunLayout, split: &str) -> String {
        crate::inputs::checked_split(run, split).unwrap_err().to_string()
    }

    #[test]
    fn the_fingerprint_follows_the_model_the_normaliser_and_the_training_record() {
        let dir = tempfile::tempdir().unwrap();
        let run = run_with(dir.path(), &["fold1", "holdout"]);
        let fp = |s: &str| fold_fingerprint(&run, s).unwrap();
        let (fold1, holdout) = (fp("fold1"), fp("holdout"));
        assert_ne!(fold1, holdout);
        assert_eq!(fp("fold1"), fold1, "the same files, the same fingerprint");
        let fold = run.fold("fold1");
        std::fs::write(fold.model(), "weights of a retrained fold1").unwrap();
        let retrained = fp("fold1");
        assert_ne!(retrained, fold1, "new weights");
        std::fs::write(fold.normalization().join("normalization.json"), r#"{"scans": 3}"#).unwrap();
        let renormalised = fp("fold1");
        assert_ne!(renormalised, retrained, "a new normaliser");
        let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(fold.result()).unwrap()).unwrap();
        let settings = record["settings"].as_str().unwrap().replace("\"epochs\":2", "\"epochs\":3");
        record["settings"] = settings.into();
        std::fs::write(fold.result(), record.to_string()).unwrap();
        assert_ne!(fp("fold1"), renormalised, "other training settings");
        let e = fold_fingerprint(&run, "fold9").unwrap_err().to_string();
        assert!(e.contains("fold9") && e.contains("is the fold trained?"), "{e}");
    }

    #[test]
    fn a_complete_folder_is_reused_only_for_the_same_inputs_and_every_method() {
        let dir = tempfile::tempdir().unwrap();
        let out = RelevanceLayout::new(dir.path());
        let inputs = serde_json::json!({"models": {"holdout": "abc"}, "relevance": {"target": "predicted", "occlusion": {"size": 8}}});
        let check = |methods: &[Method], save: bool| completion_of(&out, methods, &inputs, save).unwrap();
        assert_eq!(check(&[Method::Sensitivity], false), None, "no marker");
        let marker = |v: serde_json::Value| std::fs::write(out.complete(), v.to_string()).unwrap();
        marker(serde_json::json!({"methods": ["sensitivity", "occlusion"], "scans": 7, "inputs": inputs}));
        assert_eq!(check(&[Method::Sensitivity], false), Some(Completion::Complete { scans: 7 }));
        assert_eq!(check(&[Method::Occlusion, Method::Sensitivity], false), Some(Completion::Complete { scans: 7 }));
        let stale = |differing: &[&str]| {
            Some(Completion::Stale { differing: differing.iter().map(|d| d.to_string()).collect() })
        };
        assert_eq!(check(&[Method::GradCam], false), stale(&["methods (lacks grad-cam)"]));
        assert_eq!(check(&[Method::Sensitivity], true), stale(&["save_scan_maps (the per-scan maps were not saved)"]));
        // Another model, other settings: every difference named.
        marker(serde_json::json!({"methods": ["sensitivity"], "scans": 7, "save_scan_maps": true,
            "inputs": {"models": {"fold1": "abc"}, "relevance": {"target": "CN", "occlusion": {"size": 4}}}}));
        assert_eq!(
            check(&[Method::Sensitivity], true),
            stale(&["models.fold1", "models.holdout", "relevance.occlusion.size", "relevance.target"])
        );
        // A marker of an older version records no inputs: stale, not complete.
        marker(serde_json::json!({"methods": ["sensitivity"], "scans": 7}));
        assert_eq!(
            check(&[Method::Sensitivity], false),
            stale(&["inputs (none recorded: written by an older version)"])
        );
        std::fs::write(out.complete(), "{ cut").unwrap();
        let e = completion_of(&out, &[Method::Sensitivity], &inputs, false).unwrap_err().to_string();
        assert!(e.contains("complete.json is not JSON"), "{e}");
    }

    #[test]
    fn recomputing_leaves_nothing_of_the_earlier_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let out = RelevanceLayout::new(dir.path());
        let scan_map = out.scan_map("lrp", 4);
        let shard = out.shard(1, 2).complete();
        for f in [out.complete(), out.ground_truth(), out.mean_map("lrp", "AD"), scan_map.clone(), shard.clone()] {
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, "x").unwrap();
        }
        remove_relevance_outputs(&out, false).unwrap();
        assert!(!out.complete().exists() && !out.ground_truth().exists() && !out.mean_map("lrp", "AD").exists());
        assert!(scan_map.exists() && shard.exists(), "a merge keeps the per-scan maps and the shards");
        remove_relevance_outputs(&out, true).unwrap();
        assert!(!scan_map.exists() && shard.exists(), "an unsharded run removes the per-scan maps, not the shards");
        remove_relevance_outputs(&out, true).unwrap();
    }

    #[test]
    fn output_settings_leave_out_what_does_not_change_a_map() {
        let base = Params::new(RelevanceSection::default()).unwrap().output_settings().unwrap();
        let with = |f: &dyn Fn(&mut RelevanceSection)| {
            let mut s = RelevanceSection::default();
            f(&mut s);
            Params::new(s).unwrap().output_settings().unwrap()
        };
        assert_eq!(with(&|s| s.memory_budget_mb = 7), base);
        assert_eq!(with(&|s| s.save_scan_maps = !s.save_scan_maps), base);
        assert_eq!(with(&|s| s.methods = vec![Method::Lrp]), base);
        assert_eq!(with(&|s| s.split = "fold2".into()), base);
        assert_eq!(with(&|s| s.occlusion.mode = relevance::occlusion::OcclusionMode::Naive), base);
        for change in [
            &(|s: &mut RelevanceSection| s.target = Target::Class(0)) as &dyn Fn(&mut RelevanceSection),
            &|s| s.postprocess = relevance::PostProcess::None,
            &|s| s.occlusion.size = 4,
            &|s| s.random_baseline = !s.random_baseline,
            &|s| s.scans_per_patient = 9,
            &|s| s.smoothgrad.noise_level = 0.3,
        ] {
            let changed = with(change);
            assert_ne!(changed, base);
            assert!(!crate::inputs::differing_paths(&changed, &base, "relevance").is_empty());
        }
        // Read back from a file, the settings are equal (an f32 such as 0.1 included).
        let stored: serde_json::Value = serde_json::from_str(&serde_json::to_string_pretty(&base).unwrap()).unwrap();
        assert_eq!(stored, base);
    }
}
