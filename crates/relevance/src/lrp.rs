//! Layer-wise relevance propagation (LRP; Bach et al. 2015, Montavon et al. 2019) for 3D CNNs
//! made of valid stride-1 convolutions (BatchNorm folded in), ReLU, max pooling, flatten and
//! dense layers: the paper's network, or any model that lists its layers as [`LrpLayer`]s
//! through [`LrpModel`].
//!
//! The relevance of the explained class starts as its **logit** (one-hot × logit; LRP explains
//! the pre-softmax score, whatever [`Output`](crate::Output) the other methods use) and flows
//! back layer by layer:
//!
//! - ReLU and flatten pass it through; max pooling sends each window's relevance to its maximum
//!   (winner takes all, the gradient's routing, as zennit does);
//! - a convolution or dense layer `z = W·a + b` redistributes it with a rule ([`LrpRule`]):
//!   - ε: `R_in = a ⊙ Wᵀ (R / (z + ε·sign z))`;
//!   - αβ (α − β = 1; α = 1, β = 0 is z⁺): positive and negative contributions normalised
//!     separately, `R_in = α·a⁺-and-a⁻ share of (W⁺a⁺ + W⁻a⁻ + b⁺) − β·share of
//!     (W⁻a⁺ + W⁺a⁻ + b⁻)`;
//!   - z^B (the input layer, for inputs in a box [l, h]): `R_in = (a ⊙ Wᵀs − l·W⁺ᵀs − h·W⁻ᵀs)`
//!     with `s = R / (W·a − W⁺·l − W⁻·h)`.
//!
//! The formulas, stabilisers (`z + ε` with the sign of `z`, +ε at 0; 1e-6 in the αβ and z^B
//! rules) and the bias handling are zennit's (`zennit.rules`, version 0.5), so that
//! `scripts/torch-crosscheck/lrp_zennit.py` compares the two on the same weights.
//!
//! **Conservation.** Every rule hands on the relevance it receives, except what the biases
//! (the folded BatchNorm shifts included) and the stabilisers absorb, so the map's sum equals the
//! logit up to that absorption: exactly so (to float precision) for a network without biases.
//! [`lrp`] returns both numbers per input, so a run can state the absorbed share.
//!
//! Vector–Jacobian products `Wᵀs` of the convolutions and the pooling routes are taken with
//! Burn's autodiff on the backend given (the fast CPU convolution where it applies), so the rules
//! need no hand-written transposed convolution.

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use model::{ClassificationModel3D, FastBackend};

use crate::{Explainable, RelevanceError, Result, Target, target_classes};

/// The stabiliser of the αβ and z^B rules (zennit's default).
pub const STABILIZER: f32 = 1e-6;

/// One layer of a network as LRP sees it (inference mode: BatchNorm folded into the preceding
/// convolution, dropout gone).
#[derive(Debug, Clone)]
pub enum LrpLayer<B: Backend> {
    /// A valid (unpadded), stride-1, ungrouped 3D convolution `[Co, Ci, kd, kh, kw]` with bias.
    Conv3d {
        /// Weights `[Co, Ci, kd, kh, kw]`.
        weight: Tensor<B, 5>,
        /// Bias `[Co]`.
        bias: Tensor<B, 1>,
    },
    /// A ReLU.
    Relu,
    /// Max pooling with window = stride = `kernel`, floor mode.
    MaxPool3d {
        /// Window (= stride) per axis.
        kernel: [usize; 3],
    },
    /// `[N, C, D, H, W]` → `[N, C·D·H·W]` in C order.
    Flatten,
    /// A dense layer `y = x·W + b` with `W` stored `[in, out]` (Burn's layout).
    Dense {
        /// Weights `[in, out]`.
        weight: Tensor<B, 2>,
        /// Bias `[out]`.
        bias: Tensor<B, 1>,
    },
}

impl<B: Backend> LrpLayer<B> {
    /// The layer's kind, in words.
    pub fn kind(&self) -> &'static str {
        match self {
            LrpLayer::Conv3d { .. } => "convolution",
            LrpLayer::Relu => "ReLU",
            LrpLayer::MaxPool3d { .. } => "max-pooling",
            LrpLayer::Flatten => "flatten",
            LrpLayer::Dense { .. } => "dense",
        }
    }
}

/// A model LRP can explain: an [`Explainable`] volume classifier that lists its layers.
pub trait LrpModel<B: Backend>: Explainable<B, 5> {
    /// The layers in forward order, in inference mode (BatchNorm folded into the convolution
    /// before it). Their forward pass must give [`Explainable::logits`].
    fn lrp_layers(&self) -> Vec<LrpLayer<B>>;
}

impl<B: FastBackend> LrpModel<B> for ClassificationModel3D<B> {
    fn lrp_layers(&self) -> Vec<LrpLayer<B>> {
        let mut layers = Vec::new();
        for block in &self.blocks {
            let (scale, shift) = block.bn.eval_affine();
            let weight = block.conv.weight.val();
            let co = weight.dims()[0];
            let bias = match &block.conv.bias {
                Some(b) => b.val(),
                None => Tensor::zeros([co], &weight.device()),
            };
            layers.push(LrpLayer::Conv3d {
                weight: weight.mul(scale.clone().reshape([co, 1, 1, 1, 1])),
                bias: bias.mul(scale).add(shift),
            });
            layers.push(LrpLayer::Relu);
            if block.pool > 1 {
                layers.push(LrpLayer::MaxPool3d { kernel: [block.pool; 3] });
            }
        }
        layers.push(LrpLayer::Flatten);
        let dense = |l: &burn::nn::Linear<B>| {
            let weight = l.weight.val();
            let out = weight.dims()[1];
            let bias = l.bias.as_ref().map(|b| b.val()).unwrap_or_else(|| Tensor::zeros([out], &weight.device()));
            LrpLayer::Dense { weight, bias }
        };
        layers.push(dense(&self.dense_1));
        layers.push(LrpLayer::Relu);
        layers.push(dense(&self.dense_2));
        layers.push(LrpLayer::Relu);
        layers.push(dense(&self.dense_3));
        layers
    }
}

/// How one convolution or dense layer redistributes relevance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrpRule {
    /// The ε rule (ε = 0 is LRP-0, which for a ReLU network is gradient × input).
    Epsilon {
        /// Added to |z| (with z's sign) in the denominator.
        epsilon: f32,
    },
    /// The αβ rule; α − β must be 1 (α = 1, β = 0 is z⁺).
    AlphaBeta {
        /// Weight of the positive contributions.
        alpha: f32,
        /// Weight of the negative contributions.
        beta: f32,
    },
    /// The z^B rule for inputs bounded by [`LrpConfig::bounds`] (meant for the first layer).
    ZBox,
}

/// Which rule each kind of layer gets: the first convolution or dense layer (the input layer),
/// the other convolutions, the dense layers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrpComposite {
    /// The input layer.
    pub first: LrpRule,
    /// Every other convolution.
    pub conv: LrpRule,
    /// Every other dense layer.
    pub dense: LrpRule,
}

impl LrpComposite {
    /// The named composites, for configs and the command line:
    ///
    /// | name | input layer | convolutions | dense | zennit |
    /// |---|---|---|---|---|
    /// | `epsilon` | ε | ε | ε | `EpsilonGammaBox` aside, the plain ε rule everywhere |
    /// | `alpha1-beta0` | αβ(1, 0) | αβ(1, 0) | αβ(1, 0) | `AlphaBeta(1, 0)` everywhere |
    /// | `alpha2-beta1` | αβ(2, 1) | αβ(2, 1) | αβ(2, 1) | `AlphaBeta(2, 1)` everywhere |
    /// | `epsilon-plus` | z⁺ | z⁺ | ε | `EpsilonPlus` |
    /// | `epsilon-alpha2-beta1` | αβ(2, 1) | αβ(2, 1) | ε | `EpsilonAlpha2Beta1` |
    /// | `epsilon-plus-box` (default) | z^B | z⁺ | ε | `EpsilonPlus` with a `ZBox` first layer |
    pub const NAMES: [&'static str; 6] =
        ["epsilon", "alpha1-beta0", "alpha2-beta1", "epsilon-plus", "epsilon-alpha2-beta1", "epsilon-plus-box"];

    /// The composite called `name` (one of [`Self::NAMES`]), with `epsilon` for its ε layers.
    pub fn named(name: &str, epsilon: f32) -> Result<Self> {
        let found =
            CompositeName::ALL.into_iter().find(|c| c.name() == name).ok_or_else(|| RelevanceError::Parameter {
                name: "rule",
                message: format!("unknown LRP composite `{name}`; valid: {}", Self::NAMES.join(", ")),
            })?;
        Ok(Self::of(found, epsilon))
    }

    /// The composite `name`, with `epsilon` for its ε layers.
    pub fn of(name: CompositeName, epsilon: f32) -> Self {
        let eps = LrpRule::Epsilon { epsilon };
        let plus = LrpRule::AlphaBeta { alpha: 1.0, beta: 0.0 };
        let ab21 = LrpRule::AlphaBeta { alpha: 2.0, beta: 1.0 };
        let all = |r| Self { first: r, conv: r, dense: r };
        match name {
            CompositeName::Epsilon => all(eps),
            CompositeName::Alpha1Beta0 => all(plus),
            CompositeName::Alpha2Beta1 => all(ab21),
            CompositeName::EpsilonPlus => Self { first: plus, conv: plus, dense: eps },
            CompositeName::EpsilonAlpha2Beta1 => Self { first: ab21, conv: ab21, dense: eps },
            CompositeName::EpsilonPlusBox => Self { first: LrpRule::ZBox, conv: plus, dense: eps },
        }
    }
}

/// A named composite of [`LrpComposite::NAMES`], typed (configs spell it as the name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompositeName {
    /// ε everywhere.
    Epsilon,
    /// αβ(1, 0) everywhere.
    Alpha1Beta0,
    /// αβ(2, 1) everywhere.
    Alpha2Beta1,
    /// z⁺ in every convolution, ε in the dense layers.
    EpsilonPlus,
    /// αβ(2, 1) in every convolution, ε in the dense layers.
    EpsilonAlpha2Beta1,
    /// z^B at the input, z⁺ in the convolutions, ε in the dense layers. Default.
    #[default]
    EpsilonPlusBox,
}

impl CompositeName {
    /// Every composite, in [`LrpComposite::NAMES`] order.
    pub const ALL: [CompositeName; 6] = [
        CompositeName::Epsilon,
        CompositeName::Alpha1Beta0,
        CompositeName::Alpha2Beta1,
        CompositeName::EpsilonPlus,
        CompositeName::EpsilonAlpha2Beta1,
        CompositeName::EpsilonPlusBox,
    ];

    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        LrpComposite::NAMES[self as usize]
    }
}

impl Default for LrpComposite {
    /// `epsilon-plus-box` with ε = 1e-6.
    fn default() -> Self {
        Self::named("epsilon-plus-box", 1e-6).expect("a listed name")
    }
}

/// Parameters of [`lrp`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LrpConfig {
    /// Rules per layer kind.
    pub composite: LrpComposite,
    /// Which class to explain (its logit).
    pub target: Target,
    /// The box `[low, high]` of the z^B rule; `None` = each input's own minimum and maximum.
    pub bounds: Option<(f32, f32)>,
}

/// LRP maps with their conservation numbers.
#[derive(Debug, Clone)]
pub struct LrpMaps<B: Backend> {
    /// Relevance per input voxel, `[N, 1, D, H, W]` (signed).
    pub maps: Tensor<B, 5>,
    /// The explained logit of each input (the relevance put in at the top).
    pub logits: Vec<f32>,
    /// The sum of each input's map (the relevance that arrived at the input).
    pub totals: Vec<f32>,
}

/// An activation between layers: a volume batch or a flat one.
#[derive(Debug, Clone)]
enum Act<B: Backend> {
    Volume(Tensor<B, 5>),
    Flat(Tensor<B, 2>),
}

fn layer_error(index: usize, message: String) -> RelevanceError {
    RelevanceError::Parameter { name: "layers", message: format!("layer {index}: {message}") }
}

/// A convolution or dense layer as a linear map with bias, on any [`FastBackend`].
trait Affine<const K: usize, const W: usize> {
    fn apply<B: FastBackend>(x: Tensor<B, K>, w: Tensor<B, W>, b: Option<Tensor<B, 1>>) -> Tensor<B, K>;
}

struct ConvOp;
impl Affine<5, 5> for ConvOp {
    fn apply<B: FastBackend>(x: Tensor<B, 5>, w: Tensor<B, 5>, b: Option<Tensor<B, 1>>) -> Tensor<B, 5> {
        model::fast::conv3d(x, w, b)
    }
}

struct DenseOp;
impl Affine<2, 2> for DenseOp {
    fn apply<B: FastBackend>(x: Tensor<B, 2>, w: Tensor<B, 2>, b: Option<Tensor<B, 1>>) -> Tensor<B, 2> {
        let y = x.matmul(w);
        match b {
            Some(b) => y.add(b.unsqueeze::<2>()),
            None => y,
        }
    }
}

/// `Wᵀ s`: the vector–Jacobian product of `x ↦ op(x, w)` (no bias) for inputs of `dims`.
fn vjp<O: Affine<K, W>, B: FastBackend, const K: usize, const W: usize>(
    dims: [usize; K],
    w: &Tensor<B, W>,
    s: &Tensor<B, K>,
) -> Tensor<B, K> {
    let device = w.device();
    let x = Tensor::<Autodiff<B>, K>::zeros(dims, &device).require_grad();
    let z = O::apply(x.clone(), Tensor::from_inner(w.clone()), None);
    let grads = z.mul(Tensor::from_inner(s.clone())).sum().backward();
    x.grad(&grads).unwrap_or_else(|| Tensor::zeros(dims, &device))
}

/// `z + ε·sign(z)` with sign(0) = +1 (zennit's stabiliser).
fn stabilize<B: Backend, const K: usize>(z: Tensor<B, K>, epsilon: f32) -> Tensor<B, K> {
    let sign = z.clone().greater_equal_elem(0.0).float().mul_scalar(2.0).sub_scalar(1.0);
    z.add(sign.mul_scalar(epsilon))
}

/// The value of a one-element tensor.
fn scalar<B: Backend>(x: Tensor<B, 1>) -> f32 {
    x.into_data().convert::<f32>().to_vec::<f32>().ok().and_then(|v| v.first().copied()).unwrap_or(f32::NAN)
}

/// Whether any element is negative.
fn has_negative<B: Backend, const K: usize>(x: &Tensor<B, K>) -> bool {
    scalar(x.clone().min()) < 0.0
}

/// One affine layer's relevance `R_in` (the input's shape) from `R` (the output's shape).
fn affine_relevance<O: Affine<K, W>, B: FastBackend, const K: usize, const W: usize>(
    a: Tensor<B, K>,
    w: &Tensor<B, W>,
    b: &Tensor<B, 1>,
    r: Tensor<B, K>,
    rule: LrpRule,
    bounds: (f32, f32),
) -> Tensor<B, K> {
    let dims = a.dims();
    match rule {
        LrpRule::Epsilon { epsilon } => {
            let z = O::apply(a.clone(), w.clone(), Some(b.clone()));
            let s = r.div(stabilize(z, epsilon));
            a.mul(vjp::<O, B, K, W>(dims, w, &s))
        }
        LrpRule::AlphaBeta { alpha, beta } => {
            let (wp, wn) = (w.clone().clamp_min(0.0), w.clone().clamp_max(0.0));
            let (bp, bn) = (b.clone().clamp_min(0.0), b.clone().clamp_max(0.0));
            let negative_inputs = has_negative(&a);
            let ap = a.clone().clamp_min(0.0);
            let an = a.clamp_max(0.0);
            // One side: inputs⁺ with weights `w1` (+ bias `b1`), inputs⁻ with weights `w2`.
            let side = |w1: &Tensor<B, W>, b1: Tensor<B, 1>, w2: &Tensor<B, W>| {
                let mut z = O::apply(ap.clone(), w1.clone(), Some(b1));
                if negative_inputs {
                    z = z.add(O::apply(an.clone(), w2.clone(), None));
                }
                let s = r.clone().div(stabilize(z, STABILIZER));
                let mut out = ap.clone().mul(vjp::<O, B, K, W>(dims, w1, &s));
                if negative_inputs {
                    out = out.add(an.clone().mul(vjp::<O, B, K, W>(dims, w2, &s)));
                }
                out
            };
            let positive = side(&wp, bp, &wn).mul_scalar(alpha);
            if beta == 0.0 { positive } else { positive.sub(side(&wn, bn, &wp).mul_scalar(beta)) }
        }
        LrpRule::ZBox => {
            let (low, high) = bounds;
            let device = a.device();
            let (wp, wn) = (w.clone().clamp_min(0.0), w.clone().clamp_max(0.0));
            let l = Tensor::<B, K>::full(dims, low, &device);
            let h = Tensor::<B, K>::full(dims, high, &device);
            let z = O::apply(a.clone(), w.clone(), Some(b.clone()))
                .sub(O::apply(l.clone(), wp.clone(), Some(b.clone().clamp_min(0.0))))
                .sub(O::apply(h.clone(), wn.clone(), Some(b.clone().clamp_max(0.0))));
            let s = r.div(stabilize(z, STABILIZER));
            a.mul(vjp::<O, B, K, W>(dims, w, &s)).sub(l.mul(vjp::<O, B, K, W>(dims, &wp, &s))).sub(h.mul(vjp::<
                O,
                B,
                K,
                W,
            >(
                dims, &wn, &s,
            )))
        }
    }
}

/// Max pooling's relevance: each window's relevance goes to its maximum (the gradient's route).
fn pool_relevance<B: FastBackend>(a: Tensor<B, 5>, r: Tensor<B, 5>, kernel: [usize; 3]) -> Tensor<B, 5> {
    let x = Tensor::<Autodiff<B>, 5>::from_inner(a).require_grad();
    let y = model::fast::max_pool3d(x.clone(), kernel);
    let grads = y.mul(Tensor::from_inner(r)).sum().backward();
    let dims = x.dims();
    x.grad(&grads).unwrap_or_else(|| Tensor::zeros(dims, &x.inner().device()))
}

/// The forward pass of one layer.
fn forward<B: FastBackend>(index: usize, layer: &LrpLayer<B>, a: Act<B>) -> Result<Act<B>> {
    Ok(match (layer, a) {
        (LrpLayer::Conv3d { weight, bias }, Act::Volume(x)) => {
            let (ci, k) = (weight.dims()[1], &weight.dims()[2..]);
            let d = x.dims();
            if d[1] != ci || d[2] < k[0] || d[3] < k[1] || d[4] < k[2] {
                return Err(layer_error(index, format!("convolution {:?} does not fit input {d:?}", weight.dims())));
            }
            Act::Volume(ConvOp::apply(x, weight.clone(), Some(bias.clone())))
        }
        (LrpLayer::Relu, Act::Volume(x)) => Act::Volume(burn::tensor::activation::relu(x)),
        (LrpLayer::Relu, Act::Flat(x)) => Act::Flat(burn::tensor::activation::relu(x)),
        (LrpLayer::MaxPool3d { kernel }, Act::Volume(x)) => {
            let d = x.dims();
            if kernel.contains(&0) || d[2] < kernel[0] || d[3] < kernel[1] || d[4] < kernel[2] {
                return Err(layer_error(index, format!("pooling window {kernel:?} does not fit input {d:?}")));
            }
            Act::Volume(model::fast::max_pool3d(x, *kernel))
        }
        (LrpLayer::Flatten, Act::Volume(x)) => Act::Flat(x.flatten::<2>(1, 4)),
        (LrpLayer::Dense { weight, bias }, Act::Flat(x)) => {
            if x.dims()[1] != weight.dims()[0] {
                return Err(layer_error(
                    index,
                    format!("dense layer {:?} does not fit {} inputs", weight.dims(), x.dims()[1]),
                ));
            }
            Act::Flat(DenseOp::apply(x, weight.clone(), Some(bias.clone())))
        }
        (layer, Act::Volume(_)) => {
            return Err(layer_error(index, format!("a {} layer cannot take a volume [N, C, D, H, W]", layer.kind())));
        }
        (layer, Act::Flat(_)) => {
            return Err(layer_error(index, format!("a {} layer cannot take a flat input [N, F]", layer.kind())));
        }
    })
}

/// LRP of a model that lists its layers (the paper's network does), for every input of `x`
/// `[N, 1, D, H, W]`.
pub fn lrp<B: FastBackend, M: LrpModel<B>>(model: &M, x: Tensor<B, 5>, config: &LrpConfig) -> Result<LrpMaps<B>> {
    model.check_input(x.dims())?;
    if let crate::Target::Class(class) = config.target {
        let classes = model.num_classes();
        if class >= classes {
            return Err(RelevanceError::TargetClass { class, classes });
        }
    }
    lrp_layers(&model.lrp_layers(), x, config)
}

/// LRP through a list of layers (see [`LrpLayer`]) for every input of `x` `[N, C, D, H, W]`:
/// the engine behind [`lrp`], open for hand-built networks.
pub fn lrp_layers<B: FastBackend>(layers: &[LrpLayer<B>], x: Tensor<B, 5>, config: &LrpConfig) -> Result<LrpMaps<B>> {
    let dims = x.dims();
    if dims[0] == 0 {
        return Err(RelevanceError::Shape { found: dims.to_vec(), expected: "a batch of at least one input".into() });
    }
    if let Some((low, high)) = config.bounds
        && !(low.is_finite() && high.is_finite() && low <= high)
    {
        return Err(RelevanceError::Parameter {
            name: "bounds",
            message: format!("[{low}, {high}] is not a finite box with low ≤ high"),
        });
    }
    let first_affine = layers.iter().position(|l| matches!(l, LrpLayer::Conv3d { .. } | LrpLayer::Dense { .. }));
    let mut maps = Vec::with_capacity(dims[0]);
    let (mut logits, mut totals) = (Vec::new(), Vec::new());
    for i in 0..dims[0] {
        let xi = x.clone().narrow(0, i, 1);
        let bounds = config.bounds.unwrap_or_else(|| (scalar(xi.clone().min()), scalar(xi.clone().max())));
        // Forward, keeping every layer's input.
        let mut inputs = Vec::with_capacity(layers.len());
        let mut a = Act::Volume(xi);
        for (index, layer) in layers.iter().enumerate() {
            inputs.push(a.clone());
            a = forward(index, layer, a)?;
        }
        let Act::Flat(out) = a else {
            return Err(layer_error(layers.len(), "the network must end in flat logits [N, classes]".into()));
        };
        let classes = out.dims()[1];
        let class = target_classes(out.clone(), config.target)?[0];
        let values: Vec<f32> = out.clone().into_data().convert::<f32>().to_vec().unwrap_or_default();
        let logit = values[class];
        let mut top = vec![0.0f32; classes];
        top[class] = logit;
        let mut r = Act::Flat(Tensor::from_data(TensorData::new(top, [1, classes]), &out.device()));
        // Backward.
        for (index, (layer, a)) in layers.iter().zip(inputs).enumerate().rev() {
            let rule = |kind: LrpRule| if Some(index) == first_affine { config.composite.first } else { kind };
            r =
                match (layer, a, r) {
                    (LrpLayer::Conv3d { weight, bias }, Act::Volume(a), Act::Volume(r)) => Act::Volume(
                        affine_relevance::<ConvOp, B, 5, 5>(a, weight, bias, r, rule(config.composite.conv), bounds),
                    ),
                    (LrpLayer::Dense { weight, bias }, Act::Flat(a), Act::Flat(r)) => {
                        Act::Flat(affine_relevance::<DenseOp, B, 2, 2>(
                            a,
                            weight,
                            bias,
                            r,
                            rule(config.composite.dense),
                            bounds,
                        ))
                    }
                    (LrpLayer::Relu, _, r) => r,
                    (LrpLayer::MaxPool3d { kernel }, Act::Volume(a), Act::Volume(r)) => {
                        Act::Volume(pool_relevance(a, r, *kernel))
                    }
                    (LrpLayer::Flatten, Act::Volume(a), Act::Flat(r)) => Act::Volume(r.reshape(a.dims())),
                    _ => return Err(layer_error(index, "relevance and activation ranks do not match".into())),
                };
        }
        let Act::Volume(map) = r else {
            return Err(layer_error(0, "the network must start with a volume layer".into()));
        };
        logits.push(logit);
        totals.push(scalar(map.clone().sum()));
        maps.push(map);
    }
    Ok(LrpMaps { maps: Tensor::cat(maps, 0), logits, totals })
}
