//! Metrics against hand-computed values and brute-force references.

use model::metrics::{BinaryMetrics, Confusion, Prediction, bootstrap_intervals, mean_sd, quantile_sorted, roc_auc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn pred(label: u8, p_ad: f64) -> Prediction {
    Prediction { label, p_ad, predicted: u8::from(p_ad > 0.5), loss: 0.0 }
}

/// The pairwise definition: P(score_pos > score_neg) + ½ P(tie).
fn auc_brute_force(labels: &[u8], scores: &[f64]) -> f64 {
    let (mut sum, mut pairs) = (0.0, 0.0);
    for (i, &li) in labels.iter().enumerate() {
        for (j, &lj) in labels.iter().enumerate() {
            if li == 1 && lj == 0 {
                pairs += 1.0;
                if scores[i] > scores[j] {
                    sum += 1.0;
                } else if scores[i] == scores[j] {
                    sum += 0.5;
                }
            }
        }
    }
    sum / pairs
}

#[test]
fn auc_by_hand_with_ties() {
    // AD 0.9, 0.4; CN 0.4, 0.1. Pairs: 0.9>0.4, 0.9>0.1, 0.4=0.4 (½), 0.4>0.1 → 3.5 / 4.
    assert_eq!(roc_auc(&[true, true, false, false], &[0.9, 0.4, 0.4, 0.1]), 0.875);
    // All tied: ½.
    assert_eq!(roc_auc(&[true, false, true, false, false], &[0.3; 5]), 0.5);
    // Perfect and inverted rankings, in scrambled order.
    assert_eq!(roc_auc(&[false, true, false, true], &[0.2, 0.8, 0.1, 0.7]), 1.0);
    assert_eq!(roc_auc(&[false, true, false, true], &[0.8, 0.2, 0.7, 0.1]), 0.0);
    // AD 0.6, 0.6, 0.2; CN 0.6, 0.1: 0.6=0.6 (½) ×2, 0.6>0.1 ×2, 0.2<0.6, 0.2>0.1 → 4 / 6.
    assert!((roc_auc(&[true, true, true, false, false], &[0.6, 0.6, 0.2, 0.6, 0.1]) - 4.0 / 6.0).abs() < 1e-15);
}

#[test]
fn auc_undefined_with_one_class_or_nan() {
    assert!(roc_auc(&[true, true], &[0.2, 0.3]).is_nan());
    assert!(roc_auc(&[], &[]).is_nan());
    assert!(roc_auc(&[true, false], &[f64::NAN, 0.3]).is_nan());
}

#[test]
fn auc_matches_brute_force_on_random_tied_scores() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for _ in 0..200 {
        let n = rng.random_range(2..40);
        let labels: Vec<u8> = (0..n).map(|_| rng.random_range(0..2u8)).collect();
        if labels.iter().all(|&l| l == labels[0]) {
            continue;
        }
        // Few distinct values, so ties are common.
        let scores: Vec<f64> = (0..n).map(|_| f64::from(rng.random_range(0..6u8)) / 5.0).collect();
        let positive: Vec<bool> = labels.iter().map(|&l| l != 0).collect();
        let fast = roc_auc(&positive, &scores);
        let slow = auc_brute_force(&labels, &scores);
        assert!((fast - slow).abs() < 1e-12, "{labels:?} {scores:?}: {fast} vs {slow}");
    }
}

#[test]
fn confusion_and_derived_metrics_by_hand() {
    // AD: 3 scans, 2 caught; CN: 5 scans, 4 right.
    let labels = [1, 1, 1, 0, 0, 0, 0, 0];
    let predicted = [1, 1, 0, 0, 0, 0, 0, 1];
    let c = Confusion::new(&labels, &predicted);
    assert_eq!(c, Confusion { tp: 2, tn: 4, fp: 1, fn_: 1 });
    assert_eq!(c.accuracy(), 6.0 / 8.0);
    assert_eq!(c.sensitivity(), 2.0 / 3.0);
    assert_eq!(c.specificity(), 4.0 / 5.0);
    assert!((c.balanced_accuracy() - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-15);
    assert!(Confusion::new(&[0, 0], &[0, 1]).sensitivity().is_nan(), "no AD scans: undefined");
}

#[test]
fn binary_metrics_by_hand() {
    let preds = [pred(1, 0.9), pred(1, 0.4), pred(0, 0.4), pred(0, 0.1), pred(0, 0.6)];
    let m = BinaryMetrics::from_predictions(&preds);
    assert_eq!(m.n, 5);
    // Argmax: AD, CN, CN, CN, AD → TP 1, FN 1, TN 2, FP 1.
    assert_eq!(m.accuracy, 3.0 / 5.0);
    assert_eq!(m.sensitivity, 0.5);
    assert_eq!(m.specificity, 2.0 / 3.0);
    assert!((m.balanced_accuracy - 7.0 / 12.0).abs() < 1e-15);
    // Pairs (AD 0.9, 0.4 vs CN 0.4, 0.1, 0.6): 0.9 beats all 3; 0.4 ties 0.4, beats 0.1, loses to 0.6.
    assert!((m.roc_auc - 4.5 / 6.0).abs() < 1e-15);
    assert!((m.auc_argmax_paper - m.balanced_accuracy).abs() < 1e-15);
}

#[test]
fn argmax_auc_is_balanced_accuracy() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..200 {
        let n = rng.random_range(2..30);
        let preds: Vec<Prediction> = (0..n).map(|_| pred(rng.random_range(0..2u8), rng.random::<f64>())).collect();
        let m = BinaryMetrics::from_predictions(&preds);
        if m.balanced_accuracy.is_nan() {
            assert!(m.auc_argmax_paper.is_nan());
        } else {
            assert!((m.auc_argmax_paper - m.balanced_accuracy).abs() < 1e-12, "{preds:?}");
        }
    }
}

#[test]
fn loss_is_the_mean_cross_entropy() {
    let a = Prediction::from_logits(1, [0.0, 2.0]);
    let b = Prediction::from_logits(0, [0.5, -0.5]);
    // −log σ(2) and −log σ(1).
    let expected = ((1.0 + (-2.0f64).exp()).ln() + (1.0 + (-1.0f64).exp()).ln()) / 2.0;
    let m = BinaryMetrics::from_predictions(&[a, b]);
    assert!((m.loss - expected).abs() < 1e-7, "{} vs {expected}", m.loss);
    assert!(BinaryMetrics::from_predictions(&[]).loss.is_nan());
}

#[test]
fn mean_and_sample_sd_by_hand() {
    let (mean, sd, n) = mean_sd(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!((mean, n), (2.5, 4));
    assert!((sd - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
    let (mean, sd, n) = mean_sd(&[0.7, f64::NAN]);
    assert_eq!((mean, n), (0.7, 1));
    assert!(sd.is_nan());
    assert_eq!(quantile_sorted(&[0.0, 10.0], 0.975), 9.75);
}

fn bootstrap_data() -> (Vec<Prediction>, Vec<String>) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut preds = Vec::new();
    let mut clusters = Vec::new();
    for patient in 0..30 {
        let label = u8::from(patient % 2 == 0);
        for _ in 0..rng.random_range(1..4) {
            let p = (f64::from(label) * 0.4 + rng.random::<f64>() * 0.6).min(1.0);
            preds.push(pred(label, p));
            clusters.push(format!("P{patient}"));
        }
    }
    (preds, clusters)
}

#[test]
fn bootstrap_is_deterministic_per_seed() {
    let (preds, clusters) = bootstrap_data();
    let a = bootstrap_intervals(&preds, &clusters, 500, 0.95, 42);
    let b = bootstrap_intervals(&preds, &clusters, 500, 0.95, 42);
    let c = bootstrap_intervals(&preds, &clusters, 500, 0.95, 43);
    assert_eq!(a, b, "same seed, same intervals");
    assert_ne!(a, c, "another seed, other intervals");
    let point = BinaryMetrics::from_predictions(&preds);
    for (k, (iv, v)) in a.iter().zip(point.values()).enumerate() {
        if k == 0 {
            continue; // the loss is 0 by construction here
        }
        assert!(iv.low <= v && v <= iv.high, "metric {k}: {v} outside {iv:?}");
        assert!(iv.low < iv.high, "metric {k}: empty interval {iv:?}");
        assert_eq!(iv.valid_resamples, 500);
    }
}

#[test]
fn bootstrap_of_a_perfect_classifier_is_a_point() {
    let preds: Vec<Prediction> = (0..10).map(|i| pred((i % 2) as u8, if i % 2 == 1 { 0.9 } else { 0.1 })).collect();
    let clusters: Vec<String> = (0..10).map(|i| format!("P{}", i / 2)).collect();
    let iv = bootstrap_intervals(&preds, &clusters, 200, 0.95, 1);
    // accuracy, balanced accuracy, ROC AUC: always 1.
    for k in [1, 2, 3] {
        assert_eq!((iv[k].low, iv[k].high), (1.0, 1.0), "metric {k}");
    }
}

#[test]
fn bootstrap_resamples_whole_patients() {
    // Patient A: 9 correct scans; patient B: 1 wrong scan. Resampling scans would give
    // accuracies such as 0.8; resampling patients gives only {A, A} = 1, {A, B} = 0.9 (half of
    // the resamples) and {B, B} = 0.
    let mut preds: Vec<Prediction> = (0..9).map(|_| pred(1, 0.9)).collect();
    preds.push(pred(1, 0.1));
    let clusters: Vec<String> = (0..10).map(|i| if i < 9 { "A".into() } else { "B".into() }).collect();
    let iv = bootstrap_intervals(&preds, &clusters, 400, 1.0 - 1e-9, 5);
    assert_eq!((iv[1].low, iv[1].high), (0.0, 1.0));
    let iv = bootstrap_intervals(&preds, &clusters, 400, 0.4, 5);
    assert_eq!((iv[1].low, iv[1].high), (0.9, 0.9), "the central 40 % is all {{A, B}}");
}
