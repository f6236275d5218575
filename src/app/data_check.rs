//! `vidapter data check`: decode every clip of a dataset's splits, print each split's report
//! as it is done ([`crate::data::report`]), write the bad-entry list, and sum up.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::data::check::{self, CheckReport};
use crate::data::config::{DatasetConfig, Split};
use crate::data::decode::DecodeOptions;
use crate::data::report;
use crate::error::{Error, Result};
use crate::train::config::MAX_FRAMES;

/// Findings shown per split in its report (the bad-entry list has them all).
const SHOWN_FINDINGS: usize = 10;

/// What to check.
#[derive(Debug, Clone)]
pub struct DataCheck {
    /// A TOML file with a `[data]` table (a run config works).
    pub config: PathBuf,
    /// `train`, `val`, `test`, or `all` (every split the config has).
    pub split: String,
    /// Clip length a run samples; shorter clips are listed (default: the config's
    /// `sampling.frames` when it has one, else 8).
    pub frames: Option<usize>,
    /// Decode threads (default: all cores).
    pub workers: Option<usize>,
    /// The bad-entry list (default: `bad_entries.tsv` beside the config).
    pub bad_list: Option<PathBuf>,
}

/// The totals of a check, over every split checked.
#[derive(Debug, Clone)]
pub struct CheckSummary {
    /// Every split's report merged.
    pub report: CheckReport,
    /// Where the bad-entry list was written.
    pub bad_list: PathBuf,
    /// Decode threads used.
    pub workers: usize,
}

impl CheckSummary {
    /// With `--strict`, why the command fails: something was listed.
    pub fn strict_failure(&self) -> Option<String> {
        let n = self.report.findings.len();
        (n > 0).then(|| format!("strict: {n} bad {} found", entries(n)))
    }
}

impl fmt::Display for CheckSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        writeln!(
            f,
            "{} of {} entries clean; {} listed in {}",
            r.clean,
            r.entries,
            r.findings.len(),
            self.bad_list.display()
        )?;
        writeln!(
            f,
            "decoded {} clips in {:.1} s ({:.1} clips/s on {} worker(s))",
            r.entries,
            r.seconds,
            r.entries as f64 / r.seconds.max(1e-9),
            self.workers
        )
    }
}

fn entries(n: usize) -> &'static str {
    if n == 1 { "entry" } else { "entries" }
}

/// The clip length to check: `frames` when given, else a run config's `sampling.frames`
/// (refused outside 1..=[`MAX_FRAMES`], naming the field), else 8.
fn clip_frames(config: &Path, frames: Option<usize>) -> Result<usize> {
    if let Some(f) = frames {
        return Ok(f);
    }
    // A run config says how many frames its clips take; a bare [data] file does not.
    let declared = std::fs::read_to_string(config)
        .ok()
        .and_then(|t| toml::from_str::<toml::Value>(&t).ok())
        .and_then(|d| d.get("sampling")?.get("frames")?.as_integer());
    match declared {
        None => Ok(8),
        Some(f) => usize::try_from(f)
            .ok()
            .filter(|f| (1..=MAX_FRAMES).contains(f))
            .ok_or_else(|| {
                Error::config(
                    config,
                    "sampling.frames",
                    format!("{f} is outside 1..={MAX_FRAMES}"),
                )
            }),
    }
}

/// A split's report as printed: [`report::render`], and for a validation split held out of
/// the training list, how it was chosen.
fn split_text(
    cfg: &DatasetConfig,
    split: Split,
    dataset: &crate::data::Dataset,
    r: &CheckReport,
) -> String {
    let mut text = report::render(split, dataset, r, SHOWN_FINDINGS);
    if split == Split::Val && cfg.val_is_holdout() {
        text.push_str(&format!(
            "  (no validation list: val is {:.0}% of train per class, chosen by split_seed {}, and train excludes it; `data.val_fraction` sets the share, and a class with few clips may give none)\n",
            cfg.val_fraction * 100.0,
            cfg.split_seed
        ));
    }
    text
}

/// Checks the splits `opts` names, handing each split's report to `emit` as soon as it is
/// done, and writes the bad-entry list. A split that cannot be read ends the check with an
/// error, after the list of the splits already checked is written.
///
/// # Errors
/// The config's errors; a split name that is none; a split that cannot be read; the list
/// that cannot be written.
pub fn data_check(
    opts: &DataCheck,
    progress: bool,
    mut emit: impl FnMut(&str),
) -> Result<CheckSummary> {
    let config = opts.config.as_path();
    let cfg = DatasetConfig::from_toml_file(config)?;
    let frames = clip_frames(config, opts.frames)?;
    if progress {
        tracing::info!(target: crate::util::PROGRESS, "checking {frames} frames per clip (--frames to change)");
    }
    let splits = match opts.split.as_str() {
        "all" => cfg.splits(),
        one => vec![one.parse::<Split>().map_err(Error::Input)?],
    };
    let workers = opts
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let bad_list = opts.bad_list.clone().unwrap_or_else(|| {
        config
            .parent()
            .unwrap_or(Path::new("."))
            .join("bad_entries.tsv")
    });
    let mut reports = Vec::new();
    for s in splits {
        let dataset = match cfg.load(s) {
            Ok(d) => d,
            Err(e) => {
                // The splits already checked keep their findings: write them before failing.
                if !reports.is_empty() {
                    let done = report::merge(&reports);
                    check::write_bad_list(&done, &bad_list)?;
                    let n = done.findings.len();
                    tracing::warn!(
                        target: crate::util::PROGRESS,
                        "{n} {} of the splits checked before listed in {}",
                        entries(n),
                        bad_list.display()
                    );
                }
                return Err(Error::Input(format!(
                    "reading the {s} split of {}: {e}",
                    config.display()
                )));
            }
        };
        let r = check::check(
            &dataset,
            frames,
            workers,
            &DecodeOptions::default(),
            progress,
        );
        emit(&split_text(&cfg, s, &dataset, &r));
        reports.push(r);
    }
    let report = report::merge(&reports);
    check::write_bad_list(&report, &bad_list)?;
    Ok(CheckSummary {
        report,
        bad_list,
        workers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(findings: usize) -> CheckSummary {
        let mut report = report::merge(&[]);
        report.entries = 4;
        report.clean = 4 - findings;
        report.seconds = 2.0;
        report.findings = (0..findings)
            .map(|i| check::Finding {
                verdict: check::Verdict::Unreadable,
                problem: crate::data::Problem {
                    path: format!("clip{i}.mp4").into(),
                    line: Some(i + 1),
                    reason: "no video stream".into(),
                },
            })
            .collect();
        CheckSummary {
            report,
            bad_list: "bad.tsv".into(),
            workers: 2,
        }
    }

    #[test]
    fn the_summary_counts_entries_and_speed() {
        assert_eq!(
            summary(1).to_string(),
            "3 of 4 entries clean; 1 listed in bad.tsv\n\
             decoded 4 clips in 2.0 s (2.0 clips/s on 2 worker(s))\n"
        );
    }

    #[test]
    fn strict_fails_only_when_something_is_listed() {
        assert_eq!(summary(0).strict_failure(), None);
        assert_eq!(
            summary(1).strict_failure().as_deref(),
            Some("strict: 1 bad entry found")
        );
        assert_eq!(
            summary(2).strict_failure().as_deref(),
            Some("strict: 2 bad entries found")
        );
    }

    #[test]
    fn the_clip_length_comes_from_the_flag_the_run_config_or_eight() {
        let dir = crate::util::tempdir().unwrap();
        let cfg = dir.path().join("run.toml");
        std::fs::write(&cfg, "[sampling]\nframes = 16\n").unwrap();
        assert_eq!(clip_frames(&cfg, Some(4)).unwrap(), 4);
        assert_eq!(clip_frames(&cfg, None).unwrap(), 16);
        std::fs::write(&cfg, "[data]\nformat = \"dfew\"\n").unwrap();
        assert_eq!(clip_frames(&cfg, None).unwrap(), 8);
        std::fs::write(&cfg, "[sampling]\nframes = 5000\n").unwrap();
        assert_eq!(
            clip_frames(&cfg, None).unwrap_err().to_string(),
            format!(
                "{}: field `sampling.frames`: 5000 is outside 1..=1024",
                cfg.display()
            )
        );
    }
}
