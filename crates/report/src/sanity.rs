//! Can the maps be trusted? The sanity and faithfulness checks of the relevance maps,
//! summarised from the per-scan tables the sanity runner writes (`holdout/sanity/*.csv`), and a
//! verdict per method with a paragraph that says, from the numbers, which maps hold up here.
//!
//! | test | per-scan table | summary | fails when |
//! |---|---|---|---|
//! | model-parameter randomisation (Adebayo et al. 2018), cascading from the output down | `cascade.csv` | [`summarise_cascade`] | mean Spearman to the trained model's map after randomising **every** layer > [`RANDOMISATION_THRESHOLD`] |
//! | data randomisation (Adebayo et al. 2018): a model trained on shuffled labels | `data_randomisation.csv` | [`summarise_data_randomisation`] | mean Spearman of its maps to the real model's maps > [`DATA_RANDOMISATION_THRESHOLD`] |
//! | faithfulness by deletion (Samek et al. 2017), voxels and atlas regions | `deletion.csv`, `aopc.csv` | [`summarise_deletion`], [`crate::faithfulness::summarise_aopc`] | the 95 % interval of the AOPC does not lie above the random ordering's |
//! | ground truth (synthetic cohorts) | `ground_truth.csv` of `interpret` | [`crate::ground_truth::scan_summary`] | [`crate::ground_truth::verdicts`] does not pass it |
//!
//! [`trust_table`] puts the four side by side, one row per method, with a verdict;
//! [`trust_paragraph`] writes the Markdown that reads it out; [`trust_display`] is the table for
//! people. Intervals are those of [`crate::ground_truth::mean_interval`] over **patients** (the
//! `PTID` column): a t interval on the cluster-robust standard error below
//! [`crate::ground_truth::MIN_UNITS_FOR_BOOTSTRAP`] patients, a percentile bootstrap from there
//! (each group drawing from its own seeded stream); every summary names the method in its
//! `…_interval` columns.
//!
//! Every reader accepts a table read back from CSV: a numeric column that holds only empty cells
//! (read as text) counts as NaN, and a flag column as `true` / `false` / empty text.

use std::fmt::Write as _;

use polars::prelude::*;

use crate::error::{ReportError, Result};
use crate::ground_truth::{
    self, Bootstrap, IntervalMethod, MeanInterval, mean_interval, stream_seed, unit_name, units_of,
};
use crate::sanity_tables::{
    CascadeRow, DataRandomisationRow, DeletionRow, KIND, METHOD, N_SCANS, ORDERING, SPEARMAN, SSIM, STEP,
    ShuffledModelRow,
};
use crate::tables::{column_str, format_float, has_column};
use adni_data::table::{IMAGE_ID, PTID};

/// A method whose map, after randomising every layer of the network, still has a mean Spearman
/// rank correlation above this with the trained network's map fails the model randomisation test
/// (the flag of issue 16; the dashed line of [`crate::figures::randomisation_chart`]).
pub const RANDOMISATION_THRESHOLD: f64 = 0.5;

/// A method whose maps under the model trained on shuffled labels have a mean Spearman rank
/// correlation above this with the real model's maps fails the data randomisation test: the map
/// follows the image more than what the model learnt from the labels. The same bar as the model
/// randomisation test, since both ask whether the map changes when the learnt function does.
pub const DATA_RANDOMISATION_THRESHOLD: f64 = 0.5;

/// The data randomisation test is judged only when the shuffled-label model reproduces the
/// shuffled labels of its own training scans with at least this accuracy (row
/// [`ShuffledModelRow::SHUFFLED_FIT`] of `shuffled_model.csv`). Adebayo et al. (2018) train it
/// until it memorises them: a model that has not fitted the shuffled labels has learnt little of
/// anything, so its maps differing from the real model's (or not) says nothing about whether the
/// method follows what a model learnt.
pub const SHUFFLED_FIT_MIN: f64 = 0.9;

/// The `step` of the unrandomised model in [`summarise_cascade`]'s table (similarity 1).
pub const ORIGINAL_STEP: &str = "original";

/// Column `n_undefined` of the cascade and data randomisation summaries: scans whose similarity
/// is not defined (left out of the means).
pub const N_UNDEFINED: &str = "n_undefined";

/// The `ordering` of relevance-ordered deletion.
pub const RELEVANCE_ORDER: &str = "relevance";
/// The `ordering` of the random-ordering baseline.
pub const RANDOM_ORDER: &str = "random";
/// The `kind` of deletion curves that delete voxels.
pub const VOXELS: &str = "voxels";
/// The `kind` of deletion curves that delete atlas regions.
pub const REGIONS: &str = "regions";

/// The verdict of a method that passes every test that ran.
pub const TRUSTED: &str = "trusted";

/// Column of `deletion.csv`: whether the method's map ranks the scan's brain voxels
/// ([`crate::faithfulness::ranks_voxels`]). False for a map constant on the brain, whose deletion
/// order is only the random tie-break; the random-order rows under that method carry the same
/// flag, so a method's curves compare with the random order on the same scans. A table without
/// the column (written before it) counts every row as ranked.
pub const RANKS_VOXELS: &str = "ranks_voxels";

/// Column of `cascade.csv`: whether the trained model's map ranks the scan's brain voxels. False
/// for a constant map, whose similarities are undefined (NaN), the unrandomised model's too. A
/// table without the column counts a (method, scan) as constant when none of its steps has a
/// finite Spearman.
pub const TRAINED_MAP_RANKS: &str = "trained_map_ranks";

/// A numeric column as `f64`, nulls as NaN, also when it was read back from CSV as text (an
/// all-empty column, or `NaN` / `inf` spelled out): empty text is NaN, other text must parse as
/// a number. Errors name `table`, the column and the row.
fn numbers(df: &DataFrame, table: &str, name: &str) -> Result<Vec<f64>> {
    ground_truth::column_numbers(df, table, name)
}

/// [`numbers`] of a column that may be absent: all NaN without it.
fn numbers_or_nan(df: &DataFrame, table: &str, name: &str) -> Result<Vec<f64>> {
    if has_column(df, name) { numbers(df, table, name) } else { Ok(vec![f64::NAN; df.height()]) }
}

/// A flag column: booleans (null = undefined), numbers (`≠ 0`, NaN = undefined) or text
/// `true` / `false` / empty (as read back from CSV). Errors name `table`, the column and the row.
fn flags(df: &DataFrame, table: &str, name: &str) -> Result<Vec<Option<bool>>> {
    crate::ground_truth::column_hits(df, table, name)
}

/// Distinct values in order of first appearance.
fn distinct<'a>(values: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}

/// The range a similarity (Spearman, SSIM) can take: its intervals are clamped there.
const SIMILARITY_RANGE: (f64, f64) = (-1.0, 1.0);
/// The range of a share (mass accuracy).
const SHARE_RANGE: (f64, f64) = (0.0, 1.0);
/// No known range (a model score under deletion).
const ANY_RANGE: (f64, f64) = (f64::NEG_INFINITY, f64::INFINITY);

/// [`mean_interval`] of `values` over `rows` with the `units` of those rows, the bootstrap on
/// the stream of `parts` (the group's key and the metric), the bounds clamped to `range` (the
/// values' possible range: a t interval of few patients can reach past it).
fn mean_over(
    values: &[f64],
    rows: &[usize],
    units: Option<&[String]>,
    boot: &Bootstrap,
    parts: &[&str],
    range: (f64, f64),
) -> Result<MeanInterval> {
    let v: Vec<f64> = rows.iter().map(|&r| values[r]).collect();
    let u: Option<Vec<String>> = units.map(|u| rows.iter().map(|&r| u[r].clone()).collect());
    Ok(mean_interval(&v, u.as_deref(), boot.samples, stream_seed(boot.seed, parts))?.clamped(range.0, range.1))
}

/// The `<prefix>_mean`, `<prefix>_lo`, `<prefix>_hi` and `<prefix>_interval` (how the bounds were
/// made, [`IntervalMethod::label`] with `unit`) columns of `stats`.
fn interval_columns(prefix: &str, stats: &[MeanInterval], unit: &str) -> [Column; 4] {
    [
        Column::new(format!("{prefix}_mean").into(), stats.iter().map(|s| s.mean).collect::<Vec<_>>()),
        Column::new(format!("{prefix}_lo").into(), stats.iter().map(|s| s.low).collect::<Vec<_>>()),
        Column::new(format!("{prefix}_hi").into(), stats.iter().map(|s| s.high).collect::<Vec<_>>()),
        Column::new(
            format!("{prefix}_interval").into(),
            stats.iter().map(|s| s.method.label(unit)).collect::<Vec<_>>(),
        ),
    ]
}

/// A whole number at least `min` in `value`, or an error naming the table, column and row.
fn whole(value: f64, min: i64, table: &str, column: &str, row: usize) -> Result<i64> {
    if value.is_finite() && value.fract() == 0.0 && value >= min as f64 {
        Ok(value as i64)
    } else {
        Err(ReportError::column(table, column, format!("row {row} holds {value}, expected a whole number ≥ {min}")))
    }
}

/// Per row of `cascade.csv`: whether the trained model's map of that (method, scan) ranks voxels:
/// the [`TRAINED_MAP_RANKS`] column (empty = true), or without it, whether any step of the same
/// method and scan (`Image.ID`, else `PTID`) has a finite Spearman. Every row counts as ranked
/// when the table names no scan.
fn trained_map_ranks(df: &DataFrame, table: &str, method: &[String], spearman: &[f64]) -> Result<Vec<bool>> {
    if has_column(df, TRAINED_MAP_RANKS) {
        return Ok(flags(df, table, TRAINED_MAP_RANKS)?.into_iter().map(|f| f != Some(false)).collect());
    }
    let scan = if has_column(df, IMAGE_ID) {
        column_str(df, table, IMAGE_ID)?
    } else if has_column(df, PTID) {
        column_str(df, table, PTID)?
    } else {
        return Ok(vec![true; df.height()]);
    };
    let mut finite: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
    for i in (0..df.height()).filter(|&i| spearman[i].is_finite()) {
        finite.insert((method[i].as_str(), scan[i].as_str()));
    }
    Ok((0..df.height()).map(|i| finite.contains(&(method[i].as_str(), scan[i].as_str()))).collect())
}

/// The cascading model-parameter randomisation test (Adebayo et al. 2018) summarised per method
/// and step, ready for [`crate::figures::randomisation_chart`].
///
/// Input: `cascade.csv`, one row per step, method and scan, with `step` (whole number ≥ 1: the
/// number of layers randomised, from the output down), `layer` (the last layer randomised at that
/// step; one layer per step and one step per layer), `method`, `spearman` and `ssim` (the map
/// under the randomised model against the trained model's map of the same scan; NaN for a
/// constant map), optionally [`TRAINED_MAP_RANKS`] (a constant trained map makes every
/// similarity of its scan NaN, SSIM included), and the patient column `boot.cluster` names
/// (`PTID`) for the intervals (scans are drawn one by one without it).
///
/// Output, per method in order of first appearance: first a row `step` = [`ORIGINAL_STEP`]
/// (`layers_randomised` 0, similarity 1 without an interval, `n_scans` the most scans of any of
/// its steps, `n_undefined` the scans whose trained map is constant; NaN when every scan's is),
/// then one row per step in step order, named by its layer, with `layers_randomised`,
/// `n_scans` (rows), `n_undefined` (rows with a non-finite Spearman, left out of the means), and
/// `spearman_mean` / `_lo` / `_hi` / `_interval`, `ssim_mean` / … (mean of the finite values, the
/// 95 % interval over patients of [`mean_interval`] clamped to [−1, 1], and how it was made).
/// Every method gets every step of the table (NaN and `n_scans` 0 where it has none), so the
/// steps keep their order on the figure's x axis.
pub fn summarise_cascade(df: &DataFrame, boot: &Bootstrap) -> Result<DataFrame> {
    const TABLE: &str = "cascade.csv";
    let method = column_str(df, TABLE, METHOD)?;
    let step = numbers(df, TABLE, STEP)?;
    let layer = column_str(df, TABLE, CascadeRow::LAYER)?;
    let mut spearman = numbers(df, TABLE, SPEARMAN)?;
    let mut ssim = numbers(df, TABLE, SSIM)?;
    let units = units_of(df, TABLE, boot)?;
    let unit = unit_name(units.as_deref(), boot);
    // a constant trained map: nothing is defined, not even against itself
    let trained_ok = trained_map_ranks(df, TABLE, &method, &spearman)?;
    for (i, ok) in trained_ok.iter().enumerate() {
        if !ok {
            (spearman[i], ssim[i]) = (f64::NAN, f64::NAN);
        }
    }

    // the steps in order, each with its layer's name
    let mut steps: Vec<(i64, String)> = Vec::new();
    let mut step_of_row: Vec<i64> = Vec::with_capacity(df.height());
    for (row, (&s, l)) in step.iter().zip(&layer).enumerate() {
        let k = whole(s, 1, TABLE, STEP, row)?;
        let name = if l.trim().is_empty() { format!("step {k}") } else { l.trim().to_string() };
        if name == ORIGINAL_STEP {
            return Err(ReportError::column(
                TABLE,
                CascadeRow::LAYER,
                format!("row {row} names a layer `{ORIGINAL_STEP}`, which is reserved for the trained model"),
            ));
        }
        match steps.iter().find(|(kk, n)| *kk == k || *n == name) {
            Some((kk, n)) if *kk != k || *n != name => {
                return Err(ReportError::column(
                    TABLE,
                    CascadeRow::LAYER,
                    format!(
                        "row {row} has step {k} with layer `{name}`, an earlier row step {kk} with layer `{n}`; \
                         expected one layer per step and one step per layer"
                    ),
                ));
            }
            Some(_) => {}
            None => steps.push((k, name)),
        }
        step_of_row.push(k);
    }
    steps.sort_by_key(|(k, _)| *k);
    let methods = distinct(&method);

    let (mut out_method, mut out_step, mut out_k) = (Vec::<String>::new(), Vec::<String>::new(), Vec::<i64>::new());
    let (mut n_scans, mut n_undefined) = (Vec::<u64>::new(), Vec::<u64>::new());
    let (mut sp, mut ss) = (Vec::<MeanInterval>::new(), Vec::<MeanInterval>::new());
    let one = MeanInterval {
        n: 0,
        units: 0,
        mean: 1.0,
        sd: f64::NAN,
        low: f64::NAN,
        high: f64::NAN,
        method: IntervalMethod::None,
    };
    let undefined = MeanInterval { mean: f64::NAN, ..one };
    for m in &methods {
        let first = out_method.len();
        out_method.push(m.clone());
        out_step.push(ORIGINAL_STEP.to_string());
        out_k.push(0);
        n_scans.push(0);
        n_undefined.push(0);
        sp.push(one);
        ss.push(one);
        for (k, name) in &steps {
            let rows: Vec<usize> = (0..df.height()).filter(|&i| method[i] == *m && step_of_row[i] == *k).collect();
            let u = units.as_deref();
            sp.push(mean_over(&spearman, &rows, u, boot, &["cascade", m, name, "spearman"], SIMILARITY_RANGE)?);
            ss.push(mean_over(&ssim, &rows, u, boot, &["cascade", m, name, "ssim"], SIMILARITY_RANGE)?);
            out_method.push(m.clone());
            out_step.push(name.clone());
            out_k.push(*k);
            n_scans.push(rows.len() as u64);
            n_undefined.push(rows.iter().filter(|&&i| !spearman[i].is_finite()).count() as u64);
        }
        n_scans[first] = n_scans[first + 1..].iter().copied().max().unwrap_or(0);
        // the scans of the trained model whose map is constant (the same at every step)
        n_undefined[first] = steps
            .iter()
            .map(|(k, _)| {
                (0..df.height()).filter(|&i| method[i] == *m && step_of_row[i] == *k && !trained_ok[i]).count() as u64
            })
            .max()
            .unwrap_or(0);
        if n_scans[first] > 0 && n_undefined[first] >= n_scans[first] {
            (sp[first], ss[first]) = (undefined, undefined);
        }
    }
    let mut cols = vec![
        Column::new(METHOD.into(), out_method),
        Column::new(STEP.into(), out_step),
        Column::new("layers_randomised".into(), out_k),
        Column::new(N_SCANS.into(), n_scans),
        Column::new(N_UNDEFINED.into(), n_undefined),
    ];
    cols.extend(interval_columns(SPEARMAN, &sp, unit));
    cols.extend(interval_columns(SSIM, &ss, unit));
    Ok(DataFrame::new(sp.len(), cols)?)
}

/// The data randomisation test (Adebayo et al. 2018) summarised per method: how alike the maps
/// of a model trained on shuffled labels are to the real model's maps of the same scans, and how
/// the shuffled model's maps score against the ground truth.
///
/// Input: `data_randomisation.csv`, one row per method and scan, with `method`, `spearman`,
/// `ssim`, optionally `mass_accuracy` and `truth_fraction` (NaN or absent without a ground truth)
/// and the patient column `boot.cluster` names. Output, per method in order of first
/// appearance: `method`, `n_scans`, `n_undefined` (scans with a non-finite Spearman, such as
/// those whose trained map is constant; left out of the means), then `spearman_mean` / `_lo` /
/// `_hi` / `_interval`, `ssim_…` and `mass_accuracy_…` (mean of the finite values, the 95 %
/// interval over patients of [`mean_interval`] clamped to the values' range, and how it was
/// made) and `chance` (the mass accuracy of a uniform map: the mean `truth_fraction` over the
/// scans whose `mass_accuracy` is defined, the scans the mass accuracy is averaged over).
pub fn summarise_data_randomisation(df: &DataFrame, boot: &Bootstrap) -> Result<DataFrame> {
    const TABLE: &str = "data_randomisation.csv";
    let method = column_str(df, TABLE, METHOD)?;
    let mass = DataRandomisationRow::MASS_ACCURACY;
    let metrics = [
        (SPEARMAN, numbers(df, TABLE, SPEARMAN)?),
        (SSIM, numbers(df, TABLE, SSIM)?),
        (mass, numbers_or_nan(df, TABLE, mass)?),
    ];
    let ranges = [SIMILARITY_RANGE, SIMILARITY_RANGE, SHARE_RANGE];
    let truth = numbers_or_nan(df, TABLE, DataRandomisationRow::TRUTH_FRACTION)?;
    let units = units_of(df, TABLE, boot)?;
    let unit = unit_name(units.as_deref(), boot);
    let methods = distinct(&method);
    let mut stats: Vec<Vec<MeanInterval>> = vec![Vec::new(); metrics.len()];
    let (mut n_scans, mut n_undefined, mut chance) = (Vec::<u64>::new(), Vec::<u64>::new(), Vec::<f64>::new());
    for m in &methods {
        let rows: Vec<usize> = (0..df.height()).filter(|&i| method[i] == *m).collect();
        n_undefined.push(rows.iter().filter(|&&i| !metrics[0].1[i].is_finite()).count() as u64);
        for (((name, values), s), range) in metrics.iter().zip(stats.iter_mut()).zip(ranges) {
            s.push(mean_over(values, &rows, units.as_deref(), boot, &["data_randomisation", m, name], range)?);
        }
        // chance over the scans the mass accuracy is averaged over
        let mass_values = &metrics[2].1;
        let c: Vec<f64> =
            rows.iter().filter(|&&i| mass_values[i].is_finite()).map(|&i| truth[i]).filter(|v| v.is_finite()).collect();
        chance.push(if c.is_empty() { f64::NAN } else { c.iter().sum::<f64>() / c.len() as f64 });
        n_scans.push(rows.len() as u64);
    }
    let mut cols = vec![
        Column::new(METHOD.into(), methods.clone()),
        Column::new(N_SCANS.into(), n_scans),
        Column::new(N_UNDEFINED.into(), n_undefined),
    ];
    for ((name, _), s) in metrics.iter().zip(&stats) {
        cols.extend(interval_columns(name, s, unit));
    }
    cols.push(Column::new("chance".into(), chance));
    Ok(DataFrame::new(methods.len(), cols)?)
}

/// The mean deletion curves of one `kind` (`voxels` or `regions`) of `deletion.csv`, ready for
/// [`crate::figures::deletion_chart_for`].
///
/// Input: one row per kind, method, ordering, scan and step, with `kind`, `method`, `ordering`
/// ([`RELEVANCE_ORDER`] or [`RANDOM_ORDER`]), `step` (whole number ≥ 0, 0 = unperturbed),
/// `fraction` (the share deleted, in [0, 1]), `score` (the model's output for the explained class
/// after that step), optionally [`RANKS_VOXELS`] (rows flagged false are left out: a map that
/// ranks nothing on a scan adds no curve, and neither does the random order beside it, so a
/// method's two curves cover the same scans and a method whose map ranks nothing on any scan
/// has no row) and the patient column `boot.cluster` names. Output, one row per method (in
/// order of first appearance), ordering (relevance first) and step (ascending): `method`,
/// `ordering`, `step`, `fraction` (mean over the scans), `n_scans` (finite scores), `score_mean`,
/// `score_lo`, `score_hi`, `score_interval` (mean, the 95 % interval over patients of
/// [`mean_interval`], and how it was made). Rows of other kinds are
/// ignored; no row of `kind` gives an empty table with these columns. Errors name the column and
/// row of an unknown ordering, a step that is not a whole number or a fraction outside [0, 1].
pub fn summarise_deletion(df: &DataFrame, kind: &str, boot: &Bootstrap) -> Result<DataFrame> {
    const TABLE: &str = "deletion.csv";
    let kinds = column_str(df, TABLE, KIND)?;
    let method = column_str(df, TABLE, METHOD)?;
    let ordering = column_str(df, TABLE, ORDERING)?;
    let step = numbers(df, TABLE, STEP)?;
    let fraction = numbers(df, TABLE, DeletionRow::FRACTION)?;
    let score = numbers(df, TABLE, DeletionRow::SCORE)?;
    let units = units_of(df, TABLE, boot)?;
    let unit = unit_name(units.as_deref(), boot);
    // rows of maps that rank nothing (and the random rows beside them) are left out
    let ranked: Vec<bool> = if has_column(df, RANKS_VOXELS) {
        flags(df, TABLE, RANKS_VOXELS)?.into_iter().map(|f| f != Some(false)).collect()
    } else {
        vec![true; df.height()]
    };
    let rows: Vec<usize> = (0..df.height()).filter(|&i| kinds[i] == kind && ranked[i]).collect();
    let mut keyed: Vec<(usize, usize, i64, usize)> = Vec::with_capacity(rows.len());
    let methods = distinct(rows.iter().map(|&i| &method[i]));
    let orderings = [RELEVANCE_ORDER, RANDOM_ORDER];
    for &i in &rows {
        let o = orderings.iter().position(|o| *o == ordering[i]).ok_or_else(|| {
            ReportError::column(
                TABLE,
                ORDERING,
                format!("row {i} holds `{}`, expected `{RELEVANCE_ORDER}` or `{RANDOM_ORDER}`", ordering[i]),
            )
        })?;
        let k = whole(step[i], 0, TABLE, STEP, i)?;
        if fraction[i].is_finite() && !(0.0..=1.0).contains(&fraction[i]) {
            return Err(ReportError::column(
                TABLE,
                DeletionRow::FRACTION,
                format!("row {i} holds {}, expected a share in [0, 1]", fraction[i]),
            ));
        }
        let m = methods.iter().position(|m| *m == method[i]).unwrap_or_default();
        keyed.push((m, o, k, i));
    }
    keyed.sort_unstable();
    let (mut out_m, mut out_o, mut out_k, mut out_f) = (vec![], vec![], vec![], vec![]);
    let mut n_scans: Vec<u64> = Vec::new();
    let mut stats: Vec<MeanInterval> = Vec::new();
    for group in keyed.chunk_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2)) {
        let (m, o, k, _) = group[0];
        let g: Vec<usize> = group.iter().map(|e| e.3).collect();
        let f: Vec<f64> = g.iter().map(|&i| fraction[i]).filter(|v| v.is_finite()).collect();
        let key = k.to_string();
        let parts = ["deletion", kind, &methods[m], orderings[o], &key];
        let s = mean_over(&score, &g, units.as_deref(), boot, &parts, ANY_RANGE)?;
        out_m.push(methods[m].clone());
        out_o.push(orderings[o]);
        out_k.push(k);
        out_f.push(if f.is_empty() { f64::NAN } else { f.iter().sum::<f64>() / f.len() as f64 });
        n_scans.push(s.n as u64);
        stats.push(s);
    }
    Ok(DataFrame::new(
        stats.len(),
        vec![
            Column::new(METHOD.into(), out_m),
            Column::new(ORDERING.into(), out_o),
            Column::new(STEP.into(), out_k),
            Column::new(DeletionRow::FRACTION.into(), out_f),
            Column::new(N_SCANS.into(), n_scans),
            Column::new("score_mean".into(), stats.iter().map(|s| s.mean).collect::<Vec<_>>()),
            Column::new("score_lo".into(), stats.iter().map(|s| s.low).collect::<Vec<_>>()),
            Column::new("score_hi".into(), stats.iter().map(|s| s.high).collect::<Vec<_>>()),
            Column::new("score_interval".into(), stats.iter().map(|s| s.method.label(unit)).collect::<Vec<_>>()),
        ],
    )?)
}

/// The summaries [`trust_table`] puts side by side; any may be missing (its test did not run).
#[derive(Debug, Clone, Copy, Default)]
pub struct TrustInputs<'a> {
    /// [`summarise_cascade`]'s table.
    pub cascade: Option<&'a DataFrame>,
    /// [`summarise_data_randomisation`]'s table.
    pub data_randomisation: Option<&'a DataFrame>,
    /// The shuffled-label model's accuracy on its own training scans against the shuffled labels
    /// ([`shuffled_fit`]); below [`SHUFFLED_FIT_MIN`] (or NaN) the data randomisation test is not
    /// judged. `None` when not measured (tables written before it): judged as before.
    pub shuffled_fit: Option<f64>,
    /// [`crate::faithfulness::summarise_aopc`] grouped by `kind`, `method` and `ordering`.
    pub aopc: Option<&'a DataFrame>,
    /// [`crate::ground_truth::scan_summary`] grouped by `method` and `model` (the report's
    /// `ground_truth_summary`); its `trained` rows and [`crate::ground_truth::verdicts`] are used.
    pub ground_truth: Option<&'a DataFrame>,
}

/// The tests of the trust table: (flag column, name in the verdict and the paragraph).
const TESTS: [(&str, &str); 5] = [
    ("passes_model_randomisation", "model randomisation"),
    ("passes_data_randomisation", "data randomisation"),
    ("faithful_voxels", "faithfulness (voxels)"),
    ("faithful_regions", "faithfulness (regions)"),
    ("passes_ground_truth", "ground truth"),
];

/// A test over the methods: `Some(pass)` per method, `None` where it cannot be judged.
type TestFlags = Vec<Option<bool>>;

/// One row per method that went through at least one sanity check (in order of first
/// appearance in the cascade, data randomisation and AOPC tables), with every test side by side:
///
/// | column | what |
/// |---|---|
/// | `method` | |
/// | `mass_accuracy`, `mass_lo`, `mass_hi` | ground truth: the trained model's mean relevance mass accuracy and its 95 % interval |
/// | `cascade_spearman`, `_lo`, `_hi` | mean Spearman to the trained model's map after the last step of the cascade (every layer randomised) |
/// | `data_rand_spearman`, `_lo`, `_hi` | mean Spearman of the shuffled-label model's maps to the real model's |
/// | `data_rand_mass_accuracy` | the shuffled-label model's mean mass accuracy (for comparison with `mass_accuracy`) |
/// | `cascade_n`, `cascade_n_undefined` | scans of the cascade's last step, and those of them with no defined Spearman (left out of its mean) |
/// | `data_rand_n`, `data_rand_n_undefined` | the same for the data randomisation |
/// | `aopc_voxels`, `_lo`, `_hi`, `_n`, `aopc_voxels_random`, `_random_lo`, `_random_hi`, `_random_n` | AOPC of voxel deletion, relevance order and random order, and the scans behind each |
/// | `aopc_regions`, … | the same for the deletion of atlas regions |
/// | `passes_model_randomisation` | `cascade_spearman` ≤ [`RANDOMISATION_THRESHOLD`] |
/// | `passes_data_randomisation` | `data_rand_spearman` ≤ [`DATA_RANDOMISATION_THRESHOLD`]; null for every method when the shuffled-label model fits its shuffled training labels with accuracy below [`SHUFFLED_FIT_MIN`] ([`TrustInputs::shuffled_fit`]) |
/// | `faithful_voxels`, `faithful_regions` | the AOPC's lower bound lies above the random order's upper bound, both on the same scans (`_n` equal; null when they differ) |
/// | `passes_ground_truth` | [`crate::ground_truth::verdicts`]' `passes` |
/// | `verdict` | [`TRUSTED`], `fails: <tests>`, or `not judged: <tests>` (no failure, but a test that ran for other methods is undefined for this one) |
///
/// A test whose input is missing or NaN is null for that method (never a panic). A test *ran*
/// when at least one method has a defined result; a method is [`TRUSTED`] when it passes every
/// test that ran.
pub fn trust_table(inputs: &TrustInputs<'_>) -> Result<DataFrame> {
    let mut methods: Vec<String> = Vec::new();
    for (df, table) in [
        (inputs.cascade, "cascade summary"),
        (inputs.data_randomisation, "data randomisation summary"),
        (inputs.aopc, "AOPC summary"),
    ] {
        if let Some(df) = df {
            for m in column_str(df, table, "method")? {
                if !methods.contains(&m) {
                    methods.push(m);
                }
            }
        }
    }
    let n = methods.len();
    let nan = || vec![f64::NAN; n];
    let index = |m: &str| methods.iter().position(|x| x == m);

    // ground truth
    let (mut mass, mut mass_lo, mut mass_hi) = (nan(), nan(), nan());
    let mut gt_pass: TestFlags = vec![None; n];
    if let Some(gt) = inputs.ground_truth {
        const TABLE: &str = "ground-truth summary";
        let method = column_str(gt, TABLE, "method")?;
        let model = column_str(gt, TABLE, "model")?;
        let (m, lo, hi) = (
            numbers(gt, TABLE, "mass_accuracy")?,
            numbers(gt, TABLE, "mass_ci_low")?,
            numbers(gt, TABLE, "mass_ci_high")?,
        );
        for i in (0..gt.height()).filter(|&i| model[i] == ground_truth::TRAINED) {
            if let Some(j) = index(&method[i]) {
                (mass[j], mass_lo[j], mass_hi[j]) = (m[i], lo[i], hi[i]);
            }
        }
        let v = ground_truth::verdicts(gt)?;
        let (vm, passes) =
            (column_str(&v, "ground-truth verdicts", "method")?, flags(&v, "ground-truth verdicts", "passes")?);
        for (m, p) in vm.iter().zip(passes) {
            if let Some(j) = index(m) {
                gt_pass[j] = p;
            }
        }
    }

    // cascade: the last step, every layer randomised; its scans and undefined scans
    let (mut casc, mut casc_lo, mut casc_hi, mut casc_n, mut casc_und) = (nan(), nan(), nan(), nan(), nan());
    if let Some(c) = inputs.cascade {
        const TABLE: &str = "cascade summary";
        let method = column_str(c, TABLE, "method")?;
        let k = numbers(c, TABLE, "layers_randomised")?;
        let (m, lo, hi) =
            (numbers(c, TABLE, "spearman_mean")?, numbers(c, TABLE, "spearman_lo")?, numbers(c, TABLE, "spearman_hi")?);
        let (sc, und) = (numbers_or_nan(c, TABLE, N_SCANS)?, numbers_or_nan(c, TABLE, N_UNDEFINED)?);
        let last = k.iter().copied().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
        for i in (0..c.height()).filter(|&i| k[i] == last && last > 0.0) {
            if let Some(j) = index(&method[i]) {
                (casc[j], casc_lo[j], casc_hi[j], casc_n[j], casc_und[j]) = (m[i], lo[i], hi[i], sc[i], und[i]);
            }
        }
    }

    // data randomisation
    let (mut data, mut data_lo, mut data_hi, mut data_mass) = (nan(), nan(), nan(), nan());
    let (mut data_n, mut data_und) = (nan(), nan());
    if let Some(d) = inputs.data_randomisation {
        const TABLE: &str = "data randomisation summary";
        let method = column_str(d, TABLE, "method")?;
        let (m, lo, hi) =
            (numbers(d, TABLE, "spearman_mean")?, numbers(d, TABLE, "spearman_lo")?, numbers(d, TABLE, "spearman_hi")?);
        let mass = numbers_or_nan(d, TABLE, "mass_accuracy_mean")?;
        let (sc, und) = (numbers_or_nan(d, TABLE, N_SCANS)?, numbers_or_nan(d, TABLE, N_UNDEFINED)?);
        for i in 0..d.height() {
            if let Some(j) = index(&method[i]) {
                (data[j], data_lo[j], data_hi[j], data_mass[j]) = (m[i], lo[i], hi[i], mass[i]);
                (data_n[j], data_und[j]) = (sc[i], und[i]);
            }
        }
    }

    // AOPC: [kind][ordering] → (mean, lo, hi, scans) per method
    let cell = || (nan(), nan(), nan(), nan());
    let mut aopc = [[cell(), cell()], [cell(), cell()]];
    if let Some(a) = inputs.aopc {
        const TABLE: &str = "AOPC summary";
        let (kind, method, ordering) =
            (column_str(a, TABLE, "kind")?, column_str(a, TABLE, "method")?, column_str(a, TABLE, "ordering")?);
        let (m, lo, hi) =
            (numbers(a, TABLE, "aopc_mean")?, numbers(a, TABLE, "aopc_lo")?, numbers(a, TABLE, "aopc_hi")?);
        let sc = numbers_or_nan(a, TABLE, N_SCANS)?;
        for i in 0..a.height() {
            let kk = [VOXELS, REGIONS].iter().position(|k| *k == kind[i]);
            let oo = [RELEVANCE_ORDER, RANDOM_ORDER].iter().position(|o| *o == ordering[i]);
            if let (Some(kk), Some(oo), Some(j)) = (kk, oo, index(&method[i])) {
                let cell = &mut aopc[kk][oo];
                (cell.0[j], cell.1[j], cell.2[j], cell.3[j]) = (m[i], lo[i], hi[i], sc[i]);
            }
        }
    }

    let below = |v: &[f64], threshold: f64| -> TestFlags {
        v.iter().map(|&x| x.is_finite().then_some(x <= threshold)).collect()
    };
    // judged only on the same scans: a summary whose relevance and random AOPC rest on different
    // scan counts (the random order kept scans the map does not rank) is not a paired comparison
    let faithful = |k: usize| -> TestFlags {
        let (rel, rnd) = (&aopc[k][0], &aopc[k][1]);
        (0..n)
            .map(|j| {
                let same_scans = !(rel.3[j].is_finite() && rnd.3[j].is_finite()) || rel.3[j] == rnd.3[j];
                (rel.1[j].is_finite() && rnd.2[j].is_finite() && same_scans).then_some(rel.1[j] > rnd.2[j])
            })
            .collect()
    };
    let tests: [TestFlags; 5] = [
        below(&casc, RANDOMISATION_THRESHOLD),
        if inputs.shuffled_fit.is_some_and(|fit| fit.is_nan() || fit < SHUFFLED_FIT_MIN) {
            vec![None; n]
        } else {
            below(&data, DATA_RANDOMISATION_THRESHOLD)
        },
        faithful(0),
        faithful(1),
        gt_pass,
    ];
    let ran: Vec<bool> = tests.iter().map(|t| t.iter().any(Option::is_some)).collect();
    let verdict: Vec<String> = (0..n)
        .map(|j| {
            let named = |want: Option<bool>| -> Vec<&str> {
                TESTS
                    .iter()
                    .zip(&tests)
                    .zip(&ran)
                    .filter(|((_, t), r)| **r && t[j] == want)
                    .map(|(((_, name), _), _)| *name)
                    .collect()
            };
            let (failed, undefined) = (named(Some(false)), named(None));
            if !failed.is_empty() {
                format!("fails: {}", failed.join(", "))
            } else if !undefined.is_empty() {
                format!("not judged: {}", undefined.join(", "))
            } else if ran.iter().any(|&r| r) {
                TRUSTED.to_string()
            } else {
                "not judged: no test ran".to_string()
            }
        })
        .collect();

    let f = |name: &str, v: Vec<f64>| Column::new(name.into(), v);
    let mut cols = vec![
        Column::new("method".into(), methods.clone()),
        f("mass_accuracy", mass),
        f("mass_lo", mass_lo),
        f("mass_hi", mass_hi),
        f("cascade_spearman", casc),
        f("cascade_spearman_lo", casc_lo),
        f("cascade_spearman_hi", casc_hi),
        f("data_rand_spearman", data),
        f("data_rand_spearman_lo", data_lo),
        f("data_rand_spearman_hi", data_hi),
        f("data_rand_mass_accuracy", data_mass),
        f("cascade_n", casc_n),
        f("cascade_n_undefined", casc_und),
        f("data_rand_n", data_n),
        f("data_rand_n_undefined", data_und),
    ];
    for (k, kind) in [VOXELS, REGIONS].iter().enumerate() {
        for (o, suffix) in ["", "_random"].iter().enumerate() {
            let (m, lo, hi, sc) = aopc[k][o].clone();
            cols.push(f(&format!("aopc_{kind}{suffix}"), m));
            cols.push(f(&format!("aopc_{kind}{suffix}_lo"), lo));
            cols.push(f(&format!("aopc_{kind}{suffix}_hi"), hi));
            cols.push(f(&format!("aopc_{kind}{suffix}_n"), sc));
        }
    }
    for ((name, _), t) in TESTS.iter().zip(tests) {
        cols.push(Column::new((*name).into(), t));
    }
    cols.push(Column::new("verdict".into(), verdict));
    Ok(DataFrame::new(n, cols)?)
}

/// `mean [lo, hi]` for people: the mean alone without an interval, `n/a` without a mean.
fn mean_ci(mean: f64, lo: f64, hi: f64) -> String {
    let f = format_float;
    match (mean.is_finite(), lo.is_finite() && hi.is_finite()) {
        (false, _) => "n/a".into(),
        (true, false) => f(mean),
        (true, true) => format!("{} [{}, {}]", f(mean), f(lo), f(hi)),
    }
}

/// The columns of a [`trust_table`] (possibly read back from CSV) that the paragraph and the
/// display need.
struct Trust {
    method: Vec<String>,
    tests: Vec<TestFlags>,
    verdict: Vec<String>,
    /// Per test, the text of each method's numbers.
    evidence: Vec<Vec<String>>,
}

fn read_trust(table: &DataFrame) -> Result<Trust> {
    const TABLE: &str = "trust summary";
    let num = |c: &str| numbers(table, TABLE, c);
    let triple = |c: &str| -> Result<Vec<String>> {
        let (m, lo, hi) = (num(c)?, num(&format!("{c}_lo"))?, num(&format!("{c}_hi"))?);
        Ok((0..m.len()).map(|i| mean_ci(m[i], lo[i], hi[i])).collect())
    };
    let mass = {
        let (m, lo, hi) = (num("mass_accuracy")?, num("mass_lo")?, num("mass_hi")?);
        (0..m.len()).map(|i| mean_ci(m[i], lo[i], hi[i])).collect::<Vec<_>>()
    };
    let maybe = |c: &str| numbers_or_nan(table, TABLE, c);
    // `value (n = 1 of 2 scans)`: the scans behind a similarity, where the table has them
    let with_n = |c: &str, n: &str, undefined: &str| -> Result<Vec<String>> {
        let (v, n, und) = (triple(c)?, maybe(n)?, maybe(undefined)?);
        Ok(v.into_iter()
            .enumerate()
            .map(|(i, v)| match (n[i].is_finite(), und[i].is_finite() && und[i] > 0.0) {
                (true, true) if und[i] >= n[i] => format!("{v} (undefined on all {} scans)", n[i]),
                (true, true) => format!("{v}, n = {} of {} scans", n[i] - und[i], n[i]),
                (true, false) => format!("{v}, n = {} scans", n[i]),
                _ => v,
            })
            .collect())
    };
    let versus = |kind: &str| -> Result<Vec<String>> {
        let (rel, rnd) = (triple(&format!("aopc_{kind}"))?, triple(&format!("aopc_{kind}_random"))?);
        let (n_rel, n_rnd) = (maybe(&format!("aopc_{kind}_n"))?, maybe(&format!("aopc_{kind}_random_n"))?);
        Ok((0..rel.len())
            .map(|i| {
                if n_rel[i] == 0.0 {
                    return "n/a (the map ranks no voxel on any scan)".to_string();
                }
                let scans = match (n_rel[i].is_finite(), n_rnd[i].is_finite()) {
                    (true, true) if n_rel[i] == n_rnd[i] => format!(", both on the same {} scans", n_rel[i]),
                    (true, true) => format!(", on {} vs {} scans: not the same scans", n_rel[i], n_rnd[i]),
                    _ => String::new(),
                };
                format!("{} vs random {}{scans}", rel[i], rnd[i])
            })
            .collect())
    };
    let evidence = vec![
        with_n("cascade_spearman", "cascade_n", "cascade_n_undefined")?,
        with_n("data_rand_spearman", "data_rand_n", "data_rand_n_undefined")?,
        versus(VOXELS)?,
        versus(REGIONS)?,
        mass,
    ];
    let tests = TESTS.iter().map(|(c, _)| flags(table, TABLE, c)).collect::<Result<Vec<_>>>()?;
    Ok(Trust {
        method: column_str(table, TABLE, "method")?,
        tests,
        verdict: column_str(table, TABLE, "verdict")?,
        evidence,
    })
}

/// What each test asks, for the paragraph.
fn test_question(t: usize) -> String {
    match t {
        0 => format!(
            "Spearman of the map after randomising every layer with the trained model's map; above \
             {RANDOMISATION_THRESHOLD} the map does not depend on what the model learnt"
        ),
        1 => format!(
            "Spearman of the maps of a model trained on shuffled labels with the real model's; above \
             {DATA_RANDOMISATION_THRESHOLD} the map follows the image, not the labels"
        ),
        2 => "AOPC of deleting voxels most relevant first; faithful when its 95 % interval lies above the random \
              order's on the same scans (scans whose map is constant on the brain rank nothing and are left out of \
              both)"
            .into(),
        3 => "the same for whole atlas regions".into(),
        _ => format!(
            "mean relevance mass accuracy ≥ {}× chance with a 95 % lower bound above the randomised model's",
            ground_truth::TARGET_FACTOR
        ),
    }
}

/// A short Markdown text generated from a [`trust_table`] (also one read back from CSV): one
/// bullet per test that says which methods fail it (in bold) and which pass, each with its
/// numbers, then a closing sentence naming the methods that pass every test that ran ("can be
/// trusted here"), or saying that none does and which come closest (fail one test only), and
/// the methods that fail no test but are not judged on all of them. Tests that no method could be
/// judged on are named as not run.
pub fn trust_paragraph(table: &DataFrame) -> Result<String> {
    let t = read_trust(table)?;
    let mut out = String::new();
    let mut ran: Vec<&str> = Vec::new();
    let mut not_run: Vec<&str> = Vec::new();
    for (k, (_, name)) in TESTS.iter().enumerate() {
        let pick = |want: Option<bool>, bold: bool| -> Vec<String> {
            (0..t.method.len())
                .filter(|&j| t.tests[k][j] == want)
                .map(|j| {
                    let m = if bold { format!("**{}**", t.method[j]) } else { t.method[j].clone() };
                    if want.is_some() {
                        format!("{m} ({})", t.evidence[k][j])
                    } else if t.verdict[j].contains(&format!("{name} (circular)")) {
                        format!("{m} (circular: the map is this very deletion)")
                    } else {
                        m
                    }
                })
                .collect()
        };
        let (fail, pass, undefined) = (pick(Some(false), true), pick(Some(true), false), pick(None, false));
        if fail.is_empty() && pass.is_empty() {
            not_run.push(name);
            continue;
        }
        ran.push(name);
        let mut parts: Vec<String> = Vec::new();
        let (fail_word, pass_word) =
            if k == 2 || k == 3 { ("not shown faithful", "faithful") } else { ("fail", "pass") };
        if !fail.is_empty() {
            parts.push(format!("{fail_word}: {}", fail.join(", ")));
        }
        if !pass.is_empty() {
            parts.push(format!("{pass_word}: {}", pass.join(", ")));
        }
        if !undefined.is_empty() {
            parts.push(format!("not judged: {}", undefined.join(", ")));
        }
        let mut title = name.to_string();
        title[..1].make_ascii_uppercase();
        let _ = writeln!(out, "- **{title}** ({}): {}.", test_question(k), parts.join("; "));
    }
    if ran.is_empty() {
        out.push_str("No sanity test could be judged for any method, so no map is vouched for here.\n");
        return Ok(out);
    }
    out.push('\n');
    let trusted: Vec<&str> =
        (0..t.method.len()).filter(|&j| t.verdict[j] == TRUSTED).map(|j| t.method[j].as_str()).collect();
    if trusted.is_empty() {
        let _ = write!(out, "**No method passes every test that ran here** ({})", ran.join(", "));
        let closest: Vec<String> = (0..t.method.len())
            .filter_map(|j| {
                let failed: Vec<&str> = TESTS
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| t.tests[*k][j] == Some(false))
                    .map(|(_, (_, n))| *n)
                    .collect();
                let undefined = TESTS.iter().enumerate().any(|(k, (_, n))| ran.contains(n) && t.tests[k][j].is_none());
                (failed.len() == 1 && !undefined).then(|| format!("{} (fails {} only)", t.method[j], failed[0]))
            })
            .collect();
        if closest.is_empty() {
            out.push('.');
        } else {
            let _ = write!(out, "; closest: {}.", closest.join(", "));
        }
    } else {
        let _ = write!(
            out,
            "**Can be trusted here:** {}: {} every test that ran ({}).",
            trusted.join(", "),
            if trusted.len() == 1 { "it passes" } else { "they pass" },
            ran.join(", ")
        );
        let rest: Vec<&str> =
            (0..t.method.len()).filter(|&j| t.verdict[j] != TRUSTED).map(|j| t.method[j].as_str()).collect();
        if !rest.is_empty() {
            let _ = write!(out, " The others ({}) do not.", rest.join(", "));
        }
    }
    // Methods that fail nothing but could not be judged on every test that ran: neither trusted
    // nor failing, and named as such rather than left out.
    let partial: Vec<String> = (0..t.method.len())
        .filter(|&j| t.verdict[j] != TRUSTED && (0..TESTS.len()).all(|k| t.tests[k][j] != Some(false)))
        .map(|j| format!("{} ({})", t.method[j], t.verdict[j]))
        .collect();
    if !partial.is_empty() {
        let _ = write!(out, " Fail no test but are not judged on every one: {}.", partial.join(", "));
    }
    if !not_run.is_empty() {
        let _ = write!(out, " Not run (or no value for any method): {}.", not_run.join(", "));
    }
    out.push('\n');
    Ok(out)
}

/// A [`trust_table`] for people: per method, the verdict, then each test's numbers as
/// `mean [low, high]`; the method in bold when it fails the model randomisation test.
pub fn trust_display(table: &DataFrame) -> Result<DataFrame> {
    let t = read_trust(table)?;
    let method: Vec<String> = (0..t.method.len())
        .map(|j| if t.tests[0][j] == Some(false) { format!("**{}**", t.method[j]) } else { t.method[j].clone() })
        .collect();
    let headers = [
        format!("Spearman after full randomisation (fails > {RANDOMISATION_THRESHOLD})"),
        format!("Spearman with shuffled-label model (fails > {DATA_RANDOMISATION_THRESHOLD})"),
        "AOPC voxels".to_string(),
        "AOPC regions".to_string(),
        "mass accuracy (ground truth)".to_string(),
    ];
    // The verdict next to the method: on a narrow page the evidence columns scroll, the verdict
    // stays in view.
    let mut cols = vec![Column::new("method".into(), method), Column::new("verdict".into(), t.verdict.clone())];
    for (h, e) in headers.iter().zip(&t.evidence) {
        cols.push(Column::new(h.as_str().into(), e.clone()));
    }
    Ok(DataFrame::new(t.method.len(), cols)?)
}

/// One sentence naming the methods a [`trust_table`] flags in the model randomisation test
/// (mean Spearman to the trained model's map above [`RANDOMISATION_THRESHOLD`] after every layer
/// was randomised), in bold with their numbers, or saying that none is flagged; `None` when no
/// method has a value (the cascade did not run).
pub fn randomisation_flag_line(table: &DataFrame) -> Result<Option<String>> {
    let t = read_trust(table)?;
    let judged = t.tests[0].iter().any(Option::is_some);
    if !judged {
        return Ok(None);
    }
    let flagged: Vec<String> = (0..t.method.len())
        .filter(|&j| t.tests[0][j] == Some(false))
        .map(|j| format!("**{}** ({})", t.method[j], t.evidence[0][j]))
        .collect();
    let rule = format!("mean Spearman rank correlation above {RANDOMISATION_THRESHOLD} after randomising every layer");
    Ok(Some(if flagged.is_empty() {
        format!("No method is flagged by the model randomisation test ({rule}).")
    } else {
        format!("Flagged by the model randomisation test ({rule}): {}.", flagged.join(", "))
    }))
}

/// `shuffled_model.csv` checked: its columns `model` (`trained`, `shuffled`), `n_scans`,
/// `accuracy`, `balanced_accuracy` and `roc_auc` in that order. Errors name the file and the
/// column.
pub fn shuffled_model_table(df: &DataFrame) -> Result<DataFrame> {
    const TABLE: &str = "shuffled_model.csv";
    let mut cols = vec![Column::new(ShuffledModelRow::MODEL.into(), column_str(df, TABLE, ShuffledModelRow::MODEL)?)];
    // Counts stay integers in the table (NaN, a missing count, becomes an empty cell).
    let counts: Vec<Option<i64>> =
        numbers(df, TABLE, N_SCANS)?.iter().map(|&n| n.is_finite().then_some(n.round() as i64)).collect();
    cols.push(Column::new(N_SCANS.into(), counts));
    for c in ShuffledModelRow::METRICS {
        cols.push(Column::new(c.into(), numbers(df, TABLE, c)?));
    }
    Ok(DataFrame::new(df.height(), cols)?)
}

/// The accuracy of row [`ShuffledModelRow::SHUFFLED_FIT`] of [`shuffled_model_table`]'s table:
/// how well the shuffled-label model reproduces the shuffled labels of its own training scans.
/// `None` without such a row (tables written before it).
pub fn shuffled_fit(df: &DataFrame) -> Result<Option<f64>> {
    const TABLE: &str = "shuffled_model.csv";
    let model = column_str(df, TABLE, ShuffledModelRow::MODEL)?;
    let acc = numbers(df, TABLE, ShuffledModelRow::ACCURACY)?;
    Ok(model.iter().position(|m| m == ShuffledModelRow::SHUFFLED_FIT).map(|i| acc[i]))
}

/// Sentences on the shuffled-label model from [`shuffled_model_table`]'s table: its scores on
/// the hold-out test scans against the true labels next to the trained model's (it should be at
/// chance, balanced accuracy and ROC AUC near 0.5), then how well it fitted its shuffled training
/// labels ([`shuffled_fit`]) and, below [`SHUFFLED_FIT_MIN`], that the data randomisation test is
/// therefore not judged. `None` without a `shuffled` row.
pub fn shuffled_model_sentence(df: &DataFrame) -> Result<Option<String>> {
    const TABLE: &str = "shuffled_model.csv";
    let model = column_str(df, TABLE, ShuffledModelRow::MODEL)?;
    let n = numbers(df, TABLE, N_SCANS)?;
    let acc = numbers(df, TABLE, ShuffledModelRow::ACCURACY)?;
    let bal = numbers(df, TABLE, ShuffledModelRow::BALANCED_ACCURACY)?;
    let auc = numbers(df, TABLE, ShuffledModelRow::ROC_AUC)?;
    let f = format_float;
    let scores = |i: usize| format!("accuracy {}, balanced accuracy {}, ROC AUC {}", f(acc[i]), f(bal[i]), f(auc[i]));
    let Some(s) = model.iter().position(|m| m == ShuffledModelRow::SHUFFLED) else { return Ok(None) };
    let mut text = format!(
        "The model trained on shuffled labels scores {} on the {} hold-out test scans against the true labels",
        scores(s),
        n[s]
    );
    if let Some(t) = model.iter().position(|m| m == ShuffledModelRow::TRAINED) {
        let _ = write!(text, " (the trained model: {})", scores(t));
    }
    text.push_str("; it should be at chance (0.5).");
    if let Some(i) = model.iter().position(|m| m == ShuffledModelRow::SHUFFLED_FIT) {
        let _ = write!(
            text,
            " On its own {} training scans it reproduces the shuffled labels it was trained with at accuracy {}",
            n[i],
            f(acc[i])
        );
        if acc[i] >= SHUFFLED_FIT_MIN {
            let _ = write!(text, " (at least {SHUFFLED_FIT_MIN}: it memorised them, as the test requires).");
        } else {
            let _ = write!(
                text,
                ": below {SHUFFLED_FIT_MIN}, so it has not memorised them and the data randomisation test is not \
                 judged (train it longer with `[sanity] shuffled_epochs`)."
            );
        }
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{column_f64, read_csv, write_table};

    fn frame(cols: Vec<Column>) -> DataFrame {
        let h = cols.first().map_or(0, Column::len);
        DataFrame::new(h, cols).unwrap()
    }

    fn boot(samples: usize) -> Bootstrap {
        Bootstrap { samples, ..Bootstrap::default() }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Two methods, two steps (dense_3, block1), three patients (p3 with two scans).
    fn cascade_table() -> DataFrame {
        let mut cols = (
            Vec::<i64>::new(),
            Vec::<&str>::new(),
            Vec::<&str>::new(),
            Vec::<&str>::new(),
            Vec::<f64>::new(),
            Vec::<f64>::new(),
        );
        let scans = ["p1", "p2", "p3", "p3"];
        // rows listed block1 first: the summary orders by step, not by the table
        for (k, layer) in [(2i64, "block1"), (1, "dense_3")] {
            for (method, base) in [("occlusion", 0.9), ("lrp", 0.3)] {
                for (s, p) in scans.iter().enumerate() {
                    cols.0.push(k);
                    cols.1.push(layer);
                    cols.2.push(method);
                    cols.3.push(p);
                    let drop = if k == 2 { 0.2 } else { 0.0 };
                    cols.4.push(if method == "lrp" && k == 2 && s == 0 {
                        f64::NAN
                    } else {
                        base - drop + 0.01 * s as f64
                    });
                    cols.5.push(base / 2.0);
                }
            }
        }
        frame(vec![
            Column::new("step".into(), cols.0),
            Column::new("layer".into(), cols.1),
            Column::new("method".into(), cols.2),
            Column::new("PTID".into(), cols.3),
            // one image per scan, the same at every step and for every method
            Column::new("Image.ID".into(), (0..16i64).map(|i| i % 4).collect::<Vec<_>>()),
            Column::new("spearman".into(), cols.4),
            Column::new("ssim".into(), cols.5),
        ])
    }

    #[test]
    fn cascade_summary_orders_steps_and_has_hand_means() {
        let s = summarise_cascade(&cascade_table(), &boot(500)).unwrap();
        assert_eq!(
            column_str(&s, "s", "method").unwrap(),
            ["occlusion", "occlusion", "occlusion", "lrp", "lrp", "lrp"]
        );
        assert_eq!(
            column_str(&s, "s", "step").unwrap(),
            ["original", "dense_3", "block1", "original", "dense_3", "block1"]
        );
        assert_eq!(column_f64(&s, "s", "layers_randomised").unwrap(), [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
        assert_eq!(column_f64(&s, "s", "n_scans").unwrap(), [4.0, 4.0, 4.0, 4.0, 4.0, 4.0]);
        assert_eq!(column_f64(&s, "s", "n_undefined").unwrap(), [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let mean = column_f64(&s, "s", "spearman_mean").unwrap();
        let (lo, hi) = (column_f64(&s, "s", "spearman_lo").unwrap(), column_f64(&s, "s", "spearman_hi").unwrap());
        // original: 1 without an interval
        assert_eq!((mean[0], mean[3]), (1.0, 1.0));
        assert!(lo[0].is_nan() && hi[0].is_nan());
        // occlusion/dense_3: 0.90, 0.91, 0.92, 0.93 → 0.915; block1: 0.70 … 0.73 → 0.715
        assert!(close(mean[1], 0.915) && close(mean[2], 0.715), "{mean:?}");
        // lrp/block1: the NaN of p1 left out: 0.11, 0.12, 0.13 → 0.12; patients p2 (0.11) and
        // p3 (0.12, 0.13): 0.12 ± t(1) × the cluster-robust SE 0.006667 (statsmodels, CR1)
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(mean[5], 0.12), "{}", mean[5]);
        assert!(near(lo[5], 0.035291968426) && near(hi[5], 0.204708031574), "{} {}", lo[5], hi[5]);
        // occlusion/dense_3, patients p1 0.90, p2 0.91, p3 (0.92, 0.93): t(2), reaching past the
        // patient means 0.90 and 0.925
        assert!(near(lo[1], 0.881412427894) && near(hi[1], 0.948587572106), "{} {}", lo[1], hi[1]);
        let how = column_str(&s, "s", "spearman_interval").unwrap();
        assert_eq!(how, ["none", "t(PTID, 2 df)", "t(PTID, 2 df)", "none", "t(PTID, 2 df)", "t(PTID, 1 df)"]);
        assert_eq!(column_str(&s, "s", "ssim_interval").unwrap()[5], "t(PTID, 2 df)");
        assert!(close(column_f64(&s, "s", "ssim_mean").unwrap()[4], 0.15));
        // the same table gives the same interval
        let again = summarise_cascade(&cascade_table(), &boot(500)).unwrap();
        assert_eq!(column_f64(&again, "s", "spearman_lo").unwrap()[1], lo[1]);
    }

    #[test]
    fn a_constant_trained_map_has_no_similarity_not_even_the_original() {
        // lrp's trained map is constant on scan 0: flagged by the runner's column
        let mut t = cascade_table();
        let (method, image) = (column_str(&t, "t", "method").unwrap(), column_f64(&t, "t", "Image.ID").unwrap());
        let ranks: Vec<bool> = (0..t.height()).map(|i| !(method[i] == "lrp" && image[i] == 0.0)).collect();
        t.with_column(Column::new(TRAINED_MAP_RANKS.into(), ranks)).unwrap();
        let s = summarise_cascade(&t, &boot(100)).unwrap();
        // lrp: original, dense_3, block1; scan 0 undefined everywhere, SSIM included
        assert_eq!(column_f64(&s, "s", "n_undefined").unwrap()[3..], [1.0, 1.0, 1.0]);
        assert_eq!(column_f64(&s, "s", "spearman_mean").unwrap()[3], 1.0);
        // ssim of lrp is 0.15 for every scan: still 0.15 over the three scans left
        assert!(close(column_f64(&s, "s", "ssim_mean").unwrap()[4], 0.15));
        // every scan constant: the original is undefined too (NaN, all counted)
        let mut t = cascade_table();
        let method = column_str(&t, "t", "method").unwrap();
        let ranks: Vec<bool> = method.iter().map(|m| m != "lrp").collect();
        t.with_column(Column::new(TRAINED_MAP_RANKS.into(), ranks)).unwrap();
        let s = summarise_cascade(&t, &boot(100)).unwrap();
        let (sp, ss) = (column_f64(&s, "s", "spearman_mean").unwrap(), column_f64(&s, "s", "ssim_mean").unwrap());
        assert!(sp[3..].iter().chain(&ss[3..]).all(|v| v.is_nan()), "{sp:?} {ss:?}");
        assert_eq!(column_f64(&s, "s", "n_undefined").unwrap()[3..], [4.0, 4.0, 4.0]);
        assert_eq!(sp[0], 1.0);
        // an older table without the column: a (method, scan) with no finite Spearman at any
        // step counts as constant, and its SSIM is dropped
        let mut old = cascade_table();
        let (method, image) = (column_str(&old, "t", "method").unwrap(), column_f64(&old, "t", "Image.ID").unwrap());
        let sp: Vec<f64> = column_f64(&old, "t", "spearman")
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, &v)| if method[i] == "occlusion" && image[i] == 1.0 { f64::NAN } else { v })
            .collect();
        old.with_column(Column::new("spearman".into(), sp)).unwrap();
        let s = summarise_cascade(&old, &boot(100)).unwrap();
        assert_eq!(column_f64(&s, "s", "n_undefined").unwrap()[..3], [1.0, 1.0, 1.0]);
        // the figure leaves a method without any finite value off; it still draws
        let mut t = cascade_table();
        let method = column_str(&t, "t", "method").unwrap();
        t.with_column(Column::new(TRAINED_MAP_RANKS.into(), method.iter().map(|m| m != "lrp").collect::<Vec<_>>()))
            .unwrap();
        let s = summarise_cascade(&t, &boot(100)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        crate::figures::randomisation_chart(&s, (1200, 500), &dir.path().join("c.png")).unwrap();
    }

    #[test]
    fn cascade_summary_fills_missing_steps_and_rejects_bad_tables() {
        // lrp lacks step 1: it still gets the row, empty, so the x axis keeps its order
        let t = cascade_table();
        let method = column_str(&t, "t", "method").unwrap();
        let step = column_f64(&t, "t", "step").unwrap();
        let keep: Vec<bool> = (0..t.height()).map(|i| !(method[i] == "lrp" && step[i] == 1.0)).collect();
        let t = t.filter(&BooleanChunked::from_slice("k".into(), &keep)).unwrap();
        let s = summarise_cascade(&t, &boot(100)).unwrap();
        assert_eq!(column_str(&s, "s", "step").unwrap()[3..], ["original", "dense_3", "block1"]);
        assert_eq!(column_f64(&s, "s", "n_scans").unwrap()[4], 0.0);
        assert!(column_f64(&s, "s", "spearman_mean").unwrap()[4].is_nan());

        let e = summarise_cascade(&cascade_table().drop("ssim").unwrap(), &boot(10)).unwrap_err().to_string();
        assert!(e.contains("cascade.csv") && e.contains("ssim"), "{e}");
        let mut bad = cascade_table();
        bad.with_column(Column::new("step".into(), vec![0.5f64; bad.height()])).unwrap();
        let e = summarise_cascade(&bad, &boot(10)).unwrap_err().to_string();
        assert!(e.contains("step") && e.contains("0.5"), "{e}");
        let mut bad = cascade_table();
        bad.with_column(Column::new("step".into(), vec!["dense_3"; bad.height()])).unwrap();
        let e = summarise_cascade(&bad, &boot(10)).unwrap_err().to_string();
        assert!(e.contains("step") && e.contains("dense_3"), "{e}");
        // two layers at one step
        let mut bad = cascade_table();
        let mut layer = column_str(&bad, "t", "layer").unwrap();
        layer[0] = "block2".into();
        bad.with_column(Column::new("layer".into(), layer)).unwrap();
        let e = summarise_cascade(&bad, &boot(10)).unwrap_err().to_string();
        assert!(e.contains("layer") && e.contains("block2") && e.contains("block1"), "{e}");
        // an empty table with the header: an empty summary
        let empty = cascade_table().head(Some(0));
        assert_eq!(summarise_cascade(&empty, &boot(10)).unwrap().height(), 0);
    }

    #[test]
    fn cascade_summary_draws_as_a_randomisation_chart() {
        let s = summarise_cascade(&cascade_table(), &boot(100)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cascade.png");
        crate::figures::randomisation_chart(&s, (1200, 500), &p).unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() > 1000);
    }

    #[test]
    fn data_randomisation_summary_has_hand_means() {
        let df = frame(vec![
            Column::new("method".into(), ["a", "a", "a", "b"]),
            Column::new("PTID".into(), ["p1", "p2", "p3", "p1"]),
            Column::new("Image.ID".into(), [1i64, 2, 3, 1]),
            Column::new("spearman".into(), [0.2, 0.4, f64::NAN, 0.9]),
            Column::new("ssim".into(), [0.5, 0.5, 0.5, 0.8]),
            Column::new("mass_accuracy".into(), [0.1, 0.3, 0.2, f64::NAN]),
            Column::new("rank_accuracy".into(), [0.1, 0.3, 0.2, f64::NAN]),
            Column::new("pointing_hit".into(), [Some(true), None, Some(false), None]),
            Column::new("truth_fraction".into(), [0.05, 0.07, 0.06, f64::NAN]),
        ]);
        let s = summarise_data_randomisation(&df, &boot(500)).unwrap();
        assert_eq!(column_str(&s, "s", "method").unwrap(), ["a", "b"]);
        assert_eq!(column_f64(&s, "s", "n_scans").unwrap(), [3.0, 1.0]);
        let sp = column_f64(&s, "s", "spearman_mean").unwrap();
        assert!(close(sp[0], 0.3) && sp[1] == 0.9);
        // two patients with spearman, 0.2 and 0.4: 0.3 ± t(1) × 0.1 = [−0.9706, 1.5706], cut at a
        // correlation's 1
        assert!((column_f64(&s, "s", "spearman_lo").unwrap()[0] + 0.970620473617).abs() < 1e-9);
        assert_eq!(column_f64(&s, "s", "spearman_hi").unwrap()[0], 1.0);
        assert_eq!(column_str(&s, "s", "spearman_interval").unwrap(), ["t(PTID, 1 df)", "none"]);
        assert!(column_f64(&s, "s", "spearman_lo").unwrap()[1].is_nan());
        assert_eq!(column_f64(&s, "s", "ssim_mean").unwrap(), [0.5, 0.8]);
        let mass = column_f64(&s, "s", "mass_accuracy_mean").unwrap();
        assert!(close(mass[0], 0.2) && mass[1].is_nan());
        let chance = column_f64(&s, "s", "chance").unwrap();
        assert!(close(chance[0], 0.06) && chance[1].is_nan());
        // regression: chance over the scans with a mass accuracy, not over every scan with a
        // truth fraction (a's third scan and b's one scan have a truth fraction but no mass
        // accuracy; over every scan a's chance would be 0.14 and b's 0.5)
        let mut with_b = df.clone();
        with_b.with_column(Column::new("truth_fraction".into(), [0.05, 0.07, 0.3, 0.5])).unwrap();
        let mut mass = [0.1, 0.3, f64::NAN, f64::NAN];
        with_b.with_column(Column::new("mass_accuracy".into(), mass)).unwrap();
        let s2 = summarise_data_randomisation(&with_b, &boot(10)).unwrap();
        let c2 = column_f64(&s2, "s", "chance").unwrap();
        assert!(close(c2[0], 0.06) && c2[1].is_nan(), "{c2:?}");
        mass[3] = 0.4;
        with_b.with_column(Column::new("mass_accuracy".into(), mass)).unwrap();
        let c3 = column_f64(&summarise_data_randomisation(&with_b, &boot(10)).unwrap(), "s", "chance").unwrap();
        assert!(close(c3[1], 0.5), "{c3:?}");
        // without the ground-truth columns: NaN, not an error; without spearman: an error
        let bare = df.drop_many(["mass_accuracy", "truth_fraction"]);
        let s = summarise_data_randomisation(&bare, &boot(10)).unwrap();
        assert!(column_f64(&s, "s", "mass_accuracy_mean").unwrap()[0].is_nan());
        let e = summarise_data_randomisation(&df.drop("spearman").unwrap(), &boot(10)).unwrap_err().to_string();
        assert!(e.contains("data_randomisation.csv") && e.contains("spearman"), "{e}");
    }

    /// Deletion rows: methods a, b, two patients, voxels steps 0–2 and regions step 0–1.
    fn deletion_table() -> DataFrame {
        let mut c = (
            Vec::<&str>::new(),
            Vec::<&str>::new(),
            Vec::<&str>::new(),
            Vec::<&str>::new(),
            Vec::<i64>::new(),
            Vec::<f64>::new(),
            Vec::<f64>::new(),
        );
        for kind in ["voxels", "regions"] {
            let steps: &[f64] = if kind == "voxels" { &[0.0, 0.1, 0.5] } else { &[0.0, 0.25] };
            for method in ["a", "b"] {
                for ordering in ["random", "relevance"] {
                    for (p, ptid) in ["p1", "p2"].iter().enumerate() {
                        for (k, &fr) in steps.iter().enumerate() {
                            c.0.push(kind);
                            c.1.push(method);
                            c.2.push(ordering);
                            c.3.push(ptid);
                            c.4.push(k as i64);
                            c.5.push(fr);
                            let speed = if ordering == "relevance" { 1.0 } else { 0.5 };
                            c.6.push(0.9 - speed * fr - 0.1 * p as f64);
                        }
                    }
                }
            }
        }
        frame(vec![
            Column::new("kind".into(), c.0),
            Column::new("method".into(), c.1),
            Column::new("ordering".into(), c.2),
            Column::new("PTID".into(), c.3),
            Column::new("step".into(), c.4),
            Column::new("fraction".into(), c.5),
            Column::new("score".into(), c.6),
        ])
    }

    #[test]
    fn deletion_summary_averages_scans_per_step() {
        let s = summarise_deletion(&deletion_table(), "voxels", &boot(500)).unwrap();
        assert_eq!(s.height(), 2 * 2 * 3);
        assert_eq!(column_str(&s, "s", "method").unwrap()[..6], ["a"; 6]);
        // relevance first, whatever the order in the table
        assert_eq!(column_str(&s, "s", "ordering").unwrap()[..4], ["relevance", "relevance", "relevance", "random"]);
        assert_eq!(column_f64(&s, "s", "step").unwrap()[..3], [0.0, 1.0, 2.0]);
        assert_eq!(column_f64(&s, "s", "fraction").unwrap()[..3], [0.0, 0.1, 0.5]);
        let mean = column_f64(&s, "s", "score_mean").unwrap();
        // a/relevance at 0.5: p1 0.4, p2 0.3 → 0.35; a/random at 0.5: 0.65, 0.55 → 0.6
        assert!(close(mean[2], 0.35) && close(mean[5], 0.6), "{mean:?}");
        // two patients: 0.35 ± t(1) × 0.05 = [−0.2853, 0.9853], not the patient values [0.3, 0.4]
        assert!((column_f64(&s, "s", "score_lo").unwrap()[2] + 0.285310236809).abs() < 1e-9);
        assert!((column_f64(&s, "s", "score_hi").unwrap()[2] - 0.985310236809).abs() < 1e-9);
        assert_eq!(column_str(&s, "s", "score_interval").unwrap()[2], "t(PTID, 1 df)");
        assert_eq!(column_f64(&s, "s", "n_scans").unwrap()[2], 2.0);
        let r = summarise_deletion(&deletion_table(), "regions", &boot(10)).unwrap();
        assert_eq!(r.height(), 2 * 2 * 2);
        assert_eq!(column_f64(&r, "r", "fraction").unwrap()[1], 0.25);
        // an absent kind: empty, with the columns
        let none = summarise_deletion(&deletion_table(), "lobes", &boot(10)).unwrap();
        assert_eq!((none.height(), none.width()), (0, 9));
        // the summary draws
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.png");
        crate::figures::deletion_chart_for(&r, crate::figures::DeletionUnit::Regions, (800, 500), &p).unwrap();
    }

    #[test]
    fn deletion_summary_leaves_out_scans_whose_map_ranks_nothing() {
        // b's map is constant on p2: its relevance and its random rows there are flagged
        let mut t = deletion_table();
        let (method, ptid) = (column_str(&t, "t", "method").unwrap(), column_str(&t, "t", "PTID").unwrap());
        let ranks: Vec<bool> = (0..t.height()).map(|i| !(method[i] == "b" && ptid[i] == "p2")).collect();
        t.with_column(Column::new(RANKS_VOXELS.into(), ranks)).unwrap();
        let s = summarise_deletion(&t, "voxels", &boot(100)).unwrap();
        let (m, n) = (column_str(&s, "s", "method").unwrap(), column_f64(&s, "s", "n_scans").unwrap());
        let mean = column_f64(&s, "s", "score_mean").unwrap();
        for i in 0..s.height() {
            assert_eq!(n[i], if m[i] == "b" { 1.0 } else { 2.0 }, "row {i}");
        }
        // b at 0.5 on p1 only: relevance 0.4, random 0.65 (both orderings on the same scan)
        let b: Vec<usize> = (0..s.height()).filter(|&i| m[i] == "b").collect();
        assert!(close(mean[b[2]], 0.4) && close(mean[b[5]], 0.65), "{mean:?}");
        // a method whose map ranks nothing anywhere has no row; text flags (CSV) work alike
        let text: Vec<&str> = method.iter().map(|m| if m == "b" { "false" } else { "true" }).collect();
        t.with_column(Column::new(RANKS_VOXELS.into(), text)).unwrap();
        let s = summarise_deletion(&t, "voxels", &boot(10)).unwrap();
        assert!(column_str(&s, "s", "method").unwrap().iter().all(|m| m == "a"));
        assert_eq!(s.height(), 6);
    }

    #[test]
    fn deletion_summary_names_bad_values() {
        let mut t = deletion_table();
        let mut o = column_str(&t, "t", "ordering").unwrap();
        o[3] = "inverse".into();
        t.with_column(Column::new("ordering".into(), o)).unwrap();
        let e = summarise_deletion(&t, "voxels", &boot(10)).unwrap_err().to_string();
        assert!(e.contains("deletion.csv") && e.contains("inverse") && e.contains("row 3"), "{e}");
        let mut t = deletion_table();
        t.with_column(Column::new("fraction".into(), vec![50.0; t.height()])).unwrap();
        let e = summarise_deletion(&t, "voxels", &boot(10)).unwrap_err().to_string();
        assert!(e.contains("fraction") && e.contains("50"), "{e}");
        let e = summarise_deletion(&deletion_table().drop("score").unwrap(), "voxels", &boot(10)).unwrap_err();
        assert!(e.to_string().contains("score"), "{e}");
    }

    /// Four methods: `good` passes everything, `stiff` fails model randomisation, `copy` fails
    /// data randomisation and is not faithful on regions, `lone` appears only in the AOPC table.
    fn trust_inputs() -> (DataFrame, DataFrame, DataFrame, DataFrame) {
        let cascade = frame(vec![
            Column::new("method".into(), ["good", "good", "stiff", "stiff", "copy", "copy"]),
            Column::new("step".into(), ["original", "block1", "original", "block1", "original", "block1"]),
            Column::new("layers_randomised".into(), [0i64, 7, 0, 7, 0, 7]),
            Column::new("spearman_mean".into(), [1.0, 0.12, 1.0, 0.81, 1.0, 0.2]),
            Column::new("spearman_lo".into(), [f64::NAN, 0.05, f64::NAN, 0.7, f64::NAN, 0.1]),
            Column::new("spearman_hi".into(), [f64::NAN, 0.2, f64::NAN, 0.9, f64::NAN, 0.3]),
        ]);
        let data = frame(vec![
            Column::new("method".into(), ["good", "stiff", "copy"]),
            Column::new("spearman_mean".into(), [0.1, 0.3, 0.66]),
            Column::new("spearman_lo".into(), [0.0, 0.2, 0.6]),
            Column::new("spearman_hi".into(), [0.2, 0.4, 0.7]),
            Column::new("mass_accuracy_mean".into(), [0.05, 0.3, 0.2]),
        ]);
        let mut a = (
            Vec::<&str>::new(),
            Vec::<&str>::new(),
            Vec::<&str>::new(),
            Vec::<f64>::new(),
            Vec::<f64>::new(),
            Vec::<f64>::new(),
        );
        for kind in ["voxels", "regions"] {
            for (m, rel) in [("good", 0.3), ("stiff", 0.25), ("copy", 0.2), ("lone", 0.4)] {
                for (o, v) in [("relevance", rel), ("random", 0.1)] {
                    a.0.push(kind);
                    a.1.push(m);
                    a.2.push(o);
                    // copy's regions: overlapping intervals
                    let v = if m == "copy" && kind == "regions" && o == "relevance" { 0.12 } else { v };
                    a.3.push(v);
                    a.4.push(v - 0.03);
                    a.5.push(v + 0.03);
                }
            }
        }
        let aopc = frame(vec![
            Column::new("kind".into(), a.0),
            Column::new("method".into(), a.1),
            Column::new("ordering".into(), a.2),
            Column::new("aopc_mean".into(), a.3),
            Column::new("aopc_lo".into(), a.4),
            Column::new("aopc_hi".into(), a.5),
        ]);
        // ground truth as scan_summary writes it: trained and random rows; `lone` lacks one
        let (mut m, mut model, mut mass, mut lo, mut hi) = (vec![], vec![], vec![], vec![], vec![]);
        for (name, v) in [("good", 0.42), ("stiff", 0.5), ("copy", 0.35), ("other", 0.5)] {
            for (which, x) in [("trained", v), ("random", 0.05)] {
                m.push(name);
                model.push(which);
                mass.push(x);
                lo.push(x - 0.05);
                hi.push(x + 0.05);
            }
        }
        // the trained rows compared with the randomised ones on 10 scans scored under both
        let paired: Vec<Option<u64>> = model.iter().map(|&w| (w == "trained").then_some(10)).collect();
        let paired_low: Vec<f64> = (0..8).map(|i| if i % 2 == 0 { lo[i] } else { f64::NAN }).collect();
        let paired_random: Vec<f64> = (0..8).map(|i| if i % 2 == 0 { 0.05 } else { f64::NAN }).collect();
        let gt = frame(vec![
            Column::new("method".into(), m),
            Column::new("model".into(), model),
            Column::new("chance".into(), vec![0.1; 8]),
            Column::new("mass_accuracy".into(), mass),
            Column::new("mass_ci_low".into(), lo),
            Column::new("mass_ci_high".into(), hi),
            Column::new("paired_scans".into(), paired),
            Column::new("paired_mass_ci_low".into(), paired_low),
            Column::new("paired_random_mass".into(), paired_random),
        ]);
        (cascade, data, aopc, gt)
    }

    #[test]
    fn trust_table_puts_the_tests_side_by_side() {
        let (cascade, data, aopc, gt) = trust_inputs();
        let inputs = TrustInputs {
            cascade: Some(&cascade),
            data_randomisation: Some(&data),
            shuffled_fit: None,
            aopc: Some(&aopc),
            ground_truth: Some(&gt),
        };
        let t = trust_table(&inputs).unwrap();
        // `other` has only a ground truth: not in the table
        assert_eq!(column_str(&t, "t", "method").unwrap(), ["good", "stiff", "copy", "lone"]);
        let casc = column_f64(&t, "t", "cascade_spearman").unwrap();
        assert_eq!(casc[..3], [0.12, 0.81, 0.2]);
        assert!(casc[3].is_nan());
        assert_eq!(column_f64(&t, "t", "data_rand_spearman_hi").unwrap()[2], 0.7);
        assert_eq!(column_f64(&t, "t", "aopc_regions").unwrap()[2], 0.12);
        assert_eq!(column_f64(&t, "t", "aopc_voxels_random").unwrap()[0], 0.1);
        assert_eq!(column_f64(&t, "t", "mass_accuracy").unwrap()[..3], [0.42, 0.5, 0.35]);
        let f = |c: &str| flags(&t, "t", c).unwrap();
        assert_eq!(f("passes_model_randomisation"), [Some(true), Some(false), Some(true), None]);
        assert_eq!(f("passes_data_randomisation"), [Some(true), Some(true), Some(false), None]);
        assert_eq!(f("faithful_voxels"), [Some(true); 4]);
        assert_eq!(f("faithful_regions"), [Some(true), Some(true), Some(false), Some(true)]);
        assert_eq!(f("passes_ground_truth"), [Some(true), Some(true), Some(true), None]);
        assert_eq!(
            column_str(&t, "t", "verdict").unwrap(),
            [
                "trusted",
                "fails: model randomisation",
                "fails: data randomisation, faithfulness (regions)",
                "not judged: model randomisation, data randomisation, ground truth"
            ]
        );
        // nothing given: an empty table, no panic; only a cascade: the other tests did not run
        assert_eq!(trust_table(&TrustInputs::default()).unwrap().height(), 0);
        let only = trust_table(&TrustInputs { cascade: Some(&cascade), ..TrustInputs::default() }).unwrap();
        assert_eq!(column_str(&only, "t", "verdict").unwrap(), ["trusted", "fails: model randomisation", "trusted"]);
        // a bad summary is named
        let e = trust_table(&TrustInputs { aopc: Some(&aopc.drop("aopc_lo").unwrap()), ..inputs }).unwrap_err();
        assert!(e.to_string().contains("aopc_lo"), "{e}");
    }

    #[test]
    fn trust_paragraph_reads_the_numbers_out() {
        let (cascade, data, aopc, gt) = trust_inputs();
        let t = trust_table(&TrustInputs {
            cascade: Some(&cascade),
            data_randomisation: Some(&data),
            shuffled_fit: None,
            aopc: Some(&aopc),
            ground_truth: Some(&gt),
        })
        .unwrap();
        let p = trust_paragraph(&t).unwrap();
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines.len(), 7, "{p}");
        assert!(lines[0].starts_with("- **Model randomisation**"), "{p}");
        assert!(lines[0].contains("fail: **stiff** (0.8100 [0.7000, 0.9000])"), "{}", lines[0]);
        assert!(lines[0].contains("pass: good (0.1200 [0.05000, 0.2000]), copy (0.2000"), "{}", lines[0]);
        assert!(lines[0].contains("not judged: lone"), "{}", lines[0]);
        assert!(lines[1].contains("fail: **copy** (0.6600 [0.6000, 0.7000])"), "{}", lines[1]);
        assert!(
            lines[3].contains("not shown faithful: **copy** (0.1200 [0.09000, 0.1500] vs random 0.1000"),
            "{}",
            lines[3]
        );
        assert!(lines[4].starts_with("- **Ground truth**") && lines[4].contains("good (0.4200 [0.3700, 0.4700])"));
        assert_eq!(lines[5], "");
        assert!(
            lines[6].starts_with("**Can be trusted here:** good: it passes every test that ran (model randomisation,")
                && lines[6].contains("The others (stiff, copy, lone) do not."),
            "{}",
            lines[6]
        );
        // read back from CSV, the text is the same
        let dir = tempfile::tempdir().unwrap();
        let (csv, _) = write_table(&t, dir.path(), "trust").unwrap();
        assert_eq!(trust_paragraph(&read_csv(&csv).unwrap()).unwrap(), p);

        // without `good`: no method passes; stiff fails one test only
        let keep: Vec<bool> = column_str(&t, "t", "method").unwrap().iter().map(|m| m != "good").collect();
        let t2 = t.filter(&BooleanChunked::from_slice("k".into(), &keep)).unwrap();
        let p2 = trust_paragraph(&t2).unwrap();
        assert!(p2.contains("**No method passes every test that ran here**"), "{p2}");
        assert!(p2.contains("closest: stiff (fails model randomisation only)") && !p2.contains("copy (fails"), "{p2}");

        // only the cascade ran
        let only = trust_table(&TrustInputs { cascade: Some(&cascade), ..TrustInputs::default() }).unwrap();
        let p3 = trust_paragraph(&only).unwrap();
        assert!(
            p3.contains("**Can be trusted here:** good, copy: they pass every test that ran (model randomisation)")
        );
        assert!(p3.contains("Not run (or no value for any method): data randomisation, faithfulness (voxels)"), "{p3}");
        let (csv, _) = write_table(&only, dir.path(), "trust_only").unwrap();
        assert_eq!(trust_paragraph(&read_csv(&csv).unwrap()).unwrap(), p3);
        // nothing at all
        let p4 = trust_paragraph(&trust_table(&TrustInputs::default()).unwrap()).unwrap();
        assert!(p4.contains("no map is vouched for"), "{p4}");
    }

    #[test]
    fn trust_table_compares_aopc_on_the_same_scans_and_says_how_many() {
        let (mut cascade, mut data, mut aopc, _) = trust_inputs();
        // cascade: good on 1 of 2 scans at the last step; data randomisation: 3 scans each
        cascade.with_column(Column::new("n_scans".into(), [2u64, 2, 2, 2, 2, 2])).unwrap();
        cascade.with_column(Column::new("n_undefined".into(), [0u64, 1, 0, 0, 0, 0])).unwrap();
        data.with_column(Column::new("n_scans".into(), [3u64, 3, 3])).unwrap();
        data.with_column(Column::new("n_undefined".into(), [0u64, 0, 0])).unwrap();
        // AOPC: good's relevance order on 5 scans, its random order on 7 (an old, unpaired
        // summary); the others on 7 and 7
        let (method, ordering) =
            (column_str(&aopc, "a", "method").unwrap(), column_str(&aopc, "a", "ordering").unwrap());
        let n: Vec<u64> =
            (0..aopc.height()).map(|i| if method[i] == "good" && ordering[i] == "relevance" { 5 } else { 7 }).collect();
        aopc.with_column(Column::new("n_scans".into(), n)).unwrap();
        let t = trust_table(&TrustInputs {
            cascade: Some(&cascade),
            data_randomisation: Some(&data),
            shuffled_fit: None,
            aopc: Some(&aopc),
            ground_truth: None,
        })
        .unwrap();
        assert_eq!(flags(&t, "t", "faithful_voxels").unwrap(), [None, Some(true), Some(true), Some(true)]);
        assert_eq!(column_f64(&t, "t", "aopc_voxels_n").unwrap()[..2], [5.0, 7.0]);
        assert_eq!(column_f64(&t, "t", "cascade_n_undefined").unwrap()[0], 1.0);
        let p = trust_paragraph(&t).unwrap();
        assert!(p.contains("pass: good (0.1200 [0.05000, 0.2000], n = 1 of 2 scans)"), "{p}");
        assert!(p.contains("stiff (0.3000 [0.2000, 0.4000], n = 3 scans)"), "{p}");
        assert!(p.contains("both on the same 7 scans"), "{p}");
        let d = crate::tables::to_markdown(&trust_display(&t).unwrap()).unwrap();
        assert!(d.contains("on 5 vs 7 scans: not the same scans"), "{d}");
        assert!(column_str(&t, "t", "verdict").unwrap()[0].contains("not judged: faithfulness (voxels)"), "{t}");
        // nothing defined: said so, not "n = 0"
        let mut none = t.clone();
        none.with_column(Column::new("cascade_n_undefined".into(), [2.0, 2.0, 0.0, 0.0])).unwrap();
        none.with_column(Column::new("aopc_regions_n".into(), [0.0, 7.0, 7.0, 7.0])).unwrap();
        let d = crate::tables::to_markdown(&trust_display(&none).unwrap()).unwrap();
        assert!(
            d.contains("(undefined on all 2 scans)") && d.contains("n/a (the map ranks no voxel on any scan)"),
            "{d}"
        );
    }

    #[test]
    fn trust_display_bolds_methods_that_fail_model_randomisation() {
        let (cascade, data, aopc, gt) = trust_inputs();
        let t = trust_table(&TrustInputs {
            cascade: Some(&cascade),
            data_randomisation: Some(&data),
            shuffled_fit: None,
            aopc: Some(&aopc),
            ground_truth: Some(&gt),
        })
        .unwrap();
        let d = trust_display(&t).unwrap();
        assert_eq!(column_str(&d, "d", "method").unwrap(), ["good", "**stiff**", "copy", "lone"]);
        let md = crate::tables::to_markdown(&d).unwrap();
        // the verdict comes right after the method, then the numbers
        assert_eq!(d.get_column_names()[1].as_str(), "verdict");
        let row = |m: &str| md.lines().find(|l| l.starts_with(&format!("| {m} | "))).unwrap().to_string();
        assert!(
            row("**stiff**").starts_with("| **stiff** | fails")
                && row("**stiff**").contains("| 0.8100 [0.7000, 0.9000] |"),
            "{md}"
        );
        assert!(row("lone").contains("| n/a |"), "{md}");
    }

    #[test]
    fn flag_line_names_the_methods_over_the_threshold() {
        let (cascade, ..) = trust_inputs();
        let t = trust_table(&TrustInputs { cascade: Some(&cascade), ..TrustInputs::default() }).unwrap();
        let line = randomisation_flag_line(&t).unwrap().unwrap();
        assert!(line.starts_with("Flagged") && line.contains("**stiff** (0.8100 [0.7000, 0.9000])"), "{line}");
        assert!(!line.contains("good") && !line.contains("copy"), "{line}");
        let keep: Vec<bool> = column_str(&t, "t", "method").unwrap().iter().map(|m| m != "stiff").collect();
        let t2 = t.filter(&BooleanChunked::from_slice("k".into(), &keep)).unwrap();
        assert!(randomisation_flag_line(&t2).unwrap().unwrap().starts_with("No method is flagged"));
        let (_, data, ..) = trust_inputs();
        let no_cascade =
            trust_table(&TrustInputs { data_randomisation: Some(&data), ..TrustInputs::default() }).unwrap();
        assert!(randomisation_flag_line(&no_cascade).unwrap().is_none());
    }

    #[test]
    fn shuffled_model_is_checked_and_read_out() {
        let df = frame(vec![
            Column::new("model".into(), ["trained", "shuffled"]),
            Column::new("n_scans".into(), [20i64, 20]),
            Column::new("accuracy".into(), [0.9, 0.5]),
            Column::new("balanced_accuracy".into(), [0.9, 0.45]),
            Column::new("roc_auc".into(), [0.95, 0.52]),
        ]);
        let t = shuffled_model_table(&df).unwrap();
        assert_eq!(t.width(), 5);
        let s = shuffled_model_sentence(&t).unwrap().unwrap();
        assert!(
            s.contains("balanced accuracy 0.4500") && s.contains("20 hold-out") && s.contains("ROC AUC 0.9500"),
            "{s}"
        );
        let e = shuffled_model_table(&df.drop("roc_auc").unwrap()).unwrap_err().to_string();
        assert!(e.contains("shuffled_model.csv") && e.contains("roc_auc"), "{e}");
        let trained_only = df.head(Some(1));
        assert!(shuffled_model_sentence(&trained_only).unwrap().is_none());
    }

    #[test]
    fn data_randomisation_is_judged_only_when_the_shuffled_model_fitted_its_labels() {
        let fitted = |fit: f64| {
            frame(vec![
                Column::new("model".into(), ["trained", "shuffled", "shuffled_fit"]),
                Column::new("n_scans".into(), [20i64, 20, 80]),
                Column::new("accuracy".into(), [0.9, 0.5, fit]),
                Column::new("balanced_accuracy".into(), [0.9, 0.45, fit]),
                Column::new("roc_auc".into(), [0.95, 0.52, fit]),
            ])
        };
        let low = shuffled_model_table(&fitted(0.6)).unwrap();
        assert_eq!(shuffled_fit(&low).unwrap(), Some(0.6));
        let s = shuffled_model_sentence(&low).unwrap().unwrap();
        assert!(s.contains("80 training scans") && s.contains("accuracy 0.6000") && s.contains("not judged"), "{s}");
        let high = shuffled_model_table(&fitted(0.95)).unwrap();
        let s = shuffled_model_sentence(&high).unwrap().unwrap();
        assert!(s.contains("memorised them") && !s.contains("not judged"), "{s}");
        // tables written before the fit row: no fit, judged as before
        assert_eq!(shuffled_fit(&fitted(0.6).head(Some(2))).unwrap(), None);

        let (cascade, data, aopc, gt) = trust_inputs();
        let table = |fit: Option<f64>| {
            trust_table(&TrustInputs {
                cascade: Some(&cascade),
                data_randomisation: Some(&data),
                shuffled_fit: fit,
                aopc: Some(&aopc),
                ground_truth: Some(&gt),
            })
            .unwrap()
        };
        let judged = flags(&table(None), "t", "passes_data_randomisation").unwrap();
        assert!(judged.iter().any(Option::is_some), "{judged:?}");
        assert_eq!(flags(&table(Some(0.95)), "t", "passes_data_randomisation").unwrap(), judged);
        for fit in [0.6, f64::NAN] {
            let t = table(Some(fit));
            assert!(flags(&t, "t", "passes_data_randomisation").unwrap().iter().all(Option::is_none), "{fit}");
            // the Spearman numbers stay for reading; the verdicts do not rest on the test
            let spearman = |t: &DataFrame| format!("{:?}", column_f64(t, "t", "data_rand_spearman").unwrap());
            assert_eq!(spearman(&t), spearman(&table(None)));
            let verdicts = column_str(&t, "t", "verdict").unwrap();
            assert!(verdicts.iter().all(|v| !v.contains("data randomisation")), "{verdicts:?}");
        }
    }

    #[test]
    fn empty_cells_read_back_from_csv_are_nan() {
        let df =
            frame(vec![Column::new("x".into(), ["", "NaN", " 0.5"]), Column::new("f".into(), ["true", "", "false"])]);
        let v = numbers(&df, "t", "x").unwrap();
        assert!(v[0].is_nan() && v[1].is_nan() && v[2] == 0.5);
        assert_eq!(flags(&df, "t", "f").unwrap(), [Some(true), None, Some(false)]);
        let bad = frame(vec![Column::new("x".into(), ["0.1", "high"])]);
        let e = numbers(&bad, "t", "x").unwrap_err().to_string();
        assert!(e.contains("row 1") && e.contains("high"), "{e}");
    }
}
