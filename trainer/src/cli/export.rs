//! `cptrain export --checkpoint DIR --to DIR`: a Hugging Face directory that
//! `GPT2LMHeadModel.from_pretrained` and `AutoTokenizer.from_pretrained` open.

use std::sync::Arc;

use appctx::Environment;

use super::ExportArgs;
use super::commands::CommandError;
use crate::checkpoint::{hf_files, save_weights};
use crate::components::configured_tokenizer;
use crate::inference::{ModelSource, TrainedModel};
use crate::model::ParamLayout;
use crate::tokenizer::Tokenizer;

/// Writes `model.safetensors`, `config.json` and the tokenizer's files into
/// a new directory (through a temporary one, renamed when complete).
pub fn export(args: &ExportArgs) -> Result<(), CommandError> {
    let to = &args.to;
    let occupied = std::fs::read_dir(to).is_ok_and(|mut entries| entries.next().is_some());
    if occupied || to.is_file() {
        return Err(format!(
            "--to {} exists and is not an empty directory; choose a new one",
            to.display()
        )
        .into());
    }
    let trained = TrainedModel::open(&args.checkpoint)?;
    let ModelSource::Checkpoint { config, step } = &trained.source else {
        return Err(format!(
            "--checkpoint {} is already a Hugging Face directory; copy it instead",
            trained.dir.display()
        )
        .into());
    };
    let tokenizer = run_tokenizer(config)?;
    let name = to
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    let temp = to.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let write = || -> Result<(), CommandError> {
        std::fs::create_dir_all(&temp)?;
        let layout = ParamLayout::gpt2(&trained.model);
        save_weights(&temp.join("model.safetensors"), &layout, &trained.params)?;
        for (file, text) in hf_files(&trained.model, &*tokenizer) {
            std::fs::write(temp.join(file), text)?;
        }
        if to.is_dir() {
            std::fs::remove_dir(to)?;
        }
        std::fs::rename(&temp, to)?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&temp);
        return Err(format!("cannot export to {}: {e}", to.display()).into());
    }
    println!(
        "exported step {step} of {} to {} ({} tokenizer): \
         GPT2LMHeadModel.from_pretrained and AutoTokenizer.from_pretrained open it",
        trained.dir.display(),
        to.display(),
        tokenizer.name()
    );
    Ok(())
}

/// The tokenizer of a run's configuration snapshot (`bytes` when it names
/// none, as runs did before `data.tokenizer` existed).
fn run_tokenizer(config: &serde_json::Value) -> Result<Arc<dyn Tokenizer>, CommandError> {
    let name = config
        .pointer("/data/tokenizer")
        .and_then(|t| t.as_str())
        .unwrap_or("bytes");
    let text = toml::to_string(config)?;
    let env = Environment::builder()
        .defaults("(the run's configuration)", &text)
        .set(format!("data.tokenizer={name}"))
        .build()?;
    Ok(configured_tokenizer(&env)?)
}
