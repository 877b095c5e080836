//! This process's progress, as the other processes may ask for it: how many
//! collectives its rank has entered on each of its groups, and which
//! operations it is blocked in right now (see `inquiry.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cptrain::parallel::{GroupInfo, Op, Wait};

/// One process's answer to a progress query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Report {
    /// Per group of the process: the collectives its rank has entered.
    pub(super) groups: Vec<(GroupInfo, u64)>,
    /// The operations it is blocked in.
    pub(super) waits: Vec<Wait>,
}

impl Report {
    /// Whether this process has entered collective `seq` of `group`.
    pub(super) fn entered(&self, group: &GroupInfo, seq: u64) -> bool {
        self.groups.iter().any(|(g, n)| g == group && *n > seq)
    }

    /// One line per group (`group <entered> <members> <name>`) and per wait
    /// (`wait <op> <seq> <members> <on> <name>`); rank lists are
    /// comma-separated, `-` when empty. The name comes last: it may hold
    /// spaces.
    pub(super) fn encode(&self) -> String {
        let mut text = String::new();
        for (group, entered) in &self.groups {
            let members = ranks(&group.members);
            text += &format!("group {entered} {members} {}\n", group.name);
        }
        for wait in &self.waits {
            let (members, on) = (ranks(&wait.group.members), ranks(&wait.on));
            let (op, seq, name) = (wait.op, wait.seq, &wait.group.name);
            text += &format!("wait {op} {seq} {members} {on} {name}\n");
        }
        text
    }

    /// The report [`Report::encode`] wrote; `None` if `text` is not one.
    pub(super) fn decode(text: &str) -> Option<Report> {
        let mut report = Report::default();
        for line in text.lines() {
            let (kind, rest) = line.split_once(' ')?;
            match kind {
                "group" => {
                    let mut fields = rest.splitn(3, ' ');
                    let entered = fields.next()?.parse().ok()?;
                    let members = parse_ranks(fields.next()?)?;
                    let name = fields.next()?.to_string();
                    report.groups.push((GroupInfo { name, members }, entered));
                }
                "wait" => {
                    let mut fields = rest.splitn(5, ' ');
                    let op = Op::from_name(fields.next()?)?;
                    let seq = fields.next()?.parse().ok()?;
                    let members = parse_ranks(fields.next()?)?;
                    let on = parse_ranks(fields.next()?)?;
                    let name = fields.next()?.to_string();
                    let group = GroupInfo { name, members };
                    report.waits.push(Wait { op, group, seq, on });
                }
                _ => return None,
            }
        }
        Some(report)
    }
}

fn ranks(list: &[usize]) -> String {
    if list.is_empty() {
        return "-".into();
    }
    let items: Vec<String> = list.iter().map(usize::to_string).collect();
    items.join(",")
}

fn parse_ranks(text: &str) -> Option<Vec<usize>> {
    if text == "-" {
        return Some(Vec::new());
    }
    text.split(',').map(|r| r.parse().ok()).collect()
}

/// The groups of this process and their collective counters.
static GROUPS: Mutex<Vec<(GroupInfo, Arc<AtomicU64>)>> = Mutex::new(Vec::new());

/// The operations this process is blocked in, by entry number.
static WAITS: Mutex<Vec<(u64, Wait)>> = Mutex::new(Vec::new());

static NEXT_ENTRY: AtomicU64 = AtomicU64::new(0);

fn held<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes `entered` (the collectives entered on `group`) part of the reports.
pub(super) fn register_group(group: GroupInfo, entered: Arc<AtomicU64>) {
    held(&GROUPS).push((group, entered));
}

/// What this process reports now.
pub(super) fn report() -> Report {
    let groups = held(&GROUPS)
        .iter()
        .map(|(g, n)| (g.clone(), n.load(Ordering::Relaxed)))
        .collect();
    let waits = held(&WAITS).iter().map(|(_, w)| w.clone()).collect();
    Report { groups, waits }
}

/// A wait in progress: reported while it lives.
pub(super) struct Waiting {
    entry: u64,
    wait: Wait,
}

impl Waiting {
    /// Reports `wait` until the returned value is dropped.
    pub(super) fn enter(wait: Wait) -> Self {
        let entry = NEXT_ENTRY.fetch_add(1, Ordering::Relaxed);
        held(&WAITS).push((entry, wait.clone()));
        Waiting { entry, wait }
    }

    /// The operation waited for.
    pub(super) fn wait(&self) -> &Wait {
        &self.wait
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        held(&WAITS).retain(|(entry, _)| *entry != self.entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report survives the trip through its text, names with spaces too.
    #[test]
    fn reports_round_trip_through_their_text() {
        let cp = GroupInfo {
            name: "cp".into(),
            members: vec![2, 3],
        };
        let odd = GroupInfo {
            name: "a name with spaces".into(),
            members: vec![0],
        };
        let report = Report {
            groups: vec![(cp.clone(), 57), (odd.clone(), 0)],
            waits: vec![
                Wait {
                    op: Op::Recv,
                    group: cp.clone(),
                    seq: 12,
                    on: vec![2],
                },
                Wait {
                    op: Op::Barrier,
                    group: odd,
                    seq: 0,
                    on: vec![],
                },
            ],
        };
        assert_eq!(Report::decode(&report.encode()), Some(report.clone()));
        assert!(report.entered(&cp, 56));
        assert!(!report.entered(&cp, 57), "57 entered means #0..#56");
        assert_eq!(Report::decode("garbage 1 2"), None);
    }
}
