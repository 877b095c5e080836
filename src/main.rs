// Links every plugin crate, so their components are registered.
use cptrain_app as _;

/// Large buffers (activations, weights, optimizer state) on huge pages.
#[global_allocator]
static ALLOC: cptrain::HugePageAlloc = cptrain::HugePageAlloc;

fn main() -> std::process::ExitCode {
    if cptrain_app::launch::requested() {
        return cptrain_app::launch::main();
    }
    cptrain::cli::main()
}
