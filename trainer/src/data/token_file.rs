use super::{DataError, DataSource, Split};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes read per chunk while validating a file.
const SCAN_CHUNK_BYTES: usize = 1 << 22;

/// How token ids are stored in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenEncoding {
    /// One byte per token (`data.source = "text"`: byte-level, ids 0..256).
    Bytes,
    /// Raw little-endian u16 per token, no header (`data.source = "tokens"`).
    U16,
}

impl TokenEncoding {
    fn width(self) -> u64 {
        match self {
            TokenEncoding::Bytes => 1,
            TokenEncoding::U16 => 2,
        }
    }

    fn decode(self, bytes: &[u8], out: &mut [u32]) {
        match self {
            TokenEncoding::Bytes => out.iter_mut().zip(bytes).for_each(|(o, &b)| *o = b as u32),
            TokenEncoding::U16 => out
                .iter_mut()
                .zip(bytes.chunks_exact(2))
                .for_each(|(o, b)| *o = u16::from_le_bytes([b[0], b[1]]) as u32),
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
}

impl TokenFile {
    /// Opens `path` and checks it: readable, a whole number of tokens, at
    /// least `seq_len + 1` of them, every id below `vocab_size`. Returns the
    /// file and its token count.
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
        if bytes % encoding.width() != 0 {
            return Err(DataError::OddLength {
                key,
                path: path.to_path_buf(),
                bytes,
            });
        }
        let tokens = bytes / encoding.width();
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
        };
        if ids_can_overflow {
            scan_ids(&mut file, encoding, vocab_size).map_err(|e| match e {
                ScanError::Io(source) => io(source),
                ScanError::OutOfRange { index, id } => DataError::TokenOutOfRange {
                    key,
                    path: path.to_path_buf(),
                    index,
                    byte_offset: index * encoding.width(),
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
        };
        Ok((file, tokens))
    }

    /// Reads `out.len()` tokens starting at token `start`.
    fn read(&self, start: u64, out: &mut [u32]) -> Result<(), DataError> {
        let mut bytes = vec![0u8; out.len() * self.encoding.width() as usize];
        self.file
            .read_exact_at(&mut bytes, start * self.encoding.width())
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

/// Finds the first id `>= vocab_size`, reading the file in chunks.
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
#[derive(Debug)]
struct WindowRange {
    file: std::sync::Arc<TokenFile>,
    first: usize,
    count: usize,
}

/// Windows over token files (`text` or `tokens`), with a validation split
/// that is either a separate file or the last windows of the training file.
///
/// Window `w` of a file covers tokens `[w·T, w·T + T + 1)`; a file of `N`
/// tokens has `W = ⌊(N−1)/T⌋` windows. When validation is carved out of the
/// training file, its last `round(W·val_fraction)` windows (at least one)
/// form the val split and the train split keeps the first ones.
#[derive(Debug)]
pub struct FileSource {
    seq_len: usize,
    train: WindowRange,
    val: Option<WindowRange>,
}

impl FileSource {
    /// Opens and validates `path` (and `val_path`, if any).
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
        let windows = |tokens: u64| ((tokens - 1) / seq_len as u64) as usize;
        let (train_file, tokens) =
            TokenFile::open("data.path", path, encoding, seq_len, vocab_size)?;
        let train_file = std::sync::Arc::new(train_file);
        let all = windows(tokens);
        let (train, val) = match val_path {
            Some(val_path) => {
                let (val_file, val_tokens) =
                    TokenFile::open("data.val_path", val_path, encoding, seq_len, vocab_size)?;
                let val = WindowRange {
                    file: std::sync::Arc::new(val_file),
                    first: 0,
                    count: windows(val_tokens),
                };
                (
                    WindowRange {
                        file: train_file,
                        first: 0,
                        count: all,
                    },
                    Some(val),
                )
            }
            None if val_fraction == 0.0 => (
                WindowRange {
                    file: train_file,
                    first: 0,
                    count: all,
                },
                None,
            ),
            None => {
                let held_out = ((all as f64 * val_fraction).round() as usize).max(1);
                if held_out >= all {
                    return Err(DataError::NoTrainWindows {
                        path: path.to_path_buf(),
                        windows: all,
                        seq_len,
                        val_fraction,
                    });
                }
                let train_count = all - held_out;
                let val = WindowRange {
                    file: train_file.clone(),
                    first: train_count,
                    count: held_out,
                };
                (
                    WindowRange {
                        file: train_file,
                        first: 0,
                        count: train_count,
                    },
                    Some(val),
                )
            }
        };
        Ok(FileSource {
            seq_len,
            train,
            val,
        })
    }

    fn range(&self, split: Split) -> Option<&WindowRange> {
        match split {
            Split::Train => Some(&self.train),
            Split::Val => self.val.as_ref(),
        }
    }
}

impl DataSource for FileSource {
    fn describe(&self) -> String {
        let val = match &self.val {
            Some(v) if std::sync::Arc::ptr_eq(&v.file, &self.train.file) => {
                format!("{} held-out windows at its end", v.count)
            }
            Some(v) => format!("{} windows of {}", v.count, v.file.path.display()),
            None => "no validation split".into(),
        };
        format!(
            "{:?} tokens from {}: {} training windows of {} tokens; {val}",
            self.train.file.encoding,
            self.train.file.path.display(),
            self.train.count,
            self.seq_len
        )
    }

    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn num_windows(&self, split: Split) -> usize {
        self.range(split).map_or(0, |r| r.count)
    }

    fn read_window(
        &self,
        split: Split,
        window: usize,
        inputs: &mut [u32],
        targets: &mut [u32],
    ) -> Result<(), DataError> {
        let range = self.range(split).ok_or(DataError::EmptySplit { split })?;
        assert!(
            window < range.count,
            "window {window} of {} in the {split} split",
            range.count
        );
        let start = ((range.first + window) * self.seq_len) as u64;
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
                let (mut x, mut y) = (vec![0; 4], vec![0; 4]);
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
}
