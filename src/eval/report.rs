//! Reports: aligned tables (Markdown for files, plain text for the terminal), the
//! append-only JSONL metrics log a run writes as it trains, and the curves read back from it.
//!
//! The log holds one JSON object per line (`{"step": 120, "loss": 1.93, "lr": 0.0004}`),
//! written and flushed one record at a time, so that a run killed at any moment leaves every
//! finished record readable. A killed run may leave a partial last line: the reader skips it
//! with a warning, and reopening the log to resume cuts it off before appending, so that
//! damage never ends up in the middle of the file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Cells of one table: `columns` wide, short rows padded with empty cells.
fn grid(headers: &[&str], rows: &[Vec<String>]) -> (Vec<Vec<String>>, Vec<usize>) {
    let columns = rows.iter().map(Vec::len).fold(headers.len(), usize::max);
    let mut cells = Vec::with_capacity(rows.len() + 1);
    let pad = |mut r: Vec<String>| {
        r.resize(columns, String::new());
        r
    };
    cells.push(pad(headers.iter().map(|h| h.to_string()).collect()));
    cells.extend(rows.iter().cloned().map(pad));
    let mut widths = vec![0; columns];
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    (cells, widths)
}

/// Whether every non-empty body cell of column `c` reads as a number (optionally with a
/// `%` or a `±` part, as "71.3 ± 0.4"): such columns are right-aligned.
fn numeric_column(rows: &[Vec<String>], c: usize) -> bool {
    let mut any = false;
    for cell in rows.iter().filter_map(|r| r.get(c)) {
        let t = cell.trim();
        if t.is_empty() {
            continue;
        }
        let head = t.split('±').next().unwrap_or("").trim();
        let head = head.trim_end_matches('%').trim();
        if head.parse::<f64>().is_err() {
            return false;
        }
        any = true;
    }
    any
}

fn align(cell: &str, width: usize, right: bool) -> String {
    let fill = " ".repeat(width - cell.chars().count());
    if right {
        format!("{fill}{cell}")
    } else {
        format!("{cell}{fill}")
    }
}

/// A Markdown (GitHub) table with padded columns, readable as text and rendered as a table.
///
/// Rows shorter than the widest row or the header get empty cells; columns whose cells are
/// all numbers are right-aligned (`---:`). A `|` inside a cell is escaped as `\|`.
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let escape = |s: &str| s.replace('|', "\\|");
    let headers: Vec<String> = headers.iter().map(|h| escape(h)).collect();
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape(c)).collect())
        .collect();
    let (cells, widths) = grid(&header_refs, &rows);
    // Markdown needs at least three dashes per column (four with the colon).
    let widths: Vec<usize> = widths.iter().map(|&w| w.max(4)).collect();
    let right: Vec<bool> = (0..widths.len())
        .map(|c| numeric_column(&rows, c))
        .collect();
    let line = |row: &Vec<String>| {
        let inner: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| align(cell, widths[c], right[c]))
            .collect();
        format!("| {} |\n", inner.join(" | "))
    };
    let mut out = line(&cells[0]);
    let rule: Vec<String> = widths
        .iter()
        .zip(&right)
        .map(|(&w, &r)| {
            if r {
                format!("{}:", "-".repeat(w - 1))
            } else {
                "-".repeat(w)
            }
        })
        .collect();
    out.push_str(&format!("| {} |\n", rule.join(" | ")));
    for row in &cells[1..] {
        out.push_str(&line(row));
    }
    out
}

/// The terminal twin of [`markdown_table`]: columns separated by two spaces, the header
/// underlined with dashes, numeric columns right-aligned, no trailing spaces.
pub fn plain_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let (cells, widths) = grid(headers, rows);
    let right: Vec<bool> = (0..widths.len()).map(|c| numeric_column(rows, c)).collect();
    let line = |row: &Vec<String>| {
        let inner: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| align(cell, widths[c], right[c]))
            .collect();
        format!("{}\n", inner.join("  ").trim_end())
    };
    let mut out = line(&cells[0]);
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    out.push_str(&format!("{}\n", rule.join("  ")));
    for row in &cells[1..] {
        out.push_str(&line(row));
    }
    out
}

/// An append-only JSONL log of training and evaluation records.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `path` for appending, creating it (and its folder) if needed. An existing log
    /// (a resumed run) is kept; a partial last line left by a killed run is cut off first,
    /// with a warning, so that the next record starts on a line of its own.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        cut_partial_tail(&path, &mut file)?;
        Ok(MetricsLog { path, file })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record`, which must serialise to a JSON object, as one line, and flushes
    /// it to the operating system (not fsync: a killed process loses nothing, and the
    /// cost of syncing every step is not worth a power cut's last record).
    pub fn append(&mut self, record: &impl Serialize) -> Result<()> {
        let value = serde_json::to_value(record).map_err(|e| {
            Error::Input(format!(
                "{}: a log record does not serialise to JSON: {e}",
                self.path.display()
            ))
        })?;
        if !value.is_object() {
            return Err(Error::Input(format!(
                "{}: a log record must be a JSON object, got {value}",
                self.path.display()
            )));
        }
        let mut line = value.to_string();
        line.push('\n');
        // One write call per record: a crash can cut a line short but never interleave two.
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Cuts everything after the last newline of `file`, if anything, unless that tail is a
/// whole JSON object (the newline alone was lost), which is then completed with a newline.
fn cut_partial_tail(path: &Path, file: &mut File) -> Result<()> {
    let io = |e| Error::io(path, e);
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Ok(());
    }
    // Read back at most the last 1 MiB: a record is a few hundred bytes.
    let window = len.min(1 << 20);
    file.seek(SeekFrom::Start(len - window)).map_err(io)?;
    let mut tail = Vec::with_capacity(window as usize);
    file.read_to_end(&mut tail).map_err(io)?;
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => len - window + i as u64 + 1,
        None if window == len => 0,
        None => {
            return Err(Error::format(
                path,
                "the last line is over 1 MiB long and does not end; not a metrics log?",
            ));
        }
    };
    let partial = &tail[(keep - (len - window)) as usize..];
    if serde_json::from_slice::<Value>(partial).is_ok_and(|v| v.is_object()) {
        file.write_all(b"\n").map_err(io)?;
        return Ok(());
    }
    tracing::warn!(
        "{}: dropping a partial last record ({} bytes) left by an interrupted run",
        path.display(),
        len - keep
    );
    file.set_len(keep).map_err(io)
}

/// Reads every record of a JSONL log, in order. Blank lines are skipped; a last line that
/// does not parse (a run killed mid-write) is skipped with a warning; any other line that is
/// not a JSON object is an error naming the line.
pub fn read_log(path: impl AsRef<Path>) -> Result<Vec<Value>> {
    let path = path.as_ref();
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let last = lines.iter().rposition(|l| !l.trim().is_empty());
    let mut records = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => records.push(v),
            Ok(v) => {
                return Err(Error::format(
                    path,
                    format!(
                        "line {}: a {} where a JSON object was expected",
                        i + 1,
                        json_kind(&v)
                    ),
                ));
            }
            Err(_) if Some(i) == last && !text.ends_with('\n') => {
                tracing::warn!(
                    "{}: line {}: skipping a partial last record (the run was interrupted)",
                    path.display(),
                    i + 1
                );
            }
            Err(e) => {
                return Err(Error::format(
                    path,
                    format!(
                        "line {}: not valid JSON ({e}); expected one object per line",
                        i + 1
                    ),
                ));
            }
        }
    }
    Ok(records)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The number at `key` of `record`: the key itself, or else a dotted path into nested
/// objects (`"val.uar"` reads `{"val": {"uar": 0.61}}`).
fn number_at(record: &Value, key: &str) -> Option<f64> {
    if let Some(v) = record.get(key) {
        return v.as_f64();
    }
    key.split('.')
        .try_fold(record, |v, k| v.get(k))
        .and_then(Value::as_f64)
}

/// One series per `y_keys` entry, named after it, of the `(x, y)` points of the records
/// that hold both numbers (`x_key` and the y key; dotted paths reach nested objects), in
/// log order, ready for [`super::plot::plot_curves`].
///
/// A resumed run restarts from its last checkpoint, so its log repeats x values the killed
/// run had already logged past the checkpoint. When x goes back, the points at or beyond
/// the new x are dropped: the resumed run's records replace them.
pub fn curves_from_log(
    records: &[Value],
    x_key: &str,
    y_keys: &[&str],
) -> Vec<(String, Vec<(f64, f64)>)> {
    y_keys
        .iter()
        .map(|&y_key| {
            let mut points: Vec<(f64, f64)> = Vec::new();
            for r in records {
                let (Some(x), Some(y)) = (number_at(r, x_key), number_at(r, y_key)) else {
                    continue;
                };
                if points.last().is_some_and(|&(last, _)| x < last) {
                    points.retain(|&(px, _)| px < x);
                }
                points.push((x, y));
            }
            (y_key.to_string(), points)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn markdown_table_aligns_columns_and_right_aligns_numbers() {
        let t = markdown_table(
            &["method", "UAR", "params"],
            &[
                row(&["FE-Adapter", "61.52", "1.2M"]),
                row(&["linear", "7.1"]),
            ],
        );
        let want = "\
| method     |   UAR | params |
| ---------- | ----: | ------ |
| FE-Adapter | 61.52 | 1.2M   |
| linear     |   7.1 |        |
";
        assert_eq!(t, want);
    }

    #[test]
    fn markdown_table_escapes_pipes() {
        let t = markdown_table(&["a|b"], &[row(&["x|y"])]);
        assert!(t.starts_with("| a\\|b |"), "{t}");
        assert!(t.contains("| x\\|y |"), "{t}");
    }

    #[test]
    fn plain_table_pads_without_trailing_spaces() {
        let t = plain_table(
            &["fold", "UAR", "note"],
            &[row(&["1", "60.5 ± 0.3", ""]), row(&["10", "7%", "best"])],
        );
        let want = "\
fold         UAR  note
----  ----------  ----
   1  60.5 ± 0.3
  10          7%  best
";
        assert_eq!(t, want);
    }

    #[test]
    fn log_appends_records_and_resumed_run_continues() {
        let dir = crate::util::tempdir().unwrap();
        let path = dir.path().join("run/metrics.jsonl");
        let mut log = MetricsLog::open(&path).unwrap();
        log.append(&json!({"step": 1, "loss": 2.0})).unwrap();
        log.append(&json!({"step": 2, "loss": 1.5})).unwrap();
        drop(log);
        let mut log = MetricsLog::open(&path).unwrap();
        log.append(&json!({"step": 3, "loss": 1.0})).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        let records = read_log(&path).unwrap();
        assert_eq!(records[2]["loss"], 1.0);
    }

    #[test]
    fn log_record_is_flushed_before_the_writer_is_dropped() {
        let dir = crate::util::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut log = MetricsLog::open(&path).unwrap();
        log.append(&json!({"step": 1})).unwrap();
        assert_eq!(read_log(&path).unwrap().len(), 1);
    }

    #[test]
    fn log_rejects_records_that_are_not_objects() {
        let dir = crate::util::tempdir().unwrap();
        let mut log = MetricsLog::open(dir.path().join("m.jsonl")).unwrap();
        let err = log.append(&[1, 2]).unwrap_err().to_string();
        assert!(
            err.contains("m.jsonl") && err.contains("JSON object"),
            "{err}"
        );
    }

    #[test]
    fn reader_skips_truncated_last_line() {
        let dir = crate::util::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        std::fs::write(&path, "{\"step\": 1}\n{\"step\": 2}\n{\"step\": 3, \"lo").unwrap();
        let records = read_log(&path).unwrap();
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn reader_rejects_bad_line_in_the_middle() {
        let dir = crate::util::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        std::fs::write(&path, "{\"step\": 1}\n{\"step\": \n{\"step\": 3}\n").unwrap();
        let err = read_log(&path).unwrap_err().to_string();
        assert!(err.contains("m.jsonl") && err.contains("line 2"), "{err}");
        std::fs::write(&path, "{\"step\": 1}\n[1]\n").unwrap();
        let err = read_log(&path).unwrap_err().to_string();
        assert!(err.contains("line 2: a array"), "{err}");
    }

    #[test]
    fn reopening_cuts_a_partial_record_before_appending() {
        let dir = crate::util::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        std::fs::write(&path, "{\"step\": 1}\n{\"step\": 2, \"lo").unwrap();
        let mut log = MetricsLog::open(&path).unwrap();
        log.append(&json!({"step": 2, "loss": 0.5})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"step\": 1}\n{\"loss\":0.5,\"step\":2}\n"
        );
    }

    #[test]
    fn reopening_keeps_a_whole_record_missing_only_its_newline() {
        let dir = crate::util::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        std::fs::write(&path, "{\"step\": 1}").unwrap();
        let mut log = MetricsLog::open(&path).unwrap();
        log.append(&json!({"step": 2})).unwrap();
        let steps: Vec<i64> = read_log(&path)
            .unwrap()
            .iter()
            .map(|r| r["step"].as_i64().unwrap())
            .collect();
        assert_eq!(steps, [1, 2]);
    }

    #[test]
    fn curves_pick_keys_and_skip_records_without_them() {
        let records = vec![
            json!({"step": 1, "loss": 2.0}),
            json!({"epoch": 1, "val": {"uar": 0.4}}),
            json!({"step": 2, "loss": 1.0, "lr": 0.1}),
        ];
        let curves = curves_from_log(&records, "step", &["loss", "lr"]);
        assert_eq!(curves[0], ("loss".into(), vec![(1.0, 2.0), (2.0, 1.0)]));
        assert_eq!(curves[1], ("lr".into(), vec![(2.0, 0.1)]));
        let val = curves_from_log(&records, "epoch", &["val.uar"]);
        assert_eq!(val[0].1, vec![(1.0, 0.4)]);
    }

    #[test]
    fn curves_of_resumed_run_replace_points_after_the_checkpoint() {
        // Killed after step 4, resumed from the step-2 checkpoint.
        let records: Vec<Value> = [(1, 5.0), (2, 4.0), (3, 3.0), (4, 2.0), (3, 2.5), (4, 2.2)]
            .iter()
            .map(|&(s, l)| json!({"step": s, "loss": l}))
            .collect();
        let curves = curves_from_log(&records, "step", &["loss"]);
        assert_eq!(
            curves[0].1,
            vec![(1.0, 5.0), (2.0, 4.0), (3.0, 2.5), (4.0, 2.2)]
        );
    }
}
