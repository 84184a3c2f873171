//! `[train]`: the settings of a run and their checks.

use serde::{Deserialize, Serialize};

use super::TrainError;
use crate::DeviceKind;
use crate::data::Augmentation;
use crate::metrics::BinaryMetrics;

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
    pub(super) fn score(self, m: &BinaryMetrics) -> f64 {
        match self {
            SelectionMetric::Loss => -m.loss,
            SelectionMetric::BalancedAccuracy => m.balanced_accuracy,
            SelectionMetric::RocAuc => m.roc_auc,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
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
    /// `cpu` (default), `cuda` (the first GPU) or `cuda:N` (GPU number N); `--device` overrides it.
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
