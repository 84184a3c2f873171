//! The training run's own tables (written by `model::train`), read back for the report: per-epoch
//! metrics (learning curves), per-fold metrics, the summary over folds and the test predictions
//! (ROC curves). Column names are those of the training run's files; reading checks the columns
//! the report's figures use, so a renamed column fails here with a clear message rather than in
//! the middle of a figure.

use adni_data::run_layout::RunLayout;
use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;

use crate::error::{ReportError, Result};
use crate::tables::{has_column, read_csv};

/// The tables of one training run folder (for example `results/quick-train`).
#[derive(Debug, Clone)]
pub struct RunTables {
    /// `metrics_epochs.csv`: `split`, `epoch`, `<set>_loss`, `<set>_accuracy`, … per fold and epoch.
    pub epochs: DataFrame,
    /// `metrics_folds.csv`: `split`, `kept_epoch`, `test_*` metrics of each fold's kept model.
    pub folds: DataFrame,
    /// `summary.csv`: `metric`, `mean`, `sd`, `folds`, `pooled`, `ci_low`, `ci_high`, `ci_resamples`.
    pub summary: DataFrame,
    /// `predictions.csv`: `PTID`, `Image.ID`, `fold`, `set`, `true_label`, `p_ad`, … per test scan.
    pub predictions: DataFrame,
}

fn read_checked(dir: &Path, path: PathBuf, columns: &[&str]) -> Result<DataFrame> {
    if !path.is_file() {
        return Err(ReportError::invalid(
            "run folder",
            format!("{} is missing; is {} a finished training run?", path.display(), dir.display()),
        ));
    }
    let df = read_csv(&path)?;
    if let Some(c) = columns.iter().find(|c| !has_column(&df, c)) {
        let names: Vec<&str> = df.get_column_names().into_iter().map(|n| n.as_str()).collect();
        return Err(ReportError::column(&path.display().to_string(), c, format!("missing; the file has {names:?}")));
    }
    Ok(df)
}

/// Reads the four tables of a training run folder, checking the columns the report uses.
pub fn read_run(dir: &Path) -> Result<RunTables> {
    let run = RunLayout::new(dir);
    Ok(RunTables {
        epochs: read_checked(dir, run.metrics_epochs(), &["split", "epoch", "train_loss", "train_accuracy"])?,
        folds: read_checked(dir, run.metrics_folds(), &["split", "kept_epoch"])?,
        summary: read_checked(dir, run.summary_csv(), &["metric", "mean", "sd", "ci_low", "ci_high"])?,
        predictions: read_checked(dir, run.predictions(), &["fold", "true_label", "p_ad"])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_run_and_names_missing_files_and_columns() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("metrics_epochs.csv"), "split,epoch,train_loss,train_accuracy\nfold1,1,0.7,0.5\n")
            .unwrap();
        std::fs::write(d.join("metrics_folds.csv"), "split,kept_epoch,test_accuracy\nfold1,1,0.5\n").unwrap();
        std::fs::write(d.join("summary.csv"), "metric,mean,sd,ci_low,ci_high\naccuracy,0.5,0.1,0.4,0.6\n").unwrap();
        let err = read_run(d).unwrap_err().to_string();
        assert!(err.contains("predictions.csv is missing"), "{err}");
        std::fs::write(d.join("predictions.csv"), "fold,true_label,prob\nfold1,1,0.4\n").unwrap();
        let err = read_run(d).unwrap_err().to_string();
        assert!(err.contains("`p_ad`") && err.contains("prob"), "{err}");
        std::fs::write(d.join("predictions.csv"), "fold,set,true_label,p_ad\nfold1,test,1,0.4\n").unwrap();
        let run = read_run(d).unwrap();
        assert_eq!(run.predictions.height(), 1);
        assert_eq!(run.epochs.height(), 1);
    }
}
