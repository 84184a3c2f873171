//! The CSV tables of a training run ([`crate::run_layout`]): one row type per table, whose
//! associated constants are the table's column names. `model`'s training builds the rows and
//! writes them with [`EpochRow::frame`], [`FoldRow::frame`], …; `report` reads the tables back
//! by the same constants, so no column name is typed twice. The types live here, below both,
//! because `report` knows nothing about the model.
//!
//! | table | row |
//! |---|---|
//! | `metrics_epochs.csv` (a run's and a fold's) | [`EpochRow`]: split, epoch, every set's [`SetMetrics`] |
//! | `metrics_folds.csv` | [`FoldRow`]: split, kept epoch, training scans, the kept model's metrics |
//! | `timing.csv` | [`TimingRow`]: seconds per split and epoch |
//! | `predictions.csv` (a run's and a fold's) | [`PredictionRow`] (the run's joined with the cohort's scan table) |
//! | `summary.csv` | [`SummaryRow`]: a metric over the folds, pooled, and its interval |
//!
//! The writers build frames with polars, whose number formatting the files have always had.

use polars::prelude::{Column, DataFrame, PolarsResult};

/// The metrics of a set, in the order of their columns (`<set>_<metric>`) and of
/// [`SetMetrics::values`].
pub const METRIC_NAMES: [&str; 7] =
    ["loss", "accuracy", "balanced_accuracy", "roc_auc", "auc_argmax_paper", "sensitivity", "specificity"];

/// The metric `loss` (mean cross-entropy), by name.
pub const LOSS: &str = METRIC_NAMES[0];
/// The metric `accuracy`.
pub const ACCURACY: &str = METRIC_NAMES[1];
/// The metric `balanced_accuracy`.
pub const BALANCED_ACCURACY: &str = METRIC_NAMES[2];
/// The metric `roc_auc`.
pub const ROC_AUC: &str = METRIC_NAMES[3];

/// A set of scans whose metrics a table holds, the prefix of its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricSet {
    /// The training scans.
    Train,
    /// The inner validation scans (keep = best).
    Validation,
    /// The test scans.
    Test,
}

impl MetricSet {
    /// Every set, in the order the learning curves draw them.
    pub const ALL: [MetricSet; 3] = [MetricSet::Train, MetricSet::Validation, MetricSet::Test];

    /// The set's name, the prefix of its columns.
    pub fn name(self) -> &'static str {
        match self {
            MetricSet::Train => "train",
            MetricSet::Validation => "validation",
            MetricSet::Test => "test",
        }
    }

    /// The column of `metric` (one of [`METRIC_NAMES`]) for this set: `<set>_<metric>`.
    pub fn column(self, metric: &str) -> String {
        format!("{}_{metric}", self.name())
    }

    /// The column of the set's scan count: `<set>_n`.
    pub fn count_column(self) -> String {
        self.column("n")
    }
}

/// A set's metrics as a table row holds them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SetMetrics {
    /// Scans.
    pub n: usize,
    /// The metrics in [`METRIC_NAMES`] order.
    pub values: [f64; 7],
}

/// Appends a set's columns (`<set>_n`, `<set>_<metric>`) for `metrics`: 0 and NaN where absent.
fn set_columns(cols: &mut Vec<Column>, set: MetricSet, metrics: &[Option<SetMetrics>]) {
    cols.push(Column::new(
        set.count_column().into(),
        metrics.iter().map(|m| m.map_or(0, |m| m.n as i64)).collect::<Vec<i64>>(),
    ));
    for (k, name) in METRIC_NAMES.iter().enumerate() {
        let values: Vec<f64> = metrics.iter().map(|m| m.map_or(f64::NAN, |m| m.values[k])).collect();
        cols.push(Column::new(set.column(name).into(), values));
    }
}

/// The optional set's columns, when any row has it.
fn optional_set_columns(cols: &mut Vec<Column>, set: MetricSet, metrics: &[Option<SetMetrics>]) {
    if metrics.iter().any(Option::is_some) {
        set_columns(cols, set, metrics);
    }
}

/// A row of `metrics_epochs.csv`: one epoch of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    /// The split (`fold1`, `holdout`, …).
    pub split: String,
    /// 1-based epoch.
    pub epoch: usize,
    /// The training scans' metrics.
    pub train: SetMetrics,
    /// The inner validation scans' metrics (keep = best).
    pub validation: Option<SetMetrics>,
    /// The test scans' metrics (when evaluated every epoch).
    pub test: Option<SetMetrics>,
}

impl EpochRow {
    /// Column `split`.
    pub const SPLIT: &'static str = "split";
    /// Column `epoch`.
    pub const EPOCH: &'static str = "epoch";

    /// The table: `split`, `epoch`, the training set's columns, then the validation and test
    /// sets' where any row has them.
    pub fn frame(rows: &[EpochRow]) -> PolarsResult<DataFrame> {
        let mut cols = vec![
            Column::new(Self::SPLIT.into(), rows.iter().map(|r| r.split.as_str()).collect::<Vec<&str>>()),
            Column::new(Self::EPOCH.into(), rows.iter().map(|r| r.epoch as i64).collect::<Vec<i64>>()),
        ];
        set_columns(&mut cols, MetricSet::Train, &rows.iter().map(|r| Some(r.train)).collect::<Vec<_>>());
        optional_set_columns(&mut cols, MetricSet::Validation, &rows.iter().map(|r| r.validation).collect::<Vec<_>>());
        optional_set_columns(&mut cols, MetricSet::Test, &rows.iter().map(|r| r.test).collect::<Vec<_>>());
        DataFrame::new(rows.len(), cols)
    }
}

/// A row of `metrics_folds.csv`: one split's kept model.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldRow {
    /// The split.
    pub split: String,
    /// The kept model's epoch.
    pub kept_epoch: usize,
    /// Training scans.
    pub train_scans: usize,
    /// The kept model's test metrics.
    pub test: SetMetrics,
    /// The kept model's validation metrics (keep = best).
    pub validation: Option<SetMetrics>,
}

impl FoldRow {
    /// Column `split`.
    pub const SPLIT: &'static str = EpochRow::SPLIT;
    /// Column `kept_epoch`.
    pub const KEPT_EPOCH: &'static str = "kept_epoch";
    /// Column `train_scans`.
    pub const TRAIN_SCANS: &'static str = "train_scans";

    /// The table: `split`, `kept_epoch`, `train_scans`, the test set's columns, then the
    /// validation set's where any row has them.
    pub fn frame(rows: &[FoldRow]) -> PolarsResult<DataFrame> {
        let mut cols = vec![
            Column::new(Self::SPLIT.into(), rows.iter().map(|r| r.split.as_str()).collect::<Vec<&str>>()),
            Column::new(Self::KEPT_EPOCH.into(), rows.iter().map(|r| r.kept_epoch as i64).collect::<Vec<i64>>()),
            Column::new(Self::TRAIN_SCANS.into(), rows.iter().map(|r| r.train_scans as i64).collect::<Vec<i64>>()),
        ];
        set_columns(&mut cols, MetricSet::Test, &rows.iter().map(|r| Some(r.test)).collect::<Vec<_>>());
        optional_set_columns(&mut cols, MetricSet::Validation, &rows.iter().map(|r| r.validation).collect::<Vec<_>>());
        DataFrame::new(rows.len(), cols)
    }
}

/// A row of a training run's `timing.csv`: one epoch's wall-clock time (kept apart from the
/// metrics, so that the metric tables of identical runs are identical files).
#[derive(Debug, Clone, PartialEq)]
pub struct TimingRow {
    /// The split.
    pub split: String,
    /// 1-based epoch.
    pub epoch: usize,
    /// Seconds (training and evaluation).
    pub seconds: f64,
    /// Of which the training loop.
    pub train_seconds: f64,
    /// Of which the training steps (forward, backward, optimiser).
    pub step_seconds: f64,
    /// Of which the training loop waited for its next batch to be read.
    pub data_wait_seconds: f64,
}

impl TimingRow {
    /// Column `split`.
    pub const SPLIT: &'static str = EpochRow::SPLIT;
    /// Column `epoch`.
    pub const EPOCH: &'static str = EpochRow::EPOCH;
    /// Column `seconds`.
    pub const SECONDS: &'static str = "seconds";
    /// Column `train_seconds`.
    pub const TRAIN_SECONDS: &'static str = "train_seconds";
    /// Column `step_seconds`.
    pub const STEP_SECONDS: &'static str = "step_seconds";
    /// Column `data_wait_seconds`.
    pub const DATA_WAIT_SECONDS: &'static str = "data_wait_seconds";

    /// The table.
    pub fn frame(rows: &[TimingRow]) -> PolarsResult<DataFrame> {
        DataFrame::new(
            rows.len(),
            vec![
                Column::new(Self::SPLIT.into(), rows.iter().map(|r| r.split.as_str()).collect::<Vec<&str>>()),
                Column::new(Self::EPOCH.into(), rows.iter().map(|r| r.epoch as i64).collect::<Vec<i64>>()),
                Column::new(Self::SECONDS.into(), rows.iter().map(|r| r.seconds).collect::<Vec<f64>>()),
                Column::new(Self::TRAIN_SECONDS.into(), rows.iter().map(|r| r.train_seconds).collect::<Vec<f64>>()),
                Column::new(Self::STEP_SECONDS.into(), rows.iter().map(|r| r.step_seconds).collect::<Vec<f64>>()),
                Column::new(
                    Self::DATA_WAIT_SECONDS.into(),
                    rows.iter().map(|r| r.data_wait_seconds).collect::<Vec<f64>>(),
                ),
            ],
        )
    }
}

/// A row of `predictions.csv`: one scan's prediction by a split's kept model.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRow {
    /// Patient id.
    pub ptid: String,
    /// The scan's image id.
    pub image_id: i64,
    /// The split whose model predicted.
    pub fold: String,
    /// `test` or `validation`.
    pub set: String,
    /// True label (1 = AD).
    pub true_label: u8,
    /// P(AD).
    pub p_ad: f64,
    /// The argmax prediction.
    pub predicted_label: u8,
    /// Cross-entropy of the scan.
    pub loss: f64,
}

impl PredictionRow {
    /// Column `PTID` (the ADNI table's, [`crate::table::PTID`]).
    pub const PTID: &'static str = crate::table::PTID;
    /// Column `Image.ID`, the key the run's table joins the cohort's scan table on.
    pub const IMAGE_ID: &'static str = crate::table::IMAGE_ID;
    /// Column `fold`.
    pub const FOLD: &'static str = "fold";
    /// Column `set`.
    pub const SET: &'static str = "set";
    /// Column `true_label`.
    pub const TRUE_LABEL: &'static str = "true_label";
    /// Column `p_ad`.
    pub const P_AD: &'static str = "p_ad";
    /// Column `predicted_label`.
    pub const PREDICTED_LABEL: &'static str = "predicted_label";
    /// Column `loss`.
    pub const LOSS: &'static str = "loss";
    /// The value of [`Self::SET`] for test scans.
    pub const TEST_SET: &'static str = "test";

    /// The table.
    pub fn frame(rows: &[PredictionRow]) -> PolarsResult<DataFrame> {
        let label = |f: fn(&PredictionRow) -> u8| rows.iter().map(|r| i32::from(f(r))).collect::<Vec<i32>>();
        let number = |f: fn(&PredictionRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
        DataFrame::new(
            rows.len(),
            vec![
                Column::new(Self::PTID.into(), rows.iter().map(|r| r.ptid.as_str()).collect::<Vec<&str>>()),
                Column::new(Self::IMAGE_ID.into(), rows.iter().map(|r| r.image_id).collect::<Vec<i64>>()),
                Column::new(Self::FOLD.into(), rows.iter().map(|r| r.fold.as_str()).collect::<Vec<&str>>()),
                Column::new(Self::SET.into(), rows.iter().map(|r| r.set.as_str()).collect::<Vec<&str>>()),
                Column::new(Self::TRUE_LABEL.into(), label(|r| r.true_label)),
                Column::new(Self::P_AD.into(), number(|r| r.p_ad)),
                Column::new(Self::PREDICTED_LABEL.into(), label(|r| r.predicted_label)),
                Column::new(Self::LOSS.into(), number(|r| r.loss)),
            ],
        )
    }
}

/// A row of `summary.csv`: one metric of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
    /// Confidence level of the interval (e.g. 0.95).
    pub ci_level: f64,
}

impl SummaryRow {
    /// Column `metric`.
    pub const METRIC: &'static str = "metric";
    /// Column `mean`.
    pub const MEAN: &'static str = "mean";
    /// Column `sd`.
    pub const SD: &'static str = "sd";
    /// Column `folds`.
    pub const FOLDS: &'static str = "folds";
    /// Column `pooled`.
    pub const POOLED: &'static str = "pooled";
    /// Column `ci_low`.
    pub const CI_LOW: &'static str = "ci_low";
    /// Column `ci_high`.
    pub const CI_HIGH: &'static str = "ci_high";
    /// Column `ci_resamples`.
    pub const CI_RESAMPLES: &'static str = "ci_resamples";
    /// Column `ci_level`.
    pub const CI_LEVEL: &'static str = "ci_level";

    /// The table.
    pub fn frame(rows: &[SummaryRow]) -> PolarsResult<DataFrame> {
        let number = |f: fn(&SummaryRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
        let count = |f: fn(&SummaryRow) -> usize| rows.iter().map(|r| f(r) as i64).collect::<Vec<i64>>();
        DataFrame::new(
            rows.len(),
            vec![
                Column::new(Self::METRIC.into(), rows.iter().map(|r| r.metric).collect::<Vec<&str>>()),
                Column::new(Self::MEAN.into(), number(|r| r.mean)),
                Column::new(Self::SD.into(), number(|r| r.sd)),
                Column::new(Self::FOLDS.into(), count(|r| r.folds)),
                Column::new(Self::POOLED.into(), number(|r| r.pooled)),
                Column::new(Self::CI_LOW.into(), number(|r| r.ci_low)),
                Column::new(Self::CI_HIGH.into(), number(|r| r.ci_high)),
                Column::new(Self::CI_RESAMPLES.into(), count(|r| r.ci_resamples)),
                Column::new(Self::CI_LEVEL.into(), number(|r| r.ci_level)),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(df: &DataFrame) -> Vec<String> {
        df.get_column_names().into_iter().map(|n| n.to_string()).collect()
    }

    fn metrics(n: usize, v: f64) -> SetMetrics {
        SetMetrics { n, values: [v; 7] }
    }

    #[test]
    fn epoch_table_has_the_optional_sets_only_when_a_row_has_them() {
        let row =
            |validation| EpochRow { split: "fold1".into(), epoch: 1, train: metrics(4, 0.5), validation, test: None };
        let df = EpochRow::frame(&[row(None)]).unwrap();
        assert_eq!(names(&df).len(), 2 + 8);
        assert_eq!(names(&df)[..4], ["split", "epoch", "train_n", "train_loss"]);
        let df = EpochRow::frame(&[row(None), row(Some(metrics(2, 0.25)))]).unwrap();
        assert_eq!(names(&df).len(), 2 + 16);
        assert_eq!(names(&df)[10], MetricSet::Validation.count_column());
        // a row without the set: 0 scans and NaN metrics
        let acc = df.column(&MetricSet::Validation.column("accuracy")).unwrap().f64().unwrap().clone();
        assert!(acc.get(0).unwrap().is_nan());
        assert_eq!(acc.get(1), Some(0.25));
    }

    #[test]
    fn fold_table_puts_test_before_validation() {
        let row = FoldRow {
            split: "holdout".into(),
            kept_epoch: 3,
            train_scans: 10,
            test: metrics(5, 0.75),
            validation: Some(metrics(2, 1.0)),
        };
        let df = FoldRow::frame(&[row]).unwrap();
        let n = names(&df);
        assert_eq!(n[..4], ["split", "kept_epoch", "train_scans", "test_n"]);
        assert_eq!(n[4 + 7], "validation_n");
        assert_eq!(df.column(FoldRow::KEPT_EPOCH).unwrap().i64().unwrap().get(0), Some(3));
    }

    #[test]
    fn predictions_and_summary_columns_are_the_constants() {
        let p = PredictionRow {
            ptid: "002_S_0001".into(),
            image_id: 7,
            fold: "holdout".into(),
            set: PredictionRow::TEST_SET.into(),
            true_label: 1,
            p_ad: 0.9,
            predicted_label: 1,
            loss: 0.1,
        };
        let df = PredictionRow::frame(&[p]).unwrap();
        assert_eq!(names(&df), ["PTID", "Image.ID", "fold", "set", "true_label", "p_ad", "predicted_label", "loss"]);
        assert_eq!(df.column(PredictionRow::TRUE_LABEL).unwrap().i32().unwrap().get(0), Some(1));
        let s = SummaryRow {
            metric: "accuracy",
            mean: 0.5,
            sd: f64::NAN,
            folds: 1,
            pooled: 0.5,
            ci_low: 0.25,
            ci_high: 0.75,
            ci_resamples: 100,
            ci_level: 0.95,
        };
        let df = SummaryRow::frame(&[s]).unwrap();
        assert_eq!(
            names(&df),
            ["metric", "mean", "sd", "folds", "pooled", "ci_low", "ci_high", "ci_resamples", "ci_level"]
        );
        let t = TimingRow::frame(&[TimingRow {
            split: "a".into(),
            epoch: 2,
            seconds: 1.5,
            train_seconds: 1.2,
            step_seconds: 1.1,
            data_wait_seconds: 0.05,
        }])
        .unwrap();
        assert_eq!(names(&t), ["split", "epoch", "seconds", "train_seconds", "step_seconds", "data_wait_seconds"]);
    }
}
