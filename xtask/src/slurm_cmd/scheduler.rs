//! The SLURM client commands: `sbatch`, `squeue`, `sacct` (where accounting is on) and
//! `scancel`, and the parsing of what they print.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A job's or array task's state as the scheduler reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, …
    pub state: String,
    /// Why it is pending (`Dependency`, `Resources`, `DependencyNeverSatisfied`, …), if it is.
    pub reason: String,
}

/// What a state means for the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Pending or running: it may still succeed.
    Live,
    /// Pending on a job that failed: it never starts (unless cancelled and resubmitted).
    Stuck,
    /// Ended well.
    Completed,
    /// Ended badly (failed, cancelled, timed out, out of memory, node failure, …).
    Failed,
}

impl TaskState {
    /// What the state means.
    pub fn kind(&self) -> JobState {
        match self.state.as_str() {
            "COMPLETED" => JobState::Completed,
            "PENDING" if self.reason == "DependencyNeverSatisfied" => JobState::Stuck,
            "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED" | "RESIZING" => {
                JobState::Live
            }
            _ => JobState::Failed,
        }
    }

    /// `STATE` or `STATE (reason)`.
    pub fn describe(&self) -> String {
        if self.reason.is_empty() || self.reason == "None" {
            self.state.clone()
        } else {
            format!("{} ({})", self.state, self.reason)
        }
    }
}

fn run(cmd: &mut Command) -> Result<std::process::Output> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    cmd.output().with_context(|| {
        format!("cannot run `{name}`: is SLURM installed and on PATH? (scripts/slurm-local.sh start sets one up)")
    })
}

/// `sbatch --parsable ARGS SCRIPT`; returns the job id.
pub fn sbatch(args: &[String], script: &Path) -> Result<String> {
    let out = run(Command::new("sbatch").arg("--parsable").args(args).arg(script))?;
    if !out.status.success() {
        bail!("sbatch {} {} failed: {}", args.join(" "), script.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    parse_parsable(&text)
        .with_context(|| format!("sbatch {}: expected a job id, it printed `{}`", script.display(), text.trim()))
}

/// The job id of `sbatch --parsable`'s output (`id` or `id;cluster`).
pub fn parse_parsable(text: &str) -> Option<String> {
    let id = text.trim().split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

/// `scancel IDS` (job ids or `job_task` ids).
pub fn scancel(ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let out = run(Command::new("scancel").args(ids))?;
    if !out.status.success() {
        bail!("scancel {} failed: {}", ids.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The states of the given jobs and their array tasks, keyed `job` or `job_task`: from `sacct`
/// where accounting is on, then `squeue` (live jobs, and finished ones the controller still
/// holds), which wins. Jobs neither knows are absent. An error when squeue cannot answer (not
/// installed, controller down): a job it could not ask about must not look gone.
pub fn query(job_ids: &[String]) -> Result<BTreeMap<String, TaskState>> {
    let mut states = BTreeMap::new();
    if job_ids.is_empty() {
        return Ok(states);
    }
    let sacct = Command::new("sacct")
        .args(["--noheader", "--parsable2", "--format=JobID,State", "--jobs"])
        .arg(job_ids.join(","))
        .output();
    if let Ok(out) = sacct.as_ref()
        && out.status.success()
    {
        states.extend(parse_sacct(&String::from_utf8_lossy(&out.stdout)));
    }
    // One call per job: squeue refuses the whole list when one id is no longer known.
    for id in job_ids {
        let out = run(Command::new("squeue")
            .args(["--noheader", "--array", "--states=all", "--format=%i|%T|%r", "--jobs"])
            .arg(id))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            states.extend(parse_squeue(&String::from_utf8_lossy(&out.stdout)));
        } else if !stderr.contains("Invalid job id") {
            bail!("squeue --jobs {id} failed: {}", stderr.trim());
        }
    }
    Ok(states)
}

/// `squeue --format=%i|%T|%r` lines.
pub fn parse_squeue(text: &str) -> BTreeMap<String, TaskState> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().splitn(3, '|');
            let (id, state) = (parts.next()?.trim(), parts.next()?.trim());
            let reason = parts.next().unwrap_or("").trim();
            (!id.is_empty() && !id.contains('['))
                .then(|| (id.to_string(), TaskState { state: state.to_string(), reason: reason.to_string() }))
        })
        .collect()
}

/// `sacct --parsable2 --format=JobID,State` lines; job steps (`12_1.batch`) and unsplit pending
/// arrays (`12_[2-3]`) are left out, `CANCELLED by 0` is `CANCELLED`.
pub fn parse_sacct(text: &str) -> BTreeMap<String, TaskState> {
    text.lines()
        .filter_map(|line| {
            let (id, state) = line.trim().split_once('|')?;
            let state = state.split_whitespace().next()?;
            (!id.contains('.') && !id.contains('[') && !id.is_empty())
                .then(|| (id.to_string(), TaskState { state: state.to_string(), reason: String::new() }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_give_each_task_its_state_and_reason() {
        let s = parse_squeue(
            "12_1|COMPLETED|None\n12_2|CANCELLED|None\n13|PENDING|DependencyNeverSatisfied\n14_[2-3]|PENDING|Dependency\n",
        );
        assert_eq!(s.len(), 3, "an unsplit pending array is not a task: {s:?}");
        assert_eq!(s["12_2"].kind(), JobState::Failed);
        assert_eq!(s["12_1"].kind(), JobState::Completed);
        assert_eq!(s["13"].kind(), JobState::Stuck);
        assert_eq!(s["13"].describe(), "PENDING (DependencyNeverSatisfied)");
        assert_eq!(s["12_1"].describe(), "COMPLETED");
    }

    #[test]
    fn sacct_lines_drop_steps_and_read_cancelled_by() {
        let s = parse_sacct("20|COMPLETED\n20.batch|COMPLETED\n21_3|CANCELLED by 0\n21_[4-5]|PENDING\n22|TIMEOUT\n");
        assert_eq!(s.keys().cloned().collect::<Vec<_>>(), ["20", "21_3", "22"]);
        assert_eq!(s["21_3"].state, "CANCELLED");
        assert_eq!(s["22"].kind(), JobState::Failed);
        let live = TaskState { state: "RUNNING".into(), reason: "None".into() };
        assert_eq!(live.kind(), JobState::Live);
        let waiting = TaskState { state: "PENDING".into(), reason: "Dependency".into() };
        assert_eq!(waiting.kind(), JobState::Live);
    }

    #[test]
    fn sbatch_parsable_output_is_the_job_id() {
        assert_eq!(parse_parsable("4711\n").as_deref(), Some("4711"));
        assert_eq!(parse_parsable("4711;cluster-a\n").as_deref(), Some("4711"));
        assert_eq!(parse_parsable("Submitted batch job 4711"), None);
        assert_eq!(parse_parsable(""), None);
    }
}
