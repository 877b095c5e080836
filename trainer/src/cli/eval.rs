//! `cptrain eval`: loss, perplexity and bits per byte of a trained model on
//! a token file or a split of its run's data. Reads only; trains nothing and
//! writes nothing.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::ConfigLayers;
use super::commands::CommandError;
use super::trained::open_trained;
use crate::data::{DataConfig, Split, TrainConfig, open_data_source};
use crate::inference::{EvalInput, ModelSource, evaluate, validation_windows};
use crate::tokenizer::{ByteTokenizer, Tokenizer};

/// Options of `cptrain eval`.
#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// A checkpoint (`<out_dir>/checkpoints/step-N`), a run's out_dir (its
    /// newest checkpoint), or a Hugging Face GPT-2 directory.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Evaluate every window of this file instead (the format of
    /// data.source: `text` bytes or `tokens` u16; `--set data.source=...`
    /// when the run's data was synthetic).
    #[arg(long, value_name = "PATH", conflicts_with = "split")]
    pub data: Option<PathBuf>,
    /// The split of the run's own data (`val`: the windows the run's
    /// evaluation reads, so the loss is its eval_loss).
    #[arg(long, value_enum, default_value_t = EvalSplit::Val)]
    pub split: EvalSplit,
    /// Batches of train.batch_size sequences (default: train.eval_batches
    /// for a split, the whole file for --data).
    #[arg(long, value_name = "N")]
    pub batches: Option<usize>,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// A split of the run's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalSplit {
    /// The held-out windows.
    Val,
    /// The training windows.
    Train,
}

/// Runs `cptrain eval`.
pub(super) fn eval_command(layers: &ConfigLayers, args: &EvalArgs) -> Result<(), CommandError> {
    let loaded = open_trained(layers, &args.checkpoint)?;
    let model = &loaded.trained.model;
    let mut data: DataConfig = loaded.env.bind("data")?;
    let train: TrainConfig = loaded.env.bind("train")?;
    let split = match (&args.data, args.split) {
        (Some(path), _) => {
            if data.source == "synthetic" {
                return Err(format!(
                    "--data {}: data.source is \"synthetic\" (the run's); say how the file holds \
                     tokens with --set data.source=text (bytes) or --set data.source=tokens (u16)",
                    path.display()
                )
                .into());
            }
            // The whole file is the validation split.
            data.path = Some(path.clone());
            data.val_path = Some(path.clone());
            Split::Val
        }
        (None, EvalSplit::Val) => Split::Val,
        (None, EvalSplit::Train) => Split::Train,
    };
    let source = open_data_source(&data, model, train.seed)?;
    let available = source.num_windows(split);
    if available == 0 {
        return Err(format!(
            "the {split} split of {} is empty (data.val_fraction = 0 and no data.val_path?); \
             evaluate a file with --data PATH",
            source.describe()
        )
        .into());
    }
    let windows = match (&args.data, args.batches) {
        (Some(_), None) => (0..available).collect(),
        (Some(_), Some(n)) => (0..available.min(n * train.batch_size)).collect(),
        (None, n) => {
            validation_windows(available, train.batch_size, n.unwrap_or(train.eval_batches))
        }
    };
    if windows.is_empty() {
        return Err(
            "--batches 0 (or train.eval_batches = 0) evaluates nothing; give --batches N".into(),
        );
    }
    // Ids of `text` data are bytes; of `tokens` data, data.tokenizer's.
    let text: Option<&dyn Tokenizer> = match data.source.as_str() {
        "synthetic" => None,
        "text" => Some(&ByteTokenizer),
        _ => Some(&*loaded.tokenizer),
    };
    let input = EvalInput {
        model,
        params: &loaded.trained.params,
        source: &*source,
        split,
        windows: &windows,
        micro_batch: train.micro_batch_size.unwrap_or(train.batch_size),
        text,
    };
    let totals = evaluate(loaded.kernels.clone(), &input)?;
    if totals.targets == 0 {
        return Err("no target in the evaluated windows counts in the loss".into());
    }
    let step = match &loaded.trained.source {
        ModelSource::Checkpoint { step, .. } => Some(*step),
        ModelSource::HuggingFace => None,
    };
    let report = serde_json::json!({
        "checkpoint": loaded.trained.dir,
        "step": step,
        "data": source.describe(),
        "split": split.to_string(),
        "sequences": totals.sequences,
        "tokens": totals.targets,
        "bytes": totals.bytes,
        "loss": totals.loss(),
        "perplexity": totals.perplexity(),
        "bits_per_byte": totals.bits_per_byte(),
    });
    if args.json {
        println!("{report}");
        return Ok(());
    }
    let mut out = String::new();
    writeln!(out, "checkpoint    {}", loaded.trained.dir.display())?;
    writeln!(out, "data          {} ({split} split)", source.describe())?;
    writeln!(
        out,
        "evaluated     {} sequences, {} target tokens",
        totals.sequences, totals.targets
    )?;
    writeln!(out, "loss          {:.6}", totals.loss())?;
    writeln!(out, "perplexity    {:.4}", totals.perplexity())?;
    match totals.bits_per_byte() {
        Some(bpb) => writeln!(out, "bits/byte     {bpb:.6}")?,
        None => writeln!(out, "bits/byte     - (the tokens are not text)")?,
    }
    print!("{out}");
    Ok(())
}
