//! Incremental occlusion for a chain of convolution blocks ([`IncrementalOcclusion`]; the
//! paper's network, `ClassificationModel3D`, is one): an occluded cube changes only the
//! activations inside its receptive field, so each block is recomputed over the affected region
//! only and the rest is taken from one unoccluded forward pass.
//!
//! Per axis, at a block with input size `S`, kernel `k` (valid, stride 1) and pooling `p`
//! (window = stride, floor mode, `Q = ⌊(S − k + 1)/p⌋` outputs), a change of the input voxels
//! `[lo, hi]` changes the convolution outputs `[max(0, lo − k + 1), min(hi, S − k)]` and the
//! pooled outputs `[olo/p, ohi/p] ∩ [0, Q − 1]`. When that range is empty (the change lies in
//! the trailing voxels that floor mode drops) nothing further changes and the output is the
//! unoccluded one. Otherwise the pooled outputs `[qlo, qhi]` are recomputed from the input crop
//! `[qlo·p, (qhi + 1)·p + k − 1)`: the block's unoccluded input with the cube's changed values
//! pasted in. Those pooled outputs are the changed region of the next block's input.
//!
//! Batching: every cube of a batch gets the same crop size per axis (the largest of the batch),
//! its start moved down where needed to stay inside the grid, on the pooling grid, so the crops
//! stack into one `[P, C, …]` tensor that goes through convolution → BatchNorm → ReLU → pooling
//! in one call; only each cube's truly affected outputs are kept. After the last block each
//! cube's changed region is pasted into the unoccluded features and the dense head runs on the
//! whole batch. Crops are gathered and scattered on host buffers (rayon over cubes), so each
//! block costs one tensor round trip per batch.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;

use super::host::{Box3, HostGrid, copy_box, tensor_from, tensor_values};
use crate::{Output, select_output};

/// A volume classifier that sliding occlusion can evaluate incrementally
/// ([`OcclusionMode::Incremental`](super::OcclusionMode::Incremental)): a chain of blocks, then a
/// head. A model offers it through [`Explainable::incremental_occlusion`](crate::Explainable::incremental_occlusion);
/// the paper's network (`ClassificationModel3D`) does, in [`crate::paper_model`].
///
/// Contract, on inputs `[N, C, D, H, W]` in inference mode with standard ReLUs: running the
/// blocks in order and then the head gives [`Explainable::logits`](crate::Explainable::logits);
/// block `i` is a valid (unpadded), stride-1 convolution with a cubic kernel of
/// [`OcclusionBlock::kernel`] voxels, then voxel-wise steps (BatchNorm with running statistics,
/// ReLU, …), then max pooling with window = stride = [`OcclusionBlock::pool`] along every axis
/// (floor mode; 1 = none). Each output voxel of a block therefore depends on its receptive field
/// only, which is what lets the engine recompute the changed region alone.
pub trait IncrementalOcclusion<B: Backend> {
    /// The blocks, in forward order.
    fn occlusion_blocks(&self) -> Vec<OcclusionBlock>;

    /// Block `index` (inference mode, standard ReLU) on `x` `[N, C, D, H, W]`; the input may be
    /// any crop of the block's input that the kernel and the pooling fit.
    fn block_forward(&self, index: usize, x: Tensor<B, 5>) -> Tensor<B, 5>;

    /// The head on the last block's output `[N, C, d, h, w]`: logits `[N, classes]`.
    fn head_forward(&self, features: Tensor<B, 5>) -> Tensor<B, 2>;
}

/// The geometry of one block of an [`IncrementalOcclusion`] network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OcclusionBlock {
    /// The convolution's kernel size (the same along every axis).
    pub kernel: usize,
    /// The pooling window (= stride) along every axis; 1 = no pooling.
    pub pool: usize,
    /// The block's output channels.
    pub out_channels: usize,
}

/// Sizes of one block.
#[derive(Debug, Clone, Copy)]
struct BlockGeometry {
    /// Spatial size of the block's input.
    input: [usize; 3],
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    pool: usize,
    /// Spatial size of the block's (pooled) output.
    pooled: [usize; 3],
}

impl BlockGeometry {
    /// The pooled outputs that a change of the input voxels `region` (non-empty) changes, or
    /// `None` where it changes none.
    fn affected(&self, region: &Box3) -> Option<Box3> {
        let mut out = Box3 { lo: [0; 3], hi: [0; 3] };
        for a in 0..3 {
            let (k, p) = (self.kernel, self.pool);
            let first_conv = region.lo[a].saturating_sub(k - 1);
            let last_conv = (region.hi[a] - 1).min(self.input[a] - k);
            let first = first_conv / p;
            let last = (last_conv / p).min(self.pooled[a].checked_sub(1)?);
            if first > last {
                return None;
            }
            out.lo[a] = first;
            out.hi[a] = last + 1;
        }
        Some(out)
    }
}

/// The values of one cube's activations that differ (or may differ) from the unoccluded ones,
/// at the input of some block: `data` is `[C, region]`.
#[derive(Debug, Clone)]
struct Patch {
    /// Index of the cube in the caller's list.
    slot: usize,
    region: Box3,
    data: Vec<f32>,
}

/// The unoccluded activations of a scan and what is needed to update them per cube.
pub(crate) struct IncrementalEngine<'m, B: Backend> {
    model: &'m dyn IncrementalOcclusion<B>,
    device: B::Device,
    blocks: Vec<BlockGeometry>,
    /// `base[b]` is the input of block `b`; `base[blocks]` the features before the head.
    base: Vec<HostGrid>,
    /// Logits of the unoccluded scan `[1, classes]`.
    base_logits: Tensor<B, 2>,
}

/// Result of evaluating a list of cubes.
pub(crate) struct CubeOutputs {
    /// The explained output per cube; `None` where the cube's change vanished before the head
    /// (the output is the unoccluded one).
    pub outputs: Vec<Option<f32>>,
    /// Number of batches.
    pub batches: usize,
}

impl<'m, B: Backend> IncrementalEngine<'m, B> {
    /// Runs the unoccluded scan `x` `[1, 1, D, H, W]` (shape already checked) block by block.
    pub fn new(model: &'m dyn IncrementalOcclusion<B>, x: Tensor<B, 5>) -> Self {
        let device = x.device();
        let shapes = model.occlusion_blocks();
        let mut blocks = Vec::with_capacity(shapes.len());
        let mut base = Vec::with_capacity(shapes.len() + 1);
        let mut a = x;
        for (index, shape) in shapes.iter().enumerate() {
            let host = HostGrid::from_tensor(a.clone());
            a = model.block_forward(index, a);
            let [_, out_channels, p0, p1, p2] = a.dims();
            blocks.push(BlockGeometry {
                input: host.dims,
                in_channels: host.channels,
                out_channels,
                kernel: shape.kernel,
                pool: shape.pool,
                pooled: [p0, p1, p2],
            });
            base.push(host);
        }
        base.push(HostGrid::from_tensor(a.clone()));
        let base_logits = model.head_forward(a);
        IncrementalEngine { model, device, blocks, base, base_logits }
    }

    /// Logits of the unoccluded scan `[1, classes]`.
    pub fn base_logits(&self) -> Tensor<B, 2> {
        self.base_logits.clone()
    }

    /// The input scan on the host.
    pub fn scan(&self) -> &HostGrid {
        &self.base[0]
    }

    /// Per block, the side lengths of the pooled outputs that a change of the input voxels
    /// `region` (non-empty) recomputes, for the blocks it reaches (the list stops at the block
    /// where the change vanishes, if any).
    pub fn reach(&self, region: &Box3) -> Vec<[usize; 3]> {
        let mut out = Vec::with_capacity(self.blocks.len());
        let mut region = *region;
        for g in &self.blocks {
            let Some(q) = g.affected(&region) else { break };
            out.push(q.len());
            region = q;
        }
        out
    }

    /// Upper bound of the `f32` values that one occlusion keeps alive in a block call of a batch
    /// whose crops are `widest` ([`widest`]): crop, convolution output twice (convolution,
    /// then normalisation), pooled output; the head's copy of the features at the end.
    pub fn values_per_occlusion(&self, widest: &[[usize; 3]]) -> usize {
        let blocks = self.blocks.iter().zip(widest).map(|(g, n)| {
            let crop: usize = (0..3).map(|a| n[a] * g.pool + g.kernel - 1).product();
            let conv: usize = (0..3).map(|a| n[a] * g.pool).product();
            let pooled: usize = n.iter().product();
            g.in_channels * crop + g.out_channels * (2 * conv + pooled)
        });
        blocks.max().unwrap_or(0).max(self.base[self.blocks.len()].len())
    }

    /// Multiply–adds of the convolutions of one occlusion in a batch whose crops are `widest`:
    /// the cost model by which area occlusion groups regions into batches.
    pub fn work_per_occlusion(&self, widest: &[[usize; 3]]) -> f64 {
        self.blocks
            .iter()
            .zip(widest)
            .map(|(g, n)| {
                let conv: usize = (0..3).map(|a| n[a] * g.pool).product();
                (g.in_channels * g.out_channels * g.kernel.pow(3) * conv) as f64
            })
            .sum()
    }

    /// Upper bound of the `f32` values that one cube keeps alive in a block call, for the
    /// largest crops that `cubes` lead to ([`Self::values_per_occlusion`]).
    pub fn values_per_cube(&self, cubes: &[Box3]) -> usize {
        let reaches: Vec<Vec<[usize; 3]>> = cubes.iter().map(|c| self.reach(c)).collect();
        let refs: Vec<&[[usize; 3]]> = reaches.iter().map(Vec::as_slice).collect();
        self.values_per_occlusion(&widest(&refs))
    }

    /// The explained output (`output` of class `class`) with each cube of `cubes` set to
    /// `value` (all channels), `batch` cubes per batch; `progress` gets the cubes done.
    pub fn cube_outputs(
        &self,
        cubes: &[Box3],
        value: f32,
        class: usize,
        output: Output,
        batch: usize,
        progress: &mut dyn FnMut(usize),
    ) -> CubeOutputs {
        let mut outputs = Vec::with_capacity(cubes.len());
        let mut batches = 0;
        let channels = self.base[0].channels;
        for chunk in cubes.chunks(batch.max(1)) {
            let occlusions = chunk.iter().map(|cube| (*cube, vec![value; channels * cube.volume()])).collect();
            outputs.extend(self.batch_outputs(occlusions, class, output));
            batches += 1;
            progress(outputs.len());
        }
        CubeOutputs { outputs, batches }
    }

    /// The explained output for one batch of occlusions, each given as the box of the input
    /// that it changes and that box's values after the occlusion (`[C, box]`, all channels;
    /// voxels of the box that keep their value may be included). `None` where the change
    /// vanished before the head (the output is the unoccluded one).
    pub fn batch_outputs(&self, occlusions: Vec<(Box3, Vec<f32>)>, class: usize, output: Output) -> Vec<Option<f32>> {
        let mut outputs = vec![None; occlusions.len()];
        let mut patches: Vec<Patch> = occlusions
            .into_iter()
            .enumerate()
            .map(|(slot, (region, data))| {
                debug_assert_eq!(data.len(), self.base[0].channels * region.volume());
                Patch { slot, region, data }
            })
            .collect();
        for b in 0..self.blocks.len() {
            patches = self.block_step(b, patches);
            if patches.is_empty() {
                return outputs;
            }
        }
        for (slot, out) in self.head_outputs(&patches, class, output) {
            outputs[slot] = Some(out);
        }
        outputs
    }

    /// Recomputes block `b` over the affected region of every patch (patches at its input);
    /// returns the patches at its output, without those whose change vanished.
    fn block_step(&self, b: usize, patches: Vec<Patch>) -> Vec<Patch> {
        let g = self.blocks[b];
        let base = &self.base[b];
        let live: Vec<(Patch, Box3)> =
            patches.into_iter().filter_map(|p| g.affected(&p.region).map(|q| (p, q))).collect();
        if live.is_empty() {
            return Vec::new();
        }
        let mut n = [0usize; 3];
        for (_, q) in &live {
            let len = q.len();
            for a in 0..3 {
                n[a] = n[a].max(len[a]);
            }
        }
        let crop_len = [0, 1, 2].map(|a| n[a] * g.pool + g.kernel - 1);
        let starts: Vec<[usize; 3]> =
            live.iter().map(|(_, q)| [0, 1, 2].map(|a| q.lo[a].min(g.pooled[a] - n[a]))).collect();
        let per_crop = g.in_channels * crop_len.iter().product::<usize>();
        let mut buffer = vec![0.0f32; live.len() * per_crop];
        buffer.par_chunks_mut(per_crop).zip(live.par_iter().zip(&starts)).for_each(|(crop, ((patch, _), start))| {
            let at = start.map(|s| s * g.pool);
            copy_box(&base.data, base.dims, at, crop, crop_len, [0; 3], crop_len, g.in_channels);
            let window = Box3 { lo: at, hi: [0, 1, 2].map(|a| at[a] + crop_len[a]) };
            let paste = patch.region.intersect(&window);
            copy_box(
                &patch.data,
                patch.region.len(),
                [0, 1, 2].map(|a| paste.lo[a] - patch.region.lo[a]),
                crop,
                crop_len,
                [0, 1, 2].map(|a| paste.lo[a] - at[a]),
                paste.len(),
                g.in_channels,
            );
        });
        let mut shape = vec![live.len(), g.in_channels];
        shape.extend_from_slice(&crop_len);
        let x: Tensor<B, 5> = tensor_from(buffer, shape, &self.device);
        let y = self.model.block_forward(b, x);
        debug_assert_eq!(y.dims()[2..], n[..]);
        let values = tensor_values(y);
        let per_out = g.out_channels * n.iter().product::<usize>();
        live.into_par_iter()
            .zip(starts)
            .zip(values.par_chunks(per_out))
            .map(|(((patch, q), start), out)| {
                let mut data = vec![0.0f32; g.out_channels * q.volume()];
                let from = [0, 1, 2].map(|a| q.lo[a] - start[a]);
                copy_box(out, n, from, &mut data, q.len(), [0; 3], q.len(), g.out_channels);
                Patch { slot: patch.slot, region: q, data }
            })
            .collect()
    }

    /// The head on the unoccluded features with each patch pasted in: `(slot, output)`.
    fn head_outputs(&self, patches: &[Patch], class: usize, output: Output) -> Vec<(usize, f32)> {
        let features = &self.base[self.blocks.len()];
        let per = features.len();
        let mut buffer = vec![0.0f32; patches.len() * per];
        buffer.par_chunks_mut(per).zip(patches.par_iter()).for_each(|(copy, patch)| {
            copy.copy_from_slice(&features.data);
            copy_box(
                &patch.data,
                patch.region.len(),
                [0; 3],
                copy,
                features.dims,
                patch.region.lo,
                patch.region.len(),
                features.channels,
            );
        });
        let x: Tensor<B, 5> = tensor_from(buffer, features.batch_shape(patches.len()), &self.device);
        let logits = self.model.head_forward(x);
        let values = tensor_values(select_output(logits, &vec![class; patches.len()], output));
        patches.iter().map(|p| p.slot).zip(values).collect()
    }
}

/// The per-block maximum of several [`IncrementalEngine::reach`] lists: the crop sizes of a batch that
/// holds all of them.
pub(crate) fn widest(reaches: &[&[[usize; 3]]]) -> Vec<[usize; 3]> {
    let mut widest: Vec<[usize; 3]> = Vec::new();
    for reach in reaches {
        if reach.len() > widest.len() {
            widest.resize(reach.len(), [0; 3]);
        }
        for (w, r) in widest.iter_mut().zip(reach.iter()) {
            *w = [0, 1, 2].map(|a| w[a].max(r[a]));
        }
    }
    widest
}
