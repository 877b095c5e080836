//! The `cptrain` command line: `run`, `check`, `components`, `config`,
//! `bench`, `plot`, `prepare`, `generate`, `eval`, `export`.

mod args;
mod bench;
mod commands;
mod environment;
mod eval;
mod export;
mod generate;
mod logging;
mod plot;
mod prepare;
mod resume;
mod trained;

pub(crate) use resume::run_config_changes;

pub use args::{
    BenchArgs, Cli, Command, ConfigLayers, EvalArgs, ExportArgs, GenerateArgs, PlotArgs,
    PrepareArgs, RunArgs,
};
pub use environment::{
    BUILTIN_PROFILES, DEFAULT_CONFIG, ENV_PREFIX, build_environment, build_environment_over,
    embedded_environment,
};

use std::process::ExitCode;

use clap::Parser;

/// Parses `std::env::args`, runs the command, prints any error as one
/// paragraph on stderr, and returns the process exit code: 0 when the
/// command did all it was asked, 1 on error, 2 for command-line usage
/// errors, 130 / 143 when `run` stopped on SIGINT / SIGTERM (after saving).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    if let Err(error) = crate::HugePages::from_env() {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    match commands::execute(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
