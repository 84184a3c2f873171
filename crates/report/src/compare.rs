//! Method against method: the original study's distance (Euclidean distance between maps each
//! divided by its sum), Pearson correlation over voxels, and the overlap of the top-10 regions
//! (Böhle et al. 2019).
//!
//! The same measures serve the randomised-weights sanity check (Adebayo et al. 2018): compare a
//! method's map of the trained model with its map of a model with randomised weights, under two
//! names.

use std::collections::HashSet;

use ndarray::{ArrayView3, Zip};
use polars::prelude::*;

use crate::error::{ReportError, Result};
use crate::regions::check_finite;
use crate::tables::{column_f64, column_str};

/// The number of top regions compared by [`method_comparison`].
pub const TOP_REGIONS: usize = 10;

fn same_shape(a: &ArrayView3<f32>, b: &ArrayView3<f32>) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(ReportError::Shape(format!(
            "maps to compare differ in shape: {:?} and {:?}; compare maps on one grid",
            a.shape(),
            b.shape()
        )));
    }
    Ok(())
}

/// `‖a/Σa − b/Σb‖₂` over all voxels, the original study's distance. NaN unless both sums are
/// positive (an all-zero map has no normalised form). Errors on differing shapes.
pub fn normalised_distance(a: ArrayView3<f32>, b: ArrayView3<f32>) -> Result<f64> {
    same_shape(&a, &b)?;
    let sa: f64 = a.iter().map(|&v| f64::from(v)).sum();
    let sb: f64 = b.iter().map(|&v| f64::from(v)).sum();
    if !(sa > 0.0 && sb > 0.0) {
        return Ok(f64::NAN);
    }
    let mut d2 = 0.0;
    Zip::from(&a).and(&b).for_each(|&x, &y| {
        let d = f64::from(x) / sa - f64::from(y) / sb;
        d2 += d * d;
    });
    Ok(d2.sqrt())
}

/// Pearson correlation of the two maps over all voxels; NaN when either map is constant.
/// Errors on differing shapes.
pub fn correlation(a: ArrayView3<f32>, b: ArrayView3<f32>) -> Result<f64> {
    same_shape(&a, &b)?;
    let n = a.len() as f64;
    if a.is_empty() {
        return Ok(f64::NAN);
    }
    let ma = a.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let mb = b.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    Zip::from(&a).and(&b).for_each(|&x, &y| {
        let (dx, dy) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    });
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
/// | `distance` | [`normalised_distance`] (the original's measure; 0 = same relative map) |
/// | `correlation` | [`correlation`] over voxels |
/// | `top10_overlap` | [`top_k_overlap`] with k = 10 on the region tables of the two methods |
///
/// `region_tables` are looked up by method name; pass an empty slice to skip the overlap (the
/// column is then NaN). Errors: maps of differing shapes, non-finite values, or a method without
/// a region table when some were given.
pub fn method_comparison(
    maps: &[(String, ArrayView3<f32>)],
    region_tables: &[(String, DataFrame)],
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
            dist.push(normalised_distance(a.view(), b.view())?);
            corr.push(correlation(a.view(), b.view())?);
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
        let d = normalised_distance(a.view(), b.view()).unwrap();
        assert!((d - 0.875f64.sqrt()).abs() < 1e-12, "{d}");
        // scale does not matter
        let d2 = normalised_distance(a.view(), (&a * 10.0).view()).unwrap();
        assert!(d2.abs() < 1e-12);
        assert!(normalised_distance(a.view(), vol(&[0.0, 0.0, 0.0]).view()).unwrap().is_nan());
    }

    #[test]
    fn correlation_matches_hand_value() {
        // x = (1,2,3,4), y = (2,1,4,3): Σdxdy = 3, Σdx² = Σdy² = 5, r = 3/5
        let r = correlation(vol(&[1.0, 2.0, 3.0, 4.0]).view(), vol(&[2.0, 1.0, 4.0, 3.0]).view()).unwrap();
        assert!((r - 0.6).abs() < 1e-12, "{r}");
        let r = correlation(vol(&[1.0, 2.0, 3.0]).view(), vol(&[3.0, 2.0, 1.0]).view()).unwrap();
        assert!((r + 1.0).abs() < 1e-12);
        assert!(correlation(vol(&[1.0, 1.0]).view(), vol(&[1.0, 2.0]).view()).unwrap().is_nan());
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
        let df = method_comparison(&maps, &tables).unwrap();
        assert_eq!(column_str(&df, "t", "method_a").unwrap(), vec!["a", "a", "b"]);
        assert_eq!(column_str(&df, "t", "method_b").unwrap(), vec!["b", "c", "c"]);
        let d = column_f64(&df, "t", "distance").unwrap();
        assert!((d[0] - 2f64.sqrt()).abs() < 1e-12 && d[1] == 0.0);
        let r = column_f64(&df, "t", "correlation").unwrap();
        assert!(r.iter().zip([-1.0, 1.0, -1.0]).all(|(a, b)| (a - b).abs() < 1e-12), "{r:?}");
        assert_eq!(column_f64(&df, "t", "top10_overlap").unwrap(), vec![1.0, 1.0, 1.0]);
        let err = method_comparison(&maps, &tables[..2]).unwrap_err().to_string();
        assert!(err.contains("`c`"), "{err}");
    }
}
