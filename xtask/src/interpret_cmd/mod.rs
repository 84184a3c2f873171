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
//! | `complete.json` | written last: the run is complete (methods, scans, and under `inputs` a fingerprint of each explained split's model and rows and of the `[relevance]` settings, see [`Params::output_settings`]) |
//!
//! A folder whose `complete.json` holds every requested method, the per-scan maps when they are
//! asked for, and the same `inputs` is complete and skipped; one written for another model,
//! split or settings (or by a version that recorded no `inputs`) is recomputed, its earlier
//! outputs removed first (the stderr line names what differs).
//!
//! Single-scan mode (`--weights FILE --scan FILE --method NAME --out FILE`) writes one map.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use relevance::methods::MethodParams;
use relevance::occlusion::{OcclusionMode, Spread};
use relevance::{Output, PostProcess, Target};

use crate::relevance_config::{CompositeName, Method, RelevanceSection};

mod run;
mod shard;
mod single;

pub(crate) use run::marker_completion;
pub use run::{InterpretOutcome, run_mode};
pub use shard::Shard;
use single::single_mode;

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
    /// Explain only shard I of N of the test scans (contiguous blocks, for cluster job arrays),
    /// into `relevance/shards/I-of-N/`; then `--merge-shards N`
    #[arg(long, value_parser = parse_shard, requires = "run", conflicts_with = "merge_shards")]
    pub shard: Option<Shard>,
    /// Merge the N complete shards in `relevance/shards/` into `relevance/` (what one unsharded
    /// run writes)
    #[arg(long, requires = "run")]
    pub merge_shards: Option<usize>,
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

fn parse_shard(s: &str) -> std::result::Result<Shard, String> {
    s.parse()
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
    /// The method parameters for one scan: explaining `class`, with SmoothGrad's noise seeded per
    /// scan from `[relevance.smoothgrad]`'s seed and the scan's `Image.ID` ([`scan_seed`]), so
    /// that a group's mean map averages independent noise. Every model explaining the same scan
    /// (trained, randomised weights, shuffled labels, each cascade step) gets the same noise, so
    /// their maps are compared on equal terms.
    pub fn for_scan(&self, class: usize, image_id: i64) -> MethodParams {
        MethodParams { seed: scan_seed(self.methods.seed, image_id), ..self.methods.for_class(class) }
    }

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

    /// The settings of the section that change a map or a table, as a JSON object that reads
    /// back equal from a `complete.json`: the whole section but `methods` (a folder holding more
    /// methods serves fewer), `split` (recorded per model), `save_scan_maps` (recorded on its
    /// own), `memory_budget_mb` and `[relevance.occlusion] mode` (how, not what, is computed).
    pub fn output_settings(&self) -> Result<serde_json::Value> {
        let mut v = crate::inputs::as_stored_json(&self.section)?;
        if let Some(o) = v.as_object_mut() {
            for key in ["methods", "split", "save_scan_maps", "memory_budget_mb"] {
                o.remove(key);
            }
            if let Some(occlusion) = o.get_mut("occlusion").and_then(|x| x.as_object_mut()) {
                occlusion.remove("mode");
            }
        }
        Ok(v)
    }
}

/// SmoothGrad's seed for the scan `image_id`: SplitMix64's finaliser over `seed` and the id.
pub fn scan_seed(seed: u64, image_id: i64) -> u64 {
    let mut z = seed ^ (image_id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_options_override_the_config_section() {
        let mut section = RelevanceSection::default();
        let args = InterpretArgs {
            methods: vec![Method::Lrp],
            split: Some("fold2".into()),
            no_random_baseline: true,
            size: Some(9),
            value: Some(-1.5),
            lrp_rule: Some(CompositeName::Epsilon),
            ..Default::default()
        };
        apply_overrides(&mut section, &args);
        assert_eq!(section.methods, [Method::Lrp]);
        assert_eq!(section.split, "fold2");
        assert!(!section.random_baseline);
        assert_eq!(section.occlusion.size, 9);
        assert_eq!((section.occlusion.value, section.area_occlusion.value), (-1.5, -1.5));
        assert_eq!(section.lrp.rule, CompositeName::Epsilon);
        let untouched = RelevanceSection::default();
        assert_eq!(section.occlusion.stride, untouched.occlusion.stride);
        assert_eq!(section.integrated_gradients.steps, untouched.integrated_gradients.steps);
    }

    #[test]
    fn params_refuse_what_serde_cannot() {
        let e = Params::new(RelevanceSection { methods: Vec::new(), ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("[relevance] methods is empty: name at least one of"), "{e}");
        let mut section = RelevanceSection::default();
        section.lrp.epsilon = -1.0;
        let e = Params::new(section).unwrap_err().to_string();
        assert!(e.contains("[relevance.lrp] epsilon = -1"), "{e}");
        let mut section = RelevanceSection::default();
        section.lrp.low = Some(1.0);
        let e = Params::new(section).unwrap_err().to_string();
        assert!(e.contains("give both, finite, with low < high"), "{e}");
        let mut section = RelevanceSection::default();
        (section.lrp.low, section.lrp.high) = (Some(-1.0), Some(2.0));
        section.occlusion.size = 5;
        let p = Params::new(section).unwrap();
        assert_eq!(p.methods.lrp.bounds, Some((-1.0, 2.0)));
        assert_eq!(p.methods.occlusion.size, 5);
    }

    #[test]
    fn command_line_values_are_read_as_the_config_reads_them() {
        assert_eq!(parse_method("area-occlusion"), Ok(Method::AreaOcclusion));
        let e = parse_method("gradcam").unwrap_err();
        assert!(e.contains("grad-cam"), "the did-you-mean names the closest method: {e}");
    }
}
