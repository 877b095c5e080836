//! [`MpiGroup`]: the [`ProcessGroup`] contract over one MPI communicator.
//!
//! Collectives are MPI's non-blocking ones (`MPI_Iallreduce`, ...) polled
//! against the deadline. They run on buffers owned by the call (a copy in,
//! a copy out), so that on a timeout the buffers MPI may still touch can be
//! leaked and the error returned, instead of MPI writing into the caller's
//! slice after the call has returned.

use std::ffi::c_int;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use cptrain::device::Buffer;
use cptrain::kernels::Kernels;
use cptrain::parallel::staged;
use cptrain::parallel::{
    CommError, CommStats, GroupInfo, Op, ProcessGroup, RecvHandle, ReduceOp, SendHandle, WaitSpan,
};
use mpi::ffi;

use super::core::Core;
use super::element::{Element, max_decode, max_encode};
use super::p2p;
use super::poll::{Request, null_request, poll, test};
use super::runtime::{check, lock};

/// This process's handle on one group of an [`super::MpiBackend`].
pub struct MpiGroup {
    core: Arc<Core>,
    send_seq: Vec<AtomicU64>,
    recv_seq: Vec<AtomicU64>,
}

impl MpiGroup {
    pub(super) fn new(core: Core) -> Self {
        let size = core.size();
        let counters = || (0..size).map(|_| AtomicU64::new(0)).collect();
        MpiGroup {
            core: Arc::new(core),
            send_seq: counters(),
            recv_seq: counters(),
        }
    }

    /// Registers the next receive from `peer`, into memory from `landing`.
    fn receive(&self, peer: usize, landing: p2p::Landing) -> Result<RecvHandle, CommError> {
        self.core.check_failed(Op::Recv)?;
        self.core.check_peer(Op::Recv, peer)?;
        let seq = self.recv_seq[peer].fetch_add(1, Ordering::Relaxed);
        Ok(p2p::irecv(&self.core, peer, seq, landing))
    }

    /// Starts a non-blocking collective on buffers `owned` and polls it to
    /// completion; returns the buffers, or leaks them on timeout.
    fn collective<B>(
        &self,
        op: Op,
        mut owned: B,
        start: impl FnOnce(&mut B, ffi::MPI_Comm, &mut ffi::MPI_Request) -> c_int,
    ) -> Result<B, CommError> {
        let core = &self.core;
        let waiting = core.enter_collective(op);
        let started = Instant::now();
        let mut request: Request = null_request();
        {
            let _calls = lock();
            check(start(&mut owned, core.comm.0, &mut request.0), op.name());
        }
        let done = poll(started, core.timeout, || test(&mut request));
        core.add_wait(started);
        match done {
            Some(_) => Ok(owned),
            None => {
                // MPI may still read and write these buffers: never free them.
                std::mem::forget(owned);
                Err(core.timed_out(&waiting))
            }
        }
    }

    /// Element-wise reduction of `blocks` equal blocks of `send`; every rank
    /// gets `recv_blocks` of them (all for all-reduce, its own for
    /// reduce-scatter).
    fn reduce<T: Element>(
        &self,
        op: Op,
        send: &[T],
        recv: &mut [T],
        reduce: ReduceOp,
    ) -> Result<(), CommError> {
        let block = recv.len();
        let scatter = op == Op::ReduceScatter;
        // Max goes through (value, NaN flag) pairs so that a NaN on any rank
        // wins, as in the local backend (MPI_MAX would drop it on some ranks).
        let (payload, mpi_op, per_block) = match reduce {
            ReduceOp::Sum => (send.to_vec(), unsafe { ffi::RSMPI_SUM }, block),
            ReduceOp::Max => (
                max_encode(send, block),
                unsafe { ffi::RSMPI_MAX },
                2 * block,
            ),
        };
        let count = self.core.count(op, per_block)?;
        let result = vec![T::default(); per_block];
        let (_, result) =
            self.collective(op, (payload, result), |(payload, result), comm, req| {
                // SAFETY: both buffers are owned by the call and sized for `count`
                // elements per rank (`payload` has one block per rank for scatter).
                unsafe {
                    if scatter {
                        ffi::MPI_Ireduce_scatter_block(
                            payload.as_ptr().cast(),
                            result.as_mut_ptr().cast(),
                            count,
                            T::datatype(),
                            mpi_op,
                            comm,
                            req,
                        )
                    } else {
                        ffi::MPI_Iallreduce(
                            payload.as_ptr().cast(),
                            result.as_mut_ptr().cast(),
                            count,
                            T::datatype(),
                            mpi_op,
                            comm,
                            req,
                        )
                    }
                }
            })?;
        match reduce {
            ReduceOp::Sum => recv.copy_from_slice(&result),
            ReduceOp::Max => max_decode(&result, recv),
        }
        Ok(())
    }

    fn all_reduce_impl<T: Element>(&self, buf: &mut [T], op: ReduceOp) -> Result<(), CommError> {
        self.core.check_failed(Op::AllReduce)?;
        let (size, n) = (self.size(), buf.len());
        if size > 1 {
            let send = buf.to_vec();
            self.reduce(Op::AllReduce, &send, buf, op)?;
        }
        // Bytes a ring (reduce-scatter + all-gather) moves, like the local backend.
        let mine = n * (self.rank() + 1) / size - n * self.rank() / size;
        let moved = ((n - mine) + (size - 1) * mine) * size_of::<T>();
        self.core.record(Op::AllReduce, moved, moved);
        Ok(())
    }

    /// Blocks of `m` floats exchanged with every other rank.
    fn exchanged_bytes(&self, m: usize) -> usize {
        (self.size() - 1) * m * size_of::<f32>()
    }
}

impl ProcessGroup for MpiGroup {
    fn info(&self) -> &GroupInfo {
        &self.core.info
    }

    fn rank(&self) -> usize {
        self.core.rank
    }

    fn all_reduce(&self, buf: &mut [f32], op: ReduceOp) -> Result<(), CommError> {
        self.all_reduce_impl(buf, op)
    }

    fn all_reduce_f64(&self, buf: &mut [f64], op: ReduceOp) -> Result<(), CommError> {
        self.all_reduce_impl(buf, op)
    }

    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<(), CommError> {
        let op = Op::AllGather;
        self.core.check_failed(op)?;
        let (size, n) = (self.size(), send.len());
        self.core.check_len(op, "recv", recv.len(), size * n)?;
        let count = self.core.count(op, n)?;
        let buffers = (send.to_vec(), vec![0f32; size * n]);
        let (_, gathered) = self.collective(op, buffers, |(send, gathered), comm, req| {
            // SAFETY: owned buffers of `count` and `size · count` floats.
            unsafe {
                ffi::MPI_Iallgather(
                    send.as_ptr().cast(),
                    count,
                    ffi::RSMPI_FLOAT,
                    gathered.as_mut_ptr().cast(),
                    count,
                    ffi::RSMPI_FLOAT,
                    comm,
                    req,
                )
            }
        })?;
        recv.copy_from_slice(&gathered);
        self.core
            .record(op, self.exchanged_bytes(n), self.exchanged_bytes(n));
        Ok(())
    }

    fn reduce_scatter(
        &self,
        send: &[f32],
        recv: &mut [f32],
        op: ReduceOp,
    ) -> Result<(), CommError> {
        let name = Op::ReduceScatter;
        self.core.check_failed(name)?;
        let m = recv.len();
        self.core
            .check_len(name, "send", send.len(), self.size() * m)?;
        self.reduce(name, send, recv, op)?;
        self.core
            .record(name, self.exchanged_bytes(m), self.exchanged_bytes(m));
        Ok(())
    }

    fn all_to_all(&self, send: &[f32], recv: &mut [f32]) -> Result<(), CommError> {
        let op = Op::AllToAll;
        self.core.check_failed(op)?;
        let size = self.size();
        self.core.check_len(op, "recv", recv.len(), send.len())?;
        if !send.len().is_multiple_of(size) {
            let problem = format!(
                "send has {} elements, not a multiple of the group size {size}",
                send.len()
            );
            return Err(self.core.usage(op, problem));
        }
        let m = send.len() / size;
        let count = self.core.count(op, m)?;
        let buffers = (send.to_vec(), vec![0f32; send.len()]);
        let (_, exchanged) = self.collective(op, buffers, |(send, exchanged), comm, req| {
            // SAFETY: owned buffers of `size · count` floats each.
            unsafe {
                ffi::MPI_Ialltoall(
                    send.as_ptr().cast(),
                    count,
                    ffi::RSMPI_FLOAT,
                    exchanged.as_mut_ptr().cast(),
                    count,
                    ffi::RSMPI_FLOAT,
                    comm,
                    req,
                )
            }
        })?;
        recv.copy_from_slice(&exchanged);
        self.core
            .record(op, self.exchanged_bytes(m), self.exchanged_bytes(m));
        Ok(())
    }

    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<(), CommError> {
        let op = Op::Broadcast;
        self.core.check_failed(op)?;
        self.core.check_peer(op, root)?;
        let count = self.core.count(op, buf.len())?;
        let is_root = self.rank() == root;
        let owned = buf.to_vec();
        let owned = self.collective(op, owned, |owned, comm, req| {
            // SAFETY: an owned buffer of `count` floats.
            unsafe {
                ffi::MPI_Ibcast(
                    owned.as_mut_ptr().cast(),
                    count,
                    ffi::RSMPI_FLOAT,
                    root as c_int,
                    comm,
                    req,
                )
            }
        })?;
        let bytes = size_of_val(buf);
        if is_root {
            self.core.record(op, (self.size() - 1) * bytes, 0);
        } else {
            buf.copy_from_slice(&owned);
            self.core.record(op, 0, bytes);
        }
        Ok(())
    }

    fn barrier(&self) -> Result<(), CommError> {
        let op = Op::Barrier;
        self.core.check_failed(op)?;
        self.collective(op, (), |(), comm, req| {
            // SAFETY: a live communicator and request slot.
            unsafe { ffi::MPI_Ibarrier(comm, req) }
        })?;
        self.core.record(op, 0, 0);
        Ok(())
    }

    fn isend(&self, peer: usize, data: Vec<f32>) -> Result<SendHandle, CommError> {
        self.isend_buffer(peer, data.into())
    }

    /// Sends host memory as it is; device memory is first copied into the
    /// device's staging memory (page-locked on a GPU).
    fn isend_buffer(&self, peer: usize, data: Buffer) -> Result<SendHandle, CommError> {
        self.core.check_failed(Op::Send)?;
        self.core.check_peer(Op::Send, peer)?;
        let data = staged::stage_message(data).map_err(CommError::device(Op::Send))?;
        let seq = self.send_seq[peer].fetch_add(1, Ordering::Relaxed);
        p2p::isend(&self.core, peer, seq, data)
    }

    fn irecv(&self, peer: usize) -> Result<RecvHandle, CommError> {
        self.receive(peer, Box::new(|len| Buffer::from(vec![0.0; len])))
    }

    /// Receives into the staging memory of `kernels`' device.
    fn irecv_for(&self, peer: usize, kernels: &Arc<dyn Kernels>) -> Result<RecvHandle, CommError> {
        let kernels = kernels.clone();
        self.receive(peer, Box::new(move |len| staging_or_vec(&*kernels, len)))
    }

    fn stats(&self) -> CommStats {
        self.core.stats()
    }

    fn log_waits(&self, on: bool) {
        self.core.log_waits(on);
    }

    fn take_waits(&self) -> Vec<WaitSpan> {
        self.core.take_waits()
    }
}

/// `len` values of `kernels`' staging memory, or of an ordinary vector when
/// the device cannot provide it (logged: the message still arrives).
fn staging_or_vec(kernels: &dyn Kernels, len: usize) -> Buffer {
    kernels.staging(len).unwrap_or_else(|error| {
        tracing::warn!(%error, "no staging memory for a message; receiving into pageable memory");
        Buffer::from(vec![0.0; len])
    })
}
