use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

use super::Tokenizer;

/// `<|endoftext|>` in GPT-2's vocabulary.
const END_OF_TEXT: u32 = 50256;

/// GPT-2's byte-level BPE: 50257 tokens, `<|endoftext|>` = 50256 (the
/// `r50k_base` ranks shipped inside `tiktoken-rs`).
pub struct Gpt2Tokenizer {
    bpe: &'static CoreBPE,
}

impl Gpt2Tokenizer {
    /// The tokenizer; its tables are built once per process (about 0.1 s).
    pub fn new() -> Self {
        static BPE: OnceLock<CoreBPE> = OnceLock::new();
        Gpt2Tokenizer {
            bpe: BPE.get_or_init(|| {
                tiktoken_rs::r50k_base().expect("the r50k_base table inside tiktoken-rs parses")
            }),
        }
    }
}

impl Default for Gpt2Tokenizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Tokenizer for Gpt2Tokenizer {
    fn name(&self) -> &'static str {
        "gpt2"
    }

    fn hf_files(&self, max_length: usize) -> Vec<(&'static str, String)> {
        super::gpt2_tokenizer_files(max_length)
    }

    fn vocab_size(&self) -> usize {
        END_OF_TEXT as usize + 1
    }

    fn end_of_text(&self) -> Option<u32> {
        Some(END_OF_TEXT)
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        self.bpe.encode_ordinary(text)
    }

    /// Ids outside the vocabulary are skipped.
    fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        let known: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&id| id <= END_OF_TEXT)
            .collect();
        self.bpe
            .decode_bytes(&known)
            .expect("every id up to 50256 is in the table")
    }
}
