//! Helpers shared by the end-to-end tests: running the xtask binary and the shipped quick config
//! moved into a temporary folder.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The running test's name (the row name of the malformed-input tables).
pub fn test_name() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

/// The message of loading config `text` (written to `<dir>/run.toml`) as the binary prints it;
/// the loader must refuse it without panicking.
pub fn config_error(dir: &Path, text: &str) -> String {
    let path = dir.join("run.toml");
    std::fs::write(&path, text).unwrap();
    let result = std::panic::catch_unwind(|| xtask::config::ProjectConfig::load(&path));
    let msg = match result {
        Err(_) => panic!("{}: the config loader panicked", test_name()),
        Ok(Ok(_)) => panic!("{}: accepted a bad config", test_name()),
        Ok(Err(e)) => format!("{e:#}").replace(&dir.display().to_string(), "<tmp>"),
    };
    eprintln!("ROW | {} | {msg}", test_name());
    msg
}

/// Runs the xtask binary with `args` in `dir` and waits for it.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("cannot start the xtask binary")
}

/// Runs the binary with `args` in `dir`; it must fail with status 1 without panicking. Returns
/// standard error from its `error:` line on, with `dir` written `<tmp>`.
pub fn command_error(dir: &Path, args: &[&str]) -> String {
    let o = run_in(dir, args);
    let stderr = String::from_utf8_lossy(&o.stderr).replace(&dir.display().to_string(), "<tmp>");
    assert!(!stderr.contains("panicked"), "{}: panicked: {stderr}", test_name());
    assert_eq!(o.status.code(), Some(1), "{}: expected exit status 1, stderr: {stderr}", test_name());
    let at = stderr.find("error: ").unwrap_or_else(|| panic!("{}: no `error:` line in {stderr}", test_name()));
    let msg = stderr[at..].trim_end().to_string();
    eprintln!("ROW | {} | {msg}", test_name());
    msg
}

/// Runs the xtask binary with `args` and waits for it.
pub fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).output().expect("cannot start the xtask binary")
}

/// Standard output and standard error of a finished command, as text.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The quick config with its data, cache and results paths inside `dir`.
pub fn quick_config_in(dir: &Path) -> PathBuf {
    let package = package_dir();
    let root = package.parent().expect("workspace root");
    let shipped = std::fs::read_to_string(root.join("configs/reproduce-quick.toml")).expect("quick config");
    let mut cfg: toml::Table = shipped.parse().expect("quick config parses");
    let d = dir.display().to_string();
    let set = |cfg: &mut toml::Table, section: &str, key: &str, value: String| {
        cfg.entry(section)
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .expect("section")
            .insert(key.into(), toml::Value::String(value));
    };
    set(&mut cfg, "run", "results_dir", format!("{d}/results"));
    set(&mut cfg, "synth", "out_dir", format!("{d}/synth"));
    set(&mut cfg, "data", "table", format!("{d}/synth/ADNI_synth_1.5T.csv"));
    set(&mut cfg, "data", "images", format!("{d}/synth/images"));
    set(&mut cfg, "data", "known_corrupt_file", format!("{d}/synth/known_corrupt.txt"));
    set(&mut cfg, "preprocess", "mask", format!("{d}/synth/brain_mask.nii.gz"));
    set(&mut cfg, "preprocess", "cache_dir", format!("{d}/cache"));
    let path = dir.join("quick.toml");
    std::fs::write(&path, toml::to_string(&cfg).expect("serialise")).expect("write config");
    path
}

/// This package's folder: cargo's run-time `CARGO_MANIFEST_DIR` (set by `cargo test` and `cargo
/// bench`), else the one compiled in. A target folder shared between two clones reuses a test
/// binary built in the other clone, whose compiled-in folder may be gone.
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
}
