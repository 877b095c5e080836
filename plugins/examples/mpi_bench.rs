//! Bandwidth of the `mpi` backend for 16 MiB messages, to compare with the
//! local backend's `cargo bench -p cptrain --bench comm`:
//!
//! ```text
//! cargo build --release --features mpi --example mpi_bench -p cptrain-plugins
//! mpirun -np 2 target/release/examples/mpi_bench
//! ```
//!
//! Rank 0 prints the median time of all-reduce, all-gather and one ring step
//! (isend to the next rank, irecv from the previous, wait both), and the
//! same all-reduce as one blocking `MPI_Allreduce` (the library's floor,
//! without this backend's polling and buffer copies).

use std::time::{Duration, Instant};

use cptrain::parallel::{Backend, ProcessGroup, RankError, ReduceOp};
use cptrain_plugins::MpiBackend;

const BYTES: usize = 16 << 20;
const ELEMENTS: usize = BYTES / 4;
const ITERATIONS: usize = 15;

/// Median time of `ITERATIONS` runs of `f` (after one warm-up), in lockstep
/// across ranks.
fn median(
    group: &dyn ProcessGroup,
    mut f: impl FnMut() -> Result<(), RankError>,
) -> Result<Duration, RankError> {
    f()?;
    let mut times = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        group.barrier()?;
        let started = Instant::now();
        f()?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times[ITERATIONS / 2])
}

fn report(rank: usize, name: &str, time: Duration) {
    if rank == 0 {
        let gbps = BYTES as f64 / time.as_secs_f64() / 1e9;
        println!(
            "{name:<28} {:>8.2} ms   algbw {gbps:.2} GB/s",
            time.as_secs_f64() * 1e3
        );
    }
}

fn bench(backend: &MpiBackend, rank: usize) -> Result<(), RankError> {
    let size = backend.world_size();
    let members: Vec<usize> = (0..size).collect();
    let world = backend.group("world", &members, rank)?;
    let mut buf = vec![1.0f32; ELEMENTS];
    let t = median(&*world, || Ok(world.all_reduce(&mut buf, ReduceOp::Sum)?))?;
    report(rank, "all_reduce (backend)", t);

    let mut raw = vec![1.0f32; ELEMENTS];
    let send = raw.clone();
    let t = median(&*world, || {
        // SAFETY: both buffers hold ELEMENTS floats; MPI is initialized.
        unsafe {
            mpi::ffi::MPI_Allreduce(
                send.as_ptr().cast(),
                raw.as_mut_ptr().cast(),
                ELEMENTS as i32,
                mpi::ffi::RSMPI_FLOAT,
                mpi::ffi::RSMPI_SUM,
                mpi::ffi::RSMPI_COMM_WORLD,
            )
        };
        Ok(())
    })?;
    report(rank, "all_reduce (blocking MPI)", t);

    let block = vec![1.0f32; ELEMENTS / size];
    let mut gathered = vec![0.0f32; ELEMENTS / size * size];
    let t = median(&*world, || Ok(world.all_gather(&block, &mut gathered)?))?;
    report(rank, "all_gather (16 MiB out)", t);

    let (next, prev) = ((rank + 1) % size, (rank + size - 1) % size);
    let t = median(&*world, || {
        let recv = world.irecv(prev)?;
        let send = world.isend(next, vec![1.0f32; ELEMENTS])?;
        let message = recv.wait()?;
        send.wait()?;
        assert_eq!(message.len(), ELEMENTS);
        Ok(())
    })?;
    report(rank, "ring isend/irecv step", t);
    Ok(())
}

fn main() -> Result<(), RankError> {
    let backend = MpiBackend::new(Duration::from_secs(60))?;
    if backend.rank() == 0 {
        println!(
            "{} process(es), 16 MiB per rank, median of {ITERATIONS}",
            backend.world_size()
        );
    }
    backend.launch(&|rank| bench(&backend, rank))
}
