//! Collectives of the local backend on device memory, device to device.
//!
//! Each rank *publishes* a view of its device memory for a round (after
//! waiting for its device, so the values are there), and the other ranks
//! copy what they need straight from it into their own memory
//! ([`SliceMut::copy_from`]: a peer copy between GPUs, or within one GPU).
//! A view stays published until the next round of the same collective: a
//! rank enters that round only once its own copies are done, and nobody
//! leaves it before everyone has entered, so no memory is read after its
//! owner moved on. Sums are taken in group-rank order with the device's
//! `add_assign`, so every rank gets the bits the host backend gives.
//!
//! Scratch memory is allocated before the first round, and a device
//! failure (a failed copy, or a device that had failed before) is kept and
//! reported only after the last round: a failed rank still publishes and
//! reads, so it never leaves while others may still read its memory, and
//! nobody waits for it. A rank
//! does leave at once when its wait fails (a timeout, or the world
//! aborting because another rank failed); a peer copying from its memory at
//! that instant may read memory being freed, in a job that is failing.

use std::ops::Range;

use super::group::{LocalGroup, slice_of};
use crate::device::{Buffer, DeviceAddress, DeviceError, DeviceMemory, Slice, SliceMut};
use crate::kernels::Kernels;
use crate::parallel::comm::{CommError, Op, ProcessGroup};

/// A rank's device view, readable by the group while its round lasts.
#[derive(Clone, Copy)]
struct Published {
    memory: *const (dyn DeviceMemory + 'static),
    addr: DeviceAddress,
    len: usize,
}

// SAFETY: `DeviceMemory` is `Send + Sync`; the pointer is only dereferenced
// while the publishing rank keeps the memory alive (the module's protocol).
unsafe impl Send for Published {}
// SAFETY: as above.
unsafe impl Sync for Published {}

impl Published {
    /// Values `r` of the published view.
    ///
    /// # Safety
    /// The publishing rank must not have left the collective.
    unsafe fn values(&self, r: Range<usize>) -> Slice<'_> {
        assert!(r.end <= self.len, "{r:?} outside a view of {}", self.len);
        // SAFETY: the memory outlives the round (the caller's contract) and
        // allocated `len` values at `addr`, written by nobody during it.
        unsafe { Slice::on_device(&*self.memory, self.addr, self.len).range(r) }
    }
}

/// The first device failure of a rank's part in a collective.
struct Outcome {
    op: Op,
    failure: Option<DeviceError>,
}

impl Outcome {
    fn new(op: Op) -> Self {
        Outcome { op, failure: None }
    }

    fn note(&mut self, result: Result<(), DeviceError>) {
        if let Err(error) = result {
            self.failure.get_or_insert(error);
        }
    }

    fn into_result(self) -> Result<(), CommError> {
        match self.failure {
            None => Ok(()),
            Some(error) => Err(CommError::Device { op: self.op, error }),
        }
    }
}

impl LocalGroup {
    /// Publishes `view` (device memory) for a round of `op` over `len`
    /// values and returns every rank's, in group order. A device that
    /// failed publishes all the same (its failure noted in `outcome`), so
    /// the rounds of its peers complete.
    fn publish(
        &self,
        op: Op,
        len: usize,
        view: Slice<'_>,
        outcome: &mut Outcome,
    ) -> Result<Vec<Published>, CommError> {
        outcome.note(view.synchronize());
        let (memory, addr) = view.device().expect("only device views are published");
        // SAFETY: only the lifetime is erased; see `Published`.
        let memory =
            unsafe { std::mem::transmute::<&dyn DeviceMemory, &'static dyn DeviceMemory>(memory) };
        let mine = Published {
            memory,
            addr,
            len: view.len(),
        };
        let all = self.exchange(op, len, vec![mine])?;
        Ok(all.iter().map(|views| views[0]).collect())
    }

    /// The round after which no rank reads what the previous one published.
    fn release(&self, op: Op) -> Result<(), CommError> {
        self.exchange::<Published>(op, 0, Vec::new()).map(drop)
    }

    /// `acc` = block `r` of every published view, summed in group order;
    /// `scratch` has `acc`'s length.
    fn sum_blocks(
        &self,
        kernels: &dyn Kernels,
        views: &[Published],
        r: Range<usize>,
        mut acc: SliceMut<'_>,
        scratch: &mut Buffer,
        outcome: &mut Outcome,
    ) {
        for (i, view) in views.iter().enumerate() {
            // SAFETY: every rank stays in the collective until `release`.
            let block = unsafe { view.values(r.clone()) };
            if i == 0 {
                outcome.note(acc.copy_from(block));
            } else {
                outcome.note(scratch.view_mut().copy_from(block));
                kernels.add_assign(acc.reborrow(), scratch.view());
            }
        }
    }

    /// [`ProcessGroup::all_reduce_view`] (a sum) on device memory:
    /// reduce-scatter of the slices, then all-gather of the sums.
    pub(super) fn all_reduce_on_device(
        &self,
        kernels: &dyn Kernels,
        mut buf: SliceMut<'_>,
    ) -> Result<(), CommError> {
        let (size, n, op) = (self.size(), buf.len(), Op::AllReduce);
        let mine = slice_of(n, size, self.rank());
        let alloc = |len| kernels.alloc(len).map_err(CommError::device(op));
        let (mut reduced, mut scratch) = (alloc(mine.len())?, alloc(mine.len())?);
        let mut outcome = Outcome::new(op);
        let views = self.publish(op, n, buf.as_slice(), &mut outcome)?;
        let acc = reduced.view_mut();
        self.sum_blocks(
            kernels,
            &views,
            mine.clone(),
            acc,
            &mut scratch,
            &mut outcome,
        );
        // Everyone publishes its sum only after reading the inputs: this
        // round also ends the first.
        let sums = self.publish(op, n, reduced.view(), &mut outcome)?;
        for (i, sum) in sums.iter().enumerate() {
            // SAFETY: as above.
            let part = unsafe { sum.values(0..sum.len) };
            outcome.note(buf.reborrow().range(slice_of(n, size, i)).copy_from(part));
        }
        outcome.note(buf.as_slice().synchronize());
        self.release(op)?;
        let moved = ((n - mine.len()) + (size - 1) * mine.len()) * 4;
        self.record(op, moved, moved);
        outcome.into_result()
    }

    /// [`ProcessGroup::all_gather_view`] on device memory.
    pub(super) fn all_gather_on_device(
        &self,
        send: Slice<'_>,
        recv: SliceMut<'_>,
    ) -> Result<(), CommError> {
        let (n, op) = (send.len(), Op::AllGather);
        self.check_len(op, "recv", recv.len(), self.size() * n)?;
        let mut outcome = Outcome::new(op);
        let views = self.publish(op, n, send, &mut outcome)?;
        self.gather_blocks(op, &views, 0..n, recv, outcome)
    }

    /// [`ProcessGroup::all_to_all_view`] on device memory.
    pub(super) fn all_to_all_on_device(
        &self,
        send: Slice<'_>,
        recv: SliceMut<'_>,
    ) -> Result<(), CommError> {
        let op = Op::AllToAll;
        self.check_len(op, "recv", recv.len(), send.len())?;
        let m = self.check_blocks(op, "send", send.len())?;
        let mut outcome = Outcome::new(op);
        let views = self.publish(op, send.len(), send, &mut outcome)?;
        let mine = self.rank() * m..(self.rank() + 1) * m;
        self.gather_blocks(op, &views, mine, recv, outcome)
    }

    /// Block `i` of `recv` = values `r` of rank `i`'s published view; then
    /// ends the collective.
    fn gather_blocks(
        &self,
        op: Op,
        views: &[Published],
        r: Range<usize>,
        mut recv: SliceMut<'_>,
        mut outcome: Outcome,
    ) -> Result<(), CommError> {
        let m = r.len();
        for (i, view) in views.iter().enumerate() {
            // SAFETY: every rank stays in the collective until `release`.
            let block = unsafe { view.values(r.clone()) };
            outcome.note(recv.reborrow().range(i * m..(i + 1) * m).copy_from(block));
        }
        self.finish(op, recv.as_slice(), m, outcome)
    }

    /// [`ProcessGroup::reduce_scatter_view`] (a sum) on device memory.
    pub(super) fn reduce_scatter_on_device(
        &self,
        kernels: &dyn Kernels,
        send: Slice<'_>,
        mut recv: SliceMut<'_>,
    ) -> Result<(), CommError> {
        let (m, op) = (recv.len(), Op::ReduceScatter);
        self.check_len(op, "send", send.len(), self.size() * m)?;
        let mut scratch = kernels.alloc(m).map_err(CommError::device(op))?;
        let mut outcome = Outcome::new(op);
        let views = self.publish(op, send.len(), send, &mut outcome)?;
        let mine = self.rank() * m..(self.rank() + 1) * m;
        let acc = recv.reborrow();
        self.sum_blocks(kernels, &views, mine, acc, &mut scratch, &mut outcome);
        self.finish(op, recv.as_slice(), m, outcome)
    }

    /// Ends a collective that wrote `written`, exchanging blocks of `m`
    /// values with every other rank: waits for the copies, releases the
    /// published views, counts the bytes, and reports a device failure.
    fn finish(
        &self,
        op: Op,
        written: Slice<'_>,
        m: usize,
        mut outcome: Outcome,
    ) -> Result<(), CommError> {
        outcome.note(written.synchronize());
        self.release(op)?;
        let bytes = (self.size() - 1) * m * 4;
        self.record(op, bytes, bytes);
        outcome.into_result()
    }
}
