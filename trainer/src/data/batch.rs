use super::{DataError, DataSource, IGNORE_TARGET, Split, WindowOrder};
use crate::parallel::{ZigzagError, zigzag_ranges};
use std::ops::Range;
use std::sync::Arc;

/// Where a rank sits in the data-parallel and context-parallel dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RankCoords {
    /// Data-parallel degree.
    pub dp: usize,
    /// This rank's index among the `dp` data-parallel replicas.
    pub dp_rank: usize,
    /// Context-parallel degree.
    pub cp: usize,
    /// This rank's index in its CP group.
    pub cp_rank: usize,
}

impl RankCoords {
    /// One rank: `(dp, cp) = (1, 1)`.
    pub fn single() -> Self {
        RankCoords {
            dp: 1,
            dp_rank: 0,
            cp: 1,
            cp_rank: 0,
        }
    }
}

/// A batch shape that does not split over the ranks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchPlanError {
    /// A size that must be positive is zero.
    #[error("train.{key} must be at least 1, got 0")]
    Zero {
        /// The offending key under `train`.
        key: &'static str,
    },
    /// The global batch does not split over the DP replicas.
    #[error(
        "train.batch_size = {batch_size} is not divisible by the data-parallel degree {dp}; \
         choose a batch_size that is a multiple of {dp}"
    )]
    BatchNotDivisible {
        /// `train.batch_size`.
        batch_size: usize,
        /// Data-parallel degree.
        dp: usize,
    },
    /// The per-rank batch does not split into micro-batches.
    #[error(
        "train.micro_batch_size = {micro} does not divide the per-rank batch {local} \
         (train.batch_size / dp); choose a divisor of {local}"
    )]
    MicroNotDivisible {
        /// `train.micro_batch_size`.
        micro: usize,
        /// `batch_size / dp`.
        local: usize,
    },
    /// The sequence does not split over the CP group.
    #[error(transparent)]
    Zigzag(#[from] ZigzagError),
}

/// Which sequences, windows and token positions one rank processes, per
/// the data contract (ARCHITECTURE.md): sequence `j` of step `s` is window `(s·B + j) mod W`;
/// DP rank `d` takes sequences `[d·B/dp, (d+1)·B/dp)` in micro-batches, in
/// order; CP rank `r` takes chunks `r` and `2·cp−1−r` of the `2·cp` chunks of
/// each sequence (inputs, targets and positions alike).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchPlan {
    seq_len: usize,
    batch_size: usize,
    micro_batch_size: usize,
    rank: RankCoords,
    chunks: [Range<usize>; 2],
}

impl BatchPlan {
    /// The plan for sequences of `seq_len` tokens, a global batch of
    /// `batch_size` sequences and micro-batches of `micro_batch_size` (unset:
    /// the whole per-rank batch), on the rank at `rank`.
    pub fn new(
        seq_len: usize,
        batch_size: usize,
        micro_batch_size: Option<usize>,
        rank: RankCoords,
    ) -> Result<Self, BatchPlanError> {
        assert!(
            rank.dp_rank < rank.dp && rank.cp_rank < rank.cp,
            "rank {rank:?} outside its grid"
        );
        if batch_size == 0 {
            return Err(BatchPlanError::Zero { key: "batch_size" });
        }
        if !batch_size.is_multiple_of(rank.dp) {
            return Err(BatchPlanError::BatchNotDivisible {
                batch_size,
                dp: rank.dp,
            });
        }
        let local = batch_size / rank.dp;
        let micro = micro_batch_size.unwrap_or(local);
        if micro == 0 {
            return Err(BatchPlanError::Zero {
                key: "micro_batch_size",
            });
        }
        if !local.is_multiple_of(micro) {
            return Err(BatchPlanError::MicroNotDivisible { micro, local });
        }
        let chunks = zigzag_ranges(seq_len, rank.cp, rank.cp_rank)?;
        Ok(BatchPlan {
            seq_len,
            batch_size,
            micro_batch_size: micro,
            rank,
            chunks,
        })
    }

    /// `T`, tokens of a whole sequence.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// `B`, sequences per optimizer step over all DP ranks.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Sequences per micro-batch.
    pub fn micro_batch_size(&self) -> usize {
        self.micro_batch_size
    }

    /// Micro-batches this rank runs per optimizer step (gradient accumulation).
    pub fn micro_batches_per_step(&self) -> usize {
        self.batch_size / self.rank.dp / self.micro_batch_size
    }

    /// `L = T / cp`, tokens of each sequence this rank holds.
    pub fn local_seq_len(&self) -> usize {
        self.seq_len / self.rank.cp
    }

    /// Global positions of this rank's tokens, in the order they are held.
    pub fn positions(&self) -> Vec<usize> {
        self.chunks.iter().flat_map(|c| c.clone()).collect()
    }

    /// Index `j < B` in the global batch of row `row` of micro-batch `micro`.
    pub fn sequence(&self, micro: usize, row: usize) -> usize {
        self.rank.dp_rank * (self.batch_size / self.rank.dp) + micro * self.micro_batch_size + row
    }

    /// Window of sequence `sequence` of step `step` in file order:
    /// `(s·B + j) mod W`.
    pub fn window(&self, step: u64, sequence: usize, windows: usize) -> usize {
        self.window_in(WindowOrder::SEQUENTIAL, step, sequence, windows)
    }

    /// Window of sequence `sequence` of step `step` under `order`: global
    /// sequence `s·B + j` (see [`WindowOrder`]).
    pub fn window_in(
        &self,
        order: WindowOrder,
        step: u64,
        sequence: usize,
        windows: usize,
    ) -> usize {
        let index = step as u128 * self.batch_size as u128 + sequence as u128;
        order.window(index, windows)
    }

    /// Tokens (inputs) per optimizer step over all ranks: `B·T`.
    pub fn tokens_per_step(&self) -> u64 {
        (self.batch_size * self.seq_len) as u64
    }
}

/// One rank's micro-batch: `tokens` and `targets` are `[mb × L]` row-major
/// (`IGNORE_TARGET` marks targets outside the loss); `positions` are the
/// global positions `[L]` of the columns, shared by every row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MicroBatch {
    /// Input token ids.
    pub tokens: Vec<u32>,
    /// Next-token targets.
    pub targets: Vec<u32>,
    /// Global position of each column.
    pub positions: Vec<usize>,
}

impl MicroBatch {
    /// Targets that count in the loss.
    pub fn target_count(&self) -> usize {
        self.targets.iter().filter(|&&t| t != IGNORE_TARGET).count()
    }
}

/// Fills a rank's micro-batches from a data source, following a [`BatchPlan`].
pub struct BatchBuilder {
    plan: BatchPlan,
    source: Arc<dyn DataSource>,
    inputs: Vec<u32>,
    targets: Vec<u32>,
}

impl BatchBuilder {
    /// A builder reading `source` under `plan`; their sequence lengths must agree.
    pub fn new(plan: BatchPlan, source: Arc<dyn DataSource>) -> Result<Self, DataError> {
        if source.seq_len() != plan.seq_len {
            return Err(DataError::SeqLenMismatch {
                source_len: source.seq_len(),
                plan_len: plan.seq_len,
            });
        }
        let seq_len = plan.seq_len;
        Ok(BatchBuilder {
            plan,
            source,
            inputs: vec![0; seq_len],
            targets: vec![0; seq_len],
        })
    }

    /// The plan this builder follows.
    pub fn plan(&self) -> &BatchPlan {
        &self.plan
    }

    /// The data source it reads.
    pub fn source(&self) -> &Arc<dyn DataSource> {
        &self.source
    }

    /// An empty micro-batch of the right size, to be reused with [`Self::fill`].
    pub fn new_micro_batch(&self) -> MicroBatch {
        let cells = self.plan.micro_batch_size * self.plan.local_seq_len();
        MicroBatch {
            tokens: vec![0; cells],
            targets: vec![0; cells],
            positions: self.plan.positions(),
        }
    }

    /// Writes micro-batch `micro` of step `step` of `split` into `out`. For
    /// evaluation, "step" `e` of the val split is the fixed val batch `e`.
    pub fn fill(
        &mut self,
        split: Split,
        step: u64,
        micro: usize,
        out: &mut MicroBatch,
    ) -> Result<(), DataError> {
        assert!(
            micro < self.plan.micro_batches_per_step(),
            "micro-batch {micro} out of range"
        );
        let windows = self.source.num_windows(split);
        if windows == 0 {
            return Err(DataError::EmptySplit { split });
        }
        let local = self.plan.local_seq_len();
        out.tokens.resize(self.plan.micro_batch_size * local, 0);
        out.targets.resize(self.plan.micro_batch_size * local, 0);
        out.positions.clear();
        out.positions
            .extend(self.plan.chunks.iter().flat_map(|c| c.clone()));
        let rows = out
            .tokens
            .chunks_mut(local)
            .zip(out.targets.chunks_mut(local));
        // Validation batches are fixed: always in file order.
        let order = match split {
            Split::Train => self.source.order(),
            Split::Val => WindowOrder::SEQUENTIAL,
        };
        for (row, (tokens, targets)) in rows.enumerate() {
            let sequence = self.plan.sequence(micro, row);
            let window = self.plan.window_in(order, step, sequence, windows);
            self.source
                .read_window(split, window, &mut self.inputs, &mut self.targets)?;
            let mut column = 0;
            for chunk in &self.plan.chunks {
                let width = chunk.len();
                tokens[column..column + width].copy_from_slice(&self.inputs[chunk.clone()]);
                targets[column..column + width].copy_from_slice(&self.targets[chunk.clone()]);
                column += width;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The windows of a token file holding ids 0, 1, …, N−1: window w's
    /// inputs are `wT .. wT+T` and its targets `wT+1 ..= wT+T`, so every value
    /// in a batch reveals where it came from.
    struct Counting {
        seq_len: usize,
        tokens: usize,
    }

    impl DataSource for Counting {
        fn describe(&self) -> String {
            "counting".into()
        }
        fn seq_len(&self) -> usize {
            self.seq_len
        }
        fn num_windows(&self, _: Split) -> usize {
            (self.tokens - 1) / self.seq_len
        }
        fn read_window(
            &self,
            _: Split,
            w: usize,
            inputs: &mut [u32],
            targets: &mut [u32],
        ) -> Result<(), DataError> {
            for t in 0..self.seq_len {
                inputs[t] = (w * self.seq_len + t) as u32;
                targets[t] = inputs[t] + 1;
            }
            Ok(())
        }
    }

    fn builder(
        tokens: usize,
        seq_len: usize,
        batch: usize,
        micro: Option<usize>,
        rank: RankCoords,
    ) -> BatchBuilder {
        let plan = BatchPlan::new(seq_len, batch, micro, rank).unwrap();
        BatchBuilder::new(plan, Arc::new(Counting { seq_len, tokens })).unwrap()
    }

    /// First input token of each row, divided by T: the window of each row.
    fn windows_of(batch: &MicroBatch, seq_len: usize, local: usize) -> Vec<u32> {
        batch
            .tokens
            .chunks(local)
            .map(|row| row[0] / seq_len as u32)
            .collect()
    }

    /// N = 20, T = 4: W = 4. With B = 3, step 0 takes windows 0,1,2 and step 1
    /// takes windows 3,0,1 (3·1+0 = 3, 4 mod 4 = 0, 5 mod 4 = 1).
    #[test]
    fn sequences_take_windows_modulo_w() {
        let mut b = builder(20, 4, 3, None, RankCoords::single());
        let mut batch = b.new_micro_batch();
        let cases = [(0, vec![0, 1, 2]), (1, vec![3, 0, 1]), (2, vec![2, 3, 0])];
        for (step, want) in cases {
            b.fill(Split::Train, step, 0, &mut batch).unwrap();
            assert_eq!(windows_of(&batch, 4, 4), want, "step {step}");
        }
        b.fill(Split::Train, 1, 0, &mut batch).unwrap();
        assert_eq!(batch.tokens[..4], [12, 13, 14, 15]);
        assert_eq!(batch.targets[..4], [13, 14, 15, 16]);
        assert_eq!(batch.positions, [0, 1, 2, 3]);
    }

    /// B = 8, dp = 2, mb = 2, W = 100, step 3: the global sequences are
    /// windows 24..32; DP rank 1 holds sequences 4..8 = windows 28..32, in two
    /// micro-batches [28, 29] and [30, 31].
    #[test]
    fn data_parallel_ranks_take_consecutive_sequences_in_micro_batches() {
        let rank = RankCoords {
            dp: 2,
            dp_rank: 1,
            cp: 1,
            cp_rank: 0,
        };
        let mut b = builder(401, 4, 8, Some(2), rank);
        assert_eq!(b.plan().micro_batches_per_step(), 2);
        let mut batch = b.new_micro_batch();
        for (micro, want) in [(0, [28, 29]), (1, [30, 31])] {
            b.fill(Split::Train, 3, micro, &mut batch).unwrap();
            assert_eq!(windows_of(&batch, 4, 4), want);
        }
    }

    /// T = 8, cp = 2, window 1 (tokens 8..17): rank 0 holds chunks 0 and 3
    /// (positions 0,1,6,7), rank 1 chunks 1 and 2 (positions 2..6).
    #[test]
    fn context_parallel_ranks_take_zigzag_chunks_with_global_positions() {
        let cases = [
            (0, [0, 1, 6, 7], [8, 9, 14, 15], [9, 10, 15, 16]),
            (1, [2, 3, 4, 5], [10, 11, 12, 13], [11, 12, 13, 14]),
        ];
        for (cp_rank, positions, tokens, targets) in cases {
            let rank = RankCoords {
                dp: 1,
                dp_rank: 0,
                cp: 2,
                cp_rank,
            };
            let mut b = builder(100, 8, 2, Some(1), rank);
            let mut batch = b.new_micro_batch();
            b.fill(Split::Train, 0, 1, &mut batch).unwrap();
            assert_eq!(batch.positions, positions);
            assert_eq!(batch.tokens, tokens);
            assert_eq!(batch.targets, targets);
        }
    }

    /// Over every (dp_rank, cp_rank, micro-batch), the ranks together hold
    /// each (sequence, position) of the global batch exactly once, with the
    /// token that the single-rank batch has there.
    #[test]
    fn all_ranks_together_hold_the_single_rank_batch_once() {
        let (seq_len, batch_size, tokens) = (12, 6, 200);
        for (dp, cp, micro) in [(1, 1, 6), (2, 1, 1), (3, 2, 1), (1, 3, 3), (2, 3, 3)] {
            let mut reference = builder(tokens, seq_len, batch_size, None, RankCoords::single());
            let mut whole = reference.new_micro_batch();
            reference.fill(Split::Train, 5, 0, &mut whole).unwrap();
            let mut seen = vec![0; batch_size * seq_len];
            for dp_rank in 0..dp {
                for cp_rank in 0..cp {
                    let mut b = builder(
                        tokens,
                        seq_len,
                        batch_size,
                        Some(micro),
                        RankCoords {
                            dp,
                            dp_rank,
                            cp,
                            cp_rank,
                        },
                    );
                    let mut batch = b.new_micro_batch();
                    for m in 0..b.plan().micro_batches_per_step() {
                        b.fill(Split::Train, 5, m, &mut batch).unwrap();
                        let local = b.plan().local_seq_len();
                        for row in 0..micro {
                            let j = b.plan().sequence(m, row);
                            for (col, &pos) in batch.positions.iter().enumerate() {
                                seen[j * seq_len + pos] += 1;
                                assert_eq!(
                                    batch.tokens[row * local + col],
                                    whole.tokens[j * seq_len + pos]
                                );
                                assert_eq!(
                                    batch.targets[row * local + col],
                                    whole.targets[j * seq_len + pos]
                                );
                            }
                        }
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "dp {dp} cp {cp}");
        }
    }

    #[test]
    fn batch_shapes_that_do_not_split_are_explained() {
        let cases = [
            (
                8,
                6,
                None,
                RankCoords {
                    dp: 4,
                    dp_rank: 0,
                    cp: 1,
                    cp_rank: 0,
                },
                "train.batch_size = 6 is not divisible",
            ),
            (
                8,
                6,
                Some(4),
                RankCoords::single(),
                "train.micro_batch_size = 4 does not divide the per-rank batch 6",
            ),
            (
                8,
                6,
                Some(0),
                RankCoords::single(),
                "train.micro_batch_size must be at least 1",
            ),
            (
                8,
                0,
                None,
                RankCoords::single(),
                "train.batch_size must be at least 1",
            ),
            (
                10,
                6,
                None,
                RankCoords {
                    dp: 1,
                    dp_rank: 0,
                    cp: 2,
                    cp_rank: 1,
                },
                "multiple of 4",
            ),
        ];
        for (seq_len, batch, micro, rank, fragment) in cases {
            let err = BatchPlan::new(seq_len, batch, micro, rank)
                .unwrap_err()
                .to_string();
            assert!(err.contains(fragment), "{err}");
        }
    }

    #[test]
    fn an_empty_split_is_an_error_not_a_division_by_zero() {
        let mut b = builder(3, 4, 1, None, RankCoords::single());
        let mut batch = b.new_micro_batch();
        let err = b.fill(Split::Val, 0, 0, &mut batch).unwrap_err();
        assert!(
            err.to_string().contains("the val split has no windows"),
            "{err}"
        );
    }
}
