//! `cargo xtask reproduce-paper`: the whole study in one command.
//!
//! fetch data → synthesise the cohort → k-fold cross-validation → hold-out training → relevance
//! maps of the hold-out test scans → sanity checks and faithfulness of the maps (`[sanity]`) →
//! tables and figures → `REPORT.md`, into `results/<run>/`:
//!
//! | path | what |
//! |---|---|
//! | `cv/` | the k-fold run (`cargo xtask train`'s layout) |
//! | `holdout/` | the hold-out run; `holdout/relevance/` its maps (`cargo xtask interpret`'s layout), `holdout/sanity/` the checks (`cargo xtask sanity`'s layout) |
//! | `report/` | tables (CSV + Markdown) and figures (PNG) |
//! | `stages.csv` | seconds per stage, and whether it ran or was found complete |
//! | `REPORT.md` | links every table and figure; config, data, versions, timings, differences from the paper |
//!
//! A stage whose outputs exist and are complete is skipped (training skips finished folds and
//! merges; interpretation checks `relevance/complete.json`; the report is always rewritten, it is
//! cheap); `--force` deletes and redoes them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use adni_data::run_layout::RunLayout;
use model::train::TrainMode;

use crate::commands::{find_config, load_config_file};
use crate::config::ProjectConfig;
use crate::data_cmd::prepare_with;
use crate::interpret_cmd::{InterpretArgs, run_mode};
use crate::sanity_cmd::{SanityArgs, run_sanity};
use crate::train_cmd::{TrainArgs, train_with};

/// Arguments of `cargo xtask reproduce-paper`.
#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// Config (default `configs/reproduce.toml`, or `configs/reproduce-quick.toml` with --quick)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The small, fast variant (tiny phantom cohort, small network, few epochs, coarse occlusion)
    #[arg(long, conflicts_with = "config")]
    pub quick: bool,
    /// Redo every stage even if its outputs are complete
    #[arg(long)]
    pub force: bool,
    /// Run no stage: write the report of a run whose stages other jobs computed (the last job of
    /// `cargo xtask slurm`'s chain); an error naming the missing files when one is incomplete
    #[arg(long, conflicts_with = "force")]
    pub report_only: bool,
}

/// One stage's record.
pub(crate) struct Stage {
    /// Stage name (`data`, `train-cv`, `train-holdout`, `interpret`, `sanity`, `report`).
    pub(crate) name: &'static str,
    /// Seconds the stage took; for a stage found complete, those of the call that computed it
    /// (from the previous `stages.csv`) where known.
    pub(crate) seconds: f64,
    what: String,
}

/// What one reproduction did.
pub(crate) struct ReproduceOutcome {
    /// The stages in order.
    pub(crate) stages: Vec<Stage>,
    /// This call's wall time, in seconds.
    pub(crate) wall_seconds: f64,
}

/// `cargo xtask reproduce-paper`.
pub fn reproduce(args: &ReproduceArgs) -> Result<()> {
    let default = if args.quick { "configs/reproduce-quick.toml" } else { "configs/reproduce.toml" };
    let config_path = find_config(args.config.as_deref().unwrap_or(Path::new(default)))?;
    let cfg = load_config_file(&config_path)?;
    if args.report_only {
        return report_only(&cfg, &config_path).map(|_| ());
    }
    reproduce_with(&cfg, &config_path, args.force).map(|_| ())
}

/// `reproduce-paper --report-only`: the tables, figures and `REPORT.md` of a run whose stages
/// other jobs computed, without running any stage. When a promised file is missing, the error
/// names it and no `REPORT.md` or `REPORT.html` is left behind.
pub(crate) fn report_only(cfg: &ProjectConfig, config_path: &Path) -> Result<ReproduceOutcome> {
    let root = cfg.run.dir();
    let _lock = crate::commands::lock_folder(&root)?;
    // The report states the config: it must be the one the stages ran with.
    cfg.check_recorded(&root, "reproduce-paper --report-only")?;
    cfg.write_resolved(&root)?;
    let started = Instant::now();
    // Each stage's time from its own timing table (the jobs' wall times are in their logs).
    let holdout = RunLayout::new(root.join("holdout"));
    let mut timed = vec![
        ("data", None, "its time is in its job's log"),
        ("train-cv", Some(RunLayout::new(root.join("cv")).timing()), "the folds' epoch times"),
        ("train-holdout", Some(holdout.timing()), "the epoch times"),
        ("interpret", Some(holdout.relevance().timing()), "the maps' times"),
    ];
    if sanity_on(cfg) {
        timed.push(("sanity", Some(holdout.sanity().file(adni_data::run_layout::TIMING_FILE)), "the checks' times"));
    }
    let mut stages: Vec<Stage> = timed
        .into_iter()
        .map(|(name, table, what)| {
            let seconds = table.as_deref().and_then(sum_seconds);
            let what = match seconds {
                Some(_) => format!("complete, skipped (computed by separate jobs; seconds: {what})"),
                None => format!("complete, skipped (computed by separate jobs; {what})"),
            };
            Stage { name, seconds: seconds.unwrap_or(0.0), what }
        })
        .collect();
    let t = Instant::now();
    eprintln!("\n=== reproduce-paper --report-only: report");
    let written = crate::report_cmd::write_report(cfg, &root)?;
    stages.push(Stage { name: "report", seconds: t.elapsed().as_secs_f64(), what: format!("{} files", written.len()) });
    let total = started.elapsed().as_secs_f64();
    write_stages(&root, &stages, total)?;
    crate::report_cmd::write_report_md(cfg, config_path, &root, &stages_markdown(&stages, total))?;
    if let Err(e) = verify_outputs(cfg, &root) {
        let layout = RunLayout::new(&root);
        for f in [layout.report_md(), root.join(report::html::REPORT_FILE)] {
            let _ = std::fs::remove_file(f);
        }
        return Err(e.context("reproduce-paper --report-only: a stage is incomplete; its report was not kept"));
    }
    eprintln!("reproduce-paper --report-only: done in {total:.0} s → {}", RunLayout::new(&root).report_md().display());
    Ok(ReproduceOutcome { stages, wall_seconds: total })
}

/// Every stage of the reproduction a loaded config describes, into `cfg.run.dir()`
/// (`config_path` is not read again; `REPORT.md` names it). With `force`, the run folder is
/// deleted first and every stage redone.
pub(crate) fn reproduce_with(cfg: &ProjectConfig, config_path: &Path, force: bool) -> Result<ReproduceOutcome> {
    let root = cfg.run.dir();
    let lock = crate::commands::lock_folder(&root)?;
    if force {
        // Only this run's own folder is emptied (never the folder of all runs, nor a user's).
        cfg.check_clearable(&root)?;
        eprintln!("reproduce-paper: --force: emptying {}", root.display());
        lock.clear()?;
    } else {
        // Before anything is written: the folder's recorded config must stay that of its results.
        cfg.check_recorded(&root, "reproduce-paper")?;
    }
    cfg.write_resolved(&root)?;
    let started = Instant::now();
    let mut stages: Vec<Stage> = Vec::new();

    // 1. Data: fetch (real anatomy), synthesise, cohort, splits, preprocessing cache.
    let t = Instant::now();
    eprintln!("\n=== reproduce-paper: data ({})", config_path.display());
    prepare_with(&stage_config(cfg, "data", None), force)?;
    stages.push(Stage {
        name: "data",
        seconds: t.elapsed().as_secs_f64(),
        what: "fetch, synth, cohort, split, preprocess".into(),
    });

    // 2. k-fold cross-validation, 3. hold-out training.
    for (name, mode) in [("cv", TrainMode::Kfold), ("holdout", TrainMode::Holdout)] {
        let t = Instant::now();
        eprintln!("\n=== reproduce-paper: train {name}");
        let stage_cfg = stage_config(cfg, name, Some(mode));
        let targs = TrainArgs {
            config: config_path.to_path_buf(),
            fold: None,
            resume: true,
            merge: false,
            device: None,
            shuffle_labels: None,
        };
        let outcome = train_with(stage_cfg, &targs)?;
        let what = if outcome.trained.is_empty() {
            format!("complete, skipped ({})", outcome.skipped.join(", "))
        } else {
            format!("trained {}", outcome.trained.join(", "))
        };
        stages.push(Stage {
            name: if name == "cv" { "train-cv" } else { "train-holdout" },
            seconds: t.elapsed().as_secs_f64(),
            what,
        });
    }

    // 4. Relevance maps of the hold-out test scans.
    let t = Instant::now();
    eprintln!("\n=== reproduce-paper: interpret");
    // The sanity checks reuse every scan's map instead of recomputing it.
    let sanity_on = sanity_on(cfg);
    let iargs =
        InterpretArgs { run: Some(root.join("holdout")), force, save_scan_maps: sanity_on, ..Default::default() };
    let outcome = run_mode(&iargs, &root.join("holdout"))?;
    stages.push(Stage {
        name: "interpret",
        seconds: t.elapsed().as_secs_f64(),
        what: if outcome.skipped {
            format!("complete, skipped ({})", outcome.dir.display())
        } else {
            format!("{} scans", outcome.scans)
        },
    });

    // 5. Sanity checks and faithfulness of the maps.
    if sanity_on {
        let t = Instant::now();
        eprintln!("\n=== reproduce-paper: sanity");
        let sargs = SanityArgs { run: root.join("holdout"), force, ..Default::default() };
        let outcome = run_sanity(&sargs)?;
        stages.push(Stage {
            name: "sanity",
            seconds: t.elapsed().as_secs_f64(),
            what: if outcome.skipped {
                format!("complete, skipped ({})", outcome.dir.display())
            } else {
                let parts: Vec<String> = outcome.parts.iter().map(|(p, s)| format!("{p} {s:.0} s")).collect();
                format!("{} AD scans: {}", outcome.scans, parts.join(", "))
            },
        });
    }

    // 6. Tables and figures.
    let t = Instant::now();
    eprintln!("\n=== reproduce-paper: report");
    let written = crate::report_cmd::write_report(cfg, &root)?;
    stages.push(Stage { name: "report", seconds: t.elapsed().as_secs_f64(), what: format!("{} files", written.len()) });

    let total = started.elapsed().as_secs_f64();
    carry_over_timings(&root, &mut stages);
    write_stages(&root, &stages, total)?;
    crate::report_cmd::write_report_md(cfg, config_path, &root, &stages_markdown(&stages, total))?;
    let checked = verify_outputs(cfg, &root)?;
    eprintln!("reproduce-paper: all {checked} expected files exist and are non-empty");
    eprintln!("\nreproduce-paper: done in {:.0} s → {}", total, RunLayout::new(&root).report_md().display());
    Ok(ReproduceOutcome { stages, wall_seconds: total })
}

/// The sum of a timing table's `seconds` column (every timing table of a run has one); `None`
/// when the file is missing or not such a table.
fn sum_seconds(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let column = lines.next()?.split(',').position(|c| c == adni_data::run_tables::TimingRow::SECONDS)?;
    lines.filter(|l| !l.is_empty()).map(|l| l.split(',').nth(column)?.parse::<f64>().ok()).sum()
}

/// Whether the config runs the sanity stage (any of its checks switched on); the interpretation
/// then keeps every scan's map for it.
pub(crate) fn sanity_on(cfg: &ProjectConfig) -> bool {
    cfg.sanity.cascade || cfg.sanity.data_randomisation || cfg.sanity.faithfulness
}

/// The config of one stage: its own run folder below the reproduction's folder.
pub(crate) fn stage_config(cfg: &ProjectConfig, name: &str, mode: Option<TrainMode>) -> ProjectConfig {
    let mut c = cfg.clone();
    c.run.results_dir = cfg.run.dir();
    c.run.name = name.to_string();
    if let Some(mode) = mode {
        c.train.mode = mode;
        c.train.epochs = stage_epochs(cfg, mode);
    }
    c
}

/// The epochs the training stage `mode` of a reproduction runs: `[reproduce] cv_epochs` or
/// `holdout_epochs`, where 0 (their default) means `[train] epochs`.
pub(crate) fn stage_epochs(cfg: &ProjectConfig, mode: TrainMode) -> usize {
    let epochs = match mode {
        TrainMode::Kfold => cfg.reproduce.cv_epochs,
        TrainMode::Holdout => cfg.reproduce.holdout_epochs,
    };
    if epochs > 0 { epochs } else { cfg.train.epochs }
}

fn stages_markdown(stages: &[Stage], total: f64) -> String {
    let mut md = String::from("| stage | seconds | what |\n|---|---:|---|\n");
    for s in stages {
        let _ = writeln!(md, "| {} | {:.1} | {} |", s.name, s.seconds, s.what);
    }
    let _ = writeln!(md, "| **total** | **{total:.1}** | |");
    md
}

/// The stage table of the reproduction in `root` as its `stages.csv` records it (for `report`,
/// which writes `REPORT.md` again without running a stage); `None` without a readable one.
pub(crate) fn saved_stages_markdown(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(RunLayout::new(root).stages_csv()).ok()?;
    let mut md = String::from("| stage | seconds | what |\n|---|---:|---|\n");
    let mut total = None;
    for line in text.lines().skip(1) {
        let mut parts = line.splitn(3, ',');
        let (Some(name), Some(secs), what) = (parts.next(), parts.next(), parts.next().unwrap_or("")) else {
            continue;
        };
        let Ok(secs) = secs.parse::<f64>() else { continue };
        if name == "total" {
            total = Some(secs);
        } else {
            let _ = writeln!(md, "| {name} | {secs:.1} | {} |", what.trim_matches('"'));
        }
    }
    let _ = writeln!(md, "| **total** | **{:.1}** | |", total?);
    Some(md)
}

/// A stage found complete keeps the timing of the call that computed it (from the previous
/// `stages.csv`), marked as such; the total stays this call's wall time.
fn carry_over_timings(root: &Path, stages: &mut [Stage]) {
    let Ok(text) = std::fs::read_to_string(RunLayout::new(root).stages_csv()) else { return };
    for line in text.lines().skip(1) {
        let mut parts = line.splitn(3, ',');
        let (Some(name), Some(secs), Some(what)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let Ok(secs) = secs.parse::<f64>() else { continue };
        for s in stages.iter_mut() {
            if s.name == name && s.what.starts_with("complete") {
                let what = what.trim_matches('"');
                if !what.starts_with("complete") {
                    let earlier = what.split(" [computed earlier").next().unwrap_or(what);
                    s.what = format!("{earlier} [computed earlier; now found complete]");
                    s.seconds = secs;
                }
            }
        }
    }
}

fn write_stages(root: &Path, stages: &[Stage], total: f64) -> Result<()> {
    let mut csv = String::from("stage,seconds,what\n");
    for s in stages {
        let _ = writeln!(csv, "{},{:.3},\"{}\"", s.name, s.seconds, s.what.replace('"', "'"));
    }
    let _ = writeln!(csv, "total,{total:.3},");
    adni_data::fsutil::write_bytes_atomically(&RunLayout::new(root).stages_csv(), csv.as_bytes())?;
    Ok(())
}

/// Checks that every file the reproduction promises exists and is non-empty; the error lists the
/// missing ones. Returns the number of files checked.
pub fn verify_outputs(cfg: &ProjectConfig, root: &Path) -> Result<usize> {
    let top = RunLayout::new("");
    let mut expected: Vec<PathBuf> =
        vec![top.report_md(), PathBuf::from(report::html::REPORT_FILE), top.stages_csv(), top.resolved_config()];
    // REPORT.html's viewer: NiiVue, the glue, the template and atlas, a data file per map.
    let viewer = Path::new(report::html::VIEWER_DIR);
    for f in ["index.html", "viewer.json", "niivue.umd.js", "LICENSE-niivue.txt", "viewer.js", "data/anatomy.js"] {
        expected.push(viewer.join(f));
    }
    for run in ["cv", "holdout"] {
        let layout = RunLayout::new(run);
        expected.extend([
            layout.summary_csv(),
            layout.summary_md(),
            layout.metrics_epochs(),
            layout.metrics_folds(),
            layout.predictions(),
        ]);
        let figs = Path::new("report/figures");
        expected.push(figs.join(format!("learning_curves_{run}.png")));
        expected.push(figs.join(format!("roc_{run}.png")));
        let tables = Path::new("report/tables");
        for t in ["summary", "folds"] {
            expected.push(tables.join(format!("classification_{run}_{t}.csv")));
            expected.push(tables.join(format!("classification_{run}_{t}.md")));
        }
    }
    let rel = RunLayout::new("holdout").relevance();
    expected.extend([rel.index(), rel.scans(), rel.timing(), rel.background(), rel.scan_regions(), rel.complete()]);
    let figs = Path::new("report/figures");
    let tables = Path::new("report/tables");
    for m in &cfg.relevance.methods {
        for g in ["AD", "CN", "all"] {
            expected.push(rel.mean_map(m.name(), g));
            expected.push(viewer.join(format!("data/{}_{g}.js", m.name())));
        }
        expected.push(figs.join(format!("slices_{}_AD.png", m.name())));
        expected.push(figs.join(format!("top_regions_{}_AD.png", m.name())));
        expected.push(tables.join(format!("regions_{}_AD.csv", m.name())));
    }
    for f in ["paper_figure_AD.png", "paper_figure_CN.png"] {
        expected.push(figs.join(f));
    }
    if cfg.relevance.methods.len() >= 2 {
        expected.push(figs.join("method_distance_AD.png"));
        expected.push(tables.join("method_comparison_AD.csv"));
    }
    // Linear baselines on the same folds, in every run.
    for t in [crate::baselines_cmd::TABLE, crate::baselines_cmd::SUMMARY] {
        expected.push(tables.join(format!("{t}.csv")));
        expected.push(tables.join(format!("{t}.md")));
    }
    for t in ["regions", "patients", "relevance_timing"] {
        expected.push(tables.join(format!("{t}.csv")));
        expected.push(tables.join(format!("{t}.md")));
    }
    // Synthetic cohorts have a ground truth, unless nothing was planted (effect size 0: every
    // atrophy map is empty, so no scan is scored). A user's own table has none, whatever the
    // synthetic cohort's folder holds (the same test as the stage that writes the scores).
    if crate::inputs::ground_truth_of(cfg)?.is_some() && cfg.synth.params.effect_size > 0.0 {
        expected.push(rel.ground_truth());
        expected.push(figs.join("ground_truth.png"));
        expected.push(tables.join("ground_truth_summary.csv"));
        expected.push(tables.join("ground_truth_verdict.csv"));
    }
    // The sanity checks (`[sanity]`), each part where it is switched on.
    let sanity = &cfg.sanity;
    let sdir = RunLayout::new("holdout").sanity();
    let mut sanity_tables: Vec<&str> = Vec::new();
    if sanity.cascade {
        expected.push(sdir.file(crate::sanity_cmd::CASCADE_FILE));
        expected.push(figs.join("sanity_cascade.png"));
        sanity_tables.push("sanity_cascade");
    }
    if sanity.data_randomisation {
        expected.push(sdir.file(crate::sanity_cmd::DATA_RANDOMISATION_FILE));
        expected.push(sdir.file(crate::sanity_cmd::SHUFFLED_MODEL_FILE));
        sanity_tables.extend(["sanity_data_randomisation", "sanity_shuffled_model"]);
    }
    if sanity.faithfulness {
        expected.push(sdir.file(crate::sanity_cmd::DELETION_FILE));
        expected.push(sdir.file(crate::sanity_cmd::AOPC_FILE));
        expected.push(figs.join("deletion_voxels.png"));
        expected.push(figs.join("deletion_regions.png"));
        sanity_tables.push("faithfulness_aopc");
    }
    if !sanity_tables.is_empty() {
        sanity_tables.push("trust_summary");
        expected.push(sdir.complete());
    }
    for t in sanity_tables {
        expected.push(tables.join(format!("{t}.csv")));
        expected.push(tables.join(format!("{t}.md")));
    }
    let missing: Vec<String> = expected
        .iter()
        .filter(|p| std::fs::metadata(root.join(p)).map_or(true, |m| m.len() == 0))
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "reproduce-paper finished but {} expected file(s) are missing or empty in {}: {}",
            missing.len(),
            root.display(),
            missing.join(", ")
        );
    }
    Ok(expected.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timing_tables_seconds_are_summed_by_column_name() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("timing.csv");
        std::fs::write(
            &p,
            "method,model,scans,seconds,seconds_per_scan\nlrp,trained,4,1.5,0.375\nlrp,random,2,0.25,0.125\n",
        )
        .unwrap();
        assert_eq!(sum_seconds(&p), Some(1.75));
        std::fs::write(&p, "split,epoch,seconds\nfold1,1,2\nfold1,2,x\n").unwrap();
        assert_eq!(sum_seconds(&p), None, "a value that is not a number");
        std::fs::write(&p, "split,epoch\nfold1,1\n").unwrap();
        assert_eq!(sum_seconds(&p), None, "no seconds column");
        assert_eq!(sum_seconds(&tmp.path().join("missing.csv")), None);
    }
}
