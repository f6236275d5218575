//! MAFW (Liu et al., ACM MM 2022): 10,045 clips; the single-expression set has 9,172 clips
//! of 11 classes in 5 folds.
//!
//! `single/no_caption/set_1/train.txt` (and `test.txt`) — the parent folder is called
//! `Train & Test Set/` in the distribution, renamed `anno/` or `split/` by some repos:
//! ```text
//! 03747.mp4 anger
//! 00012.mp4 helplessness
//! ```
//! The clip is `data/clips/03747.mp4` under `root`, or with `media = "frames"` the folder
//! `data/frames/03747/`. Class order, as in the official code and MAE-DFER: anger, disgust,
//! fear, happiness, neutral, sadness, surprise, contempt, anxiety, helplessness,
//! disappointment.

use std::path::PathBuf;

use super::{
    ClassSource, Files, FormatInfo, Label, Listing, RawEntry, content_lines, find_annotations,
    locate_exact, problem, read_text, split_file,
};
use crate::data::config::{DatasetConfig, Media, Split};
use crate::error::Result;

/// MAFW: 11 classes, 5 folds, videos by default.
pub(crate) const FORMAT: FormatInfo = FormatInfo {
    name: "mafw",
    folds: Some(5),
    media: Media::Videos,
    media_only: None,
    frame_template: None,
    flip_refused: None,
    classes: ClassSource::Fixed(&CLASSES),
    files: Files::Official {
        hint: "the `single/no_caption` folder of MAFW's split files (holding `set_N/train.txt`)",
        fixed_splits: None,
    },
    read,
};

/// The official class order.
const CLASSES: [&str; 11] = [
    "anger",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
    "contempt",
    "anxiety",
    "helplessness",
    "disappointment",
];

fn official(cfg: &DatasetConfig, split: Split) -> Result<PathBuf> {
    let fold = cfg.fold.expect("validated: mafw has a fold");
    let set = format!("set_{fold}");
    let dir = find_annotations(
        cfg,
        &[
            "",
            "no_caption",
            "single/no_caption",
            "anno/single/no_caption",
            "Train & Test Set/single/no_caption",
            "Train_Test_Set/single/no_caption",
            "split/single/no_caption",
        ],
        |d| d.join(&set).is_dir(),
        &format!("`{set}` folder"),
    )?;
    let name = match split {
        Split::Test => "test.txt",
        _ => "train.txt",
    };
    Ok(dir.join(set).join(name))
}

/// Reads `set_N/train.txt` or `set_N/test.txt`.
fn read(cfg: &DatasetConfig, split: Split) -> Result<Listing> {
    let file = split_file(cfg, split, |s| official(cfg, s))?;
    let text = read_text(&file)?;
    let mut listing = Listing::default();
    for (n, line) in content_lines(&text) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [clip, label] = fields.as_slice() else {
            listing.problems.push(problem(
                &file,
                n,
                format!(
                    "expected `NNNNN.mp4 label` (two fields separated by a space), \
                     found {} field(s): `{line}`",
                    fields.len()
                ),
            ));
            continue;
        };
        let (source, missing) = locate_exact(cfg, cfg.root.join(clip));
        listing.entries.push(RawEntry {
            source,
            labels: vec![Label::Name(label.to_string())],
            origin: (file.clone(), n),
            missing,
        });
    }
    Ok(listing)
}
