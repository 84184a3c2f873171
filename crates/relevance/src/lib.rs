//! Relevance (attribution) maps for Burn classifiers, on 3D volumes and 2D images alike
//! (the four methods of Rieke et al., MLCN 2018, and five more). The crate never touches the disk.
//!
//! A model takes part through the small [`Explainable`] trait: inference-mode logits with every
//! ReLU routed through a [`ReluPoint`] (so guided backpropagation can change its backward rule),
//! and for Grad-CAM named feature layers. [`ClassificationModel3D`](model::ClassificationModel3D)
//! implements it in [`paper_model`]. Inputs are batches `[N, C, spatial…]` (rank `D` = 5 for
//! volumes `[N, 1, D, H, W]`, 4 for images `[N, C, H, W]`); every method returns a map per input,
//! as a tensor of rank `D`.
//!
//! Methods:
//! - [`gradient`]: sensitivity analysis (∂p/∂x, post-processing abs / square / none), guided
//!   backpropagation, integrated gradients, SmoothGrad;
//! - [`cam`]: Grad-CAM on any named feature layer (3D and 2D, linear upsampling written here),
//!   guided Grad-CAM;
//! - [`occlusion`]: sliding-cube occlusion (naive batched, masked skipping, and incremental for
//!   the paper's network) and area (atlas-region) occlusion;
//! - [`lrp`]: layer-wise relevance propagation (ε, αβ, z^B rules and their composites) for
//!   models that list their layers ([`lrp::LrpModel`]; the paper's network does);
//! - [`methods`]: every method by name ([`methods::Method`]) and one dispatch for the paper's
//!   network ([`methods::compute_map`]), plus the voxel-wise mean of maps.
//!
//! All methods evaluate the model in inference mode (the trait's contract: running BatchNorm
//! statistics, no dropout), so a scan's map never depends on the other scans of its batch. The
//! target is the predicted class by default ([`Target`]) and the explained output the softmax
//! probability by default ([`Output`]).

pub mod cam;
pub mod gradient;
pub mod lrp;
pub mod methods;
pub mod occlusion;
pub mod paper_model;
pub mod upsample;

use burn::module::Module;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// Errors of the relevance methods; each names the offending parameter, shape or layer.
#[derive(Debug, thiserror::Error)]
pub enum RelevanceError {
    /// An input has the wrong shape.
    #[error("input has shape {found:?}, expected {expected}")]
    Shape {
        /// The shape found.
        found: Vec<usize>,
        /// The shape expected, in words.
        expected: String,
    },
    /// A feature layer name the model does not have.
    #[error("unknown layer `{layer}`; valid layers: {}", valid.join(", "))]
    UnknownLayer {
        /// The name asked for.
        layer: String,
        /// The names the model offers.
        valid: Vec<String>,
    },
    /// A target class out of range.
    #[error("target class {class} is out of range: the model has {classes} classes")]
    TargetClass {
        /// The class asked for.
        class: usize,
        /// Number of classes.
        classes: usize,
    },
    /// A method parameter has an impossible value.
    #[error("invalid parameter `{name}`: {message}")]
    Parameter {
        /// The parameter (as named in the config / on the command line).
        name: &'static str,
        /// What is wrong and what was expected.
        message: String,
    },
    /// An atlas (label volume) without any region, or whose grid does not match the input.
    #[error("atlas: {0}")]
    Atlas(String),
    /// An error from the model crate.
    #[error(transparent)]
    Model(#[from] model::ModelError),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, RelevanceError>;

/// Which class a map explains.
///
/// In configs: `"predicted"`, `"AD"` (class 1), `"CN"` (class 0; the project's two-class
/// labels, AD = `DX == Dementia`) or a class index (`"2"` or `2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// Each input's predicted class (arg-max of the logits). Default.
    #[default]
    Predicted,
    /// The given class for every input.
    Class(usize),
}

impl Target {
    /// The config name: `predicted`, `AD`, `CN` or the class index.
    pub fn name(self) -> String {
        match self {
            Target::Predicted => "predicted".into(),
            Target::Class(1) => "AD".into(),
            Target::Class(0) => "CN".into(),
            Target::Class(k) => k.to_string(),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "predicted" | "" => Ok(Target::Predicted),
            "ad" => Ok(Target::Class(1)),
            "cn" => Ok(Target::Class(0)),
            other => other
                .parse()
                .map(Target::Class)
                .map_err(|_| format!("unknown target `{s}`: expected `predicted`, `AD`, `CN` or a class index")),
        }
    }
}

impl serde::Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Target;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`predicted`, `AD`, `CN` or a class index")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Target, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Target, E> {
                usize::try_from(v).map(Target::Class).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Target, E> {
                usize::try_from(v)
                    .map(Target::Class)
                    .map_err(|_| E::custom(format!("target {v}: a class index is ≥ 0")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Which output a map explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// The softmax probability of the target class (the paper). Default.
    #[default]
    Probability,
    /// The raw logit of the target class.
    Logit,
}

/// Post-processing of a gradient map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PostProcess {
    /// |g| (the paper's default).
    #[default]
    Abs,
    /// g².
    Square,
    /// The signed gradient.
    None,
}

impl PostProcess {
    /// Applies the post-processing.
    pub fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            PostProcess::Abs => x.abs(),
            PostProcess::Square => x.square(),
            PostProcess::None => x,
        }
    }
}

/// A backward rule for a ReLU: given the ReLU's input (flattened), returns its output with a
/// changed gradient (used by guided backpropagation; see [`gradient::guided_relu`]).
pub type ReluRule<B> = fn(Tensor<B, 1>) -> Tensor<B, 1>;

/// The place where a model applies a ReLU. Models call [`ReluPoint::apply`] instead of
/// `burn::tensor::activation::relu` at every ReLU that relevance methods may need to change (for
/// the paper's network: the four conv blocks and the two hidden dense layers). The standard
/// point is a plain ReLU.
#[derive(Clone, Copy)]
pub struct ReluPoint<B: Backend> {
    rule: Option<ReluRule<B>>,
}

impl<B: Backend> std::fmt::Debug for ReluPoint<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.rule.is_some() { "ReluPoint(custom backward)" } else { "ReluPoint(standard)" })
    }
}

impl<B: Backend> Default for ReluPoint<B> {
    fn default() -> Self {
        Self::standard()
    }
}

impl<B: Backend> ReluPoint<B> {
    /// A plain ReLU.
    pub fn standard() -> Self {
        Self { rule: None }
    }

    /// A ReLU with the given rule (forward must equal `relu`).
    pub fn with_rule(rule: ReluRule<B>) -> Self {
        Self { rule: Some(rule) }
    }

    /// Applies the ReLU (of this point's kind) to a tensor of any rank.
    pub fn apply<const K: usize>(&self, x: Tensor<B, K>) -> Tensor<B, K> {
        match self.rule {
            None => relu(x),
            Some(rule) => {
                let dims = x.dims();
                rule(x.flatten::<1>(0, K - 1)).reshape(dims)
            }
        }
    }
}

/// A classifier the relevance methods can explain.
///
/// Contract: every method evaluates the network in **inference mode** (BatchNorm on running
/// statistics, no dropout), so that each input's output depends on that input only, and routes
/// every ReLU through the given [`ReluPoint`]. Inputs are `[N, C, spatial…]` of rank `D`.
pub trait Explainable<B: Backend, const D: usize>: Module<B> {
    /// Number of output logits.
    fn num_classes(&self) -> usize;

    /// Checks an input shape `[N, C, spatial…]`; the error says what was expected.
    fn check_input(&self, dims: [usize; D]) -> Result<()>;

    /// Inference-mode logits `[N, classes]`.
    fn logits(&self, x: Tensor<B, D>, relu: &ReluPoint<B>) -> Tensor<B, 2>;

    /// Names of the layers whose activations Grad-CAM can use (first = shallowest).
    fn feature_layers(&self) -> Vec<String>;

    /// The layer Grad-CAM uses by default (usually the last convolutional layer).
    fn default_feature_layer(&self) -> String {
        self.feature_layers().last().cloned().unwrap_or_default()
    }

    /// Activations `[N, K, spatial…]` at `layer` (one of [`Self::feature_layers`]); an unknown
    /// name is [`RelevanceError::UnknownLayer`] listing the valid ones.
    fn features(&self, x: Tensor<B, D>, layer: &str, relu: &ReluPoint<B>) -> Result<Tensor<B, D>>;

    /// The logits computed from the activations at `layer` (the rest of the network).
    fn logits_from_features(&self, features: Tensor<B, D>, layer: &str, relu: &ReluPoint<B>) -> Result<Tensor<B, 2>>;

    /// The model as a chain of convolution blocks that sliding occlusion can evaluate
    /// incrementally ([`occlusion::IncrementalOcclusion`]), where it is one; used for volumes
    /// (rank 5) only. The default, `None`, leaves the model to the naive evaluation; the paper's
    /// network returns itself.
    fn incremental_occlusion(&self) -> Option<&dyn occlusion::IncrementalOcclusion<B>> {
        None
    }
}

/// The error for a layer name not in `valid`.
pub fn unknown_layer(layer: &str, valid: Vec<String>) -> RelevanceError {
    RelevanceError::UnknownLayer { layer: layer.to_string(), valid }
}

/// Resolves the target class of every row of `logits` `[N, classes]`.
pub fn target_classes<B: Backend>(logits: Tensor<B, 2>, target: Target) -> Result<Vec<usize>> {
    let [n, classes] = logits.dims();
    match target {
        Target::Class(class) if class >= classes => Err(RelevanceError::TargetClass { class, classes }),
        Target::Class(class) => Ok(vec![class; n]),
        Target::Predicted => {
            let idx: Tensor<B, 2, Int> = logits.argmax(1);
            let data = idx.into_data().convert::<i64>();
            Ok(data.as_slice::<i64>().expect("i64 data").iter().map(|&i| i as usize).collect())
        }
    }
}

/// The explained output per row: `out[i] = output(logits[i])[targets[i]]`, as a `[N]` tensor.
pub fn select_output<B: Backend>(logits: Tensor<B, 2>, targets: &[usize], output: Output) -> Tensor<B, 1> {
    let [n, classes] = logits.dims();
    let values = match output {
        Output::Probability => softmax(logits, 1),
        Output::Logit => logits,
    };
    let device = values.device();
    let mut selector = vec![0.0f32; n * classes];
    for (i, &c) in targets.iter().enumerate() {
        selector[i * classes + c] = 1.0;
    }
    let selector = Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(selector, [n, classes]), &device);
    values.mul(selector).sum_dim(1).reshape([n])
}

pub use model::materialize_parameters;

/// Progress callback: `(done, total)` in the method's own units (passes, samples, batches).
pub type Progress<'a> = Option<&'a (dyn Fn(usize, usize) + Sync)>;

/// Number of inputs of `per_input_bytes` each that fit a memory budget of `budget_mb` MB
/// (at least 1).
pub fn batch_for_budget(budget_mb: usize, per_input_bytes: usize) -> usize {
    ((budget_mb.saturating_mul(1 << 20)) / per_input_bytes.max(1)).max(1)
}
