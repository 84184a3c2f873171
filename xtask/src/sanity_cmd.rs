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
//! Writes `<run>/sanity/`:
//!
//! | path | what |
//! |---|---|
//! | `cascade.csv` | `step`, `layer`, `method`, `PTID`, `Image.ID`, `spearman`, `ssim` |
//! | `data_randomisation.csv` | `method`, `PTID`, `Image.ID`, `spearman`, `ssim`, `mass_accuracy`, `rank_accuracy`, `pointing_hit`, `truth_fraction` (NaN without a ground truth) |
//! | `shuffled_model.csv` | `model` (`trained`, `shuffled`), `n_scans`, `accuracy`, `balanced_accuracy`, `roc_auc` on the test scans, true labels |
//! | `shuffled/` | the shuffled-label model (`cargo xtask train`'s layout) |
//! | `deletion.csv` | `kind` (`voxels`, `regions`), `method`, `ordering` (`relevance`, `random`: mean over the random orders, repeated under every method), `PTID`, `Image.ID`, `step`, `fraction`, `score` |
//! | `aopc.csv` | `kind`, `method`, `ordering`, `PTID`, `Image.ID`, `aopc` |
//! | `timing.csv` | seconds per part |
//! | `resolved_config.toml`, `complete.json` | the config used; written last: the checks are complete |
//!
//! The trained model's maps are read from `relevance/maps/scans/` where `interpret` saved them
//! (`save_scan_maps`), and computed otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use ndarray::{Array3, ArrayView3};
use polars::prelude::{Column, DataFrame};

use adni_data::fsutil::{write_bytes_atomically, write_csv_atomically};
use adni_data::preprocess::{Normalizer, PreprocessSpec};
use adni_data::splits::{SplitSet, read_split_csv};
use adni_data::volume::read_volume;
use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use model::data::{ScanItem, VolumeSource};
use model::metrics::{BinaryMetrics, Prediction};
use model::train::{TrainMode, fold_dir, load_fold_model};
use model::{ClassificationModel3D, Cpu};
use relevance::Target;
use relevance::methods::{MethodParams, compute_map, to_tensor};
use report::faithfulness::{aopc, deletion_curve, deletion_order, random_order, steps_for_fractions};
use report::similarity::{spearman, ssim};

use crate::commands::{cohort_of, load_config_file, progress_bar};
use crate::config::{ProjectConfig, resolve};
use crate::inputs::{find_run, ground_truth_of, load_atlas};
use crate::interpret_cmd::Params;
use crate::relevance_config::Method;
use crate::train_cmd::{TrainArgs, train_with};
use adni_data::run_layout::COMPLETE_FILE;

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

/// The checks' folder inside a run.
pub const SANITY_DIR: &str = "sanity";
/// Cascading randomisation, per step, method and scan.
pub const CASCADE_FILE: &str = "cascade.csv";
/// Data randomisation, per method and scan.
pub const DATA_RANDOMISATION_FILE: &str = "data_randomisation.csv";
/// The trained and the shuffled-label model on the test scans.
pub const SHUFFLED_MODEL_FILE: &str = "shuffled_model.csv";
/// Deletion curves, per kind, method, ordering, scan and step.
pub const DELETION_FILE: &str = "deletion.csv";
/// AOPC per kind, method, ordering and scan.
pub const AOPC_FILE: &str = "aopc.csv";

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

/// One AD test scan: its inputs, explained class, ground truth and the trained model's maps.
struct Scan {
    item: ScanItem,
    /// Preprocessed, not normalised.
    raw: Array3<f32>,
    /// Normalised with the trained model's statistics.
    x: Array3<f32>,
    /// The class explained (the trained model's target rule), kept for every other model.
    target: usize,
    truth: Option<Array3<bool>>,
    maps: BTreeMap<Method, Array3<f32>>,
}

/// The checks on a run folder; see the module documentation.
pub(crate) fn run_sanity(args: &SanityArgs) -> Result<SanityOutcome> {
    let run = find_run(&args.run)?;
    let resolved = run.join("resolved_config.toml");
    let mut cfg = match &args.config {
        Some(c) => load_config_file(c)?,
        None => {
            if !resolved.exists() {
                bail!("{} is not a training run folder: it has no resolved_config.toml", run.display());
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
    let out = run.join(SANITY_DIR);
    let wanted: Vec<&str> =
        [("cascade", s.cascade), ("data-randomisation", s.data_randomisation), ("faithfulness", s.faithfulness)]
            .into_iter()
            .filter_map(|(n, on)| on.then_some(n))
            .collect();
    if wanted.is_empty() {
        eprintln!("sanity: every check is switched off ([sanity] cascade, data_randomisation, faithfulness)");
        return Ok(SanityOutcome { dir: out, skipped: true, parts: vec![], scans: 0 });
    }
    let _lock = crate::commands::lock_folder(&out)?;
    if !args.force && out.join(COMPLETE_FILE).exists() {
        let done: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join(COMPLETE_FILE))?)
            .with_context(|| format!("{} is not valid JSON", out.join(COMPLETE_FILE).display()))?;
        let parts: Vec<&str> =
            done["parts"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
        if wanted.iter().all(|w| parts.contains(w)) {
            eprintln!("sanity: {} is complete (use --force to recompute)", out.display());
            return Ok(SanityOutcome {
                dir: out,
                skipped: true,
                parts: vec![],
                scans: done["scans"].as_u64().unwrap_or(0) as usize,
            });
        }
    }
    let _ = std::fs::remove_file(out.join(COMPLETE_FILE));

    let params = Params::new(cfg.relevance.clone())?;
    let methods = params.section.methods.clone();
    let split = if params.section.split.is_empty() { "holdout".to_string() } else { params.section.split.clone() };
    let model_dir = fold_dir(&run, &split);
    if !adni_data::run_layout::FoldLayout::new(&model_dir).is_finished() {
        bail!(
            "{} has no finished `{split}` model ({} has no fold_result.json): train it first",
            run.display(),
            model_dir.display()
        );
    }
    let cohort = cohort_of(&cfg)?;
    let p = &cfg.preprocess;
    let Some(first) = cohort.scans.first() else { bail!("the cohort has no scans") };
    let spec = PreprocessSpec { mask: p.mask_path(), downsample: p.downsample };
    let source = VolumeSource::open(&resolve(&p.cache_dir), spec, &first.path)
        .context("cannot set up the preprocessed volumes ([preprocess] mask, downsample, cache_dir)")?;
    let grid = source.model_grid();
    let shape = grid.shape;
    let atlas = match load_atlas(&cfg, &grid) {
        Ok(a) => Some(a),
        Err(e) if methods.contains(&Method::AreaOcclusion) || s.faithfulness => return Err(e),
        Err(_) => None,
    };
    let labels = atlas.as_ref().map(|a| a.labels.clone());
    let brain: Array3<bool> = match source.model_mask.as_ref() {
        Some(m) => m.mapv(|v| v > 0.5),
        None => Array3::from_elem(shape, true),
    };
    let truth = ground_truth_of(&cfg)?;
    let device = Default::default();
    let model = load_fold_model::<Cpu>(&model_dir, &device)?;
    if model.input_shape() != shape {
        bail!(
            "the model of {} is for grid {}, the config's preprocessing gives {}",
            model_dir.display(),
            model::format_grid(model.input_shape()),
            model::format_grid(shape)
        );
    }
    let norm = Normalizer::load(&model_dir.join("normalization"))?;

    // The test scans: all of them for the shuffled model's metrics, the AD ones (as many per
    // patient as `interpret` explains) for the checks.
    let split_file = adni_data::run_layout::RunLayout::new(&run).split_csv(&split);
    let rows = read_split_csv(&split_file)?;
    let by_id: BTreeMap<i64, &adni_data::cohort::CohortScan> =
        cohort.scans.iter().map(|s| (s.record.image_id, s)).collect();
    let mut test_items: Vec<ScanItem> = Vec::new();
    for row in rows.rows.iter().filter(|r| r.set == SplitSet::Test) {
        let scan = by_id.get(&row.image_id).ok_or_else(|| {
            anyhow!("{}: Image.ID {} is not in the cohort of the run's config", split_file.display(), row.image_id)
        })?;
        test_items.push(ScanItem::from_cohort(scan));
    }
    let mut per_patient: BTreeMap<String, usize> = BTreeMap::new();
    let limit = params.section.scans_per_patient_of(true);
    let mut scans: Vec<Scan> = Vec::new();
    for item in test_items.iter().filter(|i| i.label == 1) {
        let seen = per_patient.entry(item.ptid.clone()).or_default();
        *seen += 1;
        if limit > 0 && *seen > limit {
            continue;
        }
        let raw = source.load(item)?;
        let mut x = raw.clone();
        norm.apply(&mut x).with_context(|| format!("image {} ({})", item.image_id, item.path.display()))?;
        let probs = probabilities(&model, &x)?;
        let target = match params.target() {
            Target::Predicted => usize::from(probs[1] > probs[0]),
            Target::Class(c) => c,
        };
        let truth = match &truth {
            Some(t) => t.mask(item.image_id, p.downsample, params.section.ground_truth_fraction)?,
            None => None,
        };
        scans.push(Scan { item: item.clone(), raw, x, target, truth, maps: BTreeMap::new() });
    }
    if scans.is_empty() {
        bail!("split `{split}` of {} has no AD test scan to check", run.display());
    }
    eprintln!(
        "sanity: {} AD test scans of {split}, methods {}, checks {} → {}",
        scans.len(),
        methods.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
        wanted.join(", "),
        out.display()
    );

    // The trained model's maps: saved by `interpret`, or computed.
    let mut parts: Vec<(&'static str, f64)> = Vec::new();
    let t = Instant::now();
    let trained_ad = ClassificationModel3D::<Autodiff<Cpu>>::from_inner(model.clone());
    let saved = run.join("relevance/maps/scans");
    let bar = progress_bar(scans.len() * methods.len(), "maps");
    let mut computed = 0;
    for scan in &mut scans {
        let pc = for_class(&params, scan.target);
        for &method in &methods {
            let file = saved.join(method.name()).join(format!("{}.nii.gz", scan.item.image_id));
            let map = match read_volume(&file) {
                Ok((v, _, _)) if v.data.shape() == shape.as_slice() => v.data,
                _ => {
                    computed += 1;
                    compute_map(method, &trained_ad, &model, &scan.x, labels.as_ref(), &pc)
                        .with_context(|| format!("{method} of image {}", scan.item.image_id))?
                        .0
                }
            };
            scan.maps.insert(method, map);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    parts.push(("trained maps", t.elapsed().as_secs_f64()));
    if computed > 0 {
        eprintln!("sanity: computed {computed} trained-model maps (not saved by `interpret`)");
    }

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
        let mut cascade = cascade_check(&cfg, &model, &chosen, &methods, labels.as_ref(), &brain, &params)?;
        write_csv_atomically(&out.join(CASCADE_FILE), &mut cascade)?;
        written.push(CASCADE_FILE);
        parts.push(("cascade", t.elapsed().as_secs_f64()));
    }
    if s.data_randomisation {
        if split != "holdout" {
            eprintln!("sanity: data randomisation needs the hold-out split (explaining `{split}`): skipped");
        } else {
            let t = Instant::now();
            let shuffled_dir = train_shuffled(&cfg, &out, &resolved)?;
            parts.push(("shuffled training", t.elapsed().as_secs_f64()));
            let t = Instant::now();
            let shuffled = load_fold_model::<Cpu>(&fold_dir(&shuffled_dir, "holdout"), &device)?;
            let snorm = Normalizer::load(&fold_dir(&shuffled_dir, "holdout").join("normalization"))?;
            let mut metrics = shuffled_metrics(&source, &test_items, [(&model, &norm), (&shuffled, &snorm)])?;
            write_csv_atomically(&out.join(SHUFFLED_MODEL_FILE), &mut metrics)?;
            let mut rows =
                data_randomisation_check(&shuffled, &snorm, &all, &methods, labels.as_ref(), &brain, &params)?;
            write_csv_atomically(&out.join(DATA_RANDOMISATION_FILE), &mut rows)?;
            written.extend([SHUFFLED_MODEL_FILE, DATA_RANDOMISATION_FILE]);
            parts.push(("shuffled maps", t.elapsed().as_secs_f64()));
        }
    }
    if s.faithfulness {
        let t = Instant::now();
        let atlas_labels =
            labels.as_ref().ok_or_else(|| anyhow!("region deletion needs an atlas ([relevance] atlas)"))?;
        let value = params.section.occlusion.value;
        let (mut curves, mut aopcs) = faithfulness_check(&model, &scans, &methods, atlas_labels, &brain, value, &s)?;
        write_csv_atomically(&out.join(DELETION_FILE), &mut curves)?;
        write_csv_atomically(&out.join(AOPC_FILE), &mut aopcs)?;
        written.extend([DELETION_FILE, AOPC_FILE]);
        parts.push(("faithfulness", t.elapsed().as_secs_f64()));
    }

    let mut timing = DataFrame::new(
        parts.len(),
        vec![
            Column::new("part".into(), parts.iter().map(|(p, _)| *p).collect::<Vec<_>>()),
            Column::new("seconds".into(), parts.iter().map(|(_, s)| *s).collect::<Vec<_>>()),
        ],
    )?;
    write_csv_atomically(&out.join("timing.csv"), &mut timing)?;
    cfg.write_resolved(&out)?;
    let marker = serde_json::json!({
        "parts": wanted,
        "files": written,
        "methods": methods.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "scans": scans.len(),
        "split": split,
    });
    write_bytes_atomically(&out.join(COMPLETE_FILE), serde_json::to_string_pretty(&marker)?.as_bytes())?;
    Ok(SanityOutcome { dir: out, skipped: false, parts, scans: scans.len() })
}

/// The parameters with the explained class fixed (so that a changed model explains the class the
/// trained model's map explains).
fn for_class(params: &Params, class: usize) -> MethodParams {
    params.methods.for_class(class)
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

/// Rows of [`CASCADE_FILE`].
#[derive(Default)]
struct CascadeRows {
    step: Vec<i64>,
    layer: Vec<String>,
    method: Vec<&'static str>,
    ptid: Vec<String>,
    image_id: Vec<i64>,
    spearman: Vec<f64>,
    ssim: Vec<f64>,
}

/// The cascading randomisation: one step per layer from the output down, on `chosen` scans.
fn cascade_check(
    cfg: &ProjectConfig,
    model: &ClassificationModel3D<Cpu>,
    chosen: &[&Scan],
    methods: &[Method],
    labels: Option<&Array3<i32>>,
    brain: &Array3<bool>,
    params: &Params,
) -> Result<DataFrame> {
    let device = Default::default();
    <Cpu as Backend>::seed(&device, cfg.sanity.seed);
    let fresh = cfg.model.init::<Cpu>(model.input_shape(), &device)?;
    // Lazily initialised parameters would be redrawn by every clone: fix them now.
    relevance::materialize_parameters(&fresh);
    let layers = model.cascade_layers();
    let mut rows = CascadeRows::default();
    let bar = progress_bar(layers.len() * chosen.len() * methods.len(), "cascade");
    for (k, layer) in layers.iter().enumerate() {
        let randomised = model.with_top_layers_from(&fresh, k + 1)?;
        let autodiff = ClassificationModel3D::<Autodiff<Cpu>>::from_inner(randomised.clone());
        for scan in chosen {
            let pc = for_class(params, scan.target);
            for &method in methods {
                bar.set_message(format!("{layer} · {method}"));
                let (map, _) = compute_map(method, &autodiff, &randomised, &scan.x, labels, &pc)
                    .with_context(|| format!("{method} of image {} with {layer} randomised", scan.item.image_id))?;
                let (rho, s) = similarity(&map, &scan.maps[&method], brain)?;
                rows.step.push(k as i64 + 1);
                rows.layer.push(layer.clone());
                rows.method.push(method.name());
                rows.ptid.push(scan.item.ptid.clone());
                rows.image_id.push(scan.item.image_id);
                rows.spearman.push(rho);
                rows.ssim.push(s);
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    Ok(DataFrame::new(
        rows.step.len(),
        vec![
            Column::new("step".into(), &rows.step),
            Column::new("layer".into(), &rows.layer),
            Column::new("method".into(), &rows.method),
            Column::new("PTID".into(), &rows.ptid),
            Column::new("Image.ID".into(), &rows.image_id),
            Column::new("spearman".into(), &rows.spearman),
            Column::new("ssim".into(), &rows.ssim),
        ],
    )?)
}

/// Trains the shuffled-label hold-out model into `<out>/shuffled` (skipped when finished);
/// returns its run folder.
fn train_shuffled(cfg: &ProjectConfig, out: &Path, resolved: &Path) -> Result<PathBuf> {
    let mut c = cfg.clone();
    c.run.results_dir = out.to_path_buf();
    c.run.name = "shuffled".into();
    c.train.mode = TrainMode::Holdout;
    let dir = c.run.dir();
    eprintln!("sanity: training the shuffled-label model ({} epochs) → {}", c.train.epochs, dir.display());
    let args = TrainArgs {
        config: resolved.to_path_buf(),
        fold: None,
        resume: true,
        merge: false,
        device: None,
        shuffle_labels: Some(cfg.sanity.seed),
    };
    train_with(c, &args).context("training the shuffled-label model")?;
    Ok(dir)
}

/// The trained and the shuffled model on every test scan, against the true labels.
fn shuffled_metrics(
    source: &VolumeSource,
    items: &[ScanItem],
    models: [(&ClassificationModel3D<Cpu>, &Normalizer); 2],
) -> Result<DataFrame> {
    let mut preds: [Vec<Prediction>; 2] = [Vec::new(), Vec::new()];
    for item in items {
        let raw = source.load(item)?;
        for (k, (model, norm)) in models.iter().enumerate() {
            let mut x = raw.clone();
            norm.apply(&mut x).with_context(|| format!("image {} ({})", item.image_id, item.path.display()))?;
            let logits: Vec<f32> = model
                .forward_eval(to_tensor::<Cpu>(&x, &Default::default()))
                .into_data()
                .convert::<f32>()
                .to_vec()
                .map_err(|e| anyhow!("{e:?}"))?;
            preds[k].push(Prediction::from_logits(item.label, [logits[0], logits[1]]));
        }
    }
    let m = preds.map(|p| BinaryMetrics::from_predictions(&p));
    Ok(DataFrame::new(
        2,
        vec![
            Column::new("model".into(), ["trained", "shuffled"]),
            Column::new("n_scans".into(), m.iter().map(|m| m.n as i64).collect::<Vec<_>>()),
            Column::new("accuracy".into(), m.iter().map(|m| m.accuracy).collect::<Vec<_>>()),
            Column::new("balanced_accuracy".into(), m.iter().map(|m| m.balanced_accuracy).collect::<Vec<_>>()),
            Column::new("roc_auc".into(), m.iter().map(|m| m.roc_auc).collect::<Vec<_>>()),
        ],
    )?)
}

/// The shuffled model's maps of the AD `scans` (same class as the trained model's maps):
/// their similarity to the trained maps and their ground-truth scores.
fn data_randomisation_check(
    shuffled: &ClassificationModel3D<Cpu>,
    norm: &Normalizer,
    scans: &[&Scan],
    methods: &[Method],
    labels: Option<&Array3<i32>>,
    brain: &Array3<bool>,
    params: &Params,
) -> Result<DataFrame> {
    let autodiff = ClassificationModel3D::<Autodiff<Cpu>>::from_inner(shuffled.clone());
    let n = scans.len() * methods.len();
    let mut method_col = Vec::with_capacity(n);
    let mut ptid = Vec::with_capacity(n);
    let mut image_id = Vec::with_capacity(n);
    let (mut rho, mut s_col, mut mass, mut rank, mut chance) = (vec![], vec![], vec![], vec![], vec![]);
    let mut hit: Vec<Option<bool>> = Vec::with_capacity(n);
    let bar = progress_bar(n, "shuffled");
    for scan in scans {
        let mut x = scan.raw.clone();
        norm.apply(&mut x).with_context(|| format!("image {}", scan.item.image_id))?;
        let pc = for_class(params, scan.target);
        for &method in methods {
            let (map, _) = compute_map(method, &autodiff, shuffled, &x, labels, &pc)
                .with_context(|| format!("{method} (shuffled-label model) of image {}", scan.item.image_id))?;
            let (r, s) = similarity(&map, &scan.maps[&method], brain)?;
            method_col.push(method.name());
            ptid.push(scan.item.ptid.clone());
            image_id.push(scan.item.image_id);
            rho.push(r);
            s_col.push(s);
            match &scan.truth {
                Some(mask) => {
                    let g = report::ground_truth::score_map(map.view(), mask.view(), Some(brain.view()))?;
                    mass.push(g.mass_accuracy);
                    rank.push(g.rank_accuracy);
                    hit.push(g.pointing_hit);
                    chance.push(g.chance);
                }
                None => {
                    mass.push(f64::NAN);
                    rank.push(f64::NAN);
                    hit.push(None);
                    chance.push(f64::NAN);
                }
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(DataFrame::new(
        n,
        vec![
            Column::new("method".into(), method_col),
            Column::new("PTID".into(), ptid),
            Column::new("Image.ID".into(), image_id),
            Column::new("spearman".into(), rho),
            Column::new("ssim".into(), s_col),
            Column::new("mass_accuracy".into(), mass),
            Column::new("rank_accuracy".into(), rank),
            Column::new("pointing_hit".into(), hit),
            Column::new(report::ground_truth::CHANCE_COLUMN.into(), chance),
        ],
    )?)
}

/// Rows of [`DELETION_FILE`] and [`AOPC_FILE`].
#[derive(Default)]
struct CurveRows {
    kind: Vec<&'static str>,
    method: Vec<&'static str>,
    ordering: Vec<&'static str>,
    ptid: Vec<String>,
    image_id: Vec<i64>,
    step: Vec<i64>,
    fraction: Vec<f64>,
    score: Vec<f64>,
    // AOPC, one per curve
    a_kind: Vec<&'static str>,
    a_method: Vec<&'static str>,
    a_ordering: Vec<&'static str>,
    a_ptid: Vec<String>,
    a_image_id: Vec<i64>,
    a_value: Vec<f64>,
}

impl CurveRows {
    /// One curve (scores after steps 0..) with the x value of each step.
    fn push(
        &mut self,
        kind: &'static str,
        method: &'static str,
        ordering: &'static str,
        scan: &ScanItem,
        fractions: &[f64],
        curve: &[f64],
    ) -> Result<()> {
        for (k, (&f, &v)) in fractions.iter().zip(curve).enumerate() {
            self.kind.push(kind);
            self.method.push(method);
            self.ordering.push(ordering);
            self.ptid.push(scan.ptid.clone());
            self.image_id.push(scan.image_id);
            self.step.push(k as i64);
            self.fraction.push(f);
            self.score.push(v);
        }
        self.a_kind.push(kind);
        self.a_method.push(method);
        self.a_ordering.push(ordering);
        self.a_ptid.push(scan.ptid.clone());
        self.a_image_id.push(scan.image_id);
        self.a_value
            .push(aopc(curve).with_context(|| format!("{kind} deletion curve of {method}, image {}", scan.image_id))?);
        Ok(())
    }

    fn frames(self) -> Result<(DataFrame, DataFrame)> {
        let curves = DataFrame::new(
            self.kind.len(),
            vec![
                Column::new("kind".into(), self.kind),
                Column::new("method".into(), self.method),
                Column::new("ordering".into(), self.ordering),
                Column::new("PTID".into(), self.ptid),
                Column::new("Image.ID".into(), self.image_id),
                Column::new("step".into(), self.step),
                Column::new("fraction".into(), self.fraction),
                Column::new("score".into(), self.score),
            ],
        )?;
        let aopcs = DataFrame::new(
            self.a_kind.len(),
            vec![
                Column::new("kind".into(), self.a_kind),
                Column::new("method".into(), self.a_method),
                Column::new("ordering".into(), self.a_ordering),
                Column::new("PTID".into(), self.a_ptid),
                Column::new("Image.ID".into(), self.a_image_id),
                Column::new("aopc".into(), self.a_value),
            ],
        )?;
        Ok((curves, aopcs))
    }
}

/// The atlas regions inside the brain, sorted by mean relevance per voxel (highest first; ties
/// by label), and each region's voxels (flat C-order indices).
fn regions_by_relevance(map: ArrayView3<f32>, labels: &Array3<i32>, brain: &Array3<bool>) -> Vec<(i32, Vec<usize>)> {
    let mut regions: BTreeMap<i32, (f64, Vec<usize>)> = BTreeMap::new();
    for (i, ((&l, &b), &v)) in labels.iter().zip(brain.iter()).zip(map.iter()).enumerate() {
        if l != 0 && b {
            let e = regions.entry(l).or_default();
            e.0 += f64::from(v);
            e.1.push(i);
        }
    }
    let mut out: Vec<(f64, i32, Vec<usize>)> =
        regions.into_iter().map(|(l, (sum, voxels))| (sum / voxels.len() as f64, l, voxels)).collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    out.into_iter().map(|(_, l, v)| (l, v)).collect()
}

/// A seed per scan and random order.
fn order_seed(seed: u64, image_id: i64, r: usize) -> u64 {
    seed ^ (image_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (r as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// Deletion curves of every AD scan: voxels and regions, by relevance and in random order.
fn faithfulness_check(
    model: &ClassificationModel3D<Cpu>,
    scans: &[Scan],
    methods: &[Method],
    labels: &Array3<i32>,
    brain: &Array3<bool>,
    value: f32,
    s: &crate::config::SanitySection,
) -> Result<(DataFrame, DataFrame)> {
    let brain_idx: Vec<usize> = brain.iter().enumerate().filter(|(_, b)| **b).map(|(i, _)| i).collect();
    let voxel_steps = steps_for_fractions(brain_idx.len(), &s.fractions)?;
    let voxel_x: Vec<f64> =
        std::iter::once(0.0).chain(voxel_steps.iter().map(|&k| k as f64 / brain_idx.len() as f64)).collect();
    let mut rows = CurveRows::default();
    let bar = progress_bar(scans.len() * (methods.len() + 1), "deletion");
    for scan in scans {
        let mut failure: Option<anyhow::Error> = None;
        let mut score = |v: ArrayView3<'_, f32>| -> f64 {
            match probabilities(model, &v.to_owned()) {
                Ok(p) => f64::from(p[scan.target]),
                Err(e) => {
                    failure.get_or_insert(e);
                    f64::NAN
                }
            }
        };
        // The atlas regions inside the brain (the same for every method), in the scan's own order:
        // the base the random region orders permute.
        let base = regions_by_relevance(scan.x.view(), labels, brain);
        let n_regions = base.len();
        if n_regions == 0 {
            bail!("the atlas has no region inside the brain mask: no region deletion possible");
        }
        let mut region_counts: Vec<usize> = s.region_steps.iter().map(|&r| r.min(n_regions)).collect();
        region_counts.dedup();
        let region_x: Vec<f64> =
            std::iter::once(0.0).chain(region_counts.iter().map(|&r| r as f64 / n_regions as f64)).collect();
        let region_curve = |order: &[(i32, Vec<usize>)], score: &mut dyn FnMut(ArrayView3<'_, f32>) -> f64| {
            let voxels: Vec<usize> = order.iter().flat_map(|(_, v)| v.iter().copied()).collect();
            let mut steps = Vec::with_capacity(region_counts.len());
            for &r in &region_counts {
                steps.push(order[..r].iter().map(|(_, v)| v.len()).sum::<usize>());
            }
            deletion_curve(scan.x.view(), &voxels, &steps, value, score)
        };
        // Random orders: the same for every method.
        let mut random_voxels = vec![0.0; voxel_x.len()];
        let mut random_regions = vec![0.0; region_x.len()];
        for r in 0..s.random_orders {
            let seed = order_seed(s.seed, scan.item.image_id, r);
            let order = random_order(&brain_idx, seed);
            let curve = deletion_curve(scan.x.view(), &order, &voxel_steps, value, &mut score)?;
            random_voxels.iter_mut().zip(&curve).for_each(|(a, c)| *a += c / s.random_orders as f64);
            let perm = random_order(&(0..base.len()).collect::<Vec<_>>(), seed);
            let shuffled: Vec<(i32, Vec<usize>)> = perm.iter().map(|&i| base[i].clone()).collect();
            let curve = region_curve(&shuffled, &mut score)?;
            random_regions.iter_mut().zip(&curve).for_each(|(a, c)| *a += c / s.random_orders as f64);
        }
        bar.inc(1);
        for &method in methods {
            let map = &scan.maps[&method];
            let order = deletion_order(map.view(), Some(brain.view()))?;
            let curve = deletion_curve(scan.x.view(), &order, &voxel_steps, value, &mut score)?;
            rows.push("voxels", method.name(), "relevance", &scan.item, &voxel_x, &curve)?;
            rows.push("voxels", method.name(), "random", &scan.item, &voxel_x, &random_voxels)?;
            let ranked = regions_by_relevance(map.view(), labels, brain);
            let curve = region_curve(&ranked, &mut score)?;
            rows.push("regions", method.name(), "relevance", &scan.item, &region_x, &curve)?;
            rows.push("regions", method.name(), "random", &scan.item, &region_x, &random_regions)?;
            bar.inc(1);
        }
        if let Some(e) = failure {
            return Err(e.context(format!("scoring the deletion curves of image {}", scan.item.image_id)));
        }
    }
    bar.finish_and_clear();
    rows.frames()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_rank_by_mean_relevance_inside_the_brain() {
        // labels 1 (2 voxels), 2 (1 voxel), 3 (outside the brain only), 0 background
        let labels = Array3::from_shape_vec((1, 1, 5), vec![1, 1, 2, 3, 0]).unwrap();
        let brain = Array3::from_shape_vec((1, 1, 5), vec![true, true, true, false, true]).unwrap();
        let map = Array3::from_shape_vec((1, 1, 5), vec![1.0, 3.0, 2.5, 9.0, 9.0]).unwrap();
        let r = regions_by_relevance(map.view(), &labels, &brain);
        // region 2: mean 2.5 > region 1: mean 2.0; region 3 lies outside the brain
        assert_eq!(r, vec![(2, vec![2]), (1, vec![0, 1])]);
    }

    #[test]
    fn order_seeds_differ_per_scan_and_order() {
        let a = order_seed(2018, 1, 0);
        assert_ne!(a, order_seed(2018, 2, 0));
        assert_ne!(a, order_seed(2018, 1, 1));
        assert_eq!(a, order_seed(2018, 1, 0));
    }
}
