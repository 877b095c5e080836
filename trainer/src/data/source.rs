/// Target value of a position that does not count in the loss.
pub const IGNORE_TARGET: u32 = u32::MAX;

/// Which part of the data a window comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Windows the model trains on.
    Train,
    /// Held-out windows for the evaluation loss.
    Val,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Val => "val",
        })
    }
}

/// A source of training windows: window `w` of a split covers `T + 1`
/// consecutive tokens, given as `T` inputs and the `T` targets that follow
/// them (`IGNORE_TARGET` where a target must not count in the loss).
///
/// Reading is `&self` so that every rank of a process can share one source.
pub trait DataSource: Send + Sync {
    /// One line saying what the data is, for logs and `cptrain check`.
    fn describe(&self) -> String;

    /// `T`, the tokens of one sequence.
    fn seq_len(&self) -> usize;

    /// How the train split's windows are ordered within an epoch (file
    /// order unless the source shuffles).
    fn order(&self) -> super::WindowOrder {
        super::WindowOrder::SEQUENTIAL
    }

    /// `W`, the number of windows of `split` (0 when the split is absent).
    fn num_windows(&self, split: Split) -> usize;

    /// Writes window `window` (`< num_windows(split)`) of `split` into
    /// `inputs` and `targets`, both of length `seq_len()`.
    fn read_window(
        &self,
        split: Split,
        window: usize,
        inputs: &mut [u32],
        targets: &mut [u32],
    ) -> Result<(), super::DataError>;
}
