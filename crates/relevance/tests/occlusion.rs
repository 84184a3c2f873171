//! Sliding-cube and area occlusion: analytic answers on a linear model (2D and 3D), batching,
//! exact skipping, incremental = naive on random tiny paper networks, and the error messages.

mod common;

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use model::{ClassificationModel3D, Cpu, FastBackend, NetworkConfig};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use relevance::occlusion::{
    AreaOcclusionConfig, Occluder, OcclusionConfig, OcclusionGrid, OcclusionMode, Spread, area_occlusion, occlusion,
};
use relevance::{Explainable, Output, RelevanceError, ReluPoint, Result, Target, unknown_layer};

// ---------------------------------------------------------------------------------------------
// A linear model: logit 0 is 0, logit 1 is Σ w·x, so a cube's logit drop is Σ_cube w·(x − value).
// ---------------------------------------------------------------------------------------------

/// Logits `[0, Σ w·x]` of an input `[N, shape…]`.
#[derive(Module, Debug)]
struct LinearToy<B: Backend> {
    /// `[F, 2]`: column 0 zero, column 1 the weights.
    weight: Param<Tensor<B, 2>>,
    #[module(skip)]
    shape: Vec<usize>,
}

impl<B: Backend> LinearToy<B> {
    fn new(w: &[f32], shape: &[usize], device: &B::Device) -> Self {
        let values: Vec<f32> = w.iter().flat_map(|&w| [0.0, w]).collect();
        let weight = Tensor::from_data(TensorData::new(values, [w.len(), 2]), device);
        LinearToy { weight: Param::from_tensor(weight), shape: shape.to_vec() }
    }
}

impl<B: Backend, const D: usize> Explainable<B, D> for LinearToy<B> {
    fn num_classes(&self) -> usize {
        2
    }

    fn check_input(&self, dims: [usize; D]) -> Result<()> {
        if dims[1..] != self.shape[..] {
            return Err(RelevanceError::Shape { found: dims.to_vec(), expected: format!("[N, {:?}]", self.shape) });
        }
        Ok(())
    }

    fn logits(&self, x: Tensor<B, D>, _relu: &ReluPoint<B>) -> Tensor<B, 2> {
        x.flatten::<2>(1, D - 1).matmul(self.weight.val())
    }

    fn feature_layers(&self) -> Vec<String> {
        vec!["input".into()]
    }

    fn features(&self, x: Tensor<B, D>, layer: &str, _relu: &ReluPoint<B>) -> Result<Tensor<B, D>> {
        match layer {
            "input" => Ok(x),
            _ => Err(unknown_layer(layer, vec!["input".into()])),
        }
    }

    fn logits_from_features(&self, features: Tensor<B, D>, layer: &str, relu: &ReluPoint<B>) -> Result<Tensor<B, 2>> {
        match layer {
            "input" => Ok(self.logits(features, relu)),
            _ => Err(unknown_layer(layer, vec!["input".into()])),
        }
    }
}

fn normal_values(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0) + rng.random_range(-1.0f32..1.0)).collect()
}

fn values<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    x.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

fn tensor<B: Backend, const D: usize>(v: Vec<f32>, shape: &[usize]) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v, shape.to_vec()), &Default::default())
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The test's own cube geometry: per axis, the centres and half-open voxel ranges.
fn cubes_of_axis(s: usize, size: usize, stride: usize) -> Vec<(usize, usize)> {
    (0..s).step_by(stride).map(|c| (c.saturating_sub(size / 2), (c + size / 2).min(s))).collect()
}

/// scipy.ndimage.zoom(order=0) index map, written out independently of the library.
fn scipy_nearest(n_in: usize, n_out: usize) -> Vec<usize> {
    (0..n_out)
        .map(|o| if n_out == 1 { 0 } else { ((o * (n_in - 1)) as f64 / (n_out - 1) as f64 + 0.5).floor() as usize })
        .collect()
}

/// Expected cube drops, Nearest map and Mean map of the linear model on `[C, spatial…]`
/// (spatial of 2 or 3 axes), by brute force.
struct Expected {
    drops: Vec<f32>,
    nearest: Vec<f32>,
    mean: Vec<f32>,
}

fn expected_linear(
    w: &[f32],
    x: &[f32],
    channels: usize,
    spatial: &[usize],
    size: usize,
    stride: usize,
    value: f32,
) -> Expected {
    let mut dims = vec![1; 3 - spatial.len()];
    dims.extend_from_slice(spatial);
    let axes: Vec<Vec<(usize, usize)>> = dims.iter().map(|&s| cubes_of_axis(s, size, stride)).collect();
    let voxels: usize = dims.iter().product();
    let at = |i: usize, j: usize, k: usize| (i * dims[1] + j) * dims[2] + k;
    let mut drops = Vec::new();
    let mut sum = vec![0.0f64; voxels];
    let mut count = vec![0usize; voxels];
    for &(a0, b0) in &axes[0] {
        for &(a1, b1) in &axes[1] {
            for &(a2, b2) in &axes[2] {
                let mut d = 0.0f64;
                for c in 0..channels {
                    for i in a0..b0 {
                        for j in a1..b1 {
                            for k in a2..b2 {
                                let v = c * voxels + at(i, j, k);
                                d += f64::from(w[v]) * f64::from(x[v] - value);
                            }
                        }
                    }
                }
                let drop = d.max(0.0);
                drops.push(drop as f32);
                for i in a0..b0 {
                    for j in a1..b1 {
                        for k in a2..b2 {
                            sum[at(i, j, k)] += drop;
                            count[at(i, j, k)] += 1;
                        }
                    }
                }
            }
        }
    }
    let n: Vec<usize> = axes.iter().map(Vec::len).collect();
    let maps: Vec<Vec<usize>> = (0..3).map(|a| scipy_nearest(n[a], dims[a])).collect();
    let mut nearest = Vec::with_capacity(voxels);
    for i in 0..dims[0] {
        for j in 0..dims[1] {
            for k in 0..dims[2] {
                nearest.push(drops[(maps[0][i] * n[1] + maps[1][j]) * n[2] + maps[2][k]]);
            }
        }
    }
    let mean = sum.iter().zip(&count).map(|(&s, &c)| if c == 0 { 0.0 } else { (s / c as f64) as f32 }).collect();
    Expected { drops, nearest, mean }
}

fn linear_config(size: usize, stride: usize, value: f32, spread: Spread) -> OcclusionConfig {
    OcclusionConfig {
        size,
        stride,
        value,
        spread,
        target: Target::Class(1),
        output: Output::Logit,
        ..OcclusionConfig::default()
    }
}

fn check_linear_case(shape: &[usize], size: usize, stride: usize, value: f32, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let w = normal_values(n, &mut rng);
    let x = normal_values(n, &mut rng);
    let expected = expected_linear(&w, &x, shape[0], &shape[1..], size, stride, value);
    let mut full = vec![1];
    full.extend_from_slice(shape);
    let scale = expected.drops.iter().fold(1.0f32, |m, &d| m.max(d));
    for (spread, want) in [(Spread::Nearest, &expected.nearest), (Spread::Mean, &expected.mean)] {
        let config = linear_config(size, stride, value, spread);
        let (map_dims, drops, map, stats) = if shape.len() == 4 {
            let model = LinearToy::<Cpu>::new(&w, shape, &Default::default());
            let out = occlusion(&model, tensor::<Cpu, 5>(x.clone(), &full), &config, None).unwrap();
            (out.map.dims().to_vec(), out.drops, values(out.map), out.stats)
        } else {
            let model = LinearToy::<Cpu>::new(&w, shape, &Default::default());
            let out = occlusion(&model, tensor::<Cpu, 4>(x.clone(), &full), &config, None).unwrap();
            (out.map.dims().to_vec(), out.drops, values(out.map), out.stats)
        };
        let mut want_dims = vec![1, 1];
        want_dims.extend_from_slice(&shape[1..]);
        assert_eq!(map_dims, want_dims, "map shape");
        assert!(
            max_abs_diff(&drops, &expected.drops) <= 1e-4 * scale,
            "cube drops {shape:?} size {size} stride {stride}"
        );
        assert!(max_abs_diff(&map, want) <= 1e-4 * scale, "{spread:?} map {shape:?} size {size} stride {stride}");
        assert_eq!(stats.total, expected.drops.len());
        assert_eq!(stats.mode, OcclusionMode::Naive, "auto mode on a non-paper model is naive");
        assert!(drops.iter().any(|&d| d > 0.0) && drops.contains(&0.0), "some cubes clipped, some not");
    }
}

#[test]
fn linear_model_drops_and_maps_are_analytic_3d() {
    // 9 → centres 0, 3, 6; 8 → 0, 3, 6; 7 → 0, 3, 6; side 4 clipped at the low border.
    check_linear_case(&[2, 9, 8, 7], 4, 3, 0.25, 1);
    // Odd size (side 4), stride larger than the side: voxels no cube covers (Mean gives 0 there).
    check_linear_case(&[1, 11, 7, 10], 5, 5, 0.0, 2);
}

#[test]
fn linear_model_drops_and_maps_are_analytic_2d() {
    check_linear_case(&[3, 10, 9], 5, 4, -0.5, 3);
    check_linear_case(&[1, 13, 6], 2, 1, 0.0, 4);
}

#[test]
fn nearest_spread_is_scipy_zoom_order_0() {
    // scipy.ndimage.zoom(np.arange(3), 7/3, order=0) = [0, 0, 1, 1, 1, 2, 2].
    assert_eq!(scipy_nearest(3, 7), vec![0, 0, 1, 1, 1, 2, 2]);
    // A 1D-like linear case whose cube drops are all distinct: the map repeats them in that
    // pattern. Shape [1, 1, 7]: stride 3 → centres 0, 3, 6 (3 cubes), map of 7 voxels.
    let w = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
    let x = [1.0f32; 7];
    let model = LinearToy::<Cpu>::new(&w, &[1, 1, 7], &Default::default());
    let out = occlusion(
        &model,
        tensor::<Cpu, 4>(x.to_vec(), &[1, 1, 1, 7]),
        &linear_config(2, 3, 0.0, Spread::Nearest),
        None,
    )
    .unwrap();
    // Cubes [0,1) → 1, [2,4) → 4 + 8, [5,7) → 32 + 64.
    assert_eq!(out.drops, vec![1.0, 12.0, 96.0]);
    assert_eq!(values(out.map), vec![1.0, 1.0, 12.0, 12.0, 12.0, 96.0, 96.0]);
}

#[test]
fn grid_places_cubes_as_the_original() {
    let grid = OcclusionGrid::new(&[10, 3], 5, 4).unwrap();
    assert_eq!(grid.shape(), vec![3, 1]);
    assert_eq!(grid.len(), 3);
    // size 5 → half 2 → side 4: [c − 2, c + 2) clipped.
    assert_eq!(grid.cube(0), vec![0..2, 0..2]);
    assert_eq!(grid.cube(1), vec![2..6, 0..2]);
    assert_eq!(grid.cube(2), vec![6..10, 0..2]);
    assert_eq!(grid.centre(2), vec![8, 0]);
    // The paper's figure: stride 12 at 1 mm → 17×20×17 = 5780 passes; stride 6 at 2 mm the same.
    assert_eq!(OcclusionGrid::new(&[193, 229, 193], 12, 12).unwrap().len(), 5780);
    assert_eq!(OcclusionGrid::new(&[97, 115, 97], 6, 6).unwrap().len(), 5780);
    let default = OcclusionConfig::default();
    assert_eq!((default.size, default.stride), (6, 6));
    let code = OcclusionConfig::for_voxel_size(1);
    assert_eq!((code.size, code.stride), (50, 25));
}

// ---------------------------------------------------------------------------------------------
// Tiny paper networks.
// ---------------------------------------------------------------------------------------------

fn tiny_config() -> NetworkConfig {
    NetworkConfig { channels: [3, 3, 3, 3], pools: [2, 2, 1, 1], kernel: 3, dense: [16, 8], dropout: 0.5, classes: 2 }
}

/// A random tiny network. The BatchNorm layers get random running statistics and affine
/// parameters, and the hidden dense layers positive biases (β > 0 and biases > 0 keep the ReLUs
/// of such narrow networks alive), so that the test covers the
/// inference-mode normalisation and the drops are not all 0.
fn tiny_network<B: Backend>(config: &NetworkConfig, grid: [usize; 3], seed: u64) -> ClassificationModel3D<B> {
    let device = Default::default();
    let mut model = {
        // The CPU backend's generator is process-wide: seed and draw under one lock.
        let _serial = common::serial();
        B::seed(&device, seed);
        config.init::<B>(grid, &device).unwrap()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1000);
    common::randomize_batch_norm(&mut model, &mut rng);
    let mut uniform = |n: usize, lo: f32, hi: f32| -> Tensor<B, 1> {
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
        Tensor::from_data(TensorData::new(v, [n]), &device)
    };
    for dense in [&mut model.dense_1, &mut model.dense_2] {
        let n = dense.weight.dims()[1];
        dense.bias = Some(Param::from_tensor(uniform(n, 0.05, 0.3)));
    }
    model
}

/// A random input `[1, 1, grid]`, zero outside the ellipsoid of semi-axes `fill`·grid/2 (no
/// zeros when `fill` is `None`).
fn random_scan(grid: [usize; 3], fill: Option<f64>, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = normal_values(grid.iter().product(), &mut rng);
    if let Some(f) = fill {
        let mut v = 0;
        for i in 0..grid[0] {
            for j in 0..grid[1] {
                for k in 0..grid[2] {
                    let r: f64 = [i, j, k]
                        .iter()
                        .zip(grid)
                        .map(|(&p, s)| {
                            let half = s as f64 / 2.0;
                            ((p as f64 + 0.5 - half) / (f * half)).powi(2)
                        })
                        .sum();
                    if r > 1.0 {
                        out[v] = 0.0;
                    }
                    v += 1;
                }
            }
        }
    }
    out
}

fn scan_tensor<B: Backend>(grid: [usize; 3], v: Vec<f32>) -> Tensor<B, 5> {
    tensor::<B, 5>(v, &[1, 1, grid[0], grid[1], grid[2]])
}

fn paper_config(size: usize, stride: usize, mode: OcclusionMode, output: Output) -> OcclusionConfig {
    OcclusionConfig { size, stride, mode, output, ..OcclusionConfig::default() }
}

/// Both explained outputs.
const BOTH: &[Output] = &[Output::Logit, Output::Probability];

/// Runs naive and incremental occlusion of a random input through a random network for each of
/// `outputs` and checks they agree; returns (naive, incremental) of the last output. Panics when
/// every drop is 0 (a dead random network: the comparison would prove nothing).
fn compare_modes<B: FastBackend>(
    net: &NetworkConfig,
    grid: [usize; 3],
    size: usize,
    stride: usize,
    seed: u64,
    fill: Option<f64>,
    outputs: &[Output],
) -> (relevance::occlusion::OcclusionMap<B, 5>, relevance::occlusion::OcclusionMap<B, 5>) {
    compare_modes_if_alive(net, grid, size, stride, seed, fill, outputs).unwrap_or_else(|| {
        panic!(
            "every drop is 0 (grid {grid:?}, size {size}, stride {stride}, seed {seed}): the test would prove nothing"
        )
    })
}

/// As [`compare_modes`], but `None` instead of a panic when every drop of an output is 0 (after
/// checking that both modes agree), so that a property test can discard such a random network.
#[allow(clippy::type_complexity)]
fn compare_modes_if_alive<B: FastBackend>(
    net: &NetworkConfig,
    grid: [usize; 3],
    size: usize,
    stride: usize,
    seed: u64,
    fill: Option<f64>,
    outputs: &[Output],
) -> Option<(relevance::occlusion::OcclusionMap<B, 5>, relevance::occlusion::OcclusionMap<B, 5>)> {
    let model = tiny_network::<B>(net, grid, seed);
    let scan = random_scan(grid, fill, seed + 100);
    let mut last = None;
    for &output in outputs {
        let naive = occlusion(
            &model,
            scan_tensor::<B>(grid, scan.clone()),
            &paper_config(size, stride, OcclusionMode::Naive, output),
            None,
        )
        .unwrap();
        let incremental = occlusion(
            &model,
            scan_tensor::<B>(grid, scan.clone()),
            &paper_config(size, stride, OcclusionMode::Incremental, output),
            None,
        )
        .unwrap();
        assert_eq!(naive.stats.mode, OcclusionMode::Naive);
        assert_eq!(incremental.stats.mode, OcclusionMode::Incremental);
        assert_eq!(naive.class, incremental.class);
        assert!((naive.baseline - incremental.baseline).abs() <= 1e-5 * naive.baseline.abs().max(1.0));
        let scale = naive.drops.iter().fold(1.0f32, |m, &d| m.max(d));
        let diff = max_abs_diff(&naive.drops, &incremental.drops);
        assert!(
            diff <= 2e-5 * scale,
            "{output:?}: incremental differs from naive by {diff} (grid {grid:?}, size {size}, stride {stride}, seed {seed})"
        );
        let map_diff = max_abs_diff(&values(naive.map.clone()), &values(incremental.map.clone()));
        assert!(map_diff <= 2e-5 * scale, "{output:?} maps differ by {map_diff}");
        assert_eq!(naive.stats.skipped, incremental.stats.skipped);
        if !naive.drops.iter().any(|&d| d > 0.0) {
            return None;
        }
        last = Some((naive, incremental));
    }
    last
}

#[test]
fn incremental_equals_naive_on_random_tiny_networks() {
    let tiny = tiny_config();
    // Cubes straddling every border; odd grids (floor-mode trailing voxels at the poolings);
    // sizes below, equal to and above the stride; odd sizes.
    compare_modes::<Cpu>(&tiny, [27, 29, 26], 4, 5, 11, None, BOTH);
    for (seed, grid, size, stride) in [(2, [26, 28, 31], 7, 5), (3, [30, 26, 27], 10, 6), (4, [26, 27, 26], 2, 6)] {
        compare_modes::<Cpu>(&tiny, grid, size, stride, seed, None, &[Output::Logit]);
    }
    // Kernel 2 and pooling 2 in the last block.
    let k2 = NetworkConfig { channels: [3, 2, 2, 2], pools: [2, 2, 2, 1], kernel: 2, ..tiny_config() };
    compare_modes::<Cpu>(&k2, [24, 25, 23], 6, 5, 5, Some(0.9), BOTH);
}

#[test]
fn incremental_drops_changes_in_trailing_voxels_exactly() {
    // Kernel 3, pooling 3 first: along axis 0 (34 voxels) the convolution has 32 outputs and the
    // pooling uses 30, so input voxels 32 and 33 reach nothing. Cubes of size 2 every 11 voxels
    // (4 × 3 × 3 centres): the 3 × 3 cubes centred at 33 on axis 0 cover [32, 34) only and change
    // nothing.
    let net = NetworkConfig { pools: [3, 1, 2, 1], kernel: 3, ..tiny_config() };
    let grid = [34, 32, 33];
    let (naive, incremental) = compare_modes::<Cpu>(&net, grid, 2, 11, 6, None, BOTH);
    assert_eq!(incremental.stats.total, 4 * 3 * 3);
    assert_eq!(incremental.stats.unchanged, 9);
    assert_eq!(naive.stats.unchanged, 0, "naive evaluates every pass");
    for i in 3 * 3 * 3..4 * 3 * 3 {
        assert_eq!(incremental.drops[i], 0.0);
        assert!(naive.drops[i] <= 1e-6);
    }
}

#[test]
fn incremental_runs_on_any_backend() {
    // The same code on the autodiff backend (no gradient is taken): B is generic, not Flex.
    type Ad = burn::backend::Autodiff<Cpu>;
    compare_modes::<Ad>(&tiny_config(), [26, 27, 28], 5, 5, 7, Some(0.8), &[Output::Probability]);
}

#[test]
fn batched_equals_unbatched() {
    let grid = [27, 26, 28];
    let model = tiny_network::<Cpu>(&tiny_config(), grid, 8);
    let scan = random_scan(grid, Some(0.9), 9);
    for mode in [OcclusionMode::Naive, OcclusionMode::Incremental] {
        let run = |budget_mb| {
            let config =
                OcclusionConfig { memory_budget_mb: budget_mb, ..paper_config(5, 4, mode, Output::Probability) };
            occlusion(&model, scan_tensor::<Cpu>(grid, scan.clone()), &config, None).unwrap()
        };
        let one = run(0);
        let many = run(1024);
        assert_eq!(one.stats.batches, one.stats.evaluated, "{mode:?}: budget 0 = one pass per batch");
        assert!(many.stats.batches < one.stats.batches, "{mode:?}: a large budget batches passes");
        let diff = max_abs_diff(&one.drops, &many.drops);
        assert!(diff <= 1e-6, "{mode:?}: batched and unbatched differ by {diff}");
    }
}

#[test]
fn skipping_equals_not_skipping_and_counts_the_skipped_cubes() {
    let grid = [28, 27, 29];
    let model = tiny_network::<Cpu>(&tiny_config(), grid, 10);
    let scan = random_scan(grid, Some(0.7), 11);
    let (size, stride) = (4, 3);
    // Brute force: cubes whose voxels are all 0.
    let geometry = OcclusionGrid::new(&grid, size, stride).unwrap();
    let all_zero = (0..geometry.len())
        .filter(|&i| {
            let r = geometry.cube(i);
            r[0].clone()
                .all(|a| r[1].clone().all(|b| r[2].clone().all(|c| scan[(a * grid[1] + b) * grid[2] + c] == 0.0)))
        })
        .count();
    assert!(all_zero > 0 && all_zero < geometry.len());
    for mode in [OcclusionMode::Naive, OcclusionMode::Incremental] {
        let run = |skip| {
            let config =
                OcclusionConfig { skip_unchanged: skip, ..paper_config(size, stride, mode, Output::Probability) };
            occlusion(&model, scan_tensor::<Cpu>(grid, scan.clone()), &config, None).unwrap()
        };
        let skipping = run(true);
        let full = run(false);
        assert_eq!(skipping.stats.skipped, all_zero, "{mode:?}");
        assert_eq!(skipping.stats.evaluated + skipping.stats.skipped, geometry.len());
        assert_eq!(full.stats.skipped, 0);
        assert_eq!(full.stats.evaluated, geometry.len());
        let diff = max_abs_diff(&values(skipping.map), &values(full.map));
        assert!(diff <= 1e-6, "{mode:?}: skipping changed the map by {diff}");
        assert!(skipping.drops.iter().any(|&d| d > 0.0));
    }
}

#[test]
fn cube_drops_of_a_subset_match_the_full_run() {
    let grid = [26, 26, 27];
    let model = tiny_network::<Cpu>(&tiny_config(), grid, 12);
    let scan = random_scan(grid, Some(0.9), 13);
    let config = paper_config(6, 5, OcclusionMode::Auto, Output::Logit);
    let occluder = Occluder::new(&model, scan_tensor::<Cpu>(grid, scan), &config).unwrap();
    assert_eq!(occluder.mode(), OcclusionMode::Incremental, "auto on the paper network");
    let full = occluder.run(None).unwrap();
    let subset = [3, 0, 17, 40];
    let part = occluder.cube_drops(&subset, None).unwrap();
    for (k, &i) in subset.iter().enumerate() {
        assert!((part.drops[k] - full.drops[i]).abs() <= 1e-6);
    }
    let err = occluder.cube_drops(&[full.drops.len()], None).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("invalid parameter `cubes`: cube {0} does not exist: the grid has {0} cubes", full.drops.len())
    );
}

#[test]
fn image_cnn_batched_skipping_and_spreads_agree() {
    // A 2D CNN (conv → ReLU → max pool → dense → ReLU → dense) on a 3-channel image that is 0
    // outside a disc: batching and skipping change nothing, in both spreads.
    let spec = common::ToySpec {
        in_channels: 3,
        channels: 4,
        kernel: 3,
        grid: vec![21, 18],
        classes: 3,
        head: common::Head::MaxPoolDense { pool: 2, hidden: 6 },
    };
    let model = common::ToyCnn::<Cpu, 4>::random(spec, 17);
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let mut image = normal_values(3 * 21 * 18, &mut rng);
    for c in 0..3 {
        for i in 0..21 {
            for j in 0..18 {
                if (i as f32 - 10.0).powi(2) + (j as f32 - 9.0).powi(2) > 49.0 {
                    image[(c * 21 + i) * 18 + j] = 0.0;
                }
            }
        }
    }
    for spread in [Spread::Nearest, Spread::Mean] {
        let run = |budget_mb, skip| {
            let config = OcclusionConfig {
                size: 4,
                stride: 3,
                spread,
                memory_budget_mb: budget_mb,
                skip_unchanged: skip,
                output: Output::Logit,
                ..OcclusionConfig::default()
            };
            occlusion(&model, tensor::<Cpu, 4>(image.clone(), &[1, 3, 21, 18]), &config, None).unwrap()
        };
        let reference = run(0, false);
        assert_eq!(reference.map.dims(), [1, 1, 21, 18]);
        assert_eq!(reference.grid_shape, vec![7, 6]);
        assert_eq!(reference.stats.batches, 42);
        assert!(reference.drops.iter().any(|&d| d > 0.0));
        let fast = run(1024, true);
        assert_eq!(fast.stats.batches, 1);
        assert!(fast.stats.skipped > 0, "cubes outside the disc are skipped");
        let diff = max_abs_diff(&values(reference.map), &values(fast.map));
        assert!(diff <= 1e-5, "{spread:?}: batched and skipping changed the map by {diff}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn incremental_equals_naive_for_random_geometry(
        size in 2usize..12,
        stride in 5usize..9,
        extra in proptest::array::uniform3(0usize..5),
        seed in 0u64..1000,
    ) {
        let grid = extra.map(|e| 26 + e);
        // A random network that is dead for this input (every drop 0) proves nothing: draw another.
        let alive = compare_modes_if_alive::<Cpu>(&tiny_config(), grid, size, stride, seed, Some(0.85), &[Output::Logit]);
        prop_assume!(alive.is_some());
    }
}

// ---------------------------------------------------------------------------------------------
// Area occlusion.
// ---------------------------------------------------------------------------------------------

fn check_area_case<const D: usize>(shape: &[usize], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let voxels: usize = shape[1..].iter().product();
    let w = normal_values(n, &mut rng);
    let x = normal_values(n, &mut rng);
    // Labels 0..=4 with label 3 never used.
    let labels: Vec<i32> = (0..voxels).map(|_| [0, 1, 2, 4][rng.random_range(0..4)]).collect();
    let value = 0.3;
    let mut expected = std::collections::BTreeMap::new();
    for c in 0..shape[0] {
        for v in 0..voxels {
            if labels[v] != 0 {
                *expected.entry(labels[v]).or_insert(0.0f64) +=
                    f64::from(w[c * voxels + v]) * f64::from(x[c * voxels + v] - value);
            }
        }
    }
    let model = LinearToy::<Cpu>::new(&w, shape, &Default::default());
    let label_volume = ArrayD::from_shape_vec(IxDyn(&shape[1..]), labels.clone()).unwrap();
    let mut full = vec![1];
    full.extend_from_slice(shape);
    let mut maps = Vec::new();
    for budget in [0, 1024] {
        let config = AreaOcclusionConfig {
            value,
            target: Target::Class(1),
            output: Output::Logit,
            memory_budget_mb: budget,
            ..AreaOcclusionConfig::default()
        };
        let out =
            area_occlusion(&model, tensor::<Cpu, D>(x.clone(), &full), label_volume.view(), &config, None).unwrap();
        assert_eq!(out.regions.iter().map(|r| r.label).collect::<Vec<_>>(), vec![1, 2, 4]);
        assert_eq!(out.batches, if budget == 0 { 3 } else { 1 });
        for r in &out.regions {
            let want = expected[&r.label];
            assert!((f64::from(r.difference) - want).abs() <= 1e-4 * want.abs().max(1.0), "label {}", r.label);
            assert_eq!(r.drop, r.difference.max(0.0));
            assert_eq!(r.voxels, labels.iter().filter(|&&l| l == r.label).count());
        }
        let map = values(out.map);
        for v in 0..voxels {
            let want =
                if labels[v] == 0 { 0.0 } else { out.regions.iter().find(|r| r.label == labels[v]).unwrap().drop };
            assert_eq!(map[v], want);
        }
        maps.push(map);
    }
    assert!(max_abs_diff(&maps[0], &maps[1]) <= 1e-5, "batched = unbatched");
}

#[test]
fn area_occlusion_of_a_linear_model_is_analytic() {
    for seed in 0..3 {
        check_area_case::<5>(&[2, 6, 5, 7], seed);
        check_area_case::<4>(&[3, 8, 9], seed + 10);
    }
}

#[test]
fn area_occlusion_regions_of_the_paper_network() {
    // Two halves of the grid: the drops are those of occluding each half naively.
    let grid = [26, 27, 26];
    let model = tiny_network::<Cpu>(&tiny_config(), grid, 14);
    let scan = random_scan(grid, None, 15);
    let labels = ArrayD::from_shape_fn(IxDyn(&grid), |i| if i[0] < 13 { 1 } else { 2 });
    let config = AreaOcclusionConfig { output: Output::Logit, ..AreaOcclusionConfig::default() };
    let out = area_occlusion(&model, scan_tensor::<Cpu>(grid, scan.clone()), labels.view(), &config, None).unwrap();
    let relu = ReluPoint::standard();
    let logit =
        |v: Vec<f32>| values(Explainable::<Cpu, 5>::logits(&model, scan_tensor::<Cpu>(grid, v), &relu))[out.class];
    let base = logit(scan.clone());
    for r in &out.regions {
        let occluded: Vec<f32> = scan
            .iter()
            .enumerate()
            .map(|(v, &s)| if labels.as_slice().unwrap()[v] == r.label { 0.0 } else { s })
            .collect();
        let want = base - logit(occluded);
        assert!(
            (r.difference - want).abs() <= 1e-5 * want.abs().max(1.0),
            "label {}: {} vs {want}",
            r.label,
            r.difference
        );
    }
}

/// A random atlas on `grid` like a real one: compact regions (the nearest of `regions` random
/// seed points, so regions touch each other and the borders), background (label 0) outside the
/// ellipsoid of semi-axes 0.9·grid/2, label values with gaps (`3·i + 1`: most values between
/// them are never used), plus three awkward regions: one scattered over the whole grid (its
/// bounding box is the grid), one single voxel in the last corner (there floor-mode pooling
/// drops it for most networks, so the change vanishes) and a slab along the first face.
fn random_atlas(grid: [usize; 3], regions: usize, seed: u64) -> ArrayD<i32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let seeds: Vec<[f64; 3]> = (0..regions).map(|_| [0, 1, 2].map(|a| rng.random_range(0.0..grid[a] as f64))).collect();
    let scattered = 3 * regions as i32 + 1;
    let corner = scattered + 3;
    let slab = corner + 3;
    ArrayD::from_shape_fn(IxDyn(&grid), |i| {
        let p = [i[0], i[1], i[2]];
        if p == grid.map(|s| s - 1) {
            return corner;
        }
        if p[0] == 0 && p[1] < grid[1] / 2 {
            return slab;
        }
        if rng.random_range(0.0..1.0) < 0.02 {
            return scattered;
        }
        let r: f64 = (0..3)
            .map(|a| {
                let half = grid[a] as f64 / 2.0;
                ((p[a] as f64 + 0.5 - half) / (0.9 * half)).powi(2)
            })
            .sum();
        if r > 1.0 {
            return 0;
        }
        let nearest = (0..regions)
            .min_by(|&a, &b| {
                let d = |s: &[f64; 3]| (0..3).map(|k| (p[k] as f64 - s[k]).powi(2)).sum::<f64>();
                d(&seeds[a]).total_cmp(&d(&seeds[b]))
            })
            .unwrap();
        3 * nearest as i32 + 1
    })
}

/// Naive and incremental area occlusion of a random scan through a random tiny network with a
/// random atlas agree (drops, map, class, baseline, regions) for each output and with and
/// without batching; returns the largest difference of a region's difference relative to the
/// larger of the baseline output and the largest difference.
/// Panics when every drop is 0 (a dead random network proves nothing).
fn compare_area_modes(net: &NetworkConfig, grid: [usize; 3], regions: usize, seed: u64, fill: Option<f64>) -> f32 {
    compare_area_modes_if_alive(net, grid, regions, seed, fill)
        .unwrap_or_else(|| panic!("every drop is 0 (grid {grid:?}, seed {seed}): the test would prove nothing"))
}

/// As [`compare_area_modes`], but `None` instead of a panic when every drop is 0 (after
/// checking that the modes agree), so that a property test can discard such a network.
fn compare_area_modes_if_alive(
    net: &NetworkConfig,
    grid: [usize; 3],
    regions: usize,
    seed: u64,
    fill: Option<f64>,
) -> Option<f32> {
    let model = tiny_network::<Cpu>(net, grid, seed);
    let scan = random_scan(grid, fill, seed + 100);
    let labels = random_atlas(grid, regions, seed + 200);
    let mut worst = 0.0f32;
    let mut worst_abs = 0.0f32;
    let mut alive = false;
    for output in BOTH.iter().copied() {
        let run = |mode, budget| {
            let config =
                AreaOcclusionConfig { output, mode, memory_budget_mb: budget, ..AreaOcclusionConfig::default() };
            area_occlusion(&model, scan_tensor::<Cpu>(grid, scan.clone()), labels.view(), &config, None).unwrap()
        };
        let naive = run(OcclusionMode::Naive, 1024);
        assert_eq!(naive.mode, OcclusionMode::Naive);
        // Rounding scales with the outputs compared: the baseline and the occluded outputs.
        let scale = naive.regions.iter().fold(naive.baseline.abs().max(1e-3), |m, r| m.max(r.difference.abs()));
        alive |= naive.regions.iter().any(|r| r.drop > 0.0);
        for (mode, budget) in [(OcclusionMode::Incremental, 1024), (OcclusionMode::Auto, 0)] {
            let incremental = run(mode, budget);
            assert_eq!(incremental.mode, OcclusionMode::Incremental, "{mode:?}");
            assert_eq!(incremental.class, naive.class);
            assert!((incremental.baseline - naive.baseline).abs() <= 1e-5 * naive.baseline.abs().max(1.0));
            if budget == 0 {
                assert_eq!(incremental.batches, incremental.regions.len(), "budget 0: one region per batch");
            }
            for (a, b) in naive.regions.iter().zip(&incremental.regions) {
                assert_eq!((a.label, a.voxels), (b.label, b.voxels));
                let diff = (a.difference - b.difference).abs();
                worst = worst.max(diff / scale);
                worst_abs = worst_abs.max(diff);
                assert!(
                    diff <= 2e-5 * scale,
                    "{output:?}, label {}: naive {} vs incremental {} (seed {seed})",
                    a.label,
                    a.difference,
                    b.difference
                );
                assert_eq!(b.drop, b.difference.max(0.0));
            }
            let map_diff = max_abs_diff(&values(naive.map.clone()), &values(incremental.map.clone()));
            assert!(map_diff <= 2e-5 * scale, "{output:?}: maps differ by {map_diff}");
            // Label 0 is background: 0 in the map, never a region.
            let map = values(incremental.map);
            for (&label, &v) in labels.iter().zip(&map) {
                if label == 0 {
                    assert_eq!(v, 0.0);
                }
            }
            assert!(incremental.regions.iter().all(|r| r.label != 0));
        }
    }
    eprintln!(
        "area occlusion, grid {grid:?}, seed {seed}: max |naive − incremental| = {worst_abs:.2e}, relative {worst:.2e}"
    );
    alive.then_some(worst)
}

#[test]
fn incremental_area_occlusion_equals_naive_on_random_networks_and_atlases() {
    let tiny = tiny_config();
    let mut worst = 0.0f32;
    // Odd grids (floor-mode trailing voxels), a scan that is 0 outside an ellipsoid (regions
    // already at the occlusion value there), kernel 2 with pooling in the last block.
    worst = worst.max(compare_area_modes(&tiny, [27, 29, 26], 12, 21, None));
    worst = worst.max(compare_area_modes(&tiny, [31, 26, 28], 5, 22, Some(0.8)));
    let k2 = NetworkConfig { channels: [3, 2, 2, 2], pools: [2, 2, 2, 1], kernel: 2, ..tiny_config() };
    worst = worst.max(compare_area_modes(&k2, [24, 25, 23], 9, 23, Some(0.9)));
    // Pooling 3 first: the last two voxels along axis 0 reach nothing.
    let p3 = NetworkConfig { pools: [3, 1, 2, 1], kernel: 3, ..tiny_config() };
    worst = worst.max(compare_area_modes(&p3, [34, 32, 33], 7, 24, None));
    eprintln!("area occlusion: largest relative difference over the cases {worst:.2e}");
}

#[test]
fn incremental_area_occlusion_of_a_vanishing_region_is_the_baseline() {
    // Kernel 3, pooling 3 first on 34 voxels: input voxels 32 and 33 of axis 0 reach nothing, so
    // a region there changes nothing and its difference is exactly 0.
    let net = NetworkConfig { pools: [3, 1, 2, 1], kernel: 3, ..tiny_config() };
    let grid = [34, 32, 33];
    let model = tiny_network::<Cpu>(&net, grid, 25);
    let scan = random_scan(grid, None, 26);
    let labels = ArrayD::from_shape_fn(IxDyn(&grid), |i| {
        if i[0] >= 32 {
            7
        } else if i[0] < 5 {
            2
        } else {
            0
        }
    });
    let config = AreaOcclusionConfig { output: Output::Logit, ..AreaOcclusionConfig::default() };
    let out = area_occlusion(&model, scan_tensor::<Cpu>(grid, scan), labels.view(), &config, None).unwrap();
    assert_eq!(out.mode, OcclusionMode::Incremental);
    assert_eq!(out.regions.iter().map(|r| r.label).collect::<Vec<_>>(), vec![2, 7]);
    assert_ne!(out.regions[0].difference, 0.0);
    assert_eq!(out.regions[1].difference, 0.0);
}

#[test]
fn area_occlusion_modes_follow_the_model() {
    // Auto is naive for a model without the incremental hook and for images; incremental mode
    // is an error there.
    let toy = LinearToy::<Cpu>::new(&[1.0; 12], &[1, 3, 4], &Default::default());
    let x = || tensor::<Cpu, 4>(vec![1.0; 12], &[1, 1, 3, 4]);
    let labels = ArrayD::from_shape_fn(IxDyn(&[3, 4]), |i| i[1] as i32);
    let auto = area_occlusion(&toy, x(), labels.view(), &AreaOcclusionConfig::default(), None).unwrap();
    assert_eq!(auto.mode, OcclusionMode::Naive);
    let config = AreaOcclusionConfig { mode: OcclusionMode::Incremental, ..AreaOcclusionConfig::default() };
    let e = area_occlusion(&toy, x(), labels.view(), &config, None).unwrap_err().to_string();
    assert_eq!(
        e,
        "invalid parameter `mode`: incremental occlusion needs the paper's network (ClassificationModel3D); \
         use the naive or auto mode for other models"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    #[test]
    fn incremental_area_occlusion_equals_naive_for_random_geometry(
        extra in proptest::array::uniform3(0usize..6),
        regions in 1usize..10,
        seed in 0u64..1000,
    ) {
        let grid = extra.map(|e| 26 + e);
        let alive = compare_area_modes_if_alive(&tiny_config(), grid, regions, 3000 + seed, Some(0.85));
        prop_assume!(alive.is_some());
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_parameters_give_clear_errors() {
    let grid = [26, 26, 26];
    let model = tiny_network::<Cpu>(&tiny_config(), grid, 16);
    let x = || scan_tensor::<Cpu>(grid, vec![1.0; 26 * 26 * 26]);
    let err = |config: OcclusionConfig| occlusion(&model, x(), &config, None).unwrap_err().to_string();
    assert_eq!(
        err(OcclusionConfig { size: 0, ..OcclusionConfig::default() }),
        "invalid parameter `size`: is 0; expected at least 2 (the cube side is 2·⌊size/2⌋ voxels)"
    );
    assert_eq!(
        err(OcclusionConfig { size: 1, ..OcclusionConfig::default() }),
        "invalid parameter `size`: is 1; expected at least 2 (the cube side is 2·⌊size/2⌋ voxels)"
    );
    assert_eq!(
        err(OcclusionConfig { stride: 0, ..OcclusionConfig::default() }),
        "invalid parameter `stride`: is 0; expected at least 1 voxel between cube centres"
    );
    assert_eq!(
        err(OcclusionConfig { value: f32::NAN, ..OcclusionConfig::default() }),
        "invalid parameter `value`: is NaN; expected a finite number"
    );
    // A grid the model was not built for.
    let wrong =
        occlusion(&model, scan_tensor::<Cpu>([26, 26, 27], vec![0.0; 26 * 26 * 27]), &OcclusionConfig::default(), None)
            .unwrap_err()
            .to_string();
    assert!(wrong.contains("[1, 1, 26, 26, 27]") && wrong.contains("26, 26, 26"), "{wrong}");
    // Two inputs at once.
    let two = occlusion(
        &model,
        tensor::<Cpu, 5>(vec![0.0; 2 * 26 * 26 * 26], &[2, 1, 26, 26, 26]),
        &OcclusionConfig::default(),
        None,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        two,
        "input has shape [2, 1, 26, 26, 26], expected one input [1, C, H, W] or [1, C, D, H, W] (occlusion explains one input at a time)"
    );
    // Incremental mode needs the paper network.
    let toy = LinearToy::<Cpu>::new(&[1.0; 12], &[1, 3, 4], &Default::default());
    let config = OcclusionConfig { size: 2, stride: 1, mode: OcclusionMode::Incremental, ..OcclusionConfig::default() };
    let e = occlusion(&toy, tensor::<Cpu, 4>(vec![1.0; 12], &[1, 1, 3, 4]), &config, None).unwrap_err().to_string();
    assert_eq!(
        e,
        "invalid parameter `mode`: incremental occlusion needs the paper's network (ClassificationModel3D); \
         use the naive or auto mode for other models"
    );
}

#[test]
fn bad_atlases_give_clear_errors() {
    let toy = LinearToy::<Cpu>::new(&[1.0; 12], &[1, 3, 4], &Default::default());
    let x = || tensor::<Cpu, 4>(vec![1.0; 12], &[1, 1, 3, 4]);
    let config = AreaOcclusionConfig::default();
    let empty = ArrayD::<i32>::zeros(IxDyn(&[3, 4]));
    let e = area_occlusion(&toy, x(), empty.view(), &config, None).unwrap_err().to_string();
    assert_eq!(e, "atlas: the label volume (12 voxels) has no non-zero label: there is no region to occlude");
    let wrong = ArrayD::<i32>::ones(IxDyn(&[4, 3]));
    let e = area_occlusion(&toy, x(), wrong.view(), &config, None).unwrap_err().to_string();
    assert_eq!(
        e,
        "atlas: the label volume has shape [4, 3] but the input's grid is [3, 4]; resample the atlas to the input grid first"
    );
    let flat = ArrayD::<i32>::ones(IxDyn(&[12]));
    assert!(matches!(area_occlusion(&toy, x(), flat.view(), &config, None), Err(RelevanceError::Atlas(_))));
}
