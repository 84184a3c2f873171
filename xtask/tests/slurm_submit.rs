//! `slurm --submit` when an sbatch fails midway through the chain: the jobs this call submitted
//! are cancelled and nothing of the submission is recorded. SLURM's commands are stand-ins on
//! `PATH` (shell scripts that log their arguments); the real single-node SLURM runs in
//! `scripts/slurm-check.sh`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{quick_config_in, text};

/// Writes an executable shell script `dir/name`.
fn script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_failed_sbatch_midway_cancels_what_this_call_submitted_and_records_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = quick_config_in(tmp.path());
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = tmp.path().join("calls.log");
    let log_s = log.display();
    // sbatch: job ids 1001, 1002, …; the third call fails as a full queue does.
    script(
        &bin,
        "sbatch",
        &format!(
            "n=$(grep -c '^sbatch' {log_s} 2>/dev/null || true)\necho \"sbatch $*\" >> {log_s}\n\
             if [ \"$n\" -ge 2 ]; then echo 'sbatch: error: QOSMaxSubmitJobPerUserLimit' >&2; exit 1; fi\n\
             echo $((1001 + n))\n"
        ),
    );
    script(&bin, "scancel", &format!("echo \"scancel $*\" >> {log_s}\n"));
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["slurm", "--config", cfg.to_str().unwrap(), "--submit"])
        .env("PATH", path)
        .output()
        .expect("cannot start the xtask binary");
    let t = text(&out);
    assert!(!t.contains("panicked"), "panicked:\n{t}");
    assert_eq!(out.status.code(), Some(1), "a failed sbatch must fail the call:\n{t}");
    assert!(t.contains("QOSMaxSubmitJobPerUserLimit"), "the scheduler's message is lost:\n{t}");
    let calls = std::fs::read_to_string(&log).unwrap();
    let sbatches: Vec<&str> = calls.lines().filter(|l| l.starts_with("sbatch")).collect();
    assert_eq!(sbatches.len(), 3, "{calls}");
    assert!(sbatches[1].contains("--dependency=afterok:1001"), "the second job waits for the first: {calls}");
    assert_eq!(
        calls.lines().filter(|l| l.starts_with("scancel")).collect::<Vec<_>>(),
        ["scancel 1001 1002"],
        "the two submitted jobs are cancelled, once: {calls}"
    );
    assert!(
        t.contains(
            "cancelled the jobs this call had submitted (data 1001, cv 1002); nothing of this submission is \
                    recorded"
        ),
        "{t}"
    );
    let jobs = tmp.path().join("results/reproduce-quick/slurm/jobs.json");
    let recorded: serde_json::Value = match std::fs::read(&jobs) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Err(_) => serde_json::json!([]),
    };
    assert_eq!(recorded, serde_json::json!([]), "{} still lists cancelled jobs", jobs.display());
}
