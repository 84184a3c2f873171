//! Classification metrics for AD (positive, label 1) versus CN (label 0), their summary over
//! folds, and a seeded, patient-level bootstrap confidence interval.
//!
//! Two "AUC"s are kept apart on purpose. [`roc_auc`] is the real ROC AUC, computed from the AD
//! probability as the Mann–Whitney statistic (a tie between an AD and a CN score counts ½).
//! The original study computed `roc_auc_score` on **argmax labels**; that number is kept as
//! `auc_argmax_paper` and always equals the balanced accuracy (a test checks it).
//!
//! Everything here is plain `f64` arithmetic, independent of Burn, so the numbers can be checked
//! by hand.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The model's output on one scan, reduced to what the metrics need.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// True label: 1 = AD, 0 = CN.
    pub label: u8,
    /// Softmax probability of AD (class 1).
    pub p_ad: f64,
    /// Predicted label: the argmax of the two logits (a tie goes to CN, the first index, as
    /// `torch.argmax` does).
    pub predicted: u8,
    /// Cross-entropy of this scan: `−log softmax(logits)[label]`.
    pub loss: f64,
}

impl Prediction {
    /// From the two logits `[CN, AD]`, computed in `f64` (log-sum-exp, so no overflow).
    pub fn from_logits(label: u8, logits: [f32; 2]) -> Prediction {
        let (l0, l1) = (f64::from(logits[0]), f64::from(logits[1]));
        let m = l0.max(l1);
        let lse = m + ((l0 - m).exp() + (l1 - m).exp()).ln();
        let p_ad = (l1 - lse).exp();
        let own = if label == 1 { l1 } else { l0 };
        Prediction { label, p_ad, predicted: u8::from(l1 > l0), loss: lse - own }
    }
}

/// The metrics of one set of predictions. A value that is undefined (e.g. sensitivity without
/// AD scans, ROC AUC with one class only, anything on an empty set) is NaN.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    /// Number of scans.
    pub n: usize,
    /// Mean cross-entropy.
    #[serde(with = "nan_as_null")]
    pub loss: f64,
    /// Share of correct argmax predictions.
    #[serde(with = "nan_as_null")]
    pub accuracy: f64,
    /// Mean of sensitivity and specificity.
    #[serde(with = "nan_as_null")]
    pub balanced_accuracy: f64,
    /// ROC AUC of the AD probability (Mann–Whitney, ties ½).
    #[serde(with = "nan_as_null")]
    pub roc_auc: f64,
    /// The original study's "AUC": ROC AUC of the argmax labels; equals the balanced accuracy.
    #[serde(with = "nan_as_null")]
    pub auc_argmax_paper: f64,
    /// True-positive rate: AD scans predicted AD.
    #[serde(with = "nan_as_null")]
    pub sensitivity: f64,
    /// True-negative rate: CN scans predicted CN.
    #[serde(with = "nan_as_null")]
    pub specificity: f64,
}

/// The names of the metrics in [`BinaryMetrics::values`] order (also the CSV column suffixes,
/// defined with the training run's tables in [`adni_data::run_tables`]).
pub use adni_data::run_tables::METRIC_NAMES;

impl From<BinaryMetrics> for adni_data::run_tables::SetMetrics {
    fn from(m: BinaryMetrics) -> Self {
        adni_data::run_tables::SetMetrics { n: m.n, values: m.values() }
    }
}

impl BinaryMetrics {
    /// Metrics of `preds`; see [`Prediction`] for what each field holds. Every metric is NaN
    /// when any prediction's P(AD) is not finite (a diverged model), never a count of its NaN
    /// outputs as CN.
    pub fn from_predictions(preds: &[Prediction]) -> BinaryMetrics {
        let n = preds.len();
        if preds.iter().any(|p| !p.p_ad.is_finite()) {
            // A model with a non-finite output (it diverged) has no metric: its NaN outputs would
            // otherwise count as CN predictions, and a diverged model could score 0.5 or better.
            let nan = f64::NAN;
            return BinaryMetrics {
                n,
                loss: nan,
                accuracy: nan,
                balanced_accuracy: nan,
                roc_auc: nan,
                auc_argmax_paper: nan,
                sensitivity: nan,
                specificity: nan,
            };
        }
        let labels: Vec<u8> = preds.iter().map(|p| p.label).collect();
        let predicted: Vec<u8> = preds.iter().map(|p| p.predicted).collect();
        let p_ad: Vec<f64> = preds.iter().map(|p| p.p_ad).collect();
        let c = Confusion::new(&labels, &predicted);
        let loss = if n == 0 { f64::NAN } else { preds.iter().map(|p| p.loss).sum::<f64>() / n as f64 };
        let argmax_scores: Vec<f64> = predicted.iter().map(|&p| f64::from(p)).collect();
        let positive: Vec<bool> = labels.iter().map(|&l| l != 0).collect();
        BinaryMetrics {
            n,
            loss,
            accuracy: c.accuracy(),
            balanced_accuracy: c.balanced_accuracy(),
            roc_auc: roc_auc(&positive, &p_ad),
            auc_argmax_paper: roc_auc(&positive, &argmax_scores),
            sensitivity: c.sensitivity(),
            specificity: c.specificity(),
        }
    }

    /// The metric values in [`METRIC_NAMES`] order.
    pub fn values(&self) -> [f64; 7] {
        [
            self.loss,
            self.accuracy,
            self.balanced_accuracy,
            self.roc_auc,
            self.auc_argmax_paper,
            self.sensitivity,
            self.specificity,
        ]
    }
}

/// Counts of a binary confusion matrix (AD = positive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confusion {
    /// AD predicted AD.
    pub tp: usize,
    /// CN predicted CN.
    pub tn: usize,
    /// CN predicted AD.
    pub fp: usize,
    /// AD predicted CN.
    pub fn_: usize,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { f64::NAN } else { a as f64 / b as f64 }
}

impl Confusion {
    /// Counts `labels` against `predicted` (pairs beyond the shorter slice are ignored; any
    /// non-zero value means AD).
    pub fn new(labels: &[u8], predicted: &[u8]) -> Confusion {
        let mut c = Confusion::default();
        for (&l, &p) in labels.iter().zip(predicted) {
            match (l != 0, p != 0) {
                (true, true) => c.tp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fp += 1,
                (true, false) => c.fn_ += 1,
            }
        }
        c
    }

    /// `(tp + tn) / n`.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }

    /// `tp / (tp + fn)`.
    pub fn sensitivity(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// `tn / (tn + fp)`.
    pub fn specificity(&self) -> f64 {
        ratio(self.tn, self.tn + self.fp)
    }

    /// `(sensitivity + specificity) / 2`.
    pub fn balanced_accuracy(&self) -> f64 {
        (self.sensitivity() + self.specificity()) / 2.0
    }
}

pub use adni_data::stats::{mean_sd, quantile_sorted, roc_auc};

/// A percentile bootstrap interval of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    #[serde(with = "nan_as_null")]
    pub low: f64,
    /// Upper bound.
    #[serde(with = "nan_as_null")]
    pub high: f64,
    /// Resamples in which the metric was defined (e.g. a resample with one class only has no
    /// ROC AUC); the interval is taken over these.
    pub valid_resamples: usize,
}

/// Percentile bootstrap intervals (`level`, e.g. 0.95) of every metric in [`METRIC_NAMES`]
/// order, resampling **clusters** with replacement: `clusters[i]` names the cluster of
/// `preds[i]` (the patient, so that a patient's scans stay together, as in the splits).
/// `samples` resamples are drawn from `ChaCha8Rng::seed_from_u64(seed)`: the same inputs and
/// seed give the same intervals. Each resample draws as many clusters as there are, and the
/// metrics are recomputed on the scans of the drawn clusters.
pub fn bootstrap_intervals(
    preds: &[Prediction],
    clusters: &[String],
    samples: usize,
    level: f64,
    seed: u64,
) -> [Interval; 7] {
    let empty = Interval { low: f64::NAN, high: f64::NAN, valid_resamples: 0 };
    // Distinct clusters in first-appearance order, each with its scans.
    let mut names: Vec<&str> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (i, c) in clusters.iter().enumerate().take(preds.len()) {
        match names.iter().position(|n| *n == c.as_str()) {
            Some(k) => members[k].push(i),
            None => {
                names.push(c);
                members.push(vec![i]);
            }
        }
    }
    if members.is_empty() || samples == 0 {
        return [empty; 7];
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draws: Vec<Vec<f64>> = (0..7).map(|_| Vec::with_capacity(samples)).collect();
    let mut resample = Vec::with_capacity(preds.len());
    for _ in 0..samples {
        resample.clear();
        for _ in 0..members.len() {
            let k = rng.random_range(0..members.len());
            resample.extend(members[k].iter().map(|&i| preds[i]));
        }
        let m = BinaryMetrics::from_predictions(&resample);
        for (d, v) in draws.iter_mut().zip(m.values()) {
            if v.is_finite() {
                d.push(v);
            }
        }
    }
    let alpha = (1.0 - level.clamp(0.0, 1.0)) / 2.0;
    let mut out = [empty; 7];
    for (o, mut d) in out.iter_mut().zip(draws) {
        d.sort_by(f64::total_cmp);
        *o = Interval {
            low: quantile_sorted(&d, alpha),
            high: quantile_sorted(&d, 1.0 - alpha),
            valid_resamples: d.len(),
        };
    }
    out
}

/// Serde for `f64` that writes NaN as `null` (JSON has no NaN) and reads `null` back as NaN.
pub mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes a finite value as a number, NaN and infinities as `null`.
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() { s.serialize_f64(*v) } else { s.serialize_none() }
    }

    /// Reads a number, or `null` as NaN.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diverged_model_has_no_metric() {
        let mut preds = vec![Prediction::from_logits(1, [0.0, 2.0]), Prediction::from_logits(0, [2.0, 0.0])];
        assert_eq!(BinaryMetrics::from_predictions(&preds).accuracy, 1.0);
        preds.push(Prediction::from_logits(0, [f32::NAN, f32::NAN]));
        let m = BinaryMetrics::from_predictions(&preds);
        assert_eq!(m.n, 3);
        assert!(m.values().iter().all(|v| v.is_nan()), "{m:?}");
    }

    #[test]
    fn from_logits_matches_softmax() {
        let p = Prediction::from_logits(1, [0.0, (3.0f32).ln()]);
        assert!((p.p_ad - 0.75).abs() < 1e-7);
        assert!((p.loss - (-(0.75f64).ln())).abs() < 1e-7);
        assert_eq!(p.predicted, 1);
        let tie = Prediction::from_logits(0, [1.5, 1.5]);
        assert_eq!(tie.predicted, 0, "argmax tie goes to the first class");
        assert!((tie.p_ad - 0.5).abs() < 1e-12);
        let big = Prediction::from_logits(0, [1000.0, -1000.0]);
        assert!(big.loss.is_finite() && big.loss < 1e-12 && big.p_ad < 1e-300);
    }

    #[test]
    fn quantile_interpolates() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.5), 2.5);
        assert_eq!(quantile_sorted(&v, 0.0), 1.0);
        assert_eq!(quantile_sorted(&v, 1.0), 4.0);
        assert!((quantile_sorted(&v, 0.025) - 1.075).abs() < 1e-12);
    }
}
