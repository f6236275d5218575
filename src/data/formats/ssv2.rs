//! Something-Something v2 (Goyal et al., ICCV 2017): 220,847 clips of 174 template classes.
//!
//! `labels.json` maps each template to its index (as a string):
//! ```text
//! {"Approaching something with your camera": "0", "Attaching something to something": "1", ...}
//! ```
//! `train.json` and `validation.json` list the clips:
//! ```text
//! [{"id": "78687", "label": "holding potato next to vicks vaporub bottle",
//!   "template": "Holding [something] next to [something]", "placeholders": ["potato", "..."]},
//!  ...]
//! ```
//! The class is the template with its brackets removed (`Holding something next to
//! something`), looked up in `labels.json`; the clip is `<id>.webm` in `root` (an `.mp4`
//! conversion is also found), or with `media = "frames"` the folder `<id>/`.
//! Indices follow mmaction2 (`tools/data/parse_file_list.py`, `parse_sthv2_splits`:
//! `label = int(class_mapping[template])`): they are used as they are, so a `labels.json` of
//! a class subset with non-contiguous indices is read as numbered, with a head of max + 1
//! outputs (the unused ones named `(unused N)`); the class names are `labels.json`'s keys,
//! which match mmaction2's `label_map.txt` line for line.
//! [`Split::Test`] reads `validation.json` (the test set has no public labels);
//! [`Split::Val`] is a holdout of train. Classes name directions ("from left to right"), so
//! this dataset is never flipped horizontally.

use std::path::PathBuf;

use serde_json::Value;

use super::{
    ClassSource, Files, FormatInfo, Label, Listing, RawEntry, find_annotations, first_file,
    json_array_items, locate, problem, read_text, split_file,
};
use crate::data::config::{DatasetConfig, Media, Split};
use crate::error::{Error, Result};

/// Something-Something v2: classes from `labels.json`, never flipped.
pub(crate) const FORMAT: FormatInfo = FormatInfo {
    name: "ssv2",
    folds: None,
    media: Media::Videos,
    media_only: None,
    frame_template: None,
    flip_refused: Some(
        "Something-Something v2 classes name directions (\"Pushing something from \
         left to right\"): a mirrored clip shows another class, so flipping is refused",
    ),
    classes: ClassSource::Read(classes),
    files: Files::Official {
        hint: "the folder holding `labels.json`, `train.json` and `validation.json`",
        fixed_splits: None,
    },
    read,
};

const CANDIDATES: [&str; 3] = ["", "labels", "annotations"];

/// Largest class index `labels.json` may use (SSv2 has 174 classes).
const MAX_CLASSES: usize = 100_000;

fn labels_dir(cfg: &DatasetConfig) -> Result<PathBuf> {
    find_annotations(
        cfg,
        &CANDIDATES,
        |d| first_file(d, &["labels.json"]).is_some(),
        "`labels.json`",
    )
}

/// Class names in index order, from `labels.json`.
fn classes(cfg: &DatasetConfig) -> Result<Vec<String>> {
    let file = labels_dir(cfg)?.join("labels.json");
    let text = read_text(&file)?;
    let map: serde_json::Map<String, Value> = serde_json::from_str(&text).map_err(|e| {
        Error::format(
            &file,
            format!(
                "line {}: expected an object mapping templates to indices: {e}",
                e.line()
            ),
        )
    })?;
    let mut indexed = Vec::with_capacity(map.len());
    for (template, index) in &map {
        let i = match index {
            Value::String(s) => s.trim().parse::<usize>().ok(),
            Value::Number(n) => n.as_u64().map(|n| n as usize),
            _ => None,
        };
        match i {
            Some(i) if i < MAX_CLASSES => indexed.push((i, template)),
            _ => {
                return Err(Error::format(
                    &file,
                    format!(
                        "`{template}` has index {index}; expected a whole number below \
                         {MAX_CLASSES} (as a string, like \"12\", or a number)"
                    ),
                ));
            }
        }
    }
    // mmaction2 reads `int(class_mapping[template])`: the indices are the labels as they
    // are, so a class subset keeps its numbers and the head has max + 1 outputs.
    let len = indexed.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
    let mut names: Vec<Option<String>> = vec![None; len];
    for (i, template) in indexed {
        if let Some(other) = names[i].replace(template.clone()) {
            return Err(Error::format(
                &file,
                format!("`{template}` and `{other}` share index {i}"),
            ));
        }
    }
    let unused = names.iter().filter(|n| n.is_none()).count();
    if unused > 0 {
        tracing::warn!(
            "{}: {} classes numbered up to {}; {unused} index(es) name no class (a class \
             subset): the head keeps their outputs, named `(unused N)`",
            file.display(),
            len - unused,
            len - 1
        );
    }
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, n)| n.unwrap_or_else(|| format!("(unused {i})")))
        .collect())
}

/// Reads `train.json` ([`Split::Train`]) or `validation.json` ([`Split::Test`]).
fn read(cfg: &DatasetConfig, split: Split) -> Result<Listing> {
    let file = split_file(cfg, split, |s| {
        let name = match s {
            Split::Test => "validation.json",
            _ => "train.json",
        };
        Ok(labels_dir(cfg)?.join(name))
    })?;
    let text = read_text(&file)?;
    let items = json_array_items(&file, &text)?;
    let mut listing = Listing::default();
    for (k, (line, item)) in items.into_iter().enumerate() {
        let id = match item.get("id") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let template = item.get("template").and_then(Value::as_str);
        let (Some(id), Some(template)) = (id, template) else {
            listing.problems.push(problem(
                &file,
                line,
                format!(
                    "item {} needs a string `id` and a string `template`, found {}",
                    k + 1,
                    truncate(&item.to_string(), 120)
                ),
            ));
            continue;
        };
        let class = template.replace(['[', ']'], "");
        let (source, missing) = locate(
            cfg,
            std::slice::from_ref(&cfg.root),
            &[id],
            &["webm", "mp4"],
        );
        listing.entries.push(RawEntry {
            source,
            labels: vec![Label::Name(class)],
            origin: (file.clone(), line),
            missing,
        });
    }
    Ok(listing)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}
