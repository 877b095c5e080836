//! The attention block kernel over `[slabs, rows, head_dim]` tensors, one
//! slab per (batch, head), in parallel over slabs on the rank's threads.
//!
//! A [`Rows`] selects the same row range in every slab, which is how the
//! context-parallel strategies address a half of the local sequence (e.g.
//! "q1 only" in a ring step) without copying.

use super::Threads;
use super::attention_block::{Mask, attention_block_backward, attention_block_forward};

/// Rows `start..start + count` of every slab of a buffer that holds
/// `per_slab` rows per slab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rows {
    /// Rows each slab has in the buffer.
    pub per_slab: usize,
    /// First selected row of each slab.
    pub start: usize,
    /// Selected rows per slab.
    pub count: usize,
}

impl Rows {
    /// All `len` rows of each slab.
    pub fn all(len: usize) -> Self {
        Rows {
            per_slab: len,
            start: 0,
            count: len,
        }
    }

    /// Elements of the selection inside one slab of `[per_slab, width]`.
    fn range(&self, width: usize) -> std::ops::Range<usize> {
        assert!(
            self.start + self.count <= self.per_slab,
            "row selection outside the slab"
        );
        self.start * width..(self.start + self.count) * width
    }
}

/// One batched call: `slabs` slabs of `head_dim`-wide rows, query rows
/// selected by `q_rows` and key/value rows by `kv_rows`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchedAttention {
    /// Number of (batch, head) slabs.
    pub slabs: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Rows of `q`, `out`, `lse`, `dout`, `dq` taking part.
    pub q_rows: Rows,
    /// Rows of `k`, `v`, `dk`, `dv` taking part.
    pub kv_rows: Rows,
    /// Score scale, usually `1/sqrt(head_dim)`.
    pub scale: f32,
    /// Mask inside each slab, relative to the selected rows.
    pub mask: Mask,
}

impl BatchedAttention {
    fn check(&self, name: &str, buf_len: usize, rows: Rows, width: usize) {
        assert_eq!(
            buf_len,
            self.slabs * rows.per_slab * width,
            "`{name}` is not [slabs, rows, width] for {self:?}"
        );
    }

    /// Forward over every slab: writes the selected rows of `out` and `lse`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        threads: &Threads,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        out: &mut [f32],
        lse: &mut [f32],
    ) {
        let (d, qr, kr) = (self.head_dim, self.q_rows, self.kv_rows);
        self.check("q", q.len(), qr, d);
        self.check("k", k.len(), kr, d);
        self.check("v", v.len(), kr, d);
        self.check("out", out.len(), qr, d);
        self.check("lse", lse.len(), qr, 1);
        if self.slabs == 0 {
            return;
        }
        let (q_slab, kv_slab) = (qr.per_slab * d, kr.per_slab * d);
        threads.for_each_chunk2(out, q_slab, lse, qr.per_slab, |s, out_s, lse_s| {
            let q_s = &q[s * q_slab..][qr.range(d)];
            let k_s = &k[s * kv_slab..][kr.range(d)];
            let v_s = &v[s * kv_slab..][kr.range(d)];
            attention_block_forward(
                q_s,
                k_s,
                v_s,
                d,
                self.scale,
                self.mask,
                &mut out_s[qr.range(d)],
                &mut lse_s[qr.range(1)],
            );
        });
    }

    /// Backward over every slab: ACCUMULATES into the selected rows of
    /// `dq`, `dk`, `dv`. `out` and `lse` are the final forward results.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        threads: &Threads,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        out: &[f32],
        lse: &[f32],
        dout: &[f32],
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
    ) {
        let (d, qr, kr) = (self.head_dim, self.q_rows, self.kv_rows);
        for (name, len) in [
            ("q", q.len()),
            ("out", out.len()),
            ("dout", dout.len()),
            ("dq", dq.len()),
        ] {
            self.check(name, len, qr, d);
        }
        for (name, len) in [
            ("k", k.len()),
            ("v", v.len()),
            ("dk", dk.len()),
            ("dv", dv.len()),
        ] {
            self.check(name, len, kr, d);
        }
        self.check("lse", lse.len(), qr, 1);
        if self.slabs == 0 {
            return;
        }
        let (q_slab, kv_slab) = (qr.per_slab * d, kr.per_slab * d);
        threads.for_each_chunk3(
            dq,
            q_slab,
            dk,
            kv_slab,
            dv,
            kv_slab,
            |s, dq_s, dk_s, dv_s| {
                let q_sel = offset(qr.range(d), s * q_slab);
                let kv_sel = offset(kr.range(d), s * kv_slab);
                attention_block_backward(
                    &q[q_sel.clone()],
                    &k[kv_sel.clone()],
                    &v[kv_sel],
                    &out[q_sel.clone()],
                    &lse[offset(qr.range(1), s * qr.per_slab)],
                    &dout[q_sel],
                    d,
                    self.scale,
                    self.mask,
                    &mut dq_s[qr.range(d)],
                    &mut dk_s[kr.range(d)],
                    &mut dv_s[kr.range(d)],
                );
            },
        );
    }
}

fn offset(r: std::ops::Range<usize>, by: usize) -> std::ops::Range<usize> {
    r.start + by..r.end + by
}

/// Merges a partial result `[slabs, acc_rows.count, head_dim]` (with lse
/// `[slabs, acc_rows.count]`) into the selected rows of an accumulator laid
/// out `[slabs, acc_rows.per_slab, head_dim]`.
pub fn merge_partial_rows(
    o_acc: &mut [f32],
    lse_acc: &mut [f32],
    acc_rows: Rows,
    o_part: &[f32],
    lse_part: &[f32],
    head_dim: usize,
) {
    let slab = acc_rows.per_slab * head_dim;
    let part_slab = acc_rows.count * head_dim;
    let slabs = lse_acc.len().checked_div(acc_rows.per_slab).unwrap_or(0);
    assert_eq!(
        o_acc.len(),
        slabs * slab,
        "accumulator is not [slabs, rows, head_dim]"
    );
    assert_eq!(
        o_part.len(),
        slabs * part_slab,
        "partial is not [slabs, count, head_dim]"
    );
    assert_eq!(
        lse_part.len(),
        slabs * acc_rows.count,
        "partial lse is not [slabs, count]"
    );
    for s in 0..slabs {
        super::merge_partial(
            &mut o_acc[s * slab..][acc_rows.range(head_dim)],
            &mut lse_acc[s * acc_rows.per_slab..][acc_rows.range(1)],
            &o_part[s * part_slab..(s + 1) * part_slab],
            &lse_part[s * acc_rows.count..(s + 1) * acc_rows.count],
        );
    }
}
