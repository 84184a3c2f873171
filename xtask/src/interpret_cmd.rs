//! `cargo xtask interpret`: relevance maps of a trained run's test scans, or of one scan.
//!
//! Run mode (`--run results/<run>`) writes into `results/<run>/relevance/`:
//!
//! | path | what |
//! |---|---|
//! | `maps/<method>_<group>.nii.gz` | mean map per method and **true** label group (`AD`, `CN`, `all`), model grid and affine |
//! | `maps/scans/<method>/<Image.ID>.nii.gz` | every scan's map (with `save_scan_maps = true` / `--save-scan-maps`) |
//! | `background.nii.gz` | mean preprocessed (not z-scored) test scan: the figures' grey brain |
//! | `index.csv` | `method, group, n_scans, file` of the mean maps |
//! | `scans.csv` | the explained scans: split, PTID, Image.ID, label, P(AD), prediction, target class |
//! | `scan_regions.csv` | per scan and method: atlas region scores (left/right merged) |
//! | `ground_truth.csv` | synthetic cohorts only, scans with planted atrophy (AD): per scan, method and model (`trained`, `random`): mass accuracy, rank accuracy, pointing game over the brain mask's voxels, and `truth_fraction`, their chance level (the mask's share of the brain) |
//! | `lrp_conservation.csv` | with LRP: per scan and model, the explained logit and the sum of the signed LRP map (the difference: what biases and ε absorbed) |
//! | `timing.csv` | seconds per method and model |
//! | `resolved_config.toml` | the config used |
//! | `complete.json` | written last: the run is complete (methods, scans) |
//!
//! Single-scan mode (`--weights FILE --scan FILE --method NAME --out FILE`) writes one map.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use ndarray::Array3;
use polars::prelude::{Column, DataFrame};

use adni_data::Grid;
use adni_data::atlas::{Atlas, load_aal, load_cerebra, load_label_atlas};
use adni_data::fsutil::{write_bytes_atomically, write_csv_atomically};
use adni_data::preprocess::{Normalizer, PreprocessSpec, downsample};
use adni_data::splits::{SplitSet, read_split_csv};
use adni_data::volume::{OutputType, Volume, read_volume, write_volume};
use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use model::data::{ScanItem, VolumeSource};
use model::train::{fold_dir, load_fold_model};
use model::weights::WeightsFile;
use model::{ClassificationModel3D, Cpu};
use relevance::methods::{LrpBalance, MapMean, MethodParams, compute_map, to_tensor};
use relevance::occlusion::{OcclusionMode, Spread};
use relevance::{Output, PostProcess, Target};

use crate::commands::{cohort_of, find_config, load_config_file, progress_bar};
use crate::config::{ProjectConfig, resolve, workspace_root};
use crate::fetch;
use crate::relevance_config::{AtlasName, CompositeName, Method, RelevanceSection};

/// Arguments of `cargo xtask interpret`.
#[derive(Args, Debug, Default)]
pub struct InterpretArgs {
    /// A trained run's folder (`results/<run>`): explain its test scans
    #[arg(long, conflicts_with_all = ["weights", "scan"])]
    pub run: Option<PathBuf>,
    /// Methods, comma-separated (default: the config's [relevance] methods)
    #[arg(long, value_delimiter = ',', value_parser = parse_method)]
    pub methods: Vec<Method>,
    /// Config whose [relevance] (and data) sections to use instead of the run's resolved config
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Split to explain (`holdout`, `fold1`, …; default: hold-out if trained, else every fold)
    #[arg(long)]
    pub split: Option<String>,
    /// Also write every scan's map
    #[arg(long)]
    pub save_scan_maps: bool,
    /// Skip the randomised-weights baseline
    #[arg(long)]
    pub no_random_baseline: bool,
    /// Recompute even if `relevance/complete.json` says the maps are there
    #[arg(long)]
    pub force: bool,
    /// Single scan: weights (a run's fold folder, a safetensors file or a PyTorch file)
    #[arg(long, requires_all = ["scan", "method", "out"])]
    pub weights: Option<PathBuf>,
    /// Single scan: the scan (.nii / .nii.gz) on the model's grid, or on a grid that downsamples to it
    #[arg(long, requires = "weights")]
    pub scan: Option<PathBuf>,
    /// Single scan: the method
    #[arg(long, value_parser = parse_method, requires = "weights")]
    pub method: Option<Method>,
    /// Single scan: output map (.nii.gz)
    #[arg(long, requires = "weights")]
    pub out: Option<PathBuf>,
    /// Single scan: label atlas (.nii/.nii.gz) for area occlusion, placed by world coordinates
    #[arg(long)]
    pub atlas: Option<PathBuf>,
    /// Single scan: z-score statistics folder (from a run), or `none` for a scan already normalised
    #[arg(long)]
    pub normalization: Option<String>,
    /// `predicted` (default), `AD`, `CN` or a class index
    #[arg(long, value_parser = parse_option::<Target>)]
    pub target: Option<Target>,
    /// `probability` (default) or `logit`
    #[arg(long, value_parser = parse_option::<Output>)]
    pub output: Option<Output>,
    /// Gradient post-processing: `abs` (default), `square`, `none`
    #[arg(long, value_parser = parse_option::<PostProcess>)]
    pub postprocess: Option<PostProcess>,
    /// Occlusion cube size (voxels of the model grid)
    #[arg(long)]
    pub size: Option<usize>,
    /// Occlusion stride (voxels)
    #[arg(long)]
    pub stride: Option<usize>,
    /// Occlusion / area-occlusion value
    #[arg(long)]
    pub value: Option<f32>,
    /// Occlusion spread: `nearest` or `mean`
    #[arg(long, value_parser = parse_option::<Spread>)]
    pub spread: Option<Spread>,
    /// Occlusion mode: `incremental`, `naive` or `auto`
    #[arg(long, value_parser = parse_option::<OcclusionMode>)]
    pub occlusion_mode: Option<OcclusionMode>,
    /// Grad-CAM layer (conv1…conv4, block1…block4, conv1-raw…conv4-raw)
    #[arg(long)]
    pub layer: Option<String>,
    /// Integrated-gradients steps
    #[arg(long)]
    pub steps: Option<usize>,
    /// Integrated-gradients baseline value
    #[arg(long)]
    pub baseline: Option<f32>,
    /// SmoothGrad samples
    #[arg(long)]
    pub samples: Option<usize>,
    /// SmoothGrad noise level (fraction of the value range)
    #[arg(long)]
    pub noise_level: Option<f32>,
    /// LRP composite (`epsilon-plus-box`, `epsilon-plus`, `epsilon-alpha2-beta1`, `alpha1-beta0`, `alpha2-beta1`, `epsilon`)
    #[arg(long, value_parser = parse_option::<CompositeName>)]
    pub lrp_rule: Option<CompositeName>,
    /// Memory budget per batch, MB
    #[arg(long)]
    pub memory_budget_mb: Option<usize>,
}

fn parse_method(s: &str) -> std::result::Result<Method, String> {
    parse_option(s)
}

/// A command-line value read as the config reads it (serde), with the config's "did you mean".
fn parse_option<T: serde::de::DeserializeOwned>(s: &str) -> std::result::Result<T, String> {
    use serde::de::value::{Error, StrDeserializer};
    T::deserialize(StrDeserializer::<Error>::new(s)).map_err(|e| crate::config::explain_unknown(&e.to_string()))
}

/// `cargo xtask interpret`.
pub fn interpret(args: &InterpretArgs) -> Result<()> {
    match (&args.run, &args.weights) {
        (Some(run), _) => run_mode(args, run).map(|_| ()),
        (None, Some(_)) => single_mode(args),
        (None, None) => bail!(
            "give --run results/<run> (explain a trained run's test scans) or --weights FILE --scan FILE \
             --method NAME --out FILE (one scan)"
        ),
    }
}

/// Applies the command-line overrides to the [relevance] section.
fn apply_overrides(r: &mut RelevanceSection, a: &InterpretArgs) {
    if !a.methods.is_empty() {
        r.methods = a.methods.clone();
    }
    if let Some(s) = &a.split {
        r.split = s.clone();
    }
    r.save_scan_maps |= a.save_scan_maps;
    if a.no_random_baseline {
        r.random_baseline = false;
    }
    macro_rules! set {
        ($field:expr, $arg:expr) => {
            if let Some(v) = &$arg {
                $field = v.clone();
            }
        };
    }
    set!(r.target, a.target);
    set!(r.output, a.output);
    set!(r.postprocess, a.postprocess);
    set!(r.occlusion.size, a.size);
    set!(r.occlusion.stride, a.stride);
    set!(r.occlusion.spread, a.spread);
    set!(r.occlusion.mode, a.occlusion_mode);
    set!(r.grad_cam.layer, a.layer);
    set!(r.integrated_gradients.steps, a.steps);
    set!(r.integrated_gradients.baseline, a.baseline);
    set!(r.smoothgrad.samples, a.samples);
    set!(r.smoothgrad.noise_level, a.noise_level);
    set!(r.memory_budget_mb, a.memory_budget_mb);
    set!(r.lrp.rule, a.lrp_rule);
    if let Some(v) = a.value {
        r.occlusion.value = v;
        r.area_occlusion.value = v;
    }
}

/// The `[relevance]` section and the method parameters it gives, checked.
#[derive(Debug, Clone)]
pub struct Params {
    /// The section they come from.
    pub section: RelevanceSection,
    /// Every method's parameters (`relevance::methods`).
    pub methods: MethodParams,
}

impl Params {
    /// Checks what serde cannot (an empty method list, LRP's ε and box) and builds the method
    /// parameters.
    pub fn new(section: RelevanceSection) -> Result<Self> {
        if section.methods.is_empty() {
            bail!("[relevance] methods is empty: name at least one of {}", Method::names());
        }
        let l = &section.lrp;
        let composite = relevance::lrp::LrpComposite::of(l.rule, l.epsilon);
        if !(l.epsilon.is_finite() && l.epsilon >= 0.0) {
            bail!("[relevance.lrp] epsilon = {}: expected a finite value ≥ 0", l.epsilon);
        }
        let bounds = match (l.low, l.high) {
            (None, None) => None,
            (Some(low), Some(high)) if low.is_finite() && high.is_finite() && low < high => Some((low, high)),
            (low, high) => bail!(
                "[relevance.lrp] low = {low:?}, high = {high:?}: give both, finite, with low < high (or neither: \
                 each scan's own range)"
            ),
        };
        let o = &section.occlusion;
        let occlusion = relevance::occlusion::OcclusionConfig {
            size: o.size,
            stride: o.stride,
            value: o.value,
            spread: o.spread,
            skip_unchanged: o.skip_unchanged,
            mode: o.mode,
            ..Default::default()
        };
        let methods = MethodParams {
            target: section.target,
            output: section.output,
            post: section.postprocess,
            memory_budget_mb: section.memory_budget_mb,
            seed: section.seed,
            occlusion,
            area_value: section.area_occlusion.value,
            grad_cam_layer: (!section.grad_cam.layer.is_empty()).then(|| section.grad_cam.layer.clone()),
            ig_baseline: section.integrated_gradients.baseline,
            ig_steps: section.integrated_gradients.steps,
            smoothgrad_noise: section.smoothgrad.noise_level,
            smoothgrad_samples: section.smoothgrad.samples,
            lrp: relevance::lrp::LrpConfig { composite, target: section.target, bounds },
        };
        Ok(Self { section, methods })
    }

    /// The class rule of every method.
    pub fn target(&self) -> Target {
        self.methods.target
    }
}

/// The atlas named by `[relevance] atlas`, placed on `grid`.
pub fn load_atlas(cfg: &ProjectConfig, grid: &Grid) -> Result<Atlas> {
    let r = &cfg.relevance;
    let ext = resolve(&cfg.fetch.external_dir);
    let atlas = match r.atlas {
        AtlasName::Cerebra => load_cerebra(&ext.join(fetch::paths::CEREBRA), &ext.join(fetch::paths::CEREBRA_CSV))
            .context("[relevance] atlas = \"cerebra\": run `cargo xtask fetch-data` first")?,
        AtlasName::Aal => load_aal(&ext.join(fetch::paths::AAL), &ext.join(fetch::paths::AAL_TXT))
            .context("[relevance] atlas = \"aal\": run `cargo xtask fetch-data` first")?,
        AtlasName::Synth => {
            let gt = resolve(&cfg.synth.out_dir).join("ground_truth");
            load_label_atlas("synth", &gt.join("atlas.nii.gz"), &gt.join("atlas_labels.csv"))
                .context("[relevance] atlas = \"synth\": the synthetic cohort's atlas (run `cargo xtask synth`)")?
        }
    };
    Ok(atlas.resample_to(grid, r.placement)?)
}

/// Ground truth of the synthetic cohort: Image.ID → atrophy map path.
pub(crate) fn ground_truth_index(cfg: &ProjectConfig) -> Result<Option<BTreeMap<i64, PathBuf>>> {
    let root = resolve(&cfg.synth.out_dir);
    let scans = root.join("ground_truth").join("scans.csv");
    // Only when the run's data table is this synthetic cohort's.
    if !scans.exists() || !resolve(&cfg.data.table).starts_with(&root) {
        return Ok(None);
    }
    let df = report::tables::read_csv(&scans)?;
    let ids = report::tables::column_str(&df, "ground_truth/scans.csv", "Image.ID")?;
    let paths = report::tables::column_str(&df, "ground_truth/scans.csv", "atrophy_path")?;
    let mut out = BTreeMap::new();
    for (row, (id, path)) in ids.iter().zip(&paths).enumerate() {
        let id: i64 = id
            .trim()
            .parse()
            .map_err(|_| anyhow!("{} row {}: Image.ID {id:?} is not an integer", scans.display(), row + 2))?;
        out.insert(id, root.join(path));
    }
    Ok(Some(out))
}

/// A scan's planted atrophy on the model grid, as a mask: voxels at ≥ `fraction` of the map's
/// maximum (after the same downsampling as the scans). `None` when nothing was planted (CN).
pub(crate) fn ground_truth_mask(path: &Path, downsample_factor: usize, fraction: f32) -> Result<Option<Array3<bool>>> {
    let (vol, _, _) = read_volume(path)?;
    let vol = if downsample_factor > 1 { downsample(&vol, downsample_factor) } else { vol };
    let max = vol.data.iter().copied().fold(0.0f32, f32::max);
    if max <= 0.0 {
        return Ok(None);
    }
    Ok(Some(vol.data.mapv(|v| v >= fraction * max)))
}

/// What a run-mode interpretation produced.
#[derive(Debug)]
pub struct InterpretOutcome {
    /// `results/<run>/relevance`.
    pub dir: PathBuf,
    /// Scans explained.
    pub scans: usize,
    /// Whether the outputs were already complete (nothing computed).
    pub skipped: bool,
}

/// LRP's conservation per scan and model (`lrp_conservation.csv`).
pub const LRP_CONSERVATION_FILE: &str = "lrp_conservation.csv";

/// Rows of [`LRP_CONSERVATION_FILE`]: split, Image.ID, model, logit, relevance sum.
#[derive(Default)]
struct BalanceRows {
    split: Vec<String>,
    image_id: Vec<i64>,
    model: Vec<&'static str>,
    logit: Vec<f32>,
    total: Vec<f32>,
}

impl BalanceRows {
    fn push(&mut self, split: &str, image_id: i64, model: &'static str, b: LrpBalance) {
        self.split.push(split.to_string());
        self.image_id.push(image_id);
        self.model.push(model);
        self.logit.push(b.logit);
        self.total.push(b.total);
    }

    fn frame(&self) -> Result<DataFrame> {
        let n = self.split.len();
        Ok(DataFrame::new(
            n,
            vec![
                Column::new("split".into(), &self.split),
                Column::new("Image.ID".into(), &self.image_id),
                Column::new("model".into(), &self.model),
                Column::new("logit".into(), &self.logit),
                Column::new("relevance_sum".into(), &self.total),
            ],
        )?)
    }
}

/// The marker written last.
pub const COMPLETE_FILE: &str = "complete.json";

/// Finds a run folder given on the command line (as given, else relative to the project root).
pub(crate) fn find_run(run: &Path) -> Result<PathBuf> {
    if run.is_dir() {
        return Ok(run.to_path_buf());
    }
    let at_root = workspace_root().join(run);
    if run.is_relative() && at_root.is_dir() {
        return Ok(at_root);
    }
    bail!("run folder {} not found (also looked in {})", run.display(), workspace_root().display())
}

/// The splits whose test scans are explained.
fn splits_to_explain(run: &Path, wanted: &str) -> Result<Vec<String>> {
    let finished = |name: &str| fold_dir(run, name).join("fold_result.json").exists();
    if !wanted.is_empty() {
        if !finished(wanted) {
            bail!(
                "split `{wanted}` has no finished model in {} (no fold_result.json): train it first",
                fold_dir(run, wanted).display()
            );
        }
        return Ok(vec![wanted.to_string()]);
    }
    if finished("holdout") {
        return Ok(vec!["holdout".into()]);
    }
    let mut folds: Vec<String> = std::fs::read_dir(run.join("folds"))
        .with_context(|| format!("{} has no folds/: train the run first (`cargo xtask train`)", run.display()))?
        .filter_map(|e| e.ok().and_then(|e| e.file_name().to_str().map(str::to_owned)))
        .filter(|n| finished(n))
        .collect();
    folds.sort();
    if folds.is_empty() {
        bail!("no finished fold in {}: train the run first (`cargo xtask train`)", run.join("folds").display());
    }
    Ok(folds)
}

/// Run mode: every requested method on the test scans of the run's split(s).
pub fn run_mode(args: &InterpretArgs, run: &Path) -> Result<InterpretOutcome> {
    let run = find_run(run)?;
    let mut cfg = match &args.config {
        Some(c) => load_config_file(c)?,
        None => {
            let resolved = run.join("resolved_config.toml");
            if !resolved.exists() {
                bail!("{} is not a training run folder: it has no resolved_config.toml", run.display());
            }
            ProjectConfig::load(&resolved)?
        }
    };
    apply_overrides(&mut cfg.relevance, args);
    let params = Params::new(cfg.relevance.clone())?;
    let out = run.join("relevance");
    let _lock = crate::commands::lock_folder(&out)?;
    let methods = params.section.methods.clone();
    if !args.force && out.join(COMPLETE_FILE).exists() {
        let done: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join(COMPLETE_FILE))?)?;
        let done_methods: Vec<String> = done["methods"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        if methods.iter().all(|m| done_methods.iter().any(|d| d == m.name())) {
            eprintln!("interpret: {} is complete (use --force to recompute)", out.display());
            return Ok(InterpretOutcome {
                dir: out,
                scans: done["scans"].as_u64().unwrap_or(0) as usize,
                skipped: true,
            });
        }
    }
    // A new computation: the old marker no longer describes the folder.
    let _ = std::fs::remove_file(out.join(COMPLETE_FILE));

    let splits = splits_to_explain(&run, &params.section.split)?;
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
        Err(e) if methods.contains(&Method::AreaOcclusion) => return Err(e),
        Err(e) => {
            eprintln!("interpret: no atlas, so no region scores ({e:#})");
            None
        }
    };
    let truth = ground_truth_index(&cfg)?;
    let gt_fraction = params.section.ground_truth_fraction;
    if !(gt_fraction > 0.0 && gt_fraction <= 1.0) {
        bail!("[relevance] ground_truth_fraction = {gt_fraction}: expected 0 < fraction ≤ 1");
    }

    // The scans: each split's test set.
    let by_id: BTreeMap<i64, &adni_data::cohort::CohortScan> =
        cohort.scans.iter().map(|s| (s.record.image_id, s)).collect();
    let mut jobs: Vec<(String, ScanItem)> = Vec::new();
    for split in &splits {
        let file = run.join("splits").join(format!("{split}.csv"));
        let rows = read_split_csv(&file)?;
        let mut per_patient: BTreeMap<&str, usize> = BTreeMap::new();
        for row in rows.rows.iter().filter(|r| r.set == SplitSet::Test) {
            let scan = by_id.get(&row.image_id).ok_or_else(|| {
                anyhow!("{}: Image.ID {} is not in the cohort of the run's config", file.display(), row.image_id)
            })?;
            let item = ScanItem::from_cohort(scan);
            let seen = per_patient.entry(row.ptid.as_str()).or_default();
            *seen += 1;
            let limit = params.section.scans_per_patient_of(item.label == 1);
            if limit > 0 && *seen > limit {
                continue;
            }
            jobs.push((split.clone(), item));
        }
    }
    if jobs.is_empty() {
        bail!("the split(s) {} have no test scans", splits.join(", "));
    }
    eprintln!(
        "interpret: {} test scans of {} on grid {}, methods {}{} → {}",
        jobs.len(),
        splits.join(", "),
        model::format_grid(shape),
        methods.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
        if truth.is_some() && params.section.random_baseline { " (+ random-weights baseline)" } else { "" },
        out.display()
    );

    let device = Default::default();
    let mut acc: BTreeMap<(Method, &'static str), MapMean> = BTreeMap::new();
    let mut background = MapMean::new(shape);
    let mut timing: BTreeMap<(Method, &'static str), (usize, f64)> = BTreeMap::new();
    let mut scan_rows = ScanRows::default();
    let mut region_frames: Vec<DataFrame> = Vec::new();
    let mut gt_rows = GtRows::default();
    let mut balance_rows = BalanceRows::default();
    let bar = progress_bar(jobs.len() * methods.len(), "maps");
    let mut current: Option<(String, ClassificationModel3D<Cpu>, Normalizer)> = None;
    let random = if truth.is_some() && params.section.random_baseline {
        <Cpu as Backend>::seed(&device, params.section.seed);
        let model = cfg.model.init::<Cpu>(shape, &device)?;
        // Lazily initialised parameters would be redrawn by every clone: fix them now.
        relevance::materialize_parameters(&model);
        Some(model)
    } else {
        None
    };
    let labels = atlas.as_ref().map(|a| a.labels.clone());
    // Ground-truth scores count the brain only (the model's inputs are 0 outside it in every
    // scan, so no model can use those voxels); the chance level is then the truth's share of the
    // brain. Without a brain mask, the whole grid.
    let brain: Option<Array3<bool>> = source.model_mask.as_ref().map(|m| m.mapv(|v| v > 0.5));
    for (split, scan) in &jobs {
        if current.as_ref().is_none_or(|(s, _, _)| s != split) {
            let dir = fold_dir(&run, split);
            let model = load_fold_model::<Cpu>(&dir, &device)?;
            if model.input_shape() != shape {
                bail!(
                    "the model of {} is for grid {}, the config's preprocessing gives {}",
                    dir.display(),
                    model::format_grid(model.input_shape()),
                    model::format_grid(shape)
                );
            }
            let norm = Normalizer::load(&dir.join("normalization"))?;
            current = Some((split.clone(), model, norm));
        }
        let (_, inner, norm) = current.as_ref().expect("set above");
        let raw = source.load(scan)?;
        background.add(&raw);
        let mut x = raw;
        norm.apply(&mut x).with_context(|| format!("image {} ({})", scan.image_id, scan.path.display()))?;
        let logits = inner.forward_eval(to_tensor::<Cpu>(&x, &device));
        let probs: Vec<f32> = burn::tensor::activation::softmax(logits, 1)
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| anyhow!("{e:?}"))?;
        let p_ad = f64::from(probs[1]);
        let predicted = usize::from(probs[1] > probs[0]);
        let target = match params.target() {
            Target::Predicted => predicted,
            Target::Class(c) => c,
        };
        let group = if scan.label == 1 { "AD" } else { "CN" };
        scan_rows.push(split, scan, p_ad, predicted, target);
        let truth_mask = match truth.as_ref().and_then(|t| t.get(&scan.image_id)) {
            Some(path) => ground_truth_mask(path, p.downsample, gt_fraction)?,
            None => None,
        };
        let trained = ClassificationModel3D::<Autodiff<Cpu>>::from_inner(inner.clone());
        let random_ad = random.as_ref().map(|r| (ClassificationModel3D::<Autodiff<Cpu>>::from_inner(r.clone()), r));
        for &method in &methods {
            bar.set_message(format!("{method} · {}", scan.image_id));
            let t = Instant::now();
            let (map, balance) = compute_map(method, &trained, inner, &x, labels.as_ref(), &params.methods)
                .with_context(|| format!("{method} of image {}", scan.image_id))?;
            if let Some(b) = balance {
                balance_rows.push(split, scan.image_id, "trained", b);
            }
            let e = timing.entry((method, "trained")).or_default();
            e.0 += 1;
            e.1 += t.elapsed().as_secs_f64();
            for g in [group, "all"] {
                acc.entry((method, g)).or_insert_with(|| MapMean::new(shape)).add(&map);
            }
            if params.section.save_scan_maps {
                let path = out.join("maps/scans").join(method.name()).join(format!("{}.nii.gz", scan.image_id));
                write_volume(&path, &Volume { data: map.clone(), affine: grid.affine }, OutputType::Float32)?;
            }
            if let Some(atlas) = &atlas {
                region_frames.push(scan_region_frame(&map, atlas, method, split, scan)?);
            }
            if let Some(mask) = &truth_mask {
                gt_rows.push(
                    method,
                    "trained",
                    scan,
                    report::ground_truth::score_map(map.view(), mask.view(), brain.as_ref().map(|b| b.view()))?,
                );
                if let Some((rad, rinner)) = &random_ad {
                    let t = Instant::now();
                    let (rmap, rbalance) = compute_map(method, rad, rinner, &x, labels.as_ref(), &params.methods)
                        .with_context(|| format!("{method} (random weights) of image {}", scan.image_id))?;
                    if let Some(b) = rbalance {
                        balance_rows.push(split, scan.image_id, "random", b);
                    }
                    let e = timing.entry((method, "random")).or_default();
                    e.0 += 1;
                    e.1 += t.elapsed().as_secs_f64();
                    gt_rows.push(
                        method,
                        "random",
                        scan,
                        report::ground_truth::score_map(rmap.view(), mask.view(), brain.as_ref().map(|b| b.view()))?,
                    );
                }
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    // Outputs; the marker last.
    let mut index = IndexRows::default();
    for ((method, group), a) in &acc {
        let file = format!("maps/{}_{group}.nii.gz", method.name());
        write_volume(&out.join(&file), &Volume { data: a.mean(), affine: grid.affine }, OutputType::Float32)?;
        index.push(method.name(), group, a.count(), &file);
    }
    write_volume(
        &out.join("background.nii.gz"),
        &Volume { data: background.mean(), affine: grid.affine },
        OutputType::Float32,
    )?;
    write_csv_atomically(&out.join("index.csv"), &mut index.frame()?)?;
    write_csv_atomically(&out.join("scans.csv"), &mut scan_rows.frame()?)?;
    if !region_frames.is_empty() {
        let mut regions = concat_frames(region_frames)?;
        write_csv_atomically(&out.join("scan_regions.csv"), &mut regions)?;
    }
    if !gt_rows.method.is_empty() {
        write_csv_atomically(&out.join("ground_truth.csv"), &mut gt_rows.frame()?)?;
    }
    if !balance_rows.split.is_empty() {
        write_csv_atomically(&out.join(LRP_CONSERVATION_FILE), &mut balance_rows.frame()?)?;
    }
    let mut t_frame = timing_frame(&timing)?;
    write_csv_atomically(&out.join("timing.csv"), &mut t_frame)?;
    cfg.write_resolved(&out)?;
    let marker = serde_json::json!({
        "methods": methods.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "scans": jobs.len(),
        "splits": splits,
        "grid": shape,
        "atlas": atlas.as_ref().map(|a| a.name.clone()),
        "ground_truth": truth.is_some(),
    });
    write_bytes_atomically(&out.join(COMPLETE_FILE), serde_json::to_string_pretty(&marker)?.as_bytes())?;
    for ((method, model_kind), (n, secs)) in &timing {
        eprintln!("  {method:<22} {model_kind:<8} {n:>4} scans  {:>8.2} s/scan", secs / *n as f64);
    }
    eprintln!("interpret: wrote {}", out.display());
    Ok(InterpretOutcome { dir: out, scans: jobs.len(), skipped: false })
}

/// One scan's region table with its identifying columns in front.
fn scan_region_frame(
    map: &Array3<f32>,
    atlas: &Atlas,
    method: Method,
    split: &str,
    scan: &ScanItem,
) -> Result<DataFrame> {
    let mut df = report::regions::region_scores(map.view(), atlas, true)?;
    let n = df.height();
    let label = if scan.label == 1 { "AD" } else { "CN" };
    let front = DataFrame::new(
        n,
        vec![
            Column::new("method".into(), vec![method.name(); n]),
            Column::new("split".into(), vec![split; n]),
            Column::new("PTID".into(), vec![scan.ptid.as_str(); n]),
            Column::new("Image.ID".into(), vec![scan.image_id; n]),
            Column::new("label".into(), vec![label; n]),
        ],
    )?;
    df = front.hstack(df.columns())?;
    Ok(df)
}

fn concat_frames(frames: Vec<DataFrame>) -> Result<DataFrame> {
    let mut iter = frames.into_iter();
    let mut first = iter.next().ok_or_else(|| anyhow!("no tables to join"))?;
    for f in iter {
        first.vstack_mut(&f)?;
    }
    Ok(first)
}

#[derive(Default)]
struct ScanRows {
    split: Vec<String>,
    ptid: Vec<String>,
    image_id: Vec<i64>,
    label: Vec<&'static str>,
    p_ad: Vec<f64>,
    predicted: Vec<&'static str>,
    target: Vec<i64>,
}

impl ScanRows {
    fn push(&mut self, split: &str, scan: &ScanItem, p_ad: f64, predicted: usize, target: usize) {
        let name = |c: usize| if c == 1 { "AD" } else { "CN" };
        self.split.push(split.to_owned());
        self.ptid.push(scan.ptid.clone());
        self.image_id.push(scan.image_id);
        self.label.push(name(usize::from(scan.label)));
        self.p_ad.push(p_ad);
        self.predicted.push(name(predicted));
        self.target.push(target as i64);
    }

    fn frame(&self) -> Result<DataFrame> {
        Ok(DataFrame::new(
            self.split.len(),
            vec![
                Column::new("split".into(), &self.split),
                Column::new("PTID".into(), &self.ptid),
                Column::new("Image.ID".into(), &self.image_id),
                Column::new("label".into(), &self.label),
                Column::new("p_ad".into(), &self.p_ad),
                Column::new("predicted".into(), &self.predicted),
                Column::new("target_class".into(), &self.target),
            ],
        )?)
    }
}

#[derive(Default)]
struct IndexRows {
    method: Vec<String>,
    group: Vec<String>,
    n: Vec<i64>,
    file: Vec<String>,
}

impl IndexRows {
    fn push(&mut self, method: &str, group: &str, n: usize, file: &str) {
        self.method.push(method.into());
        self.group.push(group.into());
        self.n.push(n as i64);
        self.file.push(file.into());
    }

    fn frame(&self) -> Result<DataFrame> {
        Ok(DataFrame::new(
            self.method.len(),
            vec![
                Column::new("method".into(), &self.method),
                Column::new("group".into(), &self.group),
                Column::new("n_scans".into(), &self.n),
                Column::new("file".into(), &self.file),
            ],
        )?)
    }
}

#[derive(Default)]
struct GtRows {
    method: Vec<&'static str>,
    model: Vec<&'static str>,
    ptid: Vec<String>,
    image_id: Vec<i64>,
    mass: Vec<f64>,
    rank: Vec<f64>,
    pointing: Vec<Option<bool>>,
    share: Vec<f64>,
    truth_fraction: Vec<f64>,
}

impl GtRows {
    fn push(
        &mut self,
        method: Method,
        model: &'static str,
        scan: &ScanItem,
        s: report::ground_truth::GroundTruthScores,
    ) {
        self.truth_fraction.push(s.chance);
        self.method.push(method.name());
        self.model.push(model);
        self.ptid.push(scan.ptid.clone());
        self.image_id.push(scan.image_id);
        self.mass.push(s.mass_accuracy);
        self.rank.push(s.rank_accuracy);
        self.pointing.push(s.pointing_hit);
        self.share.push(s.pointing_share);
    }

    fn frame(&self) -> Result<DataFrame> {
        Ok(DataFrame::new(
            self.method.len(),
            vec![
                Column::new("method".into(), &self.method),
                Column::new("model".into(), &self.model),
                Column::new("PTID".into(), &self.ptid),
                Column::new("Image.ID".into(), &self.image_id),
                Column::new("mass_accuracy".into(), &self.mass),
                Column::new("rank_accuracy".into(), &self.rank),
                Column::new("pointing_hit".into(), &self.pointing),
                Column::new("pointing_share".into(), &self.share),
                Column::new(report::ground_truth::CHANCE_COLUMN.into(), &self.truth_fraction),
            ],
        )?)
    }
}

fn timing_frame(timing: &BTreeMap<(Method, &'static str), (usize, f64)>) -> Result<DataFrame> {
    let n = timing.len();
    let rows: Vec<_> = timing.iter().collect();
    Ok(DataFrame::new(
        n,
        vec![
            Column::new("method".into(), rows.iter().map(|((m, _), _)| m.name()).collect::<Vec<_>>()),
            Column::new("model".into(), rows.iter().map(|((_, k), _)| *k).collect::<Vec<_>>()),
            Column::new("scans".into(), rows.iter().map(|(_, (n, _))| *n as i64).collect::<Vec<_>>()),
            Column::new("seconds".into(), rows.iter().map(|(_, (_, s))| *s).collect::<Vec<_>>()),
            Column::new("seconds_per_scan".into(), rows.iter().map(|(_, (n, s))| s / *n as f64).collect::<Vec<_>>()),
        ],
    )?)
}

/// Single-scan mode.
fn single_mode(a: &InterpretArgs) -> Result<()> {
    let (Some(weights), Some(scan_path), Some(method), Some(out)) = (&a.weights, &a.scan, a.method, &a.out) else {
        bail!("single-scan mode needs --weights FILE --scan FILE --method NAME --out FILE");
    };
    let mut section = match &a.config {
        Some(c) => load_config_file(&find_config(c)?)?.relevance,
        None => RelevanceSection::default(),
    };
    apply_overrides(&mut section, a);
    section.methods = vec![method];
    let params = Params::new(section)?;
    let device = Default::default();

    let (vol, _, report) = read_volume(scan_path)?;
    if report.non_finite_replaced > 0 {
        eprintln!("interpret: {}: {} NaN/Inf voxels read as 0", scan_path.display(), report.non_finite_replaced);
    }
    // The weights: a run's fold folder (with its normalisation), or a weights file.
    let (model, default_norm): (ClassificationModel3D<Cpu>, Option<PathBuf>) = if weights.is_dir() {
        let m = load_fold_model::<Cpu>(weights, &device).with_context(|| {
            format!("{} is not a fold folder of a run (network.json, model.safetensors)", weights.display())
        })?;
        (m, Some(weights.join("normalization")))
    } else {
        let file = WeightsFile::open(weights)?;
        let config = file.inferred_config()?;
        let grid = file.recorded_grid()?.unwrap_or(vol.grid().shape);
        (file.into_model::<Cpu>(&config, Some(grid), &device)?, None)
    };
    let grid = model.input_shape();
    // A fold of a run: its preprocessing (brain mask before downsampling) applies to a raw scan.
    let run_mask = if weights.is_dir() && vol.grid().shape != grid {
        let resolved = weights.join("../../resolved_config.toml");
        match ProjectConfig::load(&resolved) {
            Ok(run_cfg) => run_cfg.preprocess.mask_path(),
            Err(_) => None,
        }
    } else {
        None
    };
    let mut vol = vol;
    if let Some(mask) = run_mask {
        let (m, _, _) = read_volume(&mask)?;
        if m.data.shape() == vol.data.shape() {
            eprintln!("interpret: masking with the run's brain mask {}", mask.display());
            adni_data::preprocess::apply_mask(&mut vol.data, &m.data)?;
        }
    }
    let vol = fit_to_grid(vol, grid, scan_path)?;
    let mut x = vol.data;
    match (a.normalization.as_deref(), default_norm) {
        (Some("none"), _) => {}
        (Some(dir), _) => Normalizer::load(Path::new(dir))?.apply(&mut x)?,
        (None, Some(dir)) => Normalizer::load(&dir)?.apply(&mut x)?,
        (None, None) => bail!(
            "--normalization is needed with a weights file: a run's normalization folder \
             (results/<run>/folds/<split>/normalization) or `none` for a scan that is already z-scored"
        ),
    }
    let atlas = match &a.atlas {
        None => None,
        Some(path) => {
            let (labels, affine) = adni_data::atlas::read_label_volume(path)?;
            let ids: std::collections::BTreeSet<i32> = labels.iter().copied().filter(|&l| l != 0).collect();
            let regions = ids.iter().map(|&l| adni_data::atlas::Region::from_name(l, &format!("label_{l}"))).collect();
            let atlas = Atlas::new(path.display().to_string(), labels, affine, regions)?;
            Some(
                atlas
                    .resample_to(&Grid { shape: grid, affine: vol.affine }, adni_data::atlas::Placement::World)?
                    .labels,
            )
        }
    };
    let trained = ClassificationModel3D::<Autodiff<Cpu>>::from_inner(model.clone());
    let t = Instant::now();
    let (map, balance) = compute_map(method, &trained, &model, &x, atlas.as_ref(), &params.methods)?;
    if let Some(b) = balance {
        eprintln!(
            "interpret: LRP conservation: Σ relevance {:.4} of logit {:.4} ({:.1} % absorbed by biases and ε)",
            b.total,
            b.logit,
            100.0 * (1.0 - f64::from(b.total) / f64::from(b.logit))
        );
    }
    write_volume(out, &Volume { data: map, affine: vol.affine }, OutputType::Float32)?;
    eprintln!(
        "interpret: {method} of {} in {:.1} s → {}",
        scan_path.display(),
        t.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// The scan on the model's grid: as is, or downsampled by the integer factor that gives the grid.
fn fit_to_grid(vol: Volume, grid: [usize; 3], path: &Path) -> Result<Volume> {
    let shape = vol.grid().shape;
    if shape == grid {
        return Ok(vol);
    }
    for f in 2..=4 {
        if vol.grid().downsampled(f).shape == grid {
            eprintln!(
                "interpret: downsampling {} by {f} to the model grid {}",
                path.display(),
                model::format_grid(grid)
            );
            return Ok(downsample(&vol, f));
        }
    }
    bail!(
        "{}: the scan's grid {} does not match the model's grid {} (nor downsamples to it by 2, 3 or 4)",
        path.display(),
        model::format_grid(shape),
        model::format_grid(grid)
    )
}
