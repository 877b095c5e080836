//! Non-blocking send/receive: a ring with messages of several lengths
//! waited out of order, and a pairwise exchange that waits on the sends
//! first (which deadlocks if receives only progress inside their own wait).

use cptrain::parallel::{ProcessGroup, RankError, RecvHandle};

use crate::ensure;

pub fn check_all(g: &dyn ProcessGroup) -> Result<(), RankError> {
    ring(g)?;
    sends_first(g)
}

/// Message k from rank q holds `LENGTHS[k]` copies of `10q + k`.
const LENGTHS: [usize; 3] = [0, 3, 1 << 20];

fn ring(g: &dyn ProcessGroup) -> Result<(), RankError> {
    let (p, r) = (g.size(), g.rank());
    let (next, prev) = ((r + 1) % p, (r + p - 1) % p);
    let recvs: Vec<RecvHandle> = LENGTHS
        .iter()
        .map(|_| g.irecv(prev))
        .collect::<Result<_, _>>()?;
    let mut sends = Vec::new();
    for (k, &len) in LENGTHS.iter().enumerate() {
        sends.push(g.isend(next, vec![(10 * r + k) as f32; len])?);
    }
    // Waited last to first: each handle still gets its own message.
    for (k, handle) in recvs.into_iter().enumerate().rev() {
        let message = handle.wait()?;
        let expected = vec![(10 * prev + k) as f32; LENGTHS[k]];
        ensure(message == expected, || {
            format!(
                "ring message {k} from rank {prev}: {} elements, first {:?}",
                message.len(),
                message.first()
            )
        })?;
    }
    for send in sends {
        send.wait()?;
    }
    Ok(())
}

/// 16 MiB each way between partners `r` and `r ^ 1` (itself when alone),
/// waiting on the send before the receive.
fn sends_first(g: &dyn ProcessGroup) -> Result<(), RankError> {
    let (p, r) = (g.size(), g.rank());
    let partner = if r ^ 1 < p { r ^ 1 } else { r };
    let n = 4 << 20;
    let recv = g.irecv(partner)?;
    let send = g.isend(partner, vec![r as f32; n])?;
    send.wait()?;
    let message = recv.wait()?;
    ensure(
        message.len() == n && message.iter().all(|&x| x == partner as f32),
        || {
            format!(
                "exchange with rank {partner} gave {} elements",
                message.len()
            )
        },
    )
}
