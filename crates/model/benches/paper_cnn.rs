//! Benchmark of the paper's CNN (`ClassificationModel3D` of Rieke et al., MLCN 2018) on Burn.
//!
//! ```text
//! cargo bench -p model --bench paper_cnn -- [--grids 2mm,1mm] [--reps 5] [--threads 2] [--straightforward]
//! ```
//!
//! By default the CPU backend runs the project's fast CPU paths (`model::fast`: convolution,
//! pooling and BatchNorm kernels; mimalloc as the allocator of this binary);
//! `--straightforward` switches the kernels off (Burn's own operations), for before/after
//! comparisons (the allocator stays).
//!
//! Cases, per grid (2 mm = 97×115×97, 1 mm = 193×229×193), with the paper's network:
//!
//! - `train`: one Adam step (lr 1e-4, PyTorch's β and ε) in training mode (BatchNorm on batch
//!   statistics, dropout 0.8): `forward_train` + cross-entropy + backward + step, batch 5;
//!   reported per scan (time / batch).
//! - `forward`: `forward_eval` (running statistics, no dropout) on the plain backend (no
//!   autodiff), batch 5; per scan.
//! - `input_grad`: `input_gradient` of the softmax probability of class 1 (AD) for one scan, in
//!   inference mode and without weight gradients (the sensitivity analysis of the paper).
//!
//! Honesty rules, shared with `scripts/bench_pytorch.py` (the same network in PyTorch):
//! every case runs in a child process of its own (fresh allocator, fresh thread pool, an honest
//! peak memory); inside it, untimed warm-up repetitions come first, then `--reps` timed ones; the
//! median and the minimum are reported. Each timed repetition ends by reading a result back to
//! the host (the loss, the logits, the gradient's sum) and syncing the device, so lazy or
//! asynchronous backends are timed to completion. Peak memory is the child's `VmHWM` (peak
//! resident set, from `/proc/self/status`); on CUDA it is host memory only.
//!
//! The CPU backend is Flex; its kernels run on rayon's global pool, which each child builds with
//! `--threads` threads (reported as `threads`). `--device cuda` (builds with `--features cuda`)
//! runs the same cases on the GPU (`--device cuda:N` on GPU number N); `--check-agreement`
//! (CUDA only) compares CPU and CUDA inference on the same weights.
//!
//! `--ops` is the per-operation probe of a training step (`model::probe`, issue 11): each
//! operation of the step timed alone (first call apart from the median of the calls after it),
//! in child processes that are killed after `--op-timeout` seconds per operation, so that an
//! operation that never finishes on the device is named instead of hanging the run; an
//! operation that timed out on one grid is skipped on the larger ones. On a GPU the same
//! operations also run on the CPU, in parallel, and the table compares the outputs.
//! `--check-training` runs three fixed-seed Adam steps (dropout off) on the CPU and on the device
//! and compares the losses (on the CPU alone: the fast paths against Burn's operations).
//!
//! `cargo xtask bench` runs this binary and the PyTorch script and writes
//! `results/bench/bench.{json,md}`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, ElementConversion, Int, Tensor, TensorData};
use model::{ClassificationModel3D, FastAutodiffBackend, NetworkConfig, input_gradient};
use serde_json::{Value, json};

/// The allocator the project's binaries use (see `model::fast::FastAlloc`).
#[global_allocator]
static GLOBAL: model::fast::FastAlloc = model::fast::FastAlloc;

/// The grids of the benchmark, by name.
const GRIDS: [(&str, [usize; 3]); 2] = [("2mm", [97, 115, 97]), ("1mm", [193, 229, 193])];
/// The cases, in the order they run.
const CASES: [&str; 3] = ["train", "forward", "input_grad"];
/// The class whose probability `input_grad` differentiates (1 = AD); the cost does not depend on it.
const TARGET_CLASS: usize = 1;
/// Adam learning rate of the paper.
const LEARNING_RATE: f64 = 1e-4;
/// Tolerance of `--check-agreement`: max |Δp| between CPU and CUDA softmax outputs.
#[cfg(feature = "cuda")]
const AGREEMENT_TOLERANCE: f64 = 1e-4;

/// Command-line options.
#[derive(Debug, Clone)]
struct Options {
    grids: Vec<String>,
    cases: Vec<String>,
    reps: usize,
    warmup: usize,
    threads: usize,
    batch: usize,
    seed: u64,
    device: String,
    json: Option<PathBuf>,
    check_agreement: bool,
    /// Burn's own operations instead of the fast CPU paths (`model::fast::set_fast_cpu(false)`).
    straightforward: bool,
    /// Child mode: run this one (grid, case) and print its JSON.
    child: Option<(String, String)>,
    /// The per-operation probe instead of the cases.
    ops: bool,
    /// Only these probe operations (default: all of `model::probe::op_names`).
    only_ops: Vec<String>,
    /// Seconds each probe operation may take before its child is killed.
    op_timeout: f64,
    /// Probe child mode: run these operations on this grid, one result line each.
    ops_child: Option<(String, Vec<String>)>,
    /// Compare a short training run on the CPU and on the device.
    check_training: bool,
    /// (--ops on a GPU) The grids on which the CPU reference runs too (default: all).
    reference_grids: Option<Vec<String>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            grids: vec!["2mm".into()],
            cases: CASES.iter().map(|c| c.to_string()).collect(),
            reps: 5,
            warmup: 1,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            batch: 5,
            seed: 2018,
            device: "cpu".into(),
            json: None,
            check_agreement: false,
            straightforward: false,
            child: None,
            ops: false,
            only_ops: Vec::new(),
            op_timeout: 20.0,
            ops_child: None,
            check_training: false,
            reference_grids: None,
        }
    }
}

const USAGE: &str = "\
usage: cargo bench -p model --bench paper_cnn -- [options]
  --grids LIST        comma-separated grids: 2mm, 1mm or DxHxW (default 2mm)
  --cases LIST        comma-separated: train, forward, input_grad (default all)
  --reps N            timed repetitions per case (default 5)
  --warmup N          untimed repetitions before them (default 1)
  --threads N         rayon threads of the CPU backend (default: all cores)
  --batch N           batch of train and forward (default 5; input_grad uses 1)
  --seed N            weights and input seed (default 2018)
  --device cpu|cuda   backend (cuda needs --features cuda; cuda:N for GPU number N)
  --json FILE         also write the results as JSON
  --check-agreement   (cuda) compare CPU and CUDA inference on the same weights
  --straightforward   Burn's own operations instead of the fast CPU paths (model::fast)
  --ops               the per-operation probe of a training step instead of the cases
  --only-ops LIST     (--ops) only these operations (default: all)
  --op-timeout S      (--ops) seconds per operation before its child is killed (default 20)
  --reference-grids L (--ops on a GPU) grids on which the CPU reference runs too (default: all)
  --check-training    3 fixed-seed Adam steps (dropout off) on the CPU and the device, losses compared";

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut it = args.iter();
    let list = |v: &str| v.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| v.parse::<usize>().map_err(|_| format!("{name}: `{v}` is not a number"));
        match arg.as_str() {
            // `cargo bench` passes `--bench` to every bench binary.
            "--bench" => {}
            "--grids" => o.grids = list(&value("--grids")?),
            "--cases" => o.cases = list(&value("--cases")?),
            "--reps" => o.reps = number("--reps", value("--reps")?)?,
            "--warmup" => o.warmup = number("--warmup", value("--warmup")?)?,
            "--threads" => o.threads = number("--threads", value("--threads")?)?,
            "--batch" => o.batch = number("--batch", value("--batch")?)?,
            "--seed" => o.seed = number("--seed", value("--seed")?)? as u64,
            "--device" => o.device = value("--device")?,
            "--json" => o.json = Some(PathBuf::from(value("--json")?)),
            "--check-agreement" => o.check_agreement = true,
            "--straightforward" => o.straightforward = true,
            "--child" => o.child = Some((value("--child")?, value("--child")?)),
            "--ops" => o.ops = true,
            "--only-ops" => o.only_ops = list(&value("--only-ops")?),
            "--op-timeout" => {
                let v = value("--op-timeout")?;
                o.op_timeout = v.parse().map_err(|_| format!("--op-timeout: `{v}` is not a number of seconds"))?;
            }
            "--ops-child" => o.ops_child = Some((value("--ops-child")?, list(&value("--ops-child")?))),
            "--check-training" => o.check_training = true,
            "--reference-grids" => o.reference_grids = Some(list(&value("--reference-grids")?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    for g in &o.grids {
        if grid_shape(g).is_none() {
            return Err(format!("unknown grid `{g}`; expected 2mm, 1mm or DxHxW"));
        }
    }
    for c in &o.cases {
        if !CASES.contains(&c.as_str()) {
            return Err(format!("unknown case `{c}`; expected one of {}", CASES.join(", ")));
        }
    }
    if o.reps == 0 || o.threads == 0 || o.batch == 0 {
        return Err("--reps, --threads and --batch must be at least 1".into());
    }
    o.device.parse::<model::DeviceKind>()?;
    if !(o.op_timeout > 0.0 && o.op_timeout.is_finite()) {
        return Err(format!("--op-timeout must be a positive number of seconds, not {}", o.op_timeout));
    }
    let known = model::probe::op_names(&NetworkConfig::default());
    if let Some(op) = o.only_ops.iter().find(|op| !known.contains(op)) {
        return Err(format!("unknown operation `{op}`; expected some of {}", known.join(", ")));
    }
    Ok(o)
}

/// A named grid (2mm, 1mm) or `DxHxW` (e.g. `80x81x80` for a quick smoke run).
fn grid_shape(name: &str) -> Option<[usize; 3]> {
    if let Some((_, s)) = GRIDS.iter().find(|(n, _)| *n == name) {
        return Some(*s);
    }
    let v: Vec<usize> = name.split('x').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    <[usize; 3]>::try_from(v).ok()
}

/// The GPU number of a `cuda:N` device (0 for `cuda`).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn gpu_index(device: &str) -> usize {
    match device.parse() {
        Ok(model::DeviceKind::Cuda(i)) => i,
        _ => 0,
    }
}

fn is_cpu(opts: &Options) -> bool {
    opts.device.parse() == Ok(model::DeviceKind::Cpu)
}

fn main() -> ExitCode {
    model::fast::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if let Some((grid, ops)) = opts.ops_child.clone() {
        ops_child_main(&opts, &grid, &ops)
    } else if let Some((grid, case)) = opts.child.clone() {
        child_main(&opts, &grid, &case).map(|v| println!("{v}"))
    } else if opts.ops {
        ops_main(&opts, &args)
    } else if opts.check_training {
        check_training_main(&opts)
    } else {
        parent_main(&opts, &args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parent: one child process per case, then the summary.

fn parent_main(opts: &Options, args: &[String]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let load_before = loadavg();
    let cpu_before = cpu_snapshot();
    let started = Instant::now();
    let mut results = Vec::new();
    for grid in &opts.grids {
        for case in &opts.cases {
            eprintln!("paper_cnn: {} {grid} {case} (warm-up {}, reps {}) …", opts.device, opts.warmup, opts.reps);
            let mut cmd = Command::new(&exe);
            cmd.args(["--child", grid, case])
                .args(["--reps", &opts.reps.to_string(), "--warmup", &opts.warmup.to_string()])
                .args(["--threads", &opts.threads.to_string(), "--batch", &opts.batch.to_string()])
                .args(["--seed", &opts.seed.to_string(), "--device", &opts.device])
                .env("RAYON_NUM_THREADS", opts.threads.to_string());
            if opts.straightforward {
                cmd.arg("--straightforward");
            }
            let out = cmd.output().map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "case {grid}/{case} failed ({}):\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            let line = stdout.lines().last().unwrap_or_default();
            let v: Value = serde_json::from_str(line)
                .map_err(|e| format!("case {grid}/{case}: unreadable output `{line}`: {e}"))?;
            eprintln!("  {}", one_line(&v));
            results.push(v);
        }
    }
    // The machine's multiply-add peak on the same number of threads, for the floor estimate.
    let peak = if is_cpu(opts) {
        let v = child_json(
            Command::new(&exe).args(["--child", &opts.grids[0], "peak", "--threads", &opts.threads.to_string()]),
            opts,
            "peak measurement",
        )?;
        eprintln!(
            "  multiply-add peak: {:.1} GFLOP/s on {} threads",
            v["peak_gflops"].as_f64().unwrap_or(f64::NAN),
            opts.threads
        );
        v["peak_gflops"].clone()
    } else {
        Value::Null
    };
    for v in &mut results {
        if let (Some(g), Some(p)) = (v["gflop_per_scan"].as_f64(), peak.as_f64()) {
            v["floor_s_per_scan"] = json!(g / p);
        }
    }
    let mut summary = json!({
        "framework": "burn",
        "burn_version": "0.21.0",
        "backend": if is_cpu(opts) { "flex" } else { "cuda" },
        "device": opts.device,
        "threads": opts.threads,
        "fast_cpu": !opts.straightforward,
        "cpu": cpu_model(),
        "command": format!("cargo bench -p model --bench paper_cnn -- {}", shell_words(args)),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "other_cpu_cores": other_cpu_cores(cpu_before, started),
        "env": timing_env(),
        "wall_s": started.elapsed().as_secs_f64(),
        "peak_gflops": peak,
        "results": results,
    });
    if opts.check_agreement {
        let v = child_json(
            Command::new(&exe)
                .args(["--check-agreement", "--child", &opts.grids[0], "agreement", "--seed", &opts.seed.to_string()])
                .args(["--device", &opts.device]),
            opts,
            "agreement check",
        )?;
        eprintln!("agreement: {v}");
        summary["agreement"] = v;
    }
    println!("{}", table(&summary));
    if let Some(path) = &opts.json {
        write_json(path, &summary)?;
        eprintln!("paper_cnn: wrote {}", path.display());
    }
    if summary["agreement"]["pass"] == json!(false) {
        return Err(format!("CPU and CUDA disagree: {}", summary["agreement"]));
    }
    Ok(())
}

/// Runs a child of this binary on `--threads` rayon threads and reads the JSON of its last
/// line; `what` names it in the error, with the child's exit status and error output.
fn child_json(cmd: &mut Command, opts: &Options, what: &str) -> Result<Value, String> {
    let out = cmd
        .env("RAYON_NUM_THREADS", opts.threads.to_string())
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .map_err(|_| format!("{what} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr)))
}

fn one_line(v: &Value) -> String {
    format!(
        "{} {}: {:.4} s/scan median, {:.4} min, peak {:.0} MB",
        v["grid"].as_str().unwrap_or("?"),
        v["case"].as_str().unwrap_or("?"),
        v["per_scan_median_s"].as_f64().unwrap_or(f64::NAN),
        v["per_scan_min_s"].as_f64().unwrap_or(f64::NAN),
        v["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
    )
}

fn table(summary: &Value) -> String {
    let mut s = format!(
        "\nburn 0.21.0 {} ({} threads, {}), warm-up excluded, per scan\n{:<5} {:<11} {:>6} {:>5} {:>12} {:>12} {:>10} {:>8} {:>9}\n",
        summary["backend"].as_str().unwrap_or("?"),
        summary["threads"],
        if summary["fast_cpu"] == json!(false) { "straightforward" } else { "fast CPU paths" },
        "grid",
        "case",
        "batch",
        "reps",
        "median s",
        "min s",
        "peak MB",
        "GFLOP",
        "floor s"
    );
    for v in summary["results"].as_array().into_iter().flatten() {
        s += &format!(
            "{:<5} {:<11} {:>6} {:>5} {:>12.4} {:>12.4} {:>10.0} {:>8.2} {:>9.4}\n",
            v["grid"].as_str().unwrap_or("?"),
            v["case"].as_str().unwrap_or("?"),
            v["batch"].to_string(),
            v["reps"].to_string(),
            v["per_scan_median_s"].as_f64().unwrap_or(f64::NAN),
            v["per_scan_min_s"].as_f64().unwrap_or(f64::NAN),
            v["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
            v["gflop_per_scan"].as_f64().unwrap_or(f64::NAN),
            v["floor_s_per_scan"].as_f64().unwrap_or(f64::NAN),
        );
    }
    if let Some(p) = summary["peak_gflops"].as_f64() {
        s += &format!(
            "GFLOP = the convolutions' floating-point operations per scan; floor = GFLOP / the measured multiply-add peak ({p:.1} GFLOP/s on {} threads)\n",
            summary["threads"]
        );
    }
    s
}

/// Writes under a temporary name in the same folder, then renames (never a half-written file).
fn write_json(path: &Path, v: &Value) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, text + "\n").map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename onto {}: {e}", path.display()))
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .filter(|a| *a != "--bench")
        .map(|a| {
            if a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./,=:".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn loadavg() -> Value {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| {
            let v: Vec<f64> = s.split_whitespace().take(3).filter_map(|x| x.parse().ok()).collect();
            json!(v)
        })
        .unwrap_or(Value::Null)
}

/// Environment variables that change the timings (allocator and thread-pool settings), as set.
/// glibc's allocator matters a lot here: returning every large tensor to the OS and faulting it
/// in again costs a large share of a step, so a run with `GLIBC_TUNABLES` is not comparable to
/// one without.
fn timing_env() -> Value {
    let vars = std::env::vars().filter(|(k, _)| {
        k.starts_with("MALLOC_")
            || k.starts_with("GLIBC_")
            || k.starts_with("OMP_")
            || k.starts_with("RAYON_")
            || k == "LD_PRELOAD"
    });
    Value::Object(vars.map(|(k, v)| (k, json!(v))).collect())
}

/// Linux's `USER_HZ`: the unit of `/proc/stat` and `/proc/self/stat` times (100 on every
/// mainstream architecture).
const TICKS_PER_S: f64 = 100.0;

/// (CPU-busy seconds of the whole machine, CPU seconds of this process and its finished
/// children), from `/proc`.
fn cpu_snapshot() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<f64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal …
    let busy = f[0] + f[1] + f[2] + f.get(5).unwrap_or(&0.0) + f.get(6).unwrap_or(&0.0) + f.get(7).unwrap_or(&0.0);
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = me[me.rfind(')')? + 1..].split_whitespace().collect();
    // Fields 14–17 of proc(5) (utime, stime, cutime, cstime); `fields[0]` is field 3.
    let own: f64 = fields.get(11..15)?.iter().filter_map(|x| x.parse::<f64>().ok()).sum();
    Some((busy / TICKS_PER_S, own / TICKS_PER_S))
}

/// Average number of cores that *other* processes kept busy since `before`: a benchmark is only
/// trustworthy where this is near 0.
fn other_cpu_cores(before: Option<(f64, f64)>, started: Instant) -> Value {
    match (before, cpu_snapshot()) {
        (Some((b0, o0)), Some((b1, o1))) => {
            json!((((b1 - b0) - (o1 - o0)) / started.elapsed().as_secs_f64()).max(0.0))
        }
        _ => Value::Null,
    }
}

fn cpu_model() -> Value {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|m| json!(m.trim()))
        })
        .unwrap_or(Value::Null)
}

/// A `kB` field of `/proc/self/status` in MB (`VmHWM` = peak resident set, `VmRSS` = current).
fn status_mb(field: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

// ---------------------------------------------------------------------------------------------
// Child: one case.

/// What every child does first: the fast-path switch, rayon's pool of `--threads` threads, and
/// the grid's shape.
fn child_setup(opts: &Options, grid: &str) -> Result<[usize; 3], String> {
    model::fast::set_fast_cpu(!opts.straightforward);
    rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build_global()
        .map_err(|e| format!("cannot build the rayon pool: {e}"))?;
    let shape = grid_shape(grid).ok_or_else(|| format!("unknown grid `{grid}`"))?;
    Ok(shape)
}

fn child_main(opts: &Options, grid: &str, case: &str) -> Result<Value, String> {
    let start_rss = status_mb("VmRSS");
    let shape = child_setup(opts, grid)?;
    if opts.check_agreement {
        return check_agreement(grid, shape, opts.seed, &opts.device);
    }
    if opts.check_training {
        return check_training(shape, opts);
    }
    if case == "peak" {
        return Ok(
            json!({ "case": "peak", "peak_gflops": model::fast::peak::fma_peak_gflops(2.0), "threads": rayon::current_num_threads() }),
        );
    }
    let mut v = if is_cpu(opts) {
        run_case::<model::CpuTrain>(&Default::default(), shape, case, opts)?
    } else {
        run_cuda(shape, case, opts)?
    };
    v["grid"] = json!(grid);
    v["gflop_per_scan"] = json!(case_flops(shape, case)? / 1e9);
    v["start_rss_mb"] = json!(start_rss);
    v["peak_rss_mb"] = json!(status_mb("VmHWM"));
    v["threads"] = json!(rayon::current_num_threads());
    v["fast_cpu"] = json!(model::fast::fast_cpu());
    Ok(v)
}

#[cfg(feature = "cuda")]
fn run_cuda(shape: [usize; 3], case: &str, opts: &Options) -> Result<Value, String> {
    let device = model::device::cuda_device(gpu_index(&opts.device)).map_err(|e| e.to_string())?;
    run_case::<model::GpuTrain>(&device, shape, case, opts)
}

#[cfg(not(feature = "cuda"))]
fn run_cuda(_: [usize; 3], _: &str, _: &Options) -> Result<Value, String> {
    Err(model::ModelError::CudaNotCompiled.to_string())
}

/// Floating-point operations of one scan of `case` in the paper network's convolutions (2 per
/// multiply-add; `NetworkConfig::conv_macs`): a forward pass; a training step adds the weight
/// gradients of every block and the input gradients of blocks 2–4 (the scans need none); the
/// input gradient is a forward pass and every block's input gradient.
fn case_flops(shape: [usize; 3], case: &str) -> Result<f64, String> {
    let macs = NetworkConfig::default().conv_macs(shape).map_err(|e| e.to_string())?;
    let all = macs.iter().sum::<u64>() as f64;
    Ok(2.0
        * match case {
            "train" => 3.0 * all - macs[0] as f64,
            "forward" => all,
            "input_grad" => 2.0 * all,
            other => return Err(format!("unknown case `{other}`")),
        })
}

/// Times `step` after `warmup` untimed calls; returns the seconds of each timed call.
fn time_reps(warmup: usize, reps: usize, mut step: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        step();
    }
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            step();
            t.elapsed().as_secs_f64()
        })
        .collect()
}

fn sync<B: Backend>(device: &B::Device) {
    // Flex is synchronous; on CUDA this waits for the queued kernels.
    if let Err(e) = B::sync(device) {
        panic!("device sync failed: {e:?}");
    }
}

fn run_case<B: FastAutodiffBackend>(
    device: &B::Device,
    shape: [usize; 3],
    case: &str,
    opts: &Options,
) -> Result<Value, String> {
    B::seed(device, opts.seed);
    let config = NetworkConfig::default();
    let model: ClassificationModel3D<B> = config.init(shape, device).map_err(|e| e.to_string())?;
    let batch = if case == "input_grad" { 1 } else { opts.batch };
    let [d, h, w] = shape;
    let x = Tensor::<B::InnerBackend, 5>::random([batch, 1, d, h, w], Distribution::Normal(0.0, 1.0), device);
    let ready_rss;
    let times = match case {
        "train" => {
            let labels: Vec<i64> = (0..batch as i64).map(|i| i % 2).collect();
            let y = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [batch]), device);
            let x = Tensor::<B, 5>::from_inner(x);
            let loss_fn = CrossEntropyLossConfig::new().init(device);
            // PyTorch's Adam defaults (β = 0.9, 0.999; ε = 1e-8), as the paper.
            let mut optim = AdamConfig::new().with_epsilon(1e-8).init::<B, ClassificationModel3D<B>>();
            let mut model = Some(model);
            ready_rss = status_mb("VmRSS");
            time_reps(opts.warmup, opts.reps, || {
                let m = model.take().expect("model is put back after every step");
                let loss = loss_fn.forward(m.forward_train(x.clone()), y.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                let m = optim.step(LEARNING_RATE, m, grads);
                let _: f32 = loss.into_scalar().elem();
                sync::<B>(device);
                model = Some(m);
            })
        }
        "forward" => {
            let inference = model.valid();
            ready_rss = status_mb("VmRSS");
            time_reps(opts.warmup, opts.reps, || {
                let _ = inference.forward_eval(x.clone()).into_data();
                sync::<B::InnerBackend>(device);
            })
        }
        "input_grad" => {
            ready_rss = status_mb("VmRSS");
            let mut failure = None;
            let times =
                time_reps(opts.warmup, opts.reps, || match input_gradient(&model, x.clone(), TARGET_CLASS, true) {
                    Ok(g) => {
                        let _: f32 = g.abs().sum().into_scalar().elem();
                        sync::<B::InnerBackend>(device);
                    }
                    Err(e) => failure = Some(e.to_string()),
                });
            if let Some(e) = failure {
                return Err(e);
            }
            times
        }
        other => return Err(format!("unknown case `{other}`")),
    };
    let per_scan = if case == "input_grad" { 1 } else { batch } as f64;
    let median = median(&times);
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(json!({
        "shape": shape,
        "case": case,
        "batch": batch,
        "warmup": opts.warmup,
        "reps": opts.reps,
        "times_s": times,
        "median_s": median,
        "min_s": min,
        "per_scan_median_s": median / per_scan,
        "per_scan_min_s": min / per_scan,
        "ready_rss_mb": ready_rss,
    }))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

// ---------------------------------------------------------------------------------------------
// CPU versus CUDA on the same weights.

#[cfg(feature = "cuda")]
fn check_agreement(grid: &str, shape: [usize; 3], seed: u64, device: &str) -> Result<Value, String> {
    use burn::module::Module;
    use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
    use burn::tensor::activation::softmax;
    use model::{Cpu, Gpu};

    let cpu = Default::default();
    let gpu = model::device::cuda_device(gpu_index(device)).map_err(|e| e.to_string())?;
    Cpu::seed(&cpu, seed);
    let config = NetworkConfig::default();
    let net_cpu: ClassificationModel3D<model::CpuTrain> = config.init(shape, &cpu).map_err(|e| e.to_string())?;
    let x = Tensor::<Cpu, 5>::random([3, 1, shape[0], shape[1], shape[2]], Distribution::Normal(0.0, 1.0), &cpu);
    // One training forward moves the BatchNorm running statistics off their initial 0 / 1.
    let _ = net_cpu.forward_train(Tensor::from_inner(x.clone()));
    let net_cpu = net_cpu.valid();
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = recorder.record(net_cpu.clone().into_record(), ()).map_err(|e| e.to_string())?;
    let record = recorder.load(bytes, &gpu).map_err(|e| e.to_string())?;
    let net_gpu: ClassificationModel3D<Gpu> = config.init(shape, &gpu).map_err(|e| e.to_string())?.load_record(record);
    let x_gpu = Tensor::<Gpu, 5>::from_data(x.to_data(), &gpu);
    let p_cpu = softmax(net_cpu.forward_eval(x), 1).into_data().to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
    let p_gpu = softmax(net_gpu.forward_eval(x_gpu), 1).into_data().to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
    let max_dp = p_cpu.iter().zip(&p_gpu).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max);
    Ok(json!({
        "grid": grid,
        "scans": 3,
        "p_cpu": p_cpu,
        "p_cuda": p_gpu,
        "max_abs_dp": max_dp,
        "tolerance": AGREEMENT_TOLERANCE,
        "pass": max_dp < AGREEMENT_TOLERANCE,
    }))
}

#[cfg(not(feature = "cuda"))]
fn check_agreement(_: &str, _: [usize; 3], _: u64, _: &str) -> Result<Value, String> {
    Err(model::ModelError::CudaNotCompiled.to_string())
}

// ---------------------------------------------------------------------------------------------
// The per-operation probe (`--ops`) and the training agreement (`--check-training`).

/// The probe's network spec for a grid.
fn probe_spec(shape: [usize; 3], opts: &Options) -> model::probe::ProbeSpec {
    model::probe::ProbeSpec { config: NetworkConfig::default(), grid: shape, batch: opts.batch, seed: opts.seed }
}

/// The command of a probe child: `ops` on `grid`, on `device`.
fn ops_child_command(exe: &Path, opts: &Options, grid: &str, device: &str, reps: usize, ops: &[String]) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(["--ops-child", grid, &ops.join(",")])
        .args(["--device", device, "--reps", &reps.to_string(), "--batch", &opts.batch.to_string()])
        .args(["--threads", &opts.threads.to_string(), "--seed", &opts.seed.to_string()])
        .env("RAYON_NUM_THREADS", opts.threads.to_string());
    cmd
}

fn ops_main(opts: &Options, args: &[String]) -> Result<(), String> {
    use model::probe::{Outcome, ProbeRow, supervise};
    use std::time::Duration;

    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let all = model::probe::op_names(&NetworkConfig::default());
    let wanted: Vec<String> =
        if opts.only_ops.is_empty() { all } else { all.into_iter().filter(|o| opts.only_ops.contains(o)).collect() };
    let limit = Duration::from_secs_f64(opts.op_timeout);
    let started = Instant::now();
    let mut rows: Vec<ProbeRow> = Vec::new();
    let mut timed_out: Vec<(String, String)> = Vec::new();
    for grid in &opts.grids {
        let run: Vec<String> = wanted.iter().filter(|op| !timed_out.iter().any(|(o, _)| o == *op)).cloned().collect();
        eprintln!(
            "paper_cnn: probe {} {grid}: {} operations, {} s each at most …",
            opts.device,
            run.len(),
            opts.op_timeout
        );
        // The CPU reference runs beside the device, on all cores but two (the device's process
        // needs a core to launch its kernels), with a longer limit: the CPU is the slower one.
        let with_reference = !is_cpu(opts) && opts.reference_grids.as_ref().is_none_or(|g| g.contains(grid));
        let reference = with_reference.then(|| {
            let (exe, grid, run) = (exe.clone(), grid.clone(), run.clone());
            let opts = Options { threads: opts.threads.saturating_sub(2).max(1), ..opts.clone() };
            std::thread::spawn(move || {
                let cpu_limit = Duration::from_secs_f64((opts.op_timeout * 6.0).max(120.0));
                supervise(|rest| ops_child_command(&exe, &opts, &grid, "cpu", 1, rest), &run, cpu_limit)
            })
        });
        let device = supervise(|rest| ops_child_command(&exe, opts, grid, &opts.device, opts.reps, rest), &run, limit)?;
        let cpu = match reference {
            Some(handle) => Some(handle.join().map_err(|_| "the CPU reference thread panicked".to_string())??),
            None => None,
        };
        for (i, (op, outcome)) in device.into_iter().enumerate() {
            if matches!(outcome, Outcome::TimedOut { .. }) {
                timed_out.push((op.clone(), grid.clone()));
            }
            let cpu = cpu.as_ref().and_then(|c| c.get(i)).map(|(_, o)| o.clone());
            rows.push(ProbeRow { grid: grid.clone(), op, device: outcome, cpu });
        }
        for op in wanted.iter().filter(|op| !run.contains(op)) {
            let at = timed_out.iter().find(|(o, _)| o == op).map_or("", |(_, g)| g.as_str());
            let message = format!("skipped: timed out at {at}");
            rows.push(ProbeRow { grid: grid.clone(), op: op.clone(), device: Outcome::Error { message }, cpu: None });
        }
        // After each grid: the table so far, and the JSON, so that a run cut off on a larger
        // grid keeps what it measured.
        eprintln!("{}", model::probe::markdown(&opts.device, &rows));
        write_ops_json(opts, args, started, &rows)?;
    }
    let md = model::probe::markdown(&opts.device, &rows);
    println!("\nper-operation probe, batch {}, {} timed calls after the first\n{md}", opts.batch, opts.reps);
    Ok(())
}

fn write_ops_json(
    opts: &Options,
    args: &[String],
    started: Instant,
    rows: &[model::probe::ProbeRow],
) -> Result<(), String> {
    if let Some(path) = &opts.json {
        let summary = json!({
            "device": opts.device,
            "batch": opts.batch,
            "reps": opts.reps,
            "op_timeout_s": opts.op_timeout,
            "threads": opts.threads,
            "command": format!("cargo bench -p model --bench paper_cnn -- {}", shell_words(args)),
            "wall_s": started.elapsed().as_secs_f64(),
            "rows": rows,
        });
        write_json(path, &summary)?;
        eprintln!("paper_cnn: wrote {}", path.display());
    }
    Ok(())
}

fn ops_child_main(opts: &Options, grid: &str, ops: &[String]) -> Result<(), String> {
    use std::io::Write;
    let shape = child_setup(opts, grid)?;
    let spec = probe_spec(shape, opts);
    let run = |op: &str| -> Result<model::probe::OpRecord, String> {
        if is_cpu(opts) {
            model::probe::run_op::<model::CpuTrain>(&spec, op, opts.reps, &Default::default())
        } else {
            run_op_cuda(&spec, op, opts)
        }
    };
    for op in ops {
        let line = model::probe::child_line(op, &run(op));
        println!("{line}");
        std::io::stdout().flush().map_err(|e| format!("cannot write: {e}"))?;
    }
    Ok(())
}

#[cfg(feature = "cuda")]
fn run_op_cuda(spec: &model::probe::ProbeSpec, op: &str, opts: &Options) -> Result<model::probe::OpRecord, String> {
    let device = model::device::cuda_device(gpu_index(&opts.device)).map_err(|e| e.to_string())?;
    model::probe::run_op::<model::GpuTrain>(spec, op, opts.reps, &device)
}

#[cfg(not(feature = "cuda"))]
fn run_op_cuda(_: &model::probe::ProbeSpec, _: &str, _: &Options) -> Result<model::probe::OpRecord, String> {
    Err(model::ModelError::CudaNotCompiled.to_string())
}

/// Steps of `--check-training`, and the largest |Δ loss| that passes.
const TRAINING_STEPS: usize = 3;
const TRAINING_TOLERANCE: f64 = 1e-3;

fn check_training_main(opts: &Options) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let v = child_json(
        Command::new(&exe)
            .args(["--check-training", "--child", &opts.grids[0], "training", "--device", &opts.device])
            .args(["--batch", &opts.batch.to_string(), "--seed", &opts.seed.to_string()])
            .args(["--threads", &opts.threads.to_string()]),
        opts,
        "the training check",
    )?;
    eprintln!("training agreement: {v}");
    if let Some(path) = &opts.json {
        write_json(path, &v)?;
    }
    if v["pass"] == json!(true) { Ok(()) } else { Err(format!("the training runs disagree: {v}")) }
}

/// Child of `--check-training`: the losses of the same short run on the CPU (fast paths) and on
/// the device (on the CPU alone: Burn's own operations).
fn check_training(shape: [usize; 3], opts: &Options) -> Result<Value, String> {
    let spec = probe_spec(shape, opts);
    let cpu = model::probe::training_losses::<model::CpuTrain>(&spec, TRAINING_STEPS, &Default::default())?;
    let (other, label) = if is_cpu(opts) {
        model::fast::set_fast_cpu(false);
        let losses = model::probe::training_losses::<model::CpuTrain>(&spec, TRAINING_STEPS, &Default::default());
        model::fast::set_fast_cpu(true);
        (losses?, "cpu_straightforward")
    } else {
        (training_losses_cuda(&spec, opts)?, "device")
    };
    let max_d = cpu.iter().zip(&other).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    Ok(json!({
        "grid": shape,
        "batch": opts.batch,
        "steps": TRAINING_STEPS,
        "dropout": 0.0,
        "device": opts.device,
        "loss_cpu": cpu,
        format!("loss_{label}"): other,
        "max_abs_dloss": max_d,
        "tolerance": TRAINING_TOLERANCE,
        "pass": max_d < TRAINING_TOLERANCE,
    }))
}

#[cfg(feature = "cuda")]
fn training_losses_cuda(spec: &model::probe::ProbeSpec, opts: &Options) -> Result<Vec<f64>, String> {
    let device = model::device::cuda_device(gpu_index(&opts.device)).map_err(|e| e.to_string())?;
    model::probe::training_losses::<model::GpuTrain>(spec, TRAINING_STEPS, &device)
}

#[cfg(not(feature = "cuda"))]
fn training_losses_cuda(_: &model::probe::ProbeSpec, _: &Options) -> Result<Vec<f64>, String> {
    Err(model::ModelError::CudaNotCompiled.to_string())
}
