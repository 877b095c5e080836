use super::{
    DataConfig, DataError, DataSource, FileSource, SyntheticSource, TokenEncoding, WindowOrder,
};
use crate::model::ModelConfig;
use std::sync::Arc;

/// The names `data.source` accepts.
pub const BUILTIN_SOURCES: [&str; 3] = ["synthetic", "text", "tokens"];

/// Opens the source `cfg.source` names for `model`'s sequence length and
/// vocabulary, validating files up front. `seed` seeds synthetic data.
pub fn open_data_source(
    cfg: &DataConfig,
    model: &ModelConfig,
    seed: u64,
) -> Result<Arc<dyn DataSource>, DataError> {
    let encoding = match cfg.source.as_str() {
        "synthetic" => {
            let symbols = cfg.symbols.unwrap_or(model.vocab_size);
            if symbols == 0 || symbols > model.vocab_size {
                return Err(DataError::Symbols {
                    symbols,
                    vocab_size: model.vocab_size,
                });
            }
            return Ok(Arc::new(SyntheticSource::new(
                cfg.task,
                model.seq_len,
                symbols,
                seed,
            )?));
        }
        "text" => TokenEncoding::Bytes,
        "tokens" => TokenEncoding::U16,
        other => {
            return Err(DataError::UnknownSource {
                name: other.to_string(),
                known: BUILTIN_SOURCES.join(", "),
            });
        }
    };
    let path = cfg.path.as_deref().ok_or_else(|| DataError::PathRequired {
        source_name: cfg.source.clone(),
    })?;
    let source = FileSource::open(
        encoding,
        path,
        cfg.val_path.as_deref(),
        cfg.val_fraction,
        model.seq_len,
        model.vocab_size,
    )?;
    let order = WindowOrder {
        shuffle: cfg.shuffle.unwrap_or(true),
        seed,
    };
    Ok(Arc::new(source.with_order(order)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ModelConfig {
        ModelConfig {
            n_layer: 1,
            n_head: 1,
            n_embd: 4,
            vocab_size: 100,
            seq_len: 4,
            init: None,
            n_positions: None,
            vocab_padding: 1,
        }
    }

    #[test]
    fn configuration_mistakes_name_the_key() {
        let cases: [(DataConfig, &str); 4] = [
            (
                DataConfig {
                    source: "tokenz".into(),
                    ..Default::default()
                },
                "data.source = \"tokenz\" is not a known data source; expected one of: synthetic, text, tokens",
            ),
            (
                DataConfig {
                    source: "tokens".into(),
                    ..Default::default()
                },
                "data.path is not set",
            ),
            (
                DataConfig {
                    symbols: Some(101),
                    ..Default::default()
                },
                "data.symbols = 101",
            ),
            (
                DataConfig {
                    symbols: Some(0),
                    ..Default::default()
                },
                "data.symbols = 0",
            ),
        ];
        for (cfg, fragment) in cases {
            let err = open_data_source(&cfg, &model(), 0)
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(fragment), "{err}");
        }
    }

    #[test]
    fn the_default_is_the_synthetic_copy_task() {
        let source = open_data_source(&DataConfig::default(), &model(), 3).unwrap();
        assert!(
            source.describe().starts_with("synthetic copy task"),
            "{}",
            source.describe()
        );
        assert_eq!(source.seq_len(), 4);
    }
}
