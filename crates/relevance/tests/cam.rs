//! Grad-CAM, guided Grad-CAM and linear upsampling: known answers on toys whose logits are linear
//! in one layer's activations, PyTorch's interpolation convention, the paper network's layers.

mod common;

use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use common::{
    A, B, Head, ToyCnn, ToySpec, input_dims, max_abs, max_abs_diff, random_input, tensor, tiny_paper_model, values,
};
use relevance::cam::{GradCamConfig, grad_cam, guided_grad_cam};
use relevance::gradient::{GradientConfig, guided_backprop};
use relevance::upsample::resize_linear;
use relevance::{Explainable, Output, PostProcess, RelevanceError, ReluPoint, Target};

const GRID: [usize; 3] = [30, 30, 28];

fn gap_spec(kernel: usize, grid: Vec<usize>) -> ToySpec {
    ToySpec { in_channels: 2, channels: 4, kernel, grid, classes: 3, head: Head::GlobalAverage }
}

fn close(a: &[f32], b: &[f32], rel: f32) -> bool {
    max_abs_diff(a, b) <= rel * max_abs(b).max(1e-12)
}

// ---------------------------------------------------------------------------------------------
// Upsampling

#[test]
fn two_to_four_along_one_axis_follows_align_corners_false() {
    // [a, b] → [a, ¾a + ¼b, ¼a + ¾b, b], along the last axis of an image and each axis of a volume.
    let (a, b) = (2.0, 6.0);
    let expected = vec![a, 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b, b];
    let image = tensor::<B, 4>(vec![a, b], [1, 1, 1, 2]);
    assert_eq!(values(resize_linear(image, &[1, 4]).unwrap()), expected);
    for axis in 0..3 {
        let mut shape = [1, 1, 1, 1, 1];
        shape[2 + axis] = 2;
        let mut size = [1, 1, 1];
        size[axis] = 4;
        let volume = tensor::<B, 5>(vec![a, b], shape);
        assert_eq!(values(resize_linear(volume, &size).unwrap()), expected, "axis {axis}");
    }
}

#[test]
fn three_to_five_matches_pytorch() {
    // torch.nn.functional.interpolate(tensor([[[1., 2., 4.]]]), size=5, mode="linear")
    // = [1.0, 1.4, 2.0, 3.2, 4.0]; the same along H of a 2D map.
    let row = tensor::<B, 4>(vec![1.0, 2.0, 4.0], [1, 1, 3, 1]);
    let out = values(resize_linear(row, &[5, 1]).unwrap());
    assert!(max_abs_diff(&out, &[1.0, 1.4, 2.0, 3.2, 4.0]) < 1e-6, "{out:?}");
    // Shrinking 4 → 2 averages neighbour pairs: s = 0.5 and 2.5.
    let shrink = values(resize_linear(tensor::<B, 4>(vec![1.0, 3.0, 5.0, 9.0], [1, 1, 1, 4]), &[1, 2]).unwrap());
    assert_eq!(shrink, vec![2.0, 7.0]);
}

#[test]
fn trilinear_resizing_preserves_constants_and_linear_ramps() {
    let (din, dout) = ([3, 4, 5], [7, 9, 6]);
    let n_in: usize = din.iter().product();
    let constant = tensor::<B, 5>(vec![2.5; 2 * n_in], [1, 2, din[0], din[1], din[2]]);
    let out = values(resize_linear(constant, &dout).unwrap());
    assert_eq!(out.len(), 2 * dout.iter().product::<usize>());
    assert!(out.iter().all(|v| (v - 2.5).abs() < 1e-6));

    // f(i, j, k) = 1 + 2i − j + 0.5k is reproduced exactly at the clamped source coordinates.
    let f = |i: f32, j: f32, k: f32| 1.0 + 2.0 * i - j + 0.5 * k;
    let mut ramp = Vec::with_capacity(n_in);
    for i in 0..din[0] {
        for j in 0..din[1] {
            for k in 0..din[2] {
                ramp.push(f(i as f32, j as f32, k as f32));
            }
        }
    }
    let out = values(resize_linear(tensor::<B, 5>(ramp, [1, 1, din[0], din[1], din[2]]), &dout).unwrap());
    let source = |o: usize, n_in: usize, n_out: usize| {
        ((o as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5).clamp(0.0, (n_in - 1) as f32)
    };
    let mut expected = Vec::with_capacity(out.len());
    for i in 0..dout[0] {
        for j in 0..dout[1] {
            for k in 0..dout[2] {
                expected.push(f(source(i, din[0], dout[0]), source(j, din[1], dout[1]), source(k, din[2], dout[2])));
            }
        }
    }
    assert!(max_abs_diff(&out, &expected) < 1e-5);
}

#[test]
fn resizing_to_the_same_size_is_the_identity_and_bad_sizes_are_errors() {
    let x = random_input::<B, 5>([2, 3, 4, 5, 6], 1);
    assert_eq!(values(resize_linear(x.clone(), &[4, 5, 6]).unwrap()), values(x.clone()));
    let e = resize_linear(x.clone(), &[4, 5]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid parameter `size`: has 2 entries for a tensor of shape [2, 3, 4, 5, 6]; expected one per spatial axis (3)"
    );
    assert!(resize_linear(x, &[4, 0, 6]).unwrap_err().to_string().contains("at least 1"));
}

// ---------------------------------------------------------------------------------------------
// Grad-CAM known answers

/// The class activation map of a global-average-pooling toy, on its conv grid:
/// `ReLU(Σ_k v_k A_k)` with `v_k = W[k, c] / |grid|` for the logit, and for the probability
/// `v_k = p_c Σ_j (δ_cj − p_j) W[k, j] / |grid|` (the chain rule through the softmax).
fn gap_cam<const D: usize>(net: &ToyCnn<A, D>, x: Tensor<B, D>, class: usize, output: Output) -> Vec<f32> {
    let inner = net.valid();
    let a = values(inner.features(x.clone(), "conv", &ReluPoint::standard()).unwrap());
    let w = values(inner.out_weight.val());
    let spec = net.spec();
    let (k, classes) = (spec.channels, spec.classes);
    let cells: usize = spec.conv_grid().iter().product();
    let p = values(softmax(inner.logits(x, &ReluPoint::standard()), 1));
    let v: Vec<f32> = (0..k)
        .map(|kk| match output {
            Output::Logit => w[kk * classes + class],
            Output::Probability => {
                p[class] * (0..classes).map(|j| (f32::from(j == class) - p[j]) * w[kk * classes + j]).sum::<f32>()
            }
        } / cells as f32)
        .collect();
    (0..cells).map(|s| (0..k).map(|kk| v[kk] * a[kk * cells + s]).sum::<f32>().max(0.0)).collect()
}

#[test]
fn grad_cam_of_a_2d_global_average_toy_is_its_class_activation_map() {
    // Kernel 1: the conv grid is the input grid, so no upsampling is involved.
    let spec = gap_spec(1, vec![6, 5]);
    let net = ToyCnn::<A, 4>::random(spec.clone(), 31);
    let x = random_input::<B, 4>(input_dims(&spec, 1), 32);
    for (class, output) in [(0, Output::Logit), (2, Output::Logit), (1, Output::Probability)] {
        let config = GradCamConfig { target: Target::Class(class), output, ..Default::default() };
        let cam = values(grad_cam(&net, x.clone(), &config, None).unwrap());
        let expected = gap_cam(&net, x.clone(), class, output);
        assert!(expected.iter().any(|v| *v > 0.0) && expected.contains(&0.0), "a degenerate map");
        assert!(close(&cam, &expected, 1e-5), "class {class} {output:?}: {cam:?} vs {expected:?}");
    }
}

#[test]
fn grad_cam_of_a_3d_global_average_toy_is_its_upsampled_class_activation_map() {
    let spec = gap_spec(3, vec![7, 6, 8]);
    let net = ToyCnn::<A, 5>::random(spec.clone(), 33);
    let x = random_input::<B, 5>(input_dims(&spec, 2), 34);
    let config = GradCamConfig { target: Target::Class(1), output: Output::Logit, ..Default::default() };
    let cam = grad_cam(&net, x.clone(), &config, None).unwrap();
    assert_eq!(cam.dims(), [2, 1, 7, 6, 8]);
    let cam = values(cam);
    let conv = spec.conv_grid();
    for i in 0..2 {
        let map = gap_cam(&net, x.clone().narrow(0, i, 1), 1, Output::Logit);
        let map = tensor::<B, 5>(map, [1, 1, conv[0], conv[1], conv[2]]);
        let expected = values(resize_linear(map, &[7, 6, 8]).unwrap());
        let per = expected.len();
        assert!(max_abs(&expected) > 0.0);
        assert!(close(&cam[i * per..(i + 1) * per], &expected, 1e-5), "input {i}");
    }
}

#[test]
fn grad_cam_resolves_the_predicted_class_per_input() {
    let spec = gap_spec(1, vec![5, 5]);
    let net = ToyCnn::<A, 4>::random(spec.clone(), 35);
    let x = random_input::<B, 4>(input_dims(&spec, 4), 36);
    let predicted =
        relevance::target_classes(net.valid().logits(x.clone(), &ReluPoint::standard()), Target::Predicted).unwrap();
    let cam = values(grad_cam(&net, x.clone(), &GradCamConfig::default(), None).unwrap());
    let per = cam.len() / 4;
    for (i, &class) in predicted.iter().enumerate() {
        let expected = gap_cam(&net, x.clone().narrow(0, i, 1), class, Output::Probability);
        assert!(close(&cam[i * per..(i + 1) * per], &expected, 1e-5), "input {i}");
    }
}

#[test]
fn guided_grad_cam_is_the_product_of_signed_guided_backprop_and_grad_cam() {
    let spec = ToySpec {
        in_channels: 2,
        channels: 3,
        kernel: 3,
        grid: vec![9, 8],
        classes: 2,
        head: Head::MaxPoolDense { pool: 2, hidden: 5 },
    };
    let net = ToyCnn::<A, 4>::random(spec.clone(), 37);
    let x = random_input::<B, 4>(input_dims(&spec, 2), 38);
    let config = GradCamConfig { layer: Some("conv".into()), target: Target::Class(1), ..Default::default() };
    let ggc = guided_grad_cam(&net, x.clone(), &config, None).unwrap();
    assert_eq!(ggc.dims(), [2, 2, 9, 8]);
    let gb_config = GradientConfig { target: Target::Class(1), post: PostProcess::None, ..GradientConfig::default() };
    let gb = guided_backprop(&net, x.clone(), &gb_config, None).unwrap();
    let cam = grad_cam(&net, x, &config, None).unwrap();
    let expected = values(gb.mul(cam));
    let ggc = values(ggc);
    assert!(max_abs(&expected) > 0.0);
    assert!(ggc.iter().any(|v| *v < 0.0), "guided Grad-CAM is signed");
    assert!(close(&ggc, &expected, 1e-6));
}

// ---------------------------------------------------------------------------------------------
// The paper network

#[test]
fn paper_network_features_and_rest_compose_to_the_logits_at_every_layer() {
    let net = tiny_paper_model(GRID, 41).valid();
    let x = random_input::<B, 5>([2, 1, GRID[0], GRID[1], GRID[2]], 42);
    let relu = ReluPoint::standard();
    let logits = values(net.forward_eval(x.clone()));
    let layers = Explainable::feature_layers(&net);
    assert_eq!(
        layers,
        [
            "conv1",
            "block1",
            "conv1-raw",
            "conv2",
            "block2",
            "conv2-raw",
            "conv3",
            "block3",
            "conv3-raw",
            "conv4",
            "block4",
            "conv4-raw"
        ]
    );
    for layer in &layers {
        let a = net.features(x.clone(), layer, &relu).unwrap();
        let out = values(net.logits_from_features(a, layer, &relu).unwrap());
        assert!(max_abs_diff(&out, &logits) < 1e-5, "{layer}");
    }
}

#[test]
fn grad_cam_runs_on_the_paper_network_at_conv4_and_block3_with_the_inputs_grid() {
    let net = tiny_paper_model(GRID, 43);
    let x = random_input::<B, 5>([2, 1, GRID[0], GRID[1], GRID[2]], 44);
    let default = values(grad_cam(&net, x.clone(), &GradCamConfig::default(), None).unwrap());
    for layer in ["conv4", "block3", "conv1"] {
        let config = GradCamConfig { layer: Some(layer.into()), ..Default::default() };
        let cam = grad_cam(&net, x.clone(), &config, None).unwrap();
        assert_eq!(cam.dims(), [2, 1, GRID[0], GRID[1], GRID[2]], "{layer}");
        let cam = values(cam);
        assert!(cam.iter().all(|v| v.is_finite() && *v >= 0.0), "{layer}");
        if layer == "conv4" {
            assert_eq!(cam, default, "conv4 is the default layer");
        }
    }
    // The original's layer: the last convolution's raw output, before BatchNorm and ReLU.
    let raw = GradCamConfig { layer: Some("conv4-raw".into()), ..Default::default() };
    let raw = values(grad_cam(&net, x, &raw, None).unwrap());
    assert!(raw.iter().all(|v| v.is_finite() && *v >= 0.0));
}

#[test]
fn a_raw_conv_layer_is_the_convolution_before_batchnorm_and_relu() {
    let net = tiny_paper_model(GRID, 51).valid();
    let x = random_input::<B, 5>([1, 1, GRID[0], GRID[1], GRID[2]], 52);
    let relu = ReluPoint::standard();
    for k in 1..=4 {
        let raw = net.features(x.clone(), &format!("conv{k}-raw"), &relu).unwrap();
        let activated = values(net.features(x.clone(), &format!("conv{k}"), &relu).unwrap());
        let block = &net.blocks[k - 1];
        let from_raw = values(burn::tensor::activation::relu(block.bn.forward_eval(raw.clone())));
        assert!(max_abs_diff(&from_raw, &activated) < 1e-6, "conv{k}");
        // ... and it is the block's convolution of the previous block's output.
        let input =
            if k == 1 { x.clone() } else { net.features(x.clone(), &format!("block{}", k - 1), &relu).unwrap() };
        assert!(max_abs_diff(&values(raw), &values(block.conv_forward(input))) < 1e-6, "conv{k}-raw");
    }
}

#[test]
fn grad_cam_of_a_scan_does_not_depend_on_its_batch() {
    let net = tiny_paper_model(GRID, 45);
    let x = random_input::<B, 5>([3, 1, GRID[0], GRID[1], GRID[2]], 46);
    let config = GradCamConfig { layer: Some("conv2".into()), ..Default::default() };
    let whole = values(grad_cam(&net, x.clone(), &config, None).unwrap());
    let alone = values(grad_cam(&net, x.clone().narrow(0, 2, 1), &config, None).unwrap());
    let per = alone.len();
    assert!(max_abs(&alone) > 0.0, "a degenerate map");
    assert!(
        close(&whole[2 * per..], &alone, 1e-6),
        "{} vs scale {}",
        max_abs_diff(&whole[2 * per..], &alone),
        max_abs(&alone)
    );
    let small = values(grad_cam(&net, x, &GradCamConfig { budget_mb: 1, ..config }, None).unwrap());
    assert!(close(&small, &whole, 1e-6));
}

#[test]
fn unknown_layers_wrong_shapes_and_targets_are_clear_errors() {
    let net = tiny_paper_model(GRID, 47);
    let x = random_input::<B, 5>([1, 1, GRID[0], GRID[1], GRID[2]], 48);
    let config = GradCamConfig { layer: Some("conv9".into()), ..Default::default() };
    let e = grad_cam(&net, x.clone(), &config, None).unwrap_err();
    assert!(matches!(e, RelevanceError::UnknownLayer { .. }));
    assert_eq!(
        e.to_string(),
        "unknown layer `conv9`; valid layers: conv1, block1, conv1-raw, conv2, block2, conv2-raw, conv3, block3, \
         conv3-raw, conv4, block4, conv4-raw"
    );
    let e = guided_grad_cam(&net, x.clone(), &config, None).unwrap_err();
    assert!(e.to_string().starts_with("unknown layer `conv9`"));

    let toy = ToyCnn::<A, 4>::random(gap_spec(1, vec![4, 4]), 49);
    let toy_x = random_input::<B, 4>([1, 2, 4, 4], 50);
    let e = grad_cam(&toy, toy_x.clone(), &GradCamConfig { layer: Some("pool".into()), ..Default::default() }, None);
    assert_eq!(e.unwrap_err().to_string(), "unknown layer `pool`; valid layers: conv");

    let wrong = random_input::<B, 5>([1, 2, GRID[0], GRID[1], GRID[2]], 51);
    let e = grad_cam(&net, wrong, &GradCamConfig::default(), None).unwrap_err();
    assert!(e.to_string().contains("[1, 2, 30, 30, 28]"), "{e}");

    let class_3 = GradCamConfig { target: Target::Class(3), ..Default::default() };
    let e = grad_cam(&toy, toy_x, &class_3, None).unwrap_err();
    assert_eq!(e.to_string(), "target class 3 is out of range: the model has 3 classes");
}
