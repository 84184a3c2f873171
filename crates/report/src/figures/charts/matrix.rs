//! Method × method matrices (distance, correlation, top-10 overlap).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use polars::prelude::DataFrame;

use super::{distinct, render, widest};
use crate::error::Result;
use crate::figures::{NOTE, base_font, draw_message, fit_text, text_style};
use crate::tables::{column_f64, column_str, format_float};

/// The method distance matrix from [`crate::compare::method_comparison`]'s table (column
/// `distance`; 0 on the diagonal). See [`comparison_matrix`].
pub fn distance_matrix(df: &DataFrame, size: (u32, u32), path: &Path) -> Result<()> {
    comparison_matrix(df, "distance", "Distance between methods (each map divided by its sum)", size, path)
}

/// A symmetric method × method matrix of one column (`distance`, `correlation` or
/// `top10_overlap`) of [`crate::compare::method_comparison`]'s table, each cell coloured from
/// white (lowest) to blue (highest) and labelled with its value; NaN cells are grey and say
/// `n/a`. The diagonal is 0 for `distance`, 1 for the others, and `n/a` for a method whose every
/// comparison is undefined (an all-zero map).
pub fn comparison_matrix(df: &DataFrame, column: &str, title: &str, size: (u32, u32), path: &Path) -> Result<()> {
    const TABLE: &str = "method comparison";
    let a = column_str(df, TABLE, "method_a")?;
    let b = column_str(df, TABLE, "method_b")?;
    let v = column_f64(df, TABLE, column)?;
    let methods = distinct(&a.iter().chain(b.iter()).cloned().collect::<Vec<_>>());
    let m = methods.len();
    let diagonal = if column == "distance" { 0.0 } else { 1.0 };
    let mut cells = vec![vec![f64::NAN; m]; m];
    for ((x, y), val) in a.iter().zip(&b).zip(&v) {
        let i = methods.iter().position(|n| n == x).unwrap_or(0);
        let j = methods.iter().position(|n| n == y).unwrap_or(0);
        cells[i][j] = *val;
        cells[j][i] = *val;
    }
    // a method compared with itself: the identity value, unless every comparison of it is
    // undefined (an all-zero map is not even equal to itself under these measures)
    let defined: Vec<bool> = (0..m).map(|i| m == 1 || (0..m).any(|j| j != i && cells[i][j].is_finite())).collect();
    for (i, row) in cells.iter_mut().enumerate() {
        row[i] = if defined[i] { diagonal } else { f64::NAN };
    }
    let finite: Vec<f64> = cells.iter().flatten().copied().filter(|x| x.is_finite()).collect();
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min).min(0.0);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let font = base_font(size);
    render(size, path, |root| {
        let body = root.titled(&fit_text(root, title, font * 1.2, size.0), text_style(font * 1.2, BLACK))?;
        if m == 0 {
            return draw_message(&body, "no method pairs to compare", font);
        }
        let (bw, bh) = body.dim_in_pixel();
        let (ox, oy) = (body.get_base_pixel().0, body.get_base_pixel().1);
        let label_w = f64::from(widest(root, &methods, font).min(bw / 3)) + font;
        let top_h = font * 2.8;
        let cell =
            ((f64::from(bw) - label_w - font) / m as f64).min((f64::from(bh) - top_h - font) / m as f64).max(4.0);
        let x0 = f64::from(ox) + label_w;
        let y0 = f64::from(oy) + top_h;
        let center = Pos::new(HPos::Center, VPos::Center);
        for (i, row) in cells.iter().enumerate() {
            for (j, &val) in row.iter().enumerate() {
                let (cx, cy) = (x0 + j as f64 * cell, y0 + i as f64 * cell);
                let (fill, ink, text) = if val.is_finite() {
                    let t = if hi > lo { (val - lo) / (hi - lo) } else { 0.0 };
                    let c = |white: f64, full: f64| (white + (full - white) * t).round() as u8;
                    let fill = RGBColor(c(255.0, 8.0), c(255.0, 69.0), c(255.0, 148.0));
                    (fill, if t > 0.55 { WHITE } else { BLACK }, format_float(val))
                } else {
                    (RGBColor(215, 215, 215), NOTE, "n/a".to_string())
                };
                root.draw(&Rectangle::new(
                    [(cx as i32, cy as i32), ((cx + cell) as i32, (cy + cell) as i32)],
                    fill.filled(),
                ))?;
                root.draw(&Rectangle::new(
                    [(cx as i32, cy as i32), ((cx + cell) as i32, (cy + cell) as i32)],
                    RGBColor(160, 160, 160),
                ))?;
                let px = (font * 0.9).min(cell / 4.0).max(6.0);
                root.draw(&Text::new(
                    text,
                    ((cx + cell / 2.0) as i32, (cy + cell / 2.0) as i32),
                    text_style(px, ink).pos(center),
                ))?;
            }
        }
        for (i, name) in methods.iter().enumerate() {
            let cy = y0 + (i as f64 + 0.5) * cell;
            let label = fit_text(root, name, font, (label_w - font * 0.6) as u32);
            root.draw(&Text::new(
                label,
                ((x0 - font * 0.4) as i32, cy as i32),
                text_style(font, BLACK).pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
            // Column header: on two lines, broken at a hyphen, when one line does not fit.
            let cx = x0 + (i as f64 + 0.5) * cell;
            let hf = font * 0.85;
            let fits = |t: &str| f64::from(widest(root, &[t.to_string()], hf)) <= cell - 2.0;
            let lines: Vec<String> = match name
                .char_indices()
                .filter(|&(_, c)| c == '-')
                .map(|(k, _)| k)
                .min_by_key(|&k| (2 * k).abs_diff(name.len()))
            {
                Some(k) if !fits(name) => vec![name[..=k].to_string(), name[k + 1..].to_string()],
                _ => vec![name.clone()],
            };
            let n = lines.len() as f64;
            for (l, line) in lines.iter().enumerate() {
                let label = fit_text(root, line, hf, (cell - 2.0) as u32);
                let y = y0 - top_h + top_h * (l as f64 + 0.5) / n;
                root.draw(&Text::new(label, (cx as i32, y as i32), text_style(hf, BLACK).pos(center)))?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::check_png;
    use super::*;
    use crate::figures::test_util::out_path;
    use polars::prelude::Column;

    #[test]
    fn matrices_render_with_nan_cells() {
        let tmp = tempfile::tempdir().unwrap();
        let df = DataFrame::new(
            3,
            vec![
                Column::new("method_a".into(), ["sensitivity", "sensitivity", "guided backprop"]),
                Column::new("method_b".into(), ["guided backprop", "occlusion", "occlusion"]),
                Column::new("distance".into(), [0.0012, 0.0031, f64::NAN]),
                Column::new("correlation".into(), [0.8, 0.2, -0.1]),
            ],
        )
        .unwrap();
        let path = out_path(tmp.path(), "distance_matrix.png");
        distance_matrix(&df, (450, 400), &path).unwrap();
        check_png(&path, (450, 400));
        let path = out_path(tmp.path(), "correlation_matrix.png");
        comparison_matrix(&df, "correlation", "Correlation between methods", (400, 360), &path).unwrap();
        check_png(&path, (400, 360));
    }
}
