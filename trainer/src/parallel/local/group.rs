//! One group of the in-process world: collectives through shared rounds,
//! point-to-point through an unbounded mailbox.
//!
//! A collective is a *round*: every rank deposits an immutable copy of its
//! contribution, waits until all contributions are there, then reads the
//! others' directly (one copy in, one copy out; nothing is freed while a
//! reader still holds it). Rounds are numbered by each rank's call count, so
//! consecutive collectives never mix; a rank calling a different operation
//! or size at the same position is reported instead of hanging. Messages are
//! keyed by (source, destination, sequence number): a send never blocks, and
//! receives match sends in posting order.

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::world::WorldInner;
use crate::device::{Buffer, Slice, SliceMut};
use crate::kernels::Kernels;
use crate::parallel::comm::{
    CommError, GroupInfo, Op, ProcessGroup, RecvHandle, ReduceOp, SendHandle,
};
use crate::parallel::holdup::Wait;
use crate::parallel::staged;
use crate::parallel::stats::CommStats;
use crate::parallel::wait_log::{WaitLog, WaitSpan};

/// How often a blocked rank re-checks the world's abort flag.
const ABORT_POLL: Duration = Duration::from_millis(5);

/// Below this many elements (× ranks), all-reduce reduces the whole buffer on
/// every rank in one round instead of reduce-scatter + all-gather.
const DIRECT_ALL_REDUCE: usize = 1 << 15;

type Payload = Arc<dyn Any + Send + Sync>;

struct Round {
    op: Op,
    len: usize,
    element: TypeId,
    element_name: &'static str,
    opener: usize,
    contribs: Vec<Option<Payload>>,
    readers_left: usize,
}

#[derive(Default)]
struct State {
    rounds: HashMap<u64, Round>,
    mail: HashMap<(usize, usize, u64), Buffer>,
}

/// The memory the members of one group share.
pub(super) struct GroupShared {
    info: GroupInfo,
    state: Mutex<State>,
    changed: Condvar,
}

impl GroupShared {
    pub(super) fn new(info: GroupInfo) -> Self {
        GroupShared {
            info,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What one rank's handle and its pending receives share.
struct Core {
    shared: Arc<GroupShared>,
    world: Arc<WorldInner>,
    rank: usize,
    stats: Mutex<CommStats>,
    waits: WaitLog,
}

impl Core {
    fn global(&self, group_rank: usize) -> usize {
        self.shared.info.members[group_rank]
    }

    fn error_usage(&self, op: Op, problem: String) -> CommError {
        let error = CommError::Usage {
            op,
            group: self.shared.info.clone(),
            rank: self.global(self.rank),
            problem,
        };
        self.world.fail(self.global(self.rank), error)
    }

    fn check_abort(&self, op: Op) -> Result<(), CommError> {
        match self.world.abort.cause() {
            None => Ok(()),
            Some(cause) => Err(CommError::Aborted {
                op,
                group: self.shared.info.clone(),
                rank: self.global(self.rank),
                origin: cause.rank,
                cause: cause.message,
            }),
        }
    }

    /// Blocks until `ready` yields a value; `ready` returns the group ranks
    /// still missing otherwise. Fails on timeout or when the world aborts,
    /// after running `abandon` under the same lock (so that no rank sees the
    /// wait complete once it failed). `seq` numbers the operation for
    /// messages (see [`Wait::seq`]).
    fn wait_until<R>(
        &self,
        op: Op,
        seq: u64,
        mut state: MutexGuard<'_, State>,
        mut ready: impl FnMut(&mut State) -> Result<R, Vec<usize>>,
        abandon: impl FnOnce(&mut State),
    ) -> Result<R, CommError> {
        let started = Instant::now();
        let deadline = started + self.world.timeout;
        let me = self.global(self.rank);
        let mut wait = Wait {
            op,
            group: self.shared.info.clone(),
            seq,
            on: Vec::new(),
        };
        let outcome = loop {
            let missing: Vec<usize> = match ready(&mut state) {
                Ok(value) => break Ok(value),
                Err(missing) => missing.iter().map(|&m| self.global(m)).collect(),
            };
            if missing != wait.on {
                wait.on = missing;
                self.world.enter_wait(me, &wait);
            }
            if let Err(error) = self.check_abort(op) {
                abandon(&mut state);
                break Err(error);
            }
            let now = Instant::now();
            if now >= deadline {
                let error = CommError::Timeout {
                    op,
                    seq,
                    group: self.shared.info.clone(),
                    rank: me,
                    peers: wait.on.clone(),
                    after: self.world.timeout,
                    holdup: Box::new(self.world.holdup(me, &wait)),
                };
                abandon(&mut state);
                break Err(self.world.fail(me, error));
            }
            let slice = (deadline - now).min(ABORT_POLL);
            state = self
                .shared
                .changed
                .wait_timeout(state, slice)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        drop(state);
        if !wait.on.is_empty() {
            self.world.leave_wait(me, &wait);
        }
        let ended = Instant::now();
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .wait += ended - started;
        self.waits.push(started, ended);
        outcome
    }

    fn record(&self, op: Op, sent: usize, received: usize) {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(op, sent, received);
    }
}

/// One rank's handle on a group of a [`super::LocalWorld`].
pub struct LocalGroup {
    core: Arc<Core>,
    next_round: AtomicU64,
    send_seq: Vec<AtomicU64>,
    recv_seq: Vec<AtomicU64>,
}

impl LocalGroup {
    pub(super) fn new(shared: Arc<GroupShared>, world: Arc<WorldInner>, rank: usize) -> Self {
        let size = shared.info.members.len();
        let counters = || (0..size).map(|_| AtomicU64::new(0)).collect();
        LocalGroup {
            core: Arc::new(Core {
                shared,
                world,
                rank,
                stats: Mutex::default(),
                waits: WaitLog::default(),
            }),
            next_round: AtomicU64::new(0),
            send_seq: counters(),
            recv_seq: counters(),
        }
    }

    /// Deposits `data` for the next round and returns every rank's
    /// contribution in group order once all have arrived. `len` is the
    /// logical size every rank must agree on. A rank that fails waiting
    /// takes its contribution back: nobody reads it after.
    pub(super) fn exchange<T: Send + Sync + 'static>(
        &self,
        op: Op,
        len: usize,
        data: Vec<T>,
    ) -> Result<Vec<Arc<Vec<T>>>, CommError> {
        let core = &self.core;
        core.check_abort(op)?;
        let size = self.size();
        let round = self.next_round.fetch_add(1, Ordering::Relaxed);
        let mut state = core.shared.lock();
        let entry = state.rounds.entry(round).or_insert_with(|| Round {
            op,
            len,
            element: TypeId::of::<T>(),
            element_name: type_name::<T>(),
            opener: core.rank,
            contribs: vec![None; size],
            readers_left: size,
        });
        if (entry.op, entry.len, entry.element) != (op, len, TypeId::of::<T>()) {
            let problem = format!(
                "collective #{round} does not match: this rank called {op} on {len} {} but rank {} \
                 called {} on {} {}; every member must call the same collectives in the same order",
                type_name::<T>(),
                core.global(entry.opener),
                entry.op,
                entry.len,
                entry.element_name,
            );
            drop(state);
            return Err(core.error_usage(op, problem));
        }
        entry.contribs[core.rank] = Some(Arc::new(data));
        core.shared.changed.notify_all();
        let payloads = core.wait_until(
            op,
            round,
            state,
            |state| {
                let entry = state
                    .rounds
                    .get_mut(&round)
                    .expect("a round lives until its last reader");
                let missing: Vec<usize> =
                    (0..size).filter(|&i| entry.contribs[i].is_none()).collect();
                if !missing.is_empty() {
                    return Err(missing);
                }
                let payloads: Vec<Payload> = entry.contribs.iter().flatten().cloned().collect();
                entry.readers_left -= 1;
                if entry.readers_left == 0 {
                    state.rounds.remove(&round);
                }
                Ok(payloads)
            },
            |state| {
                if let Some(entry) = state.rounds.get_mut(&round) {
                    entry.contribs[core.rank] = None;
                }
            },
        )?;
        Ok(payloads
            .into_iter()
            .map(|p| {
                p.downcast::<Vec<T>>()
                    .expect("element types were checked when depositing")
            })
            .collect())
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
        let problem = format!("{what} has {actual} elements, expected {expected}");
        Err(self.core.error_usage(op, problem))
    }

    pub(super) fn check_blocks(&self, op: Op, what: &str, len: usize) -> Result<usize, CommError> {
        if len.is_multiple_of(self.size()) {
            return Ok(len / self.size());
        }
        let problem = format!(
            "{what} has {len} elements, not a multiple of the group size {}",
            self.size()
        );
        Err(self.core.error_usage(op, problem))
    }

    fn check_peer(&self, op: Op, peer: usize) -> Result<(), CommError> {
        if peer < self.size() {
            return Ok(());
        }
        let problem = format!(
            "peer {peer} is not a group rank (the group has {} ranks)",
            self.size()
        );
        Err(self.core.error_usage(op, problem))
    }

    /// Counts a completed operation in the statistics.
    pub(super) fn record(&self, op: Op, sent: usize, received: usize) {
        self.core.record(op, sent, received);
    }

    fn all_reduce_impl<T: Element>(&self, buf: &mut [T], op: ReduceOp) -> Result<(), CommError> {
        let size = self.size();
        let n = buf.len();
        let bytes = size_of::<T>();
        if size == 1 {
            self.core.check_abort(Op::AllReduce)?;
            self.core.record(Op::AllReduce, 0, 0);
            return Ok(());
        }
        if n * size <= DIRECT_ALL_REDUCE {
            let all = self.exchange(Op::AllReduce, n, buf.to_vec())?;
            reduce_into(buf, all.iter().map(|a| &a[..]), op);
            self.core.record(
                Op::AllReduce,
                (size - 1) * n * bytes,
                (size - 1) * n * bytes,
            );
            return Ok(());
        }
        // Reduce-scatter: rank i reduces slice i of every contribution ...
        let all = self.exchange(Op::AllReduce, n, buf.to_vec())?;
        let mine = slice_of(n, size, self.rank());
        let mut reduced = all[0][mine.clone()].to_vec();
        for other in &all[1..] {
            accumulate(&mut reduced, &other[mine.clone()], op);
        }
        drop(all);
        // ... then all-gather the reduced slices.
        let parts = self.exchange(Op::AllReduce, n, reduced)?;
        for (i, part) in parts.iter().enumerate() {
            buf[slice_of(n, size, i)].copy_from_slice(part);
        }
        let moved = ((n - mine.len()) + (size - 1) * mine.len()) * bytes;
        self.core.record(Op::AllReduce, moved, moved);
        Ok(())
    }
}

/// The contiguous slice of `n` elements that rank `i` of `size` owns.
pub(super) fn slice_of(n: usize, size: usize, i: usize) -> Range<usize> {
    n * i / size..n * (i + 1) / size
}

/// `acc = x₀ op x₁ op …` over `parts` in group order, so that every rank
/// computes the same bits.
fn reduce_into<'a, T: Element>(acc: &mut [T], parts: impl Iterator<Item = &'a [T]>, op: ReduceOp) {
    let mut parts = parts;
    if let Some(first) = parts.next() {
        acc.copy_from_slice(first);
    }
    parts.for_each(|x| accumulate(acc, x, op));
}

/// `acc = acc op x`, element-wise.
fn accumulate<T: Element>(acc: &mut [T], x: &[T], op: ReduceOp) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a = a.combine(b, op);
    }
}

/// The scalar types the reductions support.
trait Element: Copy + Send + Sync + 'static {
    fn combine(self, other: Self, op: ReduceOp) -> Self;
}

impl Element for f32 {
    fn combine(self, other: Self, op: ReduceOp) -> Self {
        match op {
            ReduceOp::Sum => self + other,
            // NaN wins, so a diverged rank is not hidden.
            ReduceOp::Max if self.is_nan() || other.is_nan() => f32::NAN,
            ReduceOp::Max => self.max(other),
        }
    }
}

impl Element for f64 {
    fn combine(self, other: Self, op: ReduceOp) -> Self {
        match op {
            ReduceOp::Sum => self + other,
            ReduceOp::Max if self.is_nan() || other.is_nan() => f64::NAN,
            ReduceOp::Max => self.max(other),
        }
    }
}

impl ProcessGroup for LocalGroup {
    fn info(&self) -> &GroupInfo {
        &self.core.shared.info
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
        let (size, n) = (self.size(), send.len());
        self.check_len(Op::AllGather, "recv", recv.len(), size * n)?;
        let all = self.exchange(Op::AllGather, n, send.to_vec())?;
        for (i, (block, part)) in recv.chunks_exact_mut(n.max(1)).zip(&all).enumerate() {
            block.copy_from_slice(if i == self.rank() { send } else { part });
        }
        self.core
            .record(Op::AllGather, (size - 1) * n * 4, (size - 1) * n * 4);
        Ok(())
    }

    fn reduce_scatter(
        &self,
        send: &[f32],
        recv: &mut [f32],
        op: ReduceOp,
    ) -> Result<(), CommError> {
        let size = self.size();
        let m = recv.len();
        self.check_len(Op::ReduceScatter, "send", send.len(), size * m)?;
        let all = self.exchange(Op::ReduceScatter, send.len(), send.to_vec())?;
        let mine = self.rank() * m..(self.rank() + 1) * m;
        reduce_into(recv, all.iter().map(|a| &a[mine.clone()]), op);
        self.core
            .record(Op::ReduceScatter, (size - 1) * m * 4, (size - 1) * m * 4);
        Ok(())
    }

    fn all_to_all(&self, send: &[f32], recv: &mut [f32]) -> Result<(), CommError> {
        let size = self.size();
        self.check_len(Op::AllToAll, "recv", recv.len(), send.len())?;
        let m = self.check_blocks(Op::AllToAll, "send", send.len())?;
        let all = self.exchange(Op::AllToAll, send.len(), send.to_vec())?;
        let mine = self.rank() * m..(self.rank() + 1) * m;
        for (block, part) in recv.chunks_exact_mut(m.max(1)).zip(&all) {
            block.copy_from_slice(&part[mine.clone()]);
        }
        self.core
            .record(Op::AllToAll, (size - 1) * m * 4, (size - 1) * m * 4);
        Ok(())
    }

    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<(), CommError> {
        self.check_peer(Op::Broadcast, root)?;
        let size = self.size();
        let is_root = self.rank() == root;
        let data = if is_root { buf.to_vec() } else { Vec::new() };
        let all = self.exchange(Op::Broadcast, buf.len(), data)?;
        if is_root {
            self.core
                .record(Op::Broadcast, (size - 1) * buf.len() * 4, 0);
        } else {
            buf.copy_from_slice(&all[root]);
            self.core.record(Op::Broadcast, 0, buf.len() * 4);
        }
        Ok(())
    }

    /// Sums device memory device to device (`device.rs`).
    fn all_reduce_view(
        &self,
        kernels: &dyn Kernels,
        buf: SliceMut<'_>,
        op: ReduceOp,
    ) -> Result<(), CommError> {
        match (buf.device(), op) {
            (Some(_), ReduceOp::Sum) => self.all_reduce_on_device(kernels, buf),
            _ => staged::all_reduce(self, buf, op),
        }
    }

    /// Gathers device memory device to device (`device.rs`).
    fn all_gather_view(
        &self,
        _kernels: &dyn Kernels,
        send: Slice<'_>,
        recv: SliceMut<'_>,
    ) -> Result<(), CommError> {
        match (send.device(), recv.device()) {
            (Some(_), Some(_)) => self.all_gather_on_device(send, recv),
            _ => staged::all_gather(self, send, recv),
        }
    }

    /// Sums device memory device to device (`device.rs`).
    fn reduce_scatter_view(
        &self,
        kernels: &dyn Kernels,
        send: Slice<'_>,
        recv: SliceMut<'_>,
        op: ReduceOp,
    ) -> Result<(), CommError> {
        match (send.device(), recv.device(), op) {
            (Some(_), Some(_), ReduceOp::Sum) => self.reduce_scatter_on_device(kernels, send, recv),
            _ => staged::reduce_scatter(self, send, recv, op),
        }
    }

    /// Exchanges device memory device to device (`device.rs`).
    fn all_to_all_view(
        &self,
        _kernels: &dyn Kernels,
        send: Slice<'_>,
        recv: SliceMut<'_>,
    ) -> Result<(), CommError> {
        match (send.device(), recv.device()) {
            (Some(_), Some(_)) => self.all_to_all_on_device(send, recv),
            _ => staged::all_to_all(self, send, recv),
        }
    }

    fn barrier(&self) -> Result<(), CommError> {
        self.exchange::<f32>(Op::Barrier, 0, Vec::new())?;
        self.core.record(Op::Barrier, 0, 0);
        Ok(())
    }

    fn isend(&self, peer: usize, data: Vec<f32>) -> Result<SendHandle, CommError> {
        self.isend_buffer(peer, data.into())
    }

    /// Passes the buffer itself on, device memory too: the receiver copies
    /// it device to device ([`Kernels::adopt`]).
    fn isend_buffer(&self, peer: usize, data: Buffer) -> Result<SendHandle, CommError> {
        self.check_peer(Op::Send, peer)?;
        self.core.check_abort(Op::Send)?;
        (data.view().synchronize()).map_err(CommError::device(Op::Send))?;
        let seq = self.send_seq[peer].fetch_add(1, Ordering::Relaxed);
        let bytes = data.len() * 4;
        self.core
            .shared
            .lock()
            .mail
            .insert((self.rank(), peer, seq), data);
        self.core.shared.changed.notify_all();
        self.core.record(Op::Send, bytes, 0);
        Ok(SendHandle::completed())
    }

    fn irecv(&self, peer: usize) -> Result<RecvHandle, CommError> {
        self.check_peer(Op::Recv, peer)?;
        let seq = self.recv_seq[peer].fetch_add(1, Ordering::Relaxed);
        let core = self.core.clone();
        Ok(RecvHandle::of_buffer(move || {
            let key = (peer, core.rank, seq);
            let state = core.shared.lock();
            let ready = |s: &mut State| s.mail.remove(&key).ok_or_else(|| vec![peer]);
            let data = core.wait_until(Op::Recv, seq, state, ready, |_| {})?;
            core.record(Op::Recv, 0, data.len() * 4);
            Ok(data)
        }))
    }

    fn stats(&self) -> CommStats {
        self.core
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn log_waits(&self, on: bool) {
        self.core.waits.set(on);
    }

    fn take_waits(&self) -> Vec<WaitSpan> {
        self.core.waits.take()
    }
}
