//! Brain slices with a relevance overlay: the paper's figure ([`paper`]) and the `plot_slices`
//! grid ([`grid`]), drawn from pixels that [`raster`] samples from the volumes. This file holds
//! the overlay option and the layout helpers both figures share.

mod grid;
mod paper;
mod raster;

use ndarray::ArrayView3;
use plotters::prelude::*;

pub use grid::plot_slices;
pub use paper::paper_figure;
pub use raster::{PAPER_CORONAL_SLICES_1MM, coronal_index, overlay_max, paper_coronal_slices, percentile};

use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Area, DrawResult, NOTE, fit_text, text_style};
use crate::error::{ReportError, Result};
use crate::regions::check_finite;
use crate::tables::format_float;
use raster::{Axis, Clip, Ramp};

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

/// The numbers under a colour bar at (`x`, `y`) of width `bw` (`0` and the limit, or `−limit`,
/// `0` and `+limit` for a diverging ramp) and, under them, the caption naming the quantity and
/// its clipping, cut to `max_w` pixels.
fn draw_bar_labels(
    root: &Area<'_>,
    ramp: Ramp,
    clip: Clip,
    (x, y, bw): (f64, f64, f64),
    font: f64,
    max_w: f64,
) -> DrawResult {
    let ty = (y + font * 1.5) as i32;
    let st = text_style(font * 0.85, BLACK);
    let limit = format_float(f64::from(ramp.vmax()));
    let (left, right) =
        if ramp.is_diverging() { (format!("−{limit}"), format!("+{limit}")) } else { ("0".into(), limit) };
    root.draw(&Text::new(left, (x as i32, ty), st.clone().pos(Pos::new(HPos::Left, VPos::Center))))?;
    if ramp.is_diverging() {
        root.draw(&Text::new("0", ((x + bw / 2.0) as i32, ty), st.clone().pos(Pos::new(HPos::Center, VPos::Center))))?;
    }
    root.draw(&Text::new(right, ((x + bw) as i32, ty), st.pos(Pos::new(HPos::Right, VPos::Center))))?;
    let caption = fit_text(root, &clip.caption(ramp), font * 0.8, max_w.max(1.0) as u32);
    root.draw(&Text::new(
        caption,
        ((x + bw / 2.0) as i32, (y + font * 2.6) as i32),
        text_style(font * 0.8, NOTE).pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    Ok(())
}

/// A head-like test volume: an ellipsoid "brain" (bright), a darker core, zero outside; and a
/// map with a blob in the lower left (subject's left, inferior).
#[cfg(test)]
fn phantom(shape: (usize, usize, usize)) -> (ndarray::Array3<f32>, ndarray::Array3<f32>) {
    let (nx, ny, nz) = shape;
    let c = |i: usize, n: usize| (i as f32 + 0.5) / n as f32 * 2.0 - 1.0;
    let bg = ndarray::Array3::from_shape_fn(shape, |(i, j, k)| {
        let r = c(i, nx).powi(2) + c(j, ny).powi(2) + c(k, nz).powi(2);
        if r < 0.8 { if r < 0.2 { 40.0 } else { 80.0 + 10.0 * c(k, nz) } } else { 0.0 }
    });
    let map = ndarray::Array3::from_shape_fn(shape, |(i, j, k)| {
        let d = (c(i, nx) + 0.4).powi(2) + (c(j, ny) - 0.1).powi(2) + (c(k, nz) + 0.3).powi(2);
        (-d / 0.02).exp()
    });
    (bg, map)
}
