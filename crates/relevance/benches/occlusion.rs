//! Benchmark of sliding-cube and area occlusion on the paper's network: incremental against
//! naive batched evaluation, per scan.
//!
//! ```text
//! cargo bench -p relevance --bench occlusion -- [2mm] [1mm] [--methods sliding,area]
//!     [--naive auto|full|sample|skip] [--sample N] [--full-limit SECONDS] [--budget MB]
//!     [--seed N] [--area-reps N] [--area-regions N]
//! ```
//!
//! (`OCCLUSION_BENCH_GRIDS=2mm,1mm` chooses grids too; default 2mm.)
//!
//! Cases: the 2 mm grid (97×115×97) with cubes of size 6 every 6 voxels, and the 1 mm grid
//! (193×229×193) with size 12 every 12 voxels: both are the paper's figure (stride 12 mm,
//! 17×20×17 = 5780 cubes). The network is the paper's, with random weights (fixed seed). The
//! input is 0 outside a brain mask, so exact skipping matters as it does on real scans: the ICBM
//! 2009c template mask (and template T1, z-scored inside the mask) from
//! `data/external/icbm152_2009c/` when present, brought to the grid with
//! `adni_data::preprocess::{downsample_mask, downsample}`; otherwise an ellipsoid mask with a
//! smooth pattern inside. The table says which.
//!
//! Methods, both with exact skipping of cubes that lie entirely outside the mask:
//! - incremental: a full scan, timed from the unoccluded pass to the finished map;
//! - naive batched: a full scan with `--naive full`; with `--naive sample` a fixed sample of
//!   evaluated cubes spread over the scan (`--sample` passes, rounded up to whole batches), timed
//!   and extrapolated to the scan, labelled as extrapolated; `--naive auto` (default) runs the
//!   sample, then the full scan on the 2 mm grid when the extrapolation stays under
//!   `--full-limit` seconds (600). The naive drops of the sample are compared with the
//!   incremental ones (max |Δ|).
//!
//! Area occlusion: the CerebrA atlas (102 regions) from `data/external/cerebra/` placed on the
//! grid by world coordinates (the pipeline's default placement), or, when it is missing, the
//! synthetic cohort's phantom atlas (`adni_data::synth::Anatomy::phantom`) of the grid's shape;
//! the table says which. Incremental (auto mode) and naive batched area occlusion of the same
//! input, each a full scan, alternating, `--area-reps` times (default 3; median and minimum),
//! with the max |Δ| of the region differences. `--area-regions N` also times single regions
//! incrementally (the `N` largest and the `N` smallest bounding boxes, and regions of half and
//! all of the brain) against the naive cost per region, to show where, if anywhere, naive
//! evaluation would beat incremental.
//!
//! The CPU backend is Flex on rayon's global pool (all cores). Other processes compete for the
//! cores: the load average before and after is printed; time on an idle machine.

use std::path::{Path, PathBuf};
use std::time::Instant;

use adni_data::atlas::{Placement, load_cerebra};
use adni_data::preprocess::{downsample, downsample_mask};
use adni_data::volume::read_volume;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use model::{ClassificationModel3D, Cpu, NetworkConfig};
use ndarray::{ArrayD, IxDyn};
use relevance::occlusion::{
    AreaOcclusionConfig, AreaOcclusionMap, Occluder, OcclusionConfig, OcclusionMode, area_occlusion,
};

/// The allocator the project's binaries use (see `model::fast::FastAlloc`).
#[global_allocator]
static GLOBAL: model::fast::FastAlloc = model::fast::FastAlloc;

/// A benchmark case.
struct Case {
    name: &'static str,
    grid: [usize; 3],
    /// Downsampling factor from the 1 mm template.
    factor: usize,
    size: usize,
    stride: usize,
}

const CASES: [Case; 2] = [
    Case { name: "2mm", grid: [97, 115, 97], factor: 2, size: 6, stride: 6 },
    Case { name: "1mm", grid: [193, 229, 193], factor: 1, size: 12, stride: 12 },
];

const TEMPLATE_DIR: &str = "data/external/icbm152_2009c";
const MASK_FILE: &str = "mni_icbm152_t1_tal_nlin_sym_09c_mask.nii";
const T1_FILE: &str = "mni_icbm152_t1_tal_nlin_sym_09c.nii";
const CEREBRA_DIR: &str = "data/external/cerebra";
const CEREBRA_NII: &str = "mni_icbm152_CerebrA_tal_nlin_sym_09c.nii";
const CEREBRA_CSV: &str = "CerebrA_LabelDetails.csv";

#[derive(Debug, Clone, Copy, PartialEq)]
enum NaiveRun {
    Auto,
    Full,
    Sample,
    Skip,
}

struct Options {
    grids: Vec<String>,
    sliding: bool,
    area: bool,
    area_reps: usize,
    area_regions: usize,
    naive: NaiveRun,
    sample: usize,
    full_limit_s: f64,
    budget_mb: usize,
    seed: u64,
}

const USAGE: &str = "\
usage: cargo bench -p relevance --bench occlusion -- [2mm] [1mm] [options]
  --methods sliding,area         which occlusions to time (default both)
  --area-reps N                  area occlusion: full scans per mode, alternating (default 3)
  --area-regions N               area occlusion: also time N single regions of the largest and
                                 of the smallest bounding boxes in both modes (default 0)
  --naive auto|full|sample|skip  naive batched run (default auto: sample, then full at 2 mm if
                                 the extrapolation is under --full-limit)
  --sample N                     naive passes timed for the extrapolation (default 24, whole batches)
  --full-limit SECONDS           auto: longest extrapolated naive full scan to run (default 600)
  --budget MB                    memory budget of a batch (default 1024)
  --seed N                       weights seed (default 2018)
  env OCCLUSION_BENCH_GRIDS=2mm,1mm chooses grids as well";

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        grids: Vec::new(),
        sliding: true,
        area: true,
        area_reps: 3,
        area_regions: 0,
        naive: NaiveRun::Auto,
        sample: 24,
        full_limit_s: 600.0,
        budget_mb: relevance::occlusion::DEFAULT_MEMORY_BUDGET_MB,
        seed: 2018,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            // `cargo bench` passes `--bench` to every bench binary.
            "--bench" => {}
            "2mm" | "1mm" => o.grids.push(arg.clone()),
            "--naive" => {
                o.naive = match value("--naive")?.as_str() {
                    "auto" => NaiveRun::Auto,
                    "full" => NaiveRun::Full,
                    "sample" => NaiveRun::Sample,
                    "skip" => NaiveRun::Skip,
                    other => return Err(format!("--naive: `{other}` is not auto, full, sample or skip")),
                }
            }
            "--methods" => {
                let methods = value("--methods")?;
                o.sliding = false;
                o.area = false;
                for m in methods.split(',') {
                    match m {
                        "sliding" => o.sliding = true,
                        "area" => o.area = true,
                        other => return Err(format!("--methods: `{other}` is not sliding or area")),
                    }
                }
            }
            "--area-reps" => o.area_reps = value("--area-reps")?.parse().map_err(|_| "--area-reps: not a number")?,
            "--area-regions" => {
                o.area_regions = value("--area-regions")?.parse().map_err(|_| "--area-regions: not a number")?
            }
            "--sample" => o.sample = value("--sample")?.parse().map_err(|_| "--sample: not a number")?,
            "--full-limit" => {
                o.full_limit_s = value("--full-limit")?.parse().map_err(|_| "--full-limit: not a number")?
            }
            "--budget" => o.budget_mb = value("--budget")?.parse().map_err(|_| "--budget: not a number")?,
            "--seed" => o.seed = value("--seed")?.parse().map_err(|_| "--seed: not a number")?,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if o.grids.is_empty() {
        let env = std::env::var("OCCLUSION_BENCH_GRIDS").unwrap_or_else(|_| "2mm".into());
        o.grids = env.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
    }
    if let Some(bad) = o.grids.iter().find(|g| CASES.iter().all(|c| c.name != g.as_str())) {
        return Err(format!("unknown grid `{bad}`; valid: 2mm, 1mm"));
    }
    Ok(o)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn workspace_root() -> PathBuf {
    package_dir().join("../..")
}

/// The input on the case's grid, 0 outside the brain mask, and where it came from.
fn brain_input(case: &Case) -> (Vec<f32>, String) {
    let dir = workspace_root().join(TEMPLATE_DIR);
    match template_input(&dir, case) {
        Ok(found) => found,
        Err(why) => {
            let (input, _) = ellipsoid_input(case.grid);
            (input, format!("ellipsoid mask, smooth pattern ({why})"))
        }
    }
}

fn template_input(dir: &Path, case: &Case) -> Result<(Vec<f32>, String), String> {
    let (mask, _, _) = read_volume(&dir.join(MASK_FILE)).map_err(|e| format!("no template mask: {e}"))?;
    let mask = downsample_mask(&mask, case.factor);
    if mask.data.shape() != case.grid {
        return Err(format!("template mask is {:?} on this grid, expected {:?}", mask.data.shape(), case.grid));
    }
    let mask: Vec<bool> = mask.data.iter().map(|&m| m > 0.5).collect();
    let (values, source) = match read_volume(&dir.join(T1_FILE)) {
        Ok((t1, _, _)) => (downsample(&t1, case.factor).data.iter().copied().collect::<Vec<f32>>(), "template T1"),
        Err(_) => (smooth_pattern(case.grid), "smooth pattern"),
    };
    if values.len() != mask.len() {
        return Err("template T1 and mask grids differ".into());
    }
    let inside = mask.iter().filter(|&&m| m).count();
    Ok((z_score_inside(&values, &mask), format!("ICBM 2009c mask ({inside} voxels), {source} z-scored inside")))
}

fn smooth_pattern(grid: [usize; 3]) -> Vec<f32> {
    let mut out = Vec::with_capacity(grid.iter().product());
    for i in 0..grid[0] {
        for j in 0..grid[1] {
            for k in 0..grid[2] {
                let (x, y, z) = (i as f32, j as f32, k as f32);
                out.push((x / 7.0).sin() * (y / 9.0).cos() + 0.5 * (z / 5.0 + x / 11.0).sin());
            }
        }
    }
    out
}

fn ellipsoid_input(grid: [usize; 3]) -> (Vec<f32>, Vec<bool>) {
    let mut mask = Vec::with_capacity(grid.iter().product());
    for i in 0..grid[0] {
        for j in 0..grid[1] {
            for k in 0..grid[2] {
                let r: f64 = [i, j, k]
                    .iter()
                    .zip(grid)
                    .map(|(&p, s)| {
                        let half = s as f64 / 2.0;
                        ((p as f64 + 0.5 - half) / (0.8 * half)).powi(2)
                    })
                    .sum();
                mask.push(r <= 1.0);
            }
        }
    }
    (z_score_inside(&smooth_pattern(grid), &mask), mask)
}

fn z_score_inside(values: &[f32], mask: &[bool]) -> Vec<f32> {
    let inside: Vec<f64> = values.iter().zip(mask).filter(|(_, m)| **m).map(|(&v, _)| f64::from(v)).collect();
    let n = inside.len().max(1) as f64;
    let mean = inside.iter().sum::<f64>() / n;
    let std = (inside.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt().max(1e-12);
    values.iter().zip(mask).map(|(&v, &m)| if m { ((f64::from(v) - mean) / std) as f32 } else { 0.0 }).collect()
}

/// One row of the result table.
struct Row {
    grid: String,
    method: String,
    total: usize,
    evaluated: usize,
    skipped: usize,
    seconds: f64,
    note: String,
}

fn run_case(case: &Case, options: &Options, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let device = Default::default();
    let (input, source) = brain_input(case);
    notes.push(format!("{}: input = {source}", case.name));
    Cpu::seed(&device, options.seed);
    let model: ClassificationModel3D<Cpu> =
        NetworkConfig::default().init(case.grid, &device).expect("the paper network fits the grid");
    let [d, h, w] = case.grid;
    let x = || Tensor::<Cpu, 5>::from_data(TensorData::new(input.clone(), [1, 1, d, h, w]), &device);
    let config = |mode| OcclusionConfig {
        size: case.size,
        stride: case.stride,
        mode,
        memory_budget_mb: options.budget_mb,
        ..OcclusionConfig::default()
    };
    let label = format!("{} ({}×{}×{}), size {} stride {}", case.name, d, h, w, case.size, case.stride);

    // Incremental, full scan.
    let start = Instant::now();
    let occluder = Occluder::new(&model, x(), &config(OcclusionMode::Incremental)).expect("valid case");
    let setup = start.elapsed().as_secs_f64();
    let incremental = occluder.run(None).expect("incremental run");
    let seconds = start.elapsed().as_secs_f64();
    let stats = incremental.stats;
    eprintln!(
        "{}: incremental {seconds:.1} s (setup {setup:.1} s), {stats:?}, batch {}",
        case.name,
        occluder.batch_size()
    );
    rows.push(Row {
        grid: label.clone(),
        method: "incremental".into(),
        total: stats.total,
        evaluated: stats.evaluated,
        skipped: stats.skipped,
        seconds,
        note: format!(
            "full scan (unoccluded pass {setup:.1} s); {} batches of ≤ {} cubes; {} changes vanished in floor-mode trailing voxels",
            stats.batches,
            occluder.batch_size(),
            stats.unchanged
        ),
    });
    let incremental_seconds = seconds;

    if options.naive == NaiveRun::Skip {
        return;
    }
    let start = Instant::now();
    let naive = Occluder::new(&model, x(), &config(OcclusionMode::Naive)).expect("valid case");
    let setup = start.elapsed().as_secs_f64();
    let batch = naive.batch_size();
    let evaluated: Vec<usize> = (0..naive.grid().len()).filter(|&i| !naive.skipped()[i]).collect();
    let n = options.sample.max(1).div_ceil(batch) * batch;
    let n = n.min(evaluated.len());
    let sample: Vec<usize> = (0..n).map(|i| evaluated[i * evaluated.len() / n]).collect();
    let start = Instant::now();
    let drops = naive.cube_drops(&sample, None).expect("naive sample");
    let sample_seconds = start.elapsed().as_secs_f64();
    let per_pass = sample_seconds / n as f64;
    let extrapolated = setup + per_pass * evaluated.len() as f64;
    let max_diff =
        sample.iter().zip(&drops.drops).map(|(&i, &d)| (d - incremental.drops[i]).abs()).fold(0.0f32, f32::max);
    let nonzero = sample.iter().filter(|&&i| incremental.drops[i] > 0.0).count();
    let largest = incremental.drops.iter().fold(0.0f32, |m, &d| m.max(d));
    notes.push(format!(
        "{}: naive vs incremental drops on the {n} sampled cubes ({nonzero} with a drop > 0): max |Δ| = {max_diff:.2e} \
         (baseline p = {:.4}, largest drop of the scan {largest:.2e})",
        case.name, incremental.baseline
    ));
    eprintln!("{}: naive sample {n} passes in {sample_seconds:.1} s (batch {batch})", case.name);
    let full = match options.naive {
        NaiveRun::Full => true,
        NaiveRun::Auto => case.name == "2mm" && extrapolated <= options.full_limit_s,
        _ => false,
    };
    let naive_seconds = if full {
        let start = Instant::now();
        let full_run = naive.run(None).expect("naive run");
        let seconds = start.elapsed().as_secs_f64() + setup;
        let max_diff = full_run.drops.iter().zip(&incremental.drops).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        notes.push(format!("{}: naive vs incremental, full scan: max |Δ drop| = {max_diff:.2e}", case.name));
        rows.push(Row {
            grid: label.clone(),
            method: "naive batched".into(),
            total: full_run.stats.total,
            evaluated: full_run.stats.evaluated,
            skipped: full_run.stats.skipped,
            seconds,
            note: format!(
                "full scan, measured; batches of {batch}; without skipping {} passes ≈ {:.0} s at this rate",
                full_run.stats.total,
                seconds * full_run.stats.total as f64 / full_run.stats.evaluated.max(1) as f64
            ),
        });
        seconds
    } else {
        rows.push(Row {
            grid: label.clone(),
            method: "naive batched".into(),
            total: naive.grid().len(),
            evaluated: evaluated.len(),
            skipped: naive.grid().len() - evaluated.len(),
            seconds: extrapolated,
            note: format!(
                "**extrapolated** from {n} timed passes ({sample_seconds:.1} s, batches of {batch}); without skipping {} passes ≈ {:.0} s",
                naive.grid().len(),
                setup + per_pass * naive.grid().len() as f64
            ),
        });
        extrapolated
    };
    notes.push(format!(
        "{}: speed-up incremental vs naive batched (both skipping): {:.1}×",
        case.name,
        naive_seconds / incremental_seconds
    ));
}

/// The atlas on the case's grid (C order) and where it came from.
fn area_atlas(case: &Case) -> (Vec<i32>, String) {
    let dir = workspace_root().join(CEREBRA_DIR);
    let cerebra =
        load_cerebra(&dir.join(CEREBRA_NII), &dir.join(CEREBRA_CSV)).map_err(|e| e.to_string()).and_then(|atlas| {
            let placed = atlas.resample_to(&atlas.grid().downsampled(case.factor), Placement::World);
            placed.map_err(|e| e.to_string())
        });
    match cerebra {
        Ok(atlas) if atlas.labels.shape() == case.grid => {
            let labels: Vec<i32> = atlas.labels.as_standard_layout().iter().copied().collect();
            (labels, "CerebrA (data/external/cerebra), placed by world coordinates".into())
        }
        other => {
            let why = match other {
                Ok(atlas) => format!("CerebrA is {:?} on this grid", atlas.labels.shape()),
                Err(e) => e,
            };
            let phantom = adni_data::synth::Anatomy::phantom(case.grid).expect("the phantom fits the grid");
            let labels: Vec<i32> = phantom.atlas.labels.as_standard_layout().iter().copied().collect();
            (labels, format!("synthetic phantom atlas of the grid's shape (no CerebrA: {why})"))
        }
    }
}

/// One row of the area-occlusion table.
struct AreaRow {
    grid: String,
    method: String,
    regions: usize,
    batches: usize,
    median: f64,
    min: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn run_area_case(case: &Case, options: &Options, rows: &mut Vec<AreaRow>, notes: &mut Vec<String>) {
    let device = Default::default();
    let (input, source) = brain_input(case);
    let (labels, atlas_source) = area_atlas(case);
    Cpu::seed(&device, options.seed);
    let model: ClassificationModel3D<Cpu> =
        NetworkConfig::default().init(case.grid, &device).expect("the paper network fits the grid");
    let [d, h, w] = case.grid;
    let x = || Tensor::<Cpu, 5>::from_data(TensorData::new(input.clone(), [1, 1, d, h, w]), &device);
    let labels = ArrayD::from_shape_vec(IxDyn(&case.grid), labels).expect("the atlas lies on the grid");
    let run = |mode, labels: &ArrayD<i32>| -> (AreaOcclusionMap<Cpu, 5>, f64) {
        let config =
            AreaOcclusionConfig { mode, memory_budget_mb: options.budget_mb, ..AreaOcclusionConfig::default() };
        let start = Instant::now();
        let out = area_occlusion(&model, x(), labels.view(), &config, None).expect("area occlusion runs");
        (out, start.elapsed().as_secs_f64())
    };
    let modes = [OcclusionMode::Incremental, OcclusionMode::Naive];
    let mut times = [Vec::new(), Vec::new()];
    let mut last: [Option<AreaOcclusionMap<Cpu, 5>>; 2] = [None, None];
    for rep in 0..options.area_reps.max(1) {
        for (i, &mode) in modes.iter().enumerate() {
            let (out, seconds) = run(mode, &labels);
            eprintln!("{} area {mode:?} rep {rep}: {seconds:.2} s, {} batches", case.name, out.batches);
            times[i].push(seconds);
            last[i] = Some(out);
        }
    }
    let [Some(incremental), Some(naive)] = last else { unreachable!("at least one repetition") };
    let label = format!("{} ({}×{}×{})", case.name, d, h, w);
    for (i, out) in [&incremental, &naive].iter().enumerate() {
        rows.push(AreaRow {
            grid: label.clone(),
            method: if i == 0 { "incremental".into() } else { "naive batched".into() },
            regions: out.regions.len(),
            batches: out.batches,
            median: median(&times[i]),
            min: times[i].iter().copied().fold(f64::INFINITY, f64::min),
        });
    }
    let max_diff = incremental
        .regions
        .iter()
        .zip(&naive.regions)
        .map(|(a, b)| (a.difference - b.difference).abs())
        .fold(0.0f32, f32::max);
    let largest = naive.regions.iter().fold(0.0f32, |m, r| m.max(r.difference.abs()));
    notes.push(format!("{}: area input = {source}; atlas = {atlas_source}", case.name));
    notes.push(format!(
        "{}: area occlusion, naive vs incremental region differences: max |Δ| = {max_diff:.2e} (largest |difference| \
         {largest:.2e}, baseline p = {:.4}); speed-up (medians) {:.1}×",
        case.name,
        incremental.baseline,
        median(&times[1]) / median(&times[0])
    ));
    if options.area_regions > 0 {
        let naive_per_region = median(&times[1]) / naive.regions.len() as f64;
        single_regions(case, options, &labels, &run, naive_per_region, notes);
    }
}

/// One timed area occlusion of the bench's input with a label volume.
type AreaRun<'a> = dyn Fn(OcclusionMode, &ArrayD<i32>) -> (AreaOcclusionMap<Cpu, 5>, f64) + 'a;

/// Voxels of the bounding box of the non-zero voxels.
fn bounding_volume(labels: &ArrayD<i32>) -> usize {
    let mut lo = [usize::MAX; 3];
    let mut hi = [0usize; 3];
    for (i, &l) in labels.indexed_iter() {
        if l != 0 {
            lo = [0, 1, 2].map(|a| lo[a].min(i[a]));
            hi = [0, 1, 2].map(|a| hi[a].max(i[a] + 1));
        }
    }
    (0..3).map(|a| hi[a].saturating_sub(lo[a])).product()
}

/// Times single regions (the `--area-regions` largest and smallest bounding boxes, and two
/// regions as large as half and all of the brain) in both modes.
fn single_regions(
    case: &Case,
    options: &Options,
    labels: &ArrayD<i32>,
    run: &AreaRun<'_>,
    naive_per_region: f64,
    notes: &mut Vec<String>,
) {
    let [d, h, w] = case.grid;
    let mut bounds: std::collections::BTreeMap<i32, ([usize; 3], [usize; 3])> = Default::default();
    for (idx, &l) in labels.indexed_iter() {
        if l != 0 {
            let p = [idx[0], idx[1], idx[2]];
            let b = bounds.entry(l).or_insert((p, p));
            *b = ([0, 1, 2].map(|a| b.0[a].min(p[a])), [0, 1, 2].map(|a| b.1[a].max(p[a])));
        }
    }
    let mut by_size: Vec<(i32, usize)> =
        bounds.iter().map(|(&l, (lo, hi))| (l, (0..3).map(|a| hi[a] + 1 - lo[a]).product())).collect();
    by_size.sort_by_key(|&(l, v)| (std::cmp::Reverse(v), l));
    let n = options.area_regions.min(by_size.len());
    let mut chosen: Vec<(String, ArrayD<i32>, usize)> = Vec::new();
    for &(label, volume) in by_size[..n].iter().chain(&by_size[by_size.len() - n..]) {
        chosen.push((format!("label {label}"), labels.mapv(|l| if l == label { l } else { 0 }), volume));
    }
    // Worst cases for incremental evaluation: one region of every labelled voxel in the first
    // half of the first axis, and one of every labelled voxel (boxes of half and all the brain).
    let half = labels.indexed_iter().fold(ndarray::Array::zeros(IxDyn(&case.grid)), |mut a, (i, &l)| {
        a[&i] = i32::from(l != 0 && i[0] < d / 2);
        a
    });
    let whole = labels.mapv(|l| i32::from(l != 0));
    for (name, volume) in [("half the brain as one region", half), ("the whole brain as one region", whole)] {
        let extent = bounding_volume(&volume);
        chosen.push((name.to_string(), volume, extent));
    }
    // The fixed cost of a call (the unoccluded pass and the set-up): one single-voxel region.
    let (first, _) = labels.indexed_iter().find(|(_, l)| **l != 0).expect("a region");
    let dot = ArrayD::from_shape_fn(IxDyn(&case.grid), |i| i32::from(i == first));
    let best = |l: &ArrayD<i32>| (0..5).map(|_| run(OcclusionMode::Incremental, l).1).fold(f64::INFINITY, f64::min);
    let fixed = best(&dot);
    let mut lines = Vec::new();
    for (name, only, volume) in chosen {
        lines.push(format!(
            "{name} (bounding box {:.1} % of the grid): {:.3} s",
            100.0 * volume as f64 / (d * h * w) as f64,
            best(&only) - fixed
        ));
    }
    notes.push(format!(
        "{}: incremental cost of single regions (best of 5 calls, minus the {:.3} s of a call with a one-voxel \
         region: the unoccluded pass and the set-up), against {naive_per_region:.3} s per region of the naive \
         full scan: {}",
        case.name,
        fixed,
        lines.join("; ")
    ));
}

/// The sliding-occlusion table.
fn print_sliding(rows: &[Row], seed: u64) {
    println!("\n## Sliding occlusion, paper network (random weights, seed {}), per scan\n", seed);
    println!("| grid, cubes | method | passes total | evaluated | skipped | seconds | passes/s | note |");
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {} |",
            r.grid,
            r.method,
            r.total,
            r.evaluated,
            r.skipped,
            r.seconds,
            r.evaluated as f64 / r.seconds,
            r.note
        );
    }
}

fn main() {
    model::fast::keep_freed_memory();
    let options = match parse_args() {
        Ok(o) => o,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let threads = rayon::current_num_threads();
    let load_before = load_average();
    let mut rows = Vec::new();
    let mut area_rows = Vec::new();
    let mut notes = Vec::new();
    for case in CASES.iter().filter(|c| options.grids.iter().any(|g| g == c.name)) {
        if options.sliding {
            run_case(case, &options, &mut rows, &mut notes);
        }
        if options.area {
            run_area_case(case, &options, &mut area_rows, &mut notes);
        }
    }
    let load_after = load_average();
    if !area_rows.is_empty() {
        println!("\n## Area occlusion, paper network (random weights, seed {}), per scan\n", options.seed);
        println!("| grid | method | regions | batches | median s | min s |");
        println!("|---|---|---:|---:|---:|---:|");
        for r in &area_rows {
            println!("| {} | {} | {} | {} | {:.2} | {:.2} |", r.grid, r.method, r.regions, r.batches, r.median, r.min);
        }
    }
    if !rows.is_empty() {
        print_sliding(&rows, options.seed);
    }
    println!();
    for n in &notes {
        println!("- {n}");
    }
    println!(
        "- CPU backend Flex, {threads} rayon threads, convolutions by {} (`MODEL_FAST_CPU=0` switches), \
         mimalloc; load average (1, 5, 15 min) before: {load_before}, after: {load_after}",
        if model::fast::fast_cpu() { "`model::fast`" } else { "Burn's own conv3d" }
    );
}

/// This package's folder: cargo's run-time `CARGO_MANIFEST_DIR` (set by `cargo test` and `cargo
/// bench`), else the one compiled in. A target folder shared between two clones reuses a test
/// binary built in the other clone, whose compiled-in folder may be gone.
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
}
