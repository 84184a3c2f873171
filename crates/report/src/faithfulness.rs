//! Faithfulness by deletion (region perturbation, Samek et al. 2017, "Evaluating the
//! visualization of what a deep neural network has learned"): delete the voxels a relevance map
//! ranks highest, step by step, and watch the model's score for the explained class fall. A map
//! that finds what the model uses makes the score fall faster than deleting voxels in random
//! order; the area over the perturbation curve (AOPC) puts a number on it.
//!
//! This module holds the pure parts: the deletion orders ([`deletion_order`], and the
//! [`random_order`] baseline over the same voxels; [`ranks_voxels`] says whether a map orders
//! anything), the step sizes ([`steps_for_fractions`]),
//! applying a deletion to a volume ([`delete_voxels`], [`deletion_curve`] with any scoring
//! function), the AOPC of one curve ([`aopc`]) and its summary over scans with an interval over
//! patients ([`summarise_aopc`]). Running the CNN is the caller's business.
//!
//! Voxels are named by their flat index in C order over the map's shape: voxel `[i, j, k]` of a
//! `d0 × d1 × d2` grid is `(i · d1 + j) · d2 + k`, whatever the memory layout of the array.

use std::cmp::Ordering;

use ndarray::{Array3, ArrayView3, ArrayViewMut3};
use polars::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{ReportError, Result};
use crate::ground_truth::{Bootstrap, MeanInterval, groups_of, mean_interval, stream_seed, unit_name, units_of};
use crate::sanity_tables::AopcRow;
use crate::tables::column_f64;

/// The voxels inside `mask` (every voxel without one), as flat C-order indices, sorted by
/// relevance in `map` from the highest down: the order in which a deletion curve removes them
/// ("most relevant first"). Ties go in the seeded random order [`random_order`] gives these
/// voxels with `tie_seed`, so a plateau of equal relevance (a map that is zero over much of the
/// brain, or a constant map) is deleted like the random baseline, not as a slab from the grid's
/// corner, which would be a systematic order of its own. NaN relevance sorts after every number
/// (a voxel the method says nothing about is deleted last). −0 and +0 tie. Errors when `mask` has
/// another shape than `map` (naming both).
pub fn deletion_order(map: ArrayView3<f32>, mask: Option<ArrayView3<bool>>, tie_seed: u64) -> Result<Vec<usize>> {
    if let Some(m) = &mask
        && m.shape() != map.shape()
    {
        return Err(ReportError::Shape(format!(
            "relevance map has shape {:?} but the mask of deletable voxels has shape {:?}; put both on one grid",
            map.shape(),
            m.shape()
        )));
    }
    let voxels: Vec<(usize, f32)> = match &mask {
        None => map.iter().copied().enumerate().collect(),
        Some(m) => map.iter().zip(m.iter()).enumerate().filter(|(_, (_, k))| **k).map(|(i, (&v, _))| (i, v)).collect(),
    };
    // `voxels` is in index order, as `random_order` sorts its input: position k's rank there.
    let tie_rank = random_ranks(voxels.len(), tie_seed);
    let mut keyed: Vec<(usize, f32, usize)> =
        voxels.into_iter().zip(tie_rank).map(|((i, v), rank)| (i, v, rank)).collect();
    keyed.sort_by(|&(_, a, ra), &(_, b, rb)| {
        let by_value = match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            // descending; `partial_cmp` is total on non-NaN values and ties −0 with +0
            (false, false) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
        };
        by_value.then(ra.cmp(&rb))
    });
    Ok(keyed.into_iter().map(|(i, _, _)| i).collect())
}

/// Whether `map` ranks the voxels inside `mask` (every voxel without one) at all: false when
/// every value there is the same number (−0 and +0 alike), or NaN, so that a deletion order from
/// it is nothing but its tie-breaking order and its AOPC says nothing about the map (an
/// all-zero guided backpropagation map, for example). Such a map's AOPC is undefined.
pub fn ranks_voxels(map: ArrayView3<f32>, mask: Option<ArrayView3<bool>>) -> bool {
    let (mut lo, mut hi, mut nan, mut finite) = (f32::INFINITY, f32::NEG_INFINITY, false, false);
    let mut see = |v: f32| {
        if v.is_nan() {
            nan = true;
        } else {
            finite = true;
            lo = lo.min(v);
            hi = hi.max(v);
        }
    };
    match &mask {
        None => map.iter().for_each(|&v| see(v)),
        Some(m) => map.iter().zip(m.iter()).filter(|(_, k)| **k).for_each(|(&v, _)| see(v)),
    }
    finite && (hi > lo || nan)
}

/// A seeded random permutation (ChaCha8) of the voxels `indices`, for the random-ordering
/// baseline of a deletion curve: pass the [`deletion_order`] of a map to delete the same voxels
/// in random order. The input is sorted before shuffling, so the result depends only on the
/// set of voxels and the seed: every method's map over one mask gets the same random order.
pub fn random_order(indices: &[usize], seed: u64) -> Vec<usize> {
    let mut out = indices.to_vec();
    out.sort_unstable();
    out.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    out
}

/// The rank of each of `n` sorted items in [`random_order`]'s permutation with `seed`: item `k`
/// comes `ranks[k]`-th. The shuffle depends only on the number of items, so this is the order
/// `random_order` gives any `n` sorted voxels (or regions) with that seed.
pub fn random_ranks(n: usize, seed: u64) -> Vec<usize> {
    let mut ranks = vec![0; n];
    for (rank, k) in random_order(&(0..n).collect::<Vec<_>>(), seed).into_iter().enumerate() {
        ranks[k] = rank;
    }
    ranks
}

/// The number of voxels deleted at each share in `fractions` of `n` deletable voxels:
/// `round(fraction · n)` (halves away from zero), at least 1 for every fraction, so a small
/// share of a small mask still deletes something. Errors when `n` is 0 or a fraction lies
/// outside (0, 1] (naming it).
pub fn steps_for_fractions(n: usize, fractions: &[f64]) -> Result<Vec<usize>> {
    if n == 0 {
        return Err(ReportError::invalid("n", "no deletable voxels (an empty mask?); expected at least one"));
    }
    fractions
        .iter()
        .map(|&f| {
            if f > 0.0 && f <= 1.0 {
                // f ≤ 1 keeps the count ≤ n
                Ok(((f * n as f64).round() as usize).max(1))
            } else {
                Err(ReportError::invalid("fractions", format!("found {f}, expected shares in (0, 1]")))
            }
        })
        .collect()
}

/// Sets the voxels `indices` (flat C-order indices, see the module documentation) of `volume` to
/// `value`, the stand-in for deleted tissue (for example the background value of the model's
/// input). Errors on an index outside the volume (naming it and the shape).
pub fn delete_voxels(mut volume: ArrayViewMut3<f32>, indices: &[usize], value: f32) -> Result<()> {
    let (d0, d1, d2) = volume.dim();
    let n = d0 * d1 * d2;
    if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
        return Err(ReportError::invalid(
            "indices",
            format!("voxel index {bad} lies outside a volume of shape {:?} ({n} voxels)", [d0, d1, d2]),
        ));
    }
    for &i in indices {
        volume[[i / (d1 * d2), (i / d2) % d1, i % d2]] = value;
    }
    Ok(())
}

/// The deletion curve of `input` for one voxel order: `score` of the unperturbed input, then of
/// the input with the first `steps[0]`, `steps[1]`, … voxels of `order` set to `value`
/// (cumulative, so `steps` must not decrease and must not exceed `order.len()`). `score` is the
/// model's output for the explained class, for example P(AD). The result has `steps.len() + 1`
/// entries, ready for [`aopc`]. Errors name the offending step or voxel.
pub fn deletion_curve(
    input: ArrayView3<f32>,
    order: &[usize],
    steps: &[usize],
    value: f32,
    mut score: impl FnMut(ArrayView3<'_, f32>) -> f64,
) -> Result<Vec<f64>> {
    for (k, w) in steps.windows(2).enumerate() {
        if w[1] < w[0] {
            return Err(ReportError::invalid(
                "steps",
                format!(
                    "step {} deletes {} voxels after step {k} deleted {}; expected a non-decreasing list",
                    k + 1,
                    w[1],
                    w[0]
                ),
            ));
        }
    }
    if let Some(&last) = steps.last()
        && last > order.len()
    {
        return Err(ReportError::invalid(
            "steps",
            format!("the last step deletes {last} voxels but the order holds {}", order.len()),
        ));
    }
    let mut volume: Array3<f32> = input.to_owned();
    let mut curve = Vec::with_capacity(steps.len() + 1);
    curve.push(score(volume.view()));
    let mut done = 0;
    for &s in steps {
        delete_voxels(volume.view_mut(), &order[done..s], value)?;
        done = s;
        curve.push(score(volume.view()));
    }
    Ok(curve)
}

/// The area over the perturbation curve (Samek et al. 2017, eq. 12) of one curve, where
/// `curve[0]` is the score of the unperturbed input and `curve[k]` the score after the k-th
/// deletion step: `1/(L + 1) · Σ_{k=0..L} (curve[0] − curve[k])`. Larger is better: the score
/// falls early. Errors for an empty curve or a non-finite score (naming its position).
pub fn aopc(curve: &[f64]) -> Result<f64> {
    let Some(&first) = curve.first() else {
        return Err(ReportError::invalid("curve", "empty; expected the unperturbed score and one per deletion step"));
    };
    if let Some((k, v)) = curve.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(ReportError::invalid("curve", format!("score {k} is {v}; expected finite scores")));
    }
    Ok(curve.iter().map(|v| first - v).sum::<f64>() / curve.len() as f64)
}

/// Mean AOPC per distinct combination of `group_cols` (for example `method`, `ordering`; in
/// order of first appearance) of a long per-scan table with those columns, an `aopc` column
/// and, for the interval, the patient column `boot.cluster` names (`PTID`), with the 95 %
/// interval of [`mean_interval`] over patients (over scans where the table has no such column):
/// a t interval on the cluster-robust standard error below
/// [`crate::ground_truth::MIN_UNITS_FOR_BOOTSTRAP`] patients, a seeded percentile bootstrap from
/// there. Non-finite AOPC values are left out.
///
/// Output columns: the `group_cols` (as text), `n_scans` (finite values used), `aopc_mean`,
/// `aopc_lo`, `aopc_hi` (NaN bounds below two patients or with `boot.samples == 0`),
/// `aopc_interval` (how the bounds were made: `t(PTID, 1 df)`, `bootstrap(PTID)`, `none`, …).
/// Each group's bootstrap draws from its own stream (seed and group key), so it does not move
/// when other groups join the table.
pub fn summarise_aopc(df: &DataFrame, group_cols: &[&str], boot: &Bootstrap) -> Result<DataFrame> {
    const TABLE: &str = "per-scan AOPC";
    let (groups, rows_of) = groups_of(df, TABLE, group_cols)?;
    let units = units_of(df, TABLE, boot)?;
    let values = column_f64(df, TABLE, AopcRow::AOPC)?;
    let unit = unit_name(units.as_deref(), boot);
    let mut stats: Vec<MeanInterval> = Vec::with_capacity(groups.len());
    for (g, rows) in groups.iter().zip(&rows_of) {
        let v: Vec<f64> = rows.iter().map(|&r| values[r]).collect();
        let u: Option<Vec<String>> = units.as_ref().map(|u| rows.iter().map(|&r| u[r].clone()).collect());
        let mut parts: Vec<&str> = g.iter().map(String::as_str).collect();
        parts.push(AopcRow::AOPC);
        stats.push(mean_interval(&v, u.as_deref(), boot.samples, stream_seed(boot.seed, &parts))?);
    }
    let mut cols: Vec<Column> = group_cols
        .iter()
        .enumerate()
        .map(|(c, name)| Column::new((*name).into(), groups.iter().map(|g| g[c].as_str()).collect::<Vec<_>>()))
        .collect();
    cols.push(Column::new("n_scans".into(), stats.iter().map(|s| s.n as u64).collect::<Vec<_>>()));
    cols.push(Column::new("aopc_mean".into(), stats.iter().map(|s| s.mean).collect::<Vec<_>>()));
    cols.push(Column::new("aopc_lo".into(), stats.iter().map(|s| s.low).collect::<Vec<_>>()));
    cols.push(Column::new("aopc_hi".into(), stats.iter().map(|s| s.high).collect::<Vec<_>>()));
    cols.push(Column::new("aopc_interval".into(), stats.iter().map(|s| s.method.label(unit)).collect::<Vec<_>>()));
    Ok(DataFrame::new(groups.len(), cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::column_str;

    fn vol(shape: (usize, usize, usize), v: &[f32]) -> Array3<f32> {
        Array3::from_shape_vec(shape, v.to_vec()).unwrap()
    }

    #[test]
    fn deletion_order_sorts_descending_nan_last() {
        let map = vol((1, 2, 3), &[0.5, f32::NAN, 2.0, 0.5, -1.0, 2.0]);
        let order = deletion_order(map.view(), None, 7).unwrap();
        assert!(order[..2] == [2, 5] || order[..2] == [5, 2], "{order:?}");
        assert!(order[2..4] == [0, 3] || order[2..4] == [3, 0], "{order:?}");
        assert_eq!(order[4..], [4, 1]);
        // −0 ties with +0, infinities sort as numbers
        let map = vol((1, 1, 4), &[0.0, f32::INFINITY, -0.0, f32::NEG_INFINITY]);
        let order = deletion_order(map.view(), None, 7).unwrap();
        assert!(order == [1, 0, 2, 3] || order == [1, 2, 0, 3], "{order:?}");
        // the mask keeps C-order indices of the full grid
        let map = vol((1, 2, 3), &[0.5, f32::NAN, 2.0, 0.5, -1.0, 2.0]);
        let mask = Array3::from_shape_vec((1, 2, 3), vec![true, true, false, true, true, false]).unwrap();
        let order = deletion_order(map.view(), Some(mask.view()), 7).unwrap();
        assert!(order == [0, 3, 4, 1] || order == [3, 0, 4, 1], "{order:?}");
        let e = deletion_order(map.view(), Some(Array3::from_elem((2, 1, 3), true).view()), 7).unwrap_err();
        assert!(e.to_string().contains("[1, 2, 3]") && e.to_string().contains("[2, 1, 3]"), "{e}");
    }

    #[test]
    fn ties_are_broken_in_the_random_order_of_the_same_seed() {
        // A constant map deletes exactly like the random baseline with the tie seed, not from
        // the grid's corner; a map with a plateau keeps its ranking and shuffles only the plateau.
        let mask = Array3::from_shape_fn((4, 4, 4), |(i, _, k)| i + k > 0);
        let brain: Vec<usize> = mask.iter().enumerate().filter(|(_, b)| **b).map(|(i, _)| i).collect();
        let flat = Array3::<f32>::zeros((4, 4, 4));
        assert_eq!(deletion_order(flat.view(), Some(mask.view()), 11).unwrap(), random_order(&brain, 11));
        assert_ne!(deletion_order(flat.view(), Some(mask.view()), 11).unwrap(), brain);
        let plateau = Array3::from_shape_fn((4, 4, 4), |(i, j, k)| if (i, j, k) == (3, 3, 3) { 1.0f32 } else { 0.0 });
        let order = deletion_order(plateau.view(), Some(mask.view()), 11).unwrap();
        assert_eq!(order[0], 63);
        let rest: Vec<usize> = random_order(&brain, 11).into_iter().filter(|&i| i != 63).collect();
        assert_eq!(order[1..], rest[..]);
    }

    #[test]
    fn a_constant_map_ranks_nothing() {
        let mask = Array3::from_shape_fn((2, 2, 2), |(i, _, _)| i == 0);
        let zeros = Array3::<f32>::zeros((2, 2, 2));
        assert!(!ranks_voxels(zeros.view(), None));
        assert!(!ranks_voxels(zeros.mapv(|_| -0.0).view(), None));
        assert!(!ranks_voxels(zeros.mapv(|_| f32::NAN).view(), None));
        // different values outside the mask do not count
        let outside = Array3::from_shape_fn((2, 2, 2), |(i, _, _)| i as f32);
        assert!(!ranks_voxels(outside.view(), Some(mask.view())));
        assert!(ranks_voxels(outside.view(), None));
        // NaN beside numbers ranks (the numbers come first)
        let some = Array3::from_shape_fn((2, 2, 2), |(_, j, _)| if j == 0 { 0.0 } else { f32::NAN });
        assert!(ranks_voxels(some.view(), None));
    }

    #[test]
    fn flat_indices_follow_logical_c_order_for_any_layout() {
        // a transposed (Fortran-ordered) view: flat indices refer to its own logical [i, j, k]
        let base = Array3::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 100 + j * 10 + k) as f32);
        let t = base.view().reversed_axes(); // shape (4, 3, 2), t[[k, j, i]] = base[[i, j, k]]
        let order = deletion_order(t, None, 0).unwrap();
        // the largest value 123 sits at t[[3, 2, 1]] = (3·3 + 2)·2 + 1 = 23
        assert_eq!(order[0], 23);
        let mut owned = t.to_owned();
        delete_voxels(owned.view_mut(), &[23], -1.0).unwrap();
        assert_eq!(owned[[3, 2, 1]], -1.0);
        assert!(delete_voxels(owned.view_mut(), &[24], 0.0).unwrap_err().to_string().contains("24"));
    }

    #[test]
    fn random_order_is_a_seeded_permutation_of_the_set() {
        let idx: Vec<usize> = (0..50).map(|i| i * 3).collect();
        let a = random_order(&idx, 7);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, idx);
        assert_ne!(a, idx);
        assert_eq!(a, random_order(&idx, 7));
        assert_ne!(a, random_order(&idx, 8));
        // only the set matters, not the order it came in
        let mut rev = idx.clone();
        rev.reverse();
        assert_eq!(random_order(&rev, 7), a);
    }

    #[test]
    fn steps_round_and_delete_at_least_one_voxel() {
        assert_eq!(steps_for_fractions(1000, &[0.01, 0.05, 0.5, 1.0]).unwrap(), [10, 50, 500, 1000]);
        // 0.25 · 10 = 2.5 rounds to 3; 0.001 · 10 = 0.01 still deletes one voxel
        assert_eq!(steps_for_fractions(10, &[0.25, 0.001]).unwrap(), [3, 1]);
        for bad in [0.0, -0.1, 1.5, f64::NAN] {
            let e = steps_for_fractions(10, &[0.5, bad]).unwrap_err().to_string();
            assert!(e.contains("fractions") && e.contains(&bad.to_string()), "{e}");
        }
        assert!(steps_for_fractions(0, &[0.5]).is_err());
    }

    #[test]
    fn aopc_of_a_hand_curve() {
        // (0 + 0.1 + 0.4 + 0.7) / 4 = 0.3
        assert!((aopc(&[0.9, 0.8, 0.5, 0.2]).unwrap() - 0.3).abs() < 1e-12);
        // a score that rises under deletion gives a negative AOPC
        assert!((aopc(&[0.2, 0.6]).unwrap() + 0.2).abs() < 1e-12);
        assert_eq!(aopc(&[0.7]).unwrap(), 0.0);
        assert!(aopc(&[]).is_err());
        assert!(aopc(&[0.5, f64::NAN]).unwrap_err().to_string().contains("score 1"));
    }

    /// A linear "model": the sum of the input over the first 64 voxels of an 8 × 8 × 8 grid of
    /// ones (region R, 1/8 of the grid).
    fn region_score(x: ArrayView3<'_, f32>) -> f64 {
        x.iter().take(64).map(|&v| f64::from(v)).sum()
    }

    #[test]
    fn a_map_that_ranks_the_models_region_first_has_the_known_aopc() {
        let input = Array3::<f32>::ones((8, 8, 8));
        let region = Array3::from_shape_fn((8, 8, 8), |(i, _, _)| if i == 0 { 1.0f32 } else { 0.0 });
        let steps = steps_for_fractions(512, &[0.125, 0.25, 0.5, 1.0]).unwrap();
        assert_eq!(steps, [64, 128, 256, 512]);

        // R first: the score drops to 0 at the first step: [64, 0, 0, 0, 0] → AOPC 4·64/5
        let good = deletion_order(region.view(), None, 0).unwrap();
        let curve = deletion_curve(input.view(), &good, &steps, 0.0, region_score).unwrap();
        assert_eq!(curve, [64.0, 0.0, 0.0, 0.0, 0.0]);
        let best = aopc(&curve).unwrap();
        assert_eq!(best, 51.2);

        // the reversed map deletes R last: [64, 64, 64, 64, 0] → AOPC 64/5
        let bad = deletion_order(region.mapv(|v| -v).view(), None, 0).unwrap();
        let worst = aopc(&deletion_curve(input.view(), &bad, &steps, 0.0, region_score).unwrap()).unwrap();
        assert_eq!(worst, 12.8);

        // random order: in expectation 64·(1 − f) at share f → [64, 56, 48, 32, 0], AOPC 19.2
        let random = random_order(&good, 2017);
        let r = aopc(&deletion_curve(input.view(), &random, &steps, 0.0, region_score).unwrap()).unwrap();
        assert!(worst < r && r < best && (r - 19.2).abs() < 5.0, "{r}");

        // deleting within a mask only: R's lower half is outside it and stays, so the score
        // bottoms out at 32
        let mask = Array3::from_shape_fn((8, 8, 8), |(i, j, _)| !(i == 0 && j < 4));
        let masked = deletion_order(region.view(), Some(mask.view()), 0).unwrap();
        assert_eq!(masked.len(), 480);
        let steps = steps_for_fractions(masked.len(), &[0.5, 1.0]).unwrap();
        let curve = deletion_curve(input.view(), &masked, &steps, 0.0, region_score).unwrap();
        assert_eq!(curve, [64.0, 32.0, 32.0]);
    }

    #[test]
    fn deletion_curve_rejects_bad_steps() {
        let input = Array3::<f32>::ones((2, 2, 2));
        let order: Vec<usize> = (0..8).collect();
        let e = deletion_curve(input.view(), &order, &[4, 2], 0.0, region_score).unwrap_err();
        assert!(e.to_string().contains("non-decreasing"), "{e}");
        assert!(deletion_curve(input.view(), &order, &[9], 0.0, region_score).is_err());
        // no steps: the unperturbed score alone
        assert_eq!(deletion_curve(input.view(), &order, &[], 0.0, region_score).unwrap(), [8.0]);
    }

    #[test]
    fn summary_has_group_means_and_patient_intervals() {
        let df = DataFrame::new(
            7,
            vec![
                Column::new("method".into(), ["a", "a", "a", "a", "a", "b", "b"]),
                Column::new(
                    "ordering".into(),
                    ["relevance", "relevance", "relevance", "relevance", "random", "relevance", "relevance"],
                ),
                Column::new("PTID".into(), ["p1", "p1", "p2", "p3", "p1", "p1", "p2"]),
                Column::new("aopc".into(), [0.2, 0.4, 0.6, f64::NAN, 0.1, 0.5, 0.5]),
            ],
        )
        .unwrap();
        let boot = Bootstrap { samples: 500, ..Bootstrap::default() };
        let s = summarise_aopc(&df, &["method", "ordering"], &boot).unwrap();
        let names: Vec<&str> = s.get_column_names().iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["method", "ordering", "n_scans", "aopc_mean", "aopc_lo", "aopc_hi", "aopc_interval"]);
        assert_eq!(column_str(&s, "s", "method").unwrap(), ["a", "a", "b"]);
        assert_eq!(column_str(&s, "s", "ordering").unwrap(), ["relevance", "random", "relevance"]);
        assert_eq!(column_f64(&s, "s", "n_scans").unwrap(), [3.0, 1.0, 2.0]);
        let mean = column_f64(&s, "s", "aopc_mean").unwrap();
        let (lo, hi) = (column_f64(&s, "s", "aopc_lo").unwrap(), column_f64(&s, "s", "aopc_hi").unwrap());
        assert!((mean[0] - 0.4).abs() < 1e-12 && mean[1] == 0.1 && mean[2] == 0.5);
        // a/relevance: patients p1 (0.2, 0.4) and p2 (0.6); p3 has no finite AOPC. Two patients:
        // 0.4 ± t(1) × the cluster-robust SE 0.1333 (statsmodels, CR1) = [−1.29416, 2.09416], not
        // the bootstrap's [0.3, 0.6], which only spans the resampled patient means
        assert!((lo[0] + 1.294160631490).abs() < 1e-9 && (hi[0] - 2.094160631490).abs() < 1e-9, "{} {}", lo[0], hi[0]);
        // one patient: no interval; b: two patients with equal values: a point
        assert!(lo[1].is_nan() && hi[1].is_nan());
        assert_eq!((lo[2], hi[2]), (0.5, 0.5));
        assert_eq!(column_str(&s, "s", "aopc_interval").unwrap(), ["t(PTID, 1 df)", "none", "t(PTID, 1 df)"]);
        // without the patient column every scan is a unit
        let scans = summarise_aopc(&df.drop("PTID").unwrap(), &["method", "ordering"], &boot).unwrap();
        assert_eq!(column_str(&scans, "s", "aopc_interval").unwrap(), ["t(scans, 2 df)", "none", "t(scans, 1 df)"]);
        // a missing column is named
        let e = summarise_aopc(&df, &["method", "model"], &boot).unwrap_err().to_string();
        assert!(e.contains("model") && e.contains("per-scan AOPC"), "{e}");
        let e = summarise_aopc(&df.drop("aopc").unwrap(), &["method"], &boot).unwrap_err().to_string();
        assert!(e.contains("aopc"), "{e}");
    }
}
