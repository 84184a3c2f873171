//! More rows of the table of bad inputs (RELIABILITY.md, rows 115–141): run names and run
//! folders, settings checked at load time instead of after training, locked run folders and
//! command-line relations. As in `bad_inputs.rs`, configs go through `ProjectConfig::load`,
//! commands run the real binary and must exit with status 1 (an error, not a panic), and the
//! messages are printed as `ROW | …` lines (`--nocapture`).

mod common;

use std::path::Path;

use common::{command_error, config_error, run_in as run, test_name};
use xtask::config::ProjectConfig;

// ------------------------------------------------------------------ helpers

/// `[run]` of a run named `name` with its results under `dir`.
fn run_section(dir: &Path, name: &str) -> String {
    format!("[run]\nname = \"{name}\"\nresults_dir = \"{}\"\n", dir.display())
}

const HEADER_15T: &str = "RID,PTID,VISCODE,DX,EXAMDATE,Image.ID,Scan.Date,Sequence,Visit,Month_bl,Screen.Diagnosis,Study.ID,Series.ID,label_three_fold,label_CN_AD,label_CN_MCI,label_MCI_AD";

/// A 1.5 T table of `ad` Dementia and `cn` CN patients, one screening scan each.
fn table(ad: usize, cn: usize) -> String {
    let mut t = format!("{HEADER_15T}\n");
    for i in 0..ad + cn {
        let (rid, id, study, series) = (i + 1, 32000 + i, 2000 + i, 1400 + i);
        let row = if i < ad {
            format!(
                "{rid},011_S_{rid:04},bl,Dementia,2005-09-12,{id},9/1/05,MPR; N3,Screening,0,AD,{study},{series},2,1,N/A,1"
            )
        } else {
            format!(
                "{rid},011_S_{rid:04},bl,CN,2005-09-07,{id},9/7/05,MPR; N3,Screening,0,NL,{study},{series},0,0,0,N/A"
            )
        };
        t.push_str(&row);
        t.push('\n');
    }
    t
}

/// Every file below `dir`, relative, sorted.
fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

// ------------------------------------------------------------------ [run] name and --force

#[test]
fn run_name_that_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let msg = config_error(dir.path(), "[run]\nname = \"\"\n");
    assert_eq!(
        msg,
        "<tmp>/run.toml: [run] name = \"\": the run needs a name; expected a folder name such as `my-run`, the \
         run's folder below [run] results_dir"
    );
}

#[test]
fn run_name_that_leaves_results_dir() {
    let dir = tempfile::tempdir().unwrap();
    let msg = config_error(dir.path(), "[run]\nname = \"../../tmp/x\"\n");
    assert!(
        msg.starts_with(
            "<tmp>/run.toml: [run] name = \"../../tmp/x\": the part \"..\" would place the run outside [run] \
             results_dir or on it"
        ),
        "{msg}"
    );
}

#[test]
fn reproduce_force_on_a_folder_that_is_not_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::create_dir_all(victim.join("photos")).unwrap();
    std::fs::write(victim.join("thesis.tex"), "years of work").unwrap();
    std::fs::write(dir.path().join("run.toml"), run_section(dir.path(), "victim")).unwrap();
    let msg = command_error(dir.path(), &["reproduce-paper", "--config", "run.toml", "--force"]);
    assert_eq!(
        msg,
        "error: --force: refusing to empty <tmp>/victim ([run] results_dir/name of this config): it holds photos, \
         thesis.tex but no resolved_config.toml of this run, so it is not a run folder; check [run] name and \
         results_dir, or delete the folder yourself if it is meant to go"
    );
    assert_eq!(std::fs::read_to_string(victim.join("thesis.tex")).unwrap(), "years of work");
    assert!(victim.join("photos").is_dir() && !victim.join(".lock").exists());
}

// ------------------------------------------------------------------ the recorded config of a run

/// A run folder `<dir>/r` recorded with learning rate 1e-4, and a config `run.toml` for the same
/// run with 1e-3. Returns the recorded file's text.
fn run_recorded_with_another_learning_rate(dir: &Path) -> String {
    let recorded = ProjectConfig::from_toml(
        &format!("{}[train]\nlearning_rate = 1e-4\n", run_section(dir, "r")),
        Path::new("recorded.toml"),
    )
    .unwrap();
    std::fs::create_dir_all(recorded.run.dir()).unwrap();
    let path = recorded.write_resolved(&recorded.run.dir()).unwrap();
    std::fs::write(dir.join("run.toml"), format!("{}[train]\nlearning_rate = 1e-3\n", run_section(dir, "r"))).unwrap();
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn reproduce_into_a_run_recorded_with_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let before = run_recorded_with_another_learning_rate(dir.path());
    let msg = command_error(dir.path(), &["reproduce-paper", "--config", "run.toml"]);
    assert_eq!(
        msg,
        "error: reproduce-paper: <tmp>/r/resolved_config.toml records other settings than this config; differing: \
         [train] learning_rate: recorded 0.0001, now 0.001; its results were computed with the recorded ones. Redo \
         the run with --force, or give this config another [run] name (now `r`)"
    );
    let after = std::fs::read_to_string(dir.path().join("r/resolved_config.toml")).unwrap();
    assert_eq!(after, before, "the recorded config is left as it was");
    assert!(!dir.path().join("r/data").exists(), "no stage ran");
}

#[test]
fn reproduce_report_only_of_a_run_recorded_with_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let before = run_recorded_with_another_learning_rate(dir.path());
    let msg = command_error(dir.path(), &["reproduce-paper", "--config", "run.toml", "--report-only"]);
    assert!(
        msg.starts_with(
            "error: reproduce-paper --report-only: <tmp>/r/resolved_config.toml records other settings than this \
             config; differing: [train] learning_rate: recorded 0.0001, now 0.001;"
        ),
        "{msg}"
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("r/resolved_config.toml")).unwrap(), before);
    assert!(!dir.path().join("r/REPORT.md").exists());
}

// ------------------------------------------------------------------ [relevance], checked at load

/// The message of a config whose `[relevance]` holds `text`.
fn relevance_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    config_error(dir.path(), text)
}

#[test]
fn relevance_occlusion_stride_zero() {
    assert_eq!(
        relevance_error("[relevance.occlusion]\nstride = 0\n"),
        "<tmp>/run.toml: [relevance.occlusion] stride: must be ≥ 1, got 0"
    );
}

#[test]
fn relevance_occlusion_size_zero() {
    assert_eq!(
        relevance_error("[relevance.occlusion]\nsize = 0\n"),
        "<tmp>/run.toml: [relevance.occlusion] size: must be ≥ 2 (the cube side is 2·⌊size/2⌋ voxels), got 0"
    );
}

#[test]
fn relevance_integrated_gradients_steps_zero() {
    assert_eq!(
        relevance_error("[relevance.integrated_gradients]\nsteps = 0\n"),
        "<tmp>/run.toml: [relevance.integrated_gradients] steps: must be ≥ 1, got 0"
    );
}

#[test]
fn relevance_smoothgrad_samples_zero() {
    assert_eq!(
        relevance_error("[relevance.smoothgrad]\nsamples = 0\n"),
        "<tmp>/run.toml: [relevance.smoothgrad] samples: must be ≥ 1, got 0"
    );
}

#[test]
fn relevance_smoothgrad_negative_noise() {
    assert_eq!(
        relevance_error("[relevance.smoothgrad]\nnoise_level = -1\n"),
        "<tmp>/run.toml: [relevance.smoothgrad] noise_level: must be a finite number ≥ 0, got -1"
    );
}

#[test]
fn relevance_memory_budget_zero() {
    assert_eq!(
        relevance_error("[relevance]\nmemory_budget_mb = 0\n"),
        "<tmp>/run.toml: [relevance] memory_budget_mb: must be ≥ 1, got 0"
    );
}

#[test]
fn relevance_ground_truth_fraction_above_one() {
    assert_eq!(
        relevance_error("[relevance]\nground_truth_fraction = 2\n"),
        "<tmp>/run.toml: [relevance] ground_truth_fraction: must be in (0, 1], got 2"
    );
}

#[test]
fn relevance_lrp_low_without_high() {
    assert_eq!(
        relevance_error("[relevance.lrp]\nlow = -1.0\n"),
        "<tmp>/run.toml: [relevance.lrp] high: must be set with low (both or neither; neither = each scan's own \
         range), got low = -1 and no high"
    );
}

#[test]
fn relevance_lrp_negative_epsilon() {
    assert_eq!(
        relevance_error("[relevance.lrp]\nepsilon = -1\n"),
        "<tmp>/run.toml: [relevance.lrp] epsilon: must be a finite number ≥ 0, got -1"
    );
}

#[test]
fn relevance_grad_cam_unknown_layer() {
    assert_eq!(
        relevance_error("[relevance.grad_cam]\nlayer = \"conv9\"\n"),
        "<tmp>/run.toml: [relevance.grad_cam] layer: must be \"\" (the last convolutional layer) or a layer of the \
         network (conv1, block1, conv1-raw, conv2, block2, conv2-raw, conv3, block3, conv3-raw, conv4, block4, \
         conv4-raw), got \"conv9\"; did you mean `conv4`?"
    );
}

#[test]
fn relevance_no_methods() {
    let msg = relevance_error("[relevance]\nmethods = []\n");
    assert!(msg.starts_with("<tmp>/run.toml: [relevance] methods: must name at least one of sensitivity, "), "{msg}");
    assert!(msg.ends_with(", got []"), "{msg}");
}

#[test]
fn relevance_split_that_no_run_writes() {
    assert_eq!(
        relevance_error("[split]\nk = 3\n[relevance]\nsplit = \"foo\"\n"),
        "<tmp>/run.toml: [relevance] split: must be \"\" (the hold-out split if the run trained one, else every \
         fold), \"holdout\", fold1 … fold3 (the splits of [split] k = 3), got \"foo\""
    );
}

// ------------------------------------------------------------------ [sanity], [preprocess]

#[test]
fn sanity_fractions_empty() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        config_error(dir.path(), "[sanity]\nfractions = []\n"),
        "<tmp>/run.toml: [sanity] fractions = []: the deletion curves need at least one share of voxels, e.g. \
         [0.01, 0.02, 0.05, 0.1, 0.2]; or switch them off with faithfulness = false"
    );
}

#[test]
fn sanity_region_steps_empty() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        config_error(dir.path(), "[sanity]\nregion_steps = []\n"),
        "<tmp>/run.toml: [sanity] region_steps = []: the region deletion curves need at least one count of \
         regions, e.g. [1, 2, 3, 5, 10]; or switch them off with faithfulness = false"
    );
}

#[test]
fn preprocess_downsample_zero() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        config_error(dir.path(), "[preprocess]\ndownsample = 0\n"),
        "<tmp>/run.toml: [preprocess] downsample: must be ≥ 1 (1 keeps the 1 mm grid, 2 gives the 2 mm grid), got 0"
    );
}

#[test]
fn preprocess_normalization_max_scans_zero() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        config_error(dir.path(), "[preprocess]\nnormalization_max_scans = 0\n"),
        "<tmp>/run.toml: [preprocess] normalization_max_scans: must be ≥ 1 (the training scans that fit the \
         z-score), got 0"
    );
}

// ------------------------------------------------------------------ locked run folders

#[test]
fn data_commands_in_a_run_folder_locked_by_another_host() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("adni.csv"), table(4, 4)).unwrap();
    let cfg = format!(
        "{}[data]\ntable = \"{d}/adni.csv\"\nimages = \"{d}\"\ncheck_files = false\n[split]\nk = 2\n\
         holdout_ad = 1\nholdout_cn = 1\n",
        run_section(&dir.path().join("results"), "r"),
        d = dir.path().display()
    );
    std::fs::write(dir.path().join("run.toml"), cfg).unwrap();
    let run_dir = dir.path().join("results/r");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(
        run_dir.join(".lock"),
        "pid = 4242\nhost = node-17.cluster\nsince = 1765000000\ncommand = xtask train --config run.toml\n",
    )
    .unwrap();
    for args in [
        &["cohort", "--config", "run.toml"][..],
        &["split", "--config", "run.toml"],
        &["preprocess", "--config", "run.toml"],
        &["prepare", "--config", "run.toml"],
    ] {
        let msg = command_error(dir.path(), args);
        assert_eq!(
            msg,
            "error: <tmp>/results/r/.lock: held by process 4242 on host node-17.cluster since 2025-12-06 05:46 UTC \
             (`xtask train --config run.toml`); if no run is active there, delete this file",
            "{args:?}"
        );
    }
    assert_eq!(files_below(&run_dir), [".lock"], "nothing was written into the locked run folder");
    // Without the lock, the same commands write there.
    std::fs::remove_file(run_dir.join(".lock")).unwrap();
    assert!(run(dir.path(), &["split", "--config", "run.toml"]).status.success());
    assert!(run_dir.join("splits/holdout.csv").is_file());
}

#[test]
fn split_whose_hold_out_takes_every_patient() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("adni.csv"), table(4, 4)).unwrap();
    let cfg = format!(
        "{}[data]\ntable = \"{d}/adni.csv\"\nimages = \"{d}\"\ncheck_files = false\n[split]\nk = 2\n\
         holdout_ad = 4\nholdout_cn = 4\n",
        run_section(&dir.path().join("results"), "r"),
        d = dir.path().display()
    );
    std::fs::write(dir.path().join("run.toml"), cfg).unwrap();
    let msg = command_error(dir.path(), &["split", "--config", "run.toml"]);
    assert_eq!(
        msg,
        "error: [split] holdout_ad = 4, holdout_cn = 4: cannot hold out all 4 AD patients: the training set would \
         have no AD patient (hold out at most 3); the cohort has 4 AD and 4 CN patients: hold out about a fifth of \
         each class (1 and 1)"
    );
    assert!(!dir.path().join("results/r/splits/holdout.csv").exists());
}

// ------------------------------------------------------------------ the command line

#[test]
fn cohort_of_a_table_alone_without_images() {
    // Accepted: --no-file-check inspects the table alone, so --images is not needed.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("adni.csv"), table(2, 3)).unwrap();
    let o = run(dir.path(), &["cohort", "--table", "adni.csv", "--no-file-check", "--out", "out"]);
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    let scans = std::fs::read_to_string(dir.path().join("out/cohort_scans.csv")).unwrap();
    assert_eq!(scans.lines().count(), 1 + 5, "{scans}");
    // Without --no-file-check the images are needed, and the message says both ways out.
    let msg = command_error(dir.path(), &["cohort", "--table", "adni.csv", "--out", "out2"]);
    assert_eq!(
        msg,
        "error: --table needs --images DIR (the folder of the scans it lists), or --no-file-check to inspect the \
         table alone"
    );
}

#[test]
fn config_that_is_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("configs")).unwrap();
    let msg = command_error(dir.path(), &["split", "--config", "configs"]);
    assert!(
        msg.starts_with("error: --config configs is a folder, expected a config file (TOML)\nthe configs in "),
        "{msg}"
    );
    assert!(msg.contains("reproduce-quick.toml"), "the project's configs are listed: {msg}");
}

#[test]
fn reproduce_quick_with_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["reproduce-paper", "--quick", "--config", "configs/reproduce.toml"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    eprintln!("ROW | {} | {}", test_name(), stderr.lines().next().unwrap_or(""));
    assert_eq!(o.status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.starts_with("error: the argument '--quick' cannot be used with '--config <CONFIG>'"), "{stderr}");
}

#[test]
fn sweep_quick_with_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["sweep", "--quick", "--config", "configs/reproduce.toml"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    eprintln!("ROW | {} | {}", test_name(), stderr.lines().next().unwrap_or(""));
    assert_eq!(o.status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.starts_with("error: the argument '--quick' cannot be used with '--config <CONFIG>'"), "{stderr}");
}
