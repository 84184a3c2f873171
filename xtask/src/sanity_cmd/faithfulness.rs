//! Faithfulness: deletion curves over voxels and atlas regions, against random orders, and
//! their AOPC (see the parent module).
//!
//! Every ordering of a kind deletes the same number of voxels at each step, so that a curve's
//! fall measures which tissue was deleted, not how much. Voxel curves delete shares of the
//! brain's voxels. Region curves delete shares of the atlas voxels inside the brain: whole atlas
//! regions in the ordering's rank order, the last one cut so that the step deletes exactly its
//! count (its voxels taken in the method's voxel relevance order, or in a seeded random order
//! for the random ordering). Atlas regions differ in size by two orders of magnitude, so
//! counting steps in regions would let an ordering that ranks small regions first delete a
//! fraction of the tissue the random ordering deletes, and read as unfaithful for that alone.

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
use crate::config::SanitySection;
use crate::relevance_config::Method;

/// Rows of [`super::DELETION_FILE`] and [`super::AOPC_FILE`].
#[derive(Default)]
pub(super) struct CurveRows {
    /// Every step of every curve.
    pub(super) deletion: Vec<DeletionRow>,
    /// One AOPC per curve.
    pub(super) aopc: Vec<AopcRow>,
}

/// The steps of one kind of deletion curve: voxels deleted after each step, the unperturbed
/// input (0) first, out of `of` deletable voxels.
#[derive(Debug, Clone, PartialEq)]
struct Steps {
    /// Voxels deleted after steps 0, 1, …; non-decreasing, starting at 0.
    deleted: Vec<usize>,
    /// The voxels the shares are of.
    of: usize,
}

impl Steps {
    /// The counts [`deletion_curve`] takes (step 0 left out).
    fn counts(&self) -> &[usize] {
        &self.deleted[1..]
    }

    /// The share deleted after each step.
    fn fractions(&self) -> Vec<f64> {
        self.deleted.iter().map(|&k| k as f64 / self.of as f64).collect()
    }
}

impl CurveRows {
    /// One curve (scores after steps 0..) with the voxels each step deleted. `ranked` is false
    /// when the method's map ranks nothing on this scan (constant on the brain): the curve is
    /// written with `ranks_voxels` false, and its AOPC is undefined (NaN), as it measures
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
        steps: &Steps,
        curve: &[f64],
        ranked: bool,
    ) -> Result<()> {
        let id =
            CurveId { kind, method: method.to_owned(), ordering, ptid: scan.ptid.clone(), image_id: scan.image_id };
        for (step, ((&voxels_deleted, fraction), &score)) in
            steps.deleted.iter().zip(steps.fractions()).zip(curve).enumerate()
        {
            self.deletion.push(DeletionRow {
                curve: id.clone(),
                step,
                fraction,
                voxels_deleted,
                score,
                ranks_voxels: ranked,
            });
        }
        let aopc =
            aopc(curve).with_context(|| format!("{kind} deletion curve of {method}, image {}", scan.image_id))?;
        let aopc = if ranked { aopc } else { f64::NAN };
        self.aopc.push(AopcRow { curve: id, aopc });
        Ok(())
    }
}

/// The atlas regions inside the brain in label order, each with its voxels (flat C-order
/// indices, ascending).
fn atlas_regions(labels: &Array3<i32>, brain: &Array3<bool>) -> Vec<(i32, Vec<usize>)> {
    let mut regions: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, (&l, &b)) in labels.iter().zip(brain.iter()).enumerate() {
        if l != 0 && b {
            regions.entry(l).or_default().push(i);
        }
    }
    regions.into_iter().collect()
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
    let regions = atlas_regions(labels, brain);
    // `regions` is in label order.
    let tie_rank = random_ranks(regions.len(), tie_seed);
    let flat: Vec<f32> = map.iter().copied().collect();
    let mut out: Vec<(f64, usize, i32, Vec<usize>)> = regions
        .into_iter()
        .zip(tie_rank)
        .map(|((l, voxels), rank)| {
            let sum: f64 = voxels.iter().map(|&i| f64::from(flat[i])).sum();
            (sum / voxels.len() as f64, rank, l, voxels)
        })
        .collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    out.into_iter().map(|(_, _, l, v)| (l, v)).collect()
}

/// The voxels of `regions`, region by region in the order given, each region's voxels in the
/// order they take in `voxel_order` (voxels it lacks go last, in index order): the deletion
/// order of a region curve, whose step cuts the last region it reaches at the right count.
fn region_deletion_order(regions: &[(i32, Vec<usize>)], voxel_order: &[usize]) -> Vec<usize> {
    let len = regions.iter().flat_map(|(_, v)| v.iter()).chain(voxel_order).max().map_or(0, |&m| m + 1);
    let mut position = vec![usize::MAX; len];
    for (p, &i) in voxel_order.iter().enumerate() {
        position[i] = p;
    }
    let mut out = Vec::with_capacity(regions.iter().map(|(_, v)| v.len()).sum());
    for (_, voxels) in regions {
        let mut v = voxels.clone();
        v.sort_by_key(|&i| (position[i], i));
        out.extend(v);
    }
    out
}

/// The deletion steps every scan shares: the brain's voxels and their steps, the atlas regions
/// inside the brain and theirs.
struct DeletionPlan {
    /// The brain's voxels (flat C-order indices, ascending).
    brain: Vec<usize>,
    /// Steps of the voxel curves: `[sanity] fractions` of the brain's voxels.
    voxel_steps: Steps,
    /// The atlas regions inside the brain, in label order.
    regions: Vec<(i32, Vec<usize>)>,
    /// Steps of the region curves: as many atlas voxels as `[sanity] region_steps` regions of
    /// average size hold (the share `r / regions` of the atlas voxels; the random ordering's
    /// expected deletion after `r` whole regions), each at least one voxel, repeats dropped.
    region_steps: Steps,
}

impl DeletionPlan {
    fn new(labels: &Array3<i32>, brain: &Array3<bool>, s: &SanitySection) -> Result<Self> {
        let brain_idx: Vec<usize> = brain.iter().enumerate().filter(|(_, b)| **b).map(|(i, _)| i).collect();
        let counts = steps_for_fractions(brain_idx.len(), &s.fractions)?;
        let voxel_steps = Steps { deleted: std::iter::once(0).chain(counts).collect(), of: brain_idx.len() };
        let regions = atlas_regions(labels, brain);
        if regions.is_empty() {
            bail!("the atlas has no region inside the brain mask: no region deletion possible");
        }
        let atlas_voxels: usize = regions.iter().map(|(_, v)| v.len()).sum();
        let shares: Vec<f64> = s.region_steps.iter().map(|&r| (r as f64 / regions.len() as f64).min(1.0)).collect();
        let mut counts = steps_for_fractions(atlas_voxels, &shares)?;
        counts.dedup();
        let region_steps = Steps { deleted: std::iter::once(0).chain(counts).collect(), of: atlas_voxels };
        Ok(Self { brain: brain_idx, voxel_steps, regions, region_steps })
    }

    /// The random ordering's region deletion order with `seed`: the regions in a seeded random
    /// order, each region's voxels in the order they take in `voxel_order` (the random voxel
    /// order of the same seed), so that the region a step cuts is cut at random voxels.
    fn random_region_order(&self, seed: u64, voxel_order: &[usize]) -> Vec<usize> {
        let index: Vec<usize> = (0..self.regions.len()).collect();
        let shuffled: Vec<(i32, Vec<usize>)> =
            random_order(&index, seed).into_iter().map(|i| self.regions[i].clone()).collect();
        region_deletion_order(&shuffled, voxel_order)
    }
}

/// A seed per scan and random order.
fn order_seed(seed: u64, image_id: i64, r: usize) -> u64 {
    seed ^ (image_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (r as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// The deletion curves of one scan (voxels and regions; every method by relevance, and the
/// random orders), scored by `score`, into `rows`.
#[allow(clippy::too_many_arguments)]
fn scan_curves(
    scan: &Scan,
    methods: &[Method],
    labels: &Array3<i32>,
    brain: &Array3<bool>,
    plan: &DeletionPlan,
    value: f32,
    s: &SanitySection,
    score: &mut dyn FnMut(ArrayView3<'_, f32>) -> f64,
    rows: &mut CurveRows,
) -> Result<()> {
    let x = scan.x.view();
    let (voxel_steps, region_steps) = (&plan.voxel_steps, &plan.region_steps);
    // Random orders: the same for every method. The region permutation and the order within the
    // cut region come from the scan's seed for that order.
    let mut random_voxels = vec![0.0; voxel_steps.deleted.len()];
    let mut random_regions = vec![0.0; region_steps.deleted.len()];
    for r in 0..s.random_orders {
        let seed = order_seed(s.seed, scan.item.image_id, r);
        let order = random_order(&plan.brain, seed);
        let curve = deletion_curve(x, &order, voxel_steps.counts(), value, &mut *score)?;
        random_voxels.iter_mut().zip(&curve).for_each(|(a, c)| *a += c / s.random_orders as f64);
        let order = plan.random_region_order(seed, &order);
        let curve = deletion_curve(x, &order, region_steps.counts(), value, &mut *score)?;
        random_regions.iter_mut().zip(&curve).for_each(|(a, c)| *a += c / s.random_orders as f64);
    }
    // Ties in a map are broken in the first random order's sequence: a plateau is deleted
    // like the baseline, not from the grid's corner.
    let tie_seed = order_seed(s.seed, scan.item.image_id, 0);
    for &method in methods {
        let map = scan.maps[&method].view();
        let ranks = ranks_voxels(map, Some(brain.view()));
        let order = deletion_order(map, Some(brain.view()), tie_seed)?;
        let curve = deletion_curve(x, &order, voxel_steps.counts(), value, &mut *score)?;
        rows.push(VOXELS, method.name(), RELEVANCE_ORDER, &scan.item, voxel_steps, &curve, ranks)?;
        rows.push(VOXELS, method.name(), RANDOM_ORDER, &scan.item, voxel_steps, &random_voxels, ranks)?;
        let order = region_deletion_order(&regions_by_relevance(map, labels, brain, tie_seed), &order);
        let curve = deletion_curve(x, &order, region_steps.counts(), value, &mut *score)?;
        rows.push(REGIONS, method.name(), RELEVANCE_ORDER, &scan.item, region_steps, &curve, ranks)?;
        rows.push(REGIONS, method.name(), RANDOM_ORDER, &scan.item, region_steps, &random_regions, ranks)?;
    }
    Ok(())
}

/// Deletion curves of every AD scan: voxels and regions, by relevance and in random order.
pub(super) fn faithfulness_check(
    model: &ClassificationModel3D<Cpu>,
    scans: &[Scan],
    methods: &[Method],
    labels: &Array3<i32>,
    brain: &Array3<bool>,
    value: f32,
    s: &SanitySection,
) -> Result<CurveRows> {
    let plan = DeletionPlan::new(labels, brain, s)?;
    let mut rows = CurveRows::default();
    let bar = progress_bar(scans.len(), "deletion");
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
        let done = scan_curves(scan, methods, labels, brain, &plan, value, s, &mut score, &mut rows);
        if let Some(e) = failure {
            return Err(e.context(format!("scoring the deletion curves of image {}", scan.item.image_id)));
        }
        done?;
        bar.inc(1);
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
        let x = Steps { deleted: vec![0, 5], of: 10 };
        rows.push(VOXELS, "guided-backprop", RELEVANCE_ORDER, &scan, &x, &[0.9, 0.7], false).unwrap();
        rows.push(VOXELS, "guided-backprop", RANDOM_ORDER, &scan, &x, &[0.9, 0.8], false).unwrap();
        rows.push(VOXELS, "lrp", RELEVANCE_ORDER, &scan, &x, &[0.9, 0.5], true).unwrap();
        rows.push(VOXELS, "lrp", RANDOM_ORDER, &scan, &x, &[0.9, 0.8], true).unwrap();
        assert_eq!(rows.deletion[1].fraction, 0.5);
        assert_eq!(rows.deletion[1].voxels_deleted, 5);
        // one flag per deletion row, the random rows carrying their method's
        let ranks: Vec<bool> = rows.deletion.iter().map(|r| r.ranks_voxels).collect();
        assert_eq!(ranks, [false, false, false, false, true, true, true, true]);
        assert_eq!(ranks.len(), rows.deletion.len());
        // the AOPC of both orderings under the constant map is undefined: the comparison is paired
        let aopc: Vec<f64> = rows.aopc.iter().map(|r| r.aopc).collect();
        assert!(aopc[0].is_nan() && aopc[1].is_nan(), "{aopc:?}");
        assert!((aopc[2] - 0.2).abs() < 1e-12 && (aopc[3] - 0.05).abs() < 1e-12, "{aopc:?}");
    }

    /// A 1 × 6 × 20 slab of brain: atlas regions of 1, 2, 4, 8, 16, 32 and 40 voxels (labels
    /// 1…7 in C order), then 17 voxels without a label. Under a map that ranks small regions
    /// first, steps counted in regions would delete far less tissue than the random order.
    fn slab() -> (Array3<i32>, Array3<bool>) {
        let sizes = [1, 2, 4, 8, 16, 32, 40];
        let mut labels = Vec::new();
        for (l, &n) in sizes.iter().enumerate() {
            labels.extend(std::iter::repeat_n(l as i32 + 1, n));
        }
        labels.extend(std::iter::repeat_n(0, 120 - labels.len()));
        let labels = Array3::from_shape_vec((1, 6, 20), labels).unwrap();
        (labels, Array3::from_elem((1, 6, 20), true))
    }

    fn scan_with(maps: BTreeMap<Method, Array3<f32>>) -> Scan {
        Scan {
            item: ScanItem { image_id: 3, ptid: "002_S_0003".into(), label: 1, path: "3.nii.gz".into() },
            raw: Array3::ones((1, 6, 20)),
            x: Array3::ones((1, 6, 20)),
            target: 1,
            truth: None,
            maps,
        }
    }

    #[test]
    fn every_ordering_deletes_the_same_number_of_voxels_at_each_step() {
        // Regression: region steps were counts of regions, so an ordering that ranks small
        // regions first deleted a fraction of the voxels the random ordering deleted, and its
        // AOPC measured the volume deleted rather than which tissue.
        let (labels, brain) = slab();
        let small_first = Array3::from_shape_fn((1, 6, 20), |(_, j, k)| -(labels[[0, j, k]] as f32));
        let large_first = small_first.mapv(|v| -v);
        let mut rng_map = Array3::<f32>::zeros((1, 6, 20));
        rng_map.iter_mut().enumerate().for_each(|(i, v)| *v = ((i * 37) % 11) as f32);
        let maps = BTreeMap::from([
            (Method::Sensitivity, small_first),
            (Method::Occlusion, large_first),
            (Method::Lrp, rng_map),
        ]);
        let methods: Vec<Method> = maps.keys().copied().collect();
        let scan = scan_with(maps);
        let s = SanitySection { fractions: vec![0.1, 0.5], region_steps: vec![1, 2, 3, 5], ..Default::default() };
        let plan = DeletionPlan::new(&labels, &brain, &s).unwrap();
        // 103 atlas voxels in 7 regions: 1/7, 2/7, 3/7, 5/7 of them
        assert_eq!(plan.region_steps, Steps { deleted: vec![0, 15, 29, 44, 74], of: 103 });
        assert_eq!(plan.voxel_steps, Steps { deleted: vec![0, 12, 60], of: 120 });
        // the score counts the deleted voxels
        let value = -1.0;
        let mut score = |v: ArrayView3<'_, f32>| v.iter().filter(|&&x| x == value).count() as f64;
        let mut rows = CurveRows::default();
        scan_curves(&scan, &methods, &labels, &brain, &plan, value, &s, &mut score, &mut rows).unwrap();
        assert_eq!(rows.deletion.len(), methods.len() * 2 * (3 + 5));
        for r in &rows.deletion {
            let steps = if r.curve.kind == REGIONS { &plan.region_steps } else { &plan.voxel_steps };
            let want = steps.deleted[r.step];
            let what = format!("{} {} {} step {}", r.curve.kind, r.curve.method, r.curve.ordering, r.step);
            assert_eq!(r.score, want as f64, "{what}");
            assert_eq!(r.voxels_deleted, want, "{what}");
            assert_eq!(r.fraction, want as f64 / steps.of as f64, "{what}");
        }
        // the random ordering too, each of its orders (the row is their mean): and it is seeded
        let mut again = CurveRows::default();
        scan_curves(&scan, &methods, &labels, &brain, &plan, value, &s, &mut score, &mut again).unwrap();
        assert_eq!(again.deletion, rows.deletion);
    }

    #[test]
    fn a_region_step_cuts_its_last_region_in_voxel_relevance_order() {
        // region 1 (2 voxels, mean 6) ranks before region 2 (6 voxels, mean 5), which ranks before
        // region 3 (4 voxels, mean 0); voxel 12 (brain, no label, 99) is no atlas voxel
        let labels = Array3::from_shape_vec((1, 1, 13), vec![1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 0]).unwrap();
        let brain = Array3::from_elem((1, 1, 13), true);
        let map =
            Array3::from_shape_vec((1, 1, 13), vec![6.0, 6.0, 9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 0.0, 0.5, -0.5, 0.0, 99.0])
                .unwrap();
        let s = SanitySection { region_steps: vec![1, 2], ..Default::default() };
        let plan = DeletionPlan::new(&labels, &brain, &s).unwrap();
        // 12 atlas voxels: 1/3 → 4, 2/3 → 8
        assert_eq!(plan.region_steps.counts(), [4, 8]);
        let voxels = deletion_order(map.view(), Some(brain.view()), 5).unwrap();
        let order = region_deletion_order(&regions_by_relevance(map.view(), &labels, &brain, 5), &voxels);
        // region 1 whole, then region 2's two most relevant voxels (9 at 2, 8 at 4); a voxel order
        // would have taken 99, 9, 8, 7 instead
        let mut first: Vec<usize> = order[..4].to_vec();
        first[..2].sort_unstable();
        assert_eq!(first, [0, 1, 2, 4]);
        assert_eq!(order[4..8], [6, 7, 5, 3]);
        assert_eq!(order.len(), 12);
        assert!(!order.contains(&12));
    }

    #[test]
    fn the_random_ordering_deletes_whole_regions_then_cuts_one_at_random() {
        let (labels, brain) = slab();
        let s = SanitySection { region_steps: vec![1, 2, 3, 5], ..Default::default() };
        let plan = DeletionPlan::new(&labels, &brain, &s).unwrap();
        let region_of = |i: usize| labels.as_slice().unwrap()[i];
        let mut cuts: Vec<Vec<usize>> = Vec::new();
        for seed in 0..20u64 {
            let order = plan.random_region_order(seed, &random_order(&plan.brain, seed));
            assert_eq!(order.len(), 103);
            assert_eq!(order, plan.random_region_order(seed, &random_order(&plan.brain, seed)));
            for &k in plan.region_steps.counts() {
                // every region but the last one reached is deleted whole
                let mut reached: Vec<i32> = order[..k].iter().map(|&i| region_of(i)).collect();
                reached.dedup();
                let whole = &reached[..reached.len() - 1];
                for &l in whole {
                    let size = labels.iter().filter(|&&x| x == l).count();
                    assert_eq!(order[..k].iter().filter(|&&i| region_of(i) == l).count(), size, "seed {seed}");
                }
                let last = *reached.last().unwrap();
                cuts.push(order[..k].iter().copied().filter(|&i| region_of(i) == last).collect());
            }
        }
        // the regions and the voxels of a cut region vary with the seed: the cut takes no fixed
        // corner of its region
        let firsts: std::collections::BTreeSet<usize> = cuts.iter().filter(|c| c.len() > 1).map(|c| c[0]).collect();
        assert!(firsts.len() > 5, "{firsts:?}");
    }

    #[test]
    fn area_occlusion_is_the_method_whose_region_deletion_is_circular() {
        let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
        assert!(AopcRow::CIRCULAR_REGION_METHODS.iter().all(|m| names.contains(m)));
        assert_eq!(AopcRow::note(REGIONS, Method::AreaOcclusion.name()), Some(AopcRow::CIRCULAR));
        assert_eq!(AopcRow::note(VOXELS, Method::AreaOcclusion.name()), None);
        assert_eq!(AopcRow::note(REGIONS, Method::Occlusion.name()), None);
    }

    #[test]
    fn order_seeds_differ_per_scan_and_order() {
        let a = order_seed(2018, 1, 0);
        assert_ne!(a, order_seed(2018, 2, 0));
        assert_ne!(a, order_seed(2018, 1, 1));
        assert_eq!(a, order_seed(2018, 1, 0));
    }
}
