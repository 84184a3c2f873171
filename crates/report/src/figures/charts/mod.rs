//! Charts from tables, one file per figure family: the top-region bars ([`regions`]), method
//! matrices ([`matrix`]), learning curves ([`learning`]), ROC curves ([`roc`]) and the
//! ground-truth scores ([`ground_truth`]). This file holds the helpers they (and
//! [`super::sanity`]) share.

mod ground_truth;
mod learning;
mod matrix;
mod regions;
mod roc;

use std::path::Path;

use plotters::prelude::*;

pub use ground_truth::ground_truth_chart;
pub use learning::learning_curves;
pub use matrix::{comparison_matrix, distance_matrix};
pub use regions::bar_chart_top_regions;
pub use roc::{roc_auc, roc_curves, roc_points};

use super::{Area, Canvas, DrawResult, figure_error, text_style};
use crate::error::Result;

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

/// Checks that the PNG at `path` has `size` and is not nearly blank.
#[cfg(test)]
fn check_png(path: &Path, size: (u32, u32)) {
    let (w, h, rgb) = super::test_util::read_png(path);
    assert_eq!((w, h), size);
    assert!(super::test_util::non_white(&rgb) > 1000, "{} is nearly blank", path.display());
}
