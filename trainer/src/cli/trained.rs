//! What `generate` and `eval` share: the trained model, the configuration
//! it was trained with (under the command line's layers), its tokenizer and
//! the CPU kernels.

use std::path::Path;
use std::sync::Arc;

use appctx::{Environment, Source};

use super::commands::CommandError;
use super::{ConfigLayers, build_environment, build_environment_over};
use crate::components::{configured_tokenizer, with_tokenizer};
use crate::inference::{ModelSource, TrainedModel};
use crate::kernels::{CpuKernels, Kernels, KernelsConfig, Threads};
use crate::tokenizer::Tokenizer;

/// GPT-2's vocabulary size: a Hugging Face directory with at least this
/// many tokens is read with the `gpt2` tokenizer unless `data.tokenizer`
/// is set.
const GPT2_VOCAB: usize = 50257;

/// A trained model ready to run.
pub(super) struct Loaded {
    /// Weights and shape.
    pub trained: TrainedModel,
    /// The run's configuration (a checkpoint's) or the defaults (a Hugging
    /// Face directory), under `--config`, `--profile` and `--set`.
    pub env: Environment,
    /// `data.tokenizer`.
    pub tokenizer: Arc<dyn Tokenizer>,
    /// CPU kernels with `kernels.threads` threads.
    pub kernels: Arc<dyn Kernels>,
}

/// Opens the model at `dir` (`--checkpoint`): a checkpoint's shape and
/// tokenizer come from its run's configuration, so no `--set` needs
/// repeating; `--set` still overrides keys such as `data.*` or `kernels.*`.
pub(super) fn open_trained(layers: &ConfigLayers, dir: &Path) -> Result<Loaded, CommandError> {
    let trained = TrainedModel::open(dir)?;
    let env = match &trained.source {
        ModelSource::Checkpoint { config, .. } => {
            let toml_text = toml::to_string(config).map_err(|e| {
                format!(
                    "{}: the run's configuration cannot be restored: {e}",
                    trained.dir.display()
                )
            })?;
            let name = format!("(the run's, {})", trained.dir.display());
            build_environment_over(layers, Some((&name, &toml_text)))?
        }
        ModelSource::HuggingFace => build_environment(layers)?,
    };
    let defaulted = matches!(env.origin("data.tokenizer"), Some(Source::Defaults { .. }));
    let hf_gpt2 =
        trained.source == ModelSource::HuggingFace && trained.model.vocab_size >= GPT2_VOCAB;
    let tokenizer = if hf_gpt2 && defaulted {
        configured_tokenizer(&with_tokenizer(&env, "gpt2")?)?
    } else {
        configured_tokenizer(&env)?
    };
    let kernels: KernelsConfig = env.bind("kernels")?;
    let threads = Threads::new(kernels.threads_per_rank(1))?;
    Ok(Loaded {
        trained,
        env,
        tokenizer,
        kernels: Arc::new(CpuKernels::new(threads)),
    })
}
