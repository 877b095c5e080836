//! `config.json`: the model as Hugging Face's `GPT2Config`, written into
//! every checkpoint (with the tokenizer's files) so `GPT2LMHeadModel` and
//! `AutoTokenizer.from_pretrained(dir)` open it, and read back when
//! `model.init` names such a directory.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{CheckpointError, import_hf_gpt2};
use crate::kernels::LAYERNORM_EPS;
use crate::model::{ModelConfig, ParamLayout};
use crate::tokenizer::Tokenizer;

/// The file name.
pub const HF_CONFIG_FILE: &str = "config.json";

/// The fields of `GPT2Config` that describe this model; others in a file
/// read are ignored unless listed in [`Gpt2Config::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    /// `["GPT2LMHeadModel"]`.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// `gpt2`.
    pub model_type: String,
    /// Blocks.
    pub n_layer: usize,
    /// Heads.
    pub n_head: usize,
    /// Width.
    pub n_embd: usize,
    /// Rows of `wpe`.
    pub n_positions: usize,
    /// Rows of `wte`.
    pub vocab_size: usize,
    /// LayerNorm's epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// `gelu_new`, the tanh approximation.
    #[serde(default = "default_activation")]
    pub activation_function: String,
    /// The MLP's hidden width; `None` means `4·n_embd`.
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// The output head is `wte`.
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// `<|endoftext|>` for GPT-2's tokenizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    /// `<|endoftext|>` for GPT-2's tokenizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<u32>,
    /// Dropout, always 0 here.
    #[serde(default)]
    pub resid_pdrop: f64,
    /// Dropout, always 0 here.
    #[serde(default)]
    pub embd_pdrop: f64,
    /// Dropout, always 0 here.
    #[serde(default)]
    pub attn_pdrop: f64,
    /// `float32`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_dtype: Option<String>,
    /// Scores scaled by `1/√head_dim`: true here.
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    /// Scores also scaled by the layer's index: false here.
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// Cross-attention blocks: none here.
    #[serde(default)]
    pub add_cross_attention: bool,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_activation() -> String {
    "gelu_new".into()
}
fn default_true() -> bool {
    true
}

impl Gpt2Config {
    /// The config of `model`; `end_of_text` of its tokenizer, if any.
    pub fn of(model: &ModelConfig, end_of_text: Option<u32>) -> Self {
        Gpt2Config {
            architectures: vec!["GPT2LMHeadModel".into()],
            model_type: "gpt2".into(),
            n_layer: model.n_layer,
            n_head: model.n_head,
            n_embd: model.n_embd,
            n_positions: model.positions(),
            vocab_size: model.vocab_size,
            layer_norm_epsilon: f64::from(LAYERNORM_EPS),
            activation_function: default_activation(),
            n_inner: None,
            tie_word_embeddings: true,
            bos_token_id: end_of_text,
            eos_token_id: end_of_text,
            resid_pdrop: 0.0,
            embd_pdrop: 0.0,
            attn_pdrop: 0.0,
            torch_dtype: Some("float32".into()),
            scale_attn_weights: true,
            scale_attn_by_inverse_layer_idx: false,
            add_cross_attention: false,
        }
    }

    /// The model this file describes (`seq_len` = `n_positions`).
    pub fn model(&self) -> ModelConfig {
        ModelConfig {
            n_layer: self.n_layer,
            n_head: self.n_head,
            n_embd: self.n_embd,
            vocab_size: self.vocab_size,
            seq_len: self.n_positions,
            init: None,
            n_positions: Some(self.n_positions),
            vocab_padding: 1,
        }
    }

    /// Reads `<dir>/config.json`.
    pub fn read(dir: &Path) -> Result<Self, CheckpointError> {
        let path = dir.join(HF_CONFIG_FILE);
        let text = std::fs::read(&path).map_err(|source| CheckpointError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| CheckpointError::State { path, source })
    }

    /// Checks that the file describes the configured model: shape keys equal
    /// (`n_positions` to `model.n_positions`, which may exceed
    /// `model.seq_len`), GPT-2's activation,
    /// epsilon and MLP width, and tied embeddings. Each mismatch names both
    /// values.
    pub fn check(&self, model: &ModelConfig, path: &Path) -> Result<(), CheckpointError> {
        let mut wrong = Vec::new();
        for (key, file, configured) in [
            ("n_layer", self.n_layer, model.n_layer),
            ("n_head", self.n_head, model.n_head),
            ("n_embd", self.n_embd, model.n_embd),
            ("vocab_size", self.vocab_size, model.vocab_size),
            ("n_positions", self.n_positions, model.positions()),
        ] {
            if file != configured {
                wrong.push(format!("{key} = {file}, but model.{key} = {configured}"));
            }
        }
        if self.model_type != "gpt2" {
            wrong.push(format!("model_type = {:?}, not \"gpt2\"", self.model_type));
        }
        if !matches!(
            self.activation_function.as_str(),
            "gelu_new" | "gelu_pytorch_tanh"
        ) {
            wrong.push(format!(
                "activation_function = {:?}; this model uses gelu_new",
                self.activation_function
            ));
        }
        if (self.layer_norm_epsilon - f64::from(LAYERNORM_EPS)).abs() > 1e-12 {
            wrong.push(format!(
                "layer_norm_epsilon = {}; this model uses {LAYERNORM_EPS}",
                self.layer_norm_epsilon
            ));
        }
        if self.n_inner.is_some_and(|n| n != 4 * model.n_embd) {
            wrong.push(format!(
                "n_inner = {:?}; this model's MLP is 4·n_embd = {}",
                self.n_inner,
                4 * model.n_embd
            ));
        }
        if !self.tie_word_embeddings {
            wrong.push("tie_word_embeddings = false; this model ties lm_head to wte".into());
        }
        for (key, value, wanted) in [
            ("scale_attn_weights", self.scale_attn_weights, true),
            (
                "scale_attn_by_inverse_layer_idx",
                self.scale_attn_by_inverse_layer_idx,
                false,
            ),
            ("add_cross_attention", self.add_cross_attention, false),
        ] {
            if value != wanted {
                wrong.push(format!("{key} = {value}; this model has {wanted}"));
            }
        }
        if wrong.is_empty() {
            return Ok(());
        }
        Err(CheckpointError::Inconsistent {
            dir: path.to_path_buf(),
            what: format!(
                "{HF_CONFIG_FILE} does not describe the configured model: {}",
                wrong.join("; ")
            ),
        })
    }
}

/// The weights `model.init` names: a `model.safetensors` file, or a
/// Hugging Face directory whose `config.json` must describe `model` and
/// whose `model.safetensors` is imported (see [`import_hf_gpt2`]).
pub fn import_model_init(path: &Path, model: &ModelConfig) -> Result<Vec<f32>, CheckpointError> {
    let file = if path.is_dir() {
        if !path.join(HF_CONFIG_FILE).is_file() {
            return Err(CheckpointError::Inconsistent {
                dir: path.to_path_buf(),
                what: format!(
                    "a directory without {HF_CONFIG_FILE}: model.init takes a model.safetensors \
                     file or a Hugging Face directory ({HF_CONFIG_FILE} and model.safetensors)"
                ),
            });
        }
        Gpt2Config::read(path)?.check(model, path)?;
        path.join("model.safetensors")
    } else {
        path.to_path_buf()
    };
    import_hf_gpt2(&file, &ParamLayout::gpt2(model))
}

/// The rows of `wpe` in what `model.init` names: `n_positions` of a Hugging
/// Face directory's `config.json`, or the `wpe` rows of a safetensors file
/// (read from its header alone). `None` when neither can be read, or the
/// path is neither a directory nor a regular file (a FIFO would block);
/// importing then reports why.
pub fn init_positions(path: &Path) -> Option<usize> {
    let kind = std::fs::metadata(path).ok()?.file_type();
    if kind.is_dir() {
        return Gpt2Config::read(path).ok().map(|c| c.n_positions);
    }
    kind.is_file().then(|| wpe_rows_in_header(path)).flatten()
}

/// `wpe`'s first dimension from a safetensors header: 8 bytes of header
/// length, then the header's JSON (`{"name": {"shape": [...], ...}}`).
fn wpe_rows_in_header(path: &Path) -> Option<usize> {
    use std::io::Read as _;
    /// Headers larger than this are not read here (GPT-2's are ~15 KiB).
    const MAX_HEADER: u64 = 100 << 20;
    let mut file = std::fs::File::open(path).ok()?;
    let mut len = [0; 8];
    file.read_exact(&mut len).ok()?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER {
        return None;
    }
    let mut header = vec![0; len as usize];
    file.read_exact(&mut header).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    ["transformer.wpe.weight", "wpe.weight"]
        .iter()
        .find_map(|name| header.get(name)?.get("shape")?.get(0)?.as_u64())
        .map(|rows| rows as usize)
}

/// `config.json` for `model` and the tokenizer's own files
/// ([`Tokenizer::hf_files`]): `(file name, contents)`.
pub fn hf_files(model: &ModelConfig, tokenizer: &dyn Tokenizer) -> Vec<(&'static str, String)> {
    let config = Gpt2Config::of(model, tokenizer.end_of_text());
    let mut files = vec![(
        HF_CONFIG_FILE,
        serde_json::to_string_pretty(&config).expect("configs serialize"),
    )];
    files.extend(tokenizer.hf_files(model.positions()));
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ModelConfig {
        ModelConfig {
            n_layer: 2,
            n_head: 4,
            n_embd: 64,
            vocab_size: 50257,
            seq_len: 128,
            init: None,
            n_positions: None,
            vocab_padding: 1,
        }
    }

    #[test]
    fn the_written_config_reads_back_and_mismatches_name_both_values() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in hf_files(&model(), &crate::tokenizer::Gpt2Tokenizer::new()) {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        assert!(dir.path().join("merges.txt").is_file());
        let config = Gpt2Config::read(dir.path()).unwrap();
        assert_eq!(config, Gpt2Config::of(&model(), Some(50256)));
        config.check(&model(), dir.path()).unwrap();
        let mut shorter = model();
        shorter.seq_len = 64;
        shorter.n_positions = Some(128);
        config.check(&shorter, dir.path()).unwrap();
        assert_eq!(
            Gpt2Config::of(&shorter, None).n_positions,
            128,
            "config.json has the real rows of wpe, not seq_len"
        );
        let mut other = model();
        other.n_embd = 128;
        other.seq_len = 256;
        let err = config.check(&other, dir.path()).unwrap_err().to_string();
        assert!(err.contains("n_embd = 64, but model.n_embd = 128"), "{err}");
        assert!(
            err.contains("n_positions = 128, but model.n_positions = 256"),
            "{err}"
        );
        let untied = Gpt2Config {
            tie_word_embeddings: false,
            ..config
        };
        let err = untied.check(&model(), dir.path()).unwrap_err().to_string();
        assert!(err.contains("ties lm_head"), "{err}");
    }
}
