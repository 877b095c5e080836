use serde::{Deserialize, Serialize};

use super::EmbedError;
use crate::cli::embedded_environment;
use crate::data::{DataConfig, TrainConfig};
use crate::kernels::KernelsConfig;
use crate::metrics::MetricsConfig;
use crate::model::ModelConfig;
use crate::optim::OptimizerConfig;
use crate::parallel::ParallelConfig;

/// The trainer's configuration as typed sections, one field per TOML
/// section of `config/default.toml` (the reference for every key).
///
/// Start from [`TrainerConfig::defaults`] and change fields; every key is
/// then set explicitly, so `model.vocab_size` no longer follows
/// `data.source` as it does in TOML: set it for `text` (256) or `tokens`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerConfig {
    /// `[model]`: the GPT's shape.
    pub model: ModelConfig,
    /// `[data]`: the data source and tokenizer.
    pub data: DataConfig,
    /// `[train]`: steps, batch, seed, evaluation and checkpoints.
    pub train: TrainConfig,
    /// `[optimizer]`: AdamW and the learning-rate schedule.
    pub optimizer: OptimizerConfig,
    /// `[parallel]`: the backend and the rank layout.
    pub parallel: ParallelConfig,
    /// `[kernels]`: the device and its threads.
    pub kernels: KernelsConfig,
    /// `[metrics]`: logging, MFU, profiles and traces.
    pub metrics: MetricsConfig,
}

impl TrainerConfig {
    /// The embedded defaults (`config/default.toml`): a small GPT on the
    /// synthetic `copy` task.
    pub fn defaults() -> Result<Self, EmbedError> {
        Self::from_toml("")
    }

    /// `text` layered over the embedded defaults (as `cptrain run
    /// --config` would, without files, profiles or environment variables).
    pub fn from_toml(text: &str) -> Result<Self, EmbedError> {
        let env = embedded_environment(&[(super::CONFIG_LAYER, text.to_string())])?;
        Ok(TrainerConfig {
            model: env.bind("model")?,
            data: env.bind("data")?,
            train: env.bind("train")?,
            optimizer: env.bind("optimizer")?,
            parallel: env.bind("parallel")?,
            kernels: env.bind("kernels")?,
            metrics: env.bind("metrics")?,
        })
    }

    /// The configuration as TOML text, every key set.
    pub fn to_toml(&self) -> Result<String, EmbedError> {
        toml::to_string(self).map_err(EmbedError::Serialize)
    }
}

#[cfg(test)]
mod tests {
    use super::TrainerConfig;

    /// Typed sections written as TOML and read back over the defaults are
    /// the same sections (every key survives the round trip).
    #[test]
    fn the_typed_configuration_round_trips_through_toml() {
        let mut config = TrainerConfig::from_toml("[train]\nsteps = 7\n").unwrap();
        assert_eq!(config.train.steps, 7);
        config.model.n_positions = Some(128);
        config.optimizer.lr = 1e-2;
        let text = config.to_toml().unwrap();
        assert_eq!(TrainerConfig::from_toml(&text).unwrap(), config);
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        let error = TrainerConfig::from_toml("[train]\nstepz = 7\n").unwrap_err();
        assert!(error.to_string().contains("stepz"), "{error}");
    }
}
