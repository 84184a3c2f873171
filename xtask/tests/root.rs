//! The runner finds its project from where it runs, not from where it was built: with a target
//! folder shared between two clones, a binary built in one clone may run in another, and must
//! read that clone's configs and write into that clone's `results/`.

mod common;

use std::process::Command;

use common::text;

/// A minimal project skeleton: a workspace `Cargo.toml`, `xtask/Cargo.toml` and one config whose
/// data table does not exist (so the command fails after resolving its paths, naming them).
fn skeleton(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("xtask")).unwrap();
    std::fs::create_dir_all(dir.join("configs")).unwrap();
    std::fs::create_dir_all(dir.join("sub/folder")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), "[workspace]\nmembers = [\"xtask\"]\n").unwrap();
    std::fs::write(dir.join("xtask/Cargo.toml"), "[package]\nname = \"xtask\"\n").unwrap();
    std::fs::write(
        dir.join("configs/probe.toml"),
        "[run]\nname = \"probe\"\n[data]\ntable = \"data/probe_table.csv\"\nimages = \"data/images\"\n",
    )
    .unwrap();
}

#[test]
fn configs_and_data_resolve_against_the_project_the_command_runs_in() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("other-clone");
    skeleton(&project);
    // From a subfolder of the other clone, with a relative config path.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["cohort", "--config", "configs/probe.toml"])
        .current_dir(project.join("sub/folder"))
        .env_remove("INTERPRETABLE_MRI_ROOT")
        .output()
        .expect("cannot start the xtask binary");
    let t = text(&out);
    assert!(!out.status.success(), "the probe's table does not exist, so the command must fail:\n{t}");
    // The config was found in the other clone (not "not found"), and the table path it names
    // lies in that clone: the build folder's project is not used.
    assert!(!t.contains("not found (also looked in"), "the config was looked up elsewhere:\n{t}");
    let table = project.join("data/probe_table.csv");
    assert!(t.contains(&table.display().to_string()), "the error does not name {}:\n{t}", table.display());

    // The environment variable names the root explicitly, from anywhere.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["cohort", "--config", "configs/probe.toml"])
        .current_dir(tmp.path())
        .env("INTERPRETABLE_MRI_ROOT", &project)
        .output()
        .expect("cannot start the xtask binary");
    let t = text(&out);
    assert!(t.contains(&table.display().to_string()), "INTERPRETABLE_MRI_ROOT was not used:\n{t}");
}
