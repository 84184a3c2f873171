//! The benchmark report: Burn against PyTorch per (threads, grid, case), as JSON rows and as the
//! Markdown of `bench.md` / `BENCHMARKS.md`.

use serde_json::{Value, json};

use super::{BUSY_CORES, ISSUE_REFERENCE};

/// One row per (threads, grid, case): Burn against PyTorch (measured, or issue 3's reference).
pub(super) fn compare(runs: &[Value]) -> Vec<Value> {
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
            // A ratio only against PyTorch measured in the same run: issue 3's reference numbers
            // were taken at other threads and batch, on a CPU, and are shown for orientation only.
            let ratio = match (r["per_scan_median_s"].as_f64(), torch_median.as_f64()) {
                (Some(a), Some(b)) if b > 0.0 && measured.is_some() => json!(a / b),
                _ => Value::Null,
            };
            // Memory the case itself took: peak minus the resident memory once the network and
            // its input were ready (which holds the runtime: the torch import, the Burn binary).
            let growth = |peak: &Value, ready: &Value| match (peak.as_f64(), ready.as_f64()) {
                (Some(p), Some(r)) => json!((p - r).max(0.0)),
                _ => Value::Null,
            };
            let burn_growth = growth(&r["peak_rss_mb"], &r["ready_rss_mb"]);
            let torch_growth = measured.as_ref().map_or(Value::Null, |t| growth(&t["peak_rss_mb"], &t["ready_rss_mb"]));
            let floor = r["floor_s_per_scan"].clone();
            let of_peak = match (floor.as_f64(), r["per_scan_median_s"].as_f64()) {
                (Some(f), Some(m)) if m > 0.0 => json!(f / m),
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
                "burn_growth_mb": burn_growth,
                "pytorch_per_scan_median_s": torch_median,
                "pytorch_per_scan_min_s": torch_min,
                "pytorch_peak_rss_mb": torch_peak,
                "pytorch_growth_mb": torch_growth,
                "pytorch_source": source,
                "ratio_median": ratio,
                "burn_straightforward_per_scan_median_s": plain["per_scan_median_s"],
                "burn_straightforward_peak_rss_mb": plain["peak_rss_mb"],
                "fast_speedup": speedup,
                "gflop_per_scan": r["gflop_per_scan"],
                "peak_gflops": run["burn"]["peak_gflops"],
                "floor_s_per_scan": floor,
                "share_of_peak": of_peak,
            }));
        }
    }
    rows
}

pub(super) fn markdown(report: &Value) -> String {
    let num = |v: &Value, digits: usize| v.as_f64().map_or("–".to_string(), |x| format!("{x:.digits$}"));
    let memory = |peak: &Value, growth: &Value| match (peak.as_f64(), growth.as_f64()) {
        (Some(p), Some(g)) => format!("{p:.0} (+{g:.0})"),
        (Some(p), None) => format!("{p:.0}"),
        _ => "–".to_string(),
    };
    let mut s = String::from("# Benchmark: the paper's CNN, Burn 0.21 vs PyTorch\n\n");
    s += &format!("- {}\n", report["pytorch_note"].as_str().unwrap_or(""));
    s += &format!(
        "- created {} at {}\n",
        report["created_utc"].as_str().unwrap_or("?"),
        report["git"].as_str().unwrap_or("?")
    );
    if let Some(again) = report["rendered_again"].as_str() {
        s += &format!(
            "- tables written again from that run's bench.json on {again} (`--from-json`; nothing re-measured)\n"
        );
    }
    s += "- per scan: train and forward time / the batch column; input_grad is one scan. Median (min) of the \
          timed repetitions after an untimed warm-up, each case in a fresh process; peak MB = the process's peak \
          resident memory (VmHWM), and in brackets its growth: peak minus the resident memory once the network and \
          its input were ready (that memory holds the runtime, e.g. the torch import, so the growth is what the \
          case itself needed). train = Adam step in training mode (batch statistics, dropout 0.8); forward = inference \
          (running statistics, no autograd); input_grad = ∂softmax/∂input in inference mode, no weight gradients.\n";
    s += "- ratio = Burn median / PyTorch median (> 1: Burn is slower); only against PyTorch measured in the same \
          run (issue 3's reference numbers, marked \"issue ref.\", were taken at other settings and get no ratio)\n";
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
    let with_floor = report["rows"].as_array().into_iter().flatten().any(|r| !r["floor_s_per_scan"].is_null());
    if with_floor {
        let peaks: Vec<String> = report["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|run| {
                run["burn"]["peak_gflops"].as_f64().map(|p| format!("{p:.0} GFLOP/s on {} threads", run["threads"]))
            })
            .collect();
        s += &format!(
            "- floor = the convolutions' floating-point operations per scan (GFLOP/scan: 2 per multiply-add, counted \
             from the network's shapes by `NetworkConfig::conv_macs`; forward = every block's convolution, train = \
             forward + weight gradients + the input gradients of blocks 2–4, input_grad = forward + every input \
             gradient; the dense layers, BatchNorm and pooling are left out) / the machine's measured peak of `f32` \
             fused multiply-adds on the same threads ({}; `model::fast::peak`: independent multiply-add chains in \
             registers, no memory traffic). No implementation can run faster than the floor; of peak = floor / \
             Burn median\n",
            peaks.join(", ")
        );
    }
    s += "\n";
    s += "| threads | grid | case | batch | Burn s/scan | PyTorch s/scan | ratio | Burn peak MB (growth) | PyTorch peak MB (growth) |";
    s += if with_floor { " GFLOP/scan | floor s/scan | of peak |" } else { "" };
    s += if with_plain { " Burn straightforward s/scan | speed-up | straightforward peak MB |\n" } else { "\n" };
    s += "|---:|---|---|---:|---:|---:|---:|---:|---:|";
    s += if with_floor { "---:|---:|---:|" } else { "" };
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
            memory(&r["burn_peak_rss_mb"], &r["burn_growth_mb"]),
            memory(&r["pytorch_peak_rss_mb"], &r["pytorch_growth_mb"]),
        );
        if with_floor {
            s += &format!(
                " {} | {} | {} |",
                num(&r["gflop_per_scan"], 2),
                num(&r["floor_s_per_scan"], 4),
                r["share_of_peak"].as_f64().map_or("–".into(), |x| format!("{:.0} %", 100.0 * x)),
            );
        }
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

/// The line of `BENCHMARKS.md` after which the sections that other benchmarks measure (the
/// occlusion benchmark of `relevance`) begin; regenerating the file keeps them.
pub(super) const KEPT_SECTIONS_MARKER: &str =
    "<!-- The sections below are not written by `cargo xtask bench`; regenerating this file keeps them. -->";

/// `BENCHMARKS.md`: how to regenerate it and what the fast CPU paths are, then the report, then
/// the kept sections of the `previous` file (from [`KEPT_SECTIONS_MARKER`] on), if it has any.
pub(super) fn benchmarks_md(report: &str, previous: Option<&str>) -> String {
    let kept = previous.and_then(|p| p.find(KEPT_SECTIONS_MARKER).map(|at| &p[at..]));
    let mut out = benchmarks_md_generated(report);
    if let Some(kept) = kept {
        out = format!("{}\n\n{kept}", out.trim_end());
    }
    out
}

fn benchmarks_md_generated(report: &str) -> String {
    let body = report.strip_prefix("# Benchmark: the paper's CNN, Burn 0.21 vs PyTorch\n\n").unwrap_or(report);
    format!(
        "# Benchmarks: the paper's CNN, Burn 0.21 (CPU) vs PyTorch\n\n\
         Regenerate with `cargo xtask bench … --markdown BENCHMARKS.md` (the exact command is under Commands \
         below; for example `cargo xtask bench --grids 2mm,1mm --threads 2 --reps 3 --with-straightforward \
         --markdown BENCHMARKS.md`, about 8 minutes on 2 cores), on an idle machine.\n\n\
         Burn runs with the project's fast CPU paths (`crates/model/src/fast`: convolution, pooling and \
         BatchNorm kernels with their backward passes, and mimalloc as the binaries' allocator), on by default; \
         `MODEL_FAST_CPU=0` or `model::fast::set_fast_cpu(false)` switches back to Burn's own operations \
         (\"straightforward\"). Both give the same values and gradients up to float rounding \
         (`crates/model/tests/fast.rs`, `fast_training.rs`).\n\n{body}"
    )
}

/// The most cores that other processes kept busy, on average, during one of the runs, if that
/// is enough to distort the timings (at least [`BUSY_CORES`]).
pub(super) fn busiest_load(report: &Value) -> Option<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regenerating_benchmarks_md_keeps_the_sections_after_the_marker() {
        let kept = format!("{KEPT_SECTIONS_MARKER}\n\n## Occlusion\n\n| a | b |\n");
        let previous = format!("# Benchmarks\n\nold numbers\n\n{kept}");
        let out = benchmarks_md("new numbers\n", Some(&previous));
        assert!(out.contains("new numbers") && !out.contains("old numbers"), "{out}");
        assert!(out.ends_with(&kept), "{out}");
        assert_eq!(out.matches(KEPT_SECTIONS_MARKER).count(), 1);
        // Without the marker (or without a previous file) nothing is kept.
        assert_eq!(
            benchmarks_md("new numbers\n", Some("# Benchmarks\n\nold numbers\n")),
            benchmarks_md("new numbers\n", None)
        );
        assert!(!benchmarks_md("new numbers\n", None).contains(KEPT_SECTIONS_MARKER));
    }

    #[test]
    fn missing_pytorch_falls_back_to_the_issue_reference() {
        let runs = vec![json!({
            "threads": 2,
            "burn": {"results": [{"grid": "2mm", "case": "train", "batch": 5, "per_scan_median_s": 0.346, "per_scan_min_s": 0.3, "peak_rss_mb": 900.0}]},
            "pytorch": null,
        })];
        let rows = compare(&runs);
        assert_eq!(rows[0]["pytorch_source"], json!("issue 3 reference, not measured here"));
        assert_eq!(rows[0]["pytorch_per_scan_median_s"], json!(0.173));
        // Taken at other settings: shown, but no ratio.
        assert!(rows[0]["ratio_median"].is_null());
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
        assert!(md.contains("| 2 | 2mm | forward | 5 | 0.154 (0.150) | 0.077 (issue ref.) | – |"), "{md}");
    }

    #[test]
    fn the_floor_and_the_share_of_peak_become_columns() {
        let runs = vec![json!({
            "threads": 2,
            "burn": {"peak_gflops": 160.0, "results": [{"grid": "2mm", "case": "train", "batch": 5, "per_scan_median_s": 0.06, "per_scan_min_s": 0.05, "peak_rss_mb": 470.0, "ready_rss_mb": 30.0, "gflop_per_scan": 3.4, "floor_s_per_scan": 3.4 / 160.0}]},
            "pytorch": {"results": [{"grid": "2mm", "case": "train", "per_scan_median_s": 0.3, "per_scan_min_s": 0.29, "peak_rss_mb": 1375.0, "ready_rss_mb": 700.0}]},
        })];
        let rows = compare(&runs);
        assert!((rows[0]["share_of_peak"].as_f64().unwrap() - 3.4 / 160.0 / 0.06).abs() < 1e-12);
        let md = markdown(&json!({"rows": rows, "runs": runs, "pytorch_note": "measured"}));
        assert!(
            md.contains("| 0.060 (0.050) | 0.300 (0.290) | 0.20× | 470 (+440) | 1375 (+675) | 3.40 | 0.0212 | 35 % |"),
            "{md}"
        );
        assert!(md.contains("160 GFLOP/s on 2 threads"), "{md}");
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
        assert!(benchmarks_md(&md, None).starts_with("# Benchmarks: the paper's CNN"));
    }
}
