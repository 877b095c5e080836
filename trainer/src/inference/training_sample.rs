//! `train.sample_every`: a short greedy continuation of a fixed prompt,
//! printed by the reporting rank during training (as nanoGPT and llm.c do),
//! to watch what the model has learned.

use std::sync::Arc;

use super::{Decoder, Request, Sampler, SamplingConfig, generate};
use crate::data::TrainConfig;
use crate::kernels::Kernels;
use crate::model::{ModelConfig, ModelError};
use crate::tokenizer::Tokenizer;

/// Makes a sample every `every` steps (never when `every` is 0).
pub struct TrainingSampler {
    every: u64,
    prompt: Vec<u32>,
    max_new_tokens: usize,
    model: ModelConfig,
    kernels: Arc<dyn Kernels>,
    tokenizer: Arc<dyn Tokenizer>,
}

impl TrainingSampler {
    /// A sampler of `train.sample_prompt` and `train.sample_tokens` every
    /// `every` steps (0: never; the reporting rank passes
    /// `train.sample_every`), with `tokenizer` (`data.tokenizer`) for the
    /// prompt and the output. The prompt must fit the model: ids below `model.vocab_size`, fewer
    /// tokens than `model.seq_len`; an empty prompt starts from the
    /// end-of-text token, or token 0 when the tokenizer has none.
    pub fn new(
        every: u64,
        train: &TrainConfig,
        model: &ModelConfig,
        tokenizer: Arc<dyn Tokenizer>,
        kernels: Arc<dyn Kernels>,
    ) -> Result<Self, String> {
        if every == 0 {
            return Ok(TrainingSampler {
                every,
                prompt: Vec::new(),
                max_new_tokens: 0,
                model: model.clone(),
                kernels,
                tokenizer,
            });
        }
        let mut prompt = tokenizer.encode(&train.sample_prompt);
        if prompt.is_empty() {
            prompt.push(tokenizer.end_of_text().unwrap_or(0));
        }
        if let Some(&id) = prompt.iter().find(|&&id| id as usize >= model.vocab_size) {
            return Err(format!(
                "train.sample_prompt: token {id} (data.tokenizer = \"{}\") is not below \
                 model.vocab_size = {}; use a prompt in the model's vocabulary",
                tokenizer.name(),
                model.vocab_size
            ));
        }
        if prompt.len() >= model.seq_len {
            return Err(format!(
                "train.sample_prompt is {} tokens; it must be shorter than model.seq_len = {}",
                prompt.len(),
                model.seq_len
            ));
        }
        Ok(TrainingSampler {
            every,
            prompt,
            max_new_tokens: train.sample_tokens,
            model: model.clone(),
            kernels,
            tokenizer,
        })
    }

    /// After step `step` (1-based): when a sample is due, one line with the
    /// prompt and its greedy continuation, both quoted and escaped.
    pub fn after_step(&self, step: u64, params: &[f32]) -> Result<Option<String>, ModelError> {
        if self.every == 0 || !step.is_multiple_of(self.every) {
            return Ok(None);
        }
        let mut decoder = Decoder::new(&self.model, self.kernels.clone(), params)?;
        let greedy = SamplingConfig {
            temperature: 0.0,
            ..SamplingConfig::default()
        };
        let request = Request {
            prompt: &self.prompt,
            max_new_tokens: self.max_new_tokens,
            end_of_text: self.tokenizer.end_of_text(),
        };
        let new = generate(
            &mut decoder,
            &mut Sampler::new(greedy, 0, 0),
            request,
            &mut |_| {},
        )?;
        let prompt = if self.tokenizer.end_of_text() == Some(self.prompt[0]) {
            self.tokenizer.decode(&self.prompt[1..])
        } else {
            self.tokenizer.decode(&self.prompt)
        };
        let text = self.tokenizer.decode(&new.tokens);
        Ok(Some(format!("step {step} sample: {prompt:?} → {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{CpuKernels, Threads};
    use crate::model::init_params;
    use crate::tokenizer::ByteTokenizer;

    fn model(vocab_size: usize) -> ModelConfig {
        ModelConfig {
            n_layer: 1,
            n_head: 2,
            n_embd: 8,
            vocab_size,
            seq_len: 8,
            init: None,
            n_positions: None,
            vocab_padding: 1,
        }
    }

    fn sampler(every: u64, prompt: &str, vocab_size: usize) -> Result<TrainingSampler, String> {
        let train = TrainConfig {
            sample_prompt: prompt.into(),
            sample_tokens: 4,
            ..TrainConfig::default()
        };
        let kernels = Arc::new(CpuKernels::new(Threads::new(1).unwrap()));
        TrainingSampler::new(
            every,
            &train,
            &model(vocab_size),
            Arc::new(ByteTokenizer),
            kernels,
        )
    }

    #[test]
    fn samples_come_every_n_steps_with_the_prompt() {
        let s = sampler(5, "ab", 256).unwrap();
        let params = init_params(&model(256), 1);
        let line = s.after_step(10, &params).unwrap().expect("step 10 is due");
        assert!(line.starts_with("step 10 sample: \"ab\" → \""), "{line}");
        assert_eq!(s.after_step(11, &params).unwrap(), None);
        let off = sampler(0, "ab", 256).unwrap();
        assert_eq!(off.after_step(10, &params).unwrap(), None);
    }

    #[test]
    fn a_prompt_the_model_cannot_read_names_the_key() {
        // "é" is bytes 195, 169: outside a 16-token vocabulary.
        let err = sampler(5, "é", 16).err().unwrap();
        assert!(
            err.contains("train.sample_prompt: token 195") && err.contains("model.vocab_size = 16"),
            "{err}"
        );
        let err = sampler(5, "12345678", 256).err().unwrap();
        assert!(
            err.contains("train.sample_prompt is 8 tokens") && err.contains("model.seq_len = 8"),
            "{err}"
        );
        // Unchecked when sampling is off.
        assert!(sampler(0, "é", 16).is_ok());
    }
}
