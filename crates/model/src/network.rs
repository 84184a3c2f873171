//! The paper's network, `ClassificationModel3D` (Rieke et al., MLCN 2018, as in its original code).
//!
//! Four blocks Conv3d(k, stride 1, no padding, bias) → BatchNorm3d → ReLU → MaxPool3d(p, p)
//! (1→8→16→32→64 channels, pools 2, 3, 2, 3), flatten in C order over (C, D, H, W),
//! Dropout(0.8) → Linear(F→128) → ReLU → Linear(128→64) → ReLU → Linear(64→2), where the flatten
//! size F follows from the input grid (5120 at 193×229×193, 128 at 97×115×97). The output is two
//! raw logits (class 1 = AD, class 0 = CN).
//!
//! Modes are explicit methods instead of Burn's "training whenever the backend is Autodiff":
//! [`ClassificationModel3D::forward_train`] (batch statistics, running-statistics update, dropout)
//! and [`ClassificationModel3D::forward_eval`] (running statistics, no dropout) on any backend.
//!
//! Seeding: `NetworkConfig::init` draws weights from the backend's generator, so
//! `B::seed(&device, seed)` immediately before it makes the weights a function of the seed (on
//! the CPU backend this generator is process-wide: keep other random draws off other threads in
//! between). Initialisation follows PyTorch's defaults: conv and linear weights and biases
//! U(−1/√fan_in, 1/√fan_in), BatchNorm γ = 1, β = 0 (PyTorch ≥ 1.2; the paper's PyTorch 0.3
//! drew γ from U(0, 1)).

use burn::module::{AutodiffModule, Module};
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig3d};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::fast::{FastAutodiffBackend, FastBackend};
use crate::norm::BatchNorm3d;
use crate::{ModelError, format_grid};

/// The paper's 1 mm MNI grid (ICBM152 2009c), x × y × z.
pub const PAPER_GRID_1MM: [usize; 3] = [193, 229, 193];
/// The 2 mm grid the project trains on by default on the CPU.
pub const GRID_2MM: [usize; 3] = [97, 115, 97];

/// Architecture of [`ClassificationModel3D`]; every default is the paper's value.
///
/// Deserialised from TOML/JSON with unknown fields rejected; missing fields take the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Output channels of the four convolution blocks (paper: 8, 16, 32, 64).
    pub channels: [usize; 4],
    /// Max-pooling window = stride of the four blocks (paper: 2, 3, 2, 3), floor mode.
    pub pools: [usize; 4],
    /// Convolution kernel size along each axis, no padding, stride 1 (paper: 3).
    pub kernel: usize,
    /// Hidden sizes of the two dense layers after the flatten (paper: 128, 64).
    pub dense: [usize; 2],
    /// Dropout probability before the first dense layer (paper: 0.8).
    pub dropout: f64,
    /// Number of output logits (paper: 2; class 1 = AD, class 0 = CN).
    pub classes: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self { channels: [8, 16, 32, 64], pools: [2, 3, 2, 3], kernel: 3, dense: [128, 64], dropout: 0.8, classes: 2 }
    }
}

impl NetworkConfig {
    /// The architecture fields (dropout aside) in which `self` differs from `other`, in words,
    /// e.g. `channels 4, 4, 8, 8 (the paper: 8, 16, 32, 64)` when `other` is the paper's
    /// network (`what` names it). Empty when the layers are the same.
    pub fn layer_differences(&self, other: &NetworkConfig, what: &str) -> Vec<String> {
        let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
        let mut out = Vec::new();
        for (name, mine, theirs) in [
            ("channels", list(&self.channels), list(&other.channels)),
            ("pooling windows", list(&self.pools), list(&other.pools)),
            ("kernel", self.kernel.to_string(), other.kernel.to_string()),
            ("dense layers", list(&self.dense), list(&other.dense)),
            ("classes", self.classes.to_string(), other.classes.to_string()),
        ] {
            if mine != theirs {
                out.push(format!("{name} {mine} ({what}: {theirs})"));
            }
        }
        out
    }

    /// Checks that every field has a usable value.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |field, message: &str| Err(ModelError::InvalidConfig { field, message: message.to_string() });
        if self.channels.contains(&0) {
            return bad("channels", "must all be at least 1");
        }
        if self.pools.contains(&0) {
            return bad("pools", "must all be at least 1 (1 = no pooling)");
        }
        if self.kernel == 0 {
            return bad("kernel", "must be at least 1");
        }
        if self.dense.contains(&0) {
            return bad("dense", "must all be at least 1");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", &format!("is {}; expected 0 ≤ p < 1", self.dropout));
        }
        if self.classes < 2 {
            return bad("classes", &format!("is {}; expected at least 2", self.classes));
        }
        Ok(())
    }

    /// The smallest number of voxels per axis for which every block still has one voxel left.
    pub fn min_grid_size(&self) -> usize {
        self.pools.iter().rev().fold(1, |need, &pool| need * pool + self.kernel - 1)
    }

    /// Per-axis spatial size after the four blocks, or the error for a grid that is too small.
    pub fn output_grid(&self, input: [usize; 3]) -> Result<[usize; 3], ModelError> {
        self.validate()?;
        let mut size = input;
        for (block, &pool) in self.pools.iter().enumerate() {
            let block_needs = self.kernel - 1 + pool;
            for (axis, s) in size.iter_mut().enumerate() {
                if *s < block_needs {
                    return Err(ModelError::GridTooSmall {
                        grid: format_grid(input),
                        block: block + 1,
                        axis,
                        got: *s,
                        block_needs,
                        kernel: self.kernel,
                        pool,
                        needs: self.min_grid_size(),
                    });
                }
                *s = (*s - (self.kernel - 1)) / pool;
            }
        }
        Ok(size)
    }

    /// Multiply-adds of each block's convolution for one scan of `input` voxels (`Co · Ci · k³`
    /// per output voxel of the valid convolution): the work of a forward pass, and again of each
    /// backward pass (weight gradient, input gradient). The dense layers (at most 0.7 M
    /// multiply-adds) are left out.
    pub fn conv_macs(&self, input: [usize; 3]) -> Result<[u64; 4], ModelError> {
        self.output_grid(input)?;
        let k = self.kernel;
        let mut size = input;
        let mut c_in = 1;
        let mut macs = [0u64; 4];
        for (block, (&c_out, &pool)) in self.channels.iter().zip(&self.pools).enumerate() {
            let conv = size.map(|s| s - (k - 1));
            macs[block] = (c_out * c_in * k * k * k * conv.iter().product::<usize>()) as u64;
            size = conv.map(|s| s / pool);
            c_in = c_out;
        }
        Ok(macs)
    }

    /// Number of features after the flatten (channels of the last block × remaining voxels):
    /// 5120 at 193×229×193 and 128 at 97×115×97 with the paper's blocks.
    pub fn flatten_size(&self, input: [usize; 3]) -> Result<usize, ModelError> {
        let out = self.output_grid(input)?;
        Ok(self.channels[3] * out.iter().product::<usize>())
    }

    /// Per axis, the range of input sizes that end the four blocks with `out` voxels.
    pub fn input_range_for_output(&self, out: usize) -> std::ops::RangeInclusive<usize> {
        // Inverse of s ↦ floor((s − (k − 1)) / p), applied from the last block back.
        let (lo, hi) =
            self.pools.iter().rev().fold((out, out), |(lo, hi), &pool| {
                (lo * pool + self.kernel - 1, hi * pool + pool - 1 + self.kernel - 1)
            });
        lo..=hi
    }

    /// A fresh, randomly initialised network for inputs `[N, 1, D, H, W]` with `[D, H, W]` =
    /// `input` (see the module documentation for seeding).
    pub fn init<B: Backend>(
        &self,
        input: [usize; 3],
        device: &B::Device,
    ) -> Result<ClassificationModel3D<B>, ModelError> {
        let flatten = self.flatten_size(input)?;
        let k = self.kernel;
        let mut in_channels = 1;
        let blocks = self
            .channels
            .iter()
            .zip(self.pools)
            .map(|(&out_channels, pool)| {
                let conv = Conv3dConfig::new([in_channels, out_channels], [k, k, k])
                    .with_padding(PaddingConfig3d::Valid)
                    .with_bias(true)
                    .init(device);
                in_channels = out_channels;
                ConvBlock { conv, bn: BatchNorm3d::new(out_channels, device), pool }
            })
            .collect();
        Ok(ClassificationModel3D {
            blocks,
            dense_1: LinearConfig::new(flatten, self.dense[0]).init(device),
            dense_2: LinearConfig::new(self.dense[0], self.dense[1]).init(device),
            dense_3: LinearConfig::new(self.dense[1], self.classes).init(device),
            config: self.clone(),
            input_shape: input,
        })
    }
}

/// One block: Conv3d → BatchNorm3d → ReLU → MaxPool3d(pool, pool).
#[derive(Module, Debug)]
pub struct ConvBlock<B: Backend> {
    /// The valid (unpadded) convolution with bias.
    pub conv: Conv3d<B>,
    /// Batch normalisation after the convolution.
    pub bn: BatchNorm3d<B>,
    /// Pooling window = stride along every axis.
    pub pool: usize,
}

impl<B: FastBackend> ConvBlock<B> {
    /// The block in training mode (batch statistics).
    pub fn forward_train(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let x = self.conv_forward(x);
        match self.bn.forward_train_max_pool_relu(x, self.pool) {
            Ok(y) => y,
            Err(x) => self.relu_pool(self.bn.forward_train(x)),
        }
    }

    /// The block in inference mode (running statistics).
    pub fn forward_eval(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let x = self.conv_forward(x);
        if crate::fast::fast_cpu() {
            // BatchNorm, pooling and ReLU as one operation where the fast CPU path applies.
            let (scale, shift) = self.bn.eval_affine();
            match crate::fast::affine_max_pool3d_relu(x, scale, shift, [self.pool; 3]) {
                Ok(y) => y,
                Err(x) => self.relu_pool(self.bn.forward_eval(x)),
            }
        } else {
            self.pool(relu(self.bn.forward_eval(x)))
        }
    }

    /// ReLU then pooling; with the fast CPU path on, pooling then ReLU, which gives the same
    /// values and gradients (max commutes with the monotone ReLU, and a window whose maximum is
    /// ≤ 0 gets a zero gradient either way) on a `pool³` times smaller tensor.
    fn relu_pool(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        if crate::fast::fast_cpu() { relu(self.pool(x)) } else { self.pool(relu(x)) }
    }

    /// Convolution and batch normalisation in inference mode, before the ReLU (for relevance
    /// methods that change the ReLU's backward pass).
    pub fn conv_bn_eval(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.bn.forward_eval(self.conv_forward(x))
    }

    /// The block's convolution: [`crate::fast::conv3d`] (the fast CPU path where it applies)
    /// for the network's valid stride-1 convolutions, Burn's `Conv3d::forward` otherwise.
    pub fn conv_forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let c = &self.conv;
        let plain = c.stride == [1, 1, 1]
            && c.dilation == [1, 1, 1]
            && c.groups == 1
            && matches!(c.padding, PaddingConfig3d::Valid | PaddingConfig3d::Explicit(0, 0, 0));
        if plain { crate::fast::conv3d(x, c.weight.val(), c.bias.as_ref().map(|b| b.val())) } else { c.forward(x) }
    }

    /// The block's max pooling.
    pub fn pool(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        if self.pool == 1 { x } else { crate::fast::max_pool3d(x, [self.pool; 3]) }
    }
}

/// The paper's 3D CNN. Field names follow the PyTorch module (`Conv_i` = `blocks[i-1].conv`,
/// `Conv_i_bn` = `blocks[i-1].bn`, `dense_1..3`); see [`crate::weights`] for the key mapping.
///
/// `Clone` shares the BatchNorm running statistics with the original (Burn's `RunningState`);
/// use [`ClassificationModel3D::independent_copy`] for a snapshot that stays put.
#[derive(Module, Debug)]
pub struct ClassificationModel3D<B: Backend> {
    /// The four convolution blocks.
    pub blocks: Vec<ConvBlock<B>>,
    /// Flatten → dense_1 (Dropout before it in training).
    pub dense_1: Linear<B>,
    /// dense_1 → dense_2.
    pub dense_2: Linear<B>,
    /// dense_2 → logits.
    pub dense_3: Linear<B>,
    #[module(skip)]
    config: NetworkConfig,
    #[module(skip)]
    input_shape: [usize; 3],
}

/// The forward passes: the network's operations come from [`FastBackend`] (fast CPU kernels on
/// Flex, Burn's operations elsewhere).
impl<B: FastBackend> ClassificationModel3D<B> {
    /// Training forward pass: `[N, 1, D, H, W]` → logits `[N, classes]` with BatchNorm on batch
    /// statistics (running statistics updated) and dropout active, on any backend.
    ///
    /// # Panics
    ///
    /// If `x` does not have the shape the model was built for (check with
    /// [`Self::check_input`] where the shape is not known to be right).
    pub fn forward_train(&self, x: Tensor<B, 5>) -> Tensor<B, 2> {
        self.assert_input(&x);
        let x = self.blocks.iter().fold(x, |x, block| block.forward_train(x));
        let x = dropout(x.flatten(1, 4), self.config.dropout);
        self.head(x)
    }

    /// Inference forward pass: `[N, 1, D, H, W]` → logits `[N, classes]` with BatchNorm on the
    /// running statistics and no dropout, on every backend (Autodiff included), so each scan's
    /// output (and input gradient) is independent of the other scans in the batch.
    ///
    /// # Panics
    ///
    /// If `x` does not have the shape the model was built for (see [`Self::check_input`]).
    pub fn forward_eval(&self, x: Tensor<B, 5>) -> Tensor<B, 2> {
        self.assert_input(&x);
        let x = self.features_eval(x);
        self.head(x.flatten(1, 4))
    }

    /// Inference-mode output of the four blocks, `[N, C, d, h, w]` before the flatten.
    pub fn features_eval(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        self.blocks.iter().fold(x, |x, block| block.forward_eval(x))
    }
}

impl<B: Backend> ClassificationModel3D<B> {
    /// The dense head on flattened features `[N, F]` → logits (no dropout).
    pub fn head(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = relu(self.dense_1.forward(x));
        let x = relu(self.dense_2.forward(x));
        self.dense_3.forward(x)
    }

    /// Checks that a tensor shape is `[N ≥ 1, 1, D, H, W]` with the model's grid.
    pub fn check_input(&self, dims: [usize; 5]) -> Result<(), ModelError> {
        let [n, c, d, h, w] = dims;
        if n == 0 || c != 1 || [d, h, w] != self.input_shape {
            return Err(ModelError::InputShape {
                found: dims.to_vec(),
                expected: format!(
                    "[N ≥ 1, 1, {}, {}, {}] (grid {})",
                    self.input_shape[0],
                    self.input_shape[1],
                    self.input_shape[2],
                    format_grid(self.input_shape)
                ),
            });
        }
        Ok(())
    }

    fn assert_input(&self, x: &Tensor<B, 5>) {
        if let Err(e) = self.check_input(x.dims()) {
            panic!("{e}");
        }
    }

    /// Number of trainable parameters (BatchNorm running statistics excluded): 737,026 for the
    /// paper's network at 1 mm.
    pub fn num_params(&self) -> usize {
        let tensor_len = |dims: &[usize]| dims.iter().product::<usize>();
        let linear = |l: &Linear<B>| tensor_len(&l.weight.dims()) + l.bias.as_ref().map_or(0, |b| b.dims()[0]);
        let blocks: usize = self
            .blocks
            .iter()
            .map(|b| {
                tensor_len(&b.conv.weight.dims())
                    + b.conv.bias.as_ref().map_or(0, |b| b.dims()[0])
                    + 2 * b.bn.channels()
            })
            .sum();
        blocks + linear(&self.dense_1) + linear(&self.dense_2) + linear(&self.dense_3)
    }

    /// The input grid `[D, H, W]` the model was built for.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input_shape
    }

    /// The architecture.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// A copy that shares no BatchNorm running statistics with `self` (parameters are immutable
    /// tensors, so sharing them is safe).
    pub fn independent_copy(&self) -> Self {
        let mut copy = self.clone();
        for block in &mut copy.blocks {
            block.bn = block.bn.independent_copy();
        }
        copy
    }

    /// The layers of the cascading model-parameter randomisation test (Adebayo et al. 2018,
    /// "Sanity Checks for Saliency Maps"), from the output down: `dense_3`, `dense_2`,
    /// `dense_1`, then `block4` … `block1` (a block is a convolution with its BatchNorm).
    pub fn cascade_layers(&self) -> Vec<String> {
        let mut names: Vec<String> = ["dense_3", "dense_2", "dense_1"].map(String::from).to_vec();
        names.extend((1..=self.blocks.len()).rev().map(|i| format!("block{i}")));
        names
    }

    /// Step `k` of the cascading randomisation: an independent copy of `self` whose first `k`
    /// layers of [`Self::cascade_layers`] (the top `k`) are taken from `fresh`, a network of the
    /// same configuration and grid (for example freshly initialised with a seed). `k = 0` is a
    /// copy of `self`. BatchNorm running statistics are copied, never shared.
    ///
    /// Errors when `k` exceeds the number of layers or `fresh` has another architecture.
    pub fn with_top_layers_from(&self, fresh: &Self, k: usize) -> Result<Self, ModelError> {
        let layers = self.cascade_layers().len();
        if k > layers {
            return Err(ModelError::InvalidConfig {
                field: "cascade step",
                message: format!("is {k}, but the network has {layers} layers to randomise"),
            });
        }
        if fresh.config != self.config || fresh.input_shape != self.input_shape {
            return Err(ModelError::InvalidConfig {
                field: "cascade step",
                message: format!(
                    "the randomised network ({:?} on {}) differs from the trained one ({:?} on {}); expected the \
                     same architecture and grid",
                    fresh.config,
                    format_grid(fresh.input_shape),
                    self.config,
                    format_grid(self.input_shape)
                ),
            });
        }
        let mut out = self.independent_copy();
        let fresh = fresh.independent_copy();
        let n_blocks = self.blocks.len();
        for step in 1..=k {
            match step {
                1 => out.dense_3 = fresh.dense_3.clone(),
                2 => out.dense_2 = fresh.dense_2.clone(),
                3 => out.dense_1 = fresh.dense_1.clone(),
                s => {
                    let i = n_blocks - (s - 3);
                    out.blocks[i] = fresh.blocks[i].clone();
                }
            }
        }
        Ok(out)
    }
}

/// Inverted dropout (`x·mask / (1 − p)`), active on every backend; `p = 0` is the identity.
pub(crate) fn dropout<B: Backend>(x: Tensor<B, 2>, p: f64) -> Tensor<B, 2> {
    if p == 0.0 {
        return x;
    }
    let keep = 1.0 - p;
    let mask = x.random_like(Distribution::Bernoulli(keep));
    x.mul(mask).div_scalar(keep)
}

/// Gradient of one output per scan with respect to the input, with the network in inference
/// mode (running statistics, no dropout): `∂p_c/∂x` when `of_probability` (softmax probability,
/// as the paper's sensitivity analysis), else `∂logit_c/∂x`. `x` is `[N, 1, D, H, W]`; the
/// result has the same shape and row `i` depends on scan `i` only. Parameters are excluded from
/// the backward pass (no weight gradients), which halves its cost.
///
/// For a model on a plain backend `B`, wrap it first:
/// `ClassificationModel3D::<Autodiff<B>>::from_inner(model)`.
pub fn input_gradient<B: FastAutodiffBackend>(
    model: &ClassificationModel3D<B>,
    x: Tensor<B::InnerBackend, 5>,
    target_class: usize,
    of_probability: bool,
) -> Result<Tensor<B::InnerBackend, 5>, ModelError> {
    let n = x.dims()[0];
    input_gradient_for(model, x, &vec![target_class; n], of_probability)
}

/// As [`input_gradient`] with one target class per scan (`targets.len()` = N), e.g. each scan's
/// predicted class.
pub fn input_gradient_for<B: FastAutodiffBackend>(
    model: &ClassificationModel3D<B>,
    x: Tensor<B::InnerBackend, 5>,
    targets: &[usize],
    of_probability: bool,
) -> Result<Tensor<B::InnerBackend, 5>, ModelError> {
    let dims = x.dims();
    model.check_input(dims)?;
    if targets.len() != dims[0] {
        return Err(ModelError::InputShape {
            found: dims.to_vec(),
            expected: format!("a batch of {} scans, one per target class", targets.len()),
        });
    }
    let classes = model.config().classes;
    if let Some(&class) = targets.iter().find(|&&c| c >= classes) {
        return Err(ModelError::TargetClass { class, classes });
    }
    let device = x.device();
    // A clone of a lazily initialised parameter draws its own values: fix them first.
    materialize_parameters(model);
    let frozen = model.clone().no_grad();
    let x = Tensor::<B, 5>::from_inner(x).require_grad();
    let logits = frozen.forward_eval(x.clone());
    let out = if of_probability { softmax(logits, 1) } else { logits };
    let mut selector = vec![0.0f32; dims[0] * classes];
    for (i, &c) in targets.iter().enumerate() {
        selector[i * classes + c] = 1.0;
    }
    let selector = Tensor::<B, 2>::from_data(TensorData::new(selector, [dims[0], classes]), &device);
    let grads = out.mul(selector).sum().backward();
    Ok(x.grad(&grads).unwrap_or_else(|| {
        // Unreachable for a graph that uses `x`; a zero gradient is the honest answer otherwise.
        Tensor::zeros(dims, &device)
    }))
}

/// Initialises every parameter of `model` in place.
///
/// Burn initialises a freshly built module's parameters lazily, and a clone of a parameter not
/// yet initialised draws its own independent values. Call this on a freshly built model before
/// cloning it (for example before `Autodiff::from_inner(model.clone())`), so that every copy is
/// the same network. A no-op for loaded or trained models.
pub fn materialize_parameters<B: Backend, M: Module<B>>(model: &M) {
    struct Initialise;
    impl<B: Backend> burn::module::ModuleVisitor<B> for Initialise {
        fn visit_float<const K: usize>(&mut self, param: &burn::module::Param<Tensor<B, K>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Initialise);
}

impl<B: AutodiffBackend> ClassificationModel3D<B> {
    /// The same network on the inner (non-autodiff) backend, for fast inference.
    pub fn inference(&self) -> ClassificationModel3D<B::InnerBackend> {
        self.valid()
    }
}
