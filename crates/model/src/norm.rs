//! `BatchNorm3d` with PyTorch semantics and explicit training / inference methods.
//!
//! Differences from `burn::nn::BatchNorm`:
//! - The mode is chosen by the caller ([`BatchNorm3d::forward_train`] /
//!   [`BatchNorm3d::forward_eval`]), not by whether the backend is `Autodiff`.
//! - The running variance is updated with the **unbiased** batch variance (n / (n − 1)), as
//!   PyTorch does, so statistics move between the two frameworks unchanged. The batch itself is
//!   normalised with the biased variance (as in both frameworks).
//! - Parameters carry the PyTorch names (`weight`, `bias`, `running_mean`, `running_var`).
//! - Speed: the per-channel statistics are reductions over a `[N, C, D·H·W]` view, and the
//!   normalisation is one per-channel affine map `y = x·scale[c] + shift[c]` instead of
//!   subtracting, dividing, multiplying and adding `[1, C, 1, 1, 1]` tensors broadcast over the
//!   5D input (Flex's 5D broadcast path is several times slower than a same-shape operation).
//!   The affine map is a `[N·C, S]` matrix times a column ([`channel_affine_rows`]) where a
//!   backward pass follows (training, input gradients) and a grouped 1×1×1 convolution
//!   ([`channel_affine`]) otherwise: the first has the cheaper backward, the second the cheaper
//!   forward. Measured with `cargo run --release -p model --example bn_speed`; the numbers are
//!   in ARCHITECTURE.md (`crates/model`).
//!
//! The batch variance is computed as E[x²] − E[x]² (one pass over the data), clamped at 0; in
//! f32 this loses precision only when |mean| ≫ std, which convolution outputs of a z-scored
//! input do not reach (the tests compare against a two-pass reference).

use burn::module::{Module, Param, RunningState};
use burn::tensor::backend::Backend;
use burn::tensor::module::conv3d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};

use crate::fast::FastBackend;

/// PyTorch's `BatchNorm3d` default epsilon.
pub const BN_EPSILON: f64 = 1e-5;
/// PyTorch's `BatchNorm3d` default momentum (weight of the new batch in the running statistics).
pub const BN_MOMENTUM: f64 = 0.1;

/// Batch normalisation over `[N, C, D, H, W]` with affine parameters and running statistics.
#[derive(Module, Debug)]
pub struct BatchNorm3d<B: Backend> {
    /// Scale γ per channel (PyTorch `weight`), initialised to 1.
    pub weight: Param<Tensor<B, 1>>,
    /// Shift β per channel (PyTorch `bias`), initialised to 0.
    pub bias: Param<Tensor<B, 1>>,
    /// Running mean per channel, initialised to 0.
    pub running_mean: RunningState<Tensor<B, 1>>,
    /// Running (unbiased) variance per channel, initialised to 1.
    pub running_var: RunningState<Tensor<B, 1>>,
    /// Weight of the new batch statistics in the running statistics.
    pub momentum: f64,
    /// Added to the variance before the square root.
    pub epsilon: f64,
}

impl<B: Backend> BatchNorm3d<B> {
    /// A fresh layer for `channels` channels with PyTorch's defaults (γ = 1, β = 0, running mean
    /// 0, running variance 1, eps 1e-5, momentum 0.1).
    pub fn new(channels: usize, device: &B::Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([channels], device)),
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            momentum: BN_MOMENTUM,
            epsilon: BN_EPSILON,
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// [`Self::update_running`] from per-channel values (a fused fast path's batch statistics).
    fn update_running_values(&self, mean: Vec<f32>, biased_var: Vec<f32>, count: usize) {
        let device = self.running_mean.value_sync().device();
        let c = mean.len();
        let stat = |v: Vec<f32>| Tensor::<B, 1>::from_data(TensorData::new(v, [c]), &device);
        self.update_running(stat(mean), stat(biased_var), count);
    }

    /// Inference mode: normalise with the running statistics; nothing is updated. Gradients
    /// flow to the input (and to γ, β if they require gradients).
    pub fn forward_eval(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let (mean, var) = self.running_stats();
        let scale = self.weight.val().div(var.add_scalar(self.epsilon).sqrt());
        let shift = self.bias.val().sub(mean.mul(scale.clone()));
        if x.is_require_grad() {
            // A backward pass follows (input gradients): the cheaper backward wins.
            channel_affine_rows(x, scale, shift)
        } else {
            channel_affine(x, scale, shift)
        }
    }

    /// The inference-mode map as `y = x·scale[c] + shift[c]`: `scale = γ / √(running var + ε)`,
    /// `shift = β − running mean · scale`.
    pub fn eval_affine(&self) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let (mean, var) = self.running_stats();
        let scale = self.weight.val().div(var.add_scalar(self.epsilon).sqrt());
        let shift = self.bias.val().sub(mean.mul(scale.clone()));
        (scale, shift)
    }

    /// The current running mean and (unbiased) running variance.
    pub fn running_stats(&self) -> (Tensor<B, 1>, Tensor<B, 1>) {
        (self.running_mean.value_sync(), self.running_var.value_sync())
    }

    /// A copy whose running statistics are no longer shared with `self`.
    ///
    /// `Clone` on a Burn module shares `RunningState` storage, so a cloned model keeps moving
    /// when the original trains; use this to keep a snapshot (for example the best epoch).
    pub fn independent_copy(&self) -> Self {
        let (mean, var) = self.running_stats();
        Self {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            running_mean: RunningState::new(mean),
            running_var: RunningState::new(var),
            momentum: self.momentum,
            epsilon: self.epsilon,
        }
    }

    fn update_running(&self, mean: Tensor<B, 1>, biased_var: Tensor<B, 1>, count: usize) {
        let m = self.momentum;
        let unbiased = if count > 1 { biased_var.mul_scalar(count as f64 / (count - 1) as f64) } else { biased_var };
        let (old_mean, old_var) = self.running_stats();
        let device = old_mean.device();
        let new_mean = old_mean.mul_scalar(1.0 - m).add(mean.to_device(&device).mul_scalar(m));
        let new_var = old_var.mul_scalar(1.0 - m).add(unbiased.to_device(&device).mul_scalar(m));
        self.running_mean.update(new_mean.detach());
        self.running_var.update(new_var.detach());
        // Fold the update into the stored value now (on this thread), so that readers on other
        // threads, `visit` (export) and clones see it; RunningState otherwise keeps it pending.
        let _ = self.running_mean.value_sync();
        let _ = self.running_var.value_sync();
    }
}

/// The training forward passes: fast paths from [`FastBackend`] where the backend has them.
impl<B: FastBackend> BatchNorm3d<B> {
    /// Training mode: normalise with the batch statistics (biased variance) and update the
    /// running statistics (`running = (1 − momentum)·running + momentum·batch`, unbiased variance).
    /// Gradients flow through the batch statistics.
    pub fn forward_train(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let [n, _, d, h, w] = x.dims();
        let count = n * d * h * w;
        let x = match crate::fast::batch_norm_train(x, self.weight.val(), self.bias.val(), self.epsilon) {
            Ok((y, mean, var)) => {
                self.update_running_values(mean, var, count);
                return y;
            }
            Err(x) => x,
        };
        let sum = crate::fast::portable::sum_per_channel(x.clone());
        let sum_sq = crate::fast::portable::sum_per_channel(x.clone().square());
        let mean = sum.div_scalar(count as f64);
        let var = sum_sq.div_scalar(count as f64).sub(mean.clone().square()).clamp_min(0.0);

        self.update_running(mean.clone().detach(), var.clone().detach(), count);

        let scale = self.weight.val().div(var.add_scalar(self.epsilon).sqrt());
        let shift = self.bias.val().sub(mean.mul(scale.clone()));
        channel_affine_rows(x, scale, shift)
    }

    /// Training mode followed by the block's max pooling (window = stride = `pool`) and ReLU,
    /// `relu(max_pool3d(bn(x)))`, as one fused operation where the fast CPU path applies
    /// (`crate::fast::batch_norm_max_pool3d_relu_train`; running statistics updated as in
    /// [`Self::forward_train`]); `Err(x)` (untouched) where it does not.
    pub fn forward_train_max_pool_relu(&self, x: Tensor<B, 5>, pool: usize) -> Result<Tensor<B, 5>, Tensor<B, 5>> {
        let [n, _, d, h, w] = x.dims();
        let (y, mean, var) = crate::fast::batch_norm_max_pool3d_relu_train(
            x,
            self.weight.val(),
            self.bias.val(),
            self.epsilon,
            [pool; 3],
        )?;
        self.update_running_values(mean, var, n * d * h * w);
        Ok(y)
    }
}

/// `y[:, c] = x[:, c]·scale[c] + shift[c]` for `x` `[N, C, D, H, W]` as a `[N·C, D·H·W]` matrix
/// times / plus a `[N·C, 1]` column. Its backward pass (gradients for `x`, `scale` and `shift`)
/// is about twice as fast on Flex as that of [`channel_affine`], whose forward pass is faster;
/// so training uses this one and inference the convolution.
pub fn channel_affine_rows<B: Backend>(x: Tensor<B, 5>, scale: Tensor<B, 1>, shift: Tensor<B, 1>) -> Tensor<B, 5> {
    let [n, c, d, h, w] = x.dims();
    let column = |v: Tensor<B, 1>| v.reshape([1, c]).repeat_dim(0, n).reshape([n * c, 1]);
    x.reshape([n * c, d * h * w]).mul(column(scale)).add(column(shift)).reshape([n, c, d, h, w])
}

/// `y[:, c] = x[:, c]·scale[c] + shift[c]` for `x` `[N, C, D, H, W]`, computed as a grouped
/// (depth-wise) 1×1×1 convolution, which avoids broadcasting `[1, C, 1, 1, 1]` tensors.
/// Differentiable in `x`, `scale` and `shift`.
pub fn channel_affine<B: Backend>(x: Tensor<B, 5>, scale: Tensor<B, 1>, shift: Tensor<B, 1>) -> Tensor<B, 5> {
    let c = x.dims()[1];
    conv3d(x, scale.reshape([c, 1, 1, 1, 1]), Some(shift), ConvOptions::new([1, 1, 1], [0, 0, 0], [1, 1, 1], c))
}
