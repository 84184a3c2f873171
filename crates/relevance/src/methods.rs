//! The methods by name, and one map of one scan by any of them: what `cargo xtask interpret`
//! and the sanity checks dispatch through.
//!
//! [`Method`] names a method in configs, on the command line and in file names (serde and
//! [`std::str::FromStr`] both use [`Method::name`]). [`MethodParams`] holds every method's
//! parameters, typed; [`compute_map`] runs one method on one normalised scan of the paper's
//! network and returns the map on the scan's grid (and LRP's conservation numbers).
//! [`MapMean`] averages maps voxel by voxel in f64.

use std::fmt;
use std::str::FromStr;

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use model::{ClassificationModel3D, Cpu};
use ndarray::{Array3, Zip};
use serde::{Deserialize, Serialize};

use crate::lrp::LrpConfig;
use crate::occlusion::{AreaOcclusionConfig, OcclusionConfig};
use crate::{Output, PostProcess, RelevanceError, Result, Target, cam, gradient, occlusion};

/// A relevance method, by its command-line / config name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// ∂p/∂x, post-processed (abs by default).
    Sensitivity,
    /// Sensitivity with every ReLU's backward signal clamped at 0.
    GuidedBackprop,
    /// Sliding-cube occlusion.
    Occlusion,
    /// One occlusion per atlas region.
    AreaOcclusion,
    /// Grad-CAM on a feature layer.
    GradCam,
    /// Guided backprop × Grad-CAM.
    GuidedGradCam,
    /// Integrated gradients.
    IntegratedGradients,
    /// SmoothGrad.
    Smoothgrad,
    /// Layer-wise relevance propagation (a composite of LRP rules).
    Lrp,
}

impl Method {
    /// Every method, in the order runs and tables list them (the study's four first).
    pub const ALL: [Method; 9] = [
        Method::Sensitivity,
        Method::GuidedBackprop,
        Method::Occlusion,
        Method::AreaOcclusion,
        Method::GradCam,
        Method::GuidedGradCam,
        Method::IntegratedGradients,
        Method::Smoothgrad,
        Method::Lrp,
    ];

    /// The name used on the command line, in configs and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Method::Sensitivity => "sensitivity",
            Method::GuidedBackprop => "guided-backprop",
            Method::Occlusion => "occlusion",
            Method::AreaOcclusion => "area-occlusion",
            Method::GradCam => "grad-cam",
            Method::GuidedGradCam => "guided-grad-cam",
            Method::IntegratedGradients => "integrated-gradients",
            Method::Smoothgrad => "smoothgrad",
            Method::Lrp => "lrp",
        }
    }

    /// Every name, comma-separated (for messages).
    pub fn names() -> String {
        Method::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown relevance method `{s}`; valid: {}", Method::names()))
    }
}

/// Every method's parameters, typed and checked (see each method's own config for the meaning).
#[derive(Debug, Clone)]
pub struct MethodParams {
    /// The class explained.
    pub target: Target,
    /// The output explained.
    pub output: Output,
    /// Post-processing of the signed maps (sensitivity, guided backprop and SmoothGrad per
    /// sample; integrated gradients, guided Grad-CAM and LRP after they are computed).
    pub post: PostProcess,
    /// Memory budget of one batch, in MB.
    pub memory_budget_mb: usize,
    /// Seed of SmoothGrad's noise.
    pub seed: u64,
    /// Sliding-cube occlusion (its `target`, `output` and `memory_budget_mb` are overridden by
    /// the fields above).
    pub occlusion: OcclusionConfig,
    /// The value area occlusion sets a region to.
    pub area_value: f32,
    /// Grad-CAM's feature layer; `None` = the model's default.
    pub grad_cam_layer: Option<String>,
    /// Integrated gradients' constant baseline.
    pub ig_baseline: f32,
    /// Integrated gradients' steps.
    pub ig_steps: usize,
    /// SmoothGrad's noise σ as a fraction of the input's range.
    pub smoothgrad_noise: f32,
    /// SmoothGrad's samples.
    pub smoothgrad_samples: usize,
    /// LRP's composite and box (its `target` is overridden by `target`).
    pub lrp: LrpConfig,
}

impl MethodParams {
    /// The same parameters explaining class `class` (so that a changed model explains the class
    /// that a trained model's map explains).
    pub fn for_class(&self, class: usize) -> MethodParams {
        MethodParams { target: Target::Class(class), ..self.clone() }
    }
}

/// LRP's conservation numbers of one map: the explained logit and the relevance that reached
/// the input (before post-processing); the difference is what biases and ε absorbed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrpBalance {
    /// The target's logit.
    pub logit: f32,
    /// Σ of the signed map.
    pub total: f32,
}

/// One input scan as a `[1, 1, D, H, W]` tensor.
pub fn to_tensor<B: Backend>(data: &Array3<f32>, device: &B::Device) -> Tensor<B, 5> {
    let [d, h, w] = [data.shape()[0], data.shape()[1], data.shape()[2]];
    let values: Vec<f32> = data.iter().copied().collect();
    Tensor::from_data(TensorData::new(values, [1, 1, d, h, w]), device)
}

/// A map of `grid`'s size back to an array.
fn to_array<B: Backend, const K: usize>(map: Tensor<B, K>, grid: [usize; 3]) -> Result<Array3<f32>> {
    let values: Vec<f32> = map
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| RelevanceError::Shape { found: vec![], expected: format!("a readable f32 map ({e:?})") })?;
    let n = values.len();
    Array3::from_shape_vec(grid, values).map_err(|_| RelevanceError::Shape {
        found: vec![n],
        expected: format!("{} values", grid.iter().product::<usize>()),
    })
}

/// Computes one method's map of one normalised scan (and, for LRP, its conservation numbers):
/// `model` for the gradient methods, `inner` (the same weights without autodiff) for occlusion,
/// area occlusion and LRP; `atlas` (on the scan's grid) for area occlusion.
pub fn compute_map(
    method: Method,
    model: &ClassificationModel3D<Autodiff<Cpu>>,
    inner: &ClassificationModel3D<Cpu>,
    scan: &Array3<f32>,
    atlas: Option<&Array3<i32>>,
    p: &MethodParams,
) -> Result<(Array3<f32>, Option<LrpBalance>)> {
    let device = Default::default();
    let grid = [scan.shape()[0], scan.shape()[1], scan.shape()[2]];
    let x = to_tensor::<Cpu>(scan, &device);
    let budget = p.memory_budget_mb;
    let (target, output) = (p.target, p.output);
    let grad = gradient::GradientConfig { target, output, post: p.post, budget_mb: budget };
    let mut balance = None;
    let map: Tensor<Cpu, 5> = match method {
        Method::Sensitivity => gradient::sensitivity(model, x, &grad, None)?,
        Method::GuidedBackprop => gradient::guided_backprop(model, x, &grad, None)?,
        Method::IntegratedGradients => {
            let cfg = gradient::IntegratedGradientsConfig {
                baseline: p.ig_baseline,
                steps: p.ig_steps,
                target,
                output,
                budget_mb: budget,
            };
            // Signed attributions: the configured post-processing (abs by default) makes the map
            // comparable with the others (region shares and the original's distance assume
            // non-negative maps).
            p.post.apply(gradient::integrated_gradients(model, x, &cfg, None)?)
        }
        Method::Smoothgrad => {
            let cfg = gradient::SmoothGradConfig {
                noise_level: p.smoothgrad_noise,
                samples: p.smoothgrad_samples,
                seed: p.seed,
                post: p.post,
                target,
                output,
                budget_mb: budget,
            };
            gradient::smoothgrad(model, x, &cfg, None)?
        }
        Method::GradCam | Method::GuidedGradCam => {
            let cfg = cam::GradCamConfig { layer: p.grad_cam_layer.clone(), target, output, budget_mb: budget };
            if method == Method::GradCam {
                cam::grad_cam(model, x, &cfg, None)?
            } else {
                p.post.apply(cam::guided_grad_cam(model, x, &cfg, None)?)
            }
        }
        Method::Occlusion => {
            let cfg = OcclusionConfig { target, output, memory_budget_mb: budget, ..p.occlusion.clone() };
            occlusion::occlusion(inner, x, &cfg, None)?.map
        }
        Method::Lrp => {
            // Signed relevance of the target's logit; post-processed like the other signed maps.
            let out = crate::lrp::lrp(inner, x, &LrpConfig { target, ..p.lrp })?;
            balance = Some(LrpBalance { logit: out.logits[0], total: out.totals[0] });
            p.post.apply(out.maps)
        }
        Method::AreaOcclusion => {
            let labels = atlas.ok_or_else(|| RelevanceError::Parameter {
                name: "atlas",
                message: "area occlusion needs an atlas: set [relevance] atlas, or give --atlas FILE.nii.gz".into(),
            })?;
            let cfg = AreaOcclusionConfig {
                value: p.area_value,
                target,
                output,
                memory_budget_mb: budget,
                ..AreaOcclusionConfig::default()
            };
            occlusion::area_occlusion(inner, x, labels.view().into_dyn(), &cfg, None)?.map
        }
    };
    Ok((to_array(map, grid)?, balance))
}

/// The voxel-wise mean of maps, summed in f64.
#[derive(Debug, Clone)]
pub struct MapMean {
    sum: Array3<f64>,
    n: usize,
}

impl MapMean {
    /// An empty mean on `grid`.
    pub fn new(grid: [usize; 3]) -> Self {
        Self { sum: Array3::zeros(grid), n: 0 }
    }

    /// Adds one map (of the grid's shape).
    pub fn add(&mut self, map: &Array3<f32>) {
        Zip::from(&mut self.sum).and(map).for_each(|s, &m| *s += f64::from(m));
        self.n += 1;
    }

    /// How many maps were added.
    pub fn count(&self) -> usize {
        self.n
    }

    /// The mean (zeros when nothing was added).
    pub fn mean(&self) -> Array3<f32> {
        let n = self.n.max(1) as f64;
        self.sum.mapv(|s| (s / n) as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip_through_from_str_and_serde() {
        for m in Method::ALL {
            assert_eq!(m.name().parse::<Method>().unwrap(), m);
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.name()));
        }
        let e = "smoothgrd".parse::<Method>().unwrap_err();
        assert!(e.contains("unknown relevance method `smoothgrd`") && e.contains("smoothgrad"), "{e}");
    }

    #[test]
    fn map_mean_is_the_voxelwise_mean() {
        let mut m = MapMean::new([1, 1, 2]);
        assert_eq!(m.mean().as_slice().unwrap(), &[0.0, 0.0]);
        m.add(&Array3::from_shape_vec([1, 1, 2], vec![1.0, 2.0]).unwrap());
        m.add(&Array3::from_shape_vec([1, 1, 2], vec![2.0, 5.0]).unwrap());
        assert_eq!(m.count(), 2);
        assert_eq!(m.mean().as_slice().unwrap(), &[1.5, 3.5]);
    }
}
