use serde::{Deserialize, Serialize};

use super::GridSpec;

/// The `[parallel]` section: how many ranks, how they are grouped, how they talk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParallelConfig {
    /// Communication backend: `local` (ranks are threads of this process);
    /// `mpi` and `nccl` with the plugins built in.
    pub backend: String,
    /// Total number of ranks.
    pub world_size: usize,
    /// Tensor-parallel size.
    pub tp: usize,
    /// With `tp > 1`: split the residual stream's rows (LayerNorms, residual
    /// adds) over the TP group between its matrix products (sequence
    /// parallelism, Korthikanti et al. 2022).
    pub sequence_parallel: bool,
    /// Context-parallel size: each sequence is split over this many ranks.
    pub cp: usize,
    /// Data-parallel size; 0 derives it as `world_size / (tp·cp)`.
    pub dp: usize,
    /// CP attention strategy: `p2p` (ring), `all_gather` or `a2a` (Ulysses).
    pub cp_comm: String,
    /// Rank order of the grid axes, fastest first (Megatron's `tp-cp-dp`).
    pub order: String,
    /// Seconds any collective may wait before the run stops with an error.
    pub timeout_s: f64,
}

impl Default for ParallelConfig {
    fn default() -> Self {
        ParallelConfig {
            backend: "local".into(),
            world_size: 1,
            tp: 1,
            sequence_parallel: true,
            cp: 1,
            dp: 0,
            cp_comm: "p2p".into(),
            order: GridSpec::DEFAULT_ORDER.into(),
            timeout_s: 300.0,
        }
    }
}

impl ParallelConfig {
    /// The grid sizes this section asks for.
    pub fn grid_spec(&self) -> GridSpec {
        GridSpec {
            world_size: self.world_size,
            tp: self.tp,
            cp: self.cp,
            dp: self.dp,
            pp: 1,
            order: self.order.clone(),
        }
    }

    /// Ranks one process runs: all of them with the `local` backend (ranks
    /// are threads), one with the others (`mpi`, `nccl`: a process per rank).
    pub fn ranks_per_process(&self) -> usize {
        if self.backend == "local" {
            self.world_size
        } else {
            1
        }
    }

    /// Processes of the job.
    pub fn processes(&self) -> usize {
        self.world_size / self.ranks_per_process().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The local backend runs every rank in one process; the others run a
    /// process per rank (the measured CPU peak counts each process).
    #[test]
    fn ranks_per_process_follow_the_backend() {
        let parallel = |backend: &str| ParallelConfig {
            backend: backend.into(),
            world_size: 4,
            ..ParallelConfig::default()
        };
        assert_eq!(parallel("local").ranks_per_process(), 4);
        assert_eq!(parallel("local").processes(), 1);
        assert_eq!(parallel("mpi").ranks_per_process(), 1);
        assert_eq!(parallel("mpi").processes(), 4);
    }
}
