//! Learning curves of a training run.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use polars::prelude::DataFrame;

use super::{distinct, render, widest};
use crate::error::{ReportError, Result};
use crate::figures::{base_font, draw_message, palette, short_float, text_style};
use crate::tables::{column_f64, column_str, has_column};
use adni_data::run_tables::{ACCURACY, EpochRow, FoldRow, LOSS, MetricSet};

/// Learning curves of a training run from its `metrics_epochs.csv` (columns `split`, `epoch`,
/// and `<set>_loss`, `<set>_accuracy` for the sets `train`, `validation`, `test` present, as
/// written by `model::train`): one row per fold, loss on the left and accuracy on the right,
/// one line with markers per set. NaN values (a set without scans in an epoch) are left out.
/// A dashed vertical line marks the kept model's epoch: the fold's `kept_epoch` where the table
/// has that column (as `metrics_folds.csv` gives it), else the fold's last epoch (the kept model
/// with `keep = last`, the default).
pub fn learning_curves(metrics_epochs: &DataFrame, size: (u32, u32), path: &Path) -> Result<()> {
    const TABLE: &str = "metrics_epochs";
    let split = column_str(metrics_epochs, TABLE, EpochRow::SPLIT)?;
    let epoch = column_f64(metrics_epochs, TABLE, EpochRow::EPOCH)?;
    let mut series: Vec<(&str, usize, Vec<f64>, Vec<f64>)> = Vec::new();
    // the sets in drawing order, each with its colour
    for (color, set) in MetricSet::ALL.into_iter().enumerate() {
        let (lc, ac) = (set.column(LOSS), set.column(ACCURACY));
        if has_column(metrics_epochs, &lc) && has_column(metrics_epochs, &ac) {
            let (loss, accuracy) = (column_f64(metrics_epochs, TABLE, &lc)?, column_f64(metrics_epochs, TABLE, &ac)?);
            series.push((set.name(), color, loss, accuracy));
        }
    }
    if series.is_empty() {
        return Err(ReportError::column(
            TABLE,
            &MetricSet::Train.column(LOSS),
            "no `<set>_loss` / `<set>_accuracy` columns found",
        ));
    }
    let folds = distinct(&split);
    // the kept model's epoch per fold: from a `kept_epoch` column when the table has one, else
    // the last epoch (the kept model with `keep = last`, the default)
    let kept_col = if has_column(metrics_epochs, FoldRow::KEPT_EPOCH) {
        Some(column_f64(metrics_epochs, TABLE, FoldRow::KEPT_EPOCH)?)
    } else {
        None
    };
    let kept: Vec<f64> = folds
        .iter()
        .map(|fold| {
            let rows = (0..split.len()).filter(|&i| &split[i] == fold);
            match &kept_col {
                Some(k) => rows.map(|i| k[i]).find(|v| v.is_finite()).unwrap_or(f64::NAN),
                None => rows.map(|i| epoch[i]).filter(|v| v.is_finite()).fold(f64::NAN, f64::max),
            }
        })
        .collect();
    let kept_label = if kept_col.is_some() { "kept epoch" } else { "last epoch (kept with keep = last)" };
    let kept_color = RGBColor(110, 110, 110);
    let font = base_font(size);
    render(size, path, |root| {
        let body = root.titled("Learning curves per fold", text_style(font * 1.25, BLACK))?;
        if folds.is_empty() {
            return draw_message(&body, "no epochs in the table", font);
        }
        // one legend for all panels, in a strip under the title (a legend inside a panel hides
        // the last epochs)
        let (legend, body) = body.split_vertically((font * 1.8) as u32);
        let (lw, _) = legend.dim_in_pixel();
        let mut entries: Vec<(String, Option<RGBColor>)> =
            series.iter().map(|s| (s.0.to_string(), Some(palette(s.1)))).collect();
        if kept.iter().any(|k| k.is_finite()) {
            entries.push((kept_label.to_string(), None));
        }
        let (glyph, gap, sep) = ((font * 1.8) as i32, (font * 0.5) as i32, (font * 1.6) as i32);
        let text_w: Vec<i32> =
            entries.iter().map(|e| widest(root, std::slice::from_ref(&e.0), font * 0.9) as i32).collect();
        let total: i32 = text_w.iter().map(|w| w + glyph + gap).sum::<i32>() + sep * (entries.len() as i32 - 1);
        let mut x = ((lw as i32 - total) / 2).max(0);
        let y = (font * 0.8) as i32;
        for ((label, color), w) in entries.iter().zip(&text_w) {
            match color {
                Some(c) => {
                    legend.draw(&PathElement::new(vec![(x, y), (x + glyph, y)], c.stroke_width(3)))?;
                }
                None => {
                    let dash = (glyph / 5).max(2);
                    for k in [0, 2, 4] {
                        legend.draw(&PathElement::new(
                            vec![(x + k * dash, y), (x + (k + 1) * dash, y)],
                            kept_color.stroke_width(2),
                        ))?;
                    }
                }
            }
            legend.draw(&Text::new(
                label.clone(),
                (x + glyph + gap, y),
                text_style(font * 0.9, BLACK).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            x += glyph + gap + w + sep;
        }
        let panels = body.split_evenly((folds.len(), 2));
        for (f, fold) in folds.iter().enumerate() {
            let rows: Vec<usize> = (0..split.len()).filter(|&i| &split[i] == fold && epoch[i].is_finite()).collect();
            let e_lo = rows.iter().map(|&i| epoch[i]).fold(f64::INFINITY, f64::min);
            let e_hi = rows.iter().map(|&i| epoch[i]).fold(f64::NEG_INFINITY, f64::max);
            let (e_lo, e_hi) = if e_lo.is_finite() { (e_lo - 0.5, e_hi + 0.5) } else { (0.0, 1.0) };
            for (p, metric) in [LOSS, ACCURACY].into_iter().enumerate() {
                let area = &panels[f * 2 + p];
                let values = |s: &(&str, usize, Vec<f64>, Vec<f64>)| -> Vec<(f64, f64)> {
                    let v = if p == 0 { &s.2 } else { &s.3 };
                    rows.iter().filter(|&&i| v[i].is_finite()).map(|&i| (epoch[i], v[i])).collect()
                };
                let y_hi = if p == 0 {
                    let m = series.iter().flat_map(|s| values(s).into_iter().map(|v| v.1)).fold(0.0, f64::max);
                    if m > 0.0 { m * 1.08 } else { 1.0 }
                } else {
                    1.0
                };
                let mut chart = ChartBuilder::on(area)
                    .caption(format!("{fold}: {metric}"), text_style(font, BLACK))
                    .margin((font * 0.5) as u32)
                    .x_label_area_size((font * 2.6) as u32)
                    .y_label_area_size((font * 3.4) as u32)
                    .build_cartesian_2d(e_lo..e_hi, 0.0..y_hi)?;
                chart
                    .configure_mesh()
                    .x_desc("epoch")
                    .x_labels(((e_hi - e_lo) as usize + 1).min(10))
                    .x_label_formatter(&|v| {
                        if (v - v.round()).abs() < 1e-9 { format!("{}", v.round()) } else { String::new() }
                    })
                    .y_labels(6)
                    .y_label_formatter(&|v| short_float(*v))
                    .label_style(text_style(font * 0.8, BLACK))
                    .axis_desc_style(text_style(font * 0.8, BLACK))
                    .light_line_style(RGBColor(244, 244, 244))
                    .draw()?;
                if kept[f].is_finite() {
                    let dash = ((font * 0.4) as u32).max(3);
                    chart.draw_series(DashedLineSeries::new(
                        vec![(kept[f], 0.0), (kept[f], y_hi)],
                        dash,
                        dash,
                        kept_color.stroke_width(2),
                    ))?;
                }
                for s in &series {
                    let pts = values(s);
                    let color = palette(s.1);
                    chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
                    chart.draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 3, color.filled())))?;
                }
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
    fn learning_curves_render_from_training_columns() {
        let tmp = tempfile::tempdir().unwrap();
        let folds: Vec<&str> = ["fold1"; 4].into_iter().chain(["fold2"; 4]).collect();
        let epochs: Vec<i64> = (1..=4).chain(1..=4).collect();
        let loss: Vec<f64> = epochs.iter().map(|&e| 0.7 / e as f64).collect();
        let acc: Vec<f64> = epochs.iter().map(|&e| 0.5 + 0.1 * e as f64).collect();
        let df = DataFrame::new(
            8,
            vec![
                Column::new("split".into(), folds),
                Column::new("epoch".into(), epochs),
                Column::new("train_loss".into(), loss.clone()),
                Column::new("train_accuracy".into(), acc.clone()),
                Column::new("test_loss".into(), loss.iter().map(|l| l + 0.1).collect::<Vec<_>>()),
                Column::new("test_accuracy".into(), acc.iter().map(|a| a - 0.1).collect::<Vec<_>>()),
            ],
        )
        .unwrap();
        let path = out_path(tmp.path(), "learning_curves.png");
        learning_curves(&df, (600, 500), &path).unwrap();
        check_png(&path, (600, 500));
        // the kept epoch from a column (fold 2 kept epoch 3), at the report's size
        let mut with_kept = df.clone();
        with_kept.with_column(Column::new("kept_epoch".into(), [4i64, 4, 4, 4, 3, 3, 3, 3])).unwrap();
        let path = out_path(tmp.path(), "learning_curves_kept.png");
        learning_curves(&with_kept, (1200, 800), &path).unwrap();
        check_png(&path, (1200, 800));
    }
}
