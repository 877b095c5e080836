//! [`LaunchEnv`]: this process's place in a job of one process per GPU, read
//! from the variables a launcher exports: torchrun's names (`RANK`,
//! `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`, which
//! `cptrain launch` sets too) or Open MPI's (`OMPI_COMM_WORLD_RANK`, ...).

use std::fmt;

/// `MASTER_PORT` when a single-node `mpirun` job leaves it unset (torchrun's default).
pub const DEFAULT_MASTER_PORT: u16 = 29500;

/// Where rank 0 listens for the rendezvous.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Master {
    /// Host name or address of rank 0 (`MASTER_ADDR`).
    pub addr: String,
    /// TCP port (`MASTER_PORT`).
    pub port: u16,
}

impl fmt::Display for Master {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.addr.contains(':') {
            write!(f, "[{}]:{}", self.addr, self.port)
        } else {
            write!(f, "{}:{}", self.addr, self.port)
        }
    }
}

/// Which launcher's variables described the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launcher {
    /// `RANK`, `WORLD_SIZE`, `LOCAL_RANK` (torchrun, `cptrain launch`, by hand).
    Torchrun,
    /// `OMPI_COMM_WORLD_RANK`, `OMPI_COMM_WORLD_SIZE`, `OMPI_COMM_WORLD_LOCAL_RANK` (mpirun).
    OpenMpi,
    /// No launcher: a lone process, rank 0 of 1.
    None,
}

/// This process's rank, the job's size, the rank on this machine (it picks
/// the GPU) and the address of the TCP rendezvous.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchEnv {
    /// Global rank.
    pub rank: usize,
    /// Processes in the job.
    pub world_size: usize,
    /// Rank among the processes of this machine.
    pub local_rank: usize,
    /// Rank 0's address for the TCP rendezvous; `Ok(None)` for a job of one
    /// process. Under mpirun the address is needed only when the id travels
    /// over TCP (not by MPI broadcast, [`crate::launch::IdExchange`]), so a
    /// missing or malformed `MASTER_ADDR`/`MASTER_PORT` is kept here as the
    /// error to report then; torchrun's variables are checked at once.
    pub master: Result<Option<Master>, LaunchEnvError>,
    /// Where these values came from.
    pub launcher: Launcher,
}

/// A launcher variable that is missing or malformed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum LaunchEnvError {
    /// A variable the others require is not set.
    #[error("{name} is not set, but {because}; {action}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// Why it is needed.
        because: String,
        /// What to do.
        action: &'static str,
    },
    /// A variable holds something else than expected.
    #[error("{name}={value:?} is not {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: String,
    },
}

const TORCHRUN_ACTION: &str = "launch with `cptrain launch --nproc N -- run ...`, or set RANK, \
     WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT on every process";
const MPI_ACTION: &str = "build with `--features nccl,mpi`, which sends the id by MPI broadcast \
     and needs no address, or pass rank 0's host and a free port: mpirun -x MASTER_ADDR=<host of \
     rank 0> -x MASTER_PORT=29500 ...";

impl LaunchEnv {
    /// Reads the process environment ([`LaunchEnv::from_vars`]).
    pub fn from_env() -> Result<Self, LaunchEnvError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the job from `var` (a variable's value, `None` when unset).
    /// torchrun's names win when `RANK` or `WORLD_SIZE` is set; else Open
    /// MPI's when `OMPI_COMM_WORLD_SIZE` is; else a lone process.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, LaunchEnvError> {
        let reader = Reader { var: &var };
        if var("RANK").is_some() || var("WORLD_SIZE").is_some() {
            reader.torchrun()
        } else if var("OMPI_COMM_WORLD_SIZE").is_some() {
            reader.open_mpi()
        } else {
            Ok(LaunchEnv {
                rank: 0,
                world_size: 1,
                local_rank: 0,
                master: Ok(None),
                launcher: Launcher::None,
            })
        }
    }
}

struct Reader<'a> {
    var: &'a dyn Fn(&str) -> Option<String>,
}

impl Reader<'_> {
    fn torchrun(&self) -> Result<LaunchEnv, LaunchEnvError> {
        let world_size = self.count("WORLD_SIZE", "RANK is set", TORCHRUN_ACTION)?;
        let rank = self.rank("RANK", world_size, "WORLD_SIZE is set", TORCHRUN_ACTION)?;
        let local_rank = if world_size == 1 && (self.var)("LOCAL_RANK").is_none() {
            0
        } else {
            let because = format!("WORLD_SIZE={world_size}: it selects this process's GPU");
            self.rank("LOCAL_RANK", world_size, &because, TORCHRUN_ACTION)?
        };
        let master = if world_size > 1 {
            let because = format!("WORLD_SIZE={world_size}: rank 0 listens there for the others");
            let addr = self.required("MASTER_ADDR", &because, TORCHRUN_ACTION)?;
            let port = self.port(&because, TORCHRUN_ACTION, None)?;
            Some(Master { addr, port })
        } else {
            None
        };
        Ok(LaunchEnv {
            rank,
            world_size,
            local_rank,
            master: Ok(master),
            launcher: Launcher::Torchrun,
        })
    }

    fn open_mpi(&self) -> Result<LaunchEnv, LaunchEnvError> {
        const ACTION: &str = "start the job with mpirun";
        let because = "OMPI_COMM_WORLD_SIZE is set";
        let world_size = self.count("OMPI_COMM_WORLD_SIZE", because, ACTION)?;
        let rank = self.rank("OMPI_COMM_WORLD_RANK", world_size, because, ACTION)?;
        let local_rank = self.rank("OMPI_COMM_WORLD_LOCAL_RANK", world_size, because, ACTION)?;
        let local_size = match (self.var)("OMPI_COMM_WORLD_LOCAL_SIZE") {
            Some(_) => self.count("OMPI_COMM_WORLD_LOCAL_SIZE", because, ACTION)?,
            None => world_size,
        };
        Ok(LaunchEnv {
            rank,
            world_size,
            local_rank,
            master: self.mpi_master(world_size, local_size),
            launcher: Launcher::OpenMpi,
        })
    }

    /// Rank 0's address under mpirun: loopback (and the default port) when
    /// every rank is on this machine, else `MASTER_ADDR` is required.
    fn mpi_master(
        &self,
        world_size: usize,
        local_size: usize,
    ) -> Result<Option<Master>, LaunchEnvError> {
        if world_size == 1 {
            return Ok(None);
        }
        let (addr, because) = if local_size == world_size {
            // Every rank is on this machine: rank 0 is reachable on loopback.
            let addr = (self.var)("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
            (addr, String::new())
        } else {
            let because = format!(
                "the mpirun job spans several machines ({local_size} of its {world_size} ranks \
                 on this one)"
            );
            (self.required("MASTER_ADDR", &because, MPI_ACTION)?, because)
        };
        let port = self.port(&because, MPI_ACTION, Some(DEFAULT_MASTER_PORT))?;
        Ok(Some(Master { addr, port }))
    }

    fn required(
        &self,
        name: &'static str,
        because: &str,
        action: &'static str,
    ) -> Result<String, LaunchEnvError> {
        match (self.var)(name) {
            Some(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
            _ => Err(LaunchEnvError::Missing {
                name,
                because: because.to_string(),
                action,
            }),
        }
    }

    fn parsed(
        &self,
        name: &'static str,
        because: &str,
        action: &'static str,
        expected: impl Fn() -> String,
    ) -> Result<usize, LaunchEnvError> {
        let value = self.required(name, because, action)?;
        value.parse().map_err(|_| LaunchEnvError::Invalid {
            name,
            value,
            expected: expected(),
        })
    }

    /// A number of processes: at least 1.
    fn count(
        &self,
        name: &'static str,
        because: &str,
        action: &'static str,
    ) -> Result<usize, LaunchEnvError> {
        let expected = || "a number of processes (1 or more)".to_string();
        match self.parsed(name, because, action, expected)? {
            0 => Err(LaunchEnvError::Invalid {
                name,
                value: "0".into(),
                expected: expected(),
            }),
            n => Ok(n),
        }
    }

    /// A rank below `world_size`.
    fn rank(
        &self,
        name: &'static str,
        world_size: usize,
        because: &str,
        action: &'static str,
    ) -> Result<usize, LaunchEnvError> {
        let expected = || format!("a rank below the world size {world_size} (0..{world_size})");
        let rank = self.parsed(name, because, action, expected)?;
        if rank >= world_size {
            return Err(LaunchEnvError::Invalid {
                name,
                value: rank.to_string(),
                expected: expected(),
            });
        }
        Ok(rank)
    }

    /// `MASTER_PORT`, or `default` when it is unset and one exists.
    fn port(
        &self,
        because: &str,
        action: &'static str,
        default: Option<u16>,
    ) -> Result<u16, LaunchEnvError> {
        const NAME: &str = "MASTER_PORT";
        let value = match ((self.var)(NAME), default) {
            (None, Some(port)) => return Ok(port),
            _ => self.required(NAME, because, action)?,
        };
        value
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or(LaunchEnvError::Invalid {
                name: NAME,
                value,
                expected: "a TCP port (1-65535)".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<LaunchEnv, LaunchEnvError> {
        LaunchEnv::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    const TORCHRUN: [(&str, &str); 5] = [
        ("RANK", "3"),
        ("WORLD_SIZE", "8"),
        ("LOCAL_RANK", "1"),
        ("MASTER_ADDR", "node0"),
        ("MASTER_PORT", "29400"),
    ];

    /// Each launcher's variables give the same description of a process.
    #[test]
    fn torchrun_and_open_mpi_names_are_read() {
        let master = Some(Master {
            addr: "node0".into(),
            port: 29400,
        });
        assert_eq!(
            parse(&TORCHRUN).unwrap(),
            LaunchEnv {
                rank: 3,
                world_size: 8,
                local_rank: 1,
                master: Ok(master.clone()),
                launcher: Launcher::Torchrun
            }
        );
        let mpi = [
            ("OMPI_COMM_WORLD_RANK", "3"),
            ("OMPI_COMM_WORLD_SIZE", "8"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
            ("OMPI_COMM_WORLD_LOCAL_SIZE", "4"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "29400"),
        ];
        let parsed = parse(&mpi).unwrap();
        assert_eq!(
            (parsed.rank, parsed.world_size, parsed.local_rank),
            (3, 8, 1)
        );
        assert_eq!(
            (parsed.master, parsed.launcher),
            (Ok(master), Launcher::OpenMpi)
        );
    }

    /// Without a launcher the process is rank 0 of 1, with no rendezvous;
    /// a one-node mpirun job rendezvouses on loopback at the default port.
    #[test]
    fn defaults_need_no_variables() {
        let alone = parse(&[]).unwrap();
        assert_eq!(
            (alone.rank, alone.world_size, alone.master),
            (0, 1, Ok(None))
        );
        let one_node = parse(&[
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_COMM_WORLD_SIZE", "2"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
            ("OMPI_COMM_WORLD_LOCAL_SIZE", "2"),
        ])
        .unwrap();
        let one_node = one_node.master.unwrap().expect("an address");
        assert_eq!(one_node.to_string(), "127.0.0.1:29500");
        let single = parse(&[("RANK", "0"), ("WORLD_SIZE", "1")]).unwrap();
        assert_eq!((single.local_rank, single.master), (0, Ok(None)));
    }

    /// Every missing or malformed variable is named, with its value and
    /// what was expected; under mpirun, rank 0's address is reported only
    /// when asked for (the MPI broadcast needs none).
    #[test]
    fn bad_values_name_the_variable() {
        let with = |name: &str, value: Option<&str>| {
            let mut vars: Vec<(&str, &str)> = TORCHRUN
                .iter()
                .copied()
                .filter(|(n, _)| *n != name)
                .collect();
            if let Some(v) = value {
                vars.push((name, v));
            }
            parse(&vars).unwrap_err().to_string()
        };
        let cases = [
            (
                "RANK",
                Some("8"),
                "RANK=\"8\" is not a rank below the world size 8",
            ),
            ("RANK", Some("-1"), "RANK=\"-1\" is not a rank"),
            (
                "WORLD_SIZE",
                Some("0"),
                "WORLD_SIZE=\"0\" is not a number of processes",
            ),
            ("WORLD_SIZE", None, "WORLD_SIZE is not set, but RANK is set"),
            (
                "LOCAL_RANK",
                None,
                "LOCAL_RANK is not set, but WORLD_SIZE=8",
            ),
            ("LOCAL_RANK", Some("x"), "LOCAL_RANK=\"x\" is not a rank"),
            (
                "MASTER_ADDR",
                None,
                "MASTER_ADDR is not set, but WORLD_SIZE=8",
            ),
            ("MASTER_PORT", None, "MASTER_PORT is not set"),
            (
                "MASTER_PORT",
                Some("70000"),
                "MASTER_PORT=\"70000\" is not a TCP port",
            ),
        ];
        for (name, value, expected) in cases {
            let message = with(name, value);
            assert!(message.contains(expected), "{name}={value:?}: {message}");
        }
        let spread = parse(&[
            ("OMPI_COMM_WORLD_RANK", "0"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "0"),
            ("OMPI_COMM_WORLD_LOCAL_SIZE", "2"),
            ("MASTER_PORT", "x"),
        ])
        .expect("the address is not needed yet")
        .master
        .unwrap_err()
        .to_string();
        assert!(spread.contains("MASTER_ADDR is not set"), "{spread}");
        assert!(spread.contains("--features nccl,mpi"), "{spread}");
        assert!(spread.contains("mpirun -x MASTER_ADDR="), "{spread}");
    }
}
