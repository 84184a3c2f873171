//! What several stages read through the config: the run folder named on the command line, the
//! atlas of `[relevance] atlas` and the synthetic cohort's ground truth.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use adni_data::Grid;
use adni_data::atlas::{Atlas, load_aal, load_cerebra, load_label_atlas};
use adni_data::synth::GroundTruth;

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
            let (labels, table) = GroundTruth::atlas_files(&resolve(&cfg.synth.out_dir));
            load_label_atlas("synth", &labels, &table)
                .context("[relevance] atlas = \"synth\": the synthetic cohort's atlas (run `cargo xtask synth`)")?
        }
    };
    Ok(atlas.resample_to(grid, r.placement)?)
}

/// The synthetic cohort's ground truth, when the run's data table is that cohort's.
pub fn ground_truth_of(cfg: &ProjectConfig) -> Result<Option<GroundTruth>> {
    Ok(GroundTruth::of_cohort(&resolve(&cfg.synth.out_dir), &resolve(&cfg.data.table))?)
}
