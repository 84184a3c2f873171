//! Occlusion (Rieke et al., MLCN 2018): sliding-cube occlusion and area (atlas-region) occlusion, for
//! volumes `[1, C, D, H, W]` and images `[1, C, H, W]`, one input at a time.
//!
//! # Sliding-cube occlusion
//!
//! The cubes are placed as in the original ([`OcclusionGrid`]): centres at `0, stride,
//! 2·stride, … < S` per axis, cube `[c − size/2, c + size/2)` clipped at the borders, every
//! channel set to `value` (0 = the training mean after z-scoring). The target class is resolved
//! once, on the unoccluded input; the relevance of a cube is `out(original) − out(occluded)`
//! clipped at 0 (its *drop*), where `out` is the softmax probability of the target class by
//! default ([`Output`]). The drops are spread over the input grid ([`Spread`]): the original
//! resized the coarse array of drops with nearest-neighbour zoom ([`Spread::Nearest`]), which
//! places a cube's value near, not exactly on, its voxels; [`Spread::Mean`] gives each voxel the
//! mean drop of the cubes that cover it (Captum's choice).
//!
//! Defaults ([`OcclusionConfig::default`], the same as a config's `[relevance.occlusion]`): size 6
//! and stride 6 voxels of the project's 2 mm grid, i.e. 12 mm cubes 12 mm apart. The paper's
//! figure used stride 12 at 1 mm (17×20×17 = 5780 passes), which is stride 6 at 2 mm; its cube
//! size is not stated. The original code's defaults, `size = 50, stride = 25` voxels of the 1 mm
//! grid, are [`OcclusionConfig::for_voxel_size`] (size 25, stride 12 at 2 mm): cubes that large
//! cover several regions at once, and maps that coarse cannot find a focal atrophy.
//!
//! Evaluation ([`OcclusionMode`]):
//! - **naive**, any [`Explainable`] model: whole occluded copies through the whole model, as many
//!   per batch as `memory_budget_mb` allows (counting one input's activations, not only the
//!   input);
//! - **incremental**, the paper's [`ClassificationModel3D`](model::ClassificationModel3D) (and
//!   any model whose [`Explainable::incremental_occlusion`] offers an [`IncrementalOcclusion`]
//!   network; a compile-time hook, no type check at run time): the unoccluded activations of
//!   every block are computed once; per cube, each block is recomputed over the region its
//!   change reaches and the rest is reused. Per axis, at a block with input size `S`, kernel `k`
//!   and pooling `p`, a change of the input voxels `[lo, hi]` changes the convolution outputs
//!   `[max(0, lo − k + 1), min(hi, S − k)]` and the pooled outputs `[olo/p, ohi/p] ∩ [0,
//!   ⌊(S − k + 1)/p⌋ − 1]` (empty: the change lies in voxels that floor-mode pooling drops, and
//!   the output is the unoccluded one), recomputed from the crop `[qlo·p, (qhi + 1)·p + k − 1)`
//!   of the block's input with the changed values pasted in. Many cubes share one block call
//!   (equal crop sizes, stacked); the dense head runs on the batch of patched features. The same
//!   drops as naive up to float rounding (the tests compare them), about 200× faster on the
//!   2 mm grid (`cargo bench -p relevance --bench occlusion`);
//! - **exact skipping** (both): a cube whose voxels all already hold `value` (with value 0: a cube
//!   entirely outside the brain mask of a normalised scan) leaves the input unchanged, so it is
//!   not evaluated and its drop is 0.
//!
//! # Area occlusion
//!
//! [`area_occlusion`]: one evaluation per non-zero label of a label volume (atlas) on the input's
//! grid; every voxel of a region gets the region's drop. The same two evaluations: naive, or
//! incremental with the region's bounding box as the changed box (regions batched by a cost
//! model; about 14× faster than naive for CerebrA on the 2 mm grid).
//!
//! The module never touches the disk: it takes a model and a tensor and returns tensors.

mod area;
mod geometry;
mod host;
mod incremental;
mod naive;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

pub use area::{AreaOcclusionConfig, AreaOcclusionMap, RegionDrop, area_occlusion};
pub use geometry::OcclusionGrid;
use host::{Box3, HostGrid, fill_box, tensor_from, tensor_values};
use incremental::IncrementalEngine;
pub use incremental::{IncrementalOcclusion, OcclusionBlock};

use crate::{
    Explainable, Output, Progress, RelevanceError, ReluPoint, Result, Target, batch_for_budget, select_output,
    target_classes,
};

/// Cube size of the original code, in voxels of the 1 mm grid.
pub const CODE_DEFAULT_SIZE_1MM: usize = 50;
/// Stride of the original code, in voxels of the 1 mm grid.
pub const CODE_DEFAULT_STRIDE_1MM: usize = 25;
/// Stride of the paper's occlusion figure, in voxels of the 1 mm grid (6 on the 2 mm grid).
pub const PAPER_FIGURE_STRIDE_1MM: usize = 12;
/// Default memory budget of one batch of occluded inputs, in MB.
pub const DEFAULT_MEMORY_BUDGET_MB: usize = 1024;
/// Most cubes per batch of incremental occlusion, whatever the budget: larger batches were no
/// faster (2 mm grid: 121 to 7801 cubes per batch took the same time) and report progress less
/// often.
pub const MAX_INCREMENTAL_BATCH: usize = 256;

/// How cube drops become a map on the input grid (configs: `"nearest"`, `"mean"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Spread {
    /// The original: the coarse array of drops (one per cube centre) resized to the input grid
    /// by nearest-neighbour zoom, `scipy.ndimage.zoom(order=0)`. Default.
    #[default]
    Nearest,
    /// Each voxel gets the mean drop of all cubes covering it (0 where none does: gaps between
    /// cubes when the stride exceeds the side, and the high border that
    /// [`OcclusionGrid::uncovered_border`] reports).
    Mean,
}

/// How the occluded inputs are evaluated. Every mode gives the same drops up to float rounding.
/// Configs: `"auto"`, `"naive"`, `"incremental"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OcclusionMode {
    /// Incremental where the model supports it (the paper's network), naive otherwise. Default.
    #[default]
    Auto,
    /// Whole occluded inputs through the whole model, in batches.
    Naive,
    /// Only the receptive field of each cube is recomputed (the paper's network only; other
    /// models give [`RelevanceError::Parameter`]).
    Incremental,
}

/// Parameters of sliding-cube occlusion (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct OcclusionConfig {
    /// The cube side is `2·⌊size/2⌋` voxels; at least 2. Default 6 (2 mm grid).
    pub size: usize,
    /// Voxels between cube centres; at least 1. Default 6 (2 mm grid).
    pub stride: usize,
    /// The value occluded voxels get (every channel). Default 0 = the training mean after
    /// z-scoring.
    pub value: f32,
    /// How drops are spread over the input grid. Default [`Spread::Nearest`] (the original).
    pub spread: Spread,
    /// The class explained. Default: the predicted class of the unoccluded input.
    pub target: Target,
    /// The output explained. Default: the softmax probability.
    pub output: Output,
    /// Memory for one batch of occluded inputs (their activations included), in MB; 0 evaluates
    /// one input at a time. Default [`DEFAULT_MEMORY_BUDGET_MB`]. Incremental batches hold at
    /// most [`MAX_INCREMENTAL_BATCH`] cubes.
    pub memory_budget_mb: usize,
    /// Skip cubes whose voxels all already hold `value` (exact: the input does not change; the
    /// drop is 0). Default true.
    pub skip_unchanged: bool,
    /// Naive or incremental evaluation. Default [`OcclusionMode::Auto`].
    pub mode: OcclusionMode,
}

/// The default cube size and stride, in voxels of the project's 2 mm grid (12 mm).
pub const DEFAULT_SIZE: usize = 6;

/// See [`DEFAULT_SIZE`].
pub const DEFAULT_STRIDE: usize = 6;

impl Default for OcclusionConfig {
    fn default() -> Self {
        Self { size: DEFAULT_SIZE, stride: DEFAULT_STRIDE, ..Self::for_voxel_size(2) }
    }
}

impl OcclusionConfig {
    /// The original code's defaults (size 50, stride 25 voxels at 1 mm) in millimetres on a grid
    /// of `voxel_mm` mm voxels (rounded down; 0 is taken as 1): size 25, stride 12 at 2 mm;
    /// every other field at its default.
    pub fn for_voxel_size(voxel_mm: usize) -> Self {
        let mm = voxel_mm.max(1);
        OcclusionConfig {
            size: (CODE_DEFAULT_SIZE_1MM / mm).max(2),
            stride: (CODE_DEFAULT_STRIDE_1MM / mm).max(1),
            value: 0.0,
            spread: Spread::Nearest,
            target: Target::Predicted,
            output: Output::Probability,
            memory_budget_mb: DEFAULT_MEMORY_BUDGET_MB,
            skip_unchanged: true,
            mode: OcclusionMode::Auto,
        }
    }

    /// Checks the parameters (size, stride, value); the error names the field.
    pub fn validate(&self) -> Result<()> {
        geometry::check_size_stride(self.size, self.stride)?;
        check_value(self.value)
    }
}

/// What an occlusion run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OcclusionStats {
    /// Cubes asked for (passes without skipping).
    pub total: usize,
    /// Cubes skipped because all their voxels already held the occlusion value.
    pub skipped: usize,
    /// Cubes evaluated (`total − skipped`).
    pub evaluated: usize,
    /// Evaluated cubes whose change vanished inside the network (incremental only: it lay in
    /// trailing voxels that a floor-mode pooling drops); their output is exactly the unoccluded
    /// one.
    pub unchanged: usize,
    /// Batches evaluated.
    pub batches: usize,
    /// The evaluation used ([`OcclusionMode::Naive`] or [`OcclusionMode::Incremental`]).
    pub mode: OcclusionMode,
}

/// A sliding-occlusion map and how it was made.
#[derive(Debug, Clone)]
pub struct OcclusionMap<B: Backend, const D: usize> {
    /// The relevance map `[1, 1, spatial…]`.
    pub map: Tensor<B, D>,
    /// The drop of each cube (clipped at 0), C order over [`Self::grid_shape`].
    pub drops: Vec<f32>,
    /// The grid of cube centres per spatial axis.
    pub grid_shape: Vec<usize>,
    /// The explained class.
    pub class: usize,
    /// The explained output of the unoccluded input.
    pub baseline: f32,
    /// Passes and batches.
    pub stats: OcclusionStats,
}

/// Drops of a chosen list of cubes ([`Occluder::cube_drops`]).
#[derive(Debug, Clone)]
pub struct CubeDrops {
    /// The drop of each cube asked for (clipped at 0), in the order asked.
    pub drops: Vec<f32>,
    /// Passes and batches.
    pub stats: OcclusionStats,
}

/// A prepared sliding occlusion of one input: the target class, the unoccluded output, the
/// cubes, which of them can be skipped, and the evaluation (for incremental mode, the unoccluded
/// activations of every block). [`occlusion`] is `Occluder::new(…)?.run(…)`; the parts are
/// public for callers that evaluate a subset of cubes (sampling, timing).
pub struct Occluder<'m, B: Backend, M, const D: usize> {
    config: OcclusionConfig,
    grid: OcclusionGrid,
    device: B::Device,
    skipped: Vec<bool>,
    class: usize,
    baseline: f32,
    rank: usize,
    engine: Engine<'m, B, M>,
}

enum Engine<'m, B: Backend, M> {
    Naive { model: &'m M, scan: HostGrid, batch: usize },
    Incremental { engine: IncrementalEngine<'m, B>, batch: usize },
}

impl<'m, B, M, const D: usize> Occluder<'m, B, M, D>
where
    B: Backend,
    M: Explainable<B, D>,
{
    /// Checks the config and the input `x` `[1, C, spatial…]`, resolves the target on the
    /// unoccluded input and prepares the evaluation (one forward pass, plus for a model other
    /// than the paper's network one partial pass per feature layer to size the batches).
    pub fn new(model: &'m M, x: Tensor<B, D>, config: &OcclusionConfig) -> Result<Self> {
        config.validate()?;
        check_single_input(model, &x)?;
        let dims = x.dims();
        let grid = OcclusionGrid::new(&dims[2..], config.size, config.stride)?;
        let device = x.device();
        let (engine, base_logits) = match incremental_network(model, config.mode)? {
            Some(paper) => {
                let x5: Tensor<B, 5> =
                    x.reshape(<[usize; 5]>::try_from(&dims[..]).expect("the paper model takes rank 5"));
                let engine = IncrementalEngine::new(paper, x5);
                let base_logits = engine.base_logits();
                let cubes: Vec<Box3> = (0..grid.len()).map(|i| grid.cube3(i)).collect();
                let per_cube = engine.values_per_cube(&cubes) * std::mem::size_of::<f32>();
                let batch = batch_for_budget(config.memory_budget_mb, per_cube).min(MAX_INCREMENTAL_BATCH);
                (Engine::Incremental { engine, batch }, base_logits)
            }
            None => {
                let per_input = naive::activation_values(model, &x)? * std::mem::size_of::<f32>();
                let batch = batch_for_budget(config.memory_budget_mb, per_input);
                let base_logits = model.logits(x.clone(), &ReluPoint::standard());
                (Engine::Naive { model, scan: HostGrid::from_tensor(x), batch }, base_logits)
            }
        };
        let class = target_classes(base_logits.clone(), config.target)?[0];
        let baseline = tensor_values(select_output(base_logits, &[class], config.output))[0];
        let scan = match &engine {
            Engine::Naive { scan, .. } => scan,
            Engine::Incremental { engine, .. } => engine.scan(),
        };
        let skipped = (0..grid.len())
            .map(|i| config.skip_unchanged && scan.box_all_equal(&grid.cube3(i), config.value))
            .collect();
        Ok(Occluder { config: config.clone(), grid, device, skipped, class, baseline, rank: D - 2, engine })
    }

    /// The cubes.
    pub fn grid(&self) -> &OcclusionGrid {
        &self.grid
    }

    /// Per cube, whether it is skipped (all its voxels hold the occlusion value and skipping is
    /// on).
    pub fn skipped(&self) -> &[bool] {
        &self.skipped
    }

    /// The explained class.
    pub fn class(&self) -> usize {
        self.class
    }

    /// The explained output of the unoccluded input.
    pub fn baseline(&self) -> f32 {
        self.baseline
    }

    /// The evaluation in use ([`OcclusionMode::Naive`] or [`OcclusionMode::Incremental`]).
    pub fn mode(&self) -> OcclusionMode {
        match self.engine {
            Engine::Naive { .. } => OcclusionMode::Naive,
            Engine::Incremental { .. } => OcclusionMode::Incremental,
        }
    }

    /// Cubes per batch (from the memory budget).
    pub fn batch_size(&self) -> usize {
        match self.engine {
            Engine::Naive { batch, .. } | Engine::Incremental { batch, .. } => batch,
        }
    }

    /// The drops of the cubes `cubes` (indices into [`Self::grid`]); skipped cubes get 0
    /// without a pass. `progress` gets `(passes done, passes to do)`.
    pub fn cube_drops(&self, cubes: &[usize], progress: Progress) -> Result<CubeDrops> {
        if let Some(&bad) = cubes.iter().find(|&&i| i >= self.grid.len()) {
            return Err(RelevanceError::Parameter {
                name: "cubes",
                message: format!("cube {bad} does not exist: the grid has {} cubes", self.grid.len()),
            });
        }
        let todo: Vec<usize> = (0..cubes.len()).filter(|&i| !self.skipped[cubes[i]]).collect();
        let boxes: Vec<Box3> = todo.iter().map(|&i| self.grid.cube3(cubes[i])).collect();
        let mut report = |done: usize| {
            if let Some(p) = progress {
                p(done, boxes.len());
            }
        };
        let value = self.config.value;
        let (outputs, batches): (Vec<Option<f32>>, usize) = match &self.engine {
            Engine::Naive { model, scan, batch } => {
                let occlude =
                    |pass: usize, copy: &mut [f32]| fill_box(copy, scan.dims, &boxes[pass], scan.channels, value);
                let out = naive::occluded_outputs::<B, M, D>(
                    model,
                    scan,
                    &self.device,
                    boxes.len(),
                    *batch,
                    self.class,
                    self.config.output,
                    &occlude,
                    &mut report,
                );
                (out.into_iter().map(Some).collect(), boxes.len().div_ceil((*batch).max(1)))
            }
            Engine::Incremental { engine, batch } => {
                let out = engine.cube_outputs(&boxes, value, self.class, self.config.output, *batch, &mut report);
                (out.outputs, out.batches)
            }
        };
        let mut drops = vec![0.0f32; cubes.len()];
        let mut unchanged = 0;
        for (&i, out) in todo.iter().zip(&outputs) {
            match out {
                Some(out) => drops[i] = (self.baseline - out).max(0.0),
                None => unchanged += 1,
            }
        }
        let stats = OcclusionStats {
            total: cubes.len(),
            skipped: cubes.len() - todo.len(),
            evaluated: todo.len(),
            unchanged,
            batches,
            mode: self.mode(),
        };
        Ok(CubeDrops { drops, stats })
    }

    /// Evaluates every cube and spreads the drops over the input grid.
    pub fn run(&self, progress: Progress) -> Result<OcclusionMap<B, D>> {
        let all: Vec<usize> = (0..self.grid.len()).collect();
        let CubeDrops { drops, stats } = self.cube_drops(&all, progress)?;
        let values = match self.config.spread {
            Spread::Nearest => self.grid.spread_nearest(&drops),
            Spread::Mean => self.grid.spread_mean(&drops),
        };
        let mut shape = vec![1, 1];
        shape.extend_from_slice(&self.grid.dims3()[3 - self.rank..]);
        Ok(OcclusionMap {
            map: tensor_from(values, shape, &self.device),
            drops,
            grid_shape: self.grid.shape(),
            class: self.class,
            baseline: self.baseline,
            stats,
        })
    }
}

/// Sliding-cube occlusion of one input `x` `[1, C, spatial…]` (see the module documentation):
/// the map `[1, 1, spatial…]`, the drop of every cube and the pass counts. `progress` gets
/// `(passes done, passes to do)` after each batch.
///
/// A model that offers [`Explainable::incremental_occlusion`] (the paper's network does) is
/// evaluated incrementally in [`OcclusionMode::Auto`].
pub fn occlusion<B, M, const D: usize>(
    model: &M,
    x: Tensor<B, D>,
    config: &OcclusionConfig,
    progress: Progress,
) -> Result<OcclusionMap<B, D>>
where
    B: Backend,
    M: Explainable<B, D>,
{
    Occluder::new(model, x, config)?.run(progress)
}

/// The network to evaluate incrementally in `mode`: `None` for naive evaluation (asked for, or
/// in auto mode a model without [`Explainable::incremental_occlusion`]); an error for
/// incremental mode on such a model. Incremental evaluation takes volumes only (rank 5).
pub(crate) fn incremental_network<B, M, const D: usize>(
    model: &M,
    mode: OcclusionMode,
) -> Result<Option<&dyn IncrementalOcclusion<B>>>
where
    B: Backend,
    M: Explainable<B, D>,
{
    let network = if D == 5 { model.incremental_occlusion() } else { None };
    match (mode, network) {
        (OcclusionMode::Naive, _) | (OcclusionMode::Auto, None) => Ok(None),
        (_, Some(network)) => Ok(Some(network)),
        (OcclusionMode::Incremental, None) => Err(RelevanceError::Parameter {
            name: "mode",
            message: "incremental occlusion needs the paper's network (ClassificationModel3D); \
                      use the naive or auto mode for other models"
                .into(),
        }),
    }
}

/// Checks that `x` is one input the model accepts, of rank 4 or 5.
pub(crate) fn check_single_input<B, M, const D: usize>(model: &M, x: &Tensor<B, D>) -> Result<()>
where
    B: Backend,
    M: Explainable<B, D>,
{
    let dims = x.dims();
    if !(4..=5).contains(&D) || dims[0] != 1 {
        return Err(RelevanceError::Shape {
            found: dims.to_vec(),
            expected: "one input [1, C, H, W] or [1, C, D, H, W] (occlusion explains one input at a time)".into(),
        });
    }
    model.check_input(dims)
}

/// The occlusion value must be a number.
pub(crate) fn check_value(value: f32) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(RelevanceError::Parameter { name: "value", message: format!("is {value}; expected a finite number") })
    }
}
