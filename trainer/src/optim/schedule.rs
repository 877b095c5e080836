use super::OptimizerConfig;

/// The learning rate of each step: linear warmup, then cosine decay.
///
/// For step `s` (0-based) of `S`: if `s < warmup`, `lr·(s+1)/warmup`;
/// otherwise `min_lr + ½(lr − min_lr)(1 + cos(π·(s − warmup)/(S − warmup)))`,
/// which starts at `lr` when warmup ends and would reach `min_lr` at step `S`
/// (the convention of nanoGPT and llm.c; the last step `S − 1` runs just above
/// `min_lr`). Steps at or past `S` use `min_lr`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrSchedule {
    lr: f64,
    min_lr: f64,
    warmup_steps: u64,
    total_steps: u64,
}

impl LrSchedule {
    /// The schedule of `cfg` for a run of `total_steps` optimizer steps.
    pub fn new(cfg: &OptimizerConfig, total_steps: u64) -> Self {
        LrSchedule {
            lr: cfg.lr,
            min_lr: cfg.min_lr,
            warmup_steps: cfg.warmup_steps,
            total_steps,
        }
    }

    /// The learning rate of 0-based step `step`.
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        if step >= self.total_steps {
            return self.min_lr;
        }
        let progress =
            (step - self.warmup_steps) as f64 / (self.total_steps - self.warmup_steps) as f64;
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.min_lr + cosine * (self.lr - self.min_lr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// lr = 1e-3, min_lr = 1e-4, warmup 4 of 14 steps: the cosine spans 10 steps.
    /// Expected values evaluated by hand: e.g. step 9 is 1e-4 + 0.5·9e-4·(1 + cos(π/2)).
    #[test]
    fn warmup_boundary_and_end_values() {
        let cfg = OptimizerConfig {
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 4,
            ..Default::default()
        };
        let schedule = LrSchedule::new(&cfg, 14);
        let cases = [
            (0, 2.5e-4),
            (1, 5e-4),
            (3, 1e-3),
            (4, 1e-3),
            (9, 5.5e-4),
            // 1e-4 + 0.5·9e-4·(1 + cos(0.9π)) = 1e-4 + 4.5e-4·0.0489434837
            (13, 1.2202456766e-4),
            (14, 1e-4),
            (1000, 1e-4),
        ];
        for (step, want) in cases {
            let got = schedule.lr_at(step);
            assert!((got - want).abs() < 1e-12, "step {step}: {got} vs {want}");
        }
    }

    #[test]
    fn no_warmup_starts_at_the_peak_and_decays_monotonically() {
        let cfg = OptimizerConfig {
            warmup_steps: 0,
            ..Default::default()
        };
        let schedule = LrSchedule::new(&cfg, 50);
        assert_eq!(schedule.lr_at(0), cfg.lr);
        let lrs: Vec<f64> = (0..50).map(|s| schedule.lr_at(s)).collect();
        assert!(lrs.windows(2).all(|w| w[1] < w[0]));
        assert!(lrs[49] > cfg.min_lr);
    }

    #[test]
    fn warmup_longer_than_the_run_only_warms_up() {
        let cfg = OptimizerConfig {
            lr: 1.0,
            warmup_steps: 10,
            ..Default::default()
        };
        let schedule = LrSchedule::new(&cfg, 5);
        assert_eq!(schedule.lr_at(4), 0.5);
    }
}
