//! The device-view collectives of [`ProcessGroup`] for backends that move
//! host memory only (the trait's default methods), and for the views a
//! device-aware backend cannot reach: device memory is copied to the host,
//! the host operation runs, and the result is copied back. Host views go
//! straight to the host operation.

use super::comm::{CommError, Op, ProcessGroup, ReduceOp};
use crate::device::{Slice, SliceMut};

/// [`ProcessGroup::all_reduce_view`] through the host.
pub fn all_reduce<G: ProcessGroup + ?Sized>(
    group: &G,
    buf: SliceMut<'_>,
    op: ReduceOp,
) -> Result<(), CommError> {
    if buf.device().is_none() {
        return group.all_reduce(buf.expect_host(), op);
    }
    let mut staged = to_host(buf.as_slice(), Op::AllReduce)?;
    group.all_reduce(&mut staged, op)?;
    write_back(&staged, buf, Op::AllReduce)
}

/// [`ProcessGroup::all_gather_view`] through the host.
pub fn all_gather<G: ProcessGroup + ?Sized>(
    group: &G,
    send: Slice<'_>,
    recv: SliceMut<'_>,
) -> Result<(), CommError> {
    let send = send.to_host().map_err(CommError::device(Op::AllGather))?;
    if recv.device().is_none() {
        return group.all_gather(&send, recv.expect_host());
    }
    let mut staged = vec![0.0; recv.len()];
    group.all_gather(&send, &mut staged)?;
    write_back(&staged, recv, Op::AllGather)
}

/// [`ProcessGroup::reduce_scatter_view`] through the host.
pub fn reduce_scatter<G: ProcessGroup + ?Sized>(
    group: &G,
    send: Slice<'_>,
    recv: SliceMut<'_>,
    op: ReduceOp,
) -> Result<(), CommError> {
    let send = send
        .to_host()
        .map_err(CommError::device(Op::ReduceScatter))?;
    if recv.device().is_none() {
        return group.reduce_scatter(&send, recv.expect_host(), op);
    }
    let mut staged = vec![0.0; recv.len()];
    group.reduce_scatter(&send, &mut staged, op)?;
    write_back(&staged, recv, Op::ReduceScatter)
}

/// [`ProcessGroup::all_to_all_view`] through the host.
pub fn all_to_all<G: ProcessGroup + ?Sized>(
    group: &G,
    send: Slice<'_>,
    recv: SliceMut<'_>,
) -> Result<(), CommError> {
    let send = send.to_host().map_err(CommError::device(Op::AllToAll))?;
    if recv.device().is_none() {
        return group.all_to_all(&send, recv.expect_host());
    }
    let mut staged = vec![0.0; recv.len()];
    group.all_to_all(&send, &mut staged)?;
    write_back(&staged, recv, Op::AllToAll)
}

fn to_host(view: Slice<'_>, op: Op) -> Result<Vec<f32>, CommError> {
    Ok(view.to_host().map_err(CommError::device(op))?.into_owned())
}

fn write_back(values: &[f32], mut dst: SliceMut<'_>, op: Op) -> Result<(), CommError> {
    dst.copy_from(Slice::from(values))
        .map_err(CommError::device(op))
}
