//! The `cptrain` command line with this crate's components linked in: the
//! one line that makes a plugin's components exist is the `use` below
//! (components register through `inventory`, which sees only linked crates).

use cptrain_example_plugin as _;

fn main() -> std::process::ExitCode {
    cptrain::cli::main()
}
