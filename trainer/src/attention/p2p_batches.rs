//! The ring's messages under a backend that runs them in batches (NCCL):
//! everything a rank has posted runs as one batch when it first waits on a
//! handle, and a batch blocks until its messages are matched. That is
//! deadlock-free when, between every pair of ranks, the sends of one rank's
//! batch `b` are the receives of the other's batch `b`. These tests replay
//! the ring's calls (forward and backward, causal and not, cp = 2 to 5)
//! through a group that records them, and check that pairing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Attention, AttnShape, RingAttention};
use crate::device::Buffer;
use crate::kernels::test_support::{h, hm, uniform};
use crate::kernels::{CpuKernels, Kernels, Threads};
use crate::parallel::WaitSpan;
use crate::parallel::{
    CommError, CommStats, GroupInfo, LocalGroup, LocalWorld, ProcessGroup, RecvHandle, ReduceOp,
    SendHandle, run_ranks,
};

/// A point-to-point call of one rank, in the order it was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Send(usize),
    Recv(usize),
    Wait,
}

/// The local group, recording its rank's point-to-point calls.
struct Recording {
    inner: LocalGroup,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Recording {
    fn note(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }

    fn waited_send(&self, handle: SendHandle) -> SendHandle {
        let calls = self.calls.clone();
        SendHandle::new(move || {
            calls.lock().unwrap().push(Call::Wait);
            handle.wait()
        })
    }

    fn waited_recv(&self, handle: RecvHandle) -> RecvHandle {
        let calls = self.calls.clone();
        RecvHandle::of_buffer(move || {
            calls.lock().unwrap().push(Call::Wait);
            handle.wait_buffer()
        })
    }
}

impl ProcessGroup for Recording {
    fn info(&self) -> &GroupInfo {
        self.inner.info()
    }
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn all_reduce(&self, buf: &mut [f32], op: ReduceOp) -> Result<(), CommError> {
        self.inner.all_reduce(buf, op)
    }
    fn all_reduce_f64(&self, buf: &mut [f64], op: ReduceOp) -> Result<(), CommError> {
        self.inner.all_reduce_f64(buf, op)
    }
    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<(), CommError> {
        self.inner.all_gather(send, recv)
    }
    fn reduce_scatter(&self, s: &[f32], r: &mut [f32], op: ReduceOp) -> Result<(), CommError> {
        self.inner.reduce_scatter(s, r, op)
    }
    fn all_to_all(&self, send: &[f32], recv: &mut [f32]) -> Result<(), CommError> {
        self.inner.all_to_all(send, recv)
    }
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<(), CommError> {
        self.inner.broadcast(buf, root)
    }
    fn barrier(&self) -> Result<(), CommError> {
        self.inner.barrier()
    }
    fn isend(&self, peer: usize, data: Vec<f32>) -> Result<SendHandle, CommError> {
        self.isend_buffer(peer, data.into())
    }
    fn isend_buffer(&self, peer: usize, data: Buffer) -> Result<SendHandle, CommError> {
        self.note(Call::Send(peer));
        Ok(self.waited_send(self.inner.isend_buffer(peer, data)?))
    }
    fn irecv(&self, peer: usize) -> Result<RecvHandle, CommError> {
        self.note(Call::Recv(peer));
        Ok(self.waited_recv(self.inner.irecv(peer)?))
    }
    fn irecv_for(&self, peer: usize, _: &Arc<dyn Kernels>) -> Result<RecvHandle, CommError> {
        self.irecv(peer)
    }
    fn stats(&self) -> CommStats {
        self.inner.stats()
    }
    fn log_waits(&self, on: bool) {
        self.inner.log_waits(on)
    }
    fn take_waits(&self) -> Vec<WaitSpan> {
        self.inner.take_waits()
    }
}

/// The batches `calls` form: what was posted and not yet run, at each wait.
fn batches(calls: &[Call], size: usize) -> Vec<Batch> {
    let mut done = Vec::new();
    let mut open = (vec![0; size], vec![0; size]);
    for call in calls {
        match *call {
            Call::Send(peer) => open.0[peer] += 1,
            Call::Recv(peer) => open.1[peer] += 1,
            Call::Wait if open.0.iter().chain(&open.1).any(|&n| n > 0) => {
                done.push(std::mem::replace(&mut open, (vec![0; size], vec![0; size])));
            }
            Call::Wait => {}
        }
    }
    assert!(
        open.0.iter().chain(&open.1).all(|&n| n == 0),
        "messages posted and never waited on: {open:?}"
    );
    done
}

/// Every rank's calls through one ring forward and backward at `cp`.
fn ring_calls(cp: usize, causal: bool) -> Vec<Vec<Call>> {
    let (heads, dim, len) = (2, 3, 4);
    let shape = AttnShape {
        batch: 1,
        n_head: heads,
        len,
        head_dim: dim,
    };
    let world = LocalWorld::new(cp, Duration::from_secs(30));
    let recorded = run_ranks(&world, |rank| -> Result<Vec<Call>, CommError> {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let group = Recording {
            inner: world.world_group(rank)?,
            calls: calls.clone(),
        };
        let kernels: Arc<dyn Kernels> = Arc::new(CpuKernels::new(Threads::single()));
        let ring = RingAttention::new(Arc::new(group), kernels, causal);
        let n = heads * len * dim;
        let (q, k, v, dout) = (uniform(1, n), uniform(2, n), uniform(3, n), uniform(4, n));
        let (mut out, mut lse) = (vec![0.0; n], vec![0.0; heads * len]);
        let (qv, kv, vv) = (h(&q), h(&k), h(&v));
        ring.forward(shape, qv, kv, vv, hm(&mut out), hm(&mut lse))
            .expect("forward");
        let (mut dq, mut dk, mut dv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let (ov, lv, dov) = (h(&out), h(&lse), h(&dout));
        let grads = (hm(&mut dq), hm(&mut dk), hm(&mut dv));
        ring.backward(shape, qv, kv, vv, ov, lv, dov, grads.0, grads.1, grads.2)
            .expect("backward");
        let calls = calls.lock().unwrap().clone();
        Ok(calls)
    });
    recorded.expect("the ring runs")
}

/// Sends to each peer and receives from each peer of one batch.
type Batch = (Vec<usize>, Vec<usize>);

/// The first batch whose sends to a peer are not that peer's receives in
/// its batch of the same index, described.
fn first_unpaired(per_rank: &[Vec<Batch>]) -> Option<String> {
    for (rank, mine) in per_rank.iter().enumerate() {
        for (b, (sends, _)) in mine.iter().enumerate() {
            for (peer, &sent) in sends.iter().enumerate() {
                let theirs = per_rank[peer].get(b).map_or(0, |(_, recvs)| recvs[rank]);
                if sent != theirs {
                    return Some(format!(
                        "rank {rank}'s batch {b} sends {sent} to rank {peer}, whose batch {b} \
                         receives {theirs} from it"
                    ));
                }
            }
        }
    }
    None
}

#[test]
fn p2p_batches_pair_up() {
    for cp in 2..=5 {
        for causal in [true, false] {
            let calls = ring_calls(cp, causal);
            let per_rank: Vec<_> = calls.iter().map(|c| batches(c, cp)).collect();
            if let Some(problem) = first_unpaired(&per_rank) {
                panic!("cp {cp}, causal {causal}: {problem}");
            }
        }
    }
}

#[test]
fn batching_at_the_first_send_would_not_pair_up() {
    // The rule the NCCL backend used to follow (run the queue once it holds
    // a send and a receive) breaks the pairing of the cp = 4 backward, and
    // the check above catches it.
    let eager = |calls: &[Call]| {
        let (mut out, mut sends, mut recvs) = (Vec::new(), 0, 0);
        for &call in calls {
            out.push(call);
            match call {
                Call::Send(_) => sends += 1,
                Call::Recv(_) => recvs += 1,
                Call::Wait => (sends, recvs) = (0, 0),
            }
            if sends > 0 && recvs > 0 {
                out.push(Call::Wait);
                (sends, recvs) = (0, 0);
            }
        }
        out
    };
    let calls = ring_calls(4, true);
    let per_rank: Vec<_> = calls.iter().map(|c| batches(&eager(c), 4)).collect();
    assert!(first_unpaired(&per_rank).is_some());
}
