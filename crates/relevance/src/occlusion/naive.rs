//! The naive evaluation: whole occluded copies of the input through the whole model, in batches
//! sized to a memory budget. Works for every [`Explainable`] model, 2D and 3D.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;

use super::host::{HostGrid, tensor_from, tensor_values};
use crate::{Explainable, Output, ReluPoint, Result, select_output};

/// Number of `f32` values one input keeps alive in a forward pass, to size batches.
///
/// For a model that offers [`Explainable::incremental_occlusion`] (the paper's network) it is
/// counted from its blocks: the input, and per block the convolution output twice (convolution,
/// then normalisation; the ReLU may reuse a buffer) and the pooled output. For other models it
/// is the input plus every feature layer the model names ([`Explainable::feature_layers`]),
/// measured with one partial forward pass per layer. `x` is one input the model accepts.
pub(crate) fn activation_values<B, M, const D: usize>(model: &M, x: &Tensor<B, D>) -> Result<usize>
where
    B: Backend,
    M: Explainable<B, D>,
{
    let input: usize = x.dims().iter().product();
    if D == 5
        && let Some(net) = model.incremental_occlusion()
    {
        let spatial = &x.dims()[2..];
        let mut dims = [spatial[0], spatial[1], spatial[2]];
        let mut total = input;
        for block in net.occlusion_blocks() {
            let conv = dims.map(|s| s + 1 - block.kernel);
            dims = conv.map(|s| s / block.pool);
            total += block.out_channels * (2 * conv.iter().product::<usize>() + dims.iter().product::<usize>());
        }
        return Ok(total);
    }
    let relu = ReluPoint::standard();
    let mut total = input;
    for layer in model.feature_layers() {
        total += model.features(x.clone(), &layer, &relu)?.dims().iter().product::<usize>();
    }
    Ok(total)
}

/// The explained output for each of `passes` occluded copies of `scan`: copy `p` is `scan` after
/// `occlude(p, copy)`. Evaluated `batch` copies at a time; `progress` gets the passes done.
#[allow(clippy::too_many_arguments)]
pub(crate) fn occluded_outputs<B, M, const D: usize>(
    model: &M,
    scan: &HostGrid,
    device: &B::Device,
    passes: usize,
    batch: usize,
    class: usize,
    output: Output,
    occlude: &(dyn Fn(usize, &mut [f32]) + Sync),
    progress: &mut dyn FnMut(usize),
) -> Vec<f32>
where
    B: Backend,
    M: Explainable<B, D>,
{
    let relu = ReluPoint::standard();
    let per_input = scan.len();
    let mut outputs = Vec::with_capacity(passes);
    let mut start = 0;
    while start < passes {
        let n = batch.max(1).min(passes - start);
        let mut buffer = vec![0.0f32; n * per_input];
        buffer.par_chunks_mut(per_input).enumerate().for_each(|(i, copy)| {
            copy.copy_from_slice(&scan.data);
            occlude(start + i, copy);
        });
        let x: Tensor<B, D> = tensor_from(buffer, scan.batch_shape(n), device);
        let logits = model.logits(x, &relu);
        outputs.extend(tensor_values(select_output(logits, &vec![class; n], output)));
        start += n;
        progress(start);
    }
    outputs
}
