//! Sub-groups (like the CP and DP groups of a 2×2 grid), their caching and
//! rank order, statistics, and errors.

use std::sync::Arc;

use cptrain::parallel::{Backend, CommError, Op, ProcessGroup, RankError, ReduceOp};

use crate::ensure;

pub fn check_all(backend: &dyn Backend, rank: usize) -> Result<(), RankError> {
    let p = backend.world_size();
    // Created in the same order on every process.
    let pairs: Vec<usize> = (rank & !1..(rank | 1) + 1).filter(|&m| m < p).collect();
    let strided: Vec<usize> = (rank % 2..p).step_by(2).collect();
    let reversed: Vec<usize> = (0..p).rev().collect();
    for (name, members) in [("pairs", &pairs), ("strided", &strided), ("rev", &reversed)] {
        let group = backend.group(name, members, rank)?;
        check_subgroup(&*group, members, rank)?;
        let again = backend.group(name, members, rank)?;
        ensure(
            std::ptr::addr_eq(Arc::as_ptr(&group), Arc::as_ptr(&again)),
            || format!("group `{name}` was created twice"),
        )?;
    }
    let fresh = backend.group("stats", &reversed, rank)?;
    check_stats(&*fresh)?;
    check_invalid_groups(backend, rank)
}

/// Group rank = position in `members`; sums and a ring stay inside the group.
fn check_subgroup(g: &dyn ProcessGroup, members: &[usize], rank: usize) -> Result<(), RankError> {
    let position = members.iter().position(|&m| m == rank);
    ensure(
        Some(g.rank()) == position && g.size() == members.len(),
        || format!("rank {rank} is group rank {} of {:?}", g.rank(), members),
    )?;
    let mut x = [rank as f32];
    g.all_reduce(&mut x, ReduceOp::Sum)?;
    let sum: usize = members.iter().sum();
    ensure(x[0] == sum as f32, || {
        format!("sum over {members:?} gave {}", x[0])
    })?;
    let n = g.size();
    let next = (g.rank() + 1) % n;
    let prev = (g.rank() + n - 1) % n;
    let recv = g.irecv(prev)?;
    g.isend(next, vec![rank as f32])?.wait()?;
    let message = recv.wait()?;
    ensure(message == [members[prev] as f32], || {
        format!("ring in {members:?}: got {message:?} from group rank {prev}")
    })
}

/// Calls and bytes of one all-gather of 4 floats and one 5-float message.
fn check_stats(g: &dyn ProcessGroup) -> Result<(), RankError> {
    let p = g.size();
    let before = g.stats();
    let mut recv = vec![0.0f32; 4 * p];
    g.all_gather(&[1.0; 4], &mut recv)?;
    let recv_handle = g.irecv((g.rank() + p - 1) % p)?;
    g.isend((g.rank() + 1) % p, vec![0.0; 5])?.wait()?;
    recv_handle.wait()?;
    let delta = g.stats().since(&before);
    let bytes = ((p - 1) * 4 * 4 + 5 * 4) as u64;
    let ok = delta.calls(Op::AllGather) == 1
        && delta.calls(Op::Send) == 1
        && delta.calls(Op::Recv) == 1
        && delta.calls(Op::AllReduce) == 0
        && delta.bytes_sent == bytes
        && delta.bytes_received == bytes;
    ensure(ok, || {
        format!("stats {delta:?}, expected {bytes} bytes each way")
    })
}

fn check_invalid_groups(backend: &dyn Backend, rank: usize) -> Result<(), RankError> {
    let p = backend.world_size();
    let others: Vec<usize> = (0..p).filter(|&m| m != rank).collect();
    for (members, why) in [
        (vec![rank, rank], "listed twice"),
        (vec![rank, p], "outside a world"),
        (others, "not a member"),
    ] {
        let error = backend.group("bad", &members, rank).err();
        let ok = matches!(&error, Some(e @ CommError::InvalidGroup { .. }) if e.to_string().contains(why))
            || (members.is_empty() && error.is_some());
        ensure(ok, || {
            format!("group {members:?}: expected `{why}`, got {error:?}")
        })?;
    }
    Ok(())
}

/// A wrong size is a usage error, and it stops this process's later calls.
pub fn check_usage_errors(g: &dyn ProcessGroup) -> Result<(), RankError> {
    let mut too_small = [0.0f32; 1];
    let error = g.all_gather(&[1.0, 2.0], &mut too_small).err();
    let ok = matches!(&error, Some(e @ CommError::Usage { .. }) if e.to_string().contains("recv has 1 elements"));
    ensure(ok, || format!("wrong all_gather size gave {error:?}"))?;
    let after = g.barrier().err();
    ensure(matches!(after, Some(CommError::Aborted { .. })), || {
        format!("a call after a usage error gave {after:?}")
    })
}
