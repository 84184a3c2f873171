//! Where a run's files lie: one method per file, so that no file name is typed twice.
//!
//! ```text
//! results/<run>/
//!   resolved_config.toml        the config as run
//!   splits/<split>.csv          each split's train/val/test assignment
//!   folds/<split>/              one trained model ([`FoldLayout`])
//!   relevance/                  the relevance maps and tables of its model ([`RelevanceLayout`])
//!   sanity/                     the sanity checks of those maps ([`SanityLayout`])
//!   REPORT.md, stages.csv       a reproduction's report and its seconds per stage
//! ```
//!
//! A reproduction holds two runs, `cv/` (the cross-validation) and `holdout/` (the final model,
//! whose maps are explained).
//!
//! The writers (`model`'s training, the runner's `interpret`) and the readers (`report`, the
//! runner's `report` and `sanity`) take their paths from here.

use std::path::{Path, PathBuf};

/// The config a run was made with, written into every result folder.
pub const RESOLVED_CONFIG_FILE: &str = "resolved_config.toml";

/// The marker a stage writes last into its folder (relevance, sanity checks): the folder is
/// complete.
pub const COMPLETE_FILE: &str = "complete.json";

/// A run folder, `results/<run>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLayout {
    root: PathBuf,
}

impl RunLayout {
    /// The layout of the run folder `root`.
    pub fn new(root: impl Into<PathBuf>) -> RunLayout {
        RunLayout { root: root.into() }
    }

    /// The run folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `resolved_config.toml`: the config as run.
    pub fn resolved_config(&self) -> PathBuf {
        self.root.join(RESOLVED_CONFIG_FILE)
    }

    /// `splits/<name>.csv`: a split's assignment of scans to train, validation and test.
    pub fn split_csv(&self, name: &str) -> PathBuf {
        self.root.join("splits").join(format!("{name}.csv"))
    }

    /// `metrics_epochs.csv`: every split's per-epoch metrics.
    pub fn metrics_epochs(&self) -> PathBuf {
        self.root.join(METRICS_EPOCHS_FILE)
    }

    /// `metrics_folds.csv`: one row per split, its kept epoch's metrics.
    pub fn metrics_folds(&self) -> PathBuf {
        self.root.join("metrics_folds.csv")
    }

    /// `predictions.csv`: every split's per-scan predictions, joined with the metadata.
    pub fn predictions(&self) -> PathBuf {
        self.root.join(PREDICTIONS_FILE)
    }

    /// `summary.csv`: mean, SD and 95 % interval of each metric over the splits.
    pub fn summary_csv(&self) -> PathBuf {
        self.root.join("summary.csv")
    }

    /// `summary.md`: the same for people.
    pub fn summary_md(&self) -> PathBuf {
        self.root.join("summary.md")
    }

    /// `timing.csv`: seconds per split.
    pub fn timing(&self) -> PathBuf {
        self.root.join(TIMING_FILE)
    }

    /// `REPORT.md`: the report of a reproduction (`reproduce-paper`), or of a run.
    pub fn report_md(&self) -> PathBuf {
        self.root.join("REPORT.md")
    }

    /// `stages.csv`: a reproduction's seconds per stage, and whether each ran or was found
    /// complete.
    pub fn stages_csv(&self) -> PathBuf {
        self.root.join("stages.csv")
    }

    /// `cohort/`: the cohort a run was made from (`cargo xtask prepare` / `cohort`).
    pub fn cohort(&self) -> CohortLayout {
        CohortLayout { dir: self.root.join("cohort") }
    }

    /// `folds/`: one folder per trained model.
    pub fn folds_dir(&self) -> PathBuf {
        self.root.join("folds")
    }

    /// `folds/<name>/`: the model trained on split `name`.
    pub fn fold(&self, name: &str) -> FoldLayout {
        FoldLayout { dir: self.folds_dir().join(name) }
    }

    /// `relevance/`: the maps of the run's models.
    pub fn relevance(&self) -> RelevanceLayout {
        RelevanceLayout::new(self.root.join("relevance"))
    }

    /// `sanity/`: the sanity checks of the maps.
    pub fn sanity(&self) -> SanityLayout {
        SanityLayout::new(self.root.join(SANITY_DIR))
    }
}

/// Per-epoch metrics (a run's and a fold's).
const METRICS_EPOCHS_FILE: &str = "metrics_epochs.csv";
/// Per-scan predictions (a run's and a fold's).
const PREDICTIONS_FILE: &str = "predictions.csv";

/// The sanity checks' folder inside a run ([`RunLayout::sanity`]).
pub const SANITY_DIR: &str = "sanity";
/// Cascading randomisation, per step, method and scan (in [`SanityLayout`]).
pub const CASCADE_FILE: &str = "cascade.csv";
/// Data randomisation, per method and scan.
pub const DATA_RANDOMISATION_FILE: &str = "data_randomisation.csv";
/// The trained and the shuffled-label model on the test scans.
pub const SHUFFLED_MODEL_FILE: &str = "shuffled_model.csv";
/// Deletion curves, per kind, method, ordering, scan and step.
pub const DELETION_FILE: &str = "deletion.csv";
/// AOPC per kind, method, ordering and scan.
pub const AOPC_FILE: &str = "aopc.csv";
/// Seconds per part of a stage.
pub const TIMING_FILE: &str = "timing.csv";

/// A sanity-check folder, `sanity/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanityLayout {
    dir: PathBuf,
}

impl SanityLayout {
    /// The layout of the sanity folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> SanityLayout {
        SanityLayout { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file of the folder by name (one of the `*_FILE` constants of this module).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `complete.json`: written last, naming the checks, files, methods and scans it holds.
    pub fn complete(&self) -> PathBuf {
        self.dir.join(COMPLETE_FILE)
    }

    /// `shuffled/`: the shuffled-label model, in a training run's layout.
    pub fn shuffled_run(&self) -> RunLayout {
        RunLayout::new(self.dir.join("shuffled"))
    }
}

/// A cohort folder: the filters' counts and the retained scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CohortLayout {
    dir: PathBuf,
}

impl CohortLayout {
    /// The layout of the cohort folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> CohortLayout {
        CohortLayout { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `cohort_report.csv`: each filter in the study's order with the counts after it.
    pub fn report_csv(&self) -> PathBuf {
        self.dir.join("cohort_report.csv")
    }

    /// `cohort_report.json`: the same counts as JSON.
    pub fn report_json(&self) -> PathBuf {
        self.dir.join("cohort_report.json")
    }

    /// `cohort_scans.csv`: the retained scans.
    pub fn scans_csv(&self) -> PathBuf {
        self.dir.join("cohort_scans.csv")
    }
}

/// A trained model's folder, `folds/<split>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldLayout {
    dir: PathBuf,
}

impl FoldLayout {
    /// The layout of the fold folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> FoldLayout {
        FoldLayout { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `model.safetensors`: the kept model, with PyTorch's state-dict keys.
    pub fn model(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }

    /// `network.json`: the architecture and input grid of [`Self::model`].
    pub fn network(&self) -> PathBuf {
        self.dir.join("network.json")
    }

    /// `fold_result.json`: written last; its presence means the fold is finished.
    pub fn result(&self) -> PathBuf {
        self.dir.join("fold_result.json")
    }

    /// Whether the fold is finished (its [`Self::result`] exists).
    pub fn is_finished(&self) -> bool {
        self.result().exists()
    }

    /// `metrics_epochs.csv`: the fold's per-epoch metrics, written after every epoch.
    pub fn metrics_epochs(&self) -> PathBuf {
        self.dir.join(METRICS_EPOCHS_FILE)
    }

    /// `predictions.csv`: the kept model's per-scan predictions.
    pub fn predictions(&self) -> PathBuf {
        self.dir.join(PREDICTIONS_FILE)
    }

    /// `normalization/`: the intensity normaliser fitted on the training scans.
    pub fn normalization(&self) -> PathBuf {
        self.dir.join("normalization")
    }
}

/// A relevance folder, `relevance/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelevanceLayout {
    dir: PathBuf,
}

impl RelevanceLayout {
    /// The layout of the relevance folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> RelevanceLayout {
        RelevanceLayout { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `complete.json`: written last, naming the methods, scans and splits it holds.
    pub fn complete(&self) -> PathBuf {
        self.dir.join(COMPLETE_FILE)
    }

    /// `index.csv`: one row per mean map (`method`, `group`, `n_scans`, `file`).
    pub fn index(&self) -> PathBuf {
        self.dir.join("index.csv")
    }

    /// `scans.csv`: one row per explained scan (its prediction and explained class).
    pub fn scans(&self) -> PathBuf {
        self.dir.join("scans.csv")
    }

    /// `scan_regions.csv`: region scores of every scan's map.
    pub fn scan_regions(&self) -> PathBuf {
        self.dir.join("scan_regions.csv")
    }

    /// `ground_truth.csv`: every map scored against the planted atrophy (synthetic cohorts).
    pub fn ground_truth(&self) -> PathBuf {
        self.dir.join("ground_truth.csv")
    }

    /// `lrp_conservation.csv`: LRP's relevance sum against the logit, per scan and model.
    pub fn lrp_conservation(&self) -> PathBuf {
        self.dir.join("lrp_conservation.csv")
    }

    /// `timing.csv`: seconds per method and model.
    pub fn timing(&self) -> PathBuf {
        self.dir.join(TIMING_FILE)
    }

    /// `background.nii.gz`: the mean input scan (the figures' underlay).
    pub fn background(&self) -> PathBuf {
        self.dir.join("background.nii.gz")
    }

    /// The mean map of `method` over `group` (`AD`, `CN` or `all`), relative to the folder (as
    /// [`Self::index`] lists it).
    pub fn mean_map_name(method: &str, group: &str) -> String {
        format!("maps/{method}_{group}.nii.gz")
    }

    /// The mean map of `method` over `group`.
    pub fn mean_map(&self, method: &str, group: &str) -> PathBuf {
        self.dir.join(Self::mean_map_name(method, group))
    }

    /// One scan's map (`save_scan_maps = true`): `maps/scans/<method>/<Image.ID>.nii.gz`.
    pub fn scan_map(&self, method: &str, image_id: i64) -> PathBuf {
        self.dir.join("maps/scans").join(method).join(format!("{image_id}.nii.gz"))
    }

    /// `resolved_config.toml` of the interpretation.
    pub fn resolved_config(&self) -> PathBuf {
        self.dir.join(RESOLVED_CONFIG_FILE)
    }

    /// `shards/`: the parts of a sharded interpretation (`interpret --shard i/n`).
    pub fn shards_dir(&self) -> PathBuf {
        self.dir.join("shards")
    }

    /// `shards/<i>-of-<n>/`: shard `index` (1-based) of `count`, laid out as a relevance folder
    /// of its own (its mean maps, tables and marker cover its scans only).
    pub fn shard(&self, index: usize, count: usize) -> RelevanceLayout {
        RelevanceLayout::new(self.shards_dir().join(format!("{index}-of-{count}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_the_documented_ones() {
        let run = RunLayout::new("results/r");
        assert_eq!(run.resolved_config(), Path::new("results/r/resolved_config.toml"));
        assert_eq!(run.split_csv("cv_0"), Path::new("results/r/splits/cv_0.csv"));
        assert_eq!(run.report_md(), Path::new("results/r/REPORT.md"));
        assert_eq!(run.stages_csv(), Path::new("results/r/stages.csv"));
        let fold = run.fold("holdout");
        assert_eq!(fold.dir(), Path::new("results/r/folds/holdout"));
        assert_eq!(fold.model(), Path::new("results/r/folds/holdout/model.safetensors"));
        assert_eq!(fold.result(), Path::new("results/r/folds/holdout/fold_result.json"));
        let rel = run.relevance();
        assert_eq!(rel.mean_map("gradient", "AD"), Path::new("results/r/relevance/maps/gradient_AD.nii.gz"));
        assert_eq!(rel.dir().join(RelevanceLayout::mean_map_name("lrp", "all")), rel.mean_map("lrp", "all"));
        assert_eq!(rel.scan_map("lrp", 42), Path::new("results/r/relevance/maps/scans/lrp/42.nii.gz"));
        assert_eq!(rel.shard(2, 3).index(), Path::new("results/r/relevance/shards/2-of-3/index.csv"));
        let sanity = run.sanity();
        assert_eq!(sanity.file(CASCADE_FILE), Path::new("results/r/sanity/cascade.csv"));
        assert_eq!(sanity.shuffled_run().fold("holdout").dir(), Path::new("results/r/sanity/shuffled/folds/holdout"));
    }
}
