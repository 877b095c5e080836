use super::OptimizerConfig;

/// The learning rate of each optimizer step. `optimizer.schedule` selects
/// the provider by component name: the built-in [`LrSchedule`] shapes
/// (`cosine`, `constant`, `linear`, `wsd`) or a plugin's.
pub trait LearningRate: Send + Sync {
    /// The learning rate of 0-based step `step`.
    fn lr_at(&self, step: u64) -> f64;
}

/// The shape of the built-in schedules after warmup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScheduleKind {
    /// Cosine decay from `lr` to `min_lr` over the steps after warmup.
    #[default]
    Cosine,
    /// `lr` for every step after warmup.
    Constant,
    /// Linear decay from `lr` to `min_lr` over the steps after warmup.
    Linear,
    /// Warmup-stable-decay: `lr`, then a linear decay to `min_lr` over the
    /// last `optimizer.decay_fraction` of the steps.
    Wsd,
}

/// The learning rate of each step: linear warmup, then the shape of
/// `optimizer.schedule`.
///
/// For step `s` (0-based) of `S`, with peak `lr`, floor `min_lr` and `W`
/// warmup steps: if `s < W`, `lr·(s+1)/W` (every schedule). Afterwards:
///
/// - `cosine`: `min_lr + ½(lr − min_lr)(1 + cos(π·(s − W)/(S − W)))`;
/// - `constant`: `lr`;
/// - `linear`: `lr − (lr − min_lr)·(s − W)/(S − W)`;
/// - `wsd`: `lr` until the decay starts at `D = max(W, S − round(f·S))`
///   (`f = optimizer.decay_fraction`), then `lr − (lr − min_lr)·(s − D)/(S − D)`:
///   the simplest form of warmup-stable-decay (MiniCPM), a linear decay.
///
/// The decays start at `lr` and would reach `min_lr` at step `S` (the
/// convention of nanoGPT and llm.c; the last step `S − 1` runs just above
/// `min_lr`). Steps at or past `S` (after warmup) use the schedule's final
/// value: `min_lr`, or `lr` for `constant`; a run resumed with a larger
/// `train.steps` thus continues from where the old schedule ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrSchedule {
    kind: ScheduleKind,
    lr: f64,
    min_lr: f64,
    warmup_steps: u64,
    /// First step of the decay (`linear`, `wsd`).
    decay_start: u64,
    total_steps: u64,
}

impl LrSchedule {
    /// The schedule of shape `kind` with `cfg`'s rates and warmup for a run
    /// of `total_steps` optimizer steps.
    pub fn new(kind: ScheduleKind, cfg: &OptimizerConfig, total_steps: u64) -> Self {
        let decay_start = match kind {
            ScheduleKind::Wsd => {
                let decay_steps = (cfg.decay_fraction * total_steps as f64).round() as u64;
                total_steps
                    .saturating_sub(decay_steps)
                    .max(cfg.warmup_steps)
            }
            _ => cfg.warmup_steps,
        };
        LrSchedule {
            kind,
            lr: cfg.lr,
            min_lr: cfg.min_lr,
            warmup_steps: cfg.warmup_steps,
            decay_start,
            total_steps,
        }
    }

    /// The learning rate of 0-based step `step`.
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        if step >= self.total_steps {
            return match self.kind {
                ScheduleKind::Constant => self.lr,
                _ => self.min_lr,
            };
        }
        match self.kind {
            ScheduleKind::Constant => self.lr,
            ScheduleKind::Cosine => {
                let progress = (step - self.warmup_steps) as f64
                    / (self.total_steps - self.warmup_steps) as f64;
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                self.min_lr + cosine * (self.lr - self.min_lr)
            }
            ScheduleKind::Linear | ScheduleKind::Wsd if step < self.decay_start => self.lr,
            ScheduleKind::Linear | ScheduleKind::Wsd => {
                let progress =
                    (step - self.decay_start) as f64 / (self.total_steps - self.decay_start) as f64;
                self.lr - progress * (self.lr - self.min_lr)
            }
        }
    }
}

impl LearningRate for LrSchedule {
    fn lr_at(&self, step: u64) -> f64 {
        LrSchedule::lr_at(self, step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts `lr_at(step)` for each `(step, expected)` pair.
    fn assert_lrs(schedule: &LrSchedule, cases: &[(u64, f64)]) {
        for &(step, want) in cases {
            let got = schedule.lr_at(step);
            assert!((got - want).abs() < 1e-12, "step {step}: {got} vs {want}");
        }
    }

    /// lr = 1e-3, min_lr = 1e-4, warmup 4 of 14 steps: the decays span 10 steps.
    fn config() -> OptimizerConfig {
        OptimizerConfig {
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 4,
            ..Default::default()
        }
    }

    /// Expected values evaluated by hand: e.g. step 9 is 1e-4 + 0.5·9e-4·(1 + cos(π/2)).
    #[test]
    fn cosine_warmup_boundary_and_end_values() {
        let schedule = LrSchedule::new(ScheduleKind::Cosine, &config(), 14);
        assert_lrs(
            &schedule,
            &[
                (0, 2.5e-4),
                (1, 5e-4),
                (3, 1e-3),
                (4, 1e-3),
                (9, 5.5e-4),
                // 1e-4 + 0.5·9e-4·(1 + cos(0.9π)) = 1e-4 + 4.5e-4·0.0489434837
                (13, 1.2202456766e-4),
                (14, 1e-4),
                (1000, 1e-4),
            ],
        );
    }

    #[test]
    fn cosine_is_the_default() {
        assert_eq!(OptimizerConfig::default().schedule, "cosine");
    }

    /// After warmup the peak holds, also past the planned end.
    #[test]
    fn constant_holds_the_peak_after_warmup() {
        let schedule = LrSchedule::new(ScheduleKind::Constant, &config(), 14);
        assert_lrs(
            &schedule,
            &[
                (0, 2.5e-4),
                (3, 1e-3),
                (4, 1e-3),
                (13, 1e-3),
                (14, 1e-3),
                (1000, 1e-3),
            ],
        );
    }

    /// Step s ≥ 4: 1e-3 − 9e-4·(s − 4)/10.
    #[test]
    fn linear_decays_from_the_end_of_warmup_to_min_lr() {
        let schedule = LrSchedule::new(ScheduleKind::Linear, &config(), 14);
        assert_lrs(
            &schedule,
            &[
                (0, 2.5e-4),
                (3, 1e-3),
                (4, 1e-3),
                (5, 9.1e-4),
                (9, 5.5e-4),
                (13, 1.9e-4),
                (14, 1e-4),
                (1000, 1e-4),
            ],
        );
    }

    /// 20 steps, decay_fraction 0.25: the last 5 steps decay, D = 15;
    /// step s ≥ 15: 1e-3 − 9e-4·(s − 15)/5.
    #[test]
    fn wsd_holds_the_peak_then_decays_over_the_last_fraction() {
        let cfg = OptimizerConfig {
            decay_fraction: 0.25,
            ..config()
        };
        let schedule = LrSchedule::new(ScheduleKind::Wsd, &cfg, 20);
        assert_lrs(
            &schedule,
            &[
                (0, 2.5e-4),
                (3, 1e-3),
                (4, 1e-3),
                (14, 1e-3),
                (15, 1e-3),
                (16, 8.2e-4),
                (19, 2.8e-4),
                (20, 1e-4),
                (1000, 1e-4),
            ],
        );
    }

    /// A decay longer than the steps after warmup starts when warmup ends:
    /// WSD with decay_fraction = 1 is the linear schedule.
    #[test]
    fn wsd_decay_never_starts_inside_warmup() {
        let wsd = OptimizerConfig {
            decay_fraction: 1.0,
            ..config()
        };
        let wsd = LrSchedule::new(ScheduleKind::Wsd, &wsd, 14);
        let linear = LrSchedule::new(ScheduleKind::Linear, &config(), 14);
        for step in 0..20 {
            assert_eq!(wsd.lr_at(step), linear.lr_at(step), "step {step}");
        }
    }

    #[test]
    fn no_warmup_starts_at_the_peak_and_decays_monotonically() {
        for kind in [ScheduleKind::Cosine, ScheduleKind::Linear] {
            let cfg = OptimizerConfig {
                warmup_steps: 0,
                ..Default::default()
            };
            let schedule = LrSchedule::new(kind, &cfg, 50);
            assert_eq!(schedule.lr_at(0), cfg.lr);
            let lrs: Vec<f64> = (0..50).map(|s| schedule.lr_at(s)).collect();
            assert!(lrs.windows(2).all(|w| w[1] < w[0]), "{kind:?}");
            assert!(lrs[49] > cfg.min_lr, "{kind:?}");
        }
    }

    #[test]
    fn warmup_longer_than_the_run_only_warms_up() {
        let cfg = OptimizerConfig {
            lr: 1.0,
            warmup_steps: 10,
            ..Default::default()
        };
        let schedule = LrSchedule::new(ScheduleKind::Cosine, &cfg, 5);
        assert_eq!(schedule.lr_at(4), 0.5);
    }
}
