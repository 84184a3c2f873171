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
        assert!(
            kd >= 1 && kh >= 1 && kw >= 1 && kd <= d && kh <= h && kw <= w,
            "max_pool3d: kernel {:?} does not fit {:?}",
            self.kernel,
            self.input
        );
        [d / kd, h / kh, w / kw]
    }
}

/// Max pooling of `x` `[planes, D, H, W]`, optionally of `x·scale[c] + shift[c]` (channel
/// `c = plane % channels`) computed on the fly, optionally followed by a ReLU on the output.
///
/// No argmax indices are kept: the backward pass finds each window's first maximum again from
/// the input and the output ([`argmax`]), which halves the forward pass's work and memory and
/// skips the windows a ReLU zeroed.
///
/// # Panics
///
/// If a slice length does not match `s`.
pub fn forward(x: &[f32], s: &PoolShape, affine: Option<(&[f32], &[f32])>, relu: bool) -> Vec<f32> {
    let [od, oh, ow] = checked_output(x, s, affine);
    let mut out = vec![0.0f32; s.planes * od * oh * ow];
    out.par_chunks_mut(oh * ow).enumerate().for_each(|(r, o)| pool_slab(x, s, affine, relu, r, o));
    out
}

/// The output size, after checking the lengths of the input and of the affine map.
fn checked_output(x: &[f32], s: &PoolShape, affine: Option<(&[f32], &[f32])>) -> [usize; 3] {
    let out = s.output();
    let plane_in = s.input.iter().product::<usize>();
    assert_eq!(x.len(), s.planes * plane_in, "max_pool3d input length");
    assert!(u32::try_from(plane_in).is_ok(), "max_pool3d: plane too large for u32 indices");
    if let Some((scale, shift)) = affine {
        assert!(scale.len() == s.channels && shift.len() == s.channels && s.planes.is_multiple_of(s.channels));
    }
    out
}

/// [`forward`] that also returns each window's first-maximum index within its plane (what
/// [`argmax`] would find again from the output): for a training step, whose backward pass needs
/// them. Windows whose output a ReLU zeroed, and windows with a NaN maximum, get `u32::MAX` (no
/// gradient), as from [`argmax`].
///
/// # Panics
///
/// If a slice length does not match `s`.
pub fn forward_with_argmax(
    x: &[f32],
    s: &PoolShape,
    affine: Option<(&[f32], &[f32])>,
    relu: bool,
) -> (Vec<f32>, Vec<u32>) {
    let [od, oh, ow] = checked_output(x, s, affine);
    let mut out = vec![0.0f32; s.planes * od * oh * ow];
    let mut idx = vec![u32::MAX; out.len()];
    out.par_chunks_mut(oh * ow)
        .zip(idx.par_chunks_mut(oh * ow))
        .enumerate()
        .for_each(|(r, (o, i))| pool_slab_argmax(x, s, affine, relu, r, o, i));
    (out, idx)
}

/// [`pool_slab`] keeping the index of the value it keeps: within a row of the window the first
/// maximum (strictly greater replaces), across the window's rows in raster order the earlier row
/// on ties, so the first maximum in raster order, as [`argmax`] finds it.
fn pool_slab_argmax(
    x: &[f32],
    s: &PoolShape,
    affine: Option<(&[f32], &[f32])>,
    relu: bool,
    r: usize,
    out: &mut [f32],
    idx: &mut [u32],
) {
    let [d, h, w] = s.input;
    let [kd, kh, kw] = s.kernel;
    let [od, oh, ow] = s.output();
    let (p, z) = (r / od, r % od);
    let plane = &x[p * d * h * w..(p + 1) * d * h * w];
    let (a, b) = affine_of(affine, p, s.channels);
    let with_affine = affine.is_some();
    let (mut row_max, mut row_idx) = (vec![0.0f32; ow], vec![0u32; ow]);
    for y in 0..oh {
        let best = &mut out[y * ow..(y + 1) * ow];
        let best_idx = &mut idx[y * ow..(y + 1) * ow];
        for dz in 0..kd {
            for dy in 0..kh {
                let start = ((z * kd + dz) * h + y * kh + dy) * w;
                let row = &plane[start..start + ow * kw];
                // The paper's windows (2 and 3) with the window loop unrolled.
                match (kw, with_affine) {
                    (2, true) => row_argmax::<2, true>(row, start, a, b, &mut row_max, &mut row_idx),
                    (3, true) => row_argmax::<3, true>(row, start, a, b, &mut row_max, &mut row_idx),
                    _ => {
                        let wins = row.chunks_exact(kw);
                        for (xo, ((m, mi), win)) in row_max.iter_mut().zip(row_idx.iter_mut()).zip(wins).enumerate() {
                            let first = (start + xo * kw) as u32;
                            let (mut v, mut vi) = (mapped(win[0], a, b, with_affine), first);
                            for (dx, &u) in win.iter().enumerate().skip(1) {
                                let u = mapped(u, a, b, with_affine);
                                (v, vi) = if u > v { (u, first + dx as u32) } else { (v, vi) };
                            }
                            (*m, *mi) = (v, vi);
                        }
                    }
                }
                if dz == 0 && dy == 0 {
                    best.copy_from_slice(&row_max);
                    best_idx.copy_from_slice(&row_idx);
                } else {
                    for (((b, bi), &m), &mi) in best.iter_mut().zip(best_idx.iter_mut()).zip(&row_max).zip(&row_idx) {
                        (*b, *bi) = if m > *b { (m, mi) } else { (*b, *bi) };
                    }
                }
            }
        }
        for (b, bi) in best.iter_mut().zip(best_idx.iter_mut()) {
            if relu {
                // As `forward`: f32::max(NaN, 0) = 0; a zeroed window gets no gradient.
                *bi = if *b > 0.0 { *bi } else { u32::MAX };
                *b = b.max(0.0);
            } else if b.is_nan() {
                *bi = u32::MAX;
            }
        }
    }
}

/// Each window of `KW` consecutive elements of `row` (starting at `start` in its plane): its
/// first maximum of the mapped values and that element's index.
#[inline(always)]
fn row_argmax<const KW: usize, const AFFINE: bool>(
    row: &[f32],
    start: usize,
    a: f32,
    b: f32,
    row_max: &mut [f32],
    row_idx: &mut [u32],
) {
    for (xo, ((m, mi), win)) in row_max.iter_mut().zip(row_idx.iter_mut()).zip(row.chunks_exact(KW)).enumerate() {
        let win: &[f32; KW] = win.try_into().expect("chunks of KW");
        let first = (start + xo * KW) as u32;
        let (mut v, mut vi) = (mapped(win[0], a, b, AFFINE), first);
        for (dx, &u) in win.iter().enumerate().skip(1) {
            let u = mapped(u, a, b, AFFINE);
            (v, vi) = if u > v { (u, first + dx as u32) } else { (v, vi) };
        }
        (*m, *mi) = (v, vi);
    }
}

/// The per-channel affine map of plane `p` (identity without one).
fn affine_of(affine: Option<(&[f32], &[f32])>, p: usize, channels: usize) -> (f32, f32) {
    affine.map_or((1.0, 0.0), |(sc, sh)| (sc[p % channels], sh[p % channels]))
}

/// The value the pooling compares: `v·a + b` with an affine map, `v` without (the same float
/// operations in the forward pass and in [`argmax`], so equality tests are exact).
#[inline(always)]
fn mapped(v: f32, a: f32, b: f32, with_affine: bool) -> f32 {
    if with_affine { v * a + b } else { v }
}

/// Pools output depth slice `r % od` of plane `r / od` into `out` (`[oh, ow]`). Branch-free
/// maxima (a later element wins only if strictly greater, so the value is that of the first
/// maximum), first along W within each input row, then across the window's rows.
fn pool_slab(x: &[f32], s: &PoolShape, affine: Option<(&[f32], &[f32])>, relu: bool, r: usize, out: &mut [f32]) {
    let [d, h, w] = s.input;
    let [kd, kh, kw] = s.kernel;
    let [od, oh, ow] = s.output();
    let (p, z) = (r / od, r % od);
    let plane = &x[p * d * h * w..(p + 1) * d * h * w];
    let (a, b) = affine_of(affine, p, s.channels);
    let with_affine = affine.is_some();
    let mut row_max = vec![0.0f32; ow];
    for y in 0..oh {
        let best = &mut out[y * ow..(y + 1) * ow];
        for dz in 0..kd {
            for dy in 0..kh {
                let start = ((z * kd + dz) * h + y * kh + dy) * w;
                for (m, win) in row_max.iter_mut().zip(plane[start..start + ow * kw].chunks_exact(kw)) {
                    let mut v = mapped(win[0], a, b, with_affine);
                    for &u in &win[1..] {
                        let u = mapped(u, a, b, with_affine);
                        v = if u > v { u } else { v };
                    }
                    *m = v;
                }
                if dz == 0 && dy == 0 {
                    best.copy_from_slice(&row_max);
                } else {
                    best.iter_mut().zip(&row_max).for_each(|(b, &m)| *b = if m > *b { m } else { *b });
                }
            }
        }
        if relu {
            best.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}

/// Index (within its plane) of each window's first maximum in (D, H, W) raster order, found
/// again from the input `x` and the pooled output `out` of [`forward`] with the same arguments.
/// With `relu`, windows whose output is 0 get `u32::MAX` (their gradient is 0).
pub fn argmax(x: &[f32], out: &[f32], s: &PoolShape, affine: Option<(&[f32], &[f32])>, relu: bool) -> Vec<u32> {
    let [d, h, w] = s.input;
    let [kd, kh, kw] = s.kernel;
    let [od, oh, ow] = s.output();
    let plane_out = od * oh * ow;
    assert_eq!(out.len(), s.planes * plane_out, "max_pool3d output length");
    let with_affine = affine.is_some();
    let mut idx = vec![u32::MAX; out.len()];
    // Branch-free: every window element equal to the window's output, visited in reverse raster
    // order (dz, dy, dx descending), overwrites the index, so the first one in raster order is
    // left; then windows a ReLU zeroed get `u32::MAX`. (An early exit at the first match costs a
    // mispredicted branch per window, which was most of the backward pass's time.)
    idx.par_chunks_mut(oh * ow).enumerate().for_each(|(r, ip)| {
        let (p, z) = (r / od, r % od);
        let plane = &x[p * d * h * w..(p + 1) * d * h * w];
        let (a, b) = affine_of(affine, p, s.channels);
        let op = &out[r * oh * ow..(r + 1) * oh * ow];
        for y in 0..oh {
            let (targets, ip_row) = (&op[y * ow..(y + 1) * ow], &mut ip[y * ow..(y + 1) * ow]);
            for dz in (0..kd).rev() {
                for dy in (0..kh).rev() {
                    let start = ((z * kd + dz) * h + y * kh + dy) * w;
                    let row = &plane[start..start + ow * kw];
                    for (xo, ((win, &target), i)) in
                        row.chunks_exact(kw).zip(targets).zip(ip_row.iter_mut()).enumerate()
                    {
                        for (dx, &v) in win.iter().enumerate().rev() {
                            let at = (start + xo * kw + dx) as u32;
                            *i = if mapped(v, a, b, with_affine) == target { at } else { *i };
                        }
                    }
                }
            }
            if relu {
                for (i, &target) in ip_row.iter_mut().zip(targets) {
                    *i = if target <= 0.0 { u32::MAX } else { *i };
                }
            }
        }
    });
    idx
}

/// Gradient with respect to the pooling input `[planes, D, H, W]`: each output gradient goes to
/// the input element its maximum came from (`idx`, from [`argmax`] without ReLU); everything
/// else is 0.
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
            // u32::MAX: no element equals the output (a NaN window); it gets no gradient.
            if let Some(d) = dx_plane.get_mut(i as usize) {
                *d += g;
            }
        }
    });
    dx
}

/// Per channel `(Σ g', Σ g'·x[argmax])` for the fused pooling + ReLU, where `g'` is the output
/// gradient `g` after the ReLU (0 where `out` ≤ 0; `idx` from [`argmax`] with `relu`): the sums a BatchNorm or affine map in front
/// of the pooling needs, read at the maxima only.
pub fn sparse_sums(x: &[f32], g: &[f32], out: &[f32], idx: &[u32], s: &PoolShape) -> Vec<(f64, f64)> {
    let plane_in = s.input.iter().product::<usize>();
    let plane_out = s.output().iter().product::<usize>();
    assert!(g.len() == s.planes * plane_out && out.len() == g.len() && idx.len() == g.len());
    let per_plane: Vec<(f64, f64)> = (0..s.planes)
        .into_par_iter()
        .map(|p| {
            let xp = &x[p * plane_in..(p + 1) * plane_in];
            let r = p * plane_out..(p + 1) * plane_out;
            let (mut sg, mut sgx) = (0.0f64, 0.0f64);
            for ((&g, &o), &i) in g[r.clone()].iter().zip(&out[r.clone()]).zip(&idx[r]) {
                if o <= 0.0 {
                    continue;
                }
                let g = f64::from(g);
                sg += g;
                sgx += g * f64::from(xp[i as usize]);
            }
            (sg, sgx)
        })
        .collect();
    let mut total = vec![(0.0, 0.0); s.channels];
    for (p, (a, b)) in per_plane.into_iter().enumerate() {
        total[p % s.channels].0 += a;
        total[p % s.channels].1 += b;
    }
    total
}

/// Input gradient of `y = relu(max_pool(x·scale[c] + shift[c]))`-like fused maps, written as
/// `dx = k[c]·x + m[c]` everywhere (`dense`, the part that comes through batch statistics; none
/// for a fixed affine map) plus `a[c]·g'` at each window's maximum, with `g'` the output gradient
/// after the ReLU.
pub fn scatter_backward(
    x: &[f32],
    g: &[f32],
    out: &[f32],
    idx: &[u32],
    s: &PoolShape,
    a: &[f32],
    dense: Option<(&[f32], &[f32])>,
) -> Vec<f32> {
    let plane_in = s.input.iter().product::<usize>();
    let plane_out = s.output().iter().product::<usize>();
    let mut dx = vec![0.0f32; s.planes * plane_in];
    dx.par_chunks_mut(plane_in).enumerate().for_each(|(p, dxp)| {
        let c = p % s.channels;
        if let Some((k, m)) = dense {
            let xp = &x[p * plane_in..(p + 1) * plane_in];
            let (k, m) = (k[c], m[c]);
            dxp.iter_mut().zip(xp).for_each(|(d, &x)| *d = k * x + m);
        }
        let r = p * plane_out..(p + 1) * plane_out;
        for ((&g, &o), &i) in g[r.clone()].iter().zip(&out[r.clone()]).zip(&idx[r]) {
            if o > 0.0 {
                dxp[i as usize] += a[c] * g;
            }
        }
    });
    dx
}
