// Links every plugin crate, so their components are registered.
use cptrain_app as _;

fn main() -> std::process::ExitCode {
    cptrain::cli::main()
}
