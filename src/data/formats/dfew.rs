//! DFEW (Dynamic Facial Expressions in the Wild; Jiang et al., ACM MM 2020): 16,372 movie
//! clips, of which 11,697 carry a single label, in 5 folds.
//!
//! `EmoLabel_DataSplit/train(single-labeled)/set_1.csv` (and `test(single-labeled)/`):
//! ```text
//! video_name,label
//! 1,5
//! 00002,3
//! ```
//! `video_name` is the clip number; its clip is `00001` (zero-padded to 5 digits): the frame
//! folder `Clip/clip_224x224/00001/` (frames `00001.jpg`, `1.jpg` or `00001_00001.jpg`
//! depending on the copy, hence every image of the folder in numeric order by default), or,
//! with `media = "videos"`, `00001.mp4` (or `.avi`, unpadded `1.mp4` ...) in `root`,
//! e.g. `Clip/original/`. Labels 1..7 are Happy, Sad, Neutral, Angry, Surprise, Disgust,
//! Fear, stored 0-based in that order. There is no validation list (see `config.rs`).

use std::path::PathBuf;

use super::{
    ClassSource, Files, FormatInfo, Label, Listing, RawEntry, VIDEO_EXTENSIONS, content_lines,
    find_annotations, locate, problem, read_text, split_file,
};
use crate::data::config::{DatasetConfig, Media, Split};
use crate::error::{Error, Result};

/// DFEW: 7 classes, 5 folds, frame folders by default.
pub(crate) const FORMAT: FormatInfo = FormatInfo {
    name: "dfew",
    folds: Some(5),
    media: Media::Frames,
    media_only: None,
    frame_template: None,
    flip_refused: None,
    classes: ClassSource::Fixed(&CLASSES),
    files: Files::Official {
        hint: "the `EmoLabel_DataSplit` folder (holding `train(single-labeled)/set_N.csv`)",
        fixed_splits: None,
    },
    read,
};

/// Class names of labels 1..7, in label order (FERV39k uses the same order).
pub(super) const CLASSES: [&str; 7] = [
    "Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear",
];

fn official(cfg: &DatasetConfig, split: Split) -> Result<PathBuf> {
    let fold = cfg.fold.expect("validated: dfew has a fold");
    let dir = find_annotations(
        cfg,
        &["", "EmoLabel_DataSplit"],
        |d| d.join("train(single-labeled)").is_dir(),
        "`train(single-labeled)` folder",
    )?;
    let sub = match split {
        Split::Test => "test(single-labeled)",
        _ => "train(single-labeled)",
    };
    Ok(dir.join(sub).join(format!("set_{fold}.csv")))
}

/// Reads the train or test csv of the configured fold.
fn read(cfg: &DatasetConfig, split: Split) -> Result<Listing> {
    let file = split_file(cfg, split, |s| official(cfg, s))?;
    let text = read_text(&file)?;
    let mut lines = content_lines(&text);
    match lines.next() {
        Some((_, h)) if header_ok(h) => {}
        Some((n, h)) => {
            return Err(Error::format(
                &file,
                format!("line {n}: expected the header `video_name,label`, found `{h}`"),
            ));
        }
        None => {
            return Err(Error::format(
                &file,
                "empty: expected the header `video_name,label` and one row per clip",
            ));
        }
    }
    let mut listing = Listing::default();
    for (n, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed = match fields.as_slice() {
            [name, label] => parse_row(name, label),
            _ => Err(format!(
                "expected `video_name,label`, found {} field(s): `{line}`",
                fields.len()
            )),
        };
        match parsed {
            Ok((clip, label)) => {
                let names = vec![format!("{clip:05}"), clip.to_string()];
                let (source, missing) = locate(
                    cfg,
                    std::slice::from_ref(&cfg.root),
                    &names,
                    &VIDEO_EXTENSIONS,
                );
                listing.entries.push(RawEntry {
                    source,
                    labels: vec![Label::Index(label - 1)],
                    origin: (file.clone(), n),
                    missing,
                });
            }
            Err(reason) => listing.problems.push(problem(&file, n, reason)),
        }
    }
    Ok(listing)
}

fn header_ok(line: &str) -> bool {
    let cols: Vec<String> = line
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    cols == ["video_name", "label"]
}

fn parse_row(name: &str, label: &str) -> Result<(u64, usize), String> {
    let clip = name
        .parse::<u64>()
        .map_err(|_| format!("video_name `{name}` is not a clip number (e.g. `00001` or `1`)"))?;
    let label = label
        .parse::<usize>()
        .ok()
        .filter(|l| (1..=CLASSES.len()).contains(l))
        .ok_or_else(|| {
            format!(
                "label `{label}` is outside DFEW's 1..=7 ({})",
                CLASSES
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{} {c}", i + 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    Ok((clip, label))
}
