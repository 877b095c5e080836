//! The NCCL backend's collectives on views of device memory. A view of
//! this rank's GPU (the `cuda` device's memory) goes to NCCL as it is:
//! the device's stream is synchronized first, so NCCL on the communication
//! stream reads finished values, and the host waits for NCCL as for every
//! collective (polled against `parallel.timeout_s`), so the device's later
//! work reads the results. No copy to or from the host. Anything else
//! (host memory, another device) goes through the host
//! ([`cptrain::parallel::staged`]).

use cptrain::device::{DeviceAddress, Slice, SliceMut};
use cptrain::parallel::{CommError, Op, ReduceOp, staged};

use super::group::{Inner, NcclGroup};
use crate::cuda::device::gpu_of;

impl Inner {
    /// `view`'s address when it is memory of this backend's GPU, once the
    /// work queued on it is done.
    pub(super) fn reachable(
        &self,
        op: Op,
        view: Slice<'_>,
    ) -> Result<Option<DeviceAddress>, CommError> {
        let Some(addr) = self.on_this_gpu(view) else {
            return Ok(None);
        };
        let (memory, _) = view.device().expect("memory of this GPU");
        memory.synchronize().map_err(CommError::device(op))?;
        Ok(Some(addr))
    }

    /// `view`'s address when it is memory of this backend's GPU.
    pub(super) fn on_this_gpu(&self, view: Slice<'_>) -> Option<DeviceAddress> {
        let (memory, addr) = view.device()?;
        let here = gpu_of(memory) == Some(self.shared.stream.context().ordinal());
        here.then_some(addr)
    }
}

/// `ProcessGroup::all_reduce_view`: in place on this GPU's memory.
pub(super) fn all_reduce(
    group: &NcclGroup,
    buf: SliceMut<'_>,
    op: ReduceOp,
) -> Result<(), CommError> {
    let (g, name) = (&*group.inner, Op::AllReduce);
    let Some(addr) = g.reachable(name, buf.as_slice())? else {
        return staged::all_reduce(group, buf, op);
    };
    let _calls = g.begin(name)?;
    // SAFETY: the view holds `buf.len()` values of this GPU, borrowed
    // exclusively for the call; NCCL reduces in place.
    unsafe { g.enqueue_reduce::<f32>(name, addr, addr, buf.len(), op)? };
    g.record_all_reduce(buf.len(), size_of::<f32>());
    Ok(())
}

/// `ProcessGroup::all_gather_view`: on this GPU's memory.
pub(super) fn all_gather(
    group: &NcclGroup,
    send: Slice<'_>,
    recv: SliceMut<'_>,
) -> Result<(), CommError> {
    let (g, name) = (&*group.inner, Op::AllGather);
    g.check_len(name, "recv", recv.len(), g.size() * send.len())?;
    let (Some(src), Some(dst)) = (
        g.reachable(name, send)?,
        g.reachable(name, recv.as_slice())?,
    ) else {
        return staged::all_gather(group, send, recv);
    };
    let _calls = g.begin(name)?;
    // SAFETY: `send.len()` values in, `size · send.len()` out, both views
    // of this GPU borrowed for the call.
    unsafe { g.enqueue_all_gather(src, dst, send.len())? };
    let bytes = g.exchanged_bytes(send.len());
    g.record(name, bytes, bytes);
    Ok(())
}

/// `ProcessGroup::reduce_scatter_view`: on this GPU's memory.
pub(super) fn reduce_scatter(
    group: &NcclGroup,
    send: Slice<'_>,
    recv: SliceMut<'_>,
    op: ReduceOp,
) -> Result<(), CommError> {
    let (g, name) = (&*group.inner, Op::ReduceScatter);
    g.check_len(name, "send", send.len(), g.size() * recv.len())?;
    let (Some(src), Some(dst)) = (
        g.reachable(name, send)?,
        g.reachable(name, recv.as_slice())?,
    ) else {
        return staged::reduce_scatter(group, send, recv, op);
    };
    let _calls = g.begin(name)?;
    // SAFETY: `size · recv.len()` values in, `recv.len()` out, both views
    // of this GPU borrowed for the call.
    unsafe { g.enqueue_reduce::<f32>(name, src, dst, recv.len(), op)? };
    let bytes = g.exchanged_bytes(recv.len());
    g.record(name, bytes, bytes);
    Ok(())
}
