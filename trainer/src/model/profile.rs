//! Optional per-phase timers for one training step.
//!
//! A [`Profile`] lives in [`Activations`](super::Activations); it is off by
//! default, and then a timer is one predictable branch (no clock read). When
//! on, [`Gpt::forward`](super::Gpt::forward) and
//! [`Gpt::backward`](super::Gpt::backward) add the wall time of each phase,
//! and the caller may add its own (batch fill, optimizer, communication).
//! While a trace is being recorded, every stopped timer is also kept as a
//! [`PhaseEvent`] (a timeline rather than totals).

use std::time::{Duration, Instant};

use super::PhaseFlops;

/// What a slice of the step's time was spent on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Filling the step's batches from the token source (timed by the
    /// caller).
    Data,
    /// Token + position embedding lookup (forward) and scatter-add (backward).
    Embedding,
    /// The LayerNorms (ln_1, ln_2, ln_f).
    LayerNorm,
    /// The qkv projection.
    QkvMatmul,
    /// Moving between token-major and head-major layouts.
    HeadReshape,
    /// The attention block kernel (its share of communication excluded
    /// when a strategy reports it separately).
    Attention,
    /// The attention output projection.
    AttnProjMatmul,
    /// The MLP's first linear layer.
    MlpFcMatmul,
    /// GELU.
    Gelu,
    /// The MLP's second linear layer.
    MlpProjMatmul,
    /// Residual additions.
    Residual,
    /// The tied output head (logits).
    LmHead,
    /// Softmax cross-entropy.
    CrossEntropy,
    /// The optimizer update (timed by the caller).
    Optimizer,
    /// Collectives between ranks (timed by the caller).
    Communication,
}

impl Phase {
    /// Every phase, in step order.
    pub const ALL: [Phase; 15] = [
        Phase::Data,
        Phase::Embedding,
        Phase::LayerNorm,
        Phase::QkvMatmul,
        Phase::HeadReshape,
        Phase::Attention,
        Phase::AttnProjMatmul,
        Phase::Residual,
        Phase::MlpFcMatmul,
        Phase::Gelu,
        Phase::MlpProjMatmul,
        Phase::LmHead,
        Phase::CrossEntropy,
        Phase::Optimizer,
        Phase::Communication,
    ];

    /// Short name for tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Data => "data",
            Phase::Embedding => "embedding",
            Phase::LayerNorm => "layernorm",
            Phase::QkvMatmul => "qkv_matmul",
            Phase::HeadReshape => "head_reshape",
            Phase::Attention => "attention",
            Phase::AttnProjMatmul => "attn_proj_matmul",
            Phase::MlpFcMatmul => "mlp_fc_matmul",
            Phase::Gelu => "gelu",
            Phase::MlpProjMatmul => "mlp_proj_matmul",
            Phase::Residual => "residual",
            Phase::LmHead => "lm_head",
            Phase::CrossEntropy => "cross_entropy",
            Phase::Optimizer => "optimizer",
            Phase::Communication => "communication",
        }
    }

    pub(crate) fn index(self) -> usize {
        Phase::ALL.iter().position(|&p| p == self).unwrap_or(0)
    }
}

/// Which pass a phase ran in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    /// The forward pass, and the batch fill before it.
    Forward,
    /// The backward pass.
    Backward,
    /// Outside forward and backward (optimizer, gradient all-reduce).
    Update,
}

impl Pass {
    /// Every pass, in step order (each at its discriminant).
    pub const ALL: [Pass; 3] = [Pass::Forward, Pass::Backward, Pass::Update];

    /// Short name for traces and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Forward => "forward",
            Pass::Backward => "backward",
            Pass::Update => "update",
        }
    }
}

const PASSES: usize = Pass::ALL.len();

/// One timed phase of a traced step: when it started and ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseEvent {
    /// The pass it ran in.
    pub pass: Pass,
    /// What it was.
    pub phase: Phase,
    /// When its timer started.
    pub start: Instant,
    /// When its timer stopped.
    pub end: Instant,
}

/// Accumulated wall time per (pass, phase), off unless enabled, and the
/// events of a trace while one is recorded.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    enabled: bool,
    trace: Option<Vec<PhaseEvent>>,
    totals: [[Duration; Phase::ALL.len()]; PASSES],
}

/// A started timer: [`Profile::stop`] adds its elapsed time to a phase.
#[derive(Clone, Copy, Debug)]
#[must_use = "a timer adds nothing until stopped"]
pub struct Timer(Option<Instant>);

impl Profile {
    /// A profile that records (`true`) or ignores (`false`) timers.
    pub fn new(enabled: bool) -> Self {
        Profile {
            enabled,
            ..Profile::default()
        }
    }

    /// Whether timers record.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Starts keeping every stopped timer as a [`PhaseEvent`] (timers then
    /// read the clock even when the totals are off).
    pub fn start_trace(&mut self) {
        self.trace.get_or_insert_with(Vec::new);
    }

    /// Stops recording and returns the events since
    /// [`Profile::start_trace`], in the order their timers stopped.
    pub fn take_trace(&mut self) -> Vec<PhaseEvent> {
        self.trace.take().unwrap_or_default()
    }

    /// Starts a timer; reads the clock only when enabled or tracing.
    #[inline]
    pub fn start(&self) -> Timer {
        Timer((self.enabled || self.trace.is_some()).then(Instant::now))
    }

    /// Adds the time since `timer` started to `(pass, phase)` (and to the
    /// trace, when one is recorded) and returns a new timer started now, so
    /// consecutive phases chain without gaps.
    #[inline]
    pub fn stop(&mut self, timer: Timer, pass: Pass, phase: Phase) -> Timer {
        match timer.0 {
            Some(start) => {
                let end = Instant::now();
                if self.enabled {
                    self.totals[pass as usize][phase.index()] += end - start;
                }
                if let Some(events) = &mut self.trace {
                    events.push(PhaseEvent {
                        pass,
                        phase,
                        start,
                        end,
                    });
                }
                Timer(Some(end))
            }
            None => timer,
        }
    }

    /// Adds an externally measured duration to the totals (a trace gets no
    /// slice for it: its start is unknown).
    pub fn add(&mut self, pass: Pass, phase: Phase, elapsed: Duration) {
        if self.enabled {
            self.totals[pass as usize][phase.index()] += elapsed;
        }
    }

    /// Moves up to `elapsed` of `(pass, from)` to `(pass, to)`: time a
    /// phase's timer caught that belongs to another (a collective's wait
    /// inside attention). Never takes more than `from` holds.
    pub fn move_time(&mut self, pass: Pass, from: Phase, to: Phase, elapsed: Duration) {
        let row = &mut self.totals[pass as usize];
        let moved = elapsed.min(row[from.index()]);
        row[from.index()] -= moved;
        row[to.index()] += moved;
    }

    /// Number of values [`Profile::to_seconds`] gives.
    pub const VALUES: usize = PASSES * Phase::ALL.len();

    /// Every total in seconds, pass-major (for sending between ranks).
    pub fn to_seconds(&self) -> [f64; Self::VALUES] {
        let mut out = [0.0; Self::VALUES];
        for (o, d) in out.iter_mut().zip(self.totals.iter().flatten()) {
            *o = d.as_secs_f64();
        }
        out
    }

    /// An enabled profile holding the totals [`Profile::to_seconds`] gave
    /// (negative or non-finite values read as 0).
    pub fn from_seconds(values: &[f64; Self::VALUES]) -> Self {
        let mut profile = Profile::new(true);
        for (d, &v) in profile.totals.iter_mut().flatten().zip(values) {
            *d = Duration::try_from_secs_f64(v).unwrap_or_default();
        }
        profile
    }

    /// Time accumulated for `(pass, phase)`.
    pub fn get(&self, pass: Pass, phase: Phase) -> Duration {
        self.totals[pass as usize][phase.index()]
    }

    /// Time accumulated for `phase` over every pass.
    pub fn phase_total(&self, phase: Phase) -> Duration {
        self.totals.iter().map(|row| row[phase.index()]).sum()
    }

    /// Sum over every pass and phase.
    pub fn total(&self) -> Duration {
        self.totals.iter().flatten().sum()
    }

    /// Zeroes every total, keeping the enabled flag and any trace.
    pub fn clear(&mut self) {
        self.totals = Default::default();
    }

    /// A plain-text table: one row per phase that took any time, with
    /// forward, backward and update milliseconds and the share of the total;
    /// given the FLOPs these totals cover, also each pass's GFLOP/s for the
    /// phases with matrix products ("-" for the others).
    pub fn table(&self, flops: Option<&PhaseFlops>) -> String {
        let total = self.total().as_secs_f64().max(f64::MIN_POSITIVE);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut out = format!(
            "{:<18} {:>10} {:>10} {:>10} {:>7}",
            "phase", "fwd ms", "bwd ms", "update ms", "share"
        );
        if flops.is_some() {
            out += &format!(" {:>12} {:>12}", "fwd GFLOP/s", "bwd GFLOP/s");
        }
        out.push('\n');
        for phase in Phase::ALL {
            let [f, b, u] = Pass::ALL.map(|p| self.get(p, phase));
            let sum = self.phase_total(phase);
            if sum.is_zero() {
                continue;
            }
            out += &format!(
                "{:<18} {:>10.2} {:>10.2} {:>10.2} {:>6.1}%",
                phase.name(),
                ms(f),
                ms(b),
                ms(u),
                100.0 * sum.as_secs_f64() / total
            );
            if let Some(flops) = flops {
                for (pass, time) in [(Pass::Forward, f), (Pass::Backward, b)] {
                    out += &format!(" {:>12}", rate(flops.get(pass, phase), time));
                }
            }
            out.push('\n');
        }
        out += &format!("{:<18} {:>43.2}\n", "total", total * 1e3);
        out
    }
}

/// `flops` over `time` in GFLOP/s to three significant digits (a tiny
/// model's phases run at a fraction of a GFLOP/s), or "-" when either is
/// zero.
fn rate(flops: f64, time: Duration) -> String {
    if flops > 0.0 && !time.is_zero() {
        let gflops = flops / time.as_secs_f64() / 1e9;
        let decimals = (2 - gflops.log10().floor() as i32).clamp(0, 6) as usize;
        format!("{gflops:.decimals$}")
    } else {
        "-".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_keep_three_significant_digits() {
        let second = Duration::from_secs(1);
        assert_eq!(rate(123.4e9, second), "123");
        assert_eq!(rate(12.34e9, second), "12.3");
        assert_eq!(rate(0.01234e9, second), "0.0123");
        assert_eq!(rate(0.0, second), "-");
    }

    #[test]
    fn a_disabled_profile_records_nothing_and_an_enabled_one_sums_phases() {
        let mut off = Profile::new(false);
        let t = off.start();
        let _ = off.stop(t, Pass::Forward, Phase::Gelu);
        off.add(Pass::Update, Phase::Optimizer, Duration::from_millis(5));
        assert!(off.total().is_zero());

        let mut on = Profile::new(true);
        on.add(Pass::Forward, Phase::Gelu, Duration::from_millis(2));
        on.add(Pass::Backward, Phase::Gelu, Duration::from_millis(3));
        on.add(Pass::Update, Phase::Optimizer, Duration::from_millis(5));
        assert_eq!(
            on.get(Pass::Backward, Phase::Gelu),
            Duration::from_millis(3)
        );
        assert_eq!(on.total(), Duration::from_millis(10));
        assert_eq!(on.phase_total(Phase::Gelu), Duration::from_millis(5));
        let table = on.table(None);
        assert!(
            table.contains("gelu") && table.contains("optimizer"),
            "{table}"
        );
        assert!(!table.contains("GFLOP/s"), "{table}");
        assert!(
            !table.contains("attention"),
            "phases with no time are left out"
        );
        on.clear();
        assert!(on.total().is_zero() && on.is_enabled());
    }

    /// A trace keeps each stopped timer in order, chained end to start,
    /// without turning the totals on; taking it ends the recording.
    #[test]
    fn a_trace_records_chained_events_apart_from_the_totals() {
        let mut p = Profile::new(false);
        assert!(p.start().0.is_none(), "no clock read when off");
        p.start_trace();
        let t = p.start();
        let t = p.stop(t, Pass::Forward, Phase::LayerNorm);
        let t = p.stop(t, Pass::Backward, Phase::Gelu);
        let _ = p.stop(t, Pass::Update, Phase::Optimizer);
        assert!(p.total().is_zero() && !p.is_enabled(), "totals stay off");
        let events = p.take_trace();
        let what: Vec<_> = events.iter().map(|e| (e.pass, e.phase)).collect();
        assert_eq!(
            what,
            [
                (Pass::Forward, Phase::LayerNorm),
                (Pass::Backward, Phase::Gelu),
                (Pass::Update, Phase::Optimizer)
            ]
        );
        for pair in events.windows(2) {
            assert_eq!(pair[0].end, pair[1].start, "consecutive phases chain");
            assert!(pair[0].start <= pair[0].end);
        }
        assert!(p.take_trace().is_empty(), "taking it ends the recording");
        assert!(p.start().0.is_none());

        let mut on = Profile::new(true);
        on.start_trace();
        on.add(Pass::Forward, Phase::Gelu, Duration::from_millis(2));
        on.clear();
        let t = on.start();
        let _ = on.stop(t, Pass::Forward, Phase::Gelu);
        assert_eq!(on.take_trace().len(), 1, "clear keeps the trace");
    }

    #[test]
    fn time_moves_between_phases_and_totals_round_trip_through_seconds() {
        let mut p = Profile::new(true);
        p.add(Pass::Forward, Phase::Attention, Duration::from_millis(7));
        p.move_time(
            Pass::Forward,
            Phase::Attention,
            Phase::Communication,
            Duration::from_millis(3),
        );
        assert_eq!(
            p.get(Pass::Forward, Phase::Attention),
            Duration::from_millis(4)
        );
        assert_eq!(
            p.get(Pass::Forward, Phase::Communication),
            Duration::from_millis(3)
        );
        p.move_time(
            Pass::Forward,
            Phase::Attention,
            Phase::Communication,
            Duration::from_secs(1),
        );
        assert!(
            p.get(Pass::Forward, Phase::Attention).is_zero(),
            "no more than it holds"
        );
        assert_eq!(p.total(), Duration::from_millis(7));
        p.add(Pass::Update, Phase::Optimizer, Duration::from_micros(1500));
        let back = Profile::from_seconds(&p.to_seconds());
        for pass in Pass::ALL {
            for phase in Phase::ALL {
                let (a, b) = (p.get(pass, phase), back.get(pass, phase));
                assert!(a.abs_diff(b) < Duration::from_nanos(2), "{phase:?}");
            }
        }
        let mut bad = [0.0; Profile::VALUES];
        bad[0] = f64::NAN;
        bad[1] = -1.0;
        assert!(Profile::from_seconds(&bad).total().is_zero());
    }
}
