//! Tokenizers against golden ids computed independently
//! (`tests/tokenizer/golden_gpt2.py`, Hugging Face `tokenizers`).

use super::*;

#[test]
fn gpt2_ids_equal_the_reference_tokenizer_and_decode_back() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/gpt2_golden.json"
    );
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let gpt2 = Gpt2Tokenizer::new();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(gpt2.encode(text), want, "{text:?}");
        assert_eq!(gpt2.decode(&want), text, "round trip of {text:?}");
    }
    assert_eq!(gpt2.vocab_size(), 50257);
    assert_eq!(gpt2.end_of_text(), Some(50256));
    assert_eq!(gpt2.decode(&[50256]), "<|endoftext|>");
}

#[test]
fn bytes_round_trip_any_text() {
    let bytes = ByteTokenizer;
    let text = "naïve 日本 🙂\n\t";
    assert_eq!(bytes.encode(text).len(), text.len());
    assert_eq!(bytes.decode(&bytes.encode(text)), text);
    assert_eq!(bytes.end_of_text(), None);
}

/// The derived files are GPT-2's published ones: `merges.txt` byte for byte
/// (SHA-256 1ce16647…adc5, the same as the published file), `vocab.json` as
/// the published `encoder.json` with its keys sorted and no spaces (SHA-256
/// 179cad62…fc65). The XXH3 digests below pin those bytes.
#[test]
fn gpt2_files_for_transformers_have_the_published_shape() {
    let files = gpt2_tokenizer_files(1024);
    let text = |name: &str| files.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let vocab: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text("vocab.json")).unwrap();
    assert_eq!(vocab.len(), 50257);
    assert_eq!(vocab["Ġthe"], 262);
    assert_eq!(vocab["<|endoftext|>"], 50256);
    let merges = text("merges.txt");
    let lines: Vec<&str> = merges.lines().collect();
    assert_eq!(lines.len(), 50001);
    assert_eq!(lines[1], "Ġ t");
    let digest = |name: &str| format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text(name).as_bytes()));
    assert_eq!(digest("merges.txt"), "e1a102e27c272620");
    assert_eq!(digest("vocab.json"), "0057621845bcdf57");
}
