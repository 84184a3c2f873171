//! `cargo xtask slurm status --run R [--wait S]`: each job's and task's state on disk (are its
//! outputs complete?) and in the scheduler (its latest submission), the failed ones with their
//! logs, and what to do next.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::plan::PlanRecord;
use super::scheduler::{JobState, TaskState};
use super::submit::{Submission, latest_states, read_submissions};

/// One line of the status table.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    /// The chain's job name.
    pub job: String,
    /// The array task, if the job is an array.
    pub task: Option<usize>,
    /// Whether its outputs are complete on disk.
    pub complete: bool,
    /// The scheduler key of its latest submission (`id` or `id_task`), if it was submitted.
    pub key: Option<String>,
    /// The scheduler's state of that submission, if the scheduler still knows it.
    pub state: Option<TaskState>,
}

impl StatusRow {
    /// Its log file (`slurm/logs/<job>_<id>[_<task>].out`), if it was submitted.
    pub fn log(&self, run_dir: &Path) -> Option<PathBuf> {
        self.key.as_ref().map(|k| run_dir.join("slurm").join("logs").join(format!("{}_{k}.out", self.job)))
    }

    /// What its state means: the scheduler's state, or for a submitted task that the scheduler no
    /// longer knows and whose outputs are missing, `Failed` (SLURM drops an array task cancelled
    /// before it started without a trace, and purges finished jobs after `MinJobAge`).
    pub fn kind(&self) -> Option<JobState> {
        match (&self.state, &self.key) {
            (Some(s), _) => Some(s.kind()),
            (None, Some(_)) if !self.complete => Some(JobState::Failed),
            _ => None,
        }
    }

    /// Pending or running.
    pub fn live(&self) -> bool {
        self.kind() == Some(JobState::Live)
    }
}

/// The status of every task of the chain.
pub fn status_rows(plan: &PlanRecord) -> Result<Vec<StatusRow>> {
    let submissions = read_submissions(&plan.run_dir)?;
    let states = latest_states(&submissions)?;
    let mut rows = Vec::new();
    for job in &plan.jobs {
        for task in PlanRecord::tasks(job) {
            let (key, state) = match states.get(&(job.name.clone(), task)) {
                Some((key, state)) => (Some(key.clone()), state.clone()),
                None => (None, None),
            };
            rows.push(StatusRow {
                job: job.name.clone(),
                task,
                complete: plan.task_complete(&job.name, task),
                key,
                state,
            });
        }
    }
    mark_stuck(&upstream_jobs(plan, &submissions), &mut rows);
    Ok(rows)
}

/// The job ids each submitted job waits for (`afterok`): the jobs of its own submission that it
/// comes after in the chain (as [`super::submit::submit`] gave them to sbatch).
fn upstream_jobs(plan: &PlanRecord, submissions: &[Submission]) -> BTreeMap<String, Vec<String>> {
    let mut upstream = BTreeMap::new();
    for s in submissions {
        for j in &s.jobs {
            let after = plan.jobs.iter().find(|p| p.name == j.name).map(|p| p.after.as_slice()).unwrap_or_default();
            let ids = s.jobs.iter().filter(|u| after.contains(&u.name)).map(|u| u.job_id.clone()).collect();
            upstream.insert(j.job_id.clone(), ids);
        }
    }
    upstream
}

/// A job pending on the dependency of a job that failed or is itself stuck never starts, though
/// SLURM marks only the first one `DependencyNeverSatisfied`; marks the others so too. A failed or
/// stuck task blocks the jobs waiting on its job whatever is on disk (`afterok` asks how the job
/// ended, not what its outputs are). `upstream`: the job ids each job id waits for
/// ([`upstream_jobs`]); `rows` in chain order.
fn mark_stuck(upstream: &BTreeMap<String, Vec<String>>, rows: &mut [StatusRow]) {
    let mut blocked: BTreeSet<String> = BTreeSet::new();
    for r in rows.iter_mut() {
        let Some(id) = r.key.as_deref().map(|k| k.split('_').next().unwrap_or(k).to_string()) else { continue };
        let upstream_blocked = upstream.get(&id).is_some_and(|ups| ups.iter().any(|u| blocked.contains(u)));
        if let Some(s) = r.state.as_mut()
            && upstream_blocked
            && s.state == "PENDING"
            && s.reason == "Dependency"
        {
            s.reason = "DependencyNeverSatisfied".into();
        }
        if matches!(r.kind(), Some(JobState::Failed | JobState::Stuck)) {
            blocked.insert(id);
        }
    }
}

/// Whether the chain did not succeed: a task failed or is stuck, and its outputs are missing.
fn unsuccessful(rows: &[StatusRow]) -> bool {
    rows.iter().any(|r| !r.complete && matches!(r.kind(), Some(JobState::Failed | JobState::Stuck)))
}

/// Prints the status; with `wait`, first polls until nothing is pending or running (an error
/// when `wait` seconds pass first), then fails when a task failed or is stuck with its outputs
/// missing.
pub fn status(run_dir: &Path, wait: Option<u64>) -> Result<()> {
    let plan = PlanRecord::read(run_dir)?;
    let started = Instant::now();
    let mut rows = status_rows(&plan)?;
    if let Some(limit) = wait {
        while rows.iter().any(StatusRow::live) {
            if started.elapsed() > Duration::from_secs(limit) {
                print_rows(&plan, &rows);
                bail!("slurm status: jobs still pending or running after {limit} s");
            }
            std::thread::sleep(Duration::from_secs(2));
            rows = status_rows(&plan)?;
        }
        print_rows(&plan, &rows);
        if unsuccessful(&rows) {
            bail!(
                "slurm status: the chain of {} did not succeed: tasks failed or wait on a failed job",
                run_dir.display()
            );
        }
        return Ok(());
    }
    print_rows(&plan, &rows);
    Ok(())
}

fn print_rows(plan: &PlanRecord, rows: &[StatusRow]) {
    outln!("{:<16} {:>4}  {:<9} {:<38} job", "stage", "task", "on disk", "scheduler");
    for r in rows {
        let state = match (&r.state, &r.key) {
            (Some(s), _) => s.describe(),
            (None, Some(_)) if !r.complete => "GONE (cancelled unstarted, or purged)".to_string(),
            (None, Some(_)) => "ended (purged from the queue)".to_string(),
            (None, None) => "not submitted".to_string(),
        };
        outln!(
            "{:<16} {:>4}  {:<9} {:<38} {}",
            r.job,
            r.task.map_or("-".to_string(), |t| t.to_string()),
            if r.complete { "complete" } else { "missing" },
            state,
            r.key.as_deref().unwrap_or("-")
        );
    }
    let done = rows.iter().filter(|r| r.complete).count();
    let failed: Vec<&StatusRow> = rows.iter().filter(|r| !r.complete && r.kind() == Some(JobState::Failed)).collect();
    let stuck = rows.iter().filter(|r| r.kind() == Some(JobState::Stuck)).count();
    let live = rows.iter().filter(|r| r.live()).count();
    outln!(
        "\n{done} of {} tasks complete on disk; {live} pending or running; {} failed; {stuck} waiting on a failed job",
        rows.len(),
        failed.len()
    );
    for r in &failed {
        if let Some(log) = r.log(&plan.run_dir) {
            let task = r.task.map(|t| format!(" task {t}")).unwrap_or_default();
            if log.is_file() {
                outln!("  failed: {}{task} → {}", r.job, log.display());
            } else {
                outln!("  failed: {}{task} (it never started: no log)", r.job);
            }
        }
    }
    if (done < rows.len() || stuck > 0) && live == 0 {
        outln!("resume (submits only what is missing): {}", plan.command);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slurm_cmd::plan::JobRecord;

    fn row(
        job: &str,
        task: Option<usize>,
        complete: bool,
        key: Option<&str>,
        state: Option<(&str, &str)>,
    ) -> StatusRow {
        StatusRow {
            job: job.into(),
            task,
            complete,
            key: key.map(str::to_string),
            state: state.map(|(s, r)| TaskState { state: s.into(), reason: r.into() }),
        }
    }

    /// `(job id, the job ids it waits for)` as a map.
    fn upstream(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs.iter().map(|(id, ups)| (id.to_string(), ups.iter().map(|u| u.to_string()).collect())).collect()
    }

    #[test]
    fn jobs_behind_a_failed_task_are_stuck_and_a_vanished_task_is_failed() {
        let ups = upstream(&[("7", &[]), ("8", &["7"]), ("9", &["8"])]);
        let mut rows = vec![
            row("cv", Some(1), true, Some("7_1"), Some(("COMPLETED", "None"))),
            // Cancelled before it started: SLURM keeps no record of it.
            row("cv", Some(2), false, Some("7_2"), None),
            row("cv-merge", None, false, Some("8"), Some(("PENDING", "DependencyNeverSatisfied"))),
            row("report", None, false, Some("9"), Some(("PENDING", "Dependency"))),
        ];
        assert_eq!(rows[1].kind(), Some(JobState::Failed));
        assert!(rows[3].live(), "before marking, the report looks as if it may still run");
        mark_stuck(&ups, &mut rows);
        assert_eq!(rows[2].kind(), Some(JobState::Stuck));
        assert_eq!(rows[3].kind(), Some(JobState::Stuck), "the report waits on a stuck job");
        assert!(!rows.iter().any(StatusRow::live));
        assert!(unsuccessful(&rows));
        // A job merely waiting on a running one stays live.
        let mut waiting = vec![
            row("cv", Some(1), false, Some("7_1"), Some(("RUNNING", "None"))),
            row("cv", Some(2), false, Some("7_2"), Some(("PENDING", "Resources"))),
            row("cv-merge", None, false, Some("8"), Some(("PENDING", "Dependency"))),
            row("report", None, false, None, None),
        ];
        mark_stuck(&ups, &mut waiting);
        assert!(waiting[2].live());
        assert_eq!(waiting[3].kind(), None, "never submitted");
        assert!(!unsuccessful(&waiting));
        assert_eq!(
            waiting[1].log(Path::new("/r")),
            Some(PathBuf::from("/r/slurm/logs/cv_7_2.out")),
            "the log name follows the scripts' --output pattern"
        );
    }

    #[test]
    fn a_cancelled_job_blocks_its_dependents_even_when_its_outputs_are_on_disk() {
        // The hold-out job of a chain over a complete run was cancelled: every output is on
        // disk, yet the jobs after it wait forever.
        let ups = upstream(&[("20", &[]), ("21", &["20"]), ("22", &["21"]), ("23", &["22"])]);
        let mut rows = vec![
            row("holdout", None, true, Some("20"), Some(("CANCELLED", "None"))),
            row("interpret", Some(1), true, Some("21_1"), Some(("PENDING", "DependencyNeverSatisfied"))),
            row("interpret", Some(2), true, Some("21_2"), Some(("PENDING", "DependencyNeverSatisfied"))),
            row("interpret-merge", None, true, Some("22"), Some(("PENDING", "Dependency"))),
            row("report", None, true, Some("23"), Some(("PENDING", "Dependency"))),
        ];
        mark_stuck(&ups, &mut rows);
        assert_eq!(rows[3].kind(), Some(JobState::Stuck), "{:?}", rows[3]);
        assert_eq!(rows[4].kind(), Some(JobState::Stuck), "{:?}", rows[4]);
        assert!(!rows.iter().any(StatusRow::live), "`status --wait` must end and `--resume` must proceed");
        assert!(!unsuccessful(&rows), "every output is on disk");
        // A later submission's jobs wait only on that submission's jobs: the old cancelled ones
        // (superseded or left complete) block nothing of it.
        let ups = upstream(&[("20", &[]), ("21", &["20"]), ("30", &[]), ("31", &["30"])]);
        let mut resumed = vec![
            row("holdout", None, true, Some("20"), Some(("CANCELLED", "None"))),
            row("interpret", Some(1), true, Some("21_1"), Some(("CANCELLED", "None"))),
            row("interpret", Some(2), false, Some("30_2"), Some(("RUNNING", "None"))),
            row("interpret-merge", None, false, Some("31"), Some(("PENDING", "Dependency"))),
        ];
        mark_stuck(&ups, &mut resumed);
        assert!(resumed[3].live(), "{:?}", resumed[3]);
    }

    #[test]
    fn each_job_waits_for_the_jobs_of_its_own_submission() {
        let job = |name: &str, tasks, after: &[&str]| JobRecord {
            name: name.into(),
            tasks,
            after: after.iter().map(|a| a.to_string()).collect(),
        };
        let plan = PlanRecord {
            config: "c.toml".into(),
            command: "xtask slurm --config /c.toml --submit --resume".into(),
            run_dir: "/nowhere".into(),
            shards: 2,
            jobs: vec![
                job("holdout", None, &[]),
                job("interpret", Some(2), &["holdout"]),
                job("interpret-merge", None, &["interpret"]),
            ],
        };
        let sub = |jobs: &[(&str, &str)]| Submission {
            submitted_unix: 0,
            resume: false,
            jobs: jobs
                .iter()
                .map(|(n, id)| super::super::submit::SubmittedJob {
                    name: n.to_string(),
                    job_id: id.to_string(),
                    tasks: vec![],
                })
                .collect(),
        };
        let first = sub(&[("holdout", "20"), ("interpret", "21"), ("interpret-merge", "22")]);
        let resumed = sub(&[("interpret", "30"), ("interpret-merge", "31")]);
        let ups = upstream_jobs(&plan, &[first, resumed]);
        assert_eq!(ups["21"], ["20"]);
        assert_eq!(ups["22"], ["21"]);
        assert!(ups["30"].is_empty(), "the resumed interpretation waits for no earlier job: {ups:?}");
        assert_eq!(ups["31"], ["30"]);
    }
}
