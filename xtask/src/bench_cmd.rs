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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use adni_data::fsutil::write_bytes_atomically;

use crate::config::workspace_root;

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
    /// Device of the Burn benchmark: cpu or cuda (cuda needs `--features cuda`)
    #[arg(long, default_value = "cpu")]
    device: String,
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
    let torch = if args.no_pytorch { Err("skipped (--no-pytorch)".to_string()) } else { torch_version(&args.python) };
    if let Err(why) = &torch {
        eprintln!("bench: PyTorch NOT measured: {why}; ratios use issue 3's reference numbers (not measured here)");
    }
    let mut runs = Vec::new();
    for &t in &threads {
        let burn_json = out.join(format!(".burn-{t}.json"));
        let mut burn_args = common.to_vec();
        burn_args.extend(["--threads".into(), t.to_string(), "--device".into(), args.device.clone()]);
        burn_args.extend(["--json".into(), burn_json.display().to_string()]);
        let mut cmd = match &args.bench_bin {
            Some(bin) => Command::new(bin),
            None => {
                let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
                c.args(["bench", "-p", "model", "--bench", "paper_cnn"]);
                if args.device == "cuda" {
                    c.args(["--features", "cuda"]);
                }
                c.arg("--");
                c
            }
        };
        cmd.args(&burn_args).current_dir(&root);
        eprintln!("bench: $ {}", show(&cmd));
        let status = cmd.status().with_context(|| format!("cannot run {}", show(&cmd)))?;
        if !status.success() {
            bail!("the Burn benchmark failed ({status}): {}", show(&cmd));
        }
        let burn = read_json(&burn_json)?;
        let _ = std::fs::remove_file(&burn_json);

        let straightforward = if args.with_straightforward && args.device == "cpu" {
            let mut plain = Command::new(cmd.get_program());
            plain.args(cmd.get_args()).arg("--straightforward").current_dir(&root);
            eprintln!("bench: $ {}", show(&plain));
            let status = plain.status().with_context(|| format!("cannot run {}", show(&plain)))?;
            if !status.success() {
                bail!("the Burn benchmark (straightforward) failed ({status}): {}", show(&plain));
            }
            let v = read_json(&burn_json)?;
            let _ = std::fs::remove_file(&burn_json);
            Some(v)
        } else {
            None
        };

        let pytorch = match &torch {
            Ok(_) => {
                let mut cmd = Command::new(&args.python);
                cmd.arg("scripts/bench_pytorch.py").args(&common).args(["--threads", &t.to_string()]);
                if args.device == "cuda" {
                    cmd.args(["--device", "cuda"]);
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
        write_bytes_atomically(&path, benchmarks_md(&md).as_bytes())?;
        eprintln!("bench: wrote {}", path.display());
    }
    write_bytes_atomically(&out.join("bench.json"), (serde_json::to_string_pretty(&report)? + "\n").as_bytes())?;
    write_bytes_atomically(&out.join("bench.md"), md.as_bytes())?;
    eprintln!("bench: wrote {} and bench.md", out.join("bench.json").display());
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

/// One row per (threads, grid, case): Burn against PyTorch (measured, or issue 3's reference).
fn compare(runs: &[Value]) -> Vec<Value> {
    let mut rows = Vec::new();
    for run in runs {
        let torch_results = run["pytorch"]["results"].as_array();
        for r in run["burn"]["results"].as_array().into_iter().flatten() {
            let (grid, case) = (r["grid"].as_str().unwrap_or(""), r["case"].as_str().unwrap_or(""));
            let measured = torch_results
                .and_then(|rs| rs.iter().find(|t| t["grid"] == r["grid"] && t["case"] == r["case"]))
                .cloned();
            let (torch_median, torch_min, torch_peak, source) = match &measured {
                Some(t) => {
                    (t["per_scan_median_s"].clone(), t["per_scan_min_s"].clone(), t["peak_rss_mb"].clone(), "measured")
                }
                None => {
                    let reference = ISSUE_REFERENCE.iter().find(|(g, c, _)| *g == grid && *c == case);
                    (json!(reference.map(|r| r.2)), Value::Null, Value::Null, "issue 3 reference, not measured here")
                }
            };
            let plain = run["burn_straightforward"]["results"]
                .as_array()
                .and_then(|rs| rs.iter().find(|p| p["grid"] == r["grid"] && p["case"] == r["case"]))
                .cloned()
                .unwrap_or(Value::Null);
            let speedup = match (plain["per_scan_median_s"].as_f64(), r["per_scan_median_s"].as_f64()) {
                (Some(a), Some(b)) if b > 0.0 => json!(a / b),
                _ => Value::Null,
            };
            let ratio = match (r["per_scan_median_s"].as_f64(), torch_median.as_f64()) {
                (Some(a), Some(b)) if b > 0.0 => json!(a / b),
                _ => Value::Null,
            };
            rows.push(json!({
                "threads": run["threads"],
                "grid": grid,
                "case": case,
                "batch": r["batch"],
                "burn_per_scan_median_s": r["per_scan_median_s"],
                "burn_per_scan_min_s": r["per_scan_min_s"],
                "burn_peak_rss_mb": r["peak_rss_mb"],
                "pytorch_per_scan_median_s": torch_median,
                "pytorch_per_scan_min_s": torch_min,
                "pytorch_peak_rss_mb": torch_peak,
                "pytorch_source": source,
                "ratio_median": ratio,
                "burn_straightforward_per_scan_median_s": plain["per_scan_median_s"],
                "burn_straightforward_peak_rss_mb": plain["peak_rss_mb"],
                "fast_speedup": speedup,
            }));
        }
    }
    rows
}

fn markdown(report: &Value) -> String {
    let num = |v: &Value, digits: usize| v.as_f64().map_or("–".to_string(), |x| format!("{x:.digits$}"));
    let mut s = String::from("# Benchmark: the paper's CNN, Burn 0.21 vs PyTorch\n\n");
    s += &format!("- {}\n", report["pytorch_note"].as_str().unwrap_or(""));
    s += &format!(
        "- created {} at {}\n",
        report["created_utc"].as_str().unwrap_or("?"),
        report["git"].as_str().unwrap_or("?")
    );
    s += "- per scan: train and forward time / batch (5); input_grad is one scan. Median (min) of the timed \
          repetitions after an untimed warm-up, each case in a fresh process; peak = the process's peak resident \
          memory (VmHWM). train = Adam step in training mode (batch statistics, dropout 0.8); forward = inference \
          (running statistics, no autograd); input_grad = ∂softmax/∂input in inference mode, no weight gradients.\n";
    s += "- ratio = Burn median / PyTorch median (> 1: Burn is slower)\n";
    if let Some(load) = busiest_load(report) {
        s += &format!(
            "- **the machine was not idle**: other processes kept {load:.2} cores busy on average during a run, so \
             these times are inflated and noisy (PyTorch's OpenMP threads suffer most); rerun on an idle machine \
             before comparing\n"
        );
    }
    let with_plain = report["rows"].as_array().into_iter().flatten().any(|r| !r["fast_speedup"].is_null());
    if with_plain {
        s += "- Burn straightforward = the same benchmark with the fast CPU paths off (`--straightforward`: Burn's \
              own conv3d, pooling and BatchNorm; same allocator); speed-up = straightforward / fast\n";
    }
    s += "\n";
    s += "| threads | grid | case | batch | Burn s/scan | PyTorch s/scan | ratio | Burn peak MB | PyTorch peak MB |";
    s += if with_plain { " Burn straightforward s/scan | speed-up | straightforward peak MB |\n" } else { "\n" };
    s += "|---:|---|---|---:|---:|---:|---:|---:|---:|";
    s += if with_plain { "---:|---:|---:|\n" } else { "\n" };
    for r in report["rows"].as_array().into_iter().flatten() {
        let measured = r["pytorch_source"] == json!("measured");
        s += &format!(
            "| {} | {} | {} | {} | {} ({}) | {}{} | {} | {} | {} |",
            r["threads"],
            r["grid"].as_str().unwrap_or(""),
            r["case"].as_str().unwrap_or(""),
            r["batch"],
            num(&r["burn_per_scan_median_s"], 3),
            num(&r["burn_per_scan_min_s"], 3),
            num(&r["pytorch_per_scan_median_s"], 3),
            if measured { format!(" ({})", num(&r["pytorch_per_scan_min_s"], 3)) } else { " (issue ref.)".into() },
            r["ratio_median"].as_f64().map_or("–".into(), |x| format!("{x:.2}×")),
            num(&r["burn_peak_rss_mb"], 0),
            num(&r["pytorch_peak_rss_mb"], 0),
        );
        if with_plain {
            s += &format!(
                " {} | {} | {} |",
                num(&r["burn_straightforward_per_scan_median_s"], 3),
                r["fast_speedup"].as_f64().map_or("–".into(), |x| format!("{x:.2}×")),
                num(&r["burn_straightforward_peak_rss_mb"], 0),
            );
        }
        s += "\n";
    }
    s += "\nCommands:\n\n```\n";
    s += &format!("{}\n", report["command"].as_str().unwrap_or(""));
    for run in report["runs"].as_array().into_iter().flatten() {
        s += &format!("{}\n", run["burn"]["command"].as_str().unwrap_or(""));
        if let Some(c) = run["burn_straightforward"]["command"].as_str() {
            s += &format!("{c}\n");
        }
        if let Some(c) = run["pytorch"]["command"].as_str() {
            s += &format!("{c}\n");
        }
    }
    s += "```\n\nMachine:\n\n";
    for run in report["runs"].as_array().into_iter().flatten() {
        let b = &run["burn"];
        s += &format!(
            "- threads {}: {}; during the Burn ({}) run other processes used {} cores on average (load average {} → {})",
            run["threads"],
            b["cpu"].as_str().unwrap_or("?"),
            b["backend"].as_str().unwrap_or("?"),
            num(&b["other_cpu_cores"], 2),
            b["loadavg_before"],
            b["loadavg_after"]
        );
        if b["env"].as_object().is_some_and(|e| !e.is_empty()) {
            s += &format!("; environment {}", b["env"]);
        }
        let p = &run["pytorch"];
        if let Some(v) = p["torch_version"].as_str() {
            s += &format!(
                "; during the PyTorch {v} run {} cores (load average {} → {})",
                num(&p["other_cpu_cores"], 2),
                p["loadavg_before"],
                p["loadavg_after"]
            );
        }
        s += "\n";
    }
    s
}

/// `BENCHMARKS.md`: how to regenerate it and what the fast CPU paths are, then the report.
fn benchmarks_md(report: &str) -> String {
    let body = report.strip_prefix("# Benchmark: the paper's CNN, Burn 0.21 vs PyTorch\n\n").unwrap_or(report);
    format!(
        "# Benchmarks: the paper's CNN, Burn 0.21 (CPU) vs PyTorch\n\n\
         Regenerate with `cargo xtask bench … --markdown BENCHMARKS.md` (the exact command is under Commands \
         below; for example `cargo xtask bench --grids 2mm,1mm --threads 2 --reps 3 --with-straightforward \
         --markdown BENCHMARKS.md`, about 15 minutes on 2 cores), on an idle machine.\n\n\
         Burn runs with the project's fast CPU paths (`crates/model/src/fast`: convolution, pooling and \
         BatchNorm kernels with their backward passes, and mimalloc as the binaries' allocator), on by default; \
         `MODEL_FAST_CPU=0` or `model::fast::set_fast_cpu(false)` switches back to Burn's own operations \
         (\"straightforward\"). Both give the same values and gradients up to float rounding \
         (`crates/model/tests/fast.rs`, `fast_training.rs`).\n\n{body}"
    )
}

/// The most cores that other processes kept busy, on average, during one of the runs, if that
/// is enough to distort the timings (at least [`BUSY_CORES`]).
fn busiest_load(report: &Value) -> Option<f64> {
    let mut max = f64::NAN;
    for run in report["runs"].as_array().into_iter().flatten() {
        for who in ["burn", "pytorch"] {
            if let Some(l) = run[who]["other_cpu_cores"].as_f64() {
                max = max.max(l);
            }
        }
    }
    (max >= BUSY_CORES).then_some(max)
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
    fn missing_pytorch_falls_back_to_the_issue_reference() {
        let runs = vec![json!({
            "threads": 2,
            "burn": {"results": [{"grid": "2mm", "case": "train", "batch": 5, "per_scan_median_s": 0.346, "per_scan_min_s": 0.3, "peak_rss_mb": 900.0}]},
            "pytorch": null,
        })];
        let rows = compare(&runs);
        assert_eq!(rows[0]["pytorch_source"], json!("issue 3 reference, not measured here"));
        assert!((rows[0]["ratio_median"].as_f64().unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn measured_pytorch_is_matched_by_grid_and_case() {
        let runs = vec![json!({
            "threads": 1,
            "burn": {"results": [{"grid": "1mm", "case": "forward", "batch": 5, "per_scan_median_s": 3.0, "per_scan_min_s": 2.0, "peak_rss_mb": 1.0}]},
            "pytorch": {"results": [
                {"grid": "2mm", "case": "forward", "per_scan_median_s": 100.0},
                {"grid": "1mm", "case": "forward", "per_scan_median_s": 1.5, "per_scan_min_s": 1.0, "peak_rss_mb": 2.0},
            ]},
        })];
        let rows = compare(&runs);
        assert_eq!(rows[0]["pytorch_source"], json!("measured"));
        assert!((rows[0]["ratio_median"].as_f64().unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_busy_machine_is_flagged() {
        let busy = json!({"runs": [{"burn": {"other_cpu_cores": 0.05}, "pytorch": {"other_cpu_cores": 0.9}}]});
        assert_eq!(busiest_load(&busy), Some(0.9));
        let quiet = json!({"runs": [{"burn": {"other_cpu_cores": 0.05}, "pytorch": null}]});
        assert_eq!(busiest_load(&quiet), None);
    }

    #[test]
    fn the_report_labels_reference_numbers_as_not_measured() {
        let runs = vec![json!({
            "threads": 2,
            "burn": {"results": [{"grid": "2mm", "case": "forward", "batch": 5, "per_scan_median_s": 0.154, "per_scan_min_s": 0.15, "peak_rss_mb": 400.0}]},
            "pytorch": null,
        })];
        let report = json!({"rows": compare(&runs), "runs": runs, "pytorch_note": "PyTorch not measured"});
        let md = markdown(&report);
        assert!(md.contains("| 2 | 2mm | forward | 5 | 0.154 (0.150) | 0.077 (issue ref.) | 2.00× |"), "{md}");
    }

    #[test]
    fn the_straightforward_run_becomes_a_speedup_column() {
        let runs = vec![json!({
            "threads": 2,
            "burn": {"results": [{"grid": "2mm", "case": "train", "batch": 5, "per_scan_median_s": 0.2, "per_scan_min_s": 0.19, "peak_rss_mb": 700.0}]},
            "burn_straightforward": {"results": [{"grid": "2mm", "case": "train", "batch": 5, "per_scan_median_s": 0.8, "per_scan_min_s": 0.7, "peak_rss_mb": 1100.0}]},
            "pytorch": {"results": [{"grid": "2mm", "case": "train", "per_scan_median_s": 0.25, "per_scan_min_s": 0.24, "peak_rss_mb": 1375.0}]},
        })];
        let rows = compare(&runs);
        assert!((rows[0]["fast_speedup"].as_f64().unwrap() - 4.0).abs() < 1e-9);
        let report = json!({"rows": rows, "runs": runs, "pytorch_note": "measured"});
        let md = markdown(&report);
        assert!(
            md.contains(
                "| 2 | 2mm | train | 5 | 0.200 (0.190) | 0.250 (0.240) | 0.80× | 700 | 1375 | 0.800 | 4.00× | 1100 |"
            ),
            "{md}"
        );
        assert!(benchmarks_md(&md).starts_with("# Benchmarks: the paper's CNN"));
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
