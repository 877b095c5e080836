//! Tokenizers, selected by `data.tokenizer` among the [`Tokenizer`]
//! components (these built-ins, or a plugin's): text to token ids and back.
//!
//! - `bytes`: every byte is a token (vocabulary 256), no end-of-text token.
//! - `gpt2`: GPT-2's byte-level BPE (`r50k_base`, 50257 tokens,
//!   `<|endoftext|>` = 50256), through the `tiktoken-rs` crate.
//!
//! ```
//! use cptrain::tokenizer::{ByteTokenizer, Tokenizer};
//! let bytes = ByteTokenizer;
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

    /// The files Hugging Face `AutoTokenizer` opens this tokenizer from,
    /// `(file name, contents)`, for sequences of at most `max_length`
    /// tokens; written into checkpoints and exports (none by default).
    fn hf_files(&self, max_length: usize) -> Vec<(&'static str, String)> {
        let _ = max_length;
        Vec::new()
    }
}
