//! Faster CPU paths for the paper's network, on by default, with a switch back to Burn's own
//! operations (the "straightforward" path).
//!
//! What is replaced, on the CPU backends [`crate::Cpu`] (Flex) and [`crate::CpuTrain`]
//! (`Autodiff<Flex>`) only:
//!
//! - [`conv3d`]: the valid, stride-1 3D convolution of every block and both of its backward
//!   passes (input and weight/bias gradients), as cache-sized im2col tiles times a SIMD matrix
//!   product on all cores ([`conv`]). Flex's own conv3d backward goes through a transposed
//!   convolution and a convolution with the batch as channels, which is several times slower.
//!
//! Every other backend (CUDA, NdArray, …) and every tensor that is not `f32` takes the
//! straightforward path unchanged, so the model stays generic over `B: Backend`: the choice is
//! made at run time from the backend's type (`TypeId`), not with a trait bound.
//!
//! The switch: [`set_fast_cpu`] (process-wide), or the environment variable `MODEL_FAST_CPU=0`
//! (also `false`/`off`) read once at the first use. Both paths give the same values up to float
//! rounding (tested against each other on random inputs, values and all gradients, and on a
//! fixed-seed training run: `crates/model/tests/fast.rs`).

pub mod conv;

use std::any::{Any, TypeId};
use std::sync::atomic::{AtomicU8, Ordering};

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::module::conv3d as burn_conv3d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor, TensorData, TensorMetadata, TensorPrimitive};

use conv::ConvShape;

/// 0 = not decided yet (read `MODEL_FAST_CPU`), 1 = on, 2 = off.
static FAST_CPU: AtomicU8 = AtomicU8::new(0);

/// Turns the fast CPU paths on (the default) or off (Burn's own operations) for the whole process.
pub fn set_fast_cpu(on: bool) {
    FAST_CPU.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Whether the fast CPU paths are on: [`set_fast_cpu`] if it was called, else the environment
/// variable `MODEL_FAST_CPU` (`0`, `false`, `off` turn them off), else on.
pub fn fast_cpu() -> bool {
    match FAST_CPU.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let off = std::env::var("MODEL_FAST_CPU")
                .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false" | "off" | "no"));
            set_fast_cpu(!off);
            !off
        }
    }
}

/// Moves `value` into type `U` when `T` and `U` are the same type (checked by the caller).
fn same<T: 'static, U: 'static>(value: T) -> U {
    *(Box::new(value) as Box<dyn Any>).downcast::<U>().expect("the caller checked that the types are equal")
}

/// The valid (no padding), stride-1, ungrouped 3D convolution `x` `[N, Ci, D, H, W]` ⊛ `weight`
/// `[Co, Ci, kd, kh, kw]` + `bias` → `[N, Co, D − kd + 1, H − kh + 1, W − kw + 1]`, differentiable
/// in all three. Fast path on the CPU backends while [`fast_cpu`] is on; Burn's `conv3d`
/// otherwise.
pub fn conv3d<B: Backend>(x: Tensor<B, 5>, weight: Tensor<B, 5>, bias: Option<Tensor<B, 1>>) -> Tensor<B, 5> {
    if fast_cpu() && x.dtype() == DType::F32 && weight.dtype() == DType::F32 {
        if TypeId::of::<B>() == TypeId::of::<Flex>() {
            let out = conv3d_flex(same(x), same(weight), bias.map(same));
            return same(out);
        }
        if TypeId::of::<B>() == TypeId::of::<Autodiff<Flex>>() {
            let out = conv3d_autodiff(same(x), same(weight), bias.map(same));
            return same(out);
        }
    }
    burn_conv3d(x, weight, bias, ConvOptions::new([1, 1, 1], [0, 0, 0], [1, 1, 1], 1))
}

fn shape_of(x: &FlexTensor, w: &FlexTensor) -> ConvShape {
    let xd = x.shape().dims::<5>();
    let wd = w.shape().dims::<5>();
    assert_eq!(xd[1], wd[1], "conv3d: input has {} channels, weight expects {}", xd[1], wd[1]);
    ConvShape { batch: xd[0], c_in: xd[1], c_out: wd[0], input: [xd[2], xd[3], xd[4]], kernel: [wd[2], wd[3], wd[4]] }
}

/// The tensor's values in row-major order (no copy when it is contiguous).
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("contiguous f32").to_vec()),
    }
}

fn flex(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn conv3d_forward_flex(x: &FlexTensor, w: &FlexTensor, b: Option<&FlexTensor>) -> FlexTensor {
    let s = shape_of(x, w);
    let bias = b.map(values);
    let out = conv::forward(&values(x), &values(w), bias.as_deref(), &s);
    let [od, oh, ow] = s.output();
    flex(out, vec![s.batch, s.c_out, od, oh, ow])
}

fn conv3d_flex(x: Tensor<Flex, 5>, w: Tensor<Flex, 5>, b: Option<Tensor<Flex, 1>>) -> Tensor<Flex, 5> {
    let x = x.into_primitive().tensor();
    let w = w.into_primitive().tensor();
    let b = b.map(|b| b.into_primitive().tensor());
    Tensor::from_primitive(TensorPrimitive::Float(conv3d_forward_flex(&x, &w, b.as_ref())))
}

/// Backward step of [`conv3d`] on `Autodiff<Flex>`: parents (input, weight, bias); the state
/// keeps the input and the weight (as Burn's own conv3d does).
#[derive(Debug)]
struct Conv3dBackward;

impl Backward<Flex, 3> for Conv3dBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, w) = ops.state;
        let s = shape_of(&x, &w);
        let g = values(&grad);
        if let Some(node) = node_x {
            let dx = conv::backward_input(&values(&w), &g, &s);
            grads.register::<Flex>(node.id, flex(dx, x.shape().dims::<5>().to_vec()));
        }
        if node_w.is_some() || node_b.is_some() {
            let (dw, db) = conv::backward_weight(&values(&x), &g, &s);
            if let Some(node) = node_w {
                grads.register::<Flex>(node.id, flex(dw, w.shape().dims::<5>().to_vec()));
            }
            if let Some(node) = node_b {
                grads.register::<Flex>(node.id, flex(db, vec![s.c_out]));
            }
        }
    }
}

/// Backward step of [`conv3d`] without bias: parents (input, weight).
#[derive(Debug)]
struct Conv3dNoBiasBackward;

impl Backward<Flex, 2> for Conv3dNoBiasBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, w) = ops.state;
        let s = shape_of(&x, &w);
        let g = values(&grad);
        if let Some(node) = node_x {
            let dx = conv::backward_input(&values(&w), &g, &s);
            grads.register::<Flex>(node.id, flex(dx, x.shape().dims::<5>().to_vec()));
        }
        if let Some(node) = node_w {
            let (dw, _) = conv::backward_weight(&values(&x), &g, &s);
            grads.register::<Flex>(node.id, flex(dw, w.shape().dims::<5>().to_vec()));
        }
    }
}

type CpuAd = Autodiff<Flex>;

fn conv3d_autodiff(x: Tensor<CpuAd, 5>, w: Tensor<CpuAd, 5>, b: Option<Tensor<CpuAd, 1>>) -> Tensor<CpuAd, 5> {
    let x = x.into_primitive().tensor();
    let w = w.into_primitive().tensor();
    let out = match b {
        Some(b) => {
            let b = b.into_primitive().tensor();
            let y = conv3d_forward_flex(&x.primitive, &w.primitive, Some(&b.primitive));
            match Conv3dBackward
                .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), b.node.clone()])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((x.primitive, w.primitive), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
        None => {
            let y = conv3d_forward_flex(&x.primitive, &w.primitive, None);
            match Conv3dNoBiasBackward.prepare::<NoCheckpointing>([x.node.clone(), w.node.clone()]).compute_bound().stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((x.primitive, w.primitive), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
