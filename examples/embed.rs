//! Trains a tiny GPT for 5 steps from code and prints the losses: the
//! trainer embedded as a library (docs/embedding.md walks through it).
//!
//! `cargo run --release --example embed`

use appctx::CancellationToken;
use cptrain::embed::{EmbedError, TrainOutcome, TrainerConfig, Training};

/// The defaults (a small GPT on the synthetic `copy` task), made tiny: 5
/// steps, evaluated at the end. The sequences use 4 of the 16 token ids, so
/// 5 steps are enough to see the loss fall (it learns which ids occur).
pub fn tiny_config() -> Result<TrainerConfig, EmbedError> {
    let mut config = TrainerConfig::defaults()?;
    config.model.n_layer = 1;
    config.model.seq_len = 32;
    config.train.steps = 5;
    config.train.batch_size = 8;
    config.train.eval_batches = 1;
    config.optimizer.warmup_steps = 1;
    config.data.symbols = Some(4);
    config.kernels.threads = 2;
    Ok(config)
}

/// Trains `config` in memory: nothing is printed or written to disk.
pub fn train(config: &TrainerConfig) -> Result<TrainOutcome, EmbedError> {
    Training::from_config(config)?.run(&CancellationToken::new())
}

fn main() -> Result<(), EmbedError> {
    let outcome = train(&tiny_config()?)?;
    for record in &outcome.records {
        println!("step {}: loss {:.4}", record.step, record.loss);
    }
    for (step, loss) in outcome.eval_losses() {
        println!("validation loss after step {step}: {loss:.4}");
    }
    if let Some(weights) = &outcome.weights {
        println!(
            "{} weights in memory, {} tensors",
            weights.params.len(),
            weights.layout.specs().len()
        );
    }
    Ok(())
}
