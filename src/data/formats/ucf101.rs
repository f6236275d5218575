//! UCF101 (Soomro et al. 2012): 13,320 clips of 101 actions, 3 official train/test splits.
//!
//! `ucfTrainTestlist/classInd.txt` numbers the classes from 1:
//! ```text
//! 1 ApplyEyeMakeup
//! 2 ApplyLipstick
//! ```
//! `trainlist01.txt` gives clip and label, `testlist01.txt` only the clip (its class is its
//! folder); both have Windows line ends:
//! ```text
//! ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1
//! ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi
//! ```
//! The clip is `root/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi`, or with
//! `media = "frames"` the folder `root/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01/` (mmaction2's
//! raw-frame layout). A label that names another class than the clip's folder is reported:
//! such a line is corrupt. Folders match class names without regard to case (the clips of
//! `HandstandPushups` are named `v_HandStandPushups_...`).

use std::path::PathBuf;

use super::{
    ClassSource, Files, FormatInfo, Label, Listing, RawEntry, content_lines, find_annotations,
    first_file, locate_exact, problem, read_text, split_file,
};
use crate::data::config::{DatasetConfig, Media, Split};
use crate::error::{Error, Result};

/// UCF101: classes from `classInd.txt`, 3 splits.
pub(crate) const FORMAT: FormatInfo = FormatInfo {
    name: "ucf101",
    folds: Some(3),
    media: Media::Videos,
    media_only: None,
    frame_template: None,
    flip_refused: None,
    classes: ClassSource::Read(classes),
    files: Files::Official {
        hint: "the `ucfTrainTestlist` folder (holding `classInd.txt`)",
        fixed_splits: None,
    },
    read,
};

fn list_dir(cfg: &DatasetConfig) -> Result<PathBuf> {
    find_annotations(
        cfg,
        &["", "ucfTrainTestlist"],
        |d| first_file(d, &["classInd.txt"]).is_some(),
        "`classInd.txt`",
    )
}

/// Class names in label order, from `classInd.txt`; its indices must run 1, 2, 3 ...
fn classes(cfg: &DatasetConfig) -> Result<Vec<String>> {
    let file = list_dir(cfg)?.join("classInd.txt");
    let text = read_text(&file)?;
    let mut names = Vec::new();
    for (n, line) in content_lines(&text) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let expected = names.len() + 1;
        match fields.as_slice() {
            [index, name] if index.parse::<usize>() == Ok(expected) => names.push(name.to_string()),
            _ => {
                return Err(Error::format(
                    &file,
                    format!("line {n}: expected `{expected} ClassName`, found `{line}`"),
                ));
            }
        }
    }
    if names.is_empty() {
        return Err(Error::format(
            &file,
            "no classes: expected `1 ClassName` lines",
        ));
    }
    Ok(names)
}

/// Reads `trainlist0N.txt` or `testlist0N.txt` of the configured fold.
fn read(cfg: &DatasetConfig, split: Split) -> Result<Listing> {
    let fold = cfg.fold.expect("validated: ucf101 has a fold");
    let file = split_file(cfg, split, |s| {
        let kind = if s == Split::Test { "test" } else { "train" };
        Ok(list_dir(cfg)?.join(format!("{kind}list{fold:02}.txt")))
    })?;
    let own = classes(cfg)?;
    let text = read_text(&file)?;
    let mut listing = Listing::default();
    for (n, line) in content_lines(&text) {
        match parse_line(line, &own) {
            Ok((clip, label)) => {
                let (source, missing) = locate_exact(cfg, cfg.root.join(clip));
                listing.entries.push(RawEntry {
                    source,
                    labels: vec![label],
                    origin: (file.clone(), n),
                    missing,
                });
            }
            Err(reason) => listing.problems.push(problem(&file, n, reason)),
        }
    }
    Ok(listing)
}

fn parse_line<'a>(line: &'a str, own: &[String]) -> Result<(&'a str, Label), String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (clip, label) = match fields.as_slice() {
        [clip] => (*clip, None),
        [clip, label] => (*clip, Some(*label)),
        _ => {
            return Err(format!(
                "expected `Class/v_Class_gNN_cNN.avi [label]`, found {} fields: `{line}`",
                fields.len()
            ));
        }
    };
    let folder = clip.split_once('/').map(|(f, _)| f);
    let by_folder = folder.and_then(|f| own.iter().position(|c| c.eq_ignore_ascii_case(f)));
    match (label, by_folder) {
        (Some(l), _) => {
            let index = l
                .parse::<usize>()
                .ok()
                .filter(|i| (1..=own.len()).contains(i))
                .ok_or_else(|| {
                    format!(
                        "label `{l}` is outside classInd.txt's 1..={} ({} classes)",
                        own.len(),
                        own.len()
                    )
                })?
                - 1;
            if let (Some(f), Some(b)) = (folder, by_folder)
                && b != index
            {
                return Err(format!(
                    "label {l} is {}, but the clip is in the folder `{f}`",
                    own[index]
                ));
            }
            Ok((clip, Label::Index(index)))
        }
        (None, Some(b)) => Ok((clip, Label::Index(b))),
        (None, None) => Err(match folder {
            Some(f) => {
                format!("the folder `{f}` is not a class of classInd.txt, and no label is given")
            }
            None => format!("`{clip}` has no class folder and no label is given"),
        }),
    }
}
