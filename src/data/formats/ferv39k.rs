//! FERV39k (Wang et al., CVPR 2022): 38,935 clips of 22 scenes, 7 classes; 31,088 train and
//! 7,847 test clips, no validation split.
//!
//! `4_setups/All_scenes/train_All.csv` (and `test_All.csv`), no header, one space between
//! the clip (scene / emotion / number) and its label:
//! ```text
//! Action/Sad/0010 Sad
//! Talk-Show/Happy/0412 Happy
//! ```
//! The clip is the frame folder `2_ClipsforFaceCrop/Action/Sad/0010/` (frames `00.jpg` ...,
//! read in numeric order), or with `media = "videos"` `Action/Sad/0010.mp4` (any usual
//! extension) under `root`. The default class order is DFEW's (Happy, Sad, Neutral, Angry,
//! Surprise, Disgust, Fear), as MAE-DFER and DFER-CLIP use; `classes` can reorder it.

use std::path::PathBuf;

use super::{
    ClassSource, Files, FormatInfo, Label, Listing, RawEntry, VIDEO_EXTENSIONS, content_lines,
    find_annotations, first_file, locate, problem, read_text, split_file,
};
use crate::data::config::{DatasetConfig, Media, Split};
use crate::error::Result;

/// FERV39k: 7 classes, one split, frame folders by default.
pub(crate) const FORMAT: FormatInfo = FormatInfo {
    name: "ferv39k",
    folds: None,
    media: Media::Frames,
    media_only: None,
    frame_template: None,
    flip_refused: None,
    classes: ClassSource::Fixed(&super::dfew::CLASSES),
    files: Files::Official {
        hint: "the `4_setups/All_scenes` folder (holding `train_All.csv`)",
        fixed_splits: None,
    },
    read,
};

fn official(cfg: &DatasetConfig, split: Split) -> Result<PathBuf> {
    let name = match split {
        Split::Test => "test_All.csv",
        _ => "train_All.csv",
    };
    let dir = find_annotations(
        cfg,
        &["", "All_scenes", "4_setups/All_scenes"],
        |d| first_file(d, &[name]).is_some(),
        &format!("`{name}`"),
    )?;
    Ok(dir.join(name))
}

/// Reads `train_All.csv` or `test_All.csv`.
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
                    "expected `Scene/Emotion/NNNN Emotion` (two fields separated by a space), \
                     found {} field(s): `{line}`",
                    fields.len()
                ),
            ));
            continue;
        };
        let (source, missing) = locate(
            cfg,
            std::slice::from_ref(&cfg.root),
            &[clip.to_string()],
            &VIDEO_EXTENSIONS,
        );
        listing.entries.push(RawEntry {
            source,
            labels: vec![Label::Name(label.to_string())],
            origin: (file.clone(), n),
            missing,
        });
    }
    Ok(listing)
}
