use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use super::eval::EvalArgs;
pub use super::generate::GenerateArgs;

/// Context-parallel GPT training.
#[derive(Debug, Parser)]
#[command(name = "cptrain", version, about, long_about = None)]
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
    #[arg(long = "profile", value_name = "NAME", global = true)]
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
    /// Continue a prompt with a trained model (a checkpoint or a Hugging
    /// Face directory), streaming the text.
    Generate(GenerateArgs),
    /// Loss, perplexity and bits per byte of a trained model on held-out
    /// data; trains and writes nothing.
    Eval(EvalArgs),
}

/// Options of `cptrain bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Timed steps.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed steps first (page faults, caches, thread pools).
    #[arg(long, default_value_t = 1)]
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
