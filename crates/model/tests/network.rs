//! The paper network's mechanics: sizes, pooling, BatchNorm, modes, training, seeding, devices.
//!
//! Tests that draw random numbers from the backend (model init, dropout, random tensors) hold
//! `serial()`: the CPU backend's generator is process-wide, so a concurrent test would change
//! the draws of a seeded one.

use std::sync::{Mutex, MutexGuard};

use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use model::network::{GRID_2MM, PAPER_GRID_1MM};
use model::{
    BatchNorm3d, ClassificationModel3D, Cpu, CpuTrain, DeviceKind, ModelError, NetworkConfig, input_gradient,
    input_gradient_for, max_pool3d,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A tiny deterministic generator for test inputs (independent of the backend's).
struct Lcg(u64);

impl Lcg {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32) / ((1u64 << 24) as f32)
    }
    /// Approximately normal (sum of uniforms), mean `mean`, sd `sd`.
    fn normal(&mut self, mean: f32, sd: f32) -> f32 {
        let s: f32 = (0..12).map(|_| self.next_f32()).sum::<f32>() - 6.0;
        mean + sd * s
    }
    fn vec(&mut self, n: usize, mean: f32, sd: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal(mean, sd)).collect()
    }
}

fn tensor<B: Backend, const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn max_abs(a: &[f32]) -> f32 {
    a.iter().map(|x| x.abs()).fold(0.0, f32::max)
}

/// Four cheap blocks (k = 3, pools 2) for mechanics tests; needs ≥ 46 voxels per axis.
fn tiny_config() -> NetworkConfig {
    NetworkConfig { channels: [2, 3, 3, 4], pools: [2, 2, 2, 2], kernel: 3, dense: [8, 6], dropout: 0.8, classes: 2 }
}

const TINY_GRID: [usize; 3] = [46, 48, 47];

fn random_scans(rng: &mut Lcg, n: usize, grid: [usize; 3]) -> Vec<f32> {
    rng.vec(n * grid.iter().product::<usize>(), 0.0, 1.0)
}

// ---------------------------------------------------------------- sizes and configuration

#[test]
fn paper_network_has_737026_trainable_parameters_at_1mm() {
    let _guard = serial();
    let model = NetworkConfig::default().init::<Cpu>(PAPER_GRID_1MM, &Default::default()).unwrap();
    assert_eq!(model.num_params(), 737_026);
    // Burn counts every float tensor of the module, BatchNorm running statistics included:
    // the original model's 737,266 "with BN running stats".
    assert_eq!(Module::num_params(&model), 737_266);
    assert_eq!(model.input_shape(), PAPER_GRID_1MM);
    assert_eq!(model.dense_1.weight.dims(), [5120, 128]);
}

#[test]
fn convolution_work_is_counted_per_block() {
    let config = NetworkConfig::default();
    // 2 mm: block 1 is 8 · 1 · 27 multiply-adds at each of 95 · 113 · 95 voxels; block 2 reads
    // the pooled 47 · 56 · 47 and writes 45 · 54 · 45; and so on.
    let macs = config.conv_macs(GRID_2MM).unwrap();
    assert_eq!(
        macs,
        [8 * 27 * 95 * 113 * 95, 16 * 8 * 27 * 45 * 54 * 45, 32 * 16 * 27 * 13 * 16 * 13, 64 * 32 * 27 * 4 * 6 * 4]
    );
    // About 0.64 G multiply-adds per forward pass at 2 mm.
    assert!((macs.iter().sum::<u64>() as f64 / 1e9 - 0.64).abs() < 0.01, "{macs:?}");
    // 1 mm: 191·227·191, then 93·111·93, 29·35·29 and 12·15·12 output voxels.
    let macs = config.conv_macs(PAPER_GRID_1MM).unwrap();
    assert_eq!(macs, [216 * 191 * 227 * 191, 3456 * 93 * 111 * 93, 13824 * 29 * 35 * 29, 55296 * 12 * 15 * 12]);
    assert!(config.conv_macs([20, 20, 20]).is_err());
}

#[test]
fn flatten_sizes_follow_the_grid() {
    let config = NetworkConfig::default();
    assert_eq!(config.flatten_size(PAPER_GRID_1MM).unwrap(), 5120);
    assert_eq!(config.output_grid(PAPER_GRID_1MM).unwrap(), [4, 5, 4]);
    assert_eq!(config.flatten_size(GRID_2MM).unwrap(), 128);
    assert_eq!(config.output_grid(GRID_2MM).unwrap(), [1, 2, 1]);
    assert_eq!(config.min_grid_size(), 78);
    assert_eq!(config.flatten_size([78, 78, 78]).unwrap(), 64);
    // Per axis, the inverse map gives exactly the sizes that end with n voxels.
    for n in 1..6 {
        let range = config.input_range_for_output(n);
        for s in 78..300 {
            let out = config.output_grid([s, s, s]).unwrap()[0];
            assert_eq!(out == n, range.contains(&s), "size {s}, n {n}");
        }
    }
}

#[test]
fn too_small_grid_is_an_error_not_a_panic() {
    let config = NetworkConfig::default();
    for grid in [[40, 40, 40], [77, 100, 100], [65, 77, 65]] {
        let err = config.flatten_size(grid).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ModelError::GridTooSmall { .. }), "{message}");
        assert!(message.contains("needs at least 78 voxels per axis"), "{message}");
        assert!(message.contains(&format!("{}×{}×{}", grid[0], grid[1], grid[2])), "{message}");
        let init = config.init::<Cpu>(grid, &Default::default());
        assert!(init.is_err());
    }
    // 40³: 38 → 19 → 17 → 5 → 3 → 1 voxel enters block 4, which needs 5.
    let message = config.flatten_size([40, 40, 40]).unwrap_err().to_string();
    assert!(message.contains("block 4") && message.contains("gets 1 voxels"), "{message}");
}

#[test]
fn config_rejects_unknown_fields_and_defaults_to_the_paper() {
    let config: NetworkConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(config, NetworkConfig::default());
    assert_eq!(config.channels, [8, 16, 32, 64]);
    assert_eq!(config.pools, [2, 3, 2, 3]);
    assert_eq!(config.dropout, 0.8);
    let partial: NetworkConfig = serde_json::from_str(r#"{"dropout": 0.5}"#).unwrap();
    assert_eq!(partial.dropout, 0.5);
    assert_eq!(partial.dense, [128, 64]);
    let err = serde_json::from_str::<NetworkConfig>(r#"{"chanels": [1, 2, 3, 4]}"#).unwrap_err();
    assert!(err.to_string().contains("chanels"), "{err}");
    let bad = NetworkConfig { dropout: 1.0, ..NetworkConfig::default() };
    assert!(matches!(bad.validate(), Err(ModelError::InvalidConfig { field: "dropout", .. })));
}

// ---------------------------------------------------------------- pooling

/// Brute-force PyTorch MaxPool3d(kernel = stride, floor mode): values and, for an upstream
/// gradient `g`, the input gradient (to the first maximal element of each window in raster order).
fn brute_force_pool(x: &[f32], dims: [usize; 5], k: [usize; 3], g: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let [n, c, d, h, w] = dims;
    let (od, oh, ow) = (d / k[0], h / k[1], w / k[2]);
    let mut out = vec![0.0; n * c * od * oh * ow];
    let mut grad = vec![0.0; x.len()];
    let idx = |nc: usize, z: usize, y: usize, xx: usize| ((nc * d + z) * h + y) * w + xx;
    for nc in 0..n * c {
        for oz in 0..od {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best = f32::NEG_INFINITY;
                    let mut best_i = usize::MAX;
                    for dz in 0..k[0] {
                        for dy in 0..k[1] {
                            for dx in 0..k[2] {
                                let i = idx(nc, oz * k[0] + dz, oy * k[1] + dy, ox * k[2] + dx);
                                if best_i == usize::MAX || x[i] > best {
                                    best = x[i];
                                    best_i = i;
                                }
                            }
                        }
                    }
                    let o = ((nc * od + oz) * oh + oy) * ow + ox;
                    out[o] = best;
                    grad[best_i] += g[o];
                }
            }
        }
    }
    (out, grad)
}

fn check_pool(dims: [usize; 5], k: [usize; 3], x: Vec<f32>, rng: &mut Lcg) {
    let out_dims = [dims[0], dims[1], dims[2] / k[0], dims[3] / k[1], dims[4] / k[2]];
    let g = rng.vec(out_dims.iter().product(), 0.0, 1.0);
    let (want_out, want_grad) = brute_force_pool(&x, dims, k, &g);

    let input = tensor::<CpuTrain, 5>(x, dims).require_grad();
    let out = max_pool3d(input.clone(), k);
    assert_eq!(out.dims(), out_dims, "dims {dims:?} kernel {k:?}");
    let grads = out.clone().mul(tensor::<CpuTrain, 5>(g, out_dims)).sum().backward();
    let got_grad = values(input.grad(&grads).unwrap());
    assert_eq!(values(out), want_out, "values, dims {dims:?} kernel {k:?}");
    assert_eq!(got_grad, want_grad, "gradients, dims {dims:?} kernel {k:?}");
}

#[test]
fn max_pool3d_matches_brute_force_values_and_gradients() {
    let mut rng = Lcg(7);
    // Continuous random values (no ties); sizes that do and do not divide evenly (floor mode).
    for (dims, k) in [
        ([2, 3, 8, 6, 4], [2, 2, 2]),
        ([1, 2, 9, 10, 11], [3, 3, 3]),
        ([2, 1, 7, 9, 5], [2, 3, 2]),
        ([1, 2, 5, 7, 8], [1, 2, 3]),
        ([1, 1, 11, 4, 6], [3, 1, 2]),
        ([3, 2, 3, 3, 3], [3, 3, 3]),
    ] {
        let x = rng.vec(dims.iter().product(), 0.0, 1.0);
        check_pool(dims, k, x, &mut rng);
    }
}

#[test]
fn max_pool3d_ties_send_the_gradient_to_the_first_maximum_like_pytorch() {
    // Flex's 2D pooling keeps the first maximum of its window (strict `>`), so the two-stage 3D
    // pooling sends the gradient to the first maximal element in (D, H, W) raster order, as
    // PyTorch's CPU MaxPool3d does. Constant blocks and repeated plateaus make every window a tie.
    let mut rng = Lcg(11);
    let dims = [1, 2, 7, 8, 9];
    let constant = vec![1.5; dims.iter().product()];
    check_pool(dims, [2, 3, 2], constant, &mut rng);
    let plateaus: Vec<f32> = (0..dims.iter().product::<usize>()).map(|i| ((i / 5) % 3) as f32).collect();
    check_pool(dims, [3, 2, 3], plateaus, &mut rng);
}

// ---------------------------------------------------------------- BatchNorm

/// Straightforward BatchNorm3d in training mode (broadcasting, two-pass variance); returns the
/// output and the new running mean and (unbiased) variance.
fn reference_batch_norm_train<B: Backend>(
    x: Tensor<B, 5>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    running: (Tensor<B, 1>, Tensor<B, 1>),
) -> (Tensor<B, 5>, Tensor<B, 1>, Tensor<B, 1>) {
    let [n, c, d, h, w] = x.dims();
    let count = n * d * h * w;
    let per_channel = |t: Tensor<B, 5>| t.swap_dims(0, 1).reshape([c, count]).mean_dim(1).reshape([1, c, 1, 1, 1]);
    let mean = per_channel(x.clone());
    let centred = x - mean.clone();
    let var = per_channel(centred.clone().square());
    let y = centred / (var.clone() + 1e-5).sqrt() * gamma.reshape([1, c, 1, 1, 1]) + beta.reshape([1, c, 1, 1, 1]);
    let unbiased = var.reshape([c]).detach() * (count as f64 / (count - 1) as f64);
    let new_mean = running.0 * 0.9 + mean.reshape([c]).detach() * 0.1;
    let new_var = running.1 * 0.9 + unbiased * 0.1;
    (y, new_mean, new_var)
}

#[test]
fn batch_norm_matches_reference_values_running_stats_and_gradients() {
    let _guard = serial();
    let mut rng = Lcg(3);
    let dims = [3, 4, 5, 6, 7];
    let c = dims[1];
    let x = rng.vec(dims.iter().product(), 2.5, 1.7);
    let g = rng.vec(dims.iter().product(), 0.0, 1.0);
    let gamma = rng.vec(c, 1.0, 0.3);
    let beta = rng.vec(c, 0.0, 0.5);
    let rm = rng.vec(c, 0.2, 0.1);
    let rv: Vec<f32> = rng.vec(c, 1.0, 0.1).iter().map(|v| v.abs()).collect();

    // Ours.
    let mut bn = BatchNorm3d::<CpuTrain>::new(c, &Default::default());
    bn.weight = burn::module::Param::from_tensor(tensor(gamma.clone(), [c]));
    bn.bias = burn::module::Param::from_tensor(tensor(beta.clone(), [c]));
    bn.running_mean = burn::module::RunningState::new(tensor(rm.clone(), [c]));
    bn.running_var = burn::module::RunningState::new(tensor(rv.clone(), [c]));
    let xa = tensor::<CpuTrain, 5>(x.clone(), dims).require_grad();
    let ya = bn.forward_train(xa.clone());
    let grads_a = (ya.clone() * tensor::<CpuTrain, 5>(g.clone(), dims)).sum().backward();
    let (rm_a, rv_a) = bn.running_stats();

    // Reference.
    let xb = tensor::<CpuTrain, 5>(x.clone(), dims).require_grad();
    let gamma_b = tensor::<CpuTrain, 1>(gamma.clone(), [c]).require_grad();
    let beta_b = tensor::<CpuTrain, 1>(beta.clone(), [c]).require_grad();
    let (yb, rm_b, rv_b) = reference_batch_norm_train(
        xb.clone(),
        gamma_b.clone(),
        beta_b.clone(),
        (tensor(rm.clone(), [c]), tensor(rv.clone(), [c])),
    );
    let grads_b = (yb.clone() * tensor::<CpuTrain, 5>(g, dims)).sum().backward();

    let close = |what: &str, a: Vec<f32>, b: Vec<f32>, tol: f32| {
        let diff = max_abs_diff(&a, &b);
        assert!(diff <= tol * max_abs(&b).max(1.0), "{what}: max |Δ| {diff} (scale {})", max_abs(&b));
    };
    close("forward", values(ya), values(yb), 1e-4);
    close("running mean", values(rm_a), values(rm_b), 1e-5);
    close("running var", values(rv_a), values(rv_b), 1e-4);
    close("grad x", values(xa.grad(&grads_a).unwrap()), values(xb.grad(&grads_b).unwrap()), 1e-3);
    close("grad gamma", values(bn.weight.val().grad(&grads_a).unwrap()), values(gamma_b.grad(&grads_b).unwrap()), 1e-3);
    close("grad beta", values(bn.bias.val().grad(&grads_a).unwrap()), values(beta_b.grad(&grads_b).unwrap()), 1e-4);

    // Inference mode uses the (updated) running statistics and updates nothing.
    let (rm_now, rv_now) = bn.running_stats();
    let y_eval = values(bn.forward_eval(tensor::<CpuTrain, 5>(x.clone(), dims)));
    let scale: Vec<f32> = values(rv_now.clone()).iter().zip(&gamma).map(|(v, g)| g / (v + 1e-5).sqrt()).collect();
    let means = values(rm_now.clone());
    let spatial = dims[2] * dims[3] * dims[4];
    let want: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ch = (i / spatial) % c;
            (v - means[ch]) * scale[ch] + beta[ch]
        })
        .collect();
    close("eval forward", y_eval, want, 1e-5);
    assert_eq!(values(bn.running_stats().0), values(rm_now));
}

// ---------------------------------------------------------------- modes

#[test]
fn forward_eval_is_independent_of_the_batch_even_on_autodiff() {
    let _guard = serial();
    let device = Default::default();
    let config = tiny_config();
    <CpuTrain as Backend>::seed(&device, 17); // a live network (see the input-gradient test)
    let model = config.init::<CpuTrain>(TINY_GRID, &device).unwrap();
    let mut rng = Lcg(5);
    // Move the running statistics away from (0, 1) first.
    for _ in 0..2 {
        let batch = tensor::<CpuTrain, 5>(random_scans(&mut rng, 2, TINY_GRID), [2, 1, 46, 48, 47]);
        let _ = model.forward_train(batch);
    }
    let a = random_scans(&mut rng, 1, TINY_GRID);
    let b: Vec<f32> = random_scans(&mut rng, 1, TINY_GRID).iter().map(|v| 3.0 * v + 1.0).collect();
    let alone = values(model.forward_eval(tensor::<CpuTrain, 5>(a.clone(), [1, 1, 46, 48, 47])));
    let both = values(model.forward_eval(tensor::<CpuTrain, 5>([a.clone(), b].concat(), [2, 1, 46, 48, 47])));
    assert!(max_abs_diff(&alone, &both[..2]) < 1e-5, "{alone:?} vs {both:?}");
    // And the same on the inner backend.
    let inner = values(model.valid().forward_eval(tensor::<Cpu, 5>(a, [1, 1, 46, 48, 47])));
    assert!(max_abs_diff(&alone, &inner) < 1e-6);
}

#[test]
fn forward_train_uses_dropout_and_batch_statistics() {
    let _guard = serial();
    let device = Default::default();
    <CpuTrain as Backend>::seed(&device, 17); // a live network (see the input-gradient test)
    let model = tiny_config().init::<CpuTrain>(TINY_GRID, &device).unwrap();
    let mut rng = Lcg(9);
    let x = random_scans(&mut rng, 2, TINY_GRID);
    let (rm0, _) = model.blocks[0].bn.running_stats();
    let eval_1 = values(model.forward_eval(tensor::<CpuTrain, 5>(x.clone(), [2, 1, 46, 48, 47])));
    let eval_2 = values(model.forward_eval(tensor::<CpuTrain, 5>(x.clone(), [2, 1, 46, 48, 47])));
    assert_eq!(eval_1, eval_2, "inference is deterministic");
    let (rm1, _) = model.blocks[0].bn.running_stats();
    assert_eq!(values(rm0.clone()), values(rm1), "inference updates nothing");

    let train_1 = values(model.forward_train(tensor::<CpuTrain, 5>(x.clone(), [2, 1, 46, 48, 47])));
    let train_2 = values(model.forward_train(tensor::<CpuTrain, 5>(x, [2, 1, 46, 48, 47])));
    assert!(max_abs_diff(&train_1, &eval_1) > 1e-6, "training differs from inference");
    assert!(max_abs_diff(&train_1, &train_2) > 1e-6, "dropout masks differ per call");
    let (rm2, _) = model.blocks[0].bn.running_stats();
    assert!(max_abs_diff(&values(rm0), &values(rm2)) > 1e-7, "running mean moved");
}

#[test]
fn one_batch_overfits_with_adam() {
    let _guard = serial();
    let device = Default::default();
    let config = NetworkConfig { dropout: 0.0, ..tiny_config() };
    <CpuTrain as Backend>::seed(&device, 1);
    let mut model = config.init::<CpuTrain>(TINY_GRID, &device).unwrap();
    let mut optim = AdamConfig::new().init::<CpuTrain, ClassificationModel3D<CpuTrain>>();
    let mut rng = Lcg(13);
    let n = 4;
    let labels = [0i64, 1, 0, 1];
    // Class 1 scans are brighter, but the net must still fit them from scratch.
    let x: Vec<f32> = labels
        .iter()
        .flat_map(|&l| random_scans(&mut rng, 1, TINY_GRID).into_iter().map(move |v| v + 0.3 * l as f32))
        .collect();
    let x = tensor::<CpuTrain, 5>(x, [n, 1, 46, 48, 47]);
    let y = Tensor::<CpuTrain, 1, Int>::from_data(TensorData::new(labels.to_vec(), [n]), &device);
    let mut losses = Vec::new();
    for _ in 0..30 {
        let logits = model.forward_train(x.clone());
        let loss = log_softmax(logits, 1).gather(1, y.clone().reshape([n, 1])).mean().neg();
        losses.push(values(loss.clone())[0]);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    let first = losses[0];
    let last = *losses.last().unwrap();
    assert!(last < 0.5 * first, "loss {first} → {last}: {losses:?}");
}

#[test]
fn same_seed_gives_identical_weights() {
    let _guard = serial();
    let device = Default::default();
    let weights = |seed: u64| {
        <Cpu as Backend>::seed(&device, seed);
        let model = tiny_config().init::<Cpu>(TINY_GRID, &device).unwrap();
        let mut all = Vec::new();
        for block in &model.blocks {
            all.extend(values(block.conv.weight.val()));
            all.extend(values(block.conv.bias.as_ref().unwrap().val()));
        }
        for dense in [&model.dense_1, &model.dense_2, &model.dense_3] {
            all.extend(values(dense.weight.val()));
            all.extend(values(dense.bias.as_ref().unwrap().val()));
        }
        all
    };
    let a = weights(42);
    assert_eq!(a, weights(42));
    assert_ne!(a, weights(43));
}

// ---------------------------------------------------------------- input gradients

#[test]
fn input_gradient_is_per_scan_and_matches_finite_differences() {
    let _guard = serial();
    let device = Default::default();
    let config = NetworkConfig { dropout: 0.8, ..tiny_config() };
    // Seeded: an unseeded tiny network is sometimes dead (constant output, zero gradient), which
    // made this test flaky.
    <CpuTrain as Backend>::seed(&device, 17);
    let model = config.init::<CpuTrain>(TINY_GRID, &device).unwrap();
    let mut rng = Lcg(17);
    let _ = model.forward_train(tensor::<CpuTrain, 5>(random_scans(&mut rng, 2, TINY_GRID), [2, 1, 46, 48, 47]));
    let a = random_scans(&mut rng, 1, TINY_GRID);
    let b = random_scans(&mut rng, 1, TINY_GRID);
    let shape1 = [1, 1, 46, 48, 47];
    let alone = values(input_gradient(&model, tensor::<Cpu, 5>(a.clone(), shape1), 1, true).unwrap());
    let both = values(
        input_gradient_for(&model, tensor::<Cpu, 5>([a.clone(), b].concat(), [2, 1, 46, 48, 47]), &[1, 0], true)
            .unwrap(),
    );
    assert!(max_abs(&alone) > 0.0);
    assert!(max_abs_diff(&alone, &both[..alone.len()]) <= 1e-6 * max_abs(&alone).max(1e-3));

    // ∂logit_1/∂x at the voxels with the largest gradients, against central differences in f64
    // spirit (f32 forward, so a loose tolerance).
    let grad = values(input_gradient(&model, tensor::<Cpu, 5>(a.clone(), shape1), 1, false).unwrap());
    let inference = model.valid();
    let logit = |x: &[f32]| values(inference.forward_eval(tensor::<Cpu, 5>(x.to_vec(), shape1)))[1];
    let mut order: Vec<usize> = (0..grad.len()).collect();
    order.sort_by(|&i, &j| grad[j].abs().total_cmp(&grad[i].abs()));
    for &i in &order[..3] {
        let h = 1e-2;
        let mut plus = a.clone();
        plus[i] += h;
        let mut minus = a.clone();
        minus[i] -= h;
        let numeric = (logit(&plus) - logit(&minus)) / (2.0 * h);
        assert!(
            (numeric - grad[i]).abs() <= 0.05 * grad[i].abs() + 1e-4,
            "voxel {i}: analytic {} numeric {numeric}",
            grad[i]
        );
    }

    let err = input_gradient(&model, tensor::<Cpu, 5>(a, shape1), 2, true).unwrap_err();
    assert!(matches!(err, ModelError::TargetClass { class: 2, classes: 2 }));
}

#[test]
fn wrong_input_shape_is_reported() {
    let _guard = serial();
    let model = tiny_config().init::<Cpu>(TINY_GRID, &Default::default()).unwrap();
    let err = model.check_input([1, 1, 46, 48, 48]).unwrap_err().to_string();
    assert!(err.contains("46×48×47"), "{err}");
    assert!(model.check_input([3, 1, 46, 48, 47]).is_ok());
}

// ---------------------------------------------------------------- devices

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_requested_without_cuda_support_is_an_error() {
    let err = DeviceKind::Cuda(0).check().unwrap_err();
    assert!(matches!(err, ModelError::CudaNotCompiled));
    assert!(err.to_string().contains("--features cuda"), "{err}");
    assert!(DeviceKind::Cpu.check().is_ok());
}

#[test]
fn devices_parse_with_a_gpu_number_and_round_trip() {
    assert_eq!("cuda".parse::<DeviceKind>(), Ok(DeviceKind::Cuda(0)));
    assert_eq!("CUDA:3".parse::<DeviceKind>(), Ok(DeviceKind::Cuda(3)));
    assert_eq!("gpu:1".parse::<DeviceKind>(), Ok(DeviceKind::Cuda(1)));
    for d in [DeviceKind::Cpu, DeviceKind::Cuda(0), DeviceKind::Cuda(2)] {
        assert_eq!(d.to_string().parse::<DeviceKind>(), Ok(d));
    }
    // GPU 0 keeps the plain name, so configurations written before `cuda:N` read the same.
    assert_eq!(DeviceKind::Cuda(0).to_string(), "cuda");
    assert_eq!(DeviceKind::Cuda(1).to_string(), "cuda:1");
    let err = "cuda:x".parse::<DeviceKind>().unwrap_err();
    assert!(err.contains("`x` is not a GPU number"), "{err}");
    let err = "tpu".parse::<DeviceKind>().unwrap_err();
    assert!(err.contains("`cuda:N`"), "{err}");
    // Serialised as the same string (the `[train] device` key of a configuration).
    assert_eq!(serde_json::to_string(&DeviceKind::Cuda(1)).unwrap(), "\"cuda:1\"");
    assert_eq!(serde_json::from_str::<DeviceKind>("\"cuda:2\"").unwrap(), DeviceKind::Cuda(2));
    assert_eq!(serde_json::from_str::<DeviceKind>("\"cpu\"").unwrap(), DeviceKind::Cpu);
    let err = serde_json::from_str::<DeviceKind>("\"tpu\"").unwrap_err().to_string();
    assert!(err.contains("unknown device `tpu`"), "{err}");
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_check_never_panics() {
    // Either works or says what is missing; it must not panic on a machine without a driver.
    if let Err(err) = DeviceKind::Cuda(0).check() {
        assert!(matches!(err, ModelError::CudaUnavailable(_)), "{err}");
    }
}

#[test]
fn input_gradient_of_a_freshly_built_model_explains_that_model() {
    // Burn initialises fresh parameters lazily and a clone of an uninitialised parameter draws
    // new values; input_gradient clones the model, so without initialising in place first two
    // calls would explain two different random networks.
    let _g = serial();
    let device = Default::default();
    <CpuTrain as Backend>::seed(&device, 17);
    let model = tiny_config().init::<CpuTrain>(TINY_GRID, &device).unwrap();
    let x = random_scans(&mut Lcg(5), 1, TINY_GRID);
    let shape = [1, 1, TINY_GRID[0], TINY_GRID[1], TINY_GRID[2]];
    let g1 = values(input_gradient(&model, tensor::<Cpu, 5>(x.clone(), shape), 1, false).unwrap());
    let g2 = values(input_gradient(&model, tensor::<Cpu, 5>(x, shape), 1, false).unwrap());
    assert!(g1.iter().any(|v| *v != 0.0), "a dead network: the test could not fail; pick another seed");
    assert_eq!(g1, g2, "two calls on one fresh model gave different gradients");
}

/// Every parameter tensor of a model, flattened, in module order.
fn parameters(model: &ClassificationModel3D<Cpu>) -> Vec<Vec<f32>> {
    let mut out: Vec<Vec<f32>> = Vec::new();
    for b in &model.blocks {
        out.push(values(b.conv.weight.val()));
        out.push(values(b.bn.weight.val()));
    }
    for d in [&model.dense_1, &model.dense_2, &model.dense_3] {
        out.push(values(d.weight.val()));
    }
    out
}

#[test]
fn cascading_randomisation_replaces_layers_from_the_output_down() {
    let _guard = serial();
    let device = Default::default();
    let grid = TINY_GRID;
    <Cpu as Backend>::seed(&device, 7);
    let trained = tiny_config().init::<Cpu>(grid, &device).unwrap();
    <Cpu as Backend>::seed(&device, 8);
    let fresh = tiny_config().init::<Cpu>(grid, &device).unwrap();
    let names = trained.cascade_layers();
    assert_eq!(names, ["dense_3", "dense_2", "dense_1", "block4", "block3", "block2", "block1"]);
    let (t, f) = (parameters(&trained), parameters(&fresh));
    // parameters() order: block1 conv, block1 bn, …, block4 conv, block4 bn, dense_1, dense_2, dense_3
    let index_of = |layer: &str| -> Vec<usize> {
        match layer {
            "dense_1" => vec![8],
            "dense_2" => vec![9],
            "dense_3" => vec![10],
            b => {
                let i: usize = b.trim_start_matches("block").parse::<usize>().unwrap() - 1;
                vec![2 * i, 2 * i + 1]
            }
        }
    };
    for k in 0..=names.len() {
        let step = trained.with_top_layers_from(&fresh, k).unwrap();
        let p = parameters(&step);
        for (j, layer) in names.iter().enumerate() {
            let expect = if j < k { &f } else { &t };
            for i in index_of(layer) {
                assert_eq!(p[i], expect[i], "step {k}, layer {layer}");
            }
        }
    }
    // Weights of the two draws differ (otherwise the test proves nothing); a freshly drawn
    // BatchNorm has γ = 1 in both, so only the convolutions and dense layers are compared.
    for i in [0, 2, 4, 6, 8, 9, 10] {
        assert_ne!(t[i], f[i]);
    }
    let err = trained.with_top_layers_from(&fresh, 8).unwrap_err().to_string();
    assert!(err.contains('8') && err.contains('7'), "{err}");
    let other = NetworkConfig { dense: [6, 4], ..tiny_config() }.init::<Cpu>(grid, &device).unwrap();
    let err = trained.with_top_layers_from(&other, 1).unwrap_err().to_string();
    assert!(err.contains("architecture"), "{err}");
}

#[test]
fn layer_differences_name_each_changed_field_in_words() {
    let paper = NetworkConfig::default();
    assert!(NetworkConfig { dropout: 0.2, ..paper.clone() }.layer_differences(&paper, "the paper").is_empty());
    let small = NetworkConfig { channels: [4, 4, 8, 8], pools: [2, 2, 1, 1], ..paper.clone() };
    assert_eq!(
        small.layer_differences(&paper, "the paper"),
        ["channels 4, 4, 8, 8 (the paper: 8, 16, 32, 64)", "pooling windows 2, 2, 1, 1 (the paper: 2, 3, 2, 3)"]
    );
}
