//! What several stages read through the config: the run folder named on the command line, the
//! atlas of `[relevance] atlas`, the synthetic cohort's ground truth, the preprocessed scans
//! ([`ScanInputs`]) and a trained model with its normaliser ([`load_fold`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use adni_data::Grid;
use adni_data::atlas::{Atlas, load_aal, load_cerebra, load_label_atlas};
use std::collections::BTreeMap;

use adni_data::cohort::{Cohort, CohortScan};
use adni_data::preprocess::{Normalizer, PreprocessSpec};
use adni_data::run_layout::{FoldLayout, RunLayout};
use adni_data::splits::{SplitSet, read_split_csv};
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

/// Every test scan of `split` (its `splits/<split>.csv`), in the split file's order.
pub fn test_items(run: &RunLayout, split: &str, cohort: &[CohortScan]) -> Result<Vec<ScanItem>> {
    let split_file = run.split_csv(split);
    let rows = read_split_csv(&split_file)?;
    let by_id: BTreeMap<i64, &CohortScan> = cohort.iter().map(|s| (s.record.image_id, s)).collect();
    rows.rows
        .iter()
        .filter(|r| r.set == SplitSet::Test)
        .map(|row| {
            let scan = by_id.get(&row.image_id).ok_or_else(|| {
                anyhow!("{}: Image.ID {} is not in the cohort of the run's config", split_file.display(), row.image_id)
            })?;
            Ok(ScanItem::from_cohort(scan))
        })
        .collect()
}

/// The scans recorded in a stage's `complete.json` (`marker`) when its list `key` holds every
/// one of `wanted`; `None` when there is no marker or something is missing.
pub fn completed_scans(marker: &Path, key: &str, wanted: &[&str]) -> Result<Option<usize>> {
    Ok(read_marker(marker)?.and_then(|done| marker_scans(&done, key, wanted)))
}

/// A stage's `complete.json` (`marker`), parsed; `None` when there is none.
pub fn read_marker(marker: &Path) -> Result<Option<serde_json::Value>> {
    let Ok(bytes) = std::fs::read(marker) else { return Ok(None) };
    let done = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not JSON (remove it, or use --force)", marker.display()))?;
    Ok(Some(done))
}

/// The scans a parsed marker (`done`) records when its list `key` holds every one of `wanted`.
pub fn marker_scans(done: &serde_json::Value, key: &str, wanted: &[&str]) -> Option<usize> {
    let done_list: Vec<&str> =
        done[key].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
    wanted.iter().all(|w| done_list.contains(w)).then(|| done["scans"].as_u64().unwrap_or(0) as usize)
}
