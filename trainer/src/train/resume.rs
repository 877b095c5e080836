//! Which checkpoint `--resume` continues from: the newest one, verified,
//! never an older one silently.

use std::path::{Path, PathBuf};

use super::TrainError;
use crate::checkpoint::{TrainerState, read_trainer_state, step_dirs};

/// A verified checkpoint to resume from.
#[derive(Clone, Debug, PartialEq)]
pub struct ResumePoint {
    /// Its `step-N` directory.
    pub dir: PathBuf,
    /// Its trainer state (the run's identity and configuration).
    pub state: TrainerState,
}

impl ResumePoint {
    /// The checkpoint in `dir`, verified against its manifest.
    pub fn at(dir: &Path) -> Result<Self, TrainError> {
        let state = read_trainer_state(dir)?;
        Ok(ResumePoint {
            dir: dir.to_path_buf(),
            state,
        })
    }

    /// The newest checkpoint under `<out_dir>/checkpoints`. When it is
    /// incomplete or damaged, that is an error naming it and the newest valid
    /// one, unless `fallback` allows continuing from the latter (with a warning).
    pub fn latest(out_dir: &Path, fallback: bool) -> Result<Self, TrainError> {
        let steps = step_dirs(out_dir)?;
        let mut newest_error: Option<(PathBuf, String)> = None;
        for (_, dir) in steps.iter().rev() {
            match Self::at(dir) {
                Ok(point) => {
                    let Some((bad, why)) = newest_error else {
                        return Ok(point);
                    };
                    if fallback {
                        tracing::warn!(
                            skipped = %bad.display(),
                            reason = %why,
                            resuming = %point.dir.display(),
                            "--fallback: the newest checkpoint is unusable; resuming from an older one"
                        );
                        return Ok(point);
                    }
                    return Err(TrainError::Invalid(format!(
                        "--resume: the newest checkpoint {} cannot be used: {why}. The newest \
                         valid one is {} (step {}): resume from it with `--resume {}`, or with \
                         `--resume --fallback`",
                        bad.display(),
                        point.dir.display(),
                        point.state.step,
                        point.dir.display()
                    )));
                }
                Err(e) => {
                    if newest_error.is_none() {
                        newest_error = Some((dir.clone(), e.to_string()));
                    }
                }
            }
        }
        Err(TrainError::Invalid(match newest_error {
            Some((bad, why)) => format!(
                "--resume: no usable checkpoint under {}: the newest, {}, cannot be used ({why}), \
                 and no older one is valid; start fresh in another train.out_dir",
                out_dir.join("checkpoints").display(),
                bad.display()
            ),
            None => format!(
                "--resume: no checkpoint under {}; run without --resume to start fresh, or set \
                 train.out_dir to the run to continue",
                out_dir.join("checkpoints").display()
            ),
        }))
    }
}
