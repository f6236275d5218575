//! The dataset description: the `[data]` table of a run's TOML, turned into [`Dataset`]s.
//!
//! ```toml
//! [data]
//! format = "dfew"                          # which layout the files are in (see Format)
//! root = "DFEW/Clip/clip_224x224"          # where the clips are (videos or frame folders)
//! annotations = "DFEW/EmoLabel_DataSplit"  # the official split files
//! fold = 1                                 # DFEW and MAFW: 1..=5; UCF101, HMDB51: 1..=3
//! # classes = ["Happy", "Sad", ...]        # optional: class order (or a file, one per line)
//! # val_fraction = 0.1                     # held out of train when there is no val split
//! # split_seed = 0
//! ```
//!
//! Relative paths resolve against the TOML file's folder. Everything that can be checked
//! without reading annotations is checked when the table is read ([`DatasetConfig::from_toml_file`]),
//! with the offending field named (`data.fold`); annotation files are read by
//! [`DatasetConfig::load`], where a bad line becomes a [`Problem`](super::Problem) and a bad file an error.
//!
//! **Validation splits.** Only the mmaction2 formats (a `val` list) and explicit `val`
//! overrides have a validation list of their own. Everywhere else [`Split::Val`] is
//! `val_fraction` of the official *train* list, held out per class (stratified by the
//! first label) and chosen by a hash of `(split_seed, clip path)`, so the same annotation
//! and seed always give the same holdout, whatever the line order or the machine;
//! [`Split::Train`] is the train list minus exactly those clips, and [`Split::Test`] is the
//! official test list (Kinetics and SSv2: the official validation list, which is what the
//! community reports on). Every class keeps at least one training clip.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use super::decode::format_template;
use super::formats::{self, Files, FormatInfo, Listing};
use super::{ClassMap, Dataset};
use crate::error::{Error, Result};

/// An annotation layout vidapter reads as it is distributed: `mmaction_video`,
/// `mmaction_rawframes`, `dfew`, `ferv39k`, `mafw`, `kinetics`, `ssv2`, `ucf101`, `hmdb51`.
/// Each is described in its own file under `data/formats/`, which states its facts (folds,
/// media, flips, class list, files, reader); this is a handle to those facts. In TOML it
/// is the format's name; an unknown name is refused with the list of known ones.
#[derive(Clone, Copy)]
pub struct Format(&'static FormatInfo);

impl Format {
    /// Every format, in the order error messages list them.
    pub fn all() -> impl Iterator<Item = Format> {
        formats::FORMATS.iter().map(|&info| Format(info))
    }

    /// The format called `name` in TOML, if there is one.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::all().find(|f| f.name() == name)
    }

    /// The names of the formats with official folds, for messages (`dfew, mafw, ucf101 or
    /// hmdb51`).
    pub fn names_with_folds() -> String {
        let names: Vec<&str> = Format::all()
            .filter(|f| f.folds().is_some())
            .map(Format::name)
            .collect();
        crate::util::listed(&names, " or ")
    }

    /// The name used in TOML (`mmaction_video`, `dfew`, ...).
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The official folds, if the dataset has several (`fold` must then be given).
    pub fn folds(self) -> Option<usize> {
        self.0.folds
    }

    /// What the clips are when `media` is not given: the form each dataset ships in
    /// (DFEW and FERV39k ship frame folders; mmaction2 raw-frame lists name folders).
    pub fn default_media(self) -> Media {
        self.0.media
    }

    /// Everything else the format's file states.
    pub(crate) fn info(self) -> &'static FormatInfo {
        self.0
    }
}

impl PartialEq for Format {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Format {}

impl Hash for Format {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl fmt::Debug for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Format").field(&self.name()).finish()
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Format {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Format::from_name(&name).ok_or_else(|| de::Error::unknown_variant(&name, &formats::NAMES))
    }
}

/// Whether entries point at video files or at folders of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Media {
    /// Video files (any container FFmpeg reads).
    Videos,
    /// Folders of numbered jpg/png frames.
    Frames,
}

/// The class list: names inline, or a text file with one name per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a list of class names, or the path of a file with one class name per line"
)]
pub enum Classes {
    /// Names in label order.
    Names(Vec<String>),
    /// A file with one name per line (blank lines skipped), in label order.
    File(PathBuf),
}

/// A dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// What the model is trained on.
    Train,
    /// What checkpoints are chosen on (a holdout of train unless a val list exists).
    Val,
    /// What results are reported on.
    Test,
}

impl Split {
    /// All three, in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// `"train"`, `"val"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "train" => Ok(Split::Train),
            "val" => Ok(Split::Val),
            "test" => Ok(Split::Test),
            other => Err(format!(
                "unknown split `{other}`, expected train, val or test"
            )),
        }
    }
}

fn default_val_fraction() -> f64 {
    0.1
}

/// `[data.faces]`: how faces are found, followed and aligned in raw videos before training
/// or evaluation. Each clip becomes the aligned crops of its main face (the face seen in
/// the most frames), computed once and kept in `cache`; a clip where no face is found is
/// reported and skipped like a damaged one. Every field has a default:
/// ```toml
/// [data.faces]
/// detector = "/path/centerface.onnx"  # default: where scripts/fetch-face-assets.sh puts it
/// threshold = 0.5     # detector score
/// max_side = 640      # frames are scaled down to this longer side for detection (0 = never)
/// every = 1           # run the detector on every N-th frame, tracks interpolated between
/// size = 224          # aligned crop size in pixels
/// margin = 0.25       # context around the tight five-point (ArcFace) template
/// smooth = 2.0        # landmark smoothing over time, Gaussian sigma in frames (0 = none)
/// min_frames = 8      # shorter tracks are not faces of the clip
/// max_miss = 12       # frames a track survives without a detection
/// cache = "faces-cache"  # default: `.vidapter-faces` under `root`
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaceCrops {
    /// Detector weights: a file, or a hub spec `owner/repo/path.onnx` in the Hugging Face
    /// cache; default the file `scripts/fetch-face-assets.sh` installs.
    pub detector: Option<String>,
    /// Minimum detector score.
    pub threshold: f32,
    /// Longer side frames are scaled down to for detection; 0 = full resolution.
    pub max_side: usize,
    /// Detect on every N-th frame (1 = all); tracks are interpolated in between.
    pub every: usize,
    /// Side of the aligned crops, pixels.
    pub size: usize,
    /// Context around the ArcFace five-point template, as a fraction of it.
    pub margin: f32,
    /// Temporal smoothing of the landmarks: Gaussian sigma in frames; 0 = none.
    pub smooth: f32,
    /// Tracks seen in fewer frames are dropped.
    pub min_frames: usize,
    /// Frames a track survives without a detection before it ends.
    pub max_miss: usize,
    /// Where the crops are kept; default `<root>/.vidapter-faces`.
    pub cache: Option<PathBuf>,
}

impl Default for FaceCrops {
    fn default() -> Self {
        FaceCrops {
            detector: None,
            threshold: 0.5,
            max_side: 640,
            every: 1,
            size: 224,
            margin: 0.25,
            smooth: 2.0,
            min_frames: 8,
            max_miss: 12,
            cache: None,
        }
    }
}

impl FaceCrops {
    /// The first field out of range, and why: `(field, reason)`.
    pub fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err((
                "threshold",
                format!(
                    "must be between 0 and 1 (exclusive), got {}",
                    self.threshold
                ),
            ));
        }
        if self.every == 0 {
            return Err(("every", "must be at least 1 (1 = every frame)".into()));
        }
        if !(16..=1024).contains(&self.size) {
            return Err((
                "size",
                format!("must be 16..=1024 pixels, got {}", self.size),
            ));
        }
        if !(0.0..=2.0).contains(&self.margin) {
            return Err(("margin", format!("must be 0..=2, got {}", self.margin)));
        }
        if !(0.0..=100.0).contains(&self.smooth) {
            return Err((
                "smooth",
                format!("must be 0..=100 frames, got {}", self.smooth),
            ));
        }
        if self.min_frames == 0 {
            return Err(("min_frames", "must be at least 1".into()));
        }
        if self.max_side != 0 && self.max_side < 32 {
            return Err((
                "max_side",
                format!(
                    "must be 0 (full resolution) or at least 32, got {}",
                    self.max_side
                ),
            ));
        }
        Ok(())
    }
}

/// The description of a dataset: where its files are, which layout they follow, and how
/// to split it. See the module documentation for an example.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// The annotation layout.
    pub format: Format,
    /// Where the videos / frame folders are; annotation paths are relative to it.
    pub root: PathBuf,
    /// The annotation file or folder, as the format needs (all formats but the mmaction2
    /// ones): DFEW's `EmoLabel_DataSplit`, FERV39k's `4_setups/All_scenes`, MAFW's
    /// `single/no_caption` (its `anno/`, `Train & Test Set/` or `split/` parent also works),
    /// the Kinetics csv folder, the SSv2 json folder, `ucfTrainTestlist`,
    /// `testTrainMulti_7030_splits`; or a dataset folder holding these at their usual place.
    pub annotations: Option<PathBuf>,
    /// Train list (mmaction2 formats: required; elsewhere: replaces the official train file,
    /// same layout).
    pub train: Option<PathBuf>,
    /// Validation list; without one, [`Split::Val`] is a holdout of train.
    pub val: Option<PathBuf>,
    /// Test list (mmaction2 formats; elsewhere replaces the official test file).
    pub test: Option<PathBuf>,
    /// Official fold: DFEW and MAFW 1..=5, UCF101 and HMDB51 1..=3; required there.
    pub fold: Option<usize>,
    /// Class names in label order. mmaction2 formats: the names of labels 0..K-1 (default
    /// "0".."K-1"). Other formats: the dataset's own names in the order wanted (a subset
    /// drops the other classes' clips, reported as problems); default the dataset's order.
    pub classes: Option<Classes>,
    /// Fraction of train held out as validation when there is no validation list.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    /// Seed of the holdout.
    #[serde(default)]
    pub split_seed: u64,
    /// Horizontal flip allowed in training; default true, SSv2 false (and true is refused
    /// there, as mirroring changes what "left to right" classes mean).
    pub flip: Option<bool>,
    /// Frame file names (raw frames), e.g. `img_{:05}.jpg` (mmaction's `img_{:05d}.jpg`
    /// also works). Default: `img_{:05}.jpg` for `mmaction_rawframes`; elsewhere every
    /// image of the folder in numeric order, as DFEW, FERV39k and MAFW name frames in
    /// several ways (`00001.jpg`, `1.jpg`, `00001_00001.jpg`).
    pub filename_tmpl: Option<String>,
    /// Index of the first frame file with `filename_tmpl` (default 1).
    pub start_index: Option<usize>,
    /// Videos or frame folders, where a dataset can be either; default per format
    /// ([`Format::default_media`]).
    pub media: Option<Media>,
    /// `[data.faces]`: the clips are raw videos of people; train and evaluate on the main
    /// face of each, found, tracked and aligned once and cached (see [`FaceCrops`]).
    pub faces: Option<FaceCrops>,
    /// The TOML file this was read from (error messages name it); not a TOML field.
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

/// Only the `[data]` table of a run config matters here; other tables are someone else's.
#[derive(Deserialize)]
struct RunFile {
    data: Option<DatasetConfig>,
}

impl DatasetConfig {
    /// Reads the `[data]` table of a TOML file (a run config may hold other tables, which
    /// are ignored here); relative paths resolve against the TOML file's folder.
    ///
    /// Errors name the field (`data.fold`) and, for syntax and type errors, the line.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let de = toml::Deserializer::new(&text);
        let file: RunFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.inner();
            let line = inner
                .span()
                .map(|s| format!("line {}: ", line_of(&text, s.start)))
                .unwrap_or_default();
            // toml's messages may span lines ("invalid table header\nexpected `.`, `]`").
            let message = inner.message().trim().replace('\n', "; ");
            if field == "." {
                // Not inside any field: the file is not valid TOML.
                Error::format(path, format!("{line}{message}"))
            } else {
                Error::config(path, field, format!("{line}{message}"))
            }
        })?;
        let Some(mut config) = file.data else {
            return Err(Error::config(
                path,
                "data",
                "there is no [data] table; it needs at least `format` and `root`",
            ));
        };
        config.finish(path)?;
        Ok(config)
    }

    /// Reads a `[data]` table already parsed from `file` (a run config embedding it);
    /// relative paths resolve against `file`'s folder, and errors name `file`.
    pub fn from_toml_table(value: &toml::Value, file: &Path) -> Result<Self> {
        let mut config: DatasetConfig =
            serde_path_to_error::deserialize(value.clone()).map_err(|e| {
                let field = e.path().to_string();
                let field = if field == "." {
                    "data".to_string()
                } else {
                    format!("data.{field}")
                };
                Error::config(file, field, e.inner().to_string())
            })?;
        config.finish(file)?;
        Ok(config)
    }

    /// Resolves relative paths against `file`'s folder and checks every field that can be
    /// checked without reading annotations.
    fn finish(&mut self, file: &Path) -> Result<()> {
        let base = crate::util::config_dir(file);
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.root);
        for p in [
            &mut self.annotations,
            &mut self.train,
            &mut self.val,
            &mut self.test,
        ]
        .into_iter()
        .flatten()
        {
            resolve(p);
        }
        if let Some(Classes::File(p)) = &mut self.classes {
            resolve(p);
        }
        if let Some(faces) = &mut self.faces {
            if let Some(p) = &mut faces.cache {
                resolve(p);
            }
            // A detector given as a relative file path is relative to the config too; a hub
            // spec (`owner/repo/file.onnx`) that is not a file there stays as written.
            if let Some(d) = &mut faces.detector {
                let p = PathBuf::from(&*d);
                if p.is_relative() && base.join(&p).is_file() {
                    *d = base.join(p).to_string_lossy().into_owned();
                }
            }
        }
        self.config_file = Some(file.to_path_buf());
        self.validate()
    }

    fn err(&self, field: &str, reason: impl Into<String>) -> Error {
        Error::config(self.toml_path(), format!("data.{field}"), reason)
    }

    fn toml_path(&self) -> PathBuf {
        self.config_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("[data]"))
    }

    fn validate(&self) -> Result<()> {
        let f = self.format;
        if let Some(faces) = &self.faces {
            faces
                .check()
                .map_err(|(field, why)| self.err(&format!("faces.{field}"), why))?;
            if self.media() != Media::Videos {
                return Err(self.err(
                    "faces",
                    "faces are found in raw videos; this dataset is read as frame folders                      (set `media = \"videos\"`, or drop [data.faces] for clips that are                      already face crops)",
                ));
            }
        }
        if !self.root.is_dir() {
            return Err(self.err(
                "root",
                format!(
                    "{} is not a folder; `root` is where the {} clips are",
                    self.root.display(),
                    f
                ),
            ));
        }
        let lists = [
            ("train", &self.train),
            ("val", &self.val),
            ("test", &self.test),
        ];
        match f.info().files {
            Files::Lists => {
                if let Some(a) = &self.annotations {
                    return Err(self.err(
                        "annotations",
                        format!(
                            "{f} reads the list files named by `train`, `val` and `test`; \
                             `annotations` ({}) is not used by it",
                            a.display()
                        ),
                    ));
                }
                if self.train.is_none() {
                    return Err(self.err(
                        "train",
                        format!("{f} needs `train`: the list file of the training clips"),
                    ));
                }
            }
            Files::Official { hint, fixed_splits } => {
                match &self.annotations {
                    None => {
                        return Err(
                            self.err("annotations", format!("{f} needs `annotations`: {hint}"))
                        );
                    }
                    Some(a) if !a.exists() => {
                        return Err(self.err(
                            "annotations",
                            format!("{} does not exist; expected {hint}", a.display()),
                        ));
                    }
                    Some(_) => {}
                }
                if let Some(why) = fixed_splits
                    && let Some((field, _)) = lists.iter().find(|(_, p)| p.is_some())
                {
                    return Err(self.err(field, why));
                }
            }
        }
        for (field, p) in lists {
            if let Some(p) = p
                && !p.is_file()
            {
                return Err(self.err(
                    field,
                    format!("{} does not exist or is not a file", p.display()),
                ));
            }
        }
        match (f.folds(), self.fold) {
            (Some(n), None) => {
                return Err(self.err(
                    "fold",
                    format!("{f} has {n} official folds; set `fold` to one of 1..={n}"),
                ));
            }
            (Some(n), Some(k)) if k == 0 || k > n => {
                return Err(self.err("fold", format!("{k} is not a {f} fold; expected 1..={n}")));
            }
            (None, Some(k)) => {
                return Err(self.err("fold", format!("{f} has no folds (got {k}); remove `fold`")));
            }
            _ => {}
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(self.err(
                "val_fraction",
                format!(
                    "{} is outside [0, 1): it is the fraction of train held out as validation",
                    self.val_fraction
                ),
            ));
        }
        if let (Some(why), Some(true)) = (f.info().flip_refused, self.flip) {
            return Err(self.err("flip", why));
        }
        if let (Some(why), Some(media)) = (f.info().media_only, self.media)
            && media != f.default_media()
        {
            return Err(self.err("media", why));
        }
        if self.media() == Media::Videos {
            for (field, set) in [
                ("filename_tmpl", self.filename_tmpl.is_some()),
                ("start_index", self.start_index.is_some()),
            ] {
                if set {
                    return Err(self.err(
                        field,
                        format!(
                            "only used for frame folders, but this {f} dataset reads videos \
                             (set media = \"frames\" to read frame folders)"
                        ),
                    ));
                }
            }
        }
        if let Some(t) = &self.filename_tmpl
            && let Err(reason) = format_template(t, self.start_index.unwrap_or(1))
        {
            return Err(self.err("filename_tmpl", reason));
        }
        if let Some(classes) = &self.classes {
            self.user_classes(classes)?;
        }
        Ok(())
    }

    /// Reads and checks the `classes` field: non-empty, no duplicates.
    fn user_classes(&self, classes: &Classes) -> Result<Vec<String>> {
        let (names, origin) = match classes {
            Classes::Names(n) => (n.clone(), None),
            Classes::File(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    self.err("classes", format!("cannot read {}: {e}", p.display()))
                })?;
                let names = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect();
                (names, Some(p))
            }
        };
        let from = origin
            .map(|p| format!(" (read from {})", p.display()))
            .unwrap_or_default();
        if names.is_empty() {
            return Err(self.err("classes", format!("no class names{from}")));
        }
        for (i, n) in names.iter().enumerate() {
            if n.trim().is_empty() {
                return Err(self.err("classes", format!("name {} is empty{from}", i + 1)));
            }
            if let Some(j) = names[..i].iter().position(|m| m == n) {
                return Err(self.err(
                    "classes",
                    format!("`{n}` appears twice (names {} and {}){from}", j + 1, i + 1),
                ));
            }
        }
        Ok(names)
    }

    /// Videos or frame folders: `media`, or the format's default.
    pub fn media(&self) -> Media {
        self.media.unwrap_or(self.format.default_media())
    }

    /// The frame-file template for frame folders (`None`: every image, numeric order).
    pub fn frame_template(&self) -> Option<String> {
        self.filename_tmpl
            .clone()
            .or_else(|| self.format.info().frame_template.map(String::from))
    }

    /// Index of the first frame file (default 1).
    pub fn frame_start(&self) -> usize {
        self.start_index.unwrap_or(1)
    }

    /// Whether horizontal flips are allowed in training (default: yes, unless mirroring
    /// changes the format's classes, as in SSv2).
    pub fn flip_allowed(&self) -> bool {
        self.flip
            .unwrap_or(self.format.info().flip_refused.is_none())
    }

    /// The splits this configuration can load: all three, except that mmaction2 lists
    /// without a `test` file have no test split.
    pub fn splits(&self) -> Vec<Split> {
        Split::ALL
            .into_iter()
            .filter(|&s| !(s == Split::Test && self.test_is_missing()))
            .collect()
    }

    /// Whether the format reads list files and no `test` list is given (no test split).
    fn test_is_missing(&self) -> bool {
        matches!(self.format.info().files, Files::Lists) && self.test.is_none()
    }

    /// Whether [`Split::Val`] is held out of the train list (no validation list exists).
    pub fn val_is_holdout(&self) -> bool {
        self.val.is_none()
    }

    /// The class map every split's labels refer to.
    ///
    /// mmaction2 formats: `classes`, or "0".."K-1" with K one more than the largest label of
    /// the configured lists. Other formats: `classes` (which must name classes of the
    /// dataset), or the dataset's own order: DFEW and FERV39k Happy, Sad, Neutral, Angry,
    /// Surprise, Disgust, Fear (DFEW's labels 1..7); MAFW's 11 classes in its official order;
    /// Kinetics the sorted names of the train csv; SSv2 `labels.json`'s indices; UCF101
    /// `classInd.txt`; HMDB51 the sorted names of its split files.
    pub fn class_map(&self) -> Result<ClassMap> {
        self.class_map_given(formats::dataset_classes(self)?)
    }

    /// [`class_map`](Self::class_map) with the dataset's own class list already read.
    fn class_map_given(&self, own: Option<Vec<String>>) -> Result<ClassMap> {
        let user = self
            .classes
            .as_ref()
            .map(|c| self.user_classes(c))
            .transpose()?;
        let names = match (own, user) {
            (Some(own), Some(user)) => {
                for (i, n) in user.iter().enumerate() {
                    if !own.contains(n) {
                        let close = own
                            .iter()
                            .find(|o| o.eq_ignore_ascii_case(n))
                            .map(|o| format!(" (did you mean `{o}`?)"))
                            .unwrap_or_default();
                        return Err(self.err(
                            "classes",
                            format!(
                                "name {} `{n}` is not a {} class{close}; its classes are: {}",
                                i + 1,
                                self.format,
                                abbreviate(&own)
                            ),
                        ));
                    }
                }
                user
            }
            (Some(own), None) => own,
            (None, Some(user)) => user,
            (None, None) => {
                let k = formats::label_count(self)?;
                if k == 0 {
                    return Err(Error::format(
                        self.train.as_deref().unwrap_or(&self.root),
                        "no line has a label, so the number of classes is unknown \
                         (set `classes` in [data])",
                    ));
                }
                (0..k).map(|i| i.to_string()).collect()
            }
        };
        Ok(ClassMap::new(names))
    }

    /// The format's reader, on this dataset.
    fn read(&self, split: Split) -> Result<Listing> {
        (self.format.info().read)(self, split)
    }

    /// Reads `split`: its entries (labels resolved against [`class_map`](Self::class_map)),
    /// and as [`Problem`](super::Problem)s the lines that are malformed, whose label is outside the class
    /// map, or whose video / frame folder does not exist (each with file and line).
    ///
    /// A whole-file failure (annotation file missing or unreadable, wrong header, a class
    /// list that cannot be read) is an error. See the module documentation for how
    /// [`Split::Val`] is formed.
    pub fn load(&self, split: Split) -> Result<Dataset> {
        let own = formats::dataset_classes(self)?;
        let classes = self.class_map_given(own.clone())?;
        let resolve = |listing: Listing| formats::resolve(listing, &classes, own.as_deref());
        let (resolved, mut problems) = match split {
            Split::Test if self.test_is_missing() => {
                return Err(self.err(
                    "test",
                    format!("{} has no test list; set `test`", self.format),
                ));
            }
            Split::Test => resolve(self.read(Split::Test)?),
            Split::Val if !self.val_is_holdout() => resolve(self.read(Split::Val)?),
            Split::Train | Split::Val => {
                let (resolved, problems) = resolve(self.read(Split::Train)?);
                if !self.val_is_holdout() {
                    (resolved, problems)
                } else {
                    let held =
                        formats::holdout(&resolved, &self.root, self.val_fraction, self.split_seed);
                    let want_held = split == Split::Val;
                    let kept = resolved
                        .into_iter()
                        .zip(held)
                        .filter(|(_, h)| *h == want_held)
                        .map(|(r, _)| r)
                        .collect();
                    // Lines that did not parse (or name no class) belong to no split; train
                    // reports them, so that `data check` lists each once.
                    (kept, if want_held { Vec::new() } else { problems })
                }
            }
        };
        let mut entries = Vec::with_capacity(resolved.len());
        for r in resolved {
            match r.missing {
                Some(p) => problems.push(p),
                None => entries.push(r.entry),
            }
        }
        problems.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        Ok(Dataset {
            entries,
            classes,
            problems,
        })
    }
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The first few names, for error messages about long class lists.
fn abbreviate(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(12).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{}, ... ({more} more)", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn config_error(text: &str) -> String {
        let dir = crate::util::tempdir().unwrap();
        write(dir.path(), "train.txt", "a.mp4 0\n");
        std::fs::create_dir_all(dir.path().join("videos")).unwrap();
        std::fs::create_dir_all(dir.path().join("EmoLabel_DataSplit")).unwrap();
        let toml = write(dir.path(), "run.toml", text);
        DatasetConfig::from_toml_file(&toml)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_format_names_the_field_and_the_choices() {
        let e = config_error("[data]\nformat = \"dfw\"\nroot = \"videos\"\n");
        assert!(e.contains("data.format"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("unknown variant `dfw`"), "{e}");
        assert!(e.contains("mmaction_video") && e.contains("hmdb51"), "{e}");
    }

    #[test]
    fn registered_formats_have_one_name_each_and_round_trip() {
        for f in Format::all() {
            assert_eq!(Format::all().filter(|g| g.name() == f.name()).count(), 1);
            assert_eq!(Format::from_name(f.name()), Some(f));
            let json = serde_json::to_value(f).unwrap();
            assert_eq!(json, f.name());
            assert_eq!(serde_json::from_value::<Format>(json).unwrap(), f);
        }
        assert_eq!(Format::names_with_folds(), "dfew, mafw, ucf101 or hmdb51");
    }

    #[test]
    fn unknown_field_is_refused() {
        let e = config_error(
            "[data]\nformat = \"mmaction_video\"\nroot = \"videos\"\ntrain = \"train.txt\"\nfolds = 2\n",
        );
        assert!(e.contains("unknown field `folds`"), "{e}");
    }

    #[test]
    fn fold_out_of_range_is_refused() {
        let e = config_error(
            "[data]\nformat = \"dfew\"\nroot = \"videos\"\nannotations = \"EmoLabel_DataSplit\"\nfold = 6\n",
        );
        assert!(e.contains("data.fold") && e.contains("1..=5"), "{e}");
        let e = config_error(
            "[data]\nformat = \"dfew\"\nroot = \"videos\"\nannotations = \"EmoLabel_DataSplit\"\n",
        );
        assert!(
            e.contains("data.fold") && e.contains("5 official folds"),
            "{e}"
        );
    }

    #[test]
    fn missing_root_and_list_are_named() {
        let e = config_error(
            "[data]\nformat = \"mmaction_video\"\nroot = \"nowhere\"\ntrain = \"train.txt\"\n",
        );
        assert!(e.contains("data.root") && e.contains("nowhere"), "{e}");
        let e = config_error(
            "[data]\nformat = \"mmaction_video\"\nroot = \"videos\"\ntrain = \"t.txt\"\n",
        );
        assert!(e.contains("data.train") && e.contains("t.txt"), "{e}");
    }

    #[test]
    fn val_fraction_must_be_a_fraction() {
        let e = config_error(
            "[data]\nformat = \"mmaction_video\"\nroot = \"videos\"\ntrain = \"train.txt\"\nval_fraction = 1.5\n",
        );
        assert!(e.contains("data.val_fraction"), "{e}");
    }

    #[test]
    fn classes_of_the_wrong_type_say_what_is_expected() {
        let e = config_error(
            "[data]\nformat = \"mmaction_video\"\nroot = \"videos\"\ntrain = \"train.txt\"\nclasses = 3\n",
        );
        assert!(
            e.contains("data.classes") && e.contains("a list of class names"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_class_names_are_refused() {
        let e = config_error(
            "[data]\nformat = \"mmaction_video\"\nroot = \"videos\"\ntrain = \"train.txt\"\nclasses = [\"a\", \"b\", \"a\"]\n",
        );
        assert!(e.contains("`a` appears twice"), "{e}");
    }

    #[test]
    fn template_is_only_for_frames_and_must_format() {
        let e = config_error(
            "[data]\nformat = \"mmaction_video\"\nroot = \"videos\"\ntrain = \"train.txt\"\nfilename_tmpl = \"x_{:05}.jpg\"\n",
        );
        assert!(
            e.contains("data.filename_tmpl") && e.contains("frame folders"),
            "{e}"
        );
        let e = config_error(
            "[data]\nformat = \"mmaction_rawframes\"\nroot = \"videos\"\ntrain = \"train.txt\"\nfilename_tmpl = \"x_{:05.jpg\"\n",
        );
        assert!(
            e.contains("data.filename_tmpl") && e.contains("never closed"),
            "{e}"
        );
    }

    #[test]
    fn a_file_without_data_table_is_an_error() {
        let e = config_error("[model]\nname = \"x\"\n");
        assert!(e.contains("no [data] table"), "{e}");
    }

    #[test]
    fn invalid_toml_names_the_line_on_one_line() {
        let e = config_error("[data]\nformat = \"dfew\"\n[broken\n");
        assert!(e.contains("run.toml: line 3: "), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn relative_paths_resolve_against_the_toml_folder() {
        let dir = crate::util::tempdir().unwrap();
        write(dir.path(), "cfg/lists/train.txt", "a.mp4 0\n");
        std::fs::create_dir_all(dir.path().join("cfg/videos")).unwrap();
        let toml = write(
            dir.path(),
            "cfg/run.toml",
            "[model]\nx = 1\n[data]\nformat = \"mmaction_video\"\nroot = \"videos\"\ntrain = \"lists/train.txt\"\n",
        );
        let c = DatasetConfig::from_toml_file(&toml).unwrap();
        assert_eq!(c.root, dir.path().join("cfg/videos"));
        assert_eq!(c.train, Some(dir.path().join("cfg/lists/train.txt")));
        assert_eq!(c.val_fraction, 0.1);
        assert_eq!(c.split_seed, 0);
        assert!(c.flip_allowed());
    }

    #[test]
    fn table_errors_are_prefixed_with_data() {
        let value: toml::Value = toml::from_str("format = \"mmaction_video\"\nroot = 3\n").unwrap();
        let e = DatasetConfig::from_toml_table(&value, Path::new("run.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("run.toml") && e.contains("data.root"), "{e}");
    }

    #[test]
    fn split_names_round_trip() {
        for s in Split::ALL {
            assert_eq!(s.to_string().parse::<Split>(), Ok(s));
        }
        assert!("all".parse::<Split>().is_err());
    }
}
