use std::path::PathBuf;

use super::{TrainError, TrainPlan};
use crate::checkpoint::{Checkpoint, import_hf_gpt2, latest_checkpoint, load_checkpoint};
use crate::model::{ParamLayout, init_params};

/// Which checkpoint a run continues from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResumeFrom {
    /// The newest complete checkpoint under `<out_dir>/checkpoints/`.
    Latest,
    /// A given `step-N` directory.
    Dir(PathBuf),
}

/// What the command line asked of this run beyond the configuration.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Continue from a checkpoint instead of starting fresh.
    pub resume: Option<ResumeFrom>,
    /// The effective configuration, saved into every checkpoint.
    pub config_snapshot: serde_json::Value,
    /// Files the reporting process writes into `train.out_dir` when the run
    /// starts: (file name, contents), e.g. the resolved `config.toml`.
    pub run_files: Vec<(String, String)>,
}

/// The weights (and, when resuming, optimizer and trainer state) every rank
/// starts from; loaded once per process and copied by each rank.
pub struct StartState {
    /// Flat parameters in [`ParamLayout::gpt2`] order.
    pub params: Vec<f32>,
    /// The checkpoint being resumed (its params were moved into `params`).
    pub resumed: Option<Checkpoint>,
    /// Where the weights came from, for the log.
    pub origin: String,
}

impl StartState {
    /// Resumes, imports `model.init`, or initializes from `train.seed`, in that order.
    pub fn load(plan: &TrainPlan, options: &RunOptions) -> Result<Self, TrainError> {
        let layout = ParamLayout::gpt2(&plan.model);
        if let Some(resume) = &options.resume {
            let dir = match resume {
                ResumeFrom::Dir(dir) => dir.clone(),
                ResumeFrom::Latest => latest_checkpoint(&plan.train.out_dir)?.ok_or_else(|| {
                    TrainError::Invalid(format!(
                        "--resume: no complete checkpoint under {}; run without --resume to \
                         start fresh, or set train.out_dir to the run to continue",
                        plan.train.out_dir.join("checkpoints").display()
                    ))
                })?,
            };
            let mut checkpoint = load_checkpoint(&dir, &layout)?;
            if checkpoint.state.step >= plan.train.steps {
                return Err(TrainError::Invalid(format!(
                    "--resume: {} is at step {}, and train.steps = {}; raise train.steps to train further",
                    dir.display(),
                    checkpoint.state.step,
                    plan.train.steps
                )));
            }
            let params = std::mem::take(&mut checkpoint.params);
            return Ok(StartState {
                params,
                origin: format!("checkpoint {}", dir.display()),
                resumed: Some(checkpoint),
            });
        }
        if let Some(path) = &plan.model.init {
            return Ok(StartState {
                params: import_hf_gpt2(path, &layout).map_err(|e| {
                    TrainError::Invalid(format!("model.init = {}: {e}", path.display()))
                })?,
                resumed: None,
                origin: format!("model.init {}", path.display()),
            });
        }
        Ok(StartState {
            params: init_params(&plan.model, plan.train.seed),
            resumed: None,
            origin: format!("random init, train.seed = {}", plan.train.seed),
        })
    }

    /// The 0-based step training starts at.
    pub fn first_step(&self) -> u64 {
        self.resumed.as_ref().map_or(0, |c| c.state.step)
    }
}
