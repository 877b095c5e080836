//! Tokenizers, selected by `data.tokenizer`: text to token ids and back.
//!
//! - `bytes`: every byte is a token (vocabulary 256), no end-of-text token.
//! - `gpt2`: GPT-2's byte-level BPE (`r50k_base`, 50257 tokens,
//!   `<|endoftext|>` = 50256), through the `tiktoken-rs` crate.
//!
//! ```
//! use cptrain::tokenizer::tokenizer_by_name;
//! let bytes = tokenizer_by_name("bytes").unwrap();
//! assert_eq!(bytes.encode("hi"), vec![104, 105]);
//! assert_eq!(bytes.decode(&[104, 105]), "hi");
//! ```

mod bytes;
mod gpt2;
mod hf_files;
#[cfg(test)]
mod tests;

pub use bytes::ByteTokenizer;
pub use gpt2::Gpt2Tokenizer;
pub use hf_files::gpt2_tokenizer_files;

/// Names of the built-in tokenizers (`data.tokenizer`).
pub const BUILTIN_TOKENIZERS: [&str; 2] = ["bytes", "gpt2"];

/// Text to token ids and back.
pub trait Tokenizer: Send + Sync {
    /// The name `data.tokenizer` selects it by.
    fn name(&self) -> &'static str;

    /// Token ids run from 0 to `vocab_size() - 1`.
    fn vocab_size(&self) -> usize;

    /// The token that separates documents, if the tokenizer has one.
    fn end_of_text(&self) -> Option<u32>;

    /// The ids of `text`, as ordinary text (special-token strings such as
    /// `<|endoftext|>` in it are encoded as text, not as the special token).
    fn encode(&self, text: &str) -> Vec<u32>;

    /// The bytes `ids` stand for (the end-of-text token as its text).
    fn decode_bytes(&self, ids: &[u32]) -> Vec<u8>;

    /// `ids` as text; byte sequences that are not valid UTF-8 (a character
    /// cut between tokens) become U+FFFD.
    fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids)).into_owned()
    }
}

/// Why a tokenizer cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// No tokenizer has this name.
    #[error(
        "data.tokenizer = \"{name}\" is not a known tokenizer; expected one of: {}",
        BUILTIN_TOKENIZERS.join(", ")
    )]
    Unknown {
        /// The configured name.
        name: String,
    },
}

/// The built-in tokenizer called `name`.
pub fn tokenizer_by_name(name: &str) -> Result<Box<dyn Tokenizer>, TokenizerError> {
    match name {
        "bytes" => Ok(Box::new(ByteTokenizer)),
        "gpt2" => Ok(Box::new(Gpt2Tokenizer::new())),
        other => Err(TokenizerError::Unknown {
            name: other.to_string(),
        }),
    }
}
