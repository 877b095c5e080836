/// What a run achieved, printed at its end.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSummary {
    /// Optimizer steps run (this process, after any resume).
    pub steps: u64,
    /// Tokens trained on in those steps, all ranks.
    pub tokens: u64,
    /// Wall-clock seconds of those steps.
    pub elapsed_s: f64,
    /// Tokens per second.
    pub tokens_per_s: f64,
    /// Achieved model GFLOP/s (forward + backward), all ranks.
    pub gflops_per_s: f64,
    /// `gflops_per_s` over the peak, when a peak is known.
    pub mfu: Option<f64>,
    /// The peak GFLOP/s MFU is measured against.
    pub peak_gflops: Option<f64>,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: Option<u64>,
    /// Peak memory of rank 0's device, for devices other than the host.
    pub device_peak_bytes: Option<u64>,
    /// Last training loss.
    pub final_loss: Option<f64>,
    /// Last evaluation loss.
    pub final_eval_loss: Option<f64>,
    /// The per-phase report (`metrics.phase_profile`), shown after the
    /// summary line.
    pub phase_profile: Option<String>,
}

impl RunSummary {
    /// The summary of `steps` steps over `tokens` tokens in `elapsed_s`
    /// seconds, at `flops_per_token` model FLOPs per token (e.g. `6·N` plus
    /// attention), against `peak_gflops` if known.
    pub fn new(
        steps: u64,
        tokens: u64,
        elapsed_s: f64,
        flops_per_token: f64,
        peak_gflops: Option<f64>,
    ) -> Self {
        let per_s = |x: f64| if elapsed_s > 0.0 { x / elapsed_s } else { 0.0 };
        let tokens_per_s = per_s(tokens as f64);
        let gflops_per_s = tokens_per_s * flops_per_token / 1e9;
        RunSummary {
            steps,
            tokens,
            elapsed_s,
            tokens_per_s,
            gflops_per_s,
            mfu: peak_gflops.filter(|p| *p > 0.0).map(|p| gflops_per_s / p),
            peak_gflops,
            peak_rss_bytes: super::peak_rss_bytes(),
            device_peak_bytes: None,
            final_loss: None,
            final_eval_loss: None,
            phase_profile: None,
        }
    }
}

impl std::fmt::Display for RunSummary {
    /// One paragraph: `trained 200 steps (819.2k tokens) in 61.3s | 13.4k tok/s | 9.8 GFLOP/s | mfu 12% of 80 GFLOP/s | peak rss 412 MiB | loss 0.0312 | eval 0.0450`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trained {} steps ({} tokens) in {:.1}s | {} tok/s | {:.1} GFLOP/s",
            self.steps,
            super::console::si(self.tokens as f64),
            self.elapsed_s,
            super::console::si(self.tokens_per_s),
            self.gflops_per_s
        )?;
        if let (Some(mfu), Some(peak)) = (self.mfu, self.peak_gflops) {
            write!(f, " | mfu {:.0}% of {peak:.0} GFLOP/s", mfu * 100.0)?;
            if mfu > 1.0 {
                write!(
                    f,
                    " (above 100 %: that rate is too low, set metrics.peak_gflops)"
                )?;
            }
        }
        if let Some(rss) = self.peak_rss_bytes {
            write!(f, " | peak rss {} MiB", rss >> 20)?;
        }
        if let Some(device) = self.device_peak_bytes {
            write!(f, " | device peak {} MiB", device >> 20)?;
        }
        if let Some(loss) = self.final_loss {
            write!(f, " | loss {loss:.4}")?;
        }
        if let Some(eval) = self.final_eval_loss {
            write!(f, " | eval {eval:.4}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1000 tokens in 2 s at 6e6 FLOPs/token: 500 tok/s, 3 GFLOP/s, 25% of 12.
    #[test]
    fn rates_and_mfu_follow_from_the_totals() {
        let s = RunSummary::new(10, 1000, 2.0, 6e6, Some(12.0));
        assert_eq!(
            (s.tokens_per_s, s.gflops_per_s, s.mfu),
            (500.0, 3.0, Some(0.25))
        );
        let text = RunSummary {
            peak_rss_bytes: Some(3 << 20),
            final_loss: Some(0.5),
            ..s.clone()
        }
        .to_string();
        assert_eq!(
            text,
            "trained 10 steps (1.0k tokens) in 2.0s | 500 tok/s | 3.0 GFLOP/s | mfu 25% of 12 GFLOP/s \
             | peak rss 3 MiB | loss 0.5000"
        );
        assert_eq!(RunSummary::new(0, 0, 0.0, 1.0, None).mfu, None);
        let device = RunSummary {
            peak_rss_bytes: None,
            device_peak_bytes: Some(5 << 30),
            ..s
        };
        assert!(
            device.to_string().ends_with("| device peak 5120 MiB"),
            "{device}"
        );
    }

    /// 3 GFLOP/s against a peak of 2 cannot be: the summary says the peak
    /// is wrong and how to set it.
    #[test]
    fn an_mfu_above_100_percent_points_at_the_peak() {
        let text = RunSummary::new(10, 1000, 2.0, 6e6, Some(2.0)).to_string();
        assert!(
            text.contains(
                "mfu 150% of 2 GFLOP/s (above 100 %: that rate is too low, set metrics.peak_gflops)"
            ),
            "{text}"
        );
    }
}
