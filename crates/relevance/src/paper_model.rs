//! [`Explainable`] for the paper's [`ClassificationModel3D`].
//!
//! ReLU points: the four conv blocks (after BatchNorm) and the two hidden dense layers: all six.
//! Feature layers for Grad-CAM: `conv1` … `conv4` (a block's activations after
//! conv → BatchNorm → ReLU, before its max pooling), `block1` … `block4` (after the pooling), and
//! `conv1-raw` … `conv4-raw` (the convolution's raw output, before BatchNorm and ReLU). The
//! default is `conv4`, the last convolutional layer. The original code hooked the last
//! convolution's raw output, `conv4-raw`: its values are signed and not yet scaled by
//! BatchNorm, so its Grad-CAM weights mix the two signs and the map differs from `conv4`'s
//! (the original's authors left it unused, noting in their code that it works on 2D photos, not
//! on brain scans).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use model::{ClassificationModel3D, FastBackend};

use crate::occlusion::{IncrementalOcclusion, OcclusionBlock};
use crate::{Explainable, RelevanceError, ReluPoint, Result, unknown_layer};

/// Where in a block a feature layer sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The convolution's output, before BatchNorm (`convK-raw`).
    Raw,
    /// After conv → BatchNorm → ReLU, before the pooling (`convK`).
    Activated,
    /// After the pooling (`blockK`).
    Pooled,
}

/// A parsed feature layer name: block index (0-based) and the stage within the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layer {
    block: usize,
    stage: Stage,
}

fn parse_layer(name: &str, blocks: usize) -> Option<Layer> {
    let (stage, number) = if let Some(n) = name.strip_prefix("conv").and_then(|n| n.strip_suffix("-raw")) {
        (Stage::Raw, n)
    } else if let Some(n) = name.strip_prefix("conv") {
        (Stage::Activated, n)
    } else if let Some(n) = name.strip_prefix("block") {
        (Stage::Pooled, n)
    } else {
        return None;
    };
    let k: usize = number.parse().ok()?;
    (1..=blocks).contains(&k).then_some(Layer { block: k - 1, stage })
}

fn layer_of<B: FastBackend>(model: &ClassificationModel3D<B>, layer: &str) -> Result<Layer> {
    parse_layer(layer, model.blocks.len()).ok_or_else(|| unknown_layer(layer, Explainable::feature_layers(model)))
}

/// The head (flatten → dense → ReLU → dense → ReLU → dense) with ReLU points.
pub fn head_with<B: Backend>(
    model: &ClassificationModel3D<B>,
    features: Tensor<B, 5>,
    relu: &ReluPoint<B>,
) -> Tensor<B, 2> {
    let x = features.flatten::<2>(1, 4);
    let x = relu.apply(model.dense_1.forward(x));
    let x = relu.apply(model.dense_2.forward(x));
    model.dense_3.forward(x)
}

impl<B: FastBackend> Explainable<B, 5> for ClassificationModel3D<B> {
    fn num_classes(&self) -> usize {
        self.config().classes
    }

    fn check_input(&self, dims: [usize; 5]) -> Result<()> {
        ClassificationModel3D::check_input(self, dims).map_err(RelevanceError::from)
    }

    fn logits(&self, x: Tensor<B, 5>, relu: &ReluPoint<B>) -> Tensor<B, 2> {
        let x = self.blocks.iter().fold(x, |x, block| block.pool(relu.apply(block.conv_bn_eval(x))));
        head_with(self, x, relu)
    }

    fn feature_layers(&self) -> Vec<String> {
        (1..=self.blocks.len())
            .flat_map(|k| [format!("conv{k}"), format!("block{k}"), format!("conv{k}-raw")])
            .collect()
    }

    fn default_feature_layer(&self) -> String {
        format!("conv{}", self.blocks.len())
    }

    fn features(&self, x: Tensor<B, 5>, layer: &str, relu: &ReluPoint<B>) -> Result<Tensor<B, 5>> {
        self.check_input(x.dims())?;
        let Layer { block, stage } = layer_of(self, layer)?;
        let x = self.blocks[..block].iter().fold(x, |x, b| b.pool(relu.apply(b.conv_bn_eval(x))));
        let b = &self.blocks[block];
        Ok(match stage {
            Stage::Raw => b.conv_forward(x),
            Stage::Activated => relu.apply(b.conv_bn_eval(x)),
            Stage::Pooled => b.pool(relu.apply(b.conv_bn_eval(x))),
        })
    }

    fn logits_from_features(&self, features: Tensor<B, 5>, layer: &str, relu: &ReluPoint<B>) -> Result<Tensor<B, 2>> {
        let Layer { block, stage } = layer_of(self, layer)?;
        let b = &self.blocks[block];
        let x = match stage {
            Stage::Raw => b.pool(relu.apply(b.bn.forward_eval(features))),
            Stage::Activated => b.pool(features),
            Stage::Pooled => features,
        };
        let x = self.blocks[block + 1..].iter().fold(x, |x, b| b.pool(relu.apply(b.conv_bn_eval(x))));
        Ok(head_with(self, x, relu))
    }

    fn incremental_occlusion(&self) -> Option<&dyn IncrementalOcclusion<B>> {
        Some(self)
    }
}

/// The blocks (conv → BatchNorm → ReLU → max pooling) and the dense head, for incremental
/// occlusion.
impl<B: FastBackend> IncrementalOcclusion<B> for ClassificationModel3D<B> {
    fn occlusion_blocks(&self) -> Vec<OcclusionBlock> {
        let config = self.config();
        self.blocks
            .iter()
            .zip(config.channels)
            .map(|(block, out_channels)| OcclusionBlock { kernel: config.kernel, pool: block.pool, out_channels })
            .collect()
    }

    fn block_forward(&self, index: usize, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let block = &self.blocks[index];
        block.pool(ReluPoint::standard().apply(block.conv_bn_eval(x)))
    }

    fn head_forward(&self, features: Tensor<B, 5>) -> Tensor<B, 2> {
        head_with(self, features, &ReluPoint::standard())
    }
}
