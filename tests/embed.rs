//! The trainer embedded as a library (`cptrain::embed`): the logic of
//! `examples/embed.rs` trains in memory, writes nothing, and trains exactly
//! what `cptrain run` of the same configuration trains.

mod common;

#[path = "../examples/embed.rs"]
#[allow(dead_code)] // the example's `main` is not called here
mod example;

use appctx::CancellationToken;
use cptrain::embed::Training;
use std::sync::{Arc, Mutex};

use cptrain::components::MachinePeak;
use cptrain::metrics::{MetricsError, MetricsSink, StepRecord};
use cptrain::model::{ParamLayout, flops_per_token};

/// Relative tolerance between the embedded run and the binary's: the same
/// code on the same thread count, so any difference could only come from the
/// order of a threaded reduction; a wiring difference (another sink, weight
/// or schedule) moves the losses by far more.
const SAME_RUN: f64 = 1e-6;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= SAME_RUN * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn the_example_trains_in_memory_what_cptrain_run_trains() {
    // The working directory is this process's; only this test changes it.
    let quiet = tempfile::tempdir().unwrap();
    std::env::set_current_dir(quiet.path()).unwrap();
    let config = example::tiny_config().unwrap();
    let outcome = example::train(&config).expect("the example trains");

    let losses = outcome.losses();
    assert_eq!(losses.len(), 5);
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        losses.windows(2).all(|w| w[1] < w[0]),
        "the loss falls at every step: {losses:?}"
    );
    assert!(!outcome.interrupted);
    assert_eq!(outcome.steps, 5);
    assert_eq!(outcome.checkpoint, None);
    // No peak was measured or configured, so no MFU.
    assert!(outcome.records.iter().all(|r| r.mfu.is_none()));
    let weights = outcome.weights.as_ref().expect("the final weights");
    assert_eq!(weights.step, 5);
    assert_eq!(weights.params.len(), weights.layout.len());
    let leftovers: Vec<_> = std::fs::read_dir(quiet.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "nothing is written: {leftovers:?}");

    // The same configuration through the binary.
    let cli = tempfile::tempdir().unwrap();
    assert_eq!(weights.layout, ParamLayout::gpt2(&config.model));
    std::fs::write(cli.path().join("run.toml"), config.to_toml().unwrap()).unwrap();
    let out_dir = cli.path().join("out");
    let out = out_dir.to_str().unwrap();
    common::cptrain_ok(
        cli.path(),
        &[
            "run",
            "--config",
            "run.toml",
            "--set",
            &format!("train.out_dir={out}"),
        ],
    );
    let cli_losses = common::losses(&out_dir);
    assert_eq!(cli_losses.len(), losses.len());
    for (step, (a, b)) in losses.iter().zip(&cli_losses).enumerate() {
        assert!(
            close(*a, *b),
            "step {}: embedded {a}, cptrain run {b}",
            step + 1
        );
    }
    let cli_eval = common::metrics(&out_dir)[4]["eval_loss"].as_f64().unwrap();
    let eval = outcome.eval_losses();
    assert_eq!(eval.len(), 1);
    assert!(close(eval[0].1, cli_eval), "{eval:?} vs {cli_eval}");
    let saved = common::checkpoint_weights(&out_dir, 5);
    for spec in weights.layout.specs() {
        let (_, file) = (saved.iter().find(|(name, _)| *name == spec.name))
            .unwrap_or_else(|| panic!("{} in the checkpoint", spec.name));
        let mine = &weights.params[spec.saved_range()];
        let worst = (mine.iter().zip(file))
            .map(|(a, b)| f64::from((a - b).abs()))
            .fold(0.0, f64::max);
        assert!(worst <= SAME_RUN, "{}: differs by {worst}", spec.name);
    }
}

#[test]
fn write_to_writes_what_cptrain_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let config = example::tiny_config().unwrap();
    let outcome = Training::from_config(&config)
        .unwrap()
        .write_to(&out_dir)
        .run(&CancellationToken::new())
        .expect("trains");
    let last = out_dir.join("checkpoints").join("step-5");
    assert_eq!(outcome.checkpoint.as_ref(), Some(&last));
    // The same records (to the last bit, but for parsing metrics.jsonl's text).
    let written = common::losses(&out_dir);
    assert_eq!(written.len(), 5);
    for (a, b) in written.iter().zip(outcome.losses()) {
        assert!(close(*a, b), "metrics.jsonl {a}, outcome {b}");
    }
    assert!(out_dir.join("config.toml").is_file());
    assert!(outcome.weights.is_some(), "the weights are in memory too");
}

#[test]
fn a_component_overridden_from_code_is_used() {
    let peak = MachinePeak {
        gflops: 1.0,
        measured: false,
    };
    let outcome = Training::from_config(&example::tiny_config().unwrap())
        .unwrap()
        .measure_peak()
        .context(|b| b.override_component("machine_peak", Arc::new(peak)))
        .run(&CancellationToken::new())
        .expect("trains");
    let record = &outcome.records[0];
    // MFU against the overriding 1 GFLOP/s peak: the rate of the record's
    // FLOPs (flops_per_token of the example's model) in GFLOP/s.
    let model = example::tiny_config().unwrap().model;
    let expected = record.tokens_per_s * flops_per_token(&model) / 1e9;
    let mfu = record.mfu.expect("MFU against the given peak");
    assert!(
        (mfu - expected).abs() <= 1e-9 * expected,
        "{mfu} vs {expected}"
    );
}

/// Cancels a token once a step's record arrives.
struct CancelAt {
    step: u64,
    token: CancellationToken,
}

impl MetricsSink for CancelAt {
    fn record(&mut self, record: &StepRecord) -> Result<(), MetricsError> {
        if record.step == self.step {
            self.token.cancel("the test");
        }
        Ok(())
    }
}

/// A run of 5 steps cancelled after step 3 and resumed trains the
/// uninterrupted run's steps 4 and 5 exactly (resume is bit-exact); a
/// changed learning rate is refused.
#[test]
fn a_run_on_disk_resumes_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let config = example::tiny_config().unwrap();
    let whole = example::train(&config).unwrap();
    let token = CancellationToken::new();
    let stopper = CancelAt {
        step: 3,
        token: token.clone(),
    };
    let stopped = Training::from_config(&config)
        .unwrap()
        .write_to(&out_dir)
        .sink("cancel_at_3", Arc::new(Mutex::new(stopper)))
        .run(&token)
        .expect("trains 3 steps");
    assert!(stopped.interrupted);
    assert_eq!(stopped.steps, 3);
    let mut changed = example::tiny_config().unwrap();
    changed.optimizer.lr *= 2.0;
    let err = Training::from_config(&changed)
        .unwrap()
        .write_to(&out_dir)
        .resume()
        .run(&CancellationToken::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("optimizer.lr"), "{err}");
    let resumed = Training::from_config(&config)
        .unwrap()
        .write_to(&out_dir)
        .resume()
        .run(&CancellationToken::new())
        .expect("resumes");
    let steps: Vec<u64> = resumed.records.iter().map(|r| r.step).collect();
    assert_eq!(steps, [4, 5]);
    assert_eq!(resumed.losses(), whole.losses()[3..]);
    assert_eq!(resumed.weights, whole.weights);
}

#[test]
fn resuming_needs_the_runs_directory() {
    let err = Training::from_toml("")
        .resume()
        .run(&CancellationToken::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("Training::write_to(dir)"), "{err}");
}

#[test]
fn a_cancelled_token_stops_before_the_first_step() {
    let token = CancellationToken::new();
    token.cancel("the test");
    let outcome = Training::from_toml("[train]\nsteps = 3\n")
        .run(&token)
        .expect("a cancelled run ends cleanly");
    assert!(outcome.interrupted);
    assert_eq!(outcome.steps, 0);
    assert!(outcome.records.is_empty());
    assert_eq!(outcome.weights, None);
}

#[test]
fn file_outputs_without_an_out_dir_are_refused() {
    let error = Training::from_toml("[metrics]\nphase_profile = true\n")
        .run(&CancellationToken::new())
        .expect_err("refused");
    assert!(
        error.to_string().contains("metrics.phase_profile"),
        "{error}"
    );
}

#[test]
fn a_mistyped_key_is_refused_with_a_suggestion() {
    let error = Training::from_toml("[train]\nstepz = 3\n")
        .run(&CancellationToken::new())
        .expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains("train.stepz") && text.contains("train.steps"),
        "{text}"
    );
}
