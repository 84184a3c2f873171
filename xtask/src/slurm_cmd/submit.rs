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

/// The file `slurm` holds locked (an advisory lock, which the system releases when the process
/// ends, however it ends) while it writes or submits a run's chain.
pub const CHAIN_LOCK_FILE: &str = "submit.lock";

/// The held lock of [`lock_chain`]; released when dropped.
#[derive(Debug)]
pub struct ChainLock {
    _file: std::fs::File,
}

/// Locks `run_dir/slurm/` for this call: one `slurm` at a time checks the earlier chain,
/// writes the scripts and submits (else two calls both submit, and `jobs.json` keeps the ids of
/// one). Refuses, naming the holder, while another call holds it. (Not a folder lock of
/// `adni_data::lock`: those count the locks of the folders above, and a killed report job's
/// lock on the run folder, from another host, would then block the very call that removes it.)
pub fn lock_chain(run_dir: &Path) -> Result<ChainLock> {
    use std::io::Write as _;
    let dir = run_dir.join("slurm");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(CHAIN_LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "{}: another `xtask slurm` is writing or submitting this chain ({}); wait for it to end, then run \
                 this again",
                path.display(),
                if holder.trim().is_empty() { "holder unknown" } else { holder.trim() }
            );
        }
        Err(std::fs::TryLockError::Error(e)) => bail!("cannot lock {}: {e}", path.display()),
    }
    let command: Vec<String> = std::env::args().collect();
    let holder = format!(
        "process {} on host {} since {} s after 1970: `{}`\n",
        std::process::id(),
        adni_data::lock::host_name(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        command.join(" ")
    );
    file.set_len(0)
        .and_then(|()| file.write_all(holder.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(ChainLock { _file: file })
}

/// A folder lock under the run folder that a process which no longer runs left, and how that is
/// known.
#[derive(Debug, Clone, PartialEq)]
pub struct StaleLock {
    /// The lock file.
    pub path: PathBuf,
    /// Why its holder is known to be gone.
    pub why: String,
}

/// The folder locks under `run_dir` (`adni_data::lock::LOCK_FILE`), judged before a
/// submission: a lock whose holder is provably gone is returned, to be removed (a killed job's
/// lock on another host would otherwise refuse the resubmitted job); a holder that may still run
/// refuses the submission, naming the lock and its holder. Gone means: on this host, its pid no
/// longer runs; on another host, it is the process of a job of this chain (its log names the
/// host and pid) that the scheduler says has ended. Unreadable lock files are left to the jobs
/// (a folder lock takes one over). The caller's own locks are skipped.
pub fn stale_locks(run_dir: &Path) -> Result<Vec<StaleLock>> {
    let submissions = read_submissions(run_dir)?;
    let here = adni_data::lock::host_name();
    let mut stale = Vec::new();
    let mut live = Vec::new();
    for path in lock_files(run_dir) {
        let Some(h) = adni_data::lock::read_holder(&path)? else { continue };
        if h.host == here {
            if h.pid == std::process::id() {
                continue;
            }
            if adni_data::lock::pid_alive(h.pid) {
                live.push(format!("{} (process {} on this host, `{}`)", path.display(), h.pid, h.command));
            } else {
                stale.push(StaleLock { path, why: format!("process {} on this host no longer runs", h.pid) });
            }
            continue;
        }
        match chain_job_of(run_dir, &submissions, &h.host, h.pid)? {
            Some((key, Some(state))) if matches!(state.kind(), JobState::Live | JobState::Stuck) => live.push(format!(
                "{} (process {} on host {}, job {key} of this chain, {})",
                path.display(),
                h.pid,
                h.host,
                state.describe()
            )),
            Some((key, state)) => stale.push(StaleLock {
                path,
                why: format!(
                    "job {key} of this chain held it (process {} on host {}) and has ended ({})",
                    h.pid,
                    h.host,
                    state.map_or_else(|| "the scheduler no longer knows it".to_string(), |s| s.describe())
                ),
            }),
            None => live.push(format!(
                "{} (process {} on host {}, `{}`: no job of this chain)",
                path.display(),
                h.pid,
                h.host,
                h.command
            )),
        }
    }
    if !live.is_empty() {
        bail!(
            "folders of {} are locked by processes that may still run: {}; nothing was submitted. Wait for them \
             to finish or stop them; a lock whose process surely ended (another host) may be deleted by hand",
            run_dir.display(),
            live.join("; ")
        );
    }
    Ok(stale)
}

/// The lock files under `dir`, sorted.
fn lock_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else if e.file_name() == adni_data::lock::LOCK_FILE {
                found.push(e.path());
            }
        }
    }
    found.sort();
    found
}

/// The submitted task of this chain whose log records that it ran as process `pid` on `host`
/// (the scripts' first line), with its scheduler key and state (`None`: no longer known).
fn chain_job_of(
    run_dir: &Path,
    submissions: &[Submission],
    host: &str,
    pid: u32,
) -> Result<Option<(String, Option<TaskState>)>> {
    for s in submissions.iter().rev() {
        for j in &s.jobs {
            for (_, key) in j.keys() {
                let log = run_dir.join("slurm").join("logs").join(format!("{}_{key}.out", j.name));
                let Ok(text) = std::fs::read_to_string(&log) else { continue };
                if log_processes(&text).iter().any(|(h, p)| h == host && *p == pid) {
                    let state = scheduler::query(std::slice::from_ref(&j.job_id))?.remove(&key);
                    return Ok(Some((key, state)));
                }
            }
        }
    }
    Ok(None)
}

/// The `(host, pid)` of each start a job's log records (`… on HOST, pid PID, …`; a requeued
/// job starts again in the same log).
fn log_processes(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(" on ")?;
            let (host, rest) = rest.split_once(", pid ")?;
            let pid = rest.split(',').next()?.trim().parse().ok()?;
            Some((host.trim().to_string(), pid))
        })
        .collect()
}

/// Before a submission, with no job of the earlier one live ([`refuse_live`] on `earlier`):
/// cancels the jobs stuck behind a failed one, and removes the folder locks whose holders are
/// gone ([`stale_locks`]).
fn settle_earlier(earlier: &[StatusRow], stale: &[StaleLock]) -> Result<()> {
    let stuck: Vec<String> =
        earlier.iter().filter(|r| r.kind() == Some(JobState::Stuck)).filter_map(|r| r.key.clone()).collect();
    if !stuck.is_empty() {
        println!("slurm: cancelling jobs that wait on a failed job: {}", stuck.join(", "));
        scheduler::scancel(&stuck)?;
    }
    for lock in stale {
        println!("slurm: removing the lock of a process that ended: {} ({})", lock.path.display(), lock.why);
        match std::fs::remove_file(&lock.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", lock.path.display())),
        }
    }
    Ok(())
}

/// Submits the chain (or, with `resume`, the jobs and tasks whose outputs are missing, and every
/// job after a resubmitted one).
/// `earlier` holds the states of the earlier submissions' tasks, none of them live; `stale` the
/// locks to remove first ([`stale_locks`]). When an sbatch fails, the jobs this call submitted
/// are cancelled and left out of `jobs.json`.
pub fn submit(plan: &PlanRecord, resume: bool, earlier: &[StatusRow], stale: &[StaleLock]) -> Result<()> {
    let submissions = read_submissions(&plan.run_dir)?;
    settle_earlier(earlier, stale)?;
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
        let id = match scheduler::sbatch(&args, &script) {
            Ok(id) => id,
            Err(e) => return Err(undo(&plan.run_dir, &submissions, &this, e)),
        };
        let shown = if job.tasks.is_some() { format!(" tasks {}", compact(&array)) } else { String::new() };
        let after = if deps.is_empty() { String::new() } else { format!(" after {}", deps.join(", ")) };
        println!("  {:<16} job {id}{shown}{after}", job.name);
        ids.insert(job.name.clone(), id.clone());
        this.jobs.push(SubmittedJob { name: job.name.clone(), job_id: id, tasks: array });
        // Recorded after every sbatch, so that a process killed halfway loses no job id.
        write_submissions(&plan.run_dir, &submissions, Some(&this))?;
    }
    if this.jobs.is_empty() {
        println!("slurm: every job of {} is complete; nothing submitted", plan.run_dir.display());
        return Ok(());
    }
    println!(
        "slurm: {} jobs submitted; follow them with `{} slurm status --run {}`",
        ids.len(),
        plan.binary().display(),
        plan.run_dir.display()
    );
    Ok(())
}

/// After an sbatch failed (`error`): cancels the jobs this call submitted (`this`) and records
/// the submissions as they were before it; the error says what was done. When the cancel fails,
/// the jobs stay recorded (so that `slurm status` follows them) and the error says so.
fn undo(run_dir: &Path, earlier: &[Submission], this: &Submission, error: anyhow::Error) -> anyhow::Error {
    let ids: Vec<String> = this.jobs.iter().map(|j| j.job_id.clone()).collect();
    if ids.is_empty() {
        return anyhow::anyhow!("{error:#}; nothing was submitted");
    }
    let shown: Vec<String> = this.jobs.iter().map(|j| format!("{} {}", j.name, j.job_id)).collect();
    if let Err(e) = scheduler::scancel(&ids) {
        return anyhow::anyhow!(
            "{error:#}; the jobs this call had submitted ({}) could not be cancelled ({e:#}); they stay recorded in {}: \
             cancel them with `scancel {}`",
            shown.join(", "),
            jobs_path(run_dir).display(),
            ids.join(" ")
        );
    }
    match write_submissions(run_dir, earlier, None) {
        Ok(()) => anyhow::anyhow!(
            "{error:#}; cancelled the jobs this call had submitted ({}); nothing of this submission is recorded",
            shown.join(", ")
        ),
        Err(e) => anyhow::anyhow!(
            "{error:#}; cancelled the jobs this call had submitted ({}), but {} still lists them ({e:#})",
            shown.join(", "),
            jobs_path(run_dir).display()
        ),
    }
}

/// Writes `jobs.json`: the earlier submissions, then `this` if given.
fn write_submissions(run_dir: &Path, earlier: &[Submission], this: Option<&Submission>) -> Result<()> {
    let mut all = earlier.to_vec();
    all.extend(this.cloned());
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

    /// A pid that is not running: the highest pid the kernel allows, plus one.
    fn dead_pid() -> u32 {
        std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(4_194_304)
            + 1
    }

    /// Writes a folder lock under `run` held by `pid` on `host`; returns its path.
    fn lock(run: &Path, dir: &str, pid: u32, host: &str) -> PathBuf {
        let d = run.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        let text = format!("pid = {pid}\nhost = {host}\nsince = 1\ncommand = /r/slurm/bin/xtask train --fold 1\n");
        std::fs::write(d.join(adni_data::lock::LOCK_FILE), text).unwrap();
        d.join(adni_data::lock::LOCK_FILE)
    }

    #[test]
    fn a_lock_is_removed_only_when_its_holder_is_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        let here = adni_data::lock::host_name();
        let dead = lock(run, "cv/folds/fold2", dead_pid(), &here);
        let stale = stale_locks(run).unwrap();
        assert_eq!(stale.iter().map(|l| l.path.clone()).collect::<Vec<_>>(), std::slice::from_ref(&dead));
        assert!(stale[0].why.contains("no longer runs"), "{:?}", stale[0]);
        // A live process on this host (pid 1 always runs), such as a `train --resume` by hand.
        let live = lock(run, "cv/folds/fold1", 1, &here);
        let e = stale_locks(run).unwrap_err().to_string();
        assert!(e.contains(&live.display().to_string()) && e.contains("process 1 on this host"), "{e}");
        assert!(!e.contains(&dead.display().to_string()), "only the live lock is named: {e}");
        std::fs::remove_file(&live).unwrap();
        // On another host with no job of this chain recorded: it may run, so it refuses.
        let other = lock(run, "holdout", dead_pid(), "node-17");
        let e = stale_locks(run).unwrap_err().to_string();
        assert!(e.contains(&other.display().to_string()) && e.contains("host node-17"), "{e}");
        assert!(e.contains("no job of this chain"), "{e}");
        // The chain's own lock (this process) is skipped.
        std::fs::remove_file(&other).unwrap();
        lock(run, "slurm", std::process::id(), &here);
        assert_eq!(stale_locks(run).unwrap().len(), 1);
    }

    #[test]
    fn job_logs_name_the_host_and_pid_of_each_start() {
        let log = "2026-01-01T00:00:00Z cv job 12 task 2 on node-3, pid 4711, 4 threads\ntraining…\n\
                   2026-01-01T01:00:00Z cv job 12 task 2 on node-4, pid 815, 4 threads\n";
        assert_eq!(log_processes(log), [("node-3".to_string(), 4711), ("node-4".to_string(), 815)]);
        assert!(log_processes("epoch 3 on fold 2, loss 0.3\n").is_empty());
    }

    #[test]
    fn a_second_call_cannot_take_the_chains_lock_while_the_first_holds_it() {
        let tmp = tempfile::tempdir().unwrap();
        let held = lock_chain(tmp.path()).unwrap();
        let e = lock_chain(tmp.path()).unwrap_err().to_string();
        assert!(e.contains(CHAIN_LOCK_FILE) && e.contains("another `xtask slurm`"), "{e}");
        assert!(e.contains(&format!("process {}", std::process::id())), "the holder is named: {e}");
        drop(held);
        // Released with the file. (Another test's child process may briefly share the open
        // file between its fork and exec: a few tries.)
        let again = (0..100).find_map(|_| {
            lock_chain(tmp.path()).ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                None
            })
        });
        assert!(again.is_some(), "the lock is free again once dropped");
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
