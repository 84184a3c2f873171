//! Shared test models and helpers for the relevance integration tests.
//!
//! [`ToyCnn`] is a tiny CNN of any rank (`D` = 4 for images `[N, C, H, W]`, 5 for volumes
//! `[N, C, D, H, W]`) implementing [`Explainable`], with its weights in public parameters so
//! that a test can set them by hand:
//!
//! - [`Head::MaxPoolDense`]: conv (valid, stride 1, bias) → ReLU → max pool (window = stride =
//!   `pool`, 1 = none) → flatten (C order) → dense → ReLU → dense. Two ReLU points. Feature
//!   layers `conv` (after the ReLU, before the pooling) and `pool`.
//! - [`Head::GlobalAverage`]: conv → ReLU → global average pooling → dense. One ReLU point;
//!   feature layer `conv`. Its logits are linear in the `conv` activations,
//!   `logit_c = Σ_k W[k, c] · mean(A_k) + b_c`, so its Grad-CAM for the logit is known:
//!   `ReLU(Σ_k W[k, c] A_k) / |grid|` (the class activation map of Zhou et al. 2016).
//!
//! Dense weights are stored `[in, out]` (`y = x·W + b`). Random weights come from a seeded
//! ChaCha8 generator of the test (not the backend's), so tests using them need no lock.
//!
//! Models drawn from the backend's generator (the paper network's `NetworkConfig::init`) must
//! hold [`serial`]: the CPU backend's generator is process-wide.

#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::module::{conv2d, conv3d, max_pool2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use relevance::{Explainable, RelevanceError, ReluPoint, Result, unknown_layer};

/// The inner (CPU) backend of the tests.
pub type B = model::Cpu;
/// The autodiff backend the relevance methods differentiate on.
pub type A = Autodiff<B>;

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the lock for draws from the backend's process-wide generator.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The head of a [`ToyCnn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Max pooling (window = stride = `pool`), flatten, dense to `hidden` → ReLU → dense.
    MaxPoolDense {
        /// Pooling window and stride (1 = none).
        pool: usize,
        /// Hidden units.
        hidden: usize,
    },
    /// Global average pooling → dense.
    GlobalAverage,
}

/// The architecture of a [`ToyCnn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToySpec {
    /// Input channels.
    pub in_channels: usize,
    /// Convolution output channels.
    pub channels: usize,
    /// Convolution kernel size along every spatial axis.
    pub kernel: usize,
    /// The input's spatial grid (2 entries for images, 3 for volumes).
    pub grid: Vec<usize>,
    /// Output logits.
    pub classes: usize,
    /// The head.
    pub head: Head,
}

impl ToySpec {
    /// Spatial grid after the convolution.
    pub fn conv_grid(&self) -> Vec<usize> {
        self.grid.iter().map(|s| s + 1 - self.kernel).collect()
    }

    /// Spatial grid after the pooling (the convolution's for a global-average head).
    pub fn pooled_grid(&self) -> Vec<usize> {
        match self.head {
            Head::MaxPoolDense { pool, .. } => self.conv_grid().iter().map(|s| s / pool).collect(),
            Head::GlobalAverage => self.conv_grid(),
        }
    }
}

/// A tiny CNN of rank `D` (see the module documentation).
#[derive(Module, Debug)]
pub struct ToyCnn<B: Backend, const D: usize> {
    /// Convolution kernel `[K, C, k…]`.
    pub conv_weight: Param<Tensor<B, D>>,
    /// Convolution bias `[K]`.
    pub conv_bias: Param<Tensor<B, 1>>,
    /// Hidden dense weight `[F, H]` (max-pool head only).
    pub hidden_weight: Option<Param<Tensor<B, 2>>>,
    /// Hidden dense bias `[H]` (max-pool head only).
    pub hidden_bias: Option<Param<Tensor<B, 1>>>,
    /// Output dense weight `[H or K, classes]`.
    pub out_weight: Param<Tensor<B, 2>>,
    /// Output dense bias `[classes]`.
    pub out_bias: Param<Tensor<B, 1>>,
    #[module(skip)]
    spec: ToySpec,
}

/// A parameter from values and a shape.
pub fn param<B: Backend, const K: usize>(values: Vec<f32>, shape: [usize; K]) -> Param<Tensor<B, K>> {
    Param::from_tensor(tensor(values, shape))
}

/// A tensor from values and a shape on the default device.
pub fn tensor<B: Backend, const K: usize>(values: Vec<f32>, shape: [usize; K]) -> Tensor<B, K> {
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// The values of a tensor as `f32`.
pub fn values<B: Backend, const K: usize>(t: Tensor<B, K>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// `n` values uniform in `[-scale, scale)` from a seeded generator.
pub fn uniform(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// A random input batch `[n, C, grid…]` of rank `D`, values uniform in [−1, 1).
pub fn random_input<B: Backend, const D: usize>(spec_dims: [usize; D], seed: u64) -> Tensor<B, D> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    tensor(uniform(&mut rng, spec_dims.iter().product(), 1.0), spec_dims)
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Largest absolute value.
pub fn max_abs(a: &[f32]) -> f32 {
    a.iter().map(|x| x.abs()).fold(0.0, f32::max)
}

/// `[n, C, grid…]` of rank `D` for a spec.
pub fn input_dims<const D: usize>(spec: &ToySpec, n: usize) -> [usize; D] {
    assert_eq!(spec.grid.len() + 2, D, "grid rank does not match D");
    let mut dims = [0; D];
    dims[0] = n;
    dims[1] = spec.in_channels;
    dims[2..].copy_from_slice(&spec.grid);
    dims
}

impl<B: Backend, const D: usize> ToyCnn<B, D> {
    /// Random weights, uniform in ±1/√fan_in (PyTorch's default scale), from `seed`.
    pub fn random(spec: ToySpec, seed: u64) -> Self {
        assert!(D == 4 || D == 5, "ToyCnn supports images (D = 4) and volumes (D = 5)");
        assert_eq!(spec.grid.len() + 2, D, "grid rank does not match D");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let k = spec.kernel;
        let mut conv_shape = [k; D];
        conv_shape[0] = spec.channels;
        conv_shape[1] = spec.in_channels;
        let fan_in = spec.in_channels * k.pow(D as u32 - 2);
        let scale = |fan_in: usize| 1.0 / (fan_in as f32).sqrt();
        let conv_weight = param(uniform(&mut rng, conv_shape.iter().product(), scale(fan_in)), conv_shape);
        let conv_bias = param(uniform(&mut rng, spec.channels, scale(fan_in)), [spec.channels]);
        let (hidden_weight, hidden_bias, last) = match spec.head {
            Head::MaxPoolDense { hidden, .. } => {
                let flat = spec.channels * spec.pooled_grid().iter().product::<usize>();
                let w = param(uniform(&mut rng, flat * hidden, scale(flat)), [flat, hidden]);
                let b = param(uniform(&mut rng, hidden, scale(flat)), [hidden]);
                (Some(w), Some(b), hidden)
            }
            Head::GlobalAverage => (None, None, spec.channels),
        };
        let out_weight = param(uniform(&mut rng, last * spec.classes, scale(last)), [last, spec.classes]);
        let out_bias = param(uniform(&mut rng, spec.classes, scale(last)), [spec.classes]);
        Self { conv_weight, conv_bias, hidden_weight, hidden_bias, out_weight, out_bias, spec }
    }

    /// The architecture.
    pub fn spec(&self) -> &ToySpec {
        &self.spec
    }

    // `D` is 4 or 5 (checked at construction); the reshapes only change the static rank.
    fn conv(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let w = self.conv_weight.val();
        let b = Some(self.conv_bias.val());
        let (x_dims, w_dims) = (x.shape(), w.shape());
        match D {
            4 => {
                let y = conv2d(
                    x.reshape::<4, _>(x_dims),
                    w.reshape(w_dims),
                    b,
                    ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
                );
                {
                    let shape = y.shape();
                    y.reshape(shape)
                }
            }
            _ => {
                let y = conv3d(
                    x.reshape::<5, _>(x_dims),
                    w.reshape(w_dims),
                    b,
                    ConvOptions::new([1, 1, 1], [0, 0, 0], [1, 1, 1], 1),
                );
                {
                    let shape = y.shape();
                    y.reshape(shape)
                }
            }
        }
    }

    fn pool(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let Head::MaxPoolDense { pool, .. } = self.spec.head else { return x };
        if pool == 1 {
            return x;
        }
        let dims = x.shape();
        match D {
            4 => {
                let y = max_pool2d(x.reshape::<4, _>(dims), [pool; 2], [pool; 2], [0, 0], [1, 1], false);
                {
                    let shape = y.shape();
                    y.reshape(shape)
                }
            }
            _ => {
                let y = model::max_pool3d(x.reshape::<5, _>(dims), [pool; 3]);
                {
                    let shape = y.shape();
                    y.reshape(shape)
                }
            }
        }
    }

    fn head_from_pooled(&self, x: Tensor<B, D>, relu: &ReluPoint<B>) -> Tensor<B, 2> {
        let n = x.dims()[0];
        let x = match (&self.hidden_weight, &self.hidden_bias) {
            (Some(w), Some(b)) => {
                let flat: Tensor<B, 2> = x.reshape([n as i64, -1]);
                relu.apply(flat.matmul(w.val()).add(b.val().unsqueeze()))
            }
            // Global average pooling.
            _ => {
                let flat: Tensor<B, 3> = x.reshape([n as i64, self.spec.channels as i64, -1]);
                flat.mean_dim(2).reshape([n, self.spec.channels])
            }
        };
        x.matmul(self.out_weight.val()).add(self.out_bias.val().unsqueeze())
    }
}

impl<B: Backend, const D: usize> Explainable<B, D> for ToyCnn<B, D> {
    fn num_classes(&self) -> usize {
        self.spec.classes
    }

    fn check_input(&self, dims: [usize; D]) -> Result<()> {
        if dims[0] == 0 || dims[1] != self.spec.in_channels || dims[2..] != self.spec.grid[..] {
            return Err(RelevanceError::Shape {
                found: dims.to_vec(),
                expected: format!("[N ≥ 1, {}, {:?}]", self.spec.in_channels, self.spec.grid),
            });
        }
        Ok(())
    }

    fn logits(&self, x: Tensor<B, D>, relu: &ReluPoint<B>) -> Tensor<B, 2> {
        let a = relu.apply(self.conv(x));
        self.head_from_pooled(self.pool(a), relu)
    }

    fn feature_layers(&self) -> Vec<String> {
        match self.spec.head {
            Head::MaxPoolDense { .. } => vec!["conv".into(), "pool".into()],
            Head::GlobalAverage => vec!["conv".into()],
        }
    }

    fn features(&self, x: Tensor<B, D>, layer: &str, relu: &ReluPoint<B>) -> Result<Tensor<B, D>> {
        self.check_input(x.dims())?;
        let a = relu.apply(self.conv(x));
        match layer {
            "conv" => Ok(a),
            "pool" if self.feature_layers().len() == 2 => Ok(self.pool(a)),
            _ => Err(unknown_layer(layer, self.feature_layers())),
        }
    }

    fn logits_from_features(&self, features: Tensor<B, D>, layer: &str, relu: &ReluPoint<B>) -> Result<Tensor<B, 2>> {
        match layer {
            "conv" => Ok(self.head_from_pooled(self.pool(features), relu)),
            "pool" if self.feature_layers().len() == 2 => Ok(self.head_from_pooled(features, relu)),
            _ => Err(unknown_layer(layer, self.feature_layers())),
        }
    }
}

/// The paper network's architecture shrunk for tests (works on grids ≥ 26 voxels per axis).
pub fn tiny_paper_config() -> model::NetworkConfig {
    model::NetworkConfig {
        channels: [2, 2, 2, 2],
        pools: [2, 2, 1, 1],
        kernel: 3,
        dense: [8, 4],
        dropout: 0.5,
        classes: 2,
    }
}

/// A seeded random paper network with the [`tiny_paper_config`] on the autodiff backend for
/// inputs of `grid`, drawn with the first seed from `seed` on whose logits vary with the input.
///
/// About half the random tiny networks are dead (with two channels per block and four hidden
/// units, some layer's ReLUs are all off, and the output is constant); a test of a gradient on
/// one could not fail. Liveness: the logits of four random inputs differ by more than 10⁻³.
pub fn tiny_paper_model(grid: [usize; 3], seed: u64) -> model::ClassificationModel3D<A> {
    let [d, h, w] = grid;
    let probe = random_input::<B, 5>([4, 1, d, h, w], 0xdead);
    (seed..seed + 50)
        .map(|s| seeded_paper_model(grid, s))
        .find(|model| {
            let logits = values(model.valid().forward_eval(probe.clone()));
            let classes = logits.len() / 4;
            (0..classes).any(|c| {
                let column = (0..4).map(|i| logits[i * classes + c]);
                let (lo, hi) = column.fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
                hi - lo > 1e-3
            })
        })
        .expect("a live network among 50 seeds")
}

/// A seeded random paper network with the [`tiny_paper_config`] (possibly dead; see
/// [`tiny_paper_model`]).
pub fn seeded_paper_model(grid: [usize; 3], seed: u64) -> model::ClassificationModel3D<A> {
    let _guard = serial();
    let device = Default::default();
    A::seed(&device, seed);
    let model = tiny_paper_config().init::<A>(grid, &device).expect("tiny config fits the grid");
    // Burn initialises parameters lazily (on first use): draw them now, under the lock, so the
    // weights are a function of the seed.
    let [d, h, w] = grid;
    model.forward_eval(Tensor::zeros([1, 1, d, h, w], &device));
    model
}

/// Random BatchNorm statistics and affine parameters (γ ∈ [0.5, 1.5), β ∈ [0.05, 0.3), running
/// mean ∈ [−0.2, 0.2), running variance ∈ [0.5, 2)), seeded: a freshly initialised network has
/// γ = 1, β = 0, mean 0 and variance 1, which would leave the inference-mode normalisation (and
/// its folding into the convolutions) untested. Draws from `rng`, which the caller may go on using.
pub fn randomize_batch_norm<B: Backend>(model: &mut model::ClassificationModel3D<B>, rng: &mut ChaCha8Rng) {
    let mut draw = |n: usize, lo: f32, hi: f32| -> Tensor<B, 1> {
        tensor((0..n).map(|_| rng.random_range(lo..hi)).collect(), [n])
    };
    for block in &mut model.blocks {
        let c = block.bn.channels();
        block.bn.weight = Param::from_tensor(draw(c, 0.5, 1.5));
        block.bn.bias = Param::from_tensor(draw(c, 0.05, 0.3));
        block.bn.running_mean = burn::module::RunningState::new(draw(c, -0.2, 0.2));
        block.bn.running_var = burn::module::RunningState::new(draw(c, 0.5, 2.0));
    }
}
