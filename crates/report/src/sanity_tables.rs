//! The tables of the sanity stage (`sanity/`, see [`SanityLayout`](adni_data::run_layout::SanityLayout)):
//! one row type per table, whose associated constants are the table's column names. The runner
//! (`cargo xtask sanity`) collects the rows and writes them with [`CascadeRow::frame`], …;
//! [`crate::sanity`], [`crate::faithfulness`] and [`crate::sanity_report`] read the tables back
//! by the same constants, so no column name is typed twice.
//!
//! | table | row |
//! |---|---|
//! | `cascade.csv` | [`CascadeRow`]: one map of a cascade step against the trained model's |
//! | `data_randomisation.csv` | [`DataRandomisationRow`]: the shuffled-label model's map against the trained one's, and its ground-truth scores |
//! | `shuffled_model.csv` | [`ShuffledModelRow`]: the trained and the shuffled-label model on the test scans |
//! | `deletion.csv` | [`DeletionRow`]: one step of a deletion curve |
//! | `aopc.csv` | [`AopcRow`]: one deletion curve's AOPC |
//! | `timing.csv` | [`PartSeconds`]: seconds per part of the stage |

use adni_data::table::{IMAGE_ID, PTID};
use polars::prelude::{Column, DataFrame};

use crate::Result;
use crate::ground_truth::CHANCE_COLUMN;

/// Column `method` (every table but the shuffled model's and the timing).
pub const METHOD: &str = "method";
/// Column `step` (cascade and deletion tables).
pub const STEP: &str = "step";
/// Column `spearman` (cascade and data randomisation).
pub const SPEARMAN: &str = "spearman";
/// Column `ssim` (cascade and data randomisation).
pub const SSIM: &str = "ssim";
/// Column `kind` (deletion and AOPC: [`crate::sanity::VOXELS`] or [`crate::sanity::REGIONS`]).
pub const KIND: &str = "kind";
/// Column `ordering` (deletion and AOPC: [`crate::sanity::RELEVANCE_ORDER`] or
/// [`crate::sanity::RANDOM_ORDER`]).
pub const ORDERING: &str = "ordering";
/// Column `n_scans` (the shuffled model's table, and the summaries of the others).
pub const N_SCANS: &str = "n_scans";

fn strings<'a, T>(rows: &'a [T], f: impl Fn(&'a T) -> &'a str) -> Vec<&'a str> {
    rows.iter().map(f).collect()
}

fn numbers<T>(rows: &[T], f: impl Fn(&T) -> f64) -> Vec<f64> {
    rows.iter().map(f).collect()
}

fn integers<T>(rows: &[T], f: impl Fn(&T) -> i64) -> Vec<i64> {
    rows.iter().map(f).collect()
}

/// A row of `cascade.csv`: after `step` layers were randomised from the output down (the last
/// one `layer`), one method's map of one scan compared with the trained model's.
#[derive(Debug, Clone, PartialEq)]
pub struct CascadeRow {
    /// Layers randomised (1-based).
    pub step: usize,
    /// The last layer randomised.
    pub layer: String,
    /// Method name.
    pub method: String,
    /// Patient id.
    pub ptid: String,
    /// Image id.
    pub image_id: i64,
    /// Spearman rank correlation with the trained model's map (inside the brain).
    pub spearman: f64,
    /// SSIM with the trained model's map.
    pub ssim: f64,
    /// Whether the trained model's map ranks the brain's voxels (column
    /// [`crate::sanity::TRAINED_MAP_RANKS`]); false for a constant map, whose similarities are NaN.
    pub trained_map_ranks: bool,
}

impl CascadeRow {
    /// Column `layer`.
    pub const LAYER: &'static str = "layer";

    /// The table.
    pub fn frame(rows: &[CascadeRow]) -> Result<DataFrame> {
        Ok(DataFrame::new(
            rows.len(),
            vec![
                Column::new(STEP.into(), integers(rows, |r| r.step as i64)),
                Column::new(Self::LAYER.into(), strings(rows, |r| &r.layer)),
                Column::new(METHOD.into(), strings(rows, |r| &r.method)),
                Column::new(PTID.into(), strings(rows, |r| &r.ptid)),
                Column::new(IMAGE_ID.into(), integers(rows, |r| r.image_id)),
                Column::new(SPEARMAN.into(), numbers(rows, |r| r.spearman)),
                Column::new(SSIM.into(), numbers(rows, |r| r.ssim)),
                Column::new(
                    crate::sanity::TRAINED_MAP_RANKS.into(),
                    rows.iter().map(|r| r.trained_map_ranks).collect::<Vec<_>>(),
                ),
            ],
        )?)
    }
}

/// The ground-truth scores of a map in [`DataRandomisationRow`] (all NaN and `None` without a
/// ground truth).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TruthScores {
    /// Relevance mass inside the planted atrophy.
    pub mass_accuracy: f64,
    /// Rank accuracy.
    pub rank_accuracy: f64,
    /// Whether the map's maximum lies in the planted atrophy.
    pub pointing_hit: Option<bool>,
    /// The atrophy's share of the brain (the chance level of the mass accuracy).
    pub truth_fraction: f64,
}

impl TruthScores {
    /// No ground truth.
    pub const NONE: TruthScores =
        TruthScores { mass_accuracy: f64::NAN, rank_accuracy: f64::NAN, pointing_hit: None, truth_fraction: f64::NAN };
}

/// A row of `data_randomisation.csv`: the shuffled-label model's map of a scan against the
/// trained model's, and against the planted ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct DataRandomisationRow {
    /// Method name.
    pub method: String,
    /// Patient id.
    pub ptid: String,
    /// Image id.
    pub image_id: i64,
    /// Spearman rank correlation with the trained model's map.
    pub spearman: f64,
    /// SSIM with the trained model's map.
    pub ssim: f64,
    /// The shuffled-label model's map against the ground truth.
    pub truth: TruthScores,
}

impl DataRandomisationRow {
    /// Column `mass_accuracy`.
    pub const MASS_ACCURACY: &'static str = "mass_accuracy";
    /// Column `rank_accuracy`.
    pub const RANK_ACCURACY: &'static str = "rank_accuracy";
    /// Column `pointing_hit`.
    pub const POINTING_HIT: &'static str = "pointing_hit";
    /// Column `truth_fraction` (the ground-truth tables' chance column).
    pub const TRUTH_FRACTION: &'static str = CHANCE_COLUMN;

    /// The table.
    pub fn frame(rows: &[DataRandomisationRow]) -> Result<DataFrame> {
        Ok(DataFrame::new(
            rows.len(),
            vec![
                Column::new(METHOD.into(), strings(rows, |r| &r.method)),
                Column::new(PTID.into(), strings(rows, |r| &r.ptid)),
                Column::new(IMAGE_ID.into(), integers(rows, |r| r.image_id)),
                Column::new(SPEARMAN.into(), numbers(rows, |r| r.spearman)),
                Column::new(SSIM.into(), numbers(rows, |r| r.ssim)),
                Column::new(Self::MASS_ACCURACY.into(), numbers(rows, |r| r.truth.mass_accuracy)),
                Column::new(Self::RANK_ACCURACY.into(), numbers(rows, |r| r.truth.rank_accuracy)),
                Column::new(
                    Self::POINTING_HIT.into(),
                    rows.iter().map(|r| r.truth.pointing_hit).collect::<Vec<Option<bool>>>(),
                ),
                Column::new(Self::TRUTH_FRACTION.into(), numbers(rows, |r| r.truth.truth_fraction)),
            ],
        )?)
    }
}

/// A row of `shuffled_model.csv`: a model's metrics on the test scans against the true labels
/// ([`Self::TRAINED`], [`Self::SHUFFLED`]), or the shuffled-label model's on its training scans
/// against the shuffled labels ([`Self::SHUFFLED_FIT`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ShuffledModelRow {
    /// [`Self::TRAINED`], [`Self::SHUFFLED`] or [`Self::SHUFFLED_FIT`].
    pub model: &'static str,
    /// Test scans.
    pub n_scans: usize,
    /// Accuracy.
    pub accuracy: f64,
    /// Balanced accuracy.
    pub balanced_accuracy: f64,
    /// ROC AUC of P(AD).
    pub roc_auc: f64,
}

impl ShuffledModelRow {
    /// Column `model`.
    pub const MODEL: &'static str = "model";
    /// Column `accuracy`.
    pub const ACCURACY: &'static str = "accuracy";
    /// Column `balanced_accuracy`.
    pub const BALANCED_ACCURACY: &'static str = "balanced_accuracy";
    /// Column `roc_auc`.
    pub const ROC_AUC: &'static str = "roc_auc";
    /// The metric columns, in order.
    pub const METRICS: [&'static str; 3] = [Self::ACCURACY, Self::BALANCED_ACCURACY, Self::ROC_AUC];
    /// The model trained on the true labels.
    pub const TRAINED: &'static str = "trained";
    /// The model trained on shuffled labels.
    pub const SHUFFLED: &'static str = "shuffled";
    /// The model trained on shuffled labels, scored on its own training scans against the
    /// shuffled labels it was trained with: how well it fitted (memorised) them.
    pub const SHUFFLED_FIT: &'static str = "shuffled_fit";

    /// The table.
    pub fn frame(rows: &[ShuffledModelRow]) -> Result<DataFrame> {
        Ok(DataFrame::new(
            rows.len(),
            vec![
                Column::new(Self::MODEL.into(), rows.iter().map(|r| r.model).collect::<Vec<&str>>()),
                Column::new(N_SCANS.into(), integers(rows, |r| r.n_scans as i64)),
                Column::new(Self::ACCURACY.into(), numbers(rows, |r| r.accuracy)),
                Column::new(Self::BALANCED_ACCURACY.into(), numbers(rows, |r| r.balanced_accuracy)),
                Column::new(Self::ROC_AUC.into(), numbers(rows, |r| r.roc_auc)),
            ],
        )?)
    }
}

/// Which deletion curve a [`DeletionRow`] or an [`AopcRow`] belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveId {
    /// [`crate::sanity::VOXELS`] or [`crate::sanity::REGIONS`].
    pub kind: &'static str,
    /// Method name.
    pub method: String,
    /// [`crate::sanity::RELEVANCE_ORDER`] or [`crate::sanity::RANDOM_ORDER`].
    pub ordering: &'static str,
    /// Patient id.
    pub ptid: String,
    /// Image id.
    pub image_id: i64,
}

/// The identifying columns of a curve's rows.
fn curve_columns<T>(rows: &[T], id: impl Fn(&T) -> &CurveId) -> Vec<Column> {
    vec![
        Column::new(KIND.into(), rows.iter().map(|r| id(r).kind).collect::<Vec<&str>>()),
        Column::new(METHOD.into(), rows.iter().map(|r| id(r).method.as_str()).collect::<Vec<&str>>()),
        Column::new(ORDERING.into(), rows.iter().map(|r| id(r).ordering).collect::<Vec<&str>>()),
        Column::new(PTID.into(), rows.iter().map(|r| id(r).ptid.as_str()).collect::<Vec<&str>>()),
        Column::new(IMAGE_ID.into(), rows.iter().map(|r| id(r).image_id).collect::<Vec<i64>>()),
    ]
}

/// A row of `deletion.csv`: the score after one step of a deletion curve.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletionRow {
    /// The curve.
    pub curve: CurveId,
    /// Step (0 = nothing deleted).
    pub step: usize,
    /// The share of the voxels deleted: of the brain's voxels ([`crate::sanity::VOXELS`]), or of
    /// the atlas voxels inside the brain ([`crate::sanity::REGIONS`]: whole regions most relevant
    /// first, the last one cut to the step's count). Every ordering deletes the same number of
    /// voxels at a step.
    pub fraction: f64,
    /// The number of voxels deleted by this step (column [`Self::VOXELS_DELETED`]).
    pub voxels_deleted: usize,
    /// P(explained class) after the step.
    pub score: f64,
    /// Whether the method's map ranks the scan's voxels (column [`crate::sanity::RANKS_VOXELS`];
    /// false for a constant map, also on the random-order rows under that method).
    pub ranks_voxels: bool,
}

impl DeletionRow {
    /// Column `fraction`.
    pub const FRACTION: &'static str = "fraction";
    /// Column `voxels_deleted` (absent from tables written before it; the summaries ignore it).
    pub const VOXELS_DELETED: &'static str = "voxels_deleted";
    /// Column `score`.
    pub const SCORE: &'static str = "score";

    /// The table.
    pub fn frame(rows: &[DeletionRow]) -> Result<DataFrame> {
        let mut cols = curve_columns(rows, |r| &r.curve);
        cols.push(Column::new(STEP.into(), integers(rows, |r| r.step as i64)));
        cols.push(Column::new(Self::FRACTION.into(), numbers(rows, |r| r.fraction)));
        cols.push(Column::new(Self::VOXELS_DELETED.into(), integers(rows, |r| r.voxels_deleted as i64)));
        cols.push(Column::new(Self::SCORE.into(), numbers(rows, |r| r.score)));
        cols.push(Column::new(
            crate::sanity::RANKS_VOXELS.into(),
            rows.iter().map(|r| r.ranks_voxels).collect::<Vec<_>>(),
        ));
        Ok(DataFrame::new(rows.len(), cols)?)
    }
}

/// A row of `aopc.csv`: one curve's area over the perturbation curve.
#[derive(Debug, Clone, PartialEq)]
pub struct AopcRow {
    /// The curve.
    pub curve: CurveId,
    /// Its AOPC.
    pub aopc: f64,
}

impl AopcRow {
    /// Column `aopc`.
    pub const AOPC: &'static str = "aopc";
    /// The columns that name a curve group in the AOPC summary
    /// ([`crate::faithfulness::summarise_aopc`]).
    pub const GROUP: [&'static str; 3] = [KIND, METHOD, ORDERING];
    /// Column `note` of the report's AOPC summary: why a row is not judged ([`Self::note`]).
    pub const NOTE: &'static str = "note";
    /// Methods whose region-deletion AOPC is circular: area occlusion's map is, region by region,
    /// the drop in P(explained class) when that atlas region is set to the occlusion value, which
    /// is the very perturbation the region deletion applies (one region at a time). Its region
    /// curve ranks regions by what it measures, so it is not evidence of faithfulness: it
    /// is reported but not judged.
    pub const CIRCULAR_REGION_METHODS: [&'static str; 1] = ["area-occlusion"];
    /// The text of [`Self::NOTE`] for a circular curve.
    pub const CIRCULAR: &'static str =
        "circular: not judged (the map is the score drop of deleting each region, the perturbation this test applies)";

    /// Why the AOPC of `method`'s `kind` curves cannot judge faithfulness, if it cannot: the
    /// region deletion of a method in [`Self::CIRCULAR_REGION_METHODS`] is [`Self::CIRCULAR`].
    pub fn note(kind: &str, method: &str) -> Option<&'static str> {
        (kind == crate::sanity::REGIONS && Self::CIRCULAR_REGION_METHODS.contains(&method)).then_some(Self::CIRCULAR)
    }

    /// The table.
    pub fn frame(rows: &[AopcRow]) -> Result<DataFrame> {
        let mut cols = curve_columns(rows, |r| &r.curve);
        cols.push(Column::new(Self::AOPC.into(), numbers(rows, |r| r.aopc)));
        Ok(DataFrame::new(rows.len(), cols)?)
    }
}

/// A row of the sanity stage's `timing.csv`: one part's wall-clock seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct PartSeconds {
    /// The part (`cascade`, `faithfulness`, …).
    pub part: &'static str,
    /// Seconds.
    pub seconds: f64,
}

impl PartSeconds {
    /// Column `part`.
    pub const PART: &'static str = "part";
    /// Column `seconds`.
    pub const SECONDS: &'static str = "seconds";

    /// The table.
    pub fn frame(rows: &[PartSeconds]) -> Result<DataFrame> {
        Ok(DataFrame::new(
            rows.len(),
            vec![
                Column::new(Self::PART.into(), rows.iter().map(|r| r.part).collect::<Vec<&str>>()),
                Column::new(Self::SECONDS.into(), numbers(rows, |r| r.seconds)),
            ],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ground_truth::Bootstrap;
    use crate::sanity::{RANDOM_ORDER, RELEVANCE_ORDER, VOXELS};

    fn names(df: &DataFrame) -> Vec<String> {
        df.get_column_names().into_iter().map(|n| n.to_string()).collect()
    }

    fn curve(ordering: &'static str, ptid: &str, image_id: i64) -> CurveId {
        CurveId { kind: VOXELS, method: "lrp".into(), ordering, ptid: ptid.into(), image_id }
    }

    #[test]
    fn written_tables_have_the_documented_columns() {
        let c = CascadeRow {
            step: 1,
            layer: "dense_3".into(),
            method: "lrp".into(),
            ptid: "p".into(),
            image_id: 1,
            spearman: 0.5,
            ssim: 0.25,
            trained_map_ranks: true,
        };
        assert_eq!(
            names(&CascadeRow::frame(&[c]).unwrap()),
            ["step", "layer", "method", "PTID", "Image.ID", "spearman", "ssim", "trained_map_ranks"]
        );
        let d = DataRandomisationRow {
            method: "lrp".into(),
            ptid: "p".into(),
            image_id: 1,
            spearman: 0.1,
            ssim: 0.2,
            truth: TruthScores::NONE,
        };
        let df = DataRandomisationRow::frame(&[d]).unwrap();
        assert_eq!(
            names(&df),
            [
                "method",
                "PTID",
                "Image.ID",
                "spearman",
                "ssim",
                "mass_accuracy",
                "rank_accuracy",
                "pointing_hit",
                "truth_fraction"
            ]
        );
        assert_eq!(df.column(DataRandomisationRow::POINTING_HIT).unwrap().null_count(), 1);
        let s = ShuffledModelRow {
            model: ShuffledModelRow::SHUFFLED,
            n_scans: 4,
            accuracy: 0.5,
            balanced_accuracy: 0.5,
            roc_auc: 0.5,
        };
        assert_eq!(
            names(&ShuffledModelRow::frame(&[s]).unwrap()),
            ["model", "n_scans", "accuracy", "balanced_accuracy", "roc_auc"]
        );
        let t = PartSeconds::frame(&[PartSeconds { part: "cascade", seconds: 1.5 }]).unwrap();
        assert_eq!(names(&t), ["part", "seconds"]);
    }

    #[test]
    fn deletion_and_aopc_tables_round_trip_through_the_summaries() {
        // two patients, one curve per ordering; the relevance order deletes faster
        let mut deletion = Vec::new();
        let mut aopc = Vec::new();
        for (ptid, id) in [("p1", 1), ("p2", 2)] {
            for (ordering, fall) in [(RELEVANCE_ORDER, 0.5), (RANDOM_ORDER, 0.1)] {
                for (step, fraction) in [(0, 0.0), (1, 0.5)] {
                    let score = 0.9 - fall * step as f64;
                    deletion.push(DeletionRow {
                        curve: curve(ordering, ptid, id),
                        step,
                        fraction,
                        voxels_deleted: step * 50,
                        score,
                        ranks_voxels: true,
                    });
                }
                aopc.push(AopcRow { curve: curve(ordering, ptid, id), aopc: fall / 2.0 });
            }
        }
        let d = DeletionRow::frame(&deletion).unwrap();
        assert_eq!(
            names(&d),
            [
                "kind",
                "method",
                "ordering",
                "PTID",
                "Image.ID",
                "step",
                "fraction",
                "voxels_deleted",
                "score",
                "ranks_voxels"
            ]
        );
        let boot = Bootstrap { samples: 50, ..Bootstrap::default() };
        let s = crate::sanity::summarise_deletion(&d, VOXELS, &boot).unwrap();
        // one row per method, ordering and step, with both scans
        assert_eq!(s.height(), 4);
        let n = crate::tables::column_f64(&s, "s", N_SCANS).unwrap();
        assert!(n.iter().all(|&n| n == 2.0), "{n:?}");
        let a = AopcRow::frame(&aopc).unwrap();
        let s = crate::faithfulness::summarise_aopc(&a, &AopcRow::GROUP, &boot).unwrap();
        let mean = crate::tables::column_f64(&s, "s", "aopc_mean").unwrap();
        let ordering = crate::tables::column_str(&s, "s", ORDERING).unwrap();
        let of = |o: &str| mean[ordering.iter().position(|x| x == o).unwrap()];
        assert!((of(RELEVANCE_ORDER) - 0.25).abs() < 1e-12 && (of(RANDOM_ORDER) - 0.05).abs() < 1e-12);
    }
}
