//! The run-level tables and summary, merged from the finished folds.

use adni_data::cohort::Cohort;
use adni_data::fsutil::{write_bytes_atomically, write_csv_atomically};
use adni_data::run_layout::RunLayout;
use adni_data::run_tables::{EpochRow, FoldRow, PredictionRow, SummaryRow, TimingRow};
use polars::prelude::*;

use super::records::{FoldResult, ScanPrediction, check_same_settings, fold_settings};
use super::summary::summary_markdown;
use super::tables::{epoch_rows, prediction_row};
use super::{RunSpec, TrainError, derive_seed};
use crate::checkpoint::read_json;
use crate::metrics::{BinaryMetrics, METRIC_NAMES, Prediction, bootstrap_intervals, mean_sd};

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
    let run = RunLayout::new(&spec.dir);
    let mut results = Vec::with_capacity(spec.splits.len());
    for split in &spec.splits {
        let path = run.fold(&split.name).result();
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

    // Per-epoch metrics of all folds.
    let epochs: Vec<EpochRow> = results.iter().flat_map(|r| epoch_rows(&r.split, &r.history)).collect();
    write_csv_atomically(&run.metrics_epochs(), &mut EpochRow::frame(&epochs)?)?;

    // Per-fold final metrics.
    let fold_rows: Vec<FoldRow> = results
        .iter()
        .map(|r| FoldRow {
            split: r.split.clone(),
            kept_epoch: r.kept_epoch,
            train_scans: r.scans[0],
            test: r.test.into(),
            validation: r.validation.map(Into::into),
        })
        .collect();
    write_csv_atomically(&run.metrics_folds(), &mut FoldRow::frame(&fold_rows)?)?;

    // Timing (kept apart so that the metric tables of identical runs are identical files).
    let timing: Vec<TimingRow> = results
        .iter()
        .flat_map(|r| {
            r.history.iter().map(|h| TimingRow {
                split: r.split.clone(),
                epoch: h.epoch,
                seconds: h.seconds,
                train_seconds: h.train_seconds,
                step_seconds: h.step_seconds,
                data_wait_seconds: h.data_wait_seconds,
            })
        })
        .collect();
    write_csv_atomically(&run.timing(), &mut TimingRow::frame(&timing)?)?;

    // Predictions on the test sets, joined with the cohort metadata.
    let test_rows: Vec<(&str, &ScanPrediction)> = results
        .iter()
        .flat_map(|r| {
            r.predictions.iter().filter(|p| p.set == PredictionRow::TEST_SET).map(move |p| (r.split.as_str(), p))
        })
        .collect();
    let predictions: Vec<PredictionRow> = test_rows.iter().map(|(split, p)| prediction_row(split, p)).collect();
    let mut joined = join_metadata(&PredictionRow::frame(&predictions)?, &spec.cohort)?;
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
                ci_level: t.confidence_level,
            }
        })
        .collect();
    let mut summary_df = SummaryRow::frame(&rows)?;
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
    let meta = cohort.scans_dataframe()?.drop(PredictionRow::PTID)?;
    let mut args = JoinArgs::new(JoinType::Left);
    args.maintain_order = MaintainOrderJoin::Left;
    let key = [PredictionRow::IMAGE_ID];
    let joined = preds.join(&meta, key, key, args, None)?;
    let truth = joined.column(PredictionRow::TRUE_LABEL)?.i32()?;
    let label = joined.column("label")?.i32()?;
    if let Some(i) = (0..joined.height()).find(|&i| truth.get(i) != label.get(i)) {
        return Err(TrainError::Run(format!(
            "prediction row {} (Image.ID {:?}): the label differs from the cohort's; the cohort changed since training",
            i + 1,
            joined.column(PredictionRow::IMAGE_ID)?.i64()?.get(i)
        )));
    }
    Ok(joined.drop("label")?)
}
