use std::sync::Arc;

use crate::parallel::{Backend, CommError, CommStats, GroupKind, ParallelGrid, ProcessGroup};

/// The process groups one rank trains with.
pub struct RankGroups {
    /// The rank's context-parallel group (attention talks here).
    pub cp: Arc<dyn ProcessGroup>,
    /// The data × context-parallel group: gradients, losses and token counts
    /// are summed here (every rank of it holds the same weights).
    pub dp_cp: Arc<dyn ProcessGroup>,
}

impl RankGroups {
    /// Global rank `rank`'s groups. Every rank creates them in the same order
    /// (CP, then DP×CP), as backends that build communicators collectively need.
    pub fn new(backend: &dyn Backend, grid: &ParallelGrid, rank: usize) -> Result<Self, CommError> {
        let group = |kind: GroupKind| {
            let members = grid.group(kind, rank);
            let name = format!("{}{members:?}", kind.name());
            backend.group(&name, &members, rank)
        };
        Ok(RankGroups {
            cp: group(GroupKind::Cp)?,
            dp_cp: group(GroupKind::DpCp)?,
        })
    }

    /// Traffic of both groups so far.
    pub fn stats(&self) -> (u64, f64) {
        let total = |s: CommStats| (s.bytes_sent, s.wait.as_secs_f64());
        let (a, wa) = total(self.cp.stats());
        let (b, wb) = total(self.dp_cp.stats());
        (a + b, wa + wb)
    }
}
