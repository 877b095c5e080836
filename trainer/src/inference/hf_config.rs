//! The `config.json` of a Hugging Face GPT-2 directory (`GPT2Config`), read
//! as far as this model can honour it.

use std::path::Path;

use serde_json::Value;

use super::InferenceError;
use crate::model::ModelConfig;

/// `GPT2Config` fields whose values this model fixes: the value it has,
/// compared with the file's when the file sets the field.
const FIXED: [(&str, &[&str]); 7] = [
    ("model_type", &["\"gpt2\""]),
    (
        "activation_function",
        &["\"gelu_new\"", "\"gelu_pytorch_tanh\""],
    ),
    ("layer_norm_epsilon", &["1e-05", "1e-5", "0.00001"]),
    ("scale_attn_weights", &["true"]),
    ("scale_attn_by_inverse_layer_idx", &["false"]),
    ("add_cross_attention", &["false"]),
    ("tie_word_embeddings", &["true"]),
];

/// The model shape of the `GPT2Config` at `path`: `n_layer`, `n_head`,
/// `n_embd`, `vocab_size`, and `n_positions` as `seq_len`. A field that
/// asks for another architecture (activation, LayerNorm epsilon, attention
/// scaling, an MLP width other than `4·n_embd`, untied embeddings) is
/// refused, naming the field.
pub fn read_hf_config(path: &Path) -> Result<ModelConfig, InferenceError> {
    let text = std::fs::read_to_string(path).map_err(|source| InferenceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let json: Value = serde_json::from_str(&text).map_err(|e| InferenceError::HfConfig {
        path: path.to_path_buf(),
        what: format!("is not JSON: {e}"),
    })?;
    let field = |name: &str| -> Result<usize, InferenceError> {
        json.get(name)
            .and_then(Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| InferenceError::HfConfig {
                path: path.to_path_buf(),
                what: format!("needs `{name}` as a positive integer"),
            })
    };
    let model = ModelConfig {
        n_layer: field("n_layer")?,
        n_head: field("n_head")?,
        n_embd: field("n_embd")?,
        vocab_size: field("vocab_size")?,
        seq_len: field("n_positions")?,
        init: None,
    };
    for (name, accepted) in FIXED {
        if let Some(value) = json.get(name).filter(|v| !v.is_null()) {
            let shown = value.to_string();
            let matches = accepted.iter().any(|a| {
                *a == shown
                    || serde_json::from_str::<Value>(a)
                        .ok()
                        .and_then(|a| Some((a.as_f64()?, value.as_f64()?)))
                        .is_some_and(|(a, v)| a == v)
            });
            if !matches {
                return Err(InferenceError::HfConfig {
                    path: path.to_path_buf(),
                    what: format!(
                        "sets `{name}` = {shown}; this GPT-2 implementation has {}",
                        accepted.join(" or ")
                    ),
                });
            }
        }
    }
    if let Some(inner) = json.get("n_inner").filter(|v| !v.is_null())
        && inner.as_u64() != Some(4 * model.n_embd as u64)
    {
        return Err(InferenceError::HfConfig {
            path: path.to_path_buf(),
            what: format!(
                "sets `n_inner` = {inner}; this GPT-2 implementation has an MLP of 4·n_embd = {}",
                4 * model.n_embd
            ),
        });
    }
    model.validate().map_err(|e| InferenceError::HfConfig {
        path: path.to_path_buf(),
        what: e.to_string(),
    })?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<ModelConfig, InferenceError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).unwrap();
        read_hf_config(&path)
    }

    #[test]
    fn gpt2_small_reads_as_its_shape() {
        // The fields of the `gpt2` repository's config.json that matter here.
        let model = read(
            r#"{"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
                "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024,
                "n_embd": 768, "n_head": 12, "n_inner": null, "n_layer": 12,
                "n_positions": 1024, "scale_attn_weights": true, "vocab_size": 50257}"#,
        )
        .unwrap();
        assert_eq!(
            (
                model.n_layer,
                model.n_head,
                model.n_embd,
                model.vocab_size,
                model.seq_len
            ),
            (12, 12, 768, 50257, 1024)
        );
    }

    #[test]
    fn other_architectures_and_missing_fields_are_named() {
        let base = r#""n_embd": 8, "n_head": 2, "n_layer": 1, "n_positions": 16, "vocab_size": 10"#;
        let cases = [
            (
                format!(r#"{{{base}, "activation_function": "relu"}}"#),
                "`activation_function` = \"relu\"",
            ),
            (
                format!(r#"{{{base}, "layer_norm_epsilon": 1e-6}}"#),
                "`layer_norm_epsilon`",
            ),
            (format!(r#"{{{base}, "n_inner": 64}}"#), "`n_inner` = 64"),
            (
                format!(r#"{{{base}, "tie_word_embeddings": false}}"#),
                "`tie_word_embeddings`",
            ),
            (r#"{"n_embd": 8}"#.to_string(), "`n_layer`"),
            (format!(r#"{{{base}, "n_head": 3}}"#), "model.n_head = 3"),
            ("not json".to_string(), "is not JSON"),
        ];
        for (json, fragment) in cases {
            let err = read(&json).unwrap_err().to_string();
            assert!(err.contains(fragment), "{json}: {err}");
            assert!(err.contains("config.json"), "{err}");
        }
        let eps = format!(r#"{{{base}, "layer_norm_epsilon": 0.00001, "n_inner": 32}}"#);
        assert!(read(&eps).is_ok());
    }
}
