//! Scoring a relevance map against a known ground truth (the atrophy planted in a synthetic
//! scan): relevance mass accuracy, relevance rank accuracy (Arras et al. 2022) and the pointing
//! game, per scan, with the chance level of each scan; then means with 95 % intervals per method
//! and model (the trained model and the randomised-weights sanity baseline), and a verdict per
//! method against a target.
//!
//! Mass and rank accuracy get an interval of the mean over **patients** (the unit: the scans of
//! one patient share anatomy and atrophy and their scores are correlated) when the per-scan table
//! has a patient column, over scans otherwise ([`mean_interval`]): with fewer than
//! [`MIN_UNITS_FOR_BOOTSTRAP`] units a t interval on the cluster-robust standard error, from
//! there a seeded percentile bootstrap that draws a patient's scans together. Both are clamped
//! to [0, 1], where the scores lie. The pointing-game hit rate gets a Wilson score interval whose
//! sample size is the effective number of scans under that clustering. The trained model is
//! compared with the randomised one on the scans where both maps have a score.

use std::collections::HashMap;

use ndarray::{Array3, ArrayView3};
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use adni_data::stats::quantile_sorted;
use adni_data::table::IMAGE_ID;
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::error::{ReportError, Result};
use crate::regions::check_finite;
use crate::tables::{column_f64, column_str, format_float, has_column};

/// The scores of one map against one ground-truth mask, over the scored voxels (the whole grid,
/// or a brain mask; see [`score_map`]). Every score is undefined (NaN, or `None` for the
/// pointing game) when the mask holds no scored voxel or the map has no positive value there (an
/// all-zero map points nowhere); such scans drop out of the summaries instead of counting as
/// zero, and the summaries count them (`n_undefined`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundTruthScores {
    /// Positive relevance inside the mask ÷ all positive relevance, in [0, 1].
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
    /// Chance level of all three scores: the mask's share of the scored voxels. A map that is
    /// uniform over the scored voxels gets exactly this mass and rank accuracy, and a maximum
    /// placed at random hits with this probability. Defined (unlike the scores) whenever some
    /// voxel is scored.
    pub chance: f64,
}

/// The ground-truth mask of a planted-atrophy map (`ground_truth/atrophy/<Image.ID>_atrophy.nii.gz`
/// of the synthetic cohort, on the map's grid): voxels whose planted tissue loss exceeds
/// `threshold`.
pub fn truth_mask(atrophy: ArrayView3<f32>, threshold: f32) -> Array3<bool> {
    atrophy.mapv(|v| v > threshold)
}

/// Scores `map` against the mask `truth` over the voxels of `within` (for example the brain mask
/// the model's inputs were cut with; `None`: every voxel of the grid). Relevance outside `within`
/// counts neither in the numerators nor in the denominators, and the chance level is the mask's
/// share of `within`, so a score and its chance level always refer to the same voxels. See
/// [`GroundTruthScores`] for the definitions and the undefined cases. Errors on differing shapes
/// or non-finite map values.
pub fn score_map(
    map: ArrayView3<f32>,
    truth: ArrayView3<bool>,
    within: Option<ArrayView3<bool>>,
) -> Result<GroundTruthScores> {
    if map.shape() != truth.shape() {
        return Err(ReportError::Shape(format!(
            "relevance map has shape {:?} but the ground-truth mask has shape {:?}; put both on one grid",
            map.shape(),
            truth.shape()
        )));
    }
    if let Some(w) = &within
        && w.shape() != map.shape()
    {
        return Err(ReportError::Shape(format!(
            "relevance map has shape {:?} but the mask of scored voxels has shape {:?}; put both on one grid",
            map.shape(),
            w.shape()
        )));
    }
    check_finite(&map, "relevance map")?;
    // (value, in truth) of the scored voxels; `iter` walks every view in logical order
    let voxels: Vec<(f32, bool)> = match &within {
        None => map.iter().copied().zip(truth.iter().copied()).collect(),
        Some(w) => {
            map.iter().zip(truth.iter()).zip(w.iter()).filter(|(_, w)| **w).map(|((&v, &t), _)| (v, t)).collect()
        }
    };
    let k = voxels.iter().filter(|(_, t)| *t).count();
    let chance = if voxels.is_empty() { f64::NAN } else { k as f64 / voxels.len() as f64 };
    let max = voxels.iter().map(|(v, _)| *v).fold(f32::NEG_INFINITY, f32::max);
    // the values are finite (checked above), so `<= 0` also covers an all-zero map; no scored
    // voxel leaves `max` at −∞
    if k == 0 || max <= 0.0 {
        return Ok(GroundTruthScores {
            mass_accuracy: f64::NAN,
            rank_accuracy: f64::NAN,
            pointing_hit: None,
            pointing_share: f64::NAN,
            chance,
        });
    }

    // relevance mass
    let (mut inside, mut total) = (0.0f64, 0.0f64);
    for &(v, t) in voxels.iter().filter(|(v, _)| *v > 0.0) {
        total += f64::from(v);
        if t {
            inside += f64::from(v);
        }
    }
    let mass_accuracy = inside / total;

    // relevance rank: the K-th largest value, then ties at it share the remaining places
    let mut values: Vec<f32> = voxels.iter().map(|(v, _)| *v).collect();
    let (_, kth, _) = values.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let kth = *kth;
    let (mut above, mut above_in, mut tied, mut tied_in) = (0usize, 0usize, 0usize, 0usize);
    let (mut at_max, mut at_max_in) = (0usize, 0usize);
    for &(v, t) in &voxels {
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
    }
    let places = (k - above) as f64;
    let rank_accuracy = (above_in as f64 + places * tied_in as f64 / tied as f64) / k as f64;
    let pointing_share = at_max_in as f64 / at_max as f64;
    Ok(GroundTruthScores {
        mass_accuracy,
        rank_accuracy,
        pointing_hit: Some(pointing_share > 0.5),
        pointing_share,
        chance,
    })
}

/// The per-scan table: the key columns (text, for example `method`, `model`, `PTID`,
/// `Image.ID`) then `mass_accuracy`, `rank_accuracy`, `pointing_hit` (bool, null where
/// undefined), `pointing_share` and `truth_fraction` (the chance level,
/// [`GroundTruthScores::chance`]). Every row must have the same key names in the same order.
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
    cols.push(Column::new(CHANCE_COLUMN.into(), rows.iter().map(|r| r.1.chance).collect::<Vec<_>>()));
    Ok(DataFrame::new(rows.len(), cols)?)
}

/// The per-scan column holding the chance level ([`GroundTruthScores::chance`]).
pub const CHANCE_COLUMN: &str = "truth_fraction";

/// The standard normal 97.5 % quantile.
pub const Z_975: f64 = 1.959963984540054;

/// How the summaries make their intervals of a mean ([`mean_interval`]): the unit, and the
/// resampling of the percentile bootstrap used from [`MIN_UNITS_FOR_BOOTSTRAP`] units on (fewer
/// units get a t interval, which draws nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// Resamples per bootstrap interval; 0 = no interval at all (NaN bounds, also where a t
    /// interval would be used). Default 2000.
    pub samples: usize,
    /// Seed. Each group and metric draws from its own stream derived from the seed and the
    /// group's key, so an interval does not change when other methods join the table.
    /// Default 2018.
    pub seed: u64,
    /// Column naming the unit of the intervals, the patient (`PTID`): scans of one patient are
    /// correlated, so a drawn patient brings all of its scans and the t interval's standard
    /// error is taken over patients. `None`, or a table without that column: every scan is its
    /// own unit. Default `Some("PTID")`.
    pub cluster: Option<String>,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self { samples: 2000, seed: 2018, cluster: Some("PTID".into()) }
    }
}

/// Below this many units (patients, or scans without a patient column) the 95 % interval of a
/// mean is the small-cluster t interval of [`mean_interval`], not the percentile bootstrap. A
/// bootstrap over G units can only return means of resampled units: with G = 2 its "95 %
/// interval" is exactly [smaller unit mean, larger unit mean], and with few units it covers the
/// mean far less often than it claims. The same bound as [`MIN_UNITS_FOR_DESIGN_EFFECT`], for the
/// same reason (Cameron & Miller 2015, who recommend the t(G − 1) interval below it).
pub const MIN_UNITS_FOR_BOOTSTRAP: usize = MIN_UNITS_FOR_DESIGN_EFFECT;

/// How the bounds of a [`MeanInterval`] were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalMethod {
    /// No interval (NaN bounds): fewer than two units, or no resamples asked for.
    None,
    /// The seeded percentile bootstrap over units ([`MIN_UNITS_FOR_BOOTSTRAP`] units or more).
    Bootstrap,
    /// Mean ± t(`df`, 0.975) × the cluster-robust standard error, `df` = units − 1 (fewer than
    /// [`MIN_UNITS_FOR_BOOTSTRAP`] units).
    StudentT {
        /// Degrees of freedom: the number of units less one.
        df: usize,
    },
}

impl IntervalMethod {
    /// The method as the `interval` columns name it, with `unit` the name of the unit (the
    /// patient column, `PTID`, or `scans`): `bootstrap(PTID)`, `t(PTID, 1 df)`, or `none`.
    pub fn label(self, unit: &str) -> String {
        match self {
            Self::None => "none".to_string(),
            Self::Bootstrap => format!("bootstrap({unit})"),
            Self::StudentT { df } => format!("t({unit}, {df} df)"),
        }
    }
}

/// A mean with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanInterval {
    /// Values used (finite ones).
    pub n: usize,
    /// Units among them (patients, or `n` without clusters).
    pub units: usize,
    /// Mean of the values.
    pub mean: f64,
    /// Sample standard deviation of the values (NaN below 2).
    pub sd: f64,
    /// Lower bound (NaN without an interval).
    pub low: f64,
    /// Upper bound (NaN without an interval).
    pub high: f64,
    /// How `low` and `high` were made.
    pub method: IntervalMethod,
}

impl MeanInterval {
    /// The interval cut to `[min, max]`, the range the values can take (for example [0, 1] for a
    /// share): the t interval of a few units can reach past it, and no mean lies there. NaN
    /// bounds stay NaN.
    pub fn clamped(self, min: f64, max: f64) -> Self {
        let clamp = |v: f64| if v.is_nan() { v } else { v.clamp(min, max) };
        Self { low: clamp(self.low), high: clamp(self.high), ..self }
    }
}

/// The 97.5 % quantile of Student's t distribution with `df` degrees of freedom (12.71 for 1,
/// 2.776 for 4, near [`Z_975`] for many); NaN for `df` = 0.
pub fn t_975(df: usize) -> f64 {
    StudentsT::new(0.0, 1.0, df as f64).map_or(f64::NAN, |t| t.inverse_cdf(0.975))
}

/// Mean of the finite `values` with a 95 % interval over their units. `units` (same length as
/// `values`) names each value's unit, for example its patient; `None`: every value is its own
/// unit. The mean weighs every value alike (a patient with more scans weighs more). The interval
/// depends on the number of units G:
///
/// - fewer than two, or `samples == 0`: none (NaN bounds; one patient says nothing about the
///   spread between patients);
/// - 2 to [`MIN_UNITS_FOR_BOOTSTRAP`] − 1: mean ± [`t_975`]`(G − 1)` × SE, with the
///   cluster-robust (CR1) standard error `SE² = G/(G − 1) · Σ_u (S_u − mean · n_u)² / n²` (S_u
///   the sum and n_u the number of unit u's values, n all values), as Cameron & Miller (2015)
///   recommend for few clusters. With one value per unit this is the usual t interval, s/√n. It
///   is wide for few units (t = 12.71 for two) and not bounded by the unit means, so values in
///   a known range may need [`MeanInterval::clamped`];
/// - from [`MIN_UNITS_FOR_BOOTSTRAP`] on: the seeded percentile bootstrap, `samples` resamples,
///   each drawing G units with replacement and taking the mean over all values of the drawn
///   units; its bounds lie between the smallest and the largest unit mean.
pub fn mean_interval(values: &[f64], units: Option<&[String]>, samples: usize, seed: u64) -> Result<MeanInterval> {
    if let Some(u) = units
        && u.len() != values.len()
    {
        return Err(ReportError::invalid(
            "units",
            format!("{} unit names for {} values; expected one per value", u.len(), values.len()),
        ));
    }
    // (sum, count) per unit in order of first appearance
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut sums: Vec<(f64, usize)> = Vec::new();
    let mut finite: Vec<f64> = Vec::new();
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() {
            continue;
        }
        finite.push(v);
        let u = match units {
            Some(names) => *index.entry(names[i].as_str()).or_insert(sums.len()),
            None => sums.len(),
        };
        if u == sums.len() {
            sums.push((0.0, 0));
        }
        sums[u].0 += v;
        sums[u].1 += 1;
    }
    let n = finite.len();
    let nan = f64::NAN;
    if n == 0 {
        return Ok(MeanInterval {
            n: 0,
            units: 0,
            mean: nan,
            sd: nan,
            low: nan,
            high: nan,
            method: IntervalMethod::None,
        });
    }
    let mean = finite.iter().sum::<f64>() / n as f64;
    let sd = if n > 1 { (finite.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { nan };
    let c = sums.len();
    if c < 2 || samples == 0 {
        return Ok(MeanInterval { n, units: c, mean, sd, low: nan, high: nan, method: IntervalMethod::None });
    }
    if c < MIN_UNITS_FOR_BOOTSTRAP {
        let g = c as f64;
        let spread = sums.iter().map(|&(s, k)| (s - mean * k as f64).powi(2)).sum::<f64>();
        let se = (g / (g - 1.0) * spread / (n as f64 * n as f64)).sqrt();
        let half = t_975(c - 1) * se;
        return Ok(MeanInterval {
            n,
            units: c,
            mean,
            sd,
            low: mean - half,
            high: mean + half,
            method: IntervalMethod::StudentT { df: c - 1 },
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..samples)
        .map(|_| {
            let (mut s, mut k) = (0.0, 0usize);
            for _ in 0..c {
                let (us, uk) = sums[rng.random_range(0..c)];
                s += us;
                k += uk;
            }
            s / k as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    Ok(MeanInterval {
        n,
        units: c,
        mean,
        sd,
        low: quantile_sorted(&means, 0.025),
        high: quantile_sorted(&means, 0.975),
        method: IntervalMethod::Bootstrap,
    })
}

/// Wilson score 95 % interval of a proportion `rate` observed on `n` (possibly effective,
/// non-integer) trials. Inside [0, 1] by construction, and sensible for 0 or n hits (0/10 gives
/// [0, 0.278]), unlike a normal or t interval on 0/1 values. NaN for `n ≤ 0`.
pub fn wilson_interval(rate: f64, n: f64) -> (f64, f64) {
    if n.is_nan() || n <= 0.0 || !rate.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    let p = rate.clamp(0.0, 1.0);
    let z2 = Z_975 * Z_975;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z_975 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // the interval holds p and lies in [0, 1]; the clamps only undo rounding (p = 0 or 1)
    ((centre - half).clamp(0.0, p), (centre + half).clamp(p, 1.0))
}

/// Below this many units (patients) the effective n of the pointing game is the number of units,
/// whatever the hits: a cluster-robust variance from fewer clusters is too unstable to trust
/// (Cameron & Miller 2015, "A practitioner's guide to cluster-robust inference"), and a design
/// effect read from the hits would make the interval jump (0 of 7 scans of 2 patients gave
/// n = 2, 1 of 7 gave n = 7 and a *narrower* interval).
pub const MIN_UNITS_FOR_DESIGN_EFFECT: usize = 20;

/// Effective number of independent trials behind the hit rate of `hits` whose trials come in
/// units (patients; `None`: independent trials, `n`), always between the number of units `c`
/// and the number of trials `n`:
///
/// - fewer than [`MIN_UNITS_FOR_DESIGN_EFFECT`] units: `c`, the conservative reading (perfect
///   agreement within a patient). It does not depend on the hits, so the Wilson interval moves
///   up with every added hit and never narrows towards a boundary (tested for every hit pattern
///   of up to 8 scans in up to 3 patients);
/// - otherwise `n ÷` the design effect, the cluster-robust variance of the rate,
///   `Σ_u (hits_u − p·n_u)² / n²`, over the binomial `p(1 − p)/n`, clamped to `[c, n]`; where
///   every trial has the same outcome the variance ratio is undefined and the result is `c`.
///
/// With one trial per unit this is `n`, so the Wilson interval is the usual one.
pub fn effective_n(hits: &[bool], units: Option<&[String]>) -> Result<f64> {
    let n = hits.len();
    let Some(names) = units else { return Ok(n as f64) };
    if names.len() != n {
        return Err(ReportError::invalid(
            "units",
            format!("{} unit names for {n} trials; expected one per trial", names.len()),
        ));
    }
    if n == 0 {
        return Ok(0.0);
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut per_unit: Vec<(f64, f64)> = Vec::new();
    for (name, &hit) in names.iter().zip(hits) {
        let u = *index.entry(name.as_str()).or_insert(per_unit.len());
        if u == per_unit.len() {
            per_unit.push((0.0, 0.0));
        }
        per_unit[u].0 += f64::from(u8::from(hit));
        per_unit[u].1 += 1.0;
    }
    let c = per_unit.len() as f64;
    let nf = n as f64;
    let p = per_unit.iter().map(|u| u.0).sum::<f64>() / nf;
    if per_unit.len() < MIN_UNITS_FOR_DESIGN_EFFECT || p <= 0.0 || p >= 1.0 {
        return Ok(c);
    }
    let clustered = per_unit.iter().map(|(h, m)| (h - p * m).powi(2)).sum::<f64>() / (nf * nf);
    let binomial = p * (1.0 - p) / nf;
    let design_effect = clustered / binomial;
    Ok((nf / design_effect).clamp(c, nf))
}

/// A seed for one (group, metric) stream: FNV-1a over the seed and the parts, then a SplitMix64
/// finaliser.
pub(crate) fn stream_seed(seed: u64, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    eat(&seed.to_le_bytes());
    for p in parts {
        eat(p.as_bytes());
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The distinct key combinations of a table (in order of first appearance) and the rows of each.
pub(crate) type Groups = (Vec<Vec<String>>, Vec<Vec<usize>>);

/// The distinct combinations of `group_cols` in order of first appearance, and the rows of each.
pub(crate) fn groups_of(df: &DataFrame, table: &str, group_cols: &[&str]) -> Result<Groups> {
    let keys: Vec<Vec<String>> = group_cols.iter().map(|c| column_str(df, table, c)).collect::<Result<_>>()?;
    let mut order: Vec<Vec<String>> = Vec::new();
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    for i in 0..df.height() {
        let key: Vec<String> = keys.iter().map(|k| k[i].clone()).collect();
        let g = *index.entry(key.clone()).or_insert(order.len());
        if g == order.len() {
            order.push(key);
            rows.push(Vec::new());
        }
        rows[g].push(i);
    }
    Ok((order, rows))
}

/// The resampling unit of every row, if `boot` names a column the table has.
pub(crate) fn units_of(df: &DataFrame, table: &str, boot: &Bootstrap) -> Result<Option<Vec<String>>> {
    match &boot.cluster {
        Some(c) if has_column(df, c) => Ok(Some(column_str(df, table, c)?)),
        _ => Ok(None),
    }
}

/// The name of the unit in the `interval` labels ([`IntervalMethod::label`]): the cluster column
/// where [`units_of`] found it, `scans` otherwise.
pub(crate) fn unit_name<'a>(units: Option<&[String]>, boot: &'a Bootstrap) -> &'a str {
    match (units, &boot.cluster) {
        (Some(_), Some(c)) => c,
        _ => "scans",
    }
}

/// A numeric column as `f64`, nulls as NaN, also when it was read back from CSV as text (an
/// all-empty column, or `NaN` spelled out): empty text is NaN, other text must parse as a
/// number. Errors name `table`, the column and the row.
pub(crate) fn column_numbers(df: &DataFrame, table: &str, name: &str) -> Result<Vec<f64>> {
    let is_text = df.column(name).is_ok_and(|c| c.dtype() == &DataType::String);
    if !is_text {
        return column_f64(df, table, name);
    }
    column_str(df, table, name)?
        .iter()
        .enumerate()
        .map(|(row, v)| {
            let v = v.trim();
            if v.is_empty() {
                Ok(f64::NAN)
            } else {
                v.parse::<f64>()
                    .map_err(|_| ReportError::column(table, name, format!("row {row} holds {v:?}, expected a number")))
            }
        })
        .collect()
}

/// [`column_numbers`] of a column that may be absent: all NaN without it.
fn column_numbers_or_nan(df: &DataFrame, table: &str, name: &str) -> Result<Vec<f64>> {
    if has_column(df, name) { column_numbers(df, table, name) } else { Ok(vec![f64::NAN; df.height()]) }
}

/// How the intervals of a mean are made, in words for `REPORT.md`: the t interval below
/// [`MIN_UNITS_FOR_BOOTSTRAP`] units, the bootstrap (with `boot`'s resamples and seed) from there;
/// `unit` names the units in the plural (`patients`). Says so when `boot` asks for no interval.
pub fn interval_rule(boot: &Bootstrap, unit: &str) -> String {
    if boot.samples == 0 {
        return "none (0 resamples asked for)".to_string();
    }
    format!(
        "with G < {MIN_UNITS_FOR_BOOTSTRAP} {unit}, the mean ± t(G − 1 df) × its cluster-robust standard error \
         (CR1, as Cameron & Miller 2015 recommend for few clusters; a bootstrap over so few {unit} spans little more \
         than their means); from {MIN_UNITS_FOR_BOOTSTRAP} {unit} on, a percentile bootstrap over {unit} ({} \
         resamples, seed {})",
        boot.samples, boot.seed
    )
}

/// The distinct interval methods named in the `interval` column and every `…_interval` column of
/// `tables`, in order of first appearance, as `` `t(PTID, 1 df)` ``, without `none` and `wilson`
/// (the pointing game's, named on its own).
pub fn intervals_used(tables: &[&DataFrame]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for df in tables {
        for name in df.get_column_names() {
            if name.as_str() != "interval" && !name.as_str().ends_with("_interval") {
                continue;
            }
            for v in column_str(df, "summary", name.as_str())? {
                let v = v.trim();
                if !v.is_empty() && v != "none" && v != "wilson" && !out.iter().any(|o| o == v) {
                    out.push(v.to_string());
                }
            }
        }
    }
    Ok(out.into_iter().map(|v| format!("`{v}`")).collect())
}

/// A hit column (boolean; numbers read as `≠ 0`; text `true` / `false`; nulls and empty text as
/// undefined).
pub(crate) fn column_hits(df: &DataFrame, table: &str, name: &str) -> Result<Vec<Option<bool>>> {
    let col = df.column(name).map_err(|_| ReportError::column(table, name, "missing"))?;
    match col.dtype() {
        DataType::Boolean => Ok(col.bool()?.iter().collect()),
        DataType::Null => Ok(vec![None; df.height()]),
        d if d.is_primitive_numeric() => {
            Ok(column_f64(df, table, name)?.into_iter().map(|v| v.is_finite().then_some(v != 0.0)).collect())
        }
        // an all-null column read back from CSV
        DataType::String => column_str(df, table, name)?
            .iter()
            .enumerate()
            .map(|(row, v)| match v.trim().to_ascii_lowercase().as_str() {
                "" => Ok(None),
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                other => {
                    Err(ReportError::column(table, name, format!("row {row} holds {other:?}, expected true / false")))
                }
            })
            .collect(),
        other => Err(ReportError::column(table, name, format!("holds {other}, expected true / false"))),
    }
}

/// Hit rate, effective n and Wilson interval of the defined hits of `rows`.
fn pointing_of(hits: &[Option<bool>], units: Option<&[String]>, rows: &[usize]) -> Result<(usize, f64, f64, f64)> {
    let defined: Vec<usize> = rows.iter().copied().filter(|&r| hits[r].is_some()).collect();
    let h: Vec<bool> = defined.iter().map(|&r| hits[r] == Some(true)).collect();
    let u: Option<Vec<String>> = units.map(|u| defined.iter().map(|&r| u[r].clone()).collect());
    let n = h.len();
    if n == 0 {
        return Ok((0, f64::NAN, f64::NAN, f64::NAN));
    }
    let rate = h.iter().filter(|&&b| b).count() as f64 / n as f64;
    let (lo, hi) = wilson_interval(rate, effective_n(&h, u.as_deref())?);
    Ok((n, rate, lo, hi))
}

/// The per-scan score columns that are shares, in [0, 1]: their intervals are clamped there.
const SHARE_COLUMNS: [&str; 4] = ["mass_accuracy", "rank_accuracy", "pointing_share", CHANCE_COLUMN];

/// Means with 95 % intervals of every score column of a per-scan table (such as
/// [`per_scan_frame`]'s), per distinct combination of `group_cols` (in order of first
/// appearance), in long form for [`crate::figures::ground_truth_chart`]. Float columns: the mean
/// of the finite values with [`mean_interval`]'s interval over `boot.cluster` units where the
/// table has that column, over scans otherwise; `interval` names the method and unit
/// ([`IntervalMethod::label`]: `t(PTID, 1 df)`, `bootstrap(PTID)`, `none`, …), and the bounds of
/// the shares (mass, rank, pointing share, chance) are clamped to [0, 1]. The chance level
/// ([`CHANCE_COLUMN`]) is averaged over the scans whose `mass_accuracy` is defined, the scans the
/// scores it is compared with are averaged over. Boolean columns: the hit rate among the non-null
/// values with the [`wilson_interval`] on the [`effective_n`] (`interval` = `wilson`). Integer
/// and text columns outside `group_cols` are identifiers and are skipped, and so is the cluster
/// column.
///
/// Output: the `group_cols` (as text), then `metric`, `n` (values used), `mean`, `sd`,
/// `ci_low`, `ci_high`, `interval`.
pub fn summarise(per_scan: &DataFrame, group_cols: &[&str], boot: &Bootstrap) -> Result<DataFrame> {
    const TABLE: &str = "per-scan scores";
    let (groups, rows_of) = groups_of(per_scan, TABLE, group_cols)?;
    let units = units_of(per_scan, TABLE, boot)?;
    let unit = unit_name(units.as_deref(), boot);
    // the scans with a defined score: chance is averaged over these only
    let scored: Vec<bool> = if has_column(per_scan, "mass_accuracy") {
        column_f64(per_scan, TABLE, "mass_accuracy")?.iter().map(|v| v.is_finite()).collect()
    } else {
        vec![true; per_scan.height()]
    };
    let mut out_keys: Vec<Vec<String>> = vec![Vec::new(); group_cols.len()];
    let (mut metric, mut interval) = (Vec::<String>::new(), Vec::<String>::new());
    let mut stats: Vec<MeanInterval> = Vec::new();
    for col in per_scan.columns() {
        let name = col.name().as_str();
        if group_cols.contains(&name) || boot.cluster.as_deref() == Some(name) {
            continue;
        }
        let is_float = matches!(col.dtype(), DataType::Float32 | DataType::Float64);
        if !is_float && !col.dtype().is_bool() {
            continue;
        }
        let floats = if is_float { column_f64(per_scan, TABLE, name)? } else { Vec::new() };
        let hits = if is_float { Vec::new() } else { column_hits(per_scan, TABLE, name)? };
        for (g, rows) in groups.iter().zip(&rows_of) {
            let s = if is_float {
                let rows: Vec<usize> = rows.iter().copied().filter(|&r| name != CHANCE_COLUMN || scored[r]).collect();
                let v: Vec<f64> = rows.iter().map(|&r| floats[r]).collect();
                let u: Option<Vec<String>> = units.as_ref().map(|u| rows.iter().map(|&r| u[r].clone()).collect());
                let mut parts: Vec<&str> = g.iter().map(String::as_str).collect();
                parts.push(name);
                let s = mean_interval(&v, u.as_deref(), boot.samples, stream_seed(boot.seed, &parts))?;
                if SHARE_COLUMNS.contains(&name) { s.clamped(0.0, 1.0) } else { s }
            } else {
                let (n, rate, low, high) = pointing_of(&hits, units.as_deref(), rows)?;
                let sd = if n > 1 { (rate * (1.0 - rate) * n as f64 / (n as f64 - 1.0)).sqrt() } else { f64::NAN };
                MeanInterval { n, units: n, mean: rate, sd, low, high, method: IntervalMethod::None }
            };
            stats.push(s);
            for (c, k) in g.iter().enumerate() {
                out_keys[c].push(k.clone());
            }
            metric.push(name.to_string());
            interval.push(if is_float { s.method.label(unit) } else { "wilson".to_string() });
        }
    }
    let mut cols: Vec<Column> =
        group_cols.iter().zip(out_keys).map(|(name, values)| Column::new((*name).into(), values)).collect();
    cols.push(Column::new("metric".into(), metric));
    cols.push(Column::new("n".into(), stats.iter().map(|s| s.n as u64).collect::<Vec<_>>()));
    cols.push(Column::new("mean".into(), stats.iter().map(|s| s.mean).collect::<Vec<_>>()));
    cols.push(Column::new("sd".into(), stats.iter().map(|s| s.sd).collect::<Vec<_>>()));
    cols.push(Column::new("ci_low".into(), stats.iter().map(|s| s.low).collect::<Vec<_>>()));
    cols.push(Column::new("ci_high".into(), stats.iter().map(|s| s.high).collect::<Vec<_>>()));
    cols.push(Column::new("interval".into(), interval));
    Ok(DataFrame::new(stats.len(), cols)?)
}

/// One row per distinct combination of `group_cols` (for example `method`, `model`) of a
/// per-scan table with the columns of [`per_scan_frame`]: the scores that matter side by side
/// with their chance level. Scans with undefined scores (an all-zero map) are left out and
/// counted. Columns:
///
/// | column | what |
/// |---|---|
/// | `n_scans` | scans with defined scores |
/// | `n_undefined` | scans left out: the map has no positive value on the scored voxels |
/// | `n_patients` | distinct values of the cluster column among the scans (null without one) |
/// | `chance` | mean over the scans with defined scores of the mask's share of the scored voxels: the chance level of every score, over the same scans |
/// | `mass_accuracy`, `mass_ci_low`, `mass_ci_high` | mean and 95 % interval ([`mean_interval`], clamped to [0, 1]) |
/// | `mass_vs_chance` | `mass_accuracy ÷ chance` |
/// | `rank_accuracy`, `rank_ci_low`, `rank_ci_high` | mean and 95 % interval, as for mass |
/// | `pointing_rate`, `pointing_ci_low`, `pointing_ci_high` | hit rate and Wilson 95 % interval on the effective n ([`effective_n`]) |
/// | `interval` | how the mass and rank intervals were made ([`IntervalMethod::label`], e.g. `t(PTID, 1 df)`) |
/// | `paired_scans` | rows of the trained model ([`TRAINED`] in a `model` key column) that have a randomised row ([`RANDOM`], the other keys alike): the scans with a defined score under both models, matched by `Image.ID`; null on other rows, and where the table names no scan while either model has an undefined one (the two scan sets may then differ) |
/// | `paired_mass_ci_low` | the trained model's lower bound of mass accuracy over those scans (NaN where `paired_scans` is null) |
/// | `paired_random_mass` | the randomised model's mean mass accuracy over the same scans |
///
/// [`verdicts`] compares the trained model with the randomised one through the `paired_`
/// columns, so that both rest on the same scans (a method whose trained map is zero on some
/// scans is not compared with a randomised mean that includes them).
pub fn scan_summary(per_scan: &DataFrame, group_cols: &[&str], boot: &Bootstrap) -> Result<DataFrame> {
    const TABLE: &str = "per-scan scores";
    let (groups, rows_of) = groups_of(per_scan, TABLE, group_cols)?;
    let units = units_of(per_scan, TABLE, boot)?;
    let unit = unit_name(units.as_deref(), boot);
    let mass = column_f64(per_scan, TABLE, "mass_accuracy")?;
    let rank = column_f64(per_scan, TABLE, "rank_accuracy")?;
    let chance_col = column_f64(per_scan, TABLE, CHANCE_COLUMN)?;
    let hits = column_hits(per_scan, TABLE, "pointing_hit")?;
    let ids = if has_column(per_scan, IMAGE_ID) { Some(column_str(per_scan, TABLE, IMAGE_ID)?) } else { None };
    let defined_of: Vec<Vec<usize>> =
        rows_of.iter().map(|rows| rows.iter().copied().filter(|&i| mass[i].is_finite()).collect()).collect();
    let seed_for = |g: &[String], metric: &str| {
        let mut parts: Vec<&str> = g.iter().map(String::as_str).collect();
        parts.push(metric);
        stream_seed(boot.seed, &parts)
    };
    // the mean and [0, 1]-clamped interval of a share over `rows`
    let interval_of = |col: &[f64], rows: &[usize], seed: u64| -> Result<MeanInterval> {
        let v: Vec<f64> = rows.iter().map(|&i| col[i]).collect();
        let u: Option<Vec<String>> = units.as_ref().map(|u| rows.iter().map(|&i| u[i].clone()).collect());
        Ok(mean_interval(&v, u.as_deref(), boot.samples, seed)?.clamped(0.0, 1.0))
    };

    let mut out_keys: Vec<Vec<String>> = vec![Vec::new(); group_cols.len()];
    let (mut n_scans, mut n_undefined, mut n_patients) = (Vec::new(), Vec::new(), Vec::<Option<u64>>::new());
    let mut chance = Vec::new();
    let (mut m, mut r) = (Vec::<MeanInterval>::new(), Vec::<MeanInterval>::new());
    let mut pointing: Vec<(f64, f64, f64)> = Vec::new();
    for ((g, rows), defined) in groups.iter().zip(&rows_of).zip(&defined_of) {
        let mi = interval_of(&mass, defined, seed_for(g, "mass_accuracy"))?;
        let ri = interval_of(&rank, defined, seed_for(g, "rank_accuracy"))?;
        let c: Vec<f64> = defined.iter().map(|&i| chance_col[i]).filter(|v| v.is_finite()).collect();
        chance.push(if c.is_empty() { f64::NAN } else { c.iter().sum::<f64>() / c.len() as f64 });
        let (_, rate, lo, hi) = pointing_of(&hits, units.as_deref(), defined)?;
        pointing.push((rate, lo, hi));
        n_scans.push(defined.len() as u64);
        n_undefined.push((rows.len() - defined.len()) as u64);
        n_patients.push(units.as_ref().map(|u| {
            let mut d: Vec<&String> = defined.iter().map(|&i| &u[i]).collect();
            d.sort();
            d.dedup();
            d.len() as u64
        }));
        m.push(mi);
        r.push(ri);
        for (c, k) in g.iter().enumerate() {
            out_keys[c].push(k.clone());
        }
    }

    // the trained model against the randomised one, on the scans scored under both
    let mut paired_scans: Vec<Option<u64>> = vec![None; groups.len()];
    let (mut paired_low, mut paired_random) = (vec![f64::NAN; groups.len()], vec![f64::NAN; groups.len()]);
    if let Some(mc) = group_cols.iter().position(|c| *c == "model") {
        let index: HashMap<&[String], usize> = groups.iter().enumerate().map(|(i, g)| (g.as_slice(), i)).collect();
        for (t, g) in groups.iter().enumerate().filter(|(_, g)| g[mc] == TRAINED) {
            let mut key = g.clone();
            key[mc] = RANDOM.to_string();
            let Some(&rnd) = index.get(key.as_slice()) else { continue };
            let (tr, rd) = (&defined_of[t], &defined_of[rnd]);
            let (tr, rd): (Vec<usize>, Vec<usize>) = match &ids {
                Some(ids) => {
                    let has = |rows: &[usize], i: usize| rows.iter().any(|&j| ids[j] == ids[i]);
                    (
                        tr.iter().copied().filter(|&i| has(rd, i)).collect(),
                        rd.iter().copied().filter(|&i| has(tr, i)).collect(),
                    )
                }
                // no scan names: the same scans only when every scan of both is scored
                None if tr.len() == rows_of[t].len() && rd.len() == rows_of[rnd].len() && tr.len() == rd.len() => {
                    (tr.clone(), rd.clone())
                }
                None => continue,
            };
            paired_scans[t] = Some(tr.len() as u64);
            paired_low[t] = interval_of(&mass, &tr, seed_for(g, "mass_accuracy"))?.low;
            paired_random[t] =
                if rd.is_empty() { f64::NAN } else { rd.iter().map(|&i| mass[i]).sum::<f64>() / rd.len() as f64 };
        }
    }

    let ratio: Vec<f64> = m.iter().zip(&chance).map(|(m, &c)| if c > 0.0 { m.mean / c } else { f64::NAN }).collect();
    let mut cols: Vec<Column> =
        group_cols.iter().zip(out_keys).map(|(name, values)| Column::new((*name).into(), values)).collect();
    let f = |name: &str, v: Vec<f64>| Column::new(name.into(), v);
    cols.push(Column::new("n_scans".into(), n_scans));
    cols.push(Column::new("n_undefined".into(), n_undefined));
    cols.push(Column::new("n_patients".into(), n_patients));
    cols.push(f("chance", chance));
    cols.push(f("mass_accuracy", m.iter().map(|s| s.mean).collect()));
    cols.push(f("mass_ci_low", m.iter().map(|s| s.low).collect()));
    cols.push(f("mass_ci_high", m.iter().map(|s| s.high).collect()));
    cols.push(f("mass_vs_chance", ratio));
    cols.push(f("rank_accuracy", r.iter().map(|s| s.mean).collect()));
    cols.push(f("rank_ci_low", r.iter().map(|s| s.low).collect()));
    cols.push(f("rank_ci_high", r.iter().map(|s| s.high).collect()));
    cols.push(f("pointing_rate", pointing.iter().map(|p| p.0).collect()));
    cols.push(f("pointing_ci_low", pointing.iter().map(|p| p.1).collect()));
    cols.push(f("pointing_ci_high", pointing.iter().map(|p| p.2).collect()));
    cols.push(Column::new("interval".into(), m.iter().map(|s| s.method.label(unit)).collect::<Vec<_>>()));
    cols.push(Column::new("paired_scans".into(), paired_scans));
    cols.push(f("paired_mass_ci_low", paired_low));
    cols.push(f("paired_random_mass", paired_random));
    Ok(DataFrame::new(groups.len(), cols)?)
}

/// The `model` value of the trained model's rows.
pub const TRAINED: &str = "trained";
/// The `model` value of the randomised-weights baseline's rows.
pub const RANDOM: &str = "random";
/// The target: mean mass accuracy at least this multiple of chance.
pub const TARGET_FACTOR: f64 = 3.0;

/// One verdict per method of a [`scan_summary`] grouped by `method` and `model`, comparing the
/// trained model with chance and with the randomised-weights model. Columns: `method`, `chance`,
/// `mass_accuracy` (trained; chance and mass over the same scans), `mass_vs_chance`,
/// `beats_3x_chance` (mean ≥ [`TARGET_FACTOR`] × chance), then the comparison with the
/// randomised model on the scans scored under both (the summary's `paired_` columns):
/// `paired_scans`, `mass_ci_low` (the trained model's 95 % lower bound over those scans; without
/// a pairing, over its own scans), `random_mass_accuracy` (the randomised model's mean over
/// those scans), `lower_bound_above_random` (lower bound > randomised mean), and `passes` (both
/// tests). A test whose inputs are missing or NaN (no interval, no baseline, no common scan, a
/// summary without the `paired_` columns) is null, never a pass, and so is `passes` unless the
/// other test failed. Methods without a trained row are left out.
pub fn verdicts(summary: &DataFrame) -> Result<DataFrame> {
    const TABLE: &str = "ground-truth summary";
    let method = column_str(summary, TABLE, "method")?;
    let model = column_str(summary, TABLE, "model")?;
    let chance = column_numbers(summary, TABLE, "chance")?;
    let mass = column_numbers(summary, TABLE, "mass_accuracy")?;
    let own_low = column_numbers(summary, TABLE, "mass_ci_low")?;
    let paired = column_numbers_or_nan(summary, TABLE, "paired_scans")?;
    let paired_low = column_numbers_or_nan(summary, TABLE, "paired_mass_ci_low")?;
    let paired_random = column_numbers_or_nan(summary, TABLE, "paired_random_mass")?;
    let row = |m: &str, kind: &str| (0..summary.height()).find(|&i| method[i] == m && model[i] == kind);
    let mut methods: Vec<&str> = Vec::new();
    for m in &method {
        if !methods.contains(&m.as_str()) && row(m, TRAINED).is_some() {
            methods.push(m);
        }
    }
    let test = |ok: bool, defined: bool| defined.then_some(ok);
    let (mut c, mut mm, mut ratio, mut beats, mut lo, mut rnd, mut above, mut passes) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut n_paired: Vec<Option<u64>> = Vec::new();
    for m in &methods {
        let t = row(m, TRAINED)
            .ok_or_else(|| ReportError::column(TABLE, "model", format!("no `{TRAINED}` row for {m}")))?;
        let is_paired = paired[t].is_finite();
        let (low, random_mean) = if is_paired { (paired_low[t], paired_random[t]) } else { (own_low[t], f64::NAN) };
        let r = if chance[t] > 0.0 { mass[t] / chance[t] } else { f64::NAN };
        let b = test(mass[t] >= TARGET_FACTOR * chance[t], mass[t].is_finite() && chance[t] > 0.0);
        let a = test(low > random_mean, low.is_finite() && random_mean.is_finite());
        passes.push(match (b, a) {
            (Some(true), Some(true)) => Some(true),
            (Some(false), _) | (_, Some(false)) => Some(false),
            _ => None,
        });
        c.push(chance[t]);
        mm.push(mass[t]);
        ratio.push(r);
        beats.push(b);
        n_paired.push(is_paired.then_some(paired[t] as u64));
        lo.push(low);
        rnd.push(random_mean);
        above.push(a);
    }
    Ok(DataFrame::new(
        methods.len(),
        vec![
            Column::new("method".into(), methods),
            Column::new("chance".into(), c),
            Column::new("mass_accuracy".into(), mm),
            Column::new("mass_vs_chance".into(), ratio),
            Column::new("beats_3x_chance".into(), beats),
            Column::new("paired_scans".into(), n_paired),
            Column::new("mass_ci_low".into(), lo),
            Column::new("random_mass_accuracy".into(), rnd),
            Column::new("lower_bound_above_random".into(), above),
            Column::new("passes".into(), passes),
        ],
    )?)
}

/// Sentences about a [`verdicts`] table, every number taken from it: first whether the target
/// is met (at least `min_passing` methods pass, every one of `required` among them; a required
/// method absent from the table is named as not run, not as failing), then one
/// line per method that does not pass, saying which test it fails and by how much (or why it
/// cannot be judged).
pub fn verdict_lines(verdict: &DataFrame, required: &[&str], min_passing: usize) -> Result<Vec<String>> {
    const TABLE: &str = "ground-truth verdicts";
    let method = column_str(verdict, TABLE, "method")?;
    let chance = column_numbers(verdict, TABLE, "chance")?;
    let mass = column_numbers(verdict, TABLE, "mass_accuracy")?;
    let ratio = column_numbers(verdict, TABLE, "mass_vs_chance")?;
    let paired = column_numbers_or_nan(verdict, TABLE, "paired_scans")?;
    let low = column_numbers(verdict, TABLE, "mass_ci_low")?;
    let random = column_numbers(verdict, TABLE, "random_mass_accuracy")?;
    let beats = column_hits(verdict, TABLE, "beats_3x_chance")?;
    let above = column_hits(verdict, TABLE, "lower_bound_above_random")?;
    let passes = column_hits(verdict, TABLE, "passes")?;
    let f = format_float;
    let passing: Vec<&str> =
        (0..method.len()).filter(|&i| passes[i] == Some(true)).map(|i| method[i].as_str()).collect();
    // required methods that were scored but do not pass, and those that were not run at all
    let missing: Vec<&str> =
        required.iter().copied().filter(|r| !passing.contains(r) && method.iter().any(|m| m == r)).collect();
    let not_run: Vec<&str> = required.iter().copied().filter(|r| !method.iter().any(|m| m == r)).collect();
    let met = passing.len() >= min_passing && missing.is_empty() && not_run.is_empty();
    let mut lines = vec![format!(
        "Target ({min_passing} or more methods with mean mass accuracy ≥ {}× chance and a 95 % lower bound above the \
         randomised model's mean{}): **{}**. {} of {} methods pass{}{}{}.",
        TARGET_FACTOR,
        if required.is_empty() { String::new() } else { format!(", {} among them", required.join(" and ")) },
        if met { "met" } else { "not met" },
        passing.len(),
        method.len(),
        if passing.is_empty() { String::new() } else { format!(" ({})", passing.join(", ")) },
        if missing.is_empty() { String::new() } else { format!("; not passing: {}", missing.join(", ")) },
        if not_run.is_empty() { String::new() } else { format!("; not run: {}", not_run.join(", ")) },
    )];
    for i in (0..method.len()).filter(|&i| passes[i] != Some(true)) {
        if !mass[i].is_finite() {
            lines.push(format!(
                "**{}** is not judged: no scan has a defined score (every map is zero on the scored voxels).",
                method[i]
            ));
            continue;
        }
        let mut why: Vec<String> = Vec::new();
        match beats[i] {
            Some(false) => why.push(format!(
                "mean mass accuracy {} is {}× chance ({}), below the {}× it needs (≥ {})",
                f(mass[i]),
                f(ratio[i]),
                f(chance[i]),
                TARGET_FACTOR,
                f(TARGET_FACTOR * chance[i])
            )),
            Some(true) => {}
            None => why.push("mass accuracy against chance cannot be judged (no chance level)".into()),
        }
        let on = if paired[i].is_finite() {
            format!(" on the {} scans scored under both", paired[i])
        } else {
            String::new()
        };
        match above[i] {
            Some(false) => why.push(format!(
                "its 95 % lower bound {} is not above the randomised model's mean {}{on} (short by {})",
                f(low[i]),
                f(random[i]),
                f(random[i] - low[i])
            )),
            Some(true) => {}
            None if paired[i] == 0.0 => why.push(
                "the comparison with the randomised model cannot be judged (no scan has a defined score under both \
                 models)"
                    .into(),
            ),
            None if !low[i].is_finite() => why.push(format!(
                "the comparison with the randomised model cannot be judged (no interval{on}: fewer than 2 patients)"
            )),
            None => why.push(
                "the comparison with the randomised model cannot be judged (no randomised baseline scored on the same \
                 scans)"
                    .into(),
            ),
        }
        let verb = if passes[i] == Some(false) { "fails" } else { "is not judged" };
        lines.push(format!("**{}** {verb}: {}.", method[i], why.join("; ")));
    }
    Ok(lines)
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
        let s =
            score_map(vol(&[4.0, 0.0, 3.0, 1.0, -2.0]).view(), mask(&[true, true, false, false, false]).view(), None)
                .unwrap();
        assert!((s.mass_accuracy - 0.5).abs() < 1e-12, "{s:?}"); // 4 / (4 + 3 + 1)
        assert_eq!(s.rank_accuracy, 0.5); // top-2 = voxels 0, 2
        assert_eq!(s.pointing_hit, Some(true));
        assert_eq!(s.pointing_share, 1.0);
        assert_eq!(s.chance, 0.4);
        // maximum outside the truth
        let s = score_map(vol(&[1.0, 0.0, 3.0]).view(), mask(&[true, false, false]).view(), None).unwrap();
        assert_eq!((s.mass_accuracy, s.rank_accuracy, s.pointing_hit), (0.25, 0.0, Some(false)));
    }

    #[test]
    fn scoring_within_a_region_ignores_the_rest_and_moves_chance_with_it() {
        // voxels 3, 4 are outside the brain: their relevance (9 and the maximum 10) is not scored
        let map = vol(&[4.0, 0.0, 3.0, 9.0, 10.0]);
        let truth = mask(&[true, false, false, false, false]);
        let brain = mask(&[true, true, true, false, false]);
        let s = score_map(map.view(), truth.view(), Some(brain.view())).unwrap();
        assert!((s.mass_accuracy - 4.0 / 7.0).abs() < 1e-12, "{s:?}");
        assert_eq!((s.rank_accuracy, s.pointing_hit), (1.0, Some(true)));
        assert!((s.chance - 1.0 / 3.0).abs() < 1e-12);
        // over the whole grid the same map points outside the truth
        let s = score_map(map.view(), truth.view(), None).unwrap();
        assert_eq!((s.pointing_hit, s.chance), (Some(false), 0.2));
        // a map uniform over the scored voxels scores exactly chance
        let s = score_map(brain.mapv(f32::from).view(), truth.view(), Some(brain.view())).unwrap();
        assert!((s.mass_accuracy - s.chance).abs() < 1e-12 && (s.rank_accuracy - s.chance).abs() < 1e-12);
        assert!(score_map(map.view(), truth.view(), Some(mask(&[true]).view())).is_err());
    }

    #[test]
    fn ties_at_the_kth_value_share_the_places() {
        // K = 2; value 5 above, then 4 voxels tied at 1 of which 1 in the truth: 1 place left,
        // expected hits 1/4; the voxel at 5 is in the truth: (1 + 0.25) / 2
        let s =
            score_map(vol(&[5.0, 1.0, 1.0, 1.0, 1.0]).view(), mask(&[true, true, false, false, false]).view(), None)
                .unwrap();
        assert_eq!(s.rank_accuracy, 0.625);
        // a plateau maximum of 4 voxels, 3 inside the truth: a hit with share 3/4
        let s = score_map(vol(&[2.0, 2.0, 2.0, 2.0, 0.0]).view(), mask(&[true, true, true, false, false]).view(), None)
            .unwrap();
        assert_eq!((s.pointing_hit, s.pointing_share), (Some(true), 0.75));
    }

    #[test]
    fn empty_truth_and_zero_map_are_undefined_not_panics() {
        let s = score_map(vol(&[0.0, 0.0]).view(), mask(&[true, false]).view(), None).unwrap();
        assert!(s.mass_accuracy.is_nan() && s.rank_accuracy.is_nan() && s.pointing_hit.is_none());
        assert_eq!(s.chance, 0.5);
        let s = score_map(vol(&[1.0, 0.0]).view(), mask(&[false, false]).view(), None).unwrap();
        assert!(s.mass_accuracy.is_nan() && s.rank_accuracy.is_nan() && s.pointing_hit.is_none());
        // the truth lies outside the scored voxels
        let s =
            score_map(vol(&[1.0, 2.0]).view(), mask(&[false, true]).view(), Some(mask(&[true, false]).view())).unwrap();
        assert!(s.mass_accuracy.is_nan() && s.pointing_hit.is_none() && s.chance == 0.0);
        // nothing scored
        let s = score_map(vol(&[1.0]).view(), mask(&[true]).view(), Some(mask(&[false]).view())).unwrap();
        assert!(s.mass_accuracy.is_nan() && s.chance.is_nan());
        assert!(score_map(vol(&[1.0]).view(), mask(&[true, false]).view(), None).is_err());
    }

    #[test]
    fn wilson_matches_known_values_and_stays_in_the_unit_interval() {
        // 2 of 3: (0.2077, 0.9385); 8 of 10: (0.4902, 0.9433); 0 of 10: [0, 0.2775]
        let close = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 1e-4 && (a.1 - b.1).abs() < 1e-4;
        assert!(close(wilson_interval(2.0 / 3.0, 3.0), (0.2077, 0.9385)), "{:?}", wilson_interval(2.0 / 3.0, 3.0));
        assert!(close(wilson_interval(0.8, 10.0), (0.4902, 0.9433)), "{:?}", wilson_interval(0.8, 10.0));
        assert!(close(wilson_interval(0.0, 10.0), (0.0, 0.2775)), "{:?}", wilson_interval(0.0, 10.0));
        for n in [1.0, 2.0, 3.5, 17.0, 1000.0] {
            for p in [0.0, 1.0 / 3.0, 1.0] {
                let (lo, hi) = wilson_interval(p, n);
                assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && lo <= p && p <= hi, "{p} {n}");
            }
        }
        assert_eq!(wilson_interval(0.0, 10.0).0, 0.0);
        assert_eq!(wilson_interval(1.0, 10.0).1, 1.0);
        assert!((1.0 - wilson_interval(1.0, 10.0).0 - 0.2775).abs() < 1e-4);
        assert!(wilson_interval(0.5, 0.0).0.is_nan());
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn effective_n_follows_the_clustering() {
        let hits = [true, true, false, false];
        // no clusters, or one scan per patient: n
        assert_eq!(effective_n(&hits, None).unwrap(), 4.0);
        assert_eq!(effective_n(&hits, Some(&names(&["a", "b", "c", "d"]))).unwrap(), 4.0);
        // few patients: the number of patients, whatever the hits
        assert_eq!(effective_n(&hits, Some(&names(&["a", "a", "b", "b"]))).unwrap(), 2.0);
        assert_eq!(effective_n(&hits, Some(&names(&["a", "b", "a", "b"]))).unwrap(), 2.0);
        assert_eq!(effective_n(&[true; 5], Some(&names(&["a", "a", "b", "b", "c"]))).unwrap(), 3.0);
        assert_eq!(effective_n(&hits, Some(&names(&["a"; 4]))).unwrap(), 1.0);
        assert!(effective_n(&hits, Some(&names(&["a"]))).is_err());
        // many patients (two scans each): the design effect, between the patients and the scans
        let units: Vec<String> = (0..40).map(|i| format!("p{}", i / 2)).collect();
        // patients agree within, disagree between: design effect 2, n_eff 20 (= the patients)
        let agree: Vec<bool> = (0..40).map(|i| (i / 2) % 2 == 0).collect();
        assert!((effective_n(&agree, Some(&units)).unwrap() - 20.0).abs() < 1e-9);
        // each patient half hits: below-binomial variance, clamped to the scans
        let half: Vec<bool> = (0..40).map(|i| i % 2 == 0).collect();
        assert_eq!(effective_n(&half, Some(&units)).unwrap(), 40.0);
        // no hit: the patients
        assert_eq!(effective_n(&[false; 40], Some(&units)).unwrap(), 20.0);
    }

    #[test]
    fn adding_a_hit_never_narrows_the_pointing_interval_with_few_patients() {
        // the reviewer's case: 7 scans of 2 patients; 0 hits gave [0, 0.658], 1 hit [0.026, 0.513]
        let units = names(&["a", "a", "a", "a", "b", "b", "b"]);
        let interval = |h: &[bool]| {
            wilson_interval(
                h.iter().filter(|&&x| x).count() as f64 / h.len() as f64,
                effective_n(h, Some(&units)).unwrap(),
            )
        };
        let none = interval(&[false; 7]);
        let one = interval(&[true, false, false, false, false, false, false]);
        assert!(one.1 >= none.1 && one.0 >= none.0, "{none:?} → {one:?}");
        assert!((none.1 - wilson_interval(0.0, 2.0).1).abs() < 1e-12, "{none:?}");
        // every hit pattern of 2 to 8 scans in 1 to 3 patients: turning a miss into a hit moves
        // both bounds up (or leaves them), so the upper bound never falls
        for n in 2..=8usize {
            for c in 1..=3usize.min(n) {
                let units: Vec<String> = (0..n).map(|i| format!("p{}", i * c / n)).collect();
                for pattern in 0u32..(1 << n) {
                    let h: Vec<bool> = (0..n).map(|i| pattern >> i & 1 == 1).collect();
                    let rate = |h: &[bool]| h.iter().filter(|&&x| x).count() as f64 / n as f64;
                    let before = wilson_interval(rate(&h), effective_n(&h, Some(&units)).unwrap());
                    for i in (0..n).filter(|&i| !h[i]) {
                        let mut more = h.clone();
                        more[i] = true;
                        let after = wilson_interval(rate(&more), effective_n(&more, Some(&units)).unwrap());
                        assert!(
                            after.0 >= before.0 - 1e-12 && after.1 >= before.1 - 1e-12,
                            "n {n}, {c} patients, {h:?} → {more:?}: {before:?} → {after:?}"
                        );
                    }
                }
            }
        }
    }

    /// `n` values spread over [0.1, 0.9], the i-th in unit `p{i / per_unit}`.
    fn spread(n: usize, per_unit: usize) -> (Vec<f64>, Vec<String>) {
        let v = (0..n).map(|i| 0.1 + 0.8 * ((i * 7) % n) as f64 / (n - 1) as f64).collect();
        (v, (0..n).map(|i| format!("p{}", i / per_unit)).collect())
    }

    #[test]
    fn bootstrap_from_twenty_units_is_seeded_and_within_the_unit_means() {
        // 21 scans of their own, then 40 scans of 20 patients: the percentile bootstrap
        for (n, per_unit) in [(21, 1), (40, 2)] {
            let (v, units) = spread(n, per_unit);
            let u = (per_unit > 1).then_some(units.as_slice());
            let a = mean_interval(&v, u, 500, 7).unwrap();
            let b = mean_interval(&v, u, 500, 7).unwrap();
            let c = mean_interval(&v, u, 500, 8).unwrap();
            assert_eq!(a.method, IntervalMethod::Bootstrap, "{n} values, {per_unit} per unit");
            assert_eq!(a.units, n / per_unit);
            assert_eq!(a, b);
            assert_ne!((a.low, a.high), (c.low, c.high));
            assert!(0.1 <= a.low && a.low < a.mean && a.mean < a.high && a.high <= 0.9, "{a:?}");
            assert_eq!(a.method.label("PTID"), "bootstrap(PTID)");
        }
        // 19 patients: the t interval, which draws nothing (the seed does not matter)
        let (v, units) = spread(38, 2);
        let t = mean_interval(&v, Some(&units), 500, 7).unwrap();
        assert_eq!(t.method, IntervalMethod::StudentT { df: 18 });
        assert_eq!(t, mean_interval(&v, Some(&units), 500, 8).unwrap());
    }

    #[test]
    fn constant_data_give_a_point_and_too_few_units_no_interval() {
        let k = mean_interval(&[0.25; 6], None, 200, 1).unwrap();
        assert_eq!((k.low, k.high, k.mean), (0.25, 0.25, 0.25));
        assert_eq!(k.method, IntervalMethod::StudentT { df: 5 });
        // NaN left out; one unit: no interval (never a t interval on 0 df)
        let one = mean_interval(&[0.3, f64::NAN, 0.5], Some(&names(&["p", "q", "p"])), 200, 1).unwrap();
        assert_eq!((one.n, one.units, one.method), (2, 1, IntervalMethod::None));
        assert!(one.low.is_nan() && one.high.is_nan() && (one.mean - 0.4).abs() < 1e-12);
        assert_eq!(one.method.label("PTID"), "none");
        // no resamples asked for: no interval of either kind
        let v = [0.2, 0.9, 0.4, 0.6, 0.1, 0.8, 0.3];
        let none = mean_interval(&v, None, 0, 1).unwrap();
        assert!(none.low.is_nan() && none.high.is_nan() && none.method == IntervalMethod::None);
        assert!(mean_interval(&v, Some(&names(&["a"])), 10, 1).is_err());
        let empty = mean_interval(&[f64::NAN], None, 10, 1).unwrap();
        assert!(empty.mean.is_nan() && empty.low.is_nan() && empty.n == 0);
    }

    #[test]
    fn t_quantiles_match_known_values() {
        // scipy.stats.t.ppf(0.975, df)
        for (df, q) in [(1, 12.706204736175), (2, 4.302652729749), (4, 2.776445105198), (19, 2.093024054408)] {
            assert!((t_975(df) - q).abs() < 1e-9, "df {df}: {}", t_975(df));
        }
        assert!((t_975(100_000) - Z_975).abs() < 1e-4);
        assert!(t_975(0).is_nan());
    }

    #[test]
    fn few_clusters_get_the_cluster_robust_t_interval() {
        // Known answers, computed independently with statsmodels 0.15 (OLS on a constant,
        // cov_type="cluster", CR1 correction, t on G − 1 df) and by hand with scipy:
        // two patients of 3 and 2 scans: mean 0.32, SE 0.144, t(1) 12.7062 → [−1.50969, 2.14969]
        let v = [0.10, 0.30, 0.20, 0.60, 0.40];
        let two = mean_interval(&v, Some(&names(&["a", "a", "a", "b", "b"])), 2000, 3).unwrap();
        assert_eq!((two.n, two.units, two.method), (5, 2, IntervalMethod::StudentT { df: 1 }));
        assert!((two.mean - 0.32).abs() < 1e-12, "{two:?}");
        assert!((two.low + 1.509693482009).abs() < 1e-9 && (two.high - 2.149693482009).abs() < 1e-9, "{two:?}");
        assert_eq!(two.method.label("PTID"), "t(PTID, 1 df)");
        // five patients of 2, 1, 3, 1, 2 scans: mean 0.216667, SE 0.0350142, t(4) 2.77645
        let v = [0.12, 0.18, 0.30, 0.25, 0.35, 0.20, 0.05, 0.40, 0.10];
        let u = names(&["p1", "p1", "p2", "p3", "p3", "p3", "p4", "p5", "p5"]);
        let five = mean_interval(&v, Some(&u), 2000, 3).unwrap();
        assert_eq!(five.method, IntervalMethod::StudentT { df: 4 });
        assert!((five.mean - 0.216666666667).abs() < 1e-9, "{five:?}");
        assert!((five.low - 0.119451650118).abs() < 1e-9 && (five.high - 0.313881683215).abs() < 1e-9, "{five:?}");
        // one scan per unit: the usual t interval, mean ± t(4) s/√5 = [0.135452, 0.824548]
        let scans = mean_interval(&[0.2, 0.4, 0.6, 0.3, 0.9], None, 2000, 3).unwrap();
        assert_eq!(scans.method.label("scans"), "t(scans, 4 df)");
        assert!((scans.low - 0.135452223485).abs() < 1e-9 && (scans.high - 0.824547776515).abs() < 1e-9);
        // clamped to a share's range, NaN kept
        let c = two.clamped(0.0, 1.0);
        assert_eq!((c.low, c.high, c.mean), (0.0, 1.0, two.mean));
        let none = MeanInterval { low: f64::NAN, high: f64::NAN, ..two }.clamped(0.0, 1.0);
        assert!(none.low.is_nan() && none.high.is_nan());
    }

    #[test]
    fn two_patients_no_longer_give_the_patient_means_as_interval() {
        // The reviewer's case: the bootstrap over two patients gave exactly [0.1, 0.5], the two
        // patient means, as a "95 % interval". Now t(1) × the cluster-robust SE: 0.3 ± 12.71 × 0.2.
        let v = [0.1, 0.1, 0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5];
        let units = names(&["a", "a", "a", "a", "a", "b", "b", "b", "b", "b"]);
        let patients = mean_interval(&v, Some(&units), 2000, 3).unwrap();
        assert_eq!(patients.units, 2);
        assert_ne!((patients.low, patients.high), (0.1, 0.5));
        assert!(patients.low < 0.1 - 1.0 && patients.high > 0.5 + 1.0, "{patients:?}");
        assert!((patients.high - patients.low - 2.0 * 12.706204736175 * 0.2).abs() < 1e-9, "{patients:?}");
        // counting the ten scans as independent (9 df) gives a far narrower interval
        let scans = mean_interval(&v, None, 2000, 3).unwrap();
        assert_eq!(scans.method, IntervalMethod::StudentT { df: 9 });
        assert!(patients.high - patients.low > 5.0 * (scans.high - scans.low), "{patients:?} {scans:?}");
    }

    fn score(mass: f64, hit: Option<bool>, chance: f64) -> GroundTruthScores {
        GroundTruthScores {
            mass_accuracy: mass,
            rank_accuracy: mass,
            pointing_hit: hit,
            pointing_share: f64::NAN,
            chance,
        }
    }

    #[test]
    fn summary_matches_hand_values() {
        let key = |m: &str| vec![("method", m.to_string())];
        let rows = vec![
            (key("a"), score(0.2, Some(true), 0.1)),
            (key("a"), score(0.4, Some(false), 0.1)),
            (key("a"), score(0.6, Some(true), 0.1)),
            (key("a"), score(f64::NAN, None, 0.1)),
            (key("b"), score(0.5, Some(true), 0.1)),
        ];
        let per_scan = per_scan_frame(&rows).unwrap();
        let sum = summarise(&per_scan, &["method"], &Bootstrap { cluster: None, ..Bootstrap::default() }).unwrap();
        let names: Vec<&str> = sum.get_column_names().iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["method", "metric", "n", "mean", "sd", "ci_low", "ci_high", "interval"]);
        let method = column_str(&sum, "t", "method").unwrap();
        let metric = column_str(&sum, "t", "metric").unwrap();
        let find = |m: &str, k: &str| (0..sum.height()).find(|&i| method[i] == m && metric[i] == k).unwrap();
        let mean = column_f64(&sum, "t", "mean").unwrap();
        let lo = column_f64(&sum, "t", "ci_low").unwrap();
        let hi = column_f64(&sum, "t", "ci_high").unwrap();
        let n = column_f64(&sum, "t", "n").unwrap();
        let interval = column_str(&sum, "t", "interval").unwrap();
        // mass of a: 0.2, 0.4, 0.6 (NaN left out): mean 0.4 ± t(2) 0.2/√3, [−0.0968, 0.8968],
        // clamped to [0, 1]
        let i = find("a", "mass_accuracy");
        assert_eq!(n[i], 3.0);
        assert!((mean[i] - 0.4).abs() < 1e-12);
        assert!(lo[i] == 0.0 && (hi[i] - 0.896827542350).abs() < 1e-9, "{} {}", lo[i], hi[i]);
        assert_eq!(interval[i], "t(scans, 2 df)");
        // pointing of a: 2 of 3 → Wilson (0.2077, 0.9385)
        let i = find("a", "pointing_hit");
        assert!((mean[i] - 2.0 / 3.0).abs() < 1e-12);
        assert!((lo[i] - 0.2077).abs() < 1e-4 && (hi[i] - 0.9385).abs() < 1e-4, "{} {}", lo[i], hi[i]);
        assert_eq!(interval[i], "wilson");
        // one scan: mean, no interval
        let i = find("b", "mass_accuracy");
        assert_eq!(mean[i], 0.5);
        assert!(lo[i].is_nan());
        assert_eq!(interval[i], "none");
        // mass, rank, pointing hit, pointing share, chance
        assert_eq!(sum.height(), 2 * 5);
    }

    /// A per-scan table of `method` × `model` with patients and scans (`Image.ID`): the trained
    /// model's mass accuracy per scan, the random model's at chance.
    fn per_scan_table(methods: &[(&str, &[f64])]) -> DataFrame {
        let mut rows = Vec::new();
        for (m, trained) in methods {
            for (i, &v) in trained.iter().enumerate() {
                let patient = format!("p{}", i / 2);
                let key = |model: &str| {
                    vec![
                        ("method", m.to_string()),
                        ("model", model.to_string()),
                        ("PTID", patient.clone()),
                        (IMAGE_ID, (100 + i).to_string()),
                    ]
                };
                rows.push((key(TRAINED), score(v, Some(v > 0.3), 0.05)));
                rows.push((key(RANDOM), score(0.05 + 0.01 * (i % 3) as f64, Some(false), 0.05)));
            }
        }
        per_scan_frame(&rows).unwrap()
    }

    #[test]
    fn scan_summary_and_verdicts_tell_passing_from_failing_methods() {
        let good: &[f64] = &[0.4, 0.5, 0.45, 0.35, 0.5, 0.42];
        let weak: &[f64] = &[0.1, 0.12, 0.09, 0.11, 0.1, f64::NAN];
        let per_scan = per_scan_table(&[("good", good), ("weak", weak)]);
        let boot = Bootstrap { samples: 1000, ..Bootstrap::default() };
        let sum = scan_summary(&per_scan, &["method", "model"], &boot).unwrap();
        assert_eq!(sum.height(), 4);
        let n = column_f64(&sum, "s", "n_scans").unwrap();
        let undefined = column_f64(&sum, "s", "n_undefined").unwrap();
        let patients = column_f64(&sum, "s", "n_patients").unwrap();
        let chance = column_f64(&sum, "s", "chance").unwrap();
        let ratio = column_f64(&sum, "s", "mass_vs_chance").unwrap();
        // rows: good/trained, good/random, weak/trained, weak/random
        assert_eq!((n[0], undefined[0], patients[0]), (6.0, 0.0, 3.0));
        assert_eq!((n[2], undefined[2], patients[2]), (5.0, 1.0, 3.0));
        assert!((chance[0] - 0.05).abs() < 1e-12);
        assert!((ratio[0] - good.iter().sum::<f64>() / 6.0 / 0.05).abs() < 1e-9);
        for c in ["mass_ci_low", "mass_ci_high", "rank_ci_low", "rank_ci_high", "pointing_ci_low", "pointing_ci_high"] {
            let v = column_f64(&sum, "s", c).unwrap();
            assert!(v.iter().all(|x| (0.0..=1.0).contains(x)), "{c}: {v:?}");
        }
        let interval = column_str(&sum, "s", "interval").unwrap();
        assert_eq!(interval, ["t(PTID, 2 df)"; 4]);
        // every trained scan of `good` is scored under both models, 5 of `weak`'s
        let paired = column_f64(&sum, "s", "paired_scans").unwrap();
        assert_eq!((paired[0], paired[2]), (6.0, 5.0));
        assert!(paired[1].is_nan() && paired[3].is_nan());
        // the same method's interval does not move when another method joins the table
        let alone = scan_summary(&per_scan_table(&[("good", good)]), &["method", "model"], &boot).unwrap();
        assert_eq!(
            column_f64(&alone, "s", "mass_ci_low").unwrap()[0],
            column_f64(&sum, "s", "mass_ci_low").unwrap()[0]
        );

        let v = verdicts(&sum).unwrap();
        assert_eq!(column_str(&v, "v", "method").unwrap(), ["good", "weak"]);
        let hits = |c: &str| column_hits(&v, "v", c).unwrap();
        assert_eq!(hits("beats_3x_chance"), [Some(true), Some(false)]);
        assert_eq!(hits("lower_bound_above_random"), [Some(true), Some(true)]);
        assert_eq!(hits("passes"), [Some(true), Some(false)]);

        let lines = verdict_lines(&v, &["good", "weak"], 1).unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].contains("**not met**") && lines[0].contains("1 of 2") && lines[0].contains("weak"),
            "{}",
            lines[0]
        );
        // weak: mean 0.104 = 2.08× chance, below the 3× it needs, ≥ 0.15
        assert!(
            lines[1].starts_with("**weak** fails") && lines[1].contains("2.080×") && lines[1].contains("below the 3×")
        );
        assert!(lines[1].contains("0.1500") && !lines[1].contains("randomised"), "{}", lines[1]);
        let lines = verdict_lines(&v, &["good"], 1).unwrap();
        assert!(lines[0].contains("**met**"), "{}", lines[0]);
        // a required method that never ran is named as not run, not as failing, and the target
        // is not met without it
        let lines = verdict_lines(&v, &["good", "occlusion"], 1).unwrap();
        assert!(lines[0].contains("**not met**") && lines[0].ends_with("; not run: occlusion."), "{}", lines[0]);
        assert!(!lines[0].contains("not passing"), "{}", lines[0]);
        let lines = verdict_lines(&v, &["weak", "occlusion"], 1).unwrap();
        assert!(lines[0].contains("; not passing: weak; not run: occlusion."), "{}", lines[0]);
    }

    #[test]
    fn chance_is_averaged_over_the_scans_with_a_score() {
        // regression: the chance level was averaged over every scan of a group, the scores over
        // the scans where they are defined (grad-cam: chance over 7 scans, mass over 5)
        let key = |m: &str| vec![("method", m.to_string()), ("PTID", "p".to_string())];
        let rows = vec![
            (key("a"), score(0.3, Some(true), 0.1)),
            (key("a"), score(0.5, Some(false), 0.2)),
            (key("a"), score(f64::NAN, None, 0.9)),
        ];
        let per_scan = per_scan_frame(&rows).unwrap();
        let boot = Bootstrap::default();
        let wide = scan_summary(&per_scan, &["method"], &boot).unwrap();
        assert!((column_f64(&wide, "s", "chance").unwrap()[0] - 0.15).abs() < 1e-12);
        assert!((column_f64(&wide, "s", "mass_vs_chance").unwrap()[0] - 0.4 / 0.15).abs() < 1e-12);
        let long = summarise(&per_scan, &["method"], &boot).unwrap();
        let metric = column_str(&long, "l", "metric").unwrap();
        let at = |m: &str| metric.iter().position(|x| x == m).unwrap();
        let (n, mean) = (column_f64(&long, "l", "n").unwrap(), column_f64(&long, "l", "mean").unwrap());
        assert_eq!((n[at(CHANCE_COLUMN)], n[at("mass_accuracy")]), (2.0, 2.0));
        assert!((mean[at(CHANCE_COLUMN)] - 0.15).abs() < 1e-12, "{}", mean[at(CHANCE_COLUMN)]);
    }

    /// Per-scan rows of one method, patients `p0`… with two scans each (`Image.ID` 1…), the
    /// trained and the randomised model's mass accuracy per scan (NaN: undefined).
    fn paired_rows(trained: &[f64], random: &[f64], with_ids: bool) -> DataFrame {
        let mut rows = Vec::new();
        for (model, values) in [(TRAINED, trained), (RANDOM, random)] {
            for (i, &v) in values.iter().enumerate() {
                let mut key = vec![("method", "m".to_string()), ("model", model.to_string())];
                key.push(("PTID", format!("p{}", i / 2)));
                if with_ids {
                    key.push((IMAGE_ID, (i + 1).to_string()));
                }
                rows.push((key, score(v, v.is_finite().then_some(true), 0.05)));
            }
        }
        per_scan_frame(&rows).unwrap()
    }

    #[test]
    fn trained_and_random_are_compared_on_the_scans_scored_under_both() {
        // regression: the trained model's lower bound (its 10 scored scans) was compared with the
        // randomised model's mean over all 12 scans, which the two scans the trained map leaves
        // out pull down from 0.3 to 0.25
        let nan = f64::NAN;
        let trained = [0.26, 0.30, 0.28, 0.30, 0.27, 0.31, 0.29, 0.29, 0.28, 0.30, nan, nan];
        let random = [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.0, 0.0];
        let boot = Bootstrap::default();
        let sum = scan_summary(&paired_rows(&trained, &random, true), &["method", "model"], &boot).unwrap();
        let num = |c: &str| column_f64(&sum, "s", c).unwrap();
        assert!((num("mass_accuracy")[1] - 0.25).abs() < 1e-12);
        assert!((num("paired_random_mass")[0] - 0.3).abs() < 1e-12);
        assert_eq!(num("paired_scans")[0], 10.0);
        // the lower bound over the 10 paired scans is the trained row's own (same scans)
        let low = num("paired_mass_ci_low")[0];
        assert_eq!(low, num("mass_ci_low")[0]);
        assert!(0.25 < low && low < 0.3, "{low}");
        let v = verdicts(&sum).unwrap();
        assert_eq!(column_hits(&v, "v", "lower_bound_above_random").unwrap(), [Some(false)]);
        assert_eq!(column_hits(&v, "v", "passes").unwrap(), [Some(false)]);
        assert_eq!(column_f64(&v, "v", "random_mass_accuracy").unwrap(), [num("paired_random_mass")[0]]);
        let lines = verdict_lines(&v, &[], 1).unwrap();
        assert!(lines[1].contains("not above the randomised model's mean 0.3000 on the 10 scans scored under both"));

        // without scan names the two sets cannot be matched: not judged, not passed
        let sum = scan_summary(&paired_rows(&trained, &random, false), &["method", "model"], &boot).unwrap();
        assert!(column_f64(&sum, "s", "paired_scans").unwrap()[0].is_nan());
        let v = verdicts(&sum).unwrap();
        assert_eq!(column_hits(&v, "v", "lower_bound_above_random").unwrap(), [None]);
        assert_eq!(column_hits(&v, "v", "passes").unwrap(), [None]);
        let lines = verdict_lines(&v, &[], 1).unwrap();
        assert!(lines[1].contains("no randomised baseline scored on the same scans"), "{lines:?}");
        // … unless every scan is scored under both
        let all = [0.5; 12];
        let sum = scan_summary(&paired_rows(&all, &random, false), &["method", "model"], &boot).unwrap();
        assert_eq!(column_f64(&sum, "s", "paired_scans").unwrap()[0], 12.0);
        assert_eq!(column_hits(&verdicts(&sum).unwrap(), "v", "passes").unwrap(), [Some(true)]);

        // no scan scored under both models
        let only_first = [0.5, nan, nan, nan];
        let only_second = [nan, 0.1, 0.1, 0.1];
        let sum = scan_summary(&paired_rows(&only_first, &only_second, true), &["method", "model"], &boot).unwrap();
        let v = verdicts(&sum).unwrap();
        assert_eq!(column_hits(&v, "v", "lower_bound_above_random").unwrap(), [None]);
        let lines = verdict_lines(&v, &[], 1).unwrap();
        assert!(lines[1].contains("no scan has a defined score under both models"), "{lines:?}");

        // no interval (no resamples asked for): never a pass, even far above the baseline
        let boot = Bootstrap { samples: 0, ..Bootstrap::default() };
        let sum = scan_summary(&paired_rows(&all, &random, true), &["method", "model"], &boot).unwrap();
        assert_eq!(column_str(&sum, "s", "interval").unwrap(), ["none", "none"]);
        let v = verdicts(&sum).unwrap();
        assert_eq!(column_hits(&v, "v", "lower_bound_above_random").unwrap(), [None]);
        assert_eq!(column_hits(&v, "v", "passes").unwrap(), [None]);
        // a summary without the paired columns (written before them) is not judged either
        let sum = scan_summary(&paired_rows(&all, &random, true), &["method", "model"], &Bootstrap::default()).unwrap();
        let old = sum.drop_many(["paired_scans", "paired_mass_ci_low", "paired_random_mass"]);
        assert_eq!(column_hits(&verdicts(&old).unwrap(), "v", "lower_bound_above_random").unwrap(), [None]);
    }

    #[test]
    fn verdicts_without_a_baseline_or_interval_are_not_judged() {
        let rows =
            vec![(vec![("method", "m".to_string()), ("model", TRAINED.to_string())], score(0.5, Some(true), 0.1))];
        let sum = scan_summary(&per_scan_frame(&rows).unwrap(), &["method", "model"], &Bootstrap::default()).unwrap();
        let v = verdicts(&sum).unwrap();
        assert_eq!(column_hits(&v, "v", "beats_3x_chance").unwrap(), [Some(true)]);
        assert_eq!(column_hits(&v, "v", "lower_bound_above_random").unwrap(), [None]);
        assert_eq!(column_hits(&v, "v", "passes").unwrap(), [None]);
        let lines = verdict_lines(&v, &[], 1).unwrap();
        assert!(lines[1].starts_with("**m** is not judged") && lines[1].contains("fewer than 2 patients"), "{lines:?}");
        // every map all-zero: one reason, not two
        let rows =
            vec![(vec![("method", "z".to_string()), ("model", TRAINED.to_string())], score(f64::NAN, None, 0.1))];
        let sum = scan_summary(&per_scan_frame(&rows).unwrap(), &["method", "model"], &Bootstrap::default()).unwrap();
        assert_eq!(column_f64(&sum, "s", "n_undefined").unwrap(), [1.0]);
        let lines = verdict_lines(&verdicts(&sum).unwrap(), &["z"], 1).unwrap();
        assert!(lines[0].contains("**not met**") && lines[0].contains("not passing: z"), "{lines:?}");
        assert_eq!(
            lines[1],
            "**z** is not judged: no scan has a defined score (every map is zero on the scored voxels)."
        );
    }
}
