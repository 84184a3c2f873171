//! The table of bad inputs (RELIABILITY.md), configs and commands. Config files go through the
//! library's loader (`ProjectConfig::load`, what every `--config` reads); commands run the real
//! binary and must exit with status 1 (an error, not 101, a panic), print the expected
//! `error: …` message and no "panicked". Each input is a valid file with one thing broken. The
//! messages are printed as `ROW | …` lines (`--nocapture`), which is how the table was filled.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use adni_data::volume::{Affine, OutputType, Volume, write_volume};
use common::{command_error, config_error};
use model::weights::export_safetensors;
use model::{Cpu, NetworkConfig};
use ndarray::Array3;
use xtask::config::ProjectConfig;

// ------------------------------------------------------------------ helpers

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ------------------------------------------------------------------ configs

#[test]
fn the_valid_config_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.toml");
    std::fs::write(&path, "[split]\nk = 3\n[model]\ndropout = 0.5\n").unwrap();
    let c = ProjectConfig::load(&path).unwrap();
    assert_eq!((c.split.k, c.model.dropout), (3, 0.5));
}

#[test]
fn config_wrong_type() {
    let dir = tempfile::tempdir().unwrap();
    let msg = config_error(dir.path(), "[split]\nk = \"five\"\n");
    assert_eq!(
        msg,
        "<tmp>/run.toml: in [split]: key `k`: invalid type: string \"five\", expected a non-negative integer"
    );
}

#[test]
fn config_negative_count() {
    let dir = tempfile::tempdir().unwrap();
    let msg = config_error(dir.path(), "[split]\nholdout_ad = -3\n");
    assert_eq!(
        msg,
        "<tmp>/run.toml: in [split]: key `holdout_ad`: invalid value: integer `-3`, expected a non-negative \
         integer"
    );
}

#[test]
fn config_typo_in_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let msg = config_error(dir.path(), "[split]\nseeed = 3\n");
    assert_eq!(
        msg,
        "<tmp>/run.toml: in [split]: unknown field `seeed`, expected one of `k`, `seed`, `holdout_ad`, \
         `holdout_cn`; did you mean `seed`?"
    );
}

#[test]
fn config_unknown_section() {
    let dir = tempfile::tempdir().unwrap();
    let msg = config_error(dir.path(), "[dataa]\ntable = \"x.csv\"\n");
    assert_eq!(
        msg,
        "<tmp>/run.toml: unknown section or key `dataa`; valid sections are run, fetch, data, synth, split, \
         preprocess, train, model, relevance, reproduce, sanity, slurm; did you mean `data`?"
    );
}

#[test]
fn config_key_where_a_section_belongs() {
    let dir = tempfile::tempdir().unwrap();
    let msg = config_error(dir.path(), "split = 5\n");
    assert_eq!(msg, "<tmp>/run.toml: `split` must be a section ([split]), found an integer");
}

#[test]
fn config_toml_syntax_error() {
    let dir = tempfile::tempdir().unwrap();
    let msg = config_error(dir.path(), "[split\nk = 5\n");
    assert!(msg.starts_with("<tmp>/run.toml: TOML parse error at line 1, column 7\n"), "{msg}");
    assert!(msg.contains("unclosed table, expected `]`"), "{msg}");
}

#[test]
fn config_dropout_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let msg = config_error(dir.path(), "[model]\ndropout = 1.5\n");
    assert_eq!(msg, "<tmp>/run.toml: in [model]: invalid network config: `dropout` is 1.5; expected 0 ≤ p < 1");
}

#[test]
fn config_zero_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let msg = config_error(dir.path(), "[train]\nepochs = 0\n");
    assert_eq!(msg, "<tmp>/run.toml: invalid value for `[train] epochs`: found 0, expected at least 1");
}

#[test]
fn config_sanity_fraction_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let msg = config_error(dir.path(), "[sanity]\nfractions = [0.1, 1.5]\n");
    assert_eq!(msg, "<tmp>/run.toml: [sanity] fractions: found 1.5, expected shares in (0, 1]");
}

#[test]
fn config_unknown_relevance_method() {
    let dir = tempfile::tempdir().unwrap();
    let msg = config_error(dir.path(), "[relevance]\nmethods = [\"sensitivity\", \"gradcam\"]\n");
    assert_eq!(
        msg,
        "<tmp>/run.toml: in [relevance]: key `methods`: unknown variant `gradcam`, expected one of \
         `sensitivity`, `guided-backprop`, `occlusion`, `area-occlusion`, `grad-cam`, `guided-grad-cam`, \
         `integrated-gradients`, `smoothgrad`, `lrp`; did you mean `grad-cam`?"
    );
}

#[test]
fn config_unknown_diagnosis() {
    let dir = tempfile::tempdir().unwrap();
    let msg = config_error(dir.path(), "[data]\ndiagnoses = [\"CN\", \"AD\"]\n");
    assert_eq!(
        msg,
        "<tmp>/run.toml: in [data]: key `diagnoses`: unknown variant `AD`, expected one of `CN`, `MCI`, \
         `Dementia`"
    );
}

#[test]
fn config_synth_out_dir_not_a_string() {
    let dir = tempfile::tempdir().unwrap();
    let msg = config_error(dir.path(), "[synth]\nout_dir = 3\n");
    assert_eq!(msg, "<tmp>/run.toml: in [synth]: `out_dir` must be a string, found an integer");
}

// ------------------------------------------------------------------ commands: fixtures

const HEADER_15T: &str = "RID,PTID,VISCODE,DX,EXAMDATE,Image.ID,Scan.Date,Sequence,Visit,Month_bl,Screen.Diagnosis,Study.ID,Series.ID,label_three_fold,label_CN_AD,label_CN_MCI,label_MCI_AD";

fn table(rows: &[&str]) -> String {
    let mut t = format!("{HEADER_15T}\n");
    for r in rows {
        t.push_str(r);
        t.push('\n');
    }
    t
}

const ROW_AD: &str = "3,011_S_0003,bl,Dementia,2005-09-12,32237,9/1/05,MPR; N3,Screening,0,AD,2120,1432,2,1,N/A,1";
const ROW_CN: &str = "5,011_S_0005,bl,CN,2005-09-07,32240,9/7/05,MPR; N3,Screening,0,NL,2130,1440,0,0,0,N/A";

fn small_config() -> NetworkConfig {
    NetworkConfig { channels: [2, 3, 4, 5], pools: [2, 2, 2, 2], kernel: 3, dense: [6, 4], dropout: 0.0, classes: 2 }
}

const GRID: [usize; 3] = [46, 50, 47];

/// A safetensors export of the small network on `GRID`.
fn weights(dir: &Path) -> PathBuf {
    let model = small_config().init::<Cpu>(GRID, &Default::default()).unwrap();
    let p = dir.join("model.safetensors");
    export_safetensors(&model, &p).unwrap();
    p
}

/// A zero scan of `shape`, 2 mm.
fn scan(dir: &Path, name: &str, shape: [usize; 3]) -> PathBuf {
    let p = dir.join(name);
    let vol = Volume { data: Array3::zeros(shape), affine: Affine::from_scale_offset([2.0; 3], [0.0; 3]) };
    write_volume(&p, &vol, OutputType::Uint8).unwrap();
    p
}

/// A 4-D NIfTI-1 series (2×3×2 voxels, 2 time points) made from a 3-D file by editing `dim`.
fn series(dir: &Path) -> PathBuf {
    let three_d = scan(dir, "frame.nii", [2, 3, 4]);
    let mut b = std::fs::read(&three_d).unwrap();
    for (i, d) in [4i16, 2, 3, 2, 2].iter().enumerate() {
        b[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    let p = dir.join("series.nii");
    std::fs::write(&p, b).unwrap();
    p
}

/// Copies safetensors file `from` to `to` without tensor `key` (offsets rebuilt).
fn without_tensor(from: &Path, key: &str, to: &Path) -> PathBuf {
    let bytes = std::fs::read(from).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let (mut out_header, mut data) = (serde_json::Map::new(), Vec::new());
    for (k, mut v) in header {
        if k == key {
            continue;
        }
        if k != "__metadata__" {
            let o = v["data_offsets"].as_array().unwrap();
            let (a, b) = (o[0].as_u64().unwrap() as usize, o[1].as_u64().unwrap() as usize);
            let start = data.len();
            data.extend_from_slice(&bytes[8 + len + a..8 + len + b]);
            v["data_offsets"] = serde_json::json!([start, data.len()]);
        }
        out_header.insert(k, v);
    }
    let json = serde_json::to_vec(&out_header).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&data);
    std::fs::write(to, out).unwrap();
    to.to_path_buf()
}

// ------------------------------------------------------------------ commands

#[test]
fn inspect_truncated_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let full = scan(dir.path(), "full.nii.gz", [20, 20, 20]);
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.nii.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let msg = command_error(dir.path(), &["inspect", s(&cut)]);
    assert_eq!(
        msg,
        "error: <tmp>/cut.nii.gz: not a readable NIfTI-1 or NIfTI-2 file: cannot decompress: incomplete \
         deflate stream (the .gz file is truncated, damaged or not gzip-compressed)"
    );
}

#[test]
fn inspect_reads_a_4d_series_that_the_loaders_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let p = series(dir.path());
    let o = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["inspect", s(&p), "--json"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["header"]["dims"], serde_json::json!([2, 3, 2, 2]));
    let w = weights(dir.path());
    let out = dir.path().join("map.nii.gz");
    let msg = command_error(
        dir.path(),
        &["interpret", "--weights", s(&w), "--scan", s(&p), "--method", "sensitivity", "--out", s(&out)],
    );
    assert_eq!(
        msg,
        "error: <tmp>/series.nii: expected a 3-D volume, found dimensions [2, 3, 2, 2] (the model and \
         preprocessing take one 3-D image per file; split a 4-D series into 3-D files first)"
    );
}

#[test]
fn interpret_scan_grid_does_not_fit_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path());
    let p = scan(dir.path(), "scan.nii.gz", [40, 48, 40]);
    let out = dir.path().join("map.nii.gz");
    let msg = command_error(
        dir.path(),
        &[
            "interpret",
            "--weights",
            s(&w),
            "--scan",
            s(&p),
            "--method",
            "sensitivity",
            "--normalization",
            "none",
            "--out",
            s(&out),
        ],
    );
    assert_eq!(
        msg,
        "error: <tmp>/scan.nii.gz: the scan's grid 40×48×40 does not match the model's grid 46×50×47 (nor \
         downsamples to it by 2, 3 or 4)"
    );
}

/// The error of `interpret` in single-scan mode: the small network's weights, a zero scan on its
/// grid, `--normalization none`, `method` and `--out out`.
fn single_scan_error(dir: &Path, method: &str, out: &Path) -> String {
    let w = weights(dir);
    let p = scan(dir, "scan.nii.gz", GRID);
    let args = ["--weights", s(&w), "--scan", s(&p), "--method", method, "--normalization", "none"];
    command_error(dir, &[&["interpret"][..], &args, &["--out", s(out)]].concat())
}

#[test]
fn interpret_to_a_file_name_that_is_not_nifti() {
    let dir = tempfile::tempdir().unwrap();
    let msg = single_scan_error(dir.path(), "sensitivity", &dir.path().join("map.txt"));
    assert_eq!(
        msg,
        "error: --out: <tmp>/map.txt: not a NIfTI output file name: expected a name ending in .nii or .nii.gz"
    );
    let mut left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, ["model.safetensors", "scan.nii.gz"]);
}

#[test]
fn interpret_area_occlusion_of_one_scan_without_an_atlas() {
    let dir = tempfile::tempdir().unwrap();
    let msg = single_scan_error(dir.path(), "area-occlusion", &dir.path().join("map.nii.gz"));
    assert_eq!(
        msg,
        "error: area-occlusion of one scan needs --atlas FILE.nii.gz (a label volume; [relevance] atlas applies to \
         runs)"
    );
}

#[test]
fn interpret_weights_with_a_missing_key() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path());
    let broken = without_tensor(&w, "dense_3.bias", &dir.path().join("broken.safetensors"));
    let p = scan(dir.path(), "scan.nii.gz", GRID);
    let map = dir.path().join("map.nii.gz");
    let msg = command_error(
        dir.path(),
        &["interpret", "--weights", s(&broken), "--scan", s(&p), "--method", "sensitivity", "--out", s(&map)],
    );
    assert_eq!(msg, "error: weights file <tmp>/broken.safetensors: missing key `dense_3.bias` (expected shape [2])");
}

#[test]
fn interpret_weights_file_without_normalization() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path());
    let p = scan(dir.path(), "scan.nii.gz", GRID);
    let map = dir.path().join("map.nii.gz");
    let msg = command_error(
        dir.path(),
        &["interpret", "--weights", s(&w), "--scan", s(&p), "--method", "sensitivity", "--out", s(&map)],
    );
    assert_eq!(
        msg,
        "error: --normalization is needed with a weights file: a run's normalization folder \
         (results/<run>/folds/<split>/normalization) or `none` for a scan that is already z-scored"
    );
}

#[test]
fn interpret_config_with_an_unknown_output() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path());
    let p = scan(dir.path(), "scan.nii.gz", GRID);
    let map = dir.path().join("map.nii.gz");
    std::fs::write(dir.path().join("run.toml"), "[relevance]\noutput = \"prob\"\n").unwrap();
    let msg = command_error(
        dir.path(),
        &[
            "interpret",
            "--weights",
            s(&w),
            "--scan",
            s(&p),
            "--method",
            "sensitivity",
            "--out",
            s(&map),
            "--config",
            "run.toml",
        ],
    );
    assert_eq!(
        msg,
        "error: run.toml: in [relevance]: key `output`: unknown variant `prob`, expected `probability` or `logit`; \
         did you mean `probability`?"
    );
}

#[test]
fn cohort_table_with_a_bad_date() {
    let dir = tempfile::tempdir().unwrap();
    let bad = ROW_CN.replace("9/7/05", "2005-09-07");
    std::fs::write(dir.path().join("adni.csv"), table(&[ROW_AD, &bad])).unwrap();
    let msg = command_error(
        dir.path(),
        &["cohort", "--table", "adni.csv", "--images", ".", "--no-file-check", "--out", "out"],
    );
    assert_eq!(
        msg,
        "error: <tmp>/adni.csv: row 3, column `Scan.Date`: expected a date M/D/YY without zero padding (e.g. \
         9/12/06), got `2005-09-07`"
    );
}

#[test]
fn cohort_table_with_a_duplicate_image_id() {
    let dir = tempfile::tempdir().unwrap();
    let dup = ROW_CN.replace("32240", "32237");
    std::fs::write(dir.path().join("adni.csv"), table(&[ROW_AD, &dup])).unwrap();
    let msg = command_error(
        dir.path(),
        &["cohort", "--table", "adni.csv", "--images", ".", "--no-file-check", "--out", "out"],
    );
    assert_eq!(msg, "error: <tmp>/adni.csv: rows 2 and 3 have the same Image.ID `32237`, expected each Image.ID once");
}

#[test]
fn split_config_with_a_wrong_type() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.toml"), "[split]\nk = \"5\"\n").unwrap();
    let msg = command_error(dir.path(), &["split", "--config", "run.toml"]);
    assert_eq!(
        msg,
        "error: run.toml: in [split]: key `k`: invalid type: string \"5\", expected a non-negative \
         integer"
    );
}

#[test]
fn split_on_a_header_only_table() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("adni.csv"), table(&[])).unwrap();
    let cfg = format!(
        "[run]\nresults_dir = \"{d}/results\"\n[data]\ntable = \"{d}/adni.csv\"\nimages = \"{d}\"\ncheck_files = false\n",
        d = dir.path().display()
    );
    std::fs::write(dir.path().join("run.toml"), cfg).unwrap();
    let msg = command_error(dir.path(), &["split", "--config", "run.toml"]);
    assert_eq!(
        msg,
        "error: the cohort is empty: no row of <tmp>/adni.csv passes the filters (known-corrupt scans, missing \
         files, diagnoses [\"CN\", \"Dementia\"]); `cargo xtask cohort` shows what each filter removed"
    );
}

#[test]
fn train_with_a_missing_config() {
    let dir = tempfile::tempdir().unwrap();
    let msg = command_error(dir.path(), &["train", "--config", "absent.toml"]);
    assert!(msg.starts_with("error: config file absent.toml not found (also looked in "), "{msg}");
}

#[test]
fn train_on_an_empty_cohort() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("adni.csv"), table(&[ROW_AD.replace("Dementia", "MCI").as_str()])).unwrap();
    let cfg = format!(
        "[run]\nresults_dir = \"{d}/results\"\n[data]\ntable = \"{d}/adni.csv\"\nimages = \"{d}\"\ncheck_files = false\n",
        d = dir.path().display()
    );
    std::fs::write(dir.path().join("run.toml"), cfg).unwrap();
    let msg = command_error(dir.path(), &["train", "--config", "run.toml"]);
    assert_eq!(
        msg,
        "error: the cohort is empty: no row of <tmp>/adni.csv passes the filters (known-corrupt scans, missing \
         files, diagnoses [\"CN\", \"Dementia\"]); `cargo xtask cohort` shows what each filter removed"
    );
}

#[test]
fn train_with_a_missing_table() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        format!("[run]\nresults_dir = \"{d}/results\"\n[data]\ntable = \"{d}/nope.csv\"\n", d = dir.path().display());
    std::fs::write(dir.path().join("run.toml"), cfg).unwrap();
    let msg = command_error(dir.path(), &["train", "--config", "run.toml"]);
    assert_eq!(
        msg,
        "error: metadata table <tmp>/nope.csv not found; generate the default cohort with `cargo xtask \
         prepare` (or `cargo xtask synth --config …`), or set [data] table to your ADNI CSV"
    );
}

#[test]
fn report_on_a_folder_that_is_not_a_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    let msg = command_error(dir.path(), &["report", "--run", s(&dir.path().join("empty"))]);
    assert_eq!(
        msg,
        "error: <tmp>/empty is not a results folder (no readable resolved_config.toml): cannot read config \
         <tmp>/empty/resolved_config.toml: No such file or directory (os error 2)"
    );
}
