//! Which rank holds up a wait that timed out.
//!
//! A rank that times out knows only whom *it* waited for: its ring neighbour,
//! or (for a collective) the members that had not arrived. The neighbour is
//! often waiting itself, for the rank that is really stuck. Given what every
//! rank was doing at that moment, [`find_holdup`] follows the waits from the
//! timed-out one to the ranks that wait for nobody: those hold the job up.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use super::comm::{GroupInfo, Op};

/// One blocked operation of a rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wait {
    /// The operation.
    pub op: Op,
    /// The group it runs on.
    pub group: GroupInfo,
    /// Its number, from 0: for a collective, how many collectives this rank
    /// called on the group before it; for a send or receive, how many
    /// messages to or from the same peer came before it.
    pub seq: u64,
    /// The global ranks it still waits for.
    pub on: Vec<usize>,
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} #{} on {}", self.op, self.seq, self.group)
    }
}

/// What a rank was doing when another rank's wait timed out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Activity {
    /// Blocked in these operations.
    Waiting(Vec<Wait>),
    /// In no communication call: computing, finished, or stuck elsewhere.
    Outside,
    /// Did not answer the progress query in time: stopped, dead, or
    /// computing outside communication.
    Silent,
}

/// The ranks that hold up a timed-out wait, and the waits leading to them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holdup {
    /// Ranks waiting for nobody that the timed-out wait (directly or
    /// through other waits) depends on, in rank order.
    pub stuck: Vec<(usize, Activity)>,
    /// Waiting ranks between the timed-out rank and the stuck ones.
    pub chain: Vec<(usize, Wait)>,
}

impl Holdup {
    /// The global ranks holding the job up.
    pub fn stuck_ranks(&self) -> Vec<usize> {
        self.stuck.iter().map(|(rank, _)| *rank).collect()
    }
}

impl fmt::Display for Holdup {
    /// Empty when nothing is known; otherwise `; held up by …` (to follow a
    /// timeout message).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stuck.is_empty() && self.chain.is_empty() {
            return Ok(());
        }
        if self.stuck.is_empty() {
            f.write_str("; the waiting ranks wait for each other (a cycle: mismatched calls)")?;
        }
        for (i, (rank, activity)) in self.stuck.iter().enumerate() {
            let why = match activity {
                Activity::Silent => {
                    "did not answer the progress query: stopped, dead, or busy outside \
                     communication"
                }
                _ => "is in no communication call: busy, finished, or stuck elsewhere",
            };
            let lead = if i == 0 { "; held up by" } else { "," };
            write!(f, "{lead} rank {rank}, which {why}")?;
        }
        for (rank, wait) in &self.chain {
            write!(f, "; rank {rank} waits for {:?} in {wait}", wait.on)?;
        }
        Ok(())
    }
}

/// Follows the dependencies of global rank `me`'s wait `waited` through
/// `activities` (what every other rank was doing; a rank not in the map
/// counts as [`Activity::Silent`]).
pub fn find_holdup(me: usize, waited: &Wait, activities: &BTreeMap<usize, Activity>) -> Holdup {
    let mut holdup = Holdup::default();
    let mut seen = BTreeSet::from([me]);
    let mut queue: VecDeque<usize> = waited.on.iter().copied().collect();
    while let Some(rank) = queue.pop_front() {
        if !seen.insert(rank) {
            continue;
        }
        match activities.get(&rank).cloned().unwrap_or(Activity::Silent) {
            Activity::Waiting(waits) => {
                for wait in waits {
                    queue.extend(wait.on.iter().copied());
                    holdup.chain.push((rank, wait));
                }
            }
            other => holdup.stuck.push((rank, other)),
        }
    }
    holdup.stuck.sort_by_key(|(rank, _)| *rank);
    holdup
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(op: Op, members: &[usize], on: &[usize]) -> Wait {
        Wait {
            op,
            group: GroupInfo {
                name: "cp".into(),
                members: members.to_vec(),
            },
            seq: 3,
            on: on.to_vec(),
        }
    }

    /// In a ring 0 ← 3 ← 2, the stuck rank is 2, not 0's neighbour 3.
    #[test]
    fn the_chain_of_waits_leads_past_the_neighbour_to_the_stuck_rank() {
        let mine = wait(Op::Recv, &[0, 1, 2, 3], &[3]);
        let activities = BTreeMap::from([
            (
                1,
                Activity::Waiting(vec![wait(Op::Recv, &[0, 1, 2, 3], &[0])]),
            ),
            (2, Activity::Silent),
            (
                3,
                Activity::Waiting(vec![wait(Op::Recv, &[0, 1, 2, 3], &[2])]),
            ),
        ]);
        let holdup = find_holdup(0, &mine, &activities);
        assert_eq!(holdup.stuck_ranks(), [2]);
        assert_eq!(
            holdup.chain.len(),
            1,
            "only rank 3 lies between: {holdup:?}"
        );
        let text = holdup.to_string();
        assert!(
            text.starts_with("; held up by rank 2, which did not answer"),
            "{text}"
        );
        assert!(
            text.contains("rank 3 waits for [2] in recv #3 on group `cp` [0, 1, 2, 3]"),
            "{text}"
        );
    }

    /// Ranks that wait only for each other are reported as a cycle, and a
    /// rank missing from the map counts as silent.
    #[test]
    fn cycles_and_unknown_ranks_are_reported() {
        let mine = wait(Op::AllReduce, &[0, 1], &[1]);
        let cycle = BTreeMap::from([(
            1,
            Activity::Waiting(vec![wait(Op::AllReduce, &[0, 1], &[0])]),
        )]);
        let holdup = find_holdup(0, &mine, &cycle);
        assert!(holdup.stuck.is_empty());
        assert!(
            holdup.to_string().contains("wait for each other"),
            "{holdup}"
        );

        let unknown = find_holdup(0, &mine, &BTreeMap::new());
        assert_eq!(unknown.stuck, [(1, Activity::Silent)]);
        let busy = find_holdup(0, &mine, &BTreeMap::from([(1, Activity::Outside)]));
        assert!(
            busy.to_string()
                .contains("rank 1, which is in no communication call")
        );
    }
}
