use super::{DataError, DataSource, IGNORE_TARGET, Split, SyntheticTask};

/// Sequences in the validation split of a synthetic task, which bounds
/// `train.eval_batches · train.batch_size`.
pub const SYNTHETIC_VAL_WINDOWS: usize = 1 << 16;

/// Windows generated on the fly, deterministic in (seed, split, window).
///
/// Each sequence has a random first half `a` of `h = T/2` tokens and a second
/// half derived from it: `a` again for `copy`, `a` reversed for `reverse`.
/// Only targets that the first half determines count in the loss; the
/// targets inside the random first half are `IGNORE_TARGET`, so a model that
/// has learned the task reaches a loss near zero.
#[derive(Clone, Debug)]
pub struct SyntheticSource {
    task: SyntheticTask,
    seq_len: usize,
    symbols: usize,
    seed: u64,
}

impl SyntheticSource {
    /// A task over sequences of `seq_len` tokens with ids in `0..symbols`.
    pub fn new(
        task: SyntheticTask,
        seq_len: usize,
        symbols: usize,
        seed: u64,
    ) -> Result<Self, DataError> {
        if seq_len < 2 || !seq_len.is_multiple_of(2) {
            return Err(DataError::SyntheticSeqLen {
                task: task_name(task),
                seq_len,
            });
        }
        assert!(symbols > 0, "synthetic symbols must be positive");
        Ok(SyntheticSource {
            task,
            seq_len,
            symbols,
            seed,
        })
    }

    /// The `T + 1` tokens of a window: the first half `a`, then its transform
    /// (`copy` continues periodically, so token `T` is `a[0]`).
    fn tokens(&self, split: Split, window: usize) -> Vec<u32> {
        let h = self.seq_len / 2;
        let split_tag = match split {
            Split::Train => 0x7472_6169_6e00_0000,
            Split::Val => 0x7661_6c00_0000_0000,
        };
        let mut rng =
            SplitMix64(self.seed ^ split_tag ^ (window as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let first: Vec<u32> = (0..h)
            .map(|_| (rng.next() % self.symbols as u64) as u32)
            .collect();
        (0..=self.seq_len)
            .map(|i| match (self.task, i < h) {
                (_, true) => first[i],
                (SyntheticTask::Copy, false) => first[(i - h) % h],
                // Token T has no counterpart; its target is ignored below.
                (SyntheticTask::Reverse, false) => first[(2 * h - 1).saturating_sub(i)],
            })
            .collect()
    }

    /// Whether the target of input position `t` follows from the first half.
    fn predictable(&self, t: usize) -> bool {
        let h = self.seq_len / 2;
        match self.task {
            SyntheticTask::Copy => t + 1 >= h,
            SyntheticTask::Reverse => t + 1 >= h && t + 1 < self.seq_len,
        }
    }
}

fn task_name(task: SyntheticTask) -> &'static str {
    match task {
        SyntheticTask::Copy => "copy",
        SyntheticTask::Reverse => "reverse",
    }
}

impl DataSource for SyntheticSource {
    fn describe(&self) -> String {
        format!(
            "synthetic {} task: sequences of {} tokens over {} symbols, seed {}",
            task_name(self.task),
            self.seq_len,
            self.symbols,
            self.seed
        )
    }

    fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Training is unbounded in practice (every step sees fresh sequences);
    /// validation is a fixed held-out set of [`SYNTHETIC_VAL_WINDOWS`].
    fn num_windows(&self, split: Split) -> usize {
        match split {
            Split::Train => usize::MAX,
            Split::Val => SYNTHETIC_VAL_WINDOWS,
        }
    }

    fn read_window(
        &self,
        split: Split,
        window: usize,
        inputs: &mut [u32],
        targets: &mut [u32],
    ) -> Result<(), DataError> {
        let tokens = self.tokens(split, window);
        inputs.copy_from_slice(&tokens[..self.seq_len]);
        for (t, target) in targets.iter_mut().enumerate() {
            *target = if self.predictable(t) {
                tokens[t + 1]
            } else {
                IGNORE_TARGET
            };
        }
        Ok(())
    }
}

/// Steele, Lea and Flood's SplitMix64: a tiny, well-mixed generator whose
/// output is fixed forever, so synthetic data never changes between versions.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(task: SyntheticTask, split: Split, w: usize) -> (Vec<u32>, Vec<u32>) {
        let source = SyntheticSource::new(task, 8, 5, 7).unwrap();
        let (mut inputs, mut targets) = (vec![0; 8], vec![0; 8]);
        source
            .read_window(split, w, &mut inputs, &mut targets)
            .unwrap();
        (inputs, targets)
    }

    /// T = 8, h = 4: inputs a0 a1 a2 a3 a0 a1 a2 a3; the targets of positions
    /// 0..2 are random (ignored), position 3 onward must copy: a0 a1 a2 a3 a0.
    #[test]
    fn copy_repeats_the_first_half_and_ignores_unpredictable_targets() {
        for w in 0..20 {
            let (x, y) = window(SyntheticTask::Copy, Split::Train, w);
            assert_eq!(x[4..], x[..4]);
            assert_eq!(y[..3], [IGNORE_TARGET; 3]);
            assert_eq!(y[3..], [x[0], x[1], x[2], x[3], x[0]]);
            assert!(x.iter().all(|&t| t < 5));
        }
    }

    #[test]
    fn reverse_mirrors_the_first_half() {
        let (x, y) = window(SyntheticTask::Reverse, Split::Train, 3);
        assert_eq!(x[4..], [x[3], x[2], x[1], x[0]]);
        assert_eq!(y[..3], [IGNORE_TARGET; 3]);
        assert_eq!(y[3..7], x[4..8]);
        assert_eq!(y[7], IGNORE_TARGET);
    }

    #[test]
    fn windows_are_deterministic_and_splits_differ() {
        assert_eq!(
            window(SyntheticTask::Copy, Split::Train, 9),
            window(SyntheticTask::Copy, Split::Train, 9)
        );
        let train: Vec<_> = (0..8)
            .map(|w| window(SyntheticTask::Copy, Split::Train, w).0)
            .collect();
        let val: Vec<_> = (0..8)
            .map(|w| window(SyntheticTask::Copy, Split::Val, w).0)
            .collect();
        assert_ne!(train, val);
        assert_ne!(train[0], train[1]);
    }

    #[test]
    fn odd_sequence_lengths_are_refused() {
        let err = SyntheticSource::new(SyntheticTask::Copy, 7, 5, 0).unwrap_err();
        assert!(err.to_string().contains("even model.seq_len"), "{err}");
    }
}
