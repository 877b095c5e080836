//! A trained model on disk: a `step-N` checkpoint, a run's `out_dir` (its
//! newest checkpoint), or a Hugging Face GPT-2 directory.

use std::path::{Path, PathBuf};

use super::InferenceError;
use crate::checkpoint::{
    Gpt2Config, import_hf_gpt2, latest_checkpoint, load_weights, read_trainer_state,
};
use crate::model::{ModelConfig, ParamLayout};

/// Where the weights came from.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSource {
    /// A cptrain checkpoint after `step` optimizer steps; `config` is the
    /// run's effective configuration (JSON) from its `trainer_state.json`.
    Checkpoint {
        /// Optimizer steps trained.
        step: u64,
        /// The run's configuration.
        config: serde_json::Value,
    },
    /// A Hugging Face directory (`config.json` + `model.safetensors`).
    HuggingFace,
}

/// Weights and shape of a trained model, read-only.
#[derive(Clone, Debug)]
pub struct TrainedModel {
    /// The directory the weights were read from.
    pub dir: PathBuf,
    /// The model's shape.
    pub model: ModelConfig,
    /// Flat parameters in [`ParamLayout::gpt2`] order.
    pub params: Vec<f32>,
    /// Checkpoint or Hugging Face directory.
    pub source: ModelSource,
}

impl TrainedModel {
    /// Opens `dir`: a checkpoint (`trainer_state.json`: its manifest is
    /// verified and the shape comes from the run's configuration), a run's
    /// `out_dir` (its newest complete checkpoint), or a Hugging Face
    /// directory (`config.json`, checked by [`Gpt2Config::check`]). Writes nothing.
    pub fn open(dir: &Path) -> Result<Self, InferenceError> {
        if dir.join("trainer_state.json").is_file() {
            return Self::checkpoint(dir);
        }
        if dir.join("config.json").is_file() {
            let config = Gpt2Config::read(dir)?;
            let model = config.model();
            config.check(&model, dir)?;
            model.validate().map_err(|e| InferenceError::HfConfig {
                path: dir.join("config.json"),
                what: e.to_string(),
            })?;
            let layout = ParamLayout::gpt2(&model);
            let params = import_hf_gpt2(&dir.join("model.safetensors"), &layout)?;
            return Ok(TrainedModel {
                dir: dir.to_path_buf(),
                model,
                params,
                source: ModelSource::HuggingFace,
            });
        }
        if dir.join("checkpoints").is_dir() {
            return match latest_checkpoint(dir)? {
                Some(newest) => Self::checkpoint(&newest),
                None => Err(InferenceError::NoCheckpoint {
                    dir: dir.to_path_buf(),
                }),
            };
        }
        Err(InferenceError::NotAModel {
            dir: dir.to_path_buf(),
        })
    }

    fn checkpoint(dir: &Path) -> Result<Self, InferenceError> {
        let state = read_trainer_state(dir)?;
        let run_config = |what: String| InferenceError::RunConfig {
            dir: dir.to_path_buf(),
            what,
        };
        let section = state
            .config
            .get("model")
            .cloned()
            .ok_or_else(|| run_config("the section is missing".into()))?;
        let model: ModelConfig =
            serde_json::from_value(section).map_err(|e| run_config(e.to_string()))?;
        model.validate().map_err(|e| run_config(e.to_string()))?;
        let params = load_weights(&dir.join("model.safetensors"), &ParamLayout::gpt2(&model))?;
        Ok(TrainedModel {
            dir: dir.to_path_buf(),
            model,
            params,
            source: ModelSource::Checkpoint {
                step: state.step,
                config: state.config,
            },
        })
    }
}
