//! Which files `data.path` and `data.val_path` name: one file, a glob
//! (`data/shard-*.bin`), or a directory written by `cptrain prepare`
//! (`train-*.bin`, and `val-*.bin` for validation).

use std::path::{Path, PathBuf};

use super::DataError;

/// The token files of a run, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPaths {
    /// What `data.path` names, as configured.
    pub train_spec: PathBuf,
    /// The training files.
    pub train: Vec<PathBuf>,
    /// The validation files: `data.val_path`'s, else a prepared directory's
    /// `val-*.bin`; empty when there are none.
    pub val: Vec<PathBuf>,
}

impl TokenPaths {
    /// Resolves `path` and `val_path`.
    pub fn resolve(path: &Path, val_path: Option<&Path>) -> Result<Self, DataError> {
        let train = files("data.path", path, "train")?;
        let val = match val_path {
            Some(val_path) => files("data.val_path", val_path, "val")?,
            None if path.is_dir() => matching("data.path", &path.join("val-*.bin"))?,
            None => Vec::new(),
        };
        Ok(TokenPaths {
            train_spec: path.to_path_buf(),
            train,
            val,
        })
    }

    /// The training files, for messages.
    pub fn describe_train(&self) -> String {
        describe(&self.train)
    }

    /// The validation files, for messages.
    pub fn describe_val(&self) -> String {
        describe(&self.val)
    }
}

fn describe(files: &[PathBuf]) -> String {
    match files {
        [one] => one.display().to_string(),
        [first, .., last] => format!(
            "{} files ({} .. {})",
            files.len(),
            first.display(),
            last.display()
        ),
        [] => "no files".into(),
    }
}

/// The files `spec` names; `split` picks a directory's shards.
fn files(key: &'static str, spec: &Path, split: &str) -> Result<Vec<PathBuf>, DataError> {
    if spec.is_dir() {
        let found = matching(key, &spec.join(format!("{split}-*.bin")))?;
        if found.is_empty() {
            return Err(DataError::NoFiles {
                key,
                spec: spec.to_path_buf(),
                what: format!(
                    "a directory without {split}-*.bin shards (the files `cptrain prepare` writes)"
                ),
            });
        }
        return Ok(found);
    }
    let text = spec.to_string_lossy();
    if text.contains(['*', '?', '[']) {
        let found = matching(key, spec)?;
        if found.is_empty() {
            return Err(DataError::NoFiles {
                key,
                spec: spec.to_path_buf(),
                what: "a pattern that matches no file".into(),
            });
        }
        return Ok(found);
    }
    Ok(vec![spec.to_path_buf()])
}

/// The files matching the glob `pattern`, sorted.
fn matching(key: &'static str, pattern: &Path) -> Result<Vec<PathBuf>, DataError> {
    let bad = |what: String| DataError::NoFiles {
        key,
        spec: pattern.to_path_buf(),
        what,
    };
    let text = pattern
        .to_str()
        .ok_or_else(|| bad("a path that is not UTF-8".into()))?;
    let mut found = Vec::new();
    for entry in glob::glob(text).map_err(|e| bad(format!("not a valid pattern: {e}")))? {
        found.push(entry.map_err(|e| bad(format!("cannot be listed: {e}")))?);
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_globs_and_prepared_directories_resolve_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in [
            "train-0001.bin",
            "train-0000.bin",
            "val-0000.bin",
            "notes.txt",
        ] {
            std::fs::write(d.join(name), b"").unwrap();
        }
        let paths = TokenPaths::resolve(d, None).unwrap();
        assert_eq!(
            paths.train,
            [d.join("train-0000.bin"), d.join("train-0001.bin")]
        );
        assert_eq!(paths.val, [d.join("val-0000.bin")]);
        let glob = TokenPaths::resolve(&d.join("train-*.bin"), None).unwrap();
        assert_eq!(glob.train, paths.train);
        assert!(glob.val.is_empty());
        let one = TokenPaths::resolve(&d.join("notes.txt"), Some(&d.join("val-0000.bin"))).unwrap();
        assert_eq!((one.train.len(), one.val.len()), (1, 1));
        let err = TokenPaths::resolve(&d.join("x-*.bin"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("matches no file"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = TokenPaths::resolve(empty.path(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("without train-*.bin shards"), "{err}");
    }
}
