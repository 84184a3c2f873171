//! The per-epoch and per-scan tables, for a fold's files and the run's merged ones: the records
//! as rows of [`adni_data::run_tables`], which owns the columns.

use std::path::Path;

use adni_data::fsutil::write_csv_atomically;
use adni_data::run_tables::{EpochRow, PredictionRow};

use super::TrainError;
use super::records::{EpochRecord, ScanPrediction};

/// `history` of split `split` as rows of `metrics_epochs.csv`.
pub(super) fn epoch_rows(split: &str, history: &[EpochRecord]) -> Vec<EpochRow> {
    history
        .iter()
        .map(|r| EpochRow {
            split: split.to_owned(),
            epoch: r.epoch,
            train: r.train.into(),
            validation: r.validation.map(Into::into),
            test: r.test.map(Into::into),
        })
        .collect()
}

pub(super) fn write_epoch_csv(path: &Path, split: &str, history: &[EpochRecord]) -> Result<(), TrainError> {
    Ok(write_csv_atomically(path, &mut EpochRow::frame(&epoch_rows(split, history))?)?)
}

/// A prediction of split `split`'s model as a row of `predictions.csv`.
pub(super) fn prediction_row(split: &str, p: &ScanPrediction) -> PredictionRow {
    PredictionRow {
        ptid: p.ptid.clone(),
        image_id: p.image_id,
        fold: split.to_owned(),
        set: p.set.clone(),
        true_label: p.prediction.label,
        p_ad: p.prediction.p_ad,
        predicted_label: p.prediction.predicted,
        loss: p.prediction.loss,
    }
}

pub(super) fn write_fold_predictions(path: &Path, split: &str, preds: &[ScanPrediction]) -> Result<(), TrainError> {
    let rows: Vec<PredictionRow> = preds.iter().map(|p| prediction_row(split, p)).collect();
    Ok(write_csv_atomically(path, &mut PredictionRow::frame(&rows)?)?)
}
