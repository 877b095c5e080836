use std::sync::Arc;

use crate::parallel::{Backend, CommError, CommStats, GroupKind, ParallelGrid, ProcessGroup};

/// The process groups one rank trains with.
pub struct RankGroups {
    /// The rank's context-parallel group (attention talks here).
    pub cp: Arc<dyn ProcessGroup>,
    /// The data × context-parallel group: gradients, losses and token counts
    /// are summed here (every rank of it holds the same weights).
    pub dp_cp: Arc<dyn ProcessGroup>,
    /// The tensor-parallel group: the model's TP sums, the vocabulary-parallel
    /// loss, the gradient norm's shares, and gathering checkpoints.
    pub tp: Arc<dyn ProcessGroup>,
}

impl RankGroups {
    /// Global rank `rank`'s groups. Every rank creates them in the same order
    /// (CP, DP×CP, then TP), as backends that build communicators collectively
    /// need.
    pub fn new(backend: &dyn Backend, grid: &ParallelGrid, rank: usize) -> Result<Self, CommError> {
        let group = |kind: GroupKind| {
            let members = grid.group(kind, rank);
            let name = format!("{}{members:?}", kind.name());
            backend.group(&name, &members, rank)
        };
        Ok(RankGroups {
            cp: group(GroupKind::Cp)?,
            dp_cp: group(GroupKind::DpCp)?,
            tp: group(GroupKind::Tp)?,
        })
    }

    /// Bytes sent and seconds waited by all three groups so far.
    pub fn stats(&self) -> (u64, f64) {
        [&self.cp, &self.dp_cp, &self.tp]
            .iter()
            .map(|g| g.stats())
            .fold((0, 0.0), |(bytes, wait), s: CommStats| {
                (bytes + s.bytes_sent, wait + s.wait.as_secs_f64())
            })
    }
}
