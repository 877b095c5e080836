use super::{ResumePoint, TrainError, TrainPlan};
use crate::checkpoint::{
    Checkpoint, ModelShape, RunIdentity, import_model_init, load_checkpoint, new_run_id,
};
use crate::data::{DataConfig, DataFingerprint, DataSource};
use crate::model::init_params;

/// What the command line asked of this run beyond the configuration.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Continue from this verified checkpoint instead of starting fresh
    /// ([`ResumePoint::at`] or [`ResumePoint::latest`]).
    pub resume: Option<ResumePoint>,
    /// The effective configuration, saved into every checkpoint.
    pub config_snapshot: serde_json::Value,
    /// Files the reporting process writes into `train.out_dir` when the run
    /// starts: (file name, contents), e.g. the resolved `config.toml`.
    pub run_files: Vec<(String, String)>,
    /// Keys a resume changed with `train.allow_config_change`, one line each
    /// (`key: old → new`); recorded in the first metrics record.
    pub config_changes: Vec<String>,
}

/// The weights (and, when resuming, optimizer and trainer state) every rank
/// starts from; loaded once per process and copied by each rank.
pub struct StartState {
    /// Flat parameters in [`ParamLayout::gpt2`](crate::model::ParamLayout::gpt2) order.
    pub params: Vec<f32>,
    /// The checkpoint being resumed (its params were moved into `params`).
    pub resumed: Option<Checkpoint>,
    /// The run this is: new for a fresh start, the checkpoint's when resuming.
    pub identity: RunIdentity,
    /// How the data differs from the resumed run's, when
    /// `train.allow_config_change` accepted it; one line each.
    pub data_changes: Vec<String>,
    /// Where the weights came from, for the log.
    pub origin: String,
}

impl StartState {
    /// Resumes `options.resume`, imports `model.init`, or initializes from
    /// `train.seed`, in that order. A resume checks that the data is the
    /// run's (`train.allow_config_change` accepts other data, with a warning).
    pub fn load(
        plan: &TrainPlan,
        options: &RunOptions,
        data_config: &DataConfig,
        data: &dyn DataSource,
    ) -> Result<Self, TrainError> {
        let fingerprint = DataFingerprint::of(data_config, data)?;
        if let Some(ResumePoint { dir, .. }) = &options.resume {
            let mut checkpoint = load_checkpoint(dir, &plan.model)?;
            let state = &checkpoint.state;
            if state.step >= plan.train.steps {
                return Err(TrainError::Invalid(format!(
                    "--resume: {} is at step {}, and train.steps = {}; raise train.steps to train further",
                    dir.display(),
                    state.step,
                    plan.train.steps
                )));
            }
            let mut identity = state.run.clone();
            let changed = identity.data.differences(&fingerprint);
            if !changed.is_empty() {
                if !plan.train.allow_config_change {
                    return Err(TrainError::Invalid(format!(
                        "--resume: the data differs from the data run {} trained on:\n  {}\n\
                         Restore the run's data files, or accept the change with \
                         --set train.allow_config_change=true",
                        identity.run_id,
                        changed.join("\n  ")
                    )));
                }
                tracing::warn!(
                    changes = %changed.join("; "),
                    "train.allow_config_change: resuming on other data"
                );
                identity.data = fingerprint;
            }
            let data_changes = changed;
            identity.seed = plan.train.seed;
            tracing::info!(
                run = %identity.run_id,
                step = state.step,
                checkpoint = %dir.display(),
                "resuming"
            );
            if plan.train.steps > identity.schedule_steps {
                tracing::info!(
                    "train.steps = {} extends the run planned for {} steps: the learning-rate \
                     schedule keeps its plan, and steps {}..={} train at optimizer.min_lr",
                    plan.train.steps,
                    identity.schedule_steps,
                    identity.schedule_steps + 1,
                    plan.train.steps
                );
            }
            let params = std::mem::take(&mut checkpoint.params);
            return Ok(StartState {
                params,
                origin: format!("checkpoint {}", dir.display()),
                resumed: Some(checkpoint),
                identity,
                data_changes,
            });
        }
        let identity = RunIdentity {
            run_id: new_run_id(),
            seed: plan.train.seed,
            model: ModelShape::of(&plan.model),
            data: fingerprint,
            schedule_steps: plan.train.steps,
        };
        if let Some(path) = &plan.model.init {
            return Ok(StartState {
                params: import_model_init(path, &plan.model).map_err(|e| {
                    TrainError::Invalid(format!("model.init = {}: {e}", path.display()))
                })?,
                resumed: None,
                identity,
                data_changes: Vec::new(),
                origin: format!("model.init {}", path.display()),
            });
        }
        Ok(StartState {
            params: init_params(&plan.model, plan.train.seed),
            resumed: None,
            identity,
            data_changes: Vec::new(),
            origin: format!("random init, train.seed = {}", plan.train.seed),
        })
    }

    /// The 0-based step training starts at.
    pub fn first_step(&self) -> u64 {
        self.resumed.as_ref().map_or(0, |c| c.state.step)
    }
}
