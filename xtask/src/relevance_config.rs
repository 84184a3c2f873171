//! `[relevance]`: which relevance maps `cargo xtask interpret` computes and with what parameters.
//! Every default is the study's (Rieke et al., MLCN 2018, and its original code) where the study
//! has one.

use adni_data::atlas::Placement;
use relevance::occlusion::{OcclusionConfig, OcclusionMode, Spread};
use relevance::{Output, PostProcess, Target};
use serde::{Deserialize, Serialize};

pub use relevance::lrp::CompositeName;
pub use relevance::methods::Method;

/// The config spelling of a typed option (`Output::Probability` → `probability`).
pub fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// The atlas of area occlusion and the region tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AtlasName {
    /// CerebrA (102 labels; always fetched). Default.
    #[default]
    Cerebra,
    /// AAL (116 labels; the study's).
    Aal,
    /// The synthetic cohort's own label atlas (written by `cargo xtask synth`).
    Synth,
}

impl AtlasName {
    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            AtlasName::Cerebra => "cerebra",
            AtlasName::Aal => "aal",
            AtlasName::Synth => "synth",
        }
    }
}

/// `[relevance]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelevanceSection {
    /// Methods to compute. Default: all nine.
    pub methods: Vec<Method>,
    /// Which trained split's test scans to explain: `"holdout"`, a fold name, or `""` = the
    /// hold-out split if the run trained one, else every fold (each fold's test scans with that
    /// fold's model). Default `""`.
    pub split: String,
    /// `"predicted"` (default), `"AD"`, `"CN"`, or a class index.
    pub target: Target,
    /// `"probability"` (softmax, the study; default) or `"logit"`.
    pub output: Output,
    /// Post-processing of the signed maps: `"abs"` (default), `"square"`, `"none"`. Applied to
    /// sensitivity, guided backprop and SmoothGrad (per sample, as Captum's `Saliency` with
    /// `abs=True` inside `NoiseTunnel`) as the study did, and to integrated gradients, guided
    /// Grad-CAM and LRP after they are computed, so that every map is non-negative for the region
    /// shares and the original's distance (occlusion and area occlusion, whose score drops may
    /// be negative, and Grad-CAM are left as they are).
    pub postprocess: PostProcess,
    /// Memory budget of one batch of model inputs and activations, in MB. Default 1024.
    pub memory_budget_mb: usize,
    /// Explain at most this many scans per test patient (their first in the split file, i.e. the
    /// cohort's order); 0 = every scan (the study). Default 0.
    pub scans_per_patient: usize,
    /// The same limit for the test patients whose true label is CN, where it differs: they carry
    /// no planted atrophy, so their maps feed the CN averages and region tables but no
    /// ground-truth score, and fewer of them save time while every AD scan is explained and
    /// scored. 0 = every scan. Unset (default) = `scans_per_patient`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cn_scans_per_patient: Option<usize>,
    /// Ground-truth mask of a synthetic scan: voxels whose planted atrophy (on the model grid)
    /// is at least this fraction of the scan's maximum. Default 0.2.
    pub ground_truth_fraction: f32,
    /// Write every scan's map (`maps/scans/<method>/<Image.ID>.nii.gz`), not only the group
    /// averages. Default false.
    pub save_scan_maps: bool,
    /// Atlas for area occlusion and the region tables: `"cerebra"` (default, always fetched) or
    /// `"aal"` (the study's), or `"synth"` (the synthetic cohort's own atlas).
    pub atlas: AtlasName,
    /// Atlas placement on the image grid: `"world"` (by world coordinates; default) or `"zoom"`
    /// (the original's stretch of the atlas grid onto the image grid).
    pub placement: Placement,
    /// Also compute the maps of a model with re-initialised (random) weights and score them
    /// against the ground truth, as the sanity baseline of Adebayo et al. 2018. Default true.
    pub random_baseline: bool,
    /// Seed of the random baseline's weights and of SmoothGrad's noise. Default 2018.
    pub seed: u64,
    /// Sliding-cube occlusion.
    pub occlusion: OcclusionSection,
    /// Area occlusion.
    pub area_occlusion: AreaOcclusionSection,
    /// Grad-CAM and guided Grad-CAM.
    pub grad_cam: GradCamSection,
    /// Integrated gradients.
    pub integrated_gradients: IntegratedGradientsSection,
    /// SmoothGrad.
    pub smoothgrad: SmoothGradSection,
    /// Layer-wise relevance propagation.
    pub lrp: LrpSection,
}

impl Default for RelevanceSection {
    fn default() -> Self {
        Self {
            methods: Method::ALL.to_vec(),
            split: String::new(),
            target: Target::Predicted,
            output: Output::Probability,
            postprocess: PostProcess::Abs,
            memory_budget_mb: 1024,
            scans_per_patient: 0,
            cn_scans_per_patient: None,
            ground_truth_fraction: 0.2,
            save_scan_maps: false,
            atlas: AtlasName::Cerebra,
            placement: Placement::World,
            random_baseline: true,
            seed: 2018,
            occlusion: OcclusionSection::default(),
            area_occlusion: AreaOcclusionSection::default(),
            grad_cam: GradCamSection::default(),
            integrated_gradients: IntegratedGradientsSection::default(),
            smoothgrad: SmoothGradSection::default(),
            lrp: LrpSection::default(),
        }
    }
}

/// The feature layers of the paper's network with `blocks` convolution blocks, as the network
/// names them for Grad-CAM (`relevance::paper_model`: `convK`, `blockK`, `convK-raw` per block).
pub fn grad_cam_layers(blocks: usize) -> Vec<String> {
    (1..=blocks).flat_map(|k| [format!("conv{k}"), format!("block{k}"), format!("conv{k}-raw")]).collect()
}

/// `Err("[section] key: must be …, got …")` unless `ok`.
fn check(ok: bool, key: &str, must: &str, got: impl std::fmt::Display) -> anyhow::Result<()> {
    if ok { Ok(()) } else { Err(anyhow::anyhow!("{key}: must be {must}, got {got}")) }
}

impl RelevanceSection {
    /// Checks what serde cannot, at load time (before any training): counts ≥ 1, finite
    /// values in range, LRP's box, the Grad-CAM layer against the layers of `network`, and
    /// `split` against the splits a run with `k` folds writes. Errors read
    /// `[relevance.occlusion] stride: must be ≥ 1, got 0`.
    pub fn validate(&self, k: usize, network: &model::NetworkConfig) -> anyhow::Result<()> {
        if self.methods.is_empty() {
            anyhow::bail!("[relevance] methods: must name at least one of {}, got []", Method::names());
        }
        let folds: Vec<String> = (1..=k).map(|i| format!("fold{i}")).collect();
        if !self.split.is_empty() && self.split != "holdout" && !folds.contains(&self.split) {
            let last = folds.last().map_or(String::new(), |f| format!(", fold1 … {f}"));
            anyhow::bail!(
                "[relevance] split: must be \"\" (the hold-out split if the run trained one, else every fold), \
                 \"holdout\"{last} (the splits of [split] k = {k}), got {:?}",
                self.split
            );
        }
        check(self.memory_budget_mb >= 1, "[relevance] memory_budget_mb", "≥ 1", self.memory_budget_mb)?;
        let f = self.ground_truth_fraction;
        check(f.is_finite() && f > 0.0 && f <= 1.0, "[relevance] ground_truth_fraction", "in (0, 1]", f)?;
        let o = &self.occlusion;
        check(o.size >= 2, "[relevance.occlusion] size", "≥ 2 (the cube side is 2·⌊size/2⌋ voxels)", o.size)?;
        check(o.stride >= 1, "[relevance.occlusion] stride", "≥ 1", o.stride)?;
        check(o.value.is_finite(), "[relevance.occlusion] value", "a finite number", o.value)?;
        let a = self.area_occlusion.value;
        check(a.is_finite(), "[relevance.area_occlusion] value", "a finite number", a)?;
        let layer = &self.grad_cam.layer;
        let layers = grad_cam_layers(network.channels.len());
        if !layer.is_empty() && !layers.contains(layer) {
            let hint = crate::config::closest(layer, layers.iter().map(String::as_str))
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            anyhow::bail!(
                "[relevance.grad_cam] layer: must be \"\" (the last convolutional layer) or a layer of the network ({}), \
                 got {layer:?}{hint}",
                layers.join(", ")
            );
        }
        let ig = &self.integrated_gradients;
        check(ig.steps >= 1, "[relevance.integrated_gradients] steps", "≥ 1", ig.steps)?;
        check(ig.baseline.is_finite(), "[relevance.integrated_gradients] baseline", "a finite number", ig.baseline)?;
        let sg = &self.smoothgrad;
        check(sg.samples >= 1, "[relevance.smoothgrad] samples", "≥ 1", sg.samples)?;
        let n = sg.noise_level;
        check(n.is_finite() && n >= 0.0, "[relevance.smoothgrad] noise_level", "a finite number ≥ 0", n)?;
        let l = &self.lrp;
        check(l.epsilon.is_finite() && l.epsilon >= 0.0, "[relevance.lrp] epsilon", "a finite number ≥ 0", l.epsilon)?;
        match (l.low, l.high) {
            (None, None) => {}
            (Some(low), Some(high)) => {
                check(low.is_finite(), "[relevance.lrp] low", "a finite number", low)?;
                check(high.is_finite(), "[relevance.lrp] high", "a finite number", high)?;
                check(low < high, "[relevance.lrp] low", format!("< high = {high}").as_str(), low)?;
            }
            (Some(low), None) => anyhow::bail!(
                "[relevance.lrp] high: must be set with low (both or neither; neither = each scan's own range), \
                 got low = {low} and no high"
            ),
            (None, Some(high)) => anyhow::bail!(
                "[relevance.lrp] low: must be set with high (both or neither; neither = each scan's own range), \
                 got high = {high} and no low"
            ),
        }
        Ok(())
    }

    /// The scans-per-patient limit of a test patient (0 = every scan): `cn_scans_per_patient`
    /// for a CN patient where it is set, else `scans_per_patient`.
    pub fn scans_per_patient_of(&self, is_ad: bool) -> usize {
        match (is_ad, self.cn_scans_per_patient) {
            (false, Some(cn)) => cn,
            _ => self.scans_per_patient,
        }
    }
}

/// `[relevance.occlusion]`, in voxels of the model's grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcclusionSection {
    /// Cube side (the cube is 2·(size/2) voxels). Default 6 (= 12 mm at 2 mm; the paper's
    /// figure used stride 12 at 1 mm; the original code's default was size 50, stride 25 at 1 mm).
    /// The default is the library's ([`relevance::occlusion::DEFAULT_SIZE`]).
    pub size: usize,
    /// Distance between cube centres. Default 6 ([`relevance::occlusion::DEFAULT_STRIDE`]).
    pub stride: usize,
    /// Value the cube is set to. Default 0 (the training mean after z-scoring).
    pub value: f32,
    /// `"nearest"` (the original: the coarse grid resized with nearest-neighbour zoom) or
    /// `"mean"` (each voxel: the mean drop of the cubes covering it). Default `"nearest"`.
    pub spread: Spread,
    /// `"incremental"` (recompute only the receptive field of each cube; exact; default),
    /// `"naive"` (a full forward pass per cube) or `"auto"` (incremental where the model allows).
    pub mode: OcclusionMode,
    /// Skip cubes whose voxels all hold `value` already (exact). Default true.
    pub skip_unchanged: bool,
}

impl Default for OcclusionSection {
    fn default() -> Self {
        let library = OcclusionConfig::default();
        Self {
            size: library.size,
            stride: library.stride,
            value: library.value,
            spread: library.spread,
            mode: OcclusionMode::Incremental,
            skip_unchanged: library.skip_unchanged,
        }
    }
}

/// `[relevance.area_occlusion]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AreaOcclusionSection {
    /// Value a region is set to. Default 0 (the training mean after z-scoring). Honoured; the
    /// original code took an occlusion value for area occlusion but always set the region to 0.
    pub value: f32,
}

impl Default for AreaOcclusionSection {
    fn default() -> Self {
        Self { value: 0.0 }
    }
}

/// `[relevance.grad_cam]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct GradCamSection {
    /// Feature layer (`conv1`…`conv4`, `block1`…`block4`, `conv1-raw`…`conv4-raw` for the paper
    /// network); `""` = the last convolutional layer (`conv4`). Default `""`. The original code
    /// used `conv4-raw`, the last convolution's output before BatchNorm and ReLU (see
    /// `relevance::paper_model`).
    pub layer: String,
}

/// `[relevance.integrated_gradients]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegratedGradientsSection {
    /// Constant baseline input. Default 0 (the training mean after z-scoring).
    pub baseline: f32,
    /// Integration steps. Default 32.
    pub steps: usize,
}

impl Default for IntegratedGradientsSection {
    fn default() -> Self {
        Self { baseline: 0.0, steps: 32 }
    }
}

/// `[relevance.smoothgrad]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmoothGradSection {
    /// Noise σ as a fraction of the input's value range. Default 0.15.
    pub noise_level: f32,
    /// Noisy samples. Default 16.
    pub samples: usize,
}

impl Default for SmoothGradSection {
    fn default() -> Self {
        Self { noise_level: 0.15, samples: 16 }
    }
}

/// `[relevance.lrp]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LrpSection {
    /// The composite of rules (`relevance::lrp::LrpComposite::NAMES`): `"epsilon-plus-box"`
    /// (default: z^B at the input, z⁺ in the convolutions, ε in the dense layers, the composite
    /// most used for CNNs), `"epsilon-plus"`, `"epsilon-alpha2-beta1"`, `"alpha1-beta0"`,
    /// `"alpha2-beta1"`, `"epsilon"`.
    pub rule: CompositeName,
    /// ε of the ε layers. Default 1e-6 (zennit's).
    pub epsilon: f32,
    /// The z^B box `[low, high]`; unset = each scan's own minimum and maximum (the scan after
    /// z-scoring). Both or neither.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low: Option<f32>,
    /// See `low`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high: Option<f32>,
}

impl Default for LrpSection {
    fn default() -> Self {
        Self { rule: CompositeName::EpsilonPlusBox, epsilon: 1e-6, low: None, high: None }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::ProjectConfig;

    fn parse(s: &str) -> ProjectConfig {
        ProjectConfig::from_toml(s, Path::new("test.toml")).unwrap()
    }

    #[test]
    fn cn_limit_applies_to_cn_patients_only_and_round_trips() {
        let c = parse("[relevance]\nscans_per_patient = 0\ncn_scans_per_patient = 1\n");
        assert_eq!((c.relevance.scans_per_patient_of(true), c.relevance.scans_per_patient_of(false)), (0, 1));
        assert_eq!(parse(&c.to_toml().unwrap()), c);
        // unset: one limit for everybody, and the resolved config leaves the key out
        let c = parse("[relevance]\nscans_per_patient = 2\n");
        assert_eq!((c.relevance.scans_per_patient_of(true), c.relevance.scans_per_patient_of(false)), (2, 2));
        let text = c.to_toml().unwrap();
        assert!(!text.contains("cn_scans_per_patient"), "{text}");
        assert_eq!(parse(&text), c);
        let e = ProjectConfig::from_toml("[relevance]\ncn_scans_per_patien = 1\n", Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("did you mean `cn_scans_per_patient`"), "{e}");
    }

    #[test]
    fn every_option_is_typed_and_a_bad_value_fails_at_load_time_with_a_hint() {
        let bad = |text: &str| ProjectConfig::from_toml(text, Path::new("t.toml")).unwrap_err().to_string();
        let e = bad("[relevance]\npostprocess = \"abss\"\n");
        assert!(e.contains("key `postprocess`") && e.contains("did you mean `abs`?"), "{e}");
        let e = bad("[relevance]\noutput = \"logits\"\n");
        assert!(e.contains("did you mean `logit`?"), "{e}");
        let e = bad("[relevance]\nplacement = \"zom\"\n");
        assert!(e.contains("did you mean `zoom`?"), "{e}");
        let e = bad("[relevance]\natlas = \"aall\"\n");
        assert!(e.contains("did you mean `aal`?"), "{e}");
        let e = bad("[relevance]\nmethods = [\"smoothgrd\"]\n");
        assert!(e.contains("did you mean `smoothgrad`?"), "{e}");
        let e = bad("[relevance]\ntarget = \"AB\"\n");
        assert!(e.contains("unknown target `AB`: expected `predicted`, `AD`, `CN` or a class index"), "{e}");
        let e = bad("[relevance.occlusion]\nspread = \"meen\"\n");
        assert!(e.contains("did you mean `mean`?"), "{e}");
        let e = bad("[relevance.lrp]\nrule = \"epsilon-plus-bx\"\n");
        assert!(e.contains("did you mean `epsilon-plus-box`?"), "{e}");
        // Good values, and the resolved config writes them back as they were spelled.
        let c = parse(
            "[relevance]\ntarget = \"AD\"\noutput = \"logit\"\npostprocess = \"square\"\natlas = \"aal\"\n\
             placement = \"zoom\"\n[relevance.occlusion]\nspread = \"mean\"\nmode = \"naive\"\n\
             [relevance.lrp]\nrule = \"alpha2-beta1\"\n",
        );
        let r = &c.relevance;
        assert_eq!((r.target, r.output, r.postprocess), (Target::Class(1), Output::Logit, PostProcess::Square));
        assert_eq!((r.atlas, r.placement), (AtlasName::Aal, Placement::Zoom));
        assert_eq!((r.occlusion.spread, r.occlusion.mode), (Spread::Mean, OcclusionMode::Naive));
        assert_eq!(r.lrp.rule, CompositeName::Alpha2Beta1);
        assert_eq!(parse(&c.to_toml().unwrap()), c);
        assert_eq!(parse("[relevance]\ntarget = 3\n").relevance.target, Target::Class(3));
    }

    #[test]
    fn numeric_settings_are_checked_at_load_naming_the_file_section_and_key() {
        let bad = |text: &str| ProjectConfig::from_toml(text, Path::new("t.toml")).unwrap_err().to_string();
        for (text, want) in [
            ("[relevance.occlusion]\nstride = 0\n", "t.toml: [relevance.occlusion] stride: must be ≥ 1, got 0"),
            (
                "[relevance.occlusion]\nsize = 0\n",
                "t.toml: [relevance.occlusion] size: must be ≥ 2 (the cube side is 2·⌊size/2⌋ voxels), got 0",
            ),
            (
                "[relevance.integrated_gradients]\nsteps = 0\n",
                "t.toml: [relevance.integrated_gradients] steps: must be ≥ 1, got 0",
            ),
            ("[relevance.smoothgrad]\nsamples = 0\n", "t.toml: [relevance.smoothgrad] samples: must be ≥ 1, got 0"),
            (
                "[relevance.smoothgrad]\nnoise_level = -1\n",
                "t.toml: [relevance.smoothgrad] noise_level: must be a finite number ≥ 0, got -1",
            ),
            ("[relevance]\nmemory_budget_mb = 0\n", "t.toml: [relevance] memory_budget_mb: must be ≥ 1, got 0"),
            (
                "[relevance]\nground_truth_fraction = 2\n",
                "t.toml: [relevance] ground_truth_fraction: must be in (0, 1], got 2",
            ),
            ("[relevance.lrp]\nepsilon = -1\n", "t.toml: [relevance.lrp] epsilon: must be a finite number ≥ 0, got -1"),
            (
                "[relevance.lrp]\nlow = 0.5\nhigh = -0.5\n",
                "t.toml: [relevance.lrp] low: must be < high = -0.5, got 0.5",
            ),
        ] {
            assert_eq!(bad(text), want, "{text}");
        }
        let e = bad("[relevance.lrp]\nlow = -1\n");
        assert!(e.starts_with("t.toml: [relevance.lrp] high: must be set with low"), "{e}");
        let e = bad("[relevance]\nmethods = []\n");
        assert!(e.starts_with("t.toml: [relevance] methods: must name at least one of sensitivity"), "{e}");
        let e = bad("[relevance.grad_cam]\nlayer = \"conv9\"\n");
        assert!(
            e.contains("[relevance.grad_cam] layer: must be") && e.contains("conv4-raw") && e.contains("\"conv9\""),
            "{e}"
        );
        let e = bad("[relevance]\nsplit = \"foo\"\n");
        assert!(
            e.contains("[relevance] split: must be") && e.contains("fold1 … fold5") && e.ends_with("got \"foo\""),
            "{e}"
        );
        let e = bad("[split]\nk = 3\n[relevance]\nsplit = \"fold4\"\n");
        assert!(e.contains("fold1 … fold3"), "{e}");
        // Good values load.
        for good in ["", "holdout", "fold1", "fold5"] {
            assert_eq!(parse(&format!("[relevance]\nsplit = {good:?}\n")).relevance.split, good);
        }
        for layer in ["", "conv1", "block4", "conv4-raw"] {
            assert_eq!(parse(&format!("[relevance.grad_cam]\nlayer = {layer:?}\n")).relevance.grad_cam.layer, layer);
        }
        // Every shipped config passes.
        for entry in std::fs::read_dir(crate::config::workspace_root().join("configs")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                ProjectConfig::load(&path).unwrap();
            }
        }
    }

    #[test]
    fn the_grad_cam_layers_are_the_networks() {
        use relevance::Explainable;
        let network = model::NetworkConfig { channels: [2; 4], ..Default::default() };
        let device = Default::default();
        let m = network.init::<model::Cpu>([97, 115, 97], &device).unwrap();
        assert_eq!(m.feature_layers(), grad_cam_layers(network.channels.len()));
        assert!(grad_cam_layers(4).contains(&m.default_feature_layer()));
    }

    #[test]
    fn the_library_and_the_config_agree_on_occlusion_defaults() {
        let (lib, cfg) = (OcclusionConfig::default(), OcclusionSection::default());
        assert_eq!((cfg.size, cfg.stride, cfg.value, cfg.spread), (lib.size, lib.stride, lib.value, lib.spread));
        assert_eq!((cfg.size, cfg.stride), (6, 6));
    }

    #[test]
    fn the_paper_config_holds_the_papers_relevance_settings() {
        let path = crate::config::workspace_root().join("configs/paper.toml");
        let c = ProjectConfig::from_toml(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        let r = &c.relevance;
        assert_eq!(c.preprocess.downsample, 1, "1 mm");
        assert_eq!((r.atlas, r.placement), (AtlasName::Aal, Placement::Zoom));
        assert_eq!((r.occlusion.size, r.occlusion.stride), (50, 12));
        assert_eq!(r.methods, [Method::Sensitivity, Method::GuidedBackprop, Method::Occlusion, Method::AreaOcclusion]);
    }

    #[test]
    fn reproduce_config_explains_every_ad_test_scan() {
        // issue 10: every AD scan of the hold-out is scored against the planted atrophy
        let path = crate::config::workspace_root().join("configs/reproduce.toml");
        let c = ProjectConfig::from_toml(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        assert_eq!(c.relevance.scans_per_patient_of(true), 0);
        assert!(c.relevance.random_baseline);
    }
}
