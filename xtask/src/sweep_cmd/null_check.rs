//! The null check of a sweep: the effect-0 run's maps scored against the planted atrophy of the
//! same scans at the reference effect size (see the parent module).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use ndarray::Array3;
use polars::prelude::{Column, DataFrame};

use adni_data::preprocess::downsample_mask;
use adni_data::run_layout::{RelevanceLayout, RunLayout};
use adni_data::synth::GroundTruth;
use adni_data::volume::read_volume;
use report::ground_truth::{GroundTruthScores, per_scan_frame, score_map};
use report::tables::{column_str, read_csv, write_table};

use crate::config::{ProjectConfig, resolve};

/// The hold-out relevance folder of a run.
fn relevance_dir(cfg: &ProjectConfig) -> RelevanceLayout {
    RunLayout::new(cfg.run.dir().join("holdout")).relevance()
}

/// A complete interpretation without the per-scan maps the null check needs (computed before
/// they were asked for) loses its completion marker, so that the interpretation stage redoes it.
pub(super) fn drop_stale_relevance(cfg: &ProjectConfig) -> Result<()> {
    let rel = relevance_dir(cfg);
    let marker = rel.complete();
    let missing = cfg.relevance.methods.iter().any(|m| !rel.scan_map(m.name(), 0).parent().is_some_and(Path::is_dir));
    if marker.exists() && missing {
        eprintln!("sweep: {} lacks the per-scan maps of the null check; recomputing it", rel.dir().display());
        std::fs::remove_file(&marker).with_context(|| format!("cannot remove {}", marker.display()))?;
    }
    Ok(())
}

/// Scores the trained model's per-scan maps of the null-effect run `cfg` against the atrophy
/// masks of the same scans in the cohort of `reference` (see the module documentation); writes
/// `<run>/null_check/ground_truth_per_scan.{csv,md}` and `ground_truth_summary.{csv,md}`
/// (`method`, `model`, `n_scans`, `chance`, `mass_accuracy`) and returns the summary's path.
pub(super) fn null_check(cfg: &ProjectConfig, reference: &ProjectConfig) -> Result<PathBuf> {
    let rel = relevance_dir(cfg);
    let scans_csv = rel.scans();
    let scans = read_csv(&scans_csv).with_context(|| format!("cannot read {}", scans_csv.display()))?;
    let file = scans_csv.display().to_string();
    let (ids, ptids) = (column_str(&scans, &file, "Image.ID")?, column_str(&scans, &file, "PTID")?);

    let ref_root = resolve(&reference.synth.out_dir);
    let gt_csv = ref_root.join(adni_data::synth::GROUND_TRUTH_DIR).join(adni_data::synth::SCANS_FILE);
    let gt = read_csv(&gt_csv).with_context(|| format!("cannot read {}", gt_csv.display()))?;
    let gt_file = gt_csv.display().to_string();
    let (gt_ids, gt_ptids) = (column_str(&gt, &gt_file, "Image.ID")?, column_str(&gt, &gt_file, "PTID")?);
    let truth = GroundTruth::of_cohort(&ref_root, &resolve(&reference.data.table))?.ok_or_else(|| {
        anyhow!("{}: the reference config's data table is not its synthetic cohort's", gt_csv.display())
    })?;

    let p = &cfg.preprocess;
    let brain: Option<Array3<bool>> = match p.mask_path() {
        Some(m) => {
            let (mask, _, _) =
                read_volume(&m).with_context(|| format!("cannot read the brain mask {}", m.display()))?;
            Some(downsample_mask(&mask, p.downsample.max(1)).data.mapv(|v| v > 0.5))
        }
        None => None,
    };
    let fraction = cfg.relevance.ground_truth_fraction;
    let mut rows: Vec<(Vec<(&str, String)>, GroundTruthScores)> = Vec::new();
    for (id, ptid) in ids.iter().zip(&ptids) {
        let Some(g) = gt_ids.iter().position(|x| x == id) else {
            bail!(
                "{file}: Image.ID {id} is not in the reference cohort's {gt_file}; were both generated with one seed?"
            );
        };
        if &gt_ptids[g] != ptid {
            bail!(
                "Image.ID {id} belongs to {ptid} in {file} but to {} in {gt_file}; the cohorts differ in more than the \
                 effect size",
                gt_ptids[g]
            );
        }
        let image_id: i64 =
            id.parse().map_err(|_| anyhow!("{}: Image.ID `{id}` is not an integer", scans_csv.display()))?;
        // None: not written, or nothing planted in this scan (CN) at any effect size.
        let Some(mask) = truth.mask(image_id, p.downsample, fraction)? else {
            continue;
        };
        for m in &cfg.relevance.methods {
            let path = rel.scan_map(m.name(), image_id);
            let (map, _, _) = read_volume(&path).with_context(|| {
                format!("the null check needs the per-scan map {}; rerun the sweep with --force", path.display())
            })?;
            let s = score_map(map.data.view(), mask.view(), brain.as_ref().map(|b| b.view()))
                .with_context(|| format!("scoring {}", path.display()))?;
            let keys = vec![
                ("method", m.name().to_string()),
                ("model", "trained".to_string()),
                ("PTID", ptid.clone()),
                ("Image.ID", id.clone()),
            ];
            rows.push((keys, s));
        }
    }
    if rows.is_empty() {
        bail!("no explained scan of {file} has planted atrophy in the reference cohort; nothing to score");
    }
    let dir = cfg.run.dir().join("null_check");
    write_table(&per_scan_frame(&rows)?, &dir, "ground_truth_per_scan")?;
    let summary = null_summary(&rows)?;
    let (csv, _) = write_table(&summary, &dir, "ground_truth_summary")?;
    let mut text = String::new();
    for (m, n) in column_str(&summary, "summary", "method")?.iter().zip(column_str(&summary, "summary", "n_scans")?) {
        let _ = write!(text, " {m} ({n} scans)");
    }
    eprintln!("sweep: null check scored{text} → {}", dir.display());
    Ok(csv)
}

/// Per method (order of first appearance): the number of scans with a defined mass accuracy
/// (`n_scans`), and over those scans the mean mass accuracy and the mean chance level (wide,
/// like the report's summary).
pub(super) fn null_summary(rows: &[(Vec<(&str, String)>, GroundTruthScores)]) -> Result<DataFrame> {
    let mut methods: Vec<String> = Vec::new();
    for (k, _) in rows {
        if !methods.contains(&k[0].1) {
            methods.push(k[0].1.clone());
        }
    }
    let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    let (mut n, mut chance, mut mass) = (Vec::new(), Vec::new(), Vec::new());
    for m in &methods {
        let of_method: Vec<&GroundTruthScores> = rows.iter().filter(|(k, _)| &k[0].1 == m).map(|(_, s)| s).collect();
        let defined: Vec<&&GroundTruthScores> = of_method.iter().filter(|s| s.mass_accuracy.is_finite()).collect();
        n.push(defined.len() as u64);
        mass.push(mean(&defined.iter().map(|s| s.mass_accuracy).collect::<Vec<_>>()));
        // over the same scans as the mass accuracy it is compared with, as the report's summary
        // (`report::ground_truth::scan_summary`) and so every other row of the sweep does
        chance.push(mean(&defined.iter().map(|s| s.chance).filter(|v| v.is_finite()).collect::<Vec<_>>()));
    }
    let h = methods.len();
    Ok(DataFrame::new(
        h,
        vec![
            Column::new("method".into(), methods),
            Column::new("model".into(), vec!["trained"; h]),
            Column::new("n_scans".into(), n),
            Column::new("chance".into(), chance),
            Column::new("mass_accuracy".into(), mass),
        ],
    )?)
}
