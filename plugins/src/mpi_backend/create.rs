//! Creating a group's communicator: a deadline-bounded handshake among the
//! members, then `MPI_Comm_create_group`, which only the members take part
//! in (unlike `MPI_Comm_split`, which every process of the world must call
//! for every split).
//!
//! Every member must create its groups in the same order. The handshake
//! checks it: each member sends the others a fingerprint of the group it is
//! creating; a different fingerprint means another process is creating a
//! different group at this point, and a missing one after the deadline means
//! it never came. Both are reported instead of hanging in MPI.

use std::collections::hash_map::DefaultHasher;
use std::ffi::c_int;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use cptrain::parallel::{CommError, GroupInfo};
use mpi::ffi;

use super::poll::{Request, null_request, poll, release, test};
use super::runtime::{Handle, check, lock, world};

/// Tag of handshake messages on `MPI_COMM_WORLD` (nothing else uses it for
/// point-to-point).
const HELLO_TAG: c_int = 7;

/// Tag that `MPI_Comm_create_group` uses internally; calls are serialized.
const CREATE_TAG: c_int = 8;

/// The communicator of `info` for this process (global rank `rank`).
pub(super) fn create_communicator(
    info: &GroupInfo,
    rank: usize,
    timeout: Duration,
) -> Result<Handle<ffi::MPI_Comm>, CommError> {
    handshake(info, rank, timeout)?;
    let ranks: Vec<c_int> = info.members.iter().map(|&m| m as c_int).collect();
    let _calls = lock();
    // SAFETY: MPI is initialized; `ranks` are valid world ranks (checked by
    // the caller) and every output is a valid pointer. Groups are freed
    // once the communicator exists.
    unsafe {
        let mut world_group = ffi::RSMPI_GROUP_NULL;
        check(
            ffi::MPI_Comm_group(world(), &mut world_group),
            "MPI_Comm_group",
        );
        let mut group = ffi::RSMPI_GROUP_NULL;
        check(
            ffi::MPI_Group_incl(
                world_group,
                ranks.len() as c_int,
                ranks.as_ptr(),
                &mut group,
            ),
            "MPI_Group_incl",
        );
        let mut comm = ffi::RSMPI_COMM_NULL;
        check(
            ffi::MPI_Comm_create_group(world(), group, CREATE_TAG, &mut comm),
            "MPI_Comm_create_group",
        );
        check(ffi::MPI_Group_free(&mut group), "MPI_Group_free");
        check(ffi::MPI_Group_free(&mut world_group), "MPI_Group_free");
        Ok(Handle(comm))
    }
}

fn fingerprint(info: &GroupInfo) -> u64 {
    let mut hasher = DefaultHasher::new();
    info.hash(&mut hasher);
    hasher.finish()
}

/// Returns once every member has announced the same group.
fn handshake(info: &GroupInfo, rank: usize, timeout: Duration) -> Result<(), CommError> {
    let peers: Vec<usize> = info
        .members
        .iter()
        .copied()
        .filter(|&m| m != rank)
        .collect();
    if peers.is_empty() {
        return Ok(());
    }
    let mine = Box::new(fingerprint(info));
    let mut theirs = vec![0u64; peers.len()];
    let mut sends: Vec<Request> = vec![null_request(); peers.len()];
    let mut recvs: Vec<Request> = vec![null_request(); peers.len()];
    {
        let _calls = lock();
        for (i, &peer) in peers.iter().enumerate() {
            // SAFETY: `mine` and `theirs` outlive the requests (they are
            // leaked below if the requests do not complete).
            unsafe {
                let u64_type = ffi::RSMPI_UINT64_T;
                check(
                    ffi::MPI_Isend(
                        std::ptr::from_ref::<u64>(&*mine).cast(),
                        1,
                        u64_type,
                        peer as c_int,
                        HELLO_TAG,
                        world(),
                        &mut sends[i].0,
                    ),
                    "MPI_Isend",
                );
                check(
                    ffi::MPI_Irecv(
                        theirs.as_mut_ptr().add(i).cast(),
                        1,
                        u64_type,
                        peer as c_int,
                        HELLO_TAG,
                        world(),
                        &mut recvs[i].0,
                    ),
                    "MPI_Irecv",
                );
            }
        }
    }
    let started = Instant::now();
    let all_done = poll(started, timeout, || {
        let mut done = true;
        for request in sends.iter_mut().chain(recvs.iter_mut()) {
            done &= test(request).is_some();
        }
        done.then_some(())
    });
    let invalid = |problem: String| CommError::InvalidGroup {
        group: info.clone(),
        rank,
        problem,
    };
    if all_done.is_none() {
        let missing: Vec<usize> = peers
            .iter()
            .zip(recvs.iter_mut())
            .filter_map(|(&p, r)| test(r).is_none().then_some(p))
            .collect();
        for request in sends.iter_mut().chain(recvs.iter_mut()) {
            release(request);
        }
        std::mem::forget(mine);
        std::mem::forget(theirs);
        return Err(invalid(format!(
            "rank(s) {missing:?} did not ask for this group within {timeout:?}; every process \
             must create its groups in the same order, and a member may have failed"
        )));
    }
    let expected = fingerprint(info);
    if let Some((&peer, _)) = peers.iter().zip(&theirs).find(|&(_, &f)| f != expected) {
        return Err(invalid(format!(
            "rank {peer} is creating a different group at this point; every process must \
             create its groups in the same order (same names and members)"
        )));
    }
    Ok(())
}
