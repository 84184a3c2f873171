//! Faster CPU paths for the paper's network, on by default, with a switch back to Burn's own
//! operations (the "straightforward" path).
//!
//! What is replaced, on the CPU backends [`crate::Cpu`] (Flex) and [`crate::CpuTrain`]
//! (`Autodiff<Flex>`) only, each as a custom operation with its own backward step:
//!
//! - [`conv3d`]: the valid, stride-1 3D convolution of every block and both of its backward
//!   passes (input and weight/bias gradients), as cache-sized tiles of register-blocked SIMD
//!   multiply-adds that read the input where it lies, on all cores ([`conv`], [`implicit`]). Flex's own conv3d backward goes through a transposed
//!   convolution and a convolution with the batch as channels, which is several times slower.
//! - [`batch_norm_max_pool3d_relu_train`] (training) and [`affine_max_pool3d_relu`] (inference,
//!   BatchNorm on running statistics): the rest of a block, BatchNorm → max pooling → ReLU, as
//!   one operation. The normalised tensor is never stored; the forward pass is one pass for the
//!   statistics (training) and one for normalise-and-pool, which also keeps each window's
//!   first-maximum index ([`pool::forward_with_argmax`]; `u32::MAX` where the ReLU zeroed the
//!   output); the backward pass reads the output gradient at those indices only, and writes the
//!   input gradient in one pass. ReLU after the pooling is exact: max commutes with the monotone
//!   ReLU, and a window whose maximum is ≤ 0 gets a zero gradient either way.
//! - [`max_pool3d`] (the blocks' `pool`, for relevance methods) and [`batch_norm_train`]
//!   (`BatchNorm3d::forward_train`): the same kernels for the unfused steps. Burn has no 3D
//!   pooling, and the straightforward [`crate::pool::max_pool3d`] chains two 2D poolings whose
//!   depth pass takes Flex's slow generic path; the straightforward BatchNorm is a dozen
//!   broadcast tensor operations and their autodiff steps.
//!
//! Every other backend and every tensor that is not `f32` takes the straightforward path
//! unchanged; the CUDA backend trains with [`portable`]'s convolution backward step and pooling
//! (Burn tensor operations known to be fast on a GPU) unless `MODEL_GPU_OPS=burn`. The choice
//! is made at compile time with a backend-extension trait, Burn's pattern for custom kernels:
//! [`FastBackend`] (on top of Burn's `Backend`) has one method per operation above, each with
//! Burn's operations as its default body; [`Flex`] overrides them with these kernels (and,
//! through its `autodiff_*` methods, `Autodiff<Flex>` with their backward steps), the CUDA
//! backend overrides two `autodiff_*` methods with [`portable`], and any other backend opts in
//! with `impl FastBackend for MyBackend {}`. The model's generic code is bound by `B: FastBackend`
//! ([`FastAutodiffBackend`] for training), so the dispatch is monomorphised: no type check at
//! run time. Within Flex, the switch below and the `f32` check stay run-time tests.
//!
//! - [`FastAlloc`]: mimalloc, to be declared as the `#[global_allocator]` of a binary
//!   (`xtask`, the benchmark), with [`keep_freed_memory`] called first in `main`. glibc's malloc
//!   returns every freed large tensor to the OS and the next one is faulted in again, page by
//!   page; mimalloc reuses them, and with [`alloc`]'s setting never hands them back. Not
//!   affected by the switch (an allocator cannot change at run time).
//!
//! The switch: [`set_fast_cpu`] (process-wide), or the environment variable `MODEL_FAST_CPU=0`
//! (also `false`/`off`/`no`) read once at the first use. Both paths give the same values up to
//! float rounding: tested against each other on random inputs of odd shapes (values and all
//! gradients, `crates/model/tests/fast.rs`) and on the whole network (logits, input gradients,
//! every parameter gradient, and a fixed-seed training run's loss curve,
//! `crates/model/tests/fast_training.rs`). The kernels are deterministic (the weight
//! gradient sums fixed groups of tiles in a fixed order), so same-seed runs stay bit-identical.

pub mod alloc;
pub mod conv;
pub mod implicit;
pub mod norm;
pub mod peak;
pub mod pool;
pub mod portable;

pub use alloc::{FastAlloc, keep_freed_memory};

use std::sync::atomic::{AtomicU8, Ordering};

use burn::backend::Autodiff;
use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::module::conv3d as burn_conv3d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor, TensorData, TensorMetadata, TensorPrimitive};

use conv::ConvShape;

/// 0 = not decided yet (read `MODEL_FAST_CPU`), 1 = on, 2 = off.
static FAST_CPU: AtomicU8 = AtomicU8::new(0);

/// Turns the fast CPU paths on (the default) or off (Burn's own operations) for the whole process.
pub fn set_fast_cpu(on: bool) {
    FAST_CPU.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Whether the fast CPU paths are on: [`set_fast_cpu`] if it was called, else the environment
/// variable `MODEL_FAST_CPU` (`0`, `false`, `off` turn them off), else on.
pub fn fast_cpu() -> bool {
    match FAST_CPU.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let off = std::env::var("MODEL_FAST_CPU")
                .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false" | "off" | "no"));
            set_fast_cpu(!off);
            !off
        }
    }
}

/// What [`FastBackend::fast_batch_norm_train`] and
/// [`FastBackend::fast_batch_norm_max_pool3d_relu_train`] return: `Ok((output, batch mean,
/// biased batch variance))` where the backend computed the operation, `Err(x)` (the input,
/// untouched) where the caller is to compute it with Burn's operations.
pub type NormTrainResult<B> = Result<(Tensor<B, 5>, Vec<f32>, Vec<f32>), Tensor<B, 5>>;

/// The network's operations that a backend may compute with its own kernels: Burn's
/// backend-extension pattern (as in Burn's custom-kernel examples), a trait on top of
/// [`Backend`] that the model's generic code requires (`B: FastBackend`).
///
/// Every method has a default body, the *straightforward* path: Burn's own operations, or for
/// the `Result`-returning ones `Err(x)`, which tells the caller to compute the step with Burn's
/// operations itself. So a backend opts in with one line and changes nothing:
///
/// ```ignore
/// impl model::fast::FastBackend for MyBackend {}
/// ```
///
/// Implemented here for [`Flex`] (the fast CPU kernels of this module, while [`fast_cpu`] is on
/// and the tensors are `f32`; the straightforward path otherwise), for the CUDA backend
/// ([`crate::Gpu`], `cuda` feature; [`portable`] convolution and pooling in training, defaults
/// otherwise) and for every `Autodiff<B>` with `B: FastBackend`. The autodiff versions are
/// methods of the inner backend (`autodiff_*`, default: Burn's operations on `Autodiff<B>`,
/// i.e. Burn's own backward steps), because a fast path's backward step is written with the
/// inner backend's kernels and Rust has no specialisation to pick `Autodiff<Flex>` out of a
/// blanket `impl<B> FastBackend for Autodiff<B>`. So `Autodiff<Flex>` gets the fast forward and
/// backward steps, `Autodiff<Cuda>` the portable ones, and generic code over `B: FastBackend`
/// may use `Autodiff<B>` freely.
///
/// The dispatch is static (monomorphised): no type check at run time, no cost on any backend.
/// Call the operations through the free functions of this module ([`conv3d`], [`max_pool3d`],
/// …), which read better than `B::fast_conv3d(…)`.
pub trait FastBackend: Backend {
    /// The valid (no padding), stride-1, ungrouped 3D convolution `x` `[N, Ci, D, H, W]` ⊛
    /// `weight` `[Co, Ci, kd, kh, kw]` + `bias` → `[N, Co, D − kd + 1, H − kh + 1, W − kw + 1]`,
    /// differentiable in all three. Default: Burn's `conv3d`.
    fn fast_conv3d(x: Tensor<Self, 5>, weight: Tensor<Self, 5>, bias: Option<Tensor<Self, 1>>) -> Tensor<Self, 5> {
        straightforward_conv3d(x, weight, bias)
    }

    /// 3D max pooling, window = stride = `kernel`, floor mode, first maximum in raster order on
    /// ties. Default: [`crate::pool::max_pool3d`] (two 2D poolings).
    fn fast_max_pool3d(x: Tensor<Self, 5>, kernel: [usize; 3]) -> Tensor<Self, 5> {
        crate::pool::max_pool3d(x, kernel)
    }

    /// Training-mode batch normalisation of `x` `[N, C, D, H, W]` with the batch's statistics,
    /// differentiable in `x`, `gamma` and `beta` (through the statistics too). Default: `Err(x)`
    /// ([`crate::BatchNorm3d::forward_train`] computes it with Burn's operations).
    fn fast_batch_norm_train(
        x: Tensor<Self, 5>,
        gamma: Tensor<Self, 1>,
        beta: Tensor<Self, 1>,
        epsilon: f64,
    ) -> NormTrainResult<Self> {
        let _ = (gamma, beta, epsilon);
        Err(x)
    }

    /// `relu(max_pool3d(x·scale[c] + shift[c]))` (BatchNorm in inference mode, pooling, ReLU)
    /// as one operation, differentiable in `x`, `scale` and `shift`. Default: `Err(x)` (the
    /// caller runs the three steps).
    fn fast_affine_max_pool3d_relu(
        x: Tensor<Self, 5>,
        scale: Tensor<Self, 1>,
        shift: Tensor<Self, 1>,
        kernel: [usize; 3],
    ) -> Result<Tensor<Self, 5>, Tensor<Self, 5>> {
        let _ = (scale, shift, kernel);
        Err(x)
    }

    /// Training-mode BatchNorm (batch statistics), max pooling and ReLU of a block as one
    /// differentiable operation: `relu(max_pool3d(bn(x)))` with the batch statistics. Default:
    /// `Err(x)` (the caller runs the steps).
    fn fast_batch_norm_max_pool3d_relu_train(
        x: Tensor<Self, 5>,
        gamma: Tensor<Self, 1>,
        beta: Tensor<Self, 1>,
        epsilon: f64,
        kernel: [usize; 3],
    ) -> NormTrainResult<Self> {
        let _ = (gamma, beta, epsilon, kernel);
        Err(x)
    }

    /// [`Self::fast_conv3d`] on `Autodiff<Self>`. Default: Burn's `conv3d` (and its backward
    /// steps).
    fn autodiff_conv3d(
        x: Tensor<Autodiff<Self>, 5>,
        weight: Tensor<Autodiff<Self>, 5>,
        bias: Option<Tensor<Autodiff<Self>, 1>>,
    ) -> Tensor<Autodiff<Self>, 5> {
        straightforward_conv3d(x, weight, bias)
    }

    /// [`Self::fast_max_pool3d`] on `Autodiff<Self>`. Default: [`crate::pool::max_pool3d`].
    fn autodiff_max_pool3d(x: Tensor<Autodiff<Self>, 5>, kernel: [usize; 3]) -> Tensor<Autodiff<Self>, 5> {
        crate::pool::max_pool3d(x, kernel)
    }

    /// [`Self::fast_batch_norm_train`] on `Autodiff<Self>`. Default: `Err(x)`.
    fn autodiff_batch_norm_train(
        x: Tensor<Autodiff<Self>, 5>,
        gamma: Tensor<Autodiff<Self>, 1>,
        beta: Tensor<Autodiff<Self>, 1>,
        epsilon: f64,
    ) -> NormTrainResult<Autodiff<Self>> {
        let _ = (gamma, beta, epsilon);
        Err(x)
    }

    /// [`Self::fast_affine_max_pool3d_relu`] on `Autodiff<Self>`. Default: `Err(x)`.
    fn autodiff_affine_max_pool3d_relu(
        x: Tensor<Autodiff<Self>, 5>,
        scale: Tensor<Autodiff<Self>, 1>,
        shift: Tensor<Autodiff<Self>, 1>,
        kernel: [usize; 3],
    ) -> Result<Tensor<Autodiff<Self>, 5>, Tensor<Autodiff<Self>, 5>> {
        let _ = (scale, shift, kernel);
        Err(x)
    }

    /// [`Self::fast_batch_norm_max_pool3d_relu_train`] on `Autodiff<Self>`. Default: `Err(x)`.
    fn autodiff_batch_norm_max_pool3d_relu_train(
        x: Tensor<Autodiff<Self>, 5>,
        gamma: Tensor<Autodiff<Self>, 1>,
        beta: Tensor<Autodiff<Self>, 1>,
        epsilon: f64,
        kernel: [usize; 3],
    ) -> NormTrainResult<Autodiff<Self>> {
        let _ = (gamma, beta, epsilon, kernel);
        Err(x)
    }
}

/// An autodiff backend whose forward passes, and whose inner backend's (inference after
/// [`burn::module::AutodiffModule::valid`]), take the [`FastBackend`] operations: what training
/// and input gradients need. Implemented for every such backend (`Autodiff<B>` with `B:
/// FastBackend`: [`crate::CpuTrain`], [`crate::GpuTrain`], …).
pub trait FastAutodiffBackend: AutodiffBackend<InnerBackend: FastBackend> + FastBackend {}

impl<B> FastAutodiffBackend for B
where
    B: AutodiffBackend + FastBackend,
    B::InnerBackend: FastBackend,
{
}

/// Burn's `conv3d`, valid and stride 1: the straightforward path of [`FastBackend::fast_conv3d`].
pub(crate) fn straightforward_conv3d<B: Backend>(
    x: Tensor<B, 5>,
    weight: Tensor<B, 5>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, 5> {
    burn_conv3d(x, weight, bias, ConvOptions::new([1, 1, 1], [0, 0, 0], [1, 1, 1], 1))
}

/// Whether the fast path applies to a tensor: [`fast_cpu`] is on and the values are `f32`.
fn fast_f32(dtypes: &[DType]) -> bool {
    fast_cpu() && dtypes.iter().all(|&d| d == DType::F32)
}

/// Flex: the fast CPU kernels of this module while [`fast_cpu`] is on and the tensors are
/// `f32`, Burn's operations otherwise.
impl FastBackend for Flex {
    fn fast_conv3d(x: Tensor<Self, 5>, weight: Tensor<Self, 5>, bias: Option<Tensor<Self, 1>>) -> Tensor<Self, 5> {
        if fast_f32(&[x.dtype(), weight.dtype()]) {
            conv3d_flex(x, weight, bias)
        } else {
            straightforward_conv3d(x, weight, bias)
        }
    }

    fn fast_max_pool3d(x: Tensor<Self, 5>, kernel: [usize; 3]) -> Tensor<Self, 5> {
        if fast_f32(&[x.dtype()]) { max_pool3d_flex(x, kernel) } else { crate::pool::max_pool3d(x, kernel) }
    }

    fn fast_batch_norm_train(
        x: Tensor<Self, 5>,
        gamma: Tensor<Self, 1>,
        beta: Tensor<Self, 1>,
        epsilon: f64,
    ) -> NormTrainResult<Self> {
        if !fast_f32(&[x.dtype()]) {
            return Err(x);
        }
        Ok(batch_norm_train_flex(x, gamma, beta, epsilon))
    }

    fn fast_affine_max_pool3d_relu(
        x: Tensor<Self, 5>,
        scale: Tensor<Self, 1>,
        shift: Tensor<Self, 1>,
        kernel: [usize; 3],
    ) -> Result<Tensor<Self, 5>, Tensor<Self, 5>> {
        if !fast_f32(&[x.dtype()]) {
            return Err(x);
        }
        Ok(affine_pool_relu_flex(x, scale, shift, kernel))
    }

    fn fast_batch_norm_max_pool3d_relu_train(
        x: Tensor<Self, 5>,
        gamma: Tensor<Self, 1>,
        beta: Tensor<Self, 1>,
        epsilon: f64,
        kernel: [usize; 3],
    ) -> NormTrainResult<Self> {
        if !fast_f32(&[x.dtype()]) {
            return Err(x);
        }
        Ok(bn_pool_relu_flex(x, gamma, beta, epsilon, kernel))
    }

    fn autodiff_conv3d(
        x: Tensor<CpuAd, 5>,
        weight: Tensor<CpuAd, 5>,
        bias: Option<Tensor<CpuAd, 1>>,
    ) -> Tensor<CpuAd, 5> {
        if fast_f32(&[x.dtype(), weight.dtype()]) {
            conv3d_autodiff(x, weight, bias)
        } else {
            straightforward_conv3d(x, weight, bias)
        }
    }

    fn autodiff_max_pool3d(x: Tensor<CpuAd, 5>, kernel: [usize; 3]) -> Tensor<CpuAd, 5> {
        if fast_f32(&[x.dtype()]) { max_pool3d_autodiff(x, kernel) } else { crate::pool::max_pool3d(x, kernel) }
    }

    fn autodiff_batch_norm_train(
        x: Tensor<CpuAd, 5>,
        gamma: Tensor<CpuAd, 1>,
        beta: Tensor<CpuAd, 1>,
        epsilon: f64,
    ) -> NormTrainResult<CpuAd> {
        if !fast_f32(&[x.dtype()]) {
            return Err(x);
        }
        Ok(batch_norm_train_autodiff(x, gamma, beta, epsilon))
    }

    fn autodiff_affine_max_pool3d_relu(
        x: Tensor<CpuAd, 5>,
        scale: Tensor<CpuAd, 1>,
        shift: Tensor<CpuAd, 1>,
        kernel: [usize; 3],
    ) -> Result<Tensor<CpuAd, 5>, Tensor<CpuAd, 5>> {
        if !fast_f32(&[x.dtype()]) {
            return Err(x);
        }
        Ok(affine_pool_relu_autodiff(x, scale, shift, kernel))
    }

    fn autodiff_batch_norm_max_pool3d_relu_train(
        x: Tensor<CpuAd, 5>,
        gamma: Tensor<CpuAd, 1>,
        beta: Tensor<CpuAd, 1>,
        epsilon: f64,
        kernel: [usize; 3],
    ) -> NormTrainResult<CpuAd> {
        if !fast_f32(&[x.dtype()]) {
            return Err(x);
        }
        Ok(bn_pool_relu_autodiff(x, gamma, beta, epsilon, kernel))
    }
}

/// `Autodiff<B>`: the inner backend's `autodiff_*` methods (Burn's operations and backward
/// steps by default; `Autodiff<Flex>`: the fast forward and backward steps). The autodiff
/// versions for `Autodiff<Autodiff<B>>` are the defaults.
impl<B: FastBackend> FastBackend for Autodiff<B> {
    fn fast_conv3d(x: Tensor<Self, 5>, weight: Tensor<Self, 5>, bias: Option<Tensor<Self, 1>>) -> Tensor<Self, 5> {
        B::autodiff_conv3d(x, weight, bias)
    }

    fn fast_max_pool3d(x: Tensor<Self, 5>, kernel: [usize; 3]) -> Tensor<Self, 5> {
        B::autodiff_max_pool3d(x, kernel)
    }

    fn fast_batch_norm_train(
        x: Tensor<Self, 5>,
        gamma: Tensor<Self, 1>,
        beta: Tensor<Self, 1>,
        epsilon: f64,
    ) -> NormTrainResult<Self> {
        B::autodiff_batch_norm_train(x, gamma, beta, epsilon)
    }

    fn fast_affine_max_pool3d_relu(
        x: Tensor<Self, 5>,
        scale: Tensor<Self, 1>,
        shift: Tensor<Self, 1>,
        kernel: [usize; 3],
    ) -> Result<Tensor<Self, 5>, Tensor<Self, 5>> {
        B::autodiff_affine_max_pool3d_relu(x, scale, shift, kernel)
    }

    fn fast_batch_norm_max_pool3d_relu_train(
        x: Tensor<Self, 5>,
        gamma: Tensor<Self, 1>,
        beta: Tensor<Self, 1>,
        epsilon: f64,
        kernel: [usize; 3],
    ) -> NormTrainResult<Self> {
        B::autodiff_batch_norm_max_pool3d_relu_train(x, gamma, beta, epsilon, kernel)
    }
}

/// A CubeCL GPU backend (CUDA, wgpu): Burn's operations, except in training (on
/// `Autodiff<…>`) the convolution's backward step and max pooling, which take [`portable`]'s
/// formulations unless [`portable::gpu_ops`] selects Burn's own (`MODEL_GPU_OPS=burn`).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
macro_rules! cubecl_fast_backend {
    ($backend:ty) => {
        impl FastBackend for $backend {
            fn autodiff_conv3d(
                x: Tensor<Autodiff<Self>, 5>,
                weight: Tensor<Autodiff<Self>, 5>,
                bias: Option<Tensor<Autodiff<Self>, 1>>,
            ) -> Tensor<Autodiff<Self>, 5> {
                match portable::gpu_ops() {
                    portable::GpuOps::Portable => {
                        portable::conv3d_autodiff(x, weight, bias, portable::WeightGrad::Taps)
                    }
                    portable::GpuOps::Burn => straightforward_conv3d(x, weight, bias),
                }
            }

            fn autodiff_max_pool3d(x: Tensor<Autodiff<Self>, 5>, kernel: [usize; 3]) -> Tensor<Autodiff<Self>, 5> {
                match portable::gpu_ops() {
                    portable::GpuOps::Portable => portable::max_pool3d(x, kernel),
                    portable::GpuOps::Burn => crate::pool::max_pool3d(x, kernel),
                }
            }
        }
    };
}

#[cfg(feature = "cuda")]
cubecl_fast_backend!(crate::Gpu);
#[cfg(feature = "wgpu")]
cubecl_fast_backend!(crate::Wgpu);

/// The valid (no padding), stride-1, ungrouped 3D convolution `x` `[N, Ci, D, H, W]` ⊛ `weight`
/// `[Co, Ci, kd, kh, kw]` + `bias` → `[N, Co, D − kd + 1, H − kh + 1, W − kw + 1]`, differentiable
/// in all three: [`FastBackend::fast_conv3d`] (fast path on the CPU backends while [`fast_cpu`]
/// is on; Burn's `conv3d` otherwise).
pub fn conv3d<B: FastBackend>(x: Tensor<B, 5>, weight: Tensor<B, 5>, bias: Option<Tensor<B, 1>>) -> Tensor<B, 5> {
    B::fast_conv3d(x, weight, bias)
}

/// Training-mode batch normalisation of `x` `[N, C, D, H, W]` with the batch's statistics:
/// `Ok((y, mean, biased variance))`, differentiable in `x`, `gamma` and `beta` (the gradient
/// through the statistics included), on the CPU backends with the fast path on; `Err(x)`
/// (untouched) otherwise ([`FastBackend::fast_batch_norm_train`]).
pub fn batch_norm_train<B: FastBackend>(
    x: Tensor<B, 5>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> NormTrainResult<B> {
    B::fast_batch_norm_train(x, gamma, beta, epsilon)
}

/// 3D max pooling, window = stride = `kernel`, floor mode, first maximum in raster order on
/// ties; the same values and gradients as [`crate::pool::max_pool3d`], which it calls where the
/// fast path does not apply ([`FastBackend::fast_max_pool3d`]).
pub fn max_pool3d<B: FastBackend>(x: Tensor<B, 5>, kernel: [usize; 3]) -> Tensor<B, 5> {
    B::fast_max_pool3d(x, kernel)
}

/// `relu(max_pool3d(x·scale[c] + shift[c]))` (BatchNorm in inference mode, pooling, ReLU) in one
/// pass, differentiable in `x`, `scale` and `shift`, on the CPU backends with the fast path on;
/// `Err(x)` (untouched) otherwise ([`FastBackend::fast_affine_max_pool3d_relu`]).
pub fn affine_max_pool3d_relu<B: FastBackend>(
    x: Tensor<B, 5>,
    scale: Tensor<B, 1>,
    shift: Tensor<B, 1>,
    kernel: [usize; 3],
) -> Result<Tensor<B, 5>, Tensor<B, 5>> {
    B::fast_affine_max_pool3d_relu(x, scale, shift, kernel)
}

/// Training-mode BatchNorm (batch statistics), max pooling and ReLU of a block in one
/// differentiable operation: `Ok((relu(max_pool3d(bn(x))), batch mean, biased batch variance))`
/// on the CPU backends with the fast path on, `Err(x)` (untouched) otherwise
/// ([`FastBackend::fast_batch_norm_max_pool3d_relu_train`]). The normalised tensor is never
/// stored, and the backward pass reads the output gradient at the window maxima only.
pub fn batch_norm_max_pool3d_relu_train<B: FastBackend>(
    x: Tensor<B, 5>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
    kernel: [usize; 3],
) -> NormTrainResult<B> {
    B::fast_batch_norm_max_pool3d_relu_train(x, gamma, beta, epsilon, kernel)
}

/// [`FastBackend::fast_batch_norm_train`] on Flex.
fn batch_norm_train_flex(
    x: Tensor<Flex, 5>,
    gamma: Tensor<Flex, 1>,
    beta: Tensor<Flex, 1>,
    epsilon: f64,
) -> (Tensor<Flex, 5>, Vec<f32>, Vec<f32>) {
    let (y, stats) = bn_forward_flex(
        &x.into_primitive().tensor(),
        &gamma.into_primitive().tensor(),
        &beta.into_primitive().tensor(),
        epsilon,
    );
    let y = Tensor::<Flex, 5>::from_primitive(TensorPrimitive::Float(y));
    (y, to_f32(&stats.0), to_f32(&stats.1))
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Forward pass of training-mode BatchNorm on Flex: the output and the batch (mean, biased
/// variance) in `f64`.
fn bn_forward_flex(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> (FlexTensor, (Vec<f64>, Vec<f64>)) {
    let dims = x.shape().dims::<5>();
    let (c, spatial) = (dims[1], dims[2] * dims[3] * dims[4]);
    let xv = values(x);
    let (mean, var) = norm::batch_stats(&xv, c, spatial);
    let (g, b) = (values(gamma), values(beta));
    let scale: Vec<f32> = (0..c).map(|i| (f64::from(g[i]) / (var[i] + epsilon).sqrt()) as f32).collect();
    let shift: Vec<f32> = (0..c).map(|i| (f64::from(b[i]) - mean[i] * f64::from(scale[i])) as f32).collect();
    let y = norm::affine(&xv, &scale, &shift, spatial);
    (flex(y, dims.to_vec()), (mean, var))
}

/// Backward step of [`batch_norm_train`] on `Autodiff<Flex>`: parents (x, γ, β); the state is
/// the input, γ, the batch statistics and ε.
#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = (FlexTensor, FlexTensor, std::sync::Arc<(Vec<f64>, Vec<f64>)>, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_g, node_b] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, gamma, stats, epsilon) = ops.state;
        let dims = x.shape().dims::<5>();
        let c = dims[1];
        let spatial = dims[2] * dims[3] * dims[4];
        let (dx, dg, db) =
            norm::backward(&values(&x), &values(&grad), &values(&gamma), &stats.0, &stats.1, epsilon, spatial);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, flex(dx, dims.to_vec()));
        }
        if let Some(node) = node_g {
            grads.register::<Flex>(node.id, flex(dg, vec![c]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, flex(db, vec![c]));
        }
    }
}

fn batch_norm_train_autodiff(
    x: Tensor<CpuAd, 5>,
    gamma: Tensor<CpuAd, 1>,
    beta: Tensor<CpuAd, 1>,
    epsilon: f64,
) -> (Tensor<CpuAd, 5>, Vec<f32>, Vec<f32>) {
    let x = x.into_primitive().tensor();
    let g = gamma.into_primitive().tensor();
    let b = beta.into_primitive().tensor();
    let (y, stats) = bn_forward_flex(&x.primitive, &g.primitive, &b.primitive, epsilon);
    let (mean, var) = (to_f32(&stats.0), to_f32(&stats.1));
    let out = match BatchNormBackward
        .prepare::<NoCheckpointing>([x.node.clone(), g.node.clone(), b.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((x.primitive, g.primitive, std::sync::Arc::new(stats), epsilon), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    (Tensor::from_primitive(TensorPrimitive::Float(out)), mean, var)
}

/// [`FastBackend::fast_max_pool3d`] on Flex.
fn max_pool3d_flex(x: Tensor<Flex, 5>, kernel: [usize; 3]) -> Tensor<Flex, 5> {
    let out = pool_flex(&x.into_primitive().tensor(), None, false, kernel);
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// [`FastBackend::fast_affine_max_pool3d_relu`] on Flex.
fn affine_pool_relu_flex(
    x: Tensor<Flex, 5>,
    scale: Tensor<Flex, 1>,
    shift: Tensor<Flex, 1>,
    kernel: [usize; 3],
) -> Tensor<Flex, 5> {
    let (scale, shift) = (scale.into_primitive().tensor(), shift.into_primitive().tensor());
    let (scale, shift) = (values(&scale), values(&shift));
    let out = pool_flex(&x.into_primitive().tensor(), Some((&scale, &shift)), true, kernel);
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// Backward step of [`affine_max_pool3d_relu`] on `Autodiff<Flex>`: parents (x, scale, shift).
#[derive(Debug)]
struct AffinePoolReluBackward;

/// What a fused affine → pooling → ReLU keeps for its backward pass: the input, the pooled
/// output (after the ReLU), the affine map's scale, the window and each window's first-maximum index
/// (`u32::MAX` where the ReLU zeroed the output), found by the forward pass.
#[derive(Debug, Clone)]
struct PooledState {
    x: FlexTensor,
    out: FlexTensor,
    scale: Vec<f32>,
    kernel: [usize; 3],
    idx: Vec<u32>,
}

impl PooledState {
    fn shape(&self) -> pool::PoolShape {
        pool_shape(&self.x, self.kernel)
    }

    /// Input values, pooled output and the first-maximum index of each window whose output is
    /// positive (`u32::MAX` elsewhere).
    fn unpack(&self) -> (std::borrow::Cow<'_, [f32]>, std::borrow::Cow<'_, [f32]>, &[u32]) {
        (values(&self.x), values(&self.out), &self.idx)
    }
}

impl Backward<Flex, 3> for AffinePoolReluBackward {
    type State = PooledState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_scale, node_shift] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let st = ops.state;
        let s = st.shape();
        let g = values(&grad);
        let (x, out, idx) = st.unpack();
        if node_scale.is_some() || node_shift.is_some() {
            let sums = pool::sparse_sums(&x, &g, &out, idx, &s);
            if let Some(node) = node_scale {
                grads.register::<Flex>(node.id, flex(sums.iter().map(|v| v.1 as f32).collect(), vec![s.channels]));
            }
            if let Some(node) = node_shift {
                grads.register::<Flex>(node.id, flex(sums.iter().map(|v| v.0 as f32).collect(), vec![s.channels]));
            }
        }
        if let Some(node) = node_x {
            let dx = pool::scatter_backward(&x, &g, &out, idx, &s, &st.scale, None);
            grads.register::<Flex>(node.id, flex(dx, st.x.shape().dims::<5>().to_vec()));
        }
    }
}

fn affine_pool_relu_autodiff(
    x: Tensor<CpuAd, 5>,
    scale: Tensor<CpuAd, 1>,
    shift: Tensor<CpuAd, 1>,
    kernel: [usize; 3],
) -> Tensor<CpuAd, 5> {
    let x = x.into_primitive().tensor();
    let sc = scale.into_primitive().tensor();
    let sh = shift.into_primitive().tensor();
    let (scale_v, shift_v) = (values(&sc.primitive).into_owned(), values(&sh.primitive).into_owned());
    let out = match AffinePoolReluBackward
        .prepare::<NoCheckpointing>([x.node.clone(), sc.node.clone(), sh.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (y, idx) = pool_flex_argmax(&x.primitive, (&scale_v, &shift_v), kernel);
            let st = PooledState { x: x.primitive, out: y.clone(), scale: scale_v, kernel, idx };
            prep.finish(st, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(pool_flex(&x.primitive, Some((&scale_v, &shift_v)), true, kernel)),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// [`FastBackend::fast_batch_norm_max_pool3d_relu_train`] on Flex.
fn bn_pool_relu_flex(
    x: Tensor<Flex, 5>,
    gamma: Tensor<Flex, 1>,
    beta: Tensor<Flex, 1>,
    epsilon: f64,
    kernel: [usize; 3],
) -> (Tensor<Flex, 5>, Vec<f32>, Vec<f32>) {
    let x = x.into_primitive().tensor();
    let (g, b) = (gamma.into_primitive().tensor(), beta.into_primitive().tensor());
    let (scale, shift, stats) = bn_affine_of_batch(&x, &values(&g), &values(&b), epsilon);
    let y = pool_flex(&x, Some((&scale, &shift)), true, kernel);
    (Tensor::from_primitive(TensorPrimitive::Float(y)), to_f32(&stats.0), to_f32(&stats.1))
}

/// Batch statistics of `x` and the per-channel affine map of training-mode BatchNorm.
#[allow(clippy::type_complexity)]
fn bn_affine_of_batch(
    x: &FlexTensor,
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, (Vec<f64>, Vec<f64>)) {
    let dims = x.shape().dims::<5>();
    let (c, spatial) = (dims[1], dims[2] * dims[3] * dims[4]);
    let (mean, var) = norm::batch_stats(&values(x), c, spatial);
    let scale: Vec<f32> = (0..c).map(|i| (f64::from(gamma[i]) / (var[i] + epsilon).sqrt()) as f32).collect();
    let shift: Vec<f32> = (0..c).map(|i| (f64::from(beta[i]) - mean[i] * f64::from(scale[i])) as f32).collect();
    (scale, shift, (mean, var))
}

/// Backward step of [`batch_norm_max_pool3d_relu_train`]: parents (x, γ, β).
#[derive(Debug)]
struct BnPoolReluBackward;

impl Backward<Flex, 3> for BnPoolReluBackward {
    type State = (PooledState, Vec<f32>, std::sync::Arc<(Vec<f64>, Vec<f64>)>, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_g, node_b] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (st, gamma, stats, epsilon) = ops.state;
        let s = st.shape();
        let g = values(&grad);
        let (x, out, idx) = st.unpack();
        // The gradient of the normalised tensor is g' at the window maxima and 0 elsewhere, so
        // its per-channel sums are read at the maxima only.
        let sums = pool::sparse_sums(&x, &g, &out, idx, &s);
        let count = (x.len() / s.channels) as f64;
        let (dgamma, dbeta, coef) = norm::backward_coefficients(&sums, &gamma, &stats.0, &stats.1, epsilon, count);
        if let Some(node) = node_x {
            let a: Vec<f32> = coef.iter().map(|c| c.0).collect();
            let k: Vec<f32> = coef.iter().map(|c| c.1).collect();
            let m: Vec<f32> = coef.iter().map(|c| c.2).collect();
            let dx = pool::scatter_backward(&x, &g, &out, idx, &s, &a, Some((&k, &m)));
            grads.register::<Flex>(node.id, flex(dx, st.x.shape().dims::<5>().to_vec()));
        }
        if let Some(node) = node_g {
            grads.register::<Flex>(node.id, flex(dgamma, vec![s.channels]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, flex(dbeta, vec![s.channels]));
        }
    }
}

fn bn_pool_relu_autodiff(
    x: Tensor<CpuAd, 5>,
    gamma: Tensor<CpuAd, 1>,
    beta: Tensor<CpuAd, 1>,
    epsilon: f64,
    kernel: [usize; 3],
) -> (Tensor<CpuAd, 5>, Vec<f32>, Vec<f32>) {
    let x = x.into_primitive().tensor();
    let g = gamma.into_primitive().tensor();
    let b = beta.into_primitive().tensor();
    let gamma_v = values(&g.primitive).into_owned();
    let (scale, shift, stats) = bn_affine_of_batch(&x.primitive, &gamma_v, &values(&b.primitive), epsilon);
    let (mean, var) = (to_f32(&stats.0), to_f32(&stats.1));
    let out = match BnPoolReluBackward
        .prepare::<NoCheckpointing>([x.node.clone(), g.node.clone(), b.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (y, idx) = pool_flex_argmax(&x.primitive, (&scale, &shift), kernel);
            let st = PooledState { x: x.primitive, out: y.clone(), scale, kernel, idx };
            prep.finish((st, gamma_v, std::sync::Arc::new(stats), epsilon), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(pool_flex(&x.primitive, Some((&scale, &shift)), true, kernel)),
    };
    (Tensor::from_primitive(TensorPrimitive::Float(out)), mean, var)
}

fn pool_shape(x: &FlexTensor, kernel: [usize; 3]) -> pool::PoolShape {
    let [n, c, d, h, w] = x.shape().dims::<5>();
    pool::PoolShape { planes: n * c, channels: c, input: [d, h, w], kernel }
}

/// Affine map → pooling → ReLU on Flex, with the window maxima's indices for the backward pass.
fn pool_flex_argmax(x: &FlexTensor, affine: (&[f32], &[f32]), kernel: [usize; 3]) -> (FlexTensor, Vec<u32>) {
    let s = pool_shape(x, kernel);
    let [n, c, ..] = x.shape().dims::<5>();
    let (out, idx) = pool::forward_with_argmax(&values(x), &s, Some(affine), true);
    let [od, oh, ow] = s.output();
    (flex(out, vec![n, c, od, oh, ow]), idx)
}

fn pool_flex(x: &FlexTensor, affine: Option<(&[f32], &[f32])>, relu: bool, kernel: [usize; 3]) -> FlexTensor {
    let s = pool_shape(x, kernel);
    let [n, c, ..] = x.shape().dims::<5>();
    let out = pool::forward(&values(x), &s, affine, relu);
    let [od, oh, ow] = s.output();
    flex(out, vec![n, c, od, oh, ow])
}

/// Backward step of [`max_pool3d`] on `Autodiff<Flex>`: the input, the output and the window
/// (the maxima are found again from them).
#[derive(Debug)]
struct MaxPool3dBackward;

impl Backward<Flex, 1> for MaxPool3dBackward {
    type State = (FlexTensor, FlexTensor, [usize; 3]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, out, kernel) = ops.state;
        if let Some(node) = node {
            let s = pool_shape(&x, kernel);
            let idx = pool::argmax(&values(&x), &values(&out), &s, None, false);
            let dx = pool::backward(&values(&grad), &idx, &s);
            grads.register::<Flex>(node.id, flex(dx, x.shape().dims::<5>().to_vec()));
        }
    }
}

fn max_pool3d_autodiff(x: Tensor<CpuAd, 5>, kernel: [usize; 3]) -> Tensor<CpuAd, 5> {
    let x = x.into_primitive().tensor();
    let y = pool_flex(&x.primitive, None, false, kernel);
    let out = match MaxPool3dBackward.prepare::<NoCheckpointing>([x.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((x.primitive, y.clone(), kernel), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

fn shape_of(x: &FlexTensor, w: &FlexTensor) -> ConvShape {
    let xd = x.shape().dims::<5>();
    let wd = w.shape().dims::<5>();
    assert_eq!(xd[1], wd[1], "conv3d: input has {} channels, weight expects {}", xd[1], wd[1]);
    ConvShape { batch: xd[0], c_in: xd[1], c_out: wd[0], input: [xd[2], xd[3], xd[4]], kernel: [wd[2], wd[3], wd[4]] }
}

/// The tensor's values in row-major order (no copy when it is contiguous).
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("contiguous f32").to_vec()),
    }
}

fn flex(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn conv3d_forward_flex(x: &FlexTensor, w: &FlexTensor, b: Option<&FlexTensor>) -> FlexTensor {
    let s = shape_of(x, w);
    let bias = b.map(values);
    let out = conv::forward(&values(x), &values(w), bias.as_deref(), &s);
    let [od, oh, ow] = s.output();
    flex(out, vec![s.batch, s.c_out, od, oh, ow])
}

fn conv3d_flex(x: Tensor<Flex, 5>, w: Tensor<Flex, 5>, b: Option<Tensor<Flex, 1>>) -> Tensor<Flex, 5> {
    let x = x.into_primitive().tensor();
    let w = w.into_primitive().tensor();
    let b = b.map(|b| b.into_primitive().tensor());
    Tensor::from_primitive(TensorPrimitive::Float(conv3d_forward_flex(&x, &w, b.as_ref())))
}

/// Backward step of [`conv3d`] on `Autodiff<Flex>`: parents (input, weight, bias); the state
/// keeps the input and the weight (as Burn's own conv3d does).
#[derive(Debug)]
struct Conv3dBackward;

impl Backward<Flex, 3> for Conv3dBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, w) = ops.state;
        let s = shape_of(&x, &w);
        let g = values(&grad);
        if let Some(node) = node_x {
            let dx = conv::backward_input(&values(&w), &g, &s);
            grads.register::<Flex>(node.id, flex(dx, x.shape().dims::<5>().to_vec()));
        }
        if node_w.is_some() || node_b.is_some() {
            let (dw, db) = conv::backward_weight(&values(&x), &g, &s);
            if let Some(node) = node_w {
                grads.register::<Flex>(node.id, flex(dw, w.shape().dims::<5>().to_vec()));
            }
            if let Some(node) = node_b {
                grads.register::<Flex>(node.id, flex(db, vec![s.c_out]));
            }
        }
    }
}

/// Backward step of [`conv3d`] without bias: parents (input, weight).
#[derive(Debug)]
struct Conv3dNoBiasBackward;

impl Backward<Flex, 2> for Conv3dNoBiasBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, w) = ops.state;
        let s = shape_of(&x, &w);
        let g = values(&grad);
        if let Some(node) = node_x {
            let dx = conv::backward_input(&values(&w), &g, &s);
            grads.register::<Flex>(node.id, flex(dx, x.shape().dims::<5>().to_vec()));
        }
        if let Some(node) = node_w {
            let (dw, _) = conv::backward_weight(&values(&x), &g, &s);
            grads.register::<Flex>(node.id, flex(dw, w.shape().dims::<5>().to_vec()));
        }
    }
}

type CpuAd = Autodiff<Flex>;

fn conv3d_autodiff(x: Tensor<CpuAd, 5>, w: Tensor<CpuAd, 5>, b: Option<Tensor<CpuAd, 1>>) -> Tensor<CpuAd, 5> {
    let x = x.into_primitive().tensor();
    let w = w.into_primitive().tensor();
    let out = match b {
        Some(b) => {
            let b = b.into_primitive().tensor();
            let y = conv3d_forward_flex(&x.primitive, &w.primitive, Some(&b.primitive));
            match Conv3dBackward
                .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), b.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((x.primitive, w.primitive), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
        None => {
            let y = conv3d_forward_flex(&x.primitive, &w.primitive, None);
            match Conv3dNoBiasBackward
                .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((x.primitive, w.primitive), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
