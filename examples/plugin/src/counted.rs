//! `parallel.cp_comm = "counted"`: the built-in ring attention with every
//! call counted, at any `parallel.cp` (whole-sequence attention at cp = 1,
//! as the built-ins). Shows an attention strategy from outside the trainer
//! and a decorator around a built-in; the count is a process-level component
//! that the [`tsv`](crate::tsv) sink reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use appctx::{Scope, component, on_property};
use cptrain::attention::{Attention, AttentionError, AttnShape, BuiltinStrategy, QkvLayout};
use cptrain::components::RANK_SCOPE;
use cptrain::device::{Slice, SliceMut};
use cptrain::kernels::{Kernels, QkvProjection};
use cptrain::train::RankGroups;

/// Attention calls (forward and backward) of every rank of this process.
#[derive(Debug, Default)]
pub struct AttentionCalls(AtomicU64);

impl AttentionCalls {
    /// Calls so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add_one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// One counter per process (the process context), shared by its ranks;
/// there when the `counted` strategy is chosen.
fn attention_calls() -> Arc<AttentionCalls> {
    Arc::new(AttentionCalls::default())
}
component!(
    attention_calls,
    when = on_property("parallel.cp_comm", "counted")
);

/// An attention that counts its calls and hands them to another.
pub struct Counted {
    inner: Arc<dyn Attention>,
    calls: Arc<AttentionCalls>,
}

impl Attention for Counted {
    fn name(&self) -> &str {
        "counted"
    }

    fn qkv_layout(&self) -> QkvLayout {
        self.inner.qkv_layout()
    }

    fn forward_packed(
        &self,
        shape: AttnShape,
        qkv: QkvProjection<'_>,
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        self.calls.add_one();
        self.inner.forward_packed(shape, qkv, out, lse)
    }

    fn backward_packed(
        &self,
        shape: AttnShape,
        qkv: QkvProjection<'_>,
        out: Slice<'_>,
        lse: Slice<'_>,
        dout: Slice<'_>,
        dqkv: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        self.calls.add_one();
        self.inner.backward_packed(shape, qkv, out, lse, dout, dqkv)
    }

    fn forward(
        &self,
        shape: AttnShape,
        q: Slice<'_>,
        k: Slice<'_>,
        v: Slice<'_>,
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        self.calls.add_one();
        self.inner.forward(shape, q, k, v, out, lse)
    }

    fn backward(
        &self,
        shape: AttnShape,
        q: Slice<'_>,
        k: Slice<'_>,
        v: Slice<'_>,
        out: Slice<'_>,
        lse: Slice<'_>,
        dout: Slice<'_>,
        dq: SliceMut<'_>,
        dk: SliceMut<'_>,
        dv: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        self.calls.add_one();
        self.inner
            .backward(shape, q, k, v, out, lse, dout, dq, dk, dv)
    }
}

/// The component, one per rank context: chosen when `parallel.cp_comm =
/// "counted"`, at any `parallel.cp`.
fn counted(
    groups: Arc<RankGroups>,
    kernels: Arc<dyn Kernels>,
    calls: Arc<AttentionCalls>,
) -> Arc<dyn Attention> {
    let inner = BuiltinStrategy::P2p.build(groups.cp.clone(), kernels);
    Arc::new(Counted { inner, calls })
}
component!(
    counted,
    select = "parallel.cp_comm",
    scope = Scope::named(RANK_SCOPE)
);
