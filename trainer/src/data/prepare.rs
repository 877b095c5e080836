//! `cptrain prepare`: text files, directories of them, or JSONL → token
//! shards (`train-NNNN.bin`, `val-NNNN.bin`, see [`super::ShardWriter`]) and
//! a `prepare.json` that says what they hold.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ShardWriter;
use crate::tokenizer::Tokenizer;

/// The metadata file of a prepared directory.
pub const PREPARE_FILE: &str = "prepare.json";

/// What to prepare and how.
#[derive(Clone, Debug)]
pub struct PrepareOptions {
    /// Text files, directories (read recursively, hidden entries skipped) or
    /// `.jsonl` files (one document per line).
    pub inputs: Vec<PathBuf>,
    /// Inputs whose documents all go to validation (else `val_fraction`).
    pub val_inputs: Vec<PathBuf>,
    /// Share of the documents held out for validation, spread evenly
    /// (every `1/f`-th document), when `val_inputs` is empty.
    pub val_fraction: f64,
    /// The field of each JSONL object that holds the document's text.
    pub jsonl_field: String,
    /// Tokens per shard before a new one starts.
    pub shard_tokens: u64,
    /// The output directory.
    pub out: PathBuf,
}

/// What `prepare` wrote: `prepare.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareSummary {
    /// `data.tokenizer` used.
    pub tokenizer: String,
    /// Its vocabulary size.
    pub vocab_size: usize,
    /// Documents, tokens, text bytes and shard file names of the train split.
    pub train: SplitSummary,
    /// The same for the validation split.
    pub val: SplitSummary,
}

/// One split's totals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSummary {
    /// Documents.
    pub documents: u64,
    /// Tokens, end-of-text separators included.
    pub tokens: u64,
    /// Bytes of text.
    pub bytes: u64,
    /// Shard file names, in order.
    pub shards: Vec<String>,
}

/// Why preparing failed; each names the file (and line).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A document that is not UTF-8 text.
    #[error("{}{line}: not UTF-8 text ({source}); convert it to UTF-8 first", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
        /// `:N` for a JSONL line, else empty.
        line: String,
        /// The decoder's error.
        source: std::str::Utf8Error,
    },
    /// A JSONL line without the text field.
    #[error("{}:{line}: {what}; set --jsonl-field to the field holding the text", path.display())]
    Jsonl {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        what: String,
    },
    /// Bad options.
    #[error("{0}")]
    Invalid(String),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PrepareError {
    let path = path.to_path_buf();
    move |source| PrepareError::Io {
        action,
        path,
        source,
    }
}

/// The regular files under `input` (itself, or a directory's, recursively,
/// sorted; hidden entries and links inside directories skipped).
pub fn input_files(input: &Path) -> Result<Vec<PathBuf>, PrepareError> {
    let meta = std::fs::metadata(input).map_err(io("read", input))?;
    if meta.is_file() {
        return Ok(vec![input.to_path_buf()]);
    }
    if !meta.is_dir() {
        return Err(PrepareError::Invalid(format!(
            "{} is neither a regular file nor a directory",
            input.display()
        )));
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(input)
        .map_err(io("list", input))?
        .map(|e| e.map(|e| e.path()).map_err(io("list", input)))
        .collect::<Result<_, _>>()?;
    entries.sort();
    let mut files = Vec::new();
    for entry in entries {
        let hidden = entry
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        // Links inside a directory are not followed (no loops).
        let meta = std::fs::symlink_metadata(&entry).map_err(io("read", &entry))?;
        if hidden || !(meta.is_file() || meta.is_dir()) {
            continue;
        }
        files.extend(input_files(&entry)?);
    }
    Ok(files)
}

/// Writes one split's shards as documents arrive.
struct SplitWriter<'a> {
    name: &'static str,
    options: &'a PrepareOptions,
    vocab_size: usize,
    writer: Option<ShardWriter>,
    summary: SplitSummary,
}

impl SplitWriter<'_> {
    fn add(&mut self, ids: &[u32], bytes: u64) -> Result<(), PrepareError> {
        if self.writer.is_none() {
            let name = format!("{}-{:04}.bin", self.name, self.summary.shards.len());
            let path = self.options.out.join(&name);
            self.writer =
                Some(ShardWriter::create(&path, self.vocab_size).map_err(io("create", &path))?);
            self.summary.shards.push(name);
        }
        let writer = self.writer.as_mut().expect("just created");
        let path = self
            .options
            .out
            .join(self.summary.shards.last().expect("named"));
        writer.write(ids).map_err(io("write", &path))?;
        self.summary.documents += 1;
        self.summary.tokens += ids.len() as u64;
        self.summary.bytes += bytes;
        if writer.tokens() >= self.options.shard_tokens {
            self.finish_shard()?;
        }
        Ok(())
    }

    fn finish_shard(&mut self) -> Result<(), PrepareError> {
        if let Some(writer) = self.writer.take() {
            let path = self
                .options
                .out
                .join(self.summary.shards.last().expect("named"));
            writer.finish().map_err(io("write", &path))?;
        }
        Ok(())
    }
}

/// Tokenizes every document of `options.inputs` (and `val_inputs`) into
/// shards in `options.out`, which must hold no shards yet; `progress` gets
/// the input bytes read so far. A document is a whole text file or one JSONL
/// line; with a tokenizer that has one, each document starts with the
/// end-of-text token (as GPT-2's training data did).
pub fn prepare(
    options: &PrepareOptions,
    tokenizer: &dyn Tokenizer,
    progress: &dyn Fn(u64),
) -> Result<PrepareSummary, PrepareError> {
    if !(0.0..1.0).contains(&options.val_fraction) {
        return Err(PrepareError::Invalid(format!(
            "--val-fraction {} must be at least 0 and below 1",
            options.val_fraction
        )));
    }
    if options.shard_tokens == 0 {
        return Err(PrepareError::Invalid(
            "--shard-tokens must be at least 1".into(),
        ));
    }
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(io("create directory", out))?;
    if let Some(existing) = existing_output(out)? {
        return Err(PrepareError::Invalid(format!(
            "{} already holds prepared data ({existing}); choose another --out, or remove the \
             directory first (prepare never overwrites shards)",
            out.display()
        )));
    }
    let vocab_size = tokenizer.vocab_size();
    let split = |name| SplitWriter {
        name,
        options,
        vocab_size,
        writer: None,
        summary: SplitSummary::default(),
    };
    let (mut train, mut val) = (split("train"), split("val"));
    let mut read = 0u64;
    let mut document_index = 0u64;
    let mut emit = |text: &str, to_val: Option<bool>| -> Result<(), PrepareError> {
        let mut ids: Vec<u32> = tokenizer.end_of_text().into_iter().collect();
        ids.extend(tokenizer.encode(text));
        let f = options.val_fraction;
        let spread =
            ((document_index + 1) as f64 * f).floor() > (document_index as f64 * f).floor();
        document_index += 1;
        let target = if to_val.unwrap_or(spread) {
            &mut val
        } else {
            &mut train
        };
        target.add(&ids, text.len() as u64)
    };
    let sources = options
        .inputs
        .iter()
        .map(|p| (p, (!options.val_inputs.is_empty()).then_some(false)))
        .chain(options.val_inputs.iter().map(|p| (p, Some(true))));
    for (input, to_val) in sources {
        for file in input_files(input)? {
            let is_jsonl = file.extension().is_some_and(|e| e == "jsonl");
            if is_jsonl {
                let reader = BufReader::new(File::open(&file).map_err(io("read", &file))?);
                for (n, line) in reader.split(b'\n').enumerate() {
                    let line = line.map_err(io("read", &file))?;
                    read += line.len() as u64 + 1;
                    let text =
                        std::str::from_utf8(&line).map_err(|source| PrepareError::NotText {
                            path: file.clone(),
                            line: format!(":{}", n + 1),
                            source,
                        })?;
                    if text.trim().is_empty() {
                        continue;
                    }
                    let document = jsonl_text(text, &options.jsonl_field).map_err(|what| {
                        PrepareError::Jsonl {
                            path: file.clone(),
                            line: n as u64 + 1,
                            what,
                        }
                    })?;
                    emit(&document, to_val)?;
                    progress(read);
                }
            } else {
                let bytes = std::fs::read(&file).map_err(io("read", &file))?;
                read += bytes.len() as u64;
                let text = std::str::from_utf8(&bytes).map_err(|source| PrepareError::NotText {
                    path: file.clone(),
                    line: String::new(),
                    source,
                })?;
                emit(text, to_val)?;
                progress(read);
            }
        }
    }
    train.finish_shard()?;
    val.finish_shard()?;
    if train.summary.tokens == 0 {
        return Err(PrepareError::Invalid(
            "no training document was found in the inputs".into(),
        ));
    }
    let summary = PrepareSummary {
        tokenizer: tokenizer.name().to_string(),
        vocab_size,
        train: train.summary,
        val: val.summary,
    };
    let path = out.join(PREPARE_FILE);
    let json = serde_json::to_string_pretty(&summary).expect("summaries serialize");
    std::fs::write(&path, json + "\n").map_err(io("write", &path))?;
    Ok(summary)
}

/// The text field of one JSONL line.
fn jsonl_text(line: &str, field: &str) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    match value.get(field) {
        Some(serde_json::Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(format!("field \"{field}\" is not a string but {other}")),
        None => Err(format!("no field \"{field}\"")),
    }
}

/// What prepared data `dir` already holds, if any.
fn existing_output(dir: &Path) -> Result<Option<String>, PrepareError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("list", dir))? {
        let name = entry.map_err(io("list", dir))?.file_name();
        let name = name.to_string_lossy();
        let shard =
            (name.starts_with("train-") || name.starts_with("val-")) && name.ends_with(".bin");
        if shard || name == PREPARE_FILE {
            found.push(name.into_owned());
        }
    }
    found.sort();
    Ok((!found.is_empty()).then(|| found.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ShardHeader;
    use crate::tokenizer::{Gpt2Tokenizer, Tokenizer};

    fn ids_of(path: &Path) -> Vec<u32> {
        let header = ShardHeader::read(path).unwrap().unwrap().unwrap();
        let bytes = std::fs::read(path).unwrap();
        bytes[header.header_bytes as usize..]
            .chunks_exact(header.width as usize)
            .map(|b| {
                if b.len() == 2 {
                    u16::from_le_bytes([b[0], b[1]]) as u32
                } else {
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
                }
            })
            .collect()
    }

    #[test]
    fn documents_become_shards_split_and_separated_by_end_of_text() {
        let dir = tempfile::tempdir().unwrap();
        let docs = dir.path().join("docs");
        std::fs::create_dir_all(docs.join("sub")).unwrap();
        std::fs::write(docs.join("a.txt"), "Hello world").unwrap();
        std::fs::write(docs.join("sub/b.txt"), "Second doc").unwrap();
        std::fs::write(docs.join(".hidden"), "skipped").unwrap();
        let jsonl = dir.path().join("c.jsonl");
        std::fs::write(
            &jsonl,
            "{\"text\": \"third\"}\n\n{\"text\": \"fourth\", \"id\": 4}\n",
        )
        .unwrap();
        let options = PrepareOptions {
            inputs: vec![docs, jsonl.clone()],
            val_inputs: vec![],
            val_fraction: 0.5,
            jsonl_field: "text".into(),
            shard_tokens: 3,
            out: dir.path().join("out"),
        };
        let gpt2 = Gpt2Tokenizer::new();
        let summary = prepare(&options, &gpt2, &|_| {}).unwrap();
        // Documents 1 and 3 (a.txt, third) train, 2 and 4 validate.
        assert_eq!((summary.train.documents, summary.val.documents), (2, 2));
        let train: Vec<u32> = summary
            .train
            .shards
            .iter()
            .flat_map(|s| ids_of(&options.out.join(s)))
            .collect();
        let mut want = vec![50256];
        want.extend(gpt2.encode("Hello world"));
        want.push(50256);
        want.extend(gpt2.encode("third"));
        assert_eq!(train, want);
        assert!(summary.train.shards.len() >= 2, "3-token shards roll over");
        let written: PrepareSummary =
            serde_json::from_str(&std::fs::read_to_string(options.out.join(PREPARE_FILE)).unwrap())
                .unwrap();
        assert_eq!(written, summary);

        let err = prepare(&options, &gpt2, &|_| {}).unwrap_err().to_string();
        assert!(err.contains("already holds prepared data"), "{err}");

        std::fs::write(&jsonl, "{\"body\": \"x\"}\n").unwrap();
        let options = PrepareOptions {
            inputs: vec![jsonl],
            out: dir.path().join("out2"),
            ..options
        };
        let err = prepare(&options, &gpt2, &|_| {}).unwrap_err().to_string();
        assert!(err.contains("c.jsonl:1: no field \"text\""), "{err}");
    }
}
