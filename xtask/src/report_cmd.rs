//! `cargo xtask report`: tables and figures of a reproduction folder (or of one trained run with
//! its relevance maps), and the `REPORT.md` of `reproduce-paper`.
//!
//! Inputs: `<root>/cv/` and `<root>/holdout/` (training runs; either may be missing) and
//! `<root>/holdout/relevance/` (`cargo xtask interpret`). Outputs: `<root>/report/tables/*.{csv,md}`
//! and `<root>/report/figures/*.png`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use ndarray::{Array3, ArrayView3};
use polars::prelude::*;

use adni_data::Grid;
use adni_data::volume::read_volume;
use report::figures::{self, OverlayScale};
use report::tables::{column_str, read_csv, stack_with_keys, write_table};

use crate::config::ProjectConfig;
use crate::relevance_config::Method;

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
    let root = if args.run.is_dir() { args.run.clone() } else { crate::config::workspace_root().join(&args.run) };
    let cfg_path = root.join("resolved_config.toml");
    let cfg = ProjectConfig::load(&cfg_path)
        .with_context(|| format!("{} is not a results folder (no readable resolved_config.toml)", root.display()))?;
    let written = write_report(&cfg, &root)?;
    eprintln!("report: {} files in {}", written.len(), root.join("report").display());
    Ok(())
}

/// Where the relevance maps of a results folder are: `holdout/relevance` of a reproduction, or
/// `relevance` of a single run.
fn relevance_dir(root: &Path) -> Option<PathBuf> {
    [root.join("holdout").join("relevance"), root.join("relevance")].into_iter().find(|d| d.join("index.csv").exists())
}

fn read_map(path: &Path) -> Result<(Array3<f32>, Grid)> {
    let (vol, _, _) = read_volume(path)?;
    let grid = vol.grid();
    Ok((vol.data, grid))
}

/// Writes every table and figure; returns the files written.
pub fn write_report(cfg: &ProjectConfig, root: &Path) -> Result<Vec<PathBuf>> {
    let out = root.join("report");
    let tables = out.join("tables");
    let figs = out.join("figures");
    let mut written: Vec<PathBuf> = Vec::new();
    let table = |df: &DataFrame, stem: &str, written: &mut Vec<PathBuf>| -> Result<()> {
        let (csv, md) = write_table(df, &tables, stem).with_context(|| format!("table {stem}"))?;
        written.push(csv);
        written.push(md);
        Ok(())
    };

    // Classification: every training run present.
    for (name, dir) in [("cv", root.join("cv")), ("holdout", root.join("holdout")), ("run", root.to_path_buf())] {
        if !dir.join("summary.csv").exists() {
            continue;
        }
        let run = report::classification::read_run(&dir)?;
        table(&run.summary, &format!("classification_{name}_summary"), &mut written)?;
        table(&run.folds, &format!("classification_{name}_folds"), &mut written)?;
        let p = figs.join(format!("learning_curves_{name}.png"));
        figures::learning_curves(&with_kept_epoch(&run.epochs, &run.folds)?, (1200, 800), &p)?;
        written.push(p);
        let p = figs.join(format!("roc_{name}.png"));
        figures::roc_curves(&run.predictions, (900, 800), &p)?;
        written.push(p);
    }

    let Some(rel) = relevance_dir(root) else {
        eprintln!(
            "report: no relevance maps under {} (run `cargo xtask interpret`); classification only",
            root.display()
        );
        return Ok(written);
    };
    let index = read_csv(&rel.join("index.csv"))?;
    let methods_in_index = column_str(&index, "index.csv", "method")?;
    let groups = column_str(&index, "index.csv", "group")?;
    let files = column_str(&index, "index.csv", "file")?;
    // Methods in the canonical order.
    let methods: Vec<Method> =
        Method::ALL.into_iter().filter(|m| methods_in_index.iter().any(|n| n == m.name())).collect();
    let file_of = |method: Method, group: &str| -> Option<PathBuf> {
        (0..files.len())
            .find(|&i| methods_in_index[i] == method.name() && groups[i] == group)
            .map(|i| rel.join(&files[i]))
    };
    let (background, grid) = read_map(&rel.join("background.nii.gz"))?;
    let atlas = match crate::interpret_cmd::load_atlas(cfg, &grid) {
        Ok(a) => Some(a),
        Err(e) => {
            eprintln!("report: no atlas, so no region tables ({e:#})");
            None
        }
    };

    // Mean maps per group, region tables per method and group.
    let mut maps: Vec<(Method, &'static str, Array3<f32>)> = Vec::new();
    for &m in &methods {
        for g in ["AD", "CN", "all"] {
            if let Some(path) = file_of(m, g) {
                let (data, map_grid) = read_map(&path)?;
                if map_grid.shape != grid.shape {
                    bail!(
                        "{}: grid {:?} differs from the background's {:?}",
                        path.display(),
                        map_grid.shape,
                        grid.shape
                    );
                }
                maps.push((m, g, data));
            }
        }
    }
    let map_of = |m: Method, g: &str| maps.iter().find(|(mm, gg, _)| *mm == m && *gg == g).map(|(_, _, a)| a.view());
    let mut region_parts: Vec<(Vec<(&str, String)>, DataFrame)> = Vec::new();
    let mut ad_region_tables: Vec<(String, DataFrame)> = Vec::new();
    if let Some(atlas) = &atlas {
        for (m, g, data) in &maps {
            let df = report::regions::region_scores(data.view(), atlas, true)?;
            if *g == "AD" {
                ad_region_tables.push((m.name().to_string(), df.clone()));
                let p = figs.join(format!("top_regions_{}_AD.png", m.name()));
                figures::bar_chart_top_regions(
                    &df,
                    15,
                    &format!("{} · AD average · top 15 regions ({})", m.name(), atlas.name),
                    (1100, 800),
                    &p,
                )?;
                written.push(p);
            }
            region_parts.push((vec![("method", m.name().to_string()), ("group", g.to_string())], df));
        }
        if !region_parts.is_empty() {
            table(&stack_with_keys(&region_parts)?, "regions", &mut written)?;
            // The paper's view: one ranked table per method for the AD average.
            for (name, df) in &ad_region_tables {
                table(df, &format!("regions_{name}_AD"), &mut written)?;
            }
        }
    }
    // The paper's atlas, AAL (62 regions after merging), as well whenever it was fetched and is
    // not the main atlas already.
    if cfg.relevance.atlas != "aal" && cfg.relevance.atlas != "synth" {
        let mut aal_cfg = cfg.clone();
        aal_cfg.relevance.atlas = "aal".into();
        match crate::interpret_cmd::load_atlas(&aal_cfg, &grid) {
            Ok(aal) => {
                let mut parts: Vec<(Vec<(&str, String)>, DataFrame)> = Vec::new();
                for (m, g, data) in &maps {
                    let df = report::regions::region_scores(data.view(), &aal, true)?;
                    if *g == "AD" {
                        table(&df, &format!("regions_{}_AD_aal", m.name()), &mut written)?;
                    }
                    parts.push((vec![("method", m.name().to_string()), ("group", g.to_string())], df));
                }
                if !parts.is_empty() {
                    table(&stack_with_keys(&parts)?, "regions_aal", &mut written)?;
                }
            }
            Err(e) => eprintln!("report: no AAL tables ({e:#})"),
        }
    }

    // Method comparison on the AD averages (the paper compared the AD heatmaps).
    let ad_maps: Vec<(String, ArrayView3<f32>)> =
        methods.iter().filter_map(|&m| map_of(m, "AD").map(|v| (m.name().to_string(), v))).collect();
    if ad_maps.len() >= 2 {
        let cmp = report::compare::method_comparison(&ad_maps, &ad_region_tables)?;
        table(&cmp, "method_comparison_AD", &mut written)?;
        let p = figs.join("method_distance_AD.png");
        figures::distance_matrix(&cmp, (1000, 900), &p)?;
        written.push(p);
    }

    // The paper's figure, AD and CN on one colour scale per method; plot_slices per method.
    // The paper's planes (y = 80, 114, 149 at 1 mm, by world coordinates); on a grid that does not
    // hold them (e.g. the phantom), the quartiles of the coronal axis.
    let slices = figures::paper_coronal_slices(&grid).unwrap_or_else(|_| {
        let ny = grid.shape[1];
        vec![ny / 4, ny / 2, 3 * ny / 4]
    });
    let scale: Vec<f32> = methods
        .iter()
        .map(|&m| {
            ["AD", "CN"]
                .iter()
                .filter_map(|g| map_of(m, g).and_then(|v| figures::overlay_max(v, 99.9)))
                .fold(0.0f32, f32::max)
        })
        .collect();
    for g in ["AD", "CN"] {
        let group_maps: Vec<(String, ArrayView3<f32>)> =
            methods.iter().filter_map(|&m| map_of(m, g).map(|v| (m.name().to_string(), v))).collect();
        if group_maps.len() != methods.len() || group_maps.is_empty() {
            continue;
        }
        let p = figs.join(format!("paper_figure_{g}.png"));
        let width = 260 * group_maps.len() as u32 + 120;
        figures::paper_figure(
            background.view(),
            &group_maps,
            &slices,
            &format!("{g} average of the hold-out test scans · coronal slices {slices:?} (voxels)"),
            &OverlayScale::Fixed(scale.clone()),
            (width.max(900), 900),
            &p,
        )?;
        written.push(p);
    }
    for &m in &methods {
        if let Some(v) = map_of(m, "AD") {
            let p = figs.join(format!("slices_{}_AD.png", m.name()));
            figures::plot_slices(
                background.view(),
                v,
                6,
                99.9,
                &format!("{} · AD average", m.name()),
                (1400, 800),
                &p,
            )?;
            written.push(p);
        }
    }

    // Per patient: top regions and the temporal-lobe share, from the per-scan region scores.
    let scan_regions = rel.join("scan_regions.csv");
    if scan_regions.exists() {
        let df = read_csv(&scan_regions)?;
        let per_scan = per_scan_patient_table(&df)?;
        table(&per_scan, "patients", &mut written)?;
    }

    // Ground truth (synthetic cohorts).
    let gt = rel.join("ground_truth.csv");
    if gt.exists() {
        let df = read_csv(&gt)?;
        table(&df, "ground_truth_per_scan", &mut written)?;
        let summary = report::ground_truth::summarise(&df, &["method", "model"])?;
        table(&summary, "ground_truth_summary", &mut written)?;
        let p = figs.join("ground_truth.png");
        figures::ground_truth_chart(&summary, (1200, 800), &p)?;
        written.push(p);
    }
    let timing = rel.join("timing.csv");
    if timing.exists() {
        table(&read_csv(&timing)?, "relevance_timing", &mut written)?;
    }
    Ok(written)
}

/// The epochs table with each fold's kept epoch (from the folds table) as a `kept_epoch` column,
/// so the learning curves mark the right epoch also with `keep = "best"`.
fn with_kept_epoch(epochs: &DataFrame, folds: &DataFrame) -> Result<DataFrame> {
    let fold_split = column_str(folds, "metrics_folds.csv", "split")?;
    let kept = column_str(folds, "metrics_folds.csv", "kept_epoch")?;
    let split = column_str(epochs, "metrics_epochs.csv", "split")?;
    let values: Vec<Option<i64>> = split
        .iter()
        .map(|s| fold_split.iter().position(|f| f == s).and_then(|i| kept[i].trim().parse::<i64>().ok()))
        .collect();
    let mut out = epochs.clone();
    if out.column("kept_epoch").is_err() {
        out.with_column(Column::new("kept_epoch".into(), values))?;
    }
    Ok(out)
}

/// One row per (method, scan) of `scan_regions.csv`: the scan's top-5 regions and its share of
/// relevance in the temporal lobe.
fn per_scan_patient_table(df: &DataFrame) -> Result<DataFrame> {
    let keys = ["method", "PTID", "Image.ID", "label"];
    let cols: Vec<Vec<String>> =
        keys.iter().map(|k| column_str(df, "scan_regions.csv", k)).collect::<report::Result<_>>()?;
    let mut order: Vec<Vec<String>> = Vec::new();
    let mut rows_of: std::collections::HashMap<Vec<String>, Vec<u32>> = Default::default();
    for i in 0..df.height() {
        let key: Vec<String> = cols.iter().map(|c| c[i].clone()).collect();
        let e = rows_of.entry(key.clone()).or_default();
        if e.is_empty() {
            order.push(key);
        }
        e.push(i as u32);
    }
    let mut tables = Vec::with_capacity(order.len());
    for key in &order {
        let idx = IdxCa::from_vec("idx".into(), rows_of[key].clone());
        tables.push(df.take(&idx)?);
    }
    let key_cols: Vec<Column> = keys
        .iter()
        .enumerate()
        .map(|(j, k)| Column::new((*k).into(), order.iter().map(|r| r[j].clone()).collect::<Vec<String>>()))
        .collect();
    let key_df = DataFrame::new(order.len(), key_cols)?;
    Ok(report::patients::patient_table(&key_df, &tables, 5)?)
}

/// Writes `<root>/REPORT.md`.
pub fn write_report_md(cfg: &ProjectConfig, config_path: &Path, root: &Path, stages_md: &str) -> Result<()> {
    let mut md = String::new();
    let rel_link = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let _ = writeln!(md, "# Reproduction of Rieke et al. 2018 — `{}`\n", cfg.run.name);
    let _ = writeln!(
        md,
        "Written by `cargo xtask reproduce-paper` on {} from `{}` (resolved: [resolved_config.toml](resolved_config.toml)).\n",
        today(),
        config_path.strip_prefix(crate::config::workspace_root()).unwrap_or(config_path).display()
    );
    let _ = writeln!(md, "## Versions\n");
    let _ = writeln!(md, "- adni-relevance {} (git {})", env!("CARGO_PKG_VERSION"), git_commit());
    let _ = writeln!(md, "- burn 0.21.0 (CPU: Flex), polars 0.55, nifti 0.18, plotters 0.3");
    let _ = writeln!(md, "- {}\n", command_line("rustc", &["--version"]).unwrap_or_else(|| "rustc: unknown".into()));

    let _ = writeln!(md, "## Data\n");
    let s = &cfg.synth.params;
    let _ = writeln!(
        md,
        "- Synthetic ADNI-like cohort in `{}`: {:?} anatomy, {} CN / {} AD / {} MCI patients, seed {}, effect size {} \
         (atrophy planted in the medial temporal lobe; ground truth per scan).",
        cfg.synth.out_dir.display(),
        s.anatomy,
        s.n_cn,
        s.n_ad,
        s.n_mci,
        s.seed,
        s.effect_size
    );
    let cohort_csv = root.join("data").join("cohort").join("cohort_report.csv");
    if let Ok(text) = read_csv(&cohort_csv).and_then(|df| report::tables::to_markdown(&df)) {
        let _ = writeln!(
            md,
            "\nCohort filters, in the study's order ([csv]({})):\n\n{}\n",
            rel_link(&cohort_csv),
            text.trim_end()
        );
    }
    let _ = writeln!(
        md,
        "- Preprocessing: brain mask `{}`, downsampling ×{} (1 = the study's 1 mm grid), z-score fitted per fold on its training scans.\n",
        cfg.preprocess.mask, cfg.preprocess.downsample
    );

    let _ = writeln!(md, "## Timings (this machine)\n\n{stages_md}");

    let _ = writeln!(md, "## Classification\n");
    for (name, what) in [
        ("cv", format!("{}-fold cross-validation over patients", cfg.split.k)),
        ("holdout", "hold-out split (the model of the heatmaps)".into()),
    ] {
        let summary = root.join(name).join("summary.md");
        if let Ok(text) = std::fs::read_to_string(&summary) {
            // Demote the summary's own headings below this section's.
            let text: Vec<String> =
                text.lines().map(|l| if l.starts_with('#') { format!("###{l}") } else { l.to_string() }).collect();
            let _ = writeln!(md, "### {what}\n\n{}\n", text.join("\n").trim_end());
        }
    }

    let figs = root.join("report").join("figures");
    let tables = root.join("report").join("tables");
    let _ = writeln!(md, "## Figures\n");
    for f in sorted_files(&figs, "png") {
        let name = f.file_stem().and_then(|s| s.to_str()).unwrap_or("figure").replace('_', " ");
        let _ = writeln!(md, "### {name}\n\n![{name}]({})\n", rel_link(&f));
    }
    let _ = writeln!(md, "## Tables\n");
    for f in sorted_files(&tables, "md") {
        let csv = f.with_extension("csv");
        let _ = writeln!(
            md,
            "- [{}]({}) ([csv]({}))",
            f.file_stem().and_then(|s| s.to_str()).unwrap_or("table"),
            rel_link(&f),
            rel_link(&csv)
        );
    }
    let gt_summary = tables.join("ground_truth_summary.md");
    if let Ok(text) = std::fs::read_to_string(&gt_summary) {
        let _ = writeln!(
            md,
            "\n### Relevance against the planted atrophy (trained vs randomised weights)\n\n{}",
            text.trim_end()
        );
    }
    let _ = writeln!(md, "\n## What differs from the paper\n\n{}", differences(cfg));
    adni_data::fsutil::write_bytes_atomically(&root.join("REPORT.md"), md.as_bytes())?;
    Ok(())
}

/// The differences between this configuration and the study, in words.
fn differences(cfg: &ProjectConfig) -> String {
    let mut d = Vec::new();
    d.push("Data: a synthetic ADNI-like cohort with planted, known atrophy instead of ADNI (access-controlled); cohort size, visits and diagnoses are simulated.".to_string());
    if cfg.preprocess.downsample != 1 {
        d.push(format!(
            "Grid: {} mm (downsampled ×{}) instead of the study's 1 mm, so the network's flatten size and receptive fields in mm differ.",
            cfg.preprocess.downsample, cfg.preprocess.downsample
        ));
    }
    if cfg.model != model::NetworkConfig::default() {
        d.push(format!("Network: {:?} instead of the paper's defaults.", cfg.model));
    }
    if cfg.train.epochs != 20 {
        d.push(format!("Training: {} epochs per model instead of 20 (time budget on a CPU).", cfg.train.epochs));
    }
    d.push(format!(
        "Hold-out: {} AD + {} CN patients (the study: 30 + 30 of 344).",
        cfg.split.holdout_ad, cfg.split.holdout_cn
    ));
    let r = &cfg.relevance;
    d.push(format!(
        "Atlas: {} placed by {} (the study: AAL stretched onto the grid with a zoom; mean Dice 0.63 against correct placement).",
        r.atlas,
        if r.placement == "zoom" { "the paper's zoom" } else { "world coordinates" }
    ));
    d.push(format!(
        "Occlusion: cube {} and stride {} voxels of the model grid, {} spread, {} evaluation (exact).",
        r.occlusion.size, r.occlusion.stride, r.occlusion.spread, r.occlusion.mode
    ));
    if r.scans_per_patient > 0 {
        d.push(format!(
            "Relevance averages use at most {} scan(s) per test patient (the study: all).",
            r.scans_per_patient
        ));
    }
    d.push("Beyond the study: a working 3D Grad-CAM and guided Grad-CAM, integrated gradients, SmoothGrad, ground-truth scores and a randomised-weights baseline.".into());
    d.push(
        "Initialisation: PyTorch ≥ 1.2 defaults (BatchNorm γ = 1; the paper's PyTorch 0.3 drew γ from U(0, 1)).".into(),
    );
    d.iter().map(|s| format!("- {s}")).collect::<Vec<_>>().join("\n")
}

fn sorted_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == ext)).collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn command_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn git_commit() -> String {
    command_line("git", &["-C", &crate::config::workspace_root().display().to_string(), "rev-parse", "--short", "HEAD"])
        .unwrap_or_else(|| "unknown".into())
}

fn today() -> String {
    command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "unknown date".into())
}
