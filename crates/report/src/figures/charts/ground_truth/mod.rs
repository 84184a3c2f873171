//! The ground-truth score chart: the summary table turned into panels (here) and drawn
//! ([`panel`]).

mod panel;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use polars::prelude::DataFrame;

use super::{distinct, render, widest};
use crate::error::Result;
use crate::figures::{Area, base_font, draw_message, fit_text, palette, text_style};
use crate::tables::{column_f64, column_str, has_column};
use panel::{draw_gt_legend, gt_panel};

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
