//! The fast CPU paths (`model::fast`) against the straightforward implementations on random
//! inputs of odd sizes: forward values and every gradient (input and parameters), on the CPU
//! training backend (`Autodiff<Flex>`) and on plain Flex; and the whole network, fast against
//! straightforward (values, input gradients, one training step's parameter gradients).
//!
//! The straightforward references are called directly (Burn's `conv3d`,
//! `model::pool::max_pool3d`, a broadcasting BatchNorm), so these tests never flip the
//! process-wide switch; the fixed-seed training comparison, which must flip it, lives in
//! `tests/fast_training.rs` (its own process).

use burn::tensor::backend::Backend;
use burn::tensor::module::conv3d as burn_conv3d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};
use model::{Cpu, CpuTrain, fast};

/// A tiny deterministic generator for test inputs (independent of the backend's).
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / ((1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| scale * self.uniform()).collect()
    }
}

fn tensor<B: Backend, const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// Largest |a − b| relative to the largest |b| (at least 1).
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
}

fn assert_close(what: &str, fast: &[f32], reference: &[f32], tol: f32) {
    let e = rel_err(fast, reference);
    assert!(e <= tol, "{what}: relative error {e:e} > {tol:e}");
}

/// Forward value and gradients of input, weight and bias of one convolution, through `conv`.
fn conv_case(
    conv: impl Fn(Tensor<CpuTrain, 5>, Tensor<CpuTrain, 5>, Tensor<CpuTrain, 1>) -> Tensor<CpuTrain, 5>,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    g: &[f32],
    xs: [usize; 5],
    ws: [usize; 5],
) -> [Vec<f32>; 4] {
    let xt = tensor::<CpuTrain, 5>(x.to_vec(), xs).require_grad();
    let wt = tensor::<CpuTrain, 5>(w.to_vec(), ws).require_grad();
    let bt = tensor::<CpuTrain, 1>(b.to_vec(), [ws[0]]).require_grad();
    let y = conv(xt.clone(), wt.clone(), bt.clone());
    let dims = y.dims();
    // A random linear functional of the output, so every output element has its own gradient.
    let loss = (y.clone() * tensor::<CpuTrain, 5>(g.to_vec(), dims)).sum();
    let grads = loss.backward();
    [values(y), values(xt.grad(&grads).unwrap()), values(wt.grad(&grads).unwrap()), values(bt.grad(&grads).unwrap())]
}

#[test]
fn fast_conv3d_matches_burn_values_and_all_gradients_on_odd_shapes() {
    fast::set_fast_cpu(true);
    let mut rng = Lcg(7);
    // (x shape, weight shape): one input channel (the first block), one output channel (the
    // direct path), a non-cubic kernel, more channels than a matrix-multiply micro-kernel.
    let cases = [
        ([2, 1, 9, 7, 11], [8, 1, 3, 3, 3]),
        ([1, 3, 5, 8, 6], [1, 3, 3, 3, 3]),
        ([3, 2, 6, 5, 7], [5, 2, 2, 3, 1]),
        ([2, 5, 7, 9, 13], [17, 5, 3, 3, 3]),
        ([1, 4, 3, 3, 3], [3, 4, 3, 3, 3]),
    ];
    for (xs, ws) in cases {
        let x = rng.vec(xs.iter().product(), 1.0);
        let w = rng.vec(ws.iter().product(), 0.5);
        let b = rng.vec(ws[0], 0.5);
        let out: usize = ws[0] * xs[0] * (0..3).map(|i| xs[2 + i] - ws[2 + i] + 1).product::<usize>();
        let g = rng.vec(out, 1.0);
        let reference = conv_case(
            |x, w, b| burn_conv3d(x, w, Some(b), ConvOptions::new([1, 1, 1], [0, 0, 0], [1, 1, 1], 1)),
            &x,
            &w,
            &b,
            &g,
            xs,
            ws,
        );
        let fast = conv_case(|x, w, b| fast::conv3d(x, w, Some(b)), &x, &w, &b, &g, xs, ws);
        for (i, what) in ["output", "input gradient", "weight gradient", "bias gradient"].iter().enumerate() {
            assert_close(&format!("{xs:?} ⊛ {ws:?} {what}"), &fast[i], &reference[i], 1e-5);
        }
        // The plain backend (inference) gives the same values.
        let plain = fast::conv3d(
            tensor::<Cpu, 5>(x.clone(), xs),
            tensor::<Cpu, 5>(w.clone(), ws),
            Some(tensor::<Cpu, 1>(b.clone(), [ws[0]])),
        );
        assert_close(&format!("{xs:?} ⊛ {ws:?} output on Flex"), &values(plain), &reference[0], 1e-5);
    }
}

#[test]
fn fast_conv3d_without_bias_matches_burn() {
    fast::set_fast_cpu(true);
    let mut rng = Lcg(11);
    let (xs, ws) = ([2, 3, 6, 7, 5], [4, 3, 3, 2, 3]);
    let x = rng.vec(xs.iter().product(), 1.0);
    let w = rng.vec(ws.iter().product(), 0.5);
    let run = |fast_path: bool| {
        let xt = tensor::<CpuTrain, 5>(x.clone(), xs).require_grad();
        let wt = tensor::<CpuTrain, 5>(w.clone(), ws).require_grad();
        let y = if fast_path {
            fast::conv3d(xt.clone(), wt.clone(), None)
        } else {
            burn_conv3d(xt.clone(), wt.clone(), None, ConvOptions::new([1, 1, 1], [0, 0, 0], [1, 1, 1], 1))
        };
        let grads = (y.clone() * y.clone()).sum().backward();
        [values(y), values(xt.grad(&grads).unwrap()), values(wt.grad(&grads).unwrap())]
    };
    let (f, r) = (run(true), run(false));
    for i in 0..3 {
        assert_close(&format!("no-bias part {i}"), &f[i], &r[i], 1e-5);
    }
}

#[test]
fn fast_max_pool3d_matches_the_straightforward_pooling_values_and_gradients() {
    fast::set_fast_cpu(true);
    let mut rng = Lcg(3);
    for (dims, k) in [
        ([2, 3, 9, 7, 11], [2, 2, 2]),
        ([1, 2, 10, 9, 8], [3, 3, 3]),
        ([3, 1, 5, 6, 7], [1, 2, 3]),
        ([1, 4, 4, 4, 4], [2, 1, 2]),
    ] {
        // Values on a coarse grid, so many windows hold ties (the first maximum must win).
        let x: Vec<f32> = rng.vec(dims.iter().product(), 1.0).iter().map(|v| (v * 3.0).round()).collect();
        let out_dims = [dims[0], dims[1], dims[2] / k[0], dims[3] / k[1], dims[4] / k[2]];
        let g = rng.vec(out_dims.iter().product(), 1.0);
        let run = |fast_path: bool| {
            let xt = tensor::<CpuTrain, 5>(x.clone(), dims).require_grad();
            let y = if fast_path { fast::max_pool3d(xt.clone(), k) } else { model::pool::max_pool3d(xt.clone(), k) };
            let grads = (y.clone() * tensor::<CpuTrain, 5>(g.clone(), out_dims)).sum().backward();
            (values(y), values(xt.grad(&grads).unwrap()))
        };
        let (f, r) = (run(true), run(false));
        assert_eq!(f.0, r.0, "{dims:?} / {k:?}: pooled values");
        assert_eq!(f.1, r.1, "{dims:?} / {k:?}: input gradient (ties included)");
        let plain = fast::max_pool3d(tensor::<Cpu, 5>(x.clone(), dims), k);
        assert_eq!(values(plain), r.0, "{dims:?} / {k:?}: pooled values on Flex");
    }
}

#[test]
fn fused_affine_pool_relu_matches_the_three_steps_values_and_gradients() {
    fast::set_fast_cpu(true);
    let mut rng = Lcg(5);
    for (dims, k) in [([2, 3, 8, 7, 9], [2, 2, 2]), ([1, 3, 9, 10, 6], [3, 3, 3]), ([2, 3, 4, 5, 3], [1, 1, 1])] {
        let x = rng.vec(dims.iter().product(), 1.0);
        // A negative and a zero scale: the affine map must come before the pooling.
        let scale = vec![0.7, -1.3, 0.0];
        let shift = vec![0.1, 0.2, -0.3];
        let out_dims = [dims[0], dims[1], dims[2] / k[0], dims[3] / k[1], dims[4] / k[2]];
        let g = rng.vec(out_dims.iter().product(), 1.0);
        let run = |fast_path: bool| {
            let xt = tensor::<CpuTrain, 5>(x.clone(), dims).require_grad();
            let st = tensor::<CpuTrain, 1>(scale.clone(), [3]).require_grad();
            let bt = tensor::<CpuTrain, 1>(shift.clone(), [3]).require_grad();
            let y = if fast_path {
                fast::affine_max_pool3d_relu(xt.clone(), st.clone(), bt.clone(), k)
                    .expect("fast path on Autodiff<Flex>")
            } else {
                let z = model::norm::channel_affine_rows(xt.clone(), st.clone(), bt.clone());
                burn::tensor::activation::relu(model::pool::max_pool3d(z, k))
            };
            let grads = (y.clone() * tensor::<CpuTrain, 5>(g.clone(), out_dims)).sum().backward();
            [
                values(y),
                values(xt.grad(&grads).unwrap()),
                values(st.grad(&grads).unwrap()),
                values(bt.grad(&grads).unwrap()),
            ]
        };
        let (f, r) = (run(true), run(false));
        for (i, what) in ["output", "input gradient", "scale gradient", "shift gradient"].iter().enumerate() {
            assert_close(&format!("{dims:?}/{k:?} {what}"), &f[i], &r[i], 1e-5);
        }
        let plain = fast::affine_max_pool3d_relu(
            tensor::<Cpu, 5>(x.clone(), dims),
            tensor(scale.clone(), [3]),
            tensor(shift.clone(), [3]),
            k,
        )
        .expect("fast path on Flex");
        assert_close(&format!("{dims:?}/{k:?} output on Flex"), &values(plain), &r[0], 1e-6);
    }
}

#[test]
fn fused_batch_norm_pool_relu_train_matches_the_three_steps_values_statistics_and_gradients() {
    fast::set_fast_cpu(true);
    let mut rng = Lcg(21);
    for (dims, k) in [([3, 4, 8, 7, 9], [2, 2, 2]), ([2, 2, 9, 6, 7], [3, 3, 3]), ([2, 3, 3, 4, 5], [1, 1, 1])] {
        let c = dims[1];
        let x: Vec<f32> = rng.vec(dims.iter().product(), 2.0).iter().map(|v| v - 1.0).collect();
        let gamma: Vec<f32> = rng.vec(c, 1.0);
        let beta = rng.vec(c, 1.0);
        let out_dims = [dims[0], c, dims[2] / k[0], dims[3] / k[1], dims[4] / k[2]];
        let g = rng.vec(out_dims.iter().product(), 1.0);
        let run = |fast_path: bool| {
            let xt = tensor::<CpuTrain, 5>(x.clone(), dims).require_grad();
            let gt = tensor::<CpuTrain, 1>(gamma.clone(), [c]).require_grad();
            let bt = tensor::<CpuTrain, 1>(beta.clone(), [c]).require_grad();
            let (y, var) = if fast_path {
                let (y, _, var) = fast::batch_norm_max_pool3d_relu_train(xt.clone(), gt.clone(), bt.clone(), 1e-5, k)
                    .expect("fast path");
                (y, var)
            } else {
                let centered = xt.clone() - xt.clone().mean_dim(0).mean_dim(2).mean_dim(3).mean_dim(4);
                let var = values(centered.square().mean_dim(0).mean_dim(2).mean_dim(3).mean_dim(4).reshape([c]));
                let z = reference_batch_norm(xt.clone(), gt.clone(), bt.clone());
                (burn::tensor::activation::relu(model::pool::max_pool3d(z, k)), var)
            };
            let grads = (y.clone() * tensor::<CpuTrain, 5>(g.clone(), out_dims)).sum().backward();
            [
                values(y),
                var,
                values(xt.grad(&grads).unwrap()),
                values(gt.grad(&grads).unwrap()),
                values(bt.grad(&grads).unwrap()),
            ]
        };
        let (f, r) = (run(true), run(false));
        for (i, what) in ["output", "batch variance", "input gradient", "γ gradient", "β gradient"].iter().enumerate()
        {
            assert_close(&format!("{dims:?}/{k:?} {what}"), &f[i], &r[i], 2e-5);
        }
    }
}

/// Training-mode BatchNorm written out with broadcasts (two-pass variance).
fn reference_batch_norm(
    x: Tensor<CpuTrain, 5>,
    gamma: Tensor<CpuTrain, 1>,
    beta: Tensor<CpuTrain, 1>,
) -> Tensor<CpuTrain, 5> {
    let c = x.dims()[1];
    let mean = x.clone().mean_dim(0).mean_dim(2).mean_dim(3).mean_dim(4);
    let centered = x - mean;
    let var = centered.clone().square().mean_dim(0).mean_dim(2).mean_dim(3).mean_dim(4);
    let xhat = centered / (var + 1e-5).sqrt();
    xhat * gamma.reshape([1, c, 1, 1, 1]) + beta.reshape([1, c, 1, 1, 1])
}

#[test]
fn fast_batch_norm_train_matches_the_broadcast_formula_values_statistics_and_gradients() {
    fast::set_fast_cpu(true);
    let mut rng = Lcg(9);
    for dims in [[3, 4, 5, 7, 6], [1, 2, 3, 3, 3], [2, 5, 9, 1, 11]] {
        let c = dims[1];
        // Offset and scaled, so a one-pass variance without care would lose digits.
        let x: Vec<f32> = rng.vec(dims.iter().product(), 2.0).iter().map(|v| v + 3.0).collect();
        let gamma = rng.vec(c, 1.0);
        let beta = rng.vec(c, 1.0);
        let g = rng.vec(dims.iter().product(), 1.0);
        let run = |fast_path: bool| {
            let xt = tensor::<CpuTrain, 5>(x.clone(), dims).require_grad();
            let gt = tensor::<CpuTrain, 1>(gamma.clone(), [c]).require_grad();
            let bt = tensor::<CpuTrain, 1>(beta.clone(), [c]).require_grad();
            let (y, mean) = if fast_path {
                let (y, mean, _) = fast::batch_norm_train(xt.clone(), gt.clone(), bt.clone(), 1e-5).expect("fast path");
                (y, mean)
            } else {
                let mean = values(xt.clone().mean_dim(0).mean_dim(2).mean_dim(3).mean_dim(4).reshape([c]));
                (reference_batch_norm(xt.clone(), gt.clone(), bt.clone()), mean)
            };
            let grads = (y.clone() * tensor::<CpuTrain, 5>(g.clone(), dims)).sum().backward();
            [
                values(y),
                mean,
                values(xt.grad(&grads).unwrap()),
                values(gt.grad(&grads).unwrap()),
                values(bt.grad(&grads).unwrap()),
            ]
        };
        let (f, r) = (run(true), run(false));
        for (i, what) in ["output", "batch mean", "input gradient", "γ gradient", "β gradient"].iter().enumerate() {
            assert_close(&format!("{dims:?} {what}"), &f[i], &r[i], 2e-5);
        }
    }
}

#[test]
fn fast_batch_norm_of_a_constant_input_is_beta_with_zero_variance() {
    // Constant input: batch mean = the constant, variance 0, x̂ = 0, so y = β per channel.
    fast::set_fast_cpu(true);
    let x = tensor::<Cpu, 5>(vec![1.0; 2 * 2 * 2 * 2 * 2], [2, 2, 2, 2, 2]);
    let g = tensor::<Cpu, 1>(vec![1.0, 2.0], [2]);
    let b = tensor::<Cpu, 1>(vec![0.0, 0.5], [2]);
    let (y, mean, var) = fast::batch_norm_train(x, g, b, 1e-5).expect("fast path on");
    assert_eq!(mean, vec![1.0, 1.0]);
    assert_eq!(var, vec![0.0, 0.0]);
    for (i, v) in values(y).into_iter().enumerate() {
        let channel = (i / 8) % 2;
        assert_eq!(v, [0.0, 0.5][channel], "element {i}");
    }
}
