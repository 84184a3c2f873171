//! Area occlusion (Rieke et al., MLCN 2018): one evaluation per atlas region, the region set to the
//! occlusion value; every voxel of the region gets the region's drop.
//!
//! Evaluation ([`OcclusionMode`], as for sliding occlusion):
//! - **naive**, any [`Explainable`] model: whole occluded copies through the whole model, batched
//!   to the memory budget;
//! - **incremental**, a model that offers [`Explainable::incremental_occlusion`] (the paper's
//!   network): the region's bounding box is the changed box of the incremental engine
//!   ([`super::incremental`]), whose values are the scan's with the region's voxels set to the
//!   value (the other voxels of the box keep theirs, so recomputing them changes nothing). Each
//!   block is recomputed over what the box reaches only. Regions are grouped into batches by a
//!   cost model ([`group_regions`]): the crops of a batch share one size per axis, so a batch
//!   only takes a region whose crops do not make the batch's convolutions much more expensive
//!   than the regions' own. The same drops as naive up to float rounding (the tests compare
//!   them on random networks and atlases).
//!
//! Regions with a large bounding box are evaluated incrementally too: with crops as large as
//! the grid a block call does what the full forward pass does, and the copies around it are
//! small next to the convolutions (see `BENCHMARKS.md`, area occlusion).

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use ndarray::ArrayViewD;
use rayon::prelude::*;

use super::host::{Box3, HostGrid, copy_box, tensor_from, tensor_values};
use super::incremental::{IncrementalEngine, widest};
use super::{
    DEFAULT_MEMORY_BUDGET_MB, MAX_INCREMENTAL_BATCH, OcclusionMode, check_single_input, check_value,
    incremental_network, naive,
};
use crate::{
    Explainable, Output, Progress, RelevanceError, ReluPoint, Result, Target, batch_for_budget, select_output,
    target_classes,
};

/// Parameters of area occlusion.
#[derive(Debug, Clone, PartialEq)]
pub struct AreaOcclusionConfig {
    /// The value occluded voxels get (every channel). Default 0 = the training mean after
    /// z-scoring. Honoured here; the original code's area occlusion took an occlusion value
    /// but always set the region to 0, so only the default reproduces it.
    pub value: f32,
    /// The class explained. Default: the predicted class of the unoccluded input.
    pub target: Target,
    /// The output explained. Default: the softmax probability.
    pub output: Output,
    /// Memory for one batch of occluded inputs (their activations included), in MB; 0 evaluates
    /// one input at a time. Default [`DEFAULT_MEMORY_BUDGET_MB`]. Incremental batches hold at
    /// most [`MAX_INCREMENTAL_BATCH`] regions.
    pub memory_budget_mb: usize,
    /// Naive or incremental evaluation. Default [`OcclusionMode::Auto`] (incremental for the
    /// paper's network).
    pub mode: OcclusionMode,
}

impl Default for AreaOcclusionConfig {
    fn default() -> Self {
        AreaOcclusionConfig {
            value: 0.0,
            target: Target::Predicted,
            output: Output::Probability,
            memory_budget_mb: DEFAULT_MEMORY_BUDGET_MB,
            mode: OcclusionMode::Auto,
        }
    }
}

/// The effect of occluding one region.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionDrop {
    /// The label value.
    pub label: i32,
    /// Voxels of the region.
    pub voxels: usize,
    /// `out(original) − out(region occluded)`, not clipped.
    pub difference: f32,
    /// The difference clipped at 0: the value of the region's voxels in the map.
    pub drop: f32,
}

/// An area-occlusion map and the drop of every region.
#[derive(Debug, Clone)]
pub struct AreaOcclusionMap<B: Backend, const D: usize> {
    /// The relevance map `[1, 1, spatial…]`; 0 outside every region.
    pub map: Tensor<B, D>,
    /// One entry per non-zero label, by increasing label.
    pub regions: Vec<RegionDrop>,
    /// The explained class.
    pub class: usize,
    /// The explained output of the unoccluded input.
    pub baseline: f32,
    /// Batches evaluated.
    pub batches: usize,
    /// The evaluation used ([`OcclusionMode::Naive`] or [`OcclusionMode::Incremental`]).
    pub mode: OcclusionMode,
}

/// Area occlusion of one input `x` `[1, C, spatial…]` with the label volume `labels` on the
/// input's spatial grid (same shape, same axis order; 0 = background): one evaluation per
/// non-zero label, batched to the memory budget; every voxel of a region gets `out(original) −
/// out(region set to value)` clipped at 0 (all channels are occluded). A model that offers
/// [`Explainable::incremental_occlusion`] (the paper's network does) is evaluated incrementally
/// in [`OcclusionMode::Auto`] (see the module documentation).
///
/// The original took a list of binary masks and wrote each region's drop into the map in list
/// order, so where masks overlapped the later region overwrote the earlier; the regions of one
/// label volume cannot overlap, so the order does not matter here.
///
/// A label volume held as a flat slice in the input's spatial (C) order becomes a view with
/// `ndarray::ArrayViewD::from_shape(ndarray::IxDyn(&spatial), &labels)`.
///
/// Errors: an input that is not one input of the model's shape; a label volume of another grid
/// than the input or without a non-zero label ([`RelevanceError::Atlas`]); incremental mode for
/// a model that does not offer it ([`RelevanceError::Parameter`]).
pub fn area_occlusion<B, M, const D: usize>(
    model: &M,
    x: Tensor<B, D>,
    labels: ArrayViewD<'_, i32>,
    config: &AreaOcclusionConfig,
    progress: Progress,
) -> Result<AreaOcclusionMap<B, D>>
where
    B: Backend,
    M: Explainable<B, D>,
{
    check_value(config.value)?;
    check_single_input(model, &x)?;
    let dims = x.dims();
    let spatial = &dims[2..];
    if labels.shape() != spatial {
        return Err(RelevanceError::Atlas(format!(
            "the label volume has shape {:?} but the input's grid is {spatial:?}; resample the atlas to the input grid first",
            labels.shape()
        )));
    }
    let mut grid = [1usize; 3];
    grid[3 - spatial.len()..].copy_from_slice(spatial);
    let regions = regions_of(labels.view(), grid);
    if regions.is_empty() {
        return Err(RelevanceError::Atlas(format!(
            "the label volume ({} voxels) has no non-zero label: there is no region to occlude",
            labels.len()
        )));
    }
    let device = x.device();
    let mut report = |done: usize| {
        if let Some(p) = progress {
            p(done, regions.len());
        }
    };
    let network = incremental_network(model, config.mode)?;
    let evaluated = match network {
        Some(network) => {
            let x5: Tensor<B, 5> =
                x.reshape(<[usize; 5]>::try_from(&dims[..]).expect("incremental occlusion takes rank 5"));
            incremental_outputs(IncrementalEngine::new(network, x5), &regions, config, &mut report)?
        }
        None => naive_outputs(model, x, &regions, config, &mut report)?,
    };

    let voxels: usize = spatial.iter().product();
    let mut map = vec![0.0f32; voxels];
    let drops = regions
        .iter()
        .zip(&evaluated.outputs)
        .map(|(region, out)| {
            let difference = evaluated.baseline - out;
            let drop = difference.max(0.0);
            for &v in &region.voxels {
                map[v] = drop;
            }
            RegionDrop { label: region.label, voxels: region.voxels.len(), difference, drop }
        })
        .collect();
    let mut shape = vec![1, 1];
    shape.extend_from_slice(spatial);
    Ok(AreaOcclusionMap {
        map: tensor_from(map, shape, &device),
        regions: drops,
        class: evaluated.class,
        baseline: evaluated.baseline,
        batches: evaluated.batches,
        mode: evaluated.mode,
    })
}

/// One region of the label volume.
struct Region {
    label: i32,
    /// Its voxels, as C-order indices into the spatial grid.
    voxels: Vec<usize>,
    /// The smallest box holding them, on the grid padded to three axes.
    bounds: Box3,
}

/// The regions of `labels` (every non-zero label), by increasing label; `grid` is the spatial
/// grid padded with leading 1s to three axes.
fn regions_of(labels: ArrayViewD<'_, i32>, grid: [usize; 3]) -> Vec<Region> {
    let mut regions: BTreeMap<i32, Region> = BTreeMap::new();
    let [_, d1, d2] = grid;
    for (voxel, &label) in labels.iter().enumerate() {
        if label == 0 {
            continue;
        }
        let at = [voxel / (d1 * d2), (voxel / d2) % d1, voxel % d2];
        let region = regions.entry(label).or_insert_with(|| Region {
            label,
            voxels: Vec::new(),
            bounds: Box3 { lo: at, hi: at.map(|i| i + 1) },
        });
        region.voxels.push(voxel);
        let bounds = &mut region.bounds;
        bounds.lo = [0, 1, 2].map(|a| bounds.lo[a].min(at[a]));
        bounds.hi = [0, 1, 2].map(|a| bounds.hi[a].max(at[a] + 1));
    }
    regions.into_values().collect()
}

/// The explained output with each region occluded, and what the evaluation found.
struct Evaluated {
    /// Per region, in the order of the regions.
    outputs: Vec<f32>,
    class: usize,
    baseline: f32,
    batches: usize,
    mode: OcclusionMode,
}

/// Whole occluded copies through the whole model, batched to the memory budget.
fn naive_outputs<B, M, const D: usize>(
    model: &M,
    x: Tensor<B, D>,
    regions: &[Region],
    config: &AreaOcclusionConfig,
    report: &mut dyn FnMut(usize),
) -> Result<Evaluated>
where
    B: Backend,
    M: Explainable<B, D>,
{
    let device = x.device();
    let per_input = naive::activation_values(model, &x)? * std::mem::size_of::<f32>();
    let batch = batch_for_budget(config.memory_budget_mb, per_input);
    let base_logits = model.logits(x.clone(), &ReluPoint::standard());
    let class = target_classes(base_logits.clone(), config.target)?[0];
    let baseline = tensor_values(select_output(base_logits, &[class], config.output))[0];
    let scan = HostGrid::from_tensor(x);
    let voxels = scan.voxels();
    let value = config.value;
    let occlude = |pass: usize, copy: &mut [f32]| {
        for c in 0..scan.channels {
            for &v in &regions[pass].voxels {
                copy[c * voxels + v] = value;
            }
        }
    };
    let outputs = naive::occluded_outputs::<B, M, D>(
        model,
        &scan,
        &device,
        regions.len(),
        batch,
        class,
        config.output,
        &occlude,
        report,
    );
    Ok(Evaluated { outputs, class, baseline, batches: regions.len().div_ceil(batch), mode: OcclusionMode::Naive })
}

/// Each region's bounding box through the incremental engine, in batches of
/// [`group_regions`].
fn incremental_outputs<B: Backend>(
    engine: IncrementalEngine<'_, B>,
    regions: &[Region],
    config: &AreaOcclusionConfig,
    report: &mut dyn FnMut(usize),
) -> Result<Evaluated> {
    let base_logits = engine.base_logits();
    let class = target_classes(base_logits.clone(), config.target)?[0];
    let baseline = tensor_values(select_output(base_logits, &[class], config.output))[0];
    let reaches: Vec<Vec<[usize; 3]>> = regions.iter().map(|r| engine.reach(&r.bounds)).collect();
    let budget = config.memory_budget_mb;
    let batches = group_regions(
        &reaches,
        |w| engine.work_per_occlusion(w),
        |w| batch_for_budget(budget, engine.values_per_occlusion(w) * std::mem::size_of::<f32>()),
    );
    let scan = engine.scan();
    let mut outputs = vec![baseline; regions.len()];
    let mut done = 0;
    for batch in &batches {
        let occlusions = batch.par_iter().map(|&r| occluded_box(scan, &regions[r], config.value)).collect();
        for (&r, out) in batch.iter().zip(engine.batch_outputs(occlusions, class, config.output)) {
            // `None`: the change vanished in voxels that a floor-mode pooling drops, and the
            // output is exactly the unoccluded one.
            if let Some(out) = out {
                outputs[r] = out;
            }
        }
        done += batch.len();
        report(done);
    }
    Ok(Evaluated { outputs, class, baseline, batches: batches.len(), mode: OcclusionMode::Incremental })
}

/// The region's bounding box of `scan` with the region's voxels set to `value` (all channels),
/// `[C, box]`.
fn occluded_box(scan: &HostGrid, region: &Region, value: f32) -> (Box3, Vec<f32>) {
    let bounds = region.bounds;
    let len = bounds.len();
    let volume = bounds.volume();
    let mut data = vec![0.0f32; scan.channels * volume];
    copy_box(&scan.data, scan.dims, bounds.lo, &mut data, len, [0; 3], len, scan.channels);
    let [_, d1, d2] = scan.dims;
    for &v in &region.voxels {
        let at = [v / (d1 * d2), (v / d2) % d1, v % d2];
        let local = ((at[0] - bounds.lo[0]) * len[1] + at[1] - bounds.lo[1]) * len[2] + at[2] - bounds.lo[2];
        for c in 0..scan.channels {
            data[c * volume + local] = value;
        }
    }
    (bounds, data)
}

/// Batches of regions for incremental evaluation, as lists of region indices. `reaches[r]` is
/// region `r`'s [`IncrementalEngine::reach`]; `work` gives the convolution work of one
/// occlusion with the given crops and `capacity` how many such occlusions the memory budget
/// lets one batch hold.
///
/// The regions are taken by decreasing work (ties by index) and added to the open batch while
/// the batch stays within [`MAX_INCREMENTAL_BATCH`] and `capacity` and padding its crops to
/// one size adds no work (size × the work of its largest crops ≤ the sum of its regions' own
/// work: in practice, regions whose crops have the same size); otherwise a new batch opens.
/// Padding is not worth it: on the 2 mm grid with CerebrA, letting a batch do 25 % more work
/// than its regions' own made area occlusion slower, not faster (38 batches instead of 84,
/// 0.24–0.38 s against 0.15–0.24 s per scan), and one batch of all 102 regions took 1.2–1.9 s.
fn group_regions(
    reaches: &[Vec<[usize; 3]>],
    work: impl Fn(&[[usize; 3]]) -> f64,
    capacity: impl Fn(&[[usize; 3]]) -> usize,
) -> Vec<Vec<usize>> {
    let own: Vec<f64> = reaches.iter().map(|r| work(r)).collect();
    let mut order: Vec<usize> = (0..reaches.len()).collect();
    order.sort_by(|&a, &b| own[b].total_cmp(&own[a]).then(a.cmp(&b)));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut open_own = 0.0;
    for r in order {
        if !open.is_empty() {
            let members: Vec<&[[usize; 3]]> = open.iter().chain([&r]).map(|&i| reaches[i].as_slice()).collect();
            let crops = widest(&members);
            let n = members.len();
            let fits = n <= MAX_INCREMENTAL_BATCH.min(capacity(&crops)) && n as f64 * work(&crops) <= open_own + own[r];
            if !fits {
                batches.push(std::mem::take(&mut open));
                open_own = 0.0;
            }
        }
        open.push(r);
        open_own += own[r];
    }
    if !open.is_empty() {
        batches.push(open);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work of a crop list: the voxels of its first entry.
    fn volume(crops: &[[usize; 3]]) -> f64 {
        crops.first().map_or(0.0, |c| c.iter().product::<usize>() as f64)
    }

    fn sorted(mut batches: Vec<Vec<usize>>) -> Vec<Vec<usize>> {
        for b in &mut batches {
            b.sort_unstable();
        }
        batches
    }

    #[test]
    fn regions_of_equal_size_share_a_batch_and_every_region_is_in_one() {
        let reaches = vec![vec![[4, 4, 4]]; 5];
        let batches = group_regions(&reaches, volume, |_| usize::MAX);
        assert_eq!(sorted(batches), vec![vec![0, 1, 2, 3, 4]]);
    }

    #[test]
    fn a_region_much_larger_than_the_others_gets_its_own_batch() {
        // Region 1's crops are 8× the others': with it, a batch would do 2 × 512 against
        // 512 + 64 of the regions' own work.
        let reaches = vec![vec![[4, 4, 4]], vec![[8, 8, 8]], vec![[4, 4, 4]], vec![[4, 4, 4]]];
        let batches = group_regions(&reaches, volume, |_| usize::MAX);
        assert_eq!(sorted(batches), vec![vec![1], vec![0, 2, 3]]);
    }

    #[test]
    fn regions_share_a_batch_only_where_padding_adds_no_work() {
        // [8, 2, 2] and [2, 8, 2] have 32 voxels each, but together 2 × [8, 8, 2] = 256 > 64.
        let reaches = vec![vec![[8, 2, 2]], vec![[2, 8, 2]]];
        assert_eq!(group_regions(&reaches, volume, |_| usize::MAX).len(), 2);
        // Nearly equal crops do not share either: 2 × [5, 4, 4] = 160 > 80 + 64.
        let reaches = vec![vec![[5, 4, 4]], vec![[4, 4, 4]]];
        assert_eq!(group_regions(&reaches, volume, |_| usize::MAX).len(), 2);
        // Equal crops in the blocks that count do: the work looks at the first block only.
        let reaches = vec![vec![[4, 4, 4], [2, 2, 2]], vec![[4, 4, 4], [1, 1, 1]]];
        assert_eq!(group_regions(&reaches, volume, |_| usize::MAX).len(), 1);
    }

    #[test]
    fn batches_respect_the_memory_capacity_and_the_batch_limit() {
        let reaches = vec![vec![[3, 3, 3]]; 7];
        let batches = group_regions(&reaches, volume, |_| 3);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 1]);
        let one = group_regions(&reaches, volume, |_| 1);
        assert_eq!(one.len(), 7, "capacity 1 (memory budget 0): one region per batch");
        let many = vec![vec![[1, 1, 1]]; MAX_INCREMENTAL_BATCH + 1];
        assert_eq!(group_regions(&many, volume, |_| usize::MAX).len(), 2);
    }

    #[test]
    fn regions_are_taken_by_decreasing_work() {
        let reaches = vec![vec![[2, 2, 2]], vec![[9, 9, 9]], vec![[5, 5, 5]], vec![]];
        let batches = group_regions(&reaches, volume, |_| 1);
        assert_eq!(batches, vec![vec![1], vec![2], vec![0], vec![3]]);
    }

    #[test]
    fn a_region_box_holds_the_scan_with_the_region_set_to_the_value() {
        // Two channels on a 3 × 3 × 3 grid; region: voxels (0, 1, 1) and (1, 2, 2).
        let dims = [3, 3, 3];
        let data: Vec<f32> = (0..54).map(|v| v as f32).collect();
        let scan = HostGrid { rank: 3, channels: 2, dims, data };
        let at = |i: usize, j: usize, k: usize| (i * 3 + j) * 3 + k;
        let labels = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&dims), |i| {
            i32::from([i[0], i[1], i[2]] == [0, 1, 1] || [i[0], i[1], i[2]] == [1, 2, 2])
        });
        let regions = regions_of(labels.view(), dims);
        assert_eq!(regions.len(), 1);
        assert_eq!(regions[0].voxels, vec![at(0, 1, 1), at(1, 2, 2)]);
        let (bounds, values) = occluded_box(&scan, &regions[0], -1.0);
        assert_eq!(bounds, Box3 { lo: [0, 1, 1], hi: [2, 3, 3] });
        // The box is [2, 2, 2] per channel, in C order.
        let mut want = Vec::new();
        for c in 0..2 {
            for (i, j, k) in [(0, 1, 1), (0, 1, 2), (0, 2, 1), (0, 2, 2), (1, 1, 1), (1, 1, 2), (1, 2, 1), (1, 2, 2)] {
                let occluded = (i, j, k) == (0, 1, 1) || (i, j, k) == (1, 2, 2);
                want.push(if occluded { -1.0 } else { (c * 27 + at(i, j, k)) as f32 });
            }
        }
        assert_eq!(values, want);
    }
}
