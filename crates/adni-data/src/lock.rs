//! One writer per results folder: a lock file that names its holder, and the clean-up of
//! temporary files that a killed process left behind.
//!
//! [`FolderLock::acquire`] creates `<dir>/.lock` (atomically, with `create_new`) holding the
//! holder's pid, host, start time and command. It refuses, with a message naming the holder,
//! when a live process on this host, or any process on another host, holds a lock on the folder,
//! on a folder above it or on a folder inside it (two runs must not write into overlapping
//! folders). A lock whose pid is no longer running on this host is stale: it is taken over. A
//! lock held by the calling process itself is re-entrant (a command that runs other commands'
//! stages in-process, as `reproduce-paper` does, locks once). The lock file is removed when the
//! guard drops; after a SIGKILL it stays and the next run takes it over.
//!
//! Liveness is read from `/proc/<pid>` (Linux). Elsewhere every lock counts as live, and the
//! message says which file to delete once no run is active.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The lock file's name inside a locked folder.
pub const LOCK_FILE: &str = ".lock";

/// Prefix of the temporary files that [`crate::fsutil::temp_path_for`] names
/// (`.tmp-<pid>-<n>-<name>`).
pub const TEMP_PREFIX: &str = ".tmp-";

/// Who holds a lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// When the lock was taken (seconds since the Unix epoch).
    pub since: u64,
    /// The command line that took it.
    pub command: String,
}

impl Holder {
    fn me(command: &str) -> Holder {
        let since =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Holder { pid: std::process::id(), host: host_name(), since, command: command.to_string() }
    }

    fn to_text(&self) -> String {
        format!("pid = {}\nhost = {}\nsince = {}\ncommand = {}\n", self.pid, self.host, self.since, self.command)
    }

    /// Parses a lock file's text; `None` when it is not one (for example a half-written file).
    fn parse(text: &str) -> Option<Holder> {
        let mut pid = None;
        let mut host = None;
        let mut since = 0;
        let mut command = String::new();
        for line in text.lines() {
            let (k, v) = line.split_once(" = ")?;
            match k {
                "pid" => pid = v.parse().ok(),
                "host" => host = Some(v.to_string()),
                "since" => since = v.parse().unwrap_or(0),
                "command" => command = v.to_string(),
                _ => {}
            }
        }
        Some(Holder { pid: pid?, host: host?, since, command })
    }

    /// Whether the holder may still be running: a process on another host always may; on this
    /// host, when its pid is running (Linux `/proc`; elsewhere assumed).
    fn may_be_alive(&self) -> bool {
        self.host != host_name() || pid_alive(self.pid)
    }

    fn is_me(&self) -> bool {
        self.pid == std::process::id() && self.host == host_name()
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `localhost`).
pub fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether a process with this pid runs on this host. Without `/proc` every pid counts as alive.
pub fn pid_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    match fs::read_to_string(proc.join(pid.to_string()).join("stat")) {
        // A zombie (state Z) has exited; its parent has not reaped it yet.
        Ok(stat) => stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')).unwrap_or(true),
        Err(_) => false,
    }
}

/// A held lock on a folder; dropping it removes the lock file (unless it was re-entrant).
#[derive(Debug)]
pub struct FolderLock {
    dir: PathBuf,
    path: PathBuf,
    owned: bool,
}

impl FolderLock {
    /// Locks `dir` (created if missing) for this process; `command` is recorded for the message
    /// another run would see. Stale temporary files under `dir` (see [`remove_stale_temps`])
    /// are removed once the lock is held.
    pub fn acquire(dir: &Path, command: &str) -> Result<FolderLock> {
        fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let dir = dir.canonicalize().map_err(|e| DataError::io(dir, e))?;
        // A lock above: the same process is re-entrant; anyone else blocks.
        for above in dir.ancestors() {
            if let Some(h) = read_holder(&above.join(LOCK_FILE))? {
                if h.is_me() {
                    let path = above.join(LOCK_FILE);
                    return Ok(FolderLock { dir, path, owned: false });
                }
                if h.may_be_alive() {
                    return Err(locked(&above.join(LOCK_FILE), &h));
                }
            }
        }
        // A live lock inside (another run writing into a part of this folder).
        for inner in lock_files_below(&dir) {
            if let Some(h) = read_holder(&inner)?
                && !h.is_me()
                && h.may_be_alive()
            {
                return Err(locked(&inner, &h));
            }
        }
        let path = dir.join(LOCK_FILE);
        let me = Holder::me(command);
        for _ in 0..3 {
            match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(me.to_text().as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(|e| DataError::io(&path, e))?;
                    remove_stale_temps(&dir)?;
                    return Ok(FolderLock { dir, path, owned: true });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match read_holder(&path)? {
                    Some(h) if h.may_be_alive() => return Err(locked(&path, &h)),
                    // Stale (a dead pid), or unreadable: take it over. Removing races with another
                    // taker at worst; `create_new` lets only one of them win.
                    _ => {
                        let _ = fs::remove_file(&path);
                    }
                },
                Err(e) => return Err(DataError::io(&path, e)),
            }
        }
        Err(DataError::Locked {
            path: path.clone(),
            message: "another process keeps taking this lock; try again".into(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Empties the locked folder (what `--force` does), keeping the lock file. Refuses (and
    /// deletes nothing) when the folder holds anything but is not a run folder: no
    /// `resolved_config.toml` ([`crate::run_layout::RESOLVED_CONFIG_FILE`]) in it or in one of
    /// its subfolders. The caller checks that the run recorded there is its own.
    pub fn clear(&self) -> Result<()> {
        let config = crate::run_layout::RESOLVED_CONFIG_FILE;
        let entries: Vec<fs::DirEntry> =
            fs::read_dir(&self.dir).map_err(|e| DataError::io(&self.dir, e))?.flatten().collect();
        let held = entries.iter().filter(|e| e.path() != self.path && !is_temp(e)).count();
        let is_run = self.dir.join(config).is_file() || entries.iter().any(|e| e.path().join(config).is_file());
        if held > 0 && !is_run {
            return Err(DataError::io(
                &self.dir,
                std::io::Error::other(format!(
                    "refusing to empty this folder: it holds {held} entries but no {config} (in it or a subfolder), \
                     so it is not a run folder"
                )),
            ));
        }
        for entry in entries {
            let p = entry.path();
            if p == self.path {
                continue;
            }
            let gone =
                if entry.file_type().is_ok_and(|t| t.is_dir()) { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
            gone.map_err(|e| DataError::io(&p, e))?;
        }
        Ok(())
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        if self.owned {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Whether a folder entry is a temporary file ([`TEMP_PREFIX`]).
fn is_temp(entry: &fs::DirEntry) -> bool {
    entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
}

/// The holder named in a lock file; `None` when there is none, or when the file cannot be parsed
/// (cut short by a kill between create and write: stale, since a live holder writes its lines
/// before doing anything else).
/// The holder a lock file names; `None` when there is no such file (or it names no holder).
pub fn read_holder(path: &Path) -> Result<Option<Holder>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Holder::parse(&text)),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => Ok(None),
        Err(e) => Err(DataError::io(path, e)),
    }
}

fn locked(path: &Path, h: &Holder) -> DataError {
    let message = if h.host == host_name() {
        format!(
            "in use by process {} on this host ({}) since {} (`{}`); wait for it to finish, or stop it",
            h.pid,
            h.host,
            civil_time(h.since),
            h.command
        )
    } else {
        format!(
            "held by process {} on host {} since {} (`{}`); if no run is active there, delete this file",
            h.pid,
            h.host,
            civil_time(h.since),
            h.command
        )
    };
    DataError::Locked { path: path.to_path_buf(), message }
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time.
fn civil_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(|| format!("{secs} s after 1970"), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

fn lock_files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let p = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) if d != dir && entry.file_name() == LOCK_FILE => out.push(p),
                _ => {}
            }
        }
    }
    out
}

/// Removes, under `dir` (recursively), the temporary files (`.tmp-<pid>-…`) of processes that
/// no longer run on this host: what a killed writer leaves beside the file it was writing. The
/// final files are never touched (they are only ever renamed into place whole). Returns how many
/// were removed.
pub fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(DataError::io(&d, e)),
        };
        for entry in entries.flatten() {
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            match entry.file_type() {
                Ok(t) if t.is_dir() && !name.starts_with(TEMP_PREFIX) => stack.push(p),
                Ok(t) => {
                    let pid =
                        name.strip_prefix(TEMP_PREFIX).and_then(|r| r.split('-').next()).and_then(|s| s.parse().ok());
                    if let Some(pid) = pid
                        && pid != std::process::id()
                        && !pid_alive(pid)
                    {
                        let gone = if t.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
                        gone.map_err(|e| DataError::io(&p, e))?;
                        removed += 1;
                    }
                }
                Err(_) => {}
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid that is not running: the highest pid the kernel allows, plus one.
    fn dead_pid() -> u32 {
        fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(4_194_304)
            + 1
    }

    fn write_lock(dir: &Path, pid: u32, host: &str) {
        let h = Holder { pid, host: host.into(), since: 1_765_000_000, command: "xtask train".into() };
        fs::write(dir.join(LOCK_FILE), h.to_text()).unwrap();
    }

    #[test]
    fn second_acquire_by_a_live_other_process_is_refused_with_its_pid_and_host() {
        let d = tempfile::tempdir().unwrap();
        // pid 1 is always alive on Linux.
        write_lock(d.path(), 1, &host_name());
        let e = FolderLock::acquire(d.path(), "xtask train").unwrap_err().to_string();
        assert!(e.contains(".lock"), "{e}");
        assert!(e.contains("process 1 on this host"), "{e}");
        assert!(e.contains(&host_name()), "{e}");
        assert!(e.contains("`xtask train`"), "{e}");
    }

    #[test]
    fn a_stale_lock_from_a_dead_pid_is_taken_over_and_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        write_lock(d.path(), dead_pid(), &host_name());
        let lock = FolderLock::acquire(d.path(), "xtask reproduce-paper").unwrap();
        let text = fs::read_to_string(lock.path()).unwrap();
        assert!(text.contains(&format!("pid = {}", std::process::id())), "{text}");
        fs::create_dir_all(d.path().join("cv/folds")).unwrap();
        fs::write(d.path().join("REPORT.md"), "x").unwrap();
        // Not a run folder (no resolved config): nothing is deleted.
        let e = lock.clear().unwrap_err().to_string();
        assert!(e.contains("refusing to empty") && e.contains("2 entries"), "{e}");
        assert!(d.path().join("REPORT.md").is_file() && d.path().join("cv/folds").is_dir());
        fs::write(d.path().join(crate::run_layout::RESOLVED_CONFIG_FILE), "[run]\nname = \"r\"\n").unwrap();
        lock.clear().unwrap();
        let left: Vec<_> = fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from(LOCK_FILE)]);
        drop(lock);
        assert!(!d.path().join(LOCK_FILE).exists());
    }

    #[test]
    fn a_lock_from_another_host_is_refused_and_the_message_says_what_to_delete() {
        let d = tempfile::tempdir().unwrap();
        write_lock(d.path(), dead_pid(), "node-17.cluster");
        let e = FolderLock::acquire(d.path(), "x").unwrap_err().to_string();
        assert!(e.contains("on host node-17.cluster"), "{e}");
        assert!(e.contains("delete this file"), "{e}");
    }

    #[test]
    fn reentrant_inside_the_same_process_and_locks_above_and_below_count() {
        let d = tempfile::tempdir().unwrap();
        let outer = FolderLock::acquire(d.path(), "reproduce").unwrap();
        let inner = FolderLock::acquire(&d.path().join("cv"), "train").unwrap();
        drop(inner);
        assert!(d.path().join(LOCK_FILE).exists(), "the inner guard must not release the outer lock");
        drop(outer);
        // Another live process holding a folder inside blocks a lock on the folder above.
        let sub = d.path().join("cv/folds/fold2");
        fs::create_dir_all(&sub).unwrap();
        write_lock(&sub, 1, &host_name());
        let e = FolderLock::acquire(d.path(), "x").unwrap_err().to_string();
        assert!(e.contains("fold2"), "{e}");
        // ... and one above blocks a folder below.
        let e = FolderLock::acquire(&sub.join("deeper"), "x").unwrap_err().to_string();
        assert!(e.contains("process 1"), "{e}");
    }

    #[test]
    fn a_half_written_lock_is_stale() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(LOCK_FILE), "pid = 12").unwrap();
        let lock = FolderLock::acquire(d.path(), "x");
        assert!(lock.is_ok(), "{lock:?}");
    }

    #[test]
    fn stale_temporaries_are_removed_and_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("a/b");
        fs::create_dir_all(&sub).unwrap();
        let dead = sub.join(format!(".tmp-{}-3-map.nii.gz", dead_pid()));
        let mine = sub.join(format!(".tmp-{}-4-map.nii.gz", std::process::id()));
        let init = sub.join(".tmp-1-5-x.csv");
        let final_file = sub.join("map.nii.gz");
        for p in [&dead, &mine, &init, &final_file] {
            fs::write(p, b"x").unwrap();
        }
        assert_eq!(remove_stale_temps(d.path()).unwrap(), 1);
        assert!(!dead.exists() && mine.exists() && init.exists() && final_file.exists());
    }

    #[test]
    fn civil_time_matches_a_known_date() {
        assert_eq!(civil_time(1_765_000_000), "2025-12-06 05:46 UTC");
        assert_eq!(civil_time(0), "1970-01-01 00:00 UTC");
    }
}
