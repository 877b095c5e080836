//! `cptrain eval`: loss, perplexity and bits per byte of a trained model on
//! a token file or a split of its run's data, on any rank layout
//! (`parallel.*`, the ranks as threads). Reads only; trains nothing and
//! writes nothing.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use super::ConfigLayers;
use super::commands::CommandError;
use super::trained::{Loaded, open_trained};
use crate::components::LinkedAttention;
use crate::data::{DataConfig, Split, TrainConfig, open_data_source};
use crate::inference::{ModelSource, byte_lengths};
use crate::kernels::KernelsConfig;
use crate::metrics::MetricsConfig;
use crate::optim::OptimizerConfig;
use crate::parallel::ParallelConfig;
use crate::tokenizer::{ByteTokenizer, Tokenizer};
use crate::train::{EvalBatches, TrainError, TrainPlan, evaluate_on_layout};

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
    let mut data: DataConfig = loaded.env.bind("data")?;
    let plan = eval_plan(&loaded)?;
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
    let source = open_data_source(&data, &plan.model, plan.train.seed)?;
    let available = source.num_windows(split);
    if available == 0 {
        return Err(format!(
            "the {split} split of {} is empty (data.val_fraction = 0 and no data.val_path?); \
             evaluate a file with --data PATH",
            source.describe()
        )
        .into());
    }
    let batch_size = plan.train.batch_size;
    let batches = match (&args.data, args.batches) {
        (_, Some(n)) => n,
        (None, None) => plan.train.eval_batches,
        // Whole batches, so that every rank layout splits them alike.
        (Some(path), None) if available < batch_size => {
            return Err(format!(
                "--data {}: {available} windows of model.seq_len tokens, fewer than one batch \
                 of train.batch_size = {batch_size}; lower train.batch_size (--set)",
                path.display()
            )
            .into());
        }
        (Some(_), None) => available / batch_size,
    };
    if batches == 0 {
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
    let lengths = text.map(|t| byte_lengths(t, plan.model.vocab_size));
    let what = EvalBatches {
        split,
        batches: batches as u64,
        byte_lengths: lengths.as_deref(),
    };
    // The strategy `parallel.cp_comm` selects among the linked components,
    // built for each rank as a run builds it.
    let plan = Arc::new(plan);
    let linked = LinkedAttention::new(&loaded.env, plan.clone())?;
    let attention = |rank, groups, kernels| {
        linked
            .build(rank, groups, kernels)
            .map_err(|e| TrainError::Invalid(e.to_string()))
    };
    let params = &loaded.trained.params;
    let totals = evaluate_on_layout(&plan, source.clone(), params, &what, &attention)?;
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
        "ranks": layout(&plan),
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
    writeln!(out, "ranks         {}", layout(&plan))?;
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

/// The plan of the evaluation's rank layout: the trained model under the
/// configuration's `[train]`, `[parallel]` and `[kernels]` (the run's, and
/// `--set` over it).
fn eval_plan(loaded: &Loaded) -> Result<TrainPlan, CommandError> {
    let env = &loaded.env;
    let train: TrainConfig = env.bind("train")?;
    let parallel: ParallelConfig = env.bind("parallel")?;
    let kernels: KernelsConfig = env.bind("kernels")?;
    let optimizer: OptimizerConfig = env.bind("optimizer")?;
    let metrics: MetricsConfig = env.bind("metrics")?;
    let model = &loaded.trained.model;
    // Evaluation builds no optimizer: none of its state is allocated.
    let plan = TrainPlan::new(
        model,
        &train,
        &optimizer,
        0,
        &parallel,
        &kernels,
        &metrics,
        parallel.world_size,
    )?;
    Ok(plan)
}

/// `world_size = W (dp = D, cp = C, cp_comm)`.
fn layout(plan: &TrainPlan) -> String {
    let p = &plan.parallel;
    let cp_comm = if p.cp > 1 {
        format!(", {}", p.cp_comm)
    } else {
        String::new()
    };
    let tp = if p.tp > 1 {
        format!(", tp = {}", p.tp)
    } else {
        String::new()
    };
    format!(
        "world_size = {} (dp = {}, cp = {}{cp_comm}{tp})",
        plan.grid.world_size(),
        plan.dp(),
        p.cp,
    )
}
