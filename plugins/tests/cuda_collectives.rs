//! The local backend's collectives and messages on device memory: ranks as
//! threads, each with its own cuda-emu device (with
//! `CPTRAIN_CUDA_DEVICE_TESTS=1`, its own kernel set on GPU 0:
//! `bench/gpu_check.sh`). Results must be the bits the host backend gives
//! (sums in group-rank order, and a sum of two f32 values rounds alike
//! everywhere), and nothing may pass through the host (the devices count
//! their host traffic). The trait's staged defaults, which backends moving
//! host memory only (MPI) run, give the same bits through the host.
#![cfg(feature = "cuda")]

mod cuda;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cptrain::device::{Buffer, DeviceMemory, Slice};
use cptrain::kernels::{Kernels, Precision};
use cptrain::parallel::{
    CommError, CommStats, GroupInfo, LocalGroup, LocalWorld, Op, ProcessGroup, RankFailure,
    RecvHandle, ReduceOp, SendHandle, WaitSpan, run_ranks,
};
use cptrain_plugins::cuda::device::{
    emulated_kernels, gpu_kernels, host_traffic_bytes, staging_blocks_kept,
};
use cuda::values;

type TestResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Three ranks and lengths no block size divides: the slices differ in length.
const RANKS: usize = 3;
const LEN: usize = 1001;

fn input(rank: usize, n: usize) -> Vec<f32> {
    values(n, 40 + rank as u64, 1.0)
}

/// `x₀ + x₁ + …` in group order, element by element, as the host backend sums.
fn host_sum(parts: &[Vec<f32>]) -> Vec<f32> {
    let mut acc = parts[0].clone();
    for part in &parts[1..] {
        acc.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    acc
}

fn memory_of(buffer: &Buffer) -> &dyn DeviceMemory {
    buffer.view().device().expect("a device buffer").0
}

fn traffic(buffer: &Buffer) -> u64 {
    host_traffic_bytes(memory_of(buffer)).expect("cuda-emu memory")
}

/// Blocks of staging memory `buffer`'s device keeps for reuse.
fn staging_kept(buffer: &Buffer) -> usize {
    staging_blocks_kept(memory_of(buffer)).expect("cuda-emu memory")
}

/// A rank's device: cuda-emu, or a kernel set of GPU 0.
fn device() -> Arc<dyn Kernels> {
    if std::env::var_os("CPTRAIN_CUDA_DEVICE_TESTS").is_some_and(|v| v == "1") {
        gpu_kernels(0, Precision::F32, false)
            .unwrap_or_else(|e| panic!("CPTRAIN_CUDA_DEVICE_TESTS=1: {e}"))
    } else {
        emulated_kernels(Precision::F32)
    }
}

/// How the ranks' device memory moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// The local backend's device-to-device collectives.
    Direct,
    /// The trait's defaults through the host ([`HostOnly`]), as a backend
    /// that moves host memory only (MPI) runs them.
    Staged,
}

/// Runs `body` on every rank with its own device, its group taking `path`.
fn on_ranks<T: Send>(
    path: Path,
    body: impl Fn(usize, &dyn ProcessGroup, &dyn Kernels) -> TestResult<T> + Sync,
) -> Vec<T> {
    let world = LocalWorld::new(RANKS, Duration::from_secs(60));
    run_ranks(&world, |rank| {
        let group = world.world_group(rank)?;
        match path {
            Path::Direct => body(rank, &group, &*device()),
            Path::Staged => body(rank, &HostOnly(group), &*device()),
        }
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A local group seen through the host operations only: every view method
/// is the trait's staged default.
struct HostOnly(LocalGroup);

impl ProcessGroup for HostOnly {
    fn info(&self) -> &GroupInfo {
        self.0.info()
    }
    fn rank(&self) -> usize {
        self.0.rank()
    }
    fn all_reduce(&self, buf: &mut [f32], op: ReduceOp) -> Result<(), CommError> {
        self.0.all_reduce(buf, op)
    }
    fn all_reduce_f64(&self, buf: &mut [f64], op: ReduceOp) -> Result<(), CommError> {
        self.0.all_reduce_f64(buf, op)
    }
    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<(), CommError> {
        self.0.all_gather(send, recv)
    }
    fn reduce_scatter(
        &self,
        send: &[f32],
        recv: &mut [f32],
        op: ReduceOp,
    ) -> Result<(), CommError> {
        self.0.reduce_scatter(send, recv, op)
    }
    fn all_to_all(&self, send: &[f32], recv: &mut [f32]) -> Result<(), CommError> {
        self.0.all_to_all(send, recv)
    }
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<(), CommError> {
        self.0.broadcast(buf, root)
    }
    fn barrier(&self) -> Result<(), CommError> {
        self.0.barrier()
    }
    fn isend(&self, peer: usize, data: Vec<f32>) -> Result<SendHandle, CommError> {
        self.0.isend(peer, data)
    }
    fn irecv(&self, peer: usize) -> Result<RecvHandle, CommError> {
        self.0.irecv(peer)
    }
    fn stats(&self) -> CommStats {
        self.0.stats()
    }
    fn log_waits(&self, on: bool) {
        self.0.log_waits(on)
    }
    fn take_waits(&self) -> Vec<WaitSpan> {
        self.0.take_waits()
    }
}

/// Asserts what `moved` (bytes a rank's device copied to or from the host
/// during the exchanges) says about `path`: nothing when direct, something
/// when staged.
#[track_caller]
fn check_traffic(path: Path, rank: usize, moved: u64) {
    match path {
        Path::Direct => assert_eq!(moved, 0, "rank {rank}: went through the host"),
        Path::Staged => assert!(moved > 0, "rank {rank}: staged, yet nothing crossed"),
    }
}

/// What the device's pool of staging memory says about `path`: the staged
/// collectives copy through it (page-locked memory on a GPU), the direct
/// ones never touch it.
#[track_caller]
fn check_staging(path: Path, rank: usize, kept: usize) {
    match path {
        Path::Direct => assert_eq!(kept, 0, "rank {rank}: staged through host memory"),
        Path::Staged => assert!(kept > 0, "rank {rank}: staged outside the device's pool"),
    }
}

#[test]
fn the_counter_sees_host_copies() {
    let kernels = device();
    let buffer = kernels.upload(&input(0, LEN)).unwrap();
    assert_eq!(traffic(&buffer), 4 * LEN as u64);
    let _ = buffer.to_host().unwrap();
    assert_eq!(traffic(&buffer), 8 * LEN as u64);
}

#[test]
fn all_reduce_sums_device_to_device_to_the_host_bits() {
    check_all_reduce(Path::Direct);
}

#[test]
fn the_staged_defaults_give_the_same_bits_through_the_host() {
    check_all_reduce(Path::Staged);
    check_collectives(Path::Staged);
    check_ring(Path::Staged);
}

fn check_all_reduce(path: Path) {
    let inputs: Vec<Vec<f32>> = (0..RANKS).map(|r| input(r, LEN)).collect();
    let want = host_sum(&inputs);
    let results = on_ranks(path, |rank, group, kernels| {
        let mut buf = kernels.upload(&input(rank, LEN))?;
        let before = traffic(&buf);
        group.all_reduce_view(kernels, buf.view_mut(), ReduceOp::Sum)?;
        let moved = traffic(&buf) - before;
        Ok((buf.to_host()?.into_owned(), moved, staging_kept(&buf)))
    });
    for (rank, (got, moved, kept)) in results.into_iter().enumerate() {
        assert!(got == want, "rank {rank}: not the host's bits");
        check_traffic(path, rank, moved);
        check_staging(path, rank, kept);
    }
}

#[test]
fn all_gather_reduce_scatter_and_all_to_all_stay_on_the_devices() {
    check_collectives(Path::Direct);
}

fn check_collectives(path: Path) {
    let m = 334;
    let inputs: Vec<Vec<f32>> = (0..RANKS).map(|r| input(r, RANKS * m)).collect();
    let summed = host_sum(&inputs);
    let results = on_ranks(path, |rank, group, kernels| {
        let send = kernels.upload(&input(rank, RANKS * m))?;
        let mut gathered = kernels.alloc(RANKS * RANKS * m)?;
        let mut mine = kernels.alloc(m)?;
        let mut swapped = kernels.alloc(RANKS * m)?;
        let before = traffic(&send);
        group.all_gather_view(kernels, send.view(), gathered.view_mut())?;
        group.reduce_scatter_view(kernels, send.view(), mine.view_mut(), ReduceOp::Sum)?;
        group.all_to_all_view(kernels, send.view(), swapped.view_mut())?;
        let moved = traffic(&send) - before;
        let host = |b: &Buffer| b.to_host().map(|v| v.into_owned());
        let kept = staging_kept(&send);
        Ok((host(&gathered)?, host(&mine)?, host(&swapped)?, moved, kept))
    });
    for (rank, (gathered, mine, swapped, moved, kept)) in results.into_iter().enumerate() {
        check_staging(path, rank, kept);
        assert!(gathered == inputs.concat(), "rank {rank}: all-gather");
        let own_block = |x: &Vec<f32>| x[rank * m..(rank + 1) * m].to_vec();
        assert!(mine == own_block(&summed), "rank {rank}: reduce-scatter");
        let blocks: Vec<f32> = inputs.iter().flat_map(own_block).collect();
        assert!(swapped == blocks, "rank {rank}: all-to-all");
        check_traffic(path, rank, moved);
    }
}

#[test]
fn messages_pass_device_buffers_around_the_ring() {
    check_ring(Path::Direct);
}

fn check_ring(path: Path) {
    let results = on_ranks(path, |rank, group, kernels| {
        let (next, prev) = ((rank + 1) % RANKS, (rank + RANKS - 1) % RANKS);
        let message = kernels.upload(&input(rank, LEN))?;
        let before = traffic(&message);
        let recv = group.irecv(prev)?;
        let send = group.isend_buffer(next, message)?;
        let received = kernels.adopt(recv.wait_buffer()?)?;
        send.wait()?;
        let moved = traffic(&received) - before;
        let own = kernels.alloc(1)?;
        let (of_message, of_rank) = (received.view().device(), own.view().device());
        let adopted = std::ptr::addr_eq(of_message.unwrap().0, of_rank.unwrap().0);
        Ok((received.to_host()?.into_owned(), moved, adopted))
    });
    for (rank, (got, moved, adopted)) in results.into_iter().enumerate() {
        let prev = (rank + RANKS - 1) % RANKS;
        assert!(
            adopted,
            "rank {rank}: the message is not in its own device's memory"
        );
        assert!(
            got == input(prev, LEN),
            "rank {rank}: not rank {prev}'s message"
        );
        check_traffic(path, rank, moved);
    }
}

#[test]
fn a_message_in_the_ranks_own_memory_is_adopted_as_it_is() {
    // NCCL receives the ring's messages into the rank's own device memory.
    let kernels = device();
    let message = kernels.upload(&input(0, LEN)).unwrap();
    let at = message.view().device().unwrap().1;
    let adopted = kernels.adopt(message).unwrap();
    assert_eq!(adopted.view().device().unwrap().1, at, "copied, not kept");
    assert!(*adopted.to_host().unwrap() == input(0, LEN));
}

#[test]
fn a_message_buffer_is_the_devices_own_memory() {
    // What NCCL receives a ring message into: allocated beside the queued
    // work (on a GPU, on the transfer stream), then written by another party.
    let kernels = device();
    let own = kernels.alloc(1).unwrap();
    let mut landing = kernels.message_buffer(LEN).unwrap();
    assert_eq!(landing.len(), LEN);
    let (of_landing, of_rank) = (landing.view().device(), own.view().device());
    assert!(std::ptr::addr_eq(of_landing.unwrap().0, of_rank.unwrap().0));
    landing.copy_from_host(&input(2, LEN)).unwrap();
    assert!(*landing.to_host().unwrap() == input(2, LEN));
    assert!(kernels.message_buffer(0).unwrap().is_empty());
}

#[test]
fn host_views_still_take_the_host_path() {
    let inputs: Vec<Vec<f32>> = (0..RANKS).map(|r| input(r, LEN)).collect();
    let want = host_sum(&inputs);
    let results = on_ranks(Path::Direct, |rank, group, kernels| {
        let mut host = input(rank, LEN);
        group.all_reduce_view(kernels, (&mut host).into(), ReduceOp::Sum)?;
        Ok(host)
    });
    assert!(results.iter().all(|got| *got == want));
}

/// A rank whose device failed (here: a kernel handed host memory, which
/// stops the device) still takes part in every round, so the collective
/// completes at once on every rank (nobody waits for the timeout), and
/// gets the device's error at its end; the world then fails with it.
#[test]
fn a_failed_device_ends_the_collective_with_its_error() {
    let world = LocalWorld::new(RANKS, Duration::from_secs(60));
    let started = Instant::now();
    let result = run_ranks(&world, |rank| -> Result<(), CommError> {
        let group = world.world_group(rank)?;
        let kernels = device();
        let mut buf =
            (kernels.upload(&input(rank, LEN))).map_err(CommError::device(Op::AllReduce))?;
        if rank == 1 {
            let host = vec![0.0; LEN];
            kernels.copy(Slice::from(&host), buf.view_mut());
        }
        group.all_reduce_view(&*kernels, buf.view_mut(), ReduceOp::Sum)
    });
    let failure = result.expect_err("a failed device");
    assert_eq!(failure.rank, 1, "{failure}");
    let RankFailure::Error(CommError::Device { op, error }) = &failure.failure else {
        panic!("not the device's error: {failure}");
    };
    assert_eq!(*op, Op::AllReduce);
    assert!(error.message.contains("host memory"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the peers waited for the timeout"
    );
}
