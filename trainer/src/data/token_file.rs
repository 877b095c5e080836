use super::shard::ShardHeader;
use super::token_paths::TokenPaths;
use super::{DataError, DataSource, Split, WindowOrder};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes read per chunk while validating a file.
const SCAN_CHUNK_BYTES: usize = 1 << 22;

/// How token ids are stored in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenEncoding {
    /// One byte per token (`data.source = "text"`: byte-level, ids 0..256).
    Bytes,
    /// Little-endian u16 per token (`data.source = "tokens"`): after a
    /// cptrain or llm.c header when the file has one, else from byte 0
    /// (nanoGPT's `train.bin`).
    U16,
    /// Little-endian u32 per token (a shard's header says so).
    U32,
}

impl TokenEncoding {
    fn width(self) -> u64 {
        match self {
            TokenEncoding::Bytes => 1,
            TokenEncoding::U16 => 2,
            TokenEncoding::U32 => 4,
        }
    }

    fn decode(self, bytes: &[u8], out: &mut [u32]) {
        match self {
            TokenEncoding::Bytes => out.iter_mut().zip(bytes).for_each(|(o, &b)| *o = b as u32),
            TokenEncoding::U16 => out
                .iter_mut()
                .zip(bytes.chunks_exact(2))
                .for_each(|(o, b)| *o = u16::from_le_bytes([b[0], b[1]]) as u32),
            TokenEncoding::U32 => out
                .iter_mut()
                .zip(bytes.chunks_exact(4))
                .for_each(|(o, b)| *o = u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        }
    }
}

/// A validated token file, read window by window with positioned reads (no
/// copy of the whole file in memory).
#[derive(Debug)]
struct TokenFile {
    key: &'static str,
    path: PathBuf,
    file: File,
    encoding: TokenEncoding,
    /// Bytes of header before the first id.
    offset: u64,
}

impl TokenFile {
    /// Opens `path` and checks it: a regular file, its header (for u16
    /// token files: a cptrain shard or llm.c header, or none) consistent with
    /// its size, a whole number of tokens, at least `seq_len + 1` of them,
    /// every id below `vocab_size`. Returns the file and its token count.
    fn open(
        key: &'static str,
        path: &Path,
        encoding: TokenEncoding,
        seq_len: usize,
        vocab_size: usize,
    ) -> Result<(Self, u64), DataError> {
        let io = |source| DataError::Io {
            key,
            path: path.to_path_buf(),
            source,
        };
        let (mut file, bytes) = crate::regular_file::open_regular(path).map_err(io)?;
        let (encoding, offset, tokens) = match encoding {
            TokenEncoding::Bytes => (encoding, 0, bytes),
            _ => match ShardHeader::read(path).map_err(io)? {
                Err(e) => {
                    return Err(DataError::Header {
                        key,
                        path: path.to_path_buf(),
                        what: e.to_string(),
                    });
                }
                Ok(Some(header)) => {
                    let encoding = if header.width == 4 {
                        TokenEncoding::U32
                    } else {
                        TokenEncoding::U16
                    };
                    (encoding, header.header_bytes, header.tokens)
                }
                Ok(None) => {
                    if bytes % 2 != 0 {
                        return Err(DataError::OddLength {
                            key,
                            path: path.to_path_buf(),
                            bytes,
                        });
                    }
                    (TokenEncoding::U16, 0, bytes / 2)
                }
            },
        };
        if tokens < seq_len as u64 + 1 {
            return Err(DataError::TooShort {
                key,
                path: path.to_path_buf(),
                tokens,
                seq_len,
            });
        }
        let ids_can_overflow = match encoding {
            TokenEncoding::Bytes => vocab_size < 256,
            TokenEncoding::U16 => vocab_size < 65536,
            TokenEncoding::U32 => true,
        };
        if ids_can_overflow {
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::Start(offset)).map_err(io)?;
            scan_ids(&mut file, encoding, vocab_size).map_err(|e| match e {
                ScanError::Io(source) => io(source),
                ScanError::OutOfRange { index, id } => DataError::TokenOutOfRange {
                    key,
                    path: path.to_path_buf(),
                    index,
                    byte_offset: offset + index * encoding.width(),
                    id,
                    vocab_size,
                },
            })?;
        }
        let file = TokenFile {
            key,
            path: path.to_path_buf(),
            file,
            encoding,
            offset,
        };
        Ok((file, tokens))
    }

    /// Reads `out.len()` tokens starting at token `start`.
    fn read(&self, start: u64, out: &mut [u32]) -> Result<(), DataError> {
        let width = self.encoding.width();
        let mut bytes = vec![0u8; out.len() * width as usize];
        self.file
            .read_exact_at(&mut bytes, self.offset + start * width)
            .map_err(|source| DataError::Io {
                key: self.key,
                path: self.path.clone(),
                source,
            })?;
        self.encoding.decode(&bytes, out);
        Ok(())
    }
}

enum ScanError {
    Io(std::io::Error),
    OutOfRange { index: u64, id: u32 },
}

/// Finds the first id `>= vocab_size` from the file's position on, reading
/// it in chunks.
fn scan_ids(file: &mut File, encoding: TokenEncoding, vocab_size: usize) -> Result<(), ScanError> {
    let mut bytes = vec![0u8; SCAN_CHUNK_BYTES];
    let mut ids = vec![0u32; SCAN_CHUNK_BYTES];
    let mut first_index = 0u64;
    loop {
        let n = read_full(file, &mut bytes).map_err(ScanError::Io)?;
        if n == 0 {
            return Ok(());
        }
        let count = n / encoding.width() as usize;
        encoding.decode(&bytes[..n], &mut ids[..count]);
        if let Some(i) = ids[..count]
            .iter()
            .position(|&id| id as usize >= vocab_size)
        {
            return Err(ScanError::OutOfRange {
                index: first_index + i as u64,
                id: ids[i],
            });
        }
        first_index += count as u64;
    }
}

/// Fills `buf` as far as the file allows (short only at end of file).
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The windows `first .. first + count` of a token file.
#[derive(Clone, Debug)]
struct WindowRange {
    file: Arc<TokenFile>,
    first: usize,
    count: usize,
}

/// Windows over token files (`text` or `tokens`): one file, a glob, or a
/// directory written by `cptrain prepare`; validation from `val_path`, the
/// directory's `val-*.bin` shards, or the last windows of the training data.
///
/// Window `w` of a file covers tokens `[w·T, w·T + T + 1)`; a file of `N`
/// tokens has `W = ⌊(N−1)/T⌋` windows, and the windows of several files
/// follow each other in file order. When validation is carved out of the
/// training data, its last `round(W·val_fraction)` windows (at least one)
/// form the val split and the train split keeps the first ones.
#[derive(Debug)]
pub struct FileSource {
    seq_len: usize,
    order: WindowOrder,
    describe: String,
    train: Vec<WindowRange>,
    val: Vec<WindowRange>,
}

impl FileSource {
    /// Opens and validates `path` (a file, a glob or a prepared directory)
    /// and `val_path`, if any.
    pub fn open(
        encoding: TokenEncoding,
        path: &Path,
        val_path: Option<&Path>,
        val_fraction: f64,
        seq_len: usize,
        vocab_size: usize,
    ) -> Result<Self, DataError> {
        if !(0.0..1.0).contains(&val_fraction) {
            return Err(DataError::ValFraction {
                value: val_fraction,
            });
        }
        let paths = TokenPaths::resolve(path, val_path)?;
        let open_all = |key, files: &[PathBuf]| -> Result<Vec<WindowRange>, DataError> {
            files
                .iter()
                .map(|file| {
                    let (token_file, tokens) =
                        TokenFile::open(key, file, encoding, seq_len, vocab_size)?;
                    Ok(WindowRange {
                        file: Arc::new(token_file),
                        first: 0,
                        count: ((tokens - 1) / seq_len as u64) as usize,
                    })
                })
                .collect()
        };
        let all = open_all("data.path", &paths.train)?;
        let val_key = if val_path.is_some() {
            "data.val_path"
        } else {
            "data.path"
        };
        let mut val = open_all(val_key, &paths.val)?;
        let mut train = all;
        let carved = paths.val.is_empty() && val_fraction > 0.0;
        if carved {
            let total: usize = train.iter().map(|r| r.count).sum();
            let held_out = ((total as f64 * val_fraction).round() as usize).max(1);
            if held_out >= total {
                return Err(DataError::NoTrainWindows {
                    path: path.to_path_buf(),
                    windows: total,
                    seq_len,
                    val_fraction,
                });
            }
            val = split_off_tail(&mut train, held_out);
        }
        let count = |ranges: &[WindowRange]| ranges.iter().map(|r| r.count).sum::<usize>();
        let val_text = if val.is_empty() {
            "no validation split".to_string()
        } else if carved {
            format!("{} held-out windows at its end", count(&val))
        } else {
            format!("{} windows of {}", count(&val), paths.describe_val())
        };
        let describe = format!(
            "{:?} tokens from {}: {} training windows of {seq_len} tokens; {val_text}",
            train[0].file.encoding,
            paths.describe_train(),
            count(&train),
        );
        Ok(FileSource {
            seq_len,
            order: WindowOrder::SEQUENTIAL,
            describe,
            train,
            val,
        })
    }

    /// The same source visiting its train windows in `order`.
    pub fn with_order(mut self, order: WindowOrder) -> Self {
        self.order = order;
        self
    }

    fn ranges(&self, split: Split) -> &[WindowRange] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }
}

/// Moves the last `windows` windows of `ranges` into the returned ranges.
fn split_off_tail(ranges: &mut Vec<WindowRange>, mut windows: usize) -> Vec<WindowRange> {
    let mut tail = Vec::new();
    while windows > 0 {
        let last = ranges
            .last_mut()
            .expect("fewer windows held out than exist");
        let take = windows.min(last.count);
        tail.insert(
            0,
            WindowRange {
                file: last.file.clone(),
                first: last.first + last.count - take,
                count: take,
            },
        );
        last.count -= take;
        if last.count == 0 {
            ranges.pop();
        }
        windows -= take;
    }
    tail
}

impl DataSource for FileSource {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn order(&self) -> WindowOrder {
        self.order
    }

    fn num_windows(&self, split: Split) -> usize {
        self.ranges(split).iter().map(|r| r.count).sum()
    }

    fn read_window(
        &self,
        split: Split,
        window: usize,
        inputs: &mut [u32],
        targets: &mut [u32],
    ) -> Result<(), DataError> {
        let ranges = self.ranges(split);
        if ranges.is_empty() {
            return Err(DataError::EmptySplit { split });
        }
        let mut index = window;
        let range = ranges
            .iter()
            .find(|r| {
                if index < r.count {
                    true
                } else {
                    index -= r.count;
                    false
                }
            })
            .unwrap_or_else(|| panic!("window {window} beyond the {split} split"));
        let start = ((range.first + index) * self.seq_len) as u64;
        let mut tokens = vec![0u32; self.seq_len + 1];
        range.file.read(start, &mut tokens)?;
        inputs.copy_from_slice(&tokens[..self.seq_len]);
        targets.copy_from_slice(&tokens[1..]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn u16_file(dir: &tempfile::TempDir, name: &str, ids: &[u16]) -> PathBuf {
        let path = dir.path().join(name);
        let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn windows(source: &FileSource, split: Split) -> Vec<(Vec<u32>, Vec<u32>)> {
        (0..source.num_windows(split))
            .map(|w| {
                let (mut x, mut y) = (vec![0; source.seq_len()], vec![0; source.seq_len()]);
                source.read_window(split, w, &mut x, &mut y).unwrap();
                (x, y)
            })
            .collect()
    }

    /// N = 20, T = 4: W = ⌊19/4⌋ = 4; window w covers tokens [4w, 4w+5).
    #[test]
    fn u16_windows_follow_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<u16> = (0..20).map(|i| 1000 + i).collect();
        let path = u16_file(&dir, "train.bin", &ids);
        let source = FileSource::open(TokenEncoding::U16, &path, None, 0.0, 4, 50257).unwrap();
        assert_eq!(source.num_windows(Split::Train), 4);
        assert_eq!(source.num_windows(Split::Val), 0);
        let w = windows(&source, Split::Train);
        assert_eq!(
            w[1],
            (vec![1004, 1005, 1006, 1007], vec![1005, 1006, 1007, 1008])
        );
        assert_eq!(w[3].1, vec![1013, 1014, 1015, 1016]);
    }

    /// W = 4 with val_fraction 0.25: windows 0..3 train, window 3 validates.
    #[test]
    fn validation_is_carved_from_the_end_or_read_from_val_path() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<u16> = (0..20).collect();
        let path = u16_file(&dir, "train.bin", &ids);
        let source = FileSource::open(TokenEncoding::U16, &path, None, 0.25, 4, 100).unwrap();
        assert_eq!(
            (
                source.num_windows(Split::Train),
                source.num_windows(Split::Val)
            ),
            (3, 1)
        );
        assert_eq!(windows(&source, Split::Val)[0].0, vec![12, 13, 14, 15]);

        let val_path = u16_file(&dir, "val.bin", &[7, 8, 9, 10, 11, 12, 13, 14, 15]);
        let source =
            FileSource::open(TokenEncoding::U16, &path, Some(&val_path), 0.25, 4, 100).unwrap();
        assert_eq!(
            (
                source.num_windows(Split::Train),
                source.num_windows(Split::Val)
            ),
            (4, 2)
        );
        assert_eq!(
            windows(&source, Split::Val)[1],
            (vec![11, 12, 13, 14], vec![12, 13, 14, 15])
        );
    }

    #[test]
    fn text_is_read_as_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input.txt");
        std::fs::File::create(&path)
            .unwrap()
            .write_all("héllo wor".as_bytes())
            .unwrap();
        let source = FileSource::open(TokenEncoding::Bytes, &path, None, 0.0, 4, 256).unwrap();
        assert_eq!(source.num_windows(Split::Train), 2);
        assert_eq!(
            windows(&source, Split::Train)[0].0,
            vec![b'h' as u32, 0xC3, 0xA9, b'l' as u32]
        );
    }

    /// Every bad input gives an error that names the file and the problem.
    #[test]
    fn bad_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let short = u16_file(&dir, "short.bin", &[1, 2, 3, 4]);
        let empty = u16_file(&dir, "empty.bin", &[]);
        let big_id = u16_file(&dir, "big.bin", &[1, 2, 3, 4, 5, 50300, 6, 7]);
        let odd = dir.path().join("odd.bin");
        std::fs::write(&odd, [1u8, 2, 3]).unwrap();
        let missing = dir.path().join("missing.bin");
        let few = u16_file(&dir, "few.bin", &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let cases: [(&Path, f64, &[&str]); 6] = [
            (
                &missing,
                0.0,
                &["cannot read data.path", "missing.bin", "No such file"],
            ),
            (&empty, 0.0, &["empty.bin holds 0 tokens", "needs 5"]),
            (
                &short,
                0.0,
                &["short.bin holds 4 tokens", "model.seq_len = 4 needs 5"],
            ),
            (&odd, 0.0, &["odd.bin has 3 bytes, an odd number"]),
            (
                &big_id,
                0.0,
                &[
                    "big.bin: token 5 (byte offset 10) has id 50300",
                    "model.vocab_size = 50257",
                ],
            ),
            (&few, 0.75, &["has 2 windows", "leaves none for training"]),
        ];
        for (path, val_fraction, fragments) in cases {
            let err = FileSource::open(TokenEncoding::U16, path, None, val_fraction, 4, 50257)
                .unwrap_err()
                .to_string();
            for fragment in fragments {
                assert!(err.contains(fragment), "{err:?} lacks {fragment:?}");
            }
        }
        let err = FileSource::open(TokenEncoding::U16, &few, None, 1.0, 4, 50257).unwrap_err();
        assert!(err.to_string().contains("data.val_fraction = 1"), "{err}");
        let err =
            FileSource::open(TokenEncoding::U16, &few, Some(&odd), 0.0, 4, 50257).unwrap_err();
        assert!(err.to_string().starts_with("data.val_path = "), "{err}");
    }

    /// A prepared directory: the train shards' windows in file order (each
    /// file windowed on its own), validation from its val shard; u32 shards
    /// and llm.c files are read after their headers; an unknown header
    /// version is refused rather than read as tokens.
    #[test]
    fn shards_globs_and_headers_are_read_after_their_headers() {
        use crate::data::{LLMC_MAGIC, ShardWriter};
        let dir = tempfile::tempdir().unwrap();
        let shard = |name: &str, vocab: usize, ids: &[u32]| {
            let mut w = ShardWriter::create(&dir.path().join(name), vocab).unwrap();
            w.write(ids).unwrap();
            w.finish().unwrap();
        };
        shard("train-0000.bin", 100, &[1, 2, 3, 4, 5, 6]);
        shard("train-0001.bin", 70_000, &[60_000, 11, 12, 13, 14]);
        shard("val-0000.bin", 100, &[20, 21, 22, 23, 24]);
        let source =
            FileSource::open(TokenEncoding::U16, dir.path(), None, 0.5, 2, 70_000).unwrap();
        assert_eq!(
            windows(&source, Split::Train),
            [
                (vec![1, 2], vec![2, 3]),
                (vec![3, 4], vec![4, 5]),
                (vec![60_000, 11], vec![11, 12]),
                (vec![12, 13], vec![13, 14]),
            ]
        );
        assert_eq!(
            windows(&source, Split::Val),
            [(vec![20, 21], vec![21, 22]), (vec![22, 23], vec![23, 24])]
        );
        // A glob of the train shards carves validation from the last windows.
        let pattern = dir.path().join("train-*.bin");
        let globbed =
            FileSource::open(TokenEncoding::U16, &pattern, None, 0.25, 2, 70_000).unwrap();
        assert_eq!(globbed.num_windows(Split::Train), 3);
        assert_eq!(
            windows(&globbed, Split::Val),
            [(vec![12, 13], vec![13, 14])]
        );
        // Ids are checked against the vocabulary in u32 shards too.
        let err = FileSource::open(TokenEncoding::U16, dir.path(), None, 0.0, 2, 1000).unwrap_err();
        assert!(err.to_string().contains("has id 60000"), "{err}");

        let mut llmc = vec![0u8; 1024];
        llmc[..4].copy_from_slice(&LLMC_MAGIC.to_le_bytes());
        llmc[4..8].copy_from_slice(&1i32.to_le_bytes());
        llmc[8..12].copy_from_slice(&3i32.to_le_bytes());
        llmc.extend([7u8, 0, 8, 0, 9, 0]);
        let path = dir.path().join("llmc.bin");
        std::fs::write(&path, &llmc).unwrap();
        let source = FileSource::open(TokenEncoding::U16, &path, None, 0.0, 2, 100).unwrap();
        assert_eq!(windows(&source, Split::Train), [(vec![7, 8], vec![8, 9])]);
        llmc[4..8].copy_from_slice(&5i32.to_le_bytes());
        std::fs::write(&path, &llmc).unwrap();
        let err = FileSource::open(TokenEncoding::U16, &path, None, 0.0, 2, 100).unwrap_err();
        assert!(
            err.to_string().contains("llm.c token file version 5"),
            "{err}"
        );
    }
}
