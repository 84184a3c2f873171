//! Faithfulness: deletion curves over voxels and atlas regions, against random orders, and
//! their AOPC (see the parent module).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use ndarray::{Array3, ArrayView3};

use model::data::ScanItem;
use model::{ClassificationModel3D, Cpu};
use report::faithfulness::{
    aopc, deletion_curve, deletion_order, random_order, random_ranks, ranks_voxels, steps_for_fractions,
};
use report::sanity::{RANDOM_ORDER, REGIONS, RELEVANCE_ORDER, VOXELS};
use report::sanity_tables::{AopcRow, CurveId, DeletionRow};

use super::{Scan, probabilities};
use crate::commands::progress_bar;
use crate::relevance_config::Method;

/// Rows of [`super::DELETION_FILE`] and [`super::AOPC_FILE`].
#[derive(Default)]
pub(super) struct CurveRows {
    /// Every step of every curve.
    pub(super) deletion: Vec<DeletionRow>,
    /// One AOPC per curve.
    pub(super) aopc: Vec<AopcRow>,
}

impl CurveRows {
    /// One curve (scores after steps 0..) with the x value of each step. `ranked` is false when
    /// the method's map ranks nothing on this scan (constant on the brain): the curve is written
    /// with `ranks_voxels` false, and its AOPC is undefined (NaN), as it measures
    /// only the tie-breaking order. The random order's curve under that method gets the same flag
    /// and a NaN AOPC too, so that each method's AOPC is compared with the random order's on the
    /// same scans.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kind: &'static str,
        method: &'static str,
        ordering: &'static str,
        scan: &ScanItem,
        fractions: &[f64],
        curve: &[f64],
        ranked: bool,
    ) -> Result<()> {
        let id =
            CurveId { kind, method: method.to_owned(), ordering, ptid: scan.ptid.clone(), image_id: scan.image_id };
        for (step, (&fraction, &score)) in fractions.iter().zip(curve).enumerate() {
            self.deletion.push(DeletionRow { curve: id.clone(), step, fraction, score, ranks_voxels: ranked });
        }
        let aopc =
            aopc(curve).with_context(|| format!("{kind} deletion curve of {method}, image {}", scan.image_id))?;
        let aopc = if ranked { aopc } else { f64::NAN };
        self.aopc.push(AopcRow { curve: id, aopc });
        Ok(())
    }
}

/// The atlas regions inside the brain, sorted by mean relevance per voxel (highest first; ties
/// in the seeded random order `tie_seed` gives the labels, as [`deletion_order`] breaks voxel
/// ties), and each region's voxels (flat C-order indices).
fn regions_by_relevance(
    map: ArrayView3<f32>,
    labels: &Array3<i32>,
    brain: &Array3<bool>,
    tie_seed: u64,
) -> Vec<(i32, Vec<usize>)> {
    let mut regions: BTreeMap<i32, (f64, Vec<usize>)> = BTreeMap::new();
    for (i, ((&l, &b), &v)) in labels.iter().zip(brain.iter()).zip(map.iter()).enumerate() {
        if l != 0 && b {
            let e = regions.entry(l).or_default();
            e.0 += f64::from(v);
            e.1.push(i);
        }
    }
    // `regions` iterates in label order.
    let tie_rank = random_ranks(regions.len(), tie_seed);
    let mut out: Vec<(f64, usize, i32, Vec<usize>)> = regions
        .into_iter()
        .zip(tie_rank)
        .map(|((l, (sum, voxels)), rank)| (sum / voxels.len() as f64, rank, l, voxels))
        .collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    out.into_iter().map(|(_, _, l, v)| (l, v)).collect()
}

/// A seed per scan and random order.
fn order_seed(seed: u64, image_id: i64, r: usize) -> u64 {
    seed ^ (image_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (r as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// Deletion curves of every AD scan: voxels and regions, by relevance and in random order.
pub(super) fn faithfulness_check(
    model: &ClassificationModel3D<Cpu>,
    scans: &[Scan],
    methods: &[Method],
    labels: &Array3<i32>,
    brain: &Array3<bool>,
    value: f32,
    s: &crate::config::SanitySection,
) -> Result<CurveRows> {
    let brain_idx: Vec<usize> = brain.iter().enumerate().filter(|(_, b)| **b).map(|(i, _)| i).collect();
    let voxel_steps = steps_for_fractions(brain_idx.len(), &s.fractions)?;
    let voxel_x: Vec<f64> =
        std::iter::once(0.0).chain(voxel_steps.iter().map(|&k| k as f64 / brain_idx.len() as f64)).collect();
    let mut rows = CurveRows::default();
    let bar = progress_bar(scans.len() * (methods.len() + 1), "deletion");
    for scan in scans {
        let mut failure: Option<anyhow::Error> = None;
        let mut score = |v: ArrayView3<'_, f32>| -> f64 {
            match probabilities(model, &v.to_owned()) {
                Ok(p) => f64::from(p[scan.target]),
                Err(e) => {
                    failure.get_or_insert(e);
                    f64::NAN
                }
            }
        };
        // The atlas regions inside the brain (the same for every method), in the scan's own order:
        // the base the random region orders permute.
        let base = regions_by_relevance(scan.x.view(), labels, brain, 0);
        let n_regions = base.len();
        if n_regions == 0 {
            bail!("the atlas has no region inside the brain mask: no region deletion possible");
        }
        let mut region_counts: Vec<usize> = s.region_steps.iter().map(|&r| r.min(n_regions)).collect();
        region_counts.dedup();
        let region_x: Vec<f64> =
            std::iter::once(0.0).chain(region_counts.iter().map(|&r| r as f64 / n_regions as f64)).collect();
        let region_curve = |order: &[(i32, Vec<usize>)], score: &mut dyn FnMut(ArrayView3<'_, f32>) -> f64| {
            let voxels: Vec<usize> = order.iter().flat_map(|(_, v)| v.iter().copied()).collect();
            let mut steps = Vec::with_capacity(region_counts.len());
            for &r in &region_counts {
                steps.push(order[..r].iter().map(|(_, v)| v.len()).sum::<usize>());
            }
            deletion_curve(scan.x.view(), &voxels, &steps, value, score)
        };
        // Random orders: the same for every method.
        let mut random_voxels = vec![0.0; voxel_x.len()];
        let mut random_regions = vec![0.0; region_x.len()];
        for r in 0..s.random_orders {
            let seed = order_seed(s.seed, scan.item.image_id, r);
            let order = random_order(&brain_idx, seed);
            let curve = deletion_curve(scan.x.view(), &order, &voxel_steps, value, &mut score)?;
            random_voxels.iter_mut().zip(&curve).for_each(|(a, c)| *a += c / s.random_orders as f64);
            let perm = random_order(&(0..base.len()).collect::<Vec<_>>(), seed);
            let shuffled: Vec<(i32, Vec<usize>)> = perm.iter().map(|&i| base[i].clone()).collect();
            let curve = region_curve(&shuffled, &mut score)?;
            random_regions.iter_mut().zip(&curve).for_each(|(a, c)| *a += c / s.random_orders as f64);
        }
        bar.inc(1);
        // Ties in a map are broken in the first random order's sequence: a plateau is deleted
        // like the baseline, not from the grid's corner.
        let tie_seed = order_seed(s.seed, scan.item.image_id, 0);
        for &method in methods {
            let map = &scan.maps[&method];
            let ranks = ranks_voxels(map.view(), Some(brain.view()));
            let order = deletion_order(map.view(), Some(brain.view()), tie_seed)?;
            let curve = deletion_curve(scan.x.view(), &order, &voxel_steps, value, &mut score)?;
            rows.push(VOXELS, method.name(), RELEVANCE_ORDER, &scan.item, &voxel_x, &curve, ranks)?;
            rows.push(VOXELS, method.name(), RANDOM_ORDER, &scan.item, &voxel_x, &random_voxels, ranks)?;
            let ranked = regions_by_relevance(map.view(), labels, brain, tie_seed);
            let curve = region_curve(&ranked, &mut score)?;
            rows.push(REGIONS, method.name(), RELEVANCE_ORDER, &scan.item, &region_x, &curve, ranks)?;
            rows.push(REGIONS, method.name(), RANDOM_ORDER, &scan.item, &region_x, &random_regions, ranks)?;
            bar.inc(1);
        }
        if let Some(e) = failure {
            return Err(e.context(format!("scoring the deletion curves of image {}", scan.item.image_id)));
        }
    }
    bar.finish_and_clear();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_rank_by_mean_relevance_inside_the_brain() {
        // labels 1 (2 voxels), 2 (1 voxel), 3 (outside the brain only), 0 background
        let labels = Array3::from_shape_vec((1, 1, 5), vec![1, 1, 2, 3, 0]).unwrap();
        let brain = Array3::from_shape_vec((1, 1, 5), vec![true, true, true, false, true]).unwrap();
        let map = Array3::from_shape_vec((1, 1, 5), vec![1.0, 3.0, 2.5, 9.0, 9.0]).unwrap();
        let r = regions_by_relevance(map.view(), &labels, &brain, 0);
        // region 2: mean 2.5 > region 1: mean 2.0; region 3 lies outside the brain
        assert_eq!(r, vec![(2, vec![2]), (1, vec![0, 1])]);
        // a flat map: every region ties, and the order follows the seed, not the labels
        let labels = Array3::from_shape_fn((1, 1, 40), |(_, _, k)| k as i32 + 1);
        let flat = Array3::<f32>::zeros((1, 1, 40));
        let all = Array3::from_elem((1, 1, 40), true);
        let order = |seed| regions_by_relevance(flat.view(), &labels, &all, seed).iter().map(|r| r.0).collect();
        let (a, b): (Vec<i32>, Vec<i32>) = (order(1), order(2));
        assert_ne!(a, (1..=40).collect::<Vec<_>>());
        assert_ne!(a, b);
        assert_eq!(a, order(1));
    }

    #[test]
    fn a_map_that_ranks_nothing_leaves_its_scan_out_of_both_orderings() {
        let scan = ScanItem { image_id: 7, ptid: "002_S_0001".into(), label: 1, path: "7.nii.gz".into() };
        let mut rows = CurveRows::default();
        let x = [0.0, 0.5];
        rows.push(VOXELS, "guided-backprop", RELEVANCE_ORDER, &scan, &x, &[0.9, 0.7], false).unwrap();
        rows.push(VOXELS, "guided-backprop", RANDOM_ORDER, &scan, &x, &[0.9, 0.8], false).unwrap();
        rows.push(VOXELS, "lrp", RELEVANCE_ORDER, &scan, &x, &[0.9, 0.5], true).unwrap();
        rows.push(VOXELS, "lrp", RANDOM_ORDER, &scan, &x, &[0.9, 0.8], true).unwrap();
        // one flag per deletion row, the random rows carrying their method's
        let ranks: Vec<bool> = rows.deletion.iter().map(|r| r.ranks_voxels).collect();
        assert_eq!(ranks, [false, false, false, false, true, true, true, true]);
        assert_eq!(ranks.len(), rows.deletion.len());
        // the AOPC of both orderings under the constant map is undefined: the comparison is paired
        let aopc: Vec<f64> = rows.aopc.iter().map(|r| r.aopc).collect();
        assert!(aopc[0].is_nan() && aopc[1].is_nan(), "{aopc:?}");
        assert!((aopc[2] - 0.2).abs() < 1e-12 && (aopc[3] - 0.05).abs() < 1e-12, "{aopc:?}");
    }

    #[test]
    fn order_seeds_differ_per_scan_and_order() {
        let a = order_seed(2018, 1, 0);
        assert_ne!(a, order_seed(2018, 2, 0));
        assert_ne!(a, order_seed(2018, 1, 1));
        assert_eq!(a, order_seed(2018, 1, 0));
    }
}
