//! The per-epoch and per-scan tables, for a fold's files and the run's merged ones.

use std::path::Path;

use adni_data::fsutil::write_csv_atomically;
use polars::prelude::*;

use super::TrainError;
use super::records::{EpochRecord, ScanPrediction};
use crate::metrics::{BinaryMetrics, METRIC_NAMES};

/// Adds `<prefix>_<metric>` columns for `metrics` (NaN where absent).
pub(super) fn metric_columns(cols: &mut Vec<Column>, prefix: &str, metrics: &[Option<BinaryMetrics>]) {
    cols.push(Column::new(
        format!("{prefix}_n").into(),
        metrics.iter().map(|m| m.map_or(0, |m| m.n as i64)).collect::<Vec<i64>>(),
    ));
    for (k, name) in METRIC_NAMES.iter().enumerate() {
        let values: Vec<f64> = metrics.iter().map(|m| m.map_or(f64::NAN, |m| m.values()[k])).collect();
        cols.push(Column::new(format!("{prefix}_{name}").into(), values));
    }
}

pub(super) fn epoch_frame(rows: &[(&str, &EpochRecord)]) -> Result<DataFrame, TrainError> {
    let mut cols = vec![
        Column::new("split".into(), rows.iter().map(|(s, _)| *s).collect::<Vec<&str>>()),
        Column::new("epoch".into(), rows.iter().map(|(_, r)| r.epoch as i64).collect::<Vec<i64>>()),
    ];
    metric_columns(&mut cols, "train", &rows.iter().map(|(_, r)| Some(r.train)).collect::<Vec<_>>());
    if rows.iter().any(|(_, r)| r.validation.is_some()) {
        metric_columns(&mut cols, "validation", &rows.iter().map(|(_, r)| r.validation).collect::<Vec<_>>());
    }
    if rows.iter().any(|(_, r)| r.test.is_some()) {
        metric_columns(&mut cols, "test", &rows.iter().map(|(_, r)| r.test).collect::<Vec<_>>());
    }
    Ok(DataFrame::new(rows.len(), cols)?)
}

pub(super) fn write_epoch_csv(path: &Path, split: &str, history: &[EpochRecord]) -> Result<(), TrainError> {
    let rows: Vec<(&str, &EpochRecord)> = history.iter().map(|r| (split, r)).collect();
    Ok(write_csv_atomically(path, &mut epoch_frame(&rows)?)?)
}

pub(super) fn predictions_frame(rows: &[(&str, &ScanPrediction)]) -> Result<DataFrame, TrainError> {
    let p = |f: fn(&ScanPrediction) -> f64| rows.iter().map(|(_, r)| f(r)).collect::<Vec<f64>>();
    Ok(DataFrame::new(
        rows.len(),
        vec![
            Column::new("PTID".into(), rows.iter().map(|(_, r)| r.ptid.as_str()).collect::<Vec<&str>>()),
            Column::new("Image.ID".into(), rows.iter().map(|(_, r)| r.image_id).collect::<Vec<i64>>()),
            Column::new("fold".into(), rows.iter().map(|(s, _)| *s).collect::<Vec<&str>>()),
            Column::new("set".into(), rows.iter().map(|(_, r)| r.set.as_str()).collect::<Vec<&str>>()),
            Column::new(
                "true_label".into(),
                rows.iter().map(|(_, r)| i32::from(r.prediction.label)).collect::<Vec<i32>>(),
            ),
            Column::new("p_ad".into(), p(|r| r.prediction.p_ad)),
            Column::new(
                "predicted_label".into(),
                rows.iter().map(|(_, r)| i32::from(r.prediction.predicted)).collect::<Vec<i32>>(),
            ),
            Column::new("loss".into(), p(|r| r.prediction.loss)),
        ],
    )?)
}

pub(super) fn write_fold_predictions(path: &Path, split: &str, preds: &[ScanPrediction]) -> Result<(), TrainError> {
    let rows: Vec<(&str, &ScanPrediction)> = preds.iter().map(|r| (split, r)).collect();
    Ok(write_csv_atomically(path, &mut predictions_frame(&rows)?)?)
}
