//! Scans and feature maps as host buffers, and the box copies that occlusion is made of.
//!
//! Every buffer is channel-major `[C, d0, d1, d2]` in C order. A 2D image `[C, H, W]` is held as
//! `[C, 1, H, W]`, so one code path serves both ranks.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// A half-open box `[lo, hi)` per axis of a `[d0, d1, d2]` grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Box3 {
    pub lo: [usize; 3],
    pub hi: [usize; 3],
}

impl Box3 {
    /// Side lengths.
    pub fn len(&self) -> [usize; 3] {
        [0, 1, 2].map(|a| self.hi[a].saturating_sub(self.lo[a]))
    }

    /// Number of voxels.
    pub fn volume(&self) -> usize {
        self.len().iter().product()
    }

    /// The intersection with another box (possibly empty).
    pub fn intersect(&self, other: &Box3) -> Box3 {
        let lo = [0, 1, 2].map(|a| self.lo[a].max(other.lo[a]));
        let hi = [0, 1, 2].map(|a| self.hi[a].min(other.hi[a]).max(lo[a]));
        Box3 { lo, hi }
    }
}

/// One input (or one block's activations) on the host: `channels × dims` values.
#[derive(Debug, Clone)]
pub(crate) struct HostGrid {
    /// Spatial rank of the tensor this came from (2 or 3).
    pub rank: usize,
    pub channels: usize,
    pub dims: [usize; 3],
    pub data: Vec<f32>,
}

impl HostGrid {
    /// Reads `x` `[1, C, spatial…]` (rank 4 or 5) back to the host.
    pub fn from_tensor<B: Backend, const D: usize>(x: Tensor<B, D>) -> Self {
        let shape = x.dims();
        let data = tensor_values(x);
        let (channels, dims) = match D {
            4 => (shape[1], [1, shape[2], shape[3]]),
            _ => (shape[1], [shape[2], shape[3], shape[4]]),
        };
        HostGrid { rank: D - 2, channels, dims, data }
    }

    /// Voxels per channel.
    pub fn voxels(&self) -> usize {
        self.dims.iter().product()
    }

    /// Values of one input (all channels).
    pub fn len(&self) -> usize {
        self.channels * self.voxels()
    }

    /// The tensor shape of a batch of `n` inputs like this one, of the original rank.
    pub fn batch_shape(&self, n: usize) -> Vec<usize> {
        let mut shape = vec![n, self.channels];
        shape.extend_from_slice(&self.dims[3 - self.rank..]);
        shape
    }

    /// Whether every value inside `region` (all channels) equals `value` exactly.
    pub fn box_all_equal(&self, region: &Box3, value: f32) -> bool {
        let [l0, l1, l2] = region.len();
        let [_, d1, d2] = self.dims;
        (0..self.channels).all(|c| {
            (0..l0).all(|i| {
                (0..l1).all(|j| {
                    let start = ((c * self.dims[0] + region.lo[0] + i) * d1 + region.lo[1] + j) * d2 + region.lo[2];
                    self.data[start..start + l2].iter().all(|&v| v == value)
                })
            })
        })
    }
}

/// The values of a tensor as `f32`, in C order.
pub(crate) fn tensor_values<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    x.into_data().convert::<f32>().into_vec::<f32>().expect("data converted to f32 reads back as f32")
}

/// A tensor of the given shape from `f32` values in C order.
pub(crate) fn tensor_from<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: Vec<usize>,
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Copies the box `len` at `src_at` of `src` (`[C, src_dims]`) to `dst_at` of `dst`
/// (`[C, dst_dims]`), all `channels`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_box(
    src: &[f32],
    src_dims: [usize; 3],
    src_at: [usize; 3],
    dst: &mut [f32],
    dst_dims: [usize; 3],
    dst_at: [usize; 3],
    len: [usize; 3],
    channels: usize,
) {
    if len.contains(&0) {
        return;
    }
    let src_voxels: usize = src_dims.iter().product();
    let dst_voxels: usize = dst_dims.iter().product();
    for c in 0..channels {
        for i in 0..len[0] {
            for j in 0..len[1] {
                let s = c * src_voxels + ((src_at[0] + i) * src_dims[1] + src_at[1] + j) * src_dims[2] + src_at[2];
                let d = c * dst_voxels + ((dst_at[0] + i) * dst_dims[1] + dst_at[1] + j) * dst_dims[2] + dst_at[2];
                dst[d..d + len[2]].copy_from_slice(&src[s..s + len[2]]);
            }
        }
    }
}

/// Sets the box `region` of `dst` (`[C, dims]`) to `value`, all `channels`.
pub(crate) fn fill_box(dst: &mut [f32], dims: [usize; 3], region: &Box3, channels: usize, value: f32) {
    let len = region.len();
    if len.contains(&0) {
        return;
    }
    let voxels: usize = dims.iter().product();
    for c in 0..channels {
        for i in 0..len[0] {
            for j in 0..len[1] {
                let d = c * voxels + ((region.lo[0] + i) * dims[1] + region.lo[1] + j) * dims[2] + region.lo[2];
                dst[d..d + len[2]].fill(value);
            }
        }
    }
}
