//! Token shard files: the format `cptrain prepare` writes and the `tokens`
//! source reads, and llm.c's `.bin` format, which it also reads.
//!
//! cptrain shard (all little-endian), 32-byte header then the ids:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `CPTOKENS` |
//! | 8..12 | version, `1` |
//! | 12..16 | bytes per token: `2` (u16) or `4` (u32) |
//! | 16..24 | token count `N` |
//! | 24..28 | vocabulary size of the tokenizer that wrote it |
//! | 28..32 | zero |
//!
//! llm.c (`data/*.bin` of its scripts): 256 little-endian i32 (1024 bytes),
//! `[0] = 20240520`, `[1] = 1` (u16 ids) or `2` (u32 ids), `[2] = N`, then
//! the ids. A file's size must equal its header size plus `N` tokens.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// The first bytes of a cptrain shard.
pub const SHARD_MAGIC: &[u8; 8] = b"CPTOKENS";
/// The shard layout this build writes and reads.
pub const SHARD_VERSION: u32 = 1;
/// Bytes of a cptrain shard header.
pub const SHARD_HEADER_BYTES: u64 = 32;
/// The first i32 of an llm.c token file.
pub const LLMC_MAGIC: i32 = 20240520;
/// Bytes of an llm.c header.
pub const LLMC_HEADER_BYTES: u64 = 1024;

/// Where a file's ids start and how they are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardHeader {
    /// Bytes before the first id.
    pub header_bytes: u64,
    /// Bytes per id: 2 or 4.
    pub width: u64,
    /// Ids in the file.
    pub tokens: u64,
    /// The vocabulary size the writer declared (cptrain shards only).
    pub vocab_size: Option<u32>,
}

/// Why a file's header cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A header this build does not read.
    #[error("{0}")]
    Unsupported(String),
    /// The header's token count disagrees with the file's size.
    #[error(
        "the header declares {tokens} tokens of {width} bytes after a {header_bytes}-byte \
         header ({expected} bytes), but the file has {actual} bytes (truncated or not a token file)"
    )]
    SizeMismatch {
        /// Declared ids.
        tokens: u64,
        /// Bytes per id.
        width: u64,
        /// Header bytes.
        header_bytes: u64,
        /// The size the header implies.
        expected: u128,
        /// The file's size.
        actual: u64,
    },
}

impl ShardHeader {
    /// Reads the header of a file of `size` bytes from its first bytes
    /// (`start`: at least 32 bytes where the file has them): a cptrain shard,
    /// an llm.c file, or `None` for a file without a known header.
    pub fn parse(start: &[u8], size: u64) -> Result<Option<Self>, HeaderError> {
        let header = if start.starts_with(SHARD_MAGIC) {
            let u32_at = |i: usize| u32::from_le_bytes(start[i..i + 4].try_into().unwrap());
            if start.len() < SHARD_HEADER_BYTES as usize {
                return Err(HeaderError::Unsupported(
                    "the file starts with CPTOKENS but its header is cut short".into(),
                ));
            }
            let version = u32_at(8);
            if version != SHARD_VERSION {
                return Err(HeaderError::Unsupported(format!(
                    "cptrain shard version {version}; this build reads version {SHARD_VERSION}"
                )));
            }
            let width = u64::from(u32_at(12));
            if width != 2 && width != 4 {
                return Err(HeaderError::Unsupported(format!(
                    "cptrain shard with {width} bytes per token; 2 or 4 expected"
                )));
            }
            ShardHeader {
                header_bytes: SHARD_HEADER_BYTES,
                width,
                tokens: u64::from_le_bytes(start[16..24].try_into().unwrap()),
                vocab_size: Some(u32_at(24)),
            }
        } else if start.len() >= 12
            && i32::from_le_bytes(start[..4].try_into().unwrap()) == LLMC_MAGIC
        {
            let i32_at = |i: usize| i32::from_le_bytes(start[i..i + 4].try_into().unwrap());
            let width = match i32_at(4) {
                1 => 2,
                2 => 4,
                other => {
                    return Err(HeaderError::Unsupported(format!(
                        "llm.c token file version {other}; versions 1 (u16) and 2 (u32) are read"
                    )));
                }
            };
            let tokens = u64::try_from(i32_at(8)).map_err(|_| {
                HeaderError::Unsupported("llm.c header with a negative token count".into())
            })?;
            ShardHeader {
                header_bytes: LLMC_HEADER_BYTES,
                width,
                tokens,
                vocab_size: None,
            }
        } else {
            return Ok(None);
        };
        let expected =
            u128::from(header.header_bytes) + u128::from(header.tokens) * u128::from(header.width);
        if expected != u128::from(size) {
            return Err(HeaderError::SizeMismatch {
                tokens: header.tokens,
                width: header.width,
                header_bytes: header.header_bytes,
                expected,
                actual: size,
            });
        }
        Ok(Some(header))
    }

    /// Reads the header of the file at `path` (see [`ShardHeader::parse`]).
    pub fn read(path: &Path) -> std::io::Result<Result<Option<Self>, HeaderError>> {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        let mut start = Vec::with_capacity(SHARD_HEADER_BYTES as usize);
        (&mut file)
            .take(SHARD_HEADER_BYTES)
            .read_to_end(&mut start)?;
        Ok(Self::parse(&start, size))
    }
}

/// Writes a cptrain shard: ids appended as they come, the header's count
/// fixed when the shard is finished.
pub struct ShardWriter {
    file: std::io::BufWriter<File>,
    width: u64,
    tokens: u64,
    vocab_size: u32,
}

impl ShardWriter {
    /// Bytes per id for a vocabulary of `vocab_size`: 2 when every id fits
    /// in u16, else 4.
    pub fn width_for(vocab_size: usize) -> u64 {
        if vocab_size <= 1 << 16 { 2 } else { 4 }
    }

    /// Starts a shard at `path` for ids below `vocab_size`.
    pub fn create(path: &Path, vocab_size: usize) -> std::io::Result<Self> {
        let vocab_size = u32::try_from(vocab_size)
            .map_err(|_| std::io::Error::other("vocabulary larger than u32"))?;
        let mut file = std::io::BufWriter::new(File::create(path)?);
        file.write_all(&[0u8; SHARD_HEADER_BYTES as usize])?;
        Ok(ShardWriter {
            file,
            width: Self::width_for(vocab_size as usize),
            tokens: 0,
            vocab_size,
        })
    }

    /// Appends `ids` (each below the vocabulary size).
    pub fn write(&mut self, ids: &[u32]) -> std::io::Result<()> {
        for &id in ids {
            debug_assert!(id < self.vocab_size);
            if self.width == 2 {
                self.file.write_all(&(id as u16).to_le_bytes())?;
            } else {
                self.file.write_all(&id.to_le_bytes())?;
            }
        }
        self.tokens += ids.len() as u64;
        Ok(())
    }

    /// Ids written so far.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Writes the header and syncs the file; returns the token count.
    pub fn finish(self) -> std::io::Result<u64> {
        use std::io::Seek as _;
        let mut header = Vec::with_capacity(SHARD_HEADER_BYTES as usize);
        header.extend_from_slice(SHARD_MAGIC);
        header.extend_from_slice(&SHARD_VERSION.to_le_bytes());
        header.extend_from_slice(&(self.width as u32).to_le_bytes());
        header.extend_from_slice(&self.tokens.to_le_bytes());
        header.extend_from_slice(&self.vocab_size.to_le_bytes());
        header.extend_from_slice(&[0u8; 4]);
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.seek(std::io::SeekFrom::Start(0))?;
        file.write_all(&header)?;
        file.sync_all()?;
        Ok(self.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_shards_parse_and_damaged_headers_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        for vocab in [50257, 100_000] {
            let path = dir.path().join(format!("s{vocab}.bin"));
            let mut writer = ShardWriter::create(&path, vocab).unwrap();
            writer.write(&[1, 2, 50256]).unwrap();
            writer.write(&[7]).unwrap();
            assert_eq!(writer.finish().unwrap(), 4);
            let header = ShardHeader::read(&path).unwrap().unwrap().unwrap();
            let width = if vocab == 50257 { 2 } else { 4 };
            assert_eq!(
                header,
                ShardHeader {
                    header_bytes: 32,
                    width,
                    tokens: 4,
                    vocab_size: Some(vocab as u32)
                }
            );
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes.len() as u64, 32 + 4 * width);
            let err = ShardHeader::parse(&bytes[..32], bytes.len() as u64 - 1).unwrap_err();
            assert!(err.to_string().contains("truncated"), "{err}");
        }
        // llm.c: magic, version 1, 3 tokens.
        let mut llmc = vec![0u8; 1024];
        llmc[..4].copy_from_slice(&LLMC_MAGIC.to_le_bytes());
        llmc[4..8].copy_from_slice(&1i32.to_le_bytes());
        llmc[8..12].copy_from_slice(&3i32.to_le_bytes());
        let header = ShardHeader::parse(&llmc[..32], 1024 + 6).unwrap().unwrap();
        assert_eq!(
            (header.header_bytes, header.width, header.tokens),
            (1024, 2, 3)
        );
        llmc[4..8].copy_from_slice(&7i32.to_le_bytes());
        let err = ShardHeader::parse(&llmc[..32], 1030)
            .unwrap_err()
            .to_string();
        assert!(err.contains("llm.c token file version 7"), "{err}");
        // Headerless data is not mistaken for a header.
        assert_eq!(ShardHeader::parse(&[1, 0, 2, 0], 4).unwrap(), None);
    }
}
