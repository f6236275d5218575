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
//! class inside either (`abseiling/`, or with mmaction2's renaming `passing_American_football_in_game/`);
//! with `media = "frames"`, a frame folder of that name.
//!
//! Class index = position in the sorted label names of the train csv. Videos go missing
//! from YouTube every year, so missing clips are expected here; each is reported with its
//! line. [`Split::Test`] reads the val csv (what the community reports on); [`Split::Val`]
//! is a holdout of train.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::{
    Label, Listing, RawEntry, VIDEO_EXTENSIONS, content_lines, csv_fields, find_annotations,
    first_file, locate, problem, read_text, split_file,
};
use crate::data::config::{DatasetConfig, Split};
use crate::error::{Error, Result};

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

/// Reads a Kinetics csv: rows, and the lines that did not parse.
fn rows(file: &Path) -> Result<(Vec<Row>, Vec<crate::data::Problem>)> {
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
    for (n, line) in lines {
        let parsed = csv_fields(line).and_then(|f| {
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
                label: f[label].clone(),
                name: format!("{}_{start:06}_{end:06}", f[id]),
                split: split.map(|s| f[s].clone()).unwrap_or_default(),
            })
        });
        match parsed {
            Ok(r) => out.push(r),
            Err(reason) => problems.push(problem(file, n, reason)),
        }
    }
    Ok((out, problems))
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

/// Sorted label names of the train csv.
pub(crate) fn classes(cfg: &DatasetConfig) -> Result<Vec<String>> {
    let file = split_file(cfg, Split::Train, |s| official(cfg, s))?;
    let (rows, _) = rows(&file)?;
    let names: BTreeSet<String> = rows.into_iter().map(|r| r.label).collect();
    Ok(names.into_iter().collect())
}

/// mmaction2's `rename_classnames.sh`: spaces to underscores, no parentheses or quotes.
fn renamed(label: &str) -> String {
    label.replace(' ', "_").replace(['(', ')', '\'', '"'], "")
}

/// Reads the train csv ([`Split::Train`]) or the val csv ([`Split::Test`]).
pub(crate) fn read(cfg: &DatasetConfig, split: Split) -> Result<Listing> {
    let file = split_file(cfg, split, |s| official(cfg, s))?;
    let (rows, problems) = rows(&file)?;
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
                    for d in [b.clone(), b.join(&r.label), b.join(renamed(&r.label))] {
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
