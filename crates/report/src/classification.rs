//! The training run's own tables (written by `model::train`), read back for the report: per-epoch
//! metrics (learning curves), per-fold metrics, the summary over folds and the test predictions
//! (ROC curves). Column names are those of the training run's row types
//! ([`adni_data::run_tables`]); reading checks the columns the report's figures use, so a missing
//! column fails here with a clear message rather than in the middle of a figure.
//!
//! [`write_classification`] is the classification part of a report: tables and figures of every
//! training run of a results folder.

use adni_data::run_layout::RunLayout;
use adni_data::run_tables::{self, EpochRow, FoldRow, MetricSet, PredictionRow, SummaryRow};
use std::path::{Path, PathBuf};

use polars::prelude::{Column, DataFrame};

use crate::error::{ReportError, Result};
use crate::figures;
use crate::tables::{column_str, has_column, read_csv, write_table_into};

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

fn read_checked(dir: &Path, path: PathBuf, columns: &[String]) -> Result<DataFrame> {
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
    let names = |columns: &[&str]| columns.iter().map(|c| (*c).to_owned()).collect::<Vec<String>>();
    let train = MetricSet::Train;
    let epoch_columns = [
        EpochRow::SPLIT.to_owned(),
        EpochRow::EPOCH.to_owned(),
        train.column(run_tables::LOSS),
        train.column(run_tables::ACCURACY),
    ];
    Ok(RunTables {
        epochs: read_checked(dir, run.metrics_epochs(), &epoch_columns)?,
        folds: read_checked(dir, run.metrics_folds(), &names(&[FoldRow::SPLIT, FoldRow::KEPT_EPOCH]))?,
        summary: read_checked(
            dir,
            run.summary_csv(),
            &names(&[SummaryRow::METRIC, SummaryRow::MEAN, SummaryRow::SD, SummaryRow::CI_LOW, SummaryRow::CI_HIGH]),
        )?,
        predictions: read_checked(
            dir,
            run.predictions(),
            &names(&[PredictionRow::FOLD, PredictionRow::TRUE_LABEL, PredictionRow::P_AD]),
        )?,
    })
}

/// The epochs table with each fold's kept epoch (from the folds table, matched on `split`) as a
/// `kept_epoch` column, so the learning curves mark the right epoch also with `keep = "best"`.
/// Null where a split has no fold row or its kept epoch is not a whole number; a table that has a
/// `kept_epoch` column already is returned unchanged.
pub fn with_kept_epoch(epochs: &DataFrame, folds: &DataFrame) -> Result<DataFrame> {
    let fold_split = column_str(folds, "metrics_folds.csv", FoldRow::SPLIT)?;
    let kept = column_str(folds, "metrics_folds.csv", FoldRow::KEPT_EPOCH)?;
    let split = column_str(epochs, "metrics_epochs.csv", EpochRow::SPLIT)?;
    let values: Vec<Option<i64>> = split
        .iter()
        .map(|s| fold_split.iter().position(|f| f == s).and_then(|i| kept[i].trim().parse::<i64>().ok()))
        .collect();
    let mut out = epochs.clone();
    if out.column(FoldRow::KEPT_EPOCH).is_err() {
        out.with_column(Column::new(FoldRow::KEPT_EPOCH.into(), values))?;
    }
    Ok(out)
}

/// The classification part of the report of `root`: for each training run there (`cv/`,
/// `holdout/` of a reproduction, or `root` itself as a single run; each only with its
/// `summary.csv`), the tables `classification_<run>_summary` and `classification_<run>_folds` in
/// `tables` and the figures `learning_curves_<run>.png` (kept epochs marked) and `roc_<run>.png`
/// in `figs`, with `<run>` = `cv`, `holdout` or `run`. Adds the files to `written`.
pub fn write_classification(root: &Path, tables: &Path, figs: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    for (name, dir) in [("cv", root.join("cv")), ("holdout", root.join("holdout")), ("run", root.to_path_buf())] {
        if !RunLayout::new(&dir).summary_csv().exists() {
            continue;
        }
        let run = read_run(&dir)?;
        write_table_into(&run.summary, tables, &format!("classification_{name}_summary"), written)?;
        write_table_into(&run.folds, tables, &format!("classification_{name}_folds"), written)?;
        let p = figs.join(format!("learning_curves_{name}.png"));
        figures::learning_curves(&with_kept_epoch(&run.epochs, &run.folds)?, (1200, 800), &p)?;
        written.push(p);
        let p = figs.join(format!("roc_{name}.png"));
        figures::roc_curves(&run.predictions, (900, 800), &p)?;
        written.push(p);
    }
    Ok(())
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

    fn frame(columns: Vec<Column>) -> DataFrame {
        DataFrame::new(columns[0].len(), columns).unwrap()
    }

    #[test]
    fn kept_epoch_join_marks_each_splits_own_kept_epoch() {
        let epochs = frame(vec![
            Column::new("split".into(), ["fold1", "fold1", "fold1", "fold2", "fold2", "fold3"]),
            Column::new("epoch".into(), [1i64, 2, 3, 1, 2, 1]),
        ]);
        // fold2 kept its first epoch (keep = "best"); fold3 has no fold row
        let folds =
            frame(vec![Column::new("split".into(), ["fold2", "fold1"]), Column::new("kept_epoch".into(), [1i64, 3])]);
        let out = with_kept_epoch(&epochs, &folds).unwrap();
        assert_eq!(out.height(), 6);
        let kept: Vec<Option<i64>> = out.column("kept_epoch").unwrap().i64().unwrap().iter().collect();
        assert_eq!(kept, vec![Some(3), Some(3), Some(3), Some(1), Some(1), None]);
        // exactly one row per split is its kept epoch
        let epoch: Vec<Option<i64>> = out.column("epoch").unwrap().i64().unwrap().iter().collect();
        let marked: Vec<usize> = (0..6).filter(|&i| kept[i].is_some() && kept[i] == epoch[i]).collect();
        assert_eq!(marked, vec![2, 3]);
        // a table that already has the column is left alone; a missing column is named
        assert_eq!(with_kept_epoch(&out, &folds).unwrap(), out);
        let err = with_kept_epoch(&epochs, &epochs).unwrap_err().to_string();
        assert!(err.contains("metrics_folds.csv") && err.contains("kept_epoch"), "{err}");
    }

    #[test]
    fn classification_part_writes_tables_and_figures_of_each_run() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let run = root.join("holdout");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(
            run.join("metrics_epochs.csv"),
            "split,epoch,train_loss,train_accuracy,test_loss,test_accuracy\n\
             holdout,1,0.7,0.5,0.7,0.5\nholdout,2,0.6,0.6,0.65,0.6\n",
        )
        .unwrap();
        std::fs::write(run.join("metrics_folds.csv"), "split,kept_epoch,test_accuracy\nholdout,2,0.6\n").unwrap();
        std::fs::write(run.join("summary.csv"), "metric,mean,sd,ci_low,ci_high\naccuracy,0.6,0,0.4,0.8\n").unwrap();
        std::fs::write(
            run.join("predictions.csv"),
            "PTID,Image.ID,fold,set,true_label,p_ad\na,1,holdout,test,1,0.8\nb,2,holdout,test,0,0.3\n\
             c,3,holdout,test,1,0.4\nd,4,holdout,test,0,0.6\n",
        )
        .unwrap();
        let (tables, figs) = (root.join("report/tables"), root.join("report/figures"));
        let mut written = Vec::new();
        write_classification(root, &tables, &figs, &mut written).unwrap();
        let names: Vec<String> =
            written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            [
                "classification_holdout_summary.csv",
                "classification_holdout_summary.md",
                "classification_holdout_folds.csv",
                "classification_holdout_folds.md",
                "learning_curves_holdout.png",
                "roc_holdout.png"
            ]
        );
        assert!(written.iter().all(|p| p.is_file()));
    }
}
