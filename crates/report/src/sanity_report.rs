//! The sanity part of a report: the tables and figures of the sanity and faithfulness checks
//! (`cargo xtask sanity`, summarised by [`crate::sanity`] and [`crate::faithfulness`]).
//!
//! The folder and its files are those of [`SanityLayout`], their columns those of
//! [`crate::sanity_tables`]. Every file is optional: each part of the report is written only
//! when its file exists. Errors name the file.

use adni_data::run_layout::{
    AOPC_FILE, CASCADE_FILE, DATA_RANDOMISATION_FILE, DELETION_FILE, RunLayout, SHUFFLED_MODEL_FILE, SanityLayout,
    TIMING_FILE,
};
use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;

use crate::error::{Result, ResultExt};
use crate::figures;
use crate::ground_truth::Bootstrap;
use crate::sanity;
use crate::sanity_tables::{AopcRow, KIND, PartSeconds};
use crate::tables::{read_optional_csv, stack_with_keys, write_table_into};

/// Where the sanity checks of a results folder are: the sanity folder of `<root>/holdout` (a
/// reproduction) or of `root` (a single run), the first that holds a file; `None` when neither
/// does.
pub fn find_sanity(root: &Path) -> Option<SanityLayout> {
    [RunLayout::new(root.join("holdout")).sanity(), RunLayout::new(root).sanity()].into_iter().find(|s| {
        std::fs::read_dir(s.dir()).is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|e| e.path().is_file())))
    })
}

/// The tables and figures of the sanity and faithfulness checks in `sanity` ([`find_sanity`]):
/// `sanity_cascade`, `sanity_data_randomisation`, `sanity_shuffled_model`, `faithfulness_deletion`,
/// `faithfulness_aopc`, `sanity_timing` and `trust_summary` (every method's tests side by side,
/// with the ground-truth summary of the report where there is one) in `tables`, and the figures
/// `sanity_cascade.png`, `deletion_voxels.png`, `deletion_regions.png` in `figs` (added to
/// `written` after the tables). Errors name the file.
pub fn write_sanity(
    sanity: &SanityLayout,
    bootstrap: &Bootstrap,
    gt_summary: Option<&DataFrame>,
    tables: &Path,
    figs: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let boot = bootstrap;
    let dir = sanity.dir();
    let in_file = |name: &str| format!("summarising {}", sanity.file(name).display());
    let mut figures_written: Vec<PathBuf> = Vec::new();

    let cascade = match read_optional_csv(&sanity.file(CASCADE_FILE))? {
        Some(df) => {
            let s = sanity::summarise_cascade(&df, boot).with_context(|| in_file(CASCADE_FILE))?;
            write_table_into(&s, tables, "sanity_cascade", written)?;
            let p = figs.join("sanity_cascade.png");
            figures::randomisation_chart(&s, (1500, 650), &p).with_context(|| in_file(CASCADE_FILE))?;
            figures_written.push(p);
            Some(s)
        }
        None => None,
    };
    let data = match read_optional_csv(&sanity.file(DATA_RANDOMISATION_FILE))? {
        Some(df) => {
            let s =
                sanity::summarise_data_randomisation(&df, boot).with_context(|| in_file(DATA_RANDOMISATION_FILE))?;
            write_table_into(&s, tables, "sanity_data_randomisation", written)?;
            Some(s)
        }
        None => None,
    };
    if let Some(df) = read_optional_csv(&sanity.file(SHUFFLED_MODEL_FILE))? {
        let t = sanity::shuffled_model_table(&df).with_context(|| in_file(SHUFFLED_MODEL_FILE))?;
        write_table_into(&t, tables, "sanity_shuffled_model", written)?;
    }
    if let Some(df) = read_optional_csv(&sanity.file(DELETION_FILE))? {
        let mut parts: Vec<(Vec<(&str, String)>, DataFrame)> = Vec::new();
        for (kind, unit) in
            [(sanity::VOXELS, figures::DeletionUnit::Voxels), (sanity::REGIONS, figures::DeletionUnit::Regions)]
        {
            let s = sanity::summarise_deletion(&df, kind, boot).with_context(|| in_file(DELETION_FILE))?;
            if s.height() == 0 {
                continue;
            }
            let p = figs.join(format!("deletion_{kind}.png"));
            figures::deletion_chart_for(&s, unit, (1100, 700), &p).with_context(|| in_file(DELETION_FILE))?;
            figures_written.push(p);
            parts.push((vec![(KIND, kind.to_string())], s));
        }
        if !parts.is_empty() {
            write_table_into(&stack_with_keys(&parts)?, tables, "faithfulness_deletion", written)?;
        }
    }
    let aopc = match read_optional_csv(&sanity.file(AOPC_FILE))? {
        Some(df) => {
            let s =
                crate::faithfulness::summarise_aopc(&df, &AopcRow::GROUP, boot).with_context(|| in_file(AOPC_FILE))?;
            write_table_into(&s, tables, "faithfulness_aopc", written)?;
            Some(s)
        }
        None => None,
    };
    if let Some(df) = read_optional_csv(&sanity.file(TIMING_FILE))? {
        // checked here so that REPORT.md can rely on the columns
        crate::tables::column_str(&df, TIMING_FILE, PartSeconds::PART)
            .and_then(|_| crate::tables::column_f64(&df, TIMING_FILE, PartSeconds::SECONDS))
            .with_context(|| in_file(TIMING_FILE))?;
        write_table_into(&df, tables, "sanity_timing", written)?;
    }
    if cascade.is_some() || data.is_some() || aopc.is_some() {
        let trust = sanity::trust_table(&sanity::TrustInputs {
            cascade: cascade.as_ref(),
            data_randomisation: data.as_ref(),
            aopc: aopc.as_ref(),
            ground_truth: gt_summary,
        })
        .with_context(|| format!("the trust summary of {}", dir.display()))?;
        write_table_into(&trust, tables, "trust_summary", written)?;
    }
    written.extend(figures_written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::report_md::sanity_markdown;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    /// A sanity folder as the runner writes it: two methods, two patients, cascade of two layers
    /// (`a` stays alike, `b` falls), shuffled model, deletion curves and AOPC for voxels only.
    fn runner_files(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        write(
            dir,
            "cascade.csv",
            "step,layer,method,PTID,Image.ID,spearman,ssim\n\
             1,dense_3,a,p1,1,0.9,0.8\n1,dense_3,a,p2,2,0.8,0.7\n1,dense_3,b,p1,1,0.5,0.4\n1,dense_3,b,p2,2,0.3,0.2\n\
             2,dense_2,a,p1,1,0.7,0.6\n2,dense_2,a,p2,2,0.9,0.8\n2,dense_2,b,p1,1,NaN,0.1\n2,dense_2,b,p2,2,0.1,0.1\n",
        );
        write(
            dir,
            "data_randomisation.csv",
            "method,PTID,Image.ID,spearman,ssim,mass_accuracy,rank_accuracy,pointing_hit,truth_fraction\n\
             a,p1,1,0.2,0.2,NaN,NaN,,NaN\na,p2,2,0.4,0.3,NaN,NaN,,NaN\n\
             b,p1,1,0.1,0.1,NaN,NaN,,NaN\nb,p2,2,0.1,0.1,NaN,NaN,,NaN\n",
        );
        write(
            dir,
            "shuffled_model.csv",
            "model,n_scans,accuracy,balanced_accuracy,roc_auc\ntrained,2,1.0,1.0,1.0\nshuffled,2,0.5,0.5,0.5\n",
        );
        let mut deletion = String::from("kind,method,ordering,PTID,Image.ID,step,fraction,score\n");
        let mut aopc = String::from("kind,method,ordering,PTID,Image.ID,aopc\n");
        for m in ["a", "b"] {
            for (o, fall) in [("relevance", 0.4), ("random", 0.1)] {
                for (p, id) in [("p1", 1), ("p2", 2)] {
                    deletion.push_str(&format!(
                        "voxels,{m},{o},{p},{id},0,0,0.9\nvoxels,{m},{o},{p},{id},1,0.5,{}\n",
                        0.9 - fall
                    ));
                    aopc.push_str(&format!(
                        "voxels,{m},{o},{p},{id},{}\n",
                        fall / 2.0 + if p == "p1" { 0.01 } else { 0.0 }
                    ));
                }
            }
        }
        write(dir, "deletion.csv", &deletion);
        write(dir, "aopc.csv", &aopc);
        write(dir, "timing.csv", "part,seconds\ncascade,12.5\nfaithfulness,3\n");
    }

    #[test]
    fn sanity_folder_is_the_holdouts_then_the_runs_own_and_needs_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let dir = |s: Option<SanityLayout>| s.map(|s| s.dir().to_path_buf());
        assert_eq!(dir(find_sanity(root)), None);
        std::fs::create_dir_all(root.join("sanity")).unwrap();
        assert_eq!(dir(find_sanity(root)), None, "an empty folder is no sanity folder");
        write(&root.join("sanity"), "timing.csv", "part,seconds\n");
        assert_eq!(dir(find_sanity(root)), Some(root.join("sanity")));
        runner_files(&root.join("holdout").join("sanity"));
        assert_eq!(dir(find_sanity(root)), Some(root.join("holdout").join("sanity")));
    }

    #[test]
    fn sanity_section_reads_the_runner_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let (tables, figs) = (root.join("report").join("tables"), root.join("report").join("figures"));
        // absent folder: the section says how to switch the checks on
        assert!(find_sanity(root).is_none());
        let md = sanity_markdown(root, None, root.parent().unwrap(), &tables, &figs).unwrap();
        assert!(
            md.contains("[sanity]") && md.contains("cargo xtask sanity --run") && md.contains("faithfulness"),
            "{md}"
        );
        let name = root.file_name().unwrap().to_string_lossy();
        assert!(md.contains(&format!("`cargo xtask sanity --run {name}/holdout`")), "{md}");

        runner_files(&root.join("holdout").join("sanity"));
        let sanity = find_sanity(root).unwrap();
        let dir = sanity.dir().to_path_buf();
        let mut written = Vec::new();
        write_sanity(&sanity, &Bootstrap::default(), None, &tables, &figs, &mut written).unwrap();
        let names: Vec<String> =
            written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        for f in [
            "sanity_cascade.csv",
            "sanity_data_randomisation.md",
            "sanity_shuffled_model.csv",
            "faithfulness_aopc.csv",
            "faithfulness_deletion.csv",
            "sanity_timing.csv",
            "trust_summary.csv",
            "trust_summary.md",
            "sanity_cascade.png",
            "deletion_voxels.png",
        ] {
            assert!(names.iter().any(|n| n == f), "{f} not in {names:?}");
        }
        // tables first, figures last
        assert_eq!(&names[names.len() - 2..], ["sanity_cascade.png", "deletion_voxels.png"]);
        // no region rows: no region figure
        assert!(!names.iter().any(|n| n == "deletion_regions.png"));
        assert!(written.iter().all(|p| p.is_file()));

        let md = sanity_markdown(root, Some(&sanity), root, &tables, &figs).unwrap();
        // the stage has no complete.json: said so
        assert!(md.contains("did not finish"), "{md}");
        // a stays alike after both layers (mean 0.8 > 0.5): flagged in bold, b passes
        assert!(md.contains("| **a** | 0.8000"), "{md}");
        assert!(md.contains("Flagged by the model randomisation test") && md.contains("**a** (0.8000"), "{md}");
        assert!(md.contains("`dense_3` → `dense_2`"), "{md}");
        assert!(md.contains("balanced accuracy 0.5000"), "{md}");
        assert!(md.contains("![Cascading model-parameter randomisation](report/figures/sanity_cascade.png)"), "{md}");
        assert!(md.contains("**Can be trusted here:** b"), "{md}");
        assert!(md.contains("Time (this machine): cascade 12.5 s, faithfulness 3.0 s; total 15.5 s."), "{md}");
        assert!(md.contains("Tables: [trust summary](report/tables/trust_summary.md), [cascade]"), "{md}");

        // a finished stage: no warning
        write(&dir, adni_data::run_layout::COMPLETE_FILE, "{}");
        assert!(!sanity_markdown(root, Some(&sanity), root, &tables, &figs).unwrap().contains("did not finish"));
    }

    #[test]
    fn bad_sanity_files_are_errors_naming_file_and_column() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let dir = root.join("holdout").join("sanity");
        let (tables, figs) = (root.join("t"), root.join("f"));
        let run = || {
            let e =
                write_sanity(&SanityLayout::new(&dir), &Bootstrap::default(), None, &tables, &figs, &mut Vec::new());
            let e = e.unwrap_err();
            // every message of the chain, as anyhow's `{:#}` shows it
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        };
        runner_files(&dir);
        write(&dir, "cascade.csv", "step,layer,method,PTID,Image.ID,spearman\n1,dense_3,a,p1,1,0.9\n");
        let e = run();
        assert!(e.contains("summarising") && e.contains("cascade.csv") && e.contains("`ssim`"), "{e}");
        runner_files(&dir);
        write(&dir, "aopc.csv", "kind,method,ordering,PTID,Image.ID,aopc\nvoxels,a,relevance,p1,1,high\n");
        let e = run();
        assert!(e.contains("aopc.csv") && e.contains("aopc"), "{e}");
        runner_files(&dir);
        write(&dir, "timing.csv", "part,secs\ncascade,1\n");
        let e = run();
        assert!(e.contains("timing.csv") && e.contains("`seconds`"), "{e}");
    }
}
