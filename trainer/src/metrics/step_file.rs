use super::MetricsError;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An append-only file of one line per optimizer step inside `out_dir`,
/// the storage of the file sinks (`metrics.jsonl`, `metrics.csv`).
pub(super) struct StepFile {
    path: PathBuf,
    file: File,
}

impl StepFile {
    /// Opens `<out_dir>/<name>` to append to, after replacing its contents
    /// with `start(path)`: what a fresh run begins with, or the lines a
    /// resumed run keeps. The replacement is written to a temporary file and
    /// renamed over the old one, so a crash leaves the old file or the new.
    pub(super) fn open(
        out_dir: &Path,
        name: &str,
        start: impl FnOnce(&Path) -> Result<String, MetricsError>,
    ) -> Result<Self, MetricsError> {
        std::fs::create_dir_all(out_dir).map_err(|source| MetricsError::Io {
            action: "create directory",
            path: out_dir.to_path_buf(),
            source,
        })?;
        let path = out_dir.join(name);
        let io = |action| {
            let path = path.clone();
            move |source| MetricsError::Io {
                action,
                path,
                source,
            }
        };
        let contents = start(&path)?;
        let temp = out_dir.join(format!(".{name}.tmp"));
        std::fs::write(&temp, contents).map_err(io("write"))?;
        std::fs::rename(&temp, &path).map_err(io("replace"))?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io("open"))?;
        Ok(StepFile { path, file })
    }

    /// Appends `line` and a newline in one write on the unbuffered file:
    /// each step's line is on disk (in the page cache) as soon as it ends.
    pub(super) fn append(&mut self, line: &str) -> Result<(), MetricsError> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.file
            .write_all(&bytes)
            .map_err(|source| MetricsError::Io {
                action: "append to",
                path: self.path.clone(),
                source,
            })
    }
}

/// The text of `path`, or `None` if there is no such file.
pub(super) fn read_if_present(path: &Path) -> Result<Option<String>, MetricsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(MetricsError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}
