//! The figures of the sanity and faithfulness checks: the cascading model-parameter
//! randomisation test (Adebayo et al. 2018; similarities from [`crate::similarity`]) and the
//! deletion curves (Samek et al. 2017; orders and AOPC in [`crate::faithfulness`]).

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use polars::prelude::DataFrame;

use super::charts::{distinct, render, widest};
use super::sweep::draw_legend;
use super::{Area, DrawResult, NOTE, base_font, draw_message, fit_text, method_colour, short_float, text_style};
use crate::error::{ReportError, Result};
use crate::tables::{column_f64, column_str, has_column};

/// Where a method's maps are flagged as insensitive to the model's weights: similarity to the
/// trained model's map still above this after randomisation (the threshold of
/// [`crate::sanity`]'s verdicts, so the figure and the tables agree).
const FLAG_THRESHOLD: f64 = crate::sanity::RANDOMISATION_THRESHOLD;

/// Grey of the threshold and the random-ordering lines.
const GREY: RGBColor = RGBColor(110, 110, 110);

/// A chart with both axes in `f64`.
type Chart<'a, 'b> = ChartContext<'a, super::text::TextBitMap<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A column that may be absent: `None` without it.
fn optional_f64(df: &DataFrame, table: &str, name: &str) -> Result<Option<Vec<f64>>> {
    if has_column(df, name) { column_f64(df, table, name).map(Some) } else { Ok(None) }
}

/// `lo` and `hi` columns when the table has both, `None` when it has neither; an error naming
/// the missing one when it has only one.
fn optional_bounds(df: &DataFrame, table: &str, lo: &str, hi: &str) -> Result<Option<(Vec<f64>, Vec<f64>)>> {
    match (optional_f64(df, table, lo)?, optional_f64(df, table, hi)?) {
        (Some(l), Some(h)) => Ok(Some((l, h))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ReportError::column(table, hi, format!("missing while `{lo}` is present"))),
        (None, Some(_)) => Err(ReportError::column(table, lo, format!("missing while `{hi}` is present"))),
    }
}

/// The runs of consecutive points (in x order) whose y is finite: a line breaks at a gap.
fn finite_runs(pts: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    for &p in pts {
        if p.0.is_finite() && p.1.is_finite() {
            current.push(p);
        } else if !current.is_empty() {
            runs.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// One series of a panel: (x, mean, low, high) per point in x order; NaN where missing.
type Series = Vec<(f64, f64, f64, f64)>;

/// Draws a series: a translucent band between low and high where they and the mean are finite, then the mean
/// as a line with markers (solid) or a dashed line (`dashed`).
fn draw_series(chart: &mut Chart<'_, '_>, s: &Series, color: RGBColor, dashed: bool, font: f64) -> DrawResult {
    let band: Vec<Option<(f64, f64, f64)>> =
        s.iter().map(|p| [p.0, p.1, p.2, p.3].iter().all(|v| v.is_finite()).then_some((p.0, p.2, p.3))).collect();
    for run in band.split(Option::is_none).filter(|r| !r.is_empty()) {
        let run: Vec<(f64, f64, f64)> = run.iter().flatten().copied().collect();
        if let [(x, lo, hi)] = run[..] {
            // a lone point: an error bar
            chart.draw_series(std::iter::once(PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(2))))?;
            continue;
        }
        let polygon: Vec<(f64, f64)> =
            run.iter().map(|p| (p.0, p.2)).chain(run.iter().rev().map(|p| (p.0, p.1))).collect();
        chart.draw_series(std::iter::once(Polygon::new(polygon, color.mix(0.15).filled())))?;
    }
    let mean: Vec<(f64, f64)> = s.iter().map(|p| (p.0, p.1)).collect();
    for run in finite_runs(&mean) {
        if dashed {
            let dash = ((font * 0.5) as u32).max(4);
            chart.draw_series(DashedLineSeries::new(run.clone(), dash, dash, color.stroke_width(2)))?;
        } else {
            chart.draw_series(LineSeries::new(run.clone(), color.stroke_width(2)))?;
        }
        let r = if dashed { 3 } else { 4 };
        chart.draw_series(run.iter().map(|&p| Circle::new(p, r, color.filled())))?;
    }
    Ok(())
}

/// Smallest and largest finite value of the series (means and bounds), if any.
fn data_range(series: &[Series]) -> Option<(f64, f64)> {
    let values = series.iter().flatten().flat_map(|p| [p.1, p.2, p.3]).filter(|v| v.is_finite());
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Tick labels that print values near zero as `0`, not as rounding noise.
fn tick(v: &f64) -> String {
    if v.abs() < 1e-9 { "0".to_string() } else { short_float(*v) }
}

/// One panel of the randomisation chart: similarity per randomisation step, one series per
/// method (in `colours`, one per series), and with `threshold` the flag threshold dashed (only
/// the Spearman panel: the verdict of [`crate::sanity`] reads the Spearman correlation alone).
/// Step names label the x axis, turned upright when they do not fit side by side. `root` is the
/// whole canvas (labels are placed in its pixel coordinates).
#[allow(clippy::too_many_arguments)]
fn similarity_panel(
    root: &Area<'_>,
    area: &Area<'_>,
    caption: &str,
    steps: &[String],
    series: &[Series],
    colours: &[RGBColor],
    threshold: bool,
    font: f64,
) -> DrawResult {
    let (y_lo, y_hi) = match data_range(series) {
        Some((lo, hi)) => ((lo - 0.05).min(-0.2), (hi + 0.05).max(1.0)),
        None => (-0.2, 1.0),
    };
    let n = steps.len().max(1);
    let (x_lo, x_hi) = (-0.5, n as f64 - 0.5);
    let label_px = font * 0.8;
    let margin = (font * 0.8) as u32;
    let y_area = (font * 3.6) as u32;
    let slot = area.dim_in_pixel().0.saturating_sub(y_area + 2 * margin) / n as u32;
    let wide = widest(root, steps, label_px);
    let upright = wide > slot * 9 / 10;
    let tick_len = (font * 0.4) as i32;
    let x_area = if upright { wide + (font * 2.4) as u32 } else { (font * 3.0) as u32 };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, text_style(font, BLACK))
        .margin(margin)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_desc("randomised up to this layer (from the top)")
        .y_desc("similarity to the trained model's map")
        .y_labels(7)
        .y_label_formatter(&tick)
        .label_style(text_style(label_px, BLACK))
        .axis_desc_style(text_style(font * 0.85, BLACK))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(230, 230, 230))
        .draw()?;
    // the step names, one per position, below the axis
    for (i, step) in steps.iter().enumerate() {
        let x = i as f64;
        chart.draw_series(std::iter::once(PathElement::new(vec![(x, y_lo), (x, y_hi)], RGBColor(238, 238, 238))))?;
        let (px, py) = chart.backend_coord(&(x, y_lo));
        root.draw(&PathElement::new(vec![(px, py), (px, py + tick_len)], BLACK))?;
        let at = (px, py + tick_len + 2);
        let style = if upright {
            text_style(label_px, BLACK).transform(FontTransform::Rotate270).pos(Pos::new(HPos::Right, VPos::Center))
        } else {
            text_style(label_px, BLACK).pos(Pos::new(HPos::Center, VPos::Top))
        };
        let text = if upright { step.clone() } else { fit_text(root, step, label_px, slot.max(1)) };
        root.draw(&Text::new(text, at, style))?;
    }
    if y_lo < 0.0 {
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(x_lo, 0.0), (x_hi, 0.0)], RGBColor(190, 190, 190))))?;
    }
    if threshold {
        let dash = ((font * 0.5) as u32).max(4);
        chart.draw_series(DashedLineSeries::new(
            vec![(x_lo, FLAG_THRESHOLD), (x_hi, FLAG_THRESHOLD)],
            dash,
            dash,
            GREY.stroke_width(2),
        ))?;
        let (tx, ty) = chart.backend_coord(&(x_hi, FLAG_THRESHOLD));
        root.draw(&Text::new(
            "flag threshold",
            (tx - (font * 0.3) as i32, ty - (font * 0.3) as i32),
            text_style(font * 0.75, GREY).pos(Pos::new(HPos::Right, VPos::Bottom)),
        ))?;
    }
    for (s, &c) in series.iter().zip(colours) {
        draw_series(&mut chart, s, c, false, font)?;
    }
    if series.iter().flatten().all(|p| !p.1.is_finite()) {
        let (w, h) = area.dim_in_pixel();
        area.draw(&Text::new(
            "no finite similarity",
            (w as i32 / 2, h as i32 / 2),
            text_style(font, NOTE).pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    }
    Ok(())
}

/// The cascading randomisation figure of Adebayo et al. (2018) from a table with one row per
/// method and randomisation step: columns `method`, `step` (text, such as `original`,
/// `dense_3`, `dense_2`, …, `conv1`; the x axis keeps their order of first appearance in the
/// table), `spearman_mean` and `ssim_mean` (mean similarity of the map after randomising up to
/// that layer to the trained model's map), and optionally `spearman_lo` / `spearman_hi` and
/// `ssim_lo` / `ssim_hi` (an interval, drawn as a translucent band, or an error bar at a lone
/// point).
///
/// Two panels side by side (Spearman rank correlation, SSIM), one line per method (legend on
/// the right), a dashed line at 0.5 on the Spearman panel marking the flag threshold (the
/// verdict reads the Spearman correlation only, so the SSIM panel has none); y runs over [−0.2, 1] or wider
/// where the data need it. NaN values break a line; a method with no finite similarity at any
/// step (its trained maps are constant, so nothing is defined) is left off the panels and the
/// legend, and named in a note under it. An empty table gives a figure that says so. Errors on
/// a missing column, on only one of a pair of bounds, and on a method with the same step twice
/// (naming them).
pub fn randomisation_chart(df: &DataFrame, size: (u32, u32), path: &Path) -> Result<()> {
    const TABLE: &str = "randomisation similarity";
    let font = base_font(size);
    let title = "Model-parameter randomisation: similarity to the trained model's map";
    if df.height() == 0 {
        return render(size, path, |root| {
            let body = root.titled(&fit_text(root, title, font * 1.2, size.0), text_style(font * 1.2, BLACK))?;
            draw_message(&body, "no data: the randomisation table is empty", font)
        });
    }
    let method = column_str(df, TABLE, "method")?;
    let step = column_str(df, TABLE, "step")?;
    let metrics = [("Spearman rank correlation", "spearman"), ("SSIM (maps rescaled to [0, 1])", "ssim")];
    let mut columns = Vec::new();
    for (_, m) in metrics {
        let mean = column_f64(df, TABLE, &format!("{m}_mean"))?;
        let bounds = optional_bounds(df, TABLE, &format!("{m}_lo"), &format!("{m}_hi"))?;
        columns.push((mean, bounds));
    }
    let methods = distinct(&method);
    let steps = distinct(&step);
    // row of (method, step), one at most
    let mut row_of: Vec<Vec<Option<usize>>> = vec![vec![None; steps.len()]; methods.len()];
    for i in 0..df.height() {
        let (Some(m), Some(s)) =
            (methods.iter().position(|x| x == &method[i]), steps.iter().position(|x| x == &step[i]))
        else {
            continue;
        };
        if row_of[m][s].is_some() {
            return Err(ReportError::column(
                TABLE,
                "step",
                format!("method `{}` has step `{}` twice; expected one row per method and step", method[i], step[i]),
            ));
        }
        row_of[m][s] = Some(i);
    }
    let series: Vec<Vec<Series>> = columns
        .iter()
        .map(|(mean, bounds)| {
            row_of
                .iter()
                .map(|rows| {
                    rows.iter()
                        .enumerate()
                        .map(|(s, r)| {
                            let get = |v: &[f64]| r.map_or(f64::NAN, |i| v[i]);
                            let (lo, hi) = bounds.as_ref().map_or((f64::NAN, f64::NAN), |(l, h)| (get(l), get(h)));
                            (s as f64, get(mean), lo, hi)
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    // a method with no defined similarity anywhere (its trained maps are constant) is left off
    let drawn: Vec<usize> =
        (0..methods.len()).filter(|&k| series.iter().any(|panel| panel[k].iter().any(|p| p.1.is_finite()))).collect();
    let left_off: Vec<&str> = (0..methods.len()).filter(|k| !drawn.contains(k)).map(|k| methods[k].as_str()).collect();
    let series: Vec<Vec<Series>> =
        series.into_iter().map(|panel| drawn.iter().map(|&k| panel[k].clone()).collect()).collect();
    let methods: Vec<String> = drawn.iter().map(|&k| methods[k].clone()).collect();
    let has_band = columns.iter().any(|(_, b)| b.is_some());
    render(size, path, |root| {
        let body = root.titled(&fit_text(root, title, font * 1.2, size.0), text_style(font * 1.2, BLACK))?;
        let legend_w = (font * 12.0) as u32;
        let (w, _) = body.dim_in_pixel();
        let (panels, legend) = body.split_horizontally(w.saturating_sub(legend_w));
        let (pw, _) = panels.dim_in_pixel();
        let (left, right) = panels.split_horizontally(pw / 2);
        let colours: Vec<RGBColor> = methods.iter().map(|m| method_colour(m)).collect();
        for ((area, (caption, metric)), s) in [left, right].iter().zip(metrics).zip(&series) {
            similarity_panel(root, area, caption, &steps, s, &colours, metric == "spearman", font)?;
        }
        let mut entries: Vec<(String, RGBColor, bool)> =
            methods.iter().map(|m| (m.clone(), method_colour(m), false)).collect();
        entries.push((format!("flag threshold ({FLAG_THRESHOLD})"), GREY, true));
        draw_legend(&legend, &entries, font * 0.85)?;
        let (lw, lh) = legend.dim_in_pixel();
        if has_band {
            legend.draw(&Text::new(
                "bands: 95 % interval",
                ((font * 0.5) as i32, lh as i32 - (font * 4.0) as i32),
                text_style(font * 0.75, NOTE).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        if !left_off.is_empty() {
            // one line each, above the band note: "not drawn (constant maps):", then the methods
            let width = lw.saturating_sub((font * 0.5) as u32).max(1);
            let lines: Vec<String> = std::iter::once("not drawn (constant maps):".to_string())
                .chain(left_off.iter().map(|m| format!("  {m}")))
                .collect();
            let top = lh as i32 - (font * (5.2 + 1.0 * lines.len() as f64)) as i32;
            for (i, line) in lines.iter().enumerate() {
                legend.draw(&Text::new(
                    fit_text(root, line, font * 0.7, width),
                    ((font * 0.5) as i32, top + (font * 1.0 * i as f64) as i32),
                    text_style(font * 0.7, NOTE).pos(Pos::new(HPos::Left, VPos::Center)),
                ))?;
            }
        }
        Ok(())
    })
}

/// The end of a percentage axis that shows `max` (in %): the next multiple of 10 above 10 %, the
/// next whole percent below, at least 1 and at most 100.
fn nice_ceiling(max: f64) -> f64 {
    let step = if max > 10.0 { 10.0 } else { 1.0 };
    // 0.2 × 100 is 20.000000000000004: a rounding error above a whole step is not another step.
    ((max / step - 1e-9).ceil() * step).clamp(1.0, 100.0)
}

/// `c` halfway to white: a method's random-order line beside its relevance line.
fn lighter(c: RGBColor) -> RGBColor {
    let half = |v: u8| ((u16::from(v) + 255) / 2) as u8;
    RGBColor(half(c.0), half(c.1), half(c.2))
}

/// The `ordering` of the relevance-ordered deletion curves.
const RELEVANCE: &str = "relevance";
/// The `ordering` of the random-ordering baseline.
const RANDOM: &str = "random";

/// Deletion curves (Samek et al. 2017) from a table with one row per method, ordering and
/// deletion step: columns `method`, `ordering` (`relevance`: voxels deleted most relevant first;
/// `random`: the same voxels in random order), `fraction` (the share of the deletable voxels
/// deleted, in [0, 1], 0 for the unperturbed input; drawn in %) and `score_mean` (the mean
/// model output for the explained class, P(target)), optionally `score_lo` / `score_hi` (a band
/// around the relevance-ordered lines).
///
/// One solid line per method for the relevance ordering. The random ordering is drawn as **one
/// dashed grey line** when every method's random curve is the same (a random order does not
/// depend on the map, so with [`crate::faithfulness::random_order`]'s seeded permutation of one
/// mask it is, as long as every method's curves cover the same scans), and otherwise as one
/// dashed line per method in its colour, so a method is always compared with the random order
/// on its own scans. A curve falling below its random line means deleting by relevance hurts
/// the model more than chance. The y axis spans the data (a fall of 10⁻⁴ in P(target) stays
/// visible), inside [0, 1].
///
/// NaN values break a line; an empty table gives a figure that says so. Errors on a missing
/// column, an `ordering` other than `relevance` / `random`, or a finite fraction outside [0, 1]
/// (naming the value).
///
/// The x axis reads "share of the brain deleted (%)": the curves delete voxels. For curves that
/// delete whole atlas regions, use [`deletion_chart_for`] with [`DeletionUnit::Regions`].
pub fn deletion_chart(df: &DataFrame, size: (u32, u32), path: &Path) -> Result<()> {
    deletion_chart_for(df, DeletionUnit::Voxels, size, path)
}

/// What a deletion curve deletes at each step; it names the figure's title and x axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionUnit {
    /// Voxels of the brain mask; `fraction` is the share of the brain's voxels deleted.
    Voxels,
    /// Whole atlas regions, most relevant first, the last one cut; `fraction` is the share of
    /// the atlas voxels inside the brain deleted (every ordering deletes as many).
    Regions,
}

impl DeletionUnit {
    fn title(self) -> &'static str {
        match self {
            DeletionUnit::Voxels => "Deletion curves: voxels removed most relevant first, against random order",
            DeletionUnit::Regions => "Deletion curves: atlas regions removed most relevant first, against random order",
        }
    }

    fn x_label(self) -> &'static str {
        match self {
            DeletionUnit::Voxels => "share of the brain deleted (%)",
            DeletionUnit::Regions => "atlas voxels deleted, whole regions first (%)",
        }
    }
}

/// [`deletion_chart`] for curves that delete `unit`s (voxels or whole atlas regions): the same
/// table, lines and errors, with the title and the x axis naming what was deleted.
pub fn deletion_chart_for(df: &DataFrame, unit: DeletionUnit, size: (u32, u32), path: &Path) -> Result<()> {
    const TABLE: &str = "deletion curves";
    let font = base_font(size);
    let title = unit.title();
    if df.height() == 0 {
        return render(size, path, |root| {
            let body = root.titled(&fit_text(root, title, font * 1.2, size.0), text_style(font * 1.2, BLACK))?;
            draw_message(&body, "no data: the deletion table is empty", font)
        });
    }
    let method = column_str(df, TABLE, "method")?;
    let ordering = column_str(df, TABLE, "ordering")?;
    let fraction = column_f64(df, TABLE, "fraction")?;
    let score = column_f64(df, TABLE, "score_mean")?;
    let bounds = optional_bounds(df, TABLE, "score_lo", "score_hi")?;
    if let Some(o) = ordering.iter().find(|o| o.as_str() != RELEVANCE && o.as_str() != RANDOM) {
        return Err(ReportError::column(
            TABLE,
            "ordering",
            format!("holds `{o}`, expected `{RELEVANCE}` or `{RANDOM}`"),
        ));
    }
    if let Some(f) = fraction.iter().find(|f| f.is_finite() && !(0.0..=1.0).contains(*f)) {
        return Err(ReportError::column(
            TABLE,
            "fraction",
            format!("holds {f}, expected shares in [0, 1] (the figure shows them in %)"),
        ));
    }
    let methods = distinct(&method);
    let rows = |m: Option<&str>, o: &str| -> Vec<usize> {
        let mut r: Vec<usize> = (0..df.height())
            .filter(|&i| ordering[i] == o && m.is_none_or(|m| method[i] == m) && fraction[i].is_finite())
            .collect();
        r.sort_by(|&a, &b| fraction[a].total_cmp(&fraction[b]));
        r
    };
    let curves: Vec<Series> = methods
        .iter()
        .map(|m| {
            rows(Some(m), RELEVANCE)
                .into_iter()
                .map(|i| {
                    let (lo, hi) = bounds.as_ref().map_or((f64::NAN, f64::NAN), |(l, h)| (l[i], h[i]));
                    (100.0 * fraction[i], score[i], lo, hi)
                })
                .collect()
        })
        .collect();
    // each method's random-order curve (over the scans of its relevance curve)
    let randoms: Vec<Series> = methods
        .iter()
        .map(|m| {
            rows(Some(m), RANDOM).into_iter().map(|i| (100.0 * fraction[i], score[i], f64::NAN, f64::NAN)).collect()
        })
        .collect();
    // one pooled grey line where they all coincide (the same scans), else one per method
    let finite_randoms: Vec<&Series> = randoms.iter().filter(|r| r.iter().any(|p| p.1.is_finite())).collect();
    let same = |a: &Series, b: &Series| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(p, q)| (p.0 - q.0).abs() < 1e-9 && (p.1 - q.1).abs() <= 1e-12 * p.1.abs().max(1.0))
    };
    let pooled = finite_randoms.windows(2).all(|w| same(w[0], w[1]));
    let random: Series = match finite_randoms.first() {
        Some(r) if pooled => (*r).clone(),
        _ => Vec::new(),
    };
    let has_random = !finite_randoms.is_empty();
    // y to the data (a fall of 1e-4 in P(target) is the whole effect on a weak model), with a
    // little room; at least a span of 1e-6 so a flat line still has an axis
    let all: Vec<Series> = curves.iter().chain(randoms.iter()).cloned().collect();
    let (y_lo, y_hi) = match data_range(&all) {
        Some((lo, hi)) => {
            let pad = ((hi - lo) * 0.08).max(5e-7);
            ((lo - pad).max(0.0), (hi + pad).min(1.0))
        }
        None => (0.0, 1.0),
    };
    // x up to the largest share deleted, rounded up (curves that stop at 30 % do not leave most
    // of the figure empty)
    let x_max = fraction.iter().copied().filter(|f| f.is_finite()).fold(0.0f64, f64::max) * 100.0;
    let x_hi = nice_ceiling(x_max);
    let x_pad = x_hi * 0.02;
    render(size, path, |root| {
        let body = root.titled(&fit_text(root, title, font * 1.2, size.0), text_style(font * 1.2, BLACK))?;
        let legend_w = (font * 16.0) as u32;
        let (w, _) = body.dim_in_pixel();
        let (plot, legend) = body.split_horizontally(w.saturating_sub(legend_w));
        let mut chart = ChartBuilder::on(&plot)
            .caption("mean model output for the explained class", text_style(font, BLACK))
            .margin((font * 0.8) as u32)
            .x_label_area_size((font * 2.8) as u32)
            .y_label_area_size((font * 3.6) as u32)
            .build_cartesian_2d(-x_pad..x_hi + x_pad, y_lo..y_hi)?;
        chart
            .configure_mesh()
            .x_desc(unit.x_label())
            .y_desc("mean P(target)")
            .x_labels(11)
            .x_label_formatter(&tick)
            .y_labels(6)
            .y_label_formatter(&tick)
            .label_style(text_style(font * 0.8, BLACK))
            .axis_desc_style(text_style(font * 0.85, BLACK))
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(230, 230, 230))
            .draw()?;
        if pooled {
            draw_series(&mut chart, &random, GREY, true, font)?;
        } else {
            // the random curve most methods share in grey, the others in their method's colour
            for (k, r) in randoms.iter().enumerate() {
                let shared = randoms.iter().filter(|o| same(o, r)).count() > 1;
                draw_series(
                    &mut chart,
                    r,
                    if shared { GREY } else { lighter(method_colour(&methods[k])) },
                    true,
                    font,
                )?;
            }
        }
        for (m, c) in methods.iter().zip(&curves) {
            draw_series(&mut chart, c, method_colour(m), false, font)?;
        }
        if !has_random && curves.iter().flatten().all(|p| !p.1.is_finite()) {
            let (pw, ph) = plot.dim_in_pixel();
            plot.draw(&Text::new(
                "no finite scores",
                (pw as i32 / 2, ph as i32 / 2),
                text_style(font, NOTE).pos(Pos::new(HPos::Center, VPos::Center)),
            ))?;
        }
        let mut entries: Vec<(String, RGBColor, bool)> = methods
            .iter()
            .zip(&curves)
            .map(|(m, c)| {
                let name = if c.iter().any(|p| p.1.is_finite()) { m.clone() } else { format!("{m} (no curve)") };
                (name, method_colour(m), false)
            })
            .collect();
        if has_random && pooled {
            entries.push(("random order (all methods)".into(), GREY, true));
        } else if has_random {
            entries.push(("random order (same scans as".into(), GREY, true));
            entries.push(("  its method; grey: shared)".into(), GREY, true));
        }
        draw_legend(&legend, &entries, font * 0.85)
    })
}

#[cfg(test)]
mod tests {
    use polars::prelude::{Column, DataFrame};

    use super::super::test_util::{non_white, out_path, read_png};
    use super::*;

    /// The methods of the test tables; each has its own colour.
    const METHODS: [&str; 3] = ["occlusion", "grad-cam", "lrp-epsilon"];

    const STEPS: [&str; 6] = ["original", "dense_3", "dense_2", "dense_1", "conv2", "conv1"];

    fn randomisation_table(with_bounds: bool) -> DataFrame {
        let methods = METHODS;
        let (mut m, mut s, mut sp, mut ss) = (vec![], vec![], vec![], vec![]);
        for (k, method) in methods.iter().enumerate() {
            for (i, step) in STEPS.iter().enumerate() {
                m.push(*method);
                s.push(*step);
                // occlusion stays alike (a failing method), the others fall to about 0
                let decay = if k == 0 { 0.9 - 0.05 * i as f64 } else { (1.0 - 0.35 * i as f64).max(0.05 * k as f64) };
                sp.push(if k == 2 && i == 3 { f64::NAN } else { decay });
                ss.push(decay * 0.8 + 0.1);
            }
        }
        let n = m.len();
        let mut cols = vec![
            Column::new("method".into(), m),
            Column::new("step".into(), s),
            Column::new("spearman_mean".into(), sp.clone()),
            Column::new("ssim_mean".into(), ss.clone()),
        ];
        if with_bounds {
            for (name, v) in [("spearman", &sp), ("ssim", &ss)] {
                cols.push(Column::new(format!("{name}_lo").into(), v.iter().map(|x| x - 0.1).collect::<Vec<_>>()));
                cols.push(Column::new(format!("{name}_hi").into(), v.iter().map(|x| x + 0.1).collect::<Vec<_>>()));
            }
        }
        DataFrame::new(n, cols).unwrap()
    }

    /// Pixels of exactly `c` in the left or right half of the picture.
    fn count(rgb: &[u8], w: u32, c: RGBColor, left: bool) -> usize {
        rgb.chunks(3)
            .enumerate()
            .filter(|(i, px)| ((*i as u32 % w) < w / 2) == left && px[..] == [c.0, c.1, c.2])
            .count()
    }

    #[test]
    fn randomisation_chart_draws_both_panels() {
        let dir = tempfile::tempdir().unwrap();
        for (bounds, name) in [(true, "randomisation.png"), (false, "randomisation_plain.png")] {
            let p = out_path(dir.path(), name);
            randomisation_chart(&randomisation_table(bounds), (1500, 600), &p).unwrap();
            let (w, h, rgb) = read_png(&p);
            assert_eq!((w, h), (1500, 600));
            for m in METHODS {
                assert!(count(&rgb, w, method_colour(m), true) > 100, "{m} missing on the left");
                assert!(count(&rgb, w, method_colour(m), false) > 100, "{m} missing on the right");
            }
            // the flag threshold belongs to the Spearman panel (left) only: the longest run of
            // its grey along one row, left of the legend (the right-most 200 px, which shows a
            // dashed sample); text antialiasing gives only scattered grey pixels
            let grey_row = |x0: u32, x1: u32| {
                rgb.chunks(3 * w as usize)
                    .map(|row| {
                        row.chunks(3)
                            .enumerate()
                            .filter(|(x, px)| (x0..x1).contains(&(*x as u32)) && px[..] == [GREY.0, GREY.1, GREY.2])
                            .count()
                    })
                    .max()
                    .unwrap_or(0)
            };
            assert!(grey_row(0, w / 2) > 200, "no threshold line on the Spearman panel");
            assert!(grey_row(w / 2, w - 200) < 50, "threshold line drawn on the SSIM panel");
        }
        // long step names in a narrow figure are turned upright, and the panels still draw
        let mut t = randomisation_table(false);
        let long: Vec<String> =
            column_str(&t, "t", "step").unwrap().iter().map(|s| format!("{s}_randomised")).collect();
        t.with_column(Column::new("step".into(), long)).unwrap();
        let p = out_path(dir.path(), "randomisation_upright.png");
        randomisation_chart(&t, (900, 500), &p).unwrap();
        let (w, h, rgb) = read_png(&p);
        assert_eq!((w, h), (900, 500));
        let occlusion = method_colour("occlusion");
        assert!(count(&rgb, w, occlusion, true) > 100 && count(&rgb, w, occlusion, false) > 100);
    }

    #[test]
    fn randomisation_chart_handles_empty_nan_and_bad_tables() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.png");
        randomisation_chart(&DataFrame::empty(), (600, 300), &p).unwrap();
        let (w, h, rgb) = read_png(&p);
        assert_eq!((w, h), (600, 300));
        assert!(non_white(&rgb) > 200, "no message drawn");
        // every value NaN: drawn, with a note
        let mut t = randomisation_table(false);
        for c in ["spearman_mean", "ssim_mean"] {
            t.with_column(Column::new(c.into(), vec![f64::NAN; t.height()])).unwrap();
        }
        randomisation_chart(&t, (900, 400), &out_path(dir.path(), "randomisation_nan.png")).unwrap();
        // a missing column and a lone bound are named
        let e = randomisation_chart(&t.drop("ssim_mean").unwrap(), (900, 400), &p).unwrap_err().to_string();
        assert!(e.contains("ssim_mean"), "{e}");
        let mut lone = randomisation_table(false);
        lone.with_column(Column::new("ssim_lo".into(), vec![0.0; lone.height()])).unwrap();
        let e = randomisation_chart(&lone, (900, 400), &p).unwrap_err().to_string();
        assert!(e.contains("ssim_hi"), "{e}");
        let twice = randomisation_table(false).vstack(&randomisation_table(false)).unwrap();
        let e = randomisation_chart(&twice, (900, 400), &p).unwrap_err().to_string();
        assert!(e.contains("twice") && e.contains("original"), "{e}");
    }

    fn deletion_table() -> DataFrame {
        let fractions = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];
        let (mut m, mut o, mut f, mut s) = (vec![], vec![], vec![], vec![]);
        for (k, method) in METHODS.iter().enumerate() {
            for (ordering, speed) in [("relevance", 8.0 + 6.0 * k as f64), ("random", 1.5)] {
                for &x in &fractions {
                    m.push(*method);
                    o.push(ordering);
                    f.push(x);
                    s.push(0.5 + 0.4 * (-speed * x).exp());
                }
            }
        }
        let n = m.len();
        let lo: Vec<f64> = s.iter().map(|v| v - 0.04).collect();
        let hi: Vec<f64> = s.iter().map(|v| v + 0.04).collect();
        DataFrame::new(
            n,
            vec![
                Column::new("method".into(), m),
                Column::new("ordering".into(), o),
                Column::new("fraction".into(), f),
                Column::new("score_mean".into(), s),
                Column::new("score_lo".into(), lo),
                Column::new("score_hi".into(), hi),
            ],
        )
        .unwrap()
    }

    #[test]
    fn deletion_chart_draws_methods_and_the_pooled_random_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = out_path(dir.path(), "deletion.png");
        deletion_chart(&deletion_table(), (1000, 600), &p).unwrap();
        let (w, h, rgb) = read_png(&p);
        assert_eq!((w, h), (1000, 600));
        for m in METHODS {
            assert!(count(&rgb, w, method_colour(m), true) > 100, "{m} missing");
        }
        assert!(count(&rgb, w, GREY, true) > 50, "no random line");
    }

    #[test]
    fn the_deletion_axis_ends_just_above_the_largest_share() {
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(nice_ceiling(32.26), 40.0);
        assert_eq!(nice_ceiling(30.0), 30.0);
        // the largest share of the default steps, 0.2, as a percentage: 20.000000000000004
        assert_eq!(nice_ceiling(0.2 * 100.0), 20.0);
        assert_eq!(nice_ceiling(20.5), 30.0);
        assert_eq!(nice_ceiling(5.0), 5.0);
        assert_eq!(nice_ceiling(2.4), 3.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        // a curve that stops at 20 % spans most of the plot's width
        let mut t = deletion_table();
        let f: Vec<f64> = column_f64(&t, "t", "fraction").unwrap().iter().map(|x| x * 0.2).collect();
        t.with_column(Column::new("fraction".into(), f)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = out_path(dir.path(), "deletion_short.png");
        deletion_chart(&t, (1000, 600), &p).unwrap();
        let (w, h, rgb) = read_png(&p);
        // the legend (16 font sizes wide, font = 600 / 45 px) sits right of the plot: left out
        let plot_right = w - (16.0 * 600.0 / 45.0) as u32;
        let columns_with = |c: RGBColor| -> Vec<u32> {
            let mut xs: Vec<u32> = rgb
                .chunks(3)
                .enumerate()
                .filter(|(i, px)| px[..] == [c.0, c.1, c.2] && (*i as u32 % w) < plot_right)
                .map(|(i, _)| i as u32 % w)
                .collect();
            xs.sort_unstable();
            xs.dedup();
            xs
        };
        // the last method is drawn last, so no other line covers it
        let xs = columns_with(method_colour(METHODS[2]));
        let span = xs.last().unwrap() - xs.first().unwrap();
        assert!(span > w / 2, "the curve spans {span} of {w}×{h} px");
    }

    #[test]
    fn region_deletion_chart_names_regions_and_draws_the_same_lines() {
        let dir = tempfile::tempdir().unwrap();
        let voxels = out_path(dir.path(), "deletion_voxels_unit.png");
        let regions = out_path(dir.path(), "deletion_regions_unit.png");
        deletion_chart_for(&deletion_table(), DeletionUnit::Voxels, (1000, 600), &voxels).unwrap();
        deletion_chart_for(&deletion_table(), DeletionUnit::Regions, (1000, 600), &regions).unwrap();
        let (w, _, v) = read_png(&voxels);
        let (_, _, r) = read_png(&regions);
        for m in METHODS {
            assert!(count(&r, w, method_colour(m), true) > 100, "{m} missing");
        }
        // only the words differ: the title and the axis label
        assert_ne!(v, r);
        assert_ne!(DeletionUnit::Regions.x_label(), DeletionUnit::Voxels.x_label());
        assert!(DeletionUnit::Regions.x_label().contains("regions"));
        // deletion_chart is the voxel chart
        let plain = out_path(dir.path(), "deletion_plain_unit.png");
        deletion_chart(&deletion_table(), (1000, 600), &plain).unwrap();
        assert_eq!(read_png(&plain).2, v);
    }

    #[test]
    fn deletion_chart_handles_empty_nan_and_bad_tables() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.png");
        deletion_chart(&DataFrame::empty(), (600, 300), &p).unwrap();
        assert_eq!(read_png(&p).0, 600);
        let mut t = deletion_table();
        t.with_column(Column::new("score_mean".into(), vec![f64::NAN; t.height()])).unwrap();
        let nan = out_path(dir.path(), "deletion_nan.png");
        deletion_chart(&t, (800, 400), &nan).unwrap();
        assert!(non_white(&read_png(&nan).2) > 1000);
        let mut t = deletion_table();
        t.with_column(Column::new("fraction".into(), vec![5.0; t.height()])).unwrap();
        let e = deletion_chart(&t, (800, 400), &p).unwrap_err().to_string();
        assert!(e.contains("fraction") && e.contains('5'), "{e}");
        let mut t = deletion_table();
        t.with_column(Column::new("ordering".into(), vec!["inverse"; t.height()])).unwrap();
        let e = deletion_chart(&t, (800, 400), &p).unwrap_err().to_string();
        assert!(e.contains("inverse"), "{e}");
        let e = deletion_chart(&deletion_table().drop("score_mean").unwrap(), (800, 400), &p).unwrap_err();
        assert!(e.to_string().contains("score_mean"), "{e}");
    }
}
