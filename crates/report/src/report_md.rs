//! `REPORT.md` of a reproduction (`cargo xtask reproduce-paper`), written from the tables and
//! figures of its `report/` folder and a [`ReportContext`]: the values of the project's config and
//! of the machine that the text quotes, gathered by the runner (this crate does not read the
//! project's config).
//!
//! | section | from |
//! |---|---|
//! | title, `## Versions`, `## Data` | the context; `data/cohort/cohort_report.csv` of the folder |
//! | `## Timings` | the runner's stage table |
//! | `## Classification` | `cv/summary.md`, `holdout/summary.md` |
//! | `## Baselines` | the runner's section (linear baselines on the same folds) |
//! | `## Figures`, `## Tables` | every PNG and table of `report/` ([`figures_and_tables_markdown`]) |
//! | relevance against the planted atrophy | [`ground_truth_markdown`]; target [`GT_TARGET_MIN_PASSING`], [`GT_TARGET_REQUIRED`] |
//! | LRP conservation | [`conservation_markdown`] |
//! | `## Can the maps be trusted?` | [`sanity_markdown`] |
//! | `## Dose–response and null check` | [`sweep_paragraph`] |
//! | `## What differs from the paper` | [`differences`], [`training_differences`] |

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use adni_data::atlas::Placement;
use adni_data::run_layout::{COMPLETE_FILE, RunLayout, SanityLayout};
use adni_data::synth::SynthConfig;
use polars::prelude::{Column, DataFrame};

use crate::error::{Result, ResultExt};
use crate::ground_truth::Bootstrap;
use crate::tables::{column_f64, column_str, format_float, read_csv, read_optional_csv, to_markdown};

/// The target of the ground-truth section: this many methods pass (mass accuracy ≥ 3× chance
/// and a lower bound above the randomised model's mean)…
pub const GT_TARGET_MIN_PASSING: usize = 3;
/// …these among them.
pub const GT_TARGET_REQUIRED: [&str; 2] = ["occlusion", "area-occlusion"];

/// The libraries `REPORT.md` names under `## Versions`.
const LIBRARY_VERSIONS: &str = "burn 0.21.0 (CPU: Flex), polars 0.55, nifti 0.18, plotters 0.3";

/// What `REPORT.md` quotes beyond the files of the results folder.
#[derive(Debug, Clone)]
pub struct ReportContext {
    /// `[run] name`.
    pub run_name: String,
    /// The config file of the reproduction as the report names it (relative to the workspace).
    pub config_path: String,
    /// When the report is written, e.g. `2025-01-31 12:00 UTC`.
    pub written_on: String,
    /// The project's version.
    pub version: String,
    /// The git commit of the workspace (`unknown` outside git).
    pub git_commit: String,
    /// `rustc --version`.
    pub rustc: String,
    /// The workspace: the report links to its `docs/` and names folders relative to it.
    pub workspace_root: PathBuf,
    /// The synthetic cohort: its folder and generator parameters.
    pub cohort_dir: PathBuf,
    /// The generator's parameters.
    pub cohort: SynthConfig,
    /// `[data] table`, when it is not the synthetic cohort's (a user's own data, e.g. ADNI):
    /// the report then describes that table, and no planted atrophy.
    pub own_table: Option<PathBuf>,
    /// `[preprocess] mask`.
    pub mask: String,
    /// `[preprocess] downsample`.
    pub downsample: usize,
    /// `[split] k`: folds of the cross-validation.
    pub folds: usize,
    /// `[split] holdout_ad` and `holdout_cn`: hold-out patients per class.
    pub holdout: (usize, usize),
    /// The training recipe against the paper's.
    pub training: TrainingSetup,
    /// The relevance methods' settings.
    pub relevance: RelevanceSetup,
    /// The resampling of the ground-truth and sanity intervals.
    pub bootstrap: Bootstrap,
    /// Where `cargo xtask sweep` writes this config's effect-size sweep.
    pub sweep_dir: PathBuf,
    /// The flatten of the network the run trained (from a fold's `network.json`), where known.
    pub trained_flatten: Option<Flatten>,
}

/// A training recipe, the values `REPORT.md` compares with the paper's.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// Dropout on the flatten.
    pub dropout: f64,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Left–right mirroring.
    pub augment_flip: bool,
    /// Random shifts, voxels per axis (0 = none).
    pub augment_shift: usize,
    /// Epochs per cross-validation fold.
    pub cv_epochs: usize,
    /// Epochs of the hold-out model.
    pub holdout_epochs: usize,
}

/// The training recipe of the run and the paper's.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSetup {
    /// The run's recipe (the epochs of the reproduction's stages).
    pub used: Recipe,
    /// The paper's recipe.
    pub paper: Recipe,
    /// How the run's layers differ from the paper's (dropout aside), in words
    /// (the model crate's `NetworkConfig::layer_differences`), when they do.
    pub network: Option<String>,
}

/// The relevance settings `REPORT.md` names.
#[derive(Debug, Clone, PartialEq)]
pub struct RelevanceSetup {
    /// The atlas's name.
    pub atlas: String,
    /// How the atlas is placed on the grid.
    pub placement: Placement,
    /// Occlusion cube edge, voxels.
    pub occlusion_size: usize,
    /// Occlusion stride, voxels.
    pub occlusion_stride: usize,
    /// Occlusion spread, by name.
    pub occlusion_spread: String,
    /// Occlusion evaluation, by name.
    pub occlusion_mode: String,
    /// Maps per AD test patient (0 = every scan).
    pub scans_per_ad_patient: usize,
    /// Maps per CN test patient (0 = every scan).
    pub scans_per_cn_patient: usize,
    /// LRP's rule (composite) name.
    pub lrp_rule: String,
    /// What the methods other than LRP explain, by name.
    pub output: String,
    /// `[relevance] ground_truth_fraction`: the ground-truth mask holds the voxels whose planted
    /// loss is at least this fraction of the scan's largest.
    pub ground_truth_fraction: f32,
}

/// The parts of `REPORT.md` that the runner writes.
#[derive(Debug, Clone, Copy)]
pub struct RunnerSections<'a> {
    /// The stage table (`## Timings`).
    pub stages: &'a str,
    /// The `## Baselines` section, heading included.
    pub baselines: &'a str,
    /// The sanity checks' folder, when there is one.
    pub sanity: Option<&'a SanityLayout>,
}

/// Writes `<root>/REPORT.md` and `<root>/REPORT.html` ([`crate::html::write_report_html`]);
/// returns the Markdown.
pub fn write_report_md(ctx: &ReportContext, root: &Path, runner: &RunnerSections<'_>) -> Result<String> {
    let mut md = String::new();
    let rel_link = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let _ = writeln!(md, "# Reproduction of Rieke et al. 2018 — `{}`\n", ctx.run_name);
    let _ = writeln!(
        md,
        "Written by `cargo xtask reproduce-paper` on {} from `{}` (resolved: [resolved_config.toml](resolved_config.toml)).\n",
        ctx.written_on, ctx.config_path
    );
    let banner = chance_banner(root)?;
    if let Some(b) = &banner {
        let _ = writeln!(md, "{b}\n");
    }
    let _ = writeln!(md, "## Versions\n");
    let _ = writeln!(md, "- adni-relevance {} (git {})", ctx.version, ctx.git_commit);
    let _ = writeln!(md, "- {LIBRARY_VERSIONS}");
    let _ = writeln!(md, "- {}\n", ctx.rustc);

    let _ = writeln!(md, "## Data\n");
    let s = &ctx.cohort;
    match &ctx.own_table {
        Some(table) => {
            let _ = writeln!(
                md,
                "- Your own data: the table `{}` (not a synthetic cohort: no planted atrophy, so no ground-truth scores).",
                table.display()
            );
        }
        None => {
            let _ = writeln!(
                md,
                "- Synthetic ADNI-like cohort in `{}`: {:?} anatomy, {} CN / {} AD / {} MCI patients, seed {}, effect size \
                 {} (atrophy planted in {}; ground truth per scan).\n- {}",
                ctx.cohort_dir.display(),
                s.anatomy,
                s.n_cn,
                s.n_ad,
                s.n_mci,
                s.seed,
                s.effect_size,
                planted_regions(&s.atrophy_regions, &s.region_weights),
                truth_mask_sentence(Some(ctx.relevance.ground_truth_fraction))
            );
        }
    }
    let cohort_csv = adni_data::run_layout::RunLayout::new(root.join("data")).cohort().report_csv();
    if let Ok(text) = read_csv(&cohort_csv).and_then(|df| to_markdown(&df)) {
        let _ = writeln!(
            md,
            "\nCohort filters, in the study's order ([csv]({})):\n\n{}\n",
            rel_link(&cohort_csv),
            text.trim_end()
        );
    }
    let grid = if ctx.own_table.is_none() && ctx.cohort.anatomy == adni_data::synth::AnatomySource::Phantom {
        format!("downsampling ×{} of the phantom's own grid (not the study's 1 mm grid)", ctx.downsample)
    } else {
        format!("downsampling ×{} (1 = the study's 1 mm grid)", ctx.downsample)
    };
    let _ = writeln!(
        md,
        "- Preprocessing: brain mask `{}`, {grid}, z-score fitted per fold on its training scans.\n",
        ctx.mask
    );

    let _ = writeln!(md, "## Timings (this machine)\n\n{}", runner.stages);

    let _ = writeln!(md, "## Classification\n");
    let experiments = ctx.workspace_root.join("docs").join("EXPERIMENTS.md");
    let _ = writeln!(
        md,
        "Why the training recipe and the synthetic effect size are what they are, with learning curves and the \
         paper's exact recipe for comparison: [docs/EXPERIMENTS.md]({}).\n",
        relative_link(root, &experiments)
    );
    for (name, what) in [
        ("cv", format!("{}-fold cross-validation over patients", ctx.folds)),
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

    md.push_str(runner.baselines);

    let figs = root.join("report").join("figures");
    let tables = root.join("report").join("tables");
    md.push_str(&figures_and_tables_markdown(root));
    if let Some(text) = ground_truth_markdown(&ctx.bootstrap, &tables)? {
        let _ = writeln!(md, "\n## Relevance against the planted atrophy (trained vs randomised weights)\n\n{text}");
    }
    if let Some(text) = conservation_markdown(&ctx.relevance.lrp_rule, &tables)? {
        let _ = writeln!(md, "\n## LRP conservation\n\n{text}");
    }
    let _ = writeln!(md, "\n## Can the maps be trusted? (sanity checks and faithfulness)\n");
    if let Some(b) = &banner {
        let _ = writeln!(md, "{b}\n");
    }
    let _ = writeln!(md, "{}", sanity_markdown(root, runner.sanity, &ctx.workspace_root, &tables, &figs)?);
    let _ = writeln!(
        md,
        "\n## Dose–response and null check\n\n{}",
        sweep_paragraph(&ctx.sweep_dir, root, &ctx.config_path)
    );
    let _ = writeln!(md, "\n## What differs from the paper\n\n{}", differences(ctx));
    adni_data::fsutil::write_bytes_atomically(&RunLayout::new(root).report_md(), md.as_bytes())?;
    crate::html::write_report_html(root, &md).with_context(|| "writing REPORT.html")?;
    Ok(md)
}

/// A warning for the top of `REPORT.md` when the classifier is not shown to beat chance: the
/// ROC AUC interval (patient bootstrap, `summary.csv` of `<root>/holdout` and `<root>/cv`)
/// reaches down to 0.5, or is undefined. Maps, ground-truth scores and trust verdicts of a model
/// that has not learnt the task say nothing about the methods or the disease, whatever their
/// numbers; the warning says so. `None` when every interval present lies above 0.5, or when
/// neither summary exists. Errors name a malformed summary.
pub fn chance_banner(root: &Path) -> Result<Option<String>> {
    use adni_data::run_tables::SummaryRow;
    let mut weak: Vec<String> = Vec::new();
    for (name, what) in [("holdout", "the hold-out model (the model of the heatmaps)"), ("cv", "the cross-validation")]
    {
        let path = RunLayout::new(root.join(name)).summary_csv();
        let Some(df) = read_optional_csv(&path)? else { continue };
        let table = path.display().to_string();
        let metric = column_str(&df, &table, SummaryRow::METRIC)?;
        let (pooled, lo, hi) = (
            column_f64(&df, &table, SummaryRow::POOLED)?,
            column_f64(&df, &table, SummaryRow::CI_LOW)?,
            column_f64(&df, &table, SummaryRow::CI_HIGH)?,
        );
        let Some(i) = metric.iter().position(|m| m == "roc_auc") else {
            return Err(crate::error::ReportError::column(&table, SummaryRow::METRIC, "expected a row `roc_auc`"));
        };
        if lo[i].is_nan() || lo[i] <= 0.5 {
            weak.push(format!(
                "{what}: ROC AUC {} (95 % patient-bootstrap interval [{}, {}])",
                format_float(pooled[i]),
                format_float(lo[i]),
                format_float(hi[i])
            ));
        }
    }
    Ok((!weak.is_empty()).then(|| {
        let mut weak = weak.join("; ");
        weak[..1].make_ascii_uppercase();
        format!(
            "> **Read this first: the classifier is not shown to beat chance.** {}: an interval that reaches \
             0.5 (or none). Every map, ground-truth score and trust verdict below then describes a model that \
             has not been shown to tell AD from CN; read them as a check that the pipeline runs, not as findings \
             about the relevance methods or the disease (a quick config, a cohort without planted atrophy or too \
             few epochs give this).",
            weak
        )
    }))
}

/// The `## Figures` (every PNG of `report/figures/`, a heading each) and `## Tables` (a link to
/// every table of `report/tables/`, Markdown and CSV) sections of a report; `REPORT.html` embeds
/// the linked tables.
pub fn figures_and_tables_markdown(root: &Path) -> String {
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

/// The sanity section of `REPORT.md`, from the tables [`crate::sanity_report::write_sanity`] wrote
/// to `tables` and the figures in `figs`: a line per test saying what it asks, the trust summary
/// (methods flagged by the model randomisation test in bold), the flagged methods, the
/// shuffled-label model's scores, the figures, the paragraph generated from the numbers and the
/// time the checks took; a warning first when `sanity` lacks the runner's `complete.json`.
/// Without a sanity folder: how to switch the checks on (folders named relative to
/// `workspace_root`).
pub fn sanity_markdown(
    root: &Path,
    sanity: Option<&SanityLayout>,
    workspace_root: &Path,
    tables: &Path,
    figs: &Path,
) -> Result<String> {
    use crate::sanity;
    let rel_link = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let Some(sanity) = sanity else {
        let holdout = root.join("holdout");
        let run = holdout.strip_prefix(workspace_root).unwrap_or(&holdout).display().to_string();
        return Ok(format!(
            "Not run for this folder (no `holdout/sanity/`). Switch the checks on in the `[sanity]` section of the \
             config (keys `cascade`, `data_randomisation`, `faithfulness`) and run `reproduce-paper` again, or run \
             them on this run's hold-out model with `cargo xtask sanity --run {run}`, then `cargo xtask report --run \
             {}`.",
            root.strip_prefix(workspace_root).unwrap_or(root).display()
        ));
    };
    let mut md = String::new();
    if !sanity.complete().is_file() {
        let _ = writeln!(
            md,
            "*The sanity stage did not finish (no `{COMPLETE_FILE}` in `{}`): what follows covers the files it \
             wrote.*\n",
            rel_link(sanity.dir())
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
         above that of deleting the same voxels in random order, on the same scans.\n\
         - **Ground truth** (synthetic cohorts): relevance mass accuracy on the planted atrophy, as above.\n\n\
         95 % intervals of the means over patients, as for the ground truth: a t interval on the cluster-robust \
         standard error with fewer than {} patients, a percentile bootstrap from there{}.\n",
        sanity::RANDOMISATION_THRESHOLD,
        sanity::DATA_RANDOMISATION_THRESHOLD,
        crate::ground_truth::MIN_UNITS_FOR_BOOTSTRAP,
        {
            let found: Vec<DataFrame> =
                ["sanity_cascade", "sanity_data_randomisation", "faithfulness_aopc", "faithfulness_deletion"]
                    .iter()
                    .filter_map(|stem| read(stem).transpose())
                    .collect::<Result<_>>()?;
            let used = crate::ground_truth::intervals_used(&found.iter().collect::<Vec<_>>())?;
            if used.is_empty() {
                String::new()
            } else {
                format!("; here {} (the tables' `…_interval` columns)", used.join(", "))
            }
        }
    );
    let trust = read("trust_summary")?;
    match &trust {
        Some(t) => {
            let display = sanity::trust_display(t).with_context(|| "reading trust_summary.csv")?;
            let _ = writeln!(md, "{}", to_markdown(&display)?);
            if let Some(line) = sanity::randomisation_flag_line(t).with_context(|| "reading trust_summary.csv")? {
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
        && let Some(line) = sanity::shuffled_model_sentence(&df).with_context(|| "reading sanity_shuffled_model.csv")?
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
    if let Some(df) = read("sanity_cascade")?
        && let Some(line) = cascade_note(&df).with_context(|| "reading sanity_cascade.csv")?
    {
        let _ = writeln!(md, "{line}\n");
    }
    if let Some(df) = read("faithfulness_aopc")?
        && let Some(line) = deletion_note(&df).with_context(|| "reading faithfulness_aopc.csv")?
    {
        let _ = writeln!(md, "{line}\n");
    }
    if let Some(t) = &trust {
        let _ = writeln!(md, "{}", sanity::trust_paragraph(t).with_context(|| "reading trust_summary.csv")?);
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
        use crate::sanity_tables::PartSeconds;
        let part = column_str(&df, "sanity_timing.csv", PartSeconds::PART)?;
        let seconds = column_f64(&df, "sanity_timing.csv", PartSeconds::SECONDS)?;
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

/// A sentence under the cascade figure naming the methods whose trained maps are constant on
/// every scan (the `original` row of `sanity_cascade.csv` with every scan undefined): they have
/// no similarity and are not drawn. `None` when there are none.
pub fn cascade_note(cascade: &DataFrame) -> Result<Option<String>> {
    const TABLE: &str = "sanity_cascade.csv";
    let (method, step) = (column_str(cascade, TABLE, "method")?, column_str(cascade, TABLE, "step")?);
    let (n, undefined) = (column_f64(cascade, TABLE, "n_scans")?, column_f64(cascade, TABLE, "n_undefined")?);
    let constant: Vec<String> = (0..cascade.height())
        .filter(|&i| step[i] == crate::sanity::ORIGINAL_STEP && n[i] > 0.0 && undefined[i] >= n[i])
        .map(|i| format!("{} ({} scans)", method[i], n[i]))
        .collect();
    Ok((!constant.is_empty()).then(|| {
        format!(
            "Not drawn in the cascade figure: {}: the trained model's map is constant on the brain on every scan, \
             so no similarity to it is defined (`n_undefined` in the [cascade table](report/tables/sanity_cascade.md)).",
            constant.join(", ")
        )
    }))
}

/// A sentence under the deletion figures from `faithfulness_aopc.csv`: on how many of the scans
/// each method's map ranks voxels (curves and AOPC use those scans only, the random order
/// too), and which methods rank none and are left off the figures. `None` when every method
/// ranks every scan.
pub fn deletion_note(aopc: &DataFrame) -> Result<Option<String>> {
    const TABLE: &str = "faithfulness_aopc.csv";
    let (kind, method, ordering) =
        (column_str(aopc, TABLE, "kind")?, column_str(aopc, TABLE, "method")?, column_str(aopc, TABLE, "ordering")?);
    let n = column_f64(aopc, TABLE, "n_scans")?;
    let total = n.iter().copied().filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    let (mut none, mut some): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for i in 0..aopc.height() {
        if kind[i] != crate::sanity::VOXELS || ordering[i] != crate::sanity::RELEVANCE_ORDER || !n[i].is_finite() {
            continue;
        }
        if n[i] == 0.0 {
            none.push(method[i].clone());
        } else if n[i] < total {
            some.push(format!("{} on {} of {total}", method[i], n[i]));
        }
    }
    if none.is_empty() && some.is_empty() {
        return Ok(None);
    }
    let mut text = String::from(
        "A map constant on the brain ranks no voxel, so its deletion order is only the random tie-break: such scans \
         are left out of a method's deletion curves and AOPC, and of the random order it is compared with (the same \
         scans, so the comparison is paired).",
    );
    if !none.is_empty() {
        let _ = write!(text, " No ranking scan, so not drawn: {}.", none.join(", "));
    }
    if !some.is_empty() {
        let _ = write!(text, " Fewer scans: {} scans.", some.join("; "));
    }
    Ok(Some(text))
}

/// One paragraph on LRP's conservation (rule `lrp_rule`) from `lrp_conservation.csv` in
/// `tables`; `None` without that table.
pub fn conservation_markdown(lrp_rule: &str, tables: &Path) -> Result<Option<String>> {
    let csv = tables.join("lrp_conservation.csv");
    if !csv.exists() {
        return Ok(None);
    }
    let rows = crate::conservation::summarise(&read_csv(&csv)?)?;
    let mut md = format!(
        "LRP (`{lrp_rule}`) starts from the explained class's logit; the map's sum is what reached the input, \
         the rest was absorbed by the biases (the folded BatchNorm shifts included) and the ε stabilisers \
         ([per scan](report/tables/lrp_conservation.md)).\n\n| model | maps | Σ relevance / logit, mean | min | max |\n|---|---|---|---|---|\n"
    );
    for r in rows {
        let _ =
            writeln!(md, "| {} | {} | {:.3} | {:.3} | {:.3} |", r.model, r.n, r.mean_ratio, r.min_ratio, r.max_ratio);
    }
    Ok(Some(md))
}

/// The ground-truth part of `REPORT.md` from `ground_truth_summary.csv` and
/// `ground_truth_verdict.csv` in `tables`: what was scored and how (intervals by `bootstrap`), the
/// summary with intervals (the trained model's row above the randomised model's), the verdicts
/// and one line per method that misses the target ([`GT_TARGET_REQUIRED`],
/// [`GT_TARGET_MIN_PASSING`]). `None` when the tables are not there (no synthetic ground truth).
pub fn ground_truth_markdown(bootstrap: &Bootstrap, tables: &Path) -> Result<Option<String>> {
    let (summary_csv, verdict_csv) = (tables.join("ground_truth_summary.csv"), tables.join("ground_truth_verdict.csv"));
    if !summary_csv.exists() || !verdict_csv.exists() {
        return Ok(None);
    }
    let summary = read_csv(&summary_csv)?;
    let verdict = read_csv(&verdict_csv)?;
    let mut md = String::new();
    let model = column_str(&summary, "ground_truth_summary.csv", "model")?;
    let n_scans = column_f64(&summary, "ground_truth_summary.csv", "n_scans")?;
    let n_undefined = column_f64(&summary, "ground_truth_summary.csv", "n_undefined")?;
    // all null (no patient column) reads back as text
    let n_patients = column_f64(&summary, "ground_truth_summary.csv", "n_patients")
        .unwrap_or_else(|_| vec![f64::NAN; summary.height()]);
    let trained: Vec<usize> = (0..summary.height()).filter(|&i| model[i] == crate::ground_truth::TRAINED).collect();
    let scans = trained.iter().map(|&i| n_scans[i] + n_undefined[i]).fold(0.0f64, f64::max);
    let patients = trained.iter().map(|&i| n_patients[i]).filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    let used = crate::ground_truth::intervals_used(&[&summary])?;
    let here = if used.is_empty() { String::new() } else { format!("; here {} (column `interval`)", used.join(", ")) };
    let _ = writeln!(
        md,
        "Every hold-out test scan with planted atrophy (AD): {scans} scans of {patients} patients, each explained by \
         the trained model and by the same network with random weights. Scores count the voxels of the brain mask \
         only (the inputs are 0 outside it in every scan); **chance** is the atrophy mask's share of those voxels, \
         averaged over the scans where the map has a score: what a map uniform over the brain scores for mass and \
         rank accuracy, and the hit rate of a randomly placed maximum. 95 % intervals of mass and rank accuracy over \
         **patients** (a patient's scans are correlated, so a patient is one unit): {}{here}; Wilson score \
         interval for the pointing game on the effective number of scans under that clustering (the number of \
         patients when there are fewer than {}, so that an added hit never narrows it). A map with no positive value \
         in the brain leaves its scan out (`n_undefined`). \
         Tables: [summary](report/tables/ground_truth_summary.md), [verdicts](report/tables/ground_truth_verdict.md), \
         [per scan](report/tables/ground_truth_per_scan.md).\n",
        crate::ground_truth::interval_rule(bootstrap, "patients"),
        crate::ground_truth::MIN_UNITS_FOR_DESIGN_EFFECT
    );
    let _ = writeln!(md, "{}", to_markdown(&ground_truth_display(&summary)?)?);
    let _ = writeln!(
        md,
        "Verdict per method: `beats_3x_chance` = mean mass accuracy ≥ {}× chance; `lower_bound_above_random` = \
         the trained model's 95 % lower bound above the randomised model's mean, both over the `paired_scans` \
         (the scans where both models' maps have a score); `passes` = both. A test without the numbers it needs \
         (no interval with fewer than 2 patients, no common scan) is empty: not judged, never passed.\n",
        crate::ground_truth::TARGET_FACTOR
    );
    let _ = writeln!(md, "{}", to_markdown(&with_na(&verdict)?)?);
    for line in crate::ground_truth::verdict_lines(&verdict, &GT_TARGET_REQUIRED, GT_TARGET_MIN_PASSING)? {
        let _ = writeln!(md, "- {line}");
    }
    Ok(Some(md.trim_end().to_string()))
}

/// A number for a Markdown table: [`format_float`], or `n/a` when it is not finite (the word the
/// sanity tables use).
fn float_or_na(v: f64) -> String {
    if v.is_finite() { format_float(v) } else { "n/a".to_string() }
}

/// `df` with every float column written as text by [`float_or_na`], for a Markdown table.
fn with_na(df: &DataFrame) -> Result<DataFrame> {
    let cols: Vec<Column> = df
        .columns()
        .iter()
        .map(|c| -> Result<Column> {
            if matches!(c.dtype(), polars::prelude::DataType::Float32 | polars::prelude::DataType::Float64) {
                let v = column_f64(df, "table", c.name())?;
                Ok(Column::new(c.name().clone(), v.into_iter().map(float_or_na).collect::<Vec<_>>()))
            } else {
                Ok(c.clone())
            }
        })
        .collect::<Result<_>>()?;
    Ok(DataFrame::new(df.height(), cols)?)
}

/// The ground-truth summary for people: per method and model, scans (patients), chance, and each
/// score as `mean [low, high]` (`n/a` for an undefined value).
pub fn ground_truth_display(summary: &DataFrame) -> Result<DataFrame> {
    const TABLE: &str = "ground_truth_summary.csv";
    let text = |c: &str| column_str(summary, TABLE, c);
    let num = |c: &str| column_f64(summary, TABLE, c);
    let f = float_or_na;
    let (scans, undefined) = (num("n_scans")?, num("n_undefined")?);
    // all null (no patient column) reads back as text
    let patients = num("n_patients").unwrap_or_else(|_| vec![f64::NAN; summary.height()]);
    let with_ci = |m: &str, lo: &str, hi: &str| -> Result<Vec<String>> {
        let (m, lo, hi) = (num(m)?, num(lo)?, num(hi)?);
        Ok((0..m.len())
            .map(|i| if m[i].is_finite() { format!("{} [{}, {}]", f(m[i]), f(lo[i]), f(hi[i])) } else { f(m[i]) })
            .collect())
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

/// The width of the paper's flatten on the 2 mm grid (97 × 115 × 97), where dropout 0.8 was
/// measured to keep the training loss at chance (docs/EXPERIMENTS.md).
const PAPER_FLATTEN_2MM: usize = 128;

/// The flatten of a trained network: its width and the input grid it was computed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flatten {
    /// Features after the four blocks (channels of the last block × remaining voxels).
    pub width: usize,
    /// The input grid `[D, H, W]`.
    pub grid: [usize; 3],
}

/// The planted regions of the synthetic cohort in words, each with its weight when the weights
/// are given (`Hippocampus (1), Amygdala (0.9), …`); both sides of each.
pub fn planted_regions(regions: &[String], weights: &[f64]) -> String {
    if regions.is_empty() {
        return "no region (no `atrophy_regions`)".to_string();
    }
    let named: Vec<String> = regions
        .iter()
        .enumerate()
        .map(|(i, r)| match weights.get(i) {
            Some(w) if weights.len() == regions.len() => format!("{r} ({w})"),
            _ => r.clone(),
        })
        .collect();
    let weighted = if weights.len() == regions.len() { ", weight in brackets" } else { "" };
    format!("{}, both hemispheres{weighted}", named.join(", "))
}

/// The definition of the ground-truth mask, with the fraction the run used where known.
pub fn truth_mask_sentence(fraction: Option<f32>) -> String {
    let threshold = match fraction {
        Some(f) => format!("{f} (`[relevance] ground_truth_fraction`) ×"),
        None => "`[relevance] ground_truth_fraction` ×".to_string(),
    };
    format!(
        "Ground-truth mask of a scan: the voxels whose planted tissue loss, on the model's grid (downsampled as \
         the scans are), is at least {threshold} the scan's largest planted loss; scores count it inside the brain \
         mask."
    )
}

/// The ways the synthetic data (effect size `effect_size`; the generator's unit effect is 1), the
/// network and the training recipe differ from the paper's, one sentence each (empty for the
/// paper's exact recipe on ADNI). `REPORT.md` is written by `reproduce-paper`, so the epochs are
/// those of its `[reproduce]` section. `flatten` is the trained network's:
/// the dropout sentence names its width, and says that the measurement behind the lower dropout
/// was made on the paper's 2 mm network when this one differs; without it the sentence names
/// only that measurement.
pub fn training_differences(effect_size: f64, training: &TrainingSetup, flatten: Option<&Flatten>) -> Vec<String> {
    const WHY: &str = "measured in docs/EXPERIMENTS.md";
    let (t, paper) = (&training.used, &training.paper);
    let mut d = Vec::new();
    if effect_size != 1.0 {
        d.push(format!(
            "Effect size {effect_size} of the synthetic cohort (the generator's unit effect is too weak for about 50 \
             training patients: the linear ceiling on the planted regions stays near 0.8; {WHY})."
        ));
    }
    if t.dropout != paper.dropout {
        let measured = format!(
            "on the paper's network at 2 mm the flatten is {PAPER_FLATTEN_2MM} wide and dropout {} keeps the training \
             loss at chance; {WHY}",
            paper.dropout
        );
        let why = match flatten {
            Some(f) if f.width == PAPER_FLATTEN_2MM && training.network.is_none() => measured,
            Some(f) => format!(
                "here the flatten is {} wide (input grid {}×{}×{}{}); the lower dropout rests on a measurement \
                 elsewhere: {measured}",
                f.width,
                f.grid[0],
                f.grid[1],
                f.grid[2],
                if training.network.is_some() { ", the network below" } else { "" }
            ),
            None => measured,
        };
        d.push(format!("Dropout {} on the flatten instead of {} ({why}).", t.dropout, paper.dropout));
    }
    if let Some(network) = &training.network {
        d.push(format!("Network: {network}."));
    }
    if t.learning_rate != paper.learning_rate {
        d.push(format!("Adam learning rate {} instead of {} ({WHY}).", t.learning_rate, paper.learning_rate));
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
    if t.weight_decay != paper.weight_decay {
        d.push(format!("Weight decay {} (the paper: none).", t.weight_decay));
    }
    if (t.cv_epochs, t.holdout_epochs) != (paper.cv_epochs, paper.holdout_epochs) {
        d.push(format!(
            "Training: {} epochs per cross-validation fold and {} for the hold-out model instead of {} (time budget on a \
             CPU; {WHY}).",
            t.cv_epochs, t.holdout_epochs, paper.cv_epochs
        ));
    }
    d
}

/// The link to the effect-size sweep in `sweep_dir` (`cargo xtask sweep`, run outside the default
/// budget), relative to `root`, or how to make it.
pub fn sweep_paragraph(sweep_dir: &Path, root: &Path, config_path: &str) -> String {
    let (png, table) = (sweep_dir.join("sweep.png"), sweep_dir.join("sweep.md"));
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
            "Not run for this config yet: `cargo xtask sweep --config {config_path} --effect-sizes 0,1,3` (about \
             one `reproduce-paper` per effect size) writes the figure to `{}`; docs/EXPERIMENTS.md records a \
             measured sweep.",
            relative_link(root, &png)
        )
    }
}

/// The differences between this configuration and the study, in words: a Markdown list, with
/// the flatten of the network actually trained where the context knows it.
pub fn differences(ctx: &ReportContext) -> String {
    let mut d = Vec::new();
    match &ctx.own_table {
        Some(table) => d.push(format!(
            "Data: the table `{}` (check that it holds the study's cohort: `cargo xtask cohort` prints the counts after each filter).",
            table.display()
        )),
        None => d.push("Data: a synthetic ADNI-like cohort with planted, known atrophy instead of ADNI (access-controlled); cohort size, visits and diagnoses are simulated.".to_string()),
    }
    if ctx.downsample != 1 {
        d.push(format!(
            "Grid: {} mm (downsampled ×{}) instead of the study's 1 mm, so the network's flatten size and receptive fields in mm differ.",
            ctx.downsample, ctx.downsample
        ));
    }
    // The effect size is the synthetic cohort's; a user's own data have none.
    let effect = if ctx.own_table.is_some() { 1.0 } else { ctx.cohort.effect_size };
    d.extend(training_differences(effect, &ctx.training, ctx.trained_flatten.as_ref()));
    d.push(format!("Hold-out: {} AD + {} CN patients (the study: 30 + 30 of 344).", ctx.holdout.0, ctx.holdout.1));
    let r = &ctx.relevance;
    d.push(format!(
        "Atlas: {} placed by {} (the study: AAL stretched onto the grid with a zoom; mean Dice 0.63 against correct placement).",
        r.atlas,
        if r.placement == Placement::Zoom { "the paper's zoom" } else { "world coordinates" }
    ));
    d.push(format!(
        "Occlusion: cube {} and stride {} voxels of the model grid, {} spread, {} evaluation (exact).",
        r.occlusion_size, r.occlusion_stride, r.occlusion_spread, r.occlusion_mode
    ));
    let (ad, cn) = (r.scans_per_ad_patient, r.scans_per_cn_patient);
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
        r.lrp_rule, r.output
    ));
    d.push(
        "Initialisation: PyTorch ≥ 1.2 defaults (BatchNorm γ = 1; the paper's PyTorch 0.3 drew γ from U(0, 1)).".into(),
    );
    d.iter().map(|s| format!("- {s}")).collect::<Vec<_>>().join("\n")
}

/// `target` as a link relative to the folder `from` (both absolute), e.g. `../../docs/X.md`;
/// the absolute path where they share no prefix.
pub fn relative_link(from: &Path, target: &Path) -> String {
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

/// The files of `dir` with extension `ext`, sorted by path; empty when `dir` cannot be read.
pub fn sorted_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == ext)).collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ground_truth::{GroundTruthScores, RANDOM, TRAINED, per_scan_frame, scan_summary, verdicts};
    use crate::tables::write_table;

    fn recipe(dropout: f64, epochs: usize) -> Recipe {
        Recipe {
            dropout,
            learning_rate: 1e-4,
            weight_decay: 0.0,
            augment_flip: false,
            augment_shift: 0,
            cv_epochs: epochs,
            holdout_epochs: epochs,
        }
    }

    fn context(workspace: &Path) -> ReportContext {
        ReportContext {
            run_name: "quick".into(),
            config_path: "configs/quick.toml".into(),
            written_on: "2025-01-31 12:00 UTC".into(),
            version: "0.1.0".into(),
            git_commit: "abc1234".into(),
            rustc: "rustc 1.90.0".into(),
            workspace_root: workspace.to_path_buf(),
            cohort_dir: "data/synth/quick".into(),
            cohort: SynthConfig { effect_size: 3.0, ..SynthConfig::default() },
            own_table: None,
            mask: "brain".into(),
            downsample: 2,
            folds: 5,
            holdout: (6, 7),
            training: TrainingSetup { used: recipe(0.5, 10), paper: recipe(0.8, 150), network: None },
            relevance: RelevanceSetup {
                atlas: "CerebrA".into(),
                placement: Placement::Zoom,
                occlusion_size: 4,
                occlusion_stride: 2,
                occlusion_spread: "block".into(),
                occlusion_mode: "batched".into(),
                scans_per_ad_patient: 1,
                scans_per_cn_patient: 0,
                lrp_rule: "epsilon".into(),
                output: "logit".into(),
                ground_truth_fraction: 0.2,
            },
            bootstrap: Bootstrap { samples: 300, seed: 7, cluster: Some("PTID".into()) },
            sweep_dir: workspace.join("results").join("quick-sweep"),
            trained_flatten: None,
        }
    }

    fn score(mass: f64, chance: f64) -> GroundTruthScores {
        GroundTruthScores {
            mass_accuracy: mass,
            rank_accuracy: mass,
            pointing_hit: Some(mass > 0.3),
            pointing_share: f64::NAN,
            chance,
        }
    }

    /// `ground_truth_summary` and `ground_truth_verdict` of `methods` (trained mass accuracy per
    /// scan, two scans per patient; the randomised model near chance) written into `tables`.
    fn ground_truth_tables(tables: &Path, methods: &[(&str, &[f64])], boot: &Bootstrap) -> DataFrame {
        let mut rows = Vec::new();
        for (m, trained) in methods {
            for (i, &v) in trained.iter().enumerate() {
                let key = |model: &str| {
                    vec![("method", m.to_string()), ("model", model.to_string()), ("PTID", format!("p{}", i / 2))]
                };
                rows.push((key(TRAINED), score(v, 0.05)));
                rows.push((key(RANDOM), score(0.05 + 0.01 * (i % 3) as f64, 0.05)));
            }
        }
        let summary = scan_summary(&per_scan_frame(&rows).unwrap(), &["method", "model"], boot).unwrap();
        write_table(&summary, tables, "ground_truth_summary").unwrap();
        write_table(&verdicts(&summary).unwrap(), tables, "ground_truth_verdict").unwrap();
        summary
    }

    #[test]
    fn a_classifier_at_chance_gets_a_warning_on_top() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        assert_eq!(chance_banner(root).unwrap(), None);
        let summary = |dir: &str, lo: f64| {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            std::fs::write(
                root.join(dir).join("summary.csv"),
                format!(
                    "metric,mean,sd,folds,pooled,ci_low,ci_high,ci_resamples,ci_level\n\
                     balanced_accuracy,0.9,0.1,5,0.9,0.8,0.95,1000,0.95\nroc_auc,0.6,0.1,5,0.62,{lo},0.8,1000,0.95\n"
                ),
            )
            .unwrap();
        };
        summary("holdout", 0.55);
        summary("cv", 0.51);
        assert_eq!(chance_banner(root).unwrap(), None);
        summary("cv", 0.45);
        let b = chance_banner(root).unwrap().unwrap();
        assert!(b.contains("not shown to beat chance") && b.contains("The cross-validation: ROC AUC 0.6200"), "{b}");
        assert!(b.contains("[0.4500, 0.8000]") && !b.contains("hold-out"), "{b}");
        summary("holdout", f64::NAN);
        assert!(chance_banner(root).unwrap().unwrap().contains("chance.** The hold-out model"));
        std::fs::write(root.join("cv").join("summary.csv"), "metric,pooled,ci_low,ci_high\naccuracy,1,1,1\n").unwrap();
        let e = chance_banner(root).unwrap_err().to_string();
        assert!(e.contains("summary.csv") && e.contains("roc_auc"), "{e}");
    }

    #[test]
    fn relative_link_climbs_to_the_common_folder() {
        let root = Path::new("/repo/results/reproduce");
        assert_eq!(relative_link(root, Path::new("/repo/docs/EXPERIMENTS.md")), "../../docs/EXPERIMENTS.md");
        assert_eq!(relative_link(root, Path::new("/repo/results/reproduce/REPORT.md")), "REPORT.md");
        assert_eq!(relative_link(root, Path::new("/other/x.png")), "../../../other/x.png");
        // nothing in common: the target as given
        assert_eq!(relative_link(root, Path::new("docs/X.md")), "docs/X.md");
    }

    #[test]
    fn ground_truth_section_says_whether_the_target_is_met() {
        let tmp = tempfile::tempdir().unwrap();
        let boot = Bootstrap { samples: 200, seed: 11, cluster: Some("PTID".into()) };
        assert!(ground_truth_markdown(&boot, tmp.path()).unwrap().is_none());
        let good: &[f64] = &[0.4, 0.5, 0.45, 0.35, 0.5, 0.42];
        let weak: &[f64] = &[0.1, 0.12, 0.09, 0.11, 0.1, f64::NAN];

        let passing = tmp.path().join("passing");
        let _ = ground_truth_tables(&passing, &[("occlusion", good), ("area-occlusion", good), ("lrp", good)], &boot);
        let md = ground_truth_markdown(&boot, &passing).unwrap().unwrap();
        assert!(md.starts_with("Every hold-out test scan with planted atrophy (AD): 6 scans of 3 patients"), "{md}");
        assert!(md.contains("(200 resamples, seed 11); here `t(PTID, 2 df)` (column `interval`)"), "{md}");
        assert!(md.contains("| occlusion | trained | 6 (3 patients) | 0.05000 |"), "{md}");
        assert!(md.contains("occlusion and area-occlusion among them): **met**. 3 of 3 methods pass"), "{md}");
        assert!(md.contains("(occlusion, area-occlusion, lrp)") && !md.contains("fails"), "{md}");

        let failing = tmp.path().join("failing");
        let _ = ground_truth_tables(&failing, &[("occlusion", good), ("area-occlusion", weak), ("lrp", good)], &boot);
        let md = ground_truth_markdown(&boot, &failing).unwrap().unwrap();
        assert!(md.contains("| area-occlusion | trained | 5 (3 patients) + 1 undefined |"), "{md}");
        assert!(md.contains("**not met**. 2 of 3 methods pass (occlusion, lrp); not passing: area-occlusion."), "{md}");
        assert!(md.contains("- **area-occlusion** fails: mean mass accuracy"), "{md}");
        assert!(md.ends_with('.') && !md.ends_with('\n'));
    }

    #[test]
    fn ground_truth_display_writes_intervals_and_patients() {
        let tmp = tempfile::tempdir().unwrap();
        let boot = Bootstrap { samples: 0, ..Bootstrap::default() };
        let summary = ground_truth_tables(tmp.path(), &[("m", &[0.5, 0.3])], &boot);
        let d = ground_truth_display(&summary).unwrap();
        let names: Vec<&str> = d.get_column_names().iter().map(|c| c.as_str()).collect();
        assert_eq!(names[..4], ["method", "model", "scans", "chance"]);
        assert_eq!(column_str(&d, "d", "scans").unwrap(), ["2 (1 patients)", "2 (1 patients)"]);
        // no resamples: NaN bounds
        assert_eq!(column_str(&d, "d", "mass accuracy [95 % CI]").unwrap()[0], "0.4000 [n/a, n/a]");
    }

    #[test]
    fn conservation_paragraph_has_a_row_per_model() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(conservation_markdown("epsilon", tmp.path()).unwrap().is_none());
        std::fs::write(
            tmp.path().join("lrp_conservation.csv"),
            "split,Image.ID,model,logit,relevance_sum\nholdout,1,trained,2.0,1.0\nholdout,2,trained,4.0,4.0\n\
             holdout,1,random,1.0,0.25\n",
        )
        .unwrap();
        let md = conservation_markdown("epsilon", tmp.path()).unwrap().unwrap();
        assert!(md.starts_with("LRP (`epsilon`) starts from the explained class's logit"), "{md}");
        assert!(
            md.contains("| trained | 2 | 0.750 | 0.500 | 1.000 |\n| random | 1 | 0.250 | 0.250 | 0.250 |\n"),
            "{md}"
        );
    }

    #[test]
    fn figures_and_tables_are_listed_in_file_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let (figs, tables) = (root.join("report/figures"), root.join("report/tables"));
        std::fs::create_dir_all(&figs).unwrap();
        std::fs::create_dir_all(&tables).unwrap();
        for f in ["roc_cv.png", "learning_curves_cv.png", "notes.txt"] {
            std::fs::write(figs.join(f), "").unwrap();
        }
        for f in ["regions.md", "regions.csv", "patients.md", "patients.csv"] {
            std::fs::write(tables.join(f), "").unwrap();
        }
        assert_eq!(sorted_files(&figs, "png"), [figs.join("learning_curves_cv.png"), figs.join("roc_cv.png")]);
        assert!(sorted_files(&root.join("absent"), "png").is_empty());
        assert_eq!(
            figures_and_tables_markdown(root),
            "## Figures\n\n### learning curves cv\n\n![learning curves cv](report/figures/learning_curves_cv.png)\n\n\
             ### roc cv\n\n![roc cv](report/figures/roc_cv.png)\n\n## Tables\n\n\
             - [patients](report/tables/patients.md) ([csv](report/tables/patients.csv))\n\
             - [regions](report/tables/regions.md) ([csv](report/tables/regions.csv))\n"
        );
    }

    #[test]
    fn sweep_paragraph_links_the_sweep_or_says_how_to_make_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, sweep) = (tmp.path().join("results/quick"), tmp.path().join("results/quick-sweep"));
        let md = sweep_paragraph(&sweep, &root, "configs/quick.toml");
        assert!(md.starts_with("Not run for this config yet") && md.contains("`../quick-sweep/sweep.png`"), "{md}");
        assert!(md.contains("`cargo xtask sweep --config configs/quick.toml --effect-sizes 0,1,3`"), "{md}");
        std::fs::create_dir_all(&sweep).unwrap();
        std::fs::write(sweep.join("sweep.png"), "").unwrap();
        let md = sweep_paragraph(&sweep, &root, "configs/quick.toml");
        assert!(md.contains("[figure](../quick-sweep/sweep.png), [table](../quick-sweep/sweep.md)"), "{md}");
        assert!(md.ends_with("![sweep](../quick-sweep/sweep.png)"), "{md}");
    }

    #[test]
    fn differences_name_what_the_config_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ctx = context(tmp.path());
        let d = differences(&ctx);
        let lines: Vec<&str> = d.lines().collect();
        assert!(lines.iter().all(|l| l.starts_with("- ")), "{d}");
        assert!(lines[1].starts_with("- Grid: 2 mm (downsampled ×2)"), "{d}");
        assert!(lines[2].starts_with("- Effect size 3 of the synthetic cohort"), "{d}");
        assert!(lines[3].starts_with("- Dropout 0.5 on the flatten instead of 0.8"), "{d}");
        assert!(
            d.contains("- Training: 10 epochs per cross-validation fold and 10 for the hold-out model instead of 150")
        );
        assert!(d.contains("- Hold-out: 6 AD + 7 CN patients"), "{d}");
        assert!(d.contains("- Atlas: CerebrA placed by the paper's zoom"), "{d}");
        assert!(d.contains("cube 4 and stride 2 voxels of the model grid, block spread, batched evaluation"), "{d}");
        assert!(d.contains("of at most 1 scan(s) of each AD and every scan of each CN test patient"), "{d}");
        assert!(d.contains("LRP (`epsilon`, explaining the logit; the other methods explain the logit)"), "{d}");

        // the paper's recipe at 1 mm: none of the training sentences
        ctx.downsample = 1;
        ctx.cohort.effect_size = 1.0;
        ctx.training.used = ctx.training.paper.clone();
        ctx.relevance.scans_per_ad_patient = 0;
        let d = differences(&ctx);
        assert_eq!(d.lines().count(), 6, "{d}");
        assert!(training_differences(1.0, &ctx.training, None).is_empty());
        ctx.training.used.augment_flip = true;
        ctx.training.used.augment_shift = 2;
        ctx.training.network = Some("channels 4, 4, 8, 8 (the paper: 8, 16, 32, 64)".into());
        assert_eq!(
            training_differences(1.0, &ctx.training, None),
            [
                "Network: channels 4, 4, 8, 8 (the paper: 8, 16, 32, 64).",
                "Augmentation (the paper: none): left–right mirroring with probability ½ and shifts of up to 2 voxels \
                 per axis."
            ]
        );

        // a user's own table: described as such, with no synthetic effect size
        let mut own = context(Path::new("/ws"));
        own.own_table = Some("/data/adni/ADNI1_Complete_2Yr_1.5T.csv".into());
        let d = differences(&own);
        assert!(d.starts_with("- Data: the table `/data/adni/ADNI1_Complete_2Yr_1.5T.csv`"), "{d}");
        assert!(!d.contains("synthetic"), "{d}");
    }

    #[test]
    fn data_section_names_the_planted_regions_and_the_mask() {
        let regions: Vec<String> = ["Hippocampus", "Inferior temporal"].iter().map(|r| r.to_string()).collect();
        assert_eq!(
            planted_regions(&regions, &[1.0, 0.5]),
            "Hippocampus (1), Inferior temporal (0.5), both hemispheres, weight in brackets"
        );
        assert_eq!(planted_regions(&regions, &[]), "Hippocampus, Inferior temporal, both hemispheres");
        assert!(
            truth_mask_sentence(Some(0.25))
                .contains("at least 0.25 (`[relevance] ground_truth_fraction`) × the scan's largest planted loss")
        );
        assert!(truth_mask_sentence(None).contains("at least `[relevance] ground_truth_fraction` × the scan's"));
        // the report's Data section, with the run's `[relevance] ground_truth_fraction`
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let mut ctx = context(root);
        ctx.relevance.ground_truth_fraction = 0.25;
        ctx.cohort.atrophy_regions = regions;
        ctx.cohort.region_weights = vec![1.0, 0.5];
        let runner = RunnerSections { stages: "", baselines: "", sanity: None };
        let md = write_report_md(&ctx, root, &runner).unwrap();
        assert!(md.contains("atrophy planted in Hippocampus (1), Inferior temporal (0.5), both hemispheres"), "{md}");
        assert!(!md.contains("medial temporal lobe"), "{md}");
        assert!(md.contains("at least 0.25 (`[relevance] ground_truth_fraction`)"), "{md}");
    }

    #[test]
    fn sanity_notes_name_constant_maps_and_scan_counts() {
        let aopc = DataFrame::new(
            6,
            vec![
                Column::new("kind".into(), ["voxels", "voxels", "voxels", "voxels", "voxels", "regions"]),
                Column::new("method".into(), ["a", "a", "gb", "gb", "gc", "gb"]),
                Column::new(
                    "ordering".into(),
                    ["relevance", "random", "relevance", "random", "relevance", "relevance"],
                ),
                Column::new("n_scans".into(), [7u64, 7, 0, 0, 5, 0]),
            ],
        )
        .unwrap();
        let note = deletion_note(&aopc).unwrap().unwrap();
        assert!(note.contains("No ranking scan, so not drawn: gb.") && note.contains("gc on 5 of 7 scans"), "{note}");
        assert!(deletion_note(&aopc.head(Some(2))).unwrap().is_none());
        let cascade = DataFrame::new(
            3,
            vec![
                Column::new("method".into(), ["a", "gb", "gb"]),
                Column::new("step".into(), ["original", "original", "dense_3"]),
                Column::new("n_scans".into(), [2u64, 2, 2]),
                Column::new("n_undefined".into(), [1u64, 2, 2]),
            ],
        )
        .unwrap();
        let note = cascade_note(&cascade).unwrap().unwrap();
        assert!(note.starts_with("Not drawn in the cascade figure: gb (2 scans):"), "{note}");
        assert!(cascade_note(&cascade.head(Some(1))).unwrap().is_none());
    }

    #[test]
    fn the_dropout_sentence_names_the_flatten_of_the_network_trained() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        // the quick run's network: 4 channels, pools 2, 2, 1, 1, kernel 3 on 40×48×40
        let f = Flatten { width: 4 * 4 * 6 * 4, grid: [40, 48, 40] };
        let mut ctx = context(root);
        let d = training_differences(1.0, &ctx.training, Some(&f)).join("\n");
        assert!(
            d.contains("Dropout 0.5 on the flatten instead of 0.8 (here the flatten is 384 wide (input grid 40×48×40)"),
            "{d}"
        );
        assert!(d.contains("on the paper's network at 2 mm the flatten is 128 wide"), "{d}");
        let paper_2mm = Flatten { width: 128, grid: [97, 115, 97] };
        let d = training_differences(1.0, &ctx.training, Some(&paper_2mm)).join("\n");
        assert!(d.contains("(on the paper's network at 2 mm the flatten is 128 wide") && !d.contains("here"), "{d}");
        ctx.training.network = Some("NetworkConfig { .. }".into());
        let d = training_differences(1.0, &ctx.training, Some(&f)).join("\n");
        assert!(d.contains("(input grid 40×48×40, the network below)"), "{d}");
        ctx.trained_flatten = Some(f);
        assert!(differences(&ctx).contains("384 wide"));
    }

    #[test]
    fn report_md_has_every_section_and_html_beside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("results").join("quick");
        let tables = root.join("report").join("tables");
        std::fs::create_dir_all(root.join("cv")).unwrap();
        std::fs::write(
            root.join("cv").join("summary.md"),
            "# Summary\n\n| metric | mean |\n|---|---:|\n| auc | 0.9 |\n",
        )
        .unwrap();
        ground_truth_tables(&tables, &[("occlusion", &[0.5, 0.4, 0.45, 0.42])], &Bootstrap::default());
        let ctx = context(tmp.path());
        let runner = RunnerSections {
            stages: "| stage | seconds | what |\n",
            baselines: "## Baselines (linear, same folds)\n\nNot computed.\n\n",
            sanity: None,
        };
        let md = write_report_md(&ctx, &root, &runner).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("REPORT.md")).unwrap(), md);
        assert!(root.join("REPORT.html").is_file());
        assert!(md.starts_with(
            "# Reproduction of Rieke et al. 2018 — `quick`\n\nWritten by `cargo xtask reproduce-paper` on \
             2025-01-31 12:00 UTC from `configs/quick.toml`"
        ));
        assert!(md.contains("- adni-relevance 0.1.0 (git abc1234)\n"), "{md}");
        assert!(md.contains("`data/synth/quick`: Real anatomy"), "{md}");
        assert!(md.contains("[docs/EXPERIMENTS.md](../../docs/EXPERIMENTS.md)"), "{md}");
        assert!(md.contains("### 5-fold cross-validation over patients\n\n#### Summary\n"), "{md}");
        let headings = [
            "## Versions",
            "## Data",
            "## Timings (this machine)",
            "## Classification",
            "## Baselines (linear, same folds)",
            "## Figures",
            "## Tables",
            "## Relevance against the planted atrophy",
            "## Can the maps be trusted?",
            "## Dose–response and null check",
            "## What differs from the paper",
        ];
        let at: Vec<usize> = headings.iter().map(|h| md.find(h).unwrap_or_else(|| panic!("{h}: {md}"))).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
        assert!(md.contains("`cargo xtask sanity --run results/quick/holdout`"), "{md}");
        assert!(!md.contains("## LRP conservation"));
    }
}
