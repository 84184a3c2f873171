//! The paper's 3D CNN (Rieke et al. 2018, `ClassificationModel3D`) in Burn 0.21.
//!
//! - [`network`]: [`NetworkConfig`] (defaults = the paper) and [`ClassificationModel3D`] with an
//!   explicit training forward ([`ClassificationModel3D::forward_train`]: batch statistics,
//!   dropout) and an explicit inference forward ([`ClassificationModel3D::forward_eval`]: running
//!   statistics, no dropout, on every backend, Autodiff included), plus [`input_gradient`].
//! - [`pool`]: exact 3D max pooling (Burn has none) built from two 2D poolings.
//! - [`norm`]: a PyTorch-compatible `BatchNorm3d` (unbiased running variance) computed with
//!   reductions and a per-channel grouped 1×1×1 convolution instead of broadcasting.
//! - [`fast`]: the fast CPU paths, on by default on [`Cpu`] / [`CpuTrain`] (convolution and
//!   its backward passes as cache-sized tiles of register-blocked SIMD multiply-adds, fused BatchNorm → max
//!   pooling → ReLU with a sparse backward pass, and mimalloc for the binaries), with
//!   `MODEL_FAST_CPU=0` / [`fast::set_fast_cpu`] to switch back to Burn's own operations. CUDA
//!   trains with [`fast::portable`] (the convolution's weight gradient as batched matmuls per
//!   kernel tap, pooling as reshape + `max_dim`; `MODEL_GPU_OPS=burn` for Burn's own) and takes
//!   Burn's operations otherwise. The choice is the backend-extension trait [`FastBackend`],
//!   which the model's generic code requires (`B: FastBackend`).
//! - [`probe`]: each operation of a training step timed alone on any backend, in supervised
//!   child processes with a time limit each (finds an operation that hangs on a GPU).
//! - [`device`]: CPU / CUDA (`cuda:N`) choice; asking for CUDA without support is an error,
//!   never a panic.
//! - [`weights`]: safetensors export/import and PyTorch `torch.save` import with the PyTorch
//!   state-dict key names (`Conv_1.weight`, `Conv_1_bn.running_mean`, `dense_1.weight`, …).
//!
//! Seeding: weights are drawn from the backend's random generator; call
//! `B::seed(&device, seed)` (a process-wide generator on [`Cpu`]) right before
//! [`NetworkConfig::init`] to get the same weights for the same seed. Dropout masks in
//! [`ClassificationModel3D::forward_train`] draw from the same generator.

pub mod checkpoint;
pub mod data;
pub mod device;
pub mod fast;
pub mod metrics;
pub mod network;
pub mod norm;
pub mod pool;
pub mod probe;
pub mod train;
pub mod weights;

use std::path::PathBuf;

pub use device::{DeviceKind, check_cuda};
pub use fast::{FastAutodiffBackend, FastBackend};
pub use network::{
    ClassificationModel3D, ConvBlock, NetworkConfig, input_gradient, input_gradient_for, materialize_parameters,
};
pub use norm::BatchNorm3d;
pub use pool::max_pool3d;

/// The default CPU backend (Burn's Flex: pure Rust, SIMD, rayon).
pub type Cpu = burn::backend::Flex;
/// The CPU backend with automatic differentiation, for training and input gradients.
pub type CpuTrain = burn::backend::Autodiff<Cpu>;
/// The CUDA backend (only in builds with the `cuda` feature).
#[cfg(feature = "cuda")]
pub type Gpu = burn::backend::Cuda;
/// The CUDA backend with automatic differentiation (only in builds with the `cuda` feature).
#[cfg(feature = "cuda")]
pub type GpuTrain = burn::backend::Autodiff<Gpu>;
/// Burn's wgpu backend (only in builds with the `wgpu` feature): the CubeCL kernels of the CUDA
/// backend on Vulkan, Metal or DX12, or on a software Vulkan without any GPU.
#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::Wgpu;
/// The wgpu backend with automatic differentiation (only in builds with the `wgpu` feature).
#[cfg(feature = "wgpu")]
pub type WgpuTrain = burn::backend::Autodiff<Wgpu>;

/// Errors of the model crate; each message names the file, key or shape and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A [`NetworkConfig`] field has an impossible value.
    #[error("invalid network config: `{field}` {message}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The input grid is too small for the convolution/pooling blocks.
    #[error(
        "input grid {grid} is too small for the network: block {block} (conv kernel {kernel}, pool {pool}) \
         gets {got} voxels on axis {axis} but needs at least {block_needs}; with this config the network \
         needs at least {needs} voxels per axis"
    )]
    GridTooSmall {
        /// The grid, formatted like `40×40×40`.
        grid: String,
        /// 1-based block number that fails.
        block: usize,
        /// 0-based grid axis that fails.
        axis: usize,
        /// Voxels on that axis entering the block.
        got: usize,
        /// Voxels the block needs on that axis.
        block_needs: usize,
        /// Convolution kernel size.
        kernel: usize,
        /// Pool size of that block.
        pool: usize,
        /// Minimal voxels per axis for the whole network.
        needs: usize,
    },
    /// A tensor given to the model has the wrong shape.
    #[error("input tensor has shape {found:?}, expected {expected}")]
    InputShape {
        /// The shape found.
        found: Vec<usize>,
        /// The expected shape, in words.
        expected: String,
    },
    /// A target class index is out of range.
    #[error("target class {class} is out of range: the model has {classes} classes")]
    TargetClass {
        /// The class asked for.
        class: usize,
        /// Number of classes of the model.
        classes: usize,
    },
    /// CUDA was requested in a build without the `cuda` feature.
    #[error("this build has no CUDA support; rebuild with `--features cuda` or choose the cpu device")]
    CudaNotCompiled,
    /// CUDA was requested but the NVIDIA driver or runtime libraries are not present.
    #[error("CUDA was requested but {0}; install the NVIDIA driver or choose the cpu device")]
    CudaUnavailable(String),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`cannot read`, `cannot write`, …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A weights file is malformed or of an unknown format.
    #[error("weights file {path}: {message}")]
    WeightsFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A weights file lacks a tensor the network needs.
    #[error("weights file {path}: missing key `{key}` (expected shape {expected:?}){hint}")]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The PyTorch state-dict key.
        key: String,
        /// The shape the network expects.
        expected: Vec<usize>,
        /// Extra context, e.g. keys that look similar (may be empty).
        hint: String,
    },
    /// A weights file holds keys the network does not have.
    #[error(
        "weights file {path}: unexpected keys {keys:?}; expected only the PyTorch state-dict keys of ClassificationModel3D"
    )]
    UnexpectedKeys {
        /// The file.
        path: PathBuf,
        /// The unknown keys.
        keys: Vec<String>,
    },
    /// A tensor in a weights file has a different shape than the network expects.
    #[error("weights file {path}: key `{key}` has shape {found:?}, expected {expected:?}{hint}")]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The PyTorch state-dict key.
        key: String,
        /// The shape the network (config and grid) expects.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
        /// Extra context, e.g. which grids fit (may be empty).
        hint: String,
    },
}

/// Formats a grid as `193×229×193`.
pub fn format_grid(grid: [usize; 3]) -> String {
    format!("{}×{}×{}", grid[0], grid[1], grid[2])
}
