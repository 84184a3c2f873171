//! `slurm --submit [--resume]`: sbatch each job of the chain with `afterok` on the ids of the
//! jobs it waits for, and keep the ids in `slurm/jobs.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use adni_data::fsutil::write_bytes_atomically;

use super::plan::PlanRecord;
use super::scheduler::{self, JobState, TaskState};
use super::status::StatusRow;

/// The file name of the submissions record in `slurm/`.
pub const JOBS_FILE: &str = "jobs.json";

/// One call of `slurm --submit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// Seconds since the Unix epoch.
    pub submitted_unix: u64,
    /// Whether it was a `--resume`.
    pub resume: bool,
    /// The jobs it submitted, in order.
    pub jobs: Vec<SubmittedJob>,
}

/// One sbatch call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmittedJob {
    /// The chain's job name.
    pub name: String,
    /// The SLURM job id.
    pub job_id: String,
    /// The array tasks submitted (empty for a job without array).
    pub tasks: Vec<usize>,
}

impl SubmittedJob {
    /// The scheduler keys of its tasks (`id_task`), or the job id alone.
    pub fn keys(&self) -> Vec<(Option<usize>, String)> {
        if self.tasks.is_empty() {
            vec![(None, self.job_id.clone())]
        } else {
            self.tasks.iter().map(|t| (Some(*t), format!("{}_{t}", self.job_id))).collect()
        }
    }
}

fn jobs_path(run_dir: &Path) -> PathBuf {
    run_dir.join("slurm").join(JOBS_FILE)
}

/// Every submission of a run, oldest first (none when nothing was submitted).
pub fn read_submissions(run_dir: &Path) -> Result<Vec<Submission>> {
    let path = jobs_path(run_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a record of `cargo xtask slurm --submit`", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// A task of the chain: its job's name and its array index (`None` for a job without array).
pub type TaskKey = (String, Option<usize>);

/// The latest submitted task of each (job, task), over every submission: `(job, task) → (key, submission index)`.
pub fn latest_tasks(submissions: &[Submission]) -> BTreeMap<TaskKey, String> {
    let mut latest = BTreeMap::new();
    for s in submissions {
        for j in &s.jobs {
            for (task, key) in j.keys() {
                latest.insert((j.name.clone(), task), key);
            }
        }
    }
    latest
}

/// The scheduler's states of the latest submitted tasks, keyed like [`latest_tasks`].
pub fn latest_states(submissions: &[Submission]) -> Result<BTreeMap<TaskKey, (String, Option<TaskState>)>> {
    let latest = latest_tasks(submissions);
    let mut ids: Vec<String> = latest.values().map(|k| k.split('_').next().unwrap_or(k).to_string()).collect();
    ids.sort();
    ids.dedup();
    let states = scheduler::query(&ids)?;
    Ok(latest
        .into_iter()
        .map(|(k, key)| {
            let state = states.get(&key).cloned();
            (k, (key, state))
        })
        .collect())
}

/// Refuses while a task of the chain (`rows`, from [`super::status::status_rows`]) is pending or
/// running: pending jobs read the scripts, configs and binary when they start.
pub fn refuse_live(plan: &PlanRecord, rows: &[StatusRow]) -> Result<()> {
    let live: Vec<String> = rows.iter().filter(|r| r.live()).filter_map(|r| r.key.clone()).collect();
    if !live.is_empty() {
        bail!(
            "jobs of {} are still pending or running ({}): the chain is left as it is; wait for them \
             (`{} slurm status --run {} --wait 3600`) or cancel them (scancel), then run this again",
            plan.run_dir.display(),
            live.join(", "),
            plan.binary().display(),
            plan.run_dir.display()
        );
    }
    Ok(())
}

/// Before a submission, with no job of the earlier one live ([`refuse_live`] on `earlier`):
/// cancels the jobs stuck behind a failed one, and removes the folder locks that the chain's
/// killed jobs left (none of its jobs runs, so every lock the chain's binary took is stale).
fn settle_earlier(plan: &PlanRecord, earlier: &[StatusRow]) -> Result<()> {
    let stuck: Vec<String> =
        earlier.iter().filter(|r| r.kind() == Some(JobState::Stuck)).filter_map(|r| r.key.clone()).collect();
    if !stuck.is_empty() {
        println!("slurm: cancelling jobs that wait on a failed job: {}", stuck.join(", "));
        scheduler::scancel(&stuck)?;
    }
    for lock in stale_locks(&plan.run_dir, &plan.binary())? {
        println!("slurm: removing the lock a killed job left: {}", lock.display());
        std::fs::remove_file(&lock).with_context(|| format!("cannot remove {}", lock.display()))?;
    }
    Ok(())
}

/// The lock files under `dir` that a process of `binary` took.
fn stale_locks(dir: &Path, binary: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else if e.file_name() == adni_data::lock::LOCK_FILE
                && let Some(h) = adni_data::lock::read_holder(&path)?
                && h.command.starts_with(&binary.display().to_string())
            {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Submits the chain (or, with `resume`, the jobs and tasks whose outputs are missing, and every
/// job after a resubmitted one).
/// `earlier` holds the states of the earlier submissions' tasks, none of them live.
pub fn submit(plan: &PlanRecord, resume: bool, earlier: &[StatusRow]) -> Result<()> {
    let mut submissions = read_submissions(&plan.run_dir)?;
    settle_earlier(plan, earlier)?;
    let mut this = Submission {
        submitted_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        resume,
        jobs: Vec::new(),
    };
    // The jobs submitted now, by name: a job after one of them runs again (its inputs change) and
    // waits for it.
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for job in &plan.jobs {
        let deps: Vec<&str> = job.after.iter().filter_map(|a| ids.get(a).map(String::as_str)).collect();
        let tasks = if !resume || !deps.is_empty() { PlanRecord::tasks(job) } else { plan.missing_tasks(job) };
        if tasks.is_empty() {
            println!("  {:<16} complete, not submitted", job.name);
            continue;
        }
        let mut args: Vec<String> = Vec::new();
        if !deps.is_empty() {
            args.push(format!("--dependency=afterok:{}", deps.join(":")));
        }
        let array: Vec<usize> = tasks.iter().flatten().copied().collect();
        if job.tasks.is_some() {
            let list: Vec<String> = array.iter().map(usize::to_string).collect();
            args.push(format!("--array={}", list.join(",")));
        }
        let script = plan.run_dir.join("slurm").join(format!("{}.sbatch", job.name));
        let id = scheduler::sbatch(&args, &script)?;
        let shown = if job.tasks.is_some() { format!(" tasks {}", compact(&array)) } else { String::new() };
        let after = if deps.is_empty() { String::new() } else { format!(" after {}", deps.join(", ")) };
        println!("  {:<16} job {id}{shown}{after}", job.name);
        ids.insert(job.name.clone(), id.clone());
        this.jobs.push(SubmittedJob { name: job.name.clone(), job_id: id, tasks: array });
        // Recorded after every sbatch, so that a failure halfway loses no job id.
        write_submissions(&plan.run_dir, &submissions, &this)?;
    }
    if this.jobs.is_empty() {
        println!("slurm: every job of {} is complete; nothing submitted", plan.run_dir.display());
        return Ok(());
    }
    submissions.push(this);
    println!(
        "slurm: {} jobs submitted; follow them with `{} slurm status --run {}`",
        ids.len(),
        plan.binary().display(),
        plan.run_dir.display()
    );
    Ok(())
}

fn write_submissions(run_dir: &Path, earlier: &[Submission], this: &Submission) -> Result<()> {
    let mut all = earlier.to_vec();
    all.push(this.clone());
    write_bytes_atomically(&jobs_path(run_dir), serde_json::to_string_pretty(&all)?.as_bytes())?;
    Ok(())
}

/// `1-3,5` for [1, 2, 3, 5].
pub fn compact(tasks: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tasks.len() {
        let mut j = i;
        while j + 1 < tasks.len() && tasks[j + 1] == tasks[j] + 1 {
            j += 1;
        }
        parts.push(if j > i { format!("{}-{}", tasks[i], tasks[j]) } else { tasks[i].to_string() });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_locks_the_chains_binary_took_are_stale() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        let binary = run.join("slurm/bin/xtask");
        let lock = |dir: &str, command: &str| {
            let d = run.join(dir);
            std::fs::create_dir_all(&d).unwrap();
            let text = format!("pid = 4242\nhost = node-b\nsince = 1\ncommand = {command}\n");
            std::fs::write(d.join(adni_data::lock::LOCK_FILE), text).unwrap();
            d.join(adni_data::lock::LOCK_FILE)
        };
        let fold = lock("cv/folds/fold2", &format!("{} train --config c.toml --fold 2 --resume", binary.display()));
        lock("holdout", "/home/me/target/release/xtask train --config mine.toml");
        assert_eq!(stale_locks(run, &binary).unwrap(), [fold]);
    }

    #[test]
    fn task_lists_are_compacted_into_ranges() {
        assert_eq!(compact(&[1, 2, 3, 5]), "1-3,5");
        assert_eq!(compact(&[2]), "2");
        assert_eq!(compact(&[]), "");
        assert_eq!(compact(&[1, 3, 4]), "1,3-4");
    }

    #[test]
    fn the_latest_submission_of_each_task_wins() {
        let job =
            |name: &str, id: &str, tasks: Vec<usize>| SubmittedJob { name: name.into(), job_id: id.into(), tasks };
        let first = Submission {
            submitted_unix: 1,
            resume: false,
            jobs: vec![job("data", "10", vec![]), job("cv", "11", vec![1, 2, 3])],
        };
        let resumed = Submission { submitted_unix: 2, resume: true, jobs: vec![job("cv", "20", vec![2])] };
        let latest = latest_tasks(&[first, resumed]);
        assert_eq!(latest[&("cv".to_string(), Some(2))], "20_2");
        assert_eq!(latest[&("cv".to_string(), Some(1))], "11_1");
        assert_eq!(latest[&("data".to_string(), None)], "10");
        assert_eq!(latest.len(), 4);
    }
}
