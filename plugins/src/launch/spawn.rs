//! The single-machine launcher behind `cptrain launch`: starts one child
//! process per rank with the torchrun variables set, forwards each line of
//! their output with a rank prefix, and when one child fails kills the
//! others and reports the rank that failed first.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How often the children's exit is polled.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// What to launch.
#[derive(Clone, Debug)]
pub struct LaunchSpec {
    /// The program every rank runs (`cptrain launch`: this binary).
    pub program: PathBuf,
    /// Its arguments, the same for every rank.
    pub args: Vec<OsString>,
    /// Processes to start (ranks `0..nproc`).
    pub nproc: usize,
    /// `MASTER_ADDR` of the children.
    pub master_addr: String,
    /// `MASTER_PORT` of the children; 0 picks a free port.
    pub master_port: u16,
}

/// Which output stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The child's stdout.
    Stdout,
    /// The child's stderr.
    Stderr,
}

/// Receives each line a child prints (without its newline).
pub type LineSink = Arc<dyn Fn(usize, Stream, &str) + Send + Sync>;

/// A sink that prints `[rank R] line` on this process's stdout or stderr.
pub fn print_lines() -> LineSink {
    Arc::new(|rank, stream, line| match stream {
        Stream::Stdout => println!("[rank {rank}] {line}"),
        Stream::Stderr => eprintln!("[rank {rank}] {line}"),
    })
}

/// Why a launch did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// `--nproc 0`.
    #[error("--nproc must be at least 1")]
    NoProcesses,
    /// No free port could be found for `--master-port 0`.
    #[error("no free TCP port on this machine for the rendezvous: {0}")]
    NoPort(String),
    /// A child could not be started.
    #[error("cannot start rank {rank} ({program}): {message}")]
    Spawn {
        /// The rank.
        rank: usize,
        /// The program.
        program: String,
        /// The operating system's error.
        message: String,
    },
    /// A child failed; the others were killed.
    #[error("rank {rank} {status}; {stopped}")]
    RankFailed {
        /// The first rank that failed.
        rank: usize,
        /// How it ended (`exited with status 2`, `was killed by signal 9`).
        status: String,
        /// What happened to the others.
        stopped: String,
        /// The exit code for the launcher (the child's, else 1).
        code: u8,
    },
}

impl LaunchError {
    /// The launcher's exit code: the failed child's own code when it has one.
    pub fn exit_code(&self) -> u8 {
        match self {
            LaunchError::RankFailed { code, .. } => *code,
            _ => 1,
        }
    }
}

/// A free TCP port on loopback (bound and released: another program may
/// take it before the children bind it, which they then report).
fn free_port() -> Result<u16, LaunchError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| LaunchError::NoPort(e.to_string()))
}

/// Runs `spec.nproc` copies of the program, ranks `0..nproc` on this
/// machine, each with `RANK`, `LOCAL_RANK`, `WORLD_SIZE`,
/// `LOCAL_WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT` set (everything
/// else, `CUDA_VISIBLE_DEVICES` included, inherited). Every line they print
/// goes to `sink`. Returns when all succeeded, or as soon as one failed,
/// after killing the others.
pub fn launch(spec: &LaunchSpec, sink: LineSink) -> Result<(), LaunchError> {
    if spec.nproc == 0 {
        return Err(LaunchError::NoProcesses);
    }
    let port = match spec.master_port {
        0 => free_port()?,
        port => port,
    };
    let mut children: Vec<Child> = Vec::with_capacity(spec.nproc);
    let mut forwarders = Vec::new();
    for rank in 0..spec.nproc {
        let spawned = Command::new(&spec.program)
            .args(&spec.args)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", spec.nproc.to_string())
            .env("LOCAL_WORLD_SIZE", spec.nproc.to_string())
            .env("MASTER_ADDR", &spec.master_addr)
            .env("MASTER_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                kill_all(&mut children);
                return Err(LaunchError::Spawn {
                    rank,
                    program: spec.program.display().to_string(),
                    message: e.to_string(),
                });
            }
        };
        if let Some(out) = child.stdout.take() {
            forwarders.push(forward(out, rank, Stream::Stdout, sink.clone()));
        }
        if let Some(err) = child.stderr.take() {
            forwarders.push(forward(err, rank, Stream::Stderr, sink.clone()));
        }
        children.push(child);
    }
    let outcome = supervise(&mut children);
    // The pipes close when the children end: every line is out after this.
    for forwarder in forwarders {
        let _ = forwarder.join();
    }
    outcome
}

/// Waits for every child; at the first failure kills the rest.
fn supervise(children: &mut [Child]) -> Result<(), LaunchError> {
    let mut running: Vec<usize> = (0..children.len()).collect();
    while !running.is_empty() {
        let mut still = Vec::with_capacity(running.len());
        for rank in running {
            match children[rank].try_wait() {
                Ok(Some(status)) if status.success() => {}
                Ok(Some(status)) => return Err(failed(children, rank, status)),
                Ok(None) => still.push(rank),
                Err(e) => {
                    kill_all(children);
                    return Err(LaunchError::RankFailed {
                        rank,
                        status: format!("could not be waited for ({e})"),
                        stopped: "stopped the other ranks".into(),
                        code: 1,
                    });
                }
            }
        }
        running = still;
        if !running.is_empty() {
            thread::sleep(POLL_EVERY);
        }
    }
    Ok(())
}

fn failed(children: &mut [Child], rank: usize, status: ExitStatus) -> LaunchError {
    let others = kill_all(children);
    let stopped = match others.as_slice() {
        [] => "no other rank was still running".to_string(),
        ranks => format!("killed rank(s) {ranks:?}, which were still running"),
    };
    let (status, code) = match status.code() {
        Some(code) => (
            format!("exited with status {code}"),
            u8::try_from(code).ok().filter(|&c| c != 0).unwrap_or(1),
        ),
        None => (describe_signal(status), 1),
    };
    LaunchError::RankFailed {
        rank,
        status,
        stopped,
        code,
    }
}

#[cfg(unix)]
fn describe_signal(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(signal) => format!("was killed by signal {signal}"),
        None => format!("ended with {status}"),
    }
}

#[cfg(not(unix))]
fn describe_signal(status: ExitStatus) -> String {
    format!("ended with {status}")
}

/// Kills (SIGKILL) and reaps every child still running; returns their ranks.
fn kill_all(children: &mut [Child]) -> Vec<usize> {
    let mut killed = Vec::new();
    for (rank, child) in children.iter_mut().enumerate() {
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            killed.push(rank);
        }
        let _ = child.wait();
    }
    killed
}

fn forward(
    pipe: impl Read + Send + 'static,
    rank: usize,
    stream: Stream,
    sink: LineSink,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        // Bytes, not `lines()`: a child's non-UTF-8 output must not stop the forwarding.
        while let Ok(n) = reader.read_until(b'\n', &mut line) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            sink(rank, stream, text.trim_end_matches(['\n', '\r']));
            line.clear();
        }
    })
}
