use super::step_file::{StepFile, read_if_present};
use super::{MetricsError, MetricsSink, StepRecord};
use std::path::Path;
use std::str::FromStr;

/// Name of the CSV copy of the per-step metrics inside `train.out_dir`.
pub const METRICS_CSV_FILE: &str = "metrics.csv";

/// The columns of `metrics.csv`: the fields of [`StepRecord`] in the order
/// of `metrics.jsonl`. Optional fields are empty cells when absent.
pub const CSV_COLUMNS: [&str; 14] = [
    "step",
    "loss",
    "lr",
    "grad_norm",
    "tokens",
    "tokens_per_s",
    "elapsed_s",
    "step_time_s",
    "eval_loss",
    "mfu",
    "comm_bytes",
    "comm_wait_s",
    "peak_rss_bytes",
    "epoch",
];

/// Writes one CSV row per optimizer step to `<out_dir>/metrics.csv`
/// (`metrics.csv = true`), under a header line of [`CSV_COLUMNS`]; numbers
/// are written in their shortest exact form, so they read back bit for bit.
pub struct CsvSink {
    file: StepFile,
}

impl CsvSink {
    /// Opens `<out_dir>/metrics.csv` with the resume rules of
    /// [`JsonlSink::create`](super::JsonlSink::create): a fresh run starts
    /// with the header alone; a run resumed after step `s` keeps the rows of
    /// steps `1..=s`. A torn last line is dropped; a different header or any
    /// other line that is not a row is an error.
    pub fn create(out_dir: &Path, resumed_step: Option<u64>) -> Result<Self, MetricsError> {
        let file = StepFile::open(out_dir, METRICS_CSV_FILE, |path| {
            let mut text = header();
            text.push('\n');
            if let Some(step) = resumed_step {
                text.push_str(&rows_up_to(path, step)?);
            }
            Ok(text)
        })?;
        Ok(CsvSink { file })
    }
}

impl MetricsSink for CsvSink {
    fn record(&mut self, record: &StepRecord) -> Result<(), MetricsError> {
        self.file.append(&csv_row(record))
    }
}

/// `step,loss,lr,...`.
fn header() -> String {
    CSV_COLUMNS.join(",")
}

/// The row of `record`, cells in the order of [`CSV_COLUMNS`].
pub fn csv_row(record: &StepRecord) -> String {
    // `{:?}`: the shortest form that reads back exactly, with an exponent
    // for very small or large numbers (`6e-5`, where `{}` writes `0.00006`).
    fn cell<T: std::fmt::Debug>(value: Option<T>) -> String {
        value.map(|v| format!("{v:?}")).unwrap_or_default()
    }
    [
        cell(Some(record.step)),
        cell(Some(record.loss)),
        cell(Some(record.lr)),
        cell(Some(record.grad_norm)),
        cell(Some(record.tokens)),
        cell(Some(record.tokens_per_s)),
        cell(Some(record.elapsed_s)),
        cell(Some(record.step_time_s)),
        cell(record.eval_loss),
        cell(record.mfu),
        cell(record.comm_bytes),
        cell(record.comm_wait_s),
        cell(record.peak_rss_bytes),
        cell(record.epoch),
    ]
    .join(",")
}

/// The record of a row written by [`csv_row`]; the error says which cell is wrong.
pub fn parse_csv_row(line: &str) -> Result<StepRecord, String> {
    let cells: Vec<&str> = line.split(',').collect();
    if cells.len() != CSV_COLUMNS.len() {
        return Err(format!(
            "{} cells, expected {} ({})",
            cells.len(),
            CSV_COLUMNS.len(),
            header()
        ));
    }
    let mut cells = CSV_COLUMNS.iter().zip(cells);
    let mut next = || cells.next().expect("the cells were counted");
    // Fields are evaluated in the order written, the order of the columns.
    Ok(StepRecord {
        step: required(next())?,
        loss: required(next())?,
        lr: required(next())?,
        grad_norm: required(next())?,
        tokens: required(next())?,
        tokens_per_s: required(next())?,
        elapsed_s: required(next())?,
        step_time_s: required(next())?,
        eval_loss: optional(next())?,
        mfu: optional(next())?,
        comm_bytes: optional(next())?,
        comm_wait_s: optional(next())?,
        peak_rss_bytes: optional(next())?,
        epoch: optional(next())?,
        // A list of text lines: only in metrics.jsonl.
        config_changes: None,
        // A map per group: only in metrics.jsonl (the column is the total).
        comm_bytes_by_group: None,
        // Device runs only: in metrics.jsonl, so the columns stay those of
        // every CPU run's file.
        device_peak_bytes: None,
        device_host_bytes: None,
    })
}

/// The number in a cell that must not be empty.
fn required<T: FromStr>((column, cell): (&&str, &str)) -> Result<T, String> {
    cell.parse()
        .map_err(|_| format!("{column} = `{cell}` is not a number of that column's kind"))
}

/// The number in a cell, or `None` if it is empty.
fn optional<T: FromStr>((column, cell): (&&str, &str)) -> Result<Option<T>, String> {
    if cell.is_empty() {
        return Ok(None);
    }
    required((column, cell)).map(Some)
}

/// The rows of `path` (if it exists) whose step is `<= last`, as written.
fn rows_up_to(path: &Path, last: u64) -> Result<String, MetricsError> {
    let Some(text) = read_if_present(path)? else {
        return Ok(String::new());
    };
    let corrupt = |line: usize, problem: String| MetricsError::CorruptRow {
        path: path.to_path_buf(),
        line,
        problem,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, first)) if first == header() => {}
        Some((_, first)) => {
            return Err(corrupt(
                1,
                format!("the header is `{first}`, expected `{}`", header()),
            ));
        }
        None => return Ok(String::new()),
    }
    let last_line = text.lines().count();
    let torn_end = !text.ends_with('\n');
    let mut kept = String::new();
    for (i, line) in lines {
        if line.trim().is_empty() || (i + 1 == last_line && torn_end) {
            continue;
        }
        let record = parse_csv_row(line).map_err(|problem| corrupt(i + 1, problem))?;
        if record.step <= last {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{JsonlSink, METRICS_FILE};
    use std::io::Write;

    fn record(step: u64) -> StepRecord {
        StepRecord {
            step,
            loss: 4.0 - step as f64 / 3.0,
            lr: 6e-4 * step as f64 / 7.0,
            grad_norm: 0.75,
            tokens: 64 * step,
            tokens_per_s: 640.5,
            elapsed_s: 0.1 * step as f64,
            step_time_s: 0.1,
            ..Default::default()
        }
    }

    fn full(step: u64) -> StepRecord {
        StepRecord {
            eval_loss: Some(f64::MIN_POSITIVE),
            mfu: Some(0.41),
            comm_bytes: Some(u64::MAX),
            comm_wait_s: Some(1e-300),
            peak_rss_bytes: Some(1 << 30),
            epoch: Some(3),
            ..record(step)
        }
    }

    fn text(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(METRICS_CSV_FILE)).unwrap()
    }

    /// The JSONL keys of a record with every field present, in order.
    #[test]
    fn the_columns_are_the_jsonl_fields_in_order() {
        let json = serde_json::to_string(&full(1)).unwrap();
        let positions: Vec<usize> = CSV_COLUMNS
            .iter()
            .map(|c| json.find(&format!("\"{c}\":")).expect(c))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value.as_object().unwrap().len(), CSV_COLUMNS.len());
    }

    /// Every value, optional or not, reads back exactly from the file.
    #[test]
    fn rows_read_back_to_the_same_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = CsvSink::create(dir.path(), None).unwrap();
        let records = [record(1), full(2), record(3)];
        records.iter().for_each(|r| sink.record(r).unwrap());
        let text = text(dir.path());
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), CSV_COLUMNS.join(","));
        let back: Vec<StepRecord> = lines.map(|l| parse_csv_row(l).unwrap()).collect();
        assert_eq!(back, records);
        assert!(text.contains("\n1,3.6666666666666665,"), "{text}");
        assert!(text.ends_with(",0.1,,,,,,\n"), "{text}");
    }

    /// As the JSONL sink: the interrupted run wrote steps 1..=5 and half of
    /// step 6, its checkpoint is step 3; the resumed file equals the
    /// uninterrupted one, and both sinks keep the same steps.
    #[test]
    fn resuming_truncates_rows_after_the_checkpoint_like_the_jsonl() {
        let interrupted = tempfile::tempdir().unwrap();
        let mut csv = CsvSink::create(interrupted.path(), None).unwrap();
        let mut jsonl = JsonlSink::create(interrupted.path(), None).unwrap();
        for step in 1..=5 {
            csv.record(&full(step)).unwrap();
            jsonl.record(&full(step)).unwrap();
        }
        drop(csv);
        std::fs::OpenOptions::new()
            .append(true)
            .open(interrupted.path().join(METRICS_CSV_FILE))
            .unwrap()
            .write_all(b"6,3.1,0.00")
            .unwrap();

        let mut csv = CsvSink::create(interrupted.path(), Some(3)).unwrap();
        let mut jsonl = JsonlSink::create(interrupted.path(), Some(3)).unwrap();
        for step in 4..=7 {
            csv.record(&full(step)).unwrap();
            jsonl.record(&full(step)).unwrap();
        }

        let straight = tempfile::tempdir().unwrap();
        let mut sink = CsvSink::create(straight.path(), None).unwrap();
        (1..=7).for_each(|s| sink.record(&full(s)).unwrap());
        assert_eq!(text(interrupted.path()), text(straight.path()));
        let csv_steps: Vec<u64> = text(interrupted.path())
            .lines()
            .skip(1)
            .map(|l| parse_csv_row(l).unwrap().step)
            .collect();
        let jsonl_lines = std::fs::read_to_string(interrupted.path().join(METRICS_FILE)).unwrap();
        assert_eq!(csv_steps, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(jsonl_lines.lines().count(), csv_steps.len());
    }

    #[test]
    fn a_fresh_run_starts_with_the_header_and_a_resume_without_a_file_starts_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(METRICS_CSV_FILE), "old\n").unwrap();
        CsvSink::create(dir.path(), None).unwrap();
        assert_eq!(text(dir.path()), format!("{}\n", CSV_COLUMNS.join(",")));
        let other = tempfile::tempdir().unwrap();
        CsvSink::create(other.path(), Some(9))
            .unwrap()
            .record(&record(10))
            .unwrap();
        assert_eq!(text(other.path()).lines().count(), 2);
    }

    #[test]
    fn a_foreign_header_or_row_is_reported_with_its_line_number() {
        let good = csv_row(&record(1));
        let header = CSV_COLUMNS.join(",");
        let cases = [
            (
                format!("step,loss\n{good}\n"),
                "metrics.csv:1 is not a metrics row (the header is `step,loss`",
            ),
            (
                format!("{header}\n{good}\n1,2,3\n{good}\n"),
                "metrics.csv:3 is not a metrics row (3 cells, expected 14",
            ),
            (
                format!("{header}\n{}\n{good}\n", good.replacen("1,", "x,", 1)),
                "metrics.csv:2 is not a metrics row (step = `x` is not a number",
            ),
        ];
        for (contents, message) in cases {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(METRICS_CSV_FILE), contents).unwrap();
            let err = CsvSink::create(dir.path(), Some(1))
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(message), "{err}");
        }
    }
}
