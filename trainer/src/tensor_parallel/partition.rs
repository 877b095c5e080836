use std::ops::Range;

use super::{TpError, VocabSplit};

/// How one Hugging Face GPT-2 tensor is divided over a TP group
/// (Megatron-LM's scheme). Tensors are seen as matrices `[rows, cols]`
/// (a 1-D tensor is one row), weights in Conv1D's `[in, out]` layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partition {
    /// Every rank holds the whole tensor: `wpe`, the LayerNorms, and the
    /// biases of the row-parallel layers (added once, after the reduction).
    Replicated,
    /// `attn.c_attn` (weight and bias): column-parallel by heads. The `3C`
    /// columns are the q, k and v bands; rank `t` owns the columns of heads
    /// `t·H/tp .. (t+1)·H/tp` in each band (three column ranges).
    QkvColumns,
    /// `mlp.c_fc` (weight and bias): column-parallel, rank `t` owns the
    /// hidden units `t·4C/tp .. (t+1)·4C/tp`.
    Columns,
    /// `attn.c_proj.weight` and `mlp.c_proj.weight`: row-parallel, rank `t`
    /// owns the input rows of its heads / hidden units.
    Rows,
    /// `wte`: vocabulary-parallel, rank `t` owns the rows of
    /// [`VocabSplit::rows`].
    VocabRows,
}

/// The pieces of a full tensor one rank holds: the local tensor is the full
/// matrix restricted to `rows` × `cols` (ranges concatenated in order),
/// followed by `padding_rows` zero rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bands {
    /// Row ranges of the full matrix, in local order.
    pub rows: Vec<Range<usize>>,
    /// Column ranges of the full matrix, in local order.
    pub cols: Vec<Range<usize>>,
    /// Zero rows after the copied ones (vocabulary padding).
    pub padding_rows: usize,
}

impl Partition {
    /// The rule for the tensor called `name` in
    /// [`ParamLayout::gpt2`](crate::model::ParamLayout::gpt2).
    pub fn of(name: &str) -> Result<Self, TpError> {
        let within_block = name
            .strip_prefix("transformer.h.")
            .and_then(|rest| rest.split_once('.'))
            .map(|(_, tensor)| tensor);
        let partition = match within_block {
            Some("attn.c_attn.weight" | "attn.c_attn.bias") => Partition::QkvColumns,
            Some("mlp.c_fc.weight" | "mlp.c_fc.bias") => Partition::Columns,
            Some("attn.c_proj.weight" | "mlp.c_proj.weight") => Partition::Rows,
            Some(
                "ln_1.weight" | "ln_1.bias" | "ln_2.weight" | "ln_2.bias" | "attn.c_proj.bias"
                | "mlp.c_proj.bias",
            ) => Partition::Replicated,
            Some(_) => return Err(TpError::UnknownTensor { name: name.into() }),
            None => match name {
                "transformer.wte.weight" => Partition::VocabRows,
                "transformer.wpe.weight" | "transformer.ln_f.weight" | "transformer.ln_f.bias" => {
                    Partition::Replicated
                }
                _ => return Err(TpError::UnknownTensor { name: name.into() }),
            },
        };
        Ok(partition)
    }

    /// Whether every rank holds the whole tensor.
    pub fn is_replicated(self) -> bool {
        self == Partition::Replicated
    }

    /// The pieces of a full `[rows, cols]` matrix that rank `rank` of `tp`
    /// holds. The caller has checked that the split dimensions divide by
    /// `tp` ([`TpSharding::new`](super::TpSharding::new)).
    pub fn bands(
        self,
        [rows, cols]: [usize; 2],
        tp: usize,
        rank: usize,
        vocab: &VocabSplit,
    ) -> Bands {
        let block = |n: usize| rank * n / tp..(rank + 1) * n / tp;
        let (all_rows, all_cols) = (one_band(0..rows), one_band(0..cols));
        let (rows, cols, padding_rows) = match self {
            Partition::Replicated => (all_rows, all_cols, 0),
            Partition::QkvColumns => {
                let band = cols / 3;
                let per_band = block(band);
                let cols = (0..3)
                    .map(|j| j * band + per_band.start..j * band + per_band.end)
                    .collect();
                (all_rows, cols, 0)
            }
            Partition::Columns => (all_rows, one_band(block(cols)), 0),
            Partition::Rows => (one_band(block(rows)), all_cols, 0),
            Partition::VocabRows => (
                one_band(vocab.real_rows(rank)),
                all_cols,
                vocab.padding_rows(rank),
            ),
        };
        Bands {
            rows: rows.into_iter().filter(|r| !r.is_empty()).collect(),
            cols,
            padding_rows,
        }
    }
}

/// A list of bands holding the one band `range`.
fn one_band(range: Range<usize>) -> Vec<Range<usize>> {
    vec![range]
}
