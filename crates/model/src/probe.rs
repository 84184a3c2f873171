//! The per-operation probe of a training step (issue 11): each operation of the paper network's
//! training step timed alone, on any backend, so that one short device run pinpoints an
//! operation that is slow or never finishes.
//!
//! - [`op_names`]: the operations, in the order they run. Per block `b`: `conv{b}.forward`,
//!   `conv{b}.input_grad`, `conv{b}.weight_grad.burn` (Burn's, autotuned on CUDA),
//!   `conv{b}.weight_grad.taps` ([`crate::fast::portable`]), `conv{b}.bias_grad`, `bn{b}.train`
//!   (BatchNorm on batch statistics, forward and backward), `pool{b}.burn` (two 2D poolings) and
//!   `pool{b}.reshape` (portable), each forward and backward; then `dropout`, `dense` (the three
//!   linear layers, forward and backward), `cross_entropy`, `adam` (one update of every
//!   parameter), and the whole step twice: `train_step` (the CUDA backend with the portable
//!   operations) and `train_step.burn_ops` (with Burn's own).
//! - [`run_op`]: one operation on one backend: the first call (kernel compilation and autotuning
//!   included) timed apart from the `reps` calls after it, each ending by reading a value back
//!   and syncing the device; then the output's first element, sum and sum of absolute values
//!   (the sums added up on the host). Inputs and weights come from a seeded generator on the
//!   host, so every backend computes on the same numbers and the outputs can be compared
//!   ([`difference`]; not where dropout draws on the device).
//! - [`supervise`]: runs the operations in child processes, each under its own time limit; a
//!   child that passes the limit is killed (a GPU kernel cannot be stopped from inside), the
//!   operation is reported as timed out, and a fresh child goes on with the rest.
//! - [`training_losses`]: a few fixed-seed Adam steps with dropout off, for the CPU-versus-device
//!   agreement of a training run.
//!
//! The benchmark binary (`paper_cnn --ops`, `cargo xtask bench --ops`) drives these and prints
//! [`markdown`].

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, FloatTensor};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData, TensorPrimitive};
use serde::{Deserialize, Serialize};

use crate::fast::portable::{self, GpuOps};
use crate::{BatchNorm3d, ClassificationModel3D, FastAutodiffBackend, NetworkConfig};

/// The prefix of a child's result lines on its standard output (other lines are ignored).
pub const LINE_PREFIX: &str = "PROBE ";

/// Adam learning rate of the paper (the `adam` and `train_step` operations).
const LEARNING_RATE: f64 = 1e-4;

/// What the probe measures, for one grid.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    /// The network (the paper's by default).
    pub config: NetworkConfig,
    /// The input grid.
    pub grid: [usize; 3],
    /// Scans per batch (the paper trains with 5).
    pub batch: usize,
    /// Seed of the host-generated inputs and weights.
    pub seed: u64,
}

/// One operation's measurement (one result line of a child).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpRecord {
    /// The operation ([`op_names`]).
    pub op: String,
    /// Seconds of the first call: kernel compilation and autotuning included.
    pub first_s: f64,
    /// Median seconds of the calls after it.
    pub median_s: f64,
    /// Number of calls after the first.
    pub reps: usize,
    /// Shape of the output that `first` and `sum` describe.
    pub shape: Vec<usize>,
    /// The output's first element.
    pub first: f64,
    /// The output's sum, added up on the host in `f64` (not by the device's own reduction, so
    /// that a wrong device reduction cannot hide or fake a difference: on wgpu with Mesa's
    /// software Vulkan, `sum()` of more than 2^18 values returns the sum of about the first 2^18).
    pub sum: f64,
    /// The sum of the output's absolute values (host, `f64`): the scale that [`difference`]
    /// measures the sums against. 0 in records written before it existed.
    #[serde(default)]
    pub abs_sum: f64,
    /// Whether the output depends on random draws on the device (dropout), so that two
    /// backends are not expected to agree.
    pub random: bool,
}

/// The operations of one training step of `config`'s network, in the order the probe runs them.
pub fn op_names(config: &NetworkConfig) -> Vec<String> {
    let mut ops = Vec::new();
    for b in 1..=config.channels.len() {
        for what in ["forward", "input_grad", "weight_grad.burn", "weight_grad.taps", "bias_grad"] {
            ops.push(format!("conv{b}.{what}"));
        }
        ops.push(format!("bn{b}.train"));
        ops.push(format!("pool{b}.burn"));
        ops.push(format!("pool{b}.reshape"));
    }
    ops.extend(["dropout", "dense", "cross_entropy", "adam", "train_step", "train_step.burn_ops"].map(String::from));
    ops
}

/// Shapes of one block: channels in and out, the input grid, the convolution's output grid and
/// the pooling window.
#[derive(Debug, Clone, Copy)]
struct BlockShape {
    c_in: usize,
    c_out: usize,
    input: [usize; 3],
    conv: [usize; 3],
    pool: usize,
}

fn block_shapes(config: &NetworkConfig, grid: [usize; 3]) -> Result<Vec<BlockShape>, String> {
    config.output_grid(grid).map_err(|e| e.to_string())?;
    let mut size = grid;
    let mut c_in = 1;
    let mut blocks = Vec::new();
    for (&c_out, &pool) in config.channels.iter().zip(&config.pools) {
        let conv = size.map(|s| s + 1 - config.kernel);
        blocks.push(BlockShape { c_in, c_out, input: size, conv, pool });
        size = conv.map(|s| s / pool);
        c_in = c_out;
    }
    Ok(blocks)
}

/// Values in [−1, 1) from a seeded generator (SplitMix64), the same on every machine.
fn host_values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn host<B: Backend, const D: usize>(shape: [usize; D], seed: u64, device: &B::Device) -> Tensor<B, D> {
    let len = shape.iter().product();
    Tensor::from_data(TensorData::new(host_values(len, seed), shape), device)
}

fn options() -> ConvOptions<3> {
    ConvOptions::new([1, 1, 1], [0, 0, 0], [1, 1, 1], 1)
}

fn prim<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

fn from_prim<B: Backend, const D: usize>(p: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

fn flat<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, 1> {
    let len = t.dims().iter().product::<usize>();
    t.reshape([len])
}

/// Replaces every parameter of a module with host-generated values (scaled by `scale`), in the
/// module's visiting order, so that every backend holds the same network.
struct HostWeights<'a, B: Backend> {
    seed: u64,
    scale: f32,
    device: &'a B::Device,
}

impl<B: Backend> ModuleMapper<B> for HostWeights<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        self.seed += 1;
        let (seed, scale, device) = (self.seed, self.scale, self.device);
        param.map(|t| {
            let require_grad = t.is_require_grad();
            host::<B, D>(t.dims(), seed, device).mul_scalar(scale).set_require_grad(require_grad)
        })
    }
}

/// The paper network on `device` with host-generated weights (the same on every backend).
fn host_network<B: FastAutodiffBackend>(
    config: &NetworkConfig,
    grid: [usize; 3],
    seed: u64,
    device: &B::Device,
) -> Result<ClassificationModel3D<B>, String> {
    let model: ClassificationModel3D<B> = config.init(grid, device).map_err(|e| e.to_string())?;
    Ok(model.map(&mut HostWeights { seed, scale: 0.1, device }))
}

/// Every parameter's id and shape.
struct ParamShapes(Vec<(ParamId, Vec<usize>)>);

impl<B: Backend> ModuleVisitor<B> for ParamShapes {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push((param.id, param.val().dims().to_vec()));
    }
}

/// Host-generated gradients for every parameter of `model`.
fn host_gradients<B: FastAutodiffBackend>(
    model: &ClassificationModel3D<B>,
    seed: u64,
    device: &B::Device,
) -> Result<GradientsParams, String> {
    let mut shapes = ParamShapes(Vec::new());
    model.visit(&mut shapes);
    let mut grads = GradientsParams::new();
    for (i, (id, shape)) in shapes.0.into_iter().enumerate() {
        let len = shape.iter().product();
        let values = host::<B::InnerBackend, 1>([len], seed + i as u64, device).mul_scalar(0.01);
        match shape[..] {
            [a] => grads.register(id, values.reshape([a])),
            [a, b] => grads.register(id, values.reshape([a, b])),
            [a, b, c, d, e] => grads.register(id, values.reshape([a, b, c, d, e])),
            _ => return Err(format!("unexpected parameter shape {shape:?}")),
        }
    }
    Ok(grads)
}

/// One operation ready to run: each call computes it once and returns its main output, flat.
type Step<'a, B> =
    Box<dyn FnMut() -> Result<Tensor<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend, 1>, String> + 'a>;

/// Splits `conv3.weight_grad.taps` into ("conv", 3, "weight_grad.taps").
fn block_op(op: &str) -> Option<(&str, usize, &str)> {
    let kind_end = op.find(|c: char| c.is_ascii_digit())?;
    let (kind, rest) = op.split_at(kind_end);
    let (number, what) = rest.split_once('.')?;
    Some((kind, number.parse().ok()?, what))
}

/// Builds operation `op` on `device`: inputs, weights and upstream gradients generated on the
/// host. Returns the step and whether its output depends on random draws on the device.
fn prepare<'a, B: FastAutodiffBackend>(
    spec: &ProbeSpec,
    op: &str,
    device: &'a B::Device,
) -> Result<(Step<'a, B>, bool), String> {
    type I<B> = <B as burn::tensor::backend::AutodiffBackend>::InnerBackend;
    // Dropout draws from the device's generator: seeded, so a run repeats itself.
    B::seed(device, spec.seed);
    let blocks = block_shapes(&spec.config, spec.grid)?;
    let (n, seed, k) = (spec.batch, spec.seed, spec.config.kernel);
    let grad_of = |x: Tensor<B, 5>, y: Tensor<B, 5>, up: &Tensor<I<B>, 5>| -> Result<Tensor<I<B>, 1>, String> {
        let grads = y.mul(Tensor::from_inner(up.clone())).sum().backward();
        x.grad(&grads).map(flat).ok_or_else(|| "no input gradient".to_string())
    };
    if let Some((kind, b, what)) = block_op(op) {
        let s = *blocks.get(b.wrapping_sub(1)).ok_or_else(|| format!("unknown operation `{op}`: no block {b}"))?;
        let [d, h, w] = s.input;
        let [cd, ch, cw] = s.conv;
        let x = host::<I<B>, 5>([n, s.c_in, d, h, w], seed, device);
        let weight = host::<I<B>, 5>([s.c_out, s.c_in, k, k, k], seed + 1, device).mul_scalar(0.2);
        let bias = host::<I<B>, 1>([s.c_out], seed + 2, device);
        let grad = host::<I<B>, 5>([n, s.c_out, cd, ch, cw], seed + 3, device);
        let step: Step<'a, B> = match (kind, what) {
            ("conv", "forward") => Box::new(move || {
                Ok(flat(burn::tensor::module::conv3d(x.clone(), weight.clone(), Some(bias.clone()), options())))
            }),
            ("conv", "input_grad" | "weight_grad.burn") => {
                type Backward<B> =
                    fn(FloatTensor<I<B>>, FloatTensor<I<B>>, FloatTensor<I<B>>, ConvOptions<3>) -> FloatTensor<I<B>>;
                let backward: Backward<B> = if what == "input_grad" {
                    <I<B> as burn::tensor::ops::ModuleOps<I<B>>>::conv3d_x_backward
                } else {
                    <I<B> as burn::tensor::ops::ModuleOps<I<B>>>::conv3d_weight_backward
                };
                Box::new(move || {
                    let out = backward(prim(x.clone()), prim(weight.clone()), prim(grad.clone()), options());
                    Ok(flat(from_prim::<I<B>, 5>(out)))
                })
            }
            ("conv", "weight_grad.taps") => {
                Box::new(move || Ok(flat(portable::conv3d_weight_grad_taps(x.clone(), grad.clone(), [k; 3]))))
            }
            ("conv", "bias_grad") => Box::new(move || Ok(portable::conv3d_bias_grad(grad.clone()))),
            ("bn", "train") => {
                // The convolution's output is BatchNorm's input.
                let x = grad.clone();
                let up = host::<I<B>, 5>([n, s.c_out, cd, ch, cw], seed + 4, device);
                let bn = BatchNorm3d::<B>::new(s.c_out, device);
                Box::new(move || {
                    let xa = Tensor::<B, 5>::from_inner(x.clone()).require_grad();
                    grad_of(xa.clone(), bn.forward_train(xa), &up)
                })
            }
            ("pool", "burn" | "reshape") => {
                let x = grad.clone();
                let p = s.pool;
                let up = host::<I<B>, 5>([n, s.c_out, cd / p, ch / p, cw / p], seed + 4, device);
                let reshape = what == "reshape";
                Box::new(move || {
                    let xa = Tensor::<B, 5>::from_inner(x.clone()).require_grad();
                    let y = if reshape {
                        portable::max_pool3d(xa.clone(), [p; 3])
                    } else {
                        crate::pool::max_pool3d(xa.clone(), [p; 3])
                    };
                    grad_of(xa, y, &up)
                })
            }
            _ => return Err(format!("unknown operation `{op}`")),
        };
        return Ok((step, false));
    }
    let features = spec.config.flatten_size(spec.grid).map_err(|e| e.to_string())?;
    let [h1, h2] = spec.config.dense;
    let classes = spec.config.classes;
    let labels: Vec<i64> = (0..n as i64).map(|i| i % 2).collect();
    let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [n]), device);
    Ok(match op {
        "dropout" => {
            let x = host::<I<B>, 2>([n, features], seed, device);
            let p = spec.config.dropout;
            let step: Step<'a, B> = Box::new(move || {
                let xa = Tensor::<B, 2>::from_inner(x.clone()).require_grad();
                let y = crate::network::dropout(xa.clone(), p);
                let grads = y.sum().backward();
                xa.grad(&grads).map(flat).ok_or_else(|| "no input gradient".to_string())
            });
            (step, true)
        }
        "dense" => {
            let x = host::<I<B>, 2>([n, features], seed, device);
            let layers = [(features, h1), (h1, h2), (h2, classes)];
            type Layer<B> = (Tensor<I<B>, 2>, Tensor<I<B>, 1>);
            let params: Vec<Layer<B>> = layers
                .iter()
                .enumerate()
                .map(|(i, &(a, b))| {
                    let bound = 1.0 / (a as f64).sqrt();
                    let s = seed + 10 * i as u64;
                    (host([a, b], s + 1, device).mul_scalar(bound), host([b], s + 2, device).mul_scalar(bound))
                })
                .collect();
            let step: Step<'a, B> = Box::new(move || {
                let tracked: Vec<_> = params
                    .iter()
                    .map(|(w, b)| {
                        (Tensor::<B, 2>::from_inner(w.clone()).require_grad(), Tensor::<B, 1>::from_inner(b.clone()))
                    })
                    .collect();
                let mut y = Tensor::<B, 2>::from_inner(x.clone());
                for (i, (w, b)) in tracked.iter().enumerate() {
                    y = y.matmul(w.clone()).add(b.clone().unsqueeze());
                    if i + 1 < tracked.len() {
                        y = relu(y);
                    }
                }
                let grads = y.sum().backward();
                tracked[0].0.grad(&grads).map(flat).ok_or_else(|| "no weight gradient".to_string())
            });
            (step, false)
        }
        "cross_entropy" => {
            let logits = host::<I<B>, 2>([n, classes], seed, device);
            let loss_fn = CrossEntropyLossConfig::new().init::<B>(device);
            let step: Step<'a, B> = Box::new(move || {
                let la = Tensor::<B, 2>::from_inner(logits.clone()).require_grad();
                let grads = loss_fn.forward(la.clone(), targets.clone()).backward();
                la.grad(&grads).map(flat).ok_or_else(|| "no logit gradient".to_string())
            });
            (step, false)
        }
        "adam" => {
            let mut model = Some(host_network::<B>(&spec.config, spec.grid, seed, device)?);
            let mut optim = AdamConfig::new().with_epsilon(1e-8).init::<B, ClassificationModel3D<B>>();
            let step: Step<'a, B> = Box::new(move || {
                let m = model.take().ok_or("the model was lost in an earlier failure")?;
                let grads = host_gradients(&m, seed + 100, device)?;
                let m = optim.step(LEARNING_RATE, m, grads);
                let out = flat(m.blocks[0].conv.weight.val().inner());
                model = Some(m);
                Ok(out)
            });
            (step, false)
        }
        "train_step" | "train_step.burn_ops" => {
            let ops = if op == "train_step" { GpuOps::Portable } else { GpuOps::Burn };
            let [d, h, w] = spec.grid;
            let x = host::<I<B>, 5>([n, 1, d, h, w], seed, device);
            let mut model = Some(host_network::<B>(&spec.config, spec.grid, seed, device)?);
            let mut optim = AdamConfig::new().with_epsilon(1e-8).init::<B, ClassificationModel3D<B>>();
            let loss_fn = CrossEntropyLossConfig::new().init::<B>(device);
            let step: Step<'a, B> = Box::new(move || {
                portable::set_gpu_ops(ops);
                let m = model.take().ok_or("the model was lost in an earlier failure")?;
                let loss = loss_fn.forward(m.forward_train(Tensor::from_inner(x.clone())), targets.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                let m = optim.step(LEARNING_RATE, m, grads);
                model = Some(m);
                Ok(flat(loss.inner()))
            });
            (step, spec.config.dropout > 0.0)
        }
        _ => return Err(format!("unknown operation `{op}`")),
    })
}

/// Waits for the device: reads the first element back (which completes every queued kernel
/// that produced it) and syncs.
fn finish<B: Backend>(out: &Tensor<B, 1>, device: &B::Device) -> Result<f64, String> {
    let first: f32 = out.clone().narrow(0, 0, 1).into_scalar().elem();
    B::sync(device).map_err(|e| format!("device sync failed: {e:?}"))?;
    Ok(f64::from(first))
}

/// Runs operation `op` ([`op_names`]) once untimed-apart (the first call, compilation and
/// autotuning included) and `reps` more times, on `device`.
pub fn run_op<B: FastAutodiffBackend>(
    spec: &ProbeSpec,
    op: &str,
    reps: usize,
    device: &B::Device,
) -> Result<OpRecord, String> {
    let (mut step, random) = prepare::<B>(spec, op, device)?;
    let started = Instant::now();
    let mut out = step()?;
    finish(&out, device)?;
    let first_s = started.elapsed().as_secs_f64();
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        out = step()?;
        finish(&out, device)?;
        times.push(t.elapsed().as_secs_f64());
    }
    let first = finish(&out, device)?;
    let values = out
        .clone()
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| format!("{op}: cannot read the output back: {e:?}"))?;
    let (sum, abs_sum) = values.iter().fold((0.0, 0.0), |(s, a), &v| (s + f64::from(v), a + f64::from(v).abs()));
    Ok(OpRecord {
        op: op.to_string(),
        first_s,
        median_s: median(&times).unwrap_or(first_s),
        reps,
        shape: out.dims().to_vec(),
        first,
        sum,
        abs_sum,
        random,
    })
}

fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    (n > 0).then(|| if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 })
}

/// The losses of `steps` Adam steps (lr 1e-4) of the network with host-generated weights and
/// inputs and **dropout off** (dropout draws on the device, so two backends would differ), in
/// training mode otherwise: the CPU-versus-device agreement of a training run.
pub fn training_losses<B: FastAutodiffBackend>(
    spec: &ProbeSpec,
    steps: usize,
    device: &B::Device,
) -> Result<Vec<f64>, String> {
    let config = NetworkConfig { dropout: 0.0, ..spec.config.clone() };
    let spec = ProbeSpec { config, ..spec.clone() };
    let (mut step, _) = prepare::<B>(&spec, "train_step", device)?;
    (0..steps).map(|_| step().and_then(|loss| finish(&loss, device))).collect()
}

/// What became of one operation under [`supervise`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    /// Finished: its measurement.
    Done(OpRecord),
    /// Reported an error (the child went on).
    Error {
        /// The error.
        message: String,
    },
    /// Passed its time limit; the child was killed.
    TimedOut {
        /// The limit, in seconds.
        limit_s: f64,
    },
    /// The child died during this operation (a crash or an abort).
    Crashed {
        /// Its exit status and the end of its error output.
        message: String,
    },
}

/// A child's line for one operation: `PROBE {json}` with the operation's name and either its
/// record or its error.
pub fn child_line(op: &str, result: &Result<OpRecord, String>) -> String {
    let v = match result {
        Ok(r) => serde_json::json!({ "op": op, "record": r }),
        Err(e) => serde_json::json!({ "op": op, "error": e }),
    };
    format!("{LINE_PREFIX}{v}")
}

/// Runs `ops` in child processes, each operation under `limit` (counted from the child's start
/// for its first operation, so device start-up counts against it). `command(ops)` makes the
/// command of a child that runs those operations in order and prints one [`child_line`] per
/// operation on its standard output as it finishes. A child that passes the limit is killed and
/// a fresh one goes on after the timed-out operation; a child that dies takes only its current
/// operation with it. Returns every operation's outcome, in order.
pub fn supervise(
    mut command: impl FnMut(&[String]) -> Command,
    ops: &[String],
    limit: Duration,
) -> Result<Vec<(String, Outcome)>, String> {
    let mut outcomes: Vec<(String, Outcome)> = Vec::new();
    let mut rest: Vec<String> = ops.to_vec();
    while !rest.is_empty() {
        let mut cmd = command(&rest);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().ok_or("no child stdout")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(json) = line.strip_prefix(LINE_PREFIX)
                    && tx.send(json.to_string()).is_err()
                {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().ok_or("no child stderr")?;
        let errors = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut deadline = Instant::now() + limit;
        while let Some(expected) = rest.first().cloned() {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(json) => {
                    let v: serde_json::Value =
                        serde_json::from_str(&json).map_err(|e| format!("unreadable probe line `{json}`: {e}"))?;
                    if v["op"].as_str() != Some(expected.as_str()) {
                        return Err(format!("the probe child answered for {} while {expected} was due", v["op"]));
                    }
                    let outcome = match (v.get("record"), v.get("error")) {
                        (Some(r), _) => Outcome::Done(
                            serde_json::from_value(r.clone()).map_err(|e| format!("unreadable record `{r}`: {e}"))?,
                        ),
                        (None, Some(e)) => Outcome::Error { message: e.as_str().unwrap_or_default().to_string() },
                        (None, None) => return Err(format!("probe line without record or error: `{json}`")),
                    };
                    outcomes.push((rest.remove(0), outcome));
                    deadline = Instant::now() + limit;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    outcomes.push((rest.remove(0), Outcome::TimedOut { limit_s: limit.as_secs_f64() }));
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().map_err(|e| format!("cannot wait for the probe child: {e}"))?;
                    let err = errors.join().unwrap_or_default();
                    let tail: String =
                        err.lines().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
                    outcomes.push((rest.remove(0), Outcome::Crashed { message: format!("{status}: {tail}") }));
                    break;
                }
            }
        }
        if rest.is_empty() {
            let _ = child.wait();
        }
    }
    Ok(outcomes)
}

/// One row of the probe's table: an operation on the device and, where measured, on the CPU.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeRow {
    /// Grid name (`2mm`, `1mm`, …).
    pub grid: String,
    /// The operation.
    pub op: String,
    /// On the device.
    pub device: Outcome,
    /// On the CPU (the reference), if measured.
    pub cpu: Option<Outcome>,
}

/// How far two outputs differ, or `None` where they cannot be compared: the largest of
/// - the difference of their sums relative to the smaller sum of absolute values (so that an
///   output summing to about zero, such as BatchNorm's, is not judged by float noise, and a
///   wrong output with huge values cannot hide a difference by inflating the scale);
/// - the difference of their sums of absolute values, relative to the larger;
/// - the difference of their first elements relative to the larger of the two and of the smaller
///   mean absolute value.
pub fn difference(a: &OpRecord, b: &OpRecord) -> Option<f64> {
    if a.random || b.random || a.shape != b.shape {
        return None;
    }
    let len = a.shape.iter().product::<usize>().max(1) as f64;
    let scale = a.abs_sum.min(b.abs_sum).max(a.sum.abs().min(b.sum.abs())).max(1e-6);
    let sum = (a.sum - b.sum).abs() / scale;
    let l1 = (a.abs_sum - b.abs_sum).abs() / a.abs_sum.max(b.abs_sum).max(1e-6);
    let first = (a.first - b.first).abs() / a.first.abs().max(b.first.abs()).max(scale / len).max(1e-6);
    Some(sum.max(l1).max(first))
}

/// The probe's Markdown table: operation, seconds on the device (first call, then the median of
/// the calls after it) or what stopped it, the CPU's seconds, and the outputs compared.
pub fn markdown(device: &str, rows: &[ProbeRow]) -> String {
    let mut s = format!(
        "| grid | operation | {device} first call s | {device} s | CPU reference s | first element {device} / CPU reference | rel. difference |\n|---|---|---:|---:|---:|---|---:|\n"
    );
    let status = |o: &Outcome| match o {
        Outcome::Done(_) => String::new(),
        Outcome::Error { message } => format!("error: {}", message.replace('|', "/")),
        Outcome::TimedOut { limit_s } => format!("**timed out** (> {limit_s:.0} s)"),
        Outcome::Crashed { message } => format!("**crashed**: {}", message.replace('|', "/")),
    };
    for r in rows {
        let cpu = match &r.cpu {
            Some(Outcome::Done(c)) => Some(c),
            _ => None,
        };
        let cpu_s = match (&r.cpu, cpu) {
            (_, Some(c)) => format!("{:.4}", c.median_s),
            (Some(o), None) => status(o),
            (None, None) => "–".into(),
        };
        match &r.device {
            Outcome::Done(d) => {
                let firsts = match cpu {
                    Some(c) => format!("{:.6} / {:.6}", d.first, c.first),
                    None => format!("{:.6} / –", d.first),
                };
                let diff = match cpu.map(|c| difference(d, c)) {
                    Some(Some(x)) => format!("{x:.1e}"),
                    Some(None) => "random (dropout)".into(),
                    None => "–".into(),
                };
                s += &format!(
                    "| {} | {} | {:.4} | {:.4} | {cpu_s} | {firsts} | {diff} |\n",
                    r.grid, r.op, d.first_s, d.median_s
                );
            }
            other => s += &format!("| {} | {} | {} | | {cpu_s} | | |\n", r.grid, r.op, status(other)),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuTrain;

    fn tiny() -> ProbeSpec {
        // The smallest grid the paper network accepts, and a batch of 2.
        let config = NetworkConfig::default();
        let side = config.min_grid_size();
        ProbeSpec { config, grid: [side, side + 1, side], batch: 2, seed: 7 }
    }

    #[test]
    fn every_operation_runs_on_the_cpu_and_the_variants_agree() {
        let spec = tiny();
        let device = Default::default();
        let ops = op_names(&spec.config);
        assert_eq!(ops.len(), 4 * 8 + 6);
        let mut records = std::collections::HashMap::new();
        for op in &ops {
            let r = run_op::<CpuTrain>(&spec, op, 1, &device).unwrap_or_else(|e| panic!("{op}: {e}"));
            assert!(r.first.is_finite() && r.sum.is_finite() && r.first_s >= 0.0, "{op}: {r:?}");
            assert_eq!(r.reps, 1);
            records.insert(op.clone(), r);
        }
        for b in 1..=4 {
            let pair = |a: &str, c: &str| difference(&records[a], &records[c]);
            let wg = pair(&format!("conv{b}.weight_grad.burn"), &format!("conv{b}.weight_grad.taps")).unwrap();
            assert!(wg < 1e-4, "block {b}: weight gradients differ by {wg}");
            let pool = pair(&format!("pool{b}.burn"), &format!("pool{b}.reshape")).unwrap();
            assert!(pool < 1e-5, "block {b}: poolings differ by {pool}");
            assert!(records[&format!("conv{b}.weight_grad.taps")].sum != 0.0);
        }
        assert!(records["dropout"].random && records["train_step"].random);
        assert!(!records["adam"].random);
        // The loss of a fresh two-class network is near ln 2.
        assert!((records["train_step"].first - 2f64.ln()).abs() < 1.0, "{:?}", records["train_step"]);
        assert_eq!(records["conv1.forward"].shape, vec![2 * 8 * 76 * 77 * 76]);
    }

    #[test]
    fn host_data_is_the_same_on_every_call_and_spread_over_the_interval() {
        let a = host_values(10_000, 3);
        assert_eq!(a, host_values(10_000, 3));
        assert_ne!(a, host_values(10_000, 4));
        let (lo, hi) = a.iter().fold((1.0f32, -1.0f32), |(l, h), &v| (l.min(v), h.max(v)));
        assert!((-1.0..-0.99).contains(&lo) && (0.99..1.0).contains(&hi), "{lo} {hi}");
        let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.03, "{mean}");
    }

    #[test]
    fn training_losses_are_reproducible_and_fall() {
        let spec = tiny();
        let device = Default::default();
        let a = training_losses::<CpuTrain>(&spec, 3, &device).unwrap();
        let b = training_losses::<CpuTrain>(&spec, 3, &device).unwrap();
        assert_eq!(a, b);
        assert!(a.iter().all(|l| l.is_finite()), "{a:?}");
        assert!(a[2] < a[0], "three Adam steps on one batch lower its loss: {a:?}");
    }

    #[test]
    fn differences_are_measured_against_the_outputs_scale() {
        let record = |first: f64, sum: f64, abs_sum: f64| OpRecord {
            op: "bn1.train".into(),
            first_s: 0.0,
            median_s: 0.0,
            reps: 0,
            shape: vec![1000],
            first,
            sum,
            abs_sum,
            random: false,
        };
        // A normalised output sums to about zero: float noise in that sum is no difference…
        let d = difference(&record(0.3, 2e-4, 800.0), &record(0.3, -3e-4, 800.0)).unwrap();
        assert!(d < 1e-6, "{d}");
        // … but a sum that is off by a fifth of the values' size is, and so is a first element
        // off by more than the mean absolute value…
        assert!(difference(&record(0.3, 0.0, 800.0), &record(0.3, 160.0, 800.0)).unwrap() > 0.15);
        assert!(difference(&record(0.0, 0.0, 800.0), &record(1.6, 0.0, 800.0)).unwrap() > 0.5);
        // … and an output with values far too large cannot hide its difference behind its own
        // size (a wrong BatchNorm variance, say).
        assert!(difference(&record(0.29, 0.0, 800.0), &record(0.38, 4e5, 4e8)).unwrap() > 0.9);
        // The same first element and sum: no difference; other shapes or dropout: not comparable.
        assert_eq!(difference(&record(-2.0, 5.0, 9.0), &record(-2.0, 5.0, 9.0)), Some(0.0));
        let mut other = record(-2.0, 5.0, 9.0);
        other.shape = vec![999];
        assert_eq!(difference(&record(-2.0, 5.0, 9.0), &other), None);
        other.shape = vec![1000];
        other.random = true;
        assert_eq!(difference(&record(-2.0, 5.0, 9.0), &other), None);
    }

    #[test]
    fn unknown_operations_are_errors() {
        let spec = tiny();
        let device = Default::default();
        for op in ["conv9.forward", "conv1.sideways", "pool1.flat", "dance"] {
            let err = run_op::<CpuTrain>(&spec, op, 1, &device).unwrap_err();
            assert!(err.contains("unknown operation"), "{op}: {err}");
        }
    }

    /// A fake child: a shell script that answers each operation after `sleep` seconds, where
    /// an operation named `hang` never answers and one named `crash` exits.
    fn fake_child(rest: &[String]) -> Command {
        let mut script = String::new();
        for op in rest {
            match op.as_str() {
                "hang" => script += "sleep 30\n",
                "crash" => script += "echo 'out of memory' >&2; exit 3\n",
                "oops" => script += &format!("echo '{}'\n", child_line(op, &Err("bad shape".into()))),
                _ => {
                    let r = OpRecord {
                        op: op.clone(),
                        first_s: 0.5,
                        median_s: 0.25,
                        reps: 2,
                        shape: vec![3],
                        first: 1.5,
                        sum: 4.0,
                        abs_sum: 4.0,
                        random: false,
                    };
                    script += &format!("echo noise; echo '{}'\n", child_line(op, &Ok(r)));
                }
            }
        }
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    }

    #[test]
    fn the_supervisor_survives_hangs_crashes_and_errors() {
        let ops: Vec<String> = ["a", "hang", "b", "crash", "oops", "c"].map(String::from).to_vec();
        let started = Instant::now();
        let out = supervise(fake_child, &ops, Duration::from_millis(1500)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(10), "the hung child was not killed in time");
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "hang", "b", "crash", "oops", "c"]);
        assert!(matches!(&out[0].1, Outcome::Done(r) if r.op == "a" && r.median_s == 0.25));
        assert!(matches!(out[1].1, Outcome::TimedOut { limit_s } if limit_s == 1.5));
        assert!(matches!(&out[2].1, Outcome::Done(r) if r.op == "b"));
        assert!(
            matches!(&out[3].1, Outcome::Crashed { message } if message.contains("out of memory") && message.contains('3')),
            "{:?}",
            out[3]
        );
        assert!(matches!(&out[4].1, Outcome::Error { message } if message == "bad shape"));
        assert!(matches!(&out[5].1, Outcome::Done(r) if r.op == "c"));
        let rows: Vec<ProbeRow> =
            out.into_iter().map(|(op, device)| ProbeRow { grid: "2mm".into(), op, device, cpu: None }).collect();
        let md = markdown("cuda", &rows);
        assert!(md.contains("| 2mm | hang | **timed out** (> 2 s) |"), "{md}");
        assert!(md.contains("| 2mm | a | 0.5000 | 0.2500 | – | 1.500000 / – | – |"), "{md}");
    }
}
