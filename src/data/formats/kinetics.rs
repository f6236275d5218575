//! Kinetics-400/600/700 (Kay et al. 2017; Carreira et al. 2018, 2019): YouTube clips of about
//! 10 s, one of 400/600/700 action classes.
//!
//! `kinetics_train.csv` and `kinetics_val.csv` (the cvdfoundation copies call them
//! `train.csv` and `validate.csv`), a header naming the columns, then one clip per row;
//! extra columns (`is_cc`) are ignored and labels with commas are quoted:
//! ```text
//! label,youtube_id,time_start,time_end,split
//! abseiling,0347ZoDXyP0,14,24,train
//! "passing American football (in game)",-Q2FqqXzGho,5,15,train
//! ```
//! The clip file is `{youtube_id}_{time_start:06}_{time_end:06}.mp4` (or `.mkv`, `.webm`,
//! ...), looked for in `root`, `root/<split>` (the csv's split column) and in a folder per
//! class inside either; with `media = "frames"`, a frame folder of that name.
//!
//! # Class map: mmaction2's conventions
//!
//! Checked against mmaction2's own code (`tools/data/parse_file_list.py`,
//! `parse_kinetics_splits`; `tools/data/kinetics/rename_classnames.sh`;
//! `tools/data/kinetics/label_map_k{400,600,700}.txt`):
//! - A class name is the csv's label with every `"` removed (`convert_label`); the names
//!   keep their spaces, parentheses and apostrophes, as in `label_map_k400.txt`
//!   (`passing American football (in game)`, `massaging person's head`).
//! - Class index = position in the sorted set of the train csv's labels, with spaces made
//!   underscores for the sort (`sorted({convert_label(row[0]) for row in csv_reader})`, in
//!   code-point order). For Kinetics-400/600/700 this is the order of the label-map files
//!   (checked: sorting with spaces or underscores gives the same order for all three).
//! - Every row of the train csv counts, including one whose other fields are malformed: the
//!   class set does not depend on which rows parse, so one bad row cannot shift every index.
//! - Class folders: `rename_classnames.sh` turns spaces into underscores (`tr " " "_"`) and
//!   keeps parentheses and apostrophes, so `passing_American_football_(in_game)` and
//!   `massaging_person's_head` are looked for, besides the label as written and the older
//!   variant without parentheses and quotes (`passing_American_football_in_game`).
//!
//! Where this differs from the official files: the official csv quotes names with commas
//! (csv quoting, removed by any csv reader) and names classes with spaces; the folder names
//! are mmaction2's, not the official downloader's (which keeps spaces).
//!
//! Videos go missing from YouTube every year, so missing clips are expected here; each is
//! reported with its line. [`Split::Test`] reads the val csv (what the community reports
//! on); [`Split::Val`] is a holdout of train.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::{
    ClassSource, Files, FormatInfo, Label, Listing, RawEntry, VIDEO_EXTENSIONS, content_lines,
    csv_fields, find_annotations, first_file, locate, problem, read_text, split_file,
};
use crate::data::config::{DatasetConfig, Media, Split};
use crate::error::{Error, Result};

/// Kinetics: classes from the train csv, one split.
pub(crate) const FORMAT: FormatInfo = FormatInfo {
    name: "kinetics",
    folds: None,
    media: Media::Videos,
    media_only: None,
    frame_template: None,
    flip_refused: None,
    classes: ClassSource::Read(classes),
    files: Files::Official {
        hint: "the folder holding `kinetics_train.csv` and `kinetics_val.csv` \
         (or `train.csv` and `validate.csv`)",
        fixed_splits: None,
    },
    read,
};

const TRAIN_NAMES: [&str; 2] = ["kinetics_train.csv", "train.csv"];
const VAL_NAMES: [&str; 3] = ["kinetics_val.csv", "validate.csv", "val.csv"];

fn official(cfg: &DatasetConfig, split: Split) -> Result<PathBuf> {
    let names: &[&str] = match split {
        Split::Test => &VAL_NAMES,
        _ => &TRAIN_NAMES,
    };
    let dir = find_annotations(
        cfg,
        &["", "annotations"],
        |d| first_file(d, names).is_some(),
        &names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(" or "),
    )?;
    Ok(first_file(&dir, names).expect("found above"))
}

/// One parsed row.
struct Row {
    line: usize,
    label: String,
    name: String,
    split: String,
}

/// mmaction2's `convert_label(s, keep_whitespaces=True)`: the label without `"`.
fn class_name(label: &str) -> String {
    label.replace('"', "").trim().to_string()
}

/// Reads a Kinetics csv: rows, the lines that did not parse, and the class name of every
/// row that has one (malformed rows included, as mmaction2 reads them).
fn rows(file: &Path) -> Result<(Vec<Row>, Vec<crate::data::Problem>, Vec<String>)> {
    let text = read_text(file)?;
    let mut lines = content_lines(&text);
    let Some((hn, header)) = lines.next() else {
        return Err(Error::format(
            file,
            "empty: expected the header `label,youtube_id,time_start,time_end,split`",
        ));
    };
    let header = csv_fields(header).map_err(|e| Error::format(file, format!("line {hn}: {e}")))?;
    let col = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(label), Some(id), Some(start), Some(end)) = (
        col("label"),
        col("youtube_id"),
        col("time_start"),
        col("time_end"),
    ) else {
        return Err(Error::format(
            file,
            format!(
                "line {hn}: expected a header with the columns label, youtube_id, time_start, \
                 time_end (and split), found `{}`",
                header.join(",")
            ),
        ));
    };
    let split = col("split");
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut labels = Vec::new();
    for (n, line) in lines {
        let fields = csv_fields(line);
        if let Some(name) = fields
            .as_ref()
            .ok()
            .and_then(|f| f.get(label))
            .map(|l| class_name(l))
            .filter(|l| !l.is_empty())
        {
            labels.push(name);
        }
        let parsed = fields.and_then(|f| {
            if f.len() < header.len() {
                return Err(format!(
                    "expected {} comma-separated fields ({}), found {}: `{line}`",
                    header.len(),
                    header.join(","),
                    f.len()
                ));
            }
            if f[label].is_empty() || f[id].is_empty() {
                return Err(format!("empty label or youtube_id: `{line}`"));
            }
            let start = seconds(&f[start], "time_start")?;
            let end = seconds(&f[end], "time_end")?;
            Ok(Row {
                line: n,
                label: class_name(&f[label]),
                name: format!("{}_{start:06}_{end:06}", f[id]),
                split: split.map(|s| f[s].clone()).unwrap_or_default(),
            })
        });
        match parsed {
            Ok(r) => out.push(r),
            Err(reason) => problems.push(problem(file, n, reason)),
        }
    }
    Ok((out, problems, labels))
}

/// A time in whole seconds (`14` or `14.0`; the clip names use integers).
fn seconds(s: &str, column: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .ok()
        .or_else(|| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.fract() == 0.0 && *v >= 0.0 && *v < 1e12)
                .map(|v| v as u64)
        })
        .ok_or_else(|| format!("{column} `{s}` is not a whole number of seconds"))
}

/// The train csv's class names (every row's), in mmaction2's order: sorted with spaces
/// read as underscores.
fn classes(cfg: &DatasetConfig) -> Result<Vec<String>> {
    let file = split_file(cfg, Split::Train, |s| official(cfg, s))?;
    let (_, _, labels) = rows(&file)?;
    let names: BTreeSet<String> = labels.into_iter().collect();
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort_by_key(|n| underscored(n));
    Ok(names)
}

/// mmaction2's class folder name (`rename_classnames.sh`: `tr " " "_"`): spaces to
/// underscores, parentheses and apostrophes kept.
fn underscored(label: &str) -> String {
    label.replace(' ', "_")
}

/// An older renaming (some download scripts): also without parentheses and quotes.
fn stripped(label: &str) -> String {
    underscored(label).replace(['(', ')', '\'', '"'], "")
}

/// Reads the train csv ([`Split::Train`]) or the val csv ([`Split::Test`]).
fn read(cfg: &DatasetConfig, split: Split) -> Result<Listing> {
    let file = split_file(cfg, split, |s| official(cfg, s))?;
    let (rows, problems, _) = rows(&file)?;
    let mut listing = Listing {
        entries: Vec::with_capacity(rows.len()),
        problems,
    };
    // Folder candidates repeat across rows of a class; build each list once.
    let mut dirs_of: HashMap<(String, String), Vec<PathBuf>> = HashMap::new();
    for r in rows {
        let dirs = dirs_of
            .entry((r.split.clone(), r.label.clone()))
            .or_insert_with(|| {
                let mut bases = vec![cfg.root.clone()];
                if !r.split.is_empty() {
                    bases.push(cfg.root.join(&r.split));
                }
                let mut dirs = Vec::new();
                for b in bases {
                    for d in [
                        b.clone(),
                        b.join(&r.label),
                        b.join(underscored(&r.label)),
                        b.join(stripped(&r.label)),
                    ] {
                        if !dirs.contains(&d) {
                            dirs.push(d);
                        }
                    }
                }
                dirs
            });
        let (source, missing) = locate(cfg, dirs, &[r.name], &VIDEO_EXTENSIONS);
        listing.entries.push(RawEntry {
            source,
            labels: vec![Label::Name(r.label)],
            origin: (file.clone(), r.line),
            missing,
        });
    }
    Ok(listing)
}
