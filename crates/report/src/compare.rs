//! Method against method: the original study's distance (Euclidean distance between maps each
//! divided by its sum), Pearson correlation over voxels, and the overlap of the top-10 regions
//! (Böhle et al. 2019). Distance and correlation take a mask (the brain mask the model's inputs
//! were cut with): most of the grid lies outside the brain, where some methods put much of their
//! relevance (a smooth or upsampled map spills over the edge) and others none, so over the whole
//! grid the background decides much of both numbers.
//!
//! The same measures serve the randomised-weights sanity check (Adebayo et al. 2018): compare a
//! method's map of the trained model with its map of a model with randomised weights, under two
//! names.

use std::collections::HashSet;

use ndarray::ArrayView3;
use polars::prelude::*;

use crate::error::{ReportError, Result};
use crate::regions::check_finite;
use crate::tables::{column_f64, column_str};

/// The number of top regions compared by [`method_comparison`].
pub const TOP_REGIONS: usize = 10;

/// Errors unless `a`, `b` and `mask` (when given) share one shape.
fn same_shape(a: &ArrayView3<f32>, b: &ArrayView3<f32>, mask: Option<&ArrayView3<bool>>) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(ReportError::Shape(format!(
            "maps to compare differ in shape: {:?} and {:?}; compare maps on one grid",
            a.shape(),
            b.shape()
        )));
    }
    if let Some(m) = mask
        && m.shape() != a.shape()
    {
        return Err(ReportError::Shape(format!(
            "maps to compare have shape {:?} but the mask has shape {:?}; put the maps and the mask on one grid",
            a.shape(),
            m.shape()
        )));
    }
    Ok(())
}

/// The pairs of values of `a` and `b` at the voxels inside `mask` (every voxel without one).
fn paired_values(a: &ArrayView3<f32>, b: &ArrayView3<f32>, mask: Option<&ArrayView3<bool>>) -> Vec<(f64, f64)> {
    let pairs = a.iter().zip(b.iter()).map(|(&x, &y)| (f64::from(x), f64::from(y)));
    match mask {
        None => pairs.collect(),
        Some(m) => pairs.zip(m.iter()).filter(|(_, k)| **k).map(|(p, _)| p).collect(),
    }
}

/// `‖a/Σa − b/Σb‖₂` over the voxels inside `mask` (every voxel without one), sums taken over the
/// same voxels: the original study's distance, on the brain when given the brain mask. NaN unless
/// both sums are positive (an all-zero map has no normalised form). Errors on differing shapes.
pub fn normalised_distance(a: ArrayView3<f32>, b: ArrayView3<f32>, mask: Option<ArrayView3<bool>>) -> Result<f64> {
    same_shape(&a, &b, mask.as_ref())?;
    let v = paired_values(&a, &b, mask.as_ref());
    let sa: f64 = v.iter().map(|p| p.0).sum();
    let sb: f64 = v.iter().map(|p| p.1).sum();
    if !(sa > 0.0 && sb > 0.0) {
        return Ok(f64::NAN);
    }
    let d2: f64 = v.iter().map(|&(x, y)| (x / sa - y / sb).powi(2)).sum();
    Ok(d2.sqrt())
}

/// Pearson correlation of the two maps over the voxels inside `mask` (every voxel without one);
/// NaN when either map is constant there (or no voxel is compared). Errors on differing shapes.
pub fn correlation(a: ArrayView3<f32>, b: ArrayView3<f32>, mask: Option<ArrayView3<bool>>) -> Result<f64> {
    same_shape(&a, &b, mask.as_ref())?;
    let v = paired_values(&a, &b, mask.as_ref());
    if v.is_empty() {
        return Ok(f64::NAN);
    }
    let n = v.len() as f64;
    let ma = v.iter().map(|p| p.0).sum::<f64>() / n;
    let mb = v.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for &(x, y) in &v {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa <= 0.0 || sbb <= 0.0 {
        return Ok(f64::NAN);
    }
    Ok((sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0))
}

/// The regions ranked 1…k in a table of [`crate::regions::region_scores`] (fewer when fewer rows
/// have a rank).
fn top_regions(table: &DataFrame, what: &str, k: usize) -> Result<Vec<String>> {
    let names = column_str(table, what, "region")?;
    let ranks = column_f64(table, what, "rank")?;
    let mut ranked: Vec<(f64, String)> =
        ranks.into_iter().zip(names).filter(|(r, _)| r.is_finite() && *r >= 1.0 && *r <= k as f64).collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(ranked.into_iter().map(|(_, n)| n).collect())
}

/// `|top-k(a) ∩ top-k(b)| / k` for two region tables of [`crate::regions::region_scores`]
/// (columns `region`, `rank`). When a table has fewer than `k` ranked regions (a small atlas, or
/// regions without a score), `k` becomes the smaller count; NaN when a table has no ranked region.
pub fn top_k_overlap(a: &DataFrame, b: &DataFrame, k: usize) -> Result<f64> {
    let ta = top_regions(a, "region table a", k)?;
    let tb = top_regions(b, "region table b", k)?;
    let k_eff = k.min(ta.len()).min(tb.len());
    if k_eff == 0 {
        return Ok(f64::NAN);
    }
    let sa: HashSet<&String> = ta.iter().take(k_eff).collect();
    let shared = tb.iter().take(k_eff).filter(|r| sa.contains(r)).count();
    Ok(shared as f64 / k_eff as f64)
}

/// Every unordered pair of methods (in the order given), one row each:
///
/// | column | meaning |
/// |---|---|
/// | `method_a`, `method_b` | the two names |
/// | `distance` | [`normalised_distance`] within `mask` (the original's measure; 0 = same relative map) |
/// | `correlation` | [`correlation`] over the voxels within `mask` |
/// | `top10_overlap` | [`top_k_overlap`] with k = 10 on the region tables of the two methods |
///
/// `mask` is the brain mask on the maps' grid (`None`: the whole grid). `region_tables` are
/// looked up by method name; pass an empty slice to skip the overlap (the column is then NaN).
/// Errors: maps (or the mask) of differing shapes, non-finite values, or a method without a
/// region table when some were given.
pub fn method_comparison(
    maps: &[(String, ArrayView3<f32>)],
    region_tables: &[(String, DataFrame)],
    mask: Option<ArrayView3<bool>>,
) -> Result<DataFrame> {
    for (name, m) in maps {
        check_finite(m, &format!("map `{name}`"))?;
    }
    let table_of = |name: &str| -> Result<Option<&DataFrame>> {
        if region_tables.is_empty() {
            return Ok(None);
        }
        region_tables.iter().find(|(n, _)| n == name).map(|(_, t)| Some(t)).ok_or_else(|| {
            let known: Vec<&str> = region_tables.iter().map(|(n, _)| n.as_str()).collect();
            ReportError::invalid("region_tables", format!("no region table for method `{name}` (have {known:?})"))
        })
    };
    let (mut ma, mut mb, mut dist, mut corr, mut overlap) = (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..maps.len() {
        for j in i + 1..maps.len() {
            let (na, a) = &maps[i];
            let (nb, b) = &maps[j];
            ma.push(na.clone());
            mb.push(nb.clone());
            dist.push(normalised_distance(a.view(), b.view(), mask)?);
            corr.push(correlation(a.view(), b.view(), mask)?);
            overlap.push(match (table_of(na)?, table_of(nb)?) {
                (Some(ta), Some(tb)) => top_k_overlap(ta, tb, TOP_REGIONS)?,
                _ => f64::NAN,
            });
        }
    }
    Ok(DataFrame::new(
        ma.len(),
        vec![
            Column::new("method_a".into(), ma),
            Column::new("method_b".into(), mb),
            Column::new("distance".into(), dist),
            Column::new("correlation".into(), corr),
            Column::new("top10_overlap".into(), overlap),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn vol(v: &[f32]) -> Array3<f32> {
        Array3::from_shape_vec((v.len(), 1, 1), v.to_vec()).unwrap()
    }

    fn table(regions: &[&str]) -> DataFrame {
        DataFrame::new(
            regions.len(),
            vec![
                Column::new("region".into(), regions.to_vec()),
                Column::new("rank".into(), (1..=regions.len() as u32).collect::<Vec<_>>()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn distance_matches_hand_value() {
        // a/Σa = (0.25, 0.75, 0), b/Σb = (0.5, 0, 0.5): d² = 0.0625 + 0.5625 + 0.25 = 0.875
        let a = vol(&[1.0, 3.0, 0.0]);
        let b = vol(&[2.0, 0.0, 2.0]);
        let d = normalised_distance(a.view(), b.view(), None).unwrap();
        assert!((d - 0.875f64.sqrt()).abs() < 1e-12, "{d}");
        // scale does not matter
        let d2 = normalised_distance(a.view(), (&a * 10.0).view(), None).unwrap();
        assert!(d2.abs() < 1e-12);
        assert!(normalised_distance(a.view(), vol(&[0.0, 0.0, 0.0]).view(), None).unwrap().is_nan());
    }

    #[test]
    fn correlation_matches_hand_value() {
        // x = (1,2,3,4), y = (2,1,4,3): Σdxdy = 3, Σdx² = Σdy² = 5, r = 3/5
        let r = correlation(vol(&[1.0, 2.0, 3.0, 4.0]).view(), vol(&[2.0, 1.0, 4.0, 3.0]).view(), None).unwrap();
        assert!((r - 0.6).abs() < 1e-12, "{r}");
        let r = correlation(vol(&[1.0, 2.0, 3.0]).view(), vol(&[3.0, 2.0, 1.0]).view(), None).unwrap();
        assert!((r + 1.0).abs() < 1e-12);
        assert!(correlation(vol(&[1.0, 1.0]).view(), vol(&[1.0, 2.0]).view(), None).unwrap().is_nan());
    }

    fn mask(v: &[bool]) -> Array3<bool> {
        Array3::from_shape_vec((v.len(), 1, 1), v.to_vec()).unwrap()
    }

    #[test]
    fn masked_comparison_ignores_the_values_outside_the_brain() {
        // Regression: distance and correlation ran over the whole grid, where background voxels
        // (relevance spilled outside the brain, or zeros in both maps) decided much of both.
        // Inside the mask (first four voxels) a and b are the hand case above: r = 0.6; outside
        // they share a large bump that makes them look alike over the whole grid.
        let a = vol(&[1.0, 2.0, 3.0, 4.0, 50.0, 0.0, 0.0]);
        let b = vol(&[2.0, 1.0, 4.0, 3.0, 50.0, 0.0, 0.0]);
        let brain = mask(&[true, true, true, true, false, false, false]);
        let r = correlation(a.view(), b.view(), Some(brain.view())).unwrap();
        assert!((r - 0.6).abs() < 1e-12, "{r}");
        assert!(correlation(a.view(), b.view(), None).unwrap() > 0.99);
        // whatever lies outside the mask, the masked numbers do not move
        let (a2, b2) = (vol(&[1.0, 2.0, 3.0, 4.0, -7.0, 9.0, 0.5]), vol(&[2.0, 1.0, 4.0, 3.0, 3.0, -1.0, 8.0]));
        assert_eq!(correlation(a2.view(), b2.view(), Some(brain.view())).unwrap(), r);
        // distance: the sums are the mask's (10 each); a/Σa − b/Σb = (−0.1, 0.1, −0.1, 0.1) → 0.2
        let d = normalised_distance(a.view(), b.view(), Some(brain.view())).unwrap();
        assert!((d - 0.2).abs() < 1e-12, "{d}");
        assert_eq!(normalised_distance(a2.view(), b2.view(), Some(brain.view())).unwrap(), d);
        assert!(normalised_distance(a.view(), b.view(), None).unwrap() < 0.1);
        // the table uses the mask too
        let maps = vec![("a".to_string(), a.view()), ("b".to_string(), b.view())];
        let df = method_comparison(&maps, &[], Some(brain.view())).unwrap();
        assert!((column_f64(&df, "t", "correlation").unwrap()[0] - 0.6).abs() < 1e-12);
        assert!((column_f64(&df, "t", "distance").unwrap()[0] - 0.2).abs() < 1e-12);
        // an empty mask compares nothing; a mask of another shape is an error naming both shapes
        let none = mask(&[false; 7]);
        assert!(correlation(a.view(), b.view(), Some(none.view())).unwrap().is_nan());
        assert!(normalised_distance(a.view(), b.view(), Some(none.view())).unwrap().is_nan());
        let e = correlation(a.view(), b.view(), Some(mask(&[true; 3]).view())).unwrap_err().to_string();
        assert!(e.contains("mask") && e.contains("[7, 1, 1]") && e.contains("[3, 1, 1]"), "{e}");
    }

    #[test]
    fn top10_overlap_matches_hand_value() {
        let names: Vec<String> = (0..14).map(|i| format!("r{i}")).collect();
        let a: Vec<&str> = names[0..12].iter().map(String::as_str).collect();
        // b shares r0..r6 within its top 10 (7 shared), then r20..r22, then r7..
        let mut b: Vec<&str> = names[0..7].iter().map(String::as_str).collect();
        b.extend(["r20", "r21", "r22", "r7", "r8"]);
        assert_eq!(top_k_overlap(&table(&a), &table(&b), 10).unwrap(), 0.7);
        // fewer than 10 regions: k shrinks to 3
        assert_eq!(top_k_overlap(&table(&["x", "y", "z"]), &table(&["z", "x", "w"]), 10).unwrap(), 2.0 / 3.0);
    }

    #[test]
    fn comparison_has_one_row_per_unordered_pair() {
        let (a, b, c) = (vol(&[1.0, 0.0]), vol(&[0.0, 1.0]), vol(&[1.0, 0.0]));
        let maps = vec![("a".to_string(), a.view()), ("b".to_string(), b.view()), ("c".to_string(), c.view())];
        let tables: Vec<(String, DataFrame)> =
            ["a", "b", "c"].iter().map(|n| (n.to_string(), table(&["p", "q"]))).collect();
        let df = method_comparison(&maps, &tables, None).unwrap();
        assert_eq!(column_str(&df, "t", "method_a").unwrap(), vec!["a", "a", "b"]);
        assert_eq!(column_str(&df, "t", "method_b").unwrap(), vec!["b", "c", "c"]);
        let d = column_f64(&df, "t", "distance").unwrap();
        assert!((d[0] - 2f64.sqrt()).abs() < 1e-12 && d[1] == 0.0);
        let r = column_f64(&df, "t", "correlation").unwrap();
        assert!(r.iter().zip([-1.0, 1.0, -1.0]).all(|(a, b)| (a - b).abs() < 1e-12), "{r:?}");
        assert_eq!(column_f64(&df, "t", "top10_overlap").unwrap(), vec![1.0, 1.0, 1.0]);
        let err = method_comparison(&maps, &tables[..2], None).unwrap_err().to_string();
        assert!(err.contains("`c`"), "{err}");
    }
}
