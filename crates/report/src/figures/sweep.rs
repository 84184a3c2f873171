//! The figure of the dose–response sweep (`cargo xtask sweep`): classification and relevance
//! mass accuracy against the planted effect size.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    Area, Canvas, DrawResult, base_font, draw_message, figure_error, fit_text, method_colour, palette, short_float,
    text_style,
};
use crate::error::Result;
use crate::sweep::SweepPoint;

/// Grey of the chance lines.
const CHANCE: RGBColor = RGBColor(70, 70, 70);

/// The x range of the effect sizes with a margin on both sides.
fn x_range(points: &[SweepPoint]) -> (f64, f64) {
    let lo = points.iter().map(|p| p.effect_size).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.effect_size).fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.06 } else { 0.5 };
    (lo - pad, hi + pad)
}

/// The finite (x, y) pairs, sorted by x.
fn finite(mut pts: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    pts.retain(|p| p.0.is_finite() && p.1.is_finite());
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

/// Two panels side by side. Left: cross-validated balanced accuracy (mean over folds, ±1 SD as
/// error bars) and the hold-out model's balanced accuracy against the effect size, with chance
/// (0.5) dashed. Right: each method's mean relevance mass accuracy of the trained model against
/// the effect size (one colour per method, legend on the right; a method without any score is
/// listed as such), with the chance level (the truth mask's share of the scored voxels, averaged
/// over the methods) dashed. NaN values are left out; no points gives a figure that says so.
pub fn sweep_chart(points: &[SweepPoint], size: (u32, u32), path: &Path) -> Result<()> {
    let mut methods: Vec<String> = Vec::new();
    for m in points.iter().flat_map(|p| &p.mass) {
        if !methods.contains(&m.method) {
            methods.push(m.method.clone());
        }
    }
    let (x_lo, x_hi) = x_range(points);
    let cv = finite(points.iter().map(|p| (p.effect_size, p.cv.balanced_accuracy)).collect());
    let bars: Vec<(f64, f64, f64)> = points
        .iter()
        .filter(|p| p.cv.balanced_accuracy.is_finite() && p.cv.balanced_accuracy_sd.is_finite())
        .map(|p| {
            let (m, s) = (p.cv.balanced_accuracy, p.cv.balanced_accuracy_sd);
            (p.effect_size, (m - s).max(0.0), (m + s).min(1.0))
        })
        .collect();
    let holdout = finite(points.iter().map(|p| (p.effect_size, p.holdout.balanced_accuracy)).collect());
    let mass: Vec<Vec<(f64, f64)>> = methods
        .iter()
        .map(|m| {
            finite(
                points
                    .iter()
                    .filter_map(|p| p.mass.iter().find(|x| &x.method == m).map(|x| (p.effect_size, x.trained)))
                    .collect(),
            )
        })
        .collect();
    let chance = finite(
        points
            .iter()
            .map(|p| {
                let c: Vec<f64> = p.mass.iter().map(|m| m.chance).filter(|c| c.is_finite()).collect();
                (p.effect_size, if c.is_empty() { f64::NAN } else { c.iter().sum::<f64>() / c.len() as f64 })
            })
            .collect(),
    );
    let y_mass = mass.iter().flatten().chain(&chance).map(|p| p.1).fold(0.0f64, f64::max);
    let y_mass = if y_mass > 0.0 { (y_mass * 1.12).min(1.0) } else { 1.0 };

    let font = base_font(size);
    let mut canvas = Canvas::new(size)?;
    canvas
        .draw(|root| {
            let title = "Dose–response: classification and relevance against the planted effect size";
            let body = root.titled(&fit_text(root, title, font * 1.2, size.0), text_style(font * 1.2, BLACK))?;
            if points.is_empty() {
                return draw_message(&body, "no effect sizes in the sweep", font);
            }
            let (w, _) = body.dim_in_pixel();
            let (left, right) = body.split_horizontally(w * 9 / 20);
            let legend_w = (font * 13.0) as u32;
            let (right, legend) = right.split_horizontally(right.dim_in_pixel().0.saturating_sub(legend_w));

            // Left: balanced accuracy.
            let mut chart = ChartBuilder::on(&left)
                .caption("balanced accuracy (CV: mean ± SD over folds)", text_style(font, BLACK))
                .margin((font * 0.8) as u32)
                .x_label_area_size((font * 2.8) as u32)
                .y_label_area_size((font * 3.6) as u32)
                .build_cartesian_2d(x_lo..x_hi, 0.0..1.0)?;
            mesh(&mut chart, "balanced accuracy", font)?;
            let dash = ((font * 0.5) as u32).max(4);
            chart
                .draw_series(DashedLineSeries::new(vec![(x_lo, 0.5), (x_hi, 0.5)], dash, dash, CHANCE.stroke_width(2)))?
                .label("chance (0.5)")
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (5, 0)], CHANCE.stroke_width(2))
                        + PathElement::new(vec![(9, 0), (14, 0)], CHANCE.stroke_width(2))
                        + PathElement::new(vec![(18, 0), (20, 0)], CHANCE.stroke_width(2))
                });
            let blue = palette(0);
            let cap = (font * 0.4) as i32;
            for &(x, lo, hi) in &bars {
                chart.draw_series(std::iter::once(PathElement::new(vec![(x, lo), (x, hi)], blue.stroke_width(2))))?;
                for y in [lo, hi] {
                    chart.draw_series(std::iter::once(
                        EmptyElement::at((x, y)) + PathElement::new(vec![(-cap, 0), (cap, 0)], blue.stroke_width(2)),
                    ))?;
                }
            }
            chart
                .draw_series(LineSeries::new(cv.clone(), blue.stroke_width(5)))?
                .label("cross-validation")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], blue.stroke_width(4)));
            chart.draw_series(cv.iter().map(|&p| Circle::new(p, 6, blue.filled())))?;
            // the hold-out line drawn thinner on top, so that both show where they coincide
            let orange = palette(1);
            chart
                .draw_series(LineSeries::new(holdout.clone(), orange.stroke_width(2)))?
                .label("hold-out model")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], orange.stroke_width(2)));
            let r = (font * 0.3) as i32;
            chart.draw_series(
                holdout.iter().map(|&p| EmptyElement::at(p) + Rectangle::new([(-r, -r), (r, r)], orange.filled())),
            )?;
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .label_font(text_style(font * 0.8, BLACK))
                .background_style(WHITE.mix(0.9))
                .border_style(RGBColor(180, 180, 180))
                .draw()?;

            // Right: mass accuracy per method.
            let mut chart = ChartBuilder::on(&right)
                .caption("relevance mass accuracy (trained model)", text_style(font, BLACK))
                .margin((font * 0.8) as u32)
                .x_label_area_size((font * 2.8) as u32)
                .y_label_area_size((font * 3.6) as u32)
                .build_cartesian_2d(x_lo..x_hi, 0.0..y_mass)?;
            mesh(&mut chart, "mass accuracy", font)?;
            if methods.is_empty() {
                let (pw, ph) = right.dim_in_pixel();
                right.draw(&Text::new(
                    "no ground-truth scores",
                    (pw as i32 / 2, ph as i32 / 2),
                    text_style(font, super::NOTE).pos(Pos::new(HPos::Center, VPos::Center)),
                ))?;
            }
            chart.draw_series(DashedLineSeries::new(chance.clone(), dash, dash, CHANCE.stroke_width(2)))?;
            chart.draw_series(chance.iter().map(|&p| Circle::new(p, 3, CHANCE.filled())))?;
            for (m, pts) in methods.iter().zip(&mass) {
                let c = method_colour(m);
                chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?;
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
            }

            // Legend of the right panel.
            let mut entries: Vec<(String, RGBColor, bool)> = methods
                .iter()
                .zip(&mass)
                .map(|(m, pts)| {
                    let name = if pts.is_empty() { format!("{m} (no scores)") } else { m.clone() };
                    (name, method_colour(m), false)
                })
                .collect();
            entries.push(("chance (mask share)".into(), CHANCE, true));
            draw_legend(&legend, &entries, font * 0.85)
        })
        .map_err(|m| figure_error(path, m))?;
    canvas.save(path)
}

/// Axes of one panel (ticks near zero print as `0`, not as rounding noise such as `1e-17`).
fn mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    y_desc: &str,
    font: f64,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let tick = |v: &f64| if v.abs() < 1e-9 { "0".to_string() } else { short_float(*v) };
    chart
        .configure_mesh()
        .x_desc("effect size (planted atrophy)")
        .y_desc(y_desc)
        .x_labels(8)
        .x_label_formatter(&tick)
        .y_labels(6)
        .y_label_formatter(&tick)
        .label_style(text_style(font * 0.8, BLACK))
        .axis_desc_style(text_style(font * 0.85, BLACK))
        .light_line_style(RGBColor(244, 244, 244))
        .draw()?;
    Ok(())
}

/// A vertical legend: a line (dashed for `true`) and a name per entry, from the top of `area`.
pub(super) fn draw_legend(area: &Area<'_>, entries: &[(String, RGBColor, bool)], px: f64) -> DrawResult {
    let (w, _) = area.dim_in_pixel();
    let glyph = (px * 1.8) as i32;
    let gap = (px * 0.5) as i32;
    let step = (px * 1.6) as i32;
    let x0 = (px * 0.5) as i32;
    let mut y = (px * 4.0) as i32;
    for (name, color, dashed) in entries {
        if *dashed {
            let d = (glyph / 5).max(2);
            for k in [0, 2, 4] {
                area.draw(&PathElement::new(vec![(x0 + k * d, y), (x0 + (k + 1) * d, y)], color.stroke_width(2)))?;
            }
        } else {
            area.draw(&PathElement::new(vec![(x0, y), (x0 + glyph, y)], color.stroke_width(3)))?;
            area.draw(&Circle::new((x0 + glyph / 2, y), 4, color.filled()))?;
        }
        let max = w.saturating_sub((x0 + glyph + gap) as u32 + 4);
        area.draw(&Text::new(
            fit_text(area, name, px, max),
            (x0 + glyph + gap, y),
            text_style(px, BLACK).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        y += step;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{non_white, out_path, read_png};
    use super::*;
    use crate::sweep::{ClassificationSummary, MethodMass};

    fn point(effect: f64, bacc: f64, mass: f64) -> SweepPoint {
        let s = ClassificationSummary {
            balanced_accuracy: bacc,
            balanced_accuracy_sd: 0.08,
            balanced_accuracy_pooled: bacc,
            balanced_accuracy_ci_low: bacc - 0.1,
            balanced_accuracy_ci_high: bacc + 0.1,
            ci_level: 0.95,
            roc_auc: bacc,
            roc_auc_sd: 0.05,
        };
        SweepPoint {
            effect_size: effect,
            cv: s,
            holdout: s,
            mass: ["occlusion", "grad-cam"]
                .iter()
                .enumerate()
                .map(|(k, m)| MethodMass {
                    method: (*m).into(),
                    trained: mass / (k + 1) as f64,
                    random: 0.05,
                    chance: 0.05,
                })
                .collect(),
            truth: "planted".into(),
            seconds: 1.0,
        }
    }

    #[test]
    fn sweep_chart_draws_both_panels() {
        let dir = tempfile::tempdir().unwrap();
        let p = out_path(dir.path(), "sweep.png");
        let pts = [point(0.0, 0.5, 0.05), point(0.5, 0.7, 0.2), point(1.0, 0.85, 0.4), point(2.0, 0.95, f64::NAN)];
        sweep_chart(&pts, (1500, 650), &p).unwrap();
        let (w, h, rgb) = read_png(&p);
        assert_eq!((w, h), (1500, 650));
        // the CV line is drawn in palette(0) blue in the left half, the second method (grad-cam)
        // in its own colour in the right half
        let count = |c: RGBColor, left: bool| {
            rgb.chunks(3)
                .enumerate()
                .filter(|(i, px)| ((*i as u32 % w) < w / 2) == left && px[..] == [c.0, c.1, c.2])
                .count()
        };
        assert!(count(palette(0), true) > 200, "no CV line");
        assert!(count(method_colour("grad-cam"), false) > 100, "no second method line");
        assert!(non_white(&rgb) > 10_000);
    }

    #[test]
    fn empty_and_all_nan_sweeps_still_draw() {
        let dir = tempfile::tempdir().unwrap();
        sweep_chart(&[], (800, 400), &dir.path().join("a.png")).unwrap();
        let mut p = point(0.0, f64::NAN, f64::NAN);
        p.mass.clear();
        sweep_chart(&[p], (800, 400), &dir.path().join("b.png")).unwrap();
        assert!(non_white(&read_png(&dir.path().join("b.png")).2) > 1000);
    }
}
