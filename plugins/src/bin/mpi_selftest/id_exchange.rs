//! The `nccl` backend's exchange of NCCL's unique id under mpirun, without
//! NCCL: the id is a fake one made by rank 0 ([`fake_id`]). Every rank
//! prints the blob it got; the test compares them with rank 0's.

use std::time::Duration;

use cptrain_plugins::launch::{Hello, IdExchange, IdExchangeError, LaunchEnv};

/// Ample for processes that start together on one machine.
const TIMEOUT: Duration = Duration::from_secs(30);

/// 128 bytes that tell which rank made them: byte `i` is `2i + rank`
/// (mod 256), so rank 0's are the even bytes 0, 2, ..., 254.
fn fake_id(rank: usize) -> Vec<u8> {
    (0..128).map(|i| (2 * i + rank) as u8).collect()
}

/// Runs the exchange as `mpirun` started this process. `mismatch`: the
/// last rank describes another job, which every rank must refuse.
fn exchange(mismatch: bool) -> Result<(usize, Vec<u8>), String> {
    let env = LaunchEnv::from_env().map_err(|e| e.to_string())?;
    let exchange = IdExchange::for_launch(&env).map_err(|e| e.to_string())?;
    if exchange != IdExchange::Mpi {
        return Err(format!(
            "mpirun's variables chose {exchange:?}, not the MPI broadcast"
        ));
    }
    let odd_one_out = mismatch && env.rank + 1 == env.world_size;
    let me = Hello {
        rank: env.rank,
        world_size: env.world_size,
        job: if odd_one_out {
            "selftest job B"
        } else {
            "selftest job A"
        }
        .into(),
    };
    let id = exchange
        .exchange::<IdExchangeError>(&me, TIMEOUT, || Ok(fake_id(env.rank)))
        .map_err(|e| format!("rank {}: {e}", env.rank))?;
    Ok((env.rank, id))
}

/// `id-exchange` (`mismatch` false) or `id-mismatch`: prints `rank R id
/// HEX`, or the error and exits 1.
pub fn main(mismatch: bool) {
    match exchange(mismatch) {
        Ok((rank, id)) => {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            println!("rank {rank} id {hex}");
        }
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    }
}
