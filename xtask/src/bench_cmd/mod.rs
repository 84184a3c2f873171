//! `cargo xtask bench`: the paper's CNN on Burn against the same network in PyTorch.
//!
//! Runs the Burn benchmark (`crates/model/benches/paper_cnn.rs`, through `cargo bench`, or a
//! prebuilt binary given with `--bench-bin`) and, where `python3` can import torch, the PyTorch
//! reference (`scripts/bench_pytorch.py`) with the same grids, cases, batch sizes, warm-up,
//! repetitions and thread count; then prints both side by side with their ratio and writes
//! `results/bench/bench.json` (everything measured, the exact commands, the machine's load) and
//! `bench.md` (the table). Without torch it says so and compares with the reference numbers of
//! issue 3, labelled as not measured here. `--with-straightforward` also runs the Burn benchmark
//! with the fast CPU paths off (`model::fast`), for a before/after column; `--markdown FILE`
//! (e.g. `BENCHMARKS.md`) writes the report there too.
//!
//! `--ops` runs the per-operation probe of a training step instead (`model::probe`, issue 11):
//! every operation timed alone on `--device`, each killed after `--op-timeout` seconds, and on a
//! GPU compared with the CPU; it writes `ops.json` and `ops.md`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use adni_data::fsutil::write_bytes_atomically;

use crate::config::workspace_root;

mod tables;

use tables::{benchmarks_md, compare, markdown};

/// PyTorch CPU per-scan seconds on this kind of machine, from issue 3 (not measured here):
/// (grid, case, seconds).
const ISSUE_REFERENCE: [(&str, &str, f64); 5] = [
    ("2mm", "train", 0.173),
    ("2mm", "forward", 0.077),
    ("2mm", "input_grad", 0.20),
    ("1mm", "train", 1.92),
    ("1mm", "forward", 0.65),
];

/// Average number of cores used by other processes during a run from which the report warns
/// that the machine was busy.
const BUSY_CORES: f64 = 0.2;

/// Options of `cargo xtask bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Grids, comma-separated: 2mm (97×115×97), 1mm (193×229×193). The 1 mm cases take about
    /// ten times as long as the 2 mm ones
    #[arg(long, default_value = "2mm", value_delimiter = ',')]
    grids: Vec<String>,
    /// Cases, comma-separated: train, forward, input_grad
    #[arg(long, default_value = "train,forward,input_grad", value_delimiter = ',')]
    cases: Vec<String>,
    /// Timed repetitions per case (the median and the minimum are reported)
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Untimed warm-up repetitions before them
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Thread counts to run at, comma-separated (default: this machine's cores)
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// Batch size of the train and forward cases (input_grad uses one scan)
    #[arg(long, default_value_t = 5)]
    batch: usize,
    /// Device of the Burn benchmark: cpu, cuda or cuda:N (GPU number N; needs `--features cuda`)
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    device: String,
    /// The per-operation probe of a training step (each operation alone, under a time limit)
    /// instead of the whole cases; grids may also be DxHxW (e.g. 80x81x80 for a smoke run)
    #[arg(long)]
    ops: bool,
    /// (--ops) Seconds each operation may take before its process is killed
    #[arg(long, default_value_t = 20.0)]
    op_timeout: f64,
    /// (--ops) Only these operations, comma-separated (default: all)
    #[arg(long, value_delimiter = ',')]
    only_ops: Vec<String>,
    /// (--ops on a GPU) Grids on which the CPU reference runs too, comma-separated (default:
    /// all; at 1 mm the CPU takes minutes)
    #[arg(long, value_delimiter = ',')]
    reference_grids: Vec<String>,
    /// Skip the PyTorch reference even if torch is installed
    #[arg(long)]
    no_pytorch: bool,
    /// Python interpreter for the PyTorch reference
    #[arg(long, default_value = "python3")]
    python: String,
    /// A prebuilt `paper_cnn` bench binary to run instead of `cargo bench` (e.g. on a machine
    /// without a Rust toolchain)
    #[arg(long)]
    bench_bin: Option<PathBuf>,
    /// Output folder
    #[arg(long, default_value = "results/bench")]
    out: PathBuf,
    /// Also run the Burn benchmark with the fast CPU paths off (Burn's own operations) and show
    /// it beside the fast one
    #[arg(long)]
    with_straightforward: bool,
    /// Also write the Markdown report to this file (relative to the project root), e.g.
    /// BENCHMARKS.md
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Measure nothing: write bench.md (and --markdown) again from a saved bench.json, with the
    /// current table layout; its measurements, date and commit stay those of the saved run
    #[arg(long, value_name = "BENCH_JSON")]
    from_json: Option<PathBuf>,
}

/// `cargo xtask bench`.
pub fn bench(args: &BenchArgs) -> Result<()> {
    let root = workspace_root();
    let out = if args.out.is_absolute() { args.out.clone() } else { root.join(&args.out) };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let threads = if args.threads.is_empty() {
        vec![std::thread::available_parallelism().map_or(1, |n| n.get())]
    } else {
        args.threads.clone()
    };
    if args.reps == 0 || args.batch == 0 || threads.contains(&0) {
        bail!("--reps, --batch and --threads must be at least 1");
    }
    if let Some(saved) = &args.from_json {
        return rerender(args, &root, &out, saved);
    }
    if args.with_straightforward && args.device != "cpu" {
        eprintln!("bench: --with-straightforward applies to the CPU only; ignored on {}", args.device);
    }
    let common = [
        "--grids".to_string(),
        args.grids.join(","),
        "--cases".into(),
        args.cases.join(","),
        "--reps".into(),
        args.reps.to_string(),
        "--warmup".into(),
        args.warmup.to_string(),
        "--batch".into(),
        args.batch.to_string(),
    ];
    if args.ops {
        return probe(args, &root, &out, threads[0]);
    }
    let torch = if args.no_pytorch { Err("skipped (--no-pytorch)".to_string()) } else { torch_version(&args.python) };
    if let Err(why) = &torch {
        eprintln!(
            "bench: PyTorch NOT measured: {why}; no ratios (issue 3's reference numbers are shown, not measured here)"
        );
    }
    let mut runs = Vec::new();
    for &t in &threads {
        let burn_json = out.join(format!(".burn-{t}.json"));
        let mut burn_args = common.to_vec();
        burn_args.extend(["--threads".into(), t.to_string(), "--device".into(), args.device.clone()]);
        burn_args.extend(["--json".into(), burn_json.display().to_string()]);
        let mut cmd = burn_bench_command(args);
        cmd.args(&burn_args).current_dir(&root);
        eprintln!("bench: $ {}", show(&cmd));
        let status = cmd.status().with_context(|| format!("cannot run {}", show(&cmd)))?;
        if !status.success() {
            bail!("the Burn benchmark failed ({status}): {}", show(&cmd));
        }
        let mut burn = read_json(&burn_json)?;
        let _ = std::fs::remove_file(&burn_json);
        // The command as run (`--bench-bin`, `--features cuda`), not the one the binary assumes.
        burn["command"] = json!(show(&cmd));

        let straightforward = if args.with_straightforward && args.device == "cpu" {
            let mut plain = Command::new(cmd.get_program());
            plain.args(cmd.get_args()).arg("--straightforward").current_dir(&root);
            eprintln!("bench: $ {}", show(&plain));
            let status = plain.status().with_context(|| format!("cannot run {}", show(&plain)))?;
            if !status.success() {
                bail!("the Burn benchmark (straightforward) failed ({status}): {}", show(&plain));
            }
            let mut v = read_json(&burn_json)?;
            let _ = std::fs::remove_file(&burn_json);
            v["command"] = json!(show(&plain));
            Some(v)
        } else {
            None
        };

        let pytorch = match &torch {
            Ok(_) => {
                let mut cmd = Command::new(&args.python);
                cmd.arg("scripts/bench_pytorch.py").args(&common).args(["--threads", &t.to_string()]);
                if args.device != "cpu" {
                    cmd.args(["--device", &args.device]);
                }
                cmd.current_dir(&root).stderr(Stdio::inherit());
                eprintln!("bench: $ {}", show(&cmd));
                let output = cmd.output().with_context(|| format!("cannot run {}", show(&cmd)))?;
                if !output.status.success() {
                    bail!("the PyTorch reference failed ({}): {}", output.status, show(&cmd));
                }
                let mut v: Value = serde_json::from_slice(&output.stdout)
                    .with_context(|| format!("unreadable output of {}", show(&cmd)))?;
                v["command"] = json!(show(&cmd));
                Some(v)
            }
            Err(_) => None,
        };
        runs.push(json!({ "threads": t, "burn": burn, "pytorch": pytorch, "burn_straightforward": straightforward }));
    }

    let rows = compare(&runs);
    let report = json!({
        "created_utc": utc_now(),
        "git": git_describe(&root),
        "command": format!("cargo xtask bench {}", std::env::args().skip(2).collect::<Vec<_>>().join(" ")),
        "device": args.device,
        "pytorch_measured": torch.is_ok(),
        "pytorch_note": match &torch {
            Ok(v) => format!("torch {v} measured on this machine"),
            Err(why) => format!("PyTorch not measured ({why}); `pytorch_*` values are the reference numbers of issue 3, not measured here"),
        },
        "rows": rows,
        "runs": runs,
    });
    let md = markdown(&report);
    println!("\n{md}");
    if let Some(file) = &args.markdown {
        let path = if file.is_absolute() { file.clone() } else { root.join(file) };
        // The sections other benchmarks wrote below the marker stay.
        let previous = std::fs::read_to_string(&path).ok();
        write_bytes_atomically(&path, benchmarks_md(&md, previous.as_deref()).as_bytes())?;
        eprintln!("bench: wrote {}", path.display());
    }
    write_bytes_atomically(&out.join("bench.json"), (serde_json::to_string_pretty(&report)? + "\n").as_bytes())?;
    write_bytes_atomically(&out.join("bench.md"), md.as_bytes())?;
    eprintln!("bench: wrote {} and bench.md", out.join("bench.json").display());
    Ok(())
}

/// `--from-json`: the tables of a saved `bench.json` again (rows recomputed from its runs).
fn rerender(args: &BenchArgs, root: &Path, out: &Path, saved: &Path) -> Result<()> {
    let path = if saved.is_absolute() { saved.to_path_buf() } else { root.join(saved) };
    let mut report = read_json(&path)?;
    let runs = report["runs"].as_array().cloned().with_context(|| {
        format!("{}: not a bench.json of `cargo xtask bench` (expected a `runs` array)", path.display())
    })?;
    report["rows"] = json!(compare(&runs));
    report["rendered_again"] = json!(format!("{} at {}", utc_now(), git_describe(root)));
    let md = markdown(&report);
    println!("\n{md}");
    if let Some(file) = &args.markdown {
        let target = if file.is_absolute() { file.clone() } else { root.join(file) };
        let previous = std::fs::read_to_string(&target).ok();
        write_bytes_atomically(&target, benchmarks_md(&md, previous.as_deref()).as_bytes())?;
        eprintln!("bench: wrote {}", target.display());
    }
    write_bytes_atomically(&out.join("bench.md"), md.as_bytes())?;
    if path != out.join("bench.json") {
        write_bytes_atomically(&out.join("bench.json"), (serde_json::to_string_pretty(&report)? + "\n").as_bytes())?;
    }
    eprintln!("bench: wrote {} from {}", out.join("bench.md").display(), path.display());
    Ok(())
}

/// `cpu`, `cuda` or `cuda:N`, as [`model::DeviceKind`] reads it, kept as typed.
fn parse_device(s: &str) -> Result<String, String> {
    Ok(s.parse::<model::DeviceKind>()?.to_string())
}

/// The Burn benchmark binary: `--bench-bin`, or `cargo bench` (with CUDA for a GPU device).
fn burn_bench_command(args: &BenchArgs) -> Command {
    match &args.bench_bin {
        Some(bin) => Command::new(bin),
        None => {
            let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            c.args(["bench", "-p", "model", "--bench", "paper_cnn"]);
            if args.device != "cpu" {
                c.args(["--features", "cuda"]);
            }
            c.arg("--");
            c
        }
    }
}

/// `cargo xtask bench --ops`: the per-operation probe; writes `ops.json` and `ops.md`.
fn probe(args: &BenchArgs, root: &Path, out: &Path, threads: usize) -> Result<()> {
    if !(args.op_timeout > 0.0 && args.op_timeout.is_finite()) {
        bail!("--op-timeout must be a positive number of seconds, not {}", args.op_timeout);
    }
    let json_path = out.join(".ops.json");
    let mut cmd = burn_bench_command(args);
    cmd.args(["--ops", "--grids", &args.grids.join(","), "--device", &args.device])
        .args(["--batch", &args.batch.to_string(), "--reps", &args.reps.to_string()])
        .args(["--threads", &threads.to_string(), "--op-timeout", &args.op_timeout.to_string()])
        .args(["--json", &json_path.display().to_string()])
        .current_dir(root);
    if !args.only_ops.is_empty() {
        cmd.args(["--only-ops", &args.only_ops.join(",")]);
    }
    if !args.reference_grids.is_empty() {
        cmd.args(["--reference-grids", &args.reference_grids.join(",")]);
    }
    eprintln!("bench: $ {}", show(&cmd));
    let output = cmd.stdout(Stdio::null()).status().with_context(|| format!("cannot run {}", show(&cmd)))?;
    if !output.success() {
        bail!("the probe failed ({output}): {}", show(&cmd));
    }
    let mut report = read_json(&json_path)?;
    let _ = std::fs::remove_file(&json_path);
    let rows: Vec<model::probe::ProbeRow> = serde_json::from_value(report["rows"].clone())
        .with_context(|| format!("unreadable probe rows in {}", json_path.display()))?;
    report["created_utc"] = json!(utc_now());
    report["git"] = json!(git_describe(root));
    let md = format!(
        "# Per-operation probe of a training step ({}, batch {}, median of the {} timed call(s) after the first)\n\n\
         Created {} at {} by `{}`.\n\n{}",
        args.device,
        args.batch,
        args.reps,
        report["created_utc"].as_str().unwrap_or("?"),
        report["git"].as_str().unwrap_or("?"),
        show(&cmd),
        model::probe::markdown(&args.device, &rows)
    );
    println!("\n{md}");
    write_bytes_atomically(&out.join("ops.json"), (serde_json::to_string_pretty(&report)? + "\n").as_bytes())?;
    write_bytes_atomically(&out.join("ops.md"), md.as_bytes())?;
    eprintln!("bench: wrote {} and ops.md", out.join("ops.json").display());
    Ok(())
}

/// torch's version if `python` can import it, else why not.
fn torch_version(python: &str) -> Result<String, String> {
    let out = Command::new(python)
        .args(["-c", "import torch; print(torch.__version__)"])
        .output()
        .map_err(|e| format!("cannot run `{python}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("import failed").trim().to_string();
        Err(format!("`{python} -c 'import torch'` failed: {last} (install with `pip install torch`)"))
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// A command as it would be typed.
fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let a = a.to_string_lossy();
            if a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./,=:".contains(c)) {
                a.into_owned()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn git_describe(root: &Path) -> String {
    let out = Command::new("git").args(["describe", "--always", "--dirty"]).current_dir(root).output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "unknown commit".into(),
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    utc_from_unix(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64)
}

/// Seconds since 1970-01-01 UTC as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_from_unix(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map_or_else(|| format!("{secs} s after 1970"), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_read_as_the_model_reads_them() {
        assert_eq!(parse_device("cpu").unwrap(), "cpu");
        assert_eq!(parse_device("CUDA").unwrap(), "cuda");
        assert_eq!(parse_device("cuda:2").unwrap(), "cuda:2");
        assert!(parse_device("cuda:two").unwrap_err().contains("not a GPU number"));
        assert!(parse_device("tpu").unwrap_err().contains("unknown device"));
    }

    #[test]
    fn utc_dates_match_python_datetime() {
        // Values from Python's datetime; leap days and century years are the risky part.
        assert_eq!(utc_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_from_unix(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(utc_from_unix(1_709_211_661), "2024-02-29T13:01:01Z");
        assert_eq!(utc_from_unix(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
