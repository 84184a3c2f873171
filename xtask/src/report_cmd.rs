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

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use ndarray::{Array3, ArrayView3};
use polars::prelude::*;

use adni_data::Grid;
use adni_data::run_layout::{RelevanceLayout, RunLayout};
use adni_data::volume::read_volume;
use report::figures::{self, OverlayScale};
use report::interpretation::read_index;
use report::tables::{column_str, read_csv, stack_with_keys, write_table};

use crate::config::ProjectConfig;
use adni_data::atlas::Placement;

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
    let root = if args.run.is_dir() { args.run.clone() } else { crate::config::workspace_root().join(&args.run) };
    let cfg_path = root.join("resolved_config.toml");
    let cfg = ProjectConfig::load(&cfg_path)
        .with_context(|| format!("{} is not a results folder (no readable resolved_config.toml)", root.display()))?;
    let _lock = crate::commands::lock_folder(&root)?;
    let written = write_report(&cfg, &root)?;
    eprintln!("report: {} files in {}", written.len(), root.join("report").display());
    // REPORT.html from the folder's REPORT.md (a reproduction), else from a short one written here.
    let md = match std::fs::read_to_string(root.join("REPORT.md")) {
        Ok(text) => text,
        Err(_) => format!(
            "# Report — `{}`\n\nWritten by `cargo xtask report` on {}.\n\n{}",
            cfg.run.name,
            today(),
            figures_and_tables_markdown(&root)
        ),
    };
    let html = report::html::write_report_html(&root, &md).context("writing REPORT.html")?;
    eprintln!("report: {}", html.display());
    Ok(())
}

/// Where the relevance maps of a results folder are: `holdout/relevance` of a reproduction, or
/// `relevance` of a single run.
fn relevance_dir(root: &Path) -> Option<PathBuf> {
    [RunLayout::new(root.join("holdout")).relevance(), RunLayout::new(root).relevance()]
        .into_iter()
        .find(|r| r.index().exists())
        .map(|r| r.dir().to_path_buf())
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

    // Linear baselines on the same folds (ceiling and shortcut checks); a failure is reported
    // and leaves the rest of the report alone (`REPORT.md` then says they are missing).
    match crate::baselines_cmd::write_baselines(cfg, root, &tables) {
        Ok(files) => written.extend(files),
        Err(e) => eprintln!("report: no baselines ({e:#})"),
    }

    let Some(rel) = relevance_dir(root) else {
        eprintln!(
            "report: no relevance maps under {} (run `cargo xtask interpret`); classification only",
            root.display()
        );
        write_sanity(cfg, root, None, &tables, &figs, &mut written)?;
        return Ok(written);
    };
    let rel_layout = RelevanceLayout::new(&rel);
    let index = read_index(&rel_layout)?;
    let entry = |method: Method, group: &str| index.iter().find(|r| r.method == method.name() && r.group == group);
    // Methods in the canonical order.
    let methods: Vec<Method> = Method::ALL.into_iter().filter(|m| index.iter().any(|r| r.method == m.name())).collect();
    let file_of = |method: Method, group: &str| -> Option<PathBuf> { entry(method, group).map(|r| rel.join(&r.file)) };
    let (background, grid) = read_map(&rel_layout.background())?;
    let atlas = match crate::inputs::load_atlas(cfg, &grid) {
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

    // The interactive viewer of REPORT.html: the template, the atlas and every mean map.
    let scans_of = |m: Method, g: &str| -> Option<usize> { entry(m, g).map(|r| r.n_scans) };
    let viewer_maps: Vec<report::html::viewer::ViewerMap<'_>> = maps
        .iter()
        .map(|(m, g, data)| report::html::viewer::ViewerMap {
            method: m.name().to_string(),
            group: (*g).to_string(),
            scans: scans_of(*m, g),
            data: data.view(),
        })
        .collect();
    let viewer_dir = root.join(report::html::VIEWER_DIR);
    let viewer =
        report::html::viewer::write_viewer(&viewer_dir, background.view(), &grid.affine, atlas.as_ref(), &viewer_maps)
            .with_context(|| format!("writing the viewer into {}", viewer_dir.display()))?;
    written.extend(report::html::viewer::viewer_files(&viewer).into_iter().map(|f| viewer_dir.join(f)));
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
    if !matches!(cfg.relevance.atlas, AtlasName::Aal | AtlasName::Synth) {
        let mut aal_cfg = cfg.clone();
        aal_cfg.relevance.atlas = AtlasName::Aal;
        match crate::inputs::load_atlas(&aal_cfg, &grid) {
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
    let scan_regions = rel_layout.scan_regions();
    if scan_regions.exists() {
        let df = read_csv(&scan_regions)?;
        let per_scan = per_scan_patient_table(&df)?;
        table(&per_scan, "patients", &mut written)?;
    }

    // Ground truth (synthetic cohorts): the scans with planted atrophy (AD), trained model and
    // randomised-weights baseline.
    let gt = rel_layout.ground_truth();
    let mut gt_summary: Option<DataFrame> = None;
    if gt.exists() {
        let df = read_csv(&gt)?;
        table(&df, "ground_truth_per_scan", &mut written)?;
        let boot = ground_truth_bootstrap(cfg);
        let keys = ["method", "model"];
        let long = report::ground_truth::summarise(&df, &keys, &boot)?;
        table(&long, "ground_truth_metrics", &mut written)?;
        let summary = report::ground_truth::scan_summary(&df, &keys, &boot)?;
        table(&summary, "ground_truth_summary", &mut written)?;
        table(&report::ground_truth::verdicts(&summary)?, "ground_truth_verdict", &mut written)?;
        let p = figs.join("ground_truth.png");
        figures::ground_truth_chart(&long, (1200, 800), &p)?;
        written.push(p);
        gt_summary = Some(summary);
    }
    let conservation = rel_layout.lrp_conservation();
    if conservation.exists() {
        table(&read_csv(&conservation)?, "lrp_conservation", &mut written)?;
    }
    let timing = rel_layout.timing();
    if timing.exists() {
        table(&read_csv(&timing)?, "relevance_timing", &mut written)?;
    }
    write_sanity(cfg, root, gt_summary.as_ref(), &tables, &figs, &mut written)?;
    Ok(written)
}

/// Where the sanity checks of a results folder are: `holdout/sanity` of a reproduction, or
/// `sanity` of a single run; `None` when neither folder holds a file.
fn sanity_dir(root: &Path) -> Option<PathBuf> {
    [root.join("holdout").join("sanity"), root.join("sanity")]
        .into_iter()
        .find(|d| std::fs::read_dir(d).is_ok_and(|mut entries| entries.any(|e| e.is_ok_and(|e| e.path().is_file()))))
}

/// The file of the sanity runner that tells the stage finished (written last).
use adni_data::run_layout::COMPLETE_FILE as SANITY_COMPLETE;

/// `path` read as a table, `None` when it does not exist; errors name the file.
fn read_optional_csv(path: &Path) -> Result<Option<DataFrame>> {
    if !path.is_file() {
        return Ok(None);
    }
    read_csv(path).map(Some).with_context(|| format!("reading {}", path.display()))
}

/// The tables and figures of the sanity and faithfulness checks in `<root>/holdout/sanity/`
/// (nothing when the folder is absent or empty; each part only when its file exists):
/// `sanity_cascade`, `sanity_data_randomisation`, `sanity_shuffled_model`, `faithfulness_deletion`,
/// `faithfulness_aopc`, `sanity_timing` and `trust_summary` (every method's tests side by side,
/// with the ground-truth summary of the report where there is one), and the figures
/// `sanity_cascade.png`, `deletion_voxels.png`, `deletion_regions.png`. Errors name the file.
fn write_sanity(
    cfg: &ProjectConfig,
    root: &Path,
    gt_summary: Option<&DataFrame>,
    tables: &Path,
    figs: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    use report::sanity;
    let Some(dir) = sanity_dir(root) else {
        return Ok(());
    };
    let boot = ground_truth_bootstrap(cfg);
    let mut table = |df: &DataFrame, stem: &str| -> Result<()> {
        let (csv, md) = write_table(df, tables, stem).with_context(|| format!("table {stem}"))?;
        written.push(csv);
        written.push(md);
        Ok(())
    };
    let in_file = |name: &str| format!("summarising {}", dir.join(name).display());
    let mut figures_written: Vec<PathBuf> = Vec::new();

    let cascade = match read_optional_csv(&dir.join("cascade.csv"))? {
        Some(df) => {
            let s = sanity::summarise_cascade(&df, &boot).with_context(|| in_file("cascade.csv"))?;
            table(&s, "sanity_cascade")?;
            let p = figs.join("sanity_cascade.png");
            figures::randomisation_chart(&s, (1500, 650), &p).with_context(|| in_file("cascade.csv"))?;
            figures_written.push(p);
            Some(s)
        }
        None => None,
    };
    let data = match read_optional_csv(&dir.join("data_randomisation.csv"))? {
        Some(df) => {
            let s =
                sanity::summarise_data_randomisation(&df, &boot).with_context(|| in_file("data_randomisation.csv"))?;
            table(&s, "sanity_data_randomisation")?;
            Some(s)
        }
        None => None,
    };
    if let Some(df) = read_optional_csv(&dir.join("shuffled_model.csv"))? {
        let t = sanity::shuffled_model_table(&df).with_context(|| in_file("shuffled_model.csv"))?;
        table(&t, "sanity_shuffled_model")?;
    }
    if let Some(df) = read_optional_csv(&dir.join("deletion.csv"))? {
        let mut parts: Vec<(Vec<(&str, String)>, DataFrame)> = Vec::new();
        for (kind, unit) in
            [(sanity::VOXELS, figures::DeletionUnit::Voxels), (sanity::REGIONS, figures::DeletionUnit::Regions)]
        {
            let s = sanity::summarise_deletion(&df, kind, &boot).with_context(|| in_file("deletion.csv"))?;
            if s.height() == 0 {
                continue;
            }
            let p = figs.join(format!("deletion_{kind}.png"));
            figures::deletion_chart_for(&s, unit, (1100, 700), &p).with_context(|| in_file("deletion.csv"))?;
            figures_written.push(p);
            parts.push((vec![("kind", kind.to_string())], s));
        }
        if !parts.is_empty() {
            table(&stack_with_keys(&parts)?, "faithfulness_deletion")?;
        }
    }
    let aopc = match read_optional_csv(&dir.join("aopc.csv"))? {
        Some(df) => {
            let s = report::faithfulness::summarise_aopc(&df, &["kind", "method", "ordering"], &boot)
                .with_context(|| in_file("aopc.csv"))?;
            table(&s, "faithfulness_aopc")?;
            Some(s)
        }
        None => None,
    };
    if let Some(df) = read_optional_csv(&dir.join("timing.csv"))? {
        // checked here so that REPORT.md can rely on the columns
        report::tables::column_str(&df, "timing.csv", "part")
            .and_then(|_| report::tables::column_f64(&df, "timing.csv", "seconds"))
            .with_context(|| in_file("timing.csv"))?;
        table(&df, "sanity_timing")?;
    }
    if cascade.is_some() || data.is_some() || aopc.is_some() {
        let trust = sanity::trust_table(&sanity::TrustInputs {
            cascade: cascade.as_ref(),
            data_randomisation: data.as_ref(),
            aopc: aopc.as_ref(),
            ground_truth: gt_summary,
        })
        .with_context(|| format!("the trust summary of {}", dir.display()))?;
        table(&trust, "trust_summary")?;
    }
    written.extend(figures_written);
    Ok(())
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
    let experiments = crate::config::workspace_root().join("docs").join("EXPERIMENTS.md");
    let _ = writeln!(
        md,
        "Why the training recipe and the synthetic effect size are what they are, with learning curves and the \
         paper's exact recipe for comparison: [docs/EXPERIMENTS.md]({}).\n",
        relative_link(root, &experiments)
    );
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

    md.push_str(&crate::baselines_cmd::baselines_markdown(root));

    let figs = root.join("report").join("figures");
    let tables = root.join("report").join("tables");
    md.push_str(&figures_and_tables_markdown(root));
    if let Some(text) = ground_truth_markdown(cfg, &tables)? {
        let _ = writeln!(md, "\n### Relevance against the planted atrophy (trained vs randomised weights)\n\n{text}");
    }
    if let Some(text) = conservation_markdown(cfg, &tables)? {
        let _ = writeln!(md, "\n### LRP conservation\n\n{text}");
    }
    let _ = writeln!(
        md,
        "\n## Can the maps be trusted? (sanity checks and faithfulness)\n\n{}",
        sanity_markdown(root, &tables, &figs)?
    );
    let _ = writeln!(md, "\n## Dose–response and null check\n\n{}", sweep_paragraph(cfg, root));
    let _ = writeln!(md, "\n## What differs from the paper\n\n{}", differences(cfg));
    adni_data::fsutil::write_bytes_atomically(&root.join("REPORT.md"), md.as_bytes())?;
    report::html::write_report_html(root, &md).context("writing REPORT.html")?;
    Ok(())
}

/// The `## Figures` (every PNG of `report/figures/`, a heading each) and `## Tables` (a link to
/// every table of `report/tables/`, Markdown and CSV) sections of a report; `REPORT.html` embeds
/// the linked tables.
fn figures_and_tables_markdown(root: &Path) -> String {
    let rel_link = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let mut md = String::new();
    let _ = writeln!(md, "## Figures\n");
    for f in sorted_files(&root.join("report").join("figures"), "png") {
        let name = f.file_stem().and_then(|s| s.to_str()).unwrap_or("figure").replace('_', " ");
        let _ = writeln!(md, "### {name}\n\n![{name}]({})\n", rel_link(&f));
    }
    let _ = writeln!(md, "## Tables\n");
    for f in sorted_files(&root.join("report").join("tables"), "md") {
        let csv = f.with_extension("csv");
        let _ = writeln!(
            md,
            "- [{}]({}) ([csv]({}))",
            f.file_stem().and_then(|s| s.to_str()).unwrap_or("table"),
            rel_link(&f),
            rel_link(&csv)
        );
    }
    md
}

/// The sanity section of `REPORT.md`, from the tables [`write_sanity`] wrote to `tables` and the
/// figures in `figs`: a line per test saying what it asks, the trust summary (methods flagged by
/// the model randomisation test in bold), the flagged methods, the shuffled-label model's scores,
/// the figures, the paragraph generated from the numbers and the time the checks took. Without
/// `holdout/sanity/`: how to switch the checks on.
fn sanity_markdown(root: &Path, tables: &Path, figs: &Path) -> Result<String> {
    use report::sanity;
    let rel_link = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let Some(dir) = sanity_dir(root) else {
        let holdout = root.join("holdout");
        let run = holdout.strip_prefix(crate::config::workspace_root()).unwrap_or(&holdout).display().to_string();
        return Ok(format!(
            "Not run for this folder (no `holdout/sanity/`). Switch the checks on in the `[sanity]` section of the \
             config (keys `cascade`, `data_randomisation`, `faithfulness`) and run `reproduce-paper` again, or run \
             them on this run's hold-out model with `cargo xtask sanity --run {run}`, then `cargo xtask report --run \
             {}`.",
            root.strip_prefix(crate::config::workspace_root()).unwrap_or(root).display()
        ));
    };
    let mut md = String::new();
    if !dir.join(SANITY_COMPLETE).is_file() {
        let _ = writeln!(
            md,
            "*The sanity stage did not finish (no `{SANITY_COMPLETE}` in `{}`): what follows covers the files it \
             wrote.*\n",
            rel_link(&dir)
        );
    }
    let read = |stem: &str| -> Result<Option<DataFrame>> { read_optional_csv(&tables.join(format!("{stem}.csv"))) };
    let cascade_layers = match read("sanity_cascade")? {
        Some(df) => {
            let steps = column_str(&df, "sanity_cascade.csv", "step")?;
            let mut order: Vec<String> = Vec::new();
            for s in steps.into_iter().filter(|s| s != sanity::ORIGINAL_STEP) {
                if !order.contains(&s) {
                    order.push(s);
                }
            }
            format!(" (here {})", order.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" → "))
        }
        None => String::new(),
    };
    let _ = writeln!(
        md,
        "What each test asks:\n\n\
         - **Model randomisation** (Adebayo et al. 2018): the trained network's weights are replaced by random ones \
         layer by layer from the output down{cascade_layers}, and each map is compared with the trained model's map of \
         the same scan inside the brain mask (Spearman rank correlation, SSIM). A map still alike once every layer is \
         random (mean Spearman > {}) does not depend on what the model learnt: flagged.\n\
         - **Data randomisation** (Adebayo et al. 2018): the same network trained on shuffled diagnoses; a method \
         whose maps for it stay alike to the real model's (mean Spearman > {}) shows the image, not what the labels \
         taught.\n\
         - **Faithfulness** (Samek et al. 2017): delete the most relevant voxels (or atlas regions) first and watch \
         P(explained class) fall; AOPC is the mean fall over the deletion steps. Faithful when its 95 % interval lies \
         above that of deleting the same voxels in random order.\n\
         - **Ground truth** (synthetic cohorts): relevance mass accuracy on the planted atrophy, as above.\n\n\
         Intervals: percentile bootstrap of the mean over patients, as for the ground truth.\n",
        sanity::RANDOMISATION_THRESHOLD,
        sanity::DATA_RANDOMISATION_THRESHOLD
    );
    let trust = read("trust_summary")?;
    match &trust {
        Some(t) => {
            let display = sanity::trust_display(t).context("reading trust_summary.csv")?;
            let _ = writeln!(md, "{}", report::tables::to_markdown(&display)?);
            if let Some(line) = sanity::randomisation_flag_line(t).context("reading trust_summary.csv")? {
                let _ = writeln!(md, "{line}\n");
            }
        }
        None => {
            let _ = writeln!(
                md,
                "No per-method results: the cascade, data randomisation and AOPC tables are all missing.\n"
            );
        }
    }
    if let Some(df) = read("sanity_shuffled_model")?
        && let Some(line) = sanity::shuffled_model_sentence(&df).context("reading sanity_shuffled_model.csv")?
    {
        let _ = writeln!(md, "{line}\n");
    }
    for (stem, caption) in [
        ("sanity_cascade", "Cascading model-parameter randomisation"),
        ("deletion_voxels", "Deletion curves, voxels"),
        ("deletion_regions", "Deletion curves, atlas regions"),
    ] {
        let png = figs.join(format!("{stem}.png"));
        if png.is_file() {
            let _ = writeln!(md, "![{caption}]({})\n", rel_link(&png));
        }
    }
    if let Some(t) = &trust {
        let _ = writeln!(md, "{}", sanity::trust_paragraph(t).context("reading trust_summary.csv")?);
    }
    let links: Vec<String> = [
        ("trust_summary", "trust summary"),
        ("sanity_cascade", "cascade"),
        ("sanity_data_randomisation", "data randomisation"),
        ("sanity_shuffled_model", "shuffled-label model"),
        ("faithfulness_aopc", "AOPC"),
        ("faithfulness_deletion", "deletion curves"),
    ]
    .iter()
    .filter(|(stem, _)| tables.join(format!("{stem}.md")).is_file())
    .map(|(stem, name)| format!("[{name}]({})", rel_link(&tables.join(format!("{stem}.md")))))
    .collect();
    if !links.is_empty() {
        let _ = writeln!(md, "Tables: {}.\n", links.join(", "));
    }
    if let Some(df) = read("sanity_timing")? {
        let part = column_str(&df, "sanity_timing.csv", "part")?;
        let seconds = report::tables::column_f64(&df, "sanity_timing.csv", "seconds")?;
        let parts: Vec<String> = part.iter().zip(&seconds).map(|(p, s)| format!("{p} {s:.1} s")).collect();
        // the runner may write its own total
        let total = if part.iter().any(|p| p.eq_ignore_ascii_case("total")) {
            String::new()
        } else {
            format!("; total {:.1} s", seconds.iter().filter(|v| v.is_finite()).sum::<f64>())
        };
        let _ = writeln!(md, "Time (this machine): {}{total}.", parts.join(", "));
    }
    Ok(md.trim_end().to_string())
}

/// One paragraph on LRP's conservation from `lrp_conservation.csv` in `tables`.
fn conservation_markdown(cfg: &ProjectConfig, tables: &Path) -> Result<Option<String>> {
    let csv = tables.join("lrp_conservation.csv");
    if !csv.exists() {
        return Ok(None);
    }
    let rows = report::conservation::summarise(&read_csv(&csv)?)?;
    let mut md = format!(
        "LRP (`{}`) starts from the explained class's logit; the map's sum is what reached the input, \
         the rest was absorbed by the biases (the folded BatchNorm shifts included) and the ε stabilisers \
         ([per scan](report/tables/lrp_conservation.md)).\n\n| model | maps | Σ relevance / logit, mean | min | max |\n|---|---|---|---|---|\n",
        cfg.relevance.lrp.rule.name()
    );
    for r in rows {
        let _ =
            writeln!(md, "| {} | {} | {:.3} | {:.3} | {:.3} |", r.model, r.n, r.mean_ratio, r.min_ratio, r.max_ratio);
    }
    Ok(Some(md))
}

/// The target of the ground-truth section: this many methods pass (mass accuracy ≥ 3× chance
/// and a lower bound above the randomised model's mean)…
const GT_TARGET_MIN_PASSING: usize = 3;
/// …these among them.
const GT_TARGET_REQUIRED: [&str; 2] = ["occlusion", "area-occlusion"];

/// The resampling of the ground-truth intervals: `[train] bootstrap_samples` resamples of
/// patients (`PTID`), seeded by `[relevance] seed`.
fn ground_truth_bootstrap(cfg: &ProjectConfig) -> report::ground_truth::Bootstrap {
    report::ground_truth::Bootstrap {
        samples: cfg.train.bootstrap_samples,
        seed: cfg.relevance.seed,
        cluster: Some("PTID".into()),
    }
}

/// The ground-truth part of `REPORT.md` from `ground_truth_summary.csv` and
/// `ground_truth_verdict.csv` in `tables`: what was scored and how, the summary with intervals
/// (the trained model's row above the randomised model's), the verdicts and one line per method
/// that misses the target. `None` when the tables are not there (no synthetic ground truth).
fn ground_truth_markdown(cfg: &ProjectConfig, tables: &Path) -> Result<Option<String>> {
    let (summary_csv, verdict_csv) = (tables.join("ground_truth_summary.csv"), tables.join("ground_truth_verdict.csv"));
    if !summary_csv.exists() || !verdict_csv.exists() {
        return Ok(None);
    }
    let summary = read_csv(&summary_csv)?;
    let verdict = read_csv(&verdict_csv)?;
    let mut md = String::new();
    let model = column_str(&summary, "ground_truth_summary.csv", "model")?;
    let n_scans = report::tables::column_f64(&summary, "ground_truth_summary.csv", "n_scans")?;
    let n_undefined = report::tables::column_f64(&summary, "ground_truth_summary.csv", "n_undefined")?;
    // all null (no patient column) reads back as text
    let n_patients = report::tables::column_f64(&summary, "ground_truth_summary.csv", "n_patients")
        .unwrap_or_else(|_| vec![f64::NAN; summary.height()]);
    let trained: Vec<usize> = (0..summary.height()).filter(|&i| model[i] == report::ground_truth::TRAINED).collect();
    let scans = trained.iter().map(|&i| n_scans[i] + n_undefined[i]).fold(0.0f64, f64::max);
    let patients = trained.iter().map(|&i| n_patients[i]).filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    let boot = ground_truth_bootstrap(cfg);
    let _ = writeln!(
        md,
        "Every hold-out test scan with planted atrophy (AD): {scans} scans of {patients} patients, each explained by \
         the trained model and by the same network with random weights. Scores count the voxels of the brain mask \
         only (the inputs are 0 outside it in every scan); **chance** is the atrophy mask's share of those voxels, \
         averaged over the scans: what a map uniform over the brain scores for mass and rank accuracy, and the hit \
         rate of a randomly placed maximum. 95 % intervals: percentile bootstrap of the mean over **patients** \
         ({} resamples, seed {}; a patient's scans are correlated, so they are drawn together) for mass and rank \
         accuracy; Wilson score interval on the effective number of scans under that clustering for the pointing \
         game. A map with no positive value in the brain leaves its scan out (`n_undefined`). \
         Tables: [summary](report/tables/ground_truth_summary.md), [verdicts](report/tables/ground_truth_verdict.md), \
         [per scan](report/tables/ground_truth_per_scan.md).\n",
        boot.samples, boot.seed
    );
    let _ = writeln!(md, "{}", report::tables::to_markdown(&ground_truth_display(&summary)?)?);
    let _ = writeln!(
        md,
        "Verdict per method: `beats_3x_chance` = mean mass accuracy ≥ {}× chance; `lower_bound_above_random` = \
         the trained model's 95 % lower bound above the randomised model's mean; `passes` = both.\n",
        report::ground_truth::TARGET_FACTOR
    );
    let _ = writeln!(md, "{}", report::tables::to_markdown(&verdict)?);
    for line in report::ground_truth::verdict_lines(&verdict, &GT_TARGET_REQUIRED, GT_TARGET_MIN_PASSING)? {
        let _ = writeln!(md, "- {line}");
    }
    Ok(Some(md.trim_end().to_string()))
}

/// The ground-truth summary for people: per method and model, scans (patients), chance, and each
/// score as `mean [low, high]`.
fn ground_truth_display(summary: &DataFrame) -> Result<DataFrame> {
    const TABLE: &str = "ground_truth_summary.csv";
    let text = |c: &str| column_str(summary, TABLE, c);
    let num = |c: &str| report::tables::column_f64(summary, TABLE, c);
    let f = report::tables::format_float;
    let (scans, undefined) = (num("n_scans")?, num("n_undefined")?);
    // all null (no patient column) reads back as text
    let patients = num("n_patients").unwrap_or_else(|_| vec![f64::NAN; summary.height()]);
    let with_ci = |m: &str, lo: &str, hi: &str| -> Result<Vec<String>> {
        let (m, lo, hi) = (num(m)?, num(lo)?, num(hi)?);
        Ok((0..m.len()).map(|i| format!("{} [{}, {}]", f(m[i]), f(lo[i]), f(hi[i]))).collect())
    };
    let scans_text: Vec<String> = (0..summary.height())
        .map(|i| {
            let mut s = format!("{}", scans[i]);
            if patients[i].is_finite() {
                let _ = write!(s, " ({} patients)", patients[i]);
            }
            if undefined[i] > 0.0 {
                let _ = write!(s, " + {} undefined", undefined[i]);
            }
            s
        })
        .collect();
    Ok(DataFrame::new(
        summary.height(),
        vec![
            Column::new("method".into(), text("method")?),
            Column::new("model".into(), text("model")?),
            Column::new("scans".into(), scans_text),
            Column::new("chance".into(), num("chance")?.into_iter().map(f).collect::<Vec<_>>()),
            Column::new("mass accuracy [95 % CI]".into(), with_ci("mass_accuracy", "mass_ci_low", "mass_ci_high")?),
            Column::new("× chance".into(), num("mass_vs_chance")?.into_iter().map(f).collect::<Vec<_>>()),
            Column::new("rank accuracy [95 % CI]".into(), with_ci("rank_accuracy", "rank_ci_low", "rank_ci_high")?),
            Column::new(
                "pointing game [Wilson 95 % CI]".into(),
                with_ci("pointing_rate", "pointing_ci_low", "pointing_ci_high")?,
            ),
        ],
    )?)
}

/// The ways the synthetic data, the network and the training recipe of `cfg` differ from the
/// paper's, one sentence each (empty for the paper's exact recipe on ADNI). `REPORT.md` is written
/// by `reproduce-paper`, so the epochs are those of its `[reproduce]` section.
fn training_differences(cfg: &ProjectConfig) -> Vec<String> {
    const WHY: &str = "measured in docs/EXPERIMENTS.md";
    let paper_net = model::NetworkConfig::default();
    let paper_train = model::train::TrainConfig::default();
    let (t, m) = (&cfg.train, &cfg.model);
    let mut d = Vec::new();
    if cfg.synth.params.effect_size != 1.0 {
        d.push(format!(
            "Effect size {} of the synthetic cohort (the generator's unit effect is too weak for about 50 training \
             patients: the linear ceiling on the planted regions stays near 0.8; {WHY}).",
            cfg.synth.params.effect_size
        ));
    }
    if m.dropout != paper_net.dropout {
        d.push(format!(
            "Dropout {} on the flatten instead of {} (at 2 mm the flatten is 128 wide and dropout 0.8 keeps the \
             training loss at chance; {WHY}).",
            m.dropout, paper_net.dropout
        ));
    }
    let net_rest = model::NetworkConfig { dropout: paper_net.dropout, ..m.clone() };
    if net_rest != paper_net {
        d.push(format!("Network: {net_rest:?} instead of the paper's layers."));
    }
    if t.learning_rate != paper_train.learning_rate {
        d.push(format!("Adam learning rate {} instead of {} ({WHY}).", t.learning_rate, paper_train.learning_rate));
    }
    if t.augment_flip || t.augment_shift > 0 {
        d.push(format!(
            "Augmentation (the paper: none): {}{}{}.",
            if t.augment_flip { "left–right mirroring with probability ½" } else { "" },
            if t.augment_flip && t.augment_shift > 0 { " and " } else { "" },
            if t.augment_shift > 0 {
                format!("shifts of up to {} voxels per axis", t.augment_shift)
            } else {
                String::new()
            }
        ));
    }
    if t.weight_decay != paper_train.weight_decay {
        d.push(format!("Weight decay {} (the paper: none).", t.weight_decay));
    }
    let r = &cfg.reproduce;
    if (r.cv_epochs, r.holdout_epochs) != (paper_train.epochs, paper_train.epochs) {
        d.push(format!(
            "Training: {} epochs per cross-validation fold and {} for the hold-out model instead of {} (time budget on a \
             CPU; {WHY}).",
            r.cv_epochs, r.holdout_epochs, paper_train.epochs
        ));
    }
    d
}

/// The link to the effect-size sweep of this config (`cargo xtask sweep`, run outside the default
/// budget), or how to make it.
fn sweep_paragraph(cfg: &ProjectConfig, root: &Path) -> String {
    let dir = crate::sweep_cmd::default_out(cfg);
    let (png, table) = (dir.join("sweep.png"), dir.join("sweep.md"));
    if png.is_file() {
        format!(
            "CV balanced accuracy and each method's mass accuracy against the planted effect size, with effect 0 as \
             the null check (`cargo xtask sweep`, outside the default budget): [figure]({}), [table]({}).\n\n![sweep]({})",
            relative_link(root, &png),
            relative_link(root, &table),
            relative_link(root, &png)
        )
    } else {
        format!(
            "Not run for this config yet: `cargo xtask sweep --effect-sizes 0,1,3` (about one `reproduce-paper` per \
             effect size) writes the figure to `{}`; docs/EXPERIMENTS.md records a measured sweep.",
            relative_link(root, &png)
        )
    }
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
    d.extend(training_differences(cfg));
    d.push(format!(
        "Hold-out: {} AD + {} CN patients (the study: 30 + 30 of 344).",
        cfg.split.holdout_ad, cfg.split.holdout_cn
    ));
    let r = &cfg.relevance;
    d.push(format!(
        "Atlas: {} placed by {} (the study: AAL stretched onto the grid with a zoom; mean Dice 0.63 against correct placement).",
        r.atlas.name(),
        if r.placement == Placement::Zoom { "the paper's zoom" } else { "world coordinates" }
    ));
    d.push(format!(
        "Occlusion: cube {} and stride {} voxels of the model grid, {} spread, {} evaluation (exact).",
        r.occlusion.size,
        r.occlusion.stride,
        name_of(&r.occlusion.spread),
        name_of(&r.occlusion.mode)
    ));
    let (ad, cn) = (r.scans_per_patient_of(true), r.scans_per_patient_of(false));
    if ad > 0 || cn > 0 {
        let limit = |n: usize| if n == 0 { "every scan".to_string() } else { format!("at most {n} scan(s)") };
        d.push(format!(
            "Relevance maps of {} of each AD and {} of each CN test patient (the study: every test scan); \
             the ground-truth scores use the AD scans only.",
            limit(ad),
            limit(cn)
        ));
    }
    d.push(format!(
        "Beyond the study: a working 3D Grad-CAM and guided Grad-CAM, integrated gradients, SmoothGrad, LRP (`{}`, explaining the logit; the other methods explain the {}), ground-truth scores and a randomised-weights baseline.",
        r.lrp.rule.name(),
        name_of(&r.output)
    ));
    d.push(
        "Initialisation: PyTorch ≥ 1.2 defaults (BatchNorm γ = 1; the paper's PyTorch 0.3 drew γ from U(0, 1)).".into(),
    );
    d.iter().map(|s| format!("- {s}")).collect::<Vec<_>>().join("\n")
}

/// `target` as a link relative to the folder `from` (both absolute), e.g. `../../docs/X.md`;
/// the absolute path where they share no prefix.
fn relative_link(from: &Path, target: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = target.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return target.display().to_string();
    }
    let mut parts: Vec<String> = vec!["..".into(); from.len() - common];
    parts.extend(to[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    parts.join("/")
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
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(now)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(|| "unknown date".into(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

#[cfg(test)]
mod link_tests {
    use super::relative_link;
    use std::path::Path;

    #[test]
    fn relative_link_climbs_to_the_common_folder() {
        let root = Path::new("/repo/results/reproduce");
        assert_eq!(relative_link(root, Path::new("/repo/docs/EXPERIMENTS.md")), "../../docs/EXPERIMENTS.md");
        assert_eq!(relative_link(root, Path::new("/repo/results/reproduce/REPORT.md")), "REPORT.md");
    }
}

#[cfg(test)]
mod sanity_tests {
    use std::path::Path;

    use super::{sanity_markdown, write_sanity};
    use crate::config::ProjectConfig;

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
    fn sanity_section_reads_the_runner_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let (tables, figs) = (root.join("report").join("tables"), root.join("report").join("figures"));
        // absent folder: nothing written, and the section says how to switch the checks on
        let mut written = Vec::new();
        write_sanity(&ProjectConfig::default(), root, None, &tables, &figs, &mut written).unwrap();
        assert!(written.is_empty());
        let md = sanity_markdown(root, &tables, &figs).unwrap();
        assert!(
            md.contains("[sanity]") && md.contains("cargo xtask sanity --run") && md.contains("faithfulness"),
            "{md}"
        );

        runner_files(&root.join("holdout").join("sanity"));
        write_sanity(&ProjectConfig::default(), root, None, &tables, &figs, &mut written).unwrap();
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
        // no region rows: no region figure
        assert!(!names.iter().any(|n| n == "deletion_regions.png"));
        assert!(written.iter().all(|p| p.is_file()));

        let md = sanity_markdown(root, &tables, &figs).unwrap();
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

        // a finished stage: no warning
        write(&root.join("holdout").join("sanity"), "complete.json", "{}");
        assert!(!sanity_markdown(root, &tables, &figs).unwrap().contains("did not finish"));
    }

    #[test]
    fn bad_sanity_files_are_errors_naming_file_and_column() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let dir = root.join("holdout").join("sanity");
        runner_files(&dir);
        write(&dir, "cascade.csv", "step,layer,method,PTID,Image.ID,spearman\n1,dense_3,a,p1,1,0.9\n");
        let (tables, figs) = (root.join("t"), root.join("f"));
        let e = write_sanity(&ProjectConfig::default(), root, None, &tables, &figs, &mut Vec::new()).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("cascade.csv") && e.contains("`ssim`"), "{e}");
        runner_files(&dir);
        write(&dir, "aopc.csv", "kind,method,ordering,PTID,Image.ID,aopc\nvoxels,a,relevance,p1,1,high\n");
        let e = format!(
            "{:#}",
            write_sanity(&ProjectConfig::default(), root, None, &tables, &figs, &mut Vec::new()).unwrap_err()
        );
        assert!(e.contains("aopc.csv") && e.contains("aopc"), "{e}");
    }
}
