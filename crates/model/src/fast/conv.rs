//! Valid (unpadded), stride-1, ungrouped 3D convolution on `f32` slices, with both backward
//! passes: the CPU kernels behind [`crate::fast::conv3d`].
//!
//! Formulation ("full-width implicit im2col"): an output voxel `(z, y, x)` reads the input at
//! `p + off(tap)` where `p = z·H·W + y·W + x` is its position on the *input's* raster and
//! `off(a, b, c) = a·H·W + b·W + c` is the tap's shift. A tile of whole output rows is therefore a
//! contiguous range of `p`, and row `(ci, tap)` of its im2col matrix is a contiguous run of the
//! input, read where it lies; the `kw − 1` positions per row with `x ≥ W'` are computed and
//! dropped (2–8 % extra work on the paper's grids). Each tile is one register-blocked product
//! `out[Co, L] = weight[Co, Ci·k³] · col[Ci·k³, L]` ([`super::implicit`]: SIMD fused
//! multiply-adds straight from the input, no im2col copy and no packed panels, which were half
//! of the time of the copy-then-`matrixmultiply` kernels this replaced). Tiles run in parallel on
//! rayon's global pool (the one the Flex backend uses), across scans and within a scan, so a
//! single scan (input gradients) keeps every core busy.
//!
//! - weight gradient: per tile, `dW[Co, Ci·k³] += dY[Co, L] · col[Ci·k³, L]ᵀ` with the dropped
//!   positions of `dY` set to zero ([`super::implicit::weight_grad_tile`]); per-group partial
//!   sums are added at the end; the bias gradient is summed in f64 while `dY` is copied.
//! - input gradient: the "full" convolution of `dY` (zero-padded by `k − 1` on each side) with
//!   the flipped, channel-transposed kernel, i.e. the forward kernel again, one scan at a time (so
//!   only one padded scan exists at once).
//!
//! Layouts are Burn's / PyTorch's: input `[N, Ci, D, H, W]`, weight `[Co, Ci, kd, kh, kw]`,
//! output `[N, Co, D − kd + 1, H − kh + 1, W − kw + 1]`, all contiguous, row-major.

use rayon::prelude::*;

use super::implicit;

/// Floats of (virtual) im2col matrix per tile: 64 Ki floats = 256 KiB; this sizes the tiles (a
/// few output rows at 8 to 64 channels), so that a tile's input window and output stay in a
/// core's L2 cache.
const TILE_FLOATS: usize = 64 * 1024;

/// Tile groups of the weight gradient (fixed, so the order of the sums is too).
const WEIGHT_GRAD_GROUPS: usize = 32;

/// Shapes of one valid 3D convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Scans in the batch.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Input spatial size `[D, H, W]`.
    pub input: [usize; 3],
    /// Kernel size `[kd, kh, kw]`.
    pub kernel: [usize; 3],
}

impl ConvShape {
    /// Output spatial size `[D − kd + 1, H − kh + 1, W − kw + 1]`.
    ///
    /// # Panics
    ///
    /// If the kernel is larger than the input along an axis.
    pub fn output(&self) -> [usize; 3] {
        let [d, h, w] = self.input;
        let [kd, kh, kw] = self.kernel;
        assert!(
            kd >= 1 && kh >= 1 && kw >= 1 && kd <= d && kh <= h && kw <= w,
            "kernel {:?} does not fit {:?}",
            self.kernel,
            self.input
        );
        [d - kd + 1, h - kh + 1, w - kw + 1]
    }

    /// Inner dimension of the matrix product: `Ci·kd·kh·kw`.
    pub fn patch_len(&self) -> usize {
        self.c_in * self.kernel.iter().product::<usize>()
    }

    fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    fn output_len(&self) -> usize {
        self.output().iter().product()
    }
}

/// A tile: scan `n`, output depth `z`, output rows `y0..y1`.
#[derive(Debug, Clone, Copy)]
struct Tile {
    n: usize,
    z: usize,
    y0: usize,
    y1: usize,
}

/// Output rows per tile, so that the im2col matrix holds about [`TILE_FLOATS`] floats.
fn rows_per_tile(s: &ConvShape) -> usize {
    let [_, oh, _] = s.output();
    (TILE_FLOATS / (s.patch_len() * s.input[2]).max(1)).clamp(1, oh)
}

fn tiles(s: &ConvShape) -> Vec<Tile> {
    let [od, oh, _] = s.output();
    let r = rows_per_tile(s);
    let mut t = Vec::new();
    for n in 0..s.batch {
        for z in 0..od {
            for y0 in (0..oh).step_by(r) {
                t.push(Tile { n, z, y0, y1: (y0 + r).min(oh) });
            }
        }
    }
    t
}

impl Tile {
    /// Start of the tile on the input raster of its scan, and its full-width length.
    fn span(&self, s: &ConvShape) -> (usize, usize) {
        let [_, h, w] = s.input;
        let ow = s.output()[2];
        (self.z * h * w + self.y0 * w, (self.y1 - self.y0 - 1) * w + ow)
    }
}

/// Input offsets (relative to the tile start within one scan) of the im2col rows, in weight
/// order `(ci, a, b, c)`.
fn patch_offsets(s: &ConvShape) -> Vec<usize> {
    let [d, h, w] = s.input;
    let [kd, kh, kw] = s.kernel;
    let mut v = Vec::with_capacity(s.patch_len());
    for ci in 0..s.c_in {
        for a in 0..kd {
            for b in 0..kh {
                for c in 0..kw {
                    v.push(ci * d * h * w + a * h * w + b * w + c);
                }
            }
        }
    }
    v
}

/// Splits `out` (`[N, C, od, oh, ow]`) into one `Vec` of `C` row ranges per tile, in tile order.
fn split_per_tile<'a>(out: &'a mut [f32], s: &ConvShape, channels: usize, tiles: &[Tile]) -> Vec<Vec<&'a mut [f32]>> {
    let ow = s.output()[2];
    let plane = s.output_len();
    let mut per_tile: Vec<Vec<&mut [f32]>> = tiles.iter().map(|_| Vec::with_capacity(channels)).collect();
    // Tiles are ordered by (n, z, y0), which is the order of their rows within a channel plane.
    let mut first = 0;
    for (n, scan) in out.chunks_exact_mut(channels * plane).enumerate() {
        let count = tiles[first..].iter().take_while(|t| t.n == n).count();
        for channel_plane in scan.chunks_exact_mut(plane) {
            let mut rest = channel_plane;
            for (i, t) in tiles[first..first + count].iter().enumerate() {
                let (piece, tail) = std::mem::take(&mut rest).split_at_mut((t.y1 - t.y0) * ow);
                per_tile[first + i].push(piece);
                rest = tail;
            }
        }
        first += count;
    }
    per_tile
}

/// Forward convolution: `x` `[N, Ci, D, H, W]`, `weight` `[Co, Ci, kd, kh, kw]`, optional
/// `bias` `[Co]` → `[N, Co, D', H', W']`.
///
/// # Panics
///
/// If a slice length does not match `s`.
pub fn forward(x: &[f32], weight: &[f32], bias: Option<&[f32]>, s: &ConvShape) -> Vec<f32> {
    let mut out = vec![0.0; s.batch * s.c_out * s.output_len()];
    forward_into(x, weight, bias, s, &mut out);
    out
}

fn forward_into(x: &[f32], weight: &[f32], bias: Option<&[f32]>, s: &ConvShape, out: &mut [f32]) {
    let k = s.patch_len();
    assert_eq!(x.len(), s.batch * s.c_in * s.input_len(), "conv3d input length");
    assert_eq!(weight.len(), s.c_out * k, "conv3d weight length");
    assert_eq!(out.len(), s.batch * s.c_out * s.output_len(), "conv3d output length");
    if let Some(b) = bias {
        assert_eq!(b.len(), s.c_out, "conv3d bias length");
    }
    let [_, _, ow] = s.output();
    let w_in = s.input[2];
    let scan_len = s.c_in * s.input_len();
    let offsets = patch_offsets(s);
    let tiles = tiles(s);
    let per_tile = split_per_tile(out, s, s.c_out, &tiles);
    let packed = implicit::pack_weight(weight, s.c_out, k);
    tiles.par_iter().zip(per_tile).for_each_init(Vec::new, |acc, (tile, mut outs)| {
        let (start, len) = tile.span(s);
        let x_scan = &x[tile.n * scan_len..(tile.n + 1) * scan_len];
        let stride = implicit::padded(len);
        acc.clear();
        acc.resize(s.c_out * stride, 0.0);
        implicit::forward_tile(x_scan, start, len, &offsets, &packed, s.c_out, acc);
        for (co, out_rows) in outs.iter_mut().enumerate() {
            let b = bias.map_or(0.0, |b| b[co]);
            let acc_row = &acc[co * stride..co * stride + len];
            for (r, out_row) in out_rows.chunks_exact_mut(ow).enumerate() {
                for (o, &a) in out_row.iter_mut().zip(&acc_row[r * w_in..r * w_in + ow]) {
                    *o = a + b;
                }
            }
        }
    });
}

/// Gradient of the loss with respect to the weight `[Co, Ci, kd, kh, kw]` and the bias `[Co]`,
/// given the input `x` and the output gradient `grad` `[N, Co, D', H', W']`.
///
/// # Panics
///
/// If a slice length does not match `s`.
pub fn backward_weight(x: &[f32], grad: &[f32], s: &ConvShape) -> (Vec<f32>, Vec<f32>) {
    let k = s.patch_len();
    let [od, oh, ow] = s.output();
    assert_eq!(x.len(), s.batch * s.c_in * s.input_len(), "conv3d input length");
    assert_eq!(grad.len(), s.batch * s.c_out * s.output_len(), "conv3d output gradient length");
    let w_in = s.input[2];
    let scan_len = s.c_in * s.input_len();
    let plane = od * oh * ow;
    let offsets = patch_offsets(s);
    let tiles = tiles(s);
    // Partial sums over fixed groups of tiles, added in group order: the result does not depend
    // on the thread count or on rayon's scheduling (runs with the same seed stay bit-identical).
    let group = tiles.len().div_ceil(WEIGHT_GRAD_GROUPS).max(1);
    let partials: Vec<(Vec<f32>, Vec<f64>)> = tiles
        .par_chunks(group)
        .map(|group| {
            let (mut dw, mut g) = (vec![0.0f32; s.c_out * k], Vec::new());
            // The bias gradient: each channel's output gradient summed in f64 while it is copied.
            let mut db = vec![0.0f64; s.c_out];
            for tile in group {
                let (start, len) = tile.span(s);
                let x_scan = &x[tile.n * scan_len..(tile.n + 1) * scan_len];
                // dY of the tile on the full-width raster, zero where the column is dropped.
                let stride = implicit::padded(len);
                g.clear();
                g.resize(s.c_out * stride, 0.0);
                for (co, g_row) in g.chunks_exact_mut(stride).enumerate() {
                    let src = &grad[(tile.n * s.c_out + co) * plane..];
                    for r in 0..tile.y1 - tile.y0 {
                        let from = (tile.z * oh + tile.y0 + r) * ow;
                        let row = &src[from..from + ow];
                        g_row[r * w_in..r * w_in + ow].copy_from_slice(row);
                        db[co] += sum_f64(row);
                    }
                }
                implicit::weight_grad_tile(x_scan, start, len, &offsets, &g, s.c_out, &mut dw);
            }
            (dw, db)
        })
        .collect();
    let mut dw = vec![0.0f32; s.c_out * k];
    let mut db = vec![0.0f64; s.c_out];
    for (p, pb) in &partials {
        dw.iter_mut().zip(p).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
    (dw, db.into_iter().map(|v| v as f32).collect())
}

/// `Σ v` in f64, in four interleaved running sums (so that the additions pipeline and
/// vectorise), added up at the end.
fn sum_f64(v: &[f32]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = v.chunks_exact(4);
    let tail: f64 = chunks.remainder().iter().map(|&x| f64::from(x)).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f64::from(x);
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Gradient of the loss with respect to the input `[N, Ci, D, H, W]`, given the weight
/// `[Co, Ci, kd, kh, kw]` and the output gradient `grad` `[N, Co, D', H', W']`.
///
/// # Panics
///
/// If a slice length does not match `s`.
pub fn backward_input(weight: &[f32], grad: &[f32], s: &ConvShape) -> Vec<f32> {
    let [kd, kh, kw] = s.kernel;
    let [od, oh, ow] = s.output();
    let [d, h, w] = s.input;
    assert_eq!(weight.len(), s.c_out * s.patch_len(), "conv3d weight length");
    assert_eq!(grad.len(), s.batch * s.c_out * s.output_len(), "conv3d output gradient length");
    // The flipped kernel with input and output channels swapped: [Ci, Co, kd, kh, kw].
    let taps = kd * kh * kw;
    let mut flipped = vec![0.0f32; weight.len()];
    for co in 0..s.c_out {
        for ci in 0..s.c_in {
            for t in 0..taps {
                flipped[(ci * s.c_out + co) * taps + t] = weight[(co * s.c_in + ci) * taps + (taps - 1 - t)];
            }
        }
    }
    // dY of one scan zero-padded by k − 1 on each side: [Co, D + kd − 1, H + kh − 1, W + kw − 1].
    let padded = [od + 2 * (kd - 1), oh + 2 * (kh - 1), ow + 2 * (kw - 1)];
    let full = ConvShape { batch: 1, c_in: s.c_out, c_out: s.c_in, input: padded, kernel: s.kernel };
    debug_assert_eq!(full.output(), [d, h, w]);
    let plane = od * oh * ow;
    let mut dx = vec![0.0f32; s.batch * s.c_in * s.input_len()];
    let mut gp = vec![0.0f32; s.c_out * padded.iter().product::<usize>()];
    for (g_scan, dx_scan) in grad.chunks_exact(s.c_out * plane).zip(dx.chunks_exact_mut(s.c_in * s.input_len())) {
        gp.par_chunks_mut(padded[1] * padded[2]).enumerate().for_each(|(i, slab)| {
            let (co, z) = (i / padded[0], i % padded[0]);
            slab.fill(0.0);
            if z < kd - 1 || z >= kd - 1 + od {
                return;
            }
            let src = &g_scan[co * plane + (z - (kd - 1)) * oh * ow..];
            for y in 0..oh {
                let dst = (y + kh - 1) * padded[2] + kw - 1;
                slab[dst..dst + ow].copy_from_slice(&src[y * ow..(y + 1) * ow]);
            }
        });
        forward_into(&gp, &flipped, None, &full, dx_scan);
    }
    dx
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Straightforward 7-loop convolution.
    fn naive(x: &[f32], w: &[f32], b: &[f32], s: &ConvShape) -> Vec<f32> {
        let [d, h, wd] = s.input;
        let [kd, kh, kw] = s.kernel;
        let [od, oh, ow] = s.output();
        let mut out = vec![0.0f32; s.batch * s.c_out * od * oh * ow];
        for n in 0..s.batch {
            for co in 0..s.c_out {
                for z in 0..od {
                    for y in 0..oh {
                        for xx in 0..ow {
                            let mut acc = f64::from(b[co]);
                            for ci in 0..s.c_in {
                                for a in 0..kd {
                                    for bb in 0..kh {
                                        for c in 0..kw {
                                            let xi = (((n * s.c_in + ci) * d + z + a) * h + y + bb) * wd + xx + c;
                                            let wi = (((co * s.c_in + ci) * kd + a) * kh + bb) * kw + c;
                                            acc += f64::from(x[xi]) * f64::from(w[wi]);
                                        }
                                    }
                                }
                            }
                            out[(((n * s.c_out + co) * od + z) * oh + y) * ow + xx] = acc as f32;
                        }
                    }
                }
            }
        }
        out
    }

    /// Reproducible values in [−1, 1) (also the kernels' tests in `implicit`).
    pub(in crate::fast) fn pseudo_random(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn forward_matches_the_seven_loop_convolution_on_odd_shapes() {
        for (i, s) in [
            ConvShape { batch: 2, c_in: 1, c_out: 3, input: [5, 7, 6], kernel: [3, 3, 3] },
            ConvShape { batch: 1, c_in: 3, c_out: 9, input: [4, 9, 11], kernel: [2, 3, 1] },
            ConvShape { batch: 3, c_in: 2, c_out: 1, input: [3, 3, 3], kernel: [3, 3, 3] },
            ConvShape { batch: 1, c_in: 5, c_out: 16, input: [6, 5, 40], kernel: [3, 2, 3] },
        ]
        .iter()
        .enumerate()
        {
            let x = pseudo_random(s.batch * s.c_in * s.input_len(), i as u64);
            let w = pseudo_random(s.c_out * s.patch_len(), 100 + i as u64);
            let b = pseudo_random(s.c_out, 200 + i as u64);
            let want = naive(&x, &w, &b, s);
            let got = forward(&x, &w, Some(&b), s);
            let err = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(err < 1e-4, "{s:?}: max error {err}");
        }
    }

    #[test]
    fn both_backward_passes_match_the_seven_loop_sums_on_odd_shapes() {
        for (i, s) in [
            ConvShape { batch: 2, c_in: 1, c_out: 3, input: [5, 7, 6], kernel: [3, 3, 3] },
            ConvShape { batch: 1, c_in: 3, c_out: 9, input: [4, 9, 11], kernel: [2, 3, 1] },
            ConvShape { batch: 2, c_in: 5, c_out: 8, input: [6, 5, 40], kernel: [3, 2, 3] },
        ]
        .iter()
        .enumerate()
        {
            let [d, h, wd] = s.input;
            let [kd, kh, kw] = s.kernel;
            let [od, oh, ow] = s.output();
            let x = pseudo_random(s.batch * s.c_in * s.input_len(), 10 + i as u64);
            let w = pseudo_random(s.c_out * s.patch_len(), 20 + i as u64);
            let g = pseudo_random(s.batch * s.c_out * s.output_len(), 30 + i as u64);
            let (mut dw, mut db, mut dx) = (vec![0.0f64; w.len()], vec![0.0f64; s.c_out], vec![0.0f64; x.len()]);
            for n in 0..s.batch {
                for co in 0..s.c_out {
                    for z in 0..od {
                        for y in 0..oh {
                            for xx in 0..ow {
                                let gv = f64::from(g[(((n * s.c_out + co) * od + z) * oh + y) * ow + xx]);
                                db[co] += gv;
                                for ci in 0..s.c_in {
                                    for a in 0..kd {
                                        for b in 0..kh {
                                            for c in 0..kw {
                                                let xi = (((n * s.c_in + ci) * d + z + a) * h + y + b) * wd + xx + c;
                                                let wi = (((co * s.c_in + ci) * kd + a) * kh + b) * kw + c;
                                                dw[wi] += gv * f64::from(x[xi]);
                                                dx[xi] += gv * f64::from(w[wi]);
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let (got_dw, got_db) = backward_weight(&x, &g, s);
            let got_dx = backward_input(&w, &g, s);
            let err = |want: &[f64], got: &[f32]| {
                assert_eq!(want.len(), got.len());
                want.iter().zip(got).map(|(a, &b)| (a - f64::from(b)).abs()).fold(0.0, f64::max)
            };
            assert!(err(&dw, &got_dw) < 1e-3, "{s:?}: weight gradient {}", err(&dw, &got_dw));
            assert!(err(&db, &got_db) < 1e-3, "{s:?}: bias gradient {}", err(&db, &got_db));
            assert!(err(&dx, &got_dx) < 1e-4, "{s:?}: input gradient {}", err(&dx, &got_dx));
        }
    }
}
