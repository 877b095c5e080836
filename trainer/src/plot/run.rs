use super::PlotError;
use crate::metrics::{METRICS_FILE, StepRecord, parse_records};
use std::path::{Path, PathBuf};

/// The step records of one run, as read from `<run_dir>/metrics.jsonl`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunMetrics {
    /// The name in the legend: the run directory as given.
    pub name: String,
    /// Its records in file order (a resumed run's file has each step once).
    pub records: Vec<StepRecord>,
}

impl RunMetrics {
    /// Reads `<run_dir>/metrics.jsonl`. A torn last line (a run being
    /// written, or one that crashed mid-line) is left out; a missing
    /// directory or file, a file without records and any other line that is
    /// not a record are errors naming the file (and line).
    pub fn read(run_dir: &Path) -> Result<Self, PlotError> {
        if !run_dir.is_dir() {
            return Err(PlotError::NoRunDir {
                dir: run_dir.to_path_buf(),
            });
        }
        let path = run_dir.join(METRICS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                PlotError::NoMetrics {
                    dir: run_dir.to_path_buf(),
                    path: path.clone(),
                }
            } else {
                PlotError::Io {
                    action: "read",
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let records: Vec<StepRecord> = parse_records(&text)
            .map_err(|bad| PlotError::Corrupt {
                path: path.clone(),
                line: bad.number,
                source: bad.source,
            })?
            .into_iter()
            .map(|line| line.record)
            .collect();
        if records.is_empty() {
            return Err(PlotError::Empty { path });
        }
        // `runs/a/` and `./runs/a` are both named `runs/a`.
        let name: PathBuf = run_dir.components().collect();
        Ok(RunMetrics {
            name: name.display().to_string(),
            records,
        })
    }
}
