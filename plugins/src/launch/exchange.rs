//! [`IdExchange`]: how the ranks of a job get rank 0's blob (NCCL's unique
//! id), chosen in one place from the launch environment:
//!
//! - a world of one makes the blob itself;
//! - under mpirun, in a binary built with the `mpi` feature, MPI broadcasts
//!   it (`mpi_broadcast.rs`), so no rank needs rank 0's address, on any
//!   number of machines;
//! - otherwise (torchrun's variables, `cptrain launch`, or a binary without
//!   `mpi`) it travels over the TCP rendezvous at `MASTER_ADDR:MASTER_PORT`.

use std::time::Duration;

#[cfg(feature = "mpi")]
use cptrain::parallel::CommError;

#[cfg(feature = "mpi")]
use super::env::Launcher;
use super::env::{LaunchEnv, LaunchEnvError, Master};
use super::rendezvous::{self, RendezvousError, RendezvousServer};
use super::wire::Hello;
#[cfg(feature = "mpi")]
use crate::MpiError;

/// The way this process's job exchanges rank 0's blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdExchange {
    /// A world of one: rank 0 makes the blob and keeps it.
    Alone,
    /// The TCP rendezvous: rank 0 listens at this address.
    Tcp(Master),
    /// MPI broadcasts on `MPI_COMM_WORLD` (launched by mpirun, built with
    /// the `mpi` feature). MPI starts here unless it already has; it is
    /// finalized (or, after a failure, the job aborted) when the process
    /// exits, as for the `mpi` backend.
    #[cfg(feature = "mpi")]
    Mpi,
}

/// Why the exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum IdExchangeError {
    /// The TCP rendezvous failed.
    #[error(transparent)]
    Rendezvous(#[from] RendezvousError),
    /// MPI could not start.
    #[cfg(feature = "mpi")]
    #[error("the MPI broadcast of rank 0's id cannot start: {0}")]
    MpiStart(#[from] MpiError),
    /// A broadcast failed (a rank never came: the error names it).
    #[cfg(feature = "mpi")]
    #[error("the MPI broadcast of rank 0's id failed: {0}")]
    Broadcast(#[from] CommError),
    /// The ranks do not describe one job.
    #[cfg(feature = "mpi")]
    #[error("the MPI broadcast of rank 0's id was refused: {reason}")]
    Refused {
        /// What disagreed (the same text on every rank).
        reason: String,
    },
}

impl IdExchange {
    /// The exchange for `env`: `IdExchange::Mpi` under mpirun when the
    /// binary has the `mpi` feature, else the TCP rendezvous, whose address
    /// must then be known (the error names the variable to set).
    pub fn for_launch(env: &LaunchEnv) -> Result<Self, LaunchEnvError> {
        if env.world_size == 1 {
            return Ok(IdExchange::Alone);
        }
        #[cfg(feature = "mpi")]
        if env.launcher == Launcher::OpenMpi {
            return Ok(IdExchange::Mpi);
        }
        // `None` only for a world of one.
        Ok(env
            .master
            .clone()?
            .map_or(IdExchange::Alone, IdExchange::Tcp))
    }

    /// Gives every rank rank 0's blob, which rank 0 makes with `make_blob`
    /// (no other rank calls it). Every rank must show up with rank 0's
    /// world size and job (`me` on rank 0): one that disagrees fails them
    /// all, named; a missing one fails them at `timeout`.
    pub fn exchange<E: From<IdExchangeError>>(
        &self,
        me: &Hello,
        timeout: Duration,
        make_blob: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, E> {
        let tcp_error = |e: RendezvousError| E::from(IdExchangeError::from(e));
        match self {
            IdExchange::Alone => make_blob(),
            IdExchange::Tcp(master) => {
                if me.rank == 0 {
                    let server = RendezvousServer::bind(master).map_err(tcp_error)?;
                    let blob = make_blob()?;
                    server.serve(me, &blob, timeout).map_err(tcp_error)?;
                    Ok(blob)
                } else {
                    rendezvous::fetch(master, me, timeout).map_err(tcp_error)
                }
            }
            #[cfg(feature = "mpi")]
            IdExchange::Mpi => super::mpi_broadcast::exchange(me, timeout, make_blob),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Vars = Vec<(&'static str, &'static str)>;

    fn mpirun(rank: &'static str, size: &'static str, local_size: &'static str) -> Vars {
        vec![
            ("OMPI_COMM_WORLD_RANK", rank),
            ("OMPI_COMM_WORLD_SIZE", size),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "0"),
            ("OMPI_COMM_WORLD_LOCAL_SIZE", local_size),
        ]
    }

    /// What mpirun's variables choose where the TCP rendezvous gives `tcp`.
    #[cfg(feature = "mpi")]
    fn under_mpirun(_tcp: Result<IdExchange, &str>) -> Result<IdExchange, &str> {
        Ok(IdExchange::Mpi)
    }
    #[cfg(not(feature = "mpi"))]
    fn under_mpirun(tcp: Result<IdExchange, &str>) -> Result<IdExchange, &str> {
        tcp
    }

    /// torchrun's variables (and `cptrain launch`'s) use the TCP
    /// rendezvous in every build; mpirun's use MPI when it is built in,
    /// else TCP (on loopback on one machine, and only with `MASTER_ADDR`
    /// across machines); a world of one exchanges nothing.
    #[test]
    fn the_launcher_and_the_build_choose_the_exchange() {
        let node0 = Master {
            addr: "node0".into(),
            port: 29400,
        };
        let loopback = Master {
            addr: "127.0.0.1".into(),
            port: 29500,
        };
        let torchrun: Vars = vec![
            ("RANK", "1"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "29400"),
        ];
        let torchrun_in_mpirun = [torchrun.clone(), mpirun("1", "2", "2")].concat();
        let cases: [(&str, Vars, Result<IdExchange, &str>); 6] = [
            ("no launcher", vec![], Ok(IdExchange::Alone)),
            ("mpirun -np 1", mpirun("0", "1", "1"), Ok(IdExchange::Alone)),
            ("torchrun", torchrun, Ok(IdExchange::Tcp(node0.clone()))),
            (
                "torchrun's variables under mpirun",
                torchrun_in_mpirun,
                Ok(IdExchange::Tcp(node0)),
            ),
            (
                "mpirun, one machine",
                mpirun("1", "2", "2"),
                under_mpirun(Ok(IdExchange::Tcp(loopback))),
            ),
            (
                "mpirun, two machines, no MASTER_ADDR",
                mpirun("1", "4", "2"),
                under_mpirun(Err("MASTER_ADDR is not set, but the mpirun job spans")),
            ),
        ];
        for (name, vars, expected) in cases {
            let env = LaunchEnv::from_vars(|name| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            })
            .expect("valid variables");
            match (IdExchange::for_launch(&env), expected) {
                (Ok(chosen), Ok(expected)) => assert_eq!(chosen, expected, "{name}"),
                (Err(error), Err(expected)) => {
                    assert!(error.to_string().contains(expected), "{name}: {error}")
                }
                (chosen, expected) => panic!("{name}: chose {chosen:?}, expected {expected:?}"),
            }
        }
    }
}
