//! The step timeline of `metrics.trace_steps`: which steps are traced, each
//! rank's slices of them, and the Chrome trace file (`<out_dir>/trace.json`,
//! opened by <https://ui.perfetto.dev> and `chrome://tracing`) that shows
//! every rank as a process, every phase as a slice inside its step, and
//! every blocking wait for other ranks as a slice inside its phase.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::TrainError;
use crate::metrics::MetricsConfig;
use crate::model::{Pass, Phase, PhaseEvent};
use crate::parallel::{GroupKind, ParallelGrid, ProcessGroup, ReduceOp, WaitSpan};

/// The trace's file name in `train.out_dir`.
pub const TRACE_FILE: &str = "trace.json";

/// The traced steps `first..=last`, numbered from 1 as in `metrics.jsonl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceWindow {
    /// The first traced step.
    pub first: u64,
    /// The last traced step.
    pub last: u64,
}

impl TraceWindow {
    /// The window `metrics.trace_start` and `metrics.trace_steps` ask for in
    /// a run of `steps` steps (cut at the last step), or `None` when tracing
    /// is off.
    pub fn from_config(metrics: &MetricsConfig, steps: u64) -> Result<Option<Self>, TrainError> {
        let (start, count) = (metrics.trace_start, metrics.trace_steps);
        if count == 0 {
            return Ok(None);
        }
        if start == 0 {
            return Err(TrainError::Invalid(
                "metrics.trace_start = 0: steps are numbered from 1, as in metrics.jsonl \
                 (the default 2 leaves out the first step's one-time costs)"
                    .into(),
            ));
        }
        if start > steps {
            return Err(TrainError::Invalid(format!(
                "metrics.trace_start = {start} is after the last step (train.steps = {steps}), \
                 so nothing would be traced; set it to at most {steps}"
            )));
        }
        Ok(Some(TraceWindow {
            first: start,
            last: start.saturating_add(count - 1).min(steps),
        }))
    }

    /// Whether step `step` (from 1) is traced.
    pub fn contains(&self, step: u64) -> bool {
        (self.first..=self.last).contains(&step)
    }
}

/// What a slice of the timeline is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceKind {
    /// A whole optimizer step.
    Step,
    /// One timed phase inside it.
    Phase(Pass, Phase),
    /// A blocking wait for the other ranks of a group, inside a phase.
    Wait(GroupKind),
}

/// One slice of a rank's timeline, in microseconds since the Unix epoch so
/// that the slices of ranks in other processes line up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceSlice {
    /// What it is.
    pub kind: SliceKind,
    /// The step it belongs to (from 1).
    pub step: u64,
    /// Start, µs since the Unix epoch.
    pub start_us: f64,
    /// Length, µs.
    pub dur_us: f64,
}

impl TraceSlice {
    /// Values per slice in [`TraceSlice::encode`].
    pub const VALUES: usize = 4;

    /// The slice of step `step` from `start` to `end`.
    pub fn step(step: u64, start: Instant, end: Instant) -> Self {
        Self::span(SliceKind::Step, step, start, end)
    }

    /// The slice of a phase timed in step `step`.
    pub fn phase(step: u64, event: &PhaseEvent) -> Self {
        let kind = SliceKind::Phase(event.pass, event.phase);
        Self::span(kind, step, event.start, event.end)
    }

    /// The slice of a wait on a `group` group in step `step`.
    pub fn wait(step: u64, group: GroupKind, wait: &WaitSpan) -> Self {
        Self::span(SliceKind::Wait(group), step, wait.start, wait.end)
    }

    fn span(kind: SliceKind, step: u64, start: Instant, end: Instant) -> Self {
        TraceSlice {
            kind,
            step,
            start_us: unix_micros(start),
            dur_us: end.saturating_duration_since(start).as_secs_f64() * 1e6,
        }
    }

    /// As plain numbers, for gathering over a group: kind (−1 for a step,
    /// pass·phases + phase for a phase, −2 − the group kind's index for a
    /// wait), step, start, length.
    pub fn encode(&self) -> [f64; Self::VALUES] {
        let kind = match self.kind {
            SliceKind::Step => -1.0,
            SliceKind::Phase(pass, phase) => {
                (pass as usize * Phase::ALL.len() + phase.index()) as f64
            }
            SliceKind::Wait(group) => -2.0 - group_index(group) as f64,
        };
        [kind, self.step as f64, self.start_us, self.dur_us]
    }

    /// The slice [`TraceSlice::encode`] gave, or `None` for values it cannot
    /// have given.
    pub fn decode(values: &[f64; Self::VALUES]) -> Option<Self> {
        let [kind, step, start_us, dur_us] = *values;
        if kind.fract() != 0.0 {
            return None;
        }
        let kind = if kind == -1.0 {
            SliceKind::Step
        } else if kind < -1.0 {
            SliceKind::Wait(*GroupKind::ALL.get((-2.0 - kind) as usize)?)
        } else {
            let code = kind as usize;
            let pass = *Pass::ALL.get(code / Phase::ALL.len())?;
            SliceKind::Phase(pass, Phase::ALL[code % Phase::ALL.len()])
        };
        let valid = step >= 0.0 && step.fract() == 0.0 && start_us.is_finite();
        (valid && dur_us >= 0.0).then_some(TraceSlice {
            kind,
            step: step as u64,
            start_us,
            dur_us,
        })
    }
}

/// `group`'s place in [`GroupKind::ALL`].
fn group_index(group: GroupKind) -> usize {
    GroupKind::ALL.iter().position(|&g| g == group).unwrap_or(0)
}

/// Every member's slices, in group rank order, on every member: a
/// collective of `group` (two all-reduces: the counts, then the slices, each
/// member's in its own place and zeros elsewhere, so each value arrives
/// exactly).
pub(super) fn gather_slices(
    group: &dyn ProcessGroup,
    mine: &[TraceSlice],
) -> Result<Vec<Vec<TraceSlice>>, TrainError> {
    let mut counts = vec![0.0; group.size()];
    counts[group.rank()] = mine.len() as f64;
    group.all_reduce_f64(&mut counts, ReduceOp::Sum)?;
    let counts: Vec<usize> = counts.iter().map(|&c| c as usize).collect();
    let before: usize = counts[..group.rank()].iter().sum();
    let mut all = vec![0.0; counts.iter().sum::<usize>() * TraceSlice::VALUES];
    let own = all[before * TraceSlice::VALUES..].chunks_exact_mut(TraceSlice::VALUES);
    for (slot, slice) in own.zip(mine) {
        slot.copy_from_slice(&slice.encode());
    }
    group.all_reduce_f64(&mut all, ReduceOp::Sum)?;
    let mut slices = all.as_chunks::<{ TraceSlice::VALUES }>().0.iter();
    Ok(counts
        .iter()
        .map(|&n| {
            let theirs = slices.by_ref().take(n);
            theirs.filter_map(TraceSlice::decode).collect()
        })
        .collect())
}

/// Microseconds since the Unix epoch at `t`, from one (wall clock, monotonic
/// clock) reading per process.
fn unix_micros(t: Instant) -> f64 {
    static ANCHOR: OnceLock<(Instant, f64)> = OnceLock::new();
    let &(anchor, anchor_us) = ANCHOR.get_or_init(|| {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH);
        (Instant::now(), wall.unwrap_or_default().as_secs_f64() * 1e6)
    });
    match t.checked_duration_since(anchor) {
        Some(after) => anchor_us + after.as_secs_f64() * 1e6,
        None => anchor_us - (anchor - t).as_secs_f64() * 1e6,
    }
}

/// One entry of the Chrome trace event format.
#[derive(Serialize)]
struct Event {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cat: Option<&'static str>,
    ph: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    pid: usize,
    tid: usize,
    args: serde_json::Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TraceFile {
    display_time_unit: &'static str,
    trace_events: Vec<Event>,
}

/// The trace file of every rank's slices (`ranks[r]` is global rank `r`):
/// a process per rank, named with its place in `grid`, holding one slice
/// per step with its phases (and their waits) inside; times start at 0
/// with the earliest slice, in microseconds.
pub fn chrome_trace(ranks: &[Vec<TraceSlice>], grid: &ParallelGrid) -> String {
    let origin = ranks
        .iter()
        .flatten()
        .map(|s| s.start_us)
        .fold(f64::INFINITY, f64::min);
    let mut events = Vec::new();
    for (rank, slices) in ranks.iter().enumerate() {
        let c = grid.coords(rank);
        let meta = |name: &str, args| Event {
            name: name.to_string(),
            cat: None,
            ph: "M",
            ts: None,
            dur: None,
            pid: rank,
            tid: 0,
            args,
        };
        let label = format!("rank {rank} (cp {}, dp {})", c.cp, c.dp);
        events.push(meta("process_name", serde_json::json!({ "name": label })));
        events.push(meta(
            "process_sort_index",
            serde_json::json!({ "sort_index": rank }),
        ));
        for slice in slices {
            let (name, cat, args) = match slice.kind {
                SliceKind::Step => (
                    format!("step {}", slice.step),
                    "step",
                    serde_json::json!({ "step": slice.step }),
                ),
                SliceKind::Phase(pass, phase) => (
                    phase.name().to_string(),
                    pass.name(),
                    serde_json::json!({ "step": slice.step, "pass": pass.name() }),
                ),
                SliceKind::Wait(group) => (
                    format!("wait ({})", group.name()),
                    "wait",
                    serde_json::json!({ "step": slice.step, "group": group.name() }),
                ),
            };
            events.push(Event {
                name,
                cat: Some(cat),
                ph: "X",
                ts: Some(slice.start_us - origin),
                dur: Some(slice.dur_us),
                pid: rank,
                tid: 0,
                args,
            });
        }
    }
    let file = TraceFile {
        display_time_unit: "ms",
        trace_events: events,
    };
    serde_json::to_string(&file).expect("trace events serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::GridSpec;
    use std::time::Duration;

    fn metrics(start: u64, steps: u64) -> MetricsConfig {
        MetricsConfig {
            trace_start: start,
            trace_steps: steps,
            ..MetricsConfig::default()
        }
    }

    #[test]
    fn the_window_is_cut_at_the_last_step_and_bad_starts_name_the_key() {
        assert_eq!(TraceWindow::from_config(&metrics(0, 0), 10).unwrap(), None);
        let w = TraceWindow::from_config(&metrics(3, 2), 10)
            .unwrap()
            .unwrap();
        assert_eq!((w.first, w.last), (3, 4));
        assert!(!w.contains(2) && w.contains(3) && w.contains(4) && !w.contains(5));
        let cut = TraceWindow::from_config(&metrics(9, 5), 10)
            .unwrap()
            .unwrap();
        assert_eq!((cut.first, cut.last), (9, 10));
        let huge = TraceWindow::from_config(&metrics(2, u64::MAX), 10).unwrap();
        assert_eq!(huge.map(|w| w.last), Some(10));
        for (bad, why) in [(0, "numbered from 1"), (11, "train.steps = 10")] {
            let err = TraceWindow::from_config(&metrics(bad, 1), 10).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("metrics.trace_start") && msg.contains(why),
                "{msg}"
            );
        }
    }

    #[test]
    fn slices_round_trip_through_plain_numbers() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_micros(1500);
        let event = PhaseEvent {
            pass: Pass::Backward,
            phase: Phase::Attention,
            start: t0,
            end: t1,
        };
        let wait = WaitSpan { start: t0, end: t1 };
        for slice in [
            TraceSlice::step(7, t0, t1),
            TraceSlice::phase(7, &event),
            TraceSlice::wait(7, GroupKind::Cp, &wait),
        ] {
            assert!((slice.dur_us - 1500.0).abs() < 1e-6);
            assert_eq!(TraceSlice::decode(&slice.encode()), Some(slice));
        }
        let phases = Pass::ALL
            .into_iter()
            .flat_map(|pass| Phase::ALL.map(|phase| SliceKind::Phase(pass, phase)));
        let waits = GroupKind::ALL.map(SliceKind::Wait);
        for kind in phases.chain(waits) {
            let slice = TraceSlice {
                kind,
                step: 1,
                start_us: 1.0,
                dur_us: 0.0,
            };
            assert_eq!(TraceSlice::decode(&slice.encode()), Some(slice));
        }
        let too_far = (Pass::ALL.len() * Phase::ALL.len()) as f64;
        let below_waits = -2.0 - GroupKind::ALL.len() as f64;
        for bad in [
            [too_far, 1.0, 0.0, 0.0],
            [below_waits, 1.0, 0.0, 0.0],
            [0.5, 1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, -1.0],
        ] {
            assert_eq!(TraceSlice::decode(&bad), None, "{bad:?}");
        }
    }

    /// Three thread-ranks with 2, 0 and 1 slices: every rank gets every
    /// rank's slices, bit for bit, in rank order.
    #[test]
    fn the_gather_gives_every_rank_each_ranks_own_slices() {
        use crate::parallel::{LocalWorld, run_ranks};
        let slice = |rank: usize, i: usize| TraceSlice {
            kind: SliceKind::Phase(Pass::Backward, Phase::ALL[i]),
            step: 2,
            // A Unix-epoch time in µs, with a fraction that must survive.
            start_us: 1.8e15 + rank as f64 * 1000.0 + i as f64 + 0.25,
            dur_us: 3.5,
        };
        let mine = |rank: usize| -> Vec<TraceSlice> {
            (0..[2, 0, 1][rank]).map(|i| slice(rank, i)).collect()
        };
        let world = LocalWorld::new(3, Duration::from_secs(30));
        let gathered = run_ranks(&world, |rank| {
            let group = world.world_group(rank)?;
            gather_slices(&group, &mine(rank))
        })
        .unwrap();
        let expected: Vec<_> = (0..3).map(mine).collect();
        for on_rank in gathered {
            assert_eq!(on_rank, expected);
        }
    }

    /// Two ranks: a process each, named by its grid place, with its step,
    /// phase and wait slices; times measured from the earliest slice.
    #[test]
    fn the_chrome_trace_has_a_process_per_rank_and_a_slice_per_phase() {
        let grid = ParallelGrid::new(&GridSpec {
            world_size: 2,
            tp: 1,
            cp: 2,
            dp: 0,
            pp: 1,
            order: "tp-cp-dp".into(),
        })
        .unwrap();
        let slice = |kind, start_us, dur_us| TraceSlice {
            kind,
            step: 3,
            start_us,
            dur_us,
        };
        let qkv = SliceKind::Phase(Pass::Forward, Phase::QkvMatmul);
        let ranks = vec![
            vec![
                slice(SliceKind::Step, 1000.0, 50.0),
                slice(qkv, 1010.0, 5.0),
            ],
            vec![slice(SliceKind::Wait(GroupKind::Cp), 1002.5, 4.0)],
        ];
        let json: serde_json::Value = serde_json::from_str(&chrome_trace(&ranks, &grid)).unwrap();
        assert_eq!(json["displayTimeUnit"], "ms");
        let events = json["traceEvents"].as_array().unwrap();
        let named = |pid: usize| -> Vec<&serde_json::Value> {
            events.iter().filter(|e| e["pid"] == pid).collect()
        };
        let rank1 = named(1);
        assert_eq!(rank1[0]["ph"], "M");
        assert_eq!(rank1[0]["args"]["name"], "rank 1 (cp 1, dp 0)");
        let slices: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(slices.len(), 3);
        assert_eq!(slices[0]["name"], "step 3");
        assert_eq!(slices[0]["cat"], "step");
        assert_eq!(slices[0]["ts"], 0.0);
        assert_eq!(slices[0]["dur"], 50.0);
        assert_eq!(slices[1]["name"], "qkv_matmul");
        assert_eq!(slices[1]["cat"], "forward");
        assert_eq!(slices[1]["ts"], 10.0);
        assert_eq!(slices[1]["args"]["step"], 3);
        assert_eq!(slices[2]["pid"], 1);
        assert_eq!(slices[2]["name"], "wait (cp)");
        assert_eq!(slices[2]["cat"], "wait");
        assert_eq!(slices[2]["ts"], 2.5);
        assert_eq!(slices[2]["args"]["group"], "cp");
    }
}
