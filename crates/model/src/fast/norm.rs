//! Training-mode batch normalisation over `[N, C, S]` on `f32` slices, forward and backward in
//! two passes each: the CPU kernels behind [`crate::fast::batch_norm_train`].
//!
//! Forward: per channel, the mean and biased variance of the batch (sums in `f32` SIMD lanes per
//! chunk of 4096 values, chunks added in `f64`), then `y = (x − μ)·γ/σ + β` with
//! `σ = √(var + ε)`. Backward, with `M = N·S` and `x̂ = (x − μ)/σ`: `dβ = Σ dy`,
//! `dγ = Σ dy·x̂`, `dx = γ/σ · (dy − dβ/M − x̂·dγ/M)` (the gradient through the batch statistics
//! included), again one pass for the sums and one for `dx`.

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

/// Values per partial sum in `f32` before it is added to the `f64` total.
const CHUNK: usize = 4096;

/// `(Σ a, Σ a·b)` over two equally long slices, `f32` lanes per chunk, `f64` across chunks.
fn sums(a: &[f32], b: &[f32]) -> (f64, f64) {
    struct Sums<'a> {
        a: &'a [f32],
        b: &'a [f32],
    }
    impl WithSimd for Sums<'_> {
        type Output = (f64, f64);
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> (f64, f64) {
            let (mut total_a, mut total_ab) = (0.0f64, 0.0f64);
            for (ca, cb) in self.a.chunks(CHUNK).zip(self.b.chunks(CHUNK)) {
                let (ha, ta) = S::as_simd_f32s(ca);
                let (hb, tb) = S::as_simd_f32s(cb);
                let mut sa = simd.splat_f32s(0.0);
                let mut sab = simd.splat_f32s(0.0);
                for (&va, &vb) in ha.iter().zip(hb) {
                    sa = simd.add_f32s(sa, va);
                    sab = simd.mul_add_e_f32s(va, vb, sab);
                }
                let mut tail_a = 0.0f32;
                let mut tail_ab = 0.0f32;
                for (&va, &vb) in ta.iter().zip(tb) {
                    tail_a += va;
                    tail_ab += va * vb;
                }
                total_a += f64::from(simd.reduce_sum_f32s(sa)) + f64::from(tail_a);
                total_ab += f64::from(simd.reduce_sum_f32s(sab)) + f64::from(tail_ab);
            }
            (total_a, total_ab)
        }
    }
    assert_eq!(a.len(), b.len());
    Arch::new().dispatch(Sums { a, b })
}

/// Per-channel `(Σ a, Σ a·b)` over `[N, C, S]` slices.
fn channel_sums(a: &[f32], b: &[f32], channels: usize, spatial: usize) -> Vec<(f64, f64)> {
    let per_plane: Vec<(f64, f64)> =
        a.par_chunks(spatial).zip(b.par_chunks(spatial)).map(|(pa, pb)| sums(pa, pb)).collect();
    let mut total = vec![(0.0, 0.0); channels];
    for (i, (sa, sab)) in per_plane.into_iter().enumerate() {
        total[i % channels].0 += sa;
        total[i % channels].1 += sab;
    }
    total
}

/// Batch statistics of `x` `[N, C, S]`: per channel the mean and the biased variance.
pub fn batch_stats(x: &[f32], channels: usize, spatial: usize) -> (Vec<f64>, Vec<f64>) {
    assert!(channels > 0 && spatial > 0 && x.len().is_multiple_of(channels * spatial), "batch norm input length");
    let count = (x.len() / channels) as f64;
    channel_sums(x, x, channels, spatial)
        .into_iter()
        .map(|(s, ss)| {
            let mean = s / count;
            (mean, (ss / count - mean * mean).max(0.0))
        })
        .unzip()
}

/// `y = x·scale[c] + shift[c]` over `[N, C, S]`.
pub fn affine(x: &[f32], scale: &[f32], shift: &[f32], spatial: usize) -> Vec<f32> {
    let channels = scale.len();
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(spatial).zip(x.par_chunks(spatial)).enumerate().for_each(|(i, (yp, xp))| {
        let (a, b) = (scale[i % channels], shift[i % channels]);
        yp.iter_mut().zip(xp).for_each(|(y, &x)| *y = x * a + b);
    });
    y
}

/// From the per-channel sums `(Σ dy, Σ dy·x)` over the `count` values of a channel: `(dγ, dβ,
/// (A, B, C))` with the input gradient `dx = A·dy + B·x + C` per channel.
#[allow(clippy::type_complexity)]
pub fn backward_coefficients(
    sums: &[(f64, f64)],
    gamma: &[f32],
    mean: &[f64],
    var: &[f64],
    epsilon: f64,
    count: f64,
) -> (Vec<f32>, Vec<f32>, Vec<(f32, f32, f32)>) {
    let channels = gamma.len();
    let mut dgamma = vec![0.0f32; channels];
    let mut dbeta = vec![0.0f32; channels];
    let mut coef = vec![(0.0f32, 0.0f32, 0.0f32); channels];
    for c in 0..channels {
        let sigma = (var[c] + epsilon).sqrt();
        let (sum_dy, sum_dy_x) = sums[c];
        let sum_dy_xhat = (sum_dy_x - mean[c] * sum_dy) / sigma;
        dbeta[c] = sum_dy as f32;
        dgamma[c] = sum_dy_xhat as f32;
        let g = f64::from(gamma[c]) / sigma;
        let k = sum_dy_xhat / count / sigma;
        coef[c] = (g as f32, (-g * k) as f32, (g * (k * mean[c] - sum_dy / count)) as f32);
    }
    (dgamma, dbeta, coef)
}

/// Backward pass of training-mode batch normalisation: `(dx, dγ, dβ)` from the layer's input
/// `x`, the output gradient `dy` (both `[N, C, S]`), γ, the batch mean and biased variance used
/// in the forward pass, and ε.
pub fn backward(
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    mean: &[f64],
    var: &[f64],
    epsilon: f64,
    spatial: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let channels = gamma.len();
    assert_eq!(x.len(), dy.len(), "batch norm gradient length");
    let count = (x.len() / channels) as f64;
    let s = channel_sums(dy, x, channels, spatial);
    let (dgamma, dbeta, coef) = backward_coefficients(&s, gamma, mean, var, epsilon, count);
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(spatial).enumerate().for_each(|(i, dxp)| {
        let (a, b, c) = coef[i % channels];
        let r = i * spatial..(i + 1) * spatial;
        dxp.iter_mut().zip(&dy[r.clone()]).zip(&x[r]).for_each(|((d, &g), &x)| *d = a * g + b * x + c);
    });
    (dx, dgamma, dbeta)
}
