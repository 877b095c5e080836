//! The TCP rendezvous: rank 0 listens on `MASTER_ADDR:MASTER_PORT`, every
//! other rank connects (retrying until the deadline) and says who it is;
//! once all have arrived and agree on the world size and the job, rank 0
//! sends each the same opaque blob (NCCL's 128-byte unique id). Any
//! disagreement, duplicate or out-of-range rank fails every rank at once
//! with the same reason; a rank that never arrives fails them at the
//! deadline, named.

use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant};

use super::env::Master;
use super::wire::{Hello, Reply};

/// How long to wait between two connection attempts to rank 0.
const RETRY_EVERY: Duration = Duration::from_millis(100);
/// How long rank 0 waits for the hello of a connection before dropping it.
const HELLO_WITHIN: Duration = Duration::from_secs(5);

/// Why the rendezvous failed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum RendezvousError {
    /// Rank 0 cannot listen on the port.
    #[error(
        "rank 0 cannot listen on {master} for the rendezvous: {message}; another process holds \
         MASTER_PORT (another job, or a second process with RANK=0): choose another port \
         (cptrain launch --master-port P, or MASTER_PORT=P)"
    )]
    Bind {
        /// The address.
        master: Master,
        /// The operating system's error.
        message: String,
    },
    /// A rank never reached rank 0.
    #[error(
        "rank {rank} could not reach rank 0 at {master} within {after:?} (last error: {last}); \
         rank 0 is not running, or MASTER_ADDR/MASTER_PORT differ between the processes"
    )]
    Unreachable {
        /// This rank.
        rank: usize,
        /// Rank 0's address.
        master: Master,
        /// The deadline (`parallel.timeout_s`).
        after: Duration,
        /// The last connection error.
        last: String,
    },
    /// Rank 0 waited in vain for some ranks.
    #[error(
        "the rendezvous at {master} timed out after {after:?}: rank(s) {missing:?} of the \
         {world_size} never arrived; they did not start, failed first, or were given another \
         MASTER_ADDR/MASTER_PORT (raise parallel.timeout_s if they are only slow)"
    )]
    MissingRanks {
        /// Rank 0's address.
        master: Master,
        /// The ranks that did not arrive.
        missing: Vec<usize>,
        /// The world size.
        world_size: usize,
        /// The deadline.
        after: Duration,
    },
    /// Rank 0 accepted the connection but did not answer in time.
    #[error(
        "rank {rank} reached rank 0 at {master}, which did not answer within {after:?}: other \
         ranks are missing (rank 0's error names them) or rank 0 is stuck"
    )]
    NoAnswer {
        /// This rank.
        rank: usize,
        /// Rank 0's address.
        master: Master,
        /// The deadline.
        after: Duration,
    },
    /// The ranks do not describe one job.
    #[error("the rendezvous at {master} failed: {reason}")]
    Refused {
        /// Rank 0's address.
        master: Master,
        /// What disagreed (the same text on every rank).
        reason: String,
    },
    /// The connection broke.
    #[error("the rendezvous at {master} failed on rank {rank}: {message}")]
    Io {
        /// Rank 0's address.
        master: Master,
        /// This rank.
        rank: usize,
        /// What happened.
        message: String,
    },
}

/// Rank 0's side: the bound port, then [`RendezvousServer::serve`].
pub struct RendezvousServer {
    master: Master,
    listener: TcpListener,
}

impl RendezvousServer {
    /// Listens on `master`'s port: on that address when it is a loopback
    /// one, else on every interface (the others may know this machine under
    /// a name that is not one of its own addresses). Port 0 picks a free one.
    pub fn bind(master: &Master) -> Result<Self, RendezvousError> {
        let bind_error = |message: String| RendezvousError::Bind {
            master: master.clone(),
            message,
        };
        let resolved = resolve(master).map_err(|e| bind_error(e.to_string()))?;
        let ip = match resolved.first().map(SocketAddr::ip) {
            Some(ip) if ip.is_loopback() => ip,
            Some(IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let listener =
            TcpListener::bind((ip, master.port)).map_err(|e| bind_error(e.to_string()))?;
        Ok(RendezvousServer {
            master: master.clone(),
            listener,
        })
    }

    /// The port listened on (the chosen one when bound to port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Waits until ranks `1..world_size` of `me`'s job have arrived, then
    /// sends each `blob`. Fails (and tells every connected rank why) when a
    /// rank disagrees, or at `timeout` naming the ranks still missing.
    pub fn serve(&self, me: &Hello, blob: &[u8], timeout: Duration) -> Result<(), RendezvousError> {
        let deadline = Instant::now() + timeout;
        let mut arrived: Vec<Option<TcpStream>> = (0..me.world_size).map(|_| None).collect();
        let io = |e: io::Error| RendezvousError::Io {
            master: self.master.clone(),
            rank: 0,
            message: e.to_string(),
        };
        self.listener.set_nonblocking(true).map_err(io)?;
        let mut outstanding = me.world_size - 1;
        while outstanding > 0 {
            let now = Instant::now();
            if now >= deadline {
                let missing: Vec<usize> = (1..me.world_size)
                    .filter(|&r| arrived[r].is_none())
                    .collect();
                let error = RendezvousError::MissingRanks {
                    master: self.master.clone(),
                    missing,
                    world_size: me.world_size,
                    after: timeout,
                };
                return Err(self.refuse(arrived, None, error.to_string()));
            }
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted =>
                {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err(e) => return Err(io(e)),
            };
            let hello = stream
                .set_nonblocking(false)
                .and_then(|()| stream.set_read_timeout(Some(HELLO_WITHIN.min(deadline - now))))
                .and_then(|()| Hello::read_from(&mut stream));
            let hello = match hello {
                Ok(hello) => hello,
                Err(e) => {
                    tracing::warn!("rendezvous: ignoring a connection from {peer}: {e}");
                    continue;
                }
            };
            if let Some(reason) = disagreement(me, &hello, &arrived) {
                return Err(self.refuse(arrived, Some(stream), reason));
            }
            arrived[hello.rank] = Some(stream);
            outstanding -= 1;
        }
        for stream in arrived.iter_mut().flatten() {
            // A rank that vanished after its hello finds out at its own end.
            let _ = Reply::Blob(blob.to_vec()).write_to(stream);
        }
        Ok(())
    }

    /// Tells every connected rank (and `extra`) the reason, and returns it.
    fn refuse(
        &self,
        arrived: Vec<Option<TcpStream>>,
        extra: Option<TcpStream>,
        reason: String,
    ) -> RendezvousError {
        for mut stream in arrived.into_iter().flatten().chain(extra) {
            let _ = Reply::Refused(reason.clone()).write_to(&mut stream);
        }
        RendezvousError::Refused {
            master: self.master.clone(),
            reason,
        }
    }
}

/// Why `hello` cannot join rank 0's (`me`) job, if it cannot.
fn disagreement(me: &Hello, hello: &Hello, arrived: &[Option<TcpStream>]) -> Option<String> {
    if let Some(reason) = hello.disagreement(me) {
        return Some(reason);
    }
    let world = me.world_size;
    if hello.rank >= world {
        return Some(format!(
            "a process reported rank {}, outside the world of {world} (ranks 0..{world}); check \
             RANK",
            hello.rank
        ));
    }
    if hello.rank == 0 || arrived[hello.rank].is_some() {
        return Some(format!(
            "two processes reported rank {}; every process needs its own RANK",
            hello.rank
        ));
    }
    None
}

fn resolve(master: &Master) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (master.addr.as_str(), master.port)
        .to_socket_addrs()?
        .collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            ErrorKind::NotFound,
            "the name has no address",
        ));
    }
    Ok(addrs)
}

/// A rank other than 0: connects to `master` (retrying until `timeout`),
/// says `me`, and returns rank 0's blob.
pub fn fetch(master: &Master, me: &Hello, timeout: Duration) -> Result<Vec<u8>, RendezvousError> {
    let deadline = Instant::now() + timeout;
    let io = |e: io::Error| RendezvousError::Io {
        master: master.clone(),
        rank: me.rank,
        message: e.to_string(),
    };
    let mut stream = connect(master, me.rank, deadline, timeout)?;
    me.write_to(&mut stream).map_err(io)?;
    let remaining = deadline.saturating_duration_since(Instant::now());
    stream
        .set_read_timeout(Some(remaining.max(Duration::from_millis(1))))
        .map_err(io)?;
    match Reply::read_from(&mut stream) {
        Ok(Reply::Blob(blob)) => Ok(blob),
        Ok(Reply::Refused(reason)) => Err(RendezvousError::Refused {
            master: master.clone(),
            reason,
        }),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Err(RendezvousError::NoAnswer {
                rank: me.rank,
                master: master.clone(),
                after: timeout,
            })
        }
        Err(e) => Err(io(e)),
    }
}

fn connect(
    master: &Master,
    rank: usize,
    deadline: Instant,
    timeout: Duration,
) -> Result<TcpStream, RendezvousError> {
    let mut last = String::from("no attempt");
    loop {
        // Resolved on every attempt: rank 0's name may appear late.
        match resolve(master) {
            Ok(addrs) => {
                for addr in addrs {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let attempt = remaining.clamp(Duration::from_millis(1), Duration::from_secs(2));
                    match TcpStream::connect_timeout(&addr, attempt) {
                        Ok(stream) => return Ok(stream),
                        Err(e) => last = format!("{addr}: {e}"),
                    }
                }
            }
            Err(e) => last = e.to_string(),
        }
        if Instant::now() + RETRY_EVERY >= deadline {
            return Err(RendezvousError::Unreachable {
                rank,
                master: master.clone(),
                after: timeout,
                last,
            });
        }
        thread::sleep(RETRY_EVERY);
    }
}
