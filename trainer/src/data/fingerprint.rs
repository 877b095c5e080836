//! What identifies a run's data: the source, its files' sizes and a hash of a
//! sample of each, and the window count. A resumed run recomputes it and
//! refuses to continue on other data (see `train.allow_config_change`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use super::{DataConfig, DataError, DataSource, Split, TokenPaths};

/// Bytes hashed at each of the start, middle and end of a file.
const SAMPLE: u64 = 64 * 1024;

/// One data file as a checkpoint remembers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFingerprint {
    /// The path as configured.
    pub path: PathBuf,
    /// Its length in bytes.
    pub bytes: u64,
    /// XXH3-64 of up to 64 KiB at its start, middle and end, in hex.
    pub sample_xxh3: String,
}

/// The identity of a run's training data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFingerprint {
    /// `data.source`.
    pub source: String,
    /// `data.path`, when the source reads a file.
    pub train_file: Option<FileFingerprint>,
    /// `data.val_path`, when set.
    pub val_file: Option<FileFingerprint>,
    /// Windows of the train split; `None` for generated data (unbounded).
    pub train_windows: Option<u64>,
}

impl DataFingerprint {
    /// The fingerprint of `source`, opened from `config`.
    pub fn of(config: &DataConfig, source: &dyn DataSource) -> Result<Self, DataError> {
        let (train_file, val_file) = match (&config.path, config.source.as_str()) {
            (Some(path), "text" | "tokens") => {
                let paths = TokenPaths::resolve(path, config.val_path.as_deref())?;
                let val = (!paths.val.is_empty())
                    .then(|| FileFingerprint::of_files("data.val_path", path, &paths.val))
                    .transpose()?;
                (
                    Some(FileFingerprint::of_files("data.path", path, &paths.train)?),
                    val,
                )
            }
            _ => (None, None),
        };
        let windows = source.num_windows(Split::Train);
        Ok(DataFingerprint {
            source: config.source.clone(),
            train_file,
            val_file,
            train_windows: (windows != usize::MAX).then_some(windows as u64),
        })
    }

    /// How `self` (the run's data) differs from `now`, one line per field;
    /// empty when they agree.
    pub fn differences(&self, now: &DataFingerprint) -> Vec<String> {
        let mut lines = Vec::new();
        let mut differ = |what: &str, was: String, is: String| {
            if was != is {
                lines.push(format!("{what}: {was} (the run's) → {is} (now)"));
            }
        };
        differ("source", self.source.clone(), now.source.clone());
        for (what, was, is) in [
            ("data.path", &self.train_file, &now.train_file),
            ("data.val_path", &self.val_file, &now.val_file),
        ] {
            differ(what, describe(was), describe(is));
        }
        differ(
            "train windows",
            format!("{:?}", self.train_windows),
            format!("{:?}", now.train_windows),
        );
        lines
    }
}

fn describe(file: &Option<FileFingerprint>) -> String {
    match file {
        None => "none".into(),
        Some(f) => format!(
            "{} ({} bytes, sample {})",
            f.path.display(),
            f.bytes,
            f.sample_xxh3
        ),
    }
}

impl FileFingerprint {
    /// The fingerprint of the files `spec` (a file, pattern or directory)
    /// resolved to: their total size and a hash of each one's sampled hash.
    pub fn of_files(key: &'static str, spec: &Path, files: &[PathBuf]) -> Result<Self, DataError> {
        if let [one] = files {
            return Ok(FileFingerprint {
                path: spec.to_path_buf(),
                ..Self::of(key, one)?
            });
        }
        let mut hasher = Xxh3::new();
        let mut bytes = 0;
        for file in files {
            let one = Self::of(key, file)?;
            bytes += one.bytes;
            hasher.update(one.sample_xxh3.as_bytes());
        }
        Ok(FileFingerprint {
            path: spec.to_path_buf(),
            bytes,
            sample_xxh3: format!("{:016x}", hasher.digest()),
        })
    }

    /// Reads the size of `path` (named by config key `key`) and hashes its samples.
    pub fn of(key: &'static str, path: &Path) -> Result<Self, DataError> {
        let io = |source| DataError::Io {
            key,
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let bytes = file.metadata().map_err(io)?.len();
        let mut hasher = Xxh3::new();
        let mut buffer = Vec::new();
        for start in [
            0,
            bytes.saturating_sub(SAMPLE) / 2,
            bytes.saturating_sub(SAMPLE),
        ] {
            buffer.clear();
            file.seek(SeekFrom::Start(start)).map_err(io)?;
            (&mut file)
                .take(SAMPLE)
                .read_to_end(&mut buffer)
                .map_err(io)?;
            hasher.update(&buffer);
        }
        Ok(FileFingerprint {
            path: path.to_path_buf(),
            bytes,
            sample_xxh3: format!("{:016x}", hasher.digest()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_byte_in_a_sample_or_a_longer_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.bin");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let before = FileFingerprint::of("data.path", &path).unwrap();
        assert_eq!(before, FileFingerprint::of("data.path", &path).unwrap());
        for (at, len) in [
            (5, data.len()),
            (150_000, data.len()),
            (299_999, data.len()),
        ] {
            let mut changed = data.clone();
            changed[at] ^= 1;
            std::fs::write(&path, &changed[..len]).unwrap();
            assert_ne!(
                before,
                FileFingerprint::of("data.path", &path).unwrap(),
                "byte {at}"
            );
        }
        std::fs::write(&path, [&data[..], &[0]].concat()).unwrap();
        let longer = FileFingerprint::of("data.path", &path).unwrap();
        assert_eq!(longer.bytes, 300_001);
        let was = DataFingerprint {
            source: "tokens".into(),
            train_file: Some(before),
            val_file: None,
            train_windows: Some(10),
        };
        let now = DataFingerprint {
            train_file: Some(longer),
            ..was.clone()
        };
        let lines = was.differences(&now);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("data.path:") && lines[0].contains("300001 bytes"));
        assert!(was.differences(&was).is_empty());
    }
}
