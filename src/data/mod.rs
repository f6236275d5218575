//! The video data path: annotation files -> entries -> decoded frames -> sampled clips ->
//! transformed tensors -> batches.
//!
//! ```text
//! annotation file --(readers)--> Dataset { entries (Source + labels), ClassMap, problems }
//! Source --decode--> frames (RGB8, only the sampled ones converted) --sampling--> T frames
//!        --transform--> [T, 3, H, W] f32, normalised --loader--> [B, T, 3, H, W] + labels
//! ```
//!
//! Bad data is normal: every reader and decoder reports a [`Problem`] (path, line, reason)
//! and the entry is skipped unless the user asked for strict mode.
//!
//! The annotation readers (`formats/`: mmaction2 lists, DFEW, FERV39k, MAFW, Kinetics, SSv2,
//! UCF101, HMDB51; each file states its format's facts, and one registry lists them) turn
//! the files datasets ship with into [`Dataset`]s; `config.rs` is the `[data]` table that
//! says where those files are and how to split them; `report.rs` is what `vidapter data
//! check` prints. The types they produce are defined here.
//!
//! The other way, `decode::VideoReader` streams a user's video frame by frame and
//! `encode` writes videos ([`encode::VideoWriter`]) and JPEG frames ([`encode::write_jpeg`])
//! for the face commands; `synth` encodes its videos with the same encoder.

pub mod check;
pub mod config;
pub mod decode;
pub mod encode;
pub(crate) mod formats;
pub mod loader;
pub mod report;
pub mod sampling;
pub mod synth;
pub mod transform;

use std::fmt;
use std::path::PathBuf;

/// Where one clip's frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A video file decoded with FFmpeg.
    Video(PathBuf),
    /// A folder of numbered frames.
    Frames {
        /// The folder.
        dir: PathBuf,
        /// File-name template with one `{}`-style index placeholder, e.g. `img_{:05}.jpg`;
        /// `None` means: every image file of the folder in natural (numeric-aware) order.
        template: Option<String>,
        /// Index of the first frame (mmaction2: 1).
        start: usize,
        /// Frame count if the annotation states it (a hint; the folder is the truth).
        count: Option<usize>,
    },
}

impl Source {
    /// The path shown in reports.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Source::Video(p) => p,
            Source::Frames { dir, .. } => dir,
        }
    }
}

/// One labelled clip of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where its frames are.
    pub source: Source,
    /// Class indices into the dataset's [`ClassMap`] (one for single-label datasets).
    pub labels: Vec<usize>,
    /// Where the entry was declared: annotation file and 1-based line.
    pub origin: Option<(PathBuf, usize)>,
}

/// The explicit, ordered list of class names of a dataset; index = label id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClassMap {
    /// Class names in label order.
    pub names: Vec<String>,
}

impl ClassMap {
    /// A class map from names in label order.
    pub fn new(names: Vec<String>) -> Self {
        ClassMap { names }
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no classes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Label id of `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// Something wrong with one entry or line, reported and (by default) skipped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file at fault (annotation file, video, frame folder).
    pub path: PathBuf,
    /// 1-based line in an annotation file, when the problem is a line.
    pub line: Option<usize>,
    /// What is wrong, and what was expected.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.path.display(), self.reason),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}

/// A dataset split as read from its annotation: entries, classes and what was skipped.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Readable entries, in annotation order.
    pub entries: Vec<Entry>,
    /// The class map every label refers to.
    pub classes: ClassMap,
    /// Lines or entries that were skipped, with reasons.
    pub problems: Vec<Problem>,
}
