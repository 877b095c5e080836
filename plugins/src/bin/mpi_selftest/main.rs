//! Self-test of the `mpi` backend, run by `tests/mpi.rs` under
//! `mpirun -np 2` and `-np 4` (and alone, as a world of one).
//!
//! `cptrain-mpi-selftest check` exercises every operation and must exit 0;
//! rank 0 prints `selftest OK`. `timeout-collective` and `timeout-recv`
//! make one rank skip its part with a 2 s deadline: the waiting rank must
//! report a timeout naming the operation and the job must end non-zero.
//! `stall` (4 processes) makes rank 2 hang outside MPI while rank 3 waits
//! for it and ranks 0 and 1 wait in an all-reduce for both: whichever
//! times out must name rank 2 as the one holding the job up.
//! `id-exchange` passes a fake NCCL id from rank 0 to every rank the way
//! the `nccl` backend does under mpirun; `id-mismatch` gives the last rank
//! another job, which must be refused.

mod collectives;
mod groups;
mod id_exchange;
mod p2p;

use std::time::Duration;

use cptrain::parallel::{Backend, ParallelConfig, RankError};
use cptrain_plugins::mpi_backend;

/// A failed check, as a rank error.
pub fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), RankError> {
    if ok { Ok(()) } else { Err(what().into()) }
}

fn backend(timeout_s: f64) -> Result<std::sync::Arc<dyn Backend>, RankError> {
    // Any world size: ask MPI first, then check that the config is accepted.
    let probe = cptrain_plugins::MpiBackend::new(Duration::from_secs(1))?;
    let cfg = ParallelConfig {
        backend: "mpi".into(),
        world_size: probe.world_size(),
        timeout_s,
        ..ParallelConfig::default()
    };
    Ok(mpi_backend(&cfg)?)
}

fn check(backend: &dyn Backend, rank: usize) -> Result<(), RankError> {
    let size = backend.world_size();
    let members: Vec<usize> = (0..size).collect();
    let world = backend.group("world", &members, rank)?;
    collectives::check_all(&*world)?;
    p2p::check_all(&*world)?;
    groups::check_all(backend, rank)?;
    // Last: a wrong call fails this process's later operations too.
    groups::check_usage_errors(&*world)?;
    if rank == 0 {
        println!("selftest OK: {size} rank(s)");
    }
    Ok(())
}

/// Rank 0 does not take part; the others wait for it and time out.
fn timeout_collective(backend: &dyn Backend, rank: usize) -> Result<(), RankError> {
    let members: Vec<usize> = (0..backend.world_size()).collect();
    let world = backend.group("world", &members, rank)?;
    if rank == 0 && backend.world_size() > 1 {
        std::thread::sleep(Duration::from_secs(60));
        return Ok(());
    }
    let mut x = [1.0f32; 8];
    world.all_reduce(&mut x, cptrain::parallel::ReduceOp::Sum)?;
    Ok(())
}

/// The last rank waits for a message that rank 0 never sends.
fn timeout_recv(backend: &dyn Backend, rank: usize) -> Result<(), RankError> {
    let size = backend.world_size();
    let members: Vec<usize> = (0..size).collect();
    let world = backend.group("world", &members, rank)?;
    if rank == size - 1 {
        world.irecv(0)?.wait()?;
    } else {
        std::thread::sleep(Duration::from_secs(60));
    }
    Ok(())
}

/// Rank 2 hangs outside MPI; rank 3 waits for its message; ranks 0 and 1
/// wait in an all-reduce that needs ranks 2 and 3.
fn stall(backend: &dyn Backend, rank: usize) -> Result<(), RankError> {
    let members: Vec<usize> = (0..backend.world_size()).collect();
    let world = backend.group("world", &members, rank)?;
    match rank {
        2 => std::thread::sleep(Duration::from_secs(60)),
        3 => drop(world.irecv(2)?.wait()?),
        _ => world.all_reduce(&mut [1.0f32; 8], cptrain::parallel::ReduceOp::Sum)?,
    }
    Ok(())
}

/// One self-test: the backend and this process's rank.
type Mode = fn(&dyn Backend, usize) -> Result<(), RankError>;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let (timeout_s, body): (f64, Mode) = match mode.as_str() {
        "check" => (30.0, check),
        "timeout-collective" => (2.0, timeout_collective),
        "timeout-recv" => (2.0, timeout_recv),
        "stall" => (2.0, stall),
        "id-exchange" => return id_exchange::main(false),
        "id-mismatch" => return id_exchange::main(true),
        _ => {
            eprintln!(
                "usage: cptrain-mpi-selftest check|timeout-collective|timeout-recv|stall \
                     |id-exchange|id-mismatch (under mpirun or alone)"
            );
            std::process::exit(2);
        }
    };
    let outcome = backend(timeout_s).and_then(|b| b.launch(&|rank| body(&*b, rank)));
    if let Err(error) = outcome {
        // Only a world of one gets here: larger jobs are aborted by launch.
        eprintln!("rank 0 failed: {error}");
        std::process::exit(1);
    }
}
