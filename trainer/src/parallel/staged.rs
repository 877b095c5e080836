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
    let view = buf.as_slice().to_host();
    let mut staged = view.map_err(CommError::device(Op::AllReduce))?.into_owned();
    group.all_reduce(&mut staged, op)?;
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

/// Runs the host operation `host` (named `op`) from `send` into `recv`,
/// copying whichever is device memory through the host.
fn send_recv(
    op: Op,
    send: Slice<'_>,
    recv: SliceMut<'_>,
    host: impl FnOnce(&[f32], &mut [f32]) -> Result<(), CommError>,
) -> Result<(), CommError> {
    let send = send.to_host().map_err(CommError::device(op))?;
    if recv.device().is_none() {
        return host(&send, recv.expect_host());
    }
    let mut staged = vec![0.0; recv.len()];
    host(&send, &mut staged)?;
    write_back(&staged, recv, op)
}

fn write_back(values: &[f32], mut dst: SliceMut<'_>, op: Op) -> Result<(), CommError> {
    dst.copy_from(Slice::from(values))
        .map_err(CommError::device(op))
}
