//! The TCP rendezvous and the launcher on loopback: ranks as threads and as
//! real processes exchange rank 0's blob; a missing rank, a mismatched
//! world size, a duplicate or out-of-range rank fail every rank with a
//! message naming the problem; a failing process stops the launch.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use cptrain_plugins::launch::{
    Hello, IdExchange, IdExchangeError, LaunchEnv, LaunchError, LaunchSpec, LineSink, Master,
    RendezvousError, RendezvousServer, Stream, launch, rendezvous,
};

/// Generous: a loaded CI machine may start threads slowly; a test that
/// expects a timeout uses a short one instead.
const TIMEOUT: Duration = Duration::from_secs(30);

fn loopback(port: u16) -> Master {
    Master {
        addr: "127.0.0.1".into(),
        port,
    }
}

fn hello(rank: usize, world_size: usize) -> Hello {
    Hello {
        rank,
        world_size,
        job: "test job".into(),
    }
}

/// A 128-byte blob like NCCL's unique id, distinct from zeros.
fn blob() -> Vec<u8> {
    (0..128u8)
        .map(|b| b.wrapping_mul(37).wrapping_add(1))
        .collect()
}

/// Rank 0's result and every other rank's.
type Outcome = (
    Result<(), RendezvousError>,
    Vec<Result<Vec<u8>, RendezvousError>>,
);

/// Rank 0 serves `blob()` to a world of `world_size` for up to
/// `timeout`; the hellos in `others` connect from threads and wait up to
/// `client_timeout`.
fn run(
    world_size: usize,
    others: Vec<Hello>,
    timeout: Duration,
    client_timeout: Duration,
) -> Outcome {
    let server = RendezvousServer::bind(&loopback(0)).unwrap();
    let master = loopback(server.port());
    let clients: Vec<_> = others
        .into_iter()
        .map(|me| {
            let master = master.clone();
            thread::spawn(move || rendezvous::fetch(&master, &me, client_timeout))
        })
        .collect();
    let served = server.serve(&hello(0, world_size), &blob(), timeout);
    // Closes the port: a rank still queued there fails at once.
    drop(server);
    let fetched = clients.into_iter().map(|c| c.join().unwrap()).collect();
    (served, fetched)
}

/// Four ranks as threads, arriving in any order, all get rank 0's bytes.
#[test]
fn threads_exchange_the_blob() {
    let others = [3, 1, 2].map(|r| hello(r, 4)).to_vec();
    let (served, fetched) = run(4, others, TIMEOUT, TIMEOUT);
    served.unwrap();
    for got in fetched {
        assert_eq!(got.unwrap(), blob());
    }
}

/// A rank that never arrives: rank 0 names it, and the ranks that did
/// arrive fail with the same reason instead of waiting on.
#[test]
fn a_missing_rank_is_named_on_every_rank() {
    let others = vec![hello(1, 4), hello(3, 4)];
    let (served, fetched) = run(4, others, Duration::from_millis(1500), TIMEOUT);
    let error = served.unwrap_err().to_string();
    assert!(
        error.contains("rank(s) [2] of the 4 never arrived"),
        "{error}"
    );
    for got in fetched {
        let message = got.unwrap_err().to_string();
        assert!(message.contains("[2] of the 4 never arrived"), "{message}");
    }
}

/// Every disagreement fails rank 0 and every connected rank with one text.
#[test]
fn disagreements_fail_every_rank() {
    let mut other_job = hello(2, 3);
    other_job.job = "another".into();
    let cases = [
        (
            vec![hello(1, 3), hello(2, 4)],
            "launched with world size 4 but rank 0 with 3",
        ),
        (
            vec![hello(1, 3), hello(7, 3)],
            "reported rank 7, outside the world of 3",
        ),
        (vec![hello(0, 3)], "two processes reported rank 0"),
        (vec![hello(1, 3), other_job], "belongs to another job"),
    ];
    for (others, expected) in cases {
        // A rank arriving after the refusal finds the port closed and gives
        // up at its own (short) deadline.
        let (served, fetched) = run(3, others, TIMEOUT, Duration::from_secs(2));
        let error = served.unwrap_err().to_string();
        assert!(error.contains(expected), "rank 0: {error}");
        // The offender and those that arrived before it are told.
        let told = fetched
            .iter()
            .filter(|r| r.as_ref().is_err_and(|e| e.to_string().contains(expected)));
        assert!(told.count() >= 1, "{expected}: {fetched:?}");
    }
}

/// Two ranks with the same number: the second one is refused.
#[test]
fn a_duplicate_rank_is_refused() {
    let (served, _) = run(
        3,
        vec![hello(1, 3), hello(1, 3)],
        TIMEOUT,
        Duration::from_secs(2),
    );
    let error = served.unwrap_err().to_string();
    assert!(error.contains("two processes reported rank 1"), "{error}");
}

/// No rank 0: the others give up at the deadline, naming the address.
#[test]
fn an_absent_rank_0_is_reported_at_the_deadline() {
    let port = RendezvousServer::bind(&loopback(0)).unwrap().port();
    // The listener is dropped: nothing listens on `port` now.
    let error = rendezvous::fetch(&loopback(port), &hello(1, 2), Duration::from_millis(500))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("could not reach rank 0 at 127.0.0.1:"),
        "{error}"
    );
}

/// A second rank 0 on the same port cannot listen, and says why.
#[test]
fn a_port_in_use_is_reported() {
    let first = RendezvousServer::bind(&loopback(0)).unwrap();
    let error = RendezvousServer::bind(&loopback(first.port()))
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("choose another port"), "{error}");
}

/// The lines a launch printed, by rank and stream.
type Lines = Arc<Mutex<Vec<(usize, Stream, String)>>>;

fn collect() -> (Lines, LineSink) {
    let lines = Lines::default();
    let sink = lines.clone();
    let sink: LineSink = Arc::new(move |rank, stream, line: &str| {
        sink.lock().unwrap().push((rank, stream, line.to_string()));
    });
    (lines, sink)
}

/// A rank of [`processes_exchange_an_id`], which runs this test binary
/// with the test's name as its first argument; does nothing in a plain run
/// of the suite.
#[test]
fn child_rank() {
    if std::env::args().nth(1).as_deref() != Some("child_rank") {
        return;
    }
    let env = LaunchEnv::from_env().unwrap();
    let me = Hello {
        rank: env.rank,
        world_size: env.world_size,
        job: "processes".into(),
    };
    let exchange = IdExchange::for_launch(&env).unwrap();
    assert!(matches!(exchange, IdExchange::Tcp(_)), "{exchange:?}");
    let got = exchange
        .exchange::<IdExchangeError>(&me, TIMEOUT, || Ok(blob()))
        .unwrap();
    let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
    println!("\nblob {hex}");
}

/// Three processes started by the launcher (this test binary, running
/// only [`child_rank`]) read their rank from the environment, rendezvous
/// on a free loopback port and all print rank 0's blob.
#[test]
fn processes_exchange_an_id() {
    let spec = LaunchSpec {
        program: std::env::current_exe().unwrap(),
        args: ["child_rank", "--exact", "--nocapture", "--test-threads=1"]
            .map(Into::into)
            .to_vec(),
        nproc: 3,
        master_addr: "127.0.0.1".into(),
        master_port: 0,
    };
    let (lines, sink) = collect();
    launch(&spec, sink).unwrap();
    let expected: String = blob().iter().map(|b| format!("{b:02x}")).collect();
    let lines = lines.lock().unwrap();
    for rank in 0..3 {
        let got = lines
            .iter()
            .filter(|(r, s, l)| *r == rank && *s == Stream::Stdout && l.starts_with("blob "))
            .map(|(_, _, l)| l.trim_start_matches("blob ").to_string())
            .collect::<Vec<_>>();
        assert_eq!(
            got,
            std::slice::from_ref(&expected),
            "rank {rank}: {lines:?}"
        );
    }
}

/// One rank fails: the launch stops, kills the rank still running, names
/// the failed rank and keeps its exit code.
#[test]
fn a_failing_rank_stops_the_launch() {
    let spec = LaunchSpec {
        program: "sh".into(),
        args: [
            "-c",
            "if [ \"$RANK\" = 1 ]; then echo bad >&2; exit 3; fi; exec sleep 600",
        ]
        .map(Into::into)
        .to_vec(),
        nproc: 3,
        master_addr: "127.0.0.1".into(),
        master_port: 29999,
    };
    let (lines, sink) = collect();
    let error = launch(&spec, sink).unwrap_err();
    assert_eq!(error.exit_code(), 3);
    let LaunchError::RankFailed { rank, stopped, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(*rank, 1);
    assert!(stopped.contains("killed rank(s) [0, 2]"), "{error}");
    assert!(
        lines
            .lock()
            .unwrap()
            .contains(&(1, Stream::Stderr, "bad".into()))
    );
}
