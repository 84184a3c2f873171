//! The run-level tables and summary, merged from the finished folds.

use adni_data::cohort::Cohort;
use adni_data::fsutil::{write_bytes_atomically, write_csv_atomically};
use adni_data::run_layout::{FoldLayout, RunLayout};
use polars::prelude::*;
use serde::Serialize;

use super::layout::fold_dir;
use super::records::{FoldResult, ScanPrediction, check_same_settings, fold_settings};
use super::summary::summary_markdown;
use super::tables::{epoch_frame, metric_columns, predictions_frame};
use super::{EpochRecord, RunSpec, TrainError, derive_seed};
use crate::checkpoint::read_json;
use crate::metrics::{BinaryMetrics, METRIC_NAMES, Prediction, bootstrap_intervals, mean_sd};

/// One metric of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    /// Metric name ([`METRIC_NAMES`]).
    pub metric: &'static str,
    /// Mean over folds of the kept models' test metric.
    pub mean: f64,
    /// Sample SD over folds (NaN with one fold).
    pub sd: f64,
    /// Folds with a defined value.
    pub folds: usize,
    /// The metric on all folds' test predictions pooled (out-of-fold predictions).
    pub pooled: f64,
    /// Bootstrap interval of the pooled metric: lower bound.
    pub ci_low: f64,
    /// Upper bound.
    pub ci_high: f64,
    /// Resamples in which the metric was defined.
    pub ci_resamples: usize,
}

/// The merged result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// One row per metric, in [`METRIC_NAMES`] order.
    pub rows: Vec<SummaryRow>,
    /// Per fold: split name, kept epoch, the kept model's test metrics.
    pub folds: Vec<(String, usize, BinaryMetrics)>,
    /// The Markdown report (also written as `summary.md`).
    pub markdown: String,
}

/// Reads every fold's `fold_result.json` (each must exist and match the run's settings) and
/// writes the run-level tables and summary (see the module documentation). Returns the summary.
pub fn merge_run(spec: &RunSpec) -> Result<RunSummary, TrainError> {
    let t = &spec.train;
    let mut results = Vec::with_capacity(spec.splits.len());
    for split in &spec.splits {
        let path = FoldLayout::new(fold_dir(&spec.dir, &split.name)).result();
        if !path.is_file() {
            return Err(TrainError::Run(format!(
                "cannot merge: fold `{}` is not finished ({} missing)",
                split.name,
                path.display()
            )));
        }
        let r: FoldResult = read_json(&path)?;
        check_same_settings(&r.settings, &fold_settings(spec, split)?, &path)?;
        results.push(r);
    }
    let run = RunLayout::new(&spec.dir);

    // Per-epoch metrics of all folds.
    let epoch_rows: Vec<(&str, &EpochRecord)> =
        results.iter().flat_map(|r| r.history.iter().map(move |h| (r.split.as_str(), h))).collect();
    write_csv_atomically(&run.metrics_epochs(), &mut epoch_frame(&epoch_rows)?)?;

    // Per-fold final metrics.
    let mut cols = vec![
        Column::new("split".into(), results.iter().map(|r| r.split.as_str()).collect::<Vec<&str>>()),
        Column::new("kept_epoch".into(), results.iter().map(|r| r.kept_epoch as i64).collect::<Vec<i64>>()),
        Column::new("train_scans".into(), results.iter().map(|r| r.scans[0] as i64).collect::<Vec<i64>>()),
    ];
    metric_columns(&mut cols, "test", &results.iter().map(|r| Some(r.test)).collect::<Vec<_>>());
    if results.iter().any(|r| r.validation.is_some()) {
        metric_columns(&mut cols, "validation", &results.iter().map(|r| r.validation).collect::<Vec<_>>());
    }
    write_csv_atomically(&run.metrics_folds(), &mut DataFrame::new(results.len(), cols)?)?;

    // Timing (kept apart so that the metric tables of identical runs are identical files).
    let timing: Vec<(&str, usize, f64)> =
        results.iter().flat_map(|r| r.history.iter().map(move |h| (r.split.as_str(), h.epoch, h.seconds))).collect();
    let mut timing_df = DataFrame::new(
        timing.len(),
        vec![
            Column::new("split".into(), timing.iter().map(|x| x.0).collect::<Vec<&str>>()),
            Column::new("epoch".into(), timing.iter().map(|x| x.1 as i64).collect::<Vec<i64>>()),
            Column::new("seconds".into(), timing.iter().map(|x| x.2).collect::<Vec<f64>>()),
        ],
    )?;
    write_csv_atomically(&run.timing(), &mut timing_df)?;

    // Predictions on the test sets, joined with the cohort metadata.
    let test_rows: Vec<(&str, &ScanPrediction)> = results
        .iter()
        .flat_map(|r| r.predictions.iter().filter(|p| p.set == "test").map(move |p| (r.split.as_str(), p)))
        .collect();
    let mut joined = join_metadata(&predictions_frame(&test_rows)?, &spec.cohort)?;
    write_csv_atomically(&run.predictions(), &mut joined)?;

    // Summary: mean ± SD over folds, pooled out-of-fold metrics, patient bootstrap CI.
    let pooled_preds: Vec<Prediction> = test_rows.iter().map(|(_, p)| p.prediction).collect();
    let clusters: Vec<String> = test_rows.iter().map(|(_, p)| p.ptid.clone()).collect();
    let pooled = BinaryMetrics::from_predictions(&pooled_preds);
    let boot_seed = derive_seed(t.seed, "", "bootstrap", 0, 0);
    let intervals = bootstrap_intervals(&pooled_preds, &clusters, t.bootstrap_samples, t.confidence_level, boot_seed);
    let rows: Vec<SummaryRow> = METRIC_NAMES
        .iter()
        .enumerate()
        .map(|(k, &metric)| {
            let per_fold: Vec<f64> = results.iter().map(|r| r.test.values()[k]).collect();
            let (mean, sd, folds) = mean_sd(&per_fold);
            SummaryRow {
                metric,
                mean,
                sd,
                folds,
                pooled: pooled.values()[k],
                ci_low: intervals[k].low,
                ci_high: intervals[k].high,
                ci_resamples: intervals[k].valid_resamples,
            }
        })
        .collect();
    let mut summary_df = DataFrame::new(
        rows.len(),
        vec![
            Column::new("metric".into(), rows.iter().map(|r| r.metric).collect::<Vec<&str>>()),
            Column::new("mean".into(), rows.iter().map(|r| r.mean).collect::<Vec<f64>>()),
            Column::new("sd".into(), rows.iter().map(|r| r.sd).collect::<Vec<f64>>()),
            Column::new("folds".into(), rows.iter().map(|r| r.folds as i64).collect::<Vec<i64>>()),
            Column::new("pooled".into(), rows.iter().map(|r| r.pooled).collect::<Vec<f64>>()),
            Column::new("ci_low".into(), rows.iter().map(|r| r.ci_low).collect::<Vec<f64>>()),
            Column::new("ci_high".into(), rows.iter().map(|r| r.ci_high).collect::<Vec<f64>>()),
            Column::new("ci_resamples".into(), rows.iter().map(|r| r.ci_resamples as i64).collect::<Vec<i64>>()),
        ],
    )?;
    write_csv_atomically(&run.summary_csv(), &mut summary_df)?;
    let folds: Vec<(String, usize, BinaryMetrics)> =
        results.iter().map(|r| (r.split.clone(), r.kept_epoch, r.test)).collect();
    let markdown = summary_markdown(spec, &results, &rows, pooled.n, clusters_count(&clusters));
    write_bytes_atomically(&run.summary_md(), markdown.as_bytes())?;
    Ok(RunSummary { rows, folds, markdown })
}

fn clusters_count(clusters: &[String]) -> usize {
    clusters.iter().collect::<std::collections::BTreeSet<_>>().len()
}

/// `preds` (with `Image.ID`, `true_label`) left-joined with the cohort's scan table; the
/// cohort's `label` must agree with `true_label` and is dropped.
fn join_metadata(preds: &DataFrame, cohort: &Cohort) -> Result<DataFrame, TrainError> {
    let meta = cohort.scans_dataframe()?.drop("PTID")?;
    let mut args = JoinArgs::new(JoinType::Left);
    args.maintain_order = MaintainOrderJoin::Left;
    let joined = preds.join(&meta, ["Image.ID"], ["Image.ID"], args, None)?;
    let truth = joined.column("true_label")?.i32()?;
    let label = joined.column("label")?.i32()?;
    if let Some(i) = (0..joined.height()).find(|&i| truth.get(i) != label.get(i)) {
        return Err(TrainError::Run(format!(
            "prediction row {} (Image.ID {:?}): the label differs from the cohort's; the cohort changed since training",
            i + 1,
            joined.column("Image.ID")?.i64()?.get(i)
        )));
    }
    Ok(joined.drop("label")?)
}
