//! Subject-level cross-validated training of [`ClassificationModel3D`] (PAPER.md section 2).
//!
//! One *run* trains one model per split — the k folds of a cross-validation over patients, or
//! the paper's single hold-out split — and merges their results. Per fold: a fresh model, the
//! z-score fitted on that fold's training scans only, Adam (lr 1e-4, PyTorch's betas and
//! epsilon, no weight decay), cross-entropy over the two logits, batches of 5, no augmentation:
//! the paper's recipe by default; `[train]` can change the learning rate, add weight decay and
//! augment the training scans ([`crate::data::Augmentation`]; seeded per epoch and batch).
//! After every epoch the fold writes a checkpoint (model, Adam state, history), so a killed run
//! resumes from its last completed epoch and ends with the same numbers.
//!
//! **Determinism.** Every random draw is seeded from the config's seed, the split's name and the
//! epoch (and batch) through [`derive_seed`]: the initial weights (`"init"`), each epoch's
//! shuffle (`"shuffle"`), each batch's dropout masks (`"dropout"`, the backend generator is
//! re-seeded before every training step) and the inner validation split (`"validation"`). On the
//! CPU the same config therefore gives the same numbers, a resumed run gives the numbers of an
//! uninterrupted one, and a fold trained alone (`--fold K`) gives the numbers it has in a full
//! run. Burn's CPU generator is process-wide, so a run holds a process-wide lock.
//!
//! **Leakage.** Every split is checked with [`check_no_leakage`] before anything is trained: a
//! patient on both sides of a split is refused.
//!
//! Output folder (`RunSpec::dir`, typically `results/<run>/`):
//!
//! | path | what |
//! |---|---|
//! | `splits/<split>.csv` | the splits trained (`PTID,Image.ID,set`) |
//! | `folds/<split>/normalization/` | the fold's z-score (fitted on its training scans only) |
//! | `folds/<split>/model.safetensors` | the kept model: weights and BatchNorm running statistics under the PyTorch state-dict keys (loads in PyTorch; [`load_fold_model`] here) |
//! | `folds/<split>/network.json` | the architecture and input grid of the model |
//! | `folds/<split>/metrics_epochs.csv` | per epoch: train, validation (keep = best) and test metrics |
//! | `folds/<split>/predictions.csv` | per test (and validation) scan: label, P(AD), prediction of the kept model |
//! | `folds/<split>/fold_result.json` | everything above in one document; written last, marks the fold finished |
//! | `folds/<split>/checkpoint/` | the last completed epoch (removed when the fold finishes) |
//! | `metrics_epochs.csv` | the folds' per-epoch metrics, one table |
//! | `metrics_folds.csv` | per fold: the kept epoch and the kept model's test (and validation) metrics |
//! | `summary.csv`, `summary.md` | mean ± SD over folds, pooled out-of-fold metrics, bootstrap 95 % CI |
//! | `predictions.csv` | every fold's test predictions joined with the cohort metadata |
//! | `timing.csv` | seconds per epoch and fold |

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use adni_data::DataError;
use adni_data::cohort::Cohort;
use adni_data::fsutil::{write_bytes_atomically, write_csv_atomically};
use adni_data::preprocess::{NORM_META_FILE, Normalizer, select_fit_scans};
use adni_data::splits::{Split, SplitSet, check_no_leakage, inner_validation_split, write_split_csv};
use burn::module::{AutodiffModule, Module};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use polars::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    CHECKPOINT_DIR, FOLD_RESULT_FILE, STATE_FILE, best_model_file, load_record, model_file, optimizer_file, prune,
    read_json, save_record, write_json,
};
use crate::data::{Augmentation, NormalizedScans, ScanItem, VolumeSource};
use crate::metrics::{BinaryMetrics, METRIC_NAMES, Prediction, bootstrap_intervals, mean_sd, nan_as_null};
use crate::weights::{export_safetensors, import_safetensors};
use crate::{ClassificationModel3D, DeviceKind, ModelError, NetworkConfig};

/// How the cohort is split for training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainMode {
    /// Stratified, seeded k-fold cross-validation over patients (`[split] k` folds). Default.
    #[default]
    Kfold,
    /// The paper's hold-out split: `[split] holdout_ad` AD + `holdout_cn` CN test patients, the
    /// rest trains (the model the paper's heatmaps come from).
    Holdout,
}

/// Which epoch's model a fold keeps (and reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeepEpoch {
    /// The model after the last epoch, as the paper (metrics "after epoch 20 regardless of
    /// earlier epochs"). Default.
    #[default]
    Last,
    /// The epoch with the best [`TrainConfig::selection_metric`] on an inner, patient-level
    /// validation split taken from the fold's training patients (never the test set).
    Best,
}

/// The validation metric that picks the best epoch (`keep = "best"`); ties keep the earlier epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectionMetric {
    /// Lowest mean cross-entropy. Default.
    #[default]
    Loss,
    /// Highest balanced accuracy.
    BalancedAccuracy,
    /// Highest ROC AUC of P(AD).
    RocAuc,
}

impl SelectionMetric {
    /// The score to maximise.
    fn score(self, m: &BinaryMetrics) -> f64 {
        match self {
            SelectionMetric::Loss => -m.loss,
            SelectionMetric::BalancedAccuracy => m.balanced_accuracy,
            SelectionMetric::RocAuc => m.roc_auc,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            SelectionMetric::Loss => "loss",
            SelectionMetric::BalancedAccuracy => "balanced_accuracy",
            SelectionMetric::RocAuc => "roc_auc",
        }
    }
}

/// `[train]`: how the network is trained and evaluated. Every default is the paper's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// k-fold cross-validation (default) or the hold-out split.
    pub mode: TrainMode,
    /// Epochs per fold. Default 20 (the paper).
    pub epochs: usize,
    /// Scans per training step. Default 5 (the paper). The last batch of an epoch may be
    /// smaller (no scan is dropped).
    pub batch_size: usize,
    /// Scans per inference batch (memory only: inference uses running statistics, so the batch
    /// does not change the outputs). Default 5.
    pub eval_batch_size: usize,
    /// Adam learning rate. Default 1e-4 (the paper).
    pub learning_rate: f64,
    /// Adam β₁. Default 0.9 (PyTorch's default, used by the paper).
    pub adam_beta1: f64,
    /// Adam β₂. Default 0.999.
    pub adam_beta2: f64,
    /// Adam ε. Default 1e-8 (PyTorch's default; Burn's own default is 1e-5).
    pub adam_epsilon: f64,
    /// L2 penalty added to the gradients by Adam (PyTorch's `Adam(weight_decay=…)`). Default 0
    /// (the paper).
    pub weight_decay: f64,
    /// Mirror each training scan left–right with probability ½ (see
    /// [`crate::data::Augmentation`]). Default false (the paper: no augmentation).
    pub augment_flip: bool,
    /// Translate each training scan by up to this many voxels per axis, zero-filled. Default 0
    /// (the paper: no augmentation).
    pub augment_shift: usize,
    /// Seed of the initial weights, shuffles, dropout masks and the inner validation split.
    /// Default 2018.
    pub seed: u64,
    /// Which epoch's model is kept: `last` (default, the paper) or `best` on an inner
    /// validation split.
    pub keep: KeepEpoch,
    /// With `keep = "best"`: share of each class's training patients moved to the inner
    /// validation set. Default 0.2.
    pub validation_fraction: f64,
    /// With `keep = "best"`: the validation metric that picks the epoch. Default `loss`.
    pub selection_metric: SelectionMetric,
    /// Evaluate the test set after every epoch (for the learning curves; never used to choose
    /// anything). Default true; `false` evaluates the test set once, with the kept model.
    pub evaluate_test_each_epoch: bool,
    /// Bootstrap resamples for the confidence intervals of the summary (0: no interval).
    /// Default 2000.
    pub bootstrap_samples: usize,
    /// Coverage of the bootstrap interval. Default 0.95.
    pub confidence_level: f64,
    /// `cpu` (default) or `cuda`; `--device` overrides it.
    pub device: DeviceKind,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            mode: TrainMode::Kfold,
            epochs: 20,
            batch_size: 5,
            eval_batch_size: 5,
            learning_rate: 1e-4,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            weight_decay: 0.0,
            augment_flip: false,
            augment_shift: 0,
            seed: 2018,
            keep: KeepEpoch::Last,
            validation_fraction: 0.2,
            selection_metric: SelectionMetric::Loss,
            evaluate_test_each_epoch: true,
            bootstrap_samples: 2000,
            confidence_level: 0.95,
            device: DeviceKind::Cpu,
        }
    }
}

impl TrainConfig {
    /// The training-time augmentation these settings ask for.
    pub fn augmentation(&self) -> Augmentation {
        Augmentation { flip_lr: self.augment_flip, max_shift: self.augment_shift }
    }

    /// Checks every value; the error names the key (`[train] epochs`, …) and what was expected.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |key: &'static str, message: String| Err(TrainError::Config { key, message });
        for (key, v) in
            [("epochs", self.epochs), ("batch_size", self.batch_size), ("eval_batch_size", self.eval_batch_size)]
        {
            if v == 0 {
                return bad(key, "found 0, expected at least 1".into());
            }
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", format!("found {}, expected a finite number > 0", self.learning_rate));
        }
        for (key, v) in [("adam_beta1", self.adam_beta1), ("adam_beta2", self.adam_beta2)] {
            if !(0.0..1.0).contains(&v) {
                return bad(key, format!("found {v}, expected 0 ≤ β < 1"));
            }
        }
        if !(self.adam_epsilon.is_finite() && self.adam_epsilon > 0.0) {
            return bad("adam_epsilon", format!("found {}, expected a finite number > 0", self.adam_epsilon));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", format!("found {}, expected a finite number ≥ 0", self.weight_decay));
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return bad(
                "validation_fraction",
                format!("found {}, expected a share strictly between 0 and 1", self.validation_fraction),
            );
        }
        if !(self.confidence_level > 0.0 && self.confidence_level < 1.0) {
            return bad(
                "confidence_level",
                format!("found {}, expected a level strictly between 0 and 1, e.g. 0.95", self.confidence_level),
            );
        }
        Ok(())
    }
}

/// What can go wrong while training or merging.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A `[train]` value is out of range.
    #[error("invalid value for `[train] {key}`: {message}")]
    Config {
        /// The key.
        key: &'static str,
        /// What was found and expected.
        message: String,
    },
    /// A split puts a patient on both sides (or is otherwise unusable): training refuses it.
    #[error("refusing to train on split `{split}`: {message}")]
    Split {
        /// The split's name.
        split: String,
        /// What is wrong.
        message: String,
    },
    /// Data could not be read, preprocessed or written.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The network could not be built (bad `[model]` values, grid too small, …).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A table could not be built.
    #[error("table operation failed: {0}")]
    Polars(#[from] PolarsError),
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint or result file that cannot be used.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The run folder holds something that conflicts with this call (other settings, an
    /// interrupted fold without `--resume`, unfinished folds for a merge, a fold that does not
    /// exist, …).
    #[error("{0}")]
    Run(String),
    /// The test hook [`TrainOptions::stop_after_batches`] stopped the run, as a kill would.
    #[error("training stopped after {batches} batches (stop_after_batches), as if killed")]
    Stopped {
        /// Training steps done in this call.
        batches: usize,
    },
}

/// The inputs of a run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The output folder (see the module documentation for its layout).
    pub dir: PathBuf,
    /// The architecture.
    pub network: NetworkConfig,
    /// Training settings.
    pub train: TrainConfig,
    /// The cohort (labels, patients, image paths and the metadata joined to the predictions).
    pub cohort: Cohort,
    /// The splits to train, one model each, in order (fold 1 = the first).
    pub splits: Vec<Split>,
    /// Where preprocessed volumes come from.
    pub source: VolumeSource,
    /// At most this many training scans fit a fold's z-score (the study: 200).
    pub normalization_max_scans: usize,
    /// Seed of the choice of those scans (`cargo xtask preprocess` uses `[split] seed`).
    pub normalization_seed: u64,
}

/// Options of one call (not settings of the run: they do not change its results).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrainOptions {
    /// Train only this fold (1-based index into [`RunSpec::splits`]); the others are left as
    /// they are. The merge happens as soon as every fold is finished.
    pub fold: Option<usize>,
    /// Continue interrupted folds from their last completed epoch. Without it an interrupted
    /// fold is an error (its checkpoint is never overwritten silently).
    pub resume: bool,
    /// Train nothing; merge the finished folds (an error if any is unfinished).
    pub merge_only: bool,
    /// Test hook: stop with [`TrainError::Stopped`] after this many training steps in this call,
    /// in the middle of an epoch, as if the process were killed.
    pub stop_after_batches: Option<usize>,
}

/// Progress of a run, for a progress display (the library prints nothing).
#[derive(Debug, Clone, Copy)]
pub enum TrainEvent<'a> {
    /// A fold starts (or resumes) training.
    FoldStarted {
        /// Split name.
        split: &'a str,
        /// 1-based fold index.
        fold: usize,
        /// Number of folds of the run.
        folds: usize,
        /// First epoch to train (1-based; > 1 when resumed).
        first_epoch: usize,
        /// Epochs in total.
        epochs: usize,
        /// Training steps per epoch.
        batches: usize,
        /// Training scans.
        train_scans: usize,
        /// Inner validation scans (keep = best).
        validation_scans: usize,
        /// Test scans.
        test_scans: usize,
    },
    /// A finished fold is skipped.
    FoldSkipped {
        /// Split name.
        split: &'a str,
        /// 1-based fold index.
        fold: usize,
    },
    /// A training step is done.
    BatchDone {
        /// Split name.
        split: &'a str,
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        batch: usize,
        /// Steps per epoch.
        batches: usize,
        /// Mean training loss of the epoch so far.
        running_loss: f64,
    },
    /// A set is being evaluated.
    Evaluating {
        /// Split name.
        split: &'a str,
        /// 1-based epoch (the kept epoch for the final evaluation).
        epoch: usize,
        /// Which set.
        set: SplitSet,
        /// Its scans.
        scans: usize,
    },
    /// An epoch is done and checkpointed.
    EpochDone {
        /// Split name.
        split: &'a str,
        /// Epochs in total.
        epochs: usize,
        /// The epoch's metrics.
        record: &'a EpochRecord,
    },
    /// A fold is finished.
    FoldDone {
        /// Split name.
        split: &'a str,
        /// Its result.
        result: &'a FoldResult,
    },
}

/// The metrics of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Training scans, from the training forward passes of the epoch (dropout and batch
    /// statistics on, weights changing during the epoch), as training loops usually report.
    pub train: BinaryMetrics,
    /// Inner validation scans (keep = best), with the model after the epoch.
    pub validation: Option<BinaryMetrics>,
    /// Test scans with the model after the epoch (when `evaluate_test_each_epoch`).
    pub test: Option<BinaryMetrics>,
    /// Wall-clock seconds of the epoch (training and evaluation).
    pub seconds: f64,
}

/// One scan's prediction by a fold's kept model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanPrediction {
    /// The scan's `Image.ID`.
    pub image_id: i64,
    /// Patient id.
    pub ptid: String,
    /// `test` or `validation`.
    pub set: String,
    /// True label, P(AD), argmax prediction and loss.
    #[serde(flatten)]
    pub prediction: Prediction,
}

/// The best epoch so far (keep = best).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BestEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Its selection score (higher is better; the negated loss for `loss`).
    #[serde(with = "nan_as_null")]
    pub score: f64,
}

/// A finished fold (`fold_result.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    /// Split name.
    pub split: String,
    /// The settings the fold was trained with (compared on resume and merge).
    pub settings: String,
    /// The device it was trained on.
    pub device: String,
    /// The epoch whose model is kept.
    pub kept_epoch: usize,
    /// Every epoch's metrics.
    pub history: Vec<EpochRecord>,
    /// Scans per set: train, validation, test.
    pub scans: [usize; 3],
    /// The kept model's validation metrics (keep = best).
    pub validation: Option<BinaryMetrics>,
    /// The kept model's test metrics.
    pub test: BinaryMetrics,
    /// The kept model's predictions on the test (and validation) scans.
    pub predictions: Vec<ScanPrediction>,
}

/// The checkpoint index (`checkpoint/state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CheckpointState {
    settings: String,
    epochs_done: usize,
    history: Vec<EpochRecord>,
    best: Option<BestEpoch>,
    model_file: String,
    optimizer_file: String,
    best_model_file: Option<String>,
}

/// What a call did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// Folds trained in this call.
    pub trained: Vec<String>,
    /// Folds found finished and skipped.
    pub skipped: Vec<String>,
    /// Folds still unfinished after this call (then nothing is merged).
    pub pending: Vec<String>,
    /// The merged summary, when every fold is finished.
    pub summary: Option<RunSummary>,
}

/// One metric of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    /// Metric name ([`METRIC_NAMES`]).
    pub metric: &'static str,
    /// Mean over folds of the kept models' test metric.
    pub mean: f64,
    /// Sample SD over folds (NaN with one fold).
    pub sd: f64,
    /// Folds with a defined value.
    pub folds: usize,
    /// The metric on all folds' test predictions pooled (out-of-fold predictions).
    pub pooled: f64,
    /// Bootstrap interval of the pooled metric: lower bound.
    pub ci_low: f64,
    /// Upper bound.
    pub ci_high: f64,
    /// Resamples in which the metric was defined.
    pub ci_resamples: usize,
}

/// The merged result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// One row per metric, in [`METRIC_NAMES`] order.
    pub rows: Vec<SummaryRow>,
    /// Per fold: split name, kept epoch, the kept model's test metrics.
    pub folds: Vec<(String, usize, BinaryMetrics)>,
    /// The Markdown report (also written as `summary.md`).
    pub markdown: String,
}

/// Burn's CPU random generator is process-wide: one run at a time per process.
static RUN_LOCK: Mutex<()> = Mutex::new(());

/// A seed for one purpose, derived from the run's seed, the split's name and two counters
/// (epoch, batch): FNV-1a over the parts, then the SplitMix64 finaliser. Distinct purposes,
/// splits and counters give unrelated streams.
pub fn derive_seed(seed: u64, split: &str, purpose: &str, a: u64, b: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &byte in bytes {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(&seed.to_le_bytes());
    eat(split.as_bytes());
    eat(purpose.as_bytes());
    eat(&a.to_le_bytes());
    eat(&b.to_le_bytes());
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The settings that determine a fold's numbers, as compared on resume and merge.
#[derive(Serialize)]
struct FoldSettings<'a> {
    network: &'a NetworkConfig,
    input_grid: [usize; 3],
    mode: TrainMode,
    epochs: usize,
    batch_size: usize,
    eval_batch_size: usize,
    learning_rate: f64,
    adam: [f64; 3],
    // The options added after the first release are left out of the settings when they have
    // their paper values, so runs made before them still resume and merge.
    #[serde(skip_serializing_if = "is_zero_f64")]
    weight_decay: f64,
    #[serde(skip_serializing_if = "Augmentation::is_identity")]
    augmentation: Augmentation,
    seed: u64,
    keep: KeepEpoch,
    validation_fraction: Option<f64>,
    selection_metric: Option<SelectionMetric>,
    evaluate_test_each_epoch: bool,
    downsample: usize,
    mask: Option<&'a Path>,
    normalization_max_scans: usize,
    normalization_seed: u64,
    split: &'a Split,
}

/// The augmentation in words, for the summaries.
fn augmentation_words(a: &Augmentation) -> String {
    match (a.flip_lr, a.max_shift) {
        (false, 0) => "no augmentation".into(),
        (true, 0) => "left–right mirroring (p ½)".into(),
        (false, s) => format!("shifts of up to {s} voxels"),
        (true, s) => format!("left–right mirroring (p ½) and shifts of up to {s} voxels"),
    }
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

fn fold_settings(spec: &RunSpec, split: &Split) -> Result<String, TrainError> {
    let t = &spec.train;
    let best = t.keep == KeepEpoch::Best;
    let s = FoldSettings {
        network: &spec.network,
        input_grid: spec.source.model_grid().shape,
        mode: t.mode,
        epochs: t.epochs,
        batch_size: t.batch_size,
        eval_batch_size: t.eval_batch_size,
        learning_rate: t.learning_rate,
        adam: [t.adam_beta1, t.adam_beta2, t.adam_epsilon],
        weight_decay: t.weight_decay,
        augmentation: t.augmentation(),
        seed: t.seed,
        keep: t.keep,
        validation_fraction: best.then_some(t.validation_fraction),
        selection_metric: best.then_some(t.selection_metric),
        evaluate_test_each_epoch: t.evaluate_test_each_epoch,
        downsample: spec.source.spec.downsample,
        mask: spec.source.spec.mask.as_deref(),
        normalization_max_scans: spec.normalization_max_scans,
        normalization_seed: spec.normalization_seed,
        split,
    };
    serde_json::to_string(&s).map_err(|e| TrainError::Run(format!("cannot encode the fold settings: {e}")))
}

/// The folder of split `name` inside the run folder.
pub fn fold_dir(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join("folds").join(name)
}

/// Checks the splits against the cohort: no leakage, every scan known, non-empty train and test
/// sets, distinct names.
pub fn check_splits(spec: &RunSpec) -> Result<(), TrainError> {
    if spec.splits.is_empty() {
        return Err(TrainError::Run("the run has no split to train".into()));
    }
    let known: HashMap<i64, &str> =
        spec.cohort.scans.iter().map(|s| (s.record.image_id, s.record.ptid.as_str())).collect();
    let mut names = std::collections::BTreeSet::new();
    for split in &spec.splits {
        let err = |message: String| TrainError::Split { split: split.name.clone(), message };
        if !names.insert(split.name.as_str()) {
            return Err(err("two splits have this name, expected distinct names".into()));
        }
        if split.name.is_empty() || split.name.contains(['/', '\\']) || split.name.starts_with('.') {
            return Err(err("the name is not usable as a folder name".into()));
        }
        check_no_leakage(split).map_err(|e| err(e.to_string()))?;
        for row in &split.rows {
            match known.get(&row.image_id) {
                None => return Err(err(format!("Image.ID {} is not in the cohort", row.image_id))),
                Some(p) if *p != row.ptid => {
                    return Err(err(format!(
                        "Image.ID {} belongs to patient {p} in the cohort, not {}",
                        row.image_id, row.ptid
                    )));
                }
                Some(_) => {}
            }
        }
        for set in [SplitSet::Train, SplitSet::Test] {
            if split.scan_count(set) == 0 {
                return Err(err(format!("the {set} set is empty")));
            }
        }
    }
    Ok(())
}

/// Trains the run's unfinished folds (or the one chosen by [`TrainOptions::fold`]), then, when
/// every fold is finished, merges them into the run-level tables and summary.
///
/// Refuses leaky splits, invalid settings and a grid too small for the network before anything
/// is trained. A finished fold is never retrained: it is skipped if it was trained with the same
/// settings and an error otherwise.
pub fn train_run<B: AutodiffBackend>(
    spec: &RunSpec,
    options: &TrainOptions,
    device: &B::Device,
    progress: &(dyn Fn(&TrainEvent<'_>) + Sync),
) -> Result<RunOutcome, TrainError> {
    let _guard = RUN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    spec.train.validate()?;
    spec.network.output_grid(spec.source.model_grid().shape)?;
    check_splits(spec)?;
    let n = spec.splits.len();
    let selected: Vec<usize> = match options.fold {
        Some(k) if k == 0 || k > n => {
            let names: Vec<&str> = spec.splits.iter().map(|s| s.name.as_str()).collect();
            return Err(TrainError::Run(format!(
                "--fold {k}: the run has {n} split(s) ({}), expected 1 ≤ K ≤ {n}",
                names.join(", ")
            )));
        }
        Some(k) => vec![k - 1],
        None => (0..n).collect(),
    };
    for split in &spec.splits {
        write_split_csv(&spec.dir.join("splits").join(format!("{}.csv", split.name)), split)?;
    }
    let mut outcome = RunOutcome { trained: vec![], skipped: vec![], pending: vec![], summary: None };
    if !options.merge_only {
        let mut steps = 0usize;
        for &i in &selected {
            let split = &spec.splits[i];
            if train_fold::<B>(spec, i, options, device, progress, &mut steps)? {
                outcome.trained.push(split.name.clone());
            } else {
                outcome.skipped.push(split.name.clone());
            }
        }
    }
    outcome.pending = spec
        .splits
        .iter()
        .filter(|s| !fold_dir(&spec.dir, &s.name).join(FOLD_RESULT_FILE).is_file())
        .map(|s| s.name.clone())
        .collect();
    if outcome.pending.is_empty() {
        outcome.summary = Some(merge_run(spec)?);
    } else if options.merge_only {
        return Err(TrainError::Run(format!(
            "cannot merge: fold(s) {} are not finished; train them first (e.g. `--fold K`)",
            outcome.pending.join(", ")
        )));
    }
    Ok(outcome)
}

/// The scans of `split` in `set`, in row order.
fn items(spec: &RunSpec, split: &Split, set: SplitSet) -> Vec<ScanItem> {
    let by_id: HashMap<i64, &adni_data::cohort::CohortScan> =
        spec.cohort.scans.iter().map(|s| (s.record.image_id, s)).collect();
    split
        .rows
        .iter()
        .filter(|r| r.set == set)
        .filter_map(|r| by_id.get(&r.image_id).map(|s| ScanItem::from_cohort(s)))
        .collect()
}

/// The fold's z-score: the saved one when it was fitted on exactly the expected scans and lies on
/// the model grid, else fitted anew on the training scans and saved.
fn fold_normalizer(spec: &RunSpec, train: &[ScanItem], dir: &Path) -> Result<Normalizer, TrainError> {
    let ids: Vec<i64> = train.iter().map(|s| s.image_id).collect();
    let expected = select_fit_scans(&ids, spec.normalization_max_scans, spec.normalization_seed);
    if dir.join(NORM_META_FILE).is_file()
        && let Ok(saved) = Normalizer::load(dir)
        && saved.image_ids == expected
        && saved.grid().shape == spec.source.model_grid().shape
        && saved.mask.is_some() == spec.source.model_mask.is_some()
    {
        return Ok(saved);
    }
    let norm = spec.source.fit_normalizer(train, spec.normalization_max_scans, spec.normalization_seed)?;
    norm.save(dir)?;
    Ok(norm)
}

/// The model's predictions on `data`, in inference mode (running statistics, no dropout).
pub fn predict<B: Backend>(
    model: &ClassificationModel3D<B>,
    data: NormalizedScans<'_>,
    batch_size: usize,
    device: &B::Device,
) -> Result<Vec<Prediction>, TrainError> {
    let mut out = Vec::with_capacity(data.len());
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let batch = data.batch(chunk)?;
        let labels = batch.labels.clone();
        let (x, _) = batch.into_tensors::<B>(device);
        model.check_input(x.dims())?;
        let logits = model.forward_eval(x);
        out.extend(logits_to_predictions(logits.into_data(), &labels)?);
    }
    Ok(out)
}

fn logits_to_predictions(data: burn::tensor::TensorData, labels: &[u8]) -> Result<Vec<Prediction>, TrainError> {
    let values: Vec<f32> = data
        .convert::<f32>()
        .to_vec()
        .map_err(|e| TrainError::Run(format!("cannot read the network's output: {e:?}")))?;
    if values.len() != 2 * labels.len() {
        return Err(TrainError::Run(format!(
            "the network gave {} outputs for {} scans, expected 2 logits per scan",
            values.len(),
            labels.len()
        )));
    }
    Ok(labels
        .iter()
        .enumerate()
        .map(|(i, &l)| Prediction::from_logits(l, [values[2 * i], values[2 * i + 1]]))
        .collect())
}

/// Trains fold `index` of the run; `Ok(false)` when it was already finished.
fn train_fold<B: AutodiffBackend>(
    spec: &RunSpec,
    index: usize,
    options: &TrainOptions,
    device: &B::Device,
    progress: &(dyn Fn(&TrainEvent<'_>) + Sync),
    steps: &mut usize,
) -> Result<bool, TrainError> {
    let split = &spec.splits[index];
    let name = split.name.as_str();
    let t = &spec.train;
    let settings = fold_settings(spec, split)?;
    let dir = fold_dir(&spec.dir, name);
    let result_path = dir.join(FOLD_RESULT_FILE);
    if result_path.is_file() {
        let done: FoldResult = read_json(&result_path)?;
        check_same_settings(&done.settings, &settings, &result_path)?;
        progress(&TrainEvent::FoldSkipped { split: name, fold: index + 1 });
        return Ok(false);
    }
    let ckpt_dir = dir.join(CHECKPOINT_DIR);
    let state_path = ckpt_dir.join(STATE_FILE);
    let state: Option<CheckpointState> = if state_path.is_file() {
        let state: CheckpointState = read_json(&state_path)?;
        check_same_settings(&state.settings, &settings, &state_path)?;
        if !options.resume {
            return Err(TrainError::Run(format!(
                "fold `{name}` was interrupted after epoch {} of {} ({}); pass --resume to continue it, \
                 or delete that folder to start it again",
                state.epochs_done,
                t.epochs,
                ckpt_dir.display()
            )));
        }
        Some(state)
    } else {
        None
    };

    // The sets: keep = best moves a patient-level share of the training patients to validation.
    let split = if t.keep == KeepEpoch::Best {
        let seed = derive_seed(t.seed, name, "validation", 0, 0);
        inner_validation_split(split, &spec.cohort.scans, t.validation_fraction, seed)
            .map_err(|e| TrainError::Split { split: name.to_owned(), message: e.to_string() })?
    } else {
        split.clone()
    };
    let train_items = items(spec, &split, SplitSet::Train);
    let val_items = items(spec, &split, SplitSet::Validation);
    let test_items = items(spec, &split, SplitSet::Test);
    let norm = fold_normalizer(spec, &train_items, &dir.join("normalization"))?;
    let data = |scans| NormalizedScans { source: &spec.source, normalizer: &norm, scans };
    let (train_data, val_data, test_data) = (data(&train_items), data(&val_items), data(&test_items));
    let grid = spec.source.model_grid().shape;

    B::seed(device, derive_seed(t.seed, name, "init", 0, 0));
    let mut model = spec.network.init::<B>(grid, device)?;
    let mut optim = AdamConfig::new()
        .with_beta_1(t.adam_beta1 as f32)
        .with_beta_2(t.adam_beta2 as f32)
        .with_epsilon(t.adam_epsilon as f32)
        .with_weight_decay((t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32)))
        .init::<B, ClassificationModel3D<B>>();
    let (mut history, mut best, first) = match &state {
        Some(s) => {
            model = model.load_record(load_record::<B, _>(&ckpt_dir.join(&s.model_file), device)?);
            optim = optim.load_record(load_record::<B, _>(&ckpt_dir.join(&s.optimizer_file), device)?);
            (s.history.clone(), s.best, s.epochs_done)
        }
        None => (Vec::new(), None, 0),
    };
    let mut best_file = state.as_ref().and_then(|s| s.best_model_file.clone());
    let batches = train_items.len().div_ceil(t.batch_size);
    progress(&TrainEvent::FoldStarted {
        split: name,
        fold: index + 1,
        folds: spec.splits.len(),
        first_epoch: first + 1,
        epochs: t.epochs,
        batches,
        train_scans: train_items.len(),
        validation_scans: val_items.len(),
        test_scans: test_items.len(),
    });
    let loss_fn = CrossEntropyLossConfig::new().init::<B>(device);
    let augmentation = t.augmentation();
    // Predictions made in this call of the last and of the best epoch, reused for the kept model
    // (evaluating the same weights on the same scans again would give the same numbers).
    let mut last_evaluated: Option<Evaluated> = None;
    let mut best_evaluated: Option<Evaluated> = None;

    for epoch in first + 1..=t.epochs {
        let started = Instant::now();
        let e = epoch as u64;
        let mut order: Vec<usize> = (0..train_items.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(t.seed, name, "shuffle", e, 0)));
        let mut train_preds = Vec::with_capacity(order.len());
        for (b, chunk) in order.chunks(t.batch_size).enumerate() {
            let mut batch = train_data.batch(chunk)?;
            augmentation.apply(&mut batch, derive_seed(t.seed, name, "augment", e, b as u64));
            let labels = batch.labels.clone();
            let (x, y) = batch.into_tensors::<B>(device);
            model.check_input(x.dims())?;
            B::seed(device, derive_seed(t.seed, name, "dropout", e, b as u64));
            let logits = model.forward_train(x);
            let loss = loss_fn.forward(logits.clone(), y);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(t.learning_rate, model, grads);
            train_preds.extend(logits_to_predictions(logits.into_data(), &labels)?);
            *steps += 1;
            let running_loss = train_preds.iter().map(|p| p.loss).sum::<f64>() / train_preds.len() as f64;
            progress(&TrainEvent::BatchDone { split: name, epoch, batch: b + 1, batches, running_loss });
            if options.stop_after_batches.is_some_and(|n| *steps >= n) {
                return Err(TrainError::Stopped { batches: *steps });
            }
        }
        let eval_model = model.valid();
        let evaluate = |set: SplitSet, data: NormalizedScans<'_>| -> Result<Vec<Prediction>, TrainError> {
            progress(&TrainEvent::Evaluating { split: name, epoch, set, scans: data.len() });
            predict(&eval_model, data, t.eval_batch_size, device)
        };
        let val_preds = if val_data.is_empty() { None } else { Some(evaluate(SplitSet::Validation, val_data)?) };
        let test_preds = if t.evaluate_test_each_epoch { Some(evaluate(SplitSet::Test, test_data)?) } else { None };
        let metrics = |p: &Option<Vec<Prediction>>| p.as_deref().map(BinaryMetrics::from_predictions);
        let (validation, test) = (metrics(&val_preds), metrics(&test_preds));
        let record = EpochRecord {
            epoch,
            train: BinaryMetrics::from_predictions(&train_preds),
            validation,
            test,
            seconds: started.elapsed().as_secs_f64(),
        };
        let evaluated = Evaluated { epoch, validation: val_preds, test: test_preds };

        // Checkpoint: records first, the index last, then the previous epoch's records go.
        std::fs::create_dir_all(&ckpt_dir).map_err(|e| TrainError::Io { path: ckpt_dir.clone(), source: e })?;
        if let Some(v) = &record.validation {
            let score = t.selection_metric.score(v);
            let better = match best {
                None => true,
                Some(b) => score > b.score || (b.score.is_nan() && !score.is_nan()),
            };
            if better {
                best = Some(BestEpoch { epoch, score });
                best_evaluated = Some(evaluated.clone());
                let file = best_model_file(epoch);
                save_record::<B, _>(model.clone().into_record(), &ckpt_dir.join(&file))?;
                best_file = Some(file);
            }
        }
        let (mfile, ofile) = (model_file(epoch), optimizer_file(epoch));
        save_record::<B, _>(model.clone().into_record(), &ckpt_dir.join(&mfile))?;
        save_record::<B, _>(optim.to_record(), &ckpt_dir.join(&ofile))?;
        history.push(record);
        last_evaluated = Some(evaluated);
        let state = CheckpointState {
            settings: settings.clone(),
            epochs_done: epoch,
            history: history.clone(),
            best,
            model_file: mfile.clone(),
            optimizer_file: ofile.clone(),
            best_model_file: best_file.clone(),
        };
        write_json(&state_path, &state)?;
        let mut keep = vec![STATE_FILE, mfile.as_str(), ofile.as_str()];
        if let Some(f) = &best_file {
            keep.push(f);
        }
        prune(&ckpt_dir, &keep);
        write_epoch_csv(&dir.join("metrics_epochs.csv"), name, &history)?;
        progress(&TrainEvent::EpochDone { split: name, epochs: t.epochs, record: history.last().expect("pushed") });
    }

    // The kept model, evaluated once more on every held-out set for its predictions.
    let kept_epoch = match (t.keep, best, &best_file) {
        (KeepEpoch::Best, Some(b), Some(file)) => {
            model = model.load_record(load_record::<B, _>(&ckpt_dir.join(file), device)?);
            b.epoch
        }
        _ => t.epochs,
    };
    let cached = [last_evaluated, best_evaluated].into_iter().flatten().find(|e| e.epoch == kept_epoch);
    let (mut cached_val, mut cached_test) = match cached {
        Some(e) => (e.validation, e.test),
        None => (None, None),
    };
    let eval_model = model.valid();
    let mut predictions = Vec::new();
    let mut final_metrics = |set: SplitSet,
                             data: NormalizedScans<'_>,
                             cached: Option<Vec<Prediction>>|
     -> Result<BinaryMetrics, TrainError> {
        let preds = match cached {
            Some(p) => p,
            None => {
                progress(&TrainEvent::Evaluating { split: name, epoch: kept_epoch, set, scans: data.len() });
                predict(&eval_model, data, t.eval_batch_size, device)?
            }
        };
        predictions.extend(data.scans.iter().zip(&preds).map(|(s, p)| ScanPrediction {
            image_id: s.image_id,
            ptid: s.ptid.clone(),
            set: set.as_str().to_owned(),
            prediction: *p,
        }));
        Ok(BinaryMetrics::from_predictions(&preds))
    };
    let test = final_metrics(SplitSet::Test, test_data, cached_test.take())?;
    let validation = if val_data.is_empty() {
        None
    } else {
        Some(final_metrics(SplitSet::Validation, val_data, cached_val.take())?)
    };
    export_safetensors(&eval_model, &dir.join(MODEL_FILE))?;
    write_json(&dir.join("network.json"), &NetworkRecord { network: spec.network.clone(), input_grid: grid })?;
    write_fold_predictions(&dir.join("predictions.csv"), name, &predictions)?;
    let result = FoldResult {
        split: name.to_owned(),
        settings,
        device: format!("{device:?}"),
        kept_epoch,
        history,
        scans: [train_items.len(), val_items.len(), test_items.len()],
        validation,
        test,
        predictions,
    };
    write_json(&result_path, &result)?;
    let _ = std::fs::remove_dir_all(&ckpt_dir);
    progress(&TrainEvent::FoldDone { split: name, result: &result });
    Ok(true)
}

/// Held-out predictions of one epoch's model.
#[derive(Debug, Clone)]
struct Evaluated {
    epoch: usize,
    validation: Option<Vec<Prediction>>,
    test: Option<Vec<Prediction>>,
}

/// The kept model of a fold: safetensors with the PyTorch state-dict keys
/// ([`crate::weights::export_safetensors`]).
pub const MODEL_FILE: &str = "model.safetensors";

/// `network.json`: the architecture and input grid of a fold's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// The architecture.
    pub network: NetworkConfig,
    /// The input grid `[D, H, W]`.
    pub input_grid: [usize; 3],
}

/// Loads a fold's kept model (`folds/<split>/model.safetensors`, architecture from its
/// `network.json`).
pub fn load_fold_model<B: Backend>(
    fold_dir: &Path,
    device: &B::Device,
) -> Result<ClassificationModel3D<B>, TrainError> {
    let net: NetworkRecord = read_json(&fold_dir.join("network.json"))?;
    let model = import_safetensors::<B>(&fold_dir.join(MODEL_FILE), &net.network, device)?;
    if model.input_shape() != net.input_grid {
        return Err(TrainError::Checkpoint {
            path: fold_dir.join(MODEL_FILE),
            message: format!(
                "the weights are for grid {:?}, network.json says {:?}",
                model.input_shape(),
                net.input_grid
            ),
        });
    }
    Ok(model)
}

fn check_same_settings(found: &str, expected: &str, path: &Path) -> Result<(), TrainError> {
    if found == expected {
        return Ok(());
    }
    let (f, e): (serde_json::Value, serde_json::Value) =
        (serde_json::from_str(found).unwrap_or_default(), serde_json::from_str(expected).unwrap_or_default());
    let differing: Vec<String> = match (f.as_object(), e.as_object()) {
        (Some(f), Some(e)) => e.keys().filter(|k| f.get(*k) != e.get(*k)).cloned().collect(),
        _ => vec![],
    };
    Err(TrainError::Run(format!(
        "{} was written with other settings (differing: {}); use another [run] name, or delete the fold folder to retrain",
        path.display(),
        if differing.is_empty() { "unknown".to_owned() } else { differing.join(", ") }
    )))
}

/// Adds `<prefix>_<metric>` columns for `metrics` (NaN where absent).
fn metric_columns(cols: &mut Vec<Column>, prefix: &str, metrics: &[Option<BinaryMetrics>]) {
    cols.push(Column::new(
        format!("{prefix}_n").into(),
        metrics.iter().map(|m| m.map_or(0, |m| m.n as i64)).collect::<Vec<i64>>(),
    ));
    for (k, name) in METRIC_NAMES.iter().enumerate() {
        let values: Vec<f64> = metrics.iter().map(|m| m.map_or(f64::NAN, |m| m.values()[k])).collect();
        cols.push(Column::new(format!("{prefix}_{name}").into(), values));
    }
}

fn epoch_frame(rows: &[(&str, &EpochRecord)]) -> Result<DataFrame, TrainError> {
    let mut cols = vec![
        Column::new("split".into(), rows.iter().map(|(s, _)| *s).collect::<Vec<&str>>()),
        Column::new("epoch".into(), rows.iter().map(|(_, r)| r.epoch as i64).collect::<Vec<i64>>()),
    ];
    metric_columns(&mut cols, "train", &rows.iter().map(|(_, r)| Some(r.train)).collect::<Vec<_>>());
    if rows.iter().any(|(_, r)| r.validation.is_some()) {
        metric_columns(&mut cols, "validation", &rows.iter().map(|(_, r)| r.validation).collect::<Vec<_>>());
    }
    if rows.iter().any(|(_, r)| r.test.is_some()) {
        metric_columns(&mut cols, "test", &rows.iter().map(|(_, r)| r.test).collect::<Vec<_>>());
    }
    Ok(DataFrame::new(rows.len(), cols)?)
}

fn write_epoch_csv(path: &Path, split: &str, history: &[EpochRecord]) -> Result<(), TrainError> {
    let rows: Vec<(&str, &EpochRecord)> = history.iter().map(|r| (split, r)).collect();
    Ok(write_csv_atomically(path, &mut epoch_frame(&rows)?)?)
}

fn predictions_frame(rows: &[(&str, &ScanPrediction)]) -> Result<DataFrame, TrainError> {
    let p = |f: fn(&ScanPrediction) -> f64| rows.iter().map(|(_, r)| f(r)).collect::<Vec<f64>>();
    Ok(DataFrame::new(
        rows.len(),
        vec![
            Column::new("PTID".into(), rows.iter().map(|(_, r)| r.ptid.as_str()).collect::<Vec<&str>>()),
            Column::new("Image.ID".into(), rows.iter().map(|(_, r)| r.image_id).collect::<Vec<i64>>()),
            Column::new("fold".into(), rows.iter().map(|(s, _)| *s).collect::<Vec<&str>>()),
            Column::new("set".into(), rows.iter().map(|(_, r)| r.set.as_str()).collect::<Vec<&str>>()),
            Column::new(
                "true_label".into(),
                rows.iter().map(|(_, r)| i32::from(r.prediction.label)).collect::<Vec<i32>>(),
            ),
            Column::new("p_ad".into(), p(|r| r.prediction.p_ad)),
            Column::new(
                "predicted_label".into(),
                rows.iter().map(|(_, r)| i32::from(r.prediction.predicted)).collect::<Vec<i32>>(),
            ),
            Column::new("loss".into(), p(|r| r.prediction.loss)),
        ],
    )?)
}

fn write_fold_predictions(path: &Path, split: &str, preds: &[ScanPrediction]) -> Result<(), TrainError> {
    let rows: Vec<(&str, &ScanPrediction)> = preds.iter().map(|r| (split, r)).collect();
    Ok(write_csv_atomically(path, &mut predictions_frame(&rows)?)?)
}

/// Reads every fold's `fold_result.json` (each must exist and match the run's settings) and
/// writes the run-level tables and summary (see the module documentation). Returns the summary.
pub fn merge_run(spec: &RunSpec) -> Result<RunSummary, TrainError> {
    let t = &spec.train;
    let mut results = Vec::with_capacity(spec.splits.len());
    for split in &spec.splits {
        let path = fold_dir(&spec.dir, &split.name).join(FOLD_RESULT_FILE);
        if !path.is_file() {
            return Err(TrainError::Run(format!(
                "cannot merge: fold `{}` is not finished ({} missing)",
                split.name,
                path.display()
            )));
        }
        let r: FoldResult = read_json(&path)?;
        check_same_settings(&r.settings, &fold_settings(spec, split)?, &path)?;
        results.push(r);
    }
    let dir = &spec.dir;

    // Per-epoch metrics of all folds.
    let epoch_rows: Vec<(&str, &EpochRecord)> =
        results.iter().flat_map(|r| r.history.iter().map(move |h| (r.split.as_str(), h))).collect();
    write_csv_atomically(&dir.join("metrics_epochs.csv"), &mut epoch_frame(&epoch_rows)?)?;

    // Per-fold final metrics.
    let mut cols = vec![
        Column::new("split".into(), results.iter().map(|r| r.split.as_str()).collect::<Vec<&str>>()),
        Column::new("kept_epoch".into(), results.iter().map(|r| r.kept_epoch as i64).collect::<Vec<i64>>()),
        Column::new("train_scans".into(), results.iter().map(|r| r.scans[0] as i64).collect::<Vec<i64>>()),
    ];
    metric_columns(&mut cols, "test", &results.iter().map(|r| Some(r.test)).collect::<Vec<_>>());
    if results.iter().any(|r| r.validation.is_some()) {
        metric_columns(&mut cols, "validation", &results.iter().map(|r| r.validation).collect::<Vec<_>>());
    }
    write_csv_atomically(&dir.join("metrics_folds.csv"), &mut DataFrame::new(results.len(), cols)?)?;

    // Timing (kept apart so that the metric tables of identical runs are identical files).
    let timing: Vec<(&str, usize, f64)> =
        results.iter().flat_map(|r| r.history.iter().map(move |h| (r.split.as_str(), h.epoch, h.seconds))).collect();
    let mut timing_df = DataFrame::new(
        timing.len(),
        vec![
            Column::new("split".into(), timing.iter().map(|x| x.0).collect::<Vec<&str>>()),
            Column::new("epoch".into(), timing.iter().map(|x| x.1 as i64).collect::<Vec<i64>>()),
            Column::new("seconds".into(), timing.iter().map(|x| x.2).collect::<Vec<f64>>()),
        ],
    )?;
    write_csv_atomically(&dir.join("timing.csv"), &mut timing_df)?;

    // Predictions on the test sets, joined with the cohort metadata.
    let test_rows: Vec<(&str, &ScanPrediction)> = results
        .iter()
        .flat_map(|r| r.predictions.iter().filter(|p| p.set == "test").map(move |p| (r.split.as_str(), p)))
        .collect();
    let mut joined = join_metadata(&predictions_frame(&test_rows)?, &spec.cohort)?;
    write_csv_atomically(&dir.join("predictions.csv"), &mut joined)?;

    // Summary: mean ± SD over folds, pooled out-of-fold metrics, patient bootstrap CI.
    let pooled_preds: Vec<Prediction> = test_rows.iter().map(|(_, p)| p.prediction).collect();
    let clusters: Vec<String> = test_rows.iter().map(|(_, p)| p.ptid.clone()).collect();
    let pooled = BinaryMetrics::from_predictions(&pooled_preds);
    let boot_seed = derive_seed(t.seed, "", "bootstrap", 0, 0);
    let intervals = bootstrap_intervals(&pooled_preds, &clusters, t.bootstrap_samples, t.confidence_level, boot_seed);
    let rows: Vec<SummaryRow> = METRIC_NAMES
        .iter()
        .enumerate()
        .map(|(k, &metric)| {
            let per_fold: Vec<f64> = results.iter().map(|r| r.test.values()[k]).collect();
            let (mean, sd, folds) = mean_sd(&per_fold);
            SummaryRow {
                metric,
                mean,
                sd,
                folds,
                pooled: pooled.values()[k],
                ci_low: intervals[k].low,
                ci_high: intervals[k].high,
                ci_resamples: intervals[k].valid_resamples,
            }
        })
        .collect();
    let mut summary_df = DataFrame::new(
        rows.len(),
        vec![
            Column::new("metric".into(), rows.iter().map(|r| r.metric).collect::<Vec<&str>>()),
            Column::new("mean".into(), rows.iter().map(|r| r.mean).collect::<Vec<f64>>()),
            Column::new("sd".into(), rows.iter().map(|r| r.sd).collect::<Vec<f64>>()),
            Column::new("folds".into(), rows.iter().map(|r| r.folds as i64).collect::<Vec<i64>>()),
            Column::new("pooled".into(), rows.iter().map(|r| r.pooled).collect::<Vec<f64>>()),
            Column::new("ci_low".into(), rows.iter().map(|r| r.ci_low).collect::<Vec<f64>>()),
            Column::new("ci_high".into(), rows.iter().map(|r| r.ci_high).collect::<Vec<f64>>()),
            Column::new("ci_resamples".into(), rows.iter().map(|r| r.ci_resamples as i64).collect::<Vec<i64>>()),
        ],
    )?;
    write_csv_atomically(&dir.join("summary.csv"), &mut summary_df)?;
    let folds: Vec<(String, usize, BinaryMetrics)> =
        results.iter().map(|r| (r.split.clone(), r.kept_epoch, r.test)).collect();
    let markdown = summary_markdown(spec, &results, &rows, pooled.n, clusters_count(&clusters));
    write_bytes_atomically(&dir.join("summary.md"), markdown.as_bytes())?;
    Ok(RunSummary { rows, folds, markdown })
}

fn clusters_count(clusters: &[String]) -> usize {
    clusters.iter().collect::<std::collections::BTreeSet<_>>().len()
}

/// `preds` (with `Image.ID`, `true_label`) left-joined with the cohort's scan table; the
/// cohort's `label` must agree with `true_label` and is dropped.
fn join_metadata(preds: &DataFrame, cohort: &Cohort) -> Result<DataFrame, TrainError> {
    let meta = cohort.scans_dataframe()?.drop("PTID")?;
    let mut args = JoinArgs::new(JoinType::Left);
    args.maintain_order = MaintainOrderJoin::Left;
    let joined = preds.join(&meta, ["Image.ID"], ["Image.ID"], args, None)?;
    let truth = joined.column("true_label")?.i32()?;
    let label = joined.column("label")?.i32()?;
    if let Some(i) = (0..joined.height()).find(|&i| truth.get(i) != label.get(i)) {
        return Err(TrainError::Run(format!(
            "prediction row {} (Image.ID {:?}): the label differs from the cohort's; the cohort changed since training",
            i + 1,
            joined.column("Image.ID")?.i64()?.get(i)
        )));
    }
    Ok(joined.drop("label")?)
}

fn fmt_num(v: f64) -> String {
    if v.is_finite() { format!("{v:.3}") } else { "n/a".into() }
}

fn summary_markdown(
    spec: &RunSpec,
    results: &[FoldResult],
    rows: &[SummaryRow],
    pooled_n: usize,
    patients: usize,
) -> String {
    let t = &spec.train;
    let mut md = String::new();
    let run = spec.dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let _ = writeln!(md, "# Training summary: `{run}`\n");
    let mode = match t.mode {
        TrainMode::Kfold => {
            format!("{}-fold cross-validation over patients (stratified by diagnosis, seeded)", spec.splits.len())
        }
        TrainMode::Holdout => "hold-out split (test patients held out, the rest trains)".to_owned(),
    };
    let keep = match t.keep {
        KeepEpoch::Last => format!("the model after the last epoch ({}), as in the paper", t.epochs),
        KeepEpoch::Best => format!(
            "the epoch with the best validation {} on an inner patient-level validation split \
             ({:.0} % of each class's training patients; never the test set)",
            t.selection_metric.as_str(),
            100.0 * t.validation_fraction
        ),
    };
    let grid = spec.source.model_grid().shape;
    let _ = writeln!(md, "- Mode: {mode}.");
    let _ = writeln!(md, "- Kept model: {keep}.");
    let _ = writeln!(
        md,
        "- Training: {} epochs, batch {}, Adam lr {} (β {}, {}; ε {}; weight decay {}), dropout {} on the flatten, \
         cross-entropy, {}, seed {}; input grid {}×{}×{} (downsampling {}).",
        t.epochs,
        t.batch_size,
        t.learning_rate,
        t.adam_beta1,
        t.adam_beta2,
        t.adam_epsilon,
        t.weight_decay,
        spec.network.dropout,
        augmentation_words(&t.augmentation()),
        t.seed,
        grid[0],
        grid[1],
        grid[2],
        spec.source.spec.downsample
    );
    let _ = writeln!(
        md,
        "- Metrics are those of each fold's kept model on that fold's test scans. `roc_auc` is the ROC AUC of \
         P(AD) (Mann–Whitney, ties ½); `auc_argmax_paper` is the original study's \"AUC\" computed on argmax \
         labels, which equals the balanced accuracy.\n"
    );
    let level = 100.0 * t.confidence_level;
    let _ = writeln!(md, "| metric | mean ± SD over folds | pooled test scans | {level:.0} % CI (bootstrap) |");
    let _ = writeln!(md, "|---|---|---|---|");
    for r in rows {
        let sd = if r.sd.is_finite() { format!(" ± {:.3}", r.sd) } else { String::new() };
        let ci = if r.ci_low.is_finite() {
            format!("{} – {}", fmt_num(r.ci_low), fmt_num(r.ci_high))
        } else {
            "n/a".into()
        };
        let _ = writeln!(md, "| {} | {}{sd} | {} | {ci} |", r.metric, fmt_num(r.mean), fmt_num(r.pooled));
    }
    let _ = writeln!(
        md,
        "\nSD: sample standard deviation over {} fold(s). Pooled: the metric on all folds' test predictions \
         together ({pooled_n} scans of {patients} patients). CI: percentile bootstrap of the pooled metric, \
         {} resamples of **patients** (a patient's scans stay together), seed derived from {}.\n",
        results.len(),
        t.bootstrap_samples,
        t.seed
    );
    let _ = writeln!(
        md,
        "| fold | kept epoch | train scans | test scans | accuracy | balanced accuracy | ROC AUC | sensitivity | specificity |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let m = &r.test;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.split,
            r.kept_epoch,
            r.scans[0],
            m.n,
            fmt_num(m.accuracy),
            fmt_num(m.balanced_accuracy),
            fmt_num(m.roc_auc),
            fmt_num(m.sensitivity),
            fmt_num(m.specificity)
        );
    }
    md
}

/// The per-epoch metrics of a finished or interrupted fold, read from its files (for reports).
pub fn fold_history(run_dir: &Path, split: &str) -> Result<Vec<EpochRecord>, TrainError> {
    let dir = fold_dir(run_dir, split);
    let done = dir.join(FOLD_RESULT_FILE);
    if done.is_file() {
        return Ok(read_json::<FoldResult>(&done)?.history);
    }
    let state = dir.join(CHECKPOINT_DIR).join(STATE_FILE);
    if state.is_file() {
        return Ok(read_json::<CheckpointState>(&state)?.history);
    }
    Ok(Vec::new())
}
