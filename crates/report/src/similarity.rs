//! How alike two relevance maps are, for the model-parameter randomisation test of Adebayo et
//! al. (2018, "Sanity checks for saliency maps"): a map of the trained model is compared with
//! the map of the same scan after the model's layers were randomised one by one, from the top.
//! A method whose maps stay alike while the weights they are meant to explain are destroyed
//! does not explain the model.
//!
//! Two measures, as in the paper: the Spearman rank correlation over the voxels, and the
//! structural similarity (SSIM) of the two maps rescaled to [0, 1]. Both take an optional mask
//! (the brain mask the model's inputs were cut with), so that the many background voxels, where
//! every method gives zero, do not make unrelated maps look alike.

use ndarray::ArrayView3;

use crate::error::{ReportError, Result};
use crate::regions::check_finite;

/// SSIM's stabilising constant for the means, (0.01 · data range)² with data range 1.
pub const SSIM_C1: f64 = 0.01 * 0.01;

/// SSIM's stabilising constant for the variances, (0.03 · data range)² with data range 1.
pub const SSIM_C2: f64 = 0.03 * 0.03;

/// Errors unless `a`, `b` and the mask (when given) share one shape, and both maps are finite.
fn check_inputs(a: &ArrayView3<f32>, b: &ArrayView3<f32>, mask: Option<&ArrayView3<bool>>) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(ReportError::Shape(format!(
            "the first map has shape {:?} but the second has shape {:?}; compare maps of one grid",
            a.shape(),
            b.shape()
        )));
    }
    if let Some(m) = mask
        && m.shape() != a.shape()
    {
        return Err(ReportError::Shape(format!(
            "the maps have shape {:?} but the mask has shape {:?}; put all three on one grid",
            a.shape(),
            m.shape()
        )));
    }
    check_finite(a, "first map")?;
    check_finite(b, "second map")
}

/// The values of `map` at the voxels inside `mask` (all voxels without one), in C order.
fn masked_values(map: &ArrayView3<f32>, mask: Option<&ArrayView3<bool>>) -> Vec<f64> {
    match mask {
        None => map.iter().map(|&v| f64::from(v)).collect(),
        Some(m) => map.iter().zip(m.iter()).filter(|(_, in_mask)| **in_mask).map(|(&v, _)| f64::from(v)).collect(),
    }
}

/// Ranks 1…n of `values`, tied values sharing the mean of their ranks.
fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        // `==` rather than `total_cmp`, so that −0 and +0 tie
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // ranks start + 1 … end share their mean
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Pearson correlation of two equally long samples; NaN when either is constant (or has fewer
/// than two values).
fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if x.len() < 2 || sxx <= 0.0 || syy <= 0.0 {
        return f64::NAN;
    }
    (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0)
}

/// Spearman rank correlation of the maps `a` and `b` over their voxels, or over the voxels
/// inside `mask` when given: the Pearson correlation of the two maps' ranks, tied values
/// sharing the mean of their ranks (as `scipy.stats.spearmanr` does).
///
/// NaN, not an error, when either map is constant over the compared voxels (an all-zero map of
/// a layer that no longer passes anything on), or fewer than two voxels are compared: the rank
/// correlation is undefined there, and a summary should count such scans rather than read them
/// as zero. Errors when the shapes of `a`, `b` and `mask` differ (naming them) or a map holds
/// NaN or infinity.
pub fn spearman(a: ArrayView3<f32>, b: ArrayView3<f32>, mask: Option<ArrayView3<bool>>) -> Result<f64> {
    check_inputs(&a, &b, mask.as_ref())?;
    let x = masked_values(&a, mask.as_ref());
    let y = masked_values(&b, mask.as_ref());
    Ok(pearson(&average_ranks(&x), &average_ranks(&y)))
}

/// `values` rescaled to [0, 1] by their own minimum and maximum over the voxels inside `mask`
/// (all voxels without one); voxels outside the mask, and every voxel of a map that is constant
/// inside the mask, become 0.
fn rescaled(map: &ArrayView3<f32>, mask: Option<&ArrayView3<bool>>) -> Vec<f64> {
    let values: Vec<(f64, bool)> = match mask {
        None => map.iter().map(|&v| (f64::from(v), true)).collect(),
        Some(m) => map.iter().zip(m.iter()).map(|(&v, &k)| (f64::from(v), k)).collect(),
    };
    let (lo, hi) = values
        .iter()
        .filter(|(_, k)| *k)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(v, _)| (lo.min(v), hi.max(v)));
    let range = hi - lo;
    values.iter().map(|&(v, k)| if k && range > 0.0 { (v - lo) / range } else { 0.0 }).collect()
}

/// Summed-area (integral) volume of `v` (C order, shape `dims`): entry `[i, j, k]` of the
/// `(d0 + 1) × (d1 + 1) × (d2 + 1)` result is the sum of `v` over `[0, i) × [0, j) × [0, k)`.
fn integral(v: &[f64], dims: [usize; 3]) -> Vec<f64> {
    let [d0, d1, d2] = dims;
    let (s1, s2) = (d1 + 1, d2 + 1);
    let mut out = vec![0.0; (d0 + 1) * s1 * s2];
    // cumulative sums along k, then j, then i (three separable passes)
    for i in 0..d0 {
        for j in 0..d1 {
            let mut acc = 0.0;
            for k in 0..d2 {
                acc += v[(i * d1 + j) * d2 + k];
                out[((i + 1) * s1 + j + 1) * s2 + k + 1] = acc;
            }
        }
    }
    for i in 1..=d0 {
        for j in 1..=d1 {
            for k in 1..=d2 {
                out[(i * s1 + j) * s2 + k] += out[(i * s1 + j - 1) * s2 + k];
            }
        }
    }
    for i in 1..=d0 {
        for j in 1..=d1 {
            for k in 1..=d2 {
                out[(i * s1 + j) * s2 + k] += out[((i - 1) * s1 + j) * s2 + k];
            }
        }
    }
    out
}

/// Sum over the box `[i, i + w0) × [j, j + w1) × [k, k + w2)` from an [`integral`] volume.
fn box_sum(s: &[f64], dims: [usize; 3], at: [usize; 3], w: [usize; 3]) -> f64 {
    let (s1, s2) = (dims[1] + 1, dims[2] + 1);
    let idx = |i: usize, j: usize, k: usize| (i * s1 + j) * s2 + k;
    let [i0, j0, k0] = at;
    let [i1, j1, k1] = [i0 + w[0], j0 + w[1], k0 + w[2]];
    s[idx(i1, j1, k1)] - s[idx(i0, j1, k1)] - s[idx(i1, j0, k1)] - s[idx(i1, j1, k0)]
        + s[idx(i0, j0, k1)]
        + s[idx(i0, j1, k0)]
        + s[idx(i1, j0, k0)]
        - s[idx(i0, j0, k0)]
}

/// Mean structural similarity (SSIM) of the maps `a` and `b`, as Adebayo et al. (2018) used it
/// (`skimage.metrics.structural_similarity` with `data_range = 1` and a uniform window), restricted
/// to `mask` when one is given:
///
/// 1. each map is rescaled to [0, 1] by its own minimum and maximum over the voxels inside
///    `mask` (all voxels without one); a map that is constant there becomes all 0;
/// 2. at every position of a cubic window of side `window` that lies wholly inside the volume
///    (the positions skimage keeps after cropping its filtered images), the local means μ,
///    variances σ² and covariance σ_ab (sample estimates: divided by N − 1 for the N voxels
///    counted, skimage's `use_sample_covariance=True`) give
///    `(2 μ_a μ_b + C1)(2 σ_ab + C2) / ((μ_a² + μ_b² + C1)(σ_a² + σ_b² + C2))` with
///    C1 = 0.01² ([`SSIM_C1`]) and C2 = 0.03² ([`SSIM_C2`]);
/// 3. the result is the mean over the positions.
///
/// With a mask, only the positions whose centre voxel (offset `⌊side / 2⌋` along each axis) lies
/// inside it are averaged, and each window's statistics count only its voxels inside the mask
/// (positions where that leaves fewer than two voxels are skipped). Both matter: the background
/// is identical (zero) in any two masked maps, so a window over it scores exactly 1, and a window
/// at the brain's edge whose shared zeros counted would score well above 0 for two unrelated
/// maps; either way independent noise would look alike (about 0.65 averaged over every window of
/// a brain-shaped mask, about 0.25 over the windows centred in it with the background counted,
/// about 0 as computed here). Without a mask every voxel and position counts, as in skimage.
///
/// Along an axis shorter than `window` the window is clipped to the volume's size there.
/// Local sums come from summed-area volumes, so the cost is linear in the voxels whatever the
/// window. Two constant maps have SSIM 1 (both become all 0). NaN when `mask` holds no voxel or
/// no window position qualifies. Errors when the shapes differ, a map is not finite, `window` is
/// below 2, or the (clipped) window holds fewer than two voxels (a 1 × 1 × 1 volume), where a
/// sample variance is undefined.
pub fn ssim(a: ArrayView3<f32>, b: ArrayView3<f32>, mask: Option<ArrayView3<bool>>, window: usize) -> Result<f64> {
    check_inputs(&a, &b, mask.as_ref())?;
    if window < 2 {
        return Err(ReportError::invalid(
            "window",
            format!("found {window}, expected a window side of at least 2 voxels (skimage's default is 7)"),
        ));
    }
    let dims = [a.shape()[0], a.shape()[1], a.shape()[2]];
    let w = dims.map(|d| d.min(window));
    let n = w.iter().product::<usize>();
    if n < 2 {
        return Err(ReportError::Shape(format!(
            "maps of shape {dims:?} leave a window of {w:?} voxels; SSIM needs at least two voxels per window"
        )));
    }
    if mask.as_ref().is_some_and(|m| !m.iter().any(|&k| k)) {
        return Ok(f64::NAN);
    }
    // C-order flags of the mask (None: every voxel counts)
    let inside: Option<Vec<bool>> = mask.as_ref().map(|m| m.iter().copied().collect());
    // `rescaled` sets the voxels outside the mask to 0, so the sums below run over the mask only
    let x = rescaled(&a, mask.as_ref());
    let y = rescaled(&b, mask.as_ref());
    let sx = integral(&x, dims);
    let sy = integral(&y, dims);
    let sxx = integral(&x.iter().map(|v| v * v).collect::<Vec<_>>(), dims);
    let syy = integral(&y.iter().map(|v| v * v).collect::<Vec<_>>(), dims);
    let sxy = integral(&x.iter().zip(&y).map(|(u, v)| u * v).collect::<Vec<_>>(), dims);
    let count = inside.as_ref().map(|m| integral(&m.iter().map(|&k| f64::from(u8::from(k))).collect::<Vec<_>>(), dims));
    let positions = [dims[0] + 1 - w[0], dims[1] + 1 - w[1], dims[2] + 1 - w[2]];
    let centre = w.map(|side| side / 2);
    let (mut total, mut used) = (0.0, 0usize);
    for i in 0..positions[0] {
        for j in 0..positions[1] {
            for k in 0..positions[2] {
                let at = [i, j, k];
                let nf = match (&inside, &count) {
                    (Some(m), Some(c)) => {
                        let [ci, cj, ck] = [i + centre[0], j + centre[1], k + centre[2]];
                        if !m[(ci * dims[1] + cj) * dims[2] + ck] {
                            continue;
                        }
                        let counted = box_sum(c, dims, at, w).round();
                        if counted < 2.0 {
                            continue;
                        }
                        counted
                    }
                    _ => n as f64,
                };
                let cov_norm = nf / (nf - 1.0);
                let mean = |s: &[f64]| box_sum(s, dims, at, w) / nf;
                let (ux, uy) = (mean(&sx), mean(&sy));
                let vx = cov_norm * (mean(&sxx) - ux * ux);
                let vy = cov_norm * (mean(&syy) - uy * uy);
                let vxy = cov_norm * (mean(&sxy) - ux * uy);
                let num = (2.0 * ux * uy + SSIM_C1) * (2.0 * vxy + SSIM_C2);
                let den = (ux * ux + uy * uy + SSIM_C1) * (vx + vy + SSIM_C2);
                total += num / den;
                used += 1;
            }
        }
    }
    Ok(if used == 0 { f64::NAN } else { total / used as f64 })
}

#[cfg(test)]
mod tests {
    use ndarray::Array3;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn vol(shape: (usize, usize, usize), v: &[f32]) -> Array3<f32> {
        Array3::from_shape_vec(shape, v.to_vec()).unwrap()
    }

    fn random_vol(shape: (usize, usize, usize), seed: u64) -> Array3<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array3::from_shape_simple_fn(shape, || rng.random_range(-1.0f32..1.0))
    }

    /// SSIM computed window by window with two-pass statistics, no summed areas.
    fn naive_ssim(x: &Array3<f64>, y: &Array3<f64>, w: usize) -> f64 {
        let d = x.shape();
        let (mut total, mut count) = (0.0, 0usize);
        for i in 0..=d[0] - w {
            for j in 0..=d[1] - w {
                for k in 0..=d[2] - w {
                    let at = [i, j, k];
                    let cut = |d: ndarray::AxisDescription| {
                        let start = at[d.axis.index()];
                        ndarray::Slice::from(start..start + w)
                    };
                    let (a, b) = (x.slice_each_axis(cut), y.slice_each_axis(cut));
                    let n = a.len() as f64;
                    let (ma, mb) = (a.sum() / n, b.sum() / n);
                    let va = a.iter().map(|v| (v - ma).powi(2)).sum::<f64>() / (n - 1.0);
                    let vb = b.iter().map(|v| (v - mb).powi(2)).sum::<f64>() / (n - 1.0);
                    let cab = a.iter().zip(b.iter()).map(|(u, v)| (u - ma) * (v - mb)).sum::<f64>() / (n - 1.0);
                    total += (2.0 * ma * mb + SSIM_C1) * (2.0 * cab + SSIM_C2)
                        / ((ma * ma + mb * mb + SSIM_C1) * (va + vb + SSIM_C2));
                    count += 1;
                }
            }
        }
        total / count as f64
    }

    #[test]
    fn spearman_with_ties_matches_hand_value() {
        // a = [1, 2, 2, 3] ranks [1, 2.5, 2.5, 4]; b = [10, 30, 20, 40] ranks [1, 3, 2, 4].
        // deviations from 2.5: [−1.5, 0, 0, 1.5] and [−1.5, 0.5, −0.5, 1.5]:
        // Σ dx·dy = 4.5, Σ dx² = 4.5, Σ dy² = 5 → ρ = 4.5 / √22.5 = 3 / √10
        let a = vol((1, 2, 2), &[1.0, 2.0, 2.0, 3.0]);
        let b = vol((1, 2, 2), &[10.0, 30.0, 20.0, 40.0]);
        let r = spearman(a.view(), b.view(), None).unwrap();
        assert!((r - 3.0 / 10f64.sqrt()).abs() < 1e-12, "{r}");
        // rank based: any increasing transform of a map leaves ρ unchanged
        let r2 = spearman(a.mapv(|v| v.powi(3) + 7.0).view(), b.view(), None).unwrap();
        assert_eq!(r, r2);
        // −0 and +0 tie
        assert_eq!(average_ranks(&[0.0, -0.0, 1.0]), [1.5, 1.5, 3.0]);
    }

    #[test]
    fn spearman_of_identical_negated_and_constant_maps() {
        let a = random_vol((4, 5, 6), 1);
        assert!((spearman(a.view(), a.view(), None).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(a.view(), (-&a).view(), None).unwrap() + 1.0).abs() < 1e-12);
        let zero = Array3::<f32>::zeros((4, 5, 6));
        assert!(spearman(a.view(), zero.view(), None).unwrap().is_nan());
        assert!(spearman(vol((1, 1, 1), &[1.0]).view(), vol((1, 1, 1), &[2.0]).view(), None).unwrap().is_nan());
    }

    #[test]
    fn spearman_within_a_mask_ignores_the_rest() {
        // inside the mask b ranks like a; outside it the order is reversed
        let a = vol((1, 1, 6), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = vol((1, 1, 6), &[0.1, 0.2, 0.3, 9.0, 8.0, 7.0]);
        let m = Array3::from_shape_vec((1, 1, 6), vec![true, true, true, false, false, false]).unwrap();
        assert_eq!(spearman(a.view(), b.view(), Some(m.view())).unwrap(), 1.0);
        assert!(spearman(a.view(), b.view(), None).unwrap() < 1.0);
        // an empty mask compares nothing
        let none = Array3::from_elem((1, 1, 6), false);
        assert!(spearman(a.view(), b.view(), Some(none.view())).unwrap().is_nan());
    }

    #[test]
    fn shape_mismatch_names_both_shapes() {
        let a = Array3::<f32>::zeros((2, 3, 4));
        let b = Array3::<f32>::zeros((2, 3, 5));
        let e = spearman(a.view(), b.view(), None).unwrap_err().to_string();
        assert!(e.contains("[2, 3, 4]") && e.contains("[2, 3, 5]"), "{e}");
        let e = ssim(a.view(), b.view(), None, 7).unwrap_err().to_string();
        assert!(e.contains("[2, 3, 4]") && e.contains("[2, 3, 5]"), "{e}");
        let m = Array3::from_elem((2, 2, 4), true);
        let e = ssim(a.view(), a.view(), Some(m.view()), 7).unwrap_err().to_string();
        assert!(e.contains("mask") && e.contains("[2, 2, 4]"), "{e}");
        let mut nan = a.clone();
        nan[[1, 1, 1]] = f32::NAN;
        assert!(spearman(nan.view(), a.view(), None).unwrap_err().to_string().contains("first map"));
        assert!(ssim(a.view(), a.view(), None, 1).unwrap_err().to_string().contains("window"));
        assert!(ssim(vol((1, 1, 1), &[1.0]).view(), vol((1, 1, 1), &[1.0]).view(), None, 7).is_err());
    }

    #[test]
    fn ssim_of_identical_maps_is_one() {
        let a = random_vol((9, 8, 7), 2);
        assert!((ssim(a.view(), a.view(), None, 7).unwrap() - 1.0).abs() < 1e-12);
        // rescaling is per map: a map and a positive multiple of it are identical after it
        assert!((ssim(a.view(), a.mapv(|v| 3.0 * v + 1.0).view(), None, 3).unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn ssim_of_a_2x2x2_volume_with_window_2_matches_hand_values() {
        // one window position holding all 8 voxels (N = 8, sample covariance × 8/7).
        // a = [0,0,0,0,1,1,1,1], b = [0,1,0,1,0,1,0,1] (both already span [0, 1]):
        // μ_a = μ_b = 0.5; mean(a²) = mean(b²) = 0.5 → σ_a² = σ_b² = 8/7 · 0.25 = 2/7;
        // mean(ab) = 2/8 = 0.25 → σ_ab = 8/7 · (0.25 − 0.25) = 0;
        // SSIM = (2·0.25 + C1)(0 + C2) / ((0.5 + C1)(4/7 + C2)) = C2 / (4/7 + C2)
        let a = vol((2, 2, 2), &[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        let b = vol((2, 2, 2), &[0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        let s = ssim(a.view(), b.view(), None, 2).unwrap();
        assert!((s - SSIM_C2 / (4.0 / 7.0 + SSIM_C2)).abs() < 1e-12, "{s}");
        // a against its negation: −a rescales to 1 − a, so μ = 0.5 each, σ² = 2/7 each,
        // σ_ab = 8/7 · (mean(a(1 − a)) − 0.25) = 8/7 · (0 − 0.25) = −2/7:
        // SSIM = (0.5 + C1)(−4/7 + C2) / ((0.5 + C1)(4/7 + C2)) = (C2 − 4/7) / (C2 + 4/7)
        let s = ssim(a.view(), (-&a).view(), None, 2).unwrap();
        assert!((s - (SSIM_C2 - 4.0 / 7.0) / (SSIM_C2 + 4.0 / 7.0)).abs() < 1e-12, "{s}");
        // a window larger than the volume is clipped to it: the same single position
        assert_eq!(ssim(a.view(), b.view(), None, 7).unwrap(), ssim(a.view(), b.view(), None, 2).unwrap());
    }

    #[test]
    fn ssim_of_a_map_and_its_negation_is_strongly_negative() {
        let a = random_vol((12, 10, 11), 3);
        let s = ssim(a.view(), (-&a).view(), None, 7).unwrap();
        // −a rescaled is 1 − a rescaled: σ_ab = −σ², and the means differ, so SSIM is near −1
        let x = Array3::from_shape_vec((12, 10, 11), rescaled(&a.view(), None)).unwrap();
        assert!((s - naive_ssim(&x, &x.mapv(|v| 1.0 - v), 7)).abs() < 1e-10, "{s}");
        assert!(s < -0.9, "{s}");
    }

    #[test]
    fn summed_areas_agree_with_window_by_window_ssim() {
        let a = random_vol((9, 11, 10), 4);
        let b = &a + &random_vol((9, 11, 10), 5).mapv(|v| 0.5 * v);
        let x = Array3::from_shape_vec((9, 11, 10), rescaled(&a.view(), None)).unwrap();
        let y = Array3::from_shape_vec((9, 11, 10), rescaled(&b.view(), None)).unwrap();
        for w in [2, 3, 7] {
            let s = ssim(a.view(), b.view(), None, w).unwrap();
            assert!((s - naive_ssim(&x, &y, w)).abs() < 1e-10, "window {w}: {s}");
            assert!(0.0 < s && s < 1.0, "{s}");
        }
    }

    #[test]
    fn ssim_within_a_mask_rescales_inside_and_zeroes_outside() {
        // identical inside the mask, wildly different outside: SSIM 1 with the mask only
        let mut a = random_vol((6, 6, 6), 6);
        let mut b = a.clone();
        let mask = Array3::from_shape_fn((6, 6, 6), |(i, _, _)| i < 4);
        for (((i, _, _), va), vb) in a.indexed_iter_mut().zip(b.iter_mut()) {
            if i >= 4 {
                (*va, *vb) = (100.0, -100.0);
            }
        }
        assert!((ssim(a.view(), b.view(), Some(mask.view()), 3).unwrap() - 1.0).abs() < 1e-12);
        assert!(ssim(a.view(), b.view(), None, 3).unwrap() < 0.99);
        // the rescaling uses the minimum and maximum inside the mask, not the outliers outside
        let x: Vec<f64> = rescaled(&a.view(), Some(&mask.view()));
        let inside: Vec<f64> = x.iter().zip(mask.iter()).filter(|(_, k)| **k).map(|(v, _)| *v).collect();
        assert_eq!(inside.iter().copied().fold(f64::INFINITY, f64::min), 0.0);
        assert_eq!(inside.iter().copied().fold(f64::NEG_INFINITY, f64::max), 1.0);
        assert!(x.iter().zip(mask.iter()).all(|(v, k)| *k || *v == 0.0));
        // a constant map becomes all 0; an empty mask gives NaN
        let c = Array3::from_elem((6, 6, 6), 2.5f32);
        assert!(rescaled(&c.view(), None).iter().all(|&v| v == 0.0));
        assert!((ssim(c.view(), c.view(), None, 3).unwrap() - 1.0).abs() < 1e-12);
        let empty = Array3::from_elem((6, 6, 6), false);
        assert!(ssim(a.view(), b.view(), Some(empty.view()), 3).unwrap().is_nan());
    }

    /// An ellipsoid filling about a fifth of a 40 × 48 × 40 grid, as the brain fills the model's.
    fn brain_like_mask() -> Array3<bool> {
        Array3::from_shape_fn((40, 48, 40), |(i, j, k)| {
            let d = |v: usize, c: f64, r: f64| ((v as f64 - c) / r).powi(2);
            d(i, 19.5, 15.0) + d(j, 23.5, 19.0) + d(k, 19.5, 15.0) < 1.0
        })
    }

    /// Masked SSIM window by window: positions whose centre voxel is in `mask`, statistics over
    /// the window's voxels in `mask` (at least two), no summed areas.
    fn naive_masked_ssim(x: &Array3<f64>, y: &Array3<f64>, mask: &Array3<bool>, w: usize) -> f64 {
        let d = x.shape();
        let (mut total, mut count) = (0.0, 0usize);
        for i in 0..=d[0] - w {
            for j in 0..=d[1] - w {
                for k in 0..=d[2] - w {
                    if !mask[[i + w / 2, j + w / 2, k + w / 2]] {
                        continue;
                    }
                    let mut pairs = Vec::new();
                    for (a, b) in (i..i + w).flat_map(|a| (j..j + w).map(move |b| (a, b))) {
                        for c in k..k + w {
                            if mask[[a, b, c]] {
                                pairs.push((x[[a, b, c]], y[[a, b, c]]));
                            }
                        }
                    }
                    if pairs.len() < 2 {
                        continue;
                    }
                    let n = pairs.len() as f64;
                    let ma = pairs.iter().map(|p| p.0).sum::<f64>() / n;
                    let mb = pairs.iter().map(|p| p.1).sum::<f64>() / n;
                    let va = pairs.iter().map(|p| (p.0 - ma).powi(2)).sum::<f64>() / (n - 1.0);
                    let vb = pairs.iter().map(|p| (p.1 - mb).powi(2)).sum::<f64>() / (n - 1.0);
                    let cab = pairs.iter().map(|p| (p.0 - ma) * (p.1 - mb)).sum::<f64>() / (n - 1.0);
                    total += (2.0 * ma * mb + SSIM_C1) * (2.0 * cab + SSIM_C2)
                        / ((ma * ma + mb * mb + SSIM_C1) * (va + vb + SSIM_C2));
                    count += 1;
                }
            }
        }
        total / count as f64
    }

    #[test]
    fn masked_ssim_scored_independent_noise_as_alike() {
        // Regression: the masked SSIM averaged every window, and counted the zeroed background in
        // each, so two independent noise maps scored about 0.65 inside a brain-shaped mask.
        let mask = brain_like_mask();
        let a = random_vol((40, 48, 40), 11);
        let b = random_vol((40, 48, 40), 12);
        let s = ssim(a.view(), b.view(), Some(mask.view()), 7).unwrap();
        assert!(s.abs() < 0.1, "independent noise inside the mask: {s}");
        // the same maps in [0, 1], zeroed outside the mask and compared over every window (what
        // the masked SSIM did): the old floor
        let zeroed =
            |v: &Array3<f32>| Array3::from_shape_fn(v.dim(), |p| if mask[p] { (v[p] + 1.0) / 2.0 } else { 0.0 });
        let all_windows = ssim(zeroed(&a).view(), zeroed(&b).view(), None, 7).unwrap();
        assert!(all_windows > 0.4, "{all_windows}");
        // identical maps inside the mask score 1, whatever lies outside it
        let mut c = a.clone();
        c.indexed_iter_mut().filter(|(p, _)| !mask[*p]).for_each(|(_, v)| *v = 50.0);
        assert!((ssim(a.view(), c.view(), Some(mask.view()), 7).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn masked_summed_areas_agree_with_window_by_window_ssim() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let mask = Array3::from_shape_simple_fn((9, 10, 11), || rng.random_bool(0.6));
        let a = random_vol((9, 10, 11), 14);
        let b = &a + &random_vol((9, 10, 11), 15);
        let x = Array3::from_shape_vec((9, 10, 11), rescaled(&a.view(), Some(&mask.view()))).unwrap();
        let y = Array3::from_shape_vec((9, 10, 11), rescaled(&b.view(), Some(&mask.view()))).unwrap();
        for w in [2, 3, 5] {
            let s = ssim(a.view(), b.view(), Some(mask.view()), w).unwrap();
            assert!((s - naive_masked_ssim(&x, &y, &mask, w)).abs() < 1e-10, "window {w}: {s}");
            assert!(0.0 < s && s < 1.0, "{s}");
        }
        // a mask of one voxel leaves no window with two voxels to compare
        let one = Array3::from_shape_fn((9, 10, 11), |p| p == (4, 5, 5));
        assert!(ssim(a.view(), b.view(), Some(one.view()), 3).unwrap().is_nan());
    }

    #[test]
    fn ssim_of_a_brain_sized_volume_is_fast() {
        let a = random_vol((96, 114, 96), 7);
        let b = random_vol((96, 114, 96), 8);
        let t = std::time::Instant::now();
        let s = ssim(a.view(), b.view(), None, 7).unwrap();
        // independent noise: near 0 (the means agree, the covariance is ≈ 0)
        assert!(s.abs() < 0.05, "{s}");
        // generous, so a loaded CI machine does not fail it; the point is "not seconds per map"
        // (timed in optimised builds only, the project's test profile)
        if !cfg!(debug_assertions) {
            assert!(t.elapsed().as_secs_f64() < 2.0, "{:?}", t.elapsed());
        }
    }
}
