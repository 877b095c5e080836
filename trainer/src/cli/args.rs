use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use super::eval::EvalArgs;
pub use super::generate::GenerateArgs;

/// Context-parallel GPT training.
#[derive(Debug, Parser)]
#[command(
    name = "cptrain",
    version,
    about,
    long_about = None,
    after_help = "One process per GPU (parallel.backend = \"nccl\"): \
        `cptrain launch --nproc N -- run ...` starts N of them on this machine \
        (`cptrain launch --help`)."
)]
pub struct Cli {
    /// Configuration layers shared by every command.
    #[command(flatten)]
    pub layers: ConfigLayers,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The configuration layers, lowest first after the embedded defaults.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigLayers {
    /// A TOML file layered over the defaults (repeatable; later files win).
    #[arg(long = "config", value_name = "FILE", global = true)]
    pub config: Vec<PathBuf>,
    /// A profile: `config/NAME.toml` in the working directory, else a built-in
    /// one (cp4, long); repeatable.
    #[arg(long = "profile", value_name = "NAME", global = true, value_parser = profile_name)]
    pub profile: Vec<String>,
    /// Override one key, e.g. `--set train.steps=50` (repeatable; wins over
    /// files, profiles and CPTRAIN__SECTION__KEY environment variables).
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    pub set: Vec<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train (the embedded default: a small GPT on the synthetic copy task).
    Run(RunArgs),
    /// Validate the configuration and wiring and print the plan; runs nothing.
    Check,
    /// List every registered component, whether it was chosen, and why.
    Components,
    /// Print the effective configuration and the source of every value.
    Config,
    /// Time full training steps (forward, backward, AdamW) of the configured
    /// model on one rank, with synthetic tokens, and show where the time goes.
    Bench(BenchArgs),
    /// Draw loss (eval loss as points), learning rate, tokens/s and gradient
    /// norm against the step from runs' metrics.jsonl, overlaid, into one PNG
    /// and one SVG.
    Plot(PlotArgs),
    /// Tokenize text files, directories of them, or JSONL into train/val
    /// token shards for `data.source = "tokens"` (`data.path = DIR`).
    Prepare(PrepareArgs),
    /// Continue a prompt with a trained model (a checkpoint or a Hugging
    /// Face directory), streaming the text.
    Generate(GenerateArgs),
    /// Loss, perplexity and bits per byte of a trained model on held-out
    /// data; trains and writes nothing.
    Eval(EvalArgs),
    /// Write a clean Hugging Face directory (weights, config.json, tokenizer
    /// files; no optimizer state) from a checkpoint.
    Export(ExportArgs),
}

/// Options of `cptrain export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// A `step-N` checkpoint, or a run's out_dir (its newest checkpoint).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// The directory to create (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

/// Options of `cptrain prepare`.
#[derive(Debug, Clone, Args)]
pub struct PrepareArgs {
    /// Text files, directories (read recursively) or `.jsonl` files (one
    /// document per line).
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<PathBuf>,
    /// The output directory (must hold no shards yet).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// `bytes` or `gpt2` (default: `data.tokenizer`).
    #[arg(long, value_name = "NAME")]
    pub tokenizer: Option<String>,
    /// Share of the documents held out for validation, spread evenly.
    #[arg(long, default_value_t = 0.01, value_name = "FRACTION")]
    pub val_fraction: f64,
    /// Files or directories whose documents form the validation split
    /// (instead of --val-fraction); repeatable.
    #[arg(long = "val", value_name = "INPUT")]
    pub val_inputs: Vec<PathBuf>,
    /// The JSONL field holding each document's text.
    #[arg(long, default_value = "text", value_name = "FIELD")]
    pub jsonl_field: String,
    /// Tokens per shard file.
    #[arg(long, default_value_t = 100_000_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_tokens: u64,
}

/// Options of `cptrain plot`.
#[derive(Debug, Clone, Args)]
pub struct PlotArgs {
    /// The `train.out_dir` of each run to draw (each holds a metrics.jsonl).
    #[arg(value_name = "RUN_DIR", required = true)]
    pub runs: Vec<PathBuf>,
    /// Write PATH.png and PATH.svg (default: plot.png and plot.svg in the
    /// first RUN_DIR).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// Options of `cptrain bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Timed steps (1 to 1,000,000).
    #[arg(long, default_value_t = 5, value_parser = step_count(1))]
    pub steps: usize,
    /// Untimed steps first (page faults, caches, thread pools; at most 1,000,000).
    #[arg(long, default_value_t = 1, value_parser = step_count(0))]
    pub warmup: usize,
    /// Skip the per-phase profile.
    #[arg(long)]
    pub no_profile: bool,
}

/// Options of `cptrain run`.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Continue from the newest complete checkpoint in `train.out_dir`
    /// (`--resume` alone, or `--resume latest`), or from the given `step-N`
    /// checkpoint directory.
    #[arg(long, value_name = "CHECKPOINT_DIR", num_args = 0..=1, default_missing_value = "latest")]
    pub resume: Option<PathBuf>,
    /// With `--resume`: when the newest checkpoint is incomplete or damaged,
    /// continue from the newest valid one (with a warning) instead of stopping.
    #[arg(long, requires = "resume")]
    pub fallback: bool,
}

/// Steps `bench` accepts: from `min` to a million.
fn step_count(min: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(min..=1_000_000)
}

/// A profile names a file in `config/`: only letters, digits, `-` and `_`,
/// so that `--profile` never reaches outside that directory.
fn profile_name(name: &str) -> Result<String, String> {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if plain {
        Ok(name.to_string())
    } else {
        Err(
            "a profile is a plain name (letters, digits, `-`, `_`) of a file `config/NAME.toml` \
             or a built-in profile; to load a file elsewhere, use `--config PATH`"
                .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_a_plain_name() {
        for good in ["cp4", "long", "my-run_2"] {
            assert_eq!(profile_name(good).as_deref(), Ok(good));
        }
        for bad in ["", "../../x", "a/b", "x.toml", "/etc/passwd", "a b"] {
            assert!(
                profile_name(bad).unwrap_err().contains("--config PATH"),
                "{bad}"
            );
        }
    }
}
