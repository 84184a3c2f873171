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
//! | `report` | `reproduce-paper`: finds every stage complete, writes the report | all before |
//!
//! The hold-out chain waits only for the data, not for cross-validation, so both train at once.
//! Each stage's config is written resolved under `slurm/config/`, so a job reads exactly what
//! `reproduce-paper` would give that stage. Orchestration only: every stage is a runner command.

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
    let shards = options.shards.unwrap_or(4);
    if options.gpus.is_some() && args.binary.is_none() && !cfg!(feature = "cuda") {
        bail!(
            "--gpus: the jobs would train with --device cuda, but this xtask was built without CUDA; build it with \
             `cargo build --release -p xtask --features cuda` and run that binary, or give --binary"
        );
    }
    if shards == 0 {
        bail!("--shards 0: the interpretation needs at least one shard");
    }
    let stages = if args.stages.is_empty() { StageName::ALL.to_vec() } else { args.stages.clone() };
    let plan = Plan::new(&cfg, binary, options, shards, &stages)?;
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
            plan::command_with(&plan.run_dir, &["--submit"])
        );
        return Ok(());
    }
    submit::submit(&PlanRecord::read(&plan.run_dir)?, args.resume, &earlier)
}
