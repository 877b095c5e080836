//! The NCCL backend's point-to-point messages. NCCL's send and receive
//! only complete in pairs and need the length on both sides, so `isend` and
//! `irecv` are queued, and everything queued runs as one NCCL group (a
//! *batch*) when a handle is waited on: first the lengths, then the
//! payloads. A batch waits for its lengths, so between two neighbours the
//! sends of one rank's batch must meet the receives of the other's; the CP
//! ring posts everything a step exchanges before it waits, which gives
//! exactly that (`p2p_batches_pair_up` in the trainer's tests checks it).
//! Running a batch as soon as it held a send and a receive did not: a ring
//! step of the backward at cp ≥ 4 posts two receives and then two sends,
//! and its first batch would wait for a receive its neighbour sends only
//! in its next batch, on every rank at once.
//!
//! A message in this GPU's memory (a buffer of the rank's `cuda` kernel
//! set) is sent from where it is, and a receive posted for a kernel set of
//! this GPU (`irecv_for`) lands in a new buffer of that kernel set, so the
//! CP ring's blocks never leave the GPU. Other messages are uploaded from
//! host memory, and received ones downloaded into the receiving device's
//! staging memory (page-locked) or a vector.
//!
//! Overlap comes from the order of the calls: a ring step posts its
//! messages, launches its attention on the kernel set's stream (the host
//! does not wait for it), and only then waits on a handle. The batch runs
//! on the communication stream while the GPU is still computing that
//! attention; the host waits for NCCL alone.

use std::ffi::c_void;
use std::sync::Arc;

use cptrain::device::Buffer;
use cptrain::kernels::Kernels;
use cptrain::parallel::{CommError, Op, RecvHandle, SendHandle, staged};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};
use cudarc::nccl::sys;

use super::comm::check;
use super::group::{Element, Inner, NcclGroup, Posted, lock};

/// A queued point-to-point message.
pub(super) enum Pending {
    /// `data` is memory of this GPU (its values final) or host memory.
    Send { peer: usize, data: Buffer },
    /// Lands in memory of `kernels`' device when given.
    Recv {
        peer: usize,
        ticket: u64,
        kernels: Option<Arc<dyn Kernels>>,
    },
}

/// A payload's memory on this GPU: the peer, the address, the values.
#[derive(Clone, Copy)]
struct Message {
    peer: usize,
    addr: u64,
    len: usize,
}

/// Where a received payload lands.
enum Landing {
    /// A buffer of the receiving kernel set, on this GPU.
    Device(Buffer),
    /// A buffer of the backend, downloaded afterwards into the staging
    /// memory of `kernels`' device (a vector without one).
    Backend(CudaSlice<f32>, Option<Arc<dyn Kernels>>),
}

impl Inner {
    /// Enqueues `sends` and `recvs` of `T` values as one NCCL group,
    /// without waiting.
    ///
    /// # Safety
    /// Every message's memory is this GPU's, holds `len` values, and is not
    /// used by other work until the stream has finished the group.
    unsafe fn p2p_post<T: Element>(
        &self,
        op: Op,
        sends: &[Message],
        recvs: &[Message],
    ) -> Result<Posted, CommError> {
        self.post(op, |comm, s| {
            // SAFETY: opens a group, closed below on every path.
            check(unsafe { sys::ncclGroupStart() }, "ncclGroupStart")?;
            let mut result = Ok(());
            for m in sends {
                let (peer, ptr) = (m.peer as i32, m.addr as *const c_void);
                // SAFETY: the caller's contract.
                let code = unsafe { sys::ncclSend(ptr, m.len, T::TYPE, peer, comm, s) };
                result = result.and(check(code, "ncclSend"));
            }
            for m in recvs {
                let (peer, ptr) = (m.peer as i32, m.addr as *mut c_void);
                // SAFETY: as above.
                let code = unsafe { sys::ncclRecv(ptr, m.len, T::TYPE, peer, comm, s) };
                result = result.and(check(code, "ncclRecv"));
            }
            // Ended even after an error, so NCCL's group state stays balanced.
            // SAFETY: closes the group opened above.
            check(unsafe { sys::ncclGroupEnd() }, "ncclGroupEnd").and(result)
        })
    }

    /// [`Inner::p2p_post`] on whole buffers of the backend, waited for.
    pub(super) fn p2p_slices<T: Element>(
        &self,
        op: Op,
        sends: &[(usize, CudaSlice<T>)],
        recvs: &mut [(usize, CudaSlice<T>)],
    ) -> Result<(), CommError> {
        let stream = &self.shared.stream;
        let (mut guards, mut send_messages, mut recv_messages) = (vec![], vec![], vec![]);
        for (peer, buf) in sends {
            let (addr, guard) = buf.device_ptr(stream);
            guards.push(guard);
            send_messages.push(Message {
                peer: *peer,
                addr,
                len: buf.len(),
            });
        }
        for (peer, buf) in recvs.iter_mut() {
            let len = buf.len();
            let (addr, guard) = buf.device_ptr_mut(stream);
            guards.push(guard);
            recv_messages.push(Message {
                peer: *peer,
                addr,
                len,
            });
        }
        // SAFETY: buffers of the backend of these lengths, borrowed (the
        // guards) until NCCL is done with them: waited for below.
        let result = unsafe { self.p2p_post::<T>(op, &send_messages, &recv_messages) }
            .and_then(|posted| self.wait_posted(posted));
        drop(guards);
        result
    }

    /// Queues `pending` for the next batch (the next wait on a handle).
    fn queue(&self, pending: Pending) {
        lock(&self.pending).push(pending);
    }

    /// Where a message of `len` values for `kernels` lands: a buffer of the
    /// kernel set when it is memory of this GPU, else one of the backend.
    /// The kernel set's buffer is a [`Kernels::message_buffer`]: allocated
    /// without waiting for the kernels queued on it (the step's attention,
    /// which the transfer is to overlap).
    fn landing(
        &self,
        op: Op,
        len: usize,
        kernels: Option<Arc<dyn Kernels>>,
    ) -> Result<Landing, CommError> {
        if let Some(kernels) = &kernels {
            let buffer = kernels.message_buffer(len).map_err(CommError::device(op))?;
            if self.on_this_gpu(buffer.view()).is_some() {
                return Ok(Landing::Device(buffer));
            }
        }
        Ok(Landing::Backend(self.alloc::<f32>(op, len)?, kernels))
    }

    /// The received message of `len` values from `landing`, in the memory
    /// it was received for.
    fn deliver(&self, op: Op, len: usize, landing: Landing) -> Result<Buffer, CommError> {
        let (slice, kernels) = match landing {
            Landing::Device(buffer) => return Ok(buffer),
            Landing::Backend(slice, kernels) => (slice, kernels),
        };
        let mut host = match kernels {
            Some(kernels) => kernels.staging(len).map_err(CommError::device(op))?,
            None => Buffer::from(vec![0.0; len]),
        };
        if len > 0 {
            let values = host.host_mut().expect("staging memory is host memory");
            (self.shared.stream.memcpy_dtoh(&slice, values))
                .map_err(|e| self.cuda(op, "copy from the GPU", e))?;
        }
        Ok(host)
    }

    /// Runs every queued send and receive as one batch: exchanges the
    /// lengths, then the payloads, and delivers the received messages.
    pub(super) fn flush(&self) -> Result<(), CommError> {
        let batch = std::mem::take(&mut *lock(&self.pending));
        if batch.is_empty() {
            return Ok(());
        }
        let op = if batch.iter().any(|p| matches!(p, Pending::Recv { .. })) {
            Op::Recv
        } else {
            Op::Send
        };
        let _calls = self.begin(op)?;
        let (mut sends, mut recvs) = (Vec::new(), Vec::new());
        for pending in batch {
            match pending {
                Pending::Send { peer, data } => sends.push((peer, data)),
                Pending::Recv {
                    peer,
                    ticket,
                    kernels,
                } => recvs.push((peer, ticket, kernels)),
            }
        }
        let mut send_lens = Vec::new();
        for (peer, data) in &sends {
            send_lens.push((*peer, self.upload(op, &[data.len() as u64])?));
        }
        let mut recv_lens = Vec::new();
        for (peer, ..) in &recvs {
            recv_lens.push((*peer, self.alloc::<u64>(op, 1)?));
        }
        self.p2p_slices(op, &send_lens, &mut recv_lens)?;

        // Host messages go up; this GPU's are sent from where they are.
        let stream = &self.shared.stream;
        let (mut send_messages, mut uploads) = (Vec::new(), Vec::new());
        for (peer, data) in &sends {
            let upload = match data.host() {
                Some(values) => Some(self.upload(op, values)?),
                None => None,
            };
            let addr = match &upload {
                // The backend's buffers live on this stream alone: the
                // borrow guard has nothing to order.
                Some(slice) => slice.device_ptr(stream).0,
                None => {
                    data.view()
                        .device()
                        .expect("a queued message off the host")
                        .1
                }
            };
            let (peer, len) = (*peer, data.len());
            send_messages.push(Message { peer, addr, len });
            uploads.push(upload);
        }
        let (mut recv_messages, mut landings) = (Vec::new(), Vec::new());
        for ((_, len), (peer, ticket, kernels)) in recv_lens.iter().zip(recvs) {
            let mut n = [0u64];
            self.download(op, len, &mut n)?;
            let len = n[0] as usize;
            let mut landing = self.landing(op, len, kernels)?;
            let addr = match &mut landing {
                Landing::Device(buffer) => buffer.view().device().expect("device memory").1,
                Landing::Backend(slice, _) => slice.device_ptr_mut(stream).0,
            };
            recv_messages.push(Message { peer, addr, len });
            landings.push((ticket, len, landing));
        }
        // SAFETY: each message is memory of this GPU holding its `len`
        // values: a kernel set's buffer (a sent one synchronized when
        // queued, a landing one usable by any stream once allocated) or one
        // of the backend, all kept until NCCL is done.
        let posted = unsafe { self.p2p_post::<f32>(op, &send_messages, &recv_messages)? };
        if let Err(error) = self.wait_posted(posted) {
            // NCCL may still touch the buffers: never free them.
            std::mem::forget((sends, uploads, landings));
            return Err(error);
        }
        for (_, data) in &sends {
            self.record(Op::Send, data.len() * size_of::<f32>(), 0);
        }
        for (ticket, len, landing) in landings {
            let message = self.deliver(op, len, landing)?;
            self.record(Op::Recv, 0, len * size_of::<f32>());
            lock(&self.received).insert(ticket, message);
        }
        Ok(())
    }
}

impl NcclGroup {
    /// `ProcessGroup::isend_buffer`: memory of this GPU is sent from where
    /// it is (once the work queued on it is done); anything else from host
    /// memory (another device's staged through its staging memory).
    pub(super) fn post_send(&self, peer: usize, data: Buffer) -> Result<SendHandle, CommError> {
        let (g, op) = (&*self.inner, Op::Send);
        g.check_peer(op, peer)?;
        let data = match g.reachable(op, data.view())? {
            Some(_) => data,
            None => staged::stage_message(data).map_err(CommError::device(op))?,
        };
        g.queue(Pending::Send { peer, data });
        let inner = self.inner.clone();
        Ok(SendHandle::new(move || inner.flush()))
    }

    /// `ProcessGroup::irecv` (`kernels: None`) and `irecv_for`.
    pub(super) fn post_recv(
        &self,
        peer: usize,
        kernels: Option<Arc<dyn Kernels>>,
    ) -> Result<RecvHandle, CommError> {
        let g = &*self.inner;
        g.check_peer(Op::Recv, peer)?;
        let ticket = g.next_ticket();
        g.queue(Pending::Recv {
            peer,
            ticket,
            kernels,
        });
        let inner = self.inner.clone();
        Ok(RecvHandle::of_buffer(move || {
            inner.flush()?;
            lock(&inner.received)
                .remove(&ticket)
                .ok_or_else(|| inner.batch_failed())
        }))
    }
}
