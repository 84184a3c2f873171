//! `cargo xtask sweep`: the null check and dose–response curve of the study.
//!
//! For each effect size e of `--effect-sizes` the config is derived with `[synth] effect_size = e`,
//! its own cohort folder `<[synth] out_dir>-effect-<e>` (the `[data]` and `[preprocess] mask`
//! paths inside the cohort folder follow it; the preprocessing cache is keyed by each scan's
//! path, size and time, so cohorts never share entries) and its own run `<out>/effect-<e>/`; then
//! `reproduce-paper`'s stages run on it (data, CV, hold-out, interpretation, report), skipping
//! complete ones. Outputs in `<out>/` (default `<[run] results_dir>/<[run] name>-sweep`):
//!
//! | path | what |
//! |---|---|
//! | `effect-<e>/` | the reproduction at effect size e (`reproduce-paper`'s layout, `REPORT.md` included) |
//! | `effect-0/null_check/` | the null check's per-scan and summary ground-truth tables (see below) |
//! | `sweep.csv`, `sweep.md` | one row per effect size: CV balanced accuracy (mean ± SD) and ROC AUC, hold-out balanced accuracy and AUC, per method the trained and randomised-weights mass accuracy and its chance level, the ground truth used, seconds |
//! | `sweep.png` | CV balanced accuracy (± SD) and each method's mass accuracy against the effect size, chance dashed |
//! | `resolved_config.toml` | the base config |
//!
//! **Null check.** At effect size 0 nothing is planted, so every atrophy map is empty and the
//! run's report has no ground-truth scores. The generator draws patients, anatomy, scans and
//! severities from the seed alone (the effect size only scales the planted amounts), so the
//! effect-0 cohort holds the same patients and scans as every other cohort of the sweep. Its
//! hold-out maps are therefore kept per scan (`save_scan_maps`) and scored against the atrophy
//! masks of the same scans in a non-zero cohort of the sweep (effect 1, else the one closest to
//! 1), with the mask definition of `interpret` (planted loss ≥ `ground_truth_fraction` × the
//! scan's maximum, on the model grid) over the brain mask's voxels. Only the trained model's
//! maps are kept per scan, so the randomised-weights column is n/a at effect 0; `sweep.md` compares
//! each method's effect-0 ratio to chance with the randomised-weights network's ratio at the
//! reference effect size (a network that knows nothing either: the method's spatial prior).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;

use adni_data::run_layout::RunLayout;
use report::sweep::{SweepPoint, read_classification_summary, read_mass_accuracy};

use crate::commands::{find_config, load_config_file};
use crate::config::{ProjectConfig, resolve};
use crate::reproduce_cmd::reproduce_with;

mod null_check;

#[cfg(test)]
use null_check::null_summary;
use null_check::{drop_stale_relevance, null_check};

/// Arguments of `cargo xtask sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Base config (default `configs/reproduce.toml`, or `configs/reproduce-quick.toml` with
    /// --quick); its [synth] section must generate the cohort that [data] reads
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The small, fast variant (the tiny phantom cohort of `reproduce-paper --quick`)
    #[arg(long, conflicts_with = "config")]
    pub quick: bool,
    /// Effect sizes of the planted atrophy, comma-separated (0 = the null check)
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,1,2")]
    pub effect_sizes: Vec<f64>,
    /// Output folder (default `<[run] results_dir>/<[run] name>-sweep`; relative to the project
    /// root)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Redo every stage of every effect size even if its outputs are complete
    #[arg(long)]
    pub force: bool,
}

/// The sweep's output folder when `--out` is not given: `<[run] results_dir>/<[run] name>-sweep`
/// (`REPORT.md` of the base run links its figure from there).
pub(crate) fn default_out(base: &ProjectConfig) -> PathBuf {
    resolve(&base.run.results_dir).join(format!("{}-sweep", base.run.name))
}

/// `cargo xtask sweep`.
pub fn sweep(args: &SweepArgs) -> Result<()> {
    let started = Instant::now();
    let default = if args.quick { "configs/reproduce-quick.toml" } else { "configs/reproduce.toml" };
    let config_path = find_config(args.config.as_deref().unwrap_or(Path::new(default)))?;
    let base = load_config_file(&config_path)?;
    let effects = checked_effect_sizes(&args.effect_sizes)?;
    let reference = null_reference(&effects)?;
    let out = match &args.out {
        Some(o) => resolve(o),
        None => default_out(&base),
    };
    let configs: Vec<(f64, ProjectConfig)> =
        effects.iter().map(|&e| Ok((e, effect_config(&base, e, &out)?))).collect::<Result<_>>()?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    base.write_resolved(&out)?;

    let mut seconds: Vec<f64> = Vec::with_capacity(configs.len());
    for (k, (e, cfg)) in configs.iter().enumerate() {
        eprintln!("\n##### sweep: effect size {e} ({}/{}) → {}", k + 1, configs.len(), cfg.run.dir().display());
        if *e == 0.0 {
            drop_stale_relevance(cfg)?;
        }
        let outcome =
            reproduce_with(cfg, &config_path, args.force).with_context(|| format!("sweep: effect size {e}"))?;
        let compute: f64 = outcome.stages.iter().map(|s| s.seconds).sum();
        eprintln!("sweep: effect size {e}: {compute:.0} s of stages ({:.0} s in this call)", outcome.wall_seconds);
        seconds.push(compute);
    }

    // Collect one row per effect size.
    let mut points: Vec<SweepPoint> = Vec::with_capacity(configs.len());
    for ((e, cfg), secs) in configs.iter().zip(seconds) {
        let run = cfg.run.dir();
        let (cv, holdout) = (RunLayout::new(run.join("cv")), RunLayout::new(run.join("holdout")));
        let cv = read_classification_summary(&cv.summary_csv())?;
        let holdout = read_classification_summary(&holdout.summary_csv())?;
        let (summary, truth, extra) = if *e == 0.0 {
            let r = reference.ok_or_else(|| anyhow!("no reference effect size for the null check"))?;
            let (_, ref_cfg) =
                configs.iter().find(|(x, _)| *x == r).ok_or_else(|| anyhow!("effect size {r} not run"))?;
            let t = Instant::now();
            let path = null_check(cfg, ref_cfg).context("sweep: null check at effect size 0")?;
            (path, format!("effect-{} masks (null check)", effect_label(r)), t.elapsed().as_secs_f64())
        } else {
            (run.join("report").join("tables").join("ground_truth_summary.csv"), "planted".to_string(), 0.0)
        };
        let mass = read_mass_accuracy(&summary)
            .with_context(|| format!("sweep: effect size {e}: cannot read the ground-truth summary"))?;
        points.push(SweepPoint { effect_size: *e, cv, holdout, mass, truth, seconds: secs + extra });
    }

    let total = started.elapsed().as_secs_f64();
    let heading = format!(
        "# Effect-size sweep: `{}`\n\nWritten by `cargo xtask sweep` from `{}` (resolved: \
         [resolved_config.toml](resolved_config.toml)): one reproduction per effect size of the planted atrophy, \
         in `effect-<e>/` (each with its own `REPORT.md`).\n\n![sweep](sweep.png)",
        base.run.name,
        config_path.strip_prefix(crate::config::workspace_root()).unwrap_or(&config_path).display()
    );
    let mut notes = vec![
        "Mass accuracy: the mean over the hold-out test scans with planted atrophy of the share of positive \
         relevance inside the truth mask; chance is the mask's share of the scored voxels, what a map uniform over \
         the brain scores."
            .to_string(),
        "Seconds: the reproduction's stage times at that effect size (a stage found complete counts the time of \
         the call that computed it)."
            .to_string(),
    ];
    if let Some(r) = reference {
        notes.push(format!(
            "Effect size 0 plants nothing, so its maps are scored against the atrophy masks of the same scans in the \
             effect-{} cohort (same seed: same patients, anatomy and scans; tables in `effect-0/null_check/`). Only \
             the trained model's maps are kept per scan, so the randomised-weights value is n/a there; the null \
             check compares the trained ratio with the randomised-weights network's at that effect size, which \
             knows nothing either and so shows the method's spatial prior.",
            effect_label(r)
        ));
    }
    let footer = format!("\nWall time of this call: {total:.0} s.\n");
    let (csv, md) = report::sweep::write_sweep(&points, &out, &heading, &notes, &footer)?;
    let png = out.join("sweep.png");
    report::figures::sweep_chart(&points, (1600, 700), &png)?;
    outln!("{}", std::fs::read_to_string(&md).unwrap_or_default());
    outln!("sweep: done in {total:.0} s → {}, {}, {}", csv.display(), md.display(), png.display());
    Ok(())
}

/// The effect sizes sorted; errors on an empty list, a negative or non-finite value, or a repeat.
fn checked_effect_sizes(given: &[f64]) -> Result<Vec<f64>> {
    if given.is_empty() {
        bail!("--effect-sizes is empty; give at least one, e.g. --effect-sizes 0,1");
    }
    if let Some(bad) = given.iter().find(|e| !e.is_finite() || **e < 0.0) {
        bail!("--effect-sizes: {bad} is not a finite number ≥ 0");
    }
    let mut e = given.to_vec();
    e.sort_by(f64::total_cmp);
    if let Some(w) = e.windows(2).find(|w| w[0] == w[1]) {
        bail!("--effect-sizes: {} is given twice", w[0]);
    }
    Ok(e)
}

/// The non-zero effect size whose masks the null check (effect 0) borrows: 1 if swept, else the
/// one closest to 1. `None` without effect 0; an error when 0 is the only effect size.
fn null_reference(effects: &[f64]) -> Result<Option<f64>> {
    if !effects.contains(&0.0) {
        return Ok(None);
    }
    match report::sweep::reference_effect(effects) {
        Some(r) => Ok(Some(r)),
        None => bail!(
            "effect size 0 alone has no ground truth: its maps are scored against the atrophy masks of a non-zero \
             effect size of the same sweep; add one (e.g. --effect-sizes 0,1)"
        ),
    }
}

/// `0.25` → `0.25`, `1` → `1`: the effect size in folder names.
fn effect_label(e: f64) -> String {
    format!("{e}")
}

/// The config of one effect size: `[synth] effect_size = e`, the cohort in
/// `<out_dir>-effect-<e>` (with the `[data]` and `[preprocess] mask` paths that lie inside the
/// cohort folder moved along), the run `<out>/effect-<e>`, at effect 0 the per-scan maps kept
/// for the null check, and no `[sanity]` checks. Errors when `[data] table` is not the config's synthetic cohort.
fn effect_config(base: &ProjectConfig, e: f64, out: &Path) -> Result<ProjectConfig> {
    let mut c = base.clone();
    c.synth.params.effect_size = e;
    c.synth.params.validate().context("[synth] with the swept effect size")?;
    let old_root = resolve(&base.synth.out_dir);
    let new_root = PathBuf::from(format!("{}-effect-{}", base.synth.out_dir.display(), effect_label(e)));
    // A path inside the cohort folder, moved to the new one (relative stays relative).
    let moved =
        |p: &Path| -> Option<PathBuf> { resolve(p).strip_prefix(&old_root).ok().map(|rest| new_root.join(rest)) };
    let not_synthetic = |key: &str, p: &Path| {
        anyhow!(
            "sweep generates one synthetic cohort per effect size, but [data] {key} = {} is not inside [synth] \
             out_dir = {}; point [data] at the config's synthetic cohort",
            p.display(),
            base.synth.out_dir.display()
        )
    };
    c.data.table = moved(&base.data.table).ok_or_else(|| not_synthetic("table", &base.data.table))?;
    c.data.images = moved(&base.data.images).ok_or_else(|| not_synthetic("images", &base.data.images))?;
    if !base.data.known_corrupt_file.is_empty()
        && let Some(p) = moved(Path::new(&base.data.known_corrupt_file))
    {
        c.data.known_corrupt_file = p.display().to_string();
    }
    if let Some(p) = base.preprocess.mask_path().and_then(|m| moved(&m)) {
        c.preprocess.mask = p.display().to_string();
    }
    c.synth.out_dir = new_root;
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("--out {} has no folder name", out.display()))?;
    c.run.results_dir = out.parent().map(Path::to_path_buf).unwrap_or_default();
    c.run.name = format!("{name}/effect-{}", effect_label(e));
    if e == 0.0 {
        c.relevance.save_scan_maps = true;
    }
    // The dose–response needs the classifier and the ground-truth scores, not the sanity checks
    // (about ten more minutes per effect size); `cargo xtask sanity` runs them on any point.
    c.sanity.cascade = false;
    c.sanity.data_randomisation = false;
    c.sanity.faithfulness = false;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use report::ground_truth::GroundTruthScores;
    use report::tables::column_str;

    #[test]
    fn effect_sizes_are_sorted_and_checked() {
        assert_eq!(checked_effect_sizes(&[1.0, 0.0, 0.25]).unwrap(), vec![0.0, 0.25, 1.0]);
        assert!(checked_effect_sizes(&[]).is_err());
        assert!(checked_effect_sizes(&[-1.0]).unwrap_err().to_string().contains("-1"));
        assert!(checked_effect_sizes(&[f64::NAN]).is_err());
        assert!(checked_effect_sizes(&[1.0, 1.0]).unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn the_null_check_borrows_effect_one_or_the_closest() {
        assert_eq!(null_reference(&[0.0, 0.25, 0.5, 1.0, 2.0]).unwrap(), Some(1.0));
        assert_eq!(null_reference(&[0.0, 0.5, 2.0]).unwrap(), Some(0.5));
        // a tie goes to the larger effect (clearer masks)
        assert_eq!(null_reference(&[0.0, 0.5, 1.5]).unwrap(), Some(1.5));
        assert_eq!(null_reference(&[0.5, 1.0]).unwrap(), None);
        assert!(null_reference(&[0.0]).unwrap_err().to_string().contains("add one"));
    }

    fn quick() -> ProjectConfig {
        let text = std::fs::read_to_string(crate::config::workspace_root().join("configs/reproduce-quick.toml"))
            .expect("quick config");
        ProjectConfig::from_toml(&text, Path::new("reproduce-quick.toml")).expect("parses")
    }

    #[test]
    fn derived_config_moves_the_cohort_and_its_paths() {
        let base = quick();
        let out = Path::new("/tmp/x/reproduce-quick-sweep");
        let c = effect_config(&base, 0.25, out).unwrap();
        assert_eq!(c.synth.params.effect_size, 0.25);
        assert_eq!(c.synth.out_dir, Path::new("data/synth/quick-effect-0.25"));
        assert_eq!(c.data.table, Path::new("data/synth/quick-effect-0.25/ADNI_synth_1.5T.csv"));
        assert_eq!(c.data.images, Path::new("data/synth/quick-effect-0.25/images"));
        assert_eq!(c.data.known_corrupt_file, "data/synth/quick-effect-0.25/known_corrupt.txt");
        assert_eq!(c.preprocess.mask, "data/synth/quick-effect-0.25/brain_mask.nii.gz");
        assert_eq!(c.run.dir(), Path::new("/tmp/x/reproduce-quick-sweep/effect-0.25"));
        assert!(!c.relevance.save_scan_maps);
        // everything else is the base config's
        assert_eq!(
            (c.train.clone(), c.model.clone(), c.split.clone()),
            (base.train.clone(), base.model.clone(), base.split.clone())
        );
        assert!(effect_config(&base, 0.0, out).unwrap().relevance.save_scan_maps);
    }

    #[test]
    fn a_config_that_does_not_read_its_synthetic_cohort_is_refused() {
        let mut base = quick();
        base.data.table = "/data/adni/table.csv".into();
        let e = effect_config(&base, 1.0, Path::new("/tmp/s")).unwrap_err().to_string();
        assert!(e.contains("[data] table") && e.contains("/data/adni/table.csv"), "{e}");
    }

    #[test]
    fn null_summary_averages_defined_scans_per_method() {
        let s = |mass: f64, chance: f64| GroundTruthScores {
            mass_accuracy: mass,
            rank_accuracy: f64::NAN,
            pointing_hit: None,
            pointing_share: f64::NAN,
            chance,
        };
        let k = |m: &str| vec![("method", m.to_string())];
        let rows =
            vec![(k("a"), s(0.2, 0.1)), (k("b"), s(0.5, 0.1)), (k("a"), s(0.4, 0.3)), (k("a"), s(f64::NAN, 0.9))];
        let df = null_summary(&rows).unwrap();
        let m = report::sweep::mass_accuracy_of(&df, "null").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].method, "a");
        assert!((m[0].trained - 0.3).abs() < 1e-12 && (m[0].chance - 0.4 / 2.0).abs() < 1e-12, "{m:?}");
        assert!(m[0].random.is_nan());
        assert_eq!(column_str(&df, "t", "n_scans").unwrap(), vec!["2", "1"]);
    }
}
