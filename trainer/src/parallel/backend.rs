use std::sync::Arc;
use std::time::Duration;

use super::{CommError, LocalWorld, ProcessGroup, run_ranks};

/// A boxed error from a rank's body.
pub type RankError = Box<dyn std::error::Error + Send + Sync>;

/// How ranks are started and how they reach each other: the `local` backend
/// runs every rank as a thread of this process; the `mpi` plugin runs one
/// rank per process.
pub trait Backend: Send + Sync {
    /// `parallel.backend` value that selects it.
    fn name(&self) -> &str;

    /// Ranks in the whole job.
    fn world_size(&self) -> usize;

    /// Global ranks that run in this process.
    fn local_ranks(&self) -> Vec<usize>;

    /// Runs `body(rank)` for every local rank, concurrently. When one rank
    /// fails the others are stopped (their pending collectives fail), and the
    /// first real failure is returned.
    fn launch(
        &self,
        body: &(dyn Fn(usize) -> Result<(), RankError> + Sync),
    ) -> Result<(), RankError>;

    /// Global rank `rank`'s handle on the group `name` of `members` (global
    /// ranks, in group order). Every member asks for it once.
    fn group(
        &self,
        name: &str,
        members: &[usize],
        rank: usize,
    ) -> Result<Arc<dyn ProcessGroup>, CommError>;
}

/// Ranks as threads of one process, over shared memory.
pub struct LocalBackend {
    world: LocalWorld,
}

impl LocalBackend {
    /// A backend of `world_size` thread ranks whose collectives give up after `timeout`.
    pub fn new(world_size: usize, timeout: Duration) -> Self {
        LocalBackend {
            world: LocalWorld::new(world_size, timeout),
        }
    }
}

impl Backend for LocalBackend {
    fn name(&self) -> &str {
        "local"
    }

    fn world_size(&self) -> usize {
        self.world.size()
    }

    fn local_ranks(&self) -> Vec<usize> {
        (0..self.world.size()).collect()
    }

    fn launch(
        &self,
        body: &(dyn Fn(usize) -> Result<(), RankError> + Sync),
    ) -> Result<(), RankError> {
        run_ranks(&self.world, body)
            .map(drop)
            .map_err(|e| RankError::from(e.to_string()))
    }

    fn group(
        &self,
        name: &str,
        members: &[usize],
        rank: usize,
    ) -> Result<Arc<dyn ProcessGroup>, CommError> {
        Ok(Arc::new(self.world.group(name, members, rank)?))
    }
}
