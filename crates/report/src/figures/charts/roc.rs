//! ROC curves of a training run's test predictions, and the ROC points and AUC behind them.

use std::path::Path;

use plotters::prelude::*;
use polars::prelude::DataFrame;

use super::{distinct, render};
use crate::error::Result;
use crate::figures::{base_font, draw_message, palette, text_style};
use crate::tables::{column_f64, column_str, has_column};

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

use adni_data::run_tables::PredictionRow;
pub use adni_data::stats::roc_auc;

/// ROC curves of a training run's test predictions (`predictions.csv`: columns `fold`,
/// `true_label` (1 = AD), `p_ad`, and optionally `set`, of which only `test` rows are used), one
/// curve per fold and the pooled curve of all folds, AUC in the legend. A fold with one class
/// only is listed without a curve.
pub fn roc_curves(predictions: &DataFrame, size: (u32, u32), path: &Path) -> Result<()> {
    const TABLE: &str = "predictions";
    let fold = column_str(predictions, TABLE, PredictionRow::FOLD)?;
    let label = column_f64(predictions, TABLE, PredictionRow::TRUE_LABEL)?;
    let p_ad = column_f64(predictions, TABLE, PredictionRow::P_AD)?;
    let keep: Vec<bool> = if has_column(predictions, PredictionRow::SET) {
        column_str(predictions, TABLE, PredictionRow::SET)?.iter().map(|s| s == PredictionRow::TEST_SET).collect()
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

#[cfg(test)]
mod tests {
    use super::super::check_png;
    use super::*;
    use crate::figures::test_util::out_path;
    use polars::prelude::Column;

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
    fn roc_curves_render_from_training_predictions() {
        let tmp = tempfile::tempdir().unwrap();
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
}
