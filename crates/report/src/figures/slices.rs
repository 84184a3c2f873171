//! Brain slices with a relevance overlay: the paper's figure and the `plot_slices` grid.

use std::path::Path;

use adni_data::volume::Grid;
use ndarray::ArrayView3;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Area, Canvas, DrawResult, NOTE, base_font, figure_error, fit_text, text_style};
use crate::error::{ReportError, Result};
use crate::regions::check_finite;
use crate::tables::format_float;

/// The paper's coronal planes as voxel indices `j` of the 1 mm MNI grid (193×229×193, origin
/// y = −132 mm): world y = −52, −18 and +17 mm.
pub const PAPER_CORONAL_SLICES_1MM: [usize; 3] = [80, 114, 149];

/// The overlay colour at full relevance.
const RED: [f64; 3] = [230.0, 20.0, 20.0];

/// How the top of the overlay ramp (fully opaque red) is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum OverlayScale {
    /// The given percentile (0–100) of each map's voxel values (all voxels, as the original's
    /// `np.percentile`); the maximum where that percentile is not positive (a sparse map).
    Percentile(f64),
    /// One value per map, in the order of the maps (for a scale shared between figures, such as
    /// the AD and the CN figure: compute it with [`overlay_max`] over both and take the larger).
    Fixed(Vec<f32>),
}

impl Default for OverlayScale {
    /// The 99.9th percentile.
    fn default() -> Self {
        OverlayScale::Percentile(99.9)
    }
}

/// The `p`-th percentile (0–100) of `values` with linear interpolation between order statistics
/// (numpy's default); `None` for no values.
pub fn percentile(mut values: Vec<f32>, p: f64) -> Option<f32> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let rank = p.clamp(0.0, 100.0) / 100.0 * (n - 1) as f64;
    let lo = rank.floor() as usize;
    let frac = rank - lo as f64;
    let (_, a, upper) = values.select_nth_unstable_by(lo, f32::total_cmp);
    let a = *a;
    if frac == 0.0 || upper.is_empty() {
        return Some(a);
    }
    let b = upper.iter().copied().fold(f32::INFINITY, f32::min);
    Some(a + (b - a) * frac as f32)
}

/// What a map's overlay shows.
#[derive(Debug, Clone, PartialEq)]
enum Overlay {
    /// Relevance from 0 (transparent) to `vmax` (opaque red).
    Show { vmax: f32 },
    /// Nothing to show, and why (printed on the figure).
    Nothing(String),
}

fn overlay_of(map: &ArrayView3<f32>, scale: Option<f32>, p: f64) -> Overlay {
    let (min, max) = map.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if map.is_empty() {
        return Overlay::Nothing("empty map".into());
    }
    if min == max {
        return Overlay::Nothing(if max == 0.0 {
            "all-zero map: no overlay".into()
        } else {
            format!("constant map ({}): no overlay", super::short_float(f64::from(max)))
        });
    }
    if max <= 0.0 {
        return Overlay::Nothing("no positive relevance: no overlay".into());
    }
    let vmax = scale.unwrap_or_else(|| percentile(map.iter().copied().collect(), p).unwrap_or(max));
    Overlay::Show { vmax: if vmax > 0.0 && vmax.is_finite() { vmax } else { max } }
}

/// The top of the overlay ramp for `map` at the `p`-th percentile (see
/// [`OverlayScale::Percentile`]), or `None` when the map has nothing to show (all zero, constant,
/// or no positive value).
pub fn overlay_max(map: ArrayView3<f32>, p: f64) -> Option<f32> {
    match overlay_of(&map, None, p) {
        Overlay::Show { vmax } => Some(vmax),
        Overlay::Nothing(_) => None,
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
enum Axis {
    Sagittal,
    Coronal,
    Axial,
}

impl Axis {
    fn index(self) -> usize {
        match self {
            Axis::Sagittal => 0,
            Axis::Coronal => 1,
            Axis::Axial => 2,
        }
    }

    fn letter(self) -> &'static str {
        ["x", "y", "z"][self.index()]
    }

    fn name(self) -> &'static str {
        ["sagittal", "coronal", "axial"][self.index()]
    }

    /// Picture width and height of a slice of the box `b` (inclusive voxel ranges per axis).
    fn dims(self, b: &Bounds) -> (usize, usize) {
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
    fn side_letters(self) -> (&'static str, &'static str) {
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
/// [`plot_slices`] spaces its slices inside it, so no panel is spent on empty space.
fn brain_bounds(background: &ArrayView3<f32>) -> Bounds {
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
fn grey_window(background: &ArrayView3<f32>) -> Option<(f32, f32)> {
    let values: Vec<f32> = background.iter().copied().filter(|&v| v != 0.0).collect();
    let lo = percentile(values.clone(), 0.5)?;
    let hi = percentile(values, 99.5)?;
    (hi > lo).then_some((lo, hi))
}

/// One slice picture: grey background, red overlay with an alpha ramp (0 transparent, `vmax`
/// and above opaque), copied onto the canvas at (`x0`, `y0`) with size `pw`×`ph`.
#[allow(clippy::too_many_arguments)]
fn render_panel(
    canvas: &mut Canvas,
    (x0, y0, pw, ph): (i64, i64, u32, u32),
    background: &ArrayView3<f32>,
    window: Option<(f32, f32)>,
    map: Option<(&ArrayView3<f32>, f32)>,
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
            if let Some((m, vmax)) = map {
                let a = f64::from((sample(m, axis, bounds, s, u, v) / vmax).clamp(0.0, 1.0));
                for (c, r) in rgb.iter_mut().zip(RED) {
                    *c = *c * (1.0 - a) + r * a;
                }
            }
            canvas.put(x0 + i64::from(px), y0 + i64::from(py), rgb.map(|c| c.round() as u8));
        }
    }
}

/// A colour bar for the overlay: the ramp over mid-grey, `0` at the left, `vmax` at the right.
fn render_colorbar(canvas: &mut Canvas, (x0, y0, w, h): (i64, i64, u32, u32)) {
    for px in 0..w {
        let a = f64::from(px) / f64::from(w.max(2) - 1);
        let rgb: [u8; 3] = [0, 1, 2].map(|c| (128.0 * (1.0 - a) + RED[c] * a).round() as u8);
        for py in 0..h {
            canvas.put(x0 + i64::from(px), y0 + i64::from(py), rgb);
        }
    }
}

/// Largest `pw`×`ph` with the aspect of `w`×`h` inside `cw`×`ch`.
fn fit(w: usize, h: usize, cw: f64, ch: f64) -> (u32, u32) {
    let s = (cw / w as f64).min(ch / h as f64).max(0.0);
    (((w as f64 * s).floor() as u32).max(1), ((h as f64 * s).floor() as u32).max(1))
}

fn check_volumes(background: &ArrayView3<f32>, maps: &[(&str, &ArrayView3<f32>)]) -> Result<()> {
    if background.iter().any(|v| !v.is_finite()) {
        return Err(ReportError::invalid("background", "holds NaN or infinity"));
    }
    if background.is_empty() {
        return Err(ReportError::invalid("background", "has no voxels"));
    }
    for (name, m) in maps {
        if m.shape() != background.shape() {
            return Err(ReportError::Shape(format!(
                "map `{name}` has shape {:?} but the background has shape {:?}; both must lie on one grid",
                m.shape(),
                background.shape()
            )));
        }
        check_finite(m, &format!("map `{name}`"))?;
    }
    Ok(())
}

/// What to put in one panel, collected before drawing.
struct Panel {
    rect: (i64, i64, u32, u32),
    axis: Axis,
    slice: usize,
}

/// Draws `L`/`R` (or `P`/`A`) at the panel's side edges, white on the dark picture.
fn side_letters(root: &Area<'_>, p: &Panel, px: f64) -> DrawResult {
    let (l, r) = p.axis.side_letters();
    let (x, y, w, _) = p.rect;
    if f64::from(w) < 4.0 * px {
        return Ok(());
    }
    let style = text_style(px, WHITE);
    let pad = (px / 4.0) as i32;
    root.draw(&Text::new(l, (x as i32 + pad, y as i32 + pad), style.clone()))?;
    let rw = root.estimate_text_size(r, &style)?.0 as i32;
    root.draw(&Text::new(r, (x as i32 + w as i32 - rw - pad, y as i32 + pad), style))?;
    Ok(())
}

/// The paper's figure: one column per method, one row per coronal plane (`coronal_slices`, voxel
/// indices `j`; see [`paper_coronal_slices`]), the map as a transparent-to-red overlay on the
/// grey `background` (a template or the mean scan, on the maps' grid; zero outside the head or
/// brain), each panel cropped to the box of the background's non-zero voxels. Each column has its own
/// overlay scale, shown in a colour bar under it; a map with nothing to show (all zero,
/// constant) is drawn without overlay and says so. Orientation: see the [module
/// documentation](super). `size` is the picture size in pixels (e.g. 1200×900).
pub fn paper_figure(
    background: ArrayView3<f32>,
    maps: &[(String, ArrayView3<f32>)],
    coronal_slices: &[usize],
    title: &str,
    scale: &OverlayScale,
    size: (u32, u32),
    path: &Path,
) -> Result<()> {
    let named: Vec<(&str, &ArrayView3<f32>)> = maps.iter().map(|(n, m)| (n.as_str(), m)).collect();
    check_volumes(&background, &named)?;
    if maps.is_empty() || coronal_slices.is_empty() {
        return Err(ReportError::invalid("maps", "need at least one map and one coronal slice"));
    }
    let ny = background.shape()[1];
    if let Some(&j) = coronal_slices.iter().find(|&&j| j >= ny) {
        return Err(ReportError::invalid("coronal_slices", format!("slice {j} is outside the grid (0–{})", ny - 1)));
    }
    let fixed = match scale {
        OverlayScale::Fixed(v) if v.len() != maps.len() => {
            return Err(ReportError::invalid(
                "scale",
                format!("{} fixed overlay maxima for {} maps", v.len(), maps.len()),
            ));
        }
        OverlayScale::Fixed(v) => Some(v.clone()),
        OverlayScale::Percentile(_) => None,
    };
    let p = if let OverlayScale::Percentile(p) = scale { *p } else { 99.9 };
    let overlays: Vec<Overlay> =
        maps.iter().enumerate().map(|(i, (_, m))| overlay_of(m, fixed.as_ref().map(|f| f[i]), p)).collect();

    let mut canvas = Canvas::new(size)?;
    let (w, h) = (f64::from(canvas.width()), f64::from(canvas.height()));
    let font = base_font(size);
    let title_h = font * 2.2;
    let header_h = font * 1.8;
    let label_w = font * 8.5;
    let bar_h = font * 3.2;
    let gap = (font * 0.4).max(2.0);
    let cols = maps.len();
    let rows = coronal_slices.len();
    let cell_w = (w - label_w - gap) / cols as f64;
    let cell_h = (h - title_h - header_h - bar_h) / rows as f64;
    let bounds = brain_bounds(&background);
    let (sw, sh) = Axis::Coronal.dims(&bounds);
    let (pw, ph) = fit(sw, sh, cell_w - gap, cell_h - gap);
    let window = grey_window(&background);

    let mut panels = Vec::new();
    for (c, (_, m)) in maps.iter().enumerate() {
        let x = label_w + c as f64 * cell_w + (cell_w - f64::from(pw)) / 2.0;
        for (r, &j) in coronal_slices.iter().enumerate() {
            let y = title_h + header_h + r as f64 * cell_h + (cell_h - f64::from(ph)) / 2.0;
            let rect = (x as i64, y as i64, pw, ph);
            let overlay = match overlays[c] {
                Overlay::Show { vmax } => Some((m, vmax)),
                Overlay::Nothing(_) => None,
            };
            render_panel(&mut canvas, rect, &background, window, overlay, (Axis::Coronal, &bounds, j));
            panels.push(Panel { rect, axis: Axis::Coronal, slice: j });
        }
        if matches!(overlays[c], Overlay::Show { .. }) {
            let bw = (cell_w * 0.7).min(f64::from(pw)) as u32;
            let bx = label_w + c as f64 * cell_w + (cell_w - f64::from(bw)) / 2.0;
            render_colorbar(&mut canvas, (bx as i64, (h - bar_h + font * 0.3) as i64, bw, (font * 0.8) as u32));
        }
    }

    canvas
        .draw(|root| {
            let center = Pos::new(HPos::Center, VPos::Center);
            root.draw(&Text::new(
                fit_text(root, title, font * 1.3, w as u32),
                ((w / 2.0) as i32, (title_h / 2.0) as i32),
                text_style(font * 1.3, BLACK).pos(center),
            ))?;
            for (c, (name, _)) in maps.iter().enumerate() {
                let cx = (label_w + (c as f64 + 0.5) * cell_w) as i32;
                let label = fit_text(root, name, font * 1.1, (cell_w - gap) as u32);
                root.draw(&Text::new(
                    label,
                    (cx, (title_h + header_h / 2.0) as i32),
                    text_style(font * 1.1, BLACK).pos(center),
                ))?;
                let bar_y = h - bar_h + font * 0.3;
                match &overlays[c] {
                    Overlay::Show { vmax } => {
                        let bw = (cell_w * 0.7).min(f64::from(pw)).floor();
                        let bx = label_w + c as f64 * cell_w + (cell_w - bw) / 2.0;
                        let ty = (bar_y + font * 1.5) as i32;
                        let st = text_style(font * 0.85, BLACK);
                        root.draw(&Text::new(
                            "0",
                            (bx as i32, ty),
                            st.clone().pos(Pos::new(HPos::Left, VPos::Center)),
                        ))?;
                        root.draw(&Text::new(
                            format_float(f64::from(*vmax)),
                            ((bx + bw) as i32, ty),
                            st.pos(Pos::new(HPos::Right, VPos::Center)),
                        ))?;
                    }
                    Overlay::Nothing(why) => {
                        let msg = fit_text(root, why, font * 0.85, (cell_w - gap) as u32);
                        root.draw(&Text::new(
                            msg,
                            (cx, (bar_y + font) as i32),
                            text_style(font * 0.85, NOTE).pos(center),
                        ))?;
                    }
                }
            }
            for (r, &j) in coronal_slices.iter().enumerate() {
                let cy = (title_h + header_h + (r as f64 + 0.5) * cell_h) as i32;
                root.draw(&Text::new(
                    format!("coronal y = {j}"),
                    ((label_w / 2.0) as i32, cy),
                    text_style(font, BLACK).pos(center),
                ))?;
            }
            for p in &panels {
                side_letters(root, p, font * 0.8)?;
            }
            Ok(())
        })
        .map_err(|m| figure_error(path, m))?;
    canvas.save(path)
}

/// Evenly spaced interior slice positions along `len` voxels: `⌊(k+1)·len/(n+1)⌋`.
fn even_slices(len: usize, n: usize) -> Vec<usize> {
    (0..n).map(|k| ((k + 1) * len / (n + 1)).min(len.saturating_sub(1))).collect()
}

/// The `plot_slices` grid: three rows (sagittal x, coronal y, axial z) of `n` slices each,
/// evenly spaced inside the box of the background's non-zero voxels (the brain), the map as a transparent-to-red overlay on the grey `background`, the overlay
/// opaque from the `percentile`-th percentile of the map's voxels up (99.9 in the original). A
/// map with nothing to show is drawn without overlay and says so. `size` in pixels (e.g.
/// 1400×800).
pub fn plot_slices(
    background: ArrayView3<f32>,
    map: ArrayView3<f32>,
    n: usize,
    percentile: f64,
    title: &str,
    size: (u32, u32),
    path: &Path,
) -> Result<()> {
    check_volumes(&background, &[("map", &map)])?;
    if n == 0 {
        return Err(ReportError::invalid("n", "need at least one slice per axis"));
    }
    let overlay = overlay_of(&map, None, percentile);
    let mut canvas = Canvas::new(size)?;
    let (w, h) = (f64::from(canvas.width()), f64::from(canvas.height()));
    let font = base_font(size);
    let title_h = font * 2.2;
    let label_w = font * 5.5;
    let caption_h = font * 1.3;
    let bar_h = font * 3.0;
    let gap = (font * 0.3).max(2.0);
    let cell_w = (w - label_w - gap) / n as f64;
    let row_h = (h - title_h - bar_h) / 3.0;
    let bounds = brain_bounds(&background);
    let window = grey_window(&background);
    let vmax = match overlay {
        Overlay::Show { vmax } => Some(vmax),
        Overlay::Nothing(_) => None,
    };

    let mut panels = Vec::new();
    for (r, axis) in [Axis::Sagittal, Axis::Coronal, Axis::Axial].into_iter().enumerate() {
        let (sw, sh) = axis.dims(&bounds);
        let (pw, ph) = fit(sw, sh, cell_w - gap, row_h - caption_h - gap);
        let (lo, hi) = bounds[axis.index()];
        for (c, s) in even_slices(hi - lo + 1, n).into_iter().map(|s| s + lo).enumerate() {
            let x = label_w + c as f64 * cell_w + (cell_w - f64::from(pw)) / 2.0;
            let y = title_h + r as f64 * row_h + (row_h - caption_h - f64::from(ph)) / 2.0;
            let rect = (x as i64, y as i64, pw, ph);
            render_panel(&mut canvas, rect, &background, window, vmax.map(|v| (&map, v)), (axis, &bounds, s));
            panels.push(Panel { rect, axis, slice: s });
        }
    }
    let bar_w = (w * 0.3) as u32;
    let bar_x = (w - f64::from(bar_w)) / 2.0;
    let bar_y = h - bar_h + font * 0.3;
    if vmax.is_some() {
        render_colorbar(&mut canvas, (bar_x as i64, bar_y as i64, bar_w, (font * 0.8) as u32));
    }

    canvas
        .draw(|root| {
            let center = Pos::new(HPos::Center, VPos::Center);
            root.draw(&Text::new(
                fit_text(root, title, font * 1.3, w as u32),
                ((w / 2.0) as i32, (title_h / 2.0) as i32),
                text_style(font * 1.3, BLACK).pos(center),
            ))?;
            for (r, axis) in [Axis::Sagittal, Axis::Coronal, Axis::Axial].into_iter().enumerate() {
                let cy = (title_h + (r as f64 + 0.5) * row_h) as i32;
                root.draw(&Text::new(axis.name(), ((label_w / 2.0) as i32, cy), text_style(font, BLACK).pos(center)))?;
            }
            for p in &panels {
                let (x, y, pw, ph) = p.rect;
                root.draw(&Text::new(
                    format!("{} = {}", p.axis.letter(), p.slice),
                    ((x + i64::from(pw) / 2) as i32, (y + i64::from(ph)) as i32 + (caption_h * 0.6) as i32),
                    text_style(font * 0.8, BLACK).pos(center),
                ))?;
                side_letters(root, p, font * 0.75)?;
            }
            let ty = (bar_y + font * 1.5) as i32;
            match (&overlay, vmax) {
                (_, Some(v)) => {
                    let st = text_style(font * 0.85, BLACK);
                    root.draw(&Text::new("0", (bar_x as i32, ty), st.clone().pos(Pos::new(HPos::Left, VPos::Center))))?;
                    root.draw(&Text::new(
                        format!("{} (p{})", format_float(f64::from(v)), percentile),
                        ((bar_x + f64::from(bar_w)) as i32, ty),
                        st.pos(Pos::new(HPos::Right, VPos::Center)),
                    ))?;
                }
                (Overlay::Nothing(why), None) => {
                    root.draw(&Text::new(
                        why.clone(),
                        ((w / 2.0) as i32, (bar_y + font) as i32),
                        text_style(font, NOTE).pos(center),
                    ))?;
                }
                (Overlay::Show { .. }, None) => {}
            }
            Ok(())
        })
        .map_err(|m| figure_error(path, m))?;
    canvas.save(path)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{non_white, out_path, read_png, reddish};
    use super::*;
    use adni_data::volume::Affine;
    use ndarray::Array3;

    /// A head-like test volume: an ellipsoid "brain" (bright), a darker core, zero outside; and a
    /// map with a blob in the lower left (subject's left, inferior).
    fn phantom(shape: (usize, usize, usize)) -> (Array3<f32>, Array3<f32>) {
        let (nx, ny, nz) = shape;
        let c = |i: usize, n: usize| (i as f32 + 0.5) / n as f32 * 2.0 - 1.0;
        let bg = Array3::from_shape_fn(shape, |(i, j, k)| {
            let r = c(i, nx).powi(2) + c(j, ny).powi(2) + c(k, nz).powi(2);
            if r < 0.8 { if r < 0.2 { 40.0 } else { 80.0 + 10.0 * c(k, nz) } } else { 0.0 }
        });
        let map = Array3::from_shape_fn(shape, |(i, j, k)| {
            let d = (c(i, nx) + 0.4).powi(2) + (c(j, ny) - 0.1).powi(2) + (c(k, nz) + 0.3).powi(2);
            (-d / 0.02).exp()
        });
        (bg, map)
    }

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
            Some((&map.view(), 1.0)),
            (Axis::Coronal, &b, 0),
        );
        let px = |x: usize, y: usize| canvas.rgb[(y * 64 + x) * 3..(y * 64 + x) * 3 + 3].to_vec();
        assert_eq!(px(0, 0), vec![230, 20, 20], "top-left pixel is left-superior");
        assert_ne!(px(3, 3), vec![230, 20, 20]);
    }

    #[test]
    fn paper_figure_renders_with_overlay_and_survives_zero_and_constant_maps() {
        let tmp = tempfile::tempdir().unwrap();
        let (bg, map) = phantom((24, 28, 24));
        let zero = Array3::<f32>::zeros((24, 28, 24));
        let constant = Array3::from_elem((24, 28, 24), 0.3f32);
        let maps = vec![
            ("guided backprop".to_string(), map.view()),
            ("all zero".to_string(), zero.view()),
            ("constant".to_string(), constant.view()),
        ];
        let path = out_path(tmp.path(), "paper_figure.png");
        paper_figure(bg.view(), &maps, &[8, 14, 20], "AD average (test)", &OverlayScale::default(), (480, 400), &path)
            .unwrap();
        let (w, h, rgb) = read_png(&path);
        assert_eq!((w, h), (480, 400));
        assert!(non_white(&rgb) > 10_000);
        assert!(reddish(&rgb) > 20, "no overlay visible");
        let err = paper_figure(bg.view(), &maps, &[28], "t", &OverlayScale::default(), (480, 400), &path).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        let bad = Array3::<f32>::zeros((24, 28, 23));
        let err = paper_figure(
            bg.view(),
            &[("m".into(), bad.view())],
            &[8],
            "t",
            &OverlayScale::default(),
            (480, 400),
            &path,
        )
        .unwrap_err();
        assert!(err.to_string().contains("[24, 28, 23]"), "{err}");
    }

    #[test]
    fn plot_slices_renders_and_survives_an_all_zero_map() {
        let tmp = tempfile::tempdir().unwrap();
        let (bg, map) = phantom((24, 28, 24));
        let path = out_path(tmp.path(), "plot_slices.png");
        plot_slices(bg.view(), map.view(), 5, 99.9, "occlusion, AD average", (600, 400), &path).unwrap();
        let (w, h, rgb) = read_png(&path);
        assert_eq!((w, h), (600, 400));
        assert!(reddish(&rgb) > 20);
        let path = out_path(tmp.path(), "plot_slices_zero.png");
        plot_slices(bg.view(), Array3::<f32>::zeros((24, 28, 24)).view(), 4, 99.9, "zero map", (400, 300), &path)
            .unwrap();
        let (w, h, rgb) = read_png(&path);
        assert_eq!((w, h), (400, 300));
        assert!(non_white(&rgb) > 5_000);
        assert_eq!(reddish(&rgb), 0, "an all-zero map must not show an overlay");
    }
}
