//! Training operations written only with Burn tensor operations that are fast on a GPU (slices,
//! reshapes, batched matrix multiplies, sums, `max_dim`), generic over the backend: the
//! replacements for Burn's own operations where those are slow or never finish on the CUDA
//! backend (issue 11).
//!
//! - [`conv3d_autodiff`]: the valid, stride-1 3D convolution with its own backward step. The
//!   forward pass and the input gradient are Burn's (`conv3d`, `conv3d_x_backward`, both fast on
//!   CUDA: inference and input gradients were measured at 0.7 ms and 4.7 ms per 2 mm scan); the
//!   weight gradient is [`conv3d_weight_grad_taps`] (or Burn's `conv3d_weight_backward`, see
//!   [`WeightGrad`]) and the bias gradient a sum. In burn-cubecl 0.21 the weight gradient is
//!   autotuned, and one of its candidates (`wgrad_fallback`, also the strategy without
//!   autotune) is a direct convolution whose kernel is the whole output gradient: a few hundred
//!   GPU threads each summing millions of products. That fits "a training step did not finish
//!   its warm-up in 100 s at 100 % GPU use" (not yet confirmed on a GPU). On Burn's wgpu
//!   backend over Mesa's software Vulkan (`tests/cubecl.rs`) the autotuner's cache shows
//!   `wgrad_fallback` as the only candidate that runs there (every implicit-GEMM one fails), and
//!   its weight gradients of blocks 1 and 2 are wrong (first element 2.14 where the CPU gives
//!   146.6); [`conv3d_weight_grad_taps`] matches the CPU there.
//! - [`max_pool3d`]: max pooling (window = stride) as one reshape and three `max_dim`
//!   reductions, whose backward step is Burn's scatter at the kept indices; instead of the two
//!   chained 2D poolings of [`crate::pool::max_pool3d`].
//!
//! Which one the CUDA backend uses in training is [`gpu_ops`] (default [`GpuOps::Portable`];
//! `MODEL_GPU_OPS=burn` selects Burn's own operations, for comparison). The probe
//! ([`crate::probe`]) times both, operation by operation. Every function here is checked on the
//! CPU against Burn's operations (values and every gradient, on odd shapes), so it is correct
//! before any GPU runs it.

use std::sync::atomic::{AtomicU8, Ordering};

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{Tensor, TensorPrimitive};

/// Which operations the CUDA backend trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuOps {
    /// This module's formulations (the default).
    Portable,
    /// Burn's own operations (`conv3d` and its autodiff backward, [`crate::pool::max_pool3d`]).
    Burn,
}

/// 0 = not decided yet (read `MODEL_GPU_OPS`), 1 = portable, 2 = Burn's.
static GPU_OPS: AtomicU8 = AtomicU8::new(0);

/// Chooses the CUDA backend's training operations for the whole process.
pub fn set_gpu_ops(ops: GpuOps) {
    GPU_OPS.store(if ops == GpuOps::Portable { 1 } else { 2 }, Ordering::Relaxed);
}

/// The CUDA backend's training operations: [`set_gpu_ops`] if it was called, else the
/// environment variable `MODEL_GPU_OPS` (`burn` selects Burn's own operations), else
/// [`GpuOps::Portable`].
pub fn gpu_ops() -> GpuOps {
    match GPU_OPS.load(Ordering::Relaxed) {
        1 => GpuOps::Portable,
        2 => GpuOps::Burn,
        _ => {
            let burn = std::env::var("MODEL_GPU_OPS").is_ok_and(|v| v.trim().eq_ignore_ascii_case("burn"));
            let ops = if burn { GpuOps::Burn } else { GpuOps::Portable };
            set_gpu_ops(ops);
            ops
        }
    }
}

/// How [`conv3d_autodiff`] computes the weight gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightGrad {
    /// [`conv3d_weight_grad_taps`]: one batched matrix multiply per kernel tap.
    Taps,
    /// Burn's `conv3d_weight_backward` (autotuned on CUDA).
    Burn,
}

/// The network's convolution options: valid, stride 1, no dilation, one group.
fn options() -> ConvOptions<3> {
    ConvOptions::new([1, 1, 1], [0, 0, 0], [1, 1, 1], 1)
}

/// The weight gradient of the valid, stride-1 3D convolution: `x` `[N, Ci, D, H, W]` and the
/// output gradient `grad` `[N, Co, D − kd + 1, H − kh + 1, W − kw + 1]` → `[Co, Ci, kd, kh, kw]`.
///
/// `dW[co, ci, a, b, c] = Σ_n Σ_s grad[n, co, s] · x[n, ci, s + (a, b, c)]`: for each of the
/// `kd·kh·kw` taps, the input shifted by the tap (a slice) is contracted with the gradient as
/// one batched matrix multiply, batched over scans and output depth, `[Co, H'·W'] × [H'·W', Ci]`,
/// then summed over the batch. So every product is a matrix multiply of moderate inner size
/// (H'·W' ≈ 43 k at 1 mm) with thousands of independent batches, which a GPU runs in parallel.
pub fn conv3d_weight_grad_taps<B: Backend>(x: Tensor<B, 5>, grad: Tensor<B, 5>, kernel: [usize; 3]) -> Tensor<B, 5> {
    let [n, ci, _, _, _] = x.dims();
    let [_, co, od, oh, ow] = grad.dims();
    let [kd, kh, kw] = kernel;
    let hw = oh * ow;
    // [N, Co, D', H'·W'] → [N·D', Co, H'·W'].
    let g = grad.reshape([n, co, od, hw]).swap_dims(1, 2).reshape([n * od, co, hw]);
    let mut taps = Vec::with_capacity(kd * kh * kw);
    for a in 0..kd {
        for b in 0..kh {
            for c in 0..kw {
                // [N, Ci, D', H', W'] shifted by the tap → [N·D', H'·W', Ci].
                let shifted = x
                    .clone()
                    .slice([0..n, 0..ci, a..a + od, b..b + oh, c..c + ow])
                    .reshape([n, ci, od, hw])
                    .permute([0, 2, 3, 1])
                    .reshape([n * od, hw, ci]);
                taps.push(g.clone().matmul(shifted).sum_dim(0).reshape([co, ci, 1]));
            }
        }
    }
    Tensor::cat(taps, 2).reshape([co, ci, kd, kh, kw])
}

/// The bias gradient of a convolution: the output gradient summed over scans and space
/// ([`sum_per_channel`]).
pub fn conv3d_bias_grad<B: Backend>(grad: Tensor<B, 5>) -> Tensor<B, 1> {
    sum_per_channel(grad)
}

/// `x` `[N, C, D, H, W]` summed over everything but the channel axis → `[C]`, one axis at a
/// time (W, H, D, then N), so that no reduction runs over more values than the longest axis.
/// CubeCL's reductions gave wrong sums over rows of 65 536 values or more on Mesa's software
/// Vulkan (a row of 96 000 summed to nothing like its value; `tests/cubecl.rs`), and one row per
/// channel would be 8 million values long at 1 mm. Used by the convolution's bias gradient and
/// BatchNorm's batch statistics on every backend but the fast CPU path.
pub fn sum_per_channel<B: Backend>(x: Tensor<B, 5>) -> Tensor<B, 1> {
    let c = x.dims()[1];
    x.sum_dim(4).sum_dim(3).sum_dim(2).sum_dim(0).reshape([c])
}

/// The valid, stride-1 3D convolution `x ⊛ weight + bias` on `Autodiff<B>` with the backward
/// step of this module: the input gradient by Burn's `conv3d_x_backward`, the weight gradient
/// by `weight_grad`, the bias gradient by [`conv3d_bias_grad`]. Same values and gradients as
/// Burn's `conv3d` up to float rounding.
pub fn conv3d_autodiff<B: Backend>(
    x: Tensor<Autodiff<B>, 5>,
    weight: Tensor<Autodiff<B>, 5>,
    bias: Option<Tensor<Autodiff<B>, 1>>,
    weight_grad: WeightGrad,
) -> Tensor<Autodiff<B>, 5> {
    // A bias of zeros outside the graph stands for "no bias": its parent is untracked.
    let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[0]], &weight.device()));
    let (x, w, b) = (x.into_primitive().tensor(), weight.into_primitive().tensor(), bias.into_primitive().tensor());
    let y = B::conv3d(x.primitive.clone(), w.primitive.clone(), Some(b.primitive), options());
    let out = match ConvBackward(weight_grad)
        .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), b.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((x.primitive, w.primitive), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// Backward step of [`conv3d_autodiff`]: parents (input, weight, bias); the state keeps the
/// input and the weight (as Burn's own conv3d does).
#[derive(Debug)]
struct ConvBackward(WeightGrad);

impl<B: Backend> Backward<B, 3> for ConvBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, w) = ops.state;
        let tensor = |p: FloatTensor<B>| Tensor::<B, 5>::from_primitive(TensorPrimitive::Float(p));
        if let Some(node) = node_b {
            let db = conv3d_bias_grad(tensor(grad.clone()));
            grads.register::<B>(node.id, db.into_primitive().tensor());
        }
        if let Some(node) = node_w {
            let dw = match self.0 {
                WeightGrad::Burn => B::conv3d_weight_backward(x.clone(), w.clone(), grad.clone(), options()),
                WeightGrad::Taps => {
                    let [_, _, kd, kh, kw] = tensor(w.clone()).dims();
                    conv3d_weight_grad_taps(tensor(x.clone()), tensor(grad.clone()), [kd, kh, kw])
                        .into_primitive()
                        .tensor()
                }
            };
            grads.register::<B>(node.id, dw);
        }
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::conv3d_x_backward(x, w, grad, options()));
        }
    }
}

/// 3D max pooling, window = stride = `kernel`, floor mode: the input cropped to whole windows,
/// reshaped to `[N·C·D', kd, H', kh, W', kw]` and reduced with `max_dim` along the window's
/// W, H, then D axes. Each `max_dim` keeps the first maximum along its axis, so the kept voxel
/// is the window's first maximum in raster order, as [`crate::pool::max_pool3d`]. Differentiable
/// on any backend (the gradient goes to the kept voxel).
pub fn max_pool3d<B: Backend>(x: Tensor<B, 5>, kernel: [usize; 3]) -> Tensor<B, 5> {
    let [n, c, d, h, w] = x.dims();
    let [kd, kh, kw] = kernel;
    let (od, oh, ow) = (d / kd, h / kh, w / kw);
    let x = if [od * kd, oh * kh, ow * kw] == [d, h, w] {
        x
    } else {
        x.slice([0..n, 0..c, 0..od * kd, 0..oh * kh, 0..ow * kw])
    };
    x.reshape([n * c * od, kd, oh, kh, ow, kw]).max_dim(5).max_dim(3).max_dim(1).reshape([n, c, od, oh, ow])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::conv::tests::pseudo_random;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    type Ad = Autodiff<Flex>;

    fn tensor<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<Flex, D> {
        let len = shape.iter().product();
        Tensor::from_data(TensorData::new(pseudo_random(len, seed), shape), &Default::default())
    }

    fn max_abs_diff<const D: usize>(a: Tensor<Flex, D>, b: Tensor<Flex, D>) -> (f32, f32) {
        let (a, b) = (a.into_data().to_vec::<f32>().unwrap(), b.into_data().to_vec::<f32>().unwrap());
        assert_eq!(a.len(), b.len());
        let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        (a.iter().zip(&b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())), scale)
    }

    fn assert_close<const D: usize>(what: &str, a: Tensor<Flex, D>, b: Tensor<Flex, D>) {
        let (diff, scale) = max_abs_diff(a, b);
        assert!(scale > 0.0, "{what}: all zeros");
        assert!(diff <= 1e-5 * scale.max(1.0), "{what}: max |Δ| {diff} (largest value {scale})");
    }

    /// Values and every gradient of [`conv3d_autodiff`] against Burn's conv3d on `Autodiff<Flex>`
    /// (the straightforward path), for both weight-gradient formulations.
    fn check_conv(x_shape: [usize; 5], co: usize, kernel: [usize; 3], with_bias: bool, seed: u64) {
        let [_, ci, d, h, w] = x_shape;
        let x = tensor(x_shape, seed);
        let weight = tensor([co, ci, kernel[0], kernel[1], kernel[2]], seed + 1);
        let bias = tensor([co], seed + 2);
        let out = [x_shape[0], co, d - kernel[0] + 1, h - kernel[1] + 1, w - kernel[2] + 1];
        let upstream = tensor(out, seed + 3);
        let run = |which: Option<WeightGrad>| {
            let xa = Tensor::<Ad, 5>::from_inner(x.clone()).require_grad();
            let wa = Tensor::<Ad, 5>::from_inner(weight.clone()).require_grad();
            let ba = Tensor::<Ad, 1>::from_inner(bias.clone()).require_grad();
            let b = with_bias.then(|| ba.clone());
            let y = match which {
                Some(wg) => conv3d_autodiff(xa.clone(), wa.clone(), b, wg),
                None => super::super::straightforward_conv3d(xa.clone(), wa.clone(), b),
            };
            let grads = y.clone().mul(Tensor::from_inner(upstream.clone())).sum().backward();
            let gb = if with_bias { ba.grad(&grads) } else { None };
            (y.inner(), xa.grad(&grads).unwrap(), wa.grad(&grads).unwrap(), gb)
        };
        let (y0, dx0, dw0, db0) = run(None);
        for wg in [WeightGrad::Taps, WeightGrad::Burn] {
            let (y, dx, dw, db) = run(Some(wg));
            let what = format!("{x_shape:?} → {co} channels, kernel {kernel:?}, {wg:?}");
            assert_close(&format!("{what}: output"), y0.clone(), y);
            assert_close(&format!("{what}: input gradient"), dx0.clone(), dx);
            assert_close(&format!("{what}: weight gradient"), dw0.clone(), dw);
            match (db0.clone(), db) {
                (Some(a), Some(b)) => assert_close(&format!("{what}: bias gradient"), a, b),
                (None, None) => {}
                other => panic!("{what}: bias gradient present on one side only: {other:?}"),
            }
        }
    }

    #[test]
    fn portable_conv_matches_burn_on_odd_shapes() {
        // One input channel (block 1), several, a non-cubic kernel, no bias, a batch of one.
        check_conv([2, 1, 7, 6, 9], 3, [3, 3, 3], true, 10);
        check_conv([3, 4, 6, 8, 5], 5, [3, 2, 3], true, 20);
        check_conv([1, 2, 5, 5, 7], 1, [1, 3, 2], false, 30);
        check_conv([2, 3, 4, 4, 4], 2, [4, 4, 4], true, 40);
    }

    #[test]
    fn weight_grad_taps_matches_burn_directly() {
        let x = tensor([2, 3, 9, 7, 8], 50);
        let g = tensor([2, 4, 7, 5, 6], 51);
        let w = tensor([4, 3, 3, 3, 3], 52);
        let burn = <Flex as burn::tensor::ops::ModuleOps<Flex>>::conv3d_weight_backward(
            x.clone().into_primitive().tensor(),
            w.into_primitive().tensor(),
            g.clone().into_primitive().tensor(),
            options(),
        );
        let burn = Tensor::<Flex, 5>::from_primitive(TensorPrimitive::Float(burn));
        assert_close("taps", burn, conv3d_weight_grad_taps(x, g.clone(), [3, 3, 3]));
        let direct: Vec<f32> =
            (0..4).map(|co| g.clone().slice([0..2, co..co + 1, 0..7, 0..5, 0..6]).sum().into_scalar()).collect();
        let db = conv3d_bias_grad(g).into_data().to_vec::<f32>().unwrap();
        for (a, b) in direct.iter().zip(&db) {
            assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "bias gradient {db:?} against {direct:?}");
        }
    }

    /// Values and the input gradient of the reshape pooling against the two-2D-pooling path.
    #[test]
    fn reshape_pooling_matches_the_straightforward_pooling() {
        for (shape, kernel, seed) in
            [([2, 3, 8, 9, 10], [2, 2, 2], 60), ([1, 2, 7, 11, 9], [3, 3, 3], 61), ([2, 1, 6, 5, 7], [2, 1, 3], 62)]
        {
            let x = tensor(shape, seed);
            let run = |reshape: bool| {
                let xa = Tensor::<Ad, 5>::from_inner(x.clone()).require_grad();
                let y =
                    if reshape { max_pool3d(xa.clone(), kernel) } else { crate::pool::max_pool3d(xa.clone(), kernel) };
                let upstream = tensor(y.dims(), seed + 100);
                let grads = y.clone().mul(Tensor::from_inner(upstream)).sum().backward();
                (y.inner(), xa.grad(&grads).unwrap())
            };
            let (y0, dx0) = run(false);
            let (y1, dx1) = run(true);
            assert_eq!(y0.dims(), y1.dims(), "{shape:?} / {kernel:?}");
            assert_close(&format!("{shape:?} / {kernel:?}: output"), y0, y1);
            assert_close(&format!("{shape:?} / {kernel:?}: input gradient"), dx0, dx1);
        }
    }

    #[test]
    fn reshape_pooling_keeps_the_first_maximum_on_ties() {
        // A window of 2×2×2 equal values: the gradient goes to its first voxel only, as in the
        // straightforward path (and PyTorch).
        let x =
            Tensor::<Ad, 5>::from_inner(Tensor::<Flex, 5>::ones([1, 1, 2, 2, 2], &Default::default())).require_grad();
        let grads = max_pool3d(x.clone(), [2, 2, 2]).sum().backward();
        let g = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        assert_eq!(g, vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn the_switch_reads_its_setting() {
        let before = gpu_ops();
        set_gpu_ops(GpuOps::Burn);
        assert_eq!(gpu_ops(), GpuOps::Burn);
        set_gpu_ops(GpuOps::Portable);
        assert_eq!(gpu_ops(), GpuOps::Portable);
        set_gpu_ops(before);
    }
}
