use super::step_file::{StepFile, read_if_present};
use super::{MetricsError, MetricsSink, StepRecord};
use std::path::Path;

/// Name of the per-step metrics file inside `train.out_dir`.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Writes one JSON object per optimizer step to `<out_dir>/metrics.jsonl`,
/// each line written and flushed as the step completes.
pub struct JsonlSink {
    file: StepFile,
}

impl JsonlSink {
    /// Opens `<out_dir>/metrics.jsonl`. A fresh run (`resumed_step = None`)
    /// starts an empty file. A run resumed after step `s` keeps the records
    /// of steps `1..=s` and drops later ones (written after that checkpoint
    /// by the interrupted run, and about to be redone), so the finished file
    /// equals that of an uninterrupted run. A torn last line (a crash
    /// mid-write) is dropped; any other line that is not a record is an error.
    pub fn create(out_dir: &Path, resumed_step: Option<u64>) -> Result<Self, MetricsError> {
        let file = StepFile::open(out_dir, METRICS_FILE, |path| match resumed_step {
            None => Ok(String::new()),
            Some(step) => records_up_to(path, step),
        })?;
        Ok(JsonlSink { file })
    }
}

/// One line of a `metrics.jsonl` and its record.
pub(crate) struct RecordLine<'a> {
    /// The line as written.
    pub text: &'a str,
    /// Its record.
    pub record: StepRecord,
}

/// A line of a `metrics.jsonl` that is not a step record.
pub(crate) struct BadLine {
    /// 1-based line number.
    pub number: usize,
    /// The parser's error.
    pub source: serde_json::Error,
}

/// The records of the text of a `metrics.jsonl`, blank lines skipped. A torn
/// last line (no newline at the end and not a record: a crash mid-write) is
/// left out; any other line that is not a record is an error.
pub(crate) fn parse_records(text: &str) -> Result<Vec<RecordLine<'_>>, BadLine> {
    let last = text.lines().count();
    let torn_end = !text.ends_with('\n');
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<StepRecord>(line) {
            Ok(record) => records.push(RecordLine { text: line, record }),
            Err(_) if i + 1 == last && torn_end => {}
            Err(source) => {
                return Err(BadLine {
                    number: i + 1,
                    source,
                });
            }
        }
    }
    Ok(records)
}

/// The lines of `path` (if it exists) whose records have `step <= last`.
fn records_up_to(path: &Path, last: u64) -> Result<String, MetricsError> {
    let text = read_if_present(path)?.unwrap_or_default();
    let records = parse_records(&text).map_err(|bad| MetricsError::Corrupt {
        path: path.to_path_buf(),
        line: bad.number,
        source: bad.source,
    })?;
    let mut kept = String::new();
    for line in records.iter().filter(|l| l.record.step <= last) {
        kept.push_str(line.text);
        kept.push('\n');
    }
    Ok(kept)
}

impl MetricsSink for JsonlSink {
    fn record(&mut self, record: &StepRecord) -> Result<(), MetricsError> {
        let line = serde_json::to_string(record).expect("step records serialize");
        self.file.append(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

    fn record(step: u64) -> StepRecord {
        StepRecord {
            step,
            loss: 4.0 - step as f64 * 0.5,
            lr: 1e-3,
            grad_norm: 0.75,
            tokens: 64 * step,
            tokens_per_s: 640.0,
            elapsed_s: 0.1 * step as f64,
            step_time_s: 0.1,
            ..Default::default()
        }
    }

    fn lines(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join(METRICS_FILE))
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn one_json_object_per_step_with_optional_fields_only_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = JsonlSink::create(dir.path(), None).unwrap();
        sink.record(&record(1)).unwrap();
        sink.record(&StepRecord {
            eval_loss: Some(2.5),
            mfu: Some(0.41),
            peak_rss_bytes: Some(1 << 30),
            device_peak_bytes: Some(3 << 30),
            ..record(2)
        })
        .unwrap();
        let lines = lines(dir.path());
        assert_eq!(
            lines[0],
            r#"{"step":1,"loss":3.5,"lr":0.001,"grad_norm":0.75,"tokens":64,"tokens_per_s":640.0,"elapsed_s":0.1,"step_time_s":0.1}"#
        );
        let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(second["eval_loss"], 2.5);
        assert_eq!(second["peak_rss_bytes"], 1u64 << 30);
        assert_eq!(second["device_peak_bytes"], 3u64 << 30);
        assert!(second.get("comm_bytes").is_none());
    }

    /// The interrupted run wrote steps 1..=5 (and half of step 6) but its
    /// last checkpoint is step 3: the resumed file drops 4, 5 and the torn
    /// line, then continues, giving exactly the uninterrupted run's lines.
    #[test]
    fn resuming_truncates_records_after_the_checkpoint() {
        let interrupted = tempfile::tempdir().unwrap();
        let mut sink = JsonlSink::create(interrupted.path(), None).unwrap();
        (1..=5).for_each(|s| sink.record(&record(s)).unwrap());
        drop(sink);
        let mut file = OpenOptions::new()
            .append(true)
            .open(interrupted.path().join(METRICS_FILE))
            .unwrap();
        file.write_all(br#"{"step":6,"lo"#).unwrap();

        let mut resumed = JsonlSink::create(interrupted.path(), Some(3)).unwrap();
        (4..=7).for_each(|s| resumed.record(&record(s)).unwrap());

        let straight = tempfile::tempdir().unwrap();
        let mut sink = JsonlSink::create(straight.path(), None).unwrap();
        (1..=7).for_each(|s| sink.record(&record(s)).unwrap());
        assert_eq!(lines(interrupted.path()), lines(straight.path()));
    }

    #[test]
    fn a_fresh_run_starts_an_empty_file_and_a_resume_without_a_file_starts_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(METRICS_FILE), "old\n").unwrap();
        JsonlSink::create(dir.path(), None).unwrap();
        assert!(lines(dir.path()).is_empty());
        let other = tempfile::tempdir().unwrap();
        JsonlSink::create(other.path(), Some(9))
            .unwrap()
            .record(&record(10))
            .unwrap();
        assert_eq!(lines(other.path()).len(), 1);
    }

    #[test]
    fn a_foreign_line_in_the_middle_is_reported_with_its_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let good = serde_json::to_string(&record(1)).unwrap();
        std::fs::write(
            dir.path().join(METRICS_FILE),
            format!("{good}\nnot json\n{good}\n"),
        )
        .unwrap();
        let err = JsonlSink::create(dir.path(), Some(1))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("metrics.jsonl:2 is not a metrics record"),
            "{err}"
        );
    }
}
