//! `cargo xtask report`: tables and figures of a reproduction folder (or of one trained run with
//! its relevance maps), and the `REPORT.md` of `reproduce-paper`.
//!
//! Inputs: `<root>/cv/` and `<root>/holdout/` (training runs; either may be missing),
//! `<root>/holdout/relevance/` (`cargo xtask interpret`) and `<root>/holdout/sanity/` (`cargo xtask
//! sanity`: randomisation cascade, shuffled-label model, deletion curves; each file optional).
//! Outputs: `<root>/report/tables/*.{csv,md}`, `<root>/report/figures/*.png`, the NiiVue viewer of
//! the mean maps in `<root>/report/viewer/` and `<root>/REPORT.html` (from `REPORT.md`, see
//! [`report::html`]). The linear baselines on the same splits (`crate::baselines_cmd`) are part of
//! every report.
//!
//! This file finds the inputs (config, atlases, the runner's file names) and hands them to the
//! `report` crate, which owns each part: [`report::classification::write_classification`],
//! [`report::relevance_report::write_relevance`], [`report::sanity_report::write_sanity`] and
//! [`report::report_md`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use adni_data::run_layout::{RelevanceLayout, RunLayout};
use report::ground_truth::Bootstrap;
use report::interpretation::read_index;
use report::relevance_report::{RelevanceInputs, read_map, write_relevance};
use report::report_md::{Flatten, Recipe, RelevanceSetup, ReportContext, RunnerSections, TrainingSetup};
use report::sanity_report::{find_sanity, write_sanity};

use crate::config::{ProjectConfig, workspace_root};
use crate::relevance_config::{AtlasName, Method, name_of};

/// Arguments of `cargo xtask report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A reproduction folder (`results/<run>` with `cv/`, `holdout/`) or a trained run whose
    /// `relevance/` was computed
    #[arg(long)]
    pub run: PathBuf,
}

/// `cargo xtask report`.
pub fn report(args: &ReportArgs) -> Result<()> {
    let root = if args.run.is_dir() { args.run.clone() } else { workspace_root().join(&args.run) };
    let cfg_path = RunLayout::new(&root).resolved_config();
    let cfg = ProjectConfig::load(&cfg_path)
        .with_context(|| format!("{} is not a results folder (no readable resolved_config.toml)", root.display()))?;
    let _lock = crate::commands::lock_folder(&root)?;
    let written = write_report(&cfg, &root)?;
    eprintln!("report: {} files in {}", written.len(), root.join("report").display());
    // A reproduction's REPORT.md quotes these tables: written again with them (and its stage
    // table as `stages.csv` recorded it), so that the report never shows numbers the tables
    // no longer hold; it writes REPORT.html too.
    if RunLayout::new(&root).report_md().is_file()
        && let Some(stages) = crate::reproduce_cmd::saved_stages_markdown(&root)
    {
        write_report_md(&cfg, &cfg_path, &root, &stages)?;
        eprintln!("report: {} and REPORT.html written again", RunLayout::new(&root).report_md().display());
        return Ok(());
    }
    // REPORT.html from the folder's REPORT.md, else from a short one written here.
    let md = match std::fs::read_to_string(RunLayout::new(&root).report_md()) {
        Ok(text) => text,
        Err(_) => format!(
            "# Report — `{}`\n\nWritten by `cargo xtask report` on {}.\n\n{}",
            cfg.run.name,
            today(),
            report::report_md::figures_and_tables_markdown(&root)
        ),
    };
    let html = report::html::write_report_html(&root, &md).context("writing REPORT.html")?;
    eprintln!("report: {}", html.display());
    Ok(())
}

/// Where the relevance maps of a results folder are: `holdout/relevance` of a reproduction, or
/// `relevance` of a single run.
fn relevance_layout(root: &Path) -> Option<RelevanceLayout> {
    [RunLayout::new(root.join("holdout")).relevance(), RunLayout::new(root).relevance()]
        .into_iter()
        .find(|r| r.index().exists())
}

/// The resampling of the ground-truth intervals: `[train] bootstrap_samples` resamples of
/// patients (`PTID`), seeded by `[relevance] seed`.
fn ground_truth_bootstrap(cfg: &ProjectConfig) -> Bootstrap {
    Bootstrap { samples: cfg.train.bootstrap_samples, seed: cfg.relevance.seed, cluster: Some("PTID".into()) }
}

/// Writes every table and figure; returns the files written.
pub fn write_report(cfg: &ProjectConfig, root: &Path) -> Result<Vec<PathBuf>> {
    let out = root.join("report");
    let (tables, figs) = (out.join("tables"), out.join("figures"));
    let mut written: Vec<PathBuf> = Vec::new();
    report::classification::write_classification(root, &tables, &figs, &mut written)?;

    // Linear baselines on the same folds (ceiling and shortcut checks); a failure is reported
    // and leaves the rest of the report alone (`REPORT.md` then says they are missing).
    match crate::baselines_cmd::write_baselines(cfg, root, &tables) {
        Ok(files) => written.extend(files),
        Err(e) => eprintln!("report: no baselines ({e:#})"),
    }

    let gt_summary = match relevance_layout(root) {
        Some(layout) => write_relevance_part(cfg, root, &layout, &tables, &figs, &mut written)?,
        None => {
            eprintln!(
                "report: no relevance maps under {} (run `cargo xtask interpret`); classification only",
                root.display()
            );
            None
        }
    };
    if let Some(sanity) = find_sanity(root) {
        let boot = ground_truth_bootstrap(cfg);
        write_sanity(&sanity, &boot, gt_summary.as_ref(), &tables, &figs, &mut written)?;
    }
    Ok(written)
}

/// The relevance part: the maps of `layout` on the template's grid, the config's atlas (and AAL,
/// the paper's atlas, whenever it was fetched and is not the main atlas); returns the
/// ground-truth summary.
fn write_relevance_part(
    cfg: &ProjectConfig,
    root: &Path,
    layout: &RelevanceLayout,
    tables: &Path,
    figs: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<Option<polars::prelude::DataFrame>> {
    let index = read_index(layout)?;
    let (background, grid) = read_map(&layout.background())?;
    let atlas = crate::inputs::load_atlas(cfg, &grid)
        .map_err(|e| eprintln!("report: no atlas, so no region tables ({e:#})"))
        .ok();
    let aal = if matches!(cfg.relevance.atlas, AtlasName::Aal | AtlasName::Synth) {
        None
    } else {
        let mut aal_cfg = cfg.clone();
        aal_cfg.relevance.atlas = AtlasName::Aal;
        crate::inputs::load_atlas(&aal_cfg, &grid).map_err(|e| eprintln!("report: no AAL tables ({e:#})")).ok()
    };
    let methods: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
    let inputs = RelevanceInputs {
        layout,
        index: &index,
        methods: &methods,
        background: background.view(),
        grid: &grid,
        atlas: atlas.as_ref(),
        aal: aal.as_ref(),
        bootstrap: &ground_truth_bootstrap(cfg),
    };
    Ok(write_relevance(&inputs, root, tables, figs, written)?)
}

/// What `REPORT.md` quotes from `cfg` and this machine.
pub fn report_context(cfg: &ProjectConfig, config_path: &Path) -> ReportContext {
    let paper_net = model::NetworkConfig::default();
    let paper_train = model::train::TrainConfig::default();
    let (t, r) = (&cfg.train, &cfg.relevance);
    let net_rest = model::NetworkConfig { dropout: paper_net.dropout, ..cfg.model.clone() };
    let recipe = |t: &model::train::TrainConfig, dropout: f64, epochs: (usize, usize)| Recipe {
        dropout,
        learning_rate: t.learning_rate,
        weight_decay: t.weight_decay,
        augment_flip: t.augment_flip,
        augment_shift: t.augment_shift,
        cv_epochs: epochs.0,
        holdout_epochs: epochs.1,
    };
    ReportContext {
        run_name: cfg.run.name.clone(),
        config_path: config_path.strip_prefix(workspace_root()).unwrap_or(config_path).display().to_string(),
        written_on: today(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: git_commit(),
        rustc: command_line("rustc", &["--version"]).unwrap_or_else(|| "rustc: unknown".into()),
        workspace_root: workspace_root().to_path_buf(),
        cohort_dir: cfg.synth.out_dir.clone(),
        cohort: cfg.synth.params.clone(),
        own_table: (!crate::inputs::uses_synthetic_cohort(cfg)).then(|| cfg.data.table.clone()),
        mask: cfg.preprocess.mask.clone(),
        downsample: cfg.preprocess.downsample,
        folds: cfg.split.k,
        holdout: (cfg.split.holdout_ad, cfg.split.holdout_cn),
        training: TrainingSetup {
            used: recipe(
                t,
                cfg.model.dropout,
                (
                    crate::reproduce_cmd::stage_epochs(cfg, model::train::TrainMode::Kfold),
                    crate::reproduce_cmd::stage_epochs(cfg, model::train::TrainMode::Holdout),
                ),
            ),
            paper: recipe(&paper_train, paper_net.dropout, (paper_train.epochs, paper_train.epochs)),
            // Dropout has its own line; the network is named when anything else differs.
            network: (net_rest != paper_net).then(|| cfg.model.layer_differences(&paper_net, "the paper").join("; ")),
        },
        relevance: RelevanceSetup {
            atlas: r.atlas.name().to_string(),
            placement: r.placement,
            occlusion_size: r.occlusion.size,
            occlusion_stride: r.occlusion.stride,
            occlusion_spread: name_of(&r.occlusion.spread),
            occlusion_mode: name_of(&r.occlusion.mode),
            scans_per_ad_patient: r.scans_per_patient_of(true),
            scans_per_cn_patient: r.scans_per_patient_of(false),
            lrp_rule: r.lrp.rule.name().to_string(),
            output: name_of(&r.output),
            ground_truth_fraction: r.ground_truth_fraction,
        },
        bootstrap: ground_truth_bootstrap(cfg),
        sweep_dir: crate::sweep_cmd::default_out(cfg),
        trained_flatten: None,
    }
}

/// Writes `<root>/REPORT.md` (and `REPORT.html`) of a reproduction; `stages_md` is its stage table.
pub fn write_report_md(cfg: &ProjectConfig, config_path: &Path, root: &Path, stages_md: &str) -> Result<()> {
    let baselines = crate::baselines_cmd::baselines_markdown(root);
    let sanity = find_sanity(root);
    let runner = RunnerSections { stages: stages_md, baselines: &baselines, sanity: sanity.as_ref() };
    let ctx = ReportContext { trained_flatten: trained_flatten(root), ..report_context(cfg, config_path) };
    report::report_md::write_report_md(&ctx, root, &runner)?;
    Ok(())
}

/// The flatten of the network described by a fold's `network.json`, as
/// [`model::NetworkConfig::flatten_size`] computes it; `None` when the file is missing,
/// unreadable, or its network does not fit its grid.
fn flatten_of(network_json: &Path) -> Option<Flatten> {
    let text = std::fs::read_to_string(network_json).ok()?;
    let record: model::train::NetworkRecord = serde_json::from_str(&text).ok()?;
    let width = record.network.flatten_size(record.input_grid).ok()?;
    (width > 0).then_some(Flatten { width, grid: record.input_grid })
}

/// The flatten of the network a reproduction at `root` trained: its hold-out model's, else its
/// first cross-validation fold's (in name order).
fn trained_flatten(root: &Path) -> Option<Flatten> {
    let holdout = RunLayout::new(root.join("holdout")).fold("holdout").network();
    flatten_of(&holdout).or_else(|| {
        let cv = RunLayout::new(root.join("cv"));
        let mut folds: Vec<PathBuf> = std::fs::read_dir(cv.folds_dir())
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        folds.sort();
        folds.iter().find_map(|d| flatten_of(&adni_data::run_layout::FoldLayout::new(d).network()))
    })
}

fn command_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn git_commit() -> String {
    command_line("git", &["-C", &workspace_root().display().to_string(), "rev-parse", "--short", "HEAD"])
        .unwrap_or_else(|| "unknown".into())
}

fn today() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(now)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(|| "unknown date".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paper_recipe_has_no_training_differences() {
        let mut cfg = ProjectConfig::default();
        let ctx = report_context(&cfg, Path::new("configs/x.toml"));
        assert_eq!(ctx.training.used.dropout, cfg.model.dropout);
        assert_eq!(ctx.relevance.lrp_rule, cfg.relevance.lrp.rule.name());
        assert_eq!(ctx.config_path, "configs/x.toml");
        let paper = model::train::TrainConfig::default();
        cfg.model = model::NetworkConfig::default();
        cfg.train.learning_rate = paper.learning_rate;
        cfg.train.weight_decay = paper.weight_decay;
        cfg.train.augment_flip = false;
        cfg.train.augment_shift = 0;
        cfg.reproduce.cv_epochs = paper.epochs;
        cfg.reproduce.holdout_epochs = paper.epochs;
        let ctx = report_context(&cfg, Path::new("configs/x.toml"));
        let d = report::report_md::training_differences(1.0, &ctx.training, None);
        assert!(d.is_empty(), "{d:?}");
        cfg.model.dropout = 0.1;
        let ctx = report_context(&cfg, Path::new("configs/x.toml"));
        let d = report::report_md::training_differences(1.0, &ctx.training, None);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].starts_with("Dropout 0.1 on the flatten"), "{d:?}");
    }

    #[test]
    fn the_trained_flatten_comes_from_the_fold_network_json() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        assert_eq!(trained_flatten(root), None);
        let record = |network: model::NetworkConfig, input_grid: [usize; 3]| {
            serde_json::to_string(&model::train::NetworkRecord { network, input_grid }).unwrap()
        };
        // the quick run's network on 40×48×40: 4 channels × 4×6×4 voxels after the blocks
        let quick = model::NetworkConfig {
            channels: [4, 4, 4, 4],
            pools: [2, 2, 1, 1],
            kernel: 3,
            ..model::NetworkConfig::default()
        };
        let fold = RunLayout::new(root.join("cv")).fold("fold2");
        std::fs::create_dir_all(fold.dir()).unwrap();
        std::fs::write(fold.network(), record(quick.clone(), [40, 48, 40])).unwrap();
        assert_eq!(trained_flatten(root), Some(Flatten { width: 4 * 4 * 6 * 4, grid: [40, 48, 40] }));
        // the hold-out model first; the paper's network at 2 mm: 128 (the model crate's value)
        let holdout = RunLayout::new(root.join("holdout")).fold("holdout");
        std::fs::create_dir_all(holdout.dir()).unwrap();
        std::fs::write(holdout.network(), record(model::NetworkConfig::default(), [97, 115, 97])).unwrap();
        assert_eq!(trained_flatten(root).unwrap().width, 128);
        std::fs::write(holdout.network(), "{not json").unwrap();
        assert_eq!(trained_flatten(root).unwrap().width, 96 * 4, "an unreadable hold-out record falls back");
    }

    #[test]
    fn epochs_left_to_the_train_section_are_reported_as_trained() {
        // `[reproduce] cv_epochs = 0` (no [reproduce] section) means `[train] epochs`, as the
        // stages run it; the report must not say 0.
        let mut cfg = ProjectConfig::default();
        cfg.reproduce.cv_epochs = 0;
        cfg.reproduce.holdout_epochs = 0;
        cfg.train.epochs = 3;
        cfg.model.dropout = 0.5;
        cfg.model.channels[0] = 4;
        let ctx = report_context(&cfg, Path::new("configs/x.toml"));
        assert_eq!((ctx.training.used.cv_epochs, ctx.training.used.holdout_epochs), (3, 3));
        // the network line names the layers that differ, in words (dropout has its own line)
        let network = ctx.training.network.expect("the network differs");
        assert_eq!(network, "channels 4, 16, 32, 64 (the paper: 8, 16, 32, 64)");
    }

    #[test]
    fn sanity_files_are_the_runners() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(find_sanity(tmp.path()).is_none());
        let sanity = RunLayout::new(tmp.path().join("holdout")).sanity();
        std::fs::create_dir_all(sanity.dir()).unwrap();
        std::fs::write(sanity.file(adni_data::run_layout::CASCADE_FILE), "").unwrap();
        assert_eq!(find_sanity(tmp.path()), Some(sanity));
    }
}
