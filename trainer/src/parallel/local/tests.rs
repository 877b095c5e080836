//! The local backend against obvious references, its accounting, and its
//! liveness guarantees (timeouts, world-wide abort).

use std::time::{Duration, Instant};

use crate::parallel::{
    CommError, GridSpec, GroupKind, LocalWorld, Op, ParallelGrid, ProcessGroup, RankFailure,
    ReduceOp, run_ranks,
};

type TestResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const LONG: Duration = Duration::from_secs(30);

/// Rank `r`'s i-th input: small integers, so sums are exact in f32.
fn input(r: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((r * 7 + i * 3) % 11) as f32 - 5.0)
        .collect()
}

fn run<T: Send>(size: usize, body: impl Fn(usize, &LocalWorld) -> TestResult<T> + Sync) -> Vec<T> {
    let world = LocalWorld::new(size, LONG);
    run_ranks(&world, |rank| body(rank, &world)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn all_reduce_matches_the_reference_on_both_paths() {
    // 5 elements take the one-round path; 40_000 the reduce-scatter path.
    for size in 1..=4 {
        for n in [5, 40_000] {
            let inputs: Vec<Vec<f32>> = (0..size).map(|r| input(r, n)).collect();
            let sum: Vec<f32> = (0..n).map(|i| inputs.iter().map(|x| x[i]).sum()).collect();
            let max: Vec<f32> = (0..n)
                .map(|i| inputs.iter().map(|x| x[i]).fold(f32::MIN, f32::max))
                .collect();
            let results = run(size, |rank, world| {
                let group = world.world_group(rank)?;
                let (mut s, mut m) = (input(rank, n), input(rank, n));
                group.all_reduce(&mut s, ReduceOp::Sum)?;
                group.all_reduce(&mut m, ReduceOp::Max)?;
                let mut d: Vec<f64> = input(rank, n).iter().map(|&x| f64::from(x) + 0.5).collect();
                group.all_reduce_f64(&mut d, ReduceOp::Sum)?;
                Ok((s, m, d))
            });
            for (s, m, d) in results {
                assert!(s == sum, "sum P={size} n={n}");
                assert!(m == max, "max P={size} n={n}");
                let expected: Vec<f64> = sum
                    .iter()
                    .map(|&x| f64::from(x) + 0.5 * size as f64)
                    .collect();
                assert!(d == expected, "f64 sum P={size} n={n}");
            }
        }
    }
}

#[test]
fn all_reduce_gives_every_rank_the_same_bits() {
    for size in 2..=4 {
        let n = 50_000;
        let values = |r: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 31 + r * 17) as f32).sin() / 3.0)
                .collect()
        };
        let inputs: Vec<Vec<f32>> = (0..size).map(values).collect();
        let rank_order_sum: Vec<f32> = (0..n)
            .map(|i| inputs[1..].iter().fold(inputs[0][i], |acc, x| acc + x[i]))
            .collect();
        let results = run(size, |rank, world| {
            let mut x = values(rank);
            world.world_group(rank)?.all_reduce(&mut x, ReduceOp::Sum)?;
            Ok(x)
        });
        for x in results {
            assert!(
                x.iter()
                    .zip(&rank_order_sum)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
        }
    }
}

#[test]
fn gather_scatter_all_to_all_and_broadcast_match_references() {
    for size in 1..=4 {
        let n = 6;
        let inputs: Vec<Vec<f32>> = (0..size).map(|r| input(r, n * size)).collect();
        let results = run(size, |rank, world| {
            let group = world.world_group(rank)?;
            let mut gathered = vec![0.0; n * size];
            group.all_gather(&inputs[rank][..n], &mut gathered)?;
            let mut scattered = vec![0.0; n];
            group.reduce_scatter(&inputs[rank], &mut scattered, ReduceOp::Sum)?;
            let mut exchanged = vec![0.0; n * size];
            group.all_to_all(&inputs[rank], &mut exchanged)?;
            let mut broadcasts = Vec::new();
            for root in 0..size {
                let mut buf = input(rank, n);
                group.broadcast(&mut buf, root)?;
                broadcasts.push(buf);
            }
            group.barrier()?;
            Ok((gathered, scattered, exchanged, broadcasts))
        });
        let gathered: Vec<f32> = inputs.iter().flat_map(|x| x[..n].to_vec()).collect();
        for (rank, (g, s, a, b)) in results.into_iter().enumerate() {
            assert_eq!(g, gathered, "all_gather P={size}");
            let block = rank * n..(rank + 1) * n;
            let sum: Vec<f32> = block
                .clone()
                .map(|i| inputs.iter().map(|x| x[i]).sum())
                .collect();
            assert_eq!(s, sum, "reduce_scatter P={size} rank {rank}");
            let from_each: Vec<f32> = inputs
                .iter()
                .flat_map(|x| x[block.clone()].to_vec())
                .collect();
            assert_eq!(a, from_each, "all_to_all P={size} rank {rank}");
            for (root, buf) in b.iter().enumerate() {
                assert_eq!(buf, &input(root, n), "broadcast P={size} root {root}");
            }
        }
    }
}

#[test]
fn subgroups_of_a_grid_communicate_independently() {
    let grid = ParallelGrid::new(&GridSpec::new(4, 2, 2)).unwrap();
    let results = run(4, |rank, world| {
        let cp = world.group("cp", &grid.group(GroupKind::Cp, rank), rank)?;
        let tp = world.group("tp", &grid.group(GroupKind::Tp, rank), rank)?;
        let mut x = [rank as f32];
        cp.all_reduce(&mut x, ReduceOp::Sum)?;
        let mut y = [rank as f32];
        tp.all_reduce(&mut y, ReduceOp::Max)?;
        Ok((cp.rank(), x[0], y[0]))
    });
    // CP groups [0,2], [1,3]; TP groups [0,1], [2,3].
    assert_eq!(
        results,
        [(0, 2.0, 1.0), (0, 4.0, 1.0), (1, 2.0, 3.0), (1, 4.0, 3.0)]
    );
}

#[test]
fn ring_exchanges_never_deadlock_and_keep_order() {
    // P = 2 has the same peer both ways; odd P exercises an odd ring.
    for size in [1, 2, 3, 5] {
        let steps = 4;
        let results = run(size, |rank, world| {
            let group = world.world_group(rank)?;
            let (next, prev) = ((rank + 1) % size, (rank + size - 1) % size);
            let mut block = vec![rank as f32; 3];
            let mut owners = Vec::new();
            for _ in 0..steps {
                // Receive posted first, send second, wait last: any order works.
                let recv = group.irecv(prev)?;
                let send = group.isend(next, block.clone())?;
                block = recv.wait()?;
                send.wait()?;
                owners.push(block[0] as usize);
            }
            Ok(owners)
        });
        for (rank, owners) in results.into_iter().enumerate() {
            let expected: Vec<usize> = (1..=steps)
                .map(|i| (rank + size * steps - i) % size)
                .collect();
            assert_eq!(owners, expected, "P={size} rank {rank}");
        }
    }
}

#[test]
fn receives_match_sends_in_posting_order() {
    let results = run(2, |rank, world| {
        let group = world.world_group(rank)?;
        let peer = 1 - rank;
        let first = group.irecv(peer)?;
        let second = group.irecv(peer)?;
        for k in 0..2 {
            group.isend(peer, vec![k as f32])?.wait()?;
        }
        // Waiting out of order still pairs the k-th receive with the k-th send.
        let b = second.wait()?;
        let a = first.wait()?;
        Ok((a, b))
    });
    assert!(results.iter().all(|(a, b)| a == &[0.0] && b == &[1.0]));
}

#[test]
fn statistics_count_calls_and_bytes() {
    let size = 3;
    let stats = run(size, |rank, world| {
        let group = world.world_group(rank)?;
        let before = group.stats();
        let mut g = vec![0.0; 4 * size];
        group.all_gather(&[1.0; 4], &mut g)?;
        let mut r = [0.0; 2];
        group.reduce_scatter(&[1.0; 2 * 3], &mut r, ReduceOp::Sum)?;
        let next = (rank + 1) % size;
        let recv = group.irecv((rank + size - 1) % size)?;
        group.isend(next, vec![0.0; 10])?.wait()?;
        recv.wait()?;
        group.barrier()?;
        Ok(group.stats().since(&before))
    });
    for s in stats {
        for (op, calls) in [
            (Op::AllGather, 1),
            (Op::ReduceScatter, 1),
            (Op::Send, 1),
            (Op::Recv, 1),
            (Op::Barrier, 1),
            (Op::AllReduce, 0),
        ] {
            assert_eq!(s.calls(op), calls, "{op}");
        }
        // all_gather: 2 peers × 4 floats; reduce_scatter: 2 × 2; send: 10.
        assert_eq!(s.bytes_sent, (8 + 4 + 10) * 4);
        assert_eq!(s.bytes_received, (8 + 4 + 10) * 4);
    }
}

/// While logging, each blocking wait is kept as a span: rank 0's barrier,
/// entered while rank 1 sleeps, has a span that ends only after rank 1
/// entered its own; the spans lie inside the call and add up to exactly
/// what the wait counter adds; nothing is kept before or after.
#[test]
fn logged_waits_are_the_blocking_intervals_the_counter_sums() {
    let ranks = run(2, |rank, world| {
        let group = world.world_group(rank)?;
        group.barrier()?;
        assert!(group.take_waits().is_empty(), "off when created");
        group.log_waits(true);
        let before = group.stats().wait;
        if rank == 1 {
            std::thread::sleep(Duration::from_millis(50));
        }
        let called = Instant::now();
        group.barrier()?;
        let returned = Instant::now();
        let waited = group.stats().wait - before;
        let spans = group.take_waits();
        group.log_waits(false);
        group.barrier()?;
        assert!(group.take_waits().is_empty(), "off again");
        for span in &spans {
            assert!(called <= span.start && span.end <= returned);
        }
        let total: Duration = spans.iter().map(|s| s.end - s.start).sum();
        assert_eq!(total, waited, "the spans are what the counter adds");
        Ok((called, spans))
    });
    let (rank1_called, _) = ranks[1];
    let rank0_waited_until = ranks[0].1.iter().map(|s| s.end).max();
    assert!(
        rank0_waited_until.is_some_and(|end| end >= rank1_called),
        "rank 0 waits until rank 1 arrives"
    );
}

#[test]
fn a_missing_peer_times_out_naming_operation_group_and_peer() {
    let world = LocalWorld::new(2, Duration::from_millis(200));
    let started = Instant::now();
    let err = run_ranks(&world, |rank| -> TestResult<()> {
        let group = world.world_group(rank)?;
        if rank == 0 {
            let mut out = [0.0; 2];
            group.all_gather(&[1.0], &mut out)?;
        }
        Ok(())
    })
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.rank, 0);
    let message = err.to_string();
    for needle in [
        "all_gather",
        "group `world` [0, 1]",
        "rank 0",
        "rank(s) [1]",
        "200ms",
    ] {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
}

/// Rank 2 hangs outside communication; rank 3 waits for its message, ranks
/// 0 and 1 in an all-reduce that needs 2 and 3. Whichever times out first
/// names its own missing peers and, behind them, rank 2.
#[test]
fn a_timeout_names_the_rank_holding_the_job_up() {
    let world = LocalWorld::new(4, Duration::from_millis(200));
    let err = run_ranks(&world, |rank| -> TestResult<()> {
        let group = world.world_group(rank)?;
        match rank {
            // Stuck (computing, say) until the timeout stops the world.
            2 => {
                while world.abort_cause().is_none() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            3 => drop(group.irecv(2)?.wait()?),
            _ => group.all_reduce(&mut [1.0], ReduceOp::Sum)?,
        }
        Ok(())
    })
    .unwrap_err();
    let RankFailure::Error(error) = &err.failure else {
        panic!("{err}");
    };
    let message = error.to_string();
    let world_group = "group `world` [0, 1, 2, 3]";
    let held_up = "held up by rank 2, which is in no communication call";
    let expected = if err.rank == 3 {
        format!(
            "recv #0 on {world_group} timed out on rank 3 after 200ms waiting for rank(s) [2]; {held_up}"
        )
    } else {
        format!(
            "all_reduce #0 on {world_group} timed out on rank {} after 200ms waiting for rank(s) \
             [2, 3]; {held_up}: busy, finished, or stuck elsewhere; rank 3 waits for [2] in recv \
             #0 on {world_group}",
            err.rank
        )
    };
    assert!(
        message.contains(&expected),
        "expected `{expected}` in: {message}"
    );
}

#[test]
fn a_failing_rank_stops_every_other_rank_promptly() {
    for inject_panic in [false, true] {
        let world = LocalWorld::new(4, Duration::from_secs(60));
        let started = Instant::now();
        let err = run_ranks(&world, |rank| -> TestResult<()> {
            let group = world.world_group(rank)?;
            group.barrier()?;
            if rank == 2 {
                assert!(!inject_panic, "injected panic");
                return Err("injected failure".into());
            }
            // Blocks forever without the abort: rank 2 never arrives.
            group.barrier()?;
            let recv = group.irecv(2)?;
            recv.wait()?;
            Ok(())
        })
        .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!((err.rank, err.failed_ranks), (2, 4));
        match (&err.failure, inject_panic) {
            (RankFailure::Panic(m), true) => assert!(m.contains("injected panic")),
            (RankFailure::Error(e), false) => assert_eq!(e.to_string(), "injected failure"),
            (other, _) => panic!("unexpected {other:?}"),
        }
        // Later calls fail at once, naming the origin.
        let group = world.world_group(0).unwrap();
        let error = group.barrier().unwrap_err();
        assert!(
            matches!(error, CommError::Aborted { origin: 2, .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("because rank 2 failed"),
            "{error}"
        );
    }
}

#[test]
fn mismatched_collectives_are_reported_not_hung() {
    let world = LocalWorld::new(2, LONG);
    let err = run_ranks(&world, |rank| -> TestResult<()> {
        let mut x = vec![0.0; 3 + rank];
        world.world_group(rank)?.all_reduce(&mut x, ReduceOp::Sum)?;
        Ok(())
    })
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("does not match"), "{message}");
    assert!(
        message.contains("all_reduce on 3 f32") || message.contains("all_reduce on 4 f32"),
        "{message}"
    );
}

#[test]
fn bad_groups_and_buffers_are_usage_errors() {
    let world = LocalWorld::new(3, LONG);
    let cases: [(&[usize], usize, &str); 4] = [
        (&[], 0, "at least one member"),
        (&[0, 3], 0, "outside a world of 3"),
        (&[0, 1, 0], 0, "listed twice"),
        (&[1, 2], 0, "rank 0 is not a member"),
    ];
    for (members, rank, needle) in cases {
        let message = world
            .group("g", members, rank)
            .err()
            .expect("invalid")
            .to_string();
        assert!(message.contains(needle), "{message}");
    }
    let solo = LocalWorld::new(1, LONG);
    let group = solo.world_group(0).unwrap();
    let message = group
        .all_gather(&[1.0; 2], &mut [0.0; 3])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("recv has 3 elements, expected 2"),
        "{message}"
    );
    let message = group.isend(1, vec![]).err().expect("bad peer").to_string();
    assert!(message.contains("peer 1 is not a group rank"), "{message}");
}
