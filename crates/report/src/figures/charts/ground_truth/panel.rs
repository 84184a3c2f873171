//! Drawing [`ground_truth_chart`](super::ground_truth_chart): the legend strip and one panel per
//! metric.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{CHANCE_COLOR, GtPanel, darker, model_label};
use crate::figures::charts::widest;
use crate::figures::{Area, DrawResult, NOTE, palette, short_float, text_style};

/// The legend strip of [`ground_truth_chart`](super::ground_truth_chart): one box per model, the
/// whisker, and the chance line when drawn, centred in `area` (the text shrinks when the strip
/// is too narrow).
pub(super) fn draw_gt_legend(
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

/// Draws one panel of [`ground_truth_chart`](super::ground_truth_chart) in `area`, under its
/// caption (`caption_lines` lines high, so that the panels of a row line up), and returns the
/// pixel row (y) of the centre of each of its rows, for the row labels.
pub(super) fn gt_panel(
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
