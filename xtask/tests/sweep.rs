//! `cargo xtask sweep --effect-sizes 0,1` end to end on the quick phantom config in a temporary
//! folder: one reproduction per effect size, the null check at effect 0 scored against the
//! effect-1 masks, the table and the figure; a second call finds every stage complete.

mod common;

use common::{quick_config_in, text, xtask};

#[test]
fn sweep_quick_writes_one_row_per_effect_size_and_the_figure() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = quick_config_in(tmp.path());
    let out_dir = tmp.path().join("sweep");
    let args = [
        "sweep",
        "--config",
        cfg.to_str().expect("utf-8 path"),
        "--effect-sizes",
        "1,0",
        "--out",
        out_dir.to_str().expect("utf-8 path"),
    ];
    let out = xtask(&args);
    assert!(out.status.success(), "sweep failed:\n{}", text(&out));

    // One cohort per effect size, next to the config's, never the config's own folder.
    for e in ["0", "1"] {
        assert!(tmp.path().join(format!("synth-effect-{e}/ADNI_synth_1.5T.csv")).is_file(), "cohort of effect {e}");
        assert!(out_dir.join(format!("effect-{e}/REPORT.md")).is_file(), "reproduction of effect {e}");
    }
    assert!(!tmp.path().join("synth").exists(), "the base cohort folder was written");

    // The table: a header and the two effect sizes in increasing order, every column filled.
    let csv = std::fs::read_to_string(out_dir.join("sweep.csv")).expect("sweep.csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "sweep.csv:\n{csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    for col in ["effect_size", "cv_balanced_accuracy", "cv_balanced_accuracy_sd", "mass_occlusion_trained", "seconds"] {
        assert!(header.contains(&col), "sweep.csv lacks {col}: {}", lines[0]);
    }
    let field = |row: &str, col: &str| -> String {
        let i = header.iter().position(|h| *h == col).expect("column");
        row.split(',').nth(i).expect("field").to_string()
    };
    assert_eq!(field(lines[1], "effect_size").parse::<f64>().unwrap(), 0.0);
    assert_eq!(field(lines[2], "effect_size").parse::<f64>().unwrap(), 1.0);
    for row in &lines[1..] {
        let bacc: f64 = field(row, "cv_balanced_accuracy").parse().expect("a number");
        assert!((0.0..=1.0).contains(&bacc), "balanced accuracy {bacc}");
        let chance: f64 = field(row, "mass_occlusion_chance").parse().expect("a number");
        assert!(chance > 0.0 && chance < 1.0, "chance level {chance} at {row}");
        assert!(field(row, "seconds").parse::<f64>().unwrap() > 0.0);
    }
    // Effect 0 is scored against the effect-1 masks of the same scans, so it has a chance level
    // too, from its own null-check tables.
    assert!(field(lines[1], "ground_truth").contains("effect-1"), "{}", lines[1]);
    assert!(out_dir.join("effect-0/null_check/ground_truth_summary.csv").is_file());
    let md = std::fs::read_to_string(out_dir.join("sweep.md")).expect("sweep.md");
    assert!(md.contains("## Null check (effect size 0)") && md.contains("![sweep](sweep.png)"), "{md}");

    // The figure: a PNG of the requested size.
    let png = std::fs::read(out_dir.join("sweep.png")).expect("sweep.png");
    assert!(png.len() > 10_000, "sweep.png has {} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 1600, "width");

    // A second call recomputes nothing and writes the same table.
    let again = xtask(&args);
    assert!(again.status.success(), "second sweep failed:\n{}", text(&again));
    let t = text(&again);
    assert!(t.contains("already finished (skipped)") && t.contains("is complete"), "stages were redone:\n{t}");
    let csv2 = std::fs::read_to_string(out_dir.join("sweep.csv")).expect("sweep.csv");
    let no_seconds = |s: &str| s.lines().map(|l| l.rsplit_once(',').map_or(l, |x| x.0).to_string()).collect::<Vec<_>>();
    assert_eq!(no_seconds(&csv), no_seconds(&csv2), "the second call changed the table");
}
