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
    /// Every rank, in global rank order: gathering traces and phase profiles.
    pub world: Arc<dyn ProcessGroup>,
}

impl RankGroups {
    /// Global rank `rank`'s groups. Every rank creates them in the same order
    /// (CP, DP×CP, TP, then the world), as backends that build communicators
    /// collectively need.
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
            world: backend.group("world", &(0..grid.world_size()).collect::<Vec<_>>(), rank)?,
        })
    }

    /// The traffic of the three groups so far.
    pub fn traffic(&self) -> Traffic {
        let (tp, cp, dp_cp) = (self.tp.stats(), self.cp.stats(), self.dp_cp.stats());
        let wait = |s: &CommStats| s.wait.as_secs_f64();
        Traffic {
            tp_bytes: tp.bytes_sent,
            cp_bytes: cp.bytes_sent,
            dp_cp_bytes: dp_cp.bytes_sent,
            wait_s: wait(&tp) + wait(&cp) + wait(&dp_cp),
        }
    }
}

/// What a rank's groups sent, per group, and how long it waited on them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Traffic {
    /// Bytes sent in the TP group (the model's TP sums, the loss's merge).
    pub tp_bytes: u64,
    /// Bytes sent in the CP group (attention's exchanges).
    pub cp_bytes: u64,
    /// Bytes sent in the DP×CP group (gradients, loss and token counts).
    pub dp_cp_bytes: u64,
    /// Seconds waited on all three.
    pub wait_s: f64,
}

impl Traffic {
    /// Bytes sent in all three groups.
    pub fn bytes(&self) -> u64 {
        self.tp_bytes + self.cp_bytes + self.dp_cp_bytes
    }

    /// The traffic since `before` (an earlier reading of the same groups).
    pub fn since(&self, before: &Traffic) -> Traffic {
        Traffic {
            tp_bytes: self.tp_bytes - before.tp_bytes,
            cp_bytes: self.cp_bytes - before.cp_bytes,
            dp_cp_bytes: self.dp_cp_bytes - before.dp_cp_bytes,
            wait_s: self.wait_s - before.wait_s,
        }
    }
}
