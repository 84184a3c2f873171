//! The JSON documents of a fold (`fold_result.json`, `checkpoint/state.json`, `network.json`)
//! and the settings string they carry, compared on resume and merge.

use std::path::Path;

use adni_data::splits::Split;
use serde::{Deserialize, Serialize};

use super::{KeepEpoch, RunSpec, SelectionMetric, TrainError, TrainMode};
use crate::NetworkConfig;
use crate::data::Augmentation;
use crate::metrics::{BinaryMetrics, Prediction, nan_as_null};

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
    /// Of which the training loop (0 in records written before it was kept).
    #[serde(default)]
    pub train_seconds: f64,
    /// Of which the training steps themselves: forward, backward, optimiser.
    #[serde(default)]
    pub step_seconds: f64,
    /// Of which waiting for the next batch to be read (the batches are read one ahead, on
    /// another thread, while the current step trains).
    #[serde(default)]
    pub data_wait_seconds: f64,
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
pub(super) struct CheckpointState {
    pub(super) settings: String,
    pub(super) epochs_done: usize,
    pub(super) history: Vec<EpochRecord>,
    pub(super) best: Option<BestEpoch>,
    pub(super) model_file: String,
    pub(super) optimizer_file: String,
    pub(super) best_model_file: Option<String>,
}

/// `network.json`: the architecture and input grid of a fold's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// The architecture.
    pub network: NetworkConfig,
    /// The input grid `[D, H, W]`.
    pub input_grid: [usize; 3],
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
    /// What the split's scans hold: a sha256 over each row's Image.ID, label and the sha256 of
    /// its image file ([`data_fingerprint`]), so a fold trained on other images or labels under
    /// the same Image.IDs (a regenerated cohort, re-registered scans, a corrected diagnosis, the
    /// sanity check's shuffled labels) is not taken for this one.
    data: String,
}

/// The fingerprint of the data a split trains and tests on: a sha256 over its rows, in order,
/// of `Image.ID,label,sha256 of the image file`.
fn data_fingerprint(spec: &RunSpec, split: &Split) -> Result<String, TrainError> {
    use sha2::{Digest, Sha256};
    let by_id: std::collections::HashMap<i64, &adni_data::cohort::CohortScan> =
        spec.cohort.scans.iter().map(|s| (s.record.image_id, s)).collect();
    // The files are read in parallel (a 1 mm ADNI cohort is several GB), then hashed in row order.
    use rayon::prelude::*;
    let lines: Vec<String> = split
        .rows
        .par_iter()
        .map(|row| {
            let scan = by_id.get(&row.image_id).ok_or_else(|| TrainError::Split {
                split: split.name.clone(),
                message: format!("Image.ID {} is not in the cohort", row.image_id),
            })?;
            let file = adni_data::fsutil::content_digest(&scan.path)?;
            Ok(format!("{},{},{file}\n", row.image_id, scan.label))
        })
        .collect::<Result<_, TrainError>>()?;
    let mut hasher = Sha256::new();
    lines.iter().for_each(|l| hasher.update(l.as_bytes()));
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

pub(super) fn fold_settings(spec: &RunSpec, split: &Split) -> Result<String, TrainError> {
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
        data: data_fingerprint(spec, split)?,
    };
    serde_json::to_string(&s).map_err(|e| TrainError::Run(format!("cannot encode the fold settings: {e}")))
}

pub(super) fn check_same_settings(found: &str, expected: &str, path: &Path) -> Result<(), TrainError> {
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
