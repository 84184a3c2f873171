//! A run: its inputs, the checks made before anything is trained, and the loop over its folds.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::FastAutodiffBackend;
use adni_data::cohort::Cohort;
use adni_data::run_layout::RunLayout;
use adni_data::splits::{Split, SplitSet, check_no_leakage, write_split_csv};
use adni_data::table::Diagnosis;

use super::fold::train_fold;
use super::merge::{RunSummary, merge_run};
use super::records::{EpochRecord, FoldResult};
use super::{TrainConfig, TrainError};
use crate::NetworkConfig;
use crate::data::VolumeSource;

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

/// Burn's CPU random generator is process-wide: one run at a time per process.
static RUN_LOCK: Mutex<()> = Mutex::new(());

/// Checks the splits against the cohort: no leakage, every scan known, non-empty train and test
/// sets, distinct names.
pub fn check_splits(spec: &RunSpec) -> Result<(), TrainError> {
    if spec.splits.is_empty() {
        return Err(TrainError::Run("the run has no split to train".into()));
    }
    let known: HashMap<i64, &str> =
        spec.cohort.scans.iter().map(|s| (s.record.image_id, s.record.ptid.as_str())).collect();
    // The classifier tells AD (Dementia) from CN: any other diagnosis would be trained and scored
    // as CN (the label is "is Dementia").
    let used: std::collections::HashSet<i64> =
        spec.splits.iter().flat_map(|s| s.rows.iter().map(|r| r.image_id)).collect();
    if let Some(s) = spec
        .cohort
        .scans
        .iter()
        .find(|s| used.contains(&s.record.image_id) && !matches!(s.record.dx, Diagnosis::CN | Diagnosis::Dementia))
    {
        return Err(TrainError::Run(format!(
            "scan {} (Image.ID {}) has diagnosis {}, but the network tells AD (Dementia) from CN and would \
             train and score it as CN; keep only CN and Dementia scans in the cohort ([data] diagnoses)",
            s.record.ptid,
            s.record.image_id,
            s.record.dx.as_str()
        )));
    }
    let label: HashMap<i64, u8> = spec.cohort.scans.iter().map(|s| (s.record.image_id, s.label)).collect();
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
            let classes: std::collections::BTreeSet<u8> =
                split.rows.iter().filter(|r| r.set == set).filter_map(|r| label.get(&r.image_id).copied()).collect();
            if classes.len() < 2 {
                let only = if classes.contains(&1) { "AD" } else { "CN" };
                return Err(err(format!(
                    "the {set} set holds only {only} scans; expected both AD and CN (a model trained, or scored, \
                     on one class says nothing about telling them apart)"
                )));
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
pub fn train_run<B: FastAutodiffBackend>(
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
        write_split_csv(&RunLayout::new(&spec.dir).split_csv(&split.name), split)?;
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
        .filter(|s| !RunLayout::new(&spec.dir).fold(&s.name).is_finished())
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
