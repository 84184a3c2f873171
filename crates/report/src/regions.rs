//! Relevance per atlas region: the study's score (relevance summed in a region ÷ relevance summed
//! in all regions), relevance density (sum ÷ region volume) and the rank of every region, with
//! left and right merged as in the paper (AAL: 62 groups; CerebrA: 51).
//!
//! The atlas must lie on the map's grid. [`place_atlas`] puts it there, by world coordinates by
//! default ([`Placement::World`]); the original study's stretch of the atlas array onto the image
//! array is the named, paper-faithful option [`Placement::Zoom`].

use std::collections::HashMap;

use adni_data::atlas::Atlas;
pub use adni_data::atlas::Placement;
use adni_data::volume::Grid;
use ndarray::{Array3, ArrayView3, Zip};
use polars::prelude::*;

use crate::error::{ReportError, Result};

/// The atlas put onto the map grid `grid` (see [`Atlas::resample_to`]). Use
/// [`Placement::World`] (the default) unless reproducing the paper's misplacement on purpose.
pub fn place_atlas(atlas: &Atlas, grid: &Grid, placement: Placement) -> Result<Atlas> {
    Ok(atlas.resample_to(grid, placement)?)
}

/// Checks that a map is finite; the error names the role of the map and the first bad voxel.
pub(crate) fn check_finite(map: &ArrayView3<f32>, what: &str) -> Result<()> {
    if let Some((idx, v)) = map.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(ReportError::invalid(
            what,
            format!("voxel {idx:?} holds {v}; relevance maps must be finite (replace NaN and inf first)"),
        ));
    }
    Ok(())
}

/// Sums and voxel counts of `map` per label value of `labels` (same shape; label 0 skipped).
fn label_sums(map: &ArrayView3<f32>, labels: &ArrayView3<i32>) -> HashMap<i32, (f64, u64)> {
    let mut acc: HashMap<i32, (f64, u64)> = HashMap::new();
    // consecutive voxels mostly share a label: keep the last entry at hand
    let mut last: Option<(i32, f64, u64)> = None;
    Zip::from(map).and(labels).for_each(|&v, &l| {
        if l == 0 {
            return;
        }
        match last.as_mut() {
            Some((cur, s, n)) if *cur == l => {
                *s += f64::from(v);
                *n += 1;
            }
            _ => {
                if let Some((cur, s, n)) = last.take() {
                    let e = acc.entry(cur).or_insert((0.0, 0));
                    e.0 += s;
                    e.1 += n;
                }
                last = Some((l, f64::from(v), 1));
            }
        }
    });
    if let Some((cur, s, n)) = last {
        let e = acc.entry(cur).or_insert((0.0, 0));
        e.0 += s;
        e.1 += n;
    }
    acc
}

/// One row per atlas region, or per left/right pair when `merge_pairs` (the paper's 62 AAL
/// groups; unpaired regions such as the vermis stay alone), ranked by score:
///
/// | column | type | meaning |
/// |---|---|---|
/// | `region` | str | region name (the pair name when merged, e.g. `Hippocampus`) |
/// | `labels` | str | the atlas label values of the row, `;`-separated (e.g. `37;38`) |
/// | `voxels` | u64 | number of voxels of the row on the map's grid |
/// | `relevance_sum` | f64 | relevance summed over those voxels |
/// | `score` | f64 | `relevance_sum` ÷ relevance summed over all regions (the paper's score) |
/// | `density` | f64 | `relevance_sum ÷ voxels` (NaN for a region with no voxel on this grid) |
/// | `rank` | u32 | 1 = highest score; null where the score is NaN |
///
/// Rows are sorted by rank (ties broken by atlas order, so ranks are ordinal), rows without a
/// rank last. Voxels outside every region (label 0) count nowhere; the denominator is relevance
/// inside regions only, as in the original.
///
/// Negative values are summed as they are (no clipping), as the original did; the paper's maps
/// are non-negative (absolute gradients, clipped occlusion), where every score lies in [0, 1] and
/// the scores add up to 1. With signed maps a score can be negative or above 1. When the total
/// over all regions is not positive (an all-zero map, or one with no relevance inside the atlas)
/// every score is NaN and no row has a rank; `relevance_sum` and `density` are still given.
///
/// Errors: the atlas is not on the map's grid (the message names both shapes), or the map holds
/// NaN or infinity.
pub fn region_scores(map: ArrayView3<f32>, atlas: &Atlas, merge_pairs: bool) -> Result<DataFrame> {
    if map.shape() != atlas.labels.shape() {
        return Err(ReportError::Shape(format!(
            "relevance map has shape {:?} but atlas `{}` has shape {:?}: put the atlas on the map's grid first \
             (`report::regions::place_atlas`)",
            map.shape(),
            atlas.name,
            atlas.labels.shape()
        )));
    }
    check_finite(&map, "relevance map")?;
    let sums = label_sums(&map, &atlas.labels.view());
    let groups: Vec<(String, Vec<i32>)> = if merge_pairs {
        atlas.pair_groups()
    } else {
        atlas.regions.iter().map(|r| (r.name.clone(), vec![r.label])).collect()
    };
    let rows: Vec<(String, String, u64, f64)> = groups
        .into_iter()
        .map(|(name, labels)| {
            let (s, n) = labels.iter().filter_map(|l| sums.get(l)).fold((0.0, 0), |(s, n), (a, b)| (s + a, n + b));
            let labels = labels.iter().map(i32::to_string).collect::<Vec<_>>().join(";");
            (name, labels, n, s)
        })
        .collect();
    let total: f64 = rows.iter().map(|r| r.3).sum();
    let score = |s: f64| if total > 0.0 { s / total } else { f64::NAN };
    // ordinal rank: by score descending, ties in atlas order, NaN scores unranked
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (score(rows[a].3), score(rows[b].3));
        match (sa.is_nan(), sb.is_nan()) {
            (false, false) => sb.total_cmp(&sa).then(a.cmp(&b)),
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            (true, true) => a.cmp(&b),
        }
    });
    let sorted: Vec<&(String, String, u64, f64)> = order.iter().map(|&i| &rows[i]).collect();
    let ranks: Vec<Option<u32>> =
        sorted.iter().enumerate().map(|(pos, r)| (!score(r.3).is_nan()).then_some(pos as u32 + 1)).collect();
    let n = sorted.len();
    Ok(DataFrame::new(
        n,
        vec![
            Column::new("region".into(), sorted.iter().map(|r| r.0.as_str()).collect::<Vec<_>>()),
            Column::new("labels".into(), sorted.iter().map(|r| r.1.as_str()).collect::<Vec<_>>()),
            Column::new("voxels".into(), sorted.iter().map(|r| r.2).collect::<Vec<u64>>()),
            Column::new("relevance_sum".into(), sorted.iter().map(|r| r.3).collect::<Vec<f64>>()),
            Column::new("score".into(), sorted.iter().map(|r| score(r.3)).collect::<Vec<f64>>()),
            Column::new(
                "density".into(),
                sorted.iter().map(|r| if r.2 > 0 { r.3 / r.2 as f64 } else { f64::NAN }).collect::<Vec<f64>>(),
            ),
            Column::new("rank".into(), ranks),
        ],
    )?)
}

/// The voxel-wise mean of maps of one shape (for the group averages: AD, CN, all). Errors on an
/// empty list or differing shapes.
pub fn mean_map(maps: &[ArrayView3<f32>]) -> Result<Array3<f32>> {
    let first = maps.first().ok_or_else(|| ReportError::invalid("maps", "no maps to average"))?;
    let mut acc = Array3::<f64>::zeros(first.raw_dim());
    for (i, m) in maps.iter().enumerate() {
        if m.shape() != first.shape() {
            return Err(ReportError::Shape(format!(
                "map {i} has shape {:?}, map 0 has shape {:?}: maps to average must share a grid",
                m.shape(),
                first.shape()
            )));
        }
        Zip::from(&mut acc).and(m).for_each(|a, &v| *a += f64::from(v));
    }
    let n = maps.len() as f64;
    Ok(acc.mapv(|a| (a / n) as f32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{column_f64, column_str};
    use adni_data::atlas::Region;
    use adni_data::volume::Affine;

    /// A 6×4×4 atlas: x 0–1 `A_L` (1), x 2–3 `A_R` (2), x 4 `Vermis` (3), x 5 background.
    fn toy_atlas() -> Atlas {
        let labels = Array3::from_shape_fn((6, 4, 4), |(i, _, _)| match i {
            0 | 1 => 1,
            2 | 3 => 2,
            4 => 3,
            _ => 0,
        });
        let regions = vec![Region::from_name(1, "A_L"), Region::from_name(2, "A_R"), Region::from_name(3, "Vermis")];
        Atlas::new("toy", labels, Affine::identity(), regions).unwrap()
    }

    #[test]
    fn all_relevance_in_one_label_scores_one_there() {
        let atlas = toy_atlas();
        let map = Array3::from_shape_fn((6, 4, 4), |(i, _, _)| if i == 4 { 2.0f32 } else { 0.0 });
        let df = region_scores(map.view(), &atlas, false).unwrap();
        assert_eq!(column_str(&df, "t", "region").unwrap(), vec!["Vermis", "A_L", "A_R"]);
        assert_eq!(column_f64(&df, "t", "score").unwrap(), vec![1.0, 0.0, 0.0]);
        assert_eq!(column_f64(&df, "t", "relevance_sum").unwrap(), vec![32.0, 0.0, 0.0]);
        assert_eq!(column_f64(&df, "t", "density").unwrap(), vec![2.0, 0.0, 0.0]);
        assert_eq!(column_f64(&df, "t", "voxels").unwrap(), vec![16.0, 32.0, 32.0]);
        assert_eq!(column_f64(&df, "t", "rank").unwrap(), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn left_and_right_merge_into_one_row_and_background_is_ignored() {
        let atlas = toy_atlas();
        // 1 per voxel on the left, 3 on the right, 100 in the background (not counted)
        let map = Array3::from_shape_fn((6, 4, 4), |(i, _, _)| match i {
            0 | 1 => 1.0f32,
            2 | 3 => 3.0,
            4 => 0.0,
            _ => 100.0,
        });
        let df = region_scores(map.view(), &atlas, true).unwrap();
        assert_eq!(df.height(), 2);
        assert_eq!(column_str(&df, "t", "region").unwrap(), vec!["A", "Vermis"]);
        assert_eq!(column_str(&df, "t", "labels").unwrap(), vec!["1;2", "3"]);
        assert_eq!(column_f64(&df, "t", "relevance_sum").unwrap(), vec![128.0, 0.0]);
        assert_eq!(column_f64(&df, "t", "score").unwrap(), vec![1.0, 0.0]);
        assert_eq!(column_f64(&df, "t", "density").unwrap(), vec![2.0, 0.0]);
        // unmerged: right 96/128, left 32/128
        let df = region_scores(map.view(), &atlas, false).unwrap();
        assert_eq!(column_str(&df, "t", "region").unwrap(), vec!["A_R", "A_L", "Vermis"]);
        assert_eq!(column_f64(&df, "t", "score").unwrap(), vec![0.75, 0.25, 0.0]);
    }

    #[test]
    fn all_zero_map_gives_nan_scores_and_no_rank() {
        let atlas = toy_atlas();
        let map = Array3::<f32>::zeros((6, 4, 4));
        let df = region_scores(map.view(), &atlas, true).unwrap();
        assert!(column_f64(&df, "t", "score").unwrap().iter().all(|s| s.is_nan()));
        assert_eq!(df.column("rank").unwrap().null_count(), 2);
        assert_eq!(column_f64(&df, "t", "density").unwrap(), vec![0.0, 0.0]);
    }

    #[test]
    fn wrong_grid_and_non_finite_maps_are_errors() {
        let atlas = toy_atlas();
        let err = region_scores(Array3::<f32>::zeros((5, 4, 4)).view(), &atlas, true).unwrap_err().to_string();
        assert!(err.contains("[5, 4, 4]") && err.contains("[6, 4, 4]"), "{err}");
        let mut map = Array3::<f32>::zeros((6, 4, 4));
        map[[1, 2, 3]] = f32::NAN;
        let err = region_scores(map.view(), &atlas, true).unwrap_err().to_string();
        assert!(err.contains("(1, 2, 3)"), "{err}");
    }

    #[test]
    fn world_placement_follows_the_affine_and_zoom_ignores_it() {
        // atlas of 4 voxels along x at 2 mm from world x = 0: label 1 at x ∈ {0, 2}, 2 at {4, 6}
        let labels = Array3::from_shape_fn((4, 1, 1), |(i, _, _)| if i < 2 { 1 } else { 2 });
        let regions = vec![Region::from_name(1, "A_L"), Region::from_name(2, "A_R")];
        let atlas = Atlas::new("toy", labels, Affine::from_scale_offset([2.0, 1.0, 1.0], [0.0; 3]), regions).unwrap();
        // map grid: 8 voxels at 1 mm, starting 2 mm to the left of the atlas (world x = −2 … 5)
        let grid = Grid { shape: [8, 1, 1], affine: Affine::from_scale_offset([1.0; 3], [-2.0, 0.0, 0.0]) };
        let world = place_atlas(&atlas, &grid, Placement::World).unwrap();
        let zoom = place_atlas(&atlas, &grid, Placement::Zoom).unwrap();
        // world x = i − 2 reads atlas voxel ⌊x/2 + ½⌋: −1 (outside), 0, 0, 1, 1, 2, 2, 3
        assert_eq!(world.labels.iter().copied().collect::<Vec<_>>(), vec![0, 1, 1, 1, 1, 2, 2, 2]);
        assert_eq!(zoom.labels.iter().copied().collect::<Vec<_>>(), vec![1, 1, 1, 1, 2, 2, 2, 2]);
        // relevance only at world x = −2 (map voxel 0): inside no region by world placement,
        // inside `A` by the zoom
        let mut map = Array3::<f32>::zeros((8, 1, 1));
        map[[0, 0, 0]] = 1.0;
        let w = region_scores(map.view(), &world, true).unwrap();
        assert!(column_f64(&w, "t", "score").unwrap().iter().all(|s| s.is_nan()));
        let z = region_scores(map.view(), &zoom, true).unwrap();
        assert_eq!(column_f64(&z, "t", "score").unwrap(), vec![1.0]);
    }

    #[test]
    fn mean_map_averages_and_checks_shapes() {
        let a = Array3::from_elem((2, 2, 2), 1.0f32);
        let b = Array3::from_elem((2, 2, 2), 3.0f32);
        assert!(mean_map(&[a.view(), b.view()]).unwrap().iter().all(|&v| v == 2.0));
        let c = Array3::from_elem((2, 2, 3), 3.0f32);
        assert!(mean_map(&[a.view(), c.view()]).is_err());
        assert!(mean_map(&[]).is_err());
    }
}
