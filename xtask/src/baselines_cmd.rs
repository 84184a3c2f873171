//! The linear baselines of `cargo xtask report` (see `report::baselines`): finds a run's splits,
//! cohort, preprocessed volumes and atlas, and hands them to the library.
//!
//! Splits: `<root>/cv/splits/*.csv` and `<root>/holdout/splits/*.csv` of a reproduction (written
//! by training), else `<root>/splits/*.csv` of a single training run. Scans: the config's cohort.
//! Volumes: the preprocessing cache (`[preprocess]`), on the model grid, before the z-score.
//! Atlas: `[relevance] atlas` placed on the model grid. Planted and ventricle regions:
//! `[synth] atrophy_regions` and `ventricle_regions` (their defaults for a config without `[synth]`).
//!
//! Outputs in `<root>/report/tables/`: `baselines.{csv,md}` (one row per feature set and split),
//! `baselines_summary.{csv,md}` and `baseline_features.{csv,md}` (the features of every scan).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use adni_data::preprocess::PreprocessSpec;
use adni_data::splits::{Split, read_split_csv};
use model::data::{ScanItem, VolumeSource};
use report::baselines::{
    FeatureGeometry, FeatureTable, LogisticSettings, ScanInfo, evaluate, interpretation, results_frame,
    standard_feature_sets, summary_frame,
};
use report::tables::{read_csv, write_table};

use crate::commands::cohort_of;
use crate::config::{ProjectConfig, resolve};

/// Stem of the per-split table.
pub const TABLE: &str = "baselines";
/// Stem of the summary table.
pub const SUMMARY: &str = "baselines_summary";
/// Stem of the per-scan feature table.
pub const FEATURES: &str = "baseline_features";

/// Whether a file in a `splits/` folder is one split (`fold<N>.csv`, `holdout.csv`), not a table
/// beside them such as `split`'s `assignments.csv`.
fn is_split_file(p: &Path) -> bool {
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    p.extension().is_some_and(|e| e == "csv")
        && (stem == report::baselines::HOLDOUT_SPLIT
            || stem.strip_prefix("fold").is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())))
}

/// The split files of a results folder, folds in numeric order, then the hold-out.
fn split_files(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.join("cv").join("splits"), root.join("holdout").join("splits")];
    if !dirs.iter().any(|d| d.is_dir()) {
        dirs = vec![root.join("splits")];
    }
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())))
        .filter(|p| is_split_file(p))
        .collect();
    let key = |p: &PathBuf| {
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
        let digits: String = stem.chars().rev().take_while(char::is_ascii_digit).collect();
        let number: u64 = digits.chars().rev().collect::<String>().parse().unwrap_or(0);
        (
            stem == report::baselines::HOLDOUT_SPLIT,
            stem.trim_end_matches(|c: char| c.is_ascii_digit()).to_string(),
            number,
        )
    };
    files.sort_by_key(key);
    files
}

/// Computes the baselines of the run in `root` and writes their tables into `tables`; returns the
/// files written (none, with a message, when the folder holds no splits).
pub fn write_baselines(cfg: &ProjectConfig, root: &Path, tables: &Path) -> Result<Vec<PathBuf>> {
    let files = split_files(root);
    if files.is_empty() {
        eprintln!(
            "report: no split files under {} (cv/splits, holdout/splits or splits): no baselines",
            root.display()
        );
        return Ok(Vec::new());
    }
    let splits: Vec<Split> = files.iter().map(|f| read_split_csv(f)).collect::<adni_data::Result<_>>()?;
    let wanted: BTreeSet<i64> = splits.iter().flat_map(|s| s.rows.iter().map(|r| r.image_id)).collect();
    let cohort = cohort_of(cfg).context("baselines: cannot rebuild the run's cohort from its config")?;
    let scans: Vec<&adni_data::cohort::CohortScan> =
        cohort.scans.iter().filter(|s| wanted.contains(&s.record.image_id)).collect();
    let Some(first) = scans.first() else { bail!("baselines: no scan of the splits is in the cohort") };

    let p = &cfg.preprocess;
    let spec = PreprocessSpec { mask: p.mask_path(), downsample: p.downsample };
    let source = VolumeSource::open(&resolve(&p.cache_dir), spec, &first.path)
        .context("baselines: cannot set up the preprocessed volumes ([preprocess] mask, downsample, cache_dir)")?;
    let grid = source.model_grid();
    let atlas = match crate::inputs::load_atlas(cfg, &grid) {
        Ok(a) => Some(a),
        Err(e) => {
            eprintln!("report: baselines without an atlas ({e:#})");
            None
        }
    };
    let synth = &cfg.synth.params;
    let geometry = FeatureGeometry::new(
        &grid,
        source.model_mask.as_ref().map(|m| m.view()),
        atlas.as_ref(),
        &synth.atrophy_regions,
        &synth.ventricle_regions,
    )?;
    for note in &geometry.notes {
        eprintln!("report: baselines: {note}");
    }

    let items: HashMap<i64, ScanItem> = scans.iter().map(|s| (s.record.image_id, ScanItem::from_cohort(s))).collect();
    let infos: Vec<ScanInfo> = scans
        .iter()
        .map(|s| ScanInfo {
            ptid: s.record.ptid.clone(),
            image_id: s.record.image_id,
            label: s.label,
            visit_months: s.record.month_bl,
        })
        .collect();
    let table = FeatureTable::build(infos, &geometry, |s| match items.get(&s.image_id) {
        Some(item) => Ok(source.load(item)?),
        None => Err(report::ReportError::invalid("scan", format!("Image.ID {} is not in the cohort", s.image_id))),
    })?;
    let sets = standard_feature_sets(&geometry);
    let rows = evaluate(&table, &sets, &splits, &LogisticSettings::default())?;

    let mut written = Vec::new();
    for (df, stem) in [(results_frame(&rows)?, TABLE), (summary_frame(&rows)?, SUMMARY), (table.to_frame()?, FEATURES)]
    {
        let (csv, md) = write_table(&df, tables, stem).with_context(|| format!("table {stem}"))?;
        written.push(csv);
        written.push(md);
    }
    eprintln!(
        "report: baselines: {} feature sets × {} splits on {} scans",
        sets.len(),
        splits.len(),
        table.scans.len()
    );
    Ok(written)
}

/// The `## Baselines (linear, same folds)` section of `REPORT.md`: the summary table and one
/// interpretation, or a line saying why there is none.
pub fn baselines_markdown(root: &Path) -> String {
    let tables = root.join("report").join("tables");
    let mut md = String::from("## Baselines (linear, same folds)\n\n");
    let summary_csv = tables.join(format!("{SUMMARY}.csv"));
    let (Ok(summary), Ok(summary_md)) =
        (read_csv(&summary_csv), std::fs::read_to_string(tables.join(format!("{SUMMARY}.md"))))
    else {
        let _ = writeln!(md, "Not computed for this run (see the messages of `cargo xtask report`).\n");
        return md;
    };
    let cnn = read_csv(&adni_data::run_layout::RunLayout::new(root.join("cv")).summary_csv()).ok();
    let _ = writeln!(
        md,
        "A logistic regression (linfa, L2 α = 1, features standardised on each split's training scans) on \
         per-scan features of the preprocessed volumes, fitted and scored on the CNN's own splits \
         ([per split](report/tables/{TABLE}.md), [features per scan](report/tables/{FEATURES}.csv)). \
         `planted_regions` and `planted_regions_relative` are the ceiling (mean intensity of each planted \
         region, raw and ÷ the scan's median brain intensity); every other row is a whole-brain shortcut check that must stay near chance (balanced accuracy ≤ {}, `shortcut_ok`).\n",
        report::baselines::SHORTCUT_LIMIT
    );
    let _ = writeln!(md, "{}\n", summary_md.trim_end());
    match interpretation(&summary, cnn.as_ref()) {
        Ok(text) => {
            let _ = writeln!(md, "{text}\n");
        }
        Err(e) => {
            let _ = writeln!(md, "(no interpretation: {e})\n");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_files_are_folds_in_numeric_order_then_the_holdout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(split_files(root).is_empty());
        std::fs::create_dir_all(root.join("cv/splits")).unwrap();
        std::fs::create_dir_all(root.join("holdout/splits")).unwrap();
        for f in ["cv/splits/fold10.csv", "cv/splits/fold2.csv", "cv/splits/fold1.csv", "holdout/splits/holdout.csv"] {
            std::fs::write(root.join(f), "PTID,Image.ID,set\n").unwrap();
        }
        std::fs::write(root.join("cv/splits/notes.txt"), "").unwrap();
        let names: Vec<String> =
            split_files(root).iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["fold1", "fold2", "fold10", "holdout"]);
        // A single training run keeps its splits in `splits/`, read only without cv/ and holdout/.
        let single = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(single.path().join("splits")).unwrap();
        std::fs::write(single.path().join("splits/fold1.csv"), "PTID,Image.ID,set\n").unwrap();
        // `split`'s assignments table beside the splits is not a split.
        std::fs::write(single.path().join("splits/assignments.csv"), "PTID,Image.ID,fold1\n").unwrap();
        std::fs::write(single.path().join("splits/foldx.csv"), "PTID,Image.ID,set\n").unwrap();
        assert_eq!(split_files(single.path()), [single.path().join("splits/fold1.csv")]);
    }
}
