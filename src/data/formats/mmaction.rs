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

use super::{
    ClassSource, Files, FormatInfo, Label, Listing, RawEntry, content_lines, locate_exact, problem,
    read_text,
};
use crate::data::Source;
use crate::data::config::{DatasetConfig, Media, Split};
use crate::error::{Error, Result};

/// `mmaction_video`: lists of videos.
pub(crate) const VIDEO: FormatInfo = FormatInfo {
    name: "mmaction_video",
    folds: None,
    media: Media::Videos,
    media_only: Some(
        "mmaction_video lists videos; use format = \"mmaction_rawframes\" for frame folders",
    ),
    frame_template: None,
    flip_refused: None,
    classes: ClassSource::Numbered(|cfg| max_label(cfg, Layout::Videos)),
    files: Files::Lists,
    read: |cfg, split| read(cfg, split, Layout::Videos),
};

/// `mmaction_rawframes`: lists of frame folders.
pub(crate) const RAWFRAMES: FormatInfo = FormatInfo {
    name: "mmaction_rawframes",
    folds: None,
    media: Media::Frames,
    media_only: Some(
        "mmaction_rawframes lists frame folders; use format = \"mmaction_video\" for videos",
    ),
    frame_template: Some("img_{:05}.jpg"),
    flip_refused: None,
    classes: ClassSource::Numbered(|cfg| max_label(cfg, Layout::Rawframes)),
    files: Files::Lists,
    read: |cfg, split| read(cfg, split, Layout::Rawframes),
};

/// Which of the two list layouts a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `path label [label ...]`.
    Videos,
    /// `frame_dir total_frames label [label ...]`.
    Rawframes,
}

impl Layout {
    /// The fields before the labels.
    fn leading(self) -> usize {
        match self {
            Layout::Videos => 1,
            Layout::Rawframes => 2,
        }
    }

    /// A line's shape, for messages.
    fn shape(self) -> &'static str {
        match self {
            Layout::Videos => "`path label [label ...]`",
            Layout::Rawframes => "`frame_dir total_frames label [label ...]`",
        }
    }
}

/// Reads the list of `split` (`train`, `val` or `test` of the config).
fn read(cfg: &DatasetConfig, split: Split, layout: Layout) -> Result<Listing> {
    let file = super::split_file(cfg, split, |s| {
        Err(Error::Input(format!(
            "{} has no {s} list; set `{s}` in [data]",
            cfg.format
        )))
    })?;
    let text = read_text(&file)?;
    let mut listing = Listing::default();
    for (n, line) in content_lines(&text) {
        match parse_line(cfg, &file, line, layout) {
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
fn max_label(cfg: &DatasetConfig, layout: Layout) -> Result<Option<usize>> {
    let mut max = None;
    for file in [&cfg.train, &cfg.val, &cfg.test].into_iter().flatten() {
        let text = read_text(file)?;
        for (_, line) in content_lines(&text) {
            for label in line.split_whitespace().skip(layout.leading()) {
                if let Ok(l) = label.parse::<usize>() {
                    max = max.max(Some(l));
                }
            }
        }
    }
    Ok(max)
}

fn parse_line(
    cfg: &DatasetConfig,
    file: &Path,
    line: &str,
    layout: Layout,
) -> Result<RawEntry, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let shape = layout.shape();
    let need = layout.leading() + 1;
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
    let (source, missing) = if layout == Layout::Rawframes {
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
