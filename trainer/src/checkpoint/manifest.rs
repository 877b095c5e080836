//! `MANIFEST.json`: the size and XXH3-64 checksum of every file of a
//! checkpoint, written last (before `DONE`) and verified on every load, so a
//! flipped byte, a truncated file or a file swapped in from elsewhere is an
//! error naming the file rather than weights that silently train into garbage.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use super::CheckpointError;

/// File name of the manifest inside a checkpoint directory.
pub const MANIFEST_FILE: &str = "MANIFEST.json";

/// The checksum algorithm, recorded so a later build can change it.
const ALGORITHM: &str = "xxh3-64";

/// Bytes read per call while hashing.
const CHUNK: usize = 1 << 20;

/// What the manifest records of each file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    /// Length in bytes.
    bytes: u64,
    /// XXH3-64 of the contents, 16 lowercase hex digits.
    xxh3: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    algorithm: String,
    files: BTreeMap<String, FileEntry>,
}

/// The size and checksum of `path`, read in chunks.
fn entry_of(path: &Path) -> Result<FileEntry, CheckpointError> {
    let io = |source| CheckpointError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = Xxh3::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
    Ok(FileEntry {
        bytes,
        xxh3: format!("{:016x}", hasher.digest()),
    })
}

/// Writes `<dir>/MANIFEST.json` for `files` (names inside `dir`) and syncs it.
pub fn write_manifest(dir: &Path, files: &[&str]) -> Result<(), CheckpointError> {
    let mut entries = BTreeMap::new();
    for name in files {
        entries.insert((*name).to_string(), entry_of(&dir.join(name))?);
    }
    let manifest = Manifest {
        algorithm: ALGORITHM.into(),
        files: entries,
    };
    let path = dir.join(MANIFEST_FILE);
    let json = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
    std::fs::write(&path, json)
        .and_then(|()| File::open(&path)?.sync_all())
        .map_err(|source| CheckpointError::Io {
            action: "write",
            path,
            source,
        })
}

/// Checks that `<dir>/MANIFEST.json` lists every name in `files` and that
/// each file it lists has the recorded size and checksum.
pub fn verify_manifest(dir: &Path, files: &[&str]) -> Result<(), CheckpointError> {
    let path = dir.join(MANIFEST_FILE);
    let corrupt = |file: &Path, what: String| CheckpointError::Checksum {
        path: file.to_path_buf(),
        what,
    };
    let text = std::fs::read(&path).map_err(|source| CheckpointError::Io {
        action: "read",
        path: path.clone(),
        source,
    })?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| corrupt(&path, format!("not a valid manifest: {e}")))?;
    if manifest.algorithm != ALGORITHM {
        return Err(corrupt(
            &path,
            format!(
                "checksums are {}, this build checks {ALGORITHM}",
                manifest.algorithm
            ),
        ));
    }
    if let Some(name) = files.iter().find(|n| !manifest.files.contains_key(**n)) {
        return Err(corrupt(
            &dir.join(name),
            format!("the file has no entry in {MANIFEST_FILE}"),
        ));
    }
    for (name, recorded) in &manifest.files {
        let file = dir.join(name);
        let actual = entry_of(&file)?;
        if actual.bytes != recorded.bytes {
            return Err(corrupt(
                &file,
                format!(
                    "{} bytes, but {MANIFEST_FILE} recorded {} (truncated or replaced)",
                    actual.bytes, recorded.bytes
                ),
            ));
        }
        if actual.xxh3 != recorded.xxh3 {
            return Err(corrupt(
                &file,
                format!(
                    "checksum {} differs from the {} recorded in {MANIFEST_FILE} \
                     (the contents changed after it was written)",
                    actual.xxh3, recorded.xxh3
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_what_it_wrote_and_names_the_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.bin"), vec![7u8; 3 * CHUNK + 5]).unwrap();
        std::fs::write(d.join("b.json"), b"{}").unwrap();
        write_manifest(d, &["a.bin", "b.json"]).unwrap();
        verify_manifest(d, &["a.bin", "b.json"]).unwrap();

        // One flipped byte past the first chunk.
        let mut bytes = std::fs::read(d.join("a.bin")).unwrap();
        bytes[2 * CHUNK + 1] ^= 0x10;
        std::fs::write(d.join("a.bin"), &bytes).unwrap();
        let err = verify_manifest(d, &["a.bin"]).unwrap_err().to_string();
        assert!(err.contains("a.bin") && err.contains("checksum"), "{err}");

        bytes.pop();
        std::fs::write(d.join("a.bin"), &bytes).unwrap();
        let err = verify_manifest(d, &["a.bin"]).unwrap_err().to_string();
        assert!(err.contains(&format!("{} bytes", 3 * CHUNK + 4)), "{err}");

        let err = verify_manifest(d, &["c.txt"]).unwrap_err().to_string();
        assert!(err.contains("c.txt") && err.contains("no entry"), "{err}");

        std::fs::remove_file(d.join(MANIFEST_FILE)).unwrap();
        let err = verify_manifest(d, &["b.json"]).unwrap_err().to_string();
        assert!(
            err.contains("cannot read") && err.contains(MANIFEST_FILE),
            "{err}"
        );
    }
}
