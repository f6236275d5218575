//! mmaction2's list files, the layout most video codebases prepare data into.
//!
//! Video list (`format = "mmaction_video"`), paths relative to `root`, one or more integer
//! labels (several = multi-label):
//! ```text
//! some/path/000.mp4 1
//! some/path/001.mp4 1 4 7
//! ```
//! Raw-frame list (`format = "mmaction_rawframes"`): frame folder, frame count, labels;
//! frames named by `filename_tmpl` (default `img_{:05}.jpg`) from `start_index` (default 1):
//! ```text
//! some/path/000 300 1
//! ```
//! Whitespace separates fields (so paths cannot contain spaces, as in mmaction2); blank
//! lines and `#` comments are skipped. Labels index the class map directly.

use std::path::Path;

use super::{Label, Listing, RawEntry, content_lines, locate_exact, problem, read_text};
use crate::data::Source;
use crate::data::config::{DatasetConfig, Format, Split};
use crate::error::{Error, Result};

/// Reads the list of `split` (`train`, `val` or `test` of the config).
pub(crate) fn read(cfg: &DatasetConfig, split: Split) -> Result<Listing> {
    let file = super::split_file(cfg, split, |s| {
        Err(Error::Input(format!(
            "{} has no {s} list; set `{s}` in [data]",
            cfg.format
        )))
    })?;
    let text = read_text(&file)?;
    let mut listing = Listing::default();
    for (n, line) in content_lines(&text) {
        match parse_line(cfg, &file, line) {
            Ok(entry) => listing.entries.push(RawEntry {
                origin: (file.clone(), n),
                ..entry
            }),
            Err(reason) => listing.problems.push(problem(&file, n, reason)),
        }
    }
    Ok(listing)
}

/// The largest label of the configured lists (lines that do not parse are ignored here;
/// `read` reports them).
pub(crate) fn max_label(cfg: &DatasetConfig) -> Result<Option<usize>> {
    let skip = match cfg.format {
        Format::MmactionRawframes => 2,
        _ => 1,
    };
    let mut max = None;
    for file in [&cfg.train, &cfg.val, &cfg.test].into_iter().flatten() {
        let text = read_text(file)?;
        for (_, line) in content_lines(&text) {
            for label in line.split_whitespace().skip(skip) {
                if let Ok(l) = label.parse::<usize>() {
                    max = max.max(Some(l));
                }
            }
        }
    }
    Ok(max)
}

fn parse_line(cfg: &DatasetConfig, file: &Path, line: &str) -> Result<RawEntry, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let frames = cfg.format == Format::MmactionRawframes;
    let shape = if frames {
        "`frame_dir total_frames label [label ...]`"
    } else {
        "`path label [label ...]`"
    };
    let need = if frames { 3 } else { 2 };
    if fields.len() < need {
        return Err(format!(
            "expected {shape}, found {} field(s): `{line}`",
            fields.len()
        ));
    }
    let labels = fields[need - 1..]
        .iter()
        .map(|l| {
            l.parse::<usize>().map(Label::Index).map_err(|_| {
                format!("label `{l}` is not a non-negative integer (expected {shape})")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let path = cfg.root.join(fields[0]);
    let (source, missing) = if frames {
        let count = fields[1].parse::<usize>().map_err(|_| {
            format!(
                "total_frames `{}` is not a non-negative integer (expected {shape})",
                fields[1]
            )
        })?;
        let missing = (!path.is_dir()).then(|| super::absent_frame_folder(&path));
        (
            Source::Frames {
                dir: path,
                template: cfg.frame_template(),
                start: cfg.frame_start(),
                count: Some(count),
            },
            missing,
        )
    } else {
        locate_exact(cfg, path)
    };
    Ok(RawEntry {
        source,
        labels,
        origin: (file.to_path_buf(), 0),
        missing,
    })
}
