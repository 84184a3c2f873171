//! [`Explainable`] for the paper's [`ClassificationModel3D`].
//!
//! ReLU points: the four conv blocks (after BatchNorm) and the two hidden dense layers: all six.
//! Feature layers for Grad-CAM: `conv1` … `conv4` (a block's activations after
//! conv → BatchNorm → ReLU, before its max pooling) and `block1` … `block4` (after the pooling);
//! the default is `conv4`, the last convolutional layer.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use model::ClassificationModel3D;

use crate::{Explainable, RelevanceError, ReluPoint, Result, unknown_layer};

/// A parsed feature layer name: block index (0-based) and whether the pooling is included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layer {
    block: usize,
    pooled: bool,
}

fn parse_layer(name: &str, blocks: usize) -> Option<Layer> {
    let (pooled, number) = if let Some(n) = name.strip_prefix("conv") {
        (false, n)
    } else if let Some(n) = name.strip_prefix("block") {
        (true, n)
    } else {
        return None;
    };
    let k: usize = number.parse().ok()?;
    (1..=blocks).contains(&k).then_some(Layer { block: k - 1, pooled })
}

fn layer_of<B: Backend>(model: &ClassificationModel3D<B>, layer: &str) -> Result<Layer> {
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

impl<B: Backend> Explainable<B, 5> for ClassificationModel3D<B> {
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
        (1..=self.blocks.len()).flat_map(|k| [format!("conv{k}"), format!("block{k}")]).collect()
    }

    fn default_feature_layer(&self) -> String {
        format!("conv{}", self.blocks.len())
    }

    fn features(&self, x: Tensor<B, 5>, layer: &str, relu: &ReluPoint<B>) -> Result<Tensor<B, 5>> {
        self.check_input(x.dims())?;
        let Layer { block, pooled } = layer_of(self, layer)?;
        let x = self.blocks[..block].iter().fold(x, |x, b| b.pool(relu.apply(b.conv_bn_eval(x))));
        let b = &self.blocks[block];
        let x = relu.apply(b.conv_bn_eval(x));
        Ok(if pooled { b.pool(x) } else { x })
    }

    fn logits_from_features(&self, features: Tensor<B, 5>, layer: &str, relu: &ReluPoint<B>) -> Result<Tensor<B, 2>> {
        let Layer { block, pooled } = layer_of(self, layer)?;
        let x = if pooled { features } else { self.blocks[block].pool(features) };
        let x = self.blocks[block + 1..].iter().fold(x, |x, b| b.pool(relu.apply(b.conv_bn_eval(x))));
        Ok(head_with(self, x, relu))
    }
}
