//! The CUDA training path's operations on a CubeCL backend, without a GPU (issue 11).
//!
//! Burn's CUDA and wgpu backends share burn-cubecl's kernels (convolutions and their autotuned
//! backward steps, reductions, matrix multiplies, pooling); only the compiler at the end differs.
//! On a machine without a GPU the wgpu backend runs on Mesa's software Vulkan (lavapipe), so
//! these tests put the training step that CUDA takes (the `FastBackend` impl both share: Burn's
//! operations with `model::fast::portable`'s convolution backward and pooling) through CubeCL
//! and compare it with the CPU backend, on the paper network at its smallest grid: every probe
//! operation of that step, three fixed-seed Adam steps, and inference and input gradients with
//! the same weights (what the relevance methods run on CUDA).
//!
//! The probe's Burn-only variants (`conv{b}.weight_grad.burn`, `pool{b}.burn`,
//! `train_step.burn_ops`) are left out: they are what the portable operations replace, and on
//! lavapipe Burn's autotuned weight gradient gives wrong values for blocks 1 and 2 (first
//! element 2.14 where the CPU gives 146.6). Sums over rows of 65 536 values or more are also
//! wrong there, hence `portable::sum_per_channel`.
//!
//! Build with `--features wgpu`; they need a Vulkan driver (`apt-get install
//! mesa-vulkan-drivers`, which `.ci/run` does).
#![cfg(feature = "wgpu")]

use burn::module::{AutodiffModule, Module};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use model::probe::{ProbeSpec, difference, op_names, run_op, training_losses};
use model::{ClassificationModel3D, Cpu, CpuTrain, NetworkConfig, Wgpu, WgpuTrain, input_gradient};

/// The largest relative difference that passes (`model::probe::difference`): float summation
/// order differs between the backends, over up to 900 000 values per channel here.
const TOLERANCE: f64 = 1e-3;

/// The paper network at the smallest grid it accepts, and a batch of 2 (as the probe's tests).
fn tiny() -> ProbeSpec {
    let config = NetworkConfig::default();
    let side = config.min_grid_size();
    ProbeSpec { config, grid: [side, side + 1, side], batch: 2, seed: 7 }
}

/// Whether `op` is one of Burn's own operations that the portable training path replaces.
fn burn_variant(op: &str) -> bool {
    op.ends_with(".burn") || op == "train_step.burn_ops"
}

#[test]
fn every_operation_of_the_portable_training_step_on_wgpu_matches_the_cpu() {
    let spec = tiny();
    let (cpu_device, gpu) = (Default::default(), Default::default());
    let ops: Vec<String> = op_names(&spec.config).into_iter().filter(|op| !burn_variant(op)).collect();
    assert_eq!(ops.len(), 4 * 6 + 5, "{ops:?}");
    let mut failures = Vec::new();
    let mut compared = 0;
    for op in &ops {
        let cpu = run_op::<CpuTrain>(&spec, op, 0, &cpu_device).unwrap_or_else(|e| panic!("{op} on the CPU: {e}"));
        let dev = match run_op::<WgpuTrain>(&spec, op, 0, &gpu) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{op}: {e}"));
                continue;
            }
        };
        if !(dev.first.is_finite() && dev.sum.is_finite()) {
            failures.push(format!("{op}: not finite on wgpu: {dev:?}"));
            continue;
        }
        match difference(&cpu, &dev) {
            Some(d) if d > TOLERANCE => failures.push(format!("{op}: relative difference {d:.2e} ({cpu:?} / {dev:?})")),
            Some(_) => compared += 1,
            None => assert!(cpu.random && dev.random, "{op}: not comparable: {cpu:?} / {dev:?}"),
        }
    }
    assert!(failures.is_empty(), "{} operations differ or failed on wgpu:\n{}", failures.len(), failures.join("\n"));
    // Everything but dropout and the whole step (which draws dropout masks) was compared.
    assert_eq!(compared, ops.len() - 2);
}

#[test]
fn three_adam_steps_on_wgpu_match_the_cpu() {
    let spec = tiny();
    let cpu = training_losses::<CpuTrain>(&spec, 3, &Default::default()).expect("training on the CPU");
    let gpu = training_losses::<WgpuTrain>(&spec, 3, &Default::default()).expect("training on wgpu");
    let max_d = cpu.iter().zip(&gpu).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(max_d < TOLERANCE, "losses differ by {max_d}: cpu {cpu:?}, wgpu {gpu:?}");
    assert!(gpu[2] < gpu[0], "the loss does not fall on wgpu: {gpu:?}");
}

fn values<const D: usize, B: Backend>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().expect("f32 values")
}

#[test]
fn inference_and_input_gradients_on_wgpu_match_the_cpu() {
    let config = NetworkConfig::default();
    let side = config.min_grid_size();
    let shape = [side, side + 1, side];
    let (cpu, gpu) = (Default::default(), Default::default());
    Cpu::seed(&cpu, 11);
    let net_cpu: ClassificationModel3D<CpuTrain> = config.init(shape, &cpu).expect("network");
    let x = Tensor::<Cpu, 5>::random([2, 1, shape[0], shape[1], shape[2]], Distribution::Normal(0.0, 1.0), &cpu);
    // One training forward pass moves BatchNorm's running statistics off their initial 0 / 1.
    let _ = net_cpu.forward_train(Tensor::from_inner(x.clone()));
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = recorder.record(net_cpu.clone().into_record(), ()).expect("record");
    let net_gpu: ClassificationModel3D<WgpuTrain> =
        config.init(shape, &gpu).expect("network").load_record(recorder.load(bytes, &gpu).expect("load"));
    let x_gpu = Tensor::<Wgpu, 5>::from_data(x.to_data(), &gpu);

    let p_cpu = values(softmax(net_cpu.valid().forward_eval(x.clone()), 1));
    let p_gpu = values(softmax(net_gpu.valid().forward_eval(x_gpu.clone()), 1));
    let max_dp = p_cpu.iter().zip(&p_gpu).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(max_dp < 1e-4, "P(class) differ by {max_dp}: cpu {p_cpu:?}, wgpu {p_gpu:?}");

    let g_cpu = values(input_gradient(&net_cpu, x, 1, true).expect("CPU input gradient"));
    let g_gpu = values(input_gradient(&net_gpu, x_gpu, 1, true).expect("wgpu input gradient"));
    assert_eq!(g_cpu.len(), g_gpu.len());
    let scale = g_cpu.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let max_dg = g_cpu.iter().zip(&g_gpu).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(scale > 0.0, "the CPU input gradient is all zeros");
    assert!(max_dg <= 1e-3 * scale, "input gradients differ by {max_dg} (largest value {scale})");
}
