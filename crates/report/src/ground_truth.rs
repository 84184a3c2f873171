//! Scoring a relevance map against a known ground truth (the atrophy planted in a synthetic
//! scan): relevance mass accuracy, relevance rank accuracy (Arras et al. 2022) and the pointing
//! game, per scan; then means with 95 % confidence intervals per method (and per model, for the
//! randomised-weights sanity baseline).

use std::collections::HashMap;

use ndarray::{Array3, ArrayView3, Zip};
use polars::prelude::*;

use crate::error::{ReportError, Result};
use crate::regions::check_finite;
use crate::tables::{column_f64, column_str};

/// The scores of one map against one ground-truth mask. Every score is undefined (NaN, or
/// `None` for the pointing game) when the mask is empty or the map has no positive value (an
/// all-zero map points nowhere); such scans drop out of [`summarise`] instead of counting as
/// zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundTruthScores {
    /// Positive relevance inside the mask ÷ all positive relevance, in [0, 1]. Chance level is
    /// the mask's share of the voxels.
    pub mass_accuracy: f64,
    /// |top-K voxels ∩ mask| ÷ K with K = |mask|, in [0, 1]. Voxels tied with the K-th value
    /// share the remaining places in proportion (the expected value under random tie-breaking),
    /// so block-constant maps such as occlusion are not favoured by voxel order.
    pub rank_accuracy: f64,
    /// Pointing game: the maximum lies in the mask. Where several voxels share the maximum (a
    /// plateau, as in occlusion maps), a hit means more than half of them lie in the mask; for a
    /// unique maximum this is the usual definition.
    pub pointing_hit: Option<bool>,
    /// Share of the voxels holding the maximum that lie in the mask (1 or 0 for a unique
    /// maximum); NaN where undefined.
    pub pointing_share: f64,
}

impl GroundTruthScores {
    const UNDEFINED: GroundTruthScores = GroundTruthScores {
        mass_accuracy: f64::NAN,
        rank_accuracy: f64::NAN,
        pointing_hit: None,
        pointing_share: f64::NAN,
    };
}

/// The ground-truth mask of a planted-atrophy map (`ground_truth/atrophy/<Image.ID>_atrophy.nii.gz`
/// of the synthetic cohort, on the map's grid): voxels whose planted tissue loss exceeds
/// `threshold`.
pub fn truth_mask(atrophy: ArrayView3<f32>, threshold: f32) -> Array3<bool> {
    atrophy.mapv(|v| v > threshold)
}

/// Scores `map` against the mask `truth` (same shape); see [`GroundTruthScores`] for the
/// definitions and the undefined cases. Errors on differing shapes or non-finite map values.
pub fn score_map(map: ArrayView3<f32>, truth: ArrayView3<bool>) -> Result<GroundTruthScores> {
    if map.shape() != truth.shape() {
        return Err(ReportError::Shape(format!(
            "relevance map has shape {:?} but the ground-truth mask has shape {:?}; put both on one grid",
            map.shape(),
            truth.shape()
        )));
    }
    check_finite(&map, "relevance map")?;
    let k = truth.iter().filter(|&&t| t).count();
    let max = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // `max` is finite here (checked above), so `<= 0` also covers an all-zero map
    if k == 0 || max <= 0.0 {
        return Ok(GroundTruthScores::UNDEFINED);
    }

    // relevance mass
    let (mut inside, mut total) = (0.0f64, 0.0f64);
    Zip::from(&map).and(&truth).for_each(|&v, &t| {
        if v > 0.0 {
            total += f64::from(v);
            if t {
                inside += f64::from(v);
            }
        }
    });
    let mass_accuracy = inside / total;

    // relevance rank: the K-th largest value, then ties at it share the remaining places
    let mut values: Vec<f32> = map.iter().copied().collect();
    let (_, kth, _) = values.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let kth = *kth;
    let (mut above, mut above_in, mut tied, mut tied_in) = (0usize, 0usize, 0usize, 0usize);
    let (mut at_max, mut at_max_in) = (0usize, 0usize);
    Zip::from(&map).and(&truth).for_each(|&v, &t| {
        if v > kth {
            above += 1;
            above_in += usize::from(t);
        } else if v == kth {
            tied += 1;
            tied_in += usize::from(t);
        }
        if v == max {
            at_max += 1;
            at_max_in += usize::from(t);
        }
    });
    let places = (k - above) as f64;
    let rank_accuracy = (above_in as f64 + places * tied_in as f64 / tied as f64) / k as f64;
    let pointing_share = at_max_in as f64 / at_max as f64;
    Ok(GroundTruthScores { mass_accuracy, rank_accuracy, pointing_hit: Some(pointing_share > 0.5), pointing_share })
}

/// The per-scan table: the key columns (text, for example `method`, `model`, `Image.ID`) then
/// `mass_accuracy`, `rank_accuracy`, `pointing_hit` (bool, null where undefined) and
/// `pointing_share`. Every row must have the same key names in the same order.
pub fn per_scan_frame(rows: &[(Vec<(&str, String)>, GroundTruthScores)]) -> Result<DataFrame> {
    let keys: Vec<&str> = rows.first().map(|(k, _)| k.iter().map(|(n, _)| *n).collect()).unwrap_or_default();
    for (i, (k, _)) in rows.iter().enumerate() {
        if k.iter().map(|(n, _)| *n).ne(keys.iter().copied()) {
            return Err(ReportError::invalid("rows", format!("row {i} has key columns {k:?}, row 0 has {keys:?}")));
        }
    }
    let mut cols: Vec<Column> = keys
        .iter()
        .enumerate()
        .map(|(c, name)| Column::new((*name).into(), rows.iter().map(|(k, _)| k[c].1.as_str()).collect::<Vec<_>>()))
        .collect();
    cols.push(Column::new("mass_accuracy".into(), rows.iter().map(|r| r.1.mass_accuracy).collect::<Vec<_>>()));
    cols.push(Column::new("rank_accuracy".into(), rows.iter().map(|r| r.1.rank_accuracy).collect::<Vec<_>>()));
    cols.push(Column::new("pointing_hit".into(), rows.iter().map(|r| r.1.pointing_hit).collect::<Vec<_>>()));
    cols.push(Column::new("pointing_share".into(), rows.iter().map(|r| r.1.pointing_share).collect::<Vec<_>>()));
    Ok(DataFrame::new(rows.len(), cols)?)
}

/// Two-sided 97.5 % quantile of Student's t with `df` degrees of freedom: a table for 1–30,
/// the Cornish–Fisher expansion above (error below 1e-6 there).
pub fn t_quantile_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706204736,
        4.302652730,
        3.182446305,
        2.776445105,
        2.570581836,
        2.446911851,
        2.364624252,
        2.306004135,
        2.262157163,
        2.228138852,
        2.200985160,
        2.178812830,
        2.160368656,
        2.144786688,
        2.131449546,
        2.119905299,
        2.109815578,
        2.100922040,
        2.093024054,
        2.085963447,
        2.079613845,
        2.073873068,
        2.068657610,
        2.063898562,
        2.059538553,
        2.055529439,
        2.051830516,
        2.048407142,
        2.045229642,
        2.042272456,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        _ => {
            let z = Z_975;
            let v = df as f64;
            let g1 = (z.powi(3) + z) / 4.0;
            let g2 = (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / 96.0;
            let g3 = (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / 384.0;
            let g4 =
                (79.0 * z.powi(9) + 776.0 * z.powi(7) + 1482.0 * z.powi(5) - 1920.0 * z.powi(3) - 945.0 * z) / 92160.0;
            z + g1 / v + g2 / v.powi(2) + g3 / v.powi(3) + g4 / v.powi(4)
        }
    }
}

/// The standard normal 97.5 % quantile.
const Z_975: f64 = 1.959963984540054;

/// Summarises one column over the rows of one group.
type GroupSummary = Box<dyn Fn(&[usize]) -> Summary>;

/// Mean, sample SD and 95 % CI of one column's values within a group.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    n: u64,
    mean: f64,
    sd: f64,
    ci_low: f64,
    ci_high: f64,
}

/// t-interval `mean ± t(0.975, n−1)·sd/√n` over the finite values (CI NaN for n < 2).
fn t_interval(values: &[f64]) -> Summary {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len();
    if n == 0 {
        return Summary { n: 0, mean: f64::NAN, sd: f64::NAN, ci_low: f64::NAN, ci_high: f64::NAN };
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Summary { n: 1, mean, sd: f64::NAN, ci_low: f64::NAN, ci_high: f64::NAN };
    }
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let half = t_quantile_975(n - 1) * sd / (n as f64).sqrt();
    Summary { n: n as u64, mean, sd, ci_low: mean - half, ci_high: mean + half }
}

/// Wilson score interval of a proportion (hits among the non-null values), which stays inside
/// [0, 1] and is sensible for 0 or n hits, unlike a t-interval on 0/1 values.
fn wilson_interval(values: &[Option<bool>]) -> Summary {
    let v: Vec<bool> = values.iter().flatten().copied().collect();
    let n = v.len();
    if n == 0 {
        return Summary { n: 0, mean: f64::NAN, sd: f64::NAN, ci_low: f64::NAN, ci_high: f64::NAN };
    }
    let nf = n as f64;
    let p = v.iter().filter(|&&b| b).count() as f64 / nf;
    let sd = if n > 1 { (p * (1.0 - p) * nf / (nf - 1.0)).sqrt() } else { f64::NAN };
    let z2 = Z_975 * Z_975;
    let centre = (p + z2 / (2.0 * nf)) / (1.0 + z2 / nf);
    let half = Z_975 / (1.0 + z2 / nf) * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    Summary { n: n as u64, mean: p, sd, ci_low: (centre - half).max(0.0), ci_high: (centre + half).min(1.0) }
}

/// Means with 95 % confidence intervals of every score column of a per-scan table (such as
/// [`per_scan_frame`]'s), per distinct combination of `group_cols` (in order of first
/// appearance). Summarised are the float columns (t-interval: `mean ± t(0.975, n−1)·sd/√n`,
/// NaN values left out, CI NaN below 2 values) and the boolean columns (hit rate with the
/// Wilson score interval, nulls left out); integer and text columns outside `group_cols` are
/// identifiers and are skipped.
///
/// Output, long form: the `group_cols` (as text), then `metric`, `n` (values used), `mean`,
/// `sd`, `ci_low`, `ci_high`, `interval` (`t` or `wilson`).
pub fn summarise(per_scan: &DataFrame, group_cols: &[&str]) -> Result<DataFrame> {
    const TABLE: &str = "per-scan scores";
    let keys: Vec<Vec<String>> = group_cols.iter().map(|c| column_str(per_scan, TABLE, c)).collect::<Result<_>>()?;
    let height = per_scan.height();
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut rows_of: HashMap<Vec<String>, Vec<usize>> = HashMap::new();
    for i in 0..height {
        let key: Vec<String> = keys.iter().map(|k| k[i].clone()).collect();
        let entry = rows_of.entry(key.clone()).or_default();
        if entry.is_empty() {
            groups.push(key);
        }
        entry.push(i);
    }
    let mut out_keys: Vec<Vec<String>> = vec![Vec::new(); group_cols.len()];
    let (mut metric, mut interval) = (Vec::<String>::new(), Vec::<&str>::new());
    let mut stats: Vec<Summary> = Vec::new();
    for col in per_scan.columns() {
        let name = col.name().as_str();
        if group_cols.contains(&name) {
            continue;
        }
        let summarise_group: GroupSummary = match col.dtype() {
            DataType::Float32 | DataType::Float64 => {
                let v = column_f64(per_scan, TABLE, name)?;
                Box::new(move |rows: &[usize]| t_interval(&rows.iter().map(|&r| v[r]).collect::<Vec<_>>()))
            }
            DataType::Boolean => {
                let v: Vec<Option<bool>> = col.bool()?.iter().collect();
                Box::new(move |rows: &[usize]| wilson_interval(&rows.iter().map(|&r| v[r]).collect::<Vec<_>>()))
            }
            _ => continue,
        };
        let kind = if col.dtype().is_bool() { "wilson" } else { "t" };
        for g in &groups {
            stats.push(summarise_group(&rows_of[g]));
            for (c, k) in g.iter().enumerate() {
                out_keys[c].push(k.clone());
            }
            metric.push(name.to_string());
            interval.push(kind);
        }
    }
    let mut cols: Vec<Column> =
        group_cols.iter().zip(out_keys).map(|(name, values)| Column::new((*name).into(), values)).collect();
    cols.push(Column::new("metric".into(), metric));
    cols.push(Column::new("n".into(), stats.iter().map(|s| s.n).collect::<Vec<_>>()));
    cols.push(Column::new("mean".into(), stats.iter().map(|s| s.mean).collect::<Vec<_>>()));
    cols.push(Column::new("sd".into(), stats.iter().map(|s| s.sd).collect::<Vec<_>>()));
    cols.push(Column::new("ci_low".into(), stats.iter().map(|s| s.ci_low).collect::<Vec<_>>()));
    cols.push(Column::new("ci_high".into(), stats.iter().map(|s| s.ci_high).collect::<Vec<_>>()));
    cols.push(Column::new("interval".into(), interval));
    Ok(DataFrame::new(stats.len(), cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(v: &[f32]) -> Array3<f32> {
        Array3::from_shape_vec((v.len(), 1, 1), v.to_vec()).unwrap()
    }

    fn mask(v: &[bool]) -> Array3<bool> {
        Array3::from_shape_vec((v.len(), 1, 1), v.to_vec()).unwrap()
    }

    #[test]
    fn scores_match_hand_values() {
        // truth = voxels 0, 1; map = 4, 0, 3, 1, −2 (negative relevance is not mass)
        let s = score_map(vol(&[4.0, 0.0, 3.0, 1.0, -2.0]).view(), mask(&[true, true, false, false, false]).view())
            .unwrap();
        assert!((s.mass_accuracy - 0.5).abs() < 1e-12, "{s:?}"); // 4 / (4 + 3 + 1)
        assert_eq!(s.rank_accuracy, 0.5); // top-2 = voxels 0, 2
        assert_eq!(s.pointing_hit, Some(true));
        assert_eq!(s.pointing_share, 1.0);
        // maximum outside the truth
        let s = score_map(vol(&[1.0, 0.0, 3.0]).view(), mask(&[true, false, false]).view()).unwrap();
        assert_eq!((s.mass_accuracy, s.rank_accuracy, s.pointing_hit), (0.25, 0.0, Some(false)));
    }

    #[test]
    fn ties_at_the_kth_value_share_the_places() {
        // K = 2; value 5 above, then 4 voxels tied at 1 of which 1 in the truth: 1 place left,
        // expected hits 1/4; the voxel at 5 is in the truth: (1 + 0.25) / 2
        let s =
            score_map(vol(&[5.0, 1.0, 1.0, 1.0, 1.0]).view(), mask(&[true, true, false, false, false]).view()).unwrap();
        assert_eq!(s.rank_accuracy, 0.625);
        // a plateau maximum of 4 voxels, 3 inside the truth: a hit with share 3/4
        let s =
            score_map(vol(&[2.0, 2.0, 2.0, 2.0, 0.0]).view(), mask(&[true, true, true, false, false]).view()).unwrap();
        assert_eq!((s.pointing_hit, s.pointing_share), (Some(true), 0.75));
    }

    #[test]
    fn empty_truth_and_zero_map_are_undefined_not_panics() {
        let s = score_map(vol(&[0.0, 0.0]).view(), mask(&[true, false]).view()).unwrap();
        assert!(s.mass_accuracy.is_nan() && s.rank_accuracy.is_nan() && s.pointing_hit.is_none());
        let s = score_map(vol(&[1.0, 0.0]).view(), mask(&[false, false]).view()).unwrap();
        assert!(s.mass_accuracy.is_nan() && s.rank_accuracy.is_nan() && s.pointing_hit.is_none());
        assert!(score_map(vol(&[1.0]).view(), mask(&[true, false]).view()).is_err());
    }

    #[test]
    fn t_quantiles_are_right() {
        assert_eq!(t_quantile_975(1), 12.706204736);
        assert!((t_quantile_975(40) - 2.021075).abs() < 1e-6);
        assert!((t_quantile_975(100) - 1.983972).abs() < 1e-6);
        assert!((t_quantile_975(31) - 2.039513).abs() < 1e-6);
    }

    #[test]
    fn summary_matches_hand_values() {
        let key = |m: &str| vec![("method", m.to_string())];
        let s = |mass: f64, hit: Option<bool>| GroundTruthScores {
            mass_accuracy: mass,
            rank_accuracy: mass,
            pointing_hit: hit,
            pointing_share: f64::NAN,
        };
        let rows = vec![
            (key("a"), s(0.2, Some(true))),
            (key("a"), s(0.4, Some(false))),
            (key("a"), s(0.6, Some(true))),
            (key("a"), s(f64::NAN, None)),
            (key("b"), s(0.5, Some(true))),
        ];
        let per_scan = per_scan_frame(&rows).unwrap();
        let sum = summarise(&per_scan, &["method"]).unwrap();
        let method = column_str(&sum, "t", "method").unwrap();
        let metric = column_str(&sum, "t", "metric").unwrap();
        let find = |m: &str, k: &str| (0..sum.height()).find(|&i| method[i] == m && metric[i] == k).unwrap();
        let mean = column_f64(&sum, "t", "mean").unwrap();
        let lo = column_f64(&sum, "t", "ci_low").unwrap();
        let hi = column_f64(&sum, "t", "ci_high").unwrap();
        let n = column_f64(&sum, "t", "n").unwrap();
        // mass of a: 0.2, 0.4, 0.6 (NaN left out): mean 0.4, sd 0.2, half = 4.302653·0.2/√3
        let i = find("a", "mass_accuracy");
        assert_eq!(n[i], 3.0);
        assert!((mean[i] - 0.4).abs() < 1e-12);
        let half = 4.302652730 * 0.2 / 3f64.sqrt();
        assert!((lo[i] - (0.4 - half)).abs() < 1e-9 && (hi[i] - (0.4 + half)).abs() < 1e-9);
        // pointing of a: 2 of 3 → Wilson (0.2077, 0.9385)
        let i = find("a", "pointing_hit");
        assert!((mean[i] - 2.0 / 3.0).abs() < 1e-12);
        assert!((lo[i] - 0.2077).abs() < 1e-4 && (hi[i] - 0.9385).abs() < 1e-4, "{} {}", lo[i], hi[i]);
        // one scan: mean, no interval
        let i = find("b", "mass_accuracy");
        assert_eq!(mean[i], 0.5);
        assert!(lo[i].is_nan());
        assert_eq!(sum.height(), 2 * 4);
    }
}
