//! Charts from tables: top regions, method matrices, learning curves, ROC curves and the
//! ground-truth scores.

use std::collections::HashMap;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use polars::prelude::DataFrame;

use super::{
    Area, Canvas, DrawResult, NOTE, base_font, draw_message, figure_error, fit_text, palette, short_float, text_style,
};
use crate::error::{ReportError, Result};
use crate::tables::{column_f64, column_str, format_float, has_column};

/// Draws on a fresh canvas of `size` and writes it to `path`.
pub(crate) fn render(size: (u32, u32), path: &Path, f: impl FnOnce(&Area<'_>) -> DrawResult) -> Result<()> {
    let mut canvas = Canvas::new(size)?;
    canvas.draw(f).map_err(|m| figure_error(path, m))?;
    canvas.save(path)
}

/// Distinct values in order of first appearance.
pub(crate) fn distinct(values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}

/// Width in pixels of the widest of `texts` at `px`.
pub(crate) fn widest(area: &Area<'_>, texts: &[String], px: f64) -> u32 {
    let style = text_style(px, BLACK);
    texts.iter().map(|t| area.estimate_text_size(t, &style).map(|(w, _)| w).unwrap_or(0)).max().unwrap_or(0)
}

/// `text` broken at spaces into lines no wider than `max_px` at `px` (a word wider than that is
/// cut with an ellipsis).
fn wrap_text(area: &Area<'_>, text: &str, px: f64, max_px: u32) -> Vec<String> {
    let fits = |s: &str| widest(area, &[s.to_string()], px) <= max_px;
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let joined = if current.is_empty() { word.to_string() } else { format!("{current} {word}") };
        if fits(&joined) || current.is_empty() {
            current = joined;
        } else {
            lines.push(std::mem::replace(&mut current, word.to_string()));
        }
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines.into_iter().map(|l| fit_text(area, &l, px, max_px)).collect()
}

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

/// The sets of a training run's `metrics_epochs.csv` (`<set>_loss`, `<set>_accuracy`) with their
/// colours, in drawing order.
const SETS: [(&str, usize); 3] = [("train", 0), ("validation", 1), ("test", 2)];

/// Learning curves of a training run from its `metrics_epochs.csv` (columns `split`, `epoch`,
/// and `<set>_loss`, `<set>_accuracy` for the sets `train`, `validation`, `test` present, as
/// written by `model::train`): one row per fold, loss on the left and accuracy on the right,
/// one line with markers per set. NaN values (a set without scans in an epoch) are left out.
/// A dashed vertical line marks the kept model's epoch: the fold's `kept_epoch` where the table
/// has that column (as `metrics_folds.csv` gives it), else the fold's last epoch (the kept model
/// with `keep = last`, the default).
pub fn learning_curves(metrics_epochs: &DataFrame, size: (u32, u32), path: &Path) -> Result<()> {
    const TABLE: &str = "metrics_epochs";
    let split = column_str(metrics_epochs, TABLE, "split")?;
    let epoch = column_f64(metrics_epochs, TABLE, "epoch")?;
    let mut series: Vec<(&str, usize, Vec<f64>, Vec<f64>)> = Vec::new();
    for (set, color) in SETS {
        let (lc, ac) = (format!("{set}_loss"), format!("{set}_accuracy"));
        if has_column(metrics_epochs, &lc) && has_column(metrics_epochs, &ac) {
            series.push((set, color, column_f64(metrics_epochs, TABLE, &lc)?, column_f64(metrics_epochs, TABLE, &ac)?));
        }
    }
    if series.is_empty() {
        return Err(ReportError::column(TABLE, "train_loss", "no `<set>_loss` / `<set>_accuracy` columns found"));
    }
    let folds = distinct(&split);
    // the kept model's epoch per fold: from a `kept_epoch` column when the table has one, else
    // the last epoch (the kept model with `keep = last`, the default)
    let kept_col = if has_column(metrics_epochs, "kept_epoch") {
        Some(column_f64(metrics_epochs, TABLE, "kept_epoch")?)
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
            for (p, metric) in ["loss", "accuracy"].into_iter().enumerate() {
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

/// A ROC curve, its AUC and the number of scans.
type Roc = (Vec<(f64, f64)>, f64, usize);

/// ROC curve points (false-positive rate, true-positive rate) from (0, 0) to (1, 1), one point
/// per distinct score (ties move diagonally). Empty when either class is missing.
pub fn roc_points(labels: &[bool], scores: &[f64]) -> Vec<(f64, f64)> {
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 || labels.len() != scores.len() {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut pts = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if labels[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        pts.push((fp as f64 / neg as f64, tp as f64 / pos as f64));
    }
    pts
}

/// Area under the ROC curve of `scores` for `labels` (trapezoids, which equals the Mann–Whitney
/// statistic with ties counted ½); NaN when either class is missing.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> f64 {
    let pts = roc_points(labels, scores);
    if pts.is_empty() {
        return f64::NAN;
    }
    pts.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum()
}

/// ROC curves of a training run's test predictions (`predictions.csv`: columns `fold`,
/// `true_label` (1 = AD), `p_ad`, and optionally `set`, of which only `test` rows are used), one
/// curve per fold and the pooled curve of all folds, AUC in the legend. A fold with one class
/// only is listed without a curve.
pub fn roc_curves(predictions: &DataFrame, size: (u32, u32), path: &Path) -> Result<()> {
    const TABLE: &str = "predictions";
    let fold = column_str(predictions, TABLE, "fold")?;
    let label = column_f64(predictions, TABLE, "true_label")?;
    let p_ad = column_f64(predictions, TABLE, "p_ad")?;
    let keep: Vec<bool> = if has_column(predictions, "set") {
        column_str(predictions, TABLE, "set")?.iter().map(|s| s == "test").collect()
    } else {
        vec![true; fold.len()]
    };
    let rows: Vec<usize> =
        (0..fold.len()).filter(|&i| keep[i] && label[i].is_finite() && p_ad[i].is_finite()).collect();
    let folds = distinct(&rows.iter().map(|&i| fold[i].clone()).collect::<Vec<_>>());
    let curve = |subset: &[usize]| {
        let l: Vec<bool> = subset.iter().map(|&i| label[i] > 0.5).collect();
        let s: Vec<f64> = subset.iter().map(|&i| p_ad[i]).collect();
        (roc_points(&l, &s), roc_auc(&l, &s), subset.len())
    };
    let mut curves: Vec<(String, RGBColor, Roc)> = folds
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let subset: Vec<usize> = rows.iter().copied().filter(|&i| &fold[i] == f).collect();
            (f.clone(), palette(k), curve(&subset))
        })
        .collect();
    if folds.len() > 1 {
        curves.push(("pooled".into(), BLACK, curve(&rows)));
    }
    let font = base_font(size);
    render(size, path, |root| {
        let body = root.titled("ROC curves of the test predictions", text_style(font * 1.25, BLACK))?;
        if rows.is_empty() {
            return draw_message(&body, "no test predictions in the table", font);
        }
        let mut chart = ChartBuilder::on(&body)
            .margin((font * 0.8) as u32)
            .x_label_area_size((font * 3.0) as u32)
            .y_label_area_size((font * 3.8) as u32)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("false-positive rate (1 − specificity)")
            .y_desc("true-positive rate (sensitivity)")
            .x_label_formatter(&|v| format!("{v:.1}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .label_style(text_style(font * 0.85, BLACK))
            .axis_desc_style(text_style(font * 0.85, BLACK))
            .light_line_style(RGBColor(244, 244, 244))
            .draw()?;
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(DashedLineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], 6, 4, grey.stroke_width(1)))?
            .label("chance")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], grey));
        for (name, color, (pts, auc, n)) in &curves {
            let color = *color;
            let width = if name == "pooled" { 3 } else { 2 };
            if pts.is_empty() {
                chart
                    .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
                    .label(format!("{name}: one class only (n = {n}), no curve"))
                    .legend(move |(x, y)| Circle::new((x + 8, y), 3, color.filled()));
                continue;
            }
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(width)))?
                .label(format!("{name}: AUC {:.3} (n = {n})", auc))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(width)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(text_style(font * 0.8, BLACK))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(180, 180, 180))
            .draw()?;
        Ok(())
    })
}

/// Columns of [`crate::ground_truth::summarise`]'s table that are statistics, not group keys.
const SUMMARY_STATS: [&str; 7] = ["metric", "n", "mean", "sd", "ci_low", "ci_high", "interval"];

/// The key column whose values are drawn as differently coloured bars within a row (the trained
/// model and its randomised-weights baseline); the other key columns name the rows.
const MODEL_COLUMN: &str = "model";

/// The metric drawn as a chance reference line in the mass-accuracy panel rather than as bars:
/// the fraction of the brain inside the ground-truth mask, i.e. the mass accuracy of a uniform map.
const CHANCE_METRIC: &str = "truth_fraction";

/// Panel order of the known metrics; other metrics follow in order of appearance.
const METRIC_ORDER: [&str; 4] = ["mass_accuracy", "rank_accuracy", "pointing_hit", "pointing_share"];

/// Readable names of the ground-truth metrics.
fn metric_label(metric: &str) -> String {
    match metric {
        "mass_accuracy" => "relevance mass accuracy".into(),
        "rank_accuracy" => "relevance rank accuracy".into(),
        "pointing_hit" => "pointing game: hit rate".into(),
        "pointing_share" => "pointing game: share of maxima inside".into(),
        CHANCE_METRIC => "fraction of the brain inside the mask".into(),
        other => other.replace('_', " "),
    }
}

/// Readable names of the `model` column's values (`""`: the table has no such column).
fn model_label(model: &str) -> String {
    match model {
        "trained" => "trained model".into(),
        "random" => "randomised weights (baseline)".into(),
        "" => "mean".into(),
        other => other.to_string(),
    }
}

/// `c` darkened, for outlines and whiskers.
fn darker(c: RGBColor) -> RGBColor {
    let d = |v: u8| (f64::from(v) * 0.55).round() as u8;
    RGBColor(d(c.0), d(c.1), d(c.2))
}

/// Fill and ink (outline, whisker, value) colours of each model's bars: the trained model (and
/// a table without models) solid blue, the randomised-weights baseline light grey, any other
/// model a palette colour.
fn model_colors(models: &[String]) -> Vec<(RGBColor, RGBColor)> {
    let mut next_other = 1;
    models
        .iter()
        .map(|m| match m.as_str() {
            "random" => (RGBColor(205, 205, 205), RGBColor(90, 90, 90)),
            "trained" | "" => (palette(0), darker(palette(0))),
            _ => {
                let c = palette(next_other);
                next_other += 1;
                (c, darker(c))
            }
        })
        .collect()
}

/// The colour of the chance line.
const CHANCE_COLOR: RGBColor = RGBColor(214, 39, 40);

/// A bar: mean and 95 % interval.
#[derive(Clone, Copy)]
struct Bar {
    mean: f64,
    lo: f64,
    hi: f64,
}

/// One panel of [`ground_truth_chart`]: a metric's bars per row and model, and the chance level
/// per row and model where it is drawn in this panel.
struct GtPanel {
    caption: String,
    bars: Vec<Vec<Option<Bar>>>,
    chance: Option<Vec<Vec<f64>>>,
}

/// Horizontal bars of the ground-truth scores from [`crate::ground_truth::summarise`]'s table:
/// one panel per metric (mass accuracy, rank accuracy, pointing-game hit rate, pointing share,
/// then any other metric), each with its own score axis; one row per method (the key columns
/// other than `model`, joined with `·`, named in full on the left); within a row one bar per
/// value of the `model` column (the trained model solid blue on top, the randomised-weights
/// baseline light grey below; one bar per row without that column), with its 95 % CI as a
/// whisker and its mean printed beside it, and a legend above the panels. The `truth_fraction`
/// metric (the chance level: what a uniform map scores for mass accuracy) is drawn as a dashed
/// line per row in the mass-accuracy panel instead of as bars. NaN means are marked `n/a`.
pub fn ground_truth_chart(summary: &DataFrame, size: (u32, u32), path: &Path) -> Result<()> {
    const TABLE: &str = "ground-truth summary";
    let metric = column_str(summary, TABLE, "metric")?;
    let mean = column_f64(summary, TABLE, "mean")?;
    let lo = column_f64(summary, TABLE, "ci_low")?;
    let hi = column_f64(summary, TABLE, "ci_high")?;
    let height = summary.height();
    let n = if has_column(summary, "n") { column_f64(summary, TABLE, "n")? } else { vec![f64::NAN; height] };
    let interval = if has_column(summary, "interval") {
        column_str(summary, TABLE, "interval")?
    } else {
        vec![String::new(); height]
    };
    let model = if has_column(summary, MODEL_COLUMN) {
        column_str(summary, TABLE, MODEL_COLUMN)?
    } else {
        vec![String::new(); height]
    };
    let key_cols: Vec<String> = summary
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| !SUMMARY_STATS.contains(&c.as_str()) && c != MODEL_COLUMN)
        .collect();
    let keys: Vec<Vec<String>> = key_cols.iter().map(|c| column_str(summary, TABLE, c)).collect::<Result<_>>()?;
    let row_key: Vec<String> = (0..height)
        .map(|i| {
            if keys.is_empty() {
                "all scans".to_string()
            } else {
                keys.iter().map(|k| k[i].clone()).collect::<Vec<_>>().join(" · ")
            }
        })
        .collect();
    let rows = distinct(&row_key);
    // the trained model first (on top in each row), the randomised-weights baseline last
    let mut models = distinct(&model);
    models.sort_by_key(|m| match m.as_str() {
        "trained" => 0,
        "random" => 2,
        _ => 1,
    });
    let colors = model_colors(&models);
    let present = distinct(&metric);
    let mut metrics: Vec<String> = METRIC_ORDER.iter().map(|m| m.to_string()).filter(|m| present.contains(m)).collect();
    metrics.extend(present.iter().filter(|m| !METRIC_ORDER.contains(&m.as_str())).cloned());
    let chance_in_mass = metrics.iter().any(|m| m == "mass_accuracy") && metrics.iter().any(|m| m == CHANCE_METRIC);
    if chance_in_mass {
        metrics.retain(|m| m != CHANCE_METRIC);
    }
    // the first line of the table for each (row, model, metric)
    let mut line: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for i in 0..height {
        line.entry((row_key[i].as_str(), model[i].as_str(), metric[i].as_str())).or_insert(i);
    }
    let table_of = |metric: &str| -> Vec<Vec<Option<Bar>>> {
        rows.iter()
            .map(|r| {
                models
                    .iter()
                    .map(|m| {
                        line.get(&(r.as_str(), m.as_str(), metric)).map(|&i| Bar {
                            mean: mean[i],
                            lo: lo[i],
                            hi: hi[i],
                        })
                    })
                    .collect()
            })
            .collect()
    };
    let chance: Vec<Vec<f64>> = table_of(CHANCE_METRIC)
        .into_iter()
        .map(|row| row.into_iter().map(|b| b.map_or(f64::NAN, |b| b.mean)).collect())
        .collect();
    let has_chance = chance_in_mass && chance.iter().flatten().any(|v| v.is_finite());
    let panels: Vec<GtPanel> = metrics
        .iter()
        .map(|m| {
            let kinds: Vec<&str> = (0..height).filter(|&i| &metric[i] == m).map(|i| interval[i].as_str()).collect();
            let wilson = !kinds.is_empty() && kinds.iter().all(|&k| k == "wilson");
            GtPanel {
                caption: metric_label(m) + if wilson { " (Wilson CI)" } else { "" },
                bars: table_of(m),
                chance: (has_chance && m == "mass_accuracy").then(|| chance.clone()),
            }
        })
        .collect();
    // the number of scans goes into the title when every bar has the same
    let counts: Vec<f64> = (0..height).filter(|&i| metric[i] != CHANCE_METRIC).map(|i| n[i]).collect();
    let scans = counts.first().copied().filter(|&c| c.is_finite() && counts.iter().all(|&v| v == c));
    let title = match scans {
        Some(s) => format!("Relevance against the planted atrophy: mean and 95 % CI, {s} scans per bar"),
        None => "Relevance against the planted atrophy: mean and 95 % CI".to_string(),
    };
    let font = base_font(size);
    render(size, path, |root| {
        let body = root.titled(&fit_text(root, &title, font * 1.2, size.0), text_style(font * 1.2, BLACK))?;
        if rows.is_empty() || panels.is_empty() {
            return draw_message(&body, "no ground-truth scores in the table", font);
        }
        let (legend, body) = body.split_vertically((font * 2.0) as u32);
        draw_gt_legend(&legend, &models, &colors, has_chance, font)?;
        let (bw, _) = body.dim_in_pixel();
        let label_px = font * 0.95;
        let label_w = (widest(root, &rows, label_px) + (font * 1.0) as u32).min(bw * 2 / 5);
        // as many panels side by side as leave each at least ~12 text heights wide
        let np = panels.len();
        let cols =
            (1..=np).rev().find(|&c| f64::from(bw.saturating_sub(label_w)) / c as f64 >= font * 12.0).unwrap_or(1);
        // the fewest columns that need no more rows (4 panels: 2 × 2 rather than 3 + 1)
        let grid_rows = np.div_ceil(cols);
        let cols = np.div_ceil(grid_rows);
        let bands = body.split_evenly((grid_rows, 1));
        // panel captions wrapped to the panel width, all panels given the same caption height
        let panel_w = (bw.saturating_sub(label_w) / cols as u32).saturating_sub((font * 1.2) as u32).max(8);
        let captions: Vec<Vec<String>> = panels.iter().map(|p| wrap_text(root, &p.caption, font, panel_w)).collect();
        let caption_lines = captions.iter().map(Vec::len).max().unwrap_or(1);
        let label_style = text_style(label_px, BLACK).pos(Pos::new(HPos::Right, VPos::Center));
        for (g, band) in bands.iter().enumerate() {
            let (strip, rest) = band.split_horizontally(label_w);
            let cells = rest.split_evenly((1, cols));
            for (c, area) in cells.iter().enumerate() {
                let Some(panel) = panels.get(g * cols + c) else { break };
                let row_y = gt_panel(area, panel, &captions[g * cols + c], caption_lines, &colors, font)?;
                if c == 0 {
                    let x = strip.get_base_pixel().0 + label_w as i32 - (font * 0.3) as i32;
                    for (r, y) in rows.iter().zip(row_y) {
                        let label = fit_text(root, r, label_px, label_w.saturating_sub((font * 0.6) as u32));
                        root.draw(&Text::new(label, (x, y), label_style.clone()))?;
                    }
                }
            }
        }
        Ok(())
    })
}

/// The legend strip of [`ground_truth_chart`]: one box per model, the whisker, and the chance
/// line when drawn, centred in `area` (the text shrinks when the strip is too narrow).
fn draw_gt_legend(
    area: &Area<'_>,
    models: &[String],
    colors: &[(RGBColor, RGBColor)],
    chance: bool,
    font: f64,
) -> DrawResult {
    enum Glyph {
        Box(RGBColor, RGBColor),
        Whisker,
        Dashed,
    }
    let mut entries: Vec<(Glyph, String)> =
        models.iter().zip(colors).map(|(m, &(fill, ink))| (Glyph::Box(fill, ink), model_label(m))).collect();
    entries.push((Glyph::Whisker, "95 % CI".into()));
    if chance {
        entries.push((Glyph::Dashed, "chance: uniform map".into()));
    }
    let (w, h) = area.dim_in_pixel();
    let mut px = font * 0.9;
    let total = |px: f64| -> f64 {
        let texts: f64 = entries.iter().map(|e| f64::from(widest(area, std::slice::from_ref(&e.1), px))).sum::<f64>();
        texts + entries.len() as f64 * px * 2.2 + (entries.len() - 1) as f64 * px * 1.6
    };
    while total(px) > f64::from(w) && px > 6.0 {
        px -= 0.5;
    }
    let mut x = ((f64::from(w) - total(px)) / 2.0).max(0.0) as i32;
    let y = h as i32 / 2;
    let half = (px * 0.45) as i32;
    let glyph_w = (px * 1.8) as i32;
    let ink = RGBColor(40, 40, 40);
    for (glyph, label) in &entries {
        match *glyph {
            Glyph::Box(fill, edge) => {
                area.draw(&Rectangle::new([(x, y - half), (x + glyph_w, y + half)], fill.filled()))?;
                area.draw(&Rectangle::new([(x, y - half), (x + glyph_w, y + half)], edge))?;
            }
            Glyph::Whisker => {
                area.draw(&PathElement::new(vec![(x, y), (x + glyph_w, y)], ink.stroke_width(2)))?;
                area.draw(&PathElement::new(vec![(x, y - half), (x, y + half)], ink.stroke_width(2)))?;
                area.draw(&PathElement::new(
                    vec![(x + glyph_w, y - half), (x + glyph_w, y + half)],
                    ink.stroke_width(2),
                ))?;
            }
            Glyph::Dashed => {
                let dash = (glyph_w / 4).max(2);
                for k in [0, 2] {
                    let x0 = x + k * dash + dash / 2;
                    area.draw(&PathElement::new(vec![(x0, y), (x0 + dash, y)], CHANCE_COLOR.stroke_width(3)))?;
                }
                let x0 = x + glyph_w / 2;
                area.draw(&PathElement::new(
                    vec![(x0, y - half - 2), (x0, y + half + 2)],
                    CHANCE_COLOR.stroke_width(1),
                ))?;
            }
        }
        x += glyph_w + (px * 0.4) as i32;
        area.draw(&Text::new(label.clone(), (x, y), text_style(px, BLACK).pos(Pos::new(HPos::Left, VPos::Center))))?;
        x += widest(area, std::slice::from_ref(label), px) as i32 + (px * 1.6) as i32;
    }
    Ok(())
}

/// Draws `text` in `area` at `at`, a position in pixels of the whole figure (as
/// `ChartContext::backend_coord` gives).
fn root_text(area: &Area<'_>, text: String, at: (i32, i32), style: TextStyle<'_>) -> DrawResult {
    let (bx, by) = area.get_base_pixel();
    area.draw(&Text::new(text, (at.0 - bx, at.1 - by), style))?;
    Ok(())
}

/// Draws one panel of [`ground_truth_chart`] in `area`, under its caption (`caption_lines` lines
/// high, so that the panels of a row line up), and returns the pixel row (y) of the
/// centre of each of its rows, for the row labels.
fn gt_panel(
    area: &Area<'_>,
    panel: &GtPanel,
    caption: &[String],
    caption_lines: usize,
    colors: &[(RGBColor, RGBColor)],
    font: f64,
) -> std::result::Result<Vec<i32>, Box<dyn std::error::Error>> {
    let k = panel.bars.len();
    let ns = colors.len().max(1);
    let finite = |v: &f64| v.is_finite();
    let mut values: Vec<f64> = panel.bars.iter().flatten().flatten().flat_map(|b| [b.mean, b.lo, b.hi]).collect();
    if let Some(ch) = &panel.chance {
        values.extend(ch.iter().flatten());
    }
    let (mut x_lo, mut x_hi) =
        values.iter().copied().filter(finite).fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    if x_hi - x_lo < 1e-12 {
        x_hi = x_lo + 1.0;
    }
    let span = x_hi - x_lo;
    // room right of the longest whisker for its value
    let value_px = (font * 0.72).max(6.0);
    let margin = (font * 0.5) as u32;
    let x_label_h = (font * 1.9) as u32;
    let line_h = font * 1.2;
    let caption_h = caption_lines as f64 * line_h + font * 0.3;
    let (head, area) = area.split_vertically(caption_h as u32);
    let (hw, _) = head.dim_in_pixel();
    for (i, text) in caption.iter().enumerate() {
        let y = (font * 0.3 + (i as f64 + 0.5) * line_h) as i32;
        let style = text_style(font, BLACK).pos(Pos::new(HPos::Center, VPos::Center));
        head.draw(&Text::new(text.clone(), (hw as i32 / 2, y), style))?;
    }
    let area = &area;
    let (aw, ah) = area.dim_in_pixel();
    let value_w = f64::from(widest(area, &["0.000".to_string()], value_px)) + font * 0.5;
    let plot_w = (f64::from(aw) - f64::from(2 * margin) - font * 0.3).max(value_w + 20.0);
    x_hi += span * (value_w / (plot_w - value_w) + 0.01);
    if x_lo < 0.0 {
        x_lo -= span * 0.02;
    }
    let plot_h = f64::from(ah) - f64::from(2 * margin + x_label_h);
    let slot = 0.8 / ns as f64;
    let slot_px = plot_h / k.max(1) as f64 * slot;
    let show_values = slot_px >= value_px * 0.9;
    let mut chart = ChartBuilder::on(area)
        .margin(margin)
        .x_label_area_size(x_label_h)
        .y_label_area_size((font * 0.3) as u32)
        .build_cartesian_2d(x_lo..x_hi, -0.5..k as f64 - 0.5)?;
    // every other row shaded, so a row can be followed across the panels
    let row_y = |r: usize| (k - 1 - r) as f64;
    chart.draw_series((0..k).filter(|r| r % 2 == 1).map(|r| {
        let y = row_y(r);
        Rectangle::new([(x_lo, y - 0.5), (x_hi, y + 0.5)], RGBColor(244, 244, 244).filled())
    }))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(5)
        .x_label_formatter(&|v| short_float(*v))
        .label_style(text_style(font * 0.8, BLACK))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(TRANSPARENT)
        .draw()?;
    if x_lo < 0.0 {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, -0.5), (0.0, k as f64 - 0.5)],
            RGBColor(120, 120, 120),
        )))?;
    }
    // the chance line: one dashed segment (x, y from, y to) across a row where its models share
    // the chance level, else one per model
    let chance_segments: Vec<(f64, f64, f64)> = panel
        .chance
        .iter()
        .flat_map(|chance| {
            chance.iter().enumerate().flat_map(|(r, per_model)| {
                let known: Vec<f64> = per_model.iter().copied().filter(finite).collect();
                let shared =
                    known.first().filter(|&&f| known.iter().all(|&v| (v - f).abs() <= 1e-9 * f.abs().max(1.0)));
                match shared {
                    Some(&f) => vec![(f, row_y(r) - 0.45, row_y(r) + 0.45)],
                    None => per_model
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(s, &v)| {
                            let yc = row_y(r) + 0.4 - (s as f64 + 0.5) * slot;
                            (v, yc - slot / 2.0, yc + slot / 2.0)
                        })
                        .collect(),
                }
            })
        })
        .collect();
    let stroke = if font >= 14.0 { 2 } else { 1 };
    let value_style = |c: RGBColor| text_style(value_px, c).pos(Pos::new(HPos::Left, VPos::Center));
    for (r, row) in panel.bars.iter().enumerate() {
        for (s, bar) in row.iter().enumerate() {
            let yc = row_y(r) + 0.4 - (s as f64 + 0.5) * slot;
            let half = slot * 0.42;
            let (fill, ink) = colors.get(s).copied().unwrap_or((palette(0), darker(palette(0))));
            match bar {
                Some(b) if b.mean.is_finite() => {
                    chart.draw_series([
                        Rectangle::new([(0.0, yc - half), (b.mean, yc + half)], fill.filled()),
                        Rectangle::new([(0.0, yc - half), (b.mean, yc + half)], ink.stroke_width(1)),
                    ])?;
                    // a bar too short to see (a mean of 0): a dot at the mean instead
                    let (x0, _) = chart.backend_coord(&(0.0, yc));
                    let (x1, _) = chart.backend_coord(&(b.mean, yc));
                    if (x1 - x0).abs() < 3 {
                        let radius = (font * 0.22).max(2.0) as i32;
                        chart.draw_series(std::iter::once(Circle::new((b.mean, yc), radius, ink.filled())))?;
                    }
                    let mut end = b.mean;
                    if b.lo.is_finite() && b.hi.is_finite() {
                        let cap = half * 0.55;
                        let style = ink.stroke_width(stroke);
                        chart.draw_series([
                            PathElement::new(vec![(b.lo, yc), (b.hi, yc)], style),
                            PathElement::new(vec![(b.lo, yc - cap), (b.lo, yc + cap)], style),
                            PathElement::new(vec![(b.hi, yc - cap), (b.hi, yc + cap)], style),
                        ])?;
                        end = end.max(b.hi);
                    }
                    if show_values {
                        let (px, py) = chart.backend_coord(&(end, yc));
                        let text = format!("{:.3}", b.mean);
                        let gap = (font * 0.3) as i32;
                        let mut x = px + gap;
                        // not across the chance line: then right of it
                        let crossing = chance_segments.iter().find(|&&(_, y0, y1)| (y0..=y1).contains(&yc));
                        if let Some(&(chance_x, _, _)) = crossing {
                            let (cx, _) = chart.backend_coord(&(chance_x, yc));
                            let w = widest(area, std::slice::from_ref(&text), value_px) as i32;
                            if (x - 3..=x + w + 3).contains(&cx) {
                                x = cx + gap;
                            }
                        }
                        root_text(area, text, (x, py), value_style(ink))?;
                    }
                }
                _ => {
                    let (px, py) = chart.backend_coord(&(x_lo.max(0.0), yc));
                    root_text(area, "n/a".into(), (px + (font * 0.3) as i32, py), value_style(NOTE))?;
                }
            }
        }
    }
    let style = CHANCE_COLOR.stroke_width(2);
    let (dash, gap) = ((font * 0.35).max(3.0) as u32, (font * 0.25).max(2.0) as u32);
    for &(x, y0, y1) in &chance_segments {
        chart.draw_series(DashedLineSeries::new(vec![(x, y1), (x, y0)], dash, gap, style))?;
    }
    Ok((0..k).map(|r| chart.backend_coord(&(x_lo, row_y(r))).1).collect())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{non_white, out_path, read_png};
    use super::*;
    use polars::prelude::Column;

    fn check_png(path: &Path, size: (u32, u32)) {
        let (w, h, rgb) = read_png(path);
        assert_eq!((w, h), size);
        assert!(non_white(&rgb) > 1000, "{} is nearly blank", path.display());
    }

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
    fn roc_matches_hand_values() {
        // scores 0.9 (AD), 0.8 (CN), 0.7 (AD), 0.1 (CN): pairs AD>CN 3 of 4 → AUC 0.75
        let l = [true, false, true, false];
        let s = [0.9, 0.8, 0.7, 0.1];
        assert_eq!(roc_auc(&l, &s), 0.75);
        assert_eq!(roc_points(&l, &s), vec![(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        // all tied: AUC ½
        assert_eq!(roc_auc(&l, &[0.5; 4]), 0.5);
        assert!(roc_auc(&[true, true], &[0.1, 0.2]).is_nan());
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

    #[test]
    fn learning_and_roc_curves_render_from_training_columns() {
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

        let preds = DataFrame::new(
            9,
            vec![
                Column::new(
                    "fold".into(),
                    ["fold1", "fold1", "fold1", "fold1", "fold2", "fold2", "fold2", "fold2", "fold3"],
                ),
                Column::new("set".into(), ["test"; 9]),
                Column::new("true_label".into(), [1i32, 0, 1, 0, 1, 1, 0, 0, 1]),
                Column::new("p_ad".into(), [0.9, 0.8, 0.7, 0.1, 0.6, 0.4, 0.5, 0.2, 0.9]),
            ],
        )
        .unwrap();
        let path = out_path(tmp.path(), "roc_curves.png");
        roc_curves(&preds, (500, 450), &path).unwrap();
        check_png(&path, (500, 450));
    }

    #[test]
    fn ground_truth_chart_renders_with_missing_values() {
        // no model column: one bar per method
        let tmp = tempfile::tempdir().unwrap();
        let df = DataFrame::new(
            6,
            vec![
                Column::new("method".into(), ["occlusion", "occlusion", "occlusion", "random", "random", "random"]),
                Column::new("metric".into(), ["mass_accuracy", "rank_accuracy", "pointing_hit"].repeat(2)),
                Column::new("n".into(), [10u64, 10, 10, 10, 10, 0]),
                Column::new("mean".into(), [0.6, 0.5, 0.8, 0.1, 0.05, f64::NAN]),
                Column::new("ci_low".into(), [0.5, 0.4, 0.49, 0.05, 0.0, f64::NAN]),
                Column::new("ci_high".into(), [0.7, 0.6, 0.94, 0.15, 0.1, f64::NAN]),
            ],
        )
        .unwrap();
        let path = out_path(tmp.path(), "ground_truth_no_model.png");
        ground_truth_chart(&df, (500, 400), &path).unwrap();
        check_png(&path, (500, 400));
        let (_, _, rgb) = read_png(&path);
        assert!(count_color(&rgb, palette(0)) > 200, "no bars in the trained colour");
        assert!(count_color(&rgb, RANDOM_FILL) < 50, "a baseline bar without a model column");
    }

    /// Pixels of exactly `c`.
    fn count_color(rgb: &[u8], c: RGBColor) -> usize {
        rgb.chunks(3).filter(|p| p == &[c.0, c.1, c.2]).count()
    }

    const RANDOM_FILL: RGBColor = RGBColor(205, 205, 205);

    /// The real summary of a hold-out run (8 methods × trained / random × 4 metrics), with a
    /// `truth_fraction` metric added when `chance` is set.
    fn real_summary(chance: bool) -> DataFrame {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/ground_truth_summary.csv");
        let df = crate::tables::read_csv(&path).unwrap();
        if !chance {
            return df;
        }
        let methods: Vec<String> = distinct(&column_str(&df, "t", "method").unwrap());
        let m = methods.len() * 2;
        let method: Vec<String> = methods.iter().flat_map(|x| [x.clone(), x.clone()]).collect();
        let extra = DataFrame::new(
            m,
            vec![
                Column::new("method".into(), method),
                Column::new("model".into(), ["trained", "random"].repeat(m / 2)),
                Column::new("metric".into(), vec!["truth_fraction"; m]),
                Column::new("n".into(), vec![6i64; m]),
                Column::new("mean".into(), vec![0.0412; m]),
                Column::new("sd".into(), vec![0.0; m]),
                Column::new("ci_low".into(), vec![0.0412; m]),
                Column::new("ci_high".into(), vec![0.0412; m]),
                Column::new("interval".into(), vec!["t"; m]),
            ],
        )
        .unwrap();
        df.vstack(&extra).unwrap()
    }

    #[test]
    fn ground_truth_chart_renders_the_real_summary_with_models_and_chance() {
        let tmp = tempfile::tempdir().unwrap();
        for (chance, size, name) in [
            (false, (1200, 800), "ground_truth_real.png"),
            (true, (1200, 800), "ground_truth_real_chance.png"),
            (true, (1800, 1200), "ground_truth_real_large.png"),
            (true, (800, 1000), "ground_truth_real_tall.png"),
            (true, (500, 400), "ground_truth_real_small.png"),
        ] {
            let path = out_path(tmp.path(), name);
            ground_truth_chart(&real_summary(chance), size, &path).unwrap();
            check_png(&path, size);
            let (_, _, rgb) = read_png(&path);
            assert!(count_color(&rgb, palette(0)) > 100, "{name}: no trained bars");
            assert!(count_color(&rgb, RANDOM_FILL) > 100, "{name}: no baseline bars");
            assert_eq!(count_color(&rgb, CHANCE_COLOR) > 20, chance, "{name}: chance line");
        }
    }

    #[test]
    fn ground_truth_chart_handles_nan_and_extra_keys() {
        let tmp = tempfile::tempdir().unwrap();
        // a second key column, a NaN mean with NaN interval, a missing model for one method,
        // and a chance level without a mass-accuracy panel (drawn as bars)
        let df = DataFrame::new(
            7,
            vec![
                Column::new("method".into(), ["occlusion", "occlusion", "occlusion", "grad-cam", "grad-cam", "x", "x"]),
                Column::new("class".into(), ["AD", "AD", "AD", "AD", "AD", "CN", "CN"]),
                Column::new("model".into(), ["trained", "random", "trained", "trained", "random", "trained", "random"]),
                Column::new(
                    "metric".into(),
                    ["pointing_hit", "pointing_hit", "truth_fraction", "pointing_hit", "pointing_hit", "a", "a"],
                ),
                Column::new("mean".into(), [0.0, f64::NAN, 0.04, 1.0, 0.5, f64::NAN, f64::NAN]),
                Column::new("ci_low".into(), [0.0, f64::NAN, 0.04, 0.6, 0.1, f64::NAN, f64::NAN]),
                Column::new("ci_high".into(), [0.39, f64::NAN, 0.04, 1.0, 0.9, f64::NAN, f64::NAN]),
            ],
        )
        .unwrap();
        let path = out_path(tmp.path(), "ground_truth_nan.png");
        ground_truth_chart(&df, (700, 500), &path).unwrap();
        check_png(&path, (700, 500));
        // every mean NaN, and an empty table
        let all_nan = DataFrame::new(
            2,
            vec![
                Column::new("method".into(), ["a", "a"]),
                Column::new("metric".into(), ["mass_accuracy", "truth_fraction"]),
                Column::new("mean".into(), [f64::NAN, f64::NAN]),
                Column::new("ci_low".into(), [f64::NAN, f64::NAN]),
                Column::new("ci_high".into(), [f64::NAN, f64::NAN]),
            ],
        )
        .unwrap();
        let path = out_path(tmp.path(), "ground_truth_all_nan.png");
        ground_truth_chart(&all_nan, (400, 300), &path).unwrap();
        check_png(&path, (400, 300));
        let path = out_path(tmp.path(), "ground_truth_empty.png");
        ground_truth_chart(&all_nan.head(Some(0)), (400, 300), &path).unwrap();
        let (w, h, _) = read_png(&path);
        assert_eq!((w, h), (400, 300));
    }
}
