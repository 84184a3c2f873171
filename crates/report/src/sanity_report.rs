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

use polars::prelude::{BooleanChunked, Column, DataFrame, NewChunkedArray};

use crate::error::{Result, ResultExt};
use crate::figures;
use crate::ground_truth::Bootstrap;
use crate::sanity::{self, REGIONS, RELEVANCE_ORDER, TrustInputs, VOXELS};
use crate::sanity_tables::{AopcRow, KIND, METHOD, ORDERING, PartSeconds};
use crate::tables::{column_str, read_optional_csv, stack_with_keys, write_table_into};

/// Column of the report's `faithfulness_deletion` table: what its `fraction` is a share of
/// ([`share_of`]).
pub const FRACTION_OF: &str = "fraction_of";

/// Column of the report's `trust_summary` table: why a test is not judged for a method
/// (a circular region deletion, [`AopcRow::note`]); empty otherwise.
pub const TRUST_NOTES: &str = "notes";

/// The name [`sanity::trust_table`] gives the region faithfulness test in its verdicts.
const REGIONS_TEST: &str = "faithfulness (regions)";

/// What the deletion steps of `kind` are shares of: every ordering deletes the same number of
/// voxels at a step, a share of the brain's voxels ([`VOXELS`]) or of the atlas voxels inside
/// the brain ([`REGIONS`]: whole regions, the last one cut to the count).
pub fn share_of(kind: &str) -> &'static str {
    if kind == REGIONS { "atlas voxels in the brain (whole regions, the last one cut)" } else { "brain voxels" }
}

/// [`crate::faithfulness::summarise_aopc`]'s table with a [`AopcRow::NOTE`] column: the note of
/// [`AopcRow::note`] on the rows of a circular curve (both orderings), empty elsewhere.
fn with_notes(summary: &DataFrame) -> Result<DataFrame> {
    const TABLE: &str = "AOPC summary";
    let (kind, method) = (column_str(summary, TABLE, KIND)?, column_str(summary, TABLE, METHOD)?);
    let notes: Vec<&str> = kind.iter().zip(&method).map(|(k, m)| AopcRow::note(k, m).unwrap_or("")).collect();
    let mut out = summary.clone();
    out.with_column(Column::new(AopcRow::NOTE.into(), notes))?;
    Ok(out)
}

/// [`sanity::trust_table`] where a circular region deletion ([`AopcRow::note`]) is not judged:
/// its `faithful_regions` is null and its verdict says `circular`, while its AOPC columns keep
/// their numbers (for reading, not for a verdict), and [`TRUST_NOTES`] says why.
fn trust_summary(inputs: &TrustInputs<'_>) -> Result<DataFrame> {
    let Some(aopc) = inputs.aopc else {
        return with_trust_notes(sanity::trust_table(inputs)?, &[]);
    };
    const TABLE: &str = "AOPC summary";
    let (kind, method, ordering) =
        (column_str(aopc, TABLE, KIND)?, column_str(aopc, TABLE, METHOD)?, column_str(aopc, TABLE, ORDERING)?);
    let circular: Vec<bool> = (0..aopc.height())
        .map(|i| ordering[i] == RELEVANCE_ORDER && AopcRow::note(&kind[i], &method[i]).is_some())
        .collect();
    if !circular.contains(&true) {
        return with_trust_notes(sanity::trust_table(inputs)?, &[]);
    }
    let circular_methods: Vec<String> =
        (0..aopc.height()).filter(|&i| circular[i]).map(|i| method[i].clone()).collect();
    let keep: Vec<bool> = circular.iter().map(|c| !c).collect();
    let judged_aopc = aopc.filter(&BooleanChunked::from_slice("keep".into(), &keep))?;
    let mut judged = sanity::trust_table(&TrustInputs { aopc: Some(&judged_aopc), ..*inputs })?;
    let shown = sanity::trust_table(inputs)?;
    // the numbers of the circular curves, by method, from the table that kept them
    const T: &str = "trust summary";
    let (judged_methods, shown_methods) = (column_str(&judged, T, METHOD)?, column_str(&shown, T, METHOD)?);
    for suffix in ["", "_lo", "_hi", "_n"] {
        let name = format!("aopc_{REGIONS}{suffix}");
        let (now, full) = (crate::tables::column_f64(&judged, T, &name)?, crate::tables::column_f64(&shown, T, &name)?);
        let values: Vec<f64> = judged_methods
            .iter()
            .zip(&now)
            .map(|(m, &v)| match shown_methods.iter().position(|x| x == m) {
                Some(j) if circular_methods.contains(m) => full[j],
                _ => v,
            })
            .collect();
        judged.with_column(Column::new(name.as_str().into(), values))?;
    }
    let verdict = column_str(&judged, T, "verdict")?;
    let verdict: Vec<String> = judged_methods
        .iter()
        .zip(verdict)
        .map(|(m, v)| {
            if !circular_methods.contains(m) || v == sanity::TRUSTED {
                v
            } else if v.contains(REGIONS_TEST) {
                v.replacen(REGIONS_TEST, &format!("{REGIONS_TEST} (circular)"), 1)
            } else {
                format!("{v}; {REGIONS_TEST}: circular, not judged")
            }
        })
        .collect();
    judged.with_column(Column::new("verdict".into(), verdict))?;
    with_trust_notes(judged, &circular_methods)
}

/// `trust` with a [`TRUST_NOTES`] column: the circular region deletion of `circular_methods`.
fn with_trust_notes(mut trust: DataFrame, circular_methods: &[String]) -> Result<DataFrame> {
    let methods = column_str(&trust, "trust summary", METHOD)?;
    let note = format!("{REGIONS_TEST}: {}", AopcRow::CIRCULAR);
    let notes: Vec<&str> =
        methods.iter().map(|m| if circular_methods.contains(m) { note.as_str() } else { "" }).collect();
    trust.with_column(Column::new(TRUST_NOTES.into(), notes))?;
    Ok(trust)
}

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
///
/// `faithfulness_deletion` says in [`FRACTION_OF`] what each step's `fraction` is a share of
/// ([`share_of`]); `faithfulness_aopc` has a [`AopcRow::NOTE`] column and `trust_summary` a
/// [`TRUST_NOTES`] column, which name the circular region deletion of area occlusion: its
/// region AOPC is shown but not judged ([`AopcRow::CIRCULAR_REGION_METHODS`]).
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
    let shuffled_fit = match read_optional_csv(&sanity.file(SHUFFLED_MODEL_FILE))? {
        Some(df) => {
            let t = sanity::shuffled_model_table(&df).with_context(|| in_file(SHUFFLED_MODEL_FILE))?;
            write_table_into(&t, tables, "sanity_shuffled_model", written)?;
            sanity::shuffled_fit(&t).with_context(|| in_file(SHUFFLED_MODEL_FILE))?
        }
        None => None,
    };
    if let Some(df) = read_optional_csv(&sanity.file(DELETION_FILE))? {
        let mut parts: Vec<(Vec<(&str, String)>, DataFrame)> = Vec::new();
        for (kind, unit) in [(VOXELS, figures::DeletionUnit::Voxels), (REGIONS, figures::DeletionUnit::Regions)] {
            let s = sanity::summarise_deletion(&df, kind, boot).with_context(|| in_file(DELETION_FILE))?;
            if s.height() == 0 {
                continue;
            }
            let p = figs.join(format!("deletion_{kind}.png"));
            figures::deletion_chart_for(&s, unit, (1100, 700), &p).with_context(|| in_file(DELETION_FILE))?;
            figures_written.push(p);
            parts.push((vec![(KIND, kind.to_string()), (FRACTION_OF, share_of(kind).to_string())], s));
        }
        if !parts.is_empty() {
            write_table_into(&stack_with_keys(&parts)?, tables, "faithfulness_deletion", written)?;
        }
    }
    let aopc = match read_optional_csv(&sanity.file(AOPC_FILE))? {
        Some(df) => {
            let s =
                crate::faithfulness::summarise_aopc(&df, &AopcRow::GROUP, boot).with_context(|| in_file(AOPC_FILE))?;
            write_table_into(&with_notes(&s)?, tables, "faithfulness_aopc", written)?;
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
        let trust = trust_summary(&TrustInputs {
            cascade: cascade.as_ref(),
            data_randomisation: data.as_ref(),
            shuffled_fit,
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
        assert!(md.lines().any(|l| l.starts_with("| **a** | fails") && l.contains("| 0.8000")), "{md}");
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
    fn area_occlusions_region_deletion_is_circular_and_not_judged() {
        // Regression: area occlusion's map is the score drop of setting each region to the
        // baseline, the perturbation of the region deletion, so its region AOPC was bound to
        // beat the random order and was reported as "faithful (regions)".
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let dir = root.join("holdout").join("sanity");
        runner_files(&dir);
        let mut deletion = String::from("kind,method,ordering,PTID,Image.ID,step,fraction,voxels_deleted,score\n");
        let mut aopc = String::from("kind,method,ordering,PTID,Image.ID,aopc\n");
        for m in ["area-occlusion", "b"] {
            for kind in ["voxels", "regions"] {
                for (o, fall) in [("relevance", 0.4), ("random", 0.1)] {
                    for (p, id) in [("p1", 1), ("p2", 2)] {
                        deletion.push_str(&format!(
                            "{kind},{m},{o},{p},{id},0,0,0,0.9\n{kind},{m},{o},{p},{id},1,0.25,40,{}\n",
                            0.9 - fall
                        ));
                        let a = fall / 2.0 + if p == "p1" { 0.01 } else { 0.0 };
                        aopc.push_str(&format!("{kind},{m},{o},{p},{id},{a}\n"));
                    }
                }
            }
        }
        write(&dir, "deletion.csv", &deletion);
        write(&dir, "aopc.csv", &aopc);
        let (tables, figs) = (root.join("report").join("tables"), root.join("report").join("figures"));
        let sanity = find_sanity(root).unwrap();
        write_sanity(&sanity, &Bootstrap::default(), None, &tables, &figs, &mut Vec::new()).unwrap();
        let read = |stem: &str| crate::tables::read_csv(&tables.join(format!("{stem}.csv"))).unwrap();

        // the AOPC table says why, on both rows of the circular comparison only
        let a = read("faithfulness_aopc");
        let (kind, method) = (column_str(&a, "a", KIND).unwrap(), column_str(&a, "a", METHOD).unwrap());
        let note = column_str(&a, "a", AopcRow::NOTE).unwrap();
        for i in 0..a.height() {
            let circular = kind[i] == REGIONS && method[i] == "area-occlusion";
            assert_eq!(note[i] == AopcRow::CIRCULAR, circular, "{} {}: {:?}", kind[i], method[i], note[i]);
            assert!(circular || note[i].is_empty(), "{:?}", note[i]);
        }
        // the trust summary does not judge it, keeps its numbers and says so in the verdict
        let t = read("trust_summary");
        let row = |m: &str| column_str(&t, "t", METHOD).unwrap().iter().position(|x| x == m).unwrap();
        let (ao, b) = (row("area-occlusion"), row("b"));
        let faithful = crate::ground_truth::column_hits(&t, "t", "faithful_regions").unwrap();
        assert_eq!((faithful[ao], faithful[b]), (None, Some(true)));
        let voxels = crate::ground_truth::column_hits(&t, "t", "faithful_voxels").unwrap();
        assert_eq!(voxels[ao], Some(true));
        let value = crate::tables::column_f64(&t, "t", "aopc_regions").unwrap();
        assert!((value[ao] - 0.205).abs() < 1e-12, "{}", value[ao]);
        let verdict = column_str(&t, "t", "verdict").unwrap();
        assert!(verdict[ao].contains("faithfulness (regions) (circular)"), "{}", verdict[ao]);
        assert!(!verdict[b].contains("circular"), "{}", verdict[b]);
        let notes = column_str(&t, "t", TRUST_NOTES).unwrap();
        assert!(notes[ao].contains("circular") && notes[b].is_empty(), "{notes:?}");
        // REPORT.md does not call it faithful on regions, and shows the verdict
        let md = sanity_markdown(root, Some(&sanity), root, &tables, &figs).unwrap();
        let regions = md.lines().find(|l| l.starts_with("- **Faithfulness (regions)**")).unwrap();
        assert!(!regions.contains("faithful: area-occlusion") && regions.contains("faithful: b"), "{regions}");
        assert!(md.contains("(circular)"), "{md}");
        // it fails nothing, so it is named as not judged on every test rather than left out
        assert!(md.contains("Fail no test but are not judged on every one: area-occlusion (not judged"), "{md}");
        assert!(md.contains("area-occlusion (circular: the map is this very deletion)"), "{md}");

        // the deletion table names what the steps are shares of
        let d = read("faithfulness_deletion");
        let (kind, of) = (column_str(&d, "d", KIND).unwrap(), column_str(&d, "d", FRACTION_OF).unwrap());
        assert!(kind.iter().zip(&of).all(|(k, o)| o == share_of(k)), "{of:?}");
        assert!(of.iter().any(|o| o.starts_with("atlas voxels")) && of.iter().any(|o| o == "brain voxels"));
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
