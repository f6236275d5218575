//! Annotation readers: the files datasets are distributed with -> entries with labels.
//!
//! One file per layout, each opening with a sample of the files it reads and declaring the
//! format's facts in one [`FormatInfo`] (name, folds, media, flip, class list, what
//! `annotations` is, the reader): `mmaction.rs` (video and raw-frame lists), `dfew.rs`,
//! `ferv39k.rs`, `mafw.rs`, `kinetics.rs`, `ssv2.rs`, `ucf101.rs`, `hmdb51.rs`. [`FORMATS`]
//! lists them, and everything else looks formats up there: a new format is its file, its
//! `mod` line and its line in [`FORMATS`].
//!
//! A reader turns one split's file into a [`Listing`]: entries whose labels are still raw
//! ([`Label`]: an index into the dataset's own class list, or a name) and whose media may be
//! missing, plus the lines it could not parse. This module then resolves labels against the
//! run's [`ClassMap`] ([`resolve`]) and draws the validation holdout ([`holdout`]);
//! `config.rs` puts the pieces together.
//!
//! Contract of every reader: a file that cannot be read, or whose header or structure is
//! wrong as a whole, is an `Err` naming the file (and line); a line that is wrong is a
//! [`Problem`] naming file, 1-based line and what was expected; a clip whose video or frame
//! folder does not exist keeps its entry with `missing` set (checked with one `stat` per
//! candidate path, so the holdout does not depend on which files happen to be present).

pub(crate) mod dfew;
pub(crate) mod ferv39k;
pub(crate) mod hmdb51;
pub(crate) mod kinetics;
pub(crate) mod mafw;
pub(crate) mod mmaction;
pub(crate) mod ssv2;
pub(crate) mod ucf101;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::config::{DatasetConfig, Media, Split};
use super::{ClassMap, Entry, Problem, Source};
use crate::error::{Error, Result};

/// Every format vidapter reads, in the order error messages name them.
pub(crate) const FORMATS: &[&FormatInfo] = &[
    &mmaction::VIDEO,
    &mmaction::RAWFRAMES,
    &dfew::FORMAT,
    &ferv39k::FORMAT,
    &mafw::FORMAT,
    &kinetics::FORMAT,
    &ssv2::FORMAT,
    &ucf101::FORMAT,
    &hmdb51::FORMAT,
];

/// The names of [`FORMATS`], in order: what an unknown `format` is told to choose from.
pub(crate) const NAMES: [&str; FORMATS.len()] = {
    let mut names = [""; FORMATS.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = FORMATS[i].name;
        i += 1;
    }
    names
};

/// Everything vidapter knows about one annotation layout: what `[data]` accepts for it and
/// how its files are read.
pub(crate) struct FormatInfo {
    /// The name used in TOML (`format = "dfew"`).
    pub name: &'static str,
    /// The number of official folds, if the dataset has several (`fold` is then required).
    pub folds: Option<usize>,
    /// What the clips are when `media` is not given: the form the dataset ships in.
    pub media: Media,
    /// Set when the format reads only [`media`](Self::media): why the other is refused.
    pub media_only: Option<&'static str>,
    /// Frame-file template of frame folders when `filename_tmpl` is not given (`None`:
    /// every image of the folder in numeric order).
    pub frame_template: Option<&'static str>,
    /// Set when mirroring a clip changes its class: why `flip = true` is refused (flips are
    /// then off by default; otherwise on).
    pub flip_refused: Option<&'static str>,
    /// Where the class map comes from when `classes` does not say.
    pub classes: ClassSource,
    /// Which files hold the splits.
    pub files: Files,
    /// Reads the file of a split (for [`Split::Val`]: the `val` list; holdouts are the
    /// caller's).
    pub read: fn(&DatasetConfig, Split) -> Result<Listing>,
}

/// Where a format's class list comes from.
pub(crate) enum ClassSource {
    /// Labels are bare integers indexing the class map (mmaction2); without `classes`, the
    /// map is `"0".."K-1"` with K one more than the largest label this finds in the
    /// configured lists.
    Numbered(fn(&DatasetConfig) -> Result<Option<usize>>),
    /// The dataset's fixed list, in its own order.
    Fixed(&'static [&'static str]),
    /// A list read from the annotation files.
    Read(fn(&DatasetConfig) -> Result<Vec<String>>),
}

/// Which files hold a format's splits.
pub(crate) enum Files {
    /// List files named by `train` (required), `val` and `test`; `annotations` is refused,
    /// and without `test` there is no test split.
    Lists,
    /// The official split files, found under `annotations`.
    Official {
        /// What `annotations` should point at, for error messages.
        hint: &'static str,
        /// Set when one list file cannot stand for a split (`train`, `val` and `test` are
        /// then refused): why. Otherwise each replaces the official file of its split.
        fixed_splits: Option<&'static str>,
    },
}

/// Video file extensions tried, in this order, where an annotation names a clip without one.
pub(crate) const VIDEO_EXTENSIONS: [&str; 5] = ["mp4", "mkv", "webm", "avi", "mov"];

/// A label as an annotation states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Label {
    /// An index: into the dataset's own class list where it has one (DFEW's 1..7 stored
    /// 0-based, UCF101's `classInd.txt`), else directly into the class map (mmaction2).
    Index(usize),
    /// A class name (FERV39k, MAFW, Kinetics, SSv2, HMDB51).
    Name(String),
}

/// One clip as read, before its labels are resolved.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    /// Where the frames are (the first candidate path when nothing was found).
    pub source: Source,
    /// Labels, at least one.
    pub labels: Vec<Label>,
    /// Annotation file and 1-based line.
    pub origin: (PathBuf, usize),
    /// Why the video / frame folder is missing, if it is.
    pub missing: Option<String>,
}

/// What a reader got out of one file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Listing {
    /// Parsed clips, in file order.
    pub entries: Vec<RawEntry>,
    /// Lines that could not be parsed.
    pub problems: Vec<Problem>,
}

/// An entry with its labels resolved, and the problem to report if its media is missing.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The entry.
    pub entry: Entry,
    /// Set when the video / frame folder does not exist.
    pub missing: Option<Problem>,
}

/// The dataset's own class list, in its own order (`None` where labels are bare integers).
pub(crate) fn dataset_classes(cfg: &DatasetConfig) -> Result<Option<Vec<String>>> {
    Ok(match cfg.format.info().classes {
        ClassSource::Numbered(_) => None,
        ClassSource::Fixed(names) => Some(names.iter().map(|s| s.to_string()).collect()),
        ClassSource::Read(read) => Some(read(cfg)?),
    })
}

/// How many classes the dataset's labels imply: its own list's length, or for bare
/// integer labels one more than the largest of the configured lists (0 when none has one).
pub(crate) fn label_count(cfg: &DatasetConfig) -> Result<usize> {
    Ok(match cfg.format.info().classes {
        ClassSource::Numbered(largest) => largest(cfg)?.map_or(0, |m| m + 1),
        ClassSource::Fixed(names) => names.len(),
        ClassSource::Read(read) => read(cfg)?.len(),
    })
}

/// Resolves raw labels against `classes`. `own` is the dataset's own class list, which
/// [`Label::Index`] refers to when present. A label the class map lacks is a problem at
/// the entry's line, and the entry is dropped; so are multi-label duplicates.
pub(crate) fn resolve(
    listing: Listing,
    classes: &ClassMap,
    own: Option<&[String]>,
) -> (Vec<Resolved>, Vec<Problem>) {
    let Listing {
        entries,
        mut problems,
    } = listing;
    let mut out = Vec::with_capacity(entries.len());
    'entries: for raw in entries {
        let mut labels = Vec::with_capacity(raw.labels.len());
        for label in &raw.labels {
            let found = match (label, own) {
                (Label::Index(i), None) => (*i < classes.len()).then_some(*i).ok_or_else(|| {
                    format!(
                        "label {i} is outside the class map ({} classes: labels 0..={})",
                        classes.len(),
                        classes.len().saturating_sub(1)
                    )
                }),
                (Label::Index(i), Some(own)) => match own.get(*i) {
                    Some(name) => classes.index(name).ok_or_else(|| {
                        format!("class `{name}` is not in the configured `classes`")
                    }),
                    None => Err(format!(
                        "label index {i} is outside the dataset's {} classes",
                        own.len()
                    )),
                },
                (Label::Name(name), _) => classes.index(name).ok_or_else(|| {
                    if own.is_some_and(|o| o.contains(name)) {
                        format!("class `{name}` is not in the configured `classes`")
                    } else {
                        format!(
                            "label `{name}` is not a class of the class map ({} classes)",
                            classes.len()
                        )
                    }
                }),
            };
            match found {
                Ok(l) if !labels.contains(&l) => labels.push(l),
                Ok(_) => {}
                Err(reason) => {
                    problems.push(Problem {
                        path: raw.origin.0.clone(),
                        line: Some(raw.origin.1),
                        reason,
                    });
                    continue 'entries;
                }
            }
        }
        let missing = raw.missing.map(|reason| Problem {
            path: raw.origin.0.clone(),
            line: Some(raw.origin.1),
            reason,
        });
        out.push(Resolved {
            entry: Entry {
                source: raw.source,
                labels,
                origin: Some(raw.origin),
            },
            missing,
        });
    }
    (out, problems)
}

/// Which entries form the validation holdout: per class (first label), the
/// `round(n * fraction)` entries (at most `n - 1`, so every class keeps a training clip)
/// with the smallest hash of `(seed, clip path relative to root)`. Hashing the path rather
/// than shuffling positions keeps an entry's side fixed when other lines are added,
/// removed or reordered, and FNV-1a + SplitMix64 are written out here so that no library
/// upgrade can change a holdout.
pub(crate) fn holdout(resolved: &[Resolved], root: &Path, fraction: f64, seed: u64) -> Vec<bool> {
    let mut by_class: BTreeMap<usize, Vec<(u64, usize)>> = BTreeMap::new();
    let seed_mix = splitmix64(seed);
    for (i, r) in resolved.iter().enumerate() {
        let path = r.entry.source.path();
        let rel = path.strip_prefix(root).unwrap_or(path);
        let key = splitmix64(fnv1a(rel.as_os_str().as_encoded_bytes()) ^ seed_mix);
        by_class
            .entry(r.entry.labels[0])
            .or_default()
            .push((key, i));
    }
    let mut held = vec![false; resolved.len()];
    for members in by_class.values_mut() {
        members.sort_unstable();
        let n = members.len();
        let k = ((n as f64 * fraction).round() as usize).min(n.saturating_sub(1));
        for &(_, i) in &members[..k] {
            held[i] = true;
        }
    }
    held
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------------------
// Helpers shared by the readers.

/// Reads a text file (a leading UTF-8 byte-order mark is dropped: spreadsheet exports
/// start with one).
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::format(
            path,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(t) => t.to_string(),
        None => text,
    })
}

/// The lines worth reading, with their 1-based numbers: trimmed (Windows line ends
/// included: UCF101's lists have them), blank lines and `#` comments skipped.
pub(crate) fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// A problem at `line` of `path`.
pub(crate) fn problem(path: &Path, line: usize, reason: impl Into<String>) -> Problem {
    Problem {
        path: path.to_path_buf(),
        line: Some(line),
        reason: reason.into(),
    }
}

/// The folder among `annotations/<candidate>` for which `has(folder)` holds: lets
/// `annotations` point at the split folder itself or at a dataset folder holding it at its
/// usual place.
pub(crate) fn find_annotations(
    cfg: &DatasetConfig,
    candidates: &[&str],
    has: impl Fn(&Path) -> bool,
    wanted: &str,
) -> Result<PathBuf> {
    let base = cfg
        .annotations
        .as_deref()
        .expect("validated: formats with official files have `annotations`");
    for c in candidates {
        let dir = if c.is_empty() {
            base.to_path_buf()
        } else {
            base.join(c)
        };
        if has(&dir) {
            return Ok(dir);
        }
    }
    let places: Vec<String> = candidates
        .iter()
        .map(|c| {
            if c.is_empty() {
                base.display().to_string()
            } else {
                base.join(c).display().to_string()
            }
        })
        .collect();
    Err(Error::format(
        base,
        format!(
            "no {wanted} found for {} (looked in {})",
            cfg.format,
            places.join(", ")
        ),
    ))
}

/// The first of `names` (file names) that exists in `dir`.
pub(crate) fn first_file(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// The clip named `names` (candidate stems, e.g. `00001` and `1`) in one of `dirs`: a
/// frame folder `dir/name` when the dataset is read as frames, else a video
/// `dir/name.ext` for the first of `exts` that exists. When none exists, the first
/// candidate is returned with the reason.
pub(crate) fn locate(
    cfg: &DatasetConfig,
    dirs: &[PathBuf],
    names: &[String],
    exts: &[&str],
) -> (Source, Option<String>) {
    match cfg.media() {
        Media::Frames => {
            let frames = |dir: PathBuf| Source::Frames {
                dir,
                template: cfg.frame_template(),
                start: cfg.frame_start(),
                count: None,
            };
            for d in dirs {
                for n in names {
                    let p = d.join(n);
                    if p.is_dir() {
                        return (frames(p), None);
                    }
                }
            }
            let first = dirs[0].join(&names[0]);
            let reason = if dirs.len() * names.len() == 1 {
                absent_frame_folder(&first)
            } else {
                format!("no frame folder named {} in {}", quoted(names), paths(dirs))
            };
            (frames(first), Some(reason))
        }
        Media::Videos => {
            for d in dirs {
                for n in names {
                    for e in exts {
                        let p = d.join(format!("{n}.{e}"));
                        if p.is_file() {
                            return (Source::Video(p), None);
                        }
                    }
                }
            }
            let first = dirs[0].join(format!("{}.{}", names[0], exts[0]));
            let reason = if dirs.len() * names.len() * exts.len() == 1 {
                absent_video(&first)
            } else {
                format!(
                    "no video named {}.{{{}}} in {}",
                    quoted(names),
                    exts.join(","),
                    paths(dirs)
                )
            };
            (Source::Video(first), Some(reason))
        }
    }
}

/// A clip whose annotation names the file exactly (`v_X.avi`, `03747.mp4`): that video, or
/// (read as frames) the folder named after it without its extension.
pub(crate) fn locate_exact(cfg: &DatasetConfig, path: PathBuf) -> (Source, Option<String>) {
    match cfg.media() {
        Media::Videos => {
            let missing = (!path.is_file()).then(|| absent_video(&path));
            (Source::Video(path), missing)
        }
        Media::Frames => {
            let dir = path.with_extension("");
            let missing = (!dir.is_dir()).then(|| absent_frame_folder(&dir));
            (
                Source::Frames {
                    dir,
                    template: cfg.frame_template(),
                    start: cfg.frame_start(),
                    count: None,
                },
                missing,
            )
        }
    }
}

/// Why a video path given by an annotation is not a video file: absent, or a folder.
pub(crate) fn absent_video(path: &Path) -> String {
    if path.is_dir() {
        format!(
            "video {} is a folder, not a video file (frame folders are read with \
             `media = \"frames\"` or the `mmaction_rawframes` format)",
            path.display()
        )
    } else {
        format!("video {} does not exist", path.display())
    }
}

/// Why a frame-folder path given by an annotation is not a folder: absent, or a file.
pub(crate) fn absent_frame_folder(path: &Path) -> String {
    if path.exists() {
        format!(
            "frame folder {} is a file, not a folder of frames",
            path.display()
        )
    } else {
        format!("frame folder {} does not exist", path.display())
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn paths(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The annotation file of `split`: the config's override if given, else `official`.
/// [`Split::Val`] has no official file (the caller holds out train instead).
pub(crate) fn split_file(
    cfg: &DatasetConfig,
    split: Split,
    official: impl FnOnce(Split) -> Result<PathBuf>,
) -> Result<PathBuf> {
    let given = match split {
        Split::Train => &cfg.train,
        Split::Val => &cfg.val,
        Split::Test => &cfg.test,
    };
    match (given, split) {
        (Some(p), _) => Ok(p.clone()),
        (None, Split::Val) => Err(Error::Input(format!(
            "{} has no validation list: the validation split is held out of train",
            cfg.format
        ))),
        (None, s) => official(s),
    }
}

/// Splits one CSV line into fields: commas separate, double quotes enclose fields that
/// contain commas (`"passing American football (in game)"`), `""` is a quote.
pub(crate) fn csv_fields(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (',', false) => fields.push(std::mem::take(&mut field).trim().to_string()),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is never closed".into());
    }
    fields.push(field.trim().to_string());
    Ok(fields)
}

/// The items of a JSON array, each with the 1-based line its text starts on, so that a
/// bad item of SSv2's `train.json` is reported where it is. A syntax error anywhere is an
/// error for the whole file, with its line.
pub(crate) fn json_array_items(path: &Path, text: &str) -> Result<Vec<(usize, serde_json::Value)>> {
    let bytes = text.as_bytes();
    let line_at = |offset: usize| bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(0);
    if bytes.get(i) != Some(&b'[') {
        return Err(Error::format(
            path,
            format!("line {}: expected a JSON array (`[`)", line_at(i)),
        ));
    }
    i = skip_ws(i + 1);
    let mut items = Vec::new();
    if bytes.get(i) == Some(&b']') {
        return Ok(items);
    }
    loop {
        let start_line = line_at(i);
        let mut stream =
            serde_json::Deserializer::from_slice(&bytes[i..]).into_iter::<serde_json::Value>();
        match stream.next() {
            Some(Ok(v)) => items.push((start_line, v)),
            Some(Err(e)) => {
                return Err(Error::format(
                    path,
                    format!("line {}: {e}", start_line + e.line().saturating_sub(1)),
                ));
            }
            None => {
                return Err(Error::format(
                    path,
                    format!("line {start_line}: the array is never closed (`]`)"),
                ));
            }
        }
        i = skip_ws(i + stream.byte_offset());
        match bytes.get(i) {
            Some(b',') => i = skip_ws(i + 1),
            Some(b']') => return Ok(items),
            _ => {
                return Err(Error::format(
                    path,
                    format!(
                        "line {}: expected `,` or `]` after an array item",
                        line_at(i.min(bytes.len()))
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_handle_quotes_and_spaces() {
        assert_eq!(
            csv_fields("\"passing American football (in game)\",abc, 14 ,24,train").unwrap(),
            vec![
                "passing American football (in game)",
                "abc",
                "14",
                "24",
                "train"
            ]
        );
        assert_eq!(
            csv_fields("\"a, b\",\"say \"\"hi\"\"\"").unwrap(),
            vec!["a, b", "say \"hi\""]
        );
        assert!(csv_fields("\"open,x").is_err());
    }

    #[test]
    fn json_items_know_their_lines() {
        let text = "[\n  {\"id\": 1},\n  {\"id\": 2,\n   \"x\": [1, 2]}\n]\n";
        let items = json_array_items(Path::new("t.json"), text).unwrap();
        let lines: Vec<usize> = items.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 3]);
        assert_eq!(items[1].1["x"][1], 2);
        let e = json_array_items(Path::new("t.json"), "[\n{\"id\": 1},\n{\"id\": }\n]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.json") && e.contains("line 3"), "{e}");
        assert!(
            json_array_items(Path::new("t.json"), "[]")
                .unwrap()
                .is_empty()
        );
        assert!(json_array_items(Path::new("t.json"), "{}").is_err());
    }

    #[test]
    fn content_lines_skip_blanks_comments_and_carriage_returns() {
        let lines: Vec<(usize, &str)> = content_lines("a 1\r\n\r\n# note\n  b 2  \n").collect();
        assert_eq!(lines, vec![(1, "a 1"), (4, "b 2")]);
    }

    #[test]
    fn hashes_are_pinned() {
        // The holdout must never change with a library upgrade: these are fixed functions.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
    }
}
