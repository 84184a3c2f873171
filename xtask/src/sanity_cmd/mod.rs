//! `cargo xtask sanity`: can the relevance maps be trusted? The standard checks, on the AD test
//! scans of a trained hold-out run, for every method of `[relevance] methods`:
//!
//! - **cascading model-parameter randomisation** (on `[sanity] cascade_scans_per_patient` scans
//!   of each AD patient) (Adebayo et al. 2018, "Sanity Checks for
//!   Saliency Maps"): the layers are replaced by freshly initialised ones from the output down
//!   (`dense_3`, `dense_2`, `dense_1`, `block4` … `block1`); after each step every method's map
//!   is compared with the trained model's map of the same scan and class (Spearman rank
//!   correlation and SSIM inside the brain mask). A map that survives full randomisation does
//!   not depend on what the model learned.
//! - **data randomisation**: a hold-out model trained on shuffled labels (the training patients'
//!   labels permuted, the same epochs; `cargo xtask train`'s layout in `sanity/shuffled/`); its
//!   test metrics against the true labels, its maps compared with the real model's and scored
//!   against the planted ground truth.
//! - **faithfulness** (Samek et al. 2017, region perturbation): voxels deleted most relevant
//!   first (shares `[sanity] fractions` of the brain) and, separately, whole atlas regions (the
//!   highest mean relevance first, `[sanity] region_steps` of them), set to the occlusion value
//!   (`[relevance.occlusion] value`); P(explained class) after each step, against
//!   `[sanity] random_orders` seeded random orders of the same voxels or regions; AOPC per curve.
//!
//! Writes `<run>/sanity/` ([`adni_data::run_layout::SanityLayout`]; the columns are those of the
//! row types of [`report::sanity_tables`]):
//!
//! | path | what |
//! |---|---|
//! | `cascade.csv` | `step`, `layer`, `method`, `PTID`, `Image.ID`, `spearman`, `ssim`, `trained_map_ranks` (false: the trained map is constant on the brain, so its similarities are NaN) |
//! | `data_randomisation.csv` | `method`, `PTID`, `Image.ID`, `spearman`, `ssim` (NaN where the trained map is constant), `mass_accuracy`, `rank_accuracy`, `pointing_hit`, `truth_fraction` (NaN without a ground truth) |
//! | `shuffled_model.csv` | `model`, `n_scans`, `accuracy`, `balanced_accuracy`, `roc_auc`: `trained` and `shuffled` on the test scans against the true labels; `shuffled_fit`: the shuffled-label model on its own training scans against the shuffled labels it was trained with (how well it fitted them) |
//! | `shuffled/` | the shuffled-label model (`cargo xtask train`'s layout) |
//! | `deletion.csv` | `kind` (`voxels`, `regions`), `method`, `ordering` (`relevance`, `random`: mean over the random orders, repeated under every method), `PTID`, `Image.ID`, `step`, `fraction`, `score`, `ranks_voxels` (false: the method's map is constant on the brain, so its deletion order is only the tie-break; set on the random rows under that method too) |
//! | `aopc.csv` | `kind`, `method`, `ordering`, `PTID`, `Image.ID`, `aopc` (NaN for both orderings where the map ranks no voxel, so a method and the random order are compared on the same scans) |
//! | `timing.csv` | seconds per part |
//! | `resolved_config.toml`, `complete.json` | the config used; written last: the checks are complete (parts, files, methods, scans, and under `inputs` a fingerprint of the model, the `[relevance]` and `[sanity]` settings and what the shuffled-label model is trained with) |
//!
//! A folder whose `complete.json` holds every requested check and the same `inputs` is complete
//! and skipped; one written for another model or settings (or by a version that recorded no
//! `inputs`) is recomputed, its earlier outputs removed first, and the shuffled-label model
//! retrained when the model or its training settings differ.
//!
//! The trained model's maps are read from `relevance/maps/scans/` where `interpret` saved them
//! (`save_scan_maps`) for the same model and `[relevance]` settings, and computed otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use ndarray::Array3;

use adni_data::fsutil::{write_bytes_atomically, write_csv_atomically};
use adni_data::run_layout::{RelevanceLayout, RunLayout, TIMING_FILE};
use adni_data::splits::SplitSet;
use model::{ClassificationModel3D, Cpu};
use relevance::methods::{MethodParams, to_tensor};
use report::sanity_tables::{AopcRow, CascadeRow, DataRandomisationRow, DeletionRow, PartSeconds, ShuffledModelRow};
use report::similarity::{spearman, ssim};

use crate::commands::{cohort_of, load_config_file};
use crate::config::ProjectConfig;
use crate::inputs::{
    Completion, INPUTS_KEY, ScanInputs, as_stored_json, checked_split, completion, find_run, fold_fingerprint,
    load_fold, read_marker, remove_outputs, split_items, test_items,
};
use crate::interpret_cmd::{Params, marker_completion};
use crate::relevance_config::Method;

mod faithfulness;
mod randomisation;
mod scans;

use faithfulness::faithfulness_check;
use randomisation::{
    cascade_check, data_randomisation_check, shuffled_config, shuffled_fit, shuffled_metrics, train_shuffled,
};
use scans::{Scan, ad_scans, trained_maps};

/// Arguments of `cargo xtask sanity`.
#[derive(Args, Debug, Default)]
pub struct SanityArgs {
    /// A trained hold-out run (`results/<run>/holdout`, or `cargo xtask train`'s folder of a
    /// hold-out config)
    #[arg(long)]
    pub run: PathBuf,
    /// Config whose [relevance] and [sanity] sections to use instead of the run's resolved config
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Recompute even if `sanity/complete.json` says the checks are there
    #[arg(long)]
    pub force: bool,
    /// Skip the cascading model-parameter randomisation
    #[arg(long)]
    pub no_cascade: bool,
    /// Skip the data randomisation (no shuffled-label model)
    #[arg(long)]
    pub no_data_randomisation: bool,
    /// Skip the deletion curves
    #[arg(long)]
    pub no_faithfulness: bool,
}

pub use adni_data::run_layout::{AOPC_FILE, CASCADE_FILE, DATA_RANDOMISATION_FILE, DELETION_FILE, SHUFFLED_MODEL_FILE};

/// SSIM window (voxels), scikit-image's default.
const SSIM_WINDOW: usize = 7;

/// What one call did.
#[derive(Debug)]
pub struct SanityOutcome {
    /// `<run>/sanity`.
    pub dir: PathBuf,
    /// Whether the outputs were already complete (nothing computed).
    pub skipped: bool,
    /// Seconds per part that ran.
    pub parts: Vec<(&'static str, f64)>,
    /// AD scans checked.
    pub scans: usize,
}

/// `cargo xtask sanity`.
pub fn sanity(args: &SanityArgs) -> Result<()> {
    let outcome = run_sanity(args)?;
    if !outcome.skipped {
        for (part, secs) in &outcome.parts {
            eprintln!("  {part:<20} {secs:>8.1} s");
        }
        eprintln!("sanity: wrote {}", outcome.dir.display());
    }
    Ok(())
}

/// The checks on a run folder; see the module documentation.
pub(crate) fn run_sanity(args: &SanityArgs) -> Result<SanityOutcome> {
    let run = RunLayout::new(find_run(&args.run)?);
    let resolved = run.resolved_config();
    let mut cfg = match &args.config {
        Some(c) => load_config_file(c)?,
        None => {
            if !resolved.exists() {
                bail!("{} is not a training run folder: it has no resolved_config.toml", run.root().display());
            }
            ProjectConfig::load(&resolved)?
        }
    };
    let s = &mut cfg.sanity;
    s.cascade &= !args.no_cascade;
    s.data_randomisation &= !args.no_data_randomisation;
    s.faithfulness &= !args.no_faithfulness;
    s.validate()?;
    let s = cfg.sanity.clone();
    let out = run.sanity();
    let wanted: Vec<&str> =
        [("cascade", s.cascade), ("data-randomisation", s.data_randomisation), ("faithfulness", s.faithfulness)]
            .into_iter()
            .filter_map(|(n, on)| on.then_some(n))
            .collect();
    if wanted.is_empty() {
        eprintln!("sanity: every check is switched off ([sanity] cascade, data_randomisation, faithfulness)");
        return Ok(SanityOutcome { dir: out.dir().to_path_buf(), skipped: true, parts: vec![], scans: 0 });
    }
    let _lock = crate::commands::lock_folder(out.dir())?;
    let params = Params::new(cfg.relevance.clone())?;
    let methods = params.section.methods.clone();
    let split = if params.section.split.is_empty() { "holdout".to_string() } else { params.section.split.clone() };
    let fold = run.fold(&split);
    if !fold.is_finished() {
        bail!(
            "{} has no finished `{split}` model ({} has no fold_result.json): train it first",
            run.root().display(),
            fold.dir().display()
        );
    }
    // What the checks depend on (a split file rewritten after training is an error here).
    let model_fp = fold_fingerprint(&run, &split)?;
    let inputs_fp = sanity_inputs(&cfg, &params, &split, &model_fp)?;
    let previous = if args.force {
        None
    } else {
        read_marker(&out.complete())?.map(|done| completion(&done, "parts", &wanted, &inputs_fp))
    };
    let mut retrain = args.force && s.data_randomisation;
    match previous {
        Some(Completion::Complete { scans }) => {
            eprintln!("sanity: {} is complete (use --force to recompute)", out.dir().display());
            return Ok(SanityOutcome { dir: out.dir().to_path_buf(), skipped: true, parts: vec![], scans });
        }
        Some(Completion::Stale { differing }) => {
            eprintln!(
                "sanity: {} holds checks of other inputs (differing: {}): recomputing them",
                out.dir().display(),
                differing.join(", ")
            );
            // The shuffled-label model is trained like the trained one, with the sanity seed.
            retrain |=
                differing.iter().any(|d| d == INPUTS_KEY || d.starts_with("models.") || d.starts_with("shuffled."));
        }
        None => {}
    }
    // A new computation: nothing of the earlier one stays beside the new outputs.
    remove_outputs(
        &[
            CASCADE_FILE,
            DATA_RANDOMISATION_FILE,
            SHUFFLED_MODEL_FILE,
            DELETION_FILE,
            AOPC_FILE,
            TIMING_FILE,
            adni_data::run_layout::RESOLVED_CONFIG_FILE,
        ]
        .iter()
        .map(|f| out.file(f))
        .chain([out.complete()])
        .collect::<Vec<_>>(),
        &[],
    )?;
    if retrain {
        // Recompute means retrain: the shuffled-label model of an earlier call (another model,
        // seed or epochs) is not this call's.
        let shuffled = out.shuffled_run();
        if shuffled.root().exists() {
            eprintln!("sanity: the shuffled-label model in {} is retrained", shuffled.root().display());
            std::fs::remove_dir_all(shuffled.root()).with_context(|| {
                format!("cannot remove the earlier shuffled-label model {}", shuffled.root().display())
            })?;
        }
    }
    let cohort = cohort_of(&cfg)?;
    let atlas_required = methods.contains(&Method::AreaOcclusion) || s.faithfulness;
    let inputs = ScanInputs::open(&cfg, &cohort, atlas_required, "sanity")?;
    let shape = inputs.grid.shape;
    let labels = inputs.atlas.as_ref().map(|a| a.labels.clone());
    let brain: Array3<bool> = inputs.brain.clone().unwrap_or_else(|| Array3::from_elem(shape, true));
    let (model, norm) = load_fold(&fold, shape)?;

    // The test scans: all of them for the shuffled model's metrics, the AD ones (as many per
    // patient as `interpret` explains) for the checks.
    let test_items = test_items(&run, &split, &cohort.scans)?;
    let mut scans = ad_scans(&test_items, &inputs, &model, &norm, &params)?;
    if scans.is_empty() {
        bail!("split `{split}` of {} has no AD test scan to check", run.root().display());
    }
    eprintln!(
        "sanity: {} AD test scans of {split}, methods {}, checks {} → {}",
        scans.len(),
        methods.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
        wanted.join(", "),
        out.dir().display()
    );

    // The trained model's maps: saved by `interpret`, or computed.
    let mut parts: Vec<(&'static str, f64)> = Vec::new();
    let t = Instant::now();
    let saved = saved_maps(&run, &split, &model_fp, &params)?;
    trained_maps(&mut scans, saved.as_ref(), &model, labels.as_ref(), &params)?;
    parts.push(("trained maps", t.elapsed().as_secs_f64()));

    // The cascade recomputes every map once per layer, so it uses `[sanity]
    // cascade_scans_per_patient` scans of each patient; the data randomisation and the deletion
    // curves use every explained AD scan.
    let all: Vec<&Scan> = scans.iter().collect();
    let mut per_patient: BTreeMap<&str, usize> = BTreeMap::new();
    let chosen: Vec<&Scan> = scans
        .iter()
        .filter(|x| {
            let seen = per_patient.entry(x.item.ptid.as_str()).or_default();
            *seen += 1;
            s.cascade_scans_per_patient == 0 || *seen <= s.cascade_scans_per_patient
        })
        .collect();

    let mut written: Vec<&str> = Vec::new();
    if s.cascade {
        let t = Instant::now();
        let cascade = cascade_check(&cfg, &model, &chosen, &methods, labels.as_ref(), &brain, &params)?;
        write_csv_atomically(&out.file(CASCADE_FILE), &mut CascadeRow::frame(&cascade)?)?;
        written.push(CASCADE_FILE);
        parts.push(("cascade", t.elapsed().as_secs_f64()));
    }
    if s.data_randomisation {
        if split != "holdout" {
            eprintln!("sanity: data randomisation needs the hold-out split (explaining `{split}`): skipped");
        } else {
            let t = Instant::now();
            let shuffled_run = train_shuffled(&cfg, &out, &resolved)?;
            parts.push(("shuffled training", t.elapsed().as_secs_f64()));
            let t = Instant::now();
            let (shuffled, snorm) = load_fold(&shuffled_run.fold("holdout"), shape)?;
            let mut metrics =
                shuffled_metrics(&inputs.source, &test_items, [(&model, &norm), (&shuffled, &snorm)])?.to_vec();
            // Its training scans with the labels it was trained on (shuffled as `train` shuffled them).
            let mut relabelled = cohort.scans.clone();
            let shuffled_split = checked_split(&shuffled_run, "holdout")?;
            adni_data::splits::shuffle_training_labels(&mut relabelled, &shuffled_split, s.seed);
            let fit_items = split_items(&shuffled_run, "holdout", &relabelled, SplitSet::Train)?;
            metrics.push(shuffled_fit(&inputs.source, &fit_items, &shuffled, &snorm)?);
            eprintln!(
                "sanity: the shuffled-label model fits {:.3} of its {} training scans' shuffled labels",
                metrics[2].accuracy, metrics[2].n_scans
            );
            write_csv_atomically(&out.file(SHUFFLED_MODEL_FILE), &mut ShuffledModelRow::frame(&metrics)?)?;
            let rows = data_randomisation_check(&shuffled, &snorm, &all, &methods, labels.as_ref(), &brain, &params)?;
            write_csv_atomically(&out.file(DATA_RANDOMISATION_FILE), &mut DataRandomisationRow::frame(&rows)?)?;
            written.extend([SHUFFLED_MODEL_FILE, DATA_RANDOMISATION_FILE]);
            parts.push(("shuffled maps", t.elapsed().as_secs_f64()));
        }
    }
    if s.faithfulness {
        let t = Instant::now();
        let atlas_labels =
            labels.as_ref().ok_or_else(|| anyhow!("region deletion needs an atlas ([relevance] atlas)"))?;
        let value = params.section.occlusion.value;
        let curves = faithfulness_check(&model, &scans, &methods, atlas_labels, &brain, value, &s)?;
        write_csv_atomically(&out.file(DELETION_FILE), &mut DeletionRow::frame(&curves.deletion)?)?;
        write_csv_atomically(&out.file(AOPC_FILE), &mut AopcRow::frame(&curves.aopc)?)?;
        written.extend([DELETION_FILE, AOPC_FILE]);
        parts.push(("faithfulness", t.elapsed().as_secs_f64()));
    }

    let timing: Vec<PartSeconds> = parts.iter().map(|&(part, seconds)| PartSeconds { part, seconds }).collect();
    write_csv_atomically(&out.file(TIMING_FILE), &mut PartSeconds::frame(&timing)?)?;
    cfg.write_resolved(out.dir())?;
    let marker = serde_json::json!({
        "parts": wanted,
        "files": written,
        "methods": methods.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "scans": scans.len(),
        "split": split,
        INPUTS_KEY: inputs_fp,
    });
    write_bytes_atomically(&out.complete(), serde_json::to_string_pretty(&marker)?.as_bytes())?;
    Ok(SanityOutcome { dir: out.dir().to_path_buf(), skipped: false, parts, scans: scans.len() })
}

/// What the checks depend on, as recorded under `inputs` in `complete.json`: the model of
/// `split` (`model_fp`, [`fold_fingerprint`]), the `[relevance]` settings that change a map and
/// the methods, the `[sanity]` settings (but which checks run: those are its `parts`), and under
/// `shuffled` what the shuffled-label model is trained with besides the trained model's split
/// and data (`[train]`, `[model]`, the sanity seed).
fn sanity_inputs(cfg: &ProjectConfig, params: &Params, split: &str, model_fp: &str) -> Result<serde_json::Value> {
    let mut relevance = params.output_settings()?;
    if let Some(r) = relevance.as_object_mut() {
        // The random-weights baseline is `interpret`'s alone.
        r.remove("random_baseline");
        r.insert("methods".into(), as_stored_json(&params.section.methods)?);
    }
    let mut sanity = as_stored_json(&cfg.sanity)?;
    if let Some(o) = sanity.as_object_mut() {
        // `shuffled_epochs` is recorded as the shuffled model's `train.epochs` below.
        for part in ["cascade", "data_randomisation", "faithfulness", "shuffled_epochs"] {
            o.remove(part);
        }
    }
    // Trained in hold-out mode whatever the config's mode, from its own seed (`shuffled_config`).
    let train = shuffled_config(cfg).train;
    Ok(serde_json::json!({
        "models": { split: model_fp },
        "relevance": relevance,
        "sanity": sanity,
        "shuffled": {
            "train": as_stored_json(&train)?,
            "model": as_stored_json(&cfg.model)?,
            "seed": cfg.sanity.seed,
        },
    }))
}

/// The relevance folder whose per-scan maps the checks read: `relevance/` when its
/// `complete.json` records the same model of `split` (`model_fp`), the same `[relevance]`
/// settings, every method and saved per-scan maps; otherwise `None`, so that every
/// trained-model map is computed (maps of another model or settings are never read).
fn saved_maps(run: &RunLayout, split: &str, model_fp: &str, params: &Params) -> Result<Option<RelevanceLayout>> {
    let rel = run.relevance();
    let Ok(Some(done)) = read_marker(&rel.complete()) else { return Ok(None) };
    let models = &done[INPUTS_KEY]["models"];
    let expected = serde_json::json!({ "models": models, "relevance": params.output_settings()? });
    let mut differing = match marker_completion(&done, &params.section.methods, &expected, true) {
        Completion::Complete { .. } => Vec::new(),
        Completion::Stale { differing } => differing,
    };
    if models[split].as_str() != Some(model_fp) {
        differing.push(format!("models.{split}"));
    }
    if differing.is_empty() {
        return Ok(Some(rel));
    }
    eprintln!(
        "sanity: the maps in {} are not reused (differing: {}): computing the trained model's maps",
        rel.dir().display(),
        differing.join(", ")
    );
    Ok(None)
}

/// The parameters of scan `image_id` with the explained class fixed (so that a changed model
/// explains the class the trained model's map explains, with the same SmoothGrad noise:
/// [`Params::for_scan`]).
fn for_class(params: &Params, class: usize, image_id: i64) -> MethodParams {
    params.for_scan(class, image_id)
}

/// Softmax probabilities of one normalised scan.
fn probabilities(model: &ClassificationModel3D<Cpu>, x: &Array3<f32>) -> Result<Vec<f32>> {
    let logits = model.forward_eval(to_tensor::<Cpu>(x, &Default::default()));
    burn::tensor::activation::softmax(logits, 1).into_data().convert::<f32>().to_vec().map_err(|e| anyhow!("{e:?}"))
}

/// Similarity of two maps inside the brain: Spearman, SSIM.
fn similarity(a: &Array3<f32>, b: &Array3<f32>, brain: &Array3<bool>) -> Result<(f64, f64)> {
    Ok((spearman(a.view(), b.view(), Some(brain.view()))?, ssim(a.view(), b.view(), Some(brain.view()), SSIM_WINDOW)?))
}

#[cfg(test)]
mod tests;
