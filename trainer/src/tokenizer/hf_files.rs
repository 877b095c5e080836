//! GPT-2's tokenizer files as Hugging Face `transformers` reads them
//! (`vocab.json`, `merges.txt`, `tokenizer_config.json`), derived from the
//! BPE ranks, so a checkpoint directory opens with `AutoTokenizer`.
//!
//! - `vocab.json` maps each token's bytes, spelled with GPT-2's byte-to-
//!   character table (printable bytes as themselves, the others as U+0100
//!   onwards), to its id.
//! - `merges.txt` lists, in rank order, the pair each multi-byte token is
//!   merged from: running BPE on the token's bytes with the ranks below its
//!   own ends in exactly two parts.

use std::collections::HashMap;

use super::{Gpt2Tokenizer, Tokenizer};

/// GPT-2's table from bytes to the characters its files spell them with.
fn byte_chars() -> [char; 256] {
    let printable = |b: u32| {
        (u32::from('!')..=u32::from('~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut table = ['\0'; 256];
    let mut next = 256;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).expect("a Latin-1 character")
        } else {
            next += 1;
            char::from_u32(next - 1).expect("a character above U+00FF")
        };
    }
    table
}

fn spell(bytes: &[u8], table: &[char; 256]) -> String {
    bytes.iter().map(|&b| table[b as usize]).collect()
}

/// `(file name, contents)` of GPT-2's tokenizer files; `max_length` is the
/// model's context length.
pub fn gpt2_tokenizer_files(max_length: usize) -> Vec<(&'static str, String)> {
    let gpt2 = Gpt2Tokenizer::new();
    let eot = gpt2.end_of_text().expect("GPT-2 has <|endoftext|>");
    let table = byte_chars();
    let tokens: Vec<Vec<u8>> = (0..eot).map(|id| gpt2.decode_bytes(&[id])).collect();
    let rank: HashMap<&[u8], u32> = tokens
        .iter()
        .enumerate()
        .map(|(id, bytes)| (bytes.as_slice(), id as u32))
        .collect();
    let mut vocab: Vec<(String, u32)> = tokens
        .iter()
        .enumerate()
        .map(|(id, bytes)| (spell(bytes, &table), id as u32))
        .collect();
    vocab.push(("<|endoftext|>".into(), eot));
    let vocab_json: serde_json::Map<String, serde_json::Value> = vocab
        .into_iter()
        .map(|(text, id)| (text, serde_json::Value::from(id)))
        .collect();
    let mut merges = String::from("#version: 0.2\n");
    for (id, bytes) in tokens.iter().enumerate().filter(|(_, b)| b.len() > 1) {
        let (left, right) = last_merge(bytes, id as u32, &rank);
        merges.push_str(&spell(left, &table));
        merges.push(' ');
        merges.push_str(&spell(right, &table));
        merges.push('\n');
    }
    let config = serde_json::json!({
        "tokenizer_class": "GPT2Tokenizer",
        "model_max_length": max_length,
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "add_prefix_space": false,
    });
    vec![
        (
            "vocab.json",
            serde_json::to_string(&vocab_json).expect("a map serializes"),
        ),
        ("merges.txt", merges),
        (
            "tokenizer_config.json",
            serde_json::to_string_pretty(&config).expect("json serializes"),
        ),
    ]
}

/// The two parts BPE joins last to make the token `bytes` of rank `own`.
fn last_merge<'a>(bytes: &'a [u8], own: u32, rank: &HashMap<&[u8], u32>) -> (&'a [u8], &'a [u8]) {
    // Part boundaries as byte offsets.
    let mut cuts: Vec<usize> = (0..=bytes.len()).collect();
    while cuts.len() > 3 {
        let best = (0..cuts.len() - 2)
            .filter_map(|i| {
                let r = *rank.get(&bytes[cuts[i]..cuts[i + 2]])?;
                (r < own).then_some((r, i))
            })
            .min();
        let Some((_, i)) = best else { break };
        cuts.remove(i + 1);
    }
    assert_eq!(cuts.len(), 3, "token {own} is not made of two ranked parts");
    (&bytes[cuts[0]..cuts[1]], &bytes[cuts[1]..cuts[2]])
}
