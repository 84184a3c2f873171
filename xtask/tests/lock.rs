//! Two runs, one folder: while one `reproduce-paper` writes into a results folder, a second one
//! into the same folder stops at once with a message naming the holder's pid and host, and the
//! first finishes untouched; a lock left by a dead process is taken over.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{quick_config_in, text, xtask};

#[test]
fn a_second_run_into_the_same_folder_is_refused_and_a_stale_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = quick_config_in(dir.path());
    let cfg = cfg.to_str().unwrap();
    let lock = dir.path().join("results/reproduce-quick/.lock");

    // The first run, in the background.
    let mut first = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["reproduce-paper", "--config", cfg])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !lock.exists() {
        assert!(t.elapsed() < Duration::from_secs(60), "the first run never took its lock");
        if let Some(status) = first.try_wait().unwrap() {
            panic!("the first run ended ({status}) before a second one could start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    // The second one, while the first holds the folder.
    let second = xtask(&["reproduce-paper", "--config", cfg]);
    let msg = text(&second);
    assert_eq!(second.status.code(), Some(1), "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
    let expected = format!("in use by process {} on this host ({})", first.id(), adni_data::lock::host_name());
    assert!(msg.contains(&expected), "expected `{expected}` in: {msg}");
    assert!(msg.contains("results/reproduce-quick/.lock"), "{msg}");

    // The first run finishes as if alone, and releases its lock.
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!lock.exists(), "the lock file outlived its run");

    // A lock of a process that no longer runs (what a SIGKILL leaves) is taken over.
    let dead = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(4_194_304)
        + 1;
    let host = adni_data::lock::host_name();
    std::fs::write(&lock, format!("pid = {dead}\nhost = {host}\nsince = 0\ncommand = xtask train\n")).unwrap();
    let third = xtask(&["reproduce-paper", "--config", cfg]);
    assert!(third.status.success(), "{}", text(&third));
    assert!(!lock.exists());
}
