//! 3D max pooling with window = stride, floor mode, on `f32` slices: the CPU kernels behind
//! [`crate::fast::max_pool3d`] and [`crate::fast::affine_max_pool3d`].
//!
//! Within a window the first maximal element in (D, H, W) raster order wins (a later element
//! replaces the current maximum only if strictly greater), as in PyTorch and in
//! [`crate::pool::max_pool3d`]; the backward pass sends each output gradient to that element.
//! Work is split over (plane, output depth) rows on rayon's global pool.

use rayon::prelude::*;

/// Shapes of one pooling: `planes` = N·C independent `[D, H, W]` volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    /// Independent volumes (batch × channels).
    pub planes: usize,
    /// Channels (for the per-channel affine map of [`forward`]).
    pub channels: usize,
    /// Input size `[D, H, W]`.
    pub input: [usize; 3],
    /// Window = stride `[kd, kh, kw]`.
    pub kernel: [usize; 3],
}

impl PoolShape {
    /// Output size `[D/kd, H/kh, W/kw]` (floor).
    ///
    /// # Panics
    ///
    /// If a window size is 0 or larger than the input.
    pub fn output(&self) -> [usize; 3] {
        let [d, h, w] = self.input;
        let [kd, kh, kw] = self.kernel;
        assert!(kd >= 1 && kh >= 1 && kw >= 1 && kd <= d && kh <= h && kw <= w, "max_pool3d: kernel {:?} does not fit {:?}", self.kernel, self.input);
        [d / kd, h / kh, w / kw]
    }
}

/// Max pooling of `x` `[planes, D, H, W]`, optionally of `x·scale[c] + shift[c]` (channel
/// `c = plane % channels`) computed on the fly, optionally followed by a ReLU on the output.
/// Returns the pooled values and, if `with_indices`, the index of each maximum within its
/// plane (for the backward pass).
///
/// # Panics
///
/// If a slice length does not match `s`.
pub fn forward(
    x: &[f32],
    s: &PoolShape,
    affine: Option<(&[f32], &[f32])>,
    relu: bool,
    with_indices: bool,
) -> (Vec<f32>, Vec<u32>) {
    let [od, oh, ow] = s.output();
    let plane_in = s.input.iter().product::<usize>();
    assert_eq!(x.len(), s.planes * plane_in, "max_pool3d input length");
    assert!(u32::try_from(plane_in).is_ok(), "max_pool3d: plane too large for u32 indices");
    if let Some((scale, shift)) = affine {
        assert!(scale.len() == s.channels && shift.len() == s.channels && s.planes % s.channels == 0);
    }
    let row_out = oh * ow;
    let mut out = vec![0.0f32; s.planes * od * row_out];
    let mut idx = if with_indices { vec![0u32; out.len()] } else { Vec::new() };
    if with_indices {
        out.par_chunks_mut(row_out)
            .zip(idx.par_chunks_mut(row_out))
            .enumerate()
            .for_each(|(r, (o, i))| pool_slab(x, s, affine, relu, r, o, Some(i)));
    } else {
        out.par_chunks_mut(row_out).enumerate().for_each(|(r, o)| pool_slab(x, s, affine, relu, r, o, None));
    }
    (out, idx)
}

/// Pools output depth slice `r % od` of plane `r / od` into `out` (`[oh, ow]`) and `idx`.
fn pool_slab(
    x: &[f32],
    s: &PoolShape,
    affine: Option<(&[f32], &[f32])>,
    relu: bool,
    r: usize,
    out: &mut [f32],
    mut idx: Option<&mut [u32]>,
) {
    let [d, h, w] = s.input;
    let [kd, kh, kw] = s.kernel;
    let [od, oh, ow] = s.output();
    let plane_in = d * h * w;
    let (p, z) = (r / od, r % od);
    let plane = &x[p * plane_in..(p + 1) * plane_in];
    let (a, b) = affine.map_or((1.0, 0.0), |(sc, sh)| (sc[p % s.channels], sh[p % s.channels]));
    let mut best = vec![f32::NEG_INFINITY; ow];
    let mut arg = vec![0u32; ow];
    for y in 0..oh {
        for dz in 0..kd {
            for dy in 0..kh {
                let row_start = ((z * kd + dz) * h + y * kh + dy) * w;
                let row = &plane[row_start..row_start + ow * kw];
                let first = dz == 0 && dy == 0;
                for (ox, win) in row.chunks_exact(kw).enumerate() {
                    for (dx, &v) in win.iter().enumerate() {
                        let v = if affine.is_some() { v * a + b } else { v };
                        if (first && dx == 0) || v > best[ox] {
                            best[ox] = v;
                            arg[ox] = (row_start + ox * kw + dx) as u32;
                        }
                    }
                }
            }
        }
        let o = &mut out[y * ow..(y + 1) * ow];
        if relu {
            o.iter_mut().zip(&best).for_each(|(o, &v)| *o = v.max(0.0));
        } else {
            o.copy_from_slice(&best);
        }
        if let Some(i) = idx.as_deref_mut() {
            i[y * ow..(y + 1) * ow].copy_from_slice(&arg);
        }
    }
}

/// Gradient with respect to the pooling input `[planes, D, H, W]`: each output gradient goes to
/// the input element its maximum came from (`idx`, from [`forward`]); everything else is 0.
///
/// # Panics
///
/// If a slice length does not match `s`.
pub fn backward(grad: &[f32], idx: &[u32], s: &PoolShape) -> Vec<f32> {
    let plane_in = s.input.iter().product::<usize>();
    let plane_out = s.output().iter().product::<usize>();
    assert_eq!(grad.len(), s.planes * plane_out, "max_pool3d output gradient length");
    assert_eq!(idx.len(), grad.len(), "max_pool3d indices length");
    let mut dx = vec![0.0f32; s.planes * plane_in];
    dx.par_chunks_mut(plane_in).enumerate().for_each(|(p, dx_plane)| {
        let g = &grad[p * plane_out..(p + 1) * plane_out];
        let i = &idx[p * plane_out..(p + 1) * plane_out];
        for (&g, &i) in g.iter().zip(i) {
            dx_plane[i as usize] += g;
        }
    });
    dx
}
