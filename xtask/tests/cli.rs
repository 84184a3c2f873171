//! End-to-end checks of the `xtask` binary on a tiny phantom cohort in a temporary folder.

use std::path::Path;
use std::process::{Command, Output};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).output().expect("cannot start the xtask binary")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let d = dir.display();
    let cfg = format!(
        r#"
[run]
name = "t"
results_dir = "{d}/results"

[synth]
out_dir = "{d}/synth"
anatomy = "phantom"
phantom_shape = [40, 48, 40]
n_cn = 4
n_ad = 4
n_mci = 2
missing_fraction = 0.1

[data]
table = "{d}/synth/ADNI_synth_1.5T.csv"
images = "{d}/synth/images"
known_corrupt_file = "{d}/synth/known_corrupt.txt"

[preprocess]
mask = "{d}/synth/brain_mask.nii.gz"
downsample = 2
cache_dir = "{d}/cache"

[split]
k = 2
holdout_ad = 1
holdout_cn = 1
"#
    );
    let path = dir.join("test.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

#[test]
fn synth_cohort_split_inspect_on_a_phantom_cohort() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let cfg_s = cfg.to_str().unwrap();

    let o = xtask(&["synth", "--config", cfg_s]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(dir.path().join("synth/manifest.json").exists());
    assert!(dir.path().join("synth/resolved_config.toml").exists());

    // A second run with the same settings does nothing.
    let o = xtask(&["synth", "--config", cfg_s]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("already holds a complete cohort"), "{}", text(&o));

    let o = xtask(&["cohort", "--config", cfg_s, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("cohort --json prints JSON");
    let rows = report["table_rows"].as_u64().unwrap();
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "three filters in the original order");
    let removed: u64 = steps.iter().map(|s| s["removed"].as_u64().unwrap()).sum();
    assert_eq!(rows - removed, report["total_scans"].as_u64().unwrap());
    assert!(steps[0]["removed"].as_u64().unwrap() >= 1, "the generator plants a known-corrupt scan");
    assert!(steps[1]["removed"].as_u64().unwrap() >= 1, "the generator leaves some images missing");
    assert!(steps[2]["removed"].as_u64().unwrap() >= 1, "MCI rows are removed");
    let cohort_dir = dir.path().join("results/t/cohort");
    for f in ["cohort_report.csv", "cohort_scans.csv", "cohort_report.json", "resolved_config.toml"] {
        assert!(cohort_dir.join(f).metadata().map(|m| m.len() > 0).unwrap_or(false), "{f} missing or empty");
    }

    // Pointing straight at a table and folder, without a config, and without the file check.
    let table = dir.path().join("synth/ADNI_synth_1.5T.csv");
    let images = dir.path().join("synth/images");
    let out = dir.path().join("cli-cohort");
    let o = xtask(&[
        "cohort",
        "--table",
        table.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--no-file-check",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let r2: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = r2["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(!names.iter().any(|n| n.contains("missing")), "missing-file filter switched off: {names:?}");
    assert!(r2["total_scans"].as_u64().unwrap() > report["total_scans"].as_u64().unwrap());

    let o = xtask(&["split", "--config", cfg_s]);
    assert!(o.status.success(), "{}", text(&o));
    let split_dir = dir.path().join("results/t/splits");
    for f in ["fold1.csv", "fold2.csv", "holdout.csv"] {
        let s = adni_data::splits::read_split_csv(&split_dir.join(f)).unwrap();
        assert!(!s.rows.is_empty(), "{f} is empty");
    }
    let assignments = std::fs::read_to_string(split_dir.join("assignments.csv")).unwrap();
    let header = assignments.lines().next().unwrap();
    assert!(header.contains("fold1") && header.contains("fold2") && header.contains("holdout"), "{header}");

    // Preprocessing: the cache is filled, then hit; one normalisation per split.
    let o = xtask(&["preprocess", "--config", cfg_s]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 from the cache"), "{}", text(&o));
    let o = xtask(&["preprocess", "--config", cfg_s]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(" 0 computed"), "{}", text(&o));
    for split in ["fold1", "fold2", "holdout"] {
        let d = dir.path().join("results/t/normalization").join(split);
        let n = adni_data::preprocess::Normalizer::load(&d).unwrap();
        assert_eq!(n.mean.shape(), &[20, 24, 20], "2 mm grid of the 40×48×40 phantom");
    }

    // inspect on one generated image.
    let first_image = walk_first_nii(&images).expect("an image was written");
    let o = xtask(&["inspect", first_image.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["header"]["dims"], serde_json::json!([40, 48, 40]));
}

fn walk_first_nii(dir: &Path) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()? {
        let p = e.ok()?.path();
        if p.is_dir() {
            if let Some(f) = walk_first_nii(&p) {
                return Some(f);
            }
        } else if p.to_string_lossy().ends_with(".nii.gz") {
            return Some(p);
        }
    }
    None
}

#[test]
fn config_typo_is_refused_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[synth]\nanatomy = \"phantom\"\nn_add = 3\n").unwrap();
    let o = xtask(&["synth", "--config", path.to_str().unwrap()]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("n_add") && t.contains("did you mean `n_ad`"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn missing_table_explains_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, format!("[data]\ntable = \"{}/nope.csv\"\n", dir.path().display())).unwrap();
    let o = xtask(&["cohort", "--config", path.to_str().unwrap()]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("nope.csv") && t.contains("not found"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn inspect_of_a_non_nifti_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.nii");
    std::fs::write(&path, b"this is not a NIfTI file at all, just some text").unwrap();
    let o = xtask(&["inspect", path.to_str().unwrap()]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("x.nii"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}
