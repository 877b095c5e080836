use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::{DataError, DataSource, Split};

/// The `[train]` section: the length and batching of a run and where it writes.
///
/// Defaults: `steps = 200`, `batch_size = 8`, `micro_batch_size` unset (the
/// whole per-rank batch at once), `seed = 1337`, `out_dir = "runs/default"`,
/// `eval_every = 50`, `eval_batches = 4`, `checkpoint_every = 0` (only at the
/// end and on interruption), `async_checkpoint = true`, `keep_last = 3`, `overwrite = false`,
/// `allow_config_change = false`, `sample_every = 0` (no samples),
/// `sample_prompt = ""`, `sample_tokens = 32`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Optimizer steps of the run.
    pub steps: u64,
    /// Global batch `B`: sequences per optimizer step over all DP ranks.
    pub batch_size: usize,
    /// Sequences per forward/backward pass on one rank; must divide
    /// `batch_size / dp`. Unset: the whole per-rank batch.
    pub micro_batch_size: Option<usize>,
    /// Seed of the initialization and the synthetic data.
    pub seed: u64,
    /// Directory of `metrics.jsonl` and `checkpoints/`.
    pub out_dir: PathBuf,
    /// Evaluate the validation loss every this many steps (0: never).
    pub eval_every: u64,
    /// Validation batches (of `batch_size` sequences) per evaluation; always the same ones.
    pub eval_batches: usize,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Write checkpoints in the background while training goes on (at most
    /// one in flight); false writes them on the training thread.
    pub async_checkpoint: bool,
    /// Complete checkpoints to keep, newest first (0: keep all).
    pub keep_last: usize,
    /// Let a fresh run start in an `out_dir` that holds another run's files:
    /// they are moved aside to a sibling directory, never deleted.
    pub overwrite: bool,
    /// Let `--resume` change keys that change what the run trains (data,
    /// model, optimizer, seed); the change is logged and recorded.
    pub allow_config_change: bool,
    /// Print a greedy continuation of `sample_prompt` every this many steps
    /// (0: never); see [`crate::inference::TrainingSampler`].
    pub sample_every: u64,
    /// The text the training samples continue (`data.tokenizer`); empty
    /// starts from the end-of-text token (token 0 without one).
    pub sample_prompt: String,
    /// New tokens per training sample.
    pub sample_tokens: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 200,
            batch_size: 8,
            micro_batch_size: None,
            seed: 1337,
            out_dir: PathBuf::from("runs/default"),
            eval_every: 50,
            eval_batches: 4,
            checkpoint_every: 0,
            async_checkpoint: true,
            keep_last: 3,
            overwrite: false,
            allow_config_change: false,
            sample_every: 0,
            sample_prompt: String::new(),
            sample_tokens: 32,
        }
    }
}

impl TrainConfig {
    /// Refuses evaluations that read the validation split more than once:
    /// at most `⌈W / batch_size⌉` batches (the last one may wrap around to
    /// the first windows, so a split smaller than one batch still evaluates).
    pub fn check_eval_windows(&self, source: &dyn DataSource) -> Result<(), DataError> {
        let windows = source.num_windows(Split::Val);
        if windows > 0
            && self.batch_size > 0
            && self.eval_batches > windows.div_ceil(self.batch_size)
        {
            return Err(DataError::EvalBatches {
                eval_batches: self.eval_batches,
                batch_size: self.batch_size,
                windows,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected_and_missing_ones_defaulted() {
        let cfg: TrainConfig =
            serde_json::from_str(r#"{"steps": 5, "micro_batch_size": 2}"#).unwrap();
        assert_eq!(
            (cfg.steps, cfg.micro_batch_size, cfg.batch_size),
            (5, Some(2), 8)
        );
        let err = serde_json::from_str::<TrainConfig>(r#"{"step": 5}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `step`"), "{err}");
    }

    #[test]
    fn an_evaluation_reads_each_validation_window_at_most_once() {
        let source =
            crate::data::SyntheticSource::new(crate::data::SyntheticTask::Copy, 8, 4, 0).unwrap();
        let windows = source.num_windows(Split::Val);
        let fits = TrainConfig {
            batch_size: 16,
            eval_batches: windows / 16,
            ..TrainConfig::default()
        };
        assert!(fits.check_eval_windows(&source).is_ok());
        let err = TrainConfig {
            eval_batches: 1_000_000_000,
            ..fits
        }
        .check_eval_windows(&source)
        .unwrap_err()
        .to_string();
        for text in [
            "train.eval_batches = 1000000000",
            &format!("{windows} validation windows"),
            &format!("at most {}", windows / 16),
        ] {
            assert!(err.contains(text), "`{text}` in {err}");
        }
    }
}
