//! The device-view collectives of [`ProcessGroup`] for backends that move
//! host memory only (the trait's default methods), and for the views a
//! device-aware backend cannot reach: device memory is copied into the
//! device's staging memory ([`DeviceMemory::staging`]: page-locked on a
//! GPU), the host operation runs there, and the result is copied back. Host
//! views go straight to the host operation.

use super::comm::{CommError, Op, ProcessGroup, ReduceOp};
use crate::device::{Buffer, DeviceError, DeviceMemory, Slice, SliceMut};

/// [`ProcessGroup::all_reduce_view`] through the host.
pub fn all_reduce<G: ProcessGroup + ?Sized>(
    group: &G,
    buf: SliceMut<'_>,
    op: ReduceOp,
) -> Result<(), CommError> {
    let Some((memory, _)) = buf.device() else {
        return group.all_reduce(buf.expect_host(), op);
    };
    let mut staged = stage(memory, buf.as_slice()).map_err(CommError::device(Op::AllReduce))?;
    group.all_reduce(host_of(&mut staged), op)?;
    write_back(&staged, buf, Op::AllReduce)
}

/// [`ProcessGroup::all_gather_view`] through the host.
pub fn all_gather<G: ProcessGroup + ?Sized>(
    group: &G,
    send: Slice<'_>,
    recv: SliceMut<'_>,
) -> Result<(), CommError> {
    send_recv(Op::AllGather, send, recv, |s, r| group.all_gather(s, r))
}

/// [`ProcessGroup::reduce_scatter_view`] through the host.
pub fn reduce_scatter<G: ProcessGroup + ?Sized>(
    group: &G,
    send: Slice<'_>,
    recv: SliceMut<'_>,
    op: ReduceOp,
) -> Result<(), CommError> {
    let reduce_scatter = |s: &[f32], r: &mut [f32]| group.reduce_scatter(s, r, op);
    send_recv(Op::ReduceScatter, send, recv, reduce_scatter)
}

/// [`ProcessGroup::all_to_all_view`] through the host.
pub fn all_to_all<G: ProcessGroup + ?Sized>(
    group: &G,
    send: Slice<'_>,
    recv: SliceMut<'_>,
) -> Result<(), CommError> {
    send_recv(Op::AllToAll, send, recv, |s, r| group.all_to_all(s, r))
}

/// A device buffer's values for [`ProcessGroup::isend`]: read into the
/// device's staging memory (host buffers are sent as they are). A backend
/// that sends from host memory without copying it sends this buffer.
pub fn stage_message(data: Buffer) -> Result<Buffer, DeviceError> {
    match data.view().device() {
        None => Ok(data),
        Some((memory, _)) => stage(memory, data.view()),
    }
}

/// `view` (memory of `memory`) copied into `memory`'s staging memory.
fn stage(memory: &dyn DeviceMemory, view: Slice<'_>) -> Result<Buffer, DeviceError> {
    let mut staged = memory.staging(view.len())?;
    staged.view_mut().copy_from(view)?;
    Ok(staged)
}

/// The host values of a staging buffer.
fn host_of(staged: &mut Buffer) -> &mut [f32] {
    staged.host_mut().expect("staging memory is host memory")
}

/// Runs the host operation `host` (named `op`) from `send` into `recv`,
/// staging whichever is device memory.
fn send_recv(
    op: Op,
    send: Slice<'_>,
    recv: SliceMut<'_>,
    host: impl FnOnce(&[f32], &mut [f32]) -> Result<(), CommError>,
) -> Result<(), CommError> {
    let staged_send = match send.device() {
        Some((memory, _)) => Some(stage(memory, send).map_err(CommError::device(op))?),
        None => None,
    };
    let send = staged_send
        .as_ref()
        .map_or(send, Buffer::view)
        .expect_host();
    let Some((memory, _)) = recv.device() else {
        return host(send, recv.expect_host());
    };
    let mut staged = memory.staging(recv.len()).map_err(CommError::device(op))?;
    host(send, host_of(&mut staged))?;
    write_back(&staged, recv, op)
}

fn write_back(values: &Buffer, mut dst: SliceMut<'_>, op: Op) -> Result<(), CommError> {
    dst.copy_from(values.view()).map_err(CommError::device(op))
}
