//! [`MpiBackend`]: one rank per process, launched by `mpirun`.

use std::any::Any;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cptrain::parallel::{Backend, CommError, GroupInfo, ProcessGroup, RankError};

use super::core::Core;
use super::create::create_communicator;
use super::group::MpiGroup;
use super::runtime::{self, Runtime, abort_job};
use crate::MpiError;

/// Ranks as MPI processes: this process runs exactly one rank, its rank in
/// `MPI_COMM_WORLD`.
///
/// Groups are MPI communicators created on first request and cached. A
/// group's members must request it at the same point of their program:
/// every process creates its groups in the same order (the creation
/// handshake reports a process that does not, instead of hanging).
///
/// When the body of [`Backend::launch`] fails on a job of several
/// processes, the error is printed and the job is ended with `MPI_Abort`,
/// so no process is left waiting for the failed one.
pub struct MpiBackend {
    runtime: &'static Runtime,
    timeout: Duration,
    groups: Mutex<HashMap<GroupInfo, Arc<MpiGroup>>>,
}

impl MpiBackend {
    /// Initializes MPI (once per process) and makes a backend whose
    /// operations give up after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, MpiError> {
        Ok(MpiBackend {
            runtime: runtime::runtime()?,
            timeout,
            groups: Mutex::new(HashMap::new()),
        })
    }

    /// This process's rank in the job.
    pub fn rank(&self) -> usize {
        self.runtime.rank
    }

    /// The deadline of every blocking operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn check_members(&self, info: &GroupInfo, rank: usize) -> Result<usize, CommError> {
        if rank != self.runtime.rank {
            return Err(CommError::InvalidGroup {
                group: info.clone(),
                rank,
                problem: format!(
                    "this process runs rank {} only (one rank per MPI process)",
                    self.runtime.rank
                ),
            });
        }
        info.member_rank(rank, self.runtime.size)
    }
}

impl Backend for MpiBackend {
    fn name(&self) -> &str {
        "mpi"
    }

    fn world_size(&self) -> usize {
        self.runtime.size
    }

    fn local_ranks(&self) -> Vec<usize> {
        vec![self.runtime.rank]
    }

    fn launch(
        &self,
        body: &(dyn Fn(usize) -> Result<(), RankError> + Sync),
    ) -> Result<(), RankError> {
        let rank = self.runtime.rank;
        let error = match catch_unwind(AssertUnwindSafe(|| body(rank))) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error,
            Err(panic) => RankError::from(format!("panicked: {}", panic_message(&*panic))),
        };
        if self.runtime.size == 1 {
            return Err(error);
        }
        abort_job(&format!(
            "rank {rank} failed: {error}\ncptrain mpi: aborting the MPI job (MPI_Abort) so that \
             the other {} process(es) stop instead of waiting for rank {rank}",
            self.runtime.size - 1
        ))
    }

    fn group(
        &self,
        name: &str,
        members: &[usize],
        rank: usize,
    ) -> Result<Arc<dyn ProcessGroup>, CommError> {
        let info = GroupInfo {
            name: name.to_string(),
            members: members.to_vec(),
        };
        let group_rank = self.check_members(&info, rank)?;
        // Held during creation: groups are created one at a time, in the
        // order this process asks for them.
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(group) = groups.get(&info) {
            return Ok(group.clone());
        }
        let comm = create_communicator(&info, rank, self.timeout).inspect_err(|error| {
            // A failed handshake leaves messages in flight: stop this process.
            runtime::record_failure(error.to_string());
        })?;
        let group = Arc::new(MpiGroup::new(Core::new(
            info.clone(),
            group_rank,
            comm,
            self.timeout,
        )));
        groups.insert(info, group.clone());
        Ok(group)
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}
