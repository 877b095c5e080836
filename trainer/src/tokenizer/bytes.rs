use super::Tokenizer;

/// Every byte is a token: vocabulary 256, no end-of-text token.
#[derive(Clone, Copy, Debug, Default)]
pub struct ByteTokenizer;

impl Tokenizer for ByteTokenizer {
    fn name(&self) -> &'static str {
        "bytes"
    }

    fn vocab_size(&self) -> usize {
        256
    }

    fn end_of_text(&self) -> Option<u32> {
        None
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        text.bytes().map(u32::from).collect()
    }

    /// Ids above 255 (none this tokenizer produces) are skipped.
    fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        ids.iter().filter_map(|&id| u8::try_from(id).ok()).collect()
    }
}
