//! The dose–response sweep of `cargo xtask sweep`: one reproduction per effect size of the
//! planted atrophy, summarised as one table row per effect size (classification and relevance
//! mass accuracy) and drawn by [`crate::figures::sweep_chart`].
//!
//! The inputs are the files every reproduction writes: the training runs' `summary.csv`
//! (`metric`, `mean`, `sd`, optionally `ci_low`, `ci_high`) and the report's ground-truth
//! summary. The ground-truth summary's layout is read at run time, since it has two forms: long
//! (`method`, `model`, `metric`, `mean`, …, with the chance level as its own metric
//! `truth_fraction`) and wide (`method`, `model`, `mass_accuracy`, `chance`, …). A missing column
//! is an error that names the file and the column.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{ReportError, Result};
use crate::tables::{column_f64, column_str, has_column, read_csv, write_table};
use adni_data::run_tables::{self, SummaryRow};

/// The effect size whose atrophy masks score the null-effect run's maps: among the positive
/// effect sizes, the one closest to 1 (ties to the larger); `None` without a positive one.
pub fn reference_effect(effects: &[f64]) -> Option<f64> {
    effects
        .iter()
        .copied()
        .filter(|&e| e > 0.0)
        .min_by(|a, b| (a - 1.0).abs().total_cmp(&(b - 1.0).abs()).then(b.total_cmp(a)))
}

/// Classification metrics of one training run, from its `summary.csv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassificationSummary {
    /// Balanced accuracy: mean over folds.
    pub balanced_accuracy: f64,
    /// Balanced accuracy: SD over folds (NaN for one fold).
    pub balanced_accuracy_sd: f64,
    /// Balanced accuracy on all folds' test predictions pooled (NaN when the file has none).
    pub balanced_accuracy_pooled: f64,
    /// Lower bound of the bootstrap interval of the pooled balanced accuracy (NaN when the
    /// file has none).
    pub balanced_accuracy_ci_low: f64,
    /// Upper bound of that interval.
    pub balanced_accuracy_ci_high: f64,
    /// Confidence level of that interval (NaN when the file does not say: written before the
    /// `ci_level` column).
    pub ci_level: f64,
    /// ROC AUC: mean over folds.
    pub roc_auc: f64,
    /// ROC AUC: SD over folds.
    pub roc_auc_sd: f64,
}

/// Reads the balanced accuracy and ROC AUC of a training run's `summary.csv` (rows named by
/// its `metric` column; `mean` and `sd` columns, `ci_low` / `ci_high` optional). Errors name the
/// file and the missing column or metric.
pub fn read_classification_summary(path: &Path) -> Result<ClassificationSummary> {
    let table = path.display().to_string();
    let df = read_existing(path)?;
    let metric = column_str(&df, &table, SummaryRow::METRIC)?;
    let mean = column_f64(&df, &table, SummaryRow::MEAN)?;
    let sd = column_f64(&df, &table, SummaryRow::SD)?;
    let optional = |name: &str| -> Result<Vec<f64>> {
        if has_column(&df, name) { column_f64(&df, &table, name) } else { Ok(vec![f64::NAN; df.height()]) }
    };
    let (lo, hi) = (optional(SummaryRow::CI_LOW)?, optional(SummaryRow::CI_HIGH)?);
    let (pooled, level) = (optional(SummaryRow::POOLED)?, optional(SummaryRow::CI_LEVEL)?);
    let row = |name: &str| {
        metric.iter().position(|m| m == name).ok_or_else(|| {
            ReportError::column(&table, SummaryRow::METRIC, format!("has no row `{name}`; the rows are {metric:?}"))
        })
    };
    let (b, a) = (row(run_tables::BALANCED_ACCURACY)?, row(run_tables::ROC_AUC)?);
    Ok(ClassificationSummary {
        balanced_accuracy: mean[b],
        balanced_accuracy_sd: sd[b],
        balanced_accuracy_pooled: pooled[b],
        balanced_accuracy_ci_low: lo[b],
        balanced_accuracy_ci_high: hi[b],
        ci_level: level[b],
        roc_auc: mean[a],
        roc_auc_sd: sd[a],
    })
}

/// Mean relevance mass accuracy of one method's maps against the ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodMass {
    /// The relevance method.
    pub method: String,
    /// Mean mass accuracy of the trained model's maps (NaN when not scored).
    pub trained: f64,
    /// Mean mass accuracy of the randomised-weights model's maps (NaN when not scored).
    pub random: f64,
    /// Chance level: the mean share of the scored voxels inside the truth mask, what a uniform
    /// map scores.
    pub chance: f64,
}

/// The per-method mass accuracy of a ground-truth summary file (see [`mass_accuracy_of`]).
pub fn read_mass_accuracy(path: &Path) -> Result<Vec<MethodMass>> {
    let df = read_existing(path)?;
    mass_accuracy_of(&df, &path.display().to_string())
}

/// Names a wide summary may give the mean mass accuracy, in order of preference.
const WIDE_MASS: [&str; 3] = ["mass_accuracy_mean", "mean_mass_accuracy", "mass_accuracy"];

/// Names a wide summary may give the chance level, in order of preference; after them any
/// column whose name starts or ends with `chance` (but not a ratio such as `mass_vs_chance`).
const WIDE_CHANCE: [&str; 6] =
    ["chance", "chance_level", "mass_chance", "mass_accuracy_chance", "truth_fraction_mean", "truth_fraction"];

/// Metric names of a long summary that hold the chance level.
const LONG_CHANCE: [&str; 3] = ["truth_fraction", "chance", "chance_level"];

/// The mean mass accuracy per method of a ground-truth summary (`table` names it in errors),
/// for the trained model (`model` = `trained`, or every row without a `model` column) and the
/// randomised-weights baseline (`model` starting with `random`), with the chance level.
///
/// Long form (it has `metric` and `mean` columns): the `mass_accuracy` rows' `mean`; the chance
/// level from a chance column at those rows if there is one, else from the `mean` of the
/// `truth_fraction` (or `chance`) rows. Wide form: the first of `mass_accuracy_mean`,
/// `mean_mass_accuracy`, `mass_accuracy`, and a chance column (`chance`, `chance_level`, …,
/// `truth_fraction`). Methods in order of first appearance; the chance level is the trained
/// model's where both models have one.
pub fn mass_accuracy_of(df: &DataFrame, table: &str) -> Result<Vec<MethodMass>> {
    let names: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
    let method = column_str(df, table, "method")?;
    let model =
        if has_column(df, "model") { column_str(df, table, "model")? } else { vec![String::new(); df.height()] };
    let chance_column = WIDE_CHANCE.iter().map(|c| c.to_string()).find(|c| names.contains(c)).or_else(|| {
        names.iter().find(|n| (n.starts_with("chance") || n.ends_with("chance")) && !n.contains("_vs_")).cloned()
    });
    // (row, mass mean, chance) of every row that carries a mass-accuracy mean
    let mut rows: Vec<(usize, f64, f64)> = Vec::new();
    if has_column(df, "metric") && has_column(df, "mean") {
        let metric = column_str(df, table, "metric")?;
        let mean = column_f64(df, table, "mean")?;
        let chance_col = match &chance_column {
            Some(c) => Some(column_f64(df, table, c)?),
            None => None,
        };
        let chance_row = |i: usize| {
            (0..df.height())
                .find(|&j| method[j] == method[i] && model[j] == model[i] && LONG_CHANCE.contains(&metric[j].as_str()))
        };
        for i in (0..df.height()).filter(|&i| metric[i] == "mass_accuracy") {
            let chance = match (&chance_col, chance_row(i)) {
                (Some(c), _) => c[i],
                (None, Some(j)) => mean[j],
                (None, None) => {
                    return Err(ReportError::column(
                        table,
                        "chance",
                        format!(
                            "missing: no chance column and no `{}` metric for method `{}`; the columns are {names:?}",
                            LONG_CHANCE.join("` / `"),
                            method[i]
                        ),
                    ));
                }
            };
            rows.push((i, mean[i], chance));
        }
        if rows.is_empty() {
            return Err(ReportError::column(table, "metric", "has no `mass_accuracy` rows"));
        }
    } else {
        let Some(mass_name) = WIDE_MASS.iter().find(|c| names.iter().any(|n| n == *c)) else {
            return Err(ReportError::column(
                table,
                "mass_accuracy",
                format!(
                    "missing: expected a mean mass-accuracy column ({}); the columns are {names:?}",
                    WIDE_MASS.join(", ")
                ),
            ));
        };
        let Some(chance_name) = &chance_column else {
            return Err(ReportError::column(
                table,
                "chance",
                format!(
                    "missing: expected a chance-level column ({}); the columns are {names:?}",
                    WIDE_CHANCE.join(", ")
                ),
            ));
        };
        let mass = column_f64(df, table, mass_name)?;
        let chance = column_f64(df, table, chance_name)?;
        rows.extend((0..df.height()).map(|i| (i, mass[i], chance[i])));
    }

    let mut out: Vec<MethodMass> = Vec::new();
    for (i, mass, chance) in rows {
        let trained = model[i].is_empty() || model[i] == "trained";
        let random = model[i].starts_with("random");
        if !trained && !random {
            continue;
        }
        let k = match out.iter().position(|m| m.method == method[i]) {
            Some(k) => k,
            None => {
                out.push(MethodMass {
                    method: method[i].clone(),
                    trained: f64::NAN,
                    random: f64::NAN,
                    chance: f64::NAN,
                });
                out.len() - 1
            }
        };
        let entry = &mut out[k];
        let slot = if trained { &mut entry.trained } else { &mut entry.random };
        if !slot.is_nan() {
            return Err(ReportError::invalid(
                table,
                format!("two rows for method `{}` and model `{}`; expected one", method[i], model[i]),
            ));
        }
        *slot = mass;
        if trained || entry.chance.is_nan() {
            entry.chance = chance;
        }
    }
    Ok(out)
}

fn read_existing(path: &Path) -> Result<DataFrame> {
    if !path.is_file() {
        return Err(ReportError::invalid("file", format!("{} is missing", path.display())));
    }
    read_csv(path)
}

/// One effect size of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    /// The generator's `effect_size`.
    pub effect_size: f64,
    /// Cross-validation metrics (mean ± SD over folds).
    pub cv: ClassificationSummary,
    /// Hold-out metrics (one model; SD NaN).
    pub holdout: ClassificationSummary,
    /// Mass accuracy per relevance method.
    pub mass: Vec<MethodMass>,
    /// Where the ground truth of the mass accuracy comes from (`planted`, or the cohort whose
    /// masks a null effect borrows).
    pub truth: String,
    /// Wall time of the reproduction at this effect size, in seconds.
    pub seconds: f64,
}

/// The methods of all points, in order of first appearance.
fn methods_of(points: &[SweepPoint]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in points.iter().flat_map(|p| &p.mass) {
        if !out.contains(&m.method) {
            out.push(m.method.clone());
        }
    }
    out
}

/// A point's mass accuracy of `method` (NaNs when the point has none).
fn mass_of<'a>(point: &'a SweepPoint, method: &str) -> Option<&'a MethodMass> {
    point.mass.iter().find(|m| m.method == method)
}

/// The sweep as one row per effect size (in the given order): `effect_size`,
/// `cv_balanced_accuracy`, `cv_balanced_accuracy_sd`, `cv_roc_auc`, `cv_roc_auc_sd`,
/// `holdout_balanced_accuracy`, `holdout_roc_auc`, then per method `mass_<method>_trained`,
/// `mass_<method>_random`, `mass_<method>_chance` (NaN where a point lacks the method), then
/// `ground_truth` and `seconds`.
pub fn sweep_frame(points: &[SweepPoint]) -> Result<DataFrame> {
    let f = |name: &str, get: &dyn Fn(&SweepPoint) -> f64| {
        Column::new(name.into(), points.iter().map(get).collect::<Vec<f64>>())
    };
    let mut cols = vec![
        f("effect_size", &|p| p.effect_size),
        f("cv_balanced_accuracy", &|p| p.cv.balanced_accuracy),
        f("cv_balanced_accuracy_sd", &|p| p.cv.balanced_accuracy_sd),
        f("cv_roc_auc", &|p| p.cv.roc_auc),
        f("cv_roc_auc_sd", &|p| p.cv.roc_auc_sd),
        f("holdout_balanced_accuracy", &|p| p.holdout.balanced_accuracy),
        f("holdout_roc_auc", &|p| p.holdout.roc_auc),
    ];
    for m in methods_of(points) {
        let get = |p: &SweepPoint, which: fn(&MethodMass) -> f64| mass_of(p, &m).map_or(f64::NAN, which);
        cols.push(f(&format!("mass_{m}_trained"), &|p| get(p, |x| x.trained)));
        cols.push(f(&format!("mass_{m}_random"), &|p| get(p, |x| x.random)));
        cols.push(f(&format!("mass_{m}_chance"), &|p| get(p, |x| x.chance)));
    }
    cols.push(Column::new("ground_truth".into(), points.iter().map(|p| p.truth.as_str()).collect::<Vec<_>>()));
    cols.push(f("seconds", &|p| p.seconds));
    Ok(DataFrame::new(points.len(), cols)?)
}

/// A score for a table cell: three decimals (scores lie in [0, 1]), `n/a` for NaN.
fn cell(x: f64) -> String {
    if x.is_nan() { "n/a".into() } else { format!("{x:.3}") }
}

/// `mean ± sd` (just the mean when the SD is NaN).
fn mean_sd(mean: f64, sd: f64) -> String {
    if sd.is_nan() { cell(mean) } else { format!("{} ± {}", cell(mean), cell(sd)) }
}

/// The sweep as Markdown: a classification table, a mass-accuracy table (per method: trained /
/// randomised, chance in parentheses), and for an effect size of 0 the null check in words.
/// `notes` are added as a list at the end.
pub fn sweep_markdown(points: &[SweepPoint], notes: &[String]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## Classification\n");
    let _ = writeln!(
        md,
        "| effect size | CV balanced accuracy (mean ± SD) | CV ROC AUC (mean ± SD) | hold-out balanced accuracy | hold-out ROC AUC | seconds |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|");
    for p in points {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.0} |",
            p.effect_size,
            mean_sd(p.cv.balanced_accuracy, p.cv.balanced_accuracy_sd),
            mean_sd(p.cv.roc_auc, p.cv.roc_auc_sd),
            cell(p.holdout.balanced_accuracy),
            cell(p.holdout.roc_auc),
            p.seconds
        );
    }
    let methods = methods_of(points);
    if !methods.is_empty() {
        let _ = writeln!(
            md,
            "\n## Relevance mass accuracy\n\nPer method: trained model / randomised weights (chance level: the truth \
             mask's share of the scored voxels).\n"
        );
        let _ = writeln!(md, "| effect size | ground truth | {} |", methods.join(" | "));
        let _ = writeln!(md, "|---:|---|{}", "---:|".repeat(methods.len()));
        for p in points {
            let cells: Vec<String> = methods
                .iter()
                .map(|m| match mass_of(p, m) {
                    Some(x) => format!("{} / {} ({})", cell(x.trained), cell(x.random), cell(x.chance)),
                    None => "n/a".into(),
                })
                .collect();
            let _ = writeln!(md, "| {} | {} | {} |", p.effect_size, p.truth, cells.join(" | "));
        }
    }
    if let Some(p) = points.iter().find(|p| p.effect_size == 0.0) {
        let _ = writeln!(md, "\n## Null check (effect size 0)\n");
        let (lo, hi) = (p.cv.balanced_accuracy_ci_low, p.cv.balanced_accuracy_ci_high);
        let verdict = if lo.is_nan() || hi.is_nan() {
            "no interval in the summary".to_string()
        } else if lo <= 0.5 && 0.5 <= hi {
            "consistent with chance (the interval holds 0.5)".to_string()
        } else {
            "**not at chance** (the interval excludes 0.5)".to_string()
        };
        let level = if p.cv.ci_level.is_finite() { format!("{:.0} % ", 100.0 * p.cv.ci_level) } else { String::new() };
        let _ = writeln!(
            md,
            "- Classifier: CV balanced accuracy {} (mean ± SD over folds); pooled over the folds' test scans {}, \
             bootstrap {level}interval {}–{}: {verdict}.",
            mean_sd(p.cv.balanced_accuracy, p.cv.balanced_accuracy_sd),
            cell(p.cv.balanced_accuracy_pooled),
            cell(lo),
            cell(hi)
        );
        // The randomised-weights network at the reference effect size knows nothing either: its
        // ratio is what the method's spatial prior alone scores against such masks (region- or
        // cube-constant maps over the planted lobe score above 1 without finding anything).
        let effects: Vec<f64> = points.iter().map(|p| p.effect_size).collect();
        let reference = reference_effect(&effects).and_then(|r| points.iter().find(|p| p.effect_size == r));
        for m in &p.mass {
            let trained = m.trained / m.chance;
            let prior = reference
                .and_then(|r| r.mass.iter().find(|x| x.method == m.method))
                .map(|x| x.random / x.chance)
                .filter(|v| v.is_finite());
            let against = match (prior, reference) {
                (Some(r0), Some(rp)) => {
                    let flag = if trained > r0.max(1.0) {
                        " **Above both 1 and the randomised network's: look closer** (the effect-0 model cannot know \
                         the atrophy)."
                    } else {
                        " At or below it: nothing found beyond the method's spatial prior."
                    };
                    format!(
                        "; the randomised-weights network scores ratio {} at effect size {} (the method's spatial \
                         prior alone).{flag}",
                        cell(r0),
                        rp.effect_size
                    )
                }
                _ => "; near 1 means the map does not find the absent atrophy.".to_string(),
            };
            let _ = writeln!(
                md,
                "- {}: mass accuracy {} against chance {} (ratio {}){against}",
                m.method,
                cell(m.trained),
                cell(m.chance),
                cell(trained)
            );
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "\n## Notes\n");
        for n in notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    md
}

/// Writes `sweep.csv` ([`sweep_frame`]) and `sweep.md` (`heading`, then [`sweep_markdown`],
/// then `footer`) into `dir`, atomically; returns the two paths.
pub fn write_sweep(
    points: &[SweepPoint],
    dir: &Path,
    heading: &str,
    notes: &[String],
    footer: &str,
) -> Result<(PathBuf, PathBuf)> {
    let (csv, md_path) = write_table(&sweep_frame(points)?, dir, "sweep")?;
    let md = format!("{}\n\n{}{}", heading.trim_end(), sweep_markdown(points, notes), footer);
    adni_data::fsutil::write_bytes_atomically(&md_path, md.as_bytes())?;
    Ok((csv, md_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(bacc: f64) -> ClassificationSummary {
        ClassificationSummary {
            balanced_accuracy: bacc,
            balanced_accuracy_sd: 0.1,
            balanced_accuracy_pooled: bacc + 0.01,
            balanced_accuracy_ci_low: bacc - 0.2,
            balanced_accuracy_ci_high: bacc + 0.2,
            ci_level: 0.9,
            roc_auc: bacc + 0.05,
            roc_auc_sd: 0.05,
        }
    }

    fn point(effect: f64, methods: &[(&str, f64)]) -> SweepPoint {
        SweepPoint {
            effect_size: effect,
            cv: summary(0.5 + effect / 4.0),
            holdout: ClassificationSummary { balanced_accuracy_sd: f64::NAN, ..summary(0.5 + effect / 5.0) },
            mass: methods
                .iter()
                .map(|(m, v)| MethodMass { method: (*m).into(), trained: *v, random: 0.1, chance: 0.08 })
                .collect(),
            truth: "planted".into(),
            seconds: 12.0,
        }
    }

    #[test]
    fn long_summary_gives_mass_and_chance_per_method_and_model() {
        let df = df!(
            "method" => ["occlusion", "occlusion", "occlusion", "occlusion", "grad-cam", "grad-cam"],
            "model" => ["trained", "trained", "random", "random", "trained", "trained"],
            "metric" => ["mass_accuracy", "truth_fraction", "mass_accuracy", "truth_fraction", "truth_fraction", "mass_accuracy"],
            "mean" => [0.4, 0.08, 0.1, 0.09, 0.07, 0.3],
        )
        .unwrap();
        let m = mass_accuracy_of(&df, "gt.csv").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].method.as_str(), m[1].method.as_str()), ("occlusion", "grad-cam"));
        assert_eq!((m[1].trained, m[1].chance), (0.3, 0.07));
        assert!(m[1].random.is_nan());
        assert_eq!((m[0].trained, m[0].random, m[0].chance), (0.4, 0.1, 0.08));
    }

    #[test]
    fn wide_summary_uses_its_chance_column_not_the_ratio() {
        let df = df!(
            "method" => ["sensitivity", "sensitivity"],
            "model" => ["trained", "random"],
            "n_scans" => [4i64, 4],
            "chance" => [0.05, 0.05],
            "mass_accuracy" => [0.25, 0.06],
            "mass_vs_chance" => [5.0, 1.2],
        )
        .unwrap();
        let m = mass_accuracy_of(&df, "gt.csv").unwrap();
        assert_eq!(m, vec![MethodMass { method: "sensitivity".into(), trained: 0.25, random: 0.06, chance: 0.05 }]);
    }

    #[test]
    fn missing_columns_are_named_with_the_file() {
        let no_chance =
            df!("method" => ["a"], "model" => ["trained"], "mass_accuracy" => [0.2], "mass_vs_chance" => [2.0])
                .unwrap();
        let e = mass_accuracy_of(&no_chance, "report/tables/ground_truth_summary.csv").unwrap_err().to_string();
        assert!(e.contains("ground_truth_summary.csv") && e.contains("`chance`"), "{e}");
        let no_mass = df!("method" => ["a"], "chance" => [0.1]).unwrap();
        let e = mass_accuracy_of(&no_mass, "x.csv").unwrap_err().to_string();
        assert!(e.contains("x.csv") && e.contains("`mass_accuracy`"), "{e}");
        let long_no_chance = df!("method" => ["a"], "metric" => ["mass_accuracy"], "mean" => [0.3]).unwrap();
        let e = mass_accuracy_of(&long_no_chance, "y.csv").unwrap_err().to_string();
        assert!(e.contains("y.csv") && e.contains("truth_fraction"), "{e}");
        let no_method = df!("model" => ["trained"], "mass_accuracy" => [0.3], "chance" => [0.1]).unwrap();
        assert!(mass_accuracy_of(&no_method, "z.csv").unwrap_err().to_string().contains("`method`"));
    }

    #[test]
    fn a_table_without_model_column_is_the_trained_model() {
        let df = df!("method" => ["a"], "mass_accuracy_mean" => [0.3], "truth_fraction" => [0.1]).unwrap();
        let m = mass_accuracy_of(&df, "t").unwrap();
        assert_eq!((m[0].trained, m[0].chance), (0.3, 0.1));
        assert!(m[0].random.is_nan());
    }

    #[test]
    fn classification_summary_reads_balanced_accuracy_and_auc() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("summary.csv");
        std::fs::write(
            &p,
            "metric,mean,sd,folds,pooled,ci_low,ci_high\naccuracy,0.6,0.1,3,0.6,0.4,0.8\n\
             balanced_accuracy,0.55,0.12,3,0.56,0.38,0.74\nroc_auc,0.61,0.2,3,0.6,0.4,0.8\n",
        )
        .unwrap();
        let s = read_classification_summary(&p).unwrap();
        assert_eq!((s.balanced_accuracy, s.balanced_accuracy_sd, s.roc_auc, s.roc_auc_sd), (0.55, 0.12, 0.61, 0.2));
        assert_eq!((s.balanced_accuracy_ci_low, s.balanced_accuracy_ci_high), (0.38, 0.74));
        assert_eq!(s.balanced_accuracy_pooled, 0.56);
        assert!(s.ci_level.is_nan(), "no ci_level column: the level is not known");
        std::fs::write(&p, "metric,mean,sd\naccuracy,0.6,0.1\n").unwrap();
        let e = read_classification_summary(&p).unwrap_err().to_string();
        assert!(e.contains("summary.csv") && e.contains("balanced_accuracy"), "{e}");
        let e = read_classification_summary(&dir.path().join("nope.csv")).unwrap_err().to_string();
        assert!(e.contains("nope.csv is missing"), "{e}");
    }

    #[test]
    fn frame_has_one_row_per_effect_and_nan_for_missing_methods() {
        let points = [point(0.0, &[("occlusion", 0.09)]), point(1.0, &[("occlusion", 0.4), ("grad-cam", 0.3)])];
        let df = sweep_frame(&points).unwrap();
        assert_eq!(df.height(), 2);
        assert_eq!(column_f64(&df, "t", "effect_size").unwrap(), vec![0.0, 1.0]);
        assert_eq!(column_f64(&df, "t", "cv_balanced_accuracy").unwrap(), vec![0.5, 0.75]);
        assert_eq!(column_f64(&df, "t", "mass_occlusion_trained").unwrap(), vec![0.09, 0.4]);
        let gc = column_f64(&df, "t", "mass_grad-cam_trained").unwrap();
        assert!(gc[0].is_nan() && gc[1] == 0.3);
        assert_eq!(column_f64(&df, "t", "seconds").unwrap(), vec![12.0, 12.0]);
    }

    #[test]
    fn markdown_has_both_tables_and_the_null_check() {
        let mut null = point(0.0, &[("occlusion", 0.09)]);
        null.truth = "effect 1 cohort".into();
        null.mass[0].random = f64::NAN;
        let md = sweep_markdown(&[null, point(1.0, &[("occlusion", 0.4)])], &["a note".into()]);
        assert!(md.contains("| 0 | 0.500 ± 0.100 | 0.550 ± 0.050 | 0.500 | 0.550 | 12 |"), "{md}");
        assert!(md.contains("| 0 | effect 1 cohort | 0.090 / n/a (0.080) |"), "{md}");
        assert!(md.contains("| 1 | planted | 0.400 / 0.100 (0.080) |"), "{md}");
        // CI 0.3–0.7 holds 0.5; the interval is the pooled value's, at the summary's level
        assert!(md.contains("consistent with chance"), "{md}");
        assert!(md.contains("pooled over the folds' test scans 0.510, bootstrap 90 % interval 0.300–0.700"), "{md}");
        // against the randomised network at the reference effect (0.1 / 0.08 = 1.25): below it
        assert!(
            md.contains("ratio 1.125); the randomised-weights network scores ratio 1.250 at effect size 1"),
            "{md}"
        );
        assert!(md.contains("nothing found beyond the method's spatial prior"), "{md}");
        assert!(md.contains("- a note"), "{md}");
        let mut leak = point(0.0, &[("occlusion", 0.2)]);
        leak.truth = "effect 1 cohort".into();
        let md = sweep_markdown(&[leak, point(1.0, &[("occlusion", 0.4)])], &[]);
        assert!(md.contains("ratio 2.500); the randomised") && md.contains("**Above both 1"), "{md}");
        // a classifier above chance at effect 0 is flagged
        let mut bad = point(0.0, &[]);
        bad.cv.balanced_accuracy_ci_low = 0.6;
        assert!(sweep_markdown(&[bad], &[]).contains("**not at chance**"));
    }
}
