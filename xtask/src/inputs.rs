//! What several stages read through the config: the run folder named on the command line, the
//! atlas of `[relevance] atlas`, the synthetic cohort's ground truth, the preprocessed scans
//! ([`ScanInputs`]), a trained model with its normaliser ([`load_fold`]), a split's test scans
//! checked against the split the model was trained on ([`checked_split`]), and what a stage's
//! `complete.json` records of its inputs ([`fold_fingerprint`], [`completion`]), so that
//! outputs of another model, split or settings are never taken for complete.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use adni_data::Grid;
use adni_data::atlas::{Atlas, load_aal, load_cerebra, load_label_atlas};
use std::collections::BTreeMap;

use adni_data::cohort::{Cohort, CohortScan};
use adni_data::preprocess::{Normalizer, PreprocessSpec};
use adni_data::run_layout::{FoldLayout, RunLayout};
use adni_data::splits::{Split, SplitSet, read_split_csv};
use adni_data::synth::GroundTruth;
use model::data::{ScanItem, VolumeSource};
use model::train::load_fold_model;
use model::{ClassificationModel3D, Cpu};
use ndarray::Array3;

use crate::config::{ProjectConfig, resolve, workspace_root};
use crate::fetch;
use crate::relevance_config::AtlasName;

/// Finds a run folder given on the command line (as given, else relative to the project root).
pub fn find_run(run: &Path) -> Result<PathBuf> {
    if run.is_dir() {
        return Ok(run.to_path_buf());
    }
    let at_root = workspace_root().join(run);
    if run.is_relative() && at_root.is_dir() {
        return Ok(at_root);
    }
    bail!("run folder {} not found (also looked in {})", run.display(), workspace_root().display())
}

/// The atlas named by `[relevance] atlas`, placed on `grid`.
pub fn load_atlas(cfg: &ProjectConfig, grid: &Grid) -> Result<Atlas> {
    let r = &cfg.relevance;
    let ext = resolve(&cfg.fetch.external_dir);
    let atlas = match r.atlas {
        AtlasName::Cerebra => load_cerebra(&ext.join(fetch::paths::CEREBRA), &ext.join(fetch::paths::CEREBRA_CSV))
            .context("[relevance] atlas = \"cerebra\": run `cargo xtask fetch-data` first")?,
        AtlasName::Aal => load_aal(&ext.join(fetch::paths::AAL), &ext.join(fetch::paths::AAL_TXT))
            .context("[relevance] atlas = \"aal\": run `cargo xtask fetch-data` first")?,
        AtlasName::Synth => {
            let synth = resolve(&cfg.synth.out_dir);
            if !uses_synthetic_cohort(cfg) {
                bail!(
                    "[relevance] atlas = \"synth\" is the synthetic cohort's own atlas, but [data] table {} is not \
                     that cohort's (in [synth] out_dir {}); choose atlas = \"cerebra\" or \"aal\" for your data",
                    resolve(&cfg.data.table).display(),
                    synth.display()
                );
            }
            let (labels, table) = GroundTruth::atlas_files(&synth);
            load_label_atlas("synth", &labels, &table)
                .context("[relevance] atlas = \"synth\": the synthetic cohort's atlas (run `cargo xtask synth`)")?
        }
    };
    Ok(atlas.resample_to(grid, r.placement)?)
}

/// Whether the run's `[data] table` is the synthetic cohort's of `[synth] out_dir` (not a user's
/// own table): only then is the cohort generated, scored against a ground truth and described.
pub fn uses_synthetic_cohort(cfg: &ProjectConfig) -> bool {
    adni_data::synth::is_cohort_table(&resolve(&cfg.synth.out_dir), &resolve(&cfg.data.table))
}

/// The synthetic cohort's ground truth, when the run's data table is that cohort's.
pub fn ground_truth_of(cfg: &ProjectConfig) -> Result<Option<GroundTruth>> {
    Ok(GroundTruth::of_cohort(&resolve(&cfg.synth.out_dir), &resolve(&cfg.data.table))?)
}

/// What the stages that explain scans (`interpret`, `sanity`) need besides a model: the
/// preprocessed volumes, their grid, the atlas, the ground truth and the brain mask.
pub struct ScanInputs {
    /// The preprocessed (cached) volumes.
    pub source: VolumeSource,
    /// The model grid.
    pub grid: Grid,
    /// The architecture of the config (for freshly initialised models).
    pub network: model::NetworkConfig,
    /// `[relevance] atlas` on the model grid, when it could be loaded.
    pub atlas: Option<Atlas>,
    /// The synthetic cohort's ground truth, when the data are that cohort's.
    pub truth: Option<GroundTruth>,
    /// The brain mask on the model grid. Ground-truth scores count the brain only (the model's
    /// inputs are 0 outside it in every scan, so no model can use those voxels); the chance
    /// level is then the truth's share of the brain. Without a brain mask, the whole grid.
    pub brain: Option<Array3<bool>>,
}

impl ScanInputs {
    /// Opens the inputs of `cfg` for `cohort`. Without an atlas, `atlas_required` makes it an
    /// error; otherwise `stage` says on stderr that region scores are left out.
    pub fn open(cfg: &ProjectConfig, cohort: &Cohort, atlas_required: bool, stage: &str) -> Result<ScanInputs> {
        let p = &cfg.preprocess;
        let Some(first) = cohort.scans.first() else { bail!("the cohort has no scans") };
        let spec = PreprocessSpec { mask: p.mask_path(), downsample: p.downsample };
        let source = VolumeSource::open(&resolve(&p.cache_dir), spec, &first.path)
            .context("cannot set up the preprocessed volumes ([preprocess] mask, downsample, cache_dir)")?;
        let grid = source.model_grid();
        let atlas = match load_atlas(cfg, &grid) {
            Ok(a) => Some(a),
            Err(e) if atlas_required => return Err(e),
            Err(e) => {
                eprintln!("{stage}: no atlas, so no region scores ({e:#})");
                None
            }
        };
        let truth = ground_truth_of(cfg)?;
        let fraction = cfg.relevance.ground_truth_fraction;
        if !(fraction > 0.0 && fraction <= 1.0) {
            bail!("[relevance] ground_truth_fraction = {fraction}: expected 0 < fraction ≤ 1");
        }
        let brain = source.model_mask.as_ref().map(|m| m.mapv(|v| v > 0.5));
        Ok(ScanInputs { source, grid, network: cfg.model.clone(), atlas, truth, brain })
    }
}

/// A trained model and its intensity normaliser, checked against the grid the config's
/// preprocessing gives.
pub fn load_fold(fold: &FoldLayout, grid: [usize; 3]) -> Result<(ClassificationModel3D<Cpu>, Normalizer)> {
    let model = load_fold_model::<Cpu>(fold.dir(), &Default::default())?;
    if model.input_shape() != grid {
        bail!(
            "the model of {} is for grid {}, the config's preprocessing gives {}",
            fold.dir().display(),
            model::format_grid(model.input_shape()),
            model::format_grid(grid)
        );
    }
    let norm = Normalizer::load(&fold.normalization())?;
    Ok((model, norm))
}

/// Every test scan of `split` (its `splits/<split>.csv`, checked against the split its fold was
/// trained on by [`checked_split`]), in the split file's order.
pub fn test_items(run: &RunLayout, split: &str, cohort: &[CohortScan]) -> Result<Vec<ScanItem>> {
    split_items(run, split, cohort, SplitSet::Test)
}

/// [`test_items`] for the scans of any `set` of the split (labels as `cohort` gives them).
pub fn split_items(run: &RunLayout, split: &str, cohort: &[CohortScan], set: SplitSet) -> Result<Vec<ScanItem>> {
    let split_file = run.split_csv(split);
    let rows = checked_split(run, split)?;
    let by_id: BTreeMap<i64, &CohortScan> = cohort.iter().map(|s| (s.record.image_id, s)).collect();
    rows.rows
        .iter()
        .filter(|r| r.set == set)
        .map(|row| {
            let scan = by_id.get(&row.image_id).ok_or_else(|| {
                anyhow!("{}: Image.ID {} is not in the cohort of the run's config", split_file.display(), row.image_id)
            })?;
            Ok(ScanItem::from_cohort(scan))
        })
        .collect()
}

/// The rows of the split a finished fold was trained on, as its `fold_result.json` records them
/// (`settings.split.rows`: `ptid`, `image_id`, `set` per row, in order).
pub fn trained_split_rows(fold: &FoldLayout) -> Result<serde_json::Value> {
    split_rows_of(&fold_record(fold)?, &fold.result())
}

/// A finished fold's `fold_result.json`, parsed.
fn fold_record(fold: &FoldLayout) -> Result<serde_json::Value> {
    let path = fold.result();
    let bytes = std::fs::read(&path)
        .with_context(|| format!("cannot read {} (the fold's record; is the fold trained?)", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not JSON (expected a finished fold's record)", path.display()))
}

/// The trained split's rows in a fold's parsed record `result` (read from `path`).
fn split_rows_of(result: &serde_json::Value, path: &Path) -> Result<serde_json::Value> {
    let settings: serde_json::Value =
        result["settings"].as_str().and_then(|s| serde_json::from_str(s).ok()).ok_or_else(|| {
            anyhow!("{}: no `settings` (expected the settings the fold was trained with)", path.display())
        })?;
    match &settings["split"]["rows"] {
        rows @ serde_json::Value::Array(_) => Ok(rows.clone()),
        _ => bail!(
            "{}: its settings hold no split (expected `split.rows`, the rows the fold was trained on)",
            path.display()
        ),
    }
}

/// `splits/<split>.csv`, refused unless it is the split the fold `folds/<split>/` was trained
/// on: `split` and `prepare` rewrite the file, and a test scan of a rewritten split may be one
/// the model trained on.
pub fn checked_split(run: &RunLayout, split: &str) -> Result<Split> {
    checked_split_against(run, split, &fold_record(&run.fold(split))?)
}

/// [`checked_split`] with the fold's parsed record `record` already read.
fn checked_split_against(run: &RunLayout, split: &str, record: &serde_json::Value) -> Result<Split> {
    let split_file = run.split_csv(split);
    let rows = read_split_csv(&split_file)?;
    let fold = run.fold(split);
    let trained = split_rows_of(record, &fold.result())?;
    if serde_json::to_value(&rows.rows)? == trained {
        return Ok(rows);
    }
    // Which of the file's test scans the model trained (or validated) on.
    let trained_on: BTreeMap<i64, String> = trained
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["image_id"].as_i64()?, r["set"].as_str()?.to_owned())))
        .collect();
    let seen: Vec<i64> = rows
        .rows
        .iter()
        .filter(|r| r.set == SplitSet::Test && trained_on.get(&r.image_id).is_some_and(|s| s != "test"))
        .map(|r| r.image_id)
        .collect();
    let detail = if seen.is_empty() {
        "its rows differ".to_owned()
    } else {
        format!(
            "{} of its test scans were in the model's training set: Image.ID {}",
            seen.len(),
            seen.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
        )
    };
    bail!(
        "{} is not the split {} was trained on ({detail}): the split file changed after training (`split` or \
         `prepare` rewrote it). Write it back as trained (rerun `split` with the config the run was trained with, or \
         `train` with that config, which rewrites it), or retrain the fold (delete {})",
        split_file.display(),
        fold.result().display(),
        fold.dir().display()
    )
}

/// A sha256 over what a trained split's maps depend on: the fold's weights
/// (`model.safetensors`), its normaliser (every file of `normalization/`, by name), the settings
/// its `fold_result.json` records (training settings, split, data fingerprint) and the rows of
/// `splits/<split>.csv` (checked against them by [`checked_split`]).
pub fn fold_fingerprint(run: &RunLayout, split: &str) -> Result<String> {
    use sha2::{Digest, Sha256};
    let fold = run.fold(split);
    let record = fold_record(&fold)?;
    let rows = checked_split_against(run, split, &record)?;
    let mut hasher = Sha256::new();
    let mut add = |label: &str, value: &str| {
        hasher.update(label.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    };
    add("model", &adni_data::fsutil::content_digest(&fold.model())?);
    let norm = fold.normalization();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&norm)
        .with_context(|| format!("cannot read {} (the fold's normaliser)", norm.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in &files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        add(&name, &adni_data::fsutil::content_digest(f)?);
    }
    add("settings", record["settings"].as_str().unwrap_or_default());
    add("split", &serde_json::to_string(&rows.rows)?);
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether the stage marker `marker` (a `complete.json`) exists and was computed from the
/// models `run` holds now: each split under its `inputs.models` has the [`fold_fingerprint`]
/// recorded there. Settings are not compared (callers that need them use [`completion`]).
pub fn marker_models_current(run: &RunLayout, marker: &Path) -> bool {
    let Ok(Some(done)) = read_marker(marker) else { return false };
    let Some(models) = done[INPUTS_KEY]["models"].as_object().filter(|m| !m.is_empty()) else { return false };
    models.iter().all(|(split, fp)| fold_fingerprint(run, split).is_ok_and(|now| fp.as_str() == Some(now.as_str())))
}

/// `value` as it reads back from a JSON file: a fingerprint compared with a stored one must be
/// built the same way (an `f32` such as 0.1 is written as `0.1` but widened to
/// 0.10000000149011612 by `serde_json::to_value`).
pub fn as_stored_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value> {
    Ok(serde_json::from_str(&serde_json::to_string(value)?)?)
}

/// Whether a stage's outputs are complete for what is asked now, from its parsed
/// `complete.json` ([`completion`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Complete: the marker holds every wanted entry and the same inputs; it records `scans`.
    Complete {
        /// The scans the marker records.
        scans: usize,
    },
    /// Written for something else: what differs, as `key.sub-key` paths of the marker.
    Stale {
        /// What differs (never empty).
        differing: Vec<String>,
    },
}

/// The key of a stage's `complete.json` that holds its inputs' fingerprint.
pub const INPUTS_KEY: &str = "inputs";

/// Compares a stage's parsed `complete.json` (`done`) with what is asked now: its list `key`
/// must hold every one of `wanted`, and its [`INPUTS_KEY`] must equal `inputs` (a marker
/// without one, written before fingerprints were recorded, is stale).
pub fn completion(done: &serde_json::Value, key: &str, wanted: &[&str], inputs: &serde_json::Value) -> Completion {
    let done_list: Vec<&str> =
        done[key].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
    let lacking: Vec<&str> = wanted.iter().copied().filter(|w| !done_list.contains(w)).collect();
    let mut differing = Vec::new();
    if !lacking.is_empty() {
        differing.push(format!("{key} (lacks {})", lacking.join(", ")));
    }
    match done.get(INPUTS_KEY) {
        None => differing.push(format!("{INPUTS_KEY} (none recorded: written by an older version)")),
        Some(found) => differing.extend(differing_paths(found, inputs, "")),
    }
    if differing.is_empty() {
        Completion::Complete { scans: done["scans"].as_u64().unwrap_or(0) as usize }
    } else {
        Completion::Stale { differing }
    }
}

/// The paths (`prefix.key.sub-key`; `key.sub-key` with an empty `prefix`) at which `found` and
/// `expected` differ: objects are compared key by key, anything else as a whole (two values
/// that differ at the top level, not objects both: [`INPUTS_KEY`] with an empty `prefix`).
pub fn differing_paths(found: &serde_json::Value, expected: &serde_json::Value, prefix: &str) -> Vec<String> {
    match (found.as_object(), expected.as_object()) {
        (Some(f), Some(e)) => {
            let keys: std::collections::BTreeSet<&String> = f.keys().chain(e.keys()).collect();
            keys.into_iter()
                .flat_map(|k| {
                    let null = serde_json::Value::Null;
                    let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    differing_paths(f.get(k).unwrap_or(&null), e.get(k).unwrap_or(&null), &path)
                })
                .collect()
        }
        _ if found == expected => Vec::new(),
        _ if prefix.is_empty() => vec![INPUTS_KEY.to_owned()],
        _ => vec![prefix.to_owned()],
    }
}

/// Removes `files` of a stage's folder (those missing are fine), and `dirs` with everything in
/// them. A stage calls it after removing its `complete.json` and before writing anew, so that
/// no output of an earlier computation is left beside the new ones.
pub fn remove_outputs(files: &[PathBuf], dirs: &[PathBuf]) -> Result<()> {
    for f in files {
        match std::fs::remove_file(f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove the earlier output {}", f.display()));
            }
            _ => {}
        }
    }
    for d in dirs {
        match std::fs::remove_dir_all(d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove the earlier outputs in {}", d.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A stage's `complete.json` (`marker`), parsed; `None` when there is none.
pub fn read_marker(marker: &Path) -> Result<Option<serde_json::Value>> {
    let Ok(bytes) = std::fs::read(marker) else { return Ok(None) };
    let done = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not JSON (remove it, or use --force)", marker.display()))?;
    Ok(Some(done))
}
