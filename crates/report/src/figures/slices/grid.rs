//! The `plot_slices` grid: sagittal, coronal and axial rows of evenly spaced slices.

use std::path::Path;

use ndarray::ArrayView3;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::raster::{Axis, Overlay, brain_bounds, grey_window, overlay_of, render_colorbar, render_panel};
use super::{Panel, check_volumes, draw_bar_labels, fit, side_letters};
use crate::error::{ReportError, Result};
use crate::figures::{Canvas, NOTE, base_font, figure_error, fit_text, text_style};

/// Evenly spaced interior slice positions along `len` voxels: `⌊(k+1)·len/(n+1)⌋`.
fn even_slices(len: usize, n: usize) -> Vec<usize> {
    (0..n).map(|k| ((k + 1) * len / (n + 1)).min(len.saturating_sub(1))).collect()
}

/// The `plot_slices` grid: three rows (sagittal x, coronal y, axial z) of `n` slices each,
/// evenly spaced inside the box of the background's non-zero voxels (the brain), the map as a
/// transparent-to-red overlay on the grey `background`, the overlay opaque from the
/// `percentile`-th percentile of the map's voxels up (99.9 in the original). A signed map (some
/// voxel below zero) is drawn blue (negative) to red (positive), transparent at zero, opaque from
/// ±the `percentile`-th percentile of the magnitudes. The colour bar names the clipping. A map
/// with nothing to show is drawn without overlay and says so. `size` in pixels (e.g.
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
    let bar_h = font * 3.8;
    let gap = (font * 0.3).max(2.0);
    let cell_w = (w - label_w - gap) / n as f64;
    let row_h = (h - title_h - bar_h) / 3.0;
    let bounds = brain_bounds(&background);
    let window = grey_window(&background);
    let ramp = match overlay {
        Overlay::Show { ramp, .. } => Some(ramp),
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
            render_panel(&mut canvas, rect, &background, window, ramp.map(|r| (&map, r)), (axis, &bounds, s));
            panels.push(Panel { rect, axis, slice: s });
        }
    }
    let bar_w = (w * 0.3) as u32;
    let bar_x = (w - f64::from(bar_w)) / 2.0;
    let bar_y = h - bar_h + font * 0.3;
    if let Some(r) = ramp {
        render_colorbar(&mut canvas, (bar_x as i64, bar_y as i64, bar_w, (font * 0.8) as u32), r);
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
            match &overlay {
                Overlay::Show { ramp, clip } => {
                    draw_bar_labels(root, *ramp, *clip, (bar_x, bar_y, f64::from(bar_w)), font, w)?;
                }
                Overlay::Nothing(why) => {
                    root.draw(&Text::new(
                        why.clone(),
                        ((w / 2.0) as i32, (bar_y + font) as i32),
                        text_style(font, NOTE).pos(center),
                    ))?;
                }
            }
            Ok(())
        })
        .map_err(|m| figure_error(path, m))?;
    canvas.save(path)
}

#[cfg(test)]
mod tests {
    use super::super::phantom;
    use super::*;
    use crate::figures::test_util::{non_white, out_path, read_png, reddish};
    use ndarray::Array3;

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

    #[test]
    fn a_signed_map_is_drawn_blue_and_red() {
        // gradient × input style: the phantom's blob positive, its mirror image (subject's
        // right) negative
        let tmp = tempfile::tempdir().unwrap();
        let (bg, map) = phantom((24, 28, 24));
        let signed = ndarray::Array3::from_shape_fn((24, 28, 24), |(i, j, k)| map[[i, j, k]] - map[[23 - i, j, k]]);
        let path = out_path(tmp.path(), "plot_slices_signed.png");
        plot_slices(bg.view(), signed.view(), 5, 99.9, "gradient × input (signed)", (600, 400), &path).unwrap();
        let (_, _, rgb) = read_png(&path);
        let bluish = rgb.chunks(3).filter(|p| p[2] > 120 && p[0] < 80 && p[1] < 140).count();
        assert!(bluish > 20, "no negative (blue) relevance drawn");
        let red = rgb.chunks(3).filter(|p| p[0] > 140 && p[1] < 60 && p[2] < 80).count();
        assert!(red > 20, "no positive (red) relevance drawn");
    }
}
