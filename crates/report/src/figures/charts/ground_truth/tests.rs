//! Tests of the ground-truth chart.

use std::path::PathBuf;

use plotters::prelude::*;
use polars::prelude::{Column, DataFrame};

use super::super::{check_png, distinct};
use super::{CHANCE_COLOR, ground_truth_chart};
use crate::figures::palette;
use crate::figures::test_util::{out_path, read_png};
use crate::tables::column_str;

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
    let path = package_dir().join("testdata/ground_truth_summary.csv");
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

/// This package's folder: cargo's run-time `CARGO_MANIFEST_DIR` (set by `cargo test` and `cargo
/// bench`), else the one compiled in. A target folder shared between two clones reuses a test
/// binary built in the other clone, whose compiled-in folder may be gone.
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
}
