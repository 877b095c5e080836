use std::ops::Range;

use super::{Bands, Partition, TpError, VocabSplit};
use crate::model::{ParamLayout, ParamSpec};

/// One local tensor of a TP rank and where its values come from in the full
/// Hugging Face tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorShard {
    /// The full tensor: Hugging Face name and shape, offset in the full
    /// ([`ParamLayout::gpt2`]) buffer.
    pub full: ParamSpec,
    /// How the full tensor is divided.
    pub partition: Partition,
    /// The pieces this rank holds.
    pub bands: Bands,
}

/// `[rows, cols]` of a tensor seen as a matrix: its last dimension is the
/// columns, the others the rows (a 1-D tensor is one row).
fn matrix_dims(shape: &[usize]) -> [usize; 2] {
    match shape.split_last() {
        Some((cols, rows)) => [rows.iter().product(), *cols],
        None => [1, 1],
    }
}

impl TensorShard {
    fn new(full: &ParamSpec, tp: usize, rank: usize, vocab: &VocabSplit) -> Result<Self, TpError> {
        let partition = Partition::of(&full.name)?;
        let bands = partition.bands(matrix_dims(&full.shape), tp, rank, vocab);
        Ok(TensorShard {
            full: full.clone(),
            partition,
            bands,
        })
    }

    /// The local tensor's spec: the full one with local shape and padding
    /// (its offset is set when the layout is packed).
    fn local_spec(&self) -> ParamSpec {
        let cols = self.bands.cols.iter().map(Range::len).sum();
        let rows: usize = self.bands.rows.iter().map(Range::len).sum();
        let shape = if self.full.shape.len() == 1 {
            vec![cols]
        } else {
            vec![rows + self.bands.padding_rows, cols]
        };
        ParamSpec {
            shape,
            padding_rows: self.bands.padding_rows,
            ..self.full.clone()
        }
    }

    /// Contiguous runs `(local, full)` of equal length, absolute in the
    /// local and the full flat buffers, for the local tensor at
    /// `local_offset`. A block of rows is one run when the columns are whole.
    fn runs(&self, local_offset: usize) -> Vec<(Range<usize>, Range<usize>)> {
        let full_width = matrix_dims(&self.full.shape)[1];
        let whole_rows = matches!(self.bands.cols.as_slice(), [cols] if *cols == (0..full_width));
        let mut runs = Vec::new();
        let mut local = local_offset;
        for rows in &self.bands.rows {
            if whole_rows {
                let full = self.full.offset + rows.start * full_width;
                let len = rows.len() * full_width;
                runs.push((local..local + len, full..full + len));
                local += len;
                continue;
            }
            for row in rows.clone() {
                for cols in &self.bands.cols {
                    let full = self.full.offset + row * full_width + cols.start;
                    runs.push((local..local + cols.len(), full..full + cols.len()));
                    local += cols.len();
                }
            }
        }
        runs
    }
}

/// What one TP rank holds: its local flat buffer's layout (local shapes, in
/// [`ParamLayout::gpt2`] order, weight-decay flags and padding rows kept)
/// and, tensor by tensor, where the values come from.
///
/// Parameters, gradients and both AdamW moments all use this local layout;
/// [`DecayMask::from_layout`](crate::optim::DecayMask::from_layout) on
/// [`Self::layout`] is the rank's decay mask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankShard {
    rank: usize,
    layout: ParamLayout,
    tensors: Vec<TensorShard>,
    full_len: usize,
}

impl RankShard {
    /// Rank `rank`'s shard of the full layout `full` over `tp` ranks.
    pub(super) fn new(
        full: &ParamLayout,
        tp: usize,
        rank: usize,
        vocab: &VocabSplit,
    ) -> Result<Self, TpError> {
        let tensors = full
            .specs()
            .iter()
            .map(|spec| TensorShard::new(spec, tp, rank, vocab))
            .collect::<Result<Vec<_>, _>>()?;
        let layout = ParamLayout::packed(tensors.iter().map(TensorShard::local_spec));
        Ok(RankShard {
            rank,
            layout,
            tensors,
            full_len: full.len(),
        })
    }

    /// The TP rank (0-based, within the TP group).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The local flat buffer's layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Where each local tensor comes from, in the order of
    /// [`Self::layout`]'s specs.
    pub fn tensors(&self) -> &[TensorShard] {
        &self.tensors
    }

    /// Length of the full ([`ParamLayout::gpt2`]) buffer.
    pub fn full_len(&self) -> usize {
        self.full_len
    }

    /// Every contiguous run `(local, full, replicated)` this rank holds:
    /// equal-length ranges of the local and the full flat buffers, and
    /// whether the tensor is replicated. Padding rows are in no run.
    pub fn runs(&self) -> impl Iterator<Item = (Range<usize>, Range<usize>, bool)> + '_ {
        self.layout
            .specs()
            .iter()
            .zip(&self.tensors)
            .flat_map(|(local, shard)| {
                let replicated = shard.partition.is_replicated();
                shard
                    .runs(local.offset)
                    .into_iter()
                    .map(move |(l, f)| (l, f, replicated))
            })
    }
}
