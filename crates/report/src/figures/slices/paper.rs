//! The paper's figure: methods × coronal planes.

use std::path::Path;

use ndarray::ArrayView3;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::raster::{Axis, Overlay, brain_bounds, grey_window, overlay_of, render_colorbar, render_panel};
use super::{OverlayScale, Panel, check_volumes, draw_bar_labels, fit, side_letters};
use crate::error::{ReportError, Result};
use crate::figures::{Canvas, NOTE, base_font, figure_error, fit_text, text_style};

/// The paper's figure: one column per method, one row per coronal plane (`coronal_slices`, voxel
/// indices `j`; see [`paper_coronal_slices`](super::paper_coronal_slices)), the map as a
/// transparent-to-red overlay on the grey `background` (a template or the mean scan, on the maps' grid; zero outside the head or
/// brain), each panel cropped to the box of the background's non-zero voxels. Each column has its own
/// overlay scale, shown in a colour bar under it; a map with nothing to show (all zero,
/// constant) is drawn without overlay and says so. Orientation: see the [module
/// documentation](crate::figures). `size` is the picture size in pixels (e.g. 1200×900).
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
    let bar_h = font * 3.8;
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
                Overlay::Show { ramp, .. } => Some((m, ramp)),
                Overlay::Nothing(_) => None,
            };
            render_panel(&mut canvas, rect, &background, window, overlay, (Axis::Coronal, &bounds, j));
            panels.push(Panel { rect, axis: Axis::Coronal, slice: j });
        }
        if let Overlay::Show { ramp, .. } = overlays[c] {
            let bw = (cell_w * 0.7).min(f64::from(pw)) as u32;
            let bx = label_w + c as f64 * cell_w + (cell_w - f64::from(bw)) / 2.0;
            render_colorbar(&mut canvas, (bx as i64, (h - bar_h + font * 0.3) as i64, bw, (font * 0.8) as u32), ramp);
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
                    Overlay::Show { ramp, clip } => {
                        let bw = (cell_w * 0.7).min(f64::from(pw)).floor();
                        let bx = label_w + c as f64 * cell_w + (cell_w - bw) / 2.0;
                        draw_bar_labels(root, *ramp, *clip, (bx, bar_y, bw), font, cell_w - gap)?;
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

#[cfg(test)]
mod tests {
    use super::super::phantom;
    use super::*;
    use crate::figures::test_util::{non_white, out_path, read_png, reddish};
    use ndarray::Array3;

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
}
