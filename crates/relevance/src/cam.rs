//! Grad-CAM (Selvaraju et al. 2017) and guided Grad-CAM on any named feature layer, for volumes
//! and images alike.
//!
//! For the activations `A` `[K, spatial…]` of one input at the layer, the weights are the spatial
//! means of the gradient, `w_k = mean_s ∂out/∂A_k(s)`, and the map is `ReLU(Σ_k w_k A_k)`, resized
//! to the input's spatial grid with linear interpolation ([`crate::upsample::resize_linear`],
//! PyTorch's `align_corners=False`: the feature grid is stretched over the whole input grid, as
//! Captum's `LayerGradCam` + `interpolate` and pytorch-grad-cam do, although valid convolutions
//! centre the feature grid on a slightly smaller region).
//!
//! The maps are returned as computed: no normalisation to [0, 1] and no inversion (MONAI's
//! default normaliser inverts the map, which confuses its users), so values are in units of the
//! explained output times the activations, comparable across inputs. Normalise for display
//! downstream if wanted.
//!
//! The activations are computed without a graph and then made a leaf that requires a gradient;
//! only the rest of the network ([`Explainable::logits_from_features`]) is differentiated, with
//! the parameters frozen and the model in inference mode.

use burn::backend::Autodiff;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

use crate::gradient::{
    DEFAULT_BUDGET_MB, Targets, check_batch, check_budget, check_target, frozen_copy, guided_relu,
    input_gradient_targets, per_input_bytes, report,
};
use crate::upsample::resize_linear;
use crate::{
    Explainable, Output, PostProcess, Progress, ReluPoint, Result, Target, batch_for_budget, select_output,
    target_classes, unknown_layer,
};

/// Parameters of [`grad_cam`] and [`guided_grad_cam`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GradCamConfig {
    /// `layer`: the feature layer (one of [`Explainable::feature_layers`]); `None` = the model's
    /// [`Explainable::default_feature_layer`] (for the paper's network `conv4`, the last
    /// convolutional layer).
    pub layer: Option<String>,
    /// `target`: the explained class (default: each input's predicted class).
    pub target: Target,
    /// `output`: the explained output (default: softmax probability).
    pub output: Output,
    /// `budget_mb`: memory budget per backward pass in MB (default
    /// [`DEFAULT_BUDGET_MB`](crate::gradient::DEFAULT_BUDGET_MB)).
    pub budget_mb: usize,
}

impl Default for GradCamConfig {
    fn default() -> Self {
        Self { layer: None, target: Target::default(), output: Output::default(), budget_mb: DEFAULT_BUDGET_MB }
    }
}

/// Grad-CAM maps `[N, 1, spatial…]` of the inputs `x` `[N, C, spatial…]` (see the module
/// documentation). An unknown layer is [`crate::RelevanceError::UnknownLayer`], listing the valid
/// names. Progress is reported in inputs.
pub fn grad_cam<B, M, const D: usize>(
    model: &M,
    x: Tensor<B, D>,
    config: &GradCamConfig,
    progress: Progress,
) -> Result<Tensor<B, D>>
where
    B: Backend,
    M: Explainable<Autodiff<B>, D>,
{
    let layer = checked_layer(model, x.dims(), config)?;
    let frozen = frozen_copy(model);
    per_chunk(x, config.budget_mb, progress, |chunk| {
        cam_chunk(&frozen, chunk, &layer, Targets::Resolve(config.target), config.output).map(|(cam, _)| cam)
    })
}

/// Guided Grad-CAM (Selvaraju et al. 2017, section 3.1): the elementwise product of the
/// **signed** guided-backpropagation map ([`crate::gradient::guided_backprop`] with
/// `PostProcess::None`) and the upsampled Grad-CAM map, broadcast over the input channels;
/// `[N, C, spatial…]` like the input. Signed as in the paper (and Captum's `GuidedGradCam`):
/// apply [`PostProcess::Abs`] afterwards for a magnitude map. Both factors explain the same class
/// (resolved once per input). Progress is reported in inputs.
pub fn guided_grad_cam<B, M, const D: usize>(
    model: &M,
    x: Tensor<B, D>,
    config: &GradCamConfig,
    progress: Progress,
) -> Result<Tensor<B, D>>
where
    B: Backend,
    M: Explainable<Autodiff<B>, D>,
{
    let layer = checked_layer(model, x.dims(), config)?;
    let frozen = frozen_copy(model);
    let guided = ReluPoint::with_rule(guided_relu::<B>);
    per_chunk(x, config.budget_mb, progress, |chunk| {
        let (cam, targets) = cam_chunk(&frozen, chunk.clone(), &layer, Targets::Resolve(config.target), config.output)?;
        let (gb, _) = input_gradient_targets(&frozen, chunk, Targets::Given(&targets), config.output, &guided)?;
        Ok(PostProcess::None.apply(gb).mul(cam))
    })
}

/// Validates the input, budget, target and layer; returns the layer's name.
fn checked_layer<B, M, const D: usize>(model: &M, dims: [usize; D], config: &GradCamConfig) -> Result<String>
where
    B: Backend,
    M: Explainable<B, D>,
{
    check_batch(model, dims)?;
    check_budget(config.budget_mb)?;
    check_target(model, config.target)?;
    let layer = config.layer.clone().unwrap_or_else(|| model.default_feature_layer());
    let valid = model.feature_layers();
    if !valid.contains(&layer) {
        return Err(unknown_layer(&layer, valid));
    }
    Ok(layer)
}

/// Runs `map` on chunks of the inputs sized by the budget and concatenates the results.
fn per_chunk<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    budget_mb: usize,
    progress: Progress,
    mut map: impl FnMut(Tensor<B, D>) -> Result<Tensor<B, D>>,
) -> Result<Tensor<B, D>> {
    let dims = x.dims();
    let n = dims[0];
    let batch = batch_for_budget(budget_mb, per_input_bytes(&dims));
    let mut maps = Vec::with_capacity(n.div_ceil(batch));
    for start in (0..n).step_by(batch) {
        let len = batch.min(n - start);
        maps.push(map(x.clone().narrow(0, start, len))?);
        report(progress, start + len, n);
    }
    Ok(Tensor::cat(maps, 0))
}

/// Grad-CAM of one chunk at `layer` on a frozen model, upsampled to the chunk's spatial grid;
/// also returns the targets used.
fn cam_chunk<B, M, const D: usize>(
    frozen: &M,
    x: Tensor<B, D>,
    layer: &str,
    targets: Targets,
    output: Output,
) -> Result<(Tensor<B, D>, Vec<usize>)>
where
    B: Backend,
    M: Explainable<Autodiff<B>, D>,
{
    let dims = x.dims();
    let standard = ReluPoint::standard();
    let activations = frozen.features(Tensor::from_inner(x), layer, &standard)?.inner();
    let leaf = Tensor::<Autodiff<B>, D>::from_inner(activations.clone()).require_grad();
    let logits = frozen.logits_from_features(leaf.clone(), layer, &standard)?;
    let targets = match targets {
        Targets::Resolve(target) => target_classes(logits.clone().detach(), target)?,
        Targets::Given(t) => t.to_vec(),
    };
    let grads = select_output(logits, &targets, output).sum().backward();
    let gradient = leaf.grad(&grads).unwrap_or_else(|| activations.zeros_like());
    let spatial: Vec<usize> = (2..D).collect();
    let weights = gradient.mean_dims(&spatial);
    let cam = relu(activations.mul(weights).sum_dim(1));
    Ok((resize_linear(cam, &dims[2..])?, targets))
}
