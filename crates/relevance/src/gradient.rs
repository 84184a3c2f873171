//! Gradient methods: sensitivity analysis, guided backpropagation, integrated gradients and
//! SmoothGrad (Rieke et al., MLCN 2018; Simonyan et al. 2014, Springenberg et al. 2015, Sundararajan
//! et al. 2017, Smilkov et al. 2017).
//!
//! Every method takes a model on `Autodiff<B>` implementing [`Explainable`] and an input batch on
//! the inner backend `B`, and returns one map per input on `B`, of the input's shape. The model
//! runs in inference mode (the trait's contract) with its parameters frozen (`no_grad`), so only
//! the input is differentiated and each input's map depends on that input alone, however the batch
//! is cut. Inputs are processed in chunks whose size follows from a memory budget in MB (see
//! [`BYTES_PER_INPUT_VALUE`]).
//!
//! The explained quantity is `out_i = output(logits_i)[target_i]` ([`Output`]: the softmax
//! probability by default, as in the paper; [`Target`]: the predicted class by default).

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Int, Tensor, TensorData, TensorPrimitive};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::{
    Explainable, Output, PostProcess, Progress, RelevanceError, ReluPoint, Result, Target, batch_for_budget,
    select_output, target_classes,
};

/// Rough memory one input value costs in a backward pass, in bytes: the input itself (4 bytes)
/// times the activations the graph keeps per input value. The paper's first block alone keeps 8
/// channels at almost the input's resolution (convolution, BatchNorm and ReLU outputs, and their
/// gradients in the backward pass), hence 64 × 4 bytes. Used to turn a budget in MB into a
/// number of inputs per pass; an estimate, not a bound.
pub const BYTES_PER_INPUT_VALUE: usize = 64 * 4;

/// Default memory budget of the gradient methods and Grad-CAM, in MB.
pub const DEFAULT_BUDGET_MB: usize = 2048;

/// A ReLU whose backward pass is guided backpropagation's (Springenberg et al. 2015):
/// forward `max(x, 0)`; backward `grad.clamp_min(0) · [x > 0]`, i.e. only positive signals pass,
/// and only through units that were active in the forward pass.
///
/// A genuine autodiff operation of `burn-autodiff` (a [`Backward`] step registered on the graph,
/// as Burn's own `relu`), so its cost is that of a ReLU. Use it through
/// `ReluPoint::with_rule(guided_relu::<B>)`.
pub fn guided_relu<B: Backend>(x: Tensor<Autodiff<B>, 1>) -> Tensor<Autodiff<B>, 1> {
    let x = x.into_primitive().tensor();
    let output = B::relu(x.primitive.clone());
    let result = match GuidedReluBackward.prepare::<NoCheckpointing>([x.node.clone()]).compute_bound().stateful() {
        // The ReLU's output is positive exactly where its input is, so it serves as the mask.
        OpsKind::Tracked(prep) => prep.finish(output.clone(), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Tensor::from_primitive(TensorPrimitive::Float(result))
}

/// The backward step of [`guided_relu`]; its state is the forward output.
#[derive(Debug)]
struct GuidedReluBackward;

impl<B: Backend> Backward<B, 1> for GuidedReluBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let output = ops.state;
        // relu_backward zeroes the signal where the output is ≤ 0 (inactive units); the inner
        // relu clamps the incoming signal at 0.
        unary::<B, _>(ops.parents, ops.node, grads, |grad| B::relu_backward(output, B::relu(grad)));
    }
}

/// Parameters of [`sensitivity`] and [`guided_backprop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GradientConfig {
    /// `target`: the explained class (default: each input's predicted class).
    pub target: Target,
    /// `output`: the explained output (default: softmax probability).
    pub output: Output,
    /// `post`: post-processing of the gradient (default: `abs`).
    pub post: PostProcess,
    /// `budget_mb`: memory budget per backward pass in MB (default [`DEFAULT_BUDGET_MB`]).
    pub budget_mb: usize,
}

impl Default for GradientConfig {
    fn default() -> Self {
        Self {
            target: Target::default(),
            output: Output::default(),
            post: PostProcess::default(),
            budget_mb: DEFAULT_BUDGET_MB,
        }
    }
}

/// Parameters of [`integrated_gradients`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntegratedGradientsConfig {
    /// `baseline`: the value of every element of the baseline input x′ (default 0, the training
    /// mean after z-scoring).
    pub baseline: f32,
    /// `steps`: number of integration points (default 32).
    pub steps: usize,
    /// `target`: the explained class (default: the predicted class of the real input).
    pub target: Target,
    /// `output`: the explained output (default: softmax probability).
    pub output: Output,
    /// `budget_mb`: memory budget per backward pass in MB (default [`DEFAULT_BUDGET_MB`]).
    pub budget_mb: usize,
}

impl Default for IntegratedGradientsConfig {
    fn default() -> Self {
        Self {
            baseline: 0.0,
            steps: 32,
            target: Target::default(),
            output: Output::default(),
            budget_mb: DEFAULT_BUDGET_MB,
        }
    }
}

/// Parameters of [`smoothgrad`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmoothGradConfig {
    /// `noise_level`: standard deviation of the Gaussian noise as a fraction of each input's
    /// range max − min (default 0.15, Smilkov et al.'s recommendation of 10–20 %).
    pub noise_level: f32,
    /// `samples`: number of noisy copies per input (default 16).
    pub samples: usize,
    /// `seed`: seed of the noise generator (ChaCha8); the same seed gives the same map.
    pub seed: u64,
    /// `post`: post-processing of each noisy gradient before the mean (default: `abs`).
    pub post: PostProcess,
    /// `target`: the explained class (default: the predicted class of the noise-free input).
    pub target: Target,
    /// `output`: the explained output (default: softmax probability).
    pub output: Output,
    /// `budget_mb`: memory budget per backward pass in MB (default [`DEFAULT_BUDGET_MB`]).
    pub budget_mb: usize,
}

impl Default for SmoothGradConfig {
    fn default() -> Self {
        Self {
            noise_level: 0.15,
            samples: 16,
            seed: 0,
            post: PostProcess::default(),
            target: Target::default(),
            output: Output::default(),
            budget_mb: DEFAULT_BUDGET_MB,
        }
    }
}

/// Sensitivity analysis (Simonyan et al. 2014; the paper's default method): the post-processed
/// gradient `post(∂out_i/∂x_i)` of each input. Progress is reported in inputs.
pub fn sensitivity<B, M, const D: usize>(
    model: &M,
    x: Tensor<B, D>,
    config: &GradientConfig,
    progress: Progress,
) -> Result<Tensor<B, D>>
where
    B: Backend,
    M: Explainable<Autodiff<B>, D>,
{
    gradient_with(model, x, config, &ReluPoint::standard(), progress)
}

/// Guided backpropagation (Springenberg et al. 2015): as [`sensitivity`], but at every ReLU
/// point of the model (for the paper's network all six, the two dense ones included) the
/// backward signal is also clamped at 0 ([`guided_relu`]). Use `PostProcess::None` for the
/// signed map (guided Grad-CAM does). Progress is reported in inputs.
pub fn guided_backprop<B, M, const D: usize>(
    model: &M,
    x: Tensor<B, D>,
    config: &GradientConfig,
    progress: Progress,
) -> Result<Tensor<B, D>>
where
    B: Backend,
    M: Explainable<Autodiff<B>, D>,
{
    gradient_with(model, x, config, &ReluPoint::with_rule(guided_relu::<B>), progress)
}

fn gradient_with<B, M, const D: usize>(
    model: &M,
    x: Tensor<B, D>,
    config: &GradientConfig,
    relu: &ReluPoint<Autodiff<B>>,
    progress: Progress,
) -> Result<Tensor<B, D>>
where
    B: Backend,
    M: Explainable<Autodiff<B>, D>,
{
    let dims = x.dims();
    check_batch(model, dims)?;
    check_budget(config.budget_mb)?;
    check_target(model, config.target)?;
    let frozen = frozen_copy(model);
    let n = dims[0];
    let batch = batch_for_budget(config.budget_mb, per_input_bytes(&dims));
    let mut maps = Vec::with_capacity(n.div_ceil(batch));
    for start in (0..n).step_by(batch) {
        let len = batch.min(n - start);
        let chunk = x.clone().narrow(0, start, len);
        let grad = input_gradient(&frozen, chunk, Targets::Resolve(config.target), config.output, relu)?;
        maps.push(config.post.apply(grad));
        report(progress, start + len, n);
    }
    Ok(Tensor::cat(maps, 0))
}

/// Integrated gradients (Sundararajan et al. 2017) against the constant baseline x′ =
/// `baseline`: `IG_i = (x_i − x′) · (1/m) Σ_k ∂out_i/∂x (x′ + α_k (x_i − x′))` with the midpoint
/// rule `α_k = (k + ½)/m`, k = 0 … m − 1 (m = `steps`), which integrates the straight path
/// exactly for a gradient that is linear in α and has error O(1/m²) for a smooth one, O(1/m) where
/// ReLU and max-pooling kinks make the gradient jump along the path. The sum of the map
/// approximates `out_i(x_i) − out_i(x′)` (completeness); raise `steps` until it does.
///
/// The target class is resolved once, on the real input, and explained at every integration
/// point. The points of all inputs are batched together. Progress is reported in points
/// (N × steps).
pub fn integrated_gradients<B, M, const D: usize>(
    model: &M,
    x: Tensor<B, D>,
    config: &IntegratedGradientsConfig,
    progress: Progress,
) -> Result<Tensor<B, D>>
where
    B: Backend,
    M: Explainable<Autodiff<B>, D>,
{
    let dims = x.dims();
    check_batch(model, dims)?;
    check_budget(config.budget_mb)?;
    if config.steps == 0 {
        return Err(parameter("steps", "is 0; expected at least 1 integration step".into()));
    }
    if !config.baseline.is_finite() {
        return Err(parameter("baseline", format!("is {}; expected a finite value", config.baseline)));
    }
    let frozen = frozen_copy(model);
    let targets = resolve_targets(&frozen, x.clone(), config.target, config.budget_mb)?;
    let steps = config.steps;
    let alphas: Vec<f32> = (0..steps).map(|k| (k as f32 + 0.5) / steps as f32).collect();
    let diff = x.sub_scalar(config.baseline);
    let mean_grads = accumulate_points(
        dims,
        &diff.device(),
        steps,
        config.budget_mb,
        progress,
        |inputs, indices| {
            let device = diff.device();
            let alpha: Vec<f32> = indices.iter().map(|&(_, k)| alphas[k]).collect();
            let alpha = Tensor::<B, 1>::from_data(TensorData::new(alpha, [indices.len()]), &device)
                .reshape(broadcast_rows::<D>(indices.len()));
            let points = diff.clone().select(0, inputs).mul(alpha).add_scalar(config.baseline);
            let chunk_targets: Vec<usize> = indices.iter().map(|&(i, _)| targets[i]).collect();
            input_gradient(&frozen, points, Targets::Given(&chunk_targets), config.output, &ReluPoint::standard())
        },
        |grad| grad,
    )?;
    Ok(diff.mul(mean_grads))
}

/// SmoothGrad (Smilkov et al. 2017): the mean over `samples` noisy copies
/// `x_i + ε`, `ε ~ N(0, σ_i²)`, `σ_i = noise_level · (max x_i − min x_i)`, of the post-processed
/// gradient `post(∂out_i/∂x)`.
///
/// The noise comes from a ChaCha8 generator seeded with `seed`, drawn input by input and sample
/// by sample, so the map depends on the seed only (not on the memory budget). The target class
/// is resolved once, on the noise-free input. With `noise_level` 0 the map equals
/// [`sensitivity`]'s. Progress is reported in samples (N × samples).
pub fn smoothgrad<B, M, const D: usize>(
    model: &M,
    x: Tensor<B, D>,
    config: &SmoothGradConfig,
    progress: Progress,
) -> Result<Tensor<B, D>>
where
    B: Backend,
    M: Explainable<Autodiff<B>, D>,
{
    let dims = x.dims();
    check_batch(model, dims)?;
    check_budget(config.budget_mb)?;
    if config.samples == 0 {
        return Err(parameter("samples", "is 0; expected at least 1 noisy sample".into()));
    }
    if !(config.noise_level.is_finite() && config.noise_level >= 0.0) {
        return Err(parameter(
            "noise_level",
            format!("is {}; expected a finite fraction ≥ 0 of the input's range", config.noise_level),
        ));
    }
    let frozen = frozen_copy(model);
    let targets = resolve_targets(&frozen, x.clone(), config.target, config.budget_mb)?;
    let n = dims[0];
    let per_input: usize = dims[1..].iter().product();
    let flat = x.clone().reshape([n, per_input]);
    let range: Vec<f32> = values(flat.clone().max_dim(1).sub(flat.min_dim(1)));
    let sigma: Vec<f32> = range.iter().map(|r| config.noise_level * r).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    accumulate_points(
        dims,
        &x.device(),
        config.samples,
        config.budget_mb,
        progress,
        |inputs, indices| {
            let device = x.device();
            // Drawn in the order of the (input, sample) pairs, which the chunks follow.
            let mut noise = Vec::with_capacity(indices.len() * per_input);
            for &(i, _) in indices {
                let s = sigma[i];
                noise.extend((0..per_input).map(|_| s * rng.sample::<f32, _>(StandardNormal)));
            }
            let mut shape = dims;
            shape[0] = indices.len();
            let noisy = x.clone().select(0, inputs).add(Tensor::from_data(TensorData::new(noise, shape), &device));
            let chunk_targets: Vec<usize> = indices.iter().map(|&(i, _)| targets[i]).collect();
            input_gradient(&frozen, noisy, Targets::Given(&chunk_targets), config.output, &ReluPoint::standard())
        },
        |grad| config.post.apply(grad),
    )
}

/// Runs `evaluate` on chunks of the `N × per_input` (input, point) pairs (in input-major order,
/// as many per chunk as the budget allows), transforms each gradient with `post`, and returns
/// each input's mean over its points.
fn accumulate_points<B: Backend, const D: usize>(
    dims: [usize; D],
    device: &B::Device,
    per_input: usize,
    budget_mb: usize,
    progress: Progress,
    mut evaluate: impl FnMut(Tensor<B, 1, Int>, &[(usize, usize)]) -> Result<Tensor<B, D>>,
    post: impl Fn(Tensor<B, D>) -> Tensor<B, D>,
) -> Result<Tensor<B, D>> {
    let n = dims[0];
    let total = n * per_input;
    let batch = batch_for_budget(budget_mb, per_input_bytes(&dims));
    let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (0..per_input).map(move |k| (i, k))).collect();
    let mut sums: Vec<Option<Tensor<B, D>>> = vec![None; n];
    for (c, chunk) in pairs.chunks(batch).enumerate() {
        let rows: Vec<i64> = chunk.iter().map(|&(i, _)| i as i64).collect();
        let inputs = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [chunk.len()]), device);
        let grad = post(evaluate(inputs, chunk)?);
        // The chunk is input-major: sum each input's contiguous run of rows.
        let mut start = 0;
        while start < chunk.len() {
            let i = chunk[start].0;
            let len = chunk[start..].iter().take_while(|&&(j, _)| j == i).count();
            let part = grad.clone().narrow(0, start, len).sum_dim(0);
            sums[i] = Some(match sums[i].take() {
                Some(sum) => sum.add(part),
                None => part,
            });
            start += len;
        }
        report(progress, (c * batch + chunk.len()).min(total), total);
    }
    let means: Vec<Tensor<B, D>> =
        sums.into_iter().map(|s| s.expect("every input has points").div_scalar(per_input as f32)).collect();
    Ok(Tensor::cat(means, 0))
}

/// How the target class of each row of a chunk is chosen.
pub(crate) enum Targets<'a> {
    /// Resolved from the chunk's own logits.
    Resolve(Target),
    /// Given, one per row.
    Given(&'a [usize]),
}

/// `∂out_i/∂x_i` for one chunk on a frozen model (parameters `no_grad`), with the given ReLU
/// rule, as a tensor of the chunk's shape on the inner backend. Also returns the targets used.
pub(crate) fn input_gradient_targets<B, M, const D: usize>(
    frozen: &M,
    x: Tensor<B, D>,
    targets: Targets,
    output: Output,
    relu: &ReluPoint<Autodiff<B>>,
) -> Result<(Tensor<B, D>, Vec<usize>)>
where
    B: Backend,
    M: Explainable<Autodiff<B>, D>,
{
    let dims = x.dims();
    let x = Tensor::<Autodiff<B>, D>::from_inner(x).require_grad();
    let logits = frozen.logits(x.clone(), relu);
    let targets = match targets {
        Targets::Resolve(target) => target_classes(logits.clone().detach(), target)?,
        Targets::Given(t) => t.to_vec(),
    };
    let grads = select_output(logits, &targets, output).sum().backward();
    // No gradient only for a model whose logits do not depend on the input: then 0 is exact.
    let grad = x.grad(&grads).unwrap_or_else(|| Tensor::zeros(dims, &x.device().clone()));
    Ok((grad, targets))
}

fn input_gradient<B, M, const D: usize>(
    frozen: &M,
    x: Tensor<B, D>,
    targets: Targets,
    output: Output,
    relu: &ReluPoint<Autodiff<B>>,
) -> Result<Tensor<B, D>>
where
    B: Backend,
    M: Explainable<Autodiff<B>, D>,
{
    input_gradient_targets(frozen, x, targets, output, relu).map(|(grad, _)| grad)
}

/// The target class of every input, resolved on the inputs themselves (forward passes only, in
/// chunks within the budget).
pub(crate) fn resolve_targets<B, M, const D: usize>(
    frozen: &M,
    x: Tensor<B, D>,
    target: Target,
    budget_mb: usize,
) -> Result<Vec<usize>>
where
    B: Backend,
    M: Explainable<Autodiff<B>, D>,
{
    check_target(frozen, target)?;
    let dims = x.dims();
    let n = dims[0];
    if let Target::Class(class) = target {
        return Ok(vec![class; n]);
    }
    // A forward pass keeps far less than a backward one; the gradient budget is a safe bound.
    let batch = batch_for_budget(budget_mb, per_input_bytes(&dims));
    let mut targets = Vec::with_capacity(n);
    for start in (0..n).step_by(batch) {
        let len = batch.min(n - start);
        let chunk = Tensor::<Autodiff<B>, D>::from_inner(x.clone().narrow(0, start, len));
        let logits = frozen.logits(chunk, &ReluPoint::standard()).inner();
        targets.extend(target_classes(logits, target)?);
    }
    Ok(targets)
}

/// The model with its parameters excluded from differentiation, sharing their values.
///
/// Burn initialises a freshly built module's parameters lazily, and a clone of a parameter not
/// yet initialised draws its own independent values; so every parameter of `model` is
/// initialised in place first, and the frozen copy explains the very model it was given.
pub(crate) fn frozen_copy<B: Backend, M: Module<B>>(model: &M) -> M {
    crate::materialize_parameters(model);
    model.clone().no_grad()
}

/// Checks the input shape with the model and rejects an empty batch.
pub(crate) fn check_batch<B: Backend, M: Explainable<B, D>, const D: usize>(model: &M, dims: [usize; D]) -> Result<()> {
    if dims[0] == 0 {
        return Err(RelevanceError::Shape {
            found: dims.to_vec(),
            expected: "a batch of at least one input".to_string(),
        });
    }
    model.check_input(dims)
}

/// Rejects a target class the model does not have, before any computation.
pub(crate) fn check_target<B: Backend, M: Explainable<B, D>, const D: usize>(model: &M, target: Target) -> Result<()> {
    match target {
        Target::Class(class) if class >= model.num_classes() => {
            Err(RelevanceError::TargetClass { class, classes: model.num_classes() })
        }
        _ => Ok(()),
    }
}

/// Rejects a zero memory budget.
pub(crate) fn check_budget(budget_mb: usize) -> Result<()> {
    if budget_mb == 0 {
        return Err(parameter("budget_mb", "is 0; expected a memory budget of at least 1 MB".into()));
    }
    Ok(())
}

/// Estimated bytes a backward pass needs per input of a batch of shape `dims`.
pub(crate) fn per_input_bytes(dims: &[usize]) -> usize {
    dims[1..].iter().product::<usize>().saturating_mul(BYTES_PER_INPUT_VALUE)
}

fn parameter(name: &'static str, message: String) -> RelevanceError {
    RelevanceError::Parameter { name, message }
}

/// `[rows, 1, …, 1]` of rank `D`, to broadcast one value per row.
pub(crate) fn broadcast_rows<const D: usize>(rows: usize) -> [usize; D] {
    let mut shape = [1; D];
    shape[0] = rows;
    shape
}

pub(crate) fn report(progress: Progress, done: usize, total: usize) {
    if let Some(progress) = progress {
        progress(done, total);
    }
}

fn values<B: Backend, const K: usize>(t: Tensor<B, K>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 data")
}
