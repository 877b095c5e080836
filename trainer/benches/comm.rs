//! Bandwidth of the `local` backend (ranks = threads) at 16 MiB, the size at
//! which a plain-threads probe measured the in-process limits on the
//! project's 2-core machine (all-gather P=2 ≈ 4.5 ms, all-reduce P=2
//! ≈ 14 ms). One iteration: every rank runs one
//! operation on buffers touched beforehand; thread start-up (~0.1 ms) is
//! included.

use std::time::Duration;

use cptrain::parallel::{LocalWorld, ProcessGroup, ReduceOp, run_ranks};
use divan::Bencher;

fn main() {
    divan::main();
}

/// 16 MiB of f32.
const ELEMENTS: usize = 4 << 20;

/// Runs `op(group, rank buffer)` once on every rank of a fresh world.
fn bench_op(
    bencher: Bencher,
    ranks: usize,
    len: usize,
    op: impl Fn(&dyn ProcessGroup, &mut Vec<f32>) + Sync,
) {
    bencher
        .with_inputs(|| (0..ranks).map(|r| vec![r as f32; len]).collect::<Vec<_>>())
        .bench_values(|buffers| {
            let world = LocalWorld::new(ranks, Duration::from_secs(60));
            let buffers: Vec<std::sync::Mutex<Vec<f32>>> =
                buffers.into_iter().map(Into::into).collect();
            run_ranks(&world, |rank| {
                let group = world.world_group(rank)?;
                op(
                    &group,
                    &mut buffers[rank].lock().expect("one user per buffer"),
                );
                Ok::<_, cptrain::parallel::CommError>(())
            })
            .expect("bench ranks succeed");
        });
}

/// All-reduce (sum) of 16 MiB on every rank.
#[divan::bench(args = [2, 4])]
fn all_reduce_16mib(bencher: Bencher, ranks: usize) {
    bench_op(bencher, ranks, ELEMENTS, |group, buf| {
        group.all_reduce(buf, ReduceOp::Sum).expect("all_reduce");
    });
}

/// All-gather with 16 MiB in total (16/P MiB from each rank).
#[divan::bench(args = [2, 4])]
fn all_gather_16mib_total(bencher: Bencher, ranks: usize) {
    bench_op(bencher, ranks, ELEMENTS / ranks, |group, buf| {
        let mut out = vec![0.0; ELEMENTS];
        group.all_gather(buf, &mut out).expect("all_gather");
        divan::black_box(&out);
    });
}

/// One ring step: every rank sends 16 MiB to the next and receives from the
/// previous (the p2p attention's K/V rotation; the sender's copy included).
#[divan::bench(args = [2, 4])]
fn ring_step_16mib(bencher: Bencher, ranks: usize) {
    bench_op(bencher, ranks, ELEMENTS, |group, buf| {
        let (r, p) = (group.rank(), group.size());
        let recv = group.irecv((r + p - 1) % p).expect("irecv");
        let send = group.isend((r + 1) % p, buf.clone()).expect("isend");
        *buf = recv.wait().expect("recv");
        send.wait().expect("send");
    });
}
