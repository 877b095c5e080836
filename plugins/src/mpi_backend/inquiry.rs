//! Naming the rank that holds a timed-out wait up, across processes.
//!
//! A process whose wait times out sends a *progress query* (an empty message
//! with [`QUERY_TAG`] on `MPI_COMM_WORLD`) to every other process and
//! collects their [`Report`]s for at most [`REPLY_GRACE`] (less when the
//! timeout itself is shorter). Every process answers queries from inside
//! its waits (every poll of every wait checks for one), so a process
//! blocked in any communication answers within microseconds; one that is
//! stopped, dead or computing does not. From the
//! answers (and the silences), the timed-out process knows which members
//! have entered its collective and whom each waiting process waits for, and
//! [`find_holdup`] follows those waits to the rank that holds the job up.
//!
//! Queries are sent only after a timeout, which fails the job, so the
//! messages cost nothing in a healthy run but one `MPI_Iprobe` per poll.

use std::collections::BTreeMap;
use std::ffi::c_int;
use std::ptr::null_mut;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use cptrain::parallel::{Activity, Holdup, Wait, find_holdup};
use mpi::ffi;

use super::poll::poll;
use super::progress::{self, Report};
use super::runtime::{check, empty_status, lock, runtime, world};

/// Tag of progress queries on `MPI_COMM_WORLD`.
const QUERY_TAG: c_int = 9;

/// Tag of the answers.
const REPLY_TAG: c_int = 10;

/// How long a timed-out process waits for the answers.
pub(super) const REPLY_GRACE: Duration = Duration::from_secs(2);

/// The answers of this process's first inquiry, reused by later timeouts
/// (the answers are consumed by the first).
static ANSWERS: Mutex<Option<BTreeMap<usize, Report>>> = Mutex::new(None);

/// Answers every progress query that has arrived. Called by every poll.
pub(super) fn answer_queries() {
    loop {
        let source = {
            let _calls = lock();
            let mut flag: c_int = 0;
            let mut status = empty_status();
            // SAFETY: MPI is initialized; the outputs are valid pointers.
            check(
                unsafe {
                    ffi::MPI_Iprobe(
                        ffi::RSMPI_ANY_SOURCE,
                        QUERY_TAG,
                        world(),
                        &mut flag,
                        &mut status,
                    )
                },
                "MPI_Iprobe",
            );
            if flag == 0 {
                return;
            }
            // SAFETY: receives the empty message just probed (no buffer).
            check(
                unsafe {
                    ffi::MPI_Recv(
                        null_mut(),
                        0,
                        ffi::RSMPI_UINT8_T,
                        status.MPI_SOURCE,
                        QUERY_TAG,
                        world(),
                        ffi::RSMPI_STATUS_IGNORE,
                    )
                },
                "MPI_Recv",
            );
            status.MPI_SOURCE
        };
        send_and_forget(progress::report().encode().into_bytes(), source, REPLY_TAG);
    }
}

/// Sends `bytes` without waiting for completion. The buffer is leaked: MPI
/// may read it after the call, and this only happens while a job fails.
fn send_and_forget(bytes: Vec<u8>, to: c_int, tag: c_int) {
    let bytes: &'static [u8] = bytes.leak();
    let _calls = lock();
    let mut request = unsafe { ffi::RSMPI_REQUEST_NULL };
    // SAFETY: the buffer lives forever; freeing the request of a started
    // send lets it complete in the background.
    unsafe {
        check(
            ffi::MPI_Isend(
                bytes.as_ptr().cast(),
                bytes.len() as c_int,
                ffi::RSMPI_UINT8_T,
                to,
                tag,
                world(),
                &mut request,
            ),
            "MPI_Isend",
        );
        check(ffi::MPI_Request_free(&mut request), "MPI_Request_free");
    }
}

/// The reports of the processes that answer within `grace`, by rank.
fn inquire(grace: Duration) -> BTreeMap<usize, Report> {
    let mut answers = ANSWERS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(cached) = &*answers {
        return cached.clone();
    }
    let Ok(runtime) = runtime() else {
        return BTreeMap::new();
    };
    let others: Vec<usize> = (0..runtime.size).filter(|&r| r != runtime.rank).collect();
    for &rank in &others {
        send_and_forget(Vec::new(), rank as c_int, QUERY_TAG);
    }
    let mut received = BTreeMap::new();
    poll(Instant::now(), grace, || {
        while let Some((rank, text)) = receive_answer() {
            if let Some(report) = Report::decode(&text) {
                received.insert(rank, report);
            }
        }
        (received.len() == others.len()).then_some(())
    });
    *answers = Some(received.clone());
    received
}

/// One answer that has arrived: its sender and text.
fn receive_answer() -> Option<(usize, String)> {
    let _calls = lock();
    let mut flag: c_int = 0;
    let mut message = unsafe { ffi::RSMPI_MESSAGE_NULL };
    let mut status = empty_status();
    // SAFETY: MPI is initialized; the outputs are valid pointers.
    check(
        unsafe {
            ffi::MPI_Improbe(
                ffi::RSMPI_ANY_SOURCE,
                REPLY_TAG,
                world(),
                &mut flag,
                &mut message,
                &mut status,
            )
        },
        "MPI_Improbe",
    );
    if flag == 0 {
        return None;
    }
    let mut count: c_int = 0;
    // SAFETY: `status` was filled by the successful probe.
    check(
        unsafe { ffi::MPI_Get_count(&status, ffi::RSMPI_UINT8_T, &mut count) },
        "MPI_Get_count",
    );
    let mut bytes = vec![0u8; count.max(0) as usize];
    // SAFETY: `bytes` holds `count` bytes; the message was matched above and
    // has fully arrived, so the receive completes at once.
    check(
        unsafe {
            ffi::MPI_Mrecv(
                bytes.as_mut_ptr().cast(),
                count,
                ffi::RSMPI_UINT8_T,
                &mut message,
                ffi::RSMPI_STATUS_IGNORE,
            )
        },
        "MPI_Mrecv",
    );
    Some((
        status.MPI_SOURCE as usize,
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

/// For global rank `me`'s timed-out `wait`: the ranks that have not arrived
/// (for a collective: the members that have not entered it, as far as
/// their answers show) and the ranks holding the job up. When the answers
/// show every member inside the collective (they arrived after the
/// deadline), nothing better than `wait.on` is known.
pub(super) fn diagnose(me: usize, wait: &Wait, grace: Duration) -> (Vec<usize>, Holdup) {
    let mut reports = inquire(grace);
    reports.insert(me, progress::report());
    let mine = arrivals(me, wait, &reports);
    if mine.on.is_empty() {
        return (wait.on.clone(), Holdup::default());
    }
    let activities = reports
        .iter()
        .filter(|&(&rank, _)| rank != me)
        .map(|(&rank, report)| {
            let activity = if report.waits.is_empty() {
                Activity::Outside
            } else {
                let waits = report.waits.iter();
                Activity::Waiting(waits.map(|w| arrivals(rank, w, &reports)).collect())
            };
            (rank, activity)
        })
        .collect();
    let holdup = find_holdup(me, &mine, &activities);
    (mine.on, holdup)
}

/// `wait` of global rank `rank` with, for a collective, the members that
/// have not entered it (a process that did not answer counts as not
/// arrived); a send or receive waits for its peer.
fn arrivals(rank: usize, wait: &Wait, reports: &BTreeMap<usize, Report>) -> Wait {
    if !wait.op.is_collective() {
        return wait.clone();
    }
    let on = (wait.group.members.iter().copied())
        .filter(|&m| m != rank)
        .filter(|m| {
            !reports
                .get(m)
                .is_some_and(|r| r.entered(&wait.group, wait.seq))
        })
        .collect();
    Wait { on, ..wait.clone() }
}
