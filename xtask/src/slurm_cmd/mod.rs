//! `cargo xtask slurm`: the study of a config as a chain of SLURM jobs, written as sbatch scripts
//! under `results/<run>/slurm/`, and optionally submitted (`--submit`), watched (`slurm status`)
//! and completed after a failure (`--submit --resume`).
//!
//! The chain runs the same stages as `cargo xtask reproduce-paper`, into the same folders, each
//! with the runner's own commands (`afterok` = starts once the jobs named succeeded):
//!
//! | job | command | after |
//! |---|---|---|
//! | `data` | `prepare` (fetch, synth or cohort, splits, preprocessing) | |
//! | `cv` | array, one task per fold: `train --fold $SLURM_ARRAY_TASK_ID --resume` | `data` |
//! | `cv-merge` | `train --merge` | `cv` |
//! | `holdout` | `train --resume` (the model of the maps) | `data` |
//! | `interpret` | array, one task per shard: `interpret --shard $SLURM_ARRAY_TASK_ID/N` | `holdout` |
//! | `interpret-merge` | `interpret --merge-shards N` | `interpret` |
//! | `sanity` | `sanity` (when `[sanity]` switches a check on) | `interpret-merge` |
//! | `report` | `reproduce-paper --report-only`: the report of the stages the jobs computed | all before |
//!
//! The hold-out chain waits only for the data, not for cross-validation, so both train at once.
//! Each stage's config is written resolved under `slurm/config/`, so a job reads exactly what
//! `reproduce-paper` would give that stage. Orchestration only: every stage is a runner command.
//!
//! One `slurm` call at a time writes or submits a run's chain (`slurm/submit.lock`); none while a
//! job of it is pending or running; and none when the config's settings changed since the chain
//! was written while outputs computed with the earlier ones are on disk.

mod plan;
mod scheduler;
mod status;
mod submit;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

pub use plan::{Job, JobRecord, Plan, PlanRecord, SbatchOptions, StageName, write_plan};
pub use scheduler::{JobState, TaskState};
pub use status::{StatusRow, status_rows};

use crate::commands::{find_config, load_config_file};

/// Arguments of `cargo xtask slurm`.
#[derive(Args, Debug, Default)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SlurmArgs {
    /// `status`: the state of a submitted chain
    #[command(subcommand)]
    pub action: Option<SlurmAction>,
    /// Config of the study (as for reproduce-paper; default configs/reproduce.toml)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Stages to put in the chain, comma-separated: data,cv,holdout,interpret,sanity,report
    /// (default: all; a stage left out is taken as done or running elsewhere)
    #[arg(long, value_delimiter = ',', value_parser = parse_stage)]
    pub stages: Vec<StageName>,
    /// #SBATCH --partition
    #[arg(long)]
    pub partition: Option<String>,
    /// #SBATCH --account
    #[arg(long)]
    pub account: Option<String>,
    /// #SBATCH --time of every job, e.g. 12:00:00
    #[arg(long)]
    pub time: Option<String>,
    /// #SBATCH --cpus-per-task (the jobs run that many compute threads)
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// #SBATCH --mem, e.g. 16G
    #[arg(long)]
    pub mem: Option<String>,
    /// #SBATCH --gpus of the training jobs; training then runs with --device cuda (a binary built
    /// with --features cuda)
    #[arg(long)]
    pub gpus: Option<u32>,
    /// Tasks of the interpretation array (shards of the hold-out test scans; default 4)
    #[arg(long)]
    pub shards: Option<usize>,
    /// The xtask binary the jobs run (default: this one); must be reachable from the compute nodes
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Submit the chain with sbatch and print the job ids (without it, only the scripts are written)
    #[arg(long)]
    pub submit: bool,
    /// With --submit: submit only the jobs and array tasks whose outputs are missing (after a
    /// failed or cancelled task), reusing complete folds and shards
    #[arg(long, requires = "submit")]
    pub resume: bool,
}

/// `cargo xtask slurm status`.
#[derive(Subcommand, Debug)]
pub enum SlurmAction {
    /// Each job's and task's state: on disk (complete or not) and in the scheduler
    Status {
        /// The run folder, e.g. results/reproduce
        #[arg(long)]
        run: PathBuf,
        /// Wait (at most this many seconds) until no job of the latest submission is pending or
        /// running, then print; exits with an error when the time runs out
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
}

fn parse_stage(s: &str) -> Result<StageName, String> {
    s.parse()
}

/// `cargo xtask slurm`.
pub fn slurm(args: &SlurmArgs) -> Result<()> {
    if let Some(SlurmAction::Status { run, wait }) = &args.action {
        return status::status(&crate::config::resolve(run), *wait);
    }
    let config_path = find_config(args.config.as_deref().unwrap_or(Path::new("configs/reproduce.toml")))?;
    let cfg = load_config_file(&config_path)?;
    let binary = match &args.binary {
        Some(b) => std::path::absolute(b).with_context(|| format!("--binary {}", b.display()))?,
        None => std::env::current_exe().context("cannot find this program's own path (give --binary)")?,
    };
    if !binary.is_file() {
        bail!("--binary {}: no such file (the xtask binary the jobs run)", binary.display());
    }
    let s = &cfg.slurm;
    let options = SbatchOptions {
        partition: args.partition.clone().or_else(|| s.partition.clone()),
        account: args.account.clone().or_else(|| s.account.clone()),
        time: args.time.clone().or_else(|| s.time.clone()),
        cpus_per_task: args.cpus_per_task.or(s.cpus_per_task),
        mem: args.mem.clone().or_else(|| s.mem.clone()),
        gpus: args.gpus.or(s.gpus).filter(|&g| g > 0),
        shards: args.shards.or(s.shards),
        extra: s.extra.clone(),
    };
    // Where a setting came from, for the messages: the command line or the config's [slurm].
    let source = |flag: &str, given: bool, value: String| {
        if given {
            format!("--{flag} {value}")
        } else {
            format!("[slurm] {flag} = {value} in {}", config_path.display())
        }
    };
    if let Some(g) = options.gpus
        && args.binary.is_none()
        && !cfg!(feature = "cuda")
    {
        bail!(
            "{}: the jobs would train with --device cuda, but this xtask was built without CUDA; build it with \
             `cargo build --release -p xtask --features cuda` and run that binary, or give --binary",
            source("gpus", args.gpus.is_some(), g.to_string())
        );
    }
    if options.gpus.is_none()
        && let model::DeviceKind::Cuda(_) = cfg.train.device
    {
        bail!(
            "{}: [train] device = \"{}\", but no GPU is asked for ({}): the training jobs would run on nodes \
             without one; give --gpus N (or [slurm] gpus = N in the config), or set [train] device = \"cpu\"",
            config_path.display(),
            cfg.train.device,
            match args.gpus.or(s.gpus) {
                Some(g) => source("gpus", args.gpus.is_some(), g.to_string()),
                None => "neither --gpus nor [slurm] gpus is given".to_string(),
            }
        );
    }
    const DEFAULT_SHARDS: usize = 4;
    let mut shards = options.shards.unwrap_or(DEFAULT_SHARDS);
    let shards_source = || match options.shards {
        Some(n) => source("shards", args.shards.is_some(), n.to_string()),
        None => format!("the default of {DEFAULT_SHARDS} shards"),
    };
    if shards == 0 {
        bail!("{}: the interpretation needs at least one shard", shards_source());
    }
    // A shard without a scan has nothing to compute: at most one shard per test scan.
    if let Some(scans) = plan::holdout_test_scans(&cfg).filter(|&n| n > 0 && n < shards) {
        outln!(
            "slurm: {} exceeds the {scans} hold-out test scans the interpretation explains: {scans} shards instead",
            shards_source()
        );
        shards = scans;
    }
    let stages = if args.stages.is_empty() { StageName::ALL.to_vec() } else { args.stages.clone() };
    let plan = Plan::new(&cfg, binary, options, shards, &stages)?;
    let config_path = std::path::absolute(&config_path).unwrap_or(config_path);
    // One call at a time, from the check of the earlier chain to the last record of its jobs.
    let _lock = submit::lock_chain(&plan.run_dir)?;
    // Pending jobs read the scripts, configs and binary when they start: nothing is rewritten
    // under them. The earlier chain's states, asked once, also serve the submission below.
    let earlier = match PlanRecord::read(&plan.run_dir) {
        Ok(earlier) => {
            let rows = status_rows(&earlier)?;
            submit::refuse_live(&earlier, &rows)?;
            rows
        }
        Err(_) => Vec::new(),
    };
    let configs = plan::stage_configs(&cfg, plan.options.gpus.is_some())?;
    plan::refuse_changed_config(&plan.run_dir, &configs, &config_path)?;
    // The folder locks of killed jobs go; a live holder's lock refuses the submission.
    let stale = if args.submit { submit::stale_locks(&plan.run_dir)? } else { Vec::new() };
    let written = write_plan(&plan, &cfg, &config_path)?;
    outln!("slurm: {} jobs written to {}", plan.jobs.len(), plan.slurm_dir().display());
    for j in &plan.jobs {
        let array = j.tasks.map(|n| format!(" (array 1-{n})")).unwrap_or_default();
        let after = if j.after.is_empty() { String::new() } else { format!(", after {}", j.after.join(", ")) };
        outln!("  {:<16} {}{array}{after}", j.name, plan.script(j).display());
    }
    if !args.submit {
        outln!(
            "slurm: submit the chain with `bash {}`, or with {}",
            written.display(),
            plan::command_with(&plan.run_dir, &config_path, &["--submit"])
        );
        return Ok(());
    }
    submit::submit(&PlanRecord::read(&plan.run_dir)?, args.resume, &earlier, &stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick config with `extra` lines after `[train]` and its results under `dir`, written
    /// to `dir/quick.toml`.
    fn config(dir: &Path, train: &str) -> PathBuf {
        let text = std::fs::read_to_string(crate::config::workspace_root().join("configs/reproduce-quick.toml"))
            .unwrap()
            .replace("[train]\n", &format!("[train]\n{train}\n"));
        let mut cfg = crate::config::ProjectConfig::from_toml(&text, Path::new("quick.toml")).unwrap();
        cfg.run.results_dir = dir.join("results");
        let path = dir.join("quick.toml");
        std::fs::write(&path, cfg.to_toml().unwrap()).unwrap();
        path
    }

    #[test]
    fn training_on_cuda_without_gpus_is_refused_with_the_way_out() {
        let tmp = tempfile::tempdir().unwrap();
        let path = config(tmp.path(), "device = \"cuda:1\"");
        let args = SlurmArgs { config: Some(path.clone()), ..Default::default() };
        let e = slurm(&args).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()) && e.contains("device = \"cuda:1\""), "{e}");
        assert!(e.contains("--gpus N") && e.contains("[slurm] gpus") && e.contains("device = \"cpu\""), "{e}");
        assert!(!tmp.path().join("results").exists(), "nothing is written");
        // Zero GPUs asks for none either.
        let args = SlurmArgs { config: Some(path), gpus: Some(0), ..Default::default() };
        assert!(slurm(&args).unwrap_err().to_string().contains("--gpus 0"));
    }

    #[test]
    fn a_shard_count_from_the_config_is_named_as_such() {
        let tmp = tempfile::tempdir().unwrap();
        let path = config(tmp.path(), "");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}\n[slurm]\nshards = 0\n")).unwrap();
        let args = SlurmArgs { config: Some(path.clone()), ..Default::default() };
        let e = slurm(&args).unwrap_err().to_string();
        assert!(e.contains(&format!("[slurm] shards = 0 in {}", path.display())), "{e}");
        let args = SlurmArgs { config: Some(path), shards: Some(0), ..Default::default() };
        assert!(slurm(&args).unwrap_err().to_string().starts_with("--shards 0:"));
    }
}
