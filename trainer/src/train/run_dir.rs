//! An out_dir belongs to one run: the lock held for the run's life, and the
//! checks that keep one run's files out of another's.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::checkpoint::{CheckpointError, read_trainer_state, step_dirs, temp_dirs};
use crate::metrics::METRICS_FILE;

/// The lock file in every out_dir a run writes to.
pub const LOCK_FILE: &str = ".cptrain.lock";

/// What a run wants of its out_dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// A fresh run: the directory must hold no other run's checkpoints or
    /// metrics (unless `train.overwrite` moves them aside).
    Fresh {
        /// `train.overwrite`.
        overwrite: bool,
    },
    /// The continuation of run `run_id`: every checkpoint there must be its own.
    Resume {
        /// The run being continued.
        run_id: String,
    },
}

/// Why an out_dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// Another process holds the lock.
    #[error(
        "train.out_dir = {} is in use by another run ({holder}); wait for it to finish, or set \
         train.out_dir to another directory. The lock is {} (an advisory lock the operating \
         system releases when that process exits)",
        dir.display(), dir.join(LOCK_FILE).display()
    )]
    Locked {
        /// The out_dir.
        dir: PathBuf,
        /// What the lock file says of its holder.
        holder: String,
    },
    /// A fresh run into a directory holding another run's files.
    #[error(
        "train.out_dir = {} already holds a run ({found}); a fresh run never deletes or \
         truncates another run's files. Either continue that run with `--resume`, or set \
         train.out_dir to another directory, or pass --set train.overwrite=true to move the \
         old files aside to a sibling directory {}.replaced-<time> (nothing is deleted)",
        dir.display(), dir.display()
    )]
    Occupied {
        /// The out_dir.
        dir: PathBuf,
        /// What is there.
        found: String,
    },
    /// A resume into a directory holding checkpoints of another run.
    #[error(
        "train.out_dir = {} holds checkpoints of another run ({}: run {other_id}), not of \
         the run being resumed (run {run_id}); set train.out_dir to that run's directory or to \
         a new one",
        dir.display(), other.display()
    )]
    ForeignCheckpoint {
        /// The out_dir.
        dir: PathBuf,
        /// The other run's checkpoint.
        other: PathBuf,
        /// Its run id.
        other_id: String,
        /// The run being resumed.
        run_id: String,
    },
    /// Listing the checkpoints failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError {
    let path = path.to_path_buf();
    move |source| RunDirError::Io {
        action,
        path,
        source,
    }
}

/// An out_dir claimed by this process: the lock is held until it is dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    /// Held while the run lives; `None` in processes that write nothing there.
    lock: Option<File>,
    /// Where `train.overwrite` moved an earlier run's files.
    moved_to: Option<PathBuf>,
}

impl RunDir {
    /// A run directory this process does not write to (MPI ranks other than
    /// the reporting one): nothing is locked or checked.
    pub fn unclaimed(path: &Path) -> Self {
        RunDir {
            path: path.to_path_buf(),
            lock: None,
            moved_to: None,
        }
    }

    /// Creates `dir` if needed, takes its lock (failing at once if another
    /// process holds it), checks `claim`, and removes temporary checkpoint
    /// directories that earlier runs left behind (with the lock held, no
    /// writer can own them).
    pub fn claim(dir: &Path, claim: &Claim) -> Result<Self, RunDirError> {
        std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        let lock = lock(dir)?;
        let mut run_dir = RunDir {
            path: dir.to_path_buf(),
            lock: Some(lock),
            moved_to: None,
        };
        match claim {
            Claim::Fresh { overwrite } => {
                if let Some(found) = earlier_run(dir)? {
                    if !overwrite {
                        return Err(RunDirError::Occupied {
                            dir: dir.to_path_buf(),
                            found,
                        });
                    }
                    run_dir.moved_to = Some(move_aside(dir)?);
                }
            }
            Claim::Resume { run_id } => check_lineage(dir, run_id)?,
        }
        for stale in temp_dirs(dir)? {
            std::fs::remove_dir_all(&stale).map_err(io("remove", &stale))?;
            tracing::info!(dir = %stale.display(), "removed an interrupted checkpoint write");
        }
        Ok(run_dir)
    }

    /// The out_dir.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this process holds the lock.
    pub fn is_claimed(&self) -> bool {
        self.lock.is_some()
    }

    /// Where `train.overwrite` moved an earlier run's files, if it did.
    pub fn moved_to(&self) -> Option<&Path> {
        self.moved_to.as_deref()
    }
}

/// Takes `<dir>/.cptrain.lock` and writes this process's pid, host and start
/// time into it.
fn lock(dir: &Path) -> Result<File, RunDirError> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io("open", &path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(RunDirError::Locked {
                dir: dir.to_path_buf(),
                holder: if holder.is_empty() {
                    "a process that has not yet written its name".into()
                } else {
                    holder.into()
                },
            });
        }
        Err(TryLockError::Error(e)) => return Err(io("lock", &path)(e)),
    }
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let text = format!(
        "pid {} on host {}, started at unix time {started}",
        std::process::id(),
        host_name()
    );
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(text.as_bytes()))
        .map_err(io("write", &path))?;
    Ok(file)
}

/// This machine's name, for lock messages.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// What of an earlier run `dir` holds: checkpoints (complete or not) or
/// metrics records; `None` when it holds neither (a new directory, or a run
/// that stopped before its first step).
fn earlier_run(dir: &Path) -> Result<Option<String>, RunDirError> {
    let mut found = Vec::new();
    let steps = step_dirs(dir)?;
    if let Some((newest, _)) = steps.last() {
        found.push(format!(
            "{} checkpoint(s) up to step {newest} in {}",
            steps.len(),
            dir.join("checkpoints").display()
        ));
    }
    let metrics = dir.join(METRICS_FILE);
    let records = match std::fs::read_to_string(&metrics) {
        Ok(text) => text.lines().filter(|l| !l.trim().is_empty()).count(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io("read", &metrics)(e)),
    };
    if records > 0 {
        found.push(format!("{records} step record(s) in {}", metrics.display()));
    }
    Ok((!found.is_empty()).then(|| found.join(", ")))
}

/// Moves every entry of `dir` but the lock to a new sibling directory
/// `<dir>.replaced-<unix time>`; returns it.
fn move_aside(dir: &Path) -> Result<PathBuf, RunDirError> {
    // An absolute path has a name to put the sibling beside (`.` has none).
    let dir = &std::fs::canonicalize(dir).map_err(io("resolve", dir))?;
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = dir
        .file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
    let mut target = dir.with_file_name(format!("{name}.replaced-{seconds}"));
    let mut n = 1;
    while target.exists() {
        target = dir.with_file_name(format!("{name}.replaced-{seconds}-{n}"));
        n += 1;
    }
    std::fs::create_dir(&target).map_err(io("create directory", &target))?;
    for entry in std::fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        if entry.file_name() == LOCK_FILE {
            continue;
        }
        let to = target.join(entry.file_name());
        std::fs::rename(entry.path(), &to).map_err(io("move", &entry.path()))?;
    }
    tracing::warn!(
        from = %dir.display(),
        to = %target.display(),
        "train.overwrite: moved the earlier run's files aside"
    );
    Ok(target)
}

/// Refuses a resume of `run_id` into a directory holding checkpoints of
/// another run. Checkpoints that cannot be read are left to the resume's
/// own checks.
fn check_lineage(dir: &Path, run_id: &str) -> Result<(), RunDirError> {
    for (_, step_dir) in step_dirs(dir)? {
        if let Ok(state) = read_trainer_state(&step_dir)
            && state.run.run_id != run_id
        {
            return Err(RunDirError::ForeignCheckpoint {
                dir: dir.to_path_buf(),
                other: step_dir,
                other_id: state.run.run_id,
                run_id: run_id.into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_names_the_holder_until_the_first_is_dropped() {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("run");
        let first = RunDir::claim(&dir, &Claim::Fresh { overwrite: false }).unwrap();
        assert!(first.is_claimed());
        let err = RunDir::claim(&dir, &Claim::Fresh { overwrite: false })
            .unwrap_err()
            .to_string();
        let me = format!("pid {} on host", std::process::id());
        assert!(
            err.contains("is in use by another run") && err.contains(&me),
            "{err}"
        );
        drop(first);
        RunDir::claim(&dir, &Claim::Fresh { overwrite: false }).unwrap();
    }

    #[test]
    fn a_fresh_run_refuses_an_earlier_runs_files_or_moves_them_aside() {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("run");
        std::fs::create_dir_all(dir.join("checkpoints/step-4")).unwrap();
        std::fs::write(dir.join(METRICS_FILE), "{\"step\":1}\n").unwrap();
        std::fs::write(dir.join("config.toml"), "x").unwrap();
        let err = RunDir::claim(&dir, &Claim::Fresh { overwrite: false })
            .unwrap_err()
            .to_string();
        for part in [
            "1 checkpoint(s) up to step 4",
            "1 step record(s)",
            "--resume",
            "train.overwrite=true",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
        assert!(dir.join("checkpoints/step-4").is_dir(), "nothing touched");

        let claimed = RunDir::claim(&dir, &Claim::Fresh { overwrite: true }).unwrap();
        let moved = claimed.moved_to().unwrap().to_path_buf();
        assert!(moved.join("checkpoints/step-4").is_dir());
        assert!(moved.join("config.toml").is_file() && moved.join(METRICS_FILE).is_file());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(LOCK_FILE)]);
    }

    /// A run that stopped before its first step (config files, an empty
    /// metrics file) leaves nothing a fresh run must protect.
    #[test]
    fn a_run_that_trained_nothing_does_not_occupy_its_dir() {
        let out = tempfile::tempdir().unwrap();
        std::fs::write(out.path().join(METRICS_FILE), "").unwrap();
        std::fs::write(out.path().join("config.toml"), "x").unwrap();
        std::fs::create_dir_all(out.path().join("checkpoints/.tmp-step-3-77")).unwrap();
        RunDir::claim(out.path(), &Claim::Fresh { overwrite: false }).unwrap();
        assert!(
            !out.path().join("checkpoints/.tmp-step-3-77").exists(),
            "stale temp removed"
        );
    }
}
