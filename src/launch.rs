//! `cptrain launch --nproc N [--master-port P] -- run ...`: N processes of
//! this binary on this machine, one per GPU, for a backend of one rank per
//! process (`parallel.backend = "nccl"`). Each child gets torchrun's
//! variables (`RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `LOCAL_WORLD_SIZE`,
//! `MASTER_ADDR=127.0.0.1`, `MASTER_PORT`); `CUDA_VISIBLE_DEVICES` is left
//! as it is, and each rank takes the GPU of its local rank among those
//! visible. Separate from the trainer's command line because it runs no
//! configuration of its own: the configuration belongs to the children.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use cptrain_plugins::launch::{LaunchSpec, launch, print_lines};

/// Starts N copies of cptrain on this machine, one per GPU, and stops them
/// all when one fails.
#[derive(Debug, Parser)]
#[command(
    name = "cptrain launch",
    bin_name = "cptrain launch",
    after_help = "Example: cptrain launch --nproc 8 -- run --set parallel.backend=nccl \
                  --set parallel.world_size=8 --set kernels.device=cuda"
)]
pub struct LaunchArgs {
    /// Processes to start: ranks 0..N, rank r on the r-th visible GPU.
    #[arg(long, value_name = "N")]
    pub nproc: usize,
    /// Port on 127.0.0.1 where rank 0 waits for the others (0: a free one).
    #[arg(long, value_name = "P", default_value_t = cptrain_plugins::launch::DEFAULT_MASTER_PORT)]
    pub master_port: u16,
    /// The cptrain command every rank runs, after `--` (e.g. `run --set ...`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// True when the command line asks for `cptrain launch`.
pub fn requested() -> bool {
    std::env::args_os().nth(1).is_some_and(|a| a == "launch")
}

/// Runs `cptrain launch` from the process's arguments: exit code 0 when
/// every rank succeeded, else the failed rank's code (1 if it had none), 2
/// for a usage error.
pub fn main() -> ExitCode {
    let args = LaunchArgs::parse_from(std::env::args_os().skip(1));
    let program = match std::env::current_exe() {
        Ok(program) => program,
        Err(e) => {
            eprintln!("error: cptrain launch cannot find its own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let spec = LaunchSpec {
        program,
        args: args.command,
        nproc: args.nproc,
        master_addr: "127.0.0.1".into(),
        master_port: args.master_port,
    };
    match launch(&spec, print_lines()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: cptrain launch: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
