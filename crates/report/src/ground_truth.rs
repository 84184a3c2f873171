//! Scoring a relevance map against a known ground truth (the atrophy planted in a synthetic
//! scan): relevance mass accuracy, relevance rank accuracy (Arras et al. 2022) and the pointing
//! game, per scan, with the chance level of each scan; then means with 95 % intervals per method
//! and model (the trained model and the randomised-weights sanity baseline), and a verdict per
//! method against a target.
//!
//! Intervals stay inside [0, 1]: mass and rank accuracy get a seeded percentile bootstrap of the
//! mean that resamples **patients** (all scans of a drawn patient together, since the scans of
//! one patient share anatomy and atrophy and their scores are correlated) when the per-scan table
//! has a patient column, scans otherwise; the pointing-game hit rate gets a Wilson score interval
//! whose sample size is the effective number of scans under that clustering.

use std::collections::HashMap;

use ndarray::{Array3, ArrayView3};
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use adni_data::stats::quantile_sorted;

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

/// How the summaries resample for their percentile bootstrap intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// Resamples per interval; 0 = no bootstrap interval (NaN bounds). Default 2000.
    pub samples: usize,
    /// Seed. Each group and metric draws from its own stream derived from the seed and the
    /// group's key, so an interval does not change when other methods join the table.
    /// Default 2018.
    pub seed: u64,
    /// Column naming the resampling unit, the patient (`PTID`): a drawn patient brings all of
    /// its scans, since scans of one patient are correlated. `None`, or a table without that
    /// column: scans are drawn one by one. Default `Some("PTID")`.
    pub cluster: Option<String>,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self { samples: 2000, seed: 2018, cluster: Some("PTID".into()) }
    }
}

/// A mean with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanInterval {
    /// Values used (finite ones).
    pub n: usize,
    /// Resampling units among them (patients, or `n` without clusters).
    pub units: usize,
    /// Mean of the values.
    pub mean: f64,
    /// Sample standard deviation of the values (NaN below 2).
    pub sd: f64,
    /// Lower bound (2.5 % percentile of the resampled means).
    pub low: f64,
    /// Upper bound (97.5 % percentile).
    pub high: f64,
}

/// Mean of the finite `values` with a seeded percentile bootstrap 95 % interval: `samples`
/// resamples, each drawing as many units as there are, with replacement, and taking the mean
/// over all values of the drawn units (so a patient with more scans weighs more, as in the
/// mean). `units` (same length as `values`) names each value's unit, for example its patient;
/// `None`: every value is its own unit. The bounds lie between the smallest and the largest
/// unit mean, so values in [0, 1] give an interval in [0, 1]. NaN bounds for fewer than two
/// units (one patient says nothing about the spread between patients) or `samples == 0`.
pub fn bootstrap_mean(values: &[f64], units: Option<&[String]>, samples: usize, seed: u64) -> Result<MeanInterval> {
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
        return Ok(MeanInterval { n: 0, units: 0, mean: nan, sd: nan, low: nan, high: nan });
    }
    let mean = finite.iter().sum::<f64>() / n as f64;
    let sd = if n > 1 { (finite.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { nan };
    let c = sums.len();
    if c < 2 || samples == 0 {
        return Ok(MeanInterval { n, units: c, mean, sd, low: nan, high: nan });
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

/// Means with 95 % intervals of every score column of a per-scan table (such as
/// [`per_scan_frame`]'s), per distinct combination of `group_cols` (in order of first
/// appearance), in long form for [`crate::figures::ground_truth_chart`]. Float columns: the mean
/// of the finite values with [`bootstrap_mean`]'s percentile interval (resampling `boot.cluster`
/// units where the table has that column; `interval` says `bootstrap(<column>)` or
/// `bootstrap(scans)`). Boolean columns: the hit rate among the non-null values with the
/// [`wilson_interval`] on the [`effective_n`] (`interval` = `wilson`). Integer and text columns
/// outside `group_cols` are identifiers and are skipped, and so is the cluster column.
///
/// Output: the `group_cols` (as text), then `metric`, `n` (values used), `mean`, `sd`,
/// `ci_low`, `ci_high`, `interval`.
pub fn summarise(per_scan: &DataFrame, group_cols: &[&str], boot: &Bootstrap) -> Result<DataFrame> {
    const TABLE: &str = "per-scan scores";
    let (groups, rows_of) = groups_of(per_scan, TABLE, group_cols)?;
    let units = units_of(per_scan, TABLE, boot)?;
    let unit_label = match (&units, &boot.cluster) {
        (Some(_), Some(c)) => format!("bootstrap({c})"),
        _ => "bootstrap(scans)".to_string(),
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
                let v: Vec<f64> = rows.iter().map(|&r| floats[r]).collect();
                let u: Option<Vec<String>> = units.as_ref().map(|u| rows.iter().map(|&r| u[r].clone()).collect());
                let mut parts: Vec<&str> = g.iter().map(String::as_str).collect();
                parts.push(name);
                bootstrap_mean(&v, u.as_deref(), boot.samples, stream_seed(boot.seed, &parts))?
            } else {
                let (n, rate, low, high) = pointing_of(&hits, units.as_deref(), rows)?;
                let sd = if n > 1 { (rate * (1.0 - rate) * n as f64 / (n as f64 - 1.0)).sqrt() } else { f64::NAN };
                MeanInterval { n, units: n, mean: rate, sd, low, high }
            };
            stats.push(s);
            for (c, k) in g.iter().enumerate() {
                out_keys[c].push(k.clone());
            }
            metric.push(name.to_string());
            interval.push(if is_float { unit_label.clone() } else { "wilson".to_string() });
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
/// | `chance` | mean over the scans of the mask's share of the scored voxels: the chance level of every score |
/// | `mass_accuracy`, `mass_ci_low`, `mass_ci_high` | mean and bootstrap 95 % interval ([`bootstrap_mean`]) |
/// | `mass_vs_chance` | `mass_accuracy ÷ chance` |
/// | `rank_accuracy`, `rank_ci_low`, `rank_ci_high` | mean and bootstrap 95 % interval |
/// | `pointing_rate`, `pointing_ci_low`, `pointing_ci_high` | hit rate and Wilson 95 % interval on the effective n ([`effective_n`]) |
pub fn scan_summary(per_scan: &DataFrame, group_cols: &[&str], boot: &Bootstrap) -> Result<DataFrame> {
    const TABLE: &str = "per-scan scores";
    let (groups, rows_of) = groups_of(per_scan, TABLE, group_cols)?;
    let units = units_of(per_scan, TABLE, boot)?;
    let mass = column_f64(per_scan, TABLE, "mass_accuracy")?;
    let rank = column_f64(per_scan, TABLE, "rank_accuracy")?;
    let chance_col = column_f64(per_scan, TABLE, CHANCE_COLUMN)?;
    let hits = column_hits(per_scan, TABLE, "pointing_hit")?;

    let mut out_keys: Vec<Vec<String>> = vec![Vec::new(); group_cols.len()];
    let (mut n_scans, mut n_undefined, mut n_patients) = (Vec::new(), Vec::new(), Vec::<Option<u64>>::new());
    let mut chance = Vec::new();
    let (mut m, mut r) = (Vec::<MeanInterval>::new(), Vec::<MeanInterval>::new());
    let mut pointing: Vec<(f64, f64, f64)> = Vec::new();
    for (g, rows) in groups.iter().zip(&rows_of) {
        let defined: Vec<usize> = rows.iter().copied().filter(|&i| mass[i].is_finite()).collect();
        let u: Option<Vec<String>> = units.as_ref().map(|u| defined.iter().map(|&i| u[i].clone()).collect());
        let pick = |col: &[f64]| -> Vec<f64> { defined.iter().map(|&i| col[i]).collect() };
        let seed_for = |metric: &str| {
            let mut parts: Vec<&str> = g.iter().map(String::as_str).collect();
            parts.push(metric);
            stream_seed(boot.seed, &parts)
        };
        let mi = bootstrap_mean(&pick(&mass), u.as_deref(), boot.samples, seed_for("mass_accuracy"))?;
        let ri = bootstrap_mean(&pick(&rank), u.as_deref(), boot.samples, seed_for("rank_accuracy"))?;
        let c: Vec<f64> = pick(&chance_col).into_iter().filter(|v| v.is_finite()).collect();
        chance.push(if c.is_empty() { f64::NAN } else { c.iter().sum::<f64>() / c.len() as f64 });
        let (_, rate, lo, hi) = pointing_of(&hits, units.as_deref(), &defined)?;
        pointing.push((rate, lo, hi));
        n_scans.push(defined.len() as u64);
        n_undefined.push((rows.len() - defined.len()) as u64);
        n_patients.push(u.as_ref().map(|u| {
            let mut d: Vec<&String> = u.iter().collect();
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
/// `mass_accuracy` (trained), `mass_vs_chance`, `beats_3x_chance` (mean ≥ [`TARGET_FACTOR`] ×
/// chance), `mass_ci_low` (trained), `random_mass_accuracy` (the randomised model's mean),
/// `lower_bound_above_random` (trained lower bound > randomised mean) and `passes` (both). A
/// test whose inputs are missing or NaN (no interval, no baseline) is null, and so is `passes`
/// unless the other test failed. Methods without a trained row are left out.
pub fn verdicts(summary: &DataFrame) -> Result<DataFrame> {
    const TABLE: &str = "ground-truth summary";
    let method = column_str(summary, TABLE, "method")?;
    let model = column_str(summary, TABLE, "model")?;
    let chance = column_f64(summary, TABLE, "chance")?;
    let mass = column_f64(summary, TABLE, "mass_accuracy")?;
    let low = column_f64(summary, TABLE, "mass_ci_low")?;
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
    for m in &methods {
        let t = row(m, TRAINED)
            .ok_or_else(|| ReportError::column(TABLE, "model", format!("no `{TRAINED}` row for {m}")))?;
        let random_mean = row(m, RANDOM).map_or(f64::NAN, |i| mass[i]);
        let r = if chance[t] > 0.0 { mass[t] / chance[t] } else { f64::NAN };
        let b = test(mass[t] >= TARGET_FACTOR * chance[t], mass[t].is_finite() && chance[t] > 0.0);
        let a = test(low[t] > random_mean, low[t].is_finite() && random_mean.is_finite());
        passes.push(match (b, a) {
            (Some(true), Some(true)) => Some(true),
            (Some(false), _) | (_, Some(false)) => Some(false),
            _ => None,
        });
        c.push(chance[t]);
        mm.push(mass[t]);
        ratio.push(r);
        beats.push(b);
        lo.push(low[t]);
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
    let chance = column_f64(verdict, TABLE, "chance")?;
    let mass = column_f64(verdict, TABLE, "mass_accuracy")?;
    let ratio = column_f64(verdict, TABLE, "mass_vs_chance")?;
    let low = column_f64(verdict, TABLE, "mass_ci_low")?;
    let random = column_f64(verdict, TABLE, "random_mass_accuracy")?;
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
                "mean mass accuracy {} is {}× chance ({}), short of {}× by {}× (it would need ≥ {})",
                f(mass[i]),
                f(ratio[i]),
                f(chance[i]),
                TARGET_FACTOR,
                f(TARGET_FACTOR - ratio[i]),
                f(TARGET_FACTOR * chance[i])
            )),
            Some(true) => {}
            None => why.push("mass accuracy against chance cannot be judged (no chance level)".into()),
        }
        match above[i] {
            Some(false) => why.push(format!(
                "its 95 % lower bound {} is not above the randomised model's mean {} (short by {})",
                f(low[i]),
                f(random[i]),
                f(random[i] - low[i])
            )),
            Some(true) => {}
            None if !low[i].is_finite() => why.push(
                "the comparison with the randomised model cannot be judged (no interval: fewer than 2 patients)".into(),
            ),
            None => {
                why.push("the comparison with the randomised model cannot be judged (no randomised baseline)".into())
            }
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

    #[test]
    fn bootstrap_is_seeded_bounded_and_a_point_for_constant_data() {
        let v = [0.2, 0.9, 0.4, 0.6, 0.1, 0.8, 0.3];
        let a = bootstrap_mean(&v, None, 500, 7).unwrap();
        let b = bootstrap_mean(&v, None, 500, 7).unwrap();
        let c = bootstrap_mean(&v, None, 500, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!((a.low, a.high), (c.low, c.high));
        assert!(0.1 <= a.low && a.low < a.mean && a.mean < a.high && a.high <= 0.9, "{a:?}");
        assert!((a.mean - 3.3 / 7.0).abs() < 1e-12);
        let k = bootstrap_mean(&[0.25; 6], None, 200, 1).unwrap();
        assert_eq!((k.low, k.high, k.mean), (0.25, 0.25, 0.25));
        // NaN left out; one unit: no interval; no resamples: no interval
        let one = bootstrap_mean(&[0.3, f64::NAN, 0.5], Some(&names(&["p", "q", "p"])), 200, 1).unwrap();
        assert_eq!((one.n, one.units), (2, 1));
        assert!(one.low.is_nan() && (one.mean - 0.4).abs() < 1e-12);
        assert!(bootstrap_mean(&v, None, 0, 1).unwrap().low.is_nan());
        assert!(bootstrap_mean(&v, Some(&names(&["a"])), 10, 1).is_err());
    }

    #[test]
    fn patient_bootstrap_is_wider_than_scan_bootstrap_for_correlated_scans() {
        // two patients, each with five identical scores: only two independent values
        let v = [0.1, 0.1, 0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5];
        let units = names(&["a", "a", "a", "a", "a", "b", "b", "b", "b", "b"]);
        let scans = bootstrap_mean(&v, None, 2000, 3).unwrap();
        let patients = bootstrap_mean(&v, Some(&units), 2000, 3).unwrap();
        assert_eq!(patients.units, 2);
        assert!(patients.high - patients.low > scans.high - scans.low, "{patients:?} {scans:?}");
        // {a, a} and {b, b} are each drawn a quarter of the time: the bounds are the patient means
        assert_eq!((patients.low, patients.high), (0.1, 0.5));
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
        let method = column_str(&sum, "t", "method").unwrap();
        let metric = column_str(&sum, "t", "metric").unwrap();
        let find = |m: &str, k: &str| (0..sum.height()).find(|&i| method[i] == m && metric[i] == k).unwrap();
        let mean = column_f64(&sum, "t", "mean").unwrap();
        let lo = column_f64(&sum, "t", "ci_low").unwrap();
        let hi = column_f64(&sum, "t", "ci_high").unwrap();
        let n = column_f64(&sum, "t", "n").unwrap();
        let interval = column_str(&sum, "t", "interval").unwrap();
        // mass of a: 0.2, 0.4, 0.6 (NaN left out): mean 0.4, bootstrap bounds within [0.2, 0.6]
        let i = find("a", "mass_accuracy");
        assert_eq!(n[i], 3.0);
        assert!((mean[i] - 0.4).abs() < 1e-12);
        assert!(0.2 <= lo[i] && lo[i] < 0.4 && 0.4 < hi[i] && hi[i] <= 0.6, "{} {}", lo[i], hi[i]);
        assert_eq!(interval[i], "bootstrap(scans)");
        // pointing of a: 2 of 3 → Wilson (0.2077, 0.9385)
        let i = find("a", "pointing_hit");
        assert!((mean[i] - 2.0 / 3.0).abs() < 1e-12);
        assert!((lo[i] - 0.2077).abs() < 1e-4 && (hi[i] - 0.9385).abs() < 1e-4, "{} {}", lo[i], hi[i]);
        assert_eq!(interval[i], "wilson");
        // one scan: mean, no interval
        let i = find("b", "mass_accuracy");
        assert_eq!(mean[i], 0.5);
        assert!(lo[i].is_nan());
        // mass, rank, pointing hit, pointing share, chance
        assert_eq!(sum.height(), 2 * 5);
    }

    /// A per-scan table of `method` × `model` with patients: the trained model's mass accuracy
    /// per scan, the random model's at chance.
    fn per_scan_table(methods: &[(&str, &[f64])]) -> DataFrame {
        let mut rows = Vec::new();
        for (m, trained) in methods {
            for (i, &v) in trained.iter().enumerate() {
                let patient = format!("p{}", i / 2);
                let key = |model: &str| {
                    vec![("method", m.to_string()), ("model", model.to_string()), ("PTID", patient.clone())]
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
        // weak: mean 0.104 = 2.08× chance, short by 0.92×, needs 0.15
        assert!(lines[1].starts_with("**weak** fails") && lines[1].contains("2.080×") && lines[1].contains("0.9200×"));
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
