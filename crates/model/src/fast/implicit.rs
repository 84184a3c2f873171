//! Register-blocked convolution micro-kernels that read the input where it lies ("implicit
//! im2col"): no im2col matrix is written and no panel is packed, which is where a
//! copy-then-multiply convolution spends most of its memory traffic on the paper's layers (27
//! to 864 taps, 1 to 64 channels).
//!
//! Both kernels work on one tile of [`super::conv`]: a contiguous range `start..start + len` of
//! positions on one scan's input raster, with `offsets[k]` the input shift of patch row `k`
//! (`(ci, a, b, c)` in weight order), so patch row `k` of the tile is `x[start + off_k..][..len]`.
//!
//! - [`forward_tile`]: `acc[co, p] = Σ_k w[co, k] · x[start + p + off_k]` for `p < len`. A block
//!   of `M` output channels times `N` SIMD vectors of positions is held in registers through the
//!   whole sum over `k`: per tap, `N` unaligned loads of the input and `M` broadcasts of the
//!   weight feed `M · N` fused multiply-adds.
//! - [`weight_grad_tile`]: `dw[co, k] += Σ_p g[co, p] · x[start + p + off_k]`, a block of `M`
//!   channels times `T` taps in registers, one vector of positions at a time.
//!
//! The block sizes follow the instruction set [`pulp`] dispatches to at run time (its `x86-v4`
//! feature adds AVX-512): with AVX2/FMA's 16 vector registers of 8 floats the blocks are 4 × 2,
//! with AVX-512's 32 registers of 16 floats 8 × 2 (8 × 3, 4 × 4 and 4 × 6 measured no faster on
//! a Zen 4 EPYC). The forward sums run in the same order on both (one position per lane, taps
//! in order), so their results are identical; the weight gradient's lane-partial sums differ
//! at float rounding between the two.
//!
//! Plain safe Rust over pulp's SIMD types; the loads are bounds-checked slices of the input.

use pulp::{Arch, Simd, WithSimd};

/// Output channels per group of [`pack_weight`]'s layout; every forward block size divides it.
const PACK: usize = 8;

/// Whether SIMD vectors of `lanes` floats come with 32 registers (AVX-512), room for blocks
/// of 8 channels instead of 4.
const fn wide(lanes: usize) -> bool {
    lanes >= 16
}

/// Rows of the kernels' position-major buffers (`acc`, `g`) are padded to a multiple of this
/// many floats (a multiple of every SIMD width), so every position block is whole vectors.
pub const PAD: usize = 16;

/// Panics unless every read of the tile (`x[start + off + p]` for `p < len`) lies inside `x`.
fn assert_reads_inside(x: &[f32], start: usize, len: usize, offsets: &[usize]) {
    if let Some(&max) = offsets.iter().max() {
        assert!(start + max + len <= x.len(), "the tile reads past the input");
    }
}

/// `len` rounded up to a multiple of [`PAD`]: the row stride of `acc` and `g`.
pub fn padded(len: usize) -> usize {
    len.div_ceil(PAD) * PAD
}

/// One SIMD vector read from `x[at..]` (unaligned); the lanes past the end of `x` read 0.
#[inline(always)]
fn load<S: Simd>(simd: S, x: &[f32], at: usize) -> S::f32s {
    match x.get(at..at + S::F32_LANES) {
        Some(v) => S::as_simd_f32s(v).0[0],
        None => simd.partial_load_f32s(x.get(at..).unwrap_or(&[])),
    }
}

/// Stores `v` at `out[at..]`.
#[inline(always)]
fn store<S: Simd>(out: &mut [f32], at: usize, v: S::f32s) {
    S::as_mut_simd_f32s(&mut out[at..at + S::F32_LANES]).0[0] = v;
}

/// The weight `[Co, K]` re-laid as groups of [`PACK`] channels, each `[K, PACK]` (the group's
/// weights of one tap side by side), the last group padded with zeros.
pub fn pack_weight(weight: &[f32], c_out: usize, k: usize) -> Vec<f32> {
    let groups = c_out.div_ceil(PACK);
    let mut packed = vec![0.0f32; groups * k * PACK];
    for co in 0..c_out {
        let (b, r) = (co / PACK, co % PACK);
        for kk in 0..k {
            packed[(b * k + kk) * PACK + r] = weight[co * k + kk];
        }
    }
    packed
}

/// `acc[co, p] = Σ_k w[co, k] · x[start + p + off_k]` for `co < c_out` and every `p` below
/// [`padded`]`(len)` (the row stride of `acc`, `[c_out, padded(len)]`, overwritten; the values
/// at `p ≥ len` are not meaningful). `packed` is [`pack_weight`]`(w, c_out, offsets.len())`.
pub fn forward_tile(
    x: &[f32],
    start: usize,
    len: usize,
    offsets: &[usize],
    packed: &[f32],
    c_out: usize,
    acc: &mut [f32],
) {
    Arch::new().dispatch(Forward::new(x, start, len, offsets, packed, c_out, acc));
}

struct Forward<'a> {
    x: &'a [f32],
    start: usize,
    stride: usize,
    offsets: &'a [usize],
    packed: &'a [f32],
    c_out: usize,
    acc: &'a mut [f32],
}

impl<'a> Forward<'a> {
    fn new(
        x: &'a [f32],
        start: usize,
        len: usize,
        offsets: &'a [usize],
        packed: &'a [f32],
        c_out: usize,
        acc: &'a mut [f32],
    ) -> Self {
        assert_eq!(acc.len(), c_out * padded(len), "accumulator is [Co, padded(len)]");
        assert_eq!(packed.len(), c_out.div_ceil(PACK) * offsets.len() * PACK, "packed weight");
        assert_reads_inside(x, start, len, offsets);
        Forward { x, start, stride: padded(len), offsets, packed, c_out, acc }
    }

    /// The `N` vectors of positions from `p0`, all output channels in blocks of `M`. `EDGE`:
    /// some reads may lie past the end of the input (read as 0 through partial loads);
    /// otherwise each tap's `N` vectors are one bounds-checked slice.
    #[inline(always)]
    fn block<S: Simd, const M: usize, const N: usize, const EDGE: bool>(&mut self, simd: S, p0: usize) {
        let lanes = S::F32_LANES;
        let k = self.offsets.len();
        for (b, wb) in self.packed.chunks_exact(k * PACK).enumerate() {
            for h in 0..PACK / M {
                let co0 = b * PACK + h * M;
                if co0 >= self.c_out {
                    break;
                }
                let mut a = [[simd.splat_f32s(0.0); N]; M];
                for (&off, w) in self.offsets.iter().zip(wb.chunks_exact(PACK)) {
                    let at = self.start + p0 + off;
                    let xv: [S::f32s; N] = if EDGE {
                        std::array::from_fn(|j| load(simd, self.x, at + j * lanes))
                    } else {
                        let row = S::as_simd_f32s(&self.x[at..at + N * lanes]).0;
                        std::array::from_fn(|j| row[j])
                    };
                    let w: &[f32; M] = w[h * M..(h + 1) * M].try_into().expect("M weights");
                    for r in 0..M {
                        let wv = simd.splat_f32s(w[r]);
                        for j in 0..N {
                            a[r][j] = simd.mul_add_e_f32s(wv, xv[j], a[r][j]);
                        }
                    }
                }
                for (r, row) in a.iter().enumerate().take(self.c_out - co0) {
                    for (j, &v) in row.iter().enumerate() {
                        store::<S>(self.acc, (co0 + r) * self.stride + p0 + j * lanes, v);
                    }
                }
            }
        }
    }

    #[inline(always)]
    fn run<S: Simd, const M: usize, const N: usize>(&mut self, simd: S) {
        let lanes = S::F32_LANES;
        let vectors = self.stride / lanes;
        // Positions below `safe` read inside the input at every tap.
        let safe = self.x.len() - self.start - self.offsets.iter().max().copied().unwrap_or(0);
        let mut v = 0;
        while v + N <= vectors && (v + N) * lanes <= safe {
            self.block::<S, M, N, false>(simd, v * lanes);
            v += N;
        }
        while v < vectors {
            if (v + 1) * lanes <= safe {
                self.block::<S, M, 1, false>(simd, v * lanes);
            } else {
                self.block::<S, M, 1, true>(simd, v * lanes);
            }
            v += 1;
        }
    }
}

impl WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) {
        if wide(S::F32_LANES) {
            self.run::<S, 8, 2>(simd);
        } else {
            self.run::<S, 4, 2>(simd);
        }
    }
}

/// Floats of output gradient per chunk of the weight gradient: the chunk's `[Co, positions]`
/// (16 KiB) stays in the L1 cache while every block of taps passes over it.
const CHUNK_FLOATS: usize = 4096;

/// Adds `Σ_p g[co, p] · x[start + p + off_k]` to `dw[co, k]` (`[c_out, K]`). `g` is `[c_out,
/// padded(len)]` with zeros at `p ≥ len`. Per chunk of [`CHUNK_FLOATS`] positions and block of
/// taps and channels, the sums run in SIMD lanes and are added up once into `dw`.
pub fn weight_grad_tile(
    x: &[f32],
    start: usize,
    len: usize,
    offsets: &[usize],
    g: &[f32],
    c_out: usize,
    dw: &mut [f32],
) {
    Arch::new().dispatch(WeightGrad::new(x, start, len, offsets, g, c_out, dw));
}

struct WeightGrad<'a> {
    x: &'a [f32],
    start: usize,
    stride: usize,
    offsets: &'a [usize],
    g: &'a [f32],
    c_out: usize,
    dw: &'a mut [f32],
}

impl<'a> WeightGrad<'a> {
    fn new(
        x: &'a [f32],
        start: usize,
        len: usize,
        offsets: &'a [usize],
        g: &'a [f32],
        c_out: usize,
        dw: &'a mut [f32],
    ) -> Self {
        assert_eq!(g.len(), c_out * padded(len), "gradient tile is [Co, padded(len)]");
        assert_eq!(dw.len(), c_out * offsets.len(), "weight gradient is [Co, K]");
        assert_reads_inside(x, start, len, offsets);
        WeightGrad { x, start, stride: padded(len), offsets, g, c_out, dw }
    }

    #[inline(always)]
    fn run<S: Simd, const M: usize, const T: usize>(self, simd: S) {
        let WeightGrad { x, start, stride, offsets, g, c_out, dw } = self;
        let lanes = S::F32_LANES;
        let k = offsets.len();
        // Positions below `safe` read inside the input at every tap.
        let safe = x.len() - start - offsets.iter().max().copied().unwrap_or(0);
        let chunk = (CHUNK_FLOATS / c_out).clamp(PAD, 1024) / PAD * PAD;
        for c0 in (0..stride).step_by(chunk) {
            let c1 = (c0 + chunk).min(stride);
            let mut k0 = 0;
            while k0 < k {
                let nk = T.min(k - k0);
                let offs: [usize; T] = std::array::from_fn(|t| start + offsets[k0 + t.min(nk - 1)]);
                let mut co0 = 0;
                while co0 < c_out {
                    let mr = M.min(c_out - co0);
                    let rows: [usize; M] = std::array::from_fn(|r| (co0 + r.min(mr - 1)) * stride);
                    let mut a = [[simd.splat_f32s(0.0); T]; M];
                    if c1 <= safe {
                        let xs: [&[S::f32s]; T] =
                            std::array::from_fn(|t| S::as_simd_f32s(&x[offs[t] + c0..offs[t] + c1]).0);
                        let gs: [&[S::f32s]; M] =
                            std::array::from_fn(|r| S::as_simd_f32s(&g[rows[r] + c0..rows[r] + c1]).0);
                        for i in 0..(c1 - c0) / lanes {
                            let xv: [S::f32s; T] = std::array::from_fn(|t| xs[t][i]);
                            for r in 0..M {
                                let gv = gs[r][i];
                                for t in 0..T {
                                    a[r][t] = simd.mul_add_e_f32s(gv, xv[t], a[r][t]);
                                }
                            }
                        }
                    } else {
                        for p in (c0..c1).step_by(lanes) {
                            let xv: [S::f32s; T] = std::array::from_fn(|t| load(simd, x, offs[t] + p));
                            for r in 0..M {
                                let gv = load(simd, g, rows[r] + p);
                                for t in 0..T {
                                    a[r][t] = simd.mul_add_e_f32s(gv, xv[t], a[r][t]);
                                }
                            }
                        }
                    }
                    for r in 0..mr {
                        for t in 0..nk {
                            dw[(co0 + r) * k + k0 + t] += simd.reduce_sum_f32s(a[r][t]);
                        }
                    }
                    co0 += mr;
                }
                k0 += nk;
            }
        }
    }
}

impl WithSimd for WeightGrad<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        if wide(S::F32_LANES) {
            self.run::<S, 8, 2>(simd);
        } else {
            self.run::<S, 4, 2>(simd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::conv::tests::pseudo_random as noise;

    /// Runs `op` on instruction set `isa`: 0 the CPU's own (run-time dispatch), 1 and 2 pulp's
    /// portable 8- and 16-lane types, so both register-block sizes are tested on any CPU.
    fn on<Op: WithSimd>(isa: usize, op: Op) -> Op::Output {
        match isa {
            0 => Arch::new().dispatch(op),
            1 => pulp::Scalar256b.vectorize(op),
            _ => pulp::Scalar512b.vectorize(op),
        }
    }

    #[test]
    fn both_kernels_match_plain_sums_for_every_remainder() {
        for isa in 0..3 {
            check_kernels(isa);
        }
    }

    fn check_kernels(isa: usize) {
        let cases = [(1, 1, 1), (3, 5, 7), (4, 27, 24), (5, 28, 61), (8, 27, 97), (9, 10, 200), (17, 27, 130)];
        for (c_out, k, len) in cases {
            let offsets: Vec<usize> = (0..k).map(|i| (i * 7) % 23 + i / 3).collect();
            let start = 5;
            // The input ends where the tile's last read does: the padded positions read past it.
            let x = noise(start + offsets.iter().max().unwrap() + len, 1);
            let w = noise(c_out * k, 2);
            let g = noise(c_out * len, 3);
            let stride = padded(len);
            let mut acc = vec![f32::NAN; c_out * stride];
            let packed = pack_weight(&w, c_out, k);
            on(isa, Forward::new(&x, start, len, &offsets, &packed, c_out, &mut acc));
            let mut gp = vec![0.0f32; c_out * stride];
            for co in 0..c_out {
                gp[co * stride..co * stride + len].copy_from_slice(&g[co * len..(co + 1) * len]);
            }
            let mut dw = vec![0.0f32; c_out * k];
            on(isa, WeightGrad::new(&x, start, len, &offsets, &gp, c_out, &mut dw));
            // A second tile adds to the same sums.
            on(isa, WeightGrad::new(&x, start, len, &offsets, &gp, c_out, &mut dw));
            for co in 0..c_out {
                for p in 0..len {
                    let want: f64 =
                        (0..k).map(|kk| f64::from(w[co * k + kk]) * f64::from(x[start + p + offsets[kk]])).sum();
                    assert!(
                        (want - f64::from(acc[co * stride + p])).abs() < 1e-4,
                        "isa {isa}, {c_out} {k} {len}: forward"
                    );
                }
                for kk in 0..k {
                    let want: f64 = 2.0
                        * (0..len)
                            .map(|p| f64::from(g[co * len + p]) * f64::from(x[start + p + offsets[kk]]))
                            .sum::<f64>();
                    assert!(
                        (want - f64::from(dw[co * k + kk])).abs() < 1e-3,
                        "isa {isa}, {c_out} {k} {len}: weight gradient"
                    );
                }
            }
        }
    }
}
