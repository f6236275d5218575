//! `vidapter data check`: scan a dataset split and say what is wrong with it before a long
//! run finds out: unreadable, truncated, zero-frame and too-short entries (by decoding
//! every entry), plus the annotation's own problems (malformed lines, unknown labels,
//! missing paths), and a class histogram.
//!
//! The rule (the same as the loader's, `predict`'s and the feature cache's): a clip is clean
//! only if every frame it could use decodes. Videos are decoded to the end (no frame is
//! converted to RGB: the selection is empty); every frame image of a folder is decoded
//! ([`DecodeOptions::verify_frames`]), and a gap in a folder's numbering is reported. Damage
//! is looked at with [`DecodeOptions::allow_damaged`] on, so that it is described (how many
//! frames decode, FFmpeg's words, the frame file at fault) rather than just refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::ProgressBar;
use serde::Serialize;

use super::decode::{DecodeErrorKind, DecodeOptions, decode};
use super::{Dataset, Entry, Problem};
use crate::error::Result;

/// Why an entry is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The annotation line itself is wrong (malformed, unknown label, missing path).
    Annotation,
    /// Cannot be opened or decoded at all.
    Unreadable,
    /// Opens, but no frame decodes.
    ZeroFrames,
    /// Decodes with errors: a truncated download, corrupt packets, a frame image that is cut
    /// off or does not decode, a gap in a frame folder's numbering. The loader skips it.
    Truncated,
    /// Fewer frames than a clip needs (it will repeat its last frame).
    TooShort,
}

/// One listed entry.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What kind of problem.
    pub verdict: Verdict,
    /// The problem, with path and line.
    pub problem: Problem,
}

/// The result of a scan.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Entries the annotation declared readable (before decoding).
    pub entries: usize,
    /// Entries that decoded cleanly with enough frames.
    pub clean: usize,
    /// Everything listed, annotation problems first, then by entry order.
    pub findings: Vec<Finding>,
    /// Entries per class name (of the readable entries).
    pub histogram: BTreeMap<String, usize>,
    /// Shortest and longest decoded clip, in frames.
    pub frames_range: Option<(usize, usize)>,
    /// Wall-clock seconds the decoding took (for the clips/s `data check` prints).
    pub seconds: f64,
}

impl CheckReport {
    /// Count of findings with `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.findings
            .iter()
            .filter(|f| f.verdict == verdict)
            .count()
    }
}

fn classify(
    entry: &Entry,
    min_frames: usize,
    opts: &DecodeOptions,
) -> (Option<Finding>, Option<usize>) {
    let problem = |reason: String| Problem {
        path: entry.source.path().to_path_buf(),
        line: entry.origin.as_ref().map(|o| o.1),
        reason,
    };
    match decode(&entry.source, &mut |_| Vec::new(), opts) {
        Ok(d) => {
            let n = d.info.decoded_frames;
            let finding = if d.info.decode_errors > 0 {
                Some(Finding {
                    verdict: Verdict::Truncated,
                    problem: problem(d.info.damage()),
                })
            } else if n < min_frames {
                Some(Finding {
                    verdict: Verdict::TooShort,
                    problem: problem(format!(
                        "{n} frame(s) decode; a clip needs {min_frames} (the last frame would be repeated)"
                    )),
                })
            } else {
                None
            };
            (finding, Some(n))
        }
        Err(e) => {
            let verdict = match e.kind {
                DecodeErrorKind::NoFrames => Verdict::ZeroFrames,
                _ => Verdict::Unreadable,
            };
            (
                Some(Finding {
                    verdict,
                    problem: Problem {
                        line: entry.origin.as_ref().map(|o| o.1),
                        ..Problem::from(e)
                    },
                }),
                None,
            )
        }
    }
}

/// Decodes every entry of `dataset` on `workers` threads. `min_frames` is the clip length
/// the run will sample (entries shorter than it are listed as too short).
pub fn check(
    dataset: &Dataset,
    min_frames: usize,
    workers: usize,
    opts: &DecodeOptions,
    progress: bool,
) -> CheckReport {
    let began = std::time::Instant::now();
    let opts = &DecodeOptions {
        allow_damaged: true,
        verify_frames: true,
        ..opts.clone()
    };
    let entries = Arc::new(dataset.entries.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let bar = if progress {
        crate::util::progress_bar(
            entries.len() as u64,
            "check {bar:30} {pos}/{len} clips  {per_sec}  ETA {eta}",
            true,
        )
    } else {
        ProgressBar::hidden()
    };
    let results: Vec<(usize, Option<Finding>, Option<usize>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.max(1))
            .map(|_| {
                let (entries, next, bar) = (entries.clone(), next.clone(), bar.clone());
                scope.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(entry) = entries.get(i) else { break };
                        let (finding, frames) = classify(entry, min_frames, opts);
                        out.push((i, finding, frames));
                        bar.inc(1);
                    }
                    out
                })
            })
            .collect();
        let mut all: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("check worker panicked"))
            .collect();
        all.sort_by_key(|r| r.0);
        all
    });
    bar.finish_and_clear();
    let mut findings: Vec<Finding> = dataset
        .problems
        .iter()
        .map(|p| Finding {
            verdict: Verdict::Annotation,
            problem: p.clone(),
        })
        .collect();
    let mut histogram = BTreeMap::new();
    let mut range: Option<(usize, usize)> = None;
    let mut clean = 0;
    for (i, finding, frames) in results {
        if let Some(n) = frames {
            range = Some(range.map_or((n, n), |(lo, hi)| (lo.min(n), hi.max(n))));
            for &l in &entries[i].labels {
                let name = dataset
                    .classes
                    .names
                    .get(l)
                    .cloned()
                    .unwrap_or_else(|| l.to_string());
                *histogram.entry(name).or_insert(0) += 1;
            }
        }
        match finding {
            Some(f) => findings.push(f),
            None => clean += 1,
        }
    }
    CheckReport {
        entries: entries.len(),
        clean,
        findings,
        histogram,
        frames_range: range,
        seconds: began.elapsed().as_secs_f64(),
    }
}

/// Writes the findings as a tab-separated list: `verdict, path, line, reason`.
pub fn write_bad_list(report: &CheckReport, path: &Path) -> Result<()> {
    let mut text = String::from("verdict\tpath\tline\treason\n");
    for f in &report.findings {
        let verdict = serde_json::to_value(f.verdict)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let line = f.problem.line.map(|l| l.to_string()).unwrap_or_default();
        text.push_str(&format!(
            "{verdict}\t{}\t{line}\t{}\n",
            f.problem.path.display(),
            f.problem.reason.replace(['\t', '\n'], " ")
        ));
    }
    crate::util::write_atomic(path, text.as_bytes())
}
