//! Linear baselines next to the CNN, on the same folds: a logistic regression (linfa) on a few
//! per-scan features, scored like the CNN (balanced accuracy, ROC AUC on each split's test scans).
//!
//! Two kinds of feature set:
//!
//! - **the ceiling**, `planted_regions`: the mean intensity of each planted (atrophy) region, left
//!   and right separately, and `planted_regions_relative`: the same means divided by the scan's
//!   median brain intensity (which takes out the scan's global intensity scale, a nuisance the
//!   synthetic cohort draws per scan). On a synthetic cohort these are close to what a model that
//!   knows where to look can use; a CNN far below them has not learnt the planted effect.
//! - **shortcut checks**, one whole-brain feature each (`mean_intensity`, `total_intensity`,
//!   `brain_volume`, `csf_volume`, `ventricle_volume`, `visit`) and all of them together
//!   (`all_whole_brain`). Each must stay near chance: mean balanced accuracy over the folds ≤
//!   [`SHORTCUT_LIMIT`], and mean ROC AUC ≤ the same limit (a feature can rank the classes well
//!   while every prediction falls on one side of the 0.5 threshold, which leaves the balanced
//!   accuracy at 0.5; an AUC *below* 0.5 under cross-validation is anti-learning on a small
//!   sample, not a readable label). One that does not means the label can be read off a whole-brain
//!   property. On a synthetic cohort that is a flaw of the generator; on real ADNI it is a
//!   confound (age, head size, scanner) to report beside the CNN.
//!
//! Features come from the preprocessed volume of each scan (NaN → 0, brain mask, downsampling;
//! before the z-score), on the model grid, with the run's atlas placed on that grid
//! ([`FeatureGeometry`]):
//!
//! - the brain is the brain mask (mask > 0.5), or, without a mask, the scan's non-zero voxels;
//! - `mean_intensity`, `total_intensity`: mean and sum of the voxel values in the brain;
//! - tissue vs CSF: a voxel is tissue when its value is at least [`TISSUE_FRACTION`] × the
//!   median value in the brain of that same scan (a robust, per-scan intensity scale, so a global
//!   intensity change moves no voxel across the split), CSF otherwise. `brain_volume` and
//!   `csf_volume` are their volumes in mL (they add up to the mask volume, so with one mask for
//!   every scan they score alike, as do `mean_intensity` and `total_intensity`; both of each pair
//!   are kept because they differ without a mask);
//! - `ventricle_volume`: volume in mL of the CSF voxels inside the atlas's ventricle regions;
//! - planted regions: mean voxel value over the region's voxels inside the brain (column named
//!   after the atlas region), and that mean ÷ the median value in the brain (`<region> / median`);
//! - `visit`: months since baseline (`Month_bl`) from the metadata table.
//!
//! Evaluation ([`evaluate`]): for each split, the model is fitted on every scan that is not a test
//! scan (training and any validation scans: a linear model needs no early stopping), features
//! standardised with the mean and population SD of those training scans only, then P(AD) is
//! predicted for the test scans; balanced accuracy uses the threshold 0.5. The logistic
//! regression is linfa's (L-BFGS, L2 penalty `alpha`/2·‖w‖² on the summed log-loss, intercept
//! unpenalised; [`LogisticSettings`]).
//!
//! Degenerate cases: a training set with one class only is an error naming the feature set and
//! the split (no classifier can be fitted); a feature that is constant over the training scans
//! is standardised to 0 (it carries no information there, and the model falls back to the
//! intercept); a test set with one class only gives NaN balanced accuracy and ROC AUC (both need
//! both classes); a non-finite feature value is an error naming the scan and the feature.

use std::collections::{BTreeMap, HashMap};

use adni_data::Grid;
use adni_data::atlas::{Atlas, Hemisphere, Region};
use adni_data::splits::{Split, SplitSet};
use linfa::prelude::{Dataset, Fit, ParamGuard};
use linfa_logistic::LogisticRegression;
use ndarray::{Array3, ArrayView3};
use polars::prelude::*;
use rayon::prelude::*;

use crate::error::{ReportError, Result};
use crate::tables::{column_f64, column_str};
use adni_data::stats::{mean_sd, roc_auc};

/// A voxel is tissue when its value is at least this fraction of the median value inside the
/// brain of the same scan, CSF otherwise (T1: CSF ≈ 0.35–0.45 of the brain's median, grey
/// matter ≈ 0.9).
pub const TISSUE_FRACTION: f64 = 0.6;

/// A shortcut check passes when its mean balanced accuracy and its mean ROC AUC over the
/// cross-validation folds are at most this (the issue's "near chance").
pub const SHORTCUT_LIMIT: f64 = 0.65;

/// P(AD) at or above this is an AD prediction (for the balanced accuracy).
pub const DECISION_THRESHOLD: f64 = 0.5;

/// The name of the hold-out split; every other split is a cross-validation fold.
pub const HOLDOUT_SPLIT: &str = "holdout";

/// Name of the ceiling feature set.
pub const PLANTED_REGIONS: &str = "planted_regions";
/// Name of the ceiling feature set on the planted regions relative to the scan's median.
pub const PLANTED_REGIONS_RELATIVE: &str = "planted_regions_relative";
/// Name of the set of every whole-brain feature.
pub const ALL_WHOLE_BRAIN: &str = "all_whole_brain";

/// The whole-brain features, each a shortcut check of its own: (feature and set name, what it
/// is). `ventricle_volume` is left out when the atlas has no ventricle region.
pub const WHOLE_BRAIN_FEATURES: [(&str, &str); 6] = [
    ("mean_intensity", "mean voxel value in the brain mask"),
    ("total_intensity", "sum of voxel values in the brain mask"),
    ("brain_volume", "tissue volume (mL): brain voxels ≥ 0.6 × the scan's median"),
    ("csf_volume", "CSF volume (mL): brain voxels < 0.6 × the scan's median"),
    ("ventricle_volume", "CSF volume (mL) inside the atlas's ventricle regions"),
    ("visit", "months since baseline (Month_bl)"),
];

/// Settings of the logistic regression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticSettings {
    /// L2 penalty `alpha`/2·‖w‖² added to the summed log-loss (1.0, linfa's default, matches
    /// scikit-learn's default `C = 1`).
    pub alpha: f64,
    /// L-BFGS iterations at most (fixed, so a run is reproducible).
    pub max_iterations: u64,
}

impl Default for LogisticSettings {
    fn default() -> Self {
        LogisticSettings { alpha: 1.0, max_iterations: 200 }
    }
}

/// Which voxels each feature reads, on the model grid: the brain mask, the planted regions (one
/// per atlas region and side) and the ventricles, as flat C-order voxel indices.
#[derive(Debug, Clone)]
pub struct FeatureGeometry {
    shape: [usize; 3],
    voxel_ml: f64,
    brain: Option<Vec<usize>>,
    planted: Vec<(String, Vec<usize>)>,
    ventricles: Option<Vec<usize>>,
    /// What could not be placed (region names absent from the atlas, regions with no voxel in the
    /// brain on this grid, no atlas at all), in words, for the run's messages.
    pub notes: Vec<String>,
}

fn resolve_regions<'a>(atlas: &'a Atlas, names: &[String]) -> (Vec<&'a Region>, Vec<String>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        let want = name.trim();
        let mut hits: Vec<&Region> = atlas
            .regions
            .iter()
            .filter(|r| r.pair_name.eq_ignore_ascii_case(want) || r.name.eq_ignore_ascii_case(want))
            .collect();
        if hits.is_empty() {
            missing.push(want.to_string());
        }
        let side = |r: &Region| match r.hemisphere {
            Some(Hemisphere::Left) => 0,
            Some(Hemisphere::Right) => 1,
            None => 2,
        };
        hits.sort_by_key(|r| (side(r), r.label));
        found.extend(hits);
    }
    (found, missing)
}

impl FeatureGeometry {
    /// Sets up the feature voxels on `grid` (the model grid): `mask` is the brain mask on that grid
    /// (1 inside; `None`: each scan's non-zero voxels), `atlas` the run's atlas already placed on
    /// it. `planted_regions` and `ventricle_regions` are matched case-insensitively against the
    /// atlas's pair names (both sides) or full names; names the atlas lacks, and regions with no
    /// voxel inside the mask, are left out and listed in [`FeatureGeometry::notes`]. Errors when
    /// the mask or the atlas does not have the grid's shape.
    pub fn new(
        grid: &Grid,
        mask: Option<ArrayView3<f32>>,
        atlas: Option<&Atlas>,
        planted_regions: &[String],
        ventricle_regions: &[String],
    ) -> Result<FeatureGeometry> {
        let shape = grid.shape;
        let voxel_ml = grid.affine.voxel_sizes().iter().product::<f64>() / 1000.0;
        let brain_mask: Option<Vec<bool>> = match mask {
            None => None,
            Some(m) => {
                if m.shape() != shape {
                    return Err(ReportError::Shape(format!(
                        "brain mask has shape {:?}, the model grid {shape:?}; put the mask on the model grid",
                        m.shape()
                    )));
                }
                Some(m.iter().map(|&v| v > 0.5).collect())
            }
        };
        let brain = brain_mask.as_ref().map(|m| (0..m.len()).filter(|&i| m[i]).collect::<Vec<usize>>());
        let mut notes = Vec::new();
        let mut planted = Vec::new();
        let mut ventricles = None;
        match atlas {
            None => notes.push("no atlas: no planted-region ceiling and no ventricle volume".to_string()),
            Some(atlas) => {
                if atlas.labels.shape() != shape {
                    return Err(ReportError::Shape(format!(
                        "atlas `{}` has shape {:?}, the model grid {shape:?}; place the atlas on the model grid first",
                        atlas.name,
                        atlas.labels.shape()
                    )));
                }
                let inside = |i: usize| brain_mask.as_ref().is_none_or(|m| m[i]);
                let mut voxels: HashMap<i32, Vec<usize>> = HashMap::new();
                for (i, &l) in atlas.labels.iter().enumerate() {
                    if l != 0 && inside(i) {
                        voxels.entry(l).or_default().push(i);
                    }
                }
                let (regions, missing) = resolve_regions(atlas, planted_regions);
                for name in missing {
                    notes.push(format!("planted region `{name}` is not in atlas `{}`; left out", atlas.name));
                }
                for r in regions {
                    match voxels.get(&r.label) {
                        Some(v) if !v.is_empty() => planted.push((r.name.clone(), v.clone())),
                        _ => notes.push(format!(
                            "planted region `{}` has no voxel inside the brain on the model grid; left out",
                            r.name
                        )),
                    }
                }
                let (regions, missing) = resolve_regions(atlas, ventricle_regions);
                for name in missing {
                    notes.push(format!("ventricle region `{name}` is not in atlas `{}`; left out", atlas.name));
                }
                let mut all: Vec<usize> =
                    regions.iter().filter_map(|r| voxels.get(&r.label)).flatten().copied().collect();
                all.sort_unstable();
                all.dedup();
                if all.is_empty() {
                    notes.push(format!(
                        "atlas `{}` has no ventricle voxel in the brain: no ventricle volume",
                        atlas.name
                    ));
                } else {
                    ventricles = Some(all);
                }
            }
        }
        Ok(FeatureGeometry { shape, voxel_ml, brain, planted, ventricles, notes })
    }

    /// The image feature columns, in the order [`FeatureGeometry::image_features`] returns them:
    /// the planted regions (atlas names), the same relative to the median, then the whole-brain
    /// features present.
    pub fn columns(&self) -> Vec<String> {
        let mut c: Vec<String> = self.planted.iter().map(|(n, _)| n.clone()).collect();
        c.extend(self.relative_columns());
        for (name, _) in WHOLE_BRAIN_FEATURES {
            match name {
                "visit" => {}
                "ventricle_volume" if self.ventricles.is_none() => {}
                _ => c.push(name.to_string()),
            }
        }
        c
    }

    /// The image features of one preprocessed volume (see the module documentation), in the
    /// order of [`FeatureGeometry::columns`]. `scan` names the scan in errors: a wrong shape, a
    /// non-finite voxel in the brain, or a brain whose median value is not positive.
    pub fn image_features(&self, volume: ArrayView3<f32>, scan: &str) -> Result<Vec<f64>> {
        if volume.shape() != self.shape {
            return Err(ReportError::Shape(format!(
                "scan {scan}: volume shape {:?} differs from the model grid {:?}",
                volume.shape(),
                self.shape
            )));
        }
        let std = volume.as_standard_layout();
        let x = std.as_slice().ok_or_else(|| ReportError::invalid(scan, "volume is not contiguous"))?;
        let nonzero: Vec<usize>;
        let brain: &[usize] = match &self.brain {
            Some(b) => b,
            None => {
                nonzero = (0..x.len()).filter(|&i| x[i] != 0.0).collect();
                &nonzero
            }
        };
        let mut values: Vec<f64> = Vec::with_capacity(brain.len());
        for &i in brain {
            let v = f64::from(x[i]);
            if !v.is_finite() {
                return Err(ReportError::invalid(
                    scan,
                    format!("voxel {i} (C order) inside the brain holds {v}; preprocessed volumes must be finite"),
                ));
            }
            values.push(v);
        }
        if values.is_empty() {
            return Err(ReportError::invalid(scan, "the brain holds no voxel (empty mask or all-zero scan)"));
        }
        let total: f64 = values.iter().sum();
        let mean = total / values.len() as f64;
        let mut sorted = values.clone();
        let mid = sorted.len() / 2;
        let (_, median, _) = sorted.select_nth_unstable_by(mid, f64::total_cmp);
        let median = *median;
        if median <= 0.0 {
            return Err(ReportError::invalid(
                scan,
                format!("the median value in the brain is {median}, expected a positive intensity scale"),
            ));
        }
        let threshold = TISSUE_FRACTION * median;
        let tissue = values.iter().filter(|&&v| v >= threshold).count();
        let csf = values.len() - tissue;
        let mut out: Vec<f64> = self
            .planted
            .iter()
            .map(|(_, idx)| idx.iter().map(|&i| f64::from(x[i])).sum::<f64>() / idx.len() as f64)
            .collect();
        let relative: Vec<f64> = out.iter().map(|m| m / median).collect();
        out.extend(relative);
        out.push(mean);
        out.push(total);
        out.push(tissue as f64 * self.voxel_ml);
        out.push(csf as f64 * self.voxel_ml);
        if let Some(v) = &self.ventricles {
            let low = v.iter().filter(|&&i| f64::from(x[i]) < threshold).count();
            out.push(low as f64 * self.voxel_ml);
        }
        Ok(out)
    }

    /// Names of the planted regions' columns relative to the scan's median.
    fn relative_columns(&self) -> Vec<String> {
        self.planted.iter().map(|(n, _)| format!("{n} / median")).collect()
    }

    /// True when the planted regions give a ceiling (at least one region was placed).
    pub fn has_ceiling(&self) -> bool {
        !self.planted.is_empty()
    }
}

/// One scan of the feature table: who it is and its label.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanInfo {
    /// Patient id.
    pub ptid: String,
    /// The scan's `Image.ID`.
    pub image_id: i64,
    /// 1 = AD, 0 = CN.
    pub label: u8,
    /// `Month_bl`: months since the patient's baseline.
    pub visit_months: f64,
}

/// Features of every scan: one row per scan, one column per feature.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureTable {
    /// Feature names (image features, then `visit`).
    pub columns: Vec<String>,
    /// The scans, one per row.
    pub scans: Vec<ScanInfo>,
    /// `values[row][column]`.
    pub values: Vec<Vec<f64>>,
}

impl FeatureTable {
    /// Computes the features of `scans` (in parallel); `load` gives a scan's preprocessed volume
    /// on the model grid. Errors name the scan (its `Image.ID`).
    pub fn build<F>(scans: Vec<ScanInfo>, geometry: &FeatureGeometry, load: F) -> Result<FeatureTable>
    where
        F: Fn(&ScanInfo) -> Result<Array3<f32>> + Sync,
    {
        let values: Vec<Vec<f64>> = scans
            .par_iter()
            .map(|s| {
                let name = format!("Image.ID {}", s.image_id);
                let vol = load(s)?;
                let mut row = geometry.image_features(vol.view(), &name)?;
                row.push(s.visit_months);
                Ok(row)
            })
            .collect::<Result<_>>()?;
        let mut columns = geometry.columns();
        columns.push("visit".to_string());
        FeatureTable::new(columns, scans, values)
    }

    /// A table from values already computed; checks the row lengths and that every value is
    /// finite (the error names the scan and the feature).
    pub fn new(columns: Vec<String>, scans: Vec<ScanInfo>, values: Vec<Vec<f64>>) -> Result<FeatureTable> {
        if values.len() != scans.len() {
            return Err(ReportError::invalid(
                "feature table",
                format!("{} rows of values for {} scans", values.len(), scans.len()),
            ));
        }
        for (s, row) in scans.iter().zip(&values) {
            if row.len() != columns.len() {
                return Err(ReportError::invalid(
                    &format!("Image.ID {}", s.image_id),
                    format!("{} feature values for {} columns", row.len(), columns.len()),
                ));
            }
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                return Err(ReportError::invalid(
                    &format!("Image.ID {}", s.image_id),
                    format!("feature `{}` is {}, expected a finite value", columns[j], row[j]),
                ));
            }
        }
        Ok(FeatureTable { columns, scans, values })
    }

    /// The table as a frame: `PTID`, `Image.ID`, `label`, then one column per feature.
    pub fn to_frame(&self) -> Result<DataFrame> {
        let n = self.scans.len();
        let mut cols = vec![
            Column::new("PTID".into(), self.scans.iter().map(|s| s.ptid.as_str()).collect::<Vec<&str>>()),
            Column::new("Image.ID".into(), self.scans.iter().map(|s| s.image_id).collect::<Vec<i64>>()),
            Column::new("label".into(), self.scans.iter().map(|s| i32::from(s.label)).collect::<Vec<i32>>()),
        ];
        for (j, name) in self.columns.iter().enumerate() {
            cols.push(Column::new(name.as_str().into(), self.values.iter().map(|r| r[j]).collect::<Vec<f64>>()));
        }
        Ok(DataFrame::new(n, cols)?)
    }
}

/// A named group of feature columns that one logistic regression sees.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    /// Name (`planted_regions`, `mean_intensity`, …).
    pub name: String,
    /// What it is, in words.
    pub what: String,
    /// The feature columns.
    pub columns: Vec<String>,
    /// True for a shortcut check (must stay near chance), false for the ceiling.
    pub shortcut: bool,
}

/// The study's feature sets for a table with `columns`: the planted-region ceiling (when any
/// planted region was placed), each whole-brain feature alone, and all whole-brain features
/// together.
pub fn standard_feature_sets(geometry: &FeatureGeometry) -> Vec<FeatureSet> {
    let mut sets = Vec::new();
    if geometry.has_ceiling() {
        sets.push(FeatureSet {
            name: PLANTED_REGIONS.into(),
            what: format!(
                "ceiling: mean intensity of each planted region, left and right ({})",
                geometry.planted.len()
            ),
            columns: geometry.planted.iter().map(|(n, _)| n.clone()).collect(),
            shortcut: false,
        });
        sets.push(FeatureSet {
            name: PLANTED_REGIONS_RELATIVE.into(),
            what: "ceiling: the same means ÷ the scan's median brain intensity".into(),
            columns: geometry.relative_columns(),
            shortcut: false,
        });
    }
    let mut present = geometry.columns();
    present.push("visit".into());
    let whole: Vec<(&str, &str)> =
        WHOLE_BRAIN_FEATURES.iter().copied().filter(|(n, _)| present.iter().any(|c| c == n)).collect();
    for (name, what) in &whole {
        sets.push(FeatureSet {
            name: (*name).into(),
            what: (*what).into(),
            columns: vec![(*name).into()],
            shortcut: true,
        });
    }
    sets.push(FeatureSet {
        name: ALL_WHOLE_BRAIN.into(),
        what: "every whole-brain feature above together".into(),
        columns: whole.iter().map(|(n, _)| (*n).to_string()).collect(),
        shortcut: true,
    });
    sets
}

/// Feature standardisation fitted on training rows: `(x − mean) / sd` with the population SD; a
/// feature constant over the training rows (SD ≤ 1e-12 × (1 + |mean|)) maps to 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardiser {
    /// Per-feature training mean.
    pub mean: Vec<f64>,
    /// Per-feature training SD; 0 marks a constant feature.
    pub sd: Vec<f64>,
}

impl Standardiser {
    /// Fits on `rows` (all of one length; at least one row).
    pub fn fit(rows: &[Vec<f64>]) -> Standardiser {
        let p = rows.first().map_or(0, Vec::len);
        let n = rows.len().max(1) as f64;
        let mean: Vec<f64> = (0..p).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n).collect();
        let sd: Vec<f64> = (0..p)
            .map(|j| {
                let var = rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n;
                let sd = var.sqrt();
                if sd <= 1e-12 * (1.0 + mean[j].abs()) { 0.0 } else { sd }
            })
            .collect();
        Standardiser { mean, sd }
    }

    /// One row standardised.
    pub fn transform(&self, row: &[f64]) -> Vec<f64> {
        row.iter()
            .zip(self.mean.iter().zip(&self.sd))
            .map(|(&x, (&m, &s))| if s == 0.0 { 0.0 } else { (x - m) / s })
            .collect()
    }
}

/// Fits a logistic regression on `train` (rows of raw features) and returns P(AD) for each row of
/// `test`, after standardising both with the training rows' statistics ([`Standardiser`]).
/// `context` names the fit in errors: fewer than two classes among the training labels, no
/// training rows, rows of different lengths, or a solver failure.
pub fn fit_predict(
    train: &[Vec<f64>],
    train_labels: &[u8],
    test: &[Vec<f64>],
    settings: &LogisticSettings,
    context: &str,
) -> Result<Vec<f64>> {
    let n_ad = train_labels.iter().filter(|&&l| l != 0).count();
    let n_cn = train_labels.len() - n_ad;
    if n_ad == 0 || n_cn == 0 {
        return Err(ReportError::invalid(
            context,
            format!(
                "the training scans hold {n_ad} AD and {n_cn} CN; a logistic regression needs both classes \
                 (check the split's stratification)"
            ),
        ));
    }
    if train.len() != train_labels.len() {
        return Err(ReportError::invalid(
            context,
            format!("{} training rows for {} labels", train.len(), train_labels.len()),
        ));
    }
    let p = train.first().map_or(0, Vec::len);
    if let Some(bad) = train.iter().chain(test).find(|r| r.len() != p) {
        return Err(ReportError::invalid(context, format!("a row has {} features, expected {p}", bad.len())));
    }
    let scaler = Standardiser::fit(train);
    let flat = |rows: &[Vec<f64>]| -> Vec<f64> { rows.iter().flat_map(|r| scaler.transform(r)).collect() };
    let solver = |e: String| ReportError::invalid(context, format!("logistic regression failed: {e}"));
    let x_train =
        ndarray_linfa::Array2::from_shape_vec((train.len(), p), flat(train)).map_err(|e| solver(e.to_string()))?;
    let x_test =
        ndarray_linfa::Array2::from_shape_vec((test.len(), p), flat(test)).map_err(|e| solver(e.to_string()))?;
    let y: ndarray_linfa::Array1<u8> = train_labels.iter().map(|&l| u8::from(l != 0)).collect();
    let model = LogisticRegression::<f64>::default()
        .alpha(settings.alpha)
        .max_iterations(settings.max_iterations)
        .check()
        .map_err(|e| solver(e.to_string()))?
        .fit(&Dataset::new(x_train, y))
        .map_err(|e| solver(e.to_string()))?;
    // linfa's "positive" class is the more frequent training class, not label 1: map it back.
    let p_pos = model.predict_probabilities(&x_test);
    let pos_is_ad = model.labels().pos.class == 1;
    Ok(p_pos.iter().map(|&q| if pos_is_ad { q } else { 1.0 - q }).collect())
}

/// Balanced accuracy of P(AD) scores at [`DECISION_THRESHOLD`]: the mean of sensitivity and
/// specificity; NaN when either class is missing from `labels`.
pub fn balanced_accuracy(labels: &[u8], p_ad: &[f64]) -> f64 {
    let (mut tp, mut fneg, mut tn, mut fpos) = (0usize, 0usize, 0usize, 0usize);
    for (&l, &p) in labels.iter().zip(p_ad) {
        match (l != 0, p >= DECISION_THRESHOLD) {
            (true, true) => tp += 1,
            (true, false) => fneg += 1,
            (false, false) => tn += 1,
            (false, true) => fpos += 1,
        }
    }
    if tp + fneg == 0 || tn + fpos == 0 {
        return f64::NAN;
    }
    (tp as f64 / (tp + fneg) as f64 + tn as f64 / (tn + fpos) as f64) / 2.0
}

/// One feature set evaluated on one split.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineRow {
    /// Feature set name.
    pub feature_set: String,
    /// What the set is.
    pub what: String,
    /// Shortcut check (true) or ceiling (false).
    pub shortcut: bool,
    /// Split name (`fold1` …, `holdout`).
    pub split: String,
    /// Scans fitted on.
    pub n_train: usize,
    /// Scans scored.
    pub n_test: usize,
    /// Balanced accuracy on the test scans (NaN with one class).
    pub balanced_accuracy: f64,
    /// ROC AUC on the test scans (NaN with one class).
    pub roc_auc: f64,
}

/// Evaluates every feature set on every split (see the module documentation): training rows are
/// the split's non-test scans, test rows its test scans. Every scan of a split must be in
/// `table` (an error names the split and the `Image.ID` otherwise); table rows outside a split
/// are not used for it.
pub fn evaluate(
    table: &FeatureTable,
    sets: &[FeatureSet],
    splits: &[Split],
    settings: &LogisticSettings,
) -> Result<Vec<BaselineRow>> {
    let row_of: HashMap<i64, usize> = table.scans.iter().enumerate().map(|(i, s)| (s.image_id, i)).collect();
    let col_of: HashMap<&str, usize> = table.columns.iter().enumerate().map(|(j, c)| (c.as_str(), j)).collect();
    let mut out = Vec::new();
    for split in splits {
        let mut train = Vec::new();
        let mut test = Vec::new();
        for r in &split.rows {
            let &i = row_of.get(&r.image_id).ok_or_else(|| {
                ReportError::invalid(
                    &format!("split `{}`", split.name),
                    format!(
                        "Image.ID {} (PTID {}) has no features; the split and the cohort disagree (stale results?)",
                        r.image_id, r.ptid
                    ),
                )
            })?;
            if r.set == SplitSet::Test { test.push(i) } else { train.push(i) }
        }
        for set in sets {
            let cols: Vec<usize> = set
                .columns
                .iter()
                .map(|c| {
                    col_of.get(c.as_str()).copied().ok_or_else(|| {
                        ReportError::invalid(
                            &format!("feature set `{}`", set.name),
                            format!("feature `{c}` is not in the table (it has {:?})", table.columns),
                        )
                    })
                })
                .collect::<Result<_>>()?;
            let pick = |rows: &[usize]| -> Vec<Vec<f64>> {
                rows.iter().map(|&i| cols.iter().map(|&j| table.values[i][j]).collect()).collect()
            };
            let labels = |rows: &[usize]| -> Vec<u8> { rows.iter().map(|&i| table.scans[i].label).collect() };
            let context = format!("baseline `{}` on split `{}`", set.name, split.name);
            let p_ad = fit_predict(&pick(&train), &labels(&train), &pick(&test), settings, &context)?;
            let y_test = labels(&test);
            let truth: Vec<bool> = y_test.iter().map(|&l| l != 0).collect();
            out.push(BaselineRow {
                feature_set: set.name.clone(),
                what: set.what.clone(),
                shortcut: set.shortcut,
                split: split.name.clone(),
                n_train: train.len(),
                n_test: test.len(),
                balanced_accuracy: balanced_accuracy(&y_test, &p_ad),
                roc_auc: roc_auc(&truth, &p_ad),
            });
        }
    }
    Ok(out)
}

/// The per-split table: `feature_set`, `what`, `split`, `n_train`, `n_test`,
/// `balanced_accuracy`, `roc_auc`.
pub fn results_frame(rows: &[BaselineRow]) -> Result<DataFrame> {
    let s = |f: &dyn Fn(&BaselineRow) -> String| rows.iter().map(f).collect::<Vec<String>>();
    Ok(DataFrame::new(
        rows.len(),
        vec![
            Column::new("feature_set".into(), s(&|r| r.feature_set.clone())),
            Column::new("what".into(), s(&|r| r.what.clone())),
            Column::new("split".into(), s(&|r| r.split.clone())),
            Column::new("n_train".into(), rows.iter().map(|r| r.n_train as i64).collect::<Vec<i64>>()),
            Column::new("n_test".into(), rows.iter().map(|r| r.n_test as i64).collect::<Vec<i64>>()),
            Column::new("balanced_accuracy".into(), rows.iter().map(|r| r.balanced_accuracy).collect::<Vec<f64>>()),
            Column::new("roc_auc".into(), rows.iter().map(|r| r.roc_auc).collect::<Vec<f64>>()),
        ],
    )?)
}

/// The summary per feature set, in the order first seen: `feature_set`, `role` (`ceiling` /
/// `shortcut check`), `folds` (cross-validation folds with a finite balanced accuracy), mean and
/// SD over those folds of `balanced_accuracy` and `roc_auc`, the hold-out values, and
/// `shortcut_ok` for shortcut checks: the fold means of the balanced accuracy and of the ROC AUC
/// (the hold-out values when the run has no fold) are ≤ [`SHORTCUT_LIMIT`] (an undefined AUC
/// does not count against it); empty for the ceiling or without a balanced accuracy.
pub fn summary_frame(rows: &[BaselineRow]) -> Result<DataFrame> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_set: BTreeMap<&str, Vec<&BaselineRow>> = BTreeMap::new();
    for r in rows {
        if !by_set.contains_key(r.feature_set.as_str()) {
            order.push(&r.feature_set);
        }
        by_set.entry(&r.feature_set).or_default().push(r);
    }
    let mut name = Vec::new();
    let mut role = Vec::new();
    let mut folds = Vec::new();
    let (mut ba_m, mut ba_s, mut auc_m, mut auc_s, mut ho_ba, mut ho_auc) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut ok: Vec<Option<bool>> = Vec::new();
    for set in order {
        let rs = &by_set[set];
        let cv: Vec<&&BaselineRow> = rs.iter().filter(|r| r.split != HOLDOUT_SPLIT).collect();
        let ho = rs.iter().find(|r| r.split == HOLDOUT_SPLIT);
        let (bm, bs, n) = mean_sd(&cv.iter().map(|r| r.balanced_accuracy).collect::<Vec<_>>());
        let (am, asd, _) = mean_sd(&cv.iter().map(|r| r.roc_auc).collect::<Vec<_>>());
        let hb = ho.map_or(f64::NAN, |r| r.balanced_accuracy);
        let shortcut = rs.first().is_some_and(|r| r.shortcut);
        let check = if n > 0 { bm } else { hb };
        let auc_check = if n > 0 { am } else { ho.map_or(f64::NAN, |r| r.roc_auc) };
        name.push(set.to_string());
        role.push(if shortcut { "shortcut check" } else { "ceiling" });
        folds.push(n as i64);
        ba_m.push(bm);
        ba_s.push(bs);
        auc_m.push(am);
        auc_s.push(asd);
        ho_ba.push(hb);
        ho_auc.push(ho.map_or(f64::NAN, |r| r.roc_auc));
        ok.push(
            (shortcut && check.is_finite())
                .then_some(check <= SHORTCUT_LIMIT && !(auc_check.is_finite() && auc_check > SHORTCUT_LIMIT)),
        );
    }
    Ok(DataFrame::new(
        name.len(),
        vec![
            Column::new("feature_set".into(), name),
            Column::new("role".into(), role),
            Column::new("folds".into(), folds),
            Column::new("balanced_accuracy_mean".into(), ba_m),
            Column::new("balanced_accuracy_sd".into(), ba_s),
            Column::new("roc_auc_mean".into(), auc_m),
            Column::new("roc_auc_sd".into(), auc_s),
            Column::new("holdout_balanced_accuracy".into(), ho_ba),
            Column::new("holdout_roc_auc".into(), ho_auc),
            Column::new("shortcut_ok".into(), ok),
        ],
    )?)
}

/// One or two sentences on a summary table ([`summary_frame`], or its CSV read back): the
/// ceiling against the CNN (`cnn_summary`: the CNN's cross-validation `summary.csv`, with
/// columns `metric` and `mean`), and whether every shortcut check stays at or below
/// [`SHORTCUT_LIMIT`].
pub fn interpretation(summary: &DataFrame, cnn_summary: Option<&DataFrame>) -> Result<String> {
    const T: &str = "baselines_summary";
    let names = column_str(summary, T, "feature_set")?;
    let roles = column_str(summary, T, "role")?;
    let mean = column_f64(summary, T, "balanced_accuracy_mean")?;
    let sd = column_f64(summary, T, "balanced_accuracy_sd")?;
    let holdout = column_f64(summary, T, "holdout_balanced_accuracy")?;
    let ok = column_str(summary, T, "shortcut_ok")?;
    let auc = column_f64(summary, T, "roc_auc_mean")?;
    let auc_holdout = column_f64(summary, T, "holdout_roc_auc")?;
    let auc_of = |i: usize| if mean[i].is_finite() { auc[i] } else { auc_holdout[i] };
    let value = |i: usize| if mean[i].is_finite() { mean[i] } else { holdout[i] };
    let spread =
        |i: usize| if mean[i].is_finite() && sd[i].is_finite() { format!(" ± {:.2}", sd[i]) } else { String::new() };
    let cnn = match cnn_summary {
        None => None,
        Some(df) => {
            use adni_data::run_tables::{BALANCED_ACCURACY, SummaryRow};
            let metric = column_str(df, "CNN summary", SummaryRow::METRIC)?;
            let m = column_f64(df, "CNN summary", SummaryRow::MEAN)?;
            metric.iter().position(|x| x == BALANCED_ACCURACY).map(|i| m[i]).filter(|v| v.is_finite())
        }
    };
    let mut text = String::new();
    let best_ceiling = (0..names.len())
        .filter(|&i| roles[i] == "ceiling" && value(i).is_finite())
        .max_by(|&a, &b| value(a).total_cmp(&value(b)));
    match best_ceiling {
        Some(i) => {
            text.push_str(&format!(
                "The linear ceiling on the planted regions' mean intensities (`{}`) reaches a balanced accuracy of {:.2}",
                names[i],
                value(i)
            ));
            match cnn {
                Some(c) => text.push_str(&format!(
                    " against the CNN's {c:.2} (cross-validation means){}. ",
                    if c + 0.05 < value(i) { ": the CNN has not learnt all of the planted effect" } else { "" }
                )),
                None => text.push_str(" (no CNN cross-validation to compare with). "),
            }
        }
        None => text.push_str("No ceiling: the atlas lacks the planted regions, or no split could score them. "),
    }
    let shortcuts: Vec<usize> = (0..names.len()).filter(|&i| roles[i] == "shortcut check").collect();
    let failed: Vec<String> = shortcuts
        .iter()
        .filter(|&&i| ok[i] == "false")
        .map(|&i| format!("`{}` (balanced accuracy {:.2}{}, AUC {:.2})", names[i], value(i), spread(i), auc_of(i)))
        .collect();
    let unknown: Vec<&str> = shortcuts.iter().filter(|&&i| ok[i].is_empty()).map(|&i| names[i].as_str()).collect();
    if !failed.is_empty() {
        text.push_str(&format!(
            "Shortcut check(s) with a balanced accuracy or AUC above {SHORTCUT_LIMIT}: {}: the label can be read off a whole-brain feature \
             (a flaw of a synthetic cohort; on real data a confound to report beside the CNN).",
            failed.join(", ")
        ));
    } else if let Some(&top) =
        shortcuts.iter().filter(|&&i| value(i).is_finite()).max_by(|&&a, &&b| value(a).total_cmp(&value(b)))
    {
        text.push_str(&format!(
            "Every whole-brain shortcut check stays at or below {SHORTCUT_LIMIT} in balanced accuracy and AUC \
             (highest balanced accuracy: `{}`, {:.2}; highest AUC {:.2}), so none gives the label away.",
            names[top],
            value(top),
            shortcuts.iter().map(|&i| auc_of(i)).filter(|a| a.is_finite()).fold(f64::NAN, f64::max)
        ));
    } else {
        text.push_str("No shortcut check could be scored.");
    }
    if !unknown.is_empty() {
        text.push_str(&format!(" Not scored (one class in the test scans): {}.", unknown.join(", ")));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use adni_data::Affine;
    use adni_data::splits::SplitRow;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn scans(labels: &[u8]) -> Vec<ScanInfo> {
        labels
            .iter()
            .enumerate()
            .map(|(i, &l)| ScanInfo {
                ptid: format!("{:03}_S_{:04}", 1, i),
                image_id: i as i64,
                label: l,
                visit_months: 0.0,
            })
            .collect()
    }

    /// `k` folds over scans (one scan per patient), scan `i` tested in fold `i % k`.
    fn folds(n: usize, k: usize) -> Vec<Split> {
        (0..k)
            .map(|f| Split {
                name: format!("fold{}", f + 1),
                rows: (0..n)
                    .map(|i| SplitRow {
                        ptid: format!("{:03}_S_{:04}", 1, i),
                        image_id: i as i64,
                        set: if i % k == f { SplitSet::Test } else { SplitSet::Train },
                    })
                    .collect(),
            })
            .collect()
    }

    fn one_set(name: &str, shortcut: bool) -> Vec<FeatureSet> {
        vec![FeatureSet { name: name.into(), what: "test".into(), columns: vec!["x".into()], shortcut }]
    }

    #[test]
    fn a_feature_equal_to_the_label_scores_one_even_when_ad_is_the_minority() {
        // 1/4 AD: linfa's "positive" class is then CN, which must be mapped back to P(AD).
        let labels: Vec<u8> = (0..40).map(|i| u8::from(i % 4 == 0)).collect();
        let values = labels.iter().map(|&l| vec![f64::from(l) * 3.0 + 10.0]).collect();
        let table = FeatureTable::new(vec!["x".into()], scans(&labels), values).unwrap();
        let rows = evaluate(&table, &one_set("x", false), &folds(40, 5), &LogisticSettings::default()).unwrap();
        assert_eq!(rows.len(), 5);
        for r in &rows {
            assert_eq!((r.n_train, r.n_test), (32, 8));
            assert_eq!(r.balanced_accuracy, 1.0, "{r:?}");
            assert_eq!(r.roc_auc, 1.0, "{r:?}");
        }
        // and the same with AD as the majority
        let labels: Vec<u8> = labels.iter().map(|&l| 1 - l).collect();
        let values = labels.iter().map(|&l| vec![f64::from(l)]).collect();
        let table = FeatureTable::new(vec!["x".into()], scans(&labels), values).unwrap();
        let rows = evaluate(&table, &one_set("x", false), &folds(40, 5), &LogisticSettings::default()).unwrap();
        assert!(rows.iter().all(|r| r.balanced_accuracy == 1.0 && r.roc_auc == 1.0), "{rows:?}");
    }

    #[test]
    fn random_features_stay_near_chance_and_pass_the_shortcut_check() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 600;
        let labels: Vec<u8> = (0..n).map(|i| u8::from(i % 2 == 0)).collect();
        let values = (0..n).map(|_| vec![rng.random::<f64>(), rng.random::<f64>() * 100.0]).collect();
        let table = FeatureTable::new(vec!["x".into(), "y".into()], scans(&labels), values).unwrap();
        let sets = vec![FeatureSet {
            name: "noise".into(),
            what: "noise".into(),
            columns: vec!["x".into(), "y".into()],
            shortcut: true,
        }];
        let rows = evaluate(&table, &sets, &folds(n, 5), &LogisticSettings::default()).unwrap();
        let (ba, _, k) = mean_sd(&rows.iter().map(|r| r.balanced_accuracy).collect::<Vec<_>>());
        let (auc, _, _) = mean_sd(&rows.iter().map(|r| r.roc_auc).collect::<Vec<_>>());
        assert_eq!(k, 5);
        assert!((ba - 0.5).abs() < 0.06, "balanced accuracy {ba}");
        assert!((auc - 0.5).abs() < 0.06, "AUC {auc}");
        let summary = summary_frame(&rows).unwrap();
        assert_eq!(column_str(&summary, "s", "shortcut_ok").unwrap(), vec!["true"]);
    }

    #[test]
    fn standardisation_uses_the_training_scans_only() {
        let s = Standardiser::fit(&[vec![1.0, 5.0], vec![3.0, 5.0]]);
        assert_eq!(s.mean, vec![2.0, 5.0]);
        assert_eq!(s.sd, vec![1.0, 0.0], "population SD; the constant feature is marked 0");
        assert_eq!(s.transform(&[100.0, 7.0]), vec![98.0, 0.0]);
        // A test scan far outside the training range changes neither the statistics nor the
        // other test scans' probabilities.
        let train = vec![vec![0.0], vec![1.0], vec![2.0], vec![3.0]];
        let y = [0, 0, 1, 1];
        let s = LogisticSettings::default();
        let a = fit_predict(&train, &y, &[vec![1.0], vec![2.0]], &s, "t").unwrap();
        let b = fit_predict(&train, &y, &[vec![1.0], vec![2.0], vec![1e6]], &s, "t").unwrap();
        assert_eq!(a[..], b[..2]);
        assert!(a[0] < 0.5 && a[1] > 0.5, "{a:?}");
    }

    #[test]
    fn a_single_class_training_fold_is_an_error_naming_set_and_split() {
        // AD only in scans tested by fold1: fold1's training scans are all CN.
        let labels: Vec<u8> = (0..12).map(|i| u8::from(i % 3 == 0)).collect();
        let values = labels.iter().map(|&l| vec![f64::from(l)]).collect();
        let table = FeatureTable::new(vec!["x".into()], scans(&labels), values).unwrap();
        let err = evaluate(&table, &one_set("ventricle_volume", true), &folds(12, 3), &LogisticSettings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ventricle_volume") && err.contains("fold1") && err.contains("both classes"), "{err}");
    }

    #[test]
    fn a_constant_feature_gives_chance_not_a_panic() {
        // every fold's test scans hold both classes (labels repeat every 3, folds every 4)
        let labels: Vec<u8> = (0..24).map(|i| u8::from(i % 3 == 0)).collect();
        let table = FeatureTable::new(vec!["x".into()], scans(&labels), vec![vec![4.0]; 24]).unwrap();
        let rows = evaluate(&table, &one_set("x", true), &folds(24, 4), &LogisticSettings::default()).unwrap();
        assert_eq!(rows.len(), 4);
        for r in &rows {
            assert_eq!(r.roc_auc, 0.5, "{r:?}");
            assert_eq!(r.balanced_accuracy, 0.5, "{r:?}");
        }
    }

    #[test]
    fn one_class_in_the_test_scans_gives_nan_and_an_empty_verdict() {
        let labels: Vec<u8> = (0..8).map(|i| u8::from(i >= 4)).collect();
        let table =
            FeatureTable::new(vec!["x".into()], scans(&labels), labels.iter().map(|&l| vec![f64::from(l)]).collect())
                .unwrap();
        let split = Split {
            name: HOLDOUT_SPLIT.into(),
            rows: (0..8)
                .map(|i| SplitRow {
                    ptid: format!("{:03}_S_{:04}", 1, i),
                    image_id: i,
                    set: if i == 0 || i == 1 { SplitSet::Test } else { SplitSet::Train },
                })
                .collect(),
        };
        let rows = evaluate(&table, &one_set("x", true), &[split], &LogisticSettings::default()).unwrap();
        assert!(rows[0].balanced_accuracy.is_nan() && rows[0].roc_auc.is_nan(), "{rows:?}");
        let summary = summary_frame(&rows).unwrap();
        assert_eq!(column_str(&summary, "s", "shortcut_ok").unwrap(), vec![""]);
        let text = interpretation(&summary, None).unwrap();
        assert!(text.contains("Not scored") && text.contains('x'), "{text}");
    }

    #[test]
    fn a_split_scan_without_features_is_an_error_naming_split_and_image() {
        let table = FeatureTable::new(vec!["x".into()], scans(&[0, 1]), vec![vec![0.0], vec![1.0]]).unwrap();
        let err =
            evaluate(&table, &one_set("x", true), &folds(3, 3), &LogisticSettings::default()).unwrap_err().to_string();
        assert!(err.contains("fold1") && err.contains("Image.ID 2"), "{err}");
        let err = FeatureTable::new(vec!["x".into()], scans(&[0]), vec![vec![f64::NAN]]).unwrap_err().to_string();
        assert!(err.contains("Image.ID 0") && err.contains("`x`"), "{err}");
    }

    #[test]
    fn balanced_accuracy_by_hand() {
        // sensitivity 2/3, specificity 1/2
        let ba = balanced_accuracy(&[1, 1, 1, 0, 0], &[0.9, 0.6, 0.2, 0.7, 0.1]);
        assert!((ba - (2.0 / 3.0 + 0.5) / 2.0).abs() < 1e-12);
        assert!(balanced_accuracy(&[1, 1], &[0.9, 0.1]).is_nan());
    }

    /// A 6×4×4 grid of 2 mm voxels (8 µL = 0.008 mL each), a 4×4×4 brain mask (rows 1–4), and an
    /// atlas with a left and a right "Hippocampus" and a "Lateral Ventricle".
    fn toy() -> (Grid, Array3<f32>, Atlas) {
        let grid = Grid { shape: [6, 4, 4], affine: Affine::from_scale_offset([2.0; 3], [0.0; 3]) };
        let mut mask = Array3::<f32>::zeros(grid.shape);
        mask.indexed_iter_mut().filter(|((i, _, _), _)| (1..5).contains(i)).for_each(|(_, v)| *v = 1.0);
        let mut labels = Array3::<i32>::zeros(grid.shape);
        labels[[0, 0, 0]] = 48; // outside the mask
        labels[[1, 0, 0]] = 48;
        labels[[2, 0, 0]] = 99;
        labels[[3, 1, 1]] = 41;
        labels[[3, 2, 1]] = 41;
        let regions = vec![
            Region::from_name(41, "Lateral Ventricle (right)"),
            Region::from_name(48, "Hippocampus (right)"),
            Region::from_name(99, "Hippocampus (left)"),
        ];
        let atlas = Atlas::new("toy", labels, grid.affine, regions).unwrap();
        (grid, mask, atlas)
    }

    #[test]
    fn image_features_by_hand() {
        let (grid, mask, atlas) = toy();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        let g = FeatureGeometry::new(
            &grid,
            Some(mask.view()),
            Some(&atlas),
            &names(&["hippocampus", "Entorhinal"]),
            &names(&["Lateral Ventricle"]),
        )
        .unwrap();
        assert_eq!(
            g.columns(),
            names(&[
                "Hippocampus (left)",
                "Hippocampus (right)",
                "Hippocampus (left) / median",
                "Hippocampus (right) / median",
                "mean_intensity",
                "total_intensity",
                "brain_volume",
                "csf_volume",
                "ventricle_volume"
            ])
        );
        assert!(g.notes.iter().any(|n| n.contains("Entorhinal")), "{:?}", g.notes);
        let sets = standard_feature_sets(&g);
        assert_eq!((sets[0].name.as_str(), sets[0].columns.len(), sets[0].shortcut), (PLANTED_REGIONS, 2, false));
        assert_eq!(sets[1].columns, names(&["Hippocampus (left) / median", "Hippocampus (right) / median"]));
        assert_eq!(sets.last().map(|s| s.columns.len()), Some(6), "five image features and the visit");
        // 64 brain voxels at 100, except 4 at 20 (CSF: 20 < 0.6 × median 100), two of which lie in
        // the ventricle; outside the mask 500 (must be ignored).
        let mut vol = Array3::<f32>::from_elem(grid.shape, 500.0);
        vol.indexed_iter_mut().filter(|((i, _, _), _)| (1..5).contains(i)).for_each(|(_, v)| *v = 100.0);
        vol[[3, 1, 1]] = 20.0;
        vol[[3, 2, 1]] = 20.0;
        vol[[4, 3, 3]] = 20.0;
        vol[[2, 0, 0]] = 20.0; // left hippocampus
        let f = g.image_features(vol.view(), "toy").unwrap();
        let total = 60.0 * 100.0 + 4.0 * 20.0;
        let expected = [20.0, 100.0, 0.2, 1.0, total / 64.0, total, 60.0 * 0.008, 4.0 * 0.008, 2.0 * 0.008];
        assert_eq!(f.len(), expected.len());
        for (a, b) in f.iter().zip(expected) {
            assert!((a - b).abs() < 1e-9, "{f:?} vs {expected:?}");
        }
        // A global intensity scale moves no voxel across the tissue/CSF split.
        let f2 = g.image_features((vol.clone() * 3.0).view(), "toy").unwrap();
        assert_eq!(f2[2..4], f[2..4], "relative means are scale-free");
        assert_eq!(f2[6..], f[6..]);
        // Wrong shapes are errors, not panics.
        assert!(g.image_features(Array3::<f32>::zeros([2, 2, 2]).view(), "toy").is_err());
        let bad = Array3::<f32>::zeros([2, 2, 2]);
        assert!(FeatureGeometry::new(&grid, Some(bad.view()), None, &[], &[]).is_err());
    }

    #[test]
    fn without_an_atlas_only_whole_brain_sets_remain() {
        let (grid, mask, _) = toy();
        let g = FeatureGeometry::new(&grid, Some(mask.view()), None, &["Hippocampus".into()], &[]).unwrap();
        let sets = standard_feature_sets(&g);
        let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["mean_intensity", "total_intensity", "brain_volume", "csf_volume", "visit", "all_whole_brain"]
        );
        assert!(sets.iter().all(|s| s.shortcut));
        assert_eq!(sets[5].columns.len(), 5);
    }

    #[test]
    fn interpretation_names_failing_shortcuts_and_compares_the_ceiling_with_the_cnn() {
        let row = |set: &str, shortcut: bool, split: &str, ba: f64| BaselineRow {
            feature_set: set.into(),
            what: String::new(),
            shortcut,
            split: split.into(),
            n_train: 10,
            n_test: 5,
            balanced_accuracy: ba,
            roc_auc: ba,
        };
        let rows = vec![
            row(PLANTED_REGIONS, false, "fold1", 0.95),
            row(PLANTED_REGIONS, false, "fold2", 0.85),
            row(PLANTED_REGIONS, false, HOLDOUT_SPLIT, 1.0),
            row("visit", true, "fold1", 0.5),
            row("visit", true, "fold2", 0.6),
            row("csf_volume", true, "fold1", 0.7),
            row("csf_volume", true, "fold2", 0.8),
        ];
        let summary = summary_frame(&rows).unwrap();
        assert!((column_f64(&summary, "s", "balanced_accuracy_mean").unwrap()[0] - 0.9).abs() < 1e-12);
        assert_eq!(column_f64(&summary, "s", "holdout_balanced_accuracy").unwrap()[0], 1.0);
        assert!(column_f64(&summary, "s", "holdout_balanced_accuracy").unwrap()[1].is_nan());
        assert_eq!(column_str(&summary, "s", "shortcut_ok").unwrap(), vec!["", "true", "false"]);
        let cnn = DataFrame::new(
            2,
            vec![
                Column::new("metric".into(), ["accuracy", "balanced_accuracy"]),
                Column::new("mean".into(), [0.7, 0.6]),
            ],
        )
        .unwrap();
        let text = interpretation(&summary, Some(&cnn)).unwrap();
        assert!(text.contains("0.90") && text.contains("CNN's 0.60"), "{text}");
        assert!(
            text.contains("`csf_volume` (balanced accuracy 0.75 ± 0.07, AUC 0.75)") && !text.contains("`visit` ("),
            "{text}"
        );
        let passing = summary_frame(&rows[..5]).unwrap();
        let text = interpretation(&passing, None).unwrap();
        assert!(text.contains("highest balanced accuracy: `visit`, 0.55; highest AUC 0.55"), "{text}");

        // Every prediction on one side of 0.5 (balanced accuracy 0.5) while the feature ranks
        // the classes well (AUC 0.9): it gives the label away, and fails.
        let ranked = |split: &str| BaselineRow { roc_auc: 0.9, ..row("visit", true, split, 0.5) };
        let summary = summary_frame(&[ranked("fold1"), ranked("fold2")]).unwrap();
        assert_eq!(column_str(&summary, "s", "shortcut_ok").unwrap(), vec!["false"]);
        let text = interpretation(&summary, None).unwrap();
        assert!(text.contains("`visit` (balanced accuracy 0.50 ± 0.00, AUC 0.90)"), "{text}");
        // Anti-learning (AUC below 0.5 under cross-validation) is not a readable label.
        let inverted = |split: &str| BaselineRow { roc_auc: 0.3, ..row("visit", true, split, 0.45) };
        let summary = summary_frame(&[inverted("fold1"), inverted("fold2")]).unwrap();
        assert_eq!(column_str(&summary, "s", "shortcut_ok").unwrap(), vec!["true"]);
    }
}
