//! `data.source = "sequence"`: windows of an arithmetic sequence of token
//! ids, `x, x + stride, x + 2·stride, ...` modulo the vocabulary, each
//! window starting at its own `x`. The next token is always the current one
//! plus `stride`, so a model learns it in a few dozen steps.

use std::sync::Arc;

use appctx::{Config, ConfigSection, component};
use cptrain::data::{DataError, DataSource, Split};
use cptrain::model::ModelConfig;
use serde::Deserialize;

/// The `[sequence]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SequenceConfig {
    /// The difference between consecutive token ids.
    pub stride: u32,
    /// Windows of the train split.
    pub train_windows: usize,
    /// Windows of the validation split.
    pub val_windows: usize,
}

impl Default for SequenceConfig {
    fn default() -> Self {
        SequenceConfig {
            stride: 3,
            train_windows: 256,
            val_windows: 16,
        }
    }
}

impl ConfigSection for SequenceConfig {
    const PREFIX: &'static str = "sequence";
}

/// The sequence source of one run.
pub struct SequenceSource {
    config: SequenceConfig,
    seq_len: usize,
    vocab_size: u32,
}

impl SequenceSource {
    /// Windows of `seq_len` tokens over ids `0..vocab_size`.
    pub fn new(config: SequenceConfig, seq_len: usize, vocab_size: u32) -> Result<Self, String> {
        if config.stride == 0 || config.stride >= vocab_size {
            return Err(format!(
                "sequence.stride = {} must be in 1..model.vocab_size ({vocab_size})",
                config.stride
            ));
        }
        Ok(SequenceSource {
            config,
            seq_len,
            vocab_size,
        })
    }

    /// The first id of window `window` of `split` (the splits start apart).
    fn start(&self, split: Split, window: usize) -> u64 {
        let offset = match split {
            Split::Train => 0,
            Split::Val => self.config.train_windows,
        };
        ((offset + window) as u64 * 7) % u64::from(self.vocab_size)
    }
}

impl DataSource for SequenceSource {
    fn describe(&self) -> String {
        format!(
            "arithmetic sequences of stride {} over {} ids (example plugin)",
            self.config.stride, self.vocab_size
        )
    }

    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn num_windows(&self, split: Split) -> usize {
        match split {
            Split::Train => self.config.train_windows,
            Split::Val => self.config.val_windows,
        }
    }

    fn read_window(
        &self,
        split: Split,
        window: usize,
        inputs: &mut [u32],
        targets: &mut [u32],
    ) -> Result<(), DataError> {
        let (vocab, stride) = (u64::from(self.vocab_size), u64::from(self.config.stride));
        let start = self.start(split, window);
        for (i, (input, target)) in inputs.iter_mut().zip(targets.iter_mut()).enumerate() {
            let id = (start + i as u64 * stride) % vocab;
            *input = id as u32;
            *target = ((id + stride) % vocab) as u32;
        }
        Ok(())
    }
}

/// The component: chosen when `data.source = "sequence"`.
fn sequence(
    config: Config<SequenceConfig>,
    model: Config<ModelConfig>,
) -> Result<Arc<dyn DataSource>, String> {
    let source = SequenceSource::new((*config).clone(), model.seq_len, model.vocab_size as u32)?;
    Ok(Arc::new(source))
}
component!(sequence, select = "data.source");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_target_is_its_input_plus_the_stride() {
        let source = SequenceSource::new(SequenceConfig::default(), 8, 10).unwrap();
        let (mut inputs, mut targets) = (vec![0; 8], vec![0; 8]);
        source
            .read_window(Split::Train, 1, &mut inputs, &mut targets)
            .unwrap();
        assert_eq!(inputs, [7, 0, 3, 6, 9, 2, 5, 8]);
        assert_eq!(targets, [0, 3, 6, 9, 2, 5, 8, 1]);
    }

    #[test]
    fn a_stride_outside_the_vocabulary_names_the_key() {
        let config = SequenceConfig {
            stride: 10,
            ..Default::default()
        };
        let err = SequenceSource::new(config, 8, 10).err().unwrap();
        assert!(err.starts_with("sequence.stride = 10"), "{err}");
    }
}
