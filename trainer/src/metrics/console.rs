use super::{MetricsConfig, MetricsError, MetricsSink, ProgressMode, RunSummary, StepRecord};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};

/// Shows progress on the console: an indicatif bar on a terminal, or one
/// dense, grep-able line every `log_every` steps otherwise (as in CI logs).
pub struct ConsoleSink {
    total_steps: u64,
    log_every: u64,
    output: Output,
    /// Elapsed seconds and step of the first record seen, for the ETA.
    start: Option<(f64, u64)>,
    /// A line printed after the summary.
    hint: Option<String>,
}

enum Output {
    Bar(ProgressBar),
    Lines(Box<dyn Write + Send>),
}

impl ConsoleSink {
    /// A sink for a run of `total_steps` steps, configured by `cfg`; `auto`
    /// draws a bar only when stderr is a terminal. Plain lines go to stdout.
    pub fn new(total_steps: u64, cfg: &MetricsConfig) -> Self {
        let bar = match cfg.progress {
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Always => true,
            ProgressMode::Never => false,
        };
        if !bar {
            return Self::plain(total_steps, cfg.log_every, Box::new(std::io::stdout()));
        }
        let bar = ProgressBar::with_draw_target(Some(total_steps), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{bar:30.cyan/blue} {msg}")
            .expect("the template is valid");
        bar.set_style(style.progress_chars("=> "));
        ConsoleSink {
            total_steps,
            log_every: cfg.log_every.max(1),
            output: Output::Bar(bar),
            start: None,
            hint: None,
        }
    }

    /// A sink that writes plain lines to `out` (the first step, every
    /// `log_every`-th, the last, and every step with an eval loss).
    pub fn plain(total_steps: u64, log_every: u64, out: Box<dyn Write + Send>) -> Self {
        ConsoleSink {
            total_steps,
            log_every: log_every.max(1),
            output: Output::Lines(out),
            start: None,
            hint: None,
        }
    }

    /// Prints `hint` on a line of its own after the summary (e.g. how to
    /// draw the run's curves).
    pub fn with_hint(mut self, hint: String) -> Self {
        self.hint = Some(hint);
        self
    }

    /// Seconds left, extrapolated from the average step time since the first record.
    fn eta_s(&mut self, record: &StepRecord) -> Option<f64> {
        let (start_elapsed, start_step) = *self
            .start
            .get_or_insert((record.elapsed_s - record.step_time_s, record.step - 1));
        let done = record.step.checked_sub(start_step).filter(|&d| d > 0)?;
        let per_step = (record.elapsed_s - start_elapsed) / done as f64;
        Some(per_step * self.total_steps.saturating_sub(record.step) as f64)
    }
}

impl MetricsSink for ConsoleSink {
    fn record(&mut self, record: &StepRecord) -> Result<(), MetricsError> {
        let eta = self.eta_s(record);
        let line = format_step_line(record, self.total_steps, eta);
        let periodic = record.step == 1
            || record.step.is_multiple_of(self.log_every)
            || record.step == self.total_steps
            || record.eval_loss.is_some();
        match &mut self.output {
            Output::Bar(bar) => {
                if periodic {
                    bar.println(&line);
                }
                bar.set_position(record.step);
                bar.set_message(line);
            }
            Output::Lines(out) if periodic => {
                writeln!(out, "{line}")
                    .and_then(|()| out.flush())
                    .map_err(|source| MetricsError::Io {
                        action: "write progress to",
                        path: "the console".into(),
                        source,
                    })?;
            }
            Output::Lines(_) => {}
        }
        Ok(())
    }

    fn finish(&mut self, summary: &RunSummary) -> Result<(), MetricsError> {
        let console = |source| MetricsError::Io {
            action: "write summary to",
            path: "the console".into(),
            source,
        };
        let after: String = [summary.phase_profile.as_deref(), self.hint.as_deref()]
            .iter()
            .flatten()
            .map(|text| format!("\n{text}"))
            .collect();
        match &mut self.output {
            Output::Bar(bar) => {
                bar.finish_and_clear();
                eprintln!("{summary}{after}");
            }
            Output::Lines(out) => writeln!(out, "{summary}{after}")
                .and_then(|()| out.flush())
                .map_err(console)?,
        }
        Ok(())
    }
}

/// The console line of a step:
/// `step 12/200 | loss 3.2145 | gnorm 0.91 | lr 6.0e-4 | 412 ms | 15.9k tok/s | mfu 41% | eta 34s`,
/// with `| eval 2.9876` after the loss on evaluation steps; `mfu` and `eta`
/// appear when known.
pub fn format_step_line(record: &StepRecord, total_steps: u64, eta_s: Option<f64>) -> String {
    let mut line = format!(
        "step {}/{} | loss {:.4}",
        record.step, total_steps, record.loss
    );
    if let Some(eval) = record.eval_loss {
        line.push_str(&format!(" | eval {eval:.4}"));
    }
    line.push_str(&format!(
        " | gnorm {:.2} | lr {:.1e} | {} | {} tok/s",
        record.grad_norm,
        record.lr,
        duration(record.step_time_s),
        si(record.tokens_per_s)
    ));
    if let Some(mfu) = record.mfu {
        line.push_str(&format!(" | mfu {:.0}%", mfu * 100.0));
    }
    if let Some(eta) = eta_s {
        line.push_str(&format!(" | eta {}", eta_text(eta)));
    }
    line
}

/// `950`, `15.9k`, `2.31M`.
pub(super) fn si(x: f64) -> String {
    match x {
        x if x < 1e3 => format!("{x:.0}"),
        x if x < 1e6 => format!("{:.1}k", x / 1e3),
        x if x < 1e9 => format!("{:.2}M", x / 1e6),
        x => format!("{:.2}G", x / 1e9),
    }
}

/// `412 ms` below ten seconds, `12.3 s` above.
fn duration(seconds: f64) -> String {
    if seconds < 10.0 {
        format!("{:.0} ms", seconds * 1e3)
    } else {
        format!("{seconds:.1} s")
    }
}

/// `34s`, `5m12s`, `2h03m`.
fn eta_text(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn record(step: u64) -> StepRecord {
        StepRecord {
            step,
            loss: 3.21449,
            lr: 6e-4,
            grad_norm: 0.912,
            tokens: 6528 * step,
            tokens_per_s: 15_900.0,
            elapsed_s: 0.412 * step as f64,
            step_time_s: 0.412,
            ..Default::default()
        }
    }

    #[test]
    fn step_lines_are_dense_and_greppable() {
        let cases = [
            (
                StepRecord {
                    mfu: Some(0.41),
                    ..record(12)
                },
                Some(34.2),
                "step 12/200 | loss 3.2145 | gnorm 0.91 | lr 6.0e-4 | 412 ms | 15.9k tok/s | mfu 41% | eta 34s",
            ),
            (
                StepRecord {
                    eval_loss: Some(2.98766),
                    step_time_s: 12.34,
                    tokens_per_s: 950.0,
                    ..record(3)
                },
                Some(3725.0),
                "step 3/200 | loss 3.2145 | eval 2.9877 | gnorm 0.91 | lr 6.0e-4 | 12.3 s | 950 tok/s | eta 1h02m",
            ),
            (
                record(1),
                None,
                "step 1/200 | loss 3.2145 | gnorm 0.91 | lr 6.0e-4 | 412 ms | 15.9k tok/s",
            ),
        ];
        for (record, eta, want) in cases {
            assert_eq!(format_step_line(&record, 200, eta), want);
        }
        assert_eq!(eta_text(312.0), "5m12s");
        assert_eq!(si(2_310_000.0), "2.31M");
    }

    /// A writer the test can read back after the sink took ownership.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// 25 steps with log_every 10: lines for steps 1, 10, 20, 25 (the last)
    /// and 13 (an eval step), then the summary; ETAs extrapolate 0.412 s/step.
    #[test]
    fn plain_output_prints_periodic_lines_and_the_summary() {
        let out = Shared::default();
        let mut sink = ConsoleSink::plain(25, 10, Box::new(out.clone()));
        for step in 1..=25 {
            let eval_loss = (step == 13).then_some(1.0);
            sink.record(&StepRecord {
                eval_loss,
                ..record(step)
            })
            .unwrap();
        }
        let mut sink = sink.with_hint("curves: cptrain plot runs/x".into());
        sink.finish(&RunSummary::new(25, 1000, 10.0, 0.0, None))
            .unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let steps: Vec<&str> = text
            .lines()
            .map(|l| l.split(" |").next().unwrap())
            .collect();
        assert_eq!(
            steps,
            [
                "step 1/25",
                "step 10/25",
                "step 13/25",
                "step 20/25",
                "step 25/25",
                "trained 25 steps (1.0k tokens) in 10.0s",
                "curves: cptrain plot runs/x"
            ]
        );
        assert!(text.lines().nth(1).unwrap().ends_with("eta 6s"), "{text}");
    }
}
