//! The communicator contract every backend (local threads, the MPI and
//! NCCL plugins) implements: collectives and non-blocking point-to-point
//! over one group, on host slices and on views of any device's memory.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::holdup::Holdup;
use super::staged;
use super::stats::CommStats;
use super::wait_log::WaitSpan;
use crate::device::{Buffer, DeviceError, Slice, SliceMut};
use crate::kernels::Kernels;

/// How a reduction combines the ranks' values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Element-wise sum (in group-rank order, so every rank gets the same bits).
    Sum,
    /// Element-wise maximum.
    Max,
}

/// The communication operations, as named in errors and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`ProcessGroup::all_reduce`] and [`ProcessGroup::all_reduce_f64`].
    AllReduce,
    /// [`ProcessGroup::all_gather`].
    AllGather,
    /// [`ProcessGroup::reduce_scatter`].
    ReduceScatter,
    /// [`ProcessGroup::all_to_all`].
    AllToAll,
    /// [`ProcessGroup::broadcast`].
    Broadcast,
    /// [`ProcessGroup::barrier`].
    Barrier,
    /// [`ProcessGroup::isend`].
    Send,
    /// [`ProcessGroup::irecv`].
    Recv,
}

impl Op {
    /// Every operation, in a fixed order (the index into [`CommStats::calls`]).
    pub const ALL: [Op; 8] = [
        Op::AllReduce,
        Op::AllGather,
        Op::ReduceScatter,
        Op::AllToAll,
        Op::Broadcast,
        Op::Barrier,
        Op::Send,
        Op::Recv,
    ];

    /// True for the operations every member of the group takes part in
    /// (everything but [`Op::Send`] and [`Op::Recv`]).
    pub fn is_collective(self) -> bool {
        !matches!(self, Op::Send | Op::Recv)
    }

    /// The operation called `name` ([`Op::name`]).
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The snake_case name (`all_gather`, `send`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Op::AllReduce => "all_reduce",
            Op::AllGather => "all_gather",
            Op::ReduceScatter => "reduce_scatter",
            Op::AllToAll => "all_to_all",
            Op::Broadcast => "broadcast",
            Op::Barrier => "barrier",
            Op::Send => "send",
            Op::Recv => "recv",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A group's identity for messages: its name and its members' global ranks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupInfo {
    /// Name such as `cp`, `dp-cp` or `world`.
    pub name: String,
    /// Global ranks, in group-rank order.
    pub members: Vec<usize>,
}

impl GroupInfo {
    /// Global rank `rank`'s index in the group, after checking the member
    /// list in a world of `world_size` ranks: not empty, every member in the
    /// world, none twice, and `rank` among them.
    pub fn member_rank(&self, rank: usize, world_size: usize) -> Result<usize, CommError> {
        let invalid = |problem: String| CommError::InvalidGroup {
            group: self.clone(),
            rank,
            problem,
        };
        let members = &self.members;
        if members.is_empty() {
            return Err(invalid("a group needs at least one member".into()));
        }
        if let Some(&m) = members.iter().find(|&&m| m >= world_size) {
            return Err(invalid(format!(
                "rank {m} is outside a world of {world_size} ranks"
            )));
        }
        if let Some((i, &m)) = (members.iter().enumerate()).find(|(i, m)| members[..*i].contains(m))
        {
            return Err(invalid(format!("rank {m} is listed twice (position {i})")));
        }
        members
            .iter()
            .position(|&m| m == rank)
            .ok_or_else(|| invalid(format!("rank {rank} is not a member")))
    }
}

impl fmt::Display for GroupInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group `{}` {:?}", self.name, self.members)
    }
}

/// Why a communication operation failed. Ranks are global ranks.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommError {
    /// The peers did not arrive before the deadline.
    #[error(
        "{op} #{seq} on {group} timed out on rank {rank} after {after:?} waiting for rank(s) \
         {peers:?}{holdup}; a peer is stuck, dead or much slower (raise parallel.timeout_s if it \
         is only slow)"
    )]
    Timeout {
        /// The operation.
        op: Op,
        /// Its number (see [`crate::parallel::Wait::seq`]).
        seq: u64,
        /// The group.
        group: GroupInfo,
        /// This rank.
        rank: usize,
        /// The ranks that had not arrived.
        peers: Vec<usize>,
        /// The timeout that expired.
        after: Duration,
        /// The ranks the missing peers were themselves waiting for, and so on
        /// down to the ranks that hold the job up (boxed: errors stay small).
        holdup: Box<Holdup>,
    },
    /// Another rank failed and stopped the world.
    #[error("{op} on {group} stopped on rank {rank} because rank {origin} failed: {cause}")]
    Aborted {
        /// The operation that was interrupted.
        op: Op,
        /// The group.
        group: GroupInfo,
        /// This rank.
        rank: usize,
        /// The rank whose failure stopped the world.
        origin: usize,
        /// That rank's failure.
        cause: String,
    },
    /// The call itself is wrong (buffer sizes, peer, mismatched collectives).
    #[error("{op} on {group} on rank {rank}: {problem}")]
    Usage {
        /// The operation.
        op: Op,
        /// The group.
        group: GroupInfo,
        /// This rank.
        rank: usize,
        /// What is wrong and what was expected.
        problem: String,
    },
    /// Data of an operation could not be moved to or from a device.
    #[error("{op}: moving data to or from {error}")]
    Device {
        /// The operation.
        op: Op,
        /// The device's failure.
        error: DeviceError,
    },
    /// A group was requested with an impossible member list.
    #[error("cannot create {group} for rank {rank}: {problem}")]
    InvalidGroup {
        /// The requested group.
        group: GroupInfo,
        /// The requesting rank.
        rank: usize,
        /// What is wrong.
        problem: String,
    },
}

impl CommError {
    /// True when this rank stopped only because another rank failed.
    pub fn is_secondary(&self) -> bool {
        matches!(self, CommError::Aborted { .. })
    }

    /// A conversion of a device failure during `op`, for `map_err`.
    pub fn device(op: Op) -> impl Fn(DeviceError) -> CommError {
        move |error| CommError::Device { op, error }
    }
}

/// Completion of an [`ProcessGroup::isend`].
#[must_use = "a send must be waited on"]
pub struct SendHandle(Box<dyn FnOnce() -> Result<(), CommError> + Send>);

impl SendHandle {
    /// A handle whose send has already completed (buffered backends).
    pub fn completed() -> Self {
        SendHandle(Box::new(|| Ok(())))
    }

    /// A handle that completes by running `wait`.
    pub fn new(wait: impl FnOnce() -> Result<(), CommError> + Send + 'static) -> Self {
        SendHandle(Box::new(wait))
    }

    /// Blocks until the data has left this rank's hands.
    pub fn wait(self) -> Result<(), CommError> {
        (self.0)()
    }
}

/// A posted [`ProcessGroup::irecv`]; [`RecvHandle::wait`] yields the message.
#[must_use = "a receive must be waited on"]
pub struct RecvHandle(Box<dyn FnOnce() -> Result<Buffer, CommError> + Send>);

impl RecvHandle {
    /// A handle that completes by running `wait` (a message in host memory).
    pub fn new(wait: impl FnOnce() -> Result<Vec<f32>, CommError> + Send + 'static) -> Self {
        RecvHandle(Box::new(move || wait().map(Buffer::from)))
    }

    /// A handle whose `wait` yields the message in the memory it was sent
    /// from ([`ProcessGroup::isend_buffer`] of a backend that passes device
    /// buffers on).
    pub fn of_buffer(wait: impl FnOnce() -> Result<Buffer, CommError> + Send + 'static) -> Self {
        RecvHandle(Box::new(wait))
    }

    /// Blocks until the message has arrived and returns it in host memory.
    pub fn wait(self) -> Result<Vec<f32>, CommError> {
        (self.wait_buffer()?.into_host()).map_err(CommError::device(Op::Recv))
    }

    /// Blocks until the message has arrived and returns it where it is: host
    /// memory, or the sender's device memory
    /// ([`Kernels::adopt`] moves it to the receiver's device).
    pub fn wait_buffer(self) -> Result<Buffer, CommError> {
        (self.0)()
    }
}

/// One rank's view of a process group.
///
/// Ranks passed to and returned by these methods are *group* ranks
/// (`0..size()`). Every member must call the collectives in the same order
/// with matching sizes. Every blocking wait has a deadline; when it expires,
/// or any rank of the world fails, the call returns a [`CommError`] instead
/// of hanging. Point-to-point messages between a pair of ranks are matched
/// in the order they were posted.
pub trait ProcessGroup: Send + Sync {
    /// Name and members, for messages.
    fn info(&self) -> &GroupInfo;

    /// This rank's index in the group.
    fn rank(&self) -> usize;

    /// Number of ranks in the group.
    fn size(&self) -> usize {
        self.info().members.len()
    }

    /// Reduces `buf` element-wise over the group; every rank gets the result.
    fn all_reduce(&self, buf: &mut [f32], op: ReduceOp) -> Result<(), CommError>;

    /// [`ProcessGroup::all_reduce`] for f64 scalars (loss sums, token counts, norms).
    fn all_reduce_f64(&self, buf: &mut [f64], op: ReduceOp) -> Result<(), CommError>;

    /// Concatenates every rank's `send` in rank order into `recv`
    /// (`recv.len() == size() * send.len()`).
    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<(), CommError>;

    /// Reduces `send` (`size()` equal blocks) over the group; rank `i` gets
    /// block `i` in `recv`.
    fn reduce_scatter(&self, send: &[f32], recv: &mut [f32], op: ReduceOp)
    -> Result<(), CommError>;

    /// Block `j` of `send` goes to rank `j`; block `i` of `recv` comes from
    /// rank `i` (`send` and `recv` hold `size()` equal blocks).
    fn all_to_all(&self, send: &[f32], recv: &mut [f32]) -> Result<(), CommError>;

    /// Copies `root`'s `buf` into every other rank's `buf`.
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<(), CommError>;

    /// Returns once every rank has entered it.
    fn barrier(&self) -> Result<(), CommError>;

    /// Starts sending `data` to `peer`; never blocks on the receiver.
    fn isend(&self, peer: usize, data: Vec<f32>) -> Result<SendHandle, CommError>;

    /// [`ProcessGroup::isend`] of a buffer of any device. By default device
    /// memory is copied to the host first; a backend that passes device
    /// buffers on overrides this.
    fn isend_buffer(&self, peer: usize, data: Buffer) -> Result<SendHandle, CommError> {
        let data = data.into_host().map_err(CommError::device(Op::Send))?;
        self.isend(peer, data)
    }

    /// Posts a receive of the next message from `peer`.
    fn irecv(&self, peer: usize) -> Result<RecvHandle, CommError>;

    /// [`ProcessGroup::irecv`] of a message bound for `kernels`' device,
    /// which [`Kernels::adopt`] then takes. A backend that receives into
    /// host memory receives into the device's staging memory
    /// ([`Kernels::staging`]: page-locked on a GPU), so the upload runs at
    /// full speed; one that reaches the device's memory may receive into a
    /// buffer of it. By default the same as `irecv`.
    fn irecv_for(&self, peer: usize, kernels: &Arc<dyn Kernels>) -> Result<RecvHandle, CommError> {
        let _ = kernels;
        self.irecv(peer)
    }

    /// [`ProcessGroup::all_reduce`] of a view of any device's memory, with
    /// `kernels` (the view's device) for scratch buffers and sums. By
    /// default device memory passes through the host (a copy each way); a
    /// backend that reaches device memory overrides this.
    fn all_reduce_view(
        &self,
        kernels: &dyn Kernels,
        buf: SliceMut<'_>,
        op: ReduceOp,
    ) -> Result<(), CommError> {
        let _ = kernels;
        staged::all_reduce(self, buf, op)
    }

    /// [`ProcessGroup::all_gather`] of views of any device's memory (see
    /// [`ProcessGroup::all_reduce_view`]).
    fn all_gather_view(
        &self,
        kernels: &dyn Kernels,
        send: Slice<'_>,
        recv: SliceMut<'_>,
    ) -> Result<(), CommError> {
        let _ = kernels;
        staged::all_gather(self, send, recv)
    }

    /// [`ProcessGroup::reduce_scatter`] of views of any device's memory
    /// (see [`ProcessGroup::all_reduce_view`]).
    fn reduce_scatter_view(
        &self,
        kernels: &dyn Kernels,
        send: Slice<'_>,
        recv: SliceMut<'_>,
        op: ReduceOp,
    ) -> Result<(), CommError> {
        let _ = kernels;
        staged::reduce_scatter(self, send, recv, op)
    }

    /// [`ProcessGroup::all_to_all`] of views of any device's memory (see
    /// [`ProcessGroup::all_reduce_view`]).
    fn all_to_all_view(
        &self,
        kernels: &dyn Kernels,
        send: Slice<'_>,
        recv: SliceMut<'_>,
    ) -> Result<(), CommError> {
        let _ = kernels;
        staged::all_to_all(self, send, recv)
    }

    /// Counts of calls, bytes and waiting time since the group was created.
    fn stats(&self) -> CommStats;

    /// Starts (`true`) or stops keeping each blocking wait of this rank as
    /// a [`WaitSpan`] for [`ProcessGroup::take_waits`] (a step timeline);
    /// off when the group is created.
    fn log_waits(&self, on: bool);

    /// The waits kept since the last call, oldest first.
    fn take_waits(&self) -> Vec<WaitSpan>;
}
