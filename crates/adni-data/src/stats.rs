//! The statistics every crate shares, one implementation each: ROC AUC, mean and SD,
//! quantiles of sorted values, and percentiles of unsorted ones. `model` (classification
//! metrics, bootstrap intervals), `report` (tables, figures, baselines) and the synthetic cohort
//! use these, so two tables can never disagree on how a number was computed.

/// ROC AUC of `scores` for `labels` (true = positive): the probability that a random positive
/// scores higher than a random negative, a tie counting ½ (the Mann–Whitney U statistic over
/// `n_pos · n_neg`, from mid-ranks in O(n log n); equal to the trapezoidal area under the ROC
/// curve). NaN when a class is missing or a score is NaN.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> f64 {
    let n = labels.len().min(scores.len());
    if scores[..n].iter().any(|s| s.is_nan()) {
        return f64::NAN;
    }
    let n_pos = labels[..n].iter().filter(|&&l| l).count();
    let n_neg = n - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the positives' mid-ranks (1-based; tied scores share their mean rank).
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mid_rank * order[i..j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    u / (n_pos as f64 * n_neg as f64)
}

/// Mean and sample standard deviation (`n − 1`) of the finite values, and how many there were.
/// The SD is NaN with fewer than two values, the mean with none.
pub fn mean_sd(values: &[f64]) -> (f64, f64, usize) {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, 0);
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    let sd = if n < 2 { f64::NAN } else { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() };
    (mean, sd, n)
}

/// The `q`-quantile (0 ≤ q ≤ 1) of sorted values with linear interpolation between order
/// statistics (numpy's default, "type 7"); NaN for an empty slice.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let h = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = h.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
        }
    }
}

/// How [`percentile`] picks between the two order statistics around a rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// Linear interpolation (numpy's default).
    Linear,
    /// The order statistic at the rank rounded half away from zero (what the synthetic cohort's
    /// intensity levels were built with; kept so that its bytes do not change).
    Nearest,
}

/// The `q`-quantile (0 ≤ q ≤ 1) of unsorted values, found by selection (no full sort); `None`
/// for no values. NaNs sort last (`total_cmp`).
pub fn percentile(mut values: Vec<f32>, q: f64, rank: Rank) -> Option<f32> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let h = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let k = match rank {
        Rank::Linear => h.floor() as usize,
        Rank::Nearest => (h.round() as usize).min(n - 1),
    };
    let (_, a, upper) = values.select_nth_unstable_by(k, f32::total_cmp);
    let a = *a;
    let frac = h - k as f64;
    if rank == Rank::Nearest || frac == 0.0 || upper.is_empty() {
        return Some(a);
    }
    let b = upper.iter().copied().fold(f32::INFINITY, f32::min);
    Some(a + (b - a) * frac as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_by_hand_with_ties() {
        // AD 0.9, 0.4; CN 0.4, 0.1. Pairs: 0.9>0.4, 0.9>0.1, 0.4=0.4 (½), 0.4>0.1 → 3.5 / 4.
        let (t, f) = (true, false);
        assert_eq!(roc_auc(&[t, t, f, f], &[0.9, 0.4, 0.4, 0.1]), 0.875);
        assert_eq!(roc_auc(&[t, f, t, f, f], &[0.3; 5]), 0.5);
        assert_eq!(roc_auc(&[f, t, f, t], &[0.2, 0.8, 0.1, 0.7]), 1.0);
        assert_eq!(roc_auc(&[f, t, f, t], &[0.8, 0.2, 0.7, 0.1]), 0.0);
        assert!(roc_auc(&[t, t], &[0.2, 0.3]).is_nan());
        assert!(roc_auc(&[], &[]).is_nan());
        assert!(roc_auc(&[t, f], &[f64::NAN, 0.3]).is_nan());
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.5), 2.5);
        assert!((quantile_sorted(&v, 0.025) - 1.075).abs() < 1e-12);
        assert_eq!(quantile_sorted(&[0.0, 10.0], 0.975), 9.75);
        assert!(quantile_sorted(&[], 0.5).is_nan());
        // numpy.percentile([5, 1, 4, 2, 3], 90) = 4.6; the nearest rank is 5 (rank 3.6 → 4).
        let u = vec![5.0f32, 1.0, 4.0, 2.0, 3.0];
        assert!((percentile(u.clone(), 0.9, Rank::Linear).unwrap() - 4.6).abs() < 1e-6);
        assert_eq!(percentile(u.clone(), 0.9, Rank::Nearest), Some(5.0));
        assert_eq!(percentile(u, 0.5, Rank::Linear), Some(3.0));
        assert_eq!(percentile(vec![], 0.5, Rank::Linear), None);
    }

    #[test]
    fn mean_and_sample_sd_of_finite_values() {
        let (m, sd, n) = mean_sd(&[1.0, 2.0, 3.0, 4.0, f64::NAN]);
        assert_eq!((m, n), (2.5, 4));
        assert!((sd - 1.290_994_448_735_805_6).abs() < 1e-12);
        assert!(mean_sd(&[0.7]).1.is_nan());
    }
}
