//! What a step benchmark measured, and the figures derived from it.

use crate::model::{ModelConfig, PhaseFlops, Profile};

/// One timed training step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepSample {
    /// Wall time of the whole step (zero grads, forward, backward, update).
    pub seconds: f64,
    /// Mean loss of the step's forward.
    pub loss: f64,
}

/// The result of [`run_step_benchmark`](super::run_step_benchmark).
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Timed steps in order.
    pub samples: Vec<StepSample>,
    /// Tokens one step trains on.
    pub tokens_per_step: usize,
    /// Model FLOPs of one step (`flops_per_token · tokens`).
    pub flops_per_step: f64,
    /// Kernel threads used.
    pub threads: usize,
    /// Per-phase time summed over the timed steps, when asked for.
    pub profile: Option<Profile>,
    /// The process's peak resident memory after the run, where the OS says.
    pub peak_rss_bytes: Option<u64>,
}

impl BenchReport {
    /// Median step time in seconds (`NaN` with no samples).
    pub fn median_seconds(&self) -> f64 {
        let mut s: Vec<f64> = self.samples.iter().map(|x| x.seconds).collect();
        s.sort_by(f64::total_cmp);
        match s.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => s[n / 2],
            n => 0.5 * (s[n / 2 - 1] + s[n / 2]),
        }
    }

    /// Tokens per second at the median step time.
    pub fn tokens_per_second(&self) -> f64 {
        self.tokens_per_step as f64 / self.median_seconds()
    }

    /// Model GFLOP/s at the median step time.
    pub fn gflops(&self) -> f64 {
        self.flops_per_step / self.median_seconds() / 1e9
    }

    /// The FLOPs per phase of `model` (the benchmarked one) over the timed
    /// steps, which is what [`BenchReport::profile`] covers.
    pub fn phase_flops(&self, model: &ModelConfig) -> PhaseFlops {
        PhaseFlops::new(model, (self.tokens_per_step * self.samples.len()) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_use_the_median_step() {
        let report = BenchReport {
            samples: [3.0, 1.0, 2.0, 100.0]
                .map(|seconds| StepSample { seconds, loss: 0.0 })
                .to_vec(),
            tokens_per_step: 500,
            flops_per_step: 5e9,
            threads: 1,
            profile: None,
            peak_rss_bytes: None,
        };
        assert_eq!(report.median_seconds(), 2.5);
        assert_eq!(report.tokens_per_second(), 200.0);
        assert_eq!(report.gflops(), 2.0);
    }
}
