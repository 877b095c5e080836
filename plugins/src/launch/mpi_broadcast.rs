//! [`IdExchange::Mpi`](super::IdExchange::Mpi): rank 0's job and blob reach
//! every rank by broadcasts on `MPI_COMM_WORLD`, through the `mpi` backend
//! (feature `mpi`). Its runtime initializes MPI once per process (shared
//! with an `mpi` backend, if one is made) and ends it at exit: finalized
//! after a clean exit, the whole job aborted after a failure, so a rank of
//! the `nccl` backend that fails later stops the others too.

use std::time::Duration;

use cptrain::parallel::{Backend, CommError, ProcessGroup, ReduceOp};

use super::exchange::IdExchangeError;
use super::wire::Hello;
use crate::MpiBackend;

/// The group's name in the errors of a broadcast that times out.
const GROUP: &str = "id exchange";

/// Checks that every rank runs rank 0's job, then rank 0 makes the blob
/// with `make_blob` and broadcasts it. When jobs differ, every rank fails
/// with the same reason, naming the lowest disagreeing rank and both jobs.
pub(super) fn exchange<E: From<IdExchangeError>>(
    me: &Hello,
    timeout: Duration,
    make_blob: impl FnOnce() -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, E> {
    let fail = |e: IdExchangeError| E::from(e);
    let comm = |e: CommError| E::from(IdExchangeError::from(e));
    let mpi = MpiBackend::new(timeout).map_err(|e| fail(e.into()))?;
    if (mpi.rank(), mpi.world_size()) != (me.rank, me.world_size) {
        return Err(fail(IdExchangeError::Refused {
            reason: format!(
                "MPI numbers this process rank {} of {}, but OMPI_COMM_WORLD_RANK/SIZE say rank \
                 {} of {}: they were inherited by a process that mpirun did not start; start \
                 every rank with mpirun",
                mpi.rank(),
                mpi.world_size(),
                me.rank,
                me.world_size
            ),
        }));
    }
    let members: Vec<usize> = (0..me.world_size).collect();
    let world = mpi.group(GROUP, &members, me.rank).map_err(comm)?;
    let job_of = |rank: usize| -> Result<Hello, E> {
        let job = broadcast_bytes(&*world, rank, me.job.as_bytes()).map_err(comm)?;
        Ok(Hello {
            rank,
            world_size: me.world_size,
            job: String::from_utf8_lossy(&job).into_owned(),
        })
    };
    let rank0 = job_of(0)?;
    // One slot per rank, 1 where that rank disagrees: after the sum every
    // rank knows who disagrees, and asks the first for its job.
    let mut disagrees = vec![0.0f32; me.world_size];
    if me.disagreement(&rank0).is_some() {
        disagrees[me.rank] = 1.0;
    }
    world
        .all_reduce(&mut disagrees, ReduceOp::Sum)
        .map_err(comm)?;
    if let Some(first) = disagrees.iter().position(|&d| d > 0.0) {
        let them = job_of(first)?;
        let reason = them
            .disagreement(&rank0)
            .unwrap_or_else(|| format!("rank {first} reported another job than rank 0's"));
        return Err(fail(IdExchangeError::Refused { reason }));
    }
    let blob = if me.rank == 0 {
        make_blob()?
    } else {
        Vec::new()
    };
    broadcast_bytes(&*world, 0, &blob).map_err(comm)
}

/// `root`'s `bytes` on every rank (the others' `bytes` are ignored): the
/// length, then the bytes, one per `f32` (each byte and any length below
/// 2^24 is exact in an `f32`; the payloads here are a job's description and
/// a 128-byte id).
fn broadcast_bytes(
    group: &dyn ProcessGroup,
    root: usize,
    bytes: &[u8],
) -> Result<Vec<u8>, CommError> {
    let mut len = [bytes.len() as f32];
    group.broadcast(&mut len, root)?;
    let mut values: Vec<f32> = bytes.iter().map(|&b| f32::from(b)).collect();
    values.resize(len[0] as usize, 0.0);
    group.broadcast(&mut values, root)?;
    Ok(values.into_iter().map(|v| v as u8).collect())
}
