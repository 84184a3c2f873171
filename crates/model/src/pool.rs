//! Exact 3D max pooling with kernel = stride, no padding, floor mode (PyTorch's
//! `MaxPool3d(k)`), which Burn 0.21 lacks.
//!
//! It is computed as two 2D max poolings: first over (H, W) with the depth axis folded into the
//! channel axis, then over D with (H, W) flattened into one axis of width 1 window. The maximum of
//! maxima is the maximum, and floor mode per axis is floor mode of the 3D window, so values are
//! exact. Gradients go through Burn's differentiable `max_pool2d` (indices of the maxima). On ties
//! the backend's 2D pooling picks the first maximal element of its window (Flex scans the window in
//! raster order and replaces only on `>`), so the composite sends the gradient to the smallest
//! depth that holds the maximum and, within it, the first (row-major) position: the first maximal
//! element of the 3D window in (D, H, W) raster order, as PyTorch does. Tensors stay at 4
//! dimensions in between (some backends panic above 6).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::max_pool2d;

/// Output size of one axis: floor(size / kernel) (kernel = stride, no padding).
pub fn pooled_len(size: usize, kernel: usize) -> usize {
    size / kernel
}

/// 3D max pooling of `x` `[N, C, D, H, W]` with window = stride = `kernel` `[kd, kh, kw]`, floor
/// mode: output `[N, C, D/kd, H/kh, W/kw]`. Trailing voxels that do not fill a window are dropped.
///
/// # Panics
///
/// If a kernel size is 0 or larger than the input along its axis (the network checks its grid
/// before it gets here, see `NetworkConfig::flatten_size`).
pub fn max_pool3d<B: Backend>(x: Tensor<B, 5>, kernel: [usize; 3]) -> Tensor<B, 5> {
    let [n, c, d, h, w] = x.dims();
    let [kd, kh, kw] = kernel;
    assert!(
        kd >= 1 && kh >= 1 && kw >= 1 && d >= kd && h >= kh && w >= kw,
        "max_pool3d: kernel {kernel:?} does not fit input [{d}, {h}, {w}]"
    );
    let (od, oh, ow) = (d / kd, h / kh, w / kw);
    // (H, W) first: it shrinks the tensor by kh·kw before the depth pass.
    let x = if kh == 1 && kw == 1 {
        x.reshape([n * c, d, h, w])
    } else {
        max_pool2d(x.reshape([n * c, d, h, w]), [kh, kw], [kh, kw], [0, 0], [1, 1], false)
    };
    let x = if kd == 1 {
        x
    } else {
        let x = x.reshape([n * c, 1, d, oh * ow]);
        max_pool2d(x, [kd, 1], [kd, 1], [0, 0], [1, 1], false)
    };
    x.reshape([n, c, od, oh, ow])
}
