//! [`NcclGroup`]: the [`ProcessGroup`] contract over one NCCL communicator.
//!
//! The host operations of the contract stage through device buffers (the
//! device views of this GPU's memory skip that, `views.rs`): copy in, the
//! NCCL call on the backend's communication stream,
//! a wait for the stream polled against `parallel.timeout_s` (and NCCL's
//! asynchronous errors), copy out. A wait that expires aborts the
//! communicator (`ncclCommAbort`) and fails this process; later operations
//! refuse to run. Calls are serialized per process (one rank per process,
//! one stream). Point-to-point messages: `p2p.rs`.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use cptrain::device::{Buffer, Slice, SliceMut};
use cptrain::kernels::Kernels;
use cptrain::parallel::{
    CommError, CommStats, GroupInfo, Holdup, Op, ProcessGroup, RecvHandle, ReduceOp, SendHandle,
    WaitLog, WaitSpan,
};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, sys as cu};
use cudarc::nccl::sys::{self, ncclDataType_t, ncclRedOp_t};

use super::comm::{CallError, Communicator, check};
use super::p2p::Pending;
use super::{views, watchdog};

/// What every group of a backend shares: the stream, the deadline, the
/// lock that serializes NCCL calls, and this process's first failure.
pub(super) struct Shared {
    pub(super) stream: Arc<CudaStream>,
    pub(super) timeout: Duration,
    calls: Mutex<()>,
    failure: OnceLock<String>,
}

impl Shared {
    pub(super) fn new(stream: Arc<CudaStream>, timeout: Duration) -> Self {
        Shared {
            stream,
            timeout,
            calls: Mutex::new(()),
            failure: OnceLock::new(),
        }
    }
}

/// NCCL work enqueued on the communication stream: the operation, its
/// number, and when it was enqueued (its deadline runs from there).
pub(super) struct Posted {
    op: Op,
    seq: u64,
    started: Instant,
}

/// This process's handle on one group of an [`super::NcclBackend`].
pub struct NcclGroup {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) info: GroupInfo,
    pub(super) rank: usize,
    comm: Communicator,
    pub(super) shared: Arc<Shared>,
    collectives: AtomicU64,
    tickets: AtomicU64,
    pub(super) pending: Mutex<Vec<Pending>>,
    pub(super) received: Mutex<HashMap<u64, Buffer>>,
    stats: Mutex<CommStats>,
    waits: WaitLog,
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An element NCCL moves.
pub(super) trait Element:
    DeviceRepr + Copy + Default + cudarc::driver::ValidAsZeroBits
{
    const TYPE: ncclDataType_t;
}
impl Element for f32 {
    const TYPE: ncclDataType_t = ncclDataType_t::ncclFloat32;
}
impl Element for f64 {
    const TYPE: ncclDataType_t = ncclDataType_t::ncclFloat64;
}
impl Element for u64 {
    const TYPE: ncclDataType_t = ncclDataType_t::ncclUint64;
}

fn nccl_op(op: ReduceOp) -> ncclRedOp_t {
    match op {
        ReduceOp::Sum => ncclRedOp_t::ncclSum,
        ReduceOp::Max => ncclRedOp_t::ncclMax,
    }
}

impl NcclGroup {
    pub(super) fn new(
        info: GroupInfo,
        rank: usize,
        comm: Communicator,
        shared: Arc<Shared>,
    ) -> Self {
        NcclGroup {
            inner: Arc::new(Inner {
                info,
                rank,
                comm,
                shared,
                collectives: AtomicU64::new(0),
                tickets: AtomicU64::new(0),
                pending: Mutex::default(),
                received: Mutex::default(),
                stats: Mutex::default(),
                waits: WaitLog::default(),
            }),
        }
    }

    /// Aborts the communicator (the backend does so when a rank fails).
    pub(super) fn abort(&self) {
        self.inner.comm.abort();
    }
}

impl Inner {
    pub(super) fn size(&self) -> usize {
        self.info.members.len()
    }

    fn me(&self) -> usize {
        self.info.members[self.rank]
    }

    fn fail(&self, error: CommError) -> CommError {
        if !error.is_secondary() {
            let _ = self.shared.failure.set(error.to_string());
        }
        error
    }

    fn usage(&self, op: Op, problem: String) -> CommError {
        self.fail(CommError::Usage {
            op,
            group: self.info.clone(),
            rank: self.me(),
            problem,
        })
    }

    /// Refuses to start `op` once this process failed; else serializes it.
    pub(super) fn begin(&self, op: Op) -> Result<MutexGuard<'_, ()>, CommError> {
        if let Some(cause) = self.shared.failure.get() {
            return Err(CommError::Aborted {
                op,
                group: self.info.clone(),
                rank: self.me(),
                origin: self.me(),
                cause: cause.clone(),
            });
        }
        Ok(lock(&self.shared.calls))
    }

    pub(super) fn check_len(
        &self,
        op: Op,
        what: &str,
        actual: usize,
        expected: usize,
    ) -> Result<(), CommError> {
        if actual == expected {
            return Ok(());
        }
        Err(self.usage(
            op,
            format!("{what} has {actual} elements, expected {expected}"),
        ))
    }

    pub(super) fn check_peer(&self, op: Op, peer: usize) -> Result<(), CommError> {
        if peer < self.size() {
            return Ok(());
        }
        let problem = format!(
            "peer {peer} is not a group rank (the group has {} ranks)",
            self.size()
        );
        Err(self.usage(op, problem))
    }

    pub(super) fn cuda(&self, op: Op, call: &str, e: impl std::fmt::Display) -> CommError {
        self.usage(op, format!("{call} failed: {e}"))
    }

    pub(super) fn upload<T: Element>(&self, op: Op, host: &[T]) -> Result<CudaSlice<T>, CommError> {
        let stream = &self.shared.stream;
        stream
            .clone_htod(host)
            .map_err(|e| self.cuda(op, "copy to the GPU", e))
    }

    pub(super) fn alloc<T: Element>(&self, op: Op, len: usize) -> Result<CudaSlice<T>, CommError> {
        let stream = &self.shared.stream;
        stream
            .alloc_zeros(len.max(1))
            .map_err(|e| self.cuda(op, "GPU allocation", e))
    }

    pub(super) fn download<T: Element>(
        &self,
        op: Op,
        dev: &CudaSlice<T>,
        host: &mut [T],
    ) -> Result<(), CommError> {
        let mut staged = vec![T::default(); dev.len()];
        let stream = &self.shared.stream;
        stream
            .memcpy_dtoh(dev, staged.as_mut_slice())
            .map_err(|e| self.cuda(op, "copy from the GPU", e))?;
        host.copy_from_slice(&staged[..host.len()]);
        Ok(())
    }

    /// Enqueues NCCL calls with `enqueue` (under the watchdog: a first call
    /// may block while it connects to its peers), then waits for the stream.
    pub(super) fn enqueue(
        &self,
        op: Op,
        enqueue: impl FnOnce(sys::ncclComm_t, sys::cudaStream_t) -> Result<(), CallError>,
    ) -> Result<(), CommError> {
        let posted = self.post(op, enqueue)?;
        self.wait_posted(posted)
    }

    /// Enqueues NCCL calls with `enqueue` (under the watchdog) and returns
    /// without waiting for them.
    pub(super) fn post(
        &self,
        op: Op,
        enqueue: impl FnOnce(sys::ncclComm_t, sys::cudaStream_t) -> Result<(), CallError>,
    ) -> Result<Posted, CommError> {
        let seq = self.collectives.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let what = format!("{op} #{seq} on {} (rank {})", self.info, self.me());
        // NCCL works on the thread's current CUDA context.
        if let Err(e) = self.shared.stream.context().bind_to_thread() {
            return Err(self.cuda(op, "binding the CUDA context", e));
        }
        let enqueued = {
            let _watch = watchdog::arm(what, self.shared.timeout);
            let stream = self.shared.stream.cu_stream() as sys::cudaStream_t;
            enqueue(self.comm.raw(), stream)
        };
        if let Err(e) = enqueued {
            self.comm.abort();
            return Err(self.usage(op, e.to_string()));
        }
        Ok(Posted { op, seq, started })
    }

    /// Waits for posted work (and the stream's earlier work) within
    /// `parallel.timeout_s` of its posting.
    pub(super) fn wait_posted(&self, posted: Posted) -> Result<(), CommError> {
        let Posted { op, seq, started } = posted;
        let waited = self.wait_stream(op, seq, started);
        let ended = Instant::now();
        lock(&self.stats).wait += ended - started;
        self.waits.push(started, ended);
        waited
    }

    /// Polls the stream until the enqueued work is done, NCCL reports an
    /// error, or the deadline passes (then aborts the communicator).
    fn wait_stream(&self, op: Op, seq: u64, started: Instant) -> Result<(), CommError> {
        let stream = self.shared.stream.cu_stream();
        loop {
            // SAFETY: a live stream of this backend's context.
            match unsafe { cu::cuStreamQuery(stream) } {
                cu::CUresult::CUDA_SUCCESS => return Ok(()),
                cu::CUresult::CUDA_ERROR_NOT_READY => {}
                other => {
                    self.comm.abort();
                    return Err(
                        self.usage(op, format!("the communication stream failed: {other:?}"))
                    );
                }
            }
            if let Some(error) = self.comm.async_error() {
                self.comm.abort();
                let problem = format!(
                    "NCCL reported {error} (a peer failed or the network broke); the \
                     communicator was aborted"
                );
                return Err(self.usage(op, problem));
            }
            if started.elapsed() >= self.shared.timeout {
                self.comm.abort();
                // NCCL cannot tell which peers are missing: name them all.
                let peers = (0..self.size()).filter(|&r| r != self.rank);
                return Err(self.fail(CommError::Timeout {
                    op,
                    seq,
                    group: self.info.clone(),
                    rank: self.me(),
                    peers: peers.map(|r| self.info.members[r]).collect(),
                    after: self.shared.timeout,
                    holdup: Box::new(Holdup::default()),
                }));
            }
            thread::sleep(Duration::from_micros(50));
        }
    }

    pub(super) fn record(&self, op: Op, sent: usize, received: usize) {
        let mut stats = lock(&self.stats);
        let index = Op::ALL
            .iter()
            .position(|&o| o == op)
            .expect("Op::ALL lists every operation");
        stats.calls[index] += 1;
        stats.bytes_sent += sent as u64;
        stats.bytes_received += received as u64;
    }

    /// Blocks of `m` floats exchanged with every other rank.
    pub(super) fn exchanged_bytes(&self, m: usize) -> usize {
        (self.size() - 1) * m * size_of::<f32>()
    }

    /// A reduction of `send` into `recv` (all-reduce, or reduce-scatter
    /// when `recv` is one block of `send`).
    fn reduce<T: Element>(
        &self,
        op: Op,
        send: &[T],
        recv: &mut [T],
        reduce: ReduceOp,
    ) -> Result<(), CommError> {
        let _calls = self.begin(op)?;
        let input = self.upload(op, send)?;
        let mut output = self.alloc::<T>(op, recv.len())?;
        let stream = &self.shared.stream;
        let (src, read_guard) = input.device_ptr(stream);
        let (dst, write_guard) = output.device_ptr_mut(stream);
        // SAFETY: device buffers of the sizes the reduction reads and writes.
        unsafe { self.enqueue_reduce::<T>(op, src, dst, recv.len(), reduce)? };
        // The guards borrow the buffers until the NCCL call has finished.
        drop((read_guard, write_guard));
        self.download(op, &output, recv)
    }

    /// Enqueues NCCL's all-gather of `count` values from `src` of every
    /// rank into `dst` and waits for it.
    ///
    /// # Safety
    /// `src` and `dst` must be memory of this GPU holding `count` and
    /// `size · count` values, not used by other work until it returns.
    pub(super) unsafe fn enqueue_all_gather(
        &self,
        src: u64,
        dst: u64,
        count: usize,
    ) -> Result<(), CommError> {
        let (src, dst) = (src as *const c_void, dst as *mut c_void);
        self.enqueue(Op::AllGather, |comm, s| {
            // SAFETY: the caller's contract.
            let code = unsafe { sys::ncclAllGather(src, dst, count, f32::TYPE, comm, s) };
            check(code, Op::AllGather.name())
        })
    }

    /// Enqueues NCCL's reduction of `count` results (all-reduce, or
    /// reduce-scatter for [`Op::ReduceScatter`]) from `src` into `dst` and
    /// waits for it.
    ///
    /// # Safety
    /// `src` and `dst` must be memory of this GPU holding what the
    /// reduction reads (`count`, or `size · count` values to scatter) and
    /// writes (`count`), not used by other work until it returns.
    pub(super) unsafe fn enqueue_reduce<T: Element>(
        &self,
        op: Op,
        src: u64,
        dst: u64,
        count: usize,
        reduce: ReduceOp,
    ) -> Result<(), CommError> {
        let (src, dst) = (src as *const c_void, dst as *mut c_void);
        self.enqueue(op, |comm, s| {
            // SAFETY: the caller's contract.
            let code = unsafe {
                if op == Op::ReduceScatter {
                    sys::ncclReduceScatter(src, dst, count, T::TYPE, nccl_op(reduce), comm, s)
                } else {
                    sys::ncclAllReduce(src, dst, count, T::TYPE, nccl_op(reduce), comm, s)
                }
            };
            check(code, op.name())
        })
    }

    fn all_reduce<T: Element>(&self, buf: &mut [T], op: ReduceOp) -> Result<(), CommError> {
        let send = buf.to_vec();
        self.reduce(Op::AllReduce, &send, buf, op)?;
        self.record_all_reduce(buf.len(), size_of::<T>());
        Ok(())
    }

    /// Counts an all-reduce of `n` values of `bytes` each: what a ring
    /// (reduce-scatter + all-gather) moves, like the other backends.
    pub(super) fn record_all_reduce(&self, n: usize, bytes: usize) {
        let size = self.size();
        let mine = n * (self.rank + 1) / size - n * self.rank / size;
        let moved = ((n - mine) + (size - 1) * mine) * bytes;
        self.record(Op::AllReduce, moved, moved);
    }

    /// The ticket of the next receive.
    pub(super) fn next_ticket(&self) -> u64 {
        self.tickets.fetch_add(1, Ordering::Relaxed)
    }

    /// What a receive whose batch failed returns.
    pub(super) fn batch_failed(&self) -> CommError {
        CommError::Aborted {
            op: Op::Recv,
            group: self.info.clone(),
            rank: self.me(),
            origin: self.me(),
            cause: "the batch of messages this receive belonged to failed".into(),
        }
    }
}

impl ProcessGroup for NcclGroup {
    fn info(&self) -> &GroupInfo {
        &self.inner.info
    }

    fn rank(&self) -> usize {
        self.inner.rank
    }

    fn all_reduce(&self, buf: &mut [f32], op: ReduceOp) -> Result<(), CommError> {
        self.inner.all_reduce(buf, op)
    }

    fn all_reduce_f64(&self, buf: &mut [f64], op: ReduceOp) -> Result<(), CommError> {
        self.inner.all_reduce(buf, op)
    }

    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<(), CommError> {
        let (g, op) = (&*self.inner, Op::AllGather);
        g.check_len(op, "recv", recv.len(), g.size() * send.len())?;
        let _calls = g.begin(op)?;
        let input = g.upload(op, send)?;
        let mut output = g.alloc::<f32>(op, recv.len())?;
        let stream = &g.shared.stream;
        let (src, read_guard) = input.device_ptr(stream);
        let (dst, write_guard) = output.device_ptr_mut(stream);
        // SAFETY: `send.len()` floats in, `size · send.len()` out.
        unsafe { g.enqueue_all_gather(src, dst, send.len())? };
        // The guards borrow the buffers until the NCCL call has finished.
        drop((read_guard, write_guard));
        g.download(op, &output, recv)?;
        g.record(
            op,
            g.exchanged_bytes(send.len()),
            g.exchanged_bytes(send.len()),
        );
        Ok(())
    }

    fn reduce_scatter(
        &self,
        send: &[f32],
        recv: &mut [f32],
        op: ReduceOp,
    ) -> Result<(), CommError> {
        let (g, name) = (&*self.inner, Op::ReduceScatter);
        g.check_len(name, "send", send.len(), g.size() * recv.len())?;
        g.reduce(name, send, recv, op)?;
        g.record(
            name,
            g.exchanged_bytes(recv.len()),
            g.exchanged_bytes(recv.len()),
        );
        Ok(())
    }

    /// NCCL on the memory itself when it is this GPU's (`views.rs`).
    fn all_reduce_view(
        &self,
        _kernels: &dyn Kernels,
        buf: SliceMut<'_>,
        op: ReduceOp,
    ) -> Result<(), CommError> {
        views::all_reduce(self, buf, op)
    }

    /// NCCL on the memory itself when it is this GPU's (`views.rs`).
    fn all_gather_view(
        &self,
        _kernels: &dyn Kernels,
        send: Slice<'_>,
        recv: SliceMut<'_>,
    ) -> Result<(), CommError> {
        views::all_gather(self, send, recv)
    }

    /// NCCL on the memory itself when it is this GPU's (`views.rs`).
    fn reduce_scatter_view(
        &self,
        _kernels: &dyn Kernels,
        send: Slice<'_>,
        recv: SliceMut<'_>,
        op: ReduceOp,
    ) -> Result<(), CommError> {
        views::reduce_scatter(self, send, recv, op)
    }

    fn all_to_all(&self, send: &[f32], recv: &mut [f32]) -> Result<(), CommError> {
        let (g, op) = (&*self.inner, Op::AllToAll);
        g.check_len(op, "recv", recv.len(), send.len())?;
        if !send.len().is_multiple_of(g.size()) {
            let problem = format!(
                "send has {} elements, not a multiple of the group size {}",
                send.len(),
                g.size()
            );
            return Err(g.usage(op, problem));
        }
        let m = send.len() / g.size();
        let _calls = g.begin(op)?;
        let mut sends = Vec::with_capacity(g.size());
        let mut recvs = Vec::with_capacity(g.size());
        for (peer, block) in send.chunks(m.max(1)).enumerate().take(g.size()) {
            sends.push((peer, g.upload(op, block)?));
            recvs.push((peer, g.alloc::<f32>(op, m)?));
        }
        if m > 0 {
            g.p2p_slices(op, &sends, &mut recvs)?;
            for ((_, buf), out) in recvs.iter().zip(recv.chunks_mut(m)) {
                g.download(op, buf, out)?;
            }
        }
        g.record(op, g.exchanged_bytes(m), g.exchanged_bytes(m));
        Ok(())
    }

    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<(), CommError> {
        let (g, op) = (&*self.inner, Op::Broadcast);
        g.check_peer(op, root)?;
        let _calls = g.begin(op)?;
        let mut data = g.upload(op, buf)?;
        let stream = &g.shared.stream;
        let count = buf.len();
        g.enqueue(op, |comm, s| {
            let (ptr, _write) = data.device_ptr_mut(stream);
            // SAFETY: in place on `count` floats.
            let code = unsafe {
                sys::ncclBroadcast(
                    ptr as *const c_void,
                    ptr as *mut c_void,
                    count,
                    f32::TYPE,
                    root as i32,
                    comm,
                    s,
                )
            };
            check(code, op.name())
        })?;
        let bytes = size_of_val(buf);
        if g.rank == root {
            g.record(op, (g.size() - 1) * bytes, 0);
        } else {
            g.download(op, &data, buf)?;
            g.record(op, 0, bytes);
        }
        Ok(())
    }

    fn barrier(&self) -> Result<(), CommError> {
        let mut token = [0f32];
        self.inner
            .reduce(Op::Barrier, &[0f32], &mut token, ReduceOp::Sum)?;
        self.inner.record(Op::Barrier, 0, 0);
        Ok(())
    }

    fn isend(&self, peer: usize, data: Vec<f32>) -> Result<SendHandle, CommError> {
        self.post_send(peer, data.into())
    }

    /// Memory of this GPU is sent from where it is (`p2p.rs`).
    fn isend_buffer(&self, peer: usize, data: Buffer) -> Result<SendHandle, CommError> {
        self.post_send(peer, data)
    }

    fn irecv(&self, peer: usize) -> Result<RecvHandle, CommError> {
        self.post_recv(peer, None)
    }

    /// Into a buffer of `kernels` when it is a kernel set of this GPU
    /// (`p2p.rs`).
    fn irecv_for(&self, peer: usize, kernels: &Arc<dyn Kernels>) -> Result<RecvHandle, CommError> {
        self.post_recv(peer, Some(kernels.clone()))
    }

    fn stats(&self) -> CommStats {
        lock(&self.inner.stats).clone()
    }

    fn log_waits(&self, on: bool) {
        self.inner.waits.set(on);
    }

    fn take_waits(&self) -> Vec<WaitSpan> {
        self.inner.waits.take()
    }
}
