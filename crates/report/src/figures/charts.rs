//! Charts from tables: top regions, method matrices, learning curves, ROC curves and the
//! ground-truth scores.

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
fn render(size: (u32, u32), path: &Path, f: impl FnOnce(&Area<'_>) -> DrawResult) -> Result<()> {
    let mut canvas = Canvas::new(size)?;
    canvas.draw(f).map_err(|m| figure_error(path, m))?;
    canvas.save(path)
}

/// Distinct values in order of first appearance.
fn distinct(values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    out
}

/// Width in pixels of the widest of `texts` at `px`.
fn widest(area: &Area<'_>, texts: &[String], px: f64) -> u32 {
    let style = text_style(px, BLACK);
    texts.iter().map(|t| area.estimate_text_size(t, &style).map(|(w, _)| w).unwrap_or(0)).max().unwrap_or(0)
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
        let top_h = font * 2.0;
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
            let cx = x0 + (i as f64 + 0.5) * cell;
            let label = fit_text(root, name, font, (cell - 2.0) as u32);
            root.draw(&Text::new(label, (cx as i32, (y0 - top_h / 2.0) as i32), text_style(font, BLACK).pos(center)))?;
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
        let entry_w = (font * 9.0) as i32;
        let mut x = lw as i32 / 2 - entry_w * series.len() as i32 / 2;
        let y = (font * 0.8) as i32;
        for s in &series {
            let color = palette(s.1);
            legend.draw(&PathElement::new(vec![(x, y), (x + (font * 1.8) as i32, y)], color.stroke_width(3)))?;
            legend.draw(&Text::new(
                s.0,
                (x + (font * 2.3) as i32, y),
                text_style(font * 0.9, BLACK).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            x += entry_w;
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

/// Readable names of the ground-truth metrics.
fn metric_label(metric: &str) -> String {
    match metric {
        "mass_accuracy" => "relevance mass accuracy".into(),
        "rank_accuracy" => "relevance rank accuracy".into(),
        "pointing_hit" => "pointing game (hit rate)".into(),
        "pointing_share" => "share of the maximum inside".into(),
        other => other.replace('_', " "),
    }
}

/// Grouped bars of the ground-truth scores from [`crate::ground_truth::summarise`]'s table: one
/// group of bars per combination of its key columns (e.g. method, or method · model for the
/// randomised-weights baseline), one bar per metric (mass accuracy, rank accuracy, pointing game;
/// `pointing_share` is left out when `pointing_hit` is there), whiskers for the 95 % CI. NaN
/// means are marked `n/a`.
pub fn ground_truth_chart(summary: &DataFrame, size: (u32, u32), path: &Path) -> Result<()> {
    const TABLE: &str = "ground-truth summary";
    let metric = column_str(summary, TABLE, "metric")?;
    let mean = column_f64(summary, TABLE, "mean")?;
    let lo = column_f64(summary, TABLE, "ci_low")?;
    let hi = column_f64(summary, TABLE, "ci_high")?;
    let key_cols: Vec<String> = summary
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| !SUMMARY_STATS.contains(&c.as_str()))
        .collect();
    let keys: Vec<Vec<String>> = key_cols.iter().map(|c| column_str(summary, TABLE, c)).collect::<Result<_>>()?;
    let group_of = |i: usize| keys.iter().map(|k| k[i].clone()).collect::<Vec<_>>().join(" · ");
    let groups = distinct(&(0..summary.height()).map(group_of).collect::<Vec<_>>());
    let mut metrics = distinct(&metric);
    if metrics.iter().any(|m| m == "pointing_hit") {
        metrics.retain(|m| m != "pointing_share");
    }
    let value =
        |g: &str, m: &str| -> Option<usize> { (0..summary.height()).find(|&i| group_of(i) == g && metric[i] == m) };
    // the scores lie in [0, 1]; widen only for values (or t-intervals) beyond that
    let shown: Vec<usize> = (0..summary.height()).filter(|&i| metrics.contains(&metric[i])).collect();
    let all = shown.iter().flat_map(|&i| [mean[i], lo[i], hi[i]]).filter(|v| v.is_finite());
    let (y_lo, y_hi) = all.fold((0.0f64, 1.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let font = base_font(size);
    render(size, path, |root| {
        let body =
            root.titled("Relevance against the planted atrophy (mean, 95 % CI)", text_style(font * 1.2, BLACK))?;
        if groups.is_empty() || metrics.is_empty() {
            return draw_message(&body, "no ground-truth scores in the table", font);
        }
        let ng = groups.len() as f64;
        let mut chart = ChartBuilder::on(&body)
            .margin((font * 0.8) as u32)
            .x_label_area_size((font * 2.4) as u32)
            .y_label_area_size((font * 3.8) as u32)
            .build_cartesian_2d(-0.5..ng - 0.5, y_lo..y_hi * 1.15)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(6)
            .y_label_formatter(&|v| format!("{v:.1}"))
            .y_desc("score")
            .label_style(text_style(font * 0.85, BLACK))
            .axis_desc_style(text_style(font * 0.85, BLACK))
            .light_line_style(RGBColor(244, 244, 244))
            .draw()?;
        let nm = metrics.len() as f64;
        let bar = 0.8 / nm;
        for (mi, m) in metrics.iter().enumerate() {
            let color = palette(mi);
            let mut bars = Vec::new();
            let mut whiskers = Vec::new();
            let mut missing = Vec::new();
            for (gi, g) in groups.iter().enumerate() {
                let x0 = gi as f64 - 0.4 + mi as f64 * bar;
                let xc = x0 + bar / 2.0;
                match value(g, m) {
                    Some(i) if mean[i].is_finite() => {
                        bars.push(Rectangle::new([(x0 + bar * 0.05, 0.0), (x0 + bar * 0.95, mean[i])], color.filled()));
                        if lo[i].is_finite() && hi[i].is_finite() {
                            whiskers.push((xc, lo[i], hi[i]));
                        }
                    }
                    _ => missing.push(xc),
                }
            }
            chart
                .draw_series(bars)?
                .label(metric_label(m))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
            let ink = RGBColor(30, 30, 30);
            for (xc, l, h) in whiskers {
                let cap = bar * 0.2;
                chart.draw_series(std::iter::once(PathElement::new(vec![(xc, l), (xc, h)], ink.stroke_width(2))))?;
                chart.draw_series(std::iter::once(PathElement::new(vec![(xc - cap, l), (xc + cap, l)], ink)))?;
                chart.draw_series(std::iter::once(PathElement::new(vec![(xc - cap, h), (xc + cap, h)], ink)))?;
            }
            for xc in missing {
                let (px, py) = chart.backend_coord(&(xc, 0.0));
                root.draw(&Text::new(
                    "n/a",
                    (px, py - (font * 0.8) as i32),
                    text_style(font * 0.7, NOTE).pos(Pos::new(HPos::Center, VPos::Center)),
                ))?;
            }
        }
        for (gi, g) in groups.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(gi as f64, y_lo));
            let (pl, _) = chart.backend_coord(&(gi as f64 - 0.5, y_lo));
            let label = fit_text(root, g, font * 0.9, (2 * (px - pl)).max(8) as u32);
            root.draw(&Text::new(
                label,
                (px, py + (font * 1.1) as i32),
                text_style(font * 0.9, BLACK).pos(Pos::new(HPos::Center, VPos::Center)),
            ))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(text_style(font * 0.8, BLACK))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(180, 180, 180))
            .draw()?;
        Ok(())
    })
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
        let path = out_path(tmp.path(), "ground_truth.png");
        ground_truth_chart(&df, (500, 400), &path).unwrap();
        check_png(&path, (500, 400));
    }
}
