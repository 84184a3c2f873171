//! Linear (bilinear, trilinear) resizing of `[N, C, spatial…]` tensors, for Grad-CAM maps
//! (Burn has no 3D interpolation).
//!
//! Convention: PyTorch's `interpolate(mode="linear"/"bilinear"/"trilinear",
//! align_corners=False)`, applied separably axis by axis. Output index `j` of an axis resized
//! from `n_in` to `n_out` samples the input at `s = (j + ½) · n_in/n_out − ½`, clamped below at 0,
//! between `i₀ = ⌊s⌋` and `i₁ = min(i₀ + 1, n_in − 1)` with weights `1 − (s − i₀)` and `s − i₀`;
//! so values beyond the outer sample centres repeat the edge. Resizing 2 → 4 along one axis gives
//! `[a, b] → [a, ¾a + ¼b, ¼a + ¾b, b]`. Shrinking interpolates the same way, without
//! anti-aliasing.
//!
//! Written with tensor operations (`select`, broadcast multiply), so it runs on the tensor's
//! own backend and device.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::{RelevanceError, Result};

/// Resizes the spatial axes (all but the first two) of `x` `[N, C, spatial…]` to `size` by
/// linear interpolation (see the module documentation for the convention). `size` must have one
/// positive entry per spatial axis; an axis already of its size is left untouched.
pub fn resize_linear<B: Backend, const D: usize>(x: Tensor<B, D>, size: &[usize]) -> Result<Tensor<B, D>> {
    let dims = x.dims();
    if D < 3 || size.len() != D - 2 {
        return Err(RelevanceError::Parameter {
            name: "size",
            message: format!(
                "has {} entries for a tensor of shape {dims:?}; expected one per spatial axis ({})",
                size.len(),
                D.saturating_sub(2)
            ),
        });
    }
    if size.contains(&0) || dims[2..].contains(&0) {
        return Err(RelevanceError::Parameter {
            name: "size",
            message: format!("resizing {:?} to {size:?}: every spatial size must be at least 1", &dims[2..]),
        });
    }
    let device = x.device();
    let mut x = x;
    for (axis, &out) in (2..D).zip(size) {
        let n_in = dims[axis];
        if n_in == out {
            continue;
        }
        let taps: Vec<Tap> = (0..out).map(|j| source_taps(j, n_in, out)).collect();
        let index = |pick: fn(&Tap) -> usize| {
            let idx: Vec<i64> = taps.iter().map(|t| pick(t) as i64).collect();
            Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [out]), &device)
        };
        let mut shape = [1; D];
        shape[axis] = out;
        let weight = |pick: fn(&Tap) -> f32| {
            let w: Vec<f32> = taps.iter().map(pick).collect();
            Tensor::<B, 1>::from_data(TensorData::new(w, [out]), &device).reshape(shape)
        };
        let lower = x.clone().select(axis, index(|t| t.lower)).mul(weight(|t| t.lower_weight));
        let upper = x.select(axis, index(|t| t.upper)).mul(weight(|t| t.upper_weight));
        x = lower.add(upper);
    }
    Ok(x)
}

/// The two input samples an output sample interpolates, and their weights.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tap {
    lower: usize,
    upper: usize,
    lower_weight: f32,
    upper_weight: f32,
}

/// PyTorch's `align_corners=False` source index for output `j` of an axis `n_in → n_out`.
fn source_taps(j: usize, n_in: usize, n_out: usize) -> Tap {
    let scale = n_in as f64 / n_out as f64;
    let s = ((j as f64 + 0.5) * scale - 0.5).max(0.0);
    let lower = (s.floor() as usize).min(n_in - 1);
    let upper = (lower + 1).min(n_in - 1);
    // At the upper edge both taps are the last sample; a zero weight keeps the taps canonical.
    let t = if upper == lower { 0.0 } else { (s - lower as f64).clamp(0.0, 1.0) as f32 };
    Tap { lower, upper, lower_weight: 1.0 - t, upper_weight: t }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_follow_pytorch_for_two_to_four() {
        let taps: Vec<(usize, usize, f32)> =
            (0..4).map(|j| source_taps(j, 2, 4)).map(|t| (t.lower, t.upper, t.upper_weight)).collect();
        assert_eq!(taps, vec![(0, 1, 0.0), (0, 1, 0.25), (0, 1, 0.75), (1, 1, 0.0)]);
    }

    #[test]
    fn taps_of_same_size_are_the_identity() {
        for j in 0..7 {
            let t = source_taps(j, 7, 7);
            assert_eq!((t.lower, t.upper_weight), (j, 0.0));
        }
    }
}
