//! The whole network with the fast CPU paths against the straightforward ones (`model::fast`
//! switched off): inference logits, input gradients, every parameter gradient of a training
//! step, and the loss curve of a short fixed-seed training run. Its own test binary (process),
//! because it flips the process-wide switch; the tests hold `serial()` for the same reason.

use std::sync::{Mutex, MutexGuard};

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use model::{ClassificationModel3D, Cpu, CpuTrain, NetworkConfig, fast, input_gradient};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Small enough for a test, with every kind of block: pools 2 and 3 and 1 (no pooling).
fn config() -> NetworkConfig {
    NetworkConfig { channels: [3, 5, 8, 4], pools: [2, 3, 1, 1], kernel: 3, dense: [16, 8], dropout: 0.5, classes: 2 }
}

const GRID: [usize; 3] = [37, 41, 39];
const SEED: u64 = 2018;

fn scans(n: usize) -> Tensor<Cpu, 5> {
    let mut state = 99u64;
    let v: Vec<f32> = (0..n * GRID.iter().product::<usize>())
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32) / ((1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect();
    Tensor::from_data(TensorData::new(v, [n, 1, GRID[0], GRID[1], GRID[2]]), &Default::default())
}

fn model() -> ClassificationModel3D<CpuTrain> {
    let device = Default::default();
    CpuTrain::seed(&device, SEED);
    config().init(GRID, &device).unwrap()
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// Largest |a − b| relative to the largest |b|, with a floor of 0.01: the gradient of a
/// convolution bias in front of training-mode BatchNorm is exactly 0 in theory (the batch mean
/// is subtracted), so both paths return rounding noise of order 1e-8 there.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-2f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
}

/// Logits of `forward_eval` on Flex, input gradient, and every parameter gradient of one
/// training forward/backward (dropout masks from the same seed).
fn everything(fast_path: bool) -> Vec<(String, Vec<f32>)> {
    fast::set_fast_cpu(fast_path);
    let m = model();
    let x = scans(3);
    // Move the running statistics off 0 / 1 so that inference uses non-trivial ones.
    let _ = m.forward_train(Tensor::from_inner(x.clone()));
    let mut out = vec![("eval logits".to_string(), values(m.valid().forward_eval(x.clone())))];
    out.push(("input gradient".into(), values(input_gradient(&m, x.clone(), 1, true).unwrap())));
    CpuTrain::seed(&Default::default(), SEED + 1);
    let y = Tensor::<CpuTrain, 1, Int>::from_data(TensorData::new(vec![0i64, 1, 1], [3]), &Default::default());
    let loss =
        CrossEntropyLossConfig::new().init(&Default::default()).forward(m.forward_train(Tensor::from_inner(x)), y);
    let grads = loss.backward();
    for (i, b) in m.blocks.iter().enumerate() {
        out.push((format!("conv {i} weight gradient"), values(b.conv.weight.val().grad(&grads).unwrap())));
        out.push((
            format!("conv {i} bias gradient"),
            values(b.conv.bias.as_ref().unwrap().val().grad(&grads).unwrap()),
        ));
        out.push((format!("bn {i} γ gradient"), values(b.bn.weight.val().grad(&grads).unwrap())));
        out.push((format!("bn {i} β gradient"), values(b.bn.bias.val().grad(&grads).unwrap())));
        let (mean, var) = b.bn.running_stats();
        out.push((format!("bn {i} running mean"), values(mean)));
        out.push((format!("bn {i} running variance"), values(var)));
    }
    out.push(("dense_1 weight gradient".into(), values(m.dense_1.weight.val().grad(&grads).unwrap())));
    fast::set_fast_cpu(true);
    out
}

#[test]
fn fast_and_straightforward_networks_agree_on_logits_input_gradients_and_all_parameter_gradients() {
    let _guard = serial();
    let (fast, plain) = (everything(true), everything(false));
    for ((what, f), (_, p)) in fast.iter().zip(&plain) {
        let e = rel_err(f, p);
        assert!(e < 1e-4, "{what}: relative error {e:e}\nfast {f:?}\nplain {p:?}");
    }
}

/// Losses of `steps` Adam steps (lr 1e-3) on a fixed batch, dropout active, from a fixed seed.
fn loss_curve(fast_path: bool, steps: usize) -> Vec<f32> {
    fast::set_fast_cpu(fast_path);
    let device = Default::default();
    let mut m = model();
    let x = Tensor::<CpuTrain, 5>::from_inner(scans(4));
    let y = Tensor::<CpuTrain, 1, Int>::from_data(TensorData::new(vec![0i64, 1, 0, 1], [4]), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init::<CpuTrain, ClassificationModel3D<CpuTrain>>();
    CpuTrain::seed(&device, SEED + 2);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let loss = loss_fn.forward(m.forward_train(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        losses.push(loss.into_scalar());
        m = optim.step(1e-3, m, grads);
    }
    fast::set_fast_cpu(true);
    losses
}

#[test]
fn fixed_seed_training_gives_the_same_loss_curve_with_and_without_the_fast_path() {
    let _guard = serial();
    let (fast, plain) = (loss_curve(true, 12), loss_curve(false, 12));
    // The curve must move (a constant curve would pass trivially).
    assert!((fast[0] - fast[11]).abs() > 1e-3, "loss did not change: {fast:?}");
    for (step, (f, p)) in fast.iter().zip(&plain).enumerate() {
        assert!(
            (f - p).abs() <= 1e-4 * p.abs().max(1.0),
            "step {step}: fast {f} vs straightforward {p}\n{fast:?}\n{plain:?}"
        );
    }
}
