//! [`NcclBackend`]: one rank per process and GPU.

use std::any::Any;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cptrain::parallel::{Backend, CommError, GroupInfo, ParallelConfig, ProcessGroup, RankError};
use cudarc::driver::CudaContext;

use super::comm::Communicator;
use super::group::{NcclGroup, Shared};
use super::{NcclError, probe};
use crate::launch::{Hello, IdExchange, LaunchEnv};

/// Ranks as processes, one per GPU, started by `cptrain launch`, torchrun
/// or mpirun (their variables give the rank; [`LaunchEnv`]). Rank 0 makes
/// NCCL's unique id and hands it to the others ([`IdExchange`]: by MPI
/// broadcast under mpirun when the `mpi` feature is built in, else over the
/// TCP rendezvous); every rank then joins the world communicator.
///
/// Groups are split from the world communicator on first request and
/// cached. `ncclCommSplit` is collective over the whole world, so every
/// process must request its groups in the same order, and the groups
/// requested at one point must cover every rank (the trainer's CP and
/// DP×CP groups each partition the world); otherwise the split blocks
/// until `parallel.timeout_s` ends the process.
pub struct NcclBackend {
    rank: usize,
    world_size: usize,
    world: Communicator,
    shared: Arc<Shared>,
    groups: Mutex<HashMap<GroupInfo, Arc<NcclGroup>>>,
}

/// The job's identity checked by the id exchange: the same grid everywhere.
fn job_of(cfg: &ParallelConfig) -> String {
    format!(
        "cptrain nccl: world {} tp {} cp {} dp {} order {}",
        cfg.world_size, cfg.tp, cfg.cp, cfg.dp, cfg.order
    )
}

impl NcclBackend {
    /// Reads the launcher's variables, checks the machine ([`probe`]),
    /// exchanges NCCL's unique id and creates the world communicator on GPU
    /// `gpu` (`None`: the local rank's, among those visible).
    pub fn new(cfg: &ParallelConfig, gpu: Option<usize>) -> Result<Self, NcclError> {
        let timeout = Duration::try_from_secs_f64(cfg.timeout_s)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or(NcclError::InvalidTimeout(cfg.timeout_s))?;
        let env = LaunchEnv::from_env()?;
        let exchange = IdExchange::for_launch(&env)?;
        if env.world_size != cfg.world_size {
            return Err(NcclError::WorldSizeMismatch {
                configured: cfg.world_size,
                launched: env.world_size,
                launcher: env.launcher,
            });
        }
        let gpu = gpu.unwrap_or(env.local_rank);
        probe(Some(gpu))?;
        let rank = env.rank;
        let call = |call: &str, message: String| NcclError::Call {
            call: call.to_string(),
            rank,
            message,
        };
        let ctx = CudaContext::new(gpu)
            .map_err(|e| call(&format!("the CUDA context of GPU {gpu}"), e.to_string()))?;
        let stream = ctx
            .new_stream()
            .map_err(|e| call("creating the communication stream", e.to_string()))?;
        let me = Hello {
            rank,
            world_size: env.world_size,
            job: job_of(cfg),
        };
        let id = exchange.exchange(&me, timeout, || {
            cudarc::nccl::result::get_uniqueid()
                .map(|id| id.internal.iter().map(|&c| c as u8).collect())
                .map_err(|e| call("ncclGetUniqueId", format!("{:?}", e.0)))
        })?;
        let id: [u8; 128] = id.try_into().map_err(|bytes: Vec<u8>| {
            call(
                "the id exchange",
                format!("rank 0 sent {} bytes, not NCCL's 128-byte id", bytes.len()),
            )
        })?;
        ctx.bind_to_thread()
            .map_err(|e| call("binding the CUDA context", e.to_string()))?;
        let world = Communicator::init(id, env.world_size, rank, timeout)
            .map_err(|e| call("joining the world communicator", e.to_string()))?;
        tracing::info!("nccl: rank {rank} of {} on GPU {gpu}", env.world_size);
        Ok(NcclBackend {
            rank,
            world_size: env.world_size,
            world,
            shared: Arc::new(Shared::new(stream, timeout)),
            groups: Mutex::new(HashMap::new()),
        })
    }

    fn check_members(&self, info: &GroupInfo, rank: usize) -> Result<usize, CommError> {
        if rank != self.rank {
            return Err(CommError::InvalidGroup {
                group: info.clone(),
                rank,
                problem: format!(
                    "this process runs rank {} only (one rank per process)",
                    self.rank
                ),
            });
        }
        info.member_rank(rank, self.world_size)
    }

    fn abort_all(&self) {
        self.world.abort();
        for group in self
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            group.abort();
        }
    }
}

impl Backend for NcclBackend {
    fn name(&self) -> &str {
        "nccl"
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn local_ranks(&self) -> Vec<usize> {
        vec![self.rank]
    }

    fn launch(
        &self,
        body: &(dyn Fn(usize) -> Result<(), RankError> + Sync),
    ) -> Result<(), RankError> {
        let error = match catch_unwind(AssertUnwindSafe(|| body(self.rank))) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error,
            Err(panic) => RankError::from(format!("panicked: {}", panic_message(&*panic))),
        };
        // Stops this GPU's NCCL kernels; the process then exits 1, and the
        // launcher stops the other ranks (peers elsewhere time out).
        self.abort_all();
        Err(error)
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
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(group) = groups.get(&info) {
            return Ok(group.clone());
        }
        // The lowest member names the group among the disjoint groups split now.
        let color = *members.iter().min().expect("a member");
        let comm = self
            .world
            .split(color, group_rank, &info.to_string(), self.shared.timeout)
            .map_err(|e| CommError::InvalidGroup {
                group: info.clone(),
                rank,
                problem: e.to_string(),
            })?;
        let group = Arc::new(NcclGroup::new(
            info.clone(),
            group_rank,
            comm,
            self.shared.clone(),
        ));
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
