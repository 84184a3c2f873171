//! The chain of jobs a config gives, its sbatch scripts and `submit.sh`, and which of its jobs
//! and tasks are complete on disk.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use adni_data::fsutil::write_bytes_atomically;
use adni_data::run_layout::RunLayout;
use model::train::TrainMode;

use crate::config::{ProjectConfig, workspace_root};
use crate::inputs::marker_models_current;
use crate::reproduce_cmd::{sanity_on, stage_config};

/// A stage a user can put in the chain (`--stages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageName {
    /// Data preparation.
    Data,
    /// Cross-validation: the fold array and its merge.
    Cv,
    /// The hold-out model.
    Holdout,
    /// The relevance maps: the shard array and its merge.
    Interpret,
    /// The sanity checks (only when `[sanity]` switches one on).
    Sanity,
    /// The report.
    Report,
}

impl StageName {
    /// Every stage, in chain order.
    pub const ALL: [StageName; 6] = [
        StageName::Data,
        StageName::Cv,
        StageName::Holdout,
        StageName::Interpret,
        StageName::Sanity,
        StageName::Report,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            StageName::Data => "data",
            StageName::Cv => "cv",
            StageName::Holdout => "holdout",
            StageName::Interpret => "interpret",
            StageName::Sanity => "sanity",
            StageName::Report => "report",
        }
    }
}

impl FromStr for StageName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        StageName::ALL.into_iter().find(|st| st.name() == s.trim()).ok_or_else(|| {
            let names: Vec<&str> = StageName::ALL.iter().map(|st| st.name()).collect();
            format!("unknown stage `{s}`; the stages are {}", names.join(", "))
        })
    }
}

/// The `#SBATCH` settings every job shares (`--gpus` only on the training jobs): the config's
/// `[slurm]` section with the command line's options over it (its `shards` is the plan's own).
pub type SbatchOptions = crate::config::SlurmSection;

/// One job of the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its name: `data`, `cv`, `cv-merge`, `holdout`, `interpret`, `interpret-merge`, `sanity`,
    /// `report`; the script is `<name>.sbatch`.
    pub name: &'static str,
    /// For an array job, its task count (tasks 1..=n).
    pub tasks: Option<usize>,
    /// The jobs (of this chain) it waits for, with `afterok`.
    pub after: Vec<&'static str>,
    /// The runner's arguments (after the binary); `$SLURM_ARRAY_TASK_ID` stays unquoted.
    pub args: Vec<String>,
    /// Whether it asks for the GPUs (the training jobs).
    pub gpu: bool,
}

/// The chain of one config.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The project root the jobs run in.
    pub root: PathBuf,
    /// The run folder (`results/<run>`).
    pub run_dir: PathBuf,
    /// The xtask binary to copy to `slurm/bin/xtask`, which the jobs run (so that a rebuild
    /// while the chain runs changes nothing, and the copy lies beside the results, where the
    /// compute nodes can read it).
    pub binary: PathBuf,
    /// `#SBATCH` settings.
    pub options: SbatchOptions,
    /// Shards of the interpretation.
    pub shards: usize,
    /// Folds of the cross-validation.
    pub folds: usize,
    /// The jobs, in submission order (each after the ones it waits for).
    pub jobs: Vec<Job>,
    /// Run name (for job names).
    pub run_name: String,
}

const TASK: &str = "$SLURM_ARRAY_TASK_ID";

impl Plan {
    /// The chain of `cfg` for the given stages.
    pub fn new(
        cfg: &ProjectConfig,
        binary: PathBuf,
        options: SbatchOptions,
        shards: usize,
        stages: &[StageName],
    ) -> Result<Plan> {
        let root = workspace_root();
        let run_dir = cfg.run.dir();
        for (what, path) in [("the project root", &root), ("the run folder", &run_dir)] {
            if path.display().to_string().chars().any(char::is_whitespace) {
                bail!(
                    "{what} {} holds a space: #SBATCH lines cannot name such paths; use a folder without one",
                    path.display()
                );
            }
        }
        let slurm = run_dir.join("slurm");
        let stage_cfg = |name: &str| slurm.join("config").join(format!("{name}.toml")).display().to_string();
        let holdout = run_dir.join("holdout").display().to_string();
        let on = |s: StageName| stages.contains(&s);
        let mut jobs: Vec<Job> = Vec::new();
        // A job waits only for the jobs this chain has (a stage left out is done or runs elsewhere).
        let push = |jobs: &mut Vec<Job>, name, tasks, after: &[&'static str], args: Vec<String>, gpu| {
            let after = after.iter().copied().filter(|a| jobs.iter().any(|j: &Job| j.name == *a)).collect();
            jobs.push(Job { name, tasks, after, args, gpu });
        };
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let device: Vec<String> = if options.gpus.is_some() { s(&["--device", "cuda"]) } else { Vec::new() };
        if on(StageName::Data) {
            push(&mut jobs, "data", None, &[], s(&["prepare", "--config", &stage_cfg("data")]), false);
        }
        if on(StageName::Cv) {
            let mut fold = s(&["train", "--config", &stage_cfg("cv"), "--fold", TASK, "--resume"]);
            fold.extend(device.clone());
            push(&mut jobs, "cv", Some(cfg.split.k), &["data"], fold, true);
            push(&mut jobs, "cv-merge", None, &["cv"], s(&["train", "--config", &stage_cfg("cv"), "--merge"]), false);
        }
        if on(StageName::Holdout) {
            let mut train = s(&["train", "--config", &stage_cfg("holdout"), "--resume"]);
            train.extend(device);
            push(&mut jobs, "holdout", None, &["data"], train, true);
        }
        if on(StageName::Interpret) {
            let shard = format!("{TASK}/{shards}");
            let mut args = s(&["interpret", "--run", &holdout, "--shard", &shard]);
            if sanity_on(cfg) {
                args.push("--save-scan-maps".into());
            }
            push(&mut jobs, "interpret", Some(shards), &["holdout"], args, false);
            let merge = s(&["interpret", "--run", &holdout, "--merge-shards", &shards.to_string()]);
            push(&mut jobs, "interpret-merge", None, &["interpret"], merge, false);
        }
        if on(StageName::Sanity) && sanity_on(cfg) {
            // The data randomisation trains a model on shuffled labels: a training job too.
            let trains = cfg.sanity.data_randomisation;
            push(&mut jobs, "sanity", None, &["interpret-merge"], s(&["sanity", "--run", &holdout]), trains);
        }
        if on(StageName::Report) {
            // The config as it was when the chain was written (a copy: an edit meanwhile changes
            // nothing), and no stage computed inside the report job.
            // The report waits for the last job of each branch.
            let has = |n: &str| jobs.iter().any(|j| j.name == n);
            let mut last_of_branch: Vec<&'static str> = Vec::new();
            last_of_branch.extend(["cv-merge"].into_iter().filter(|n| has(n)));
            last_of_branch.extend(["sanity", "interpret-merge", "holdout"].into_iter().find(|n| has(n)));
            if last_of_branch.is_empty() && has("data") {
                last_of_branch.push("data");
            }
            let args = s(&["reproduce-paper", "--config", &stage_cfg("report"), "--report-only"]);
            push(&mut jobs, "report", None, &last_of_branch, args, false);
        }
        Ok(Plan { root, run_dir, binary, options, shards, folds: cfg.split.k, jobs, run_name: cfg.run.name.clone() })
    }

    /// `results/<run>/slurm`.
    pub fn slurm_dir(&self) -> PathBuf {
        self.run_dir.join("slurm")
    }

    /// The copy of the binary the jobs run: `slurm/bin/xtask`.
    pub fn pinned_binary(&self) -> PathBuf {
        pinned_binary(&self.run_dir)
    }

    /// The script of a job.
    pub fn script(&self, job: &Job) -> PathBuf {
        self.slurm_dir().join(format!("{}.sbatch", job.name))
    }

    /// The job called `name`, if the chain has it.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name == name)
    }

    /// The text of a job's sbatch script.
    pub fn script_text(&self, job: &Job) -> String {
        let logs = self.slurm_dir().join("logs");
        let mut t = String::from("#!/bin/bash\n");
        let _ = writeln!(
            t,
            "# `{}` of run {}: written by `cargo xtask slurm`; submit the chain with submit.sh.",
            job.name, self.run_name
        );
        let _ = writeln!(t, "#SBATCH --job-name={}-{}", self.run_name, job.name);
        let log = if job.tasks.is_some() { format!("{}_%A_%a.out", job.name) } else { format!("{}_%j.out", job.name) };
        let _ = writeln!(t, "#SBATCH --output={}", logs.join(log).display());
        if let Some(n) = job.tasks {
            let _ = writeln!(t, "#SBATCH --array=1-{n}");
        }
        let o = &self.options;
        let lines = [
            ("partition", o.partition.clone()),
            ("account", o.account.clone()),
            ("time", o.time.clone()),
            ("cpus-per-task", o.cpus_per_task.map(|c| c.to_string())),
            ("mem", o.mem.clone()),
            ("gpus", o.gpus.filter(|_| job.gpu).map(|g| g.to_string())),
        ];
        for (key, value) in lines {
            if let Some(v) = value {
                let _ = writeln!(t, "#SBATCH --{key}={v}");
            }
        }
        for line in &o.extra {
            let _ = writeln!(t, "#SBATCH {line}");
        }
        t.push_str("set -euo pipefail\n");
        let _ = writeln!(t, "cd {}", quote(&self.root.display().to_string()));
        let _ = writeln!(t, "export INTERPRETABLE_MRI_ROOT={}", quote(&self.root.display().to_string()));
        // As many compute threads as CPUs allocated, not as the node has.
        t.push_str("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-1}}\"\n");
        // The host and pid (the runner keeps the shell's pid: `exec`) that its folder locks name,
        // so that a later `--resume` can tell a killed job's lock from a live run's.
        let _ = writeln!(
            t,
            "echo \"$(date -u +%FT%TZ) {} job ${{SLURM_JOB_ID:-}} task ${{SLURM_ARRAY_TASK_ID:-none}} on $(hostname), pid $$, $RAYON_NUM_THREADS threads\"",
            job.name
        );
        let args: Vec<String> =
            job.args.iter().map(|a| if a.contains(TASK) { format!("\"{a}\"") } else { quote(a) }).collect();
        let _ = writeln!(t, "exec {} {}", quote(&self.pinned_binary().display().to_string()), args.join(" "));
        t
    }

    /// The text of `submit.sh`: submits the chain with `afterok` dependencies, prints the ids.
    pub fn submit_text(&self) -> String {
        let mut t = String::from("#!/bin/bash\n");
        let _ = writeln!(t, "# Submits the chain of run {} (written by `cargo xtask slurm`).", self.run_name);
        t.push_str(
            "# Each job starts once the jobs it waits for succeeded (afterok). Jobs submitted by this\n\
             # script are not recorded: `xtask slurm status` and `--resume` know only the jobs of\n\
             # `xtask slurm --submit`.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\n",
        );
        for j in &self.jobs {
            let var = j.name.replace('-', "_");
            let dep = if j.after.is_empty() {
                String::new()
            } else {
                let ids: Vec<String> = j.after.iter().map(|a| format!("${}", a.replace('-', "_"))).collect();
                format!(" --dependency=afterok:{}", ids.join(":"))
            };
            let _ = writeln!(t, "{var}=$(sbatch --parsable{dep} {}.sbatch); {var}=${{{var}%%;*}}", j.name);
            let _ = writeln!(t, "echo \"{} ${var}\"", j.name);
        }
        t
    }

    /// What `slurm status` needs to know of the chain; `config` is the config file it was
    /// written from (its resume command names it by its absolute path).
    pub fn record(&self, config: &Path) -> PlanRecord {
        PlanRecord {
            config: config.strip_prefix(&self.root).unwrap_or(config).to_path_buf(),
            command: resume_command(&self.run_dir, config),
            run_dir: self.run_dir.clone(),
            shards: self.shards,
            jobs: self
                .jobs
                .iter()
                .map(|j| JobRecord {
                    name: j.name.to_string(),
                    tasks: j.tasks,
                    after: j.after.iter().map(|a| a.to_string()).collect(),
                })
                .collect(),
        }
    }
}

/// The chain as `slurm/plan.json` keeps it, for `slurm status` and `--resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// The config the chain was written from.
    pub config: PathBuf,
    /// The command line that wrote it (shown again by `slurm status` to resume).
    pub command: String,
    /// The run folder.
    pub run_dir: PathBuf,
    /// Shards of the interpretation.
    pub shards: usize,
    /// The jobs in submission order.
    pub jobs: Vec<JobRecord>,
}

/// One job of a [`PlanRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its name.
    pub name: String,
    /// Its array's task count, if it is an array.
    pub tasks: Option<usize>,
    /// The jobs it waits for.
    pub after: Vec<String>,
}

/// The file name of the plan record in `slurm/`.
pub const PLAN_FILE: &str = "plan.json";

impl PlanRecord {
    /// Reads `run_dir/slurm/plan.json`.
    pub fn read(run_dir: &Path) -> Result<PlanRecord> {
        let path = run_dir.join("slurm").join(PLAN_FILE);
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "cannot read {}: no SLURM chain was written for this run (`cargo xtask slurm --config …`)",
                path.display()
            )
        })?;
        serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a plan written by `cargo xtask slurm`", path.display()))
    }

    /// Whether task `task` (1-based; `None` for a job without array) of job `name` has its outputs.
    pub fn task_complete(&self, name: &str, task: Option<usize>) -> bool {
        let run = RunLayout::new(&self.run_dir);
        let cv = RunLayout::new(self.run_dir.join("cv"));
        let holdout = RunLayout::new(self.run_dir.join("holdout"));
        match (name, task) {
            ("data", _) => run
                .root()
                .join("data")
                .join("normalization")
                .join(adni_data::run_layout::RESOLVED_CONFIG_FILE)
                .is_file(),
            ("cv", Some(k)) => cv.fold(&format!("fold{k}")).is_finished(),
            ("cv-merge", _) => cv.summary_csv().is_file(),
            ("holdout", _) => holdout.summary_csv().is_file(),
            // Complete only when made from the hold-out model trained now (a shard of an earlier
            // model would be skipped on `--resume` and refused by the merge).
            ("interpret", Some(i)) => {
                marker_models_current(&holdout, &holdout.relevance().shard(i, self.shards).complete())
            }
            ("interpret-merge", _) => marker_models_current(&holdout, &holdout.relevance().complete()),
            ("sanity", _) => marker_models_current(&holdout, &holdout.sanity().complete()),
            ("report", _) => run.report_md().is_file(),
            _ => false,
        }
    }

    /// The copy of the binary the jobs run: `slurm/bin/xtask`.
    pub fn binary(&self) -> PathBuf {
        pinned_binary(&self.run_dir)
    }

    /// The tasks of a job: `[Some(1), …, Some(n)]` for an array, `[None]` otherwise.
    pub fn tasks(job: &JobRecord) -> Vec<Option<usize>> {
        match job.tasks {
            Some(n) => (1..=n).map(Some).collect(),
            None => vec![None],
        }
    }

    /// The tasks of a job whose outputs are missing.
    pub fn missing_tasks(&self, job: &JobRecord) -> Vec<Option<usize>> {
        Self::tasks(job).into_iter().filter(|&t| !self.task_complete(&job.name, t)).collect()
    }
}

/// `run_dir/slurm/bin/xtask`.
fn pinned_binary(run_dir: &Path) -> PathBuf {
    run_dir.join("slurm").join("bin").join("xtask")
}

/// This call's command line as `cargo xtask slurm … --submit --resume`.
fn resume_command(run_dir: &Path, config: &Path) -> String {
    command_with(run_dir, config, &["--submit", "--resume"])
}

/// This call's command line, with `flags` (and no other `--submit` or `--resume`), run by the
/// chain's copy of the binary (a `cargo xtask` could rebuild it without the features it has),
/// with `--config` the absolute path of `config` (the file this call found) and `--binary`
/// absolute: the command works from any folder.
pub(crate) fn command_with(run_dir: &Path, config: &Path, flags: &[&str]) -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    command_line(&pinned_binary(run_dir), &args, config, flags)
}

/// [`command_with`] of the arguments `args` (without the program).
fn command_line(binary: &Path, args: &[String], config: &Path, flags: &[&str]) -> String {
    let absolute = |p: &str| std::path::absolute(p).map_or_else(|_| p.to_string(), |a| a.display().to_string());
    let config = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf()).display().to_string();
    let mut out: Vec<String> = Vec::new();
    let mut named_config = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        match a {
            "--submit" | "--resume" => {}
            "--config" => {
                i += 1;
                named_config = true;
                out.extend(["--config".to_string(), quote(&config)]);
            }
            "--binary" => {
                let value = args.get(i).map(|v| absolute(v)).unwrap_or_default();
                i += 1;
                out.extend(["--binary".to_string(), quote(&value)]);
            }
            _ if a.starts_with("--config=") => {
                named_config = true;
                out.extend(["--config".to_string(), quote(&config)]);
            }
            _ if a.starts_with("--binary=") => {
                out.extend(["--binary".to_string(), quote(&absolute(&a["--binary=".len()..]))]);
            }
            _ => out.push(quote(a)),
        }
    }
    if !named_config {
        out.extend(["--config".to_string(), quote(&config)]);
    }
    out.extend(flags.iter().map(|f| f.to_string()));
    format!("{} {}", quote(&binary.display().to_string()), out.join(" "))
}

/// Quotes a word for bash (single quotes).
pub(crate) fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Writes the stage configs, the scripts and `submit.sh` under `results/<run>/slurm/` (each file
/// atomically); returns the path of `submit.sh`.
pub fn write_plan(plan: &Plan, cfg: &ProjectConfig, config_path: &Path) -> Result<PathBuf> {
    let dir = plan.slurm_dir();
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("cannot create {}", dir.join("logs").display()))?;
    for (name, text) in stage_configs(cfg, plan.options.gpus.is_some())? {
        write_bytes_atomically(&dir.join("config").join(format!("{name}.toml")), text.as_bytes())?;
    }
    copy_binary(&plan.binary, &plan.pinned_binary())?;
    for job in &plan.jobs {
        write_executable(&plan.script(job), &plan.script_text(job))?;
    }
    let record = serde_json::to_string_pretty(&plan.record(config_path))?;
    write_bytes_atomically(&dir.join(PLAN_FILE), record.as_bytes())?;
    let submit = dir.join("submit.sh");
    write_executable(&submit, &plan.submit_text())?;
    Ok(submit)
}

/// The stage configs as the jobs read them: `data`, `cv` and `holdout` as reproduce-paper gives
/// them (training on CUDA with `gpus`), and `report`, the whole config as it is now.
pub fn stage_configs(cfg: &ProjectConfig, gpus: bool) -> Result<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    for (name, mode) in [("data", None), ("cv", Some(TrainMode::Kfold)), ("holdout", Some(TrainMode::Holdout))] {
        let mut c = stage_config(cfg, name, mode);
        if gpus && mode.is_some() {
            c.train.device = model::DeviceKind::Cuda(0);
        }
        let text = format!(
            "# The `{name}` stage's config, as reproduce-paper gives it{} (written by `cargo xtask slurm`).\n{}",
            if gpus && mode.is_some() { ", training on CUDA (--gpus)" } else { "" },
            c.to_toml()?
        );
        out.push((name, text));
    }
    let text = format!(
        "# The config the chain was written from, as it was then (written by `cargo xtask slurm`).\n{}",
        cfg.to_toml()?
    );
    out.push(("report", text));
    Ok(out)
}

/// The sections each stage's outputs depend on (`None`: every section, the report states them
/// all). `[reproduce]` acts through the training stages' `[train] epochs`.
fn stage_sections(stage: &str) -> Option<&'static [&'static str]> {
    match stage {
        "data" => Some(&["data", "synth", "split", "preprocess"]),
        "cv" => Some(&["data", "synth", "split", "preprocess", "train", "model"]),
        // The hold-out folder also holds the maps and the sanity checks.
        "holdout" => Some(&["data", "synth", "split", "preprocess", "train", "model", "relevance", "sanity"]),
        _ => None,
    }
}

/// The outputs of a stage that are on disk: its folder when it holds anything (`data`, `cv`,
/// `holdout`), or the report and the run's recorded config (`report`).
fn stage_outputs(run_dir: &Path, stage: &str) -> Vec<PathBuf> {
    let held = |dir: &Path| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name != adni_data::lock::LOCK_FILE && !name.starts_with(adni_data::lock::TEMP_PREFIX)
            })
        })
    };
    match stage {
        "report" => [RunLayout::new(run_dir).report_md(), run_dir.join(adni_data::run_layout::RESOLVED_CONFIG_FILE)]
            .into_iter()
            .filter(|p| p.is_file())
            .collect(),
        _ => Some(run_dir.join(stage)).filter(|d| held(d)).into_iter().collect(),
    }
}

/// Refuses, before anything is written, when a stage's config as the earlier chain froze it
/// (`slurm/config/<stage>.toml`) and as `configs` (from [`stage_configs`]) gives it now differ in
/// a setting its outputs depend on while outputs of that stage are on disk: reusing them (a
/// `--resume` takes complete folds and shards as they are) would mix results of two configs, and
/// the report would state settings they were not computed with. Names each such stage, its
/// differing settings and its outputs.
pub fn refuse_changed_config(run_dir: &Path, configs: &[(&'static str, String)], config: &Path) -> Result<()> {
    let frozen_dir = run_dir.join("slurm").join("config");
    let mut changed: Vec<String> = Vec::new();
    let mut outputs: Vec<PathBuf> = Vec::new();
    for (stage, text) in configs {
        let frozen_path = frozen_dir.join(format!("{stage}.toml"));
        let frozen = match std::fs::read_to_string(&frozen_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => bail!("cannot read {}: {e}", frozen_path.display()),
        };
        let on_disk = stage_outputs(run_dir, stage);
        if on_disk.is_empty() {
            continue;
        }
        let parse = |path: &Path, text: &str| -> Result<toml::Value> {
            text.parse::<toml::Table>()
                .map(toml::Value::Table)
                .with_context(|| format!("{}: not a stage config written by `cargo xtask slurm`", path.display()))
        };
        let (then, now) = (parse(&frozen_path, &frozen)?, parse(config, text)?);
        let diff = crate::config::config_differences(&then, &now, stage_sections(stage));
        if !diff.is_empty() {
            changed.push(format!("  stage `{stage}` ({}): {}", frozen_path.display(), diff.join("; ")));
            outputs.extend(on_disk);
        }
    }
    if changed.is_empty() {
        return Ok(());
    }
    let outputs: Vec<String> = outputs.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "{}: its settings differ from those the chain of {} was written with, and those stages' outputs, \
         computed with the earlier settings, are on disk:\n{}\nThe chain would reuse them under the new settings \
         (and the report would state settings they were not computed with); nothing was written. Give the config \
         a new [run] name, or remove those stages' outputs ({}), then run this again.",
        config.display(),
        run_dir.display(),
        changed.join("\n"),
        outputs.join(", ")
    )
}

/// How many hold-out test scans the interpretation can be given at most, when the data stage
/// has written the hold-out split (`data/splits/holdout.csv`) and `[relevance] split` explains
/// it: its test rows, at most `scans_per_patient` (the larger of the two classes' limits) of
/// each patient. `None` when it cannot be known yet.
pub fn holdout_test_scans(cfg: &ProjectConfig) -> Option<usize> {
    if !matches!(cfg.relevance.split.as_str(), "" | "holdout") {
        return None;
    }
    let path = RunLayout::new(cfg.run.dir().join("data")).split_csv("holdout");
    let split = adni_data::splits::read_split_csv(&path).ok()?;
    let r = &cfg.relevance;
    let limit = r.scans_per_patient_of(true).max(r.scans_per_patient_of(false));
    let limit = if r.scans_per_patient_of(true) == 0 || r.scans_per_patient_of(false) == 0 { 0 } else { limit };
    let mut per_patient: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for row in split.rows.iter().filter(|row| row.set == adni_data::splits::SplitSet::Test) {
        *per_patient.entry(row.ptid.as_str()).or_default() += 1;
    }
    Some(per_patient.values().map(|&n| if limit == 0 { n } else { n.min(limit) }).sum())
}

/// Copies the binary to `to` (through a temporary file, then renamed: a job starting meanwhile
/// sees the old copy or the new one, never half of one).
fn copy_binary(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = to.with_file_name(format!("{}{}-xtask", adni_data::lock::TEMP_PREFIX, std::process::id()));
    std::fs::copy(from, &tmp).with_context(|| format!("cannot copy {} to {}", from.display(), tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", tmp.display()))?;
    }
    std::fs::rename(&tmp, to).with_context(|| format!("cannot rename {} to {}", tmp.display(), to.display()))?;
    Ok(())
}

fn write_executable(path: &Path, text: &str) -> Result<()> {
    write_bytes_atomically(path, text.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick config with its results under `dir`.
    fn quick(dir: &Path) -> ProjectConfig {
        let mut cfg = ProjectConfig::load(&workspace_root().join("configs/reproduce-quick.toml")).unwrap();
        cfg.run.results_dir = dir.to_path_buf();
        cfg
    }

    fn plan(cfg: &ProjectConfig, options: SbatchOptions, stages: &[StageName]) -> Plan {
        Plan::new(cfg, PathBuf::from("/opt/my tools/xtask"), options, 2, stages).unwrap()
    }

    fn edges(p: &Plan) -> Vec<(&str, Option<usize>, Vec<&str>)> {
        p.jobs.iter().map(|j| (j.name, j.tasks, j.after.clone())).collect()
    }

    #[test]
    fn the_chain_runs_folds_and_shards_as_arrays_with_dependent_merges() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = quick(tmp.path());
        let p = plan(&cfg, SbatchOptions::default(), &StageName::ALL);
        assert_eq!(
            edges(&p),
            vec![
                ("data", None, vec![]),
                ("cv", Some(3), vec!["data"]),
                ("cv-merge", None, vec!["cv"]),
                ("holdout", None, vec!["data"]),
                ("interpret", Some(2), vec!["holdout"]),
                ("interpret-merge", None, vec!["interpret"]),
                ("sanity", None, vec!["interpret-merge"]),
                ("report", None, vec!["cv-merge", "sanity"]),
            ]
        );
        let holdout = tmp.path().join("reproduce-quick/holdout").display().to_string();
        let interpret = p.job("interpret").unwrap();
        assert_eq!(
            interpret.args,
            ["interpret", "--run", &holdout, "--shard", "$SLURM_ARRAY_TASK_ID/2", "--save-scan-maps"]
        );
        let merge = p.job("interpret-merge").unwrap();
        assert_eq!(merge.args, ["interpret", "--run", &holdout, "--merge-shards", "2"]);
        let report = p.job("report").unwrap();
        let frozen = tmp.path().join("reproduce-quick/slurm/config/report.toml").display().to_string();
        assert_eq!(report.args, ["reproduce-paper", "--config", &frozen, "--report-only"]);
    }

    #[test]
    fn stages_left_out_are_not_waited_for_and_no_sanity_job_without_checks() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = quick(tmp.path());
        let p = plan(&cfg, SbatchOptions::default(), &[StageName::Cv, StageName::Report]);
        assert_eq!(
            edges(&p),
            vec![("cv", Some(3), vec![]), ("cv-merge", None, vec!["cv"]), ("report", None, vec!["cv-merge"])]
        );
        cfg.sanity.cascade = false;
        cfg.sanity.data_randomisation = false;
        cfg.sanity.faithfulness = false;
        let p = plan(&cfg, SbatchOptions::default(), &StageName::ALL);
        assert!(p.job("sanity").is_none());
        assert_eq!(p.job("report").unwrap().after, ["cv-merge", "interpret-merge"]);
        assert!(!p.job("interpret").unwrap().args.contains(&"--save-scan-maps".to_string()));
        assert!("nope".parse::<StageName>().unwrap_err().contains("data, cv, holdout, interpret, sanity, report"));
    }

    #[test]
    fn scripts_carry_the_sbatch_options_and_gpus_only_for_training() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = quick(tmp.path());
        let options = SbatchOptions {
            partition: Some("gpu".into()),
            account: Some("lab".into()),
            time: Some("02:00:00".into()),
            cpus_per_task: Some(8),
            mem: Some("16G".into()),
            gpus: Some(1),
            extra: vec!["--qos=long".into()],
            shards: None,
        };
        let p = plan(&cfg, options, &StageName::ALL);
        let cv = p.script_text(p.job("cv").unwrap());
        for line in [
            "#SBATCH --array=1-3",
            "#SBATCH --partition=gpu",
            "#SBATCH --account=lab",
            "#SBATCH --time=02:00:00",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --mem=16G",
            "#SBATCH --gpus=1",
            "#SBATCH --qos=long",
            "#SBATCH --job-name=reproduce-quick-cv",
        ] {
            assert!(cv.lines().any(|l| l == line), "{line} missing from\n{cv}");
        }
        let logs = tmp.path().join("reproduce-quick/slurm/logs/cv_%A_%a.out");
        assert!(cv.contains(&format!("#SBATCH --output={}", logs.display())), "{cv}");
        let exec = cv.lines().find(|l| l.starts_with("exec ")).unwrap();
        let pinned = tmp.path().join("reproduce-quick/slurm/bin/xtask");
        assert!(exec.starts_with(&format!("exec {} train --config ", pinned.display())), "{exec}");
        assert!(exec.ends_with("--fold \"$SLURM_ARRAY_TASK_ID\" --resume --device cuda"), "{exec}");
        let interpret = p.script_text(p.job("interpret").unwrap());
        assert!(!interpret.contains("--gpus"), "only the training jobs ask for GPUs:\n{interpret}");
        let sanity = p.script_text(p.job("sanity").unwrap());
        assert!(sanity.contains("#SBATCH --gpus=1"), "the data randomisation trains a model:\n{sanity}");
        let configs = stage_configs(&cfg, true).unwrap();
        let device = |name: &str| {
            let text = &configs.iter().find(|(n, _)| *n == name).unwrap().1;
            ProjectConfig::from_toml(text, Path::new(name)).unwrap().train.device
        };
        assert_eq!(device("holdout"), model::DeviceKind::Cuda(0), "the sanity job trains on the hold-out run's device");
        assert_eq!(device("cv"), model::DeviceKind::Cuda(0));
        assert_eq!(device("report"), cfg.train.device);
        assert!(interpret.contains("\"$SLURM_ARRAY_TASK_ID/2\""), "{interpret}");
        let submit = p.submit_text();
        assert!(
            submit.contains("report=$(sbatch --parsable --dependency=afterok:$cv_merge:$sanity report.sbatch)"),
            "{submit}"
        );
        assert!(submit.contains("cv=$(sbatch --parsable --dependency=afterok:$data cv.sbatch)"), "{submit}");
    }

    #[test]
    fn written_scripts_are_valid_bash_and_stage_configs_load_as_reproduce_gives_them() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = quick(tmp.path());
        let config = workspace_root().join("configs/reproduce-quick.toml");
        let binary = tmp.path().join("built-xtask");
        std::fs::write(&binary, b"#!/bin/sh\necho pinned\n").unwrap();
        let options = SbatchOptions { cpus_per_task: Some(2), ..Default::default() };
        let p = Plan::new(&cfg, binary.clone(), options, 2, &StageName::ALL).unwrap();
        let submit = write_plan(&p, &cfg, &config).unwrap();
        assert_eq!(std::fs::read(p.pinned_binary()).unwrap(), std::fs::read(&binary).unwrap(), "the jobs run a copy");
        for path in p.jobs.iter().map(|j| p.script(j)).chain([submit]) {
            let out = std::process::Command::new("bash").arg("-n").arg(&path).output().unwrap();
            assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        }
        for (name, mode) in [("data", None), ("cv", Some(TrainMode::Kfold)), ("holdout", Some(TrainMode::Holdout))] {
            let loaded = ProjectConfig::load(&p.slurm_dir().join("config").join(format!("{name}.toml"))).unwrap();
            assert_eq!(loaded, stage_config(&cfg, name, mode), "{name}");
        }
        let frozen = ProjectConfig::load(&p.slurm_dir().join("config/report.toml")).unwrap();
        assert_eq!(frozen, cfg, "the report job reads the config as it was");
        let record = PlanRecord::read(&p.run_dir).unwrap();
        assert_eq!(record, p.record(&config));
        assert_eq!(record.config, Path::new("configs/reproduce-quick.toml"));
    }

    #[test]
    fn a_task_is_complete_when_its_outputs_are_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = quick(tmp.path());
        let p = plan(&cfg, SbatchOptions::default(), &StageName::ALL);
        let record = p.record(Path::new("c.toml"));
        let cv = record.jobs.iter().find(|j| j.name == "cv").unwrap();
        assert_eq!(record.missing_tasks(cv), [Some(1), Some(2), Some(3)]);
        let fold2 = RunLayout::new(p.run_dir.join("cv")).fold("fold2");
        std::fs::create_dir_all(fold2.dir()).unwrap();
        std::fs::write(fold2.result(), "{}").unwrap();
        assert!(fold2.is_finished(), "the fixture must make the fold finished");
        assert_eq!(record.missing_tasks(cv), [Some(1), Some(3)]);
        let shard = RunLayout::new(p.run_dir.join("holdout")).relevance().shard(2, 2);
        std::fs::create_dir_all(shard.dir()).unwrap();
        std::fs::write(shard.complete(), "{}").unwrap();
        let interpret = record.jobs.iter().find(|j| j.name == "interpret").unwrap();
        // a shard marker that names no hold-out model (or an earlier one) is not this model's
        // maps: still missing (xtask/tests/stale_outputs.rs checks a current marker counts)
        assert_eq!(record.missing_tasks(interpret), [Some(1), Some(2)]);
        let report = record.jobs.iter().find(|j| j.name == "report").unwrap();
        assert_eq!(record.missing_tasks(report), [None]);
    }

    #[test]
    fn a_run_folder_with_a_space_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = quick(&tmp.path().join("my results"));
        let e = Plan::new(&cfg, PathBuf::from("x"), SbatchOptions::default(), 2, &StageName::ALL).unwrap_err();
        assert!(e.to_string().contains("holds a space"), "{e}");
    }

    #[test]
    fn a_changed_setting_of_a_stage_with_outputs_refuses_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = quick(tmp.path());
        let config = tmp.path().join("quick.toml");
        let binary = tmp.path().join("built-xtask");
        std::fs::write(&binary, b"#!/bin/sh\n").unwrap();
        let p = Plan::new(&cfg, binary, SbatchOptions::default(), 2, &StageName::ALL).unwrap();
        write_plan(&p, &cfg, &config).unwrap();
        let mut edited = cfg.clone();
        edited.train.epochs = 120;
        edited.slurm.partition = Some("gpu".into());
        let configs = stage_configs(&edited, false).unwrap();
        // No outputs yet: nothing would be reused.
        refuse_changed_config(&p.run_dir, &configs, &config).unwrap();
        let fold = RunLayout::new(p.run_dir.join("cv")).fold("fold1");
        std::fs::create_dir_all(fold.dir()).unwrap();
        std::fs::write(fold.result(), "{}").unwrap();
        std::fs::create_dir_all(p.run_dir.join("data/splits")).unwrap();
        std::fs::write(p.run_dir.join("data/splits/holdout.csv"), "PTID,Image.ID,set\n").unwrap();
        let e = refuse_changed_config(&p.run_dir, &configs, &config).unwrap_err().to_string();
        assert!(e.contains("stage `cv`") && e.contains("[train] epochs: recorded 2, now 120"), "{e}");
        assert!(e.contains(&p.run_dir.join("cv").display().to_string()), "the outputs to remove are named: {e}");
        assert!(e.contains("new [run] name"), "{e}");
        assert!(!e.contains("stage `data`"), "the data do not depend on [train]: {e}");
        assert!(!e.contains("[slurm]"), "the job settings change no result: {e}");
        let frozen = std::fs::read_to_string(p.slurm_dir().join("config/cv.toml")).unwrap();
        assert!(frozen.contains("epochs = 2"), "the frozen config stays as it was");
        // Settings that change no output pass.
        let mut cosmetic = cfg.clone();
        cosmetic.slurm.partition = Some("gpu".into());
        refuse_changed_config(&p.run_dir, &stage_configs(&cosmetic, false).unwrap(), &config).unwrap();
        // A data setting concerns every stage with outputs.
        let mut split = cfg.clone();
        split.split.seed += 1;
        let e = refuse_changed_config(&p.run_dir, &stage_configs(&split, false).unwrap(), &config).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("stage `data`") && e.contains("stage `cv`") && e.contains("[split] seed"), "{e}");
        assert!(!e.contains("stage `holdout`"), "no hold-out outputs yet: {e}");
    }

    #[test]
    fn the_test_scans_are_counted_from_the_holdout_split_with_the_per_patient_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = quick(tmp.path());
        assert_eq!(holdout_test_scans(&cfg), None, "no split written yet");
        let splits = cfg.run.dir().join("data/splits");
        std::fs::create_dir_all(&splits).unwrap();
        std::fs::write(
            splits.join("holdout.csv"),
            "PTID,Image.ID,set\n011_S_0001,1,train\n011_S_0002,2,test\n011_S_0002,3,test\n011_S_0002,4,test\n\
             011_S_0003,5,test\n",
        )
        .unwrap();
        cfg.relevance.scans_per_patient = 0;
        cfg.relevance.cn_scans_per_patient = None;
        assert_eq!(holdout_test_scans(&cfg), Some(4));
        cfg.relevance.scans_per_patient = 2;
        assert_eq!(holdout_test_scans(&cfg), Some(3));
        cfg.relevance.split = "fold1".into();
        assert_eq!(holdout_test_scans(&cfg), None, "not the hold-out split");
    }

    #[test]
    fn the_printed_command_names_the_config_and_binary_by_absolute_paths() {
        let args: Vec<String> = ["slurm", "--config", "configs/q.toml", "--binary=bin/x", "--shards", "2", "--submit"]
            .map(String::from)
            .into();
        let cwd = std::env::current_dir().unwrap();
        let line =
            command_line(Path::new("/r/slurm/bin/xtask"), &args, Path::new("/abs/q.toml"), &["--submit", "--resume"]);
        assert_eq!(
            line,
            format!(
                "/r/slurm/bin/xtask slurm --config /abs/q.toml --binary {} --shards 2 --submit --resume",
                cwd.join("bin/x").display()
            )
        );
        let bare = command_line(Path::new("/x"), &["slurm".to_string()], Path::new("/abs/q.toml"), &["--submit"]);
        assert_eq!(bare, "/x slurm --config /abs/q.toml --submit", "the default config is named too");
    }

    #[test]
    fn words_are_quoted_for_bash() {
        assert_eq!(quote("/a/b-c_d.toml"), "/a/b-c_d.toml");
        assert_eq!(quote("my dir"), "'my dir'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }
}
