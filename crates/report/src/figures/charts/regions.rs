//! The top-region bar chart.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use polars::prelude::DataFrame;

use super::{render, widest};
use crate::error::Result;
use crate::figures::{base_font, draw_message, fit_text, palette, short_float, text_style};
use crate::tables::{column_f64, column_str};

/// Horizontal bar chart of the `n` highest-ranked regions of one region table of
/// [`crate::regions::region_scores`] (columns `region`, `score`, `rank`), rank 1 at the top,
/// each bar labelled with its score. A table without ranked regions (an all-zero map) gives a
/// figure that says so.
pub fn bar_chart_top_regions(df: &DataFrame, n: usize, title: &str, size: (u32, u32), path: &Path) -> Result<()> {
    const TABLE: &str = "region table";
    let names = column_str(df, TABLE, "region")?;
    let scores = column_f64(df, TABLE, "score")?;
    let ranks = column_f64(df, TABLE, "rank")?;
    let mut rows: Vec<(f64, String, f64)> = ranks
        .iter()
        .zip(names)
        .zip(&scores)
        .filter(|((r, _), s)| r.is_finite() && s.is_finite())
        .map(|((r, name), s)| (*r, name, *s))
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    rows.truncate(n);
    let font = base_font(size);
    render(size, path, |root| {
        let body = root.titled(&fit_text(root, title, font * 1.25, size.0), text_style(font * 1.25, BLACK))?;
        if rows.is_empty() {
            return draw_message(&body, "no region has a score (all-zero map?): nothing to rank", font);
        }
        let k = rows.len();
        let labels: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
        let label_w = widest(root, &labels, font).min(size.0 / 2) + (font * 1.2) as u32;
        let lo = rows.iter().map(|r| r.2).fold(0.0, f64::min);
        let hi = rows.iter().map(|r| r.2).fold(0.0, f64::max);
        let span = (hi - lo).max(1e-12);
        let mut chart = ChartBuilder::on(&body)
            .margin_right((font * 1.5) as u32)
            .margin_top((font * 0.5) as u32)
            .x_label_area_size((font * 3.2) as u32)
            .y_label_area_size(label_w)
            // room right of the longest bar for its value
            .build_cartesian_2d(lo - 0.02 * span..hi + 0.16 * span, -0.5f64..k as f64 - 0.5)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(6)
            .x_label_formatter(&|v| short_float(*v))
            .x_desc("score: share of the relevance inside all regions")
            .light_line_style(RGBColor(244, 244, 244))
            .label_style(text_style(font * 0.9, BLACK))
            .axis_desc_style(text_style(font * 0.9, BLACK))
            .draw()?;
        let color = palette(3);
        chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
            let y = (k - 1 - i) as f64;
            Rectangle::new([(0.0, y - 0.38), (r.2, y + 0.38)], color.filled())
        }))?;
        let value_style = text_style(font * 0.8, BLACK).pos(Pos::new(HPos::Left, VPos::Center));
        let label_style = text_style(font, BLACK).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, r) in rows.iter().enumerate() {
            let y = (k - 1 - i) as f64;
            let (x0, yc) = chart.backend_coord(&(lo - 0.02 * span, y));
            let (xe, _) = chart.backend_coord(&(r.2.max(0.0), y));
            let label = fit_text(root, &r.1, font, label_w - (font * 0.8) as u32);
            root.draw(&Text::new(label, (x0 - (font * 0.4) as i32, yc), label_style.clone()))?;
            root.draw(&Text::new(format!("{:.3}", r.2), (xe + (font * 0.3) as i32, yc), value_style.clone()))?;
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

    fn region_table(names: &[&str], scores: &[f64]) -> DataFrame {
        let ranks: Vec<Option<u32>> =
            scores.iter().enumerate().map(|(i, s)| (!s.is_nan()).then_some(i as u32 + 1)).collect();
        DataFrame::new(
            names.len(),
            vec![
                Column::new("region".into(), names.to_vec()),
                Column::new("score".into(), scores.to_vec()),
                Column::new("rank".into(), ranks),
            ],
        )
        .unwrap()
    }

    #[test]
    fn bar_chart_renders_and_says_when_there_is_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..20).map(|i| format!("Temporal_Region_{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let scores: Vec<f64> = (0..20).map(|i| 0.2 / (i as f64 + 1.0)).collect();
        let path = out_path(tmp.path(), "bar_top_regions.png");
        bar_chart_top_regions(
            &region_table(&names, &scores),
            15,
            "guided backprop: top regions (AD)",
            (500, 400),
            &path,
        )
        .unwrap();
        check_png(&path, (500, 400));
        let path = out_path(tmp.path(), "bar_top_regions_zero.png");
        bar_chart_top_regions(&region_table(&["a", "b"], &[f64::NAN, f64::NAN]), 15, "zero map", (400, 300), &path)
            .unwrap();
        check_png(&path, (400, 300));
    }
}
