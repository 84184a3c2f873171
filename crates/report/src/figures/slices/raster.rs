//! From volumes to pixels: the paper's coronal planes, the box and slices a panel shows, bilinear
//! sampling, the grey window, the overlay ramp, and the pixels of a panel and a colour bar.

use adni_data::volume::Grid;
use ndarray::ArrayView3;

use crate::error::{ReportError, Result};
use crate::figures::Canvas;

/// The paper's coronal planes as voxel indices `j` of the 1 mm MNI grid (193×229×193, origin
/// y = −132 mm): world y = −52, −18 and +17 mm.
pub const PAPER_CORONAL_SLICES_1MM: [usize; 3] = [80, 114, 149];

/// The overlay colour at full relevance.
const RED: [f64; 3] = [230.0, 20.0, 20.0];

/// The `p`-th percentile (0–100) of `values` with linear interpolation between order statistics
/// (numpy's default); `None` for no values. ([`adni_data::stats::percentile`] on the 0–100 scale.)
pub fn percentile(values: Vec<f32>, p: f64) -> Option<f32> {
    adni_data::stats::percentile(values, p.clamp(0.0, 100.0) / 100.0, adni_data::stats::Rank::Linear)
}

/// What a map's overlay shows.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Overlay {
    /// Relevance drawn with `ramp` (see [`overlay_rgba`]), clipped as `clip` says.
    Show { ramp: Ramp, clip: Clip },
    /// Nothing to show, and why (printed on the figure).
    Nothing(String),
}

/// How relevance values become colours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Ramp {
    /// A non-negative map: 0 transparent, `vmax` and above opaque red.
    Sequential { vmax: f32 },
    /// A signed map (some value below 0): blue below zero, red above, transparent at zero,
    /// opaque at `±vmax` and beyond (symmetric limits, so zero sits in the middle of the bar).
    Diverging { vmax: f32 },
}

impl Ramp {
    /// The clipping limit (the value drawn fully opaque).
    pub(super) fn vmax(self) -> f32 {
        match self {
            Ramp::Sequential { vmax } | Ramp::Diverging { vmax } => vmax,
        }
    }

    pub(super) fn is_diverging(self) -> bool {
        matches!(self, Ramp::Diverging { .. })
    }
}

/// Where the overlay's limit came from, to name it under the colour bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Clip {
    /// The given percentile (0–100) of the map's voxel values (of their magnitudes when signed).
    Percentile(f64),
    /// The map's largest value (magnitude when signed): the percentile was not positive.
    Maximum,
    /// A value given by the caller ([`OverlayScale::Fixed`](super::OverlayScale::Fixed)).
    Fixed,
}

impl Clip {
    /// The colour bar's caption: the quantity and the clipping actually applied.
    pub(super) fn caption(self, ramp: Ramp) -> String {
        let (what, of) = if ramp.is_diverging() { ("signed relevance", " of |relevance|") } else { ("relevance", "") };
        match self {
            Clip::Percentile(p) => {
                format!("{what} (clipped at the {}th percentile{of})", crate::figures::short_float(p))
            }
            Clip::Maximum => format!("{what} (scaled to the maximum{of})"),
            Clip::Fixed => format!("{what} (clipped at a shared fixed scale)"),
        }
    }
}

/// The overlay of `map`: signed (diverging ramp) when any voxel is below zero, else sequential;
/// the limit is `scale` when given, else the `p`-th percentile of the values (of their
/// magnitudes when signed), else the maximum (magnitude) where that percentile is not positive.
pub(super) fn overlay_of(map: &ArrayView3<f32>, scale: Option<f32>, p: f64) -> Overlay {
    let (min, max) = map.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if map.is_empty() {
        return Overlay::Nothing("empty map".into());
    }
    if min == max {
        return Overlay::Nothing(if max == 0.0 {
            "all-zero map: no overlay".into()
        } else {
            format!("constant map ({}): no overlay", crate::figures::short_float(f64::from(max)))
        });
    }
    let signed = min < 0.0;
    let top = if signed { max.max(-min) } else { max };
    if top <= 0.0 {
        return Overlay::Nothing("no positive relevance: no overlay".into());
    }
    let (vmax, clip) = match scale {
        Some(s) => (s, Clip::Fixed),
        None => {
            let values = if signed { map.iter().map(|v| v.abs()).collect() } else { map.iter().copied().collect() };
            (percentile(values, p).unwrap_or(top), Clip::Percentile(p))
        }
    };
    let (vmax, clip) = if vmax > 0.0 && vmax.is_finite() { (vmax, clip) } else { (top, Clip::Maximum) };
    let ramp = if signed { Ramp::Diverging { vmax } } else { Ramp::Sequential { vmax } };
    Overlay::Show { ramp, clip }
}

/// The top of the overlay ramp for `map` at the `p`-th percentile (see
/// [`OverlayScale::Percentile`](super::OverlayScale::Percentile); for a signed map, of the
/// magnitudes), or `None` when the map has nothing to show (all zero or constant).
pub fn overlay_max(map: ArrayView3<f32>, p: f64) -> Option<f32> {
    match overlay_of(&map, None, p) {
        Overlay::Show { ramp, .. } => Some(ramp.vmax()),
        Overlay::Nothing(_) => None,
    }
}

/// The diverging colour map (ColorBrewer RdBu, 5 stops) at `t` in [−1, 1]: blue at −1, the
/// neutral near-white at 0, red at +1; `t` outside is clamped.
pub(super) fn diverging_colour(t: f64) -> [f64; 3] {
    const STOPS: [[f64; 3]; 5] = [
        [33.0, 102.0, 172.0],
        [146.0, 197.0, 222.0],
        [247.0, 247.0, 247.0],
        [244.0, 165.0, 130.0],
        [178.0, 24.0, 43.0],
    ];
    let x = (t.clamp(-1.0, 1.0) + 1.0) * 2.0;
    let i = (x.floor() as usize).min(3);
    let f = x - i as f64;
    [0, 1, 2].map(|c| STOPS[i][c] * (1.0 - f) + STOPS[i + 1][c] * f)
}

/// Colour and opacity (0–1) of relevance `v` under `ramp`. Opacity grows with |v| / vmax, so
/// near-zero relevance leaves the anatomy visible; colour is red for the sequential ramp and
/// [`diverging_colour`] for the diverging one.
pub(super) fn overlay_rgba(v: f32, ramp: Ramp) -> ([f64; 3], f64) {
    match ramp {
        Ramp::Sequential { vmax } => (RED, f64::from((v / vmax).clamp(0.0, 1.0))),
        Ramp::Diverging { vmax } => {
            let t = f64::from((v / vmax).clamp(-1.0, 1.0));
            (diverging_colour(t), t.abs())
        }
    }
}

/// Index `j` of the coronal plane at world `y_mm` on `grid` (through the inverse affine at
/// world x = z = 0). A plane exactly between two voxels takes the lower index, so the paper's
/// 1 mm planes 80, 114, 149 become 40, 57, 74 on the 2 mm grid of
/// [`Grid::downsampled`]`(2)`. Errors when the plane lies outside the grid.
pub fn coronal_index(grid: &Grid, y_mm: f64) -> Result<usize> {
    let inv = grid
        .affine
        .inverse()
        .ok_or_else(|| ReportError::invalid("grid", format!("singular affine {:?}", grid.affine.0)))?;
    let j = inv.apply([0.0, y_mm, 0.0])[1];
    let idx = (j - 0.5).ceil();
    if !(idx >= 0.0 && idx < grid.shape[1] as f64) {
        return Err(ReportError::invalid(
            "coronal plane",
            format!("world y = {y_mm} mm lies outside the grid ({} planes, j = {j:.1})", grid.shape[1]),
        ));
    }
    Ok(idx as usize)
}

/// The paper's coronal planes ([`PAPER_CORONAL_SLICES_1MM`], world y = −52, −18, +17 mm) on
/// `grid` (40, 57, 74 at 2 mm).
pub fn paper_coronal_slices(grid: &Grid) -> Result<Vec<usize>> {
    let mni = Grid::mni152_1mm();
    PAPER_CORONAL_SLICES_1MM.iter().map(|&j| coronal_index(grid, mni.affine.apply([0.0, j as f64, 0.0])[1])).collect()
}

/// Slice axes: 0 sagittal (fixed i), 1 coronal (fixed j), 2 axial (fixed k).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Axis {
    Sagittal,
    Coronal,
    Axial,
}

impl Axis {
    pub(super) fn index(self) -> usize {
        match self {
            Axis::Sagittal => 0,
            Axis::Coronal => 1,
            Axis::Axial => 2,
        }
    }

    pub(super) fn letter(self) -> &'static str {
        ["x", "y", "z"][self.index()]
    }

    pub(super) fn name(self) -> &'static str {
        ["sagittal", "coronal", "axial"][self.index()]
    }

    /// Picture width and height of a slice of the box `b` (inclusive voxel ranges per axis).
    pub(super) fn dims(self, b: &Bounds) -> (usize, usize) {
        let n = |a: usize| b[a].1 - b[a].0 + 1;
        match self {
            Axis::Sagittal => (n(1), n(2)),
            Axis::Coronal => (n(0), n(2)),
            Axis::Axial => (n(0), n(1)),
        }
    }

    /// The voxel shown at picture column `c`, row `r` (row 0 at the top) of slice `s` of box `b`.
    fn voxel(self, b: &Bounds, s: usize, c: usize, r: usize) -> [usize; 3] {
        match self {
            Axis::Sagittal => [s, b[1].0 + c, b[2].1 - r],
            Axis::Coronal => [b[0].0 + c, s, b[2].1 - r],
            Axis::Axial => [b[0].0 + c, b[1].1 - r, s],
        }
    }

    /// Side letters at the left and right edge of the picture.
    pub(super) fn side_letters(self) -> (&'static str, &'static str) {
        match self {
            Axis::Sagittal => ("P", "A"),
            Axis::Coronal | Axis::Axial => ("L", "R"),
        }
    }
}

/// Inclusive voxel ranges along i, j, k.
type Bounds = [(usize, usize); 3];

/// The whole volume of `shape` as a box.
fn full_bounds(shape: &[usize]) -> Bounds {
    [(0, shape[0] - 1), (0, shape[1] - 1), (0, shape[2] - 1)]
}

/// The box holding the background's non-zero voxels (the head or brain) plus a margin of two
/// voxels; the whole volume when every voxel is zero. Views are cropped to it and
/// [`plot_slices`](super::plot_slices) spaces its slices inside it, so no panel is spent on empty space.
pub(super) fn brain_bounds(background: &ArrayView3<f32>) -> Bounds {
    let shape = background.shape();
    let mut b = [(usize::MAX, 0usize); 3];
    for ((i, j, k), &v) in background.indexed_iter() {
        if v != 0.0 {
            for (a, x) in [i, j, k].into_iter().enumerate() {
                b[a] = (b[a].0.min(x), b[a].1.max(x));
            }
        }
    }
    if b[0].0 == usize::MAX {
        return full_bounds(shape);
    }
    let mut out = b;
    for a in 0..3 {
        out[a] = (b[a].0.saturating_sub(2), (b[a].1 + 2).min(shape[a] - 1));
    }
    out
}

/// Bilinear sample of slice `s` of box `b` at picture position (`u`, `v`) in voxel units.
fn sample(vol: &ArrayView3<f32>, axis: Axis, b: &Bounds, s: usize, u: f64, v: f64) -> f32 {
    let (w, h) = axis.dims(b);
    let u = u.clamp(0.0, (w - 1) as f64);
    let v = v.clamp(0.0, (h - 1) as f64);
    let (c0, r0) = (u.floor() as usize, v.floor() as usize);
    let (c1, r1) = ((c0 + 1).min(w - 1), (r0 + 1).min(h - 1));
    let (fu, fv) = ((u - c0 as f64) as f32, (v - r0 as f64) as f32);
    let at = |c: usize, r: usize| vol[axis.voxel(b, s, c, r)];
    let top = at(c0, r0) * (1.0 - fu) + at(c1, r0) * fu;
    let bottom = at(c0, r1) * (1.0 - fu) + at(c1, r1) * fu;
    top * (1.0 - fv) + bottom * fv
}

/// The grey window of a background volume: 0.5th and 99.5th percentiles of its non-zero voxels
/// (zero is outside the brain mask in the project's scans and templates); `None` when constant.
pub(super) fn grey_window(background: &ArrayView3<f32>) -> Option<(f32, f32)> {
    let values: Vec<f32> = background.iter().copied().filter(|&v| v != 0.0).collect();
    let lo = percentile(values.clone(), 0.5)?;
    let hi = percentile(values, 99.5)?;
    (hi > lo).then_some((lo, hi))
}

/// One slice picture: grey background, the overlay blended by [`overlay_rgba`] (0 transparent,
/// `vmax` and above opaque; ±`vmax` for a diverging ramp), copied onto the canvas at (`x0`, `y0`) with size `pw`×`ph`.
#[allow(clippy::too_many_arguments)]
pub(super) fn render_panel(
    canvas: &mut Canvas,
    (x0, y0, pw, ph): (i64, i64, u32, u32),
    background: &ArrayView3<f32>,
    window: Option<(f32, f32)>,
    map: Option<(&ArrayView3<f32>, Ramp)>,
    (axis, bounds, s): (Axis, &Bounds, usize),
) {
    let (w, h) = axis.dims(bounds);
    for py in 0..ph {
        let v = (f64::from(py) + 0.5) / f64::from(ph) * h as f64 - 0.5;
        for px in 0..pw {
            let u = (f64::from(px) + 0.5) / f64::from(pw) * w as f64 - 0.5;
            let b = sample(background, axis, bounds, s, u, v);
            let grey = match window {
                Some((lo, hi)) if b != 0.0 => f64::from(((b - lo) / (hi - lo)).clamp(0.0, 1.0)) * 255.0,
                Some(_) => 0.0,
                None => 40.0,
            };
            let mut rgb = [grey; 3];
            if let Some((m, ramp)) = map {
                let (colour, a) = overlay_rgba(sample(m, axis, bounds, s, u, v), ramp);
                for (c, r) in rgb.iter_mut().zip(colour) {
                    *c = *c * (1.0 - a) + r * a;
                }
            }
            canvas.put(x0 + i64::from(px), y0 + i64::from(py), rgb.map(|c| c.round() as u8));
        }
    }
}

/// A colour bar for the overlay, blended over mid-grey as the panels blend over the anatomy:
/// `0` at the left and `vmax` at the right (sequential), or `−vmax` to `+vmax` with zero in the
/// middle (diverging).
pub(super) fn render_colorbar(canvas: &mut Canvas, (x0, y0, w, h): (i64, i64, u32, u32), ramp: Ramp) {
    let vmax = ramp.vmax();
    for px in 0..w {
        let a = f64::from(px) / f64::from(w.max(2) - 1);
        let v = if ramp.is_diverging() { (2.0 * a - 1.0) as f32 * vmax } else { a as f32 * vmax };
        let (colour, alpha) = overlay_rgba(v, ramp);
        let rgb: [u8; 3] = [0, 1, 2].map(|c| (128.0 * (1.0 - alpha) + colour[c] * alpha).round() as u8);
        for py in 0..h {
            canvas.put(x0 + i64::from(px), y0 + i64::from(py), rgb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adni_data::volume::Affine;
    use ndarray::Array3;

    #[test]
    fn paper_planes_follow_the_voxel_size() {
        assert_eq!(paper_coronal_slices(&Grid::mni152_1mm()).unwrap(), vec![80, 114, 149]);
        assert_eq!(paper_coronal_slices(&Grid::mni152_1mm().downsampled(2)).unwrap(), vec![40, 57, 74]);
        let small = Grid { shape: [10, 10, 10], affine: Affine::identity() };
        assert!(coronal_index(&small, 50.0).is_err());
    }

    #[test]
    fn views_are_cropped_to_the_non_zero_background() {
        let bg = Array3::from_shape_fn((20, 30, 40), |(i, j, k)| {
            if (5..10).contains(&i) && (10..12).contains(&j) && (1..39).contains(&k) { 1.0f32 } else { 0.0 }
        });
        assert_eq!(brain_bounds(&bg.view()), [(3, 11), (8, 13), (0, 39)]);
        let zero = Array3::<f32>::zeros((4, 5, 6));
        assert_eq!(brain_bounds(&zero.view()), [(0, 3), (0, 4), (0, 5)]);
        assert_eq!(Axis::Coronal.dims(&brain_bounds(&bg.view())), (9, 40));
    }

    #[test]
    fn percentile_interpolates_like_numpy() {
        // np.percentile([1, 2, 3, 4], 50) == 2.5; np.percentile(range(11), 99.9) == 9.99
        assert_eq!(percentile(vec![4.0, 1.0, 3.0, 2.0], 50.0), Some(2.5));
        assert!((percentile((0..11).map(|v| v as f32).collect(), 99.9).unwrap() - 9.99).abs() < 1e-5);
        assert_eq!(percentile(vec![], 50.0), None);
    }

    #[test]
    fn overlay_is_absent_for_zero_and_constant_maps() {
        assert_eq!(overlay_max(Array3::<f32>::zeros((3, 3, 3)).view(), 99.9), None);
        assert_eq!(overlay_max(Array3::from_elem((3, 3, 3), 2.0f32).view(), 99.9), None);
        // one hot voxel among 2000: the 99.9th percentile is 0, so the maximum is used
        let mut m = Array3::<f32>::zeros((10, 10, 20));
        m[[1, 2, 3]] = 5.0;
        assert_eq!(overlay_max(m.view(), 99.9), Some(5.0));
    }

    #[test]
    fn coronal_panel_puts_superior_up_and_left_on_the_left() {
        // background bright everywhere; map hot only at i = 0 (left), k = top (superior)
        let bg = Array3::from_elem((4, 1, 4), 1.0f32);
        let mut map = Array3::<f32>::zeros((4, 1, 4));
        map[[0, 0, 3]] = 1.0;
        map[[3, 0, 0]] = 0.01; // not constant elsewhere
        let mut canvas = Canvas::new((64, 64)).unwrap();
        let b = full_bounds(bg.shape());
        render_panel(
            &mut canvas,
            (0, 0, 4, 4),
            &bg.view(),
            Some((0.5, 2.0)),
            Some((&map.view(), Ramp::Sequential { vmax: 1.0 })),
            (Axis::Coronal, &b, 0),
        );
        let px = |x: usize, y: usize| canvas.rgb[(y * 64 + x) * 3..(y * 64 + x) * 3 + 3].to_vec();
        assert_eq!(px(0, 0), vec![230, 20, 20], "top-left pixel is left-superior");
        assert_ne!(px(3, 3), vec![230, 20, 20]);
    }

    #[test]
    fn diverging_colour_is_neutral_at_zero_and_flips_hue_with_the_sign() {
        let white = diverging_colour(0.0);
        assert!(white.iter().all(|&c| c > 240.0), "zero is not the neutral colour: {white:?}");
        assert!((white[0] - white[2]).abs() < 1.0, "neutral colour is tinted: {white:?}");
        for t in [0.25, 0.5, 1.0] {
            let (pos, neg) = (diverging_colour(t), diverging_colour(-t));
            assert!(pos[0] > pos[2], "+{t} is not red: {pos:?}");
            assert!(neg[2] > neg[0], "-{t} is not blue: {neg:?}");
        }
        assert_eq!(diverging_colour(3.0), diverging_colour(1.0));
        let ramp = Ramp::Diverging { vmax: 2.0 };
        assert_eq!(overlay_rgba(0.0, ramp).1, 0.0, "zero relevance must leave the anatomy visible");
        assert_eq!(overlay_rgba(-2.0, ramp), (diverging_colour(-1.0), 1.0));
        assert_eq!(overlay_rgba(5.0, ramp), (diverging_colour(1.0), 1.0));
    }

    #[test]
    fn a_signed_map_selects_the_symmetric_diverging_scale() {
        // gradient × input style: mostly small values of both signs, one strong negative voxel
        let mut m = Array3::from_shape_fn((10, 10, 20), |(i, j, k)| ((i + 2 * j + 3 * k) % 7) as f32 * 0.1 - 0.3);
        m[[1, 2, 3]] = -50.0;
        match overlay_of(&m.view(), None, 100.0) {
            Overlay::Show { ramp: Ramp::Diverging { vmax }, clip: Clip::Percentile(_) } => assert_eq!(vmax, 50.0),
            other => panic!("signed map drew {other:?}"),
        }
        // a map with only negative values still has something to show
        let neg = Array3::from_shape_fn((3, 3, 3), |(i, _, _)| -(i as f32));
        assert!(matches!(overlay_of(&neg.view(), None, 99.9), Overlay::Show { ramp: Ramp::Diverging { .. }, .. }));
        // a non-negative map keeps the sequential ramp
        let pos = m.mapv(f32::abs);
        assert!(matches!(overlay_of(&pos.view(), None, 99.9), Overlay::Show { ramp: Ramp::Sequential { .. }, .. }));
    }

    #[test]
    fn colour_bar_captions_name_the_clipping_applied() {
        let mut m = Array3::<f32>::zeros((10, 10, 20));
        m[[1, 2, 3]] = 5.0;
        let Overlay::Show { ramp, clip } = overlay_of(&m.view(), None, 99.9) else { panic!() };
        assert_eq!(clip, Clip::Maximum, "the 99.9th percentile of a one-voxel map is 0");
        assert_eq!(clip.caption(ramp), "relevance (scaled to the maximum)");
        let Overlay::Show { ramp, clip } = overlay_of(&m.mapv(|v| v - 1.0).view(), None, 99.9) else { panic!() };
        assert_eq!(clip.caption(ramp), "signed relevance (clipped at the 99.9th percentile of |relevance|)");
    }
}
