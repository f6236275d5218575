//! Synthetic video datasets written as real encoded videos (or frame folders): vidapter's
//! offline data for tests and for the demo.
//!
//! Two kinds ([`SynthKind`]), both built so that **no single frame and no order-free summary
//! of the frames (such as their average) decides the label**: within each group of classes,
//! every class visits the same set of appearances with the same probability, only in a
//! different order. An image model applied frame by frame and averaged can only tell the
//! groups apart; telling the classes apart needs temporal modelling.
//! - [`SynthKind::Expressions`]: drawn faces whose smile or frown follows a time course
//!   (`onset`, `offset`, `apex`, `dip`); 8 classes in 2 groups of 4. Optionally still images
//!   of peak and neutral expressions for image pre-training (`peak_images`). See
//!   `expressions.rs` for the classes and the argument.
//! - [`SynthKind::Motion`]: an object moving left / right / up / down or turning clockwise /
//!   counter-clockwise over a textured background; 6 classes in 3 pairs. Horizontal flips
//!   change labels, so its `dataset.toml` says `flip = false`. Optionally still images of the
//!   object at rest labelled by where it is and which way it points (`peak_images`), so that
//!   an image model trained on them must encode position and orientation. See `motion.rs`.
//!
//! # Layout written by [`generate`] (every path relative, so the folder can be moved)
//! ```text
//! videos/<class>/<class>_<split>_<kkkk>.mp4     (or a folder of img_00001.jpg ... per clip)
//! train.txt val.txt test.txt                     mmaction2 lists: `videos/... <label>`, or for
//!                                                frame folders `videos/... <frames> <label>`
//! classes.txt                                    class names, one per line, in label order
//! dataset.toml                                   [data] format, root, lists, classes, flip
//! images/<class>/<class>_<kkkk>.png, images.txt, image_classes.txt   (peak_images > 0)
//! synth.json                                     the SynthConfig used and the summary
//! ```
//! A split with 0 videos per class gets no list file and no key in `dataset.toml`.
//!
//! # Determinism
//! Every clip draws from its own random stream, a function of the seed, the kind and the
//! clip's identity (split, class, index), never of thread scheduling; the generator is our
//! own SplitMix64, not a `rand` type whose stream may change with a dependency upgrade. Same
//! config -> byte-identical list files and identical frames (and, with one encoder thread
//! per video, identical video files).
//!
//! # Speed
//! Clips are rendered and encoded in parallel, one per core (std threads, a shared counter).
//! The default (8 classes x 40 clips x 16 frames at 64 px, 320 H.264 files, 3.7 MB) takes
//! about 2.7 CPU-seconds: 1.4 s on two idle cores.

mod draw;
mod encode;
mod expressions;
mod motion;
mod rng;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use encode::VideoCodec;
use rng::Rng;

/// File names [`generate`] owns in its output folder: it removes and rewrites exactly these.
const OWNED_FILES: [&str; 8] = [
    "train.txt",
    "val.txt",
    "test.txt",
    "classes.txt",
    "dataset.toml",
    "images.txt",
    "image_classes.txt",
    SYNTH_JSON,
];
/// Folders [`generate`] owns in its output folder.
const OWNED_DIRS: [&str; 2] = ["videos", "images"];
/// The record of a synth run; its presence marks a folder as a synth output.
const SYNTH_JSON: &str = "synth.json";
/// The `generator` value written into `synth.json`.
const GENERATOR: &str = concat!("vidapter ", env!("CARGO_PKG_VERSION"), " synth");

/// Which synthetic dataset to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SynthKind {
    /// Faces whose expression follows a time course; 8 classes (`smile_onset`, ...,
    /// `frown_dip`). Horizontal flips keep labels.
    #[default]
    Expressions,
    /// An object moving or turning; 6 classes (`move_left`, ..., `turn_counterclockwise`).
    /// Horizontal flips change labels.
    Motion,
}

impl SynthKind {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SynthKind::Expressions => "expressions",
            SynthKind::Motion => "motion",
        }
    }

    /// Class names in label order.
    pub fn classes(self) -> Vec<String> {
        match self {
            SynthKind::Expressions => expressions::classes().into_iter().map(|c| c.0).collect(),
            SynthKind::Motion => motion::classes().into_iter().map(|c| c.0).collect(),
        }
    }

    /// Still-image class names in label order (what `peak_images` writes): `neutral, smile,
    /// frown` for expressions; `r{row}_c{col}_axis{degrees}` (3x3 grid cells times 4 axis
    /// bins) for motion.
    pub fn image_classes(self) -> Vec<String> {
        match self {
            SynthKind::Expressions => expressions::image_classes()
                .into_iter()
                .map(|c| c.0)
                .collect(),
            SynthKind::Motion => motion::image_classes().into_iter().map(|c| c.0).collect(),
        }
    }

    /// The still-image label as independent factors, sizes most significant first: a label
    /// `l` is the mixed-radix number of its factors' values (the last factor fastest).
    /// Expressions `[3]` (one factor); motion `[9, 4]`: grid cell (row-major), axis bin, so
    /// `r1_c2_axis090` = (1 * 3 + 2) * 4 + 2. Image pre-training can give each factor its own
    /// softmax.
    pub fn image_label_factors(self) -> Vec<usize> {
        match self {
            SynthKind::Expressions => vec![expressions::image_classes().len()],
            SynthKind::Motion => vec![motion::GRID * motion::GRID, motion::AXIS_BINS],
        }
    }

    /// Whether a horizontal flip keeps a clip's label.
    pub fn flip_keeps_label(self) -> bool {
        self == SynthKind::Expressions
    }
}

impl fmt::Display for SynthKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SynthKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "expressions" => Ok(SynthKind::Expressions),
            "motion" => Ok(SynthKind::Motion),
            _ => Err(Error::Input(format!(
                "unknown synthetic dataset `{s}`; expected `expressions` or `motion`"
            ))),
        }
    }
}

/// How clips are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SynthMedia {
    /// One MP4 file per clip (H.264 through libx264, or MPEG-4 Part 2 without it); lists in
    /// mmaction2's video format.
    #[default]
    Video,
    /// One folder of `img_00001.jpg`, `img_00002.jpg`, ... per clip; lists in mmaction2's
    /// raw-frame format.
    Frames,
}

/// What to generate. Every field has a default (`SynthConfig::default()`); unknown fields
/// are rejected when deserialising.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// Which dataset. Default `expressions`.
    pub kind: SynthKind,
    /// Training clips per class. Default 24; at least 1.
    pub train: usize,
    /// Validation clips per class. Default 8; 0 writes no validation list.
    pub val: usize,
    /// Test clips per class. Default 8; 0 writes no test list.
    pub test: usize,
    /// Frames per clip. Default 16; at least 4 (a start, a middle and an end).
    pub frames: usize,
    /// Side of the square frames in pixels. Default 64; even (4:2:0 video), 16 to 1024.
    pub size: usize,
    /// Frame rate stored in the videos. Default 8; 1 to 240.
    pub fps: u32,
    /// Seed of everything random. Default 0.
    pub seed: u64,
    /// Videos (default) or frame folders.
    pub media: SynthMedia,
    /// Still images per image class for image pre-training, written under `images/`:
    /// expressions: peak or neutral faces (`neutral`, `smile`, `frown`); motion: the object
    /// at rest, labelled by grid cell and axis orientation (36 classes, `r0_c0_axis000`, ...).
    /// Default 0 (none).
    pub peak_images: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            kind: SynthKind::Expressions,
            train: 24,
            val: 8,
            test: 8,
            frames: 16,
            size: 64,
            fps: 8,
            seed: 0,
            media: SynthMedia::Video,
            peak_images: 0,
        }
    }
}

impl SynthConfig {
    /// Checks every field; the error names the field, the value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| {
            Err(Error::Input(format!("synthetic data: `{field}` {reason}")))
        };
        if self.train == 0 {
            return bad("train", "must be at least 1 clip per class (got 0)".into());
        }
        if self.frames < 4 {
            return bad(
                "frames",
                format!(
                    "must be at least 4 (got {}): the classes differ by what happens at the \
                     start, middle and end of a clip",
                    self.frames
                ),
            );
        }
        if !(16..=1024).contains(&self.size) || !self.size.is_multiple_of(2) {
            return bad(
                "size",
                format!(
                    "must be an even number of pixels from 16 to 1024 (got {}); 4:2:0 video \
                     needs even sides",
                    self.size
                ),
            );
        }
        if !(1..=240).contains(&self.fps) {
            return bad("fps", format!("must be from 1 to 240 (got {})", self.fps));
        }
        Ok(())
    }

    fn per_split(&self) -> [(Split, usize); 3] {
        [
            (Split::Train, self.train),
            (Split::Val, self.val),
            (Split::Test, self.test),
        ]
    }
}

/// Totals of a generated dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitCounts {
    /// Training clips (all classes).
    pub train: usize,
    /// Validation clips.
    pub val: usize,
    /// Test clips.
    pub test: usize,
    /// Still images (all image classes).
    pub images: usize,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynthSummary {
    /// Which dataset.
    pub kind: SynthKind,
    /// Class names in label order (as in `classes.txt`).
    pub classes: Vec<String>,
    /// Still-image class names in label order (as in `image_classes.txt`); empty without
    /// still images.
    pub image_classes: Vec<String>,
    /// Clips per split and still images.
    pub counts: SplitCounts,
    /// The output folder as given (not written into `synth.json`, which stays movable).
    #[serde(skip)]
    pub dir: PathBuf,
    /// How clips are stored: `h264 (libx264)`, `mpeg4 (...)` or `jpeg frames`.
    pub codec: String,
    /// Frames per clip.
    pub frames: usize,
    /// Side of the square frames, pixels.
    pub size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// One thing to render and write.
#[derive(Debug, Clone, Copy)]
enum Job {
    /// Clip `k` of `class` in `split`.
    Clip {
        split: Split,
        class: usize,
        k: usize,
    },
    /// Still image `k` of image class `class`.
    Still { class: usize, k: usize },
}

/// Path of a clip, relative to the output folder (without `.mp4` for frame folders).
fn clip_path(class: &str, split: Split, k: usize, media: SynthMedia) -> String {
    let stem = format!("videos/{class}/{class}_{}_{k:04}", split.name());
    match media {
        SynthMedia::Video => format!("{stem}.mp4"),
        SynthMedia::Frames => stem,
    }
}

/// Path of a still image, relative to the output folder.
fn still_path(class: &str, k: usize) -> String {
    format!("images/{class}/{class}_{k:04}.png")
}

/// Generates the dataset `cfg` describes into `out` (created if missing), with a progress bar
/// on stderr when `progress`.
///
/// `out` must be empty, missing, or the output of an earlier run (it holds a `synth.json`);
/// an earlier run's files (`videos/`, `images/`, the lists, `dataset.toml`, `synth.json`) are
/// replaced, anything else in the folder is left alone. A non-empty folder of anything else
/// is refused; [`generate_forced`] writes there anyway.
pub fn generate(cfg: &SynthConfig, out: &Path, progress: bool) -> Result<SynthSummary> {
    run(cfg, out, progress, false)
}

/// As [`generate`], but also writes into a non-empty folder that is not a synth output,
/// replacing `videos/`, `images/` and the list, class, `dataset.toml` and `synth.json` files
/// there if present, and leaving everything else.
pub fn generate_forced(cfg: &SynthConfig, out: &Path, progress: bool) -> Result<SynthSummary> {
    run(cfg, out, progress, true)
}

/// Whether `dir` holds the output of an earlier synth run (a `synth.json` we wrote).
pub fn is_synth_output(dir: &Path) -> bool {
    std::fs::read(dir.join(SYNTH_JSON))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| v.get("generator")?.as_str().map(str::to_string))
        .is_some_and(|g| g.starts_with("vidapter "))
}

fn run(cfg: &SynthConfig, out: &Path, progress: bool, force: bool) -> Result<SynthSummary> {
    cfg.validate()?;
    prepare_output(out, force)?;
    let classes = cfg.kind.classes();
    let image_classes: Vec<String> = if cfg.peak_images > 0 {
        cfg.kind.image_classes()
    } else {
        Vec::new()
    };
    let codec = match cfg.media {
        SynthMedia::Video => Some(VideoCodec::detect()?),
        SynthMedia::Frames => None,
    };
    let n = classes.len();
    let summary = SynthSummary {
        kind: cfg.kind,
        classes: classes.clone(),
        image_classes: image_classes.clone(),
        counts: SplitCounts {
            train: cfg.train * n,
            val: cfg.val * n,
            test: cfg.test * n,
            images: cfg.peak_images * image_classes.len(),
        },
        dir: out.to_path_buf(),
        codec: codec
            .map_or("jpeg frames", VideoCodec::describe)
            .to_string(),
        frames: cfg.frames,
        size: cfg.size,
    };

    // Mark the folder as ours before writing into it, so that an interrupted run can be
    // resumed over without force.
    write_record(out, cfg, &summary, false)?;
    for class in &classes {
        let dir = out.join("videos").join(class);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    for class in &image_classes {
        let dir = out.join("images").join(class);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }

    let mut jobs = Vec::new();
    for (split, count) in cfg.per_split() {
        for class in 0..n {
            jobs.extend((0..count).map(|k| Job::Clip { split, class, k }));
        }
    }
    for class in 0..image_classes.len() {
        jobs.extend((0..cfg.peak_images).map(|k| Job::Still { class, k }));
    }
    run_jobs(cfg, out, &classes, &image_classes, codec, &jobs, progress)?;

    write_lists(cfg, out, &classes, &image_classes)?;
    write_record(out, cfg, &summary, true)?;
    Ok(summary)
}

/// Refuses a folder we must not write into; removes an earlier run's files.
fn prepare_output(out: &Path, force: bool) -> Result<()> {
    match std::fs::metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::create_dir_all(out).map_err(|e| Error::io(out, e));
        }
        Err(e) => return Err(Error::io(out, e)),
        Ok(m) if !m.is_dir() => {
            return Err(Error::Input(format!(
                "{}: is a file; the synthetic dataset needs a folder",
                out.display()
            )));
        }
        Ok(_) => {}
    }
    let mut entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
    let empty = entries.next().is_none();
    if !empty && !force && !is_synth_output(out) {
        return Err(Error::Input(format!(
            "{}: the folder is not empty and is not the output of an earlier `vidapter synth` \
             (it has no synth.json); choose a new or empty folder, or force it \
             (`vidapter synth --force`), which replaces videos/, images/ and the list files \
             there and leaves the rest",
            out.display()
        )));
    }
    for name in OWNED_DIRS {
        let p = out.join(name);
        match std::fs::remove_dir_all(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&p, e)),
            _ => {}
        }
    }
    for name in OWNED_FILES {
        let p = out.join(name);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&p, e)),
            _ => {}
        }
    }
    Ok(())
}

/// Renders and writes every job, one per core at a time; stops at the first error.
fn run_jobs(
    cfg: &SynthConfig,
    out: &Path,
    classes: &[String],
    image_classes: &[String],
    codec: Option<VideoCodec>,
    jobs: &[Job],
    progress: bool,
) -> Result<()> {
    let bar = if progress {
        let bar = crate::util::progress_bar(
            jobs.len() as u64,
            "{msg} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})",
            true,
        );
        bar.set_message(format!("synth {}", cfg.kind));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len())
        .max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    if let Err(e) = run_job(cfg, out, classes, image_classes, codec, *job) {
                        stop.store(true, Ordering::Relaxed);
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(e);
                        break;
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Renders one job and writes it.
fn run_job(
    cfg: &SynthConfig,
    out: &Path,
    classes: &[String],
    image_classes: &[String],
    codec: Option<VideoCodec>,
    job: Job,
) -> Result<()> {
    let kind_tag = match cfg.kind {
        SynthKind::Expressions => 1,
        SynthKind::Motion => 2,
    };
    let size = cfg.size;
    match job {
        Job::Clip { split, class, k } => {
            let mut rng = Rng::derive(
                cfg.seed,
                &[kind_tag, 0, split as u64, class as u64, k as u64],
            );
            let frames = match cfg.kind {
                SynthKind::Expressions => {
                    let (_, expression, course) = expressions::classes().swap_remove(class);
                    expressions::render_video(&mut rng, size, cfg.frames, expression, course)
                }
                SynthKind::Motion => {
                    let (_, direction) = motion::classes().swap_remove(class);
                    motion::render_video(&mut rng, size, cfg.frames, direction)
                }
            };
            let path = out.join(clip_path(&classes[class], split, k, cfg.media));
            match codec {
                Some(codec) => encode::write_mp4(&path, &frames, size, size, cfg.fps, codec),
                None => encode::write_jpeg_dir(&path, &frames, size, size),
            }
        }
        Job::Still { class, k } => {
            let mut rng = Rng::derive(cfg.seed, &[kind_tag, 1, class as u64, k as u64]);
            let image = match cfg.kind {
                SynthKind::Expressions => {
                    let (_, expression) = expressions::image_classes().swap_remove(class);
                    expressions::render_still(&mut rng, size, expression)
                }
                SynthKind::Motion => {
                    let (_, still) = motion::image_classes().swap_remove(class);
                    motion::render_still(&mut rng, size, still)
                }
            };
            let path = out.join(still_path(&image_classes[class], k));
            encode::write_png(&path, &image, size, size)
        }
    }
}

/// Writes the split lists, `classes.txt`, `dataset.toml` and the still-image lists.
fn write_lists(
    cfg: &SynthConfig,
    out: &Path,
    classes: &[String],
    image_classes: &[String],
) -> Result<()> {
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    };
    let lines = |names: &[String]| names.iter().map(|c| format!("{c}\n")).collect::<String>();
    write("classes.txt", lines(classes))?;
    for (split, count) in cfg.per_split() {
        if count == 0 {
            continue;
        }
        let mut text = String::new();
        for (label, class) in classes.iter().enumerate() {
            for k in 0..count {
                let path = clip_path(class, split, k, cfg.media);
                text += &match cfg.media {
                    SynthMedia::Video => format!("{path} {label}\n"),
                    SynthMedia::Frames => format!("{path} {} {label}\n", cfg.frames),
                };
            }
        }
        write(&format!("{}.txt", split.name()), text)?;
    }
    if !image_classes.is_empty() {
        write("image_classes.txt", lines(image_classes))?;
        let mut text = String::new();
        for (label, class) in image_classes.iter().enumerate() {
            for k in 0..cfg.peak_images {
                text += &format!("{} {label}\n", still_path(class, k));
            }
        }
        write("images.txt", text)?;
    }
    write(
        "dataset.toml",
        dataset_toml(cfg, classes.len(), !image_classes.is_empty()),
    )
}

/// The `dataset.toml` describing the output (keys read by vidapter's dataset config).
fn dataset_toml(cfg: &SynthConfig, classes: usize, images: bool) -> String {
    let mut t = format!(
        "# Written by `vidapter synth`: the {} dataset, {classes} classes, {} frames of {}x{} \
         per clip; synth.json has the settings.\n",
        cfg.kind, cfg.frames, cfg.size, cfg.size
    );
    if images {
        t += "# Still images for image pre-training: images.txt (labels: image_classes.txt).\n";
    }
    t += "[data]\n";
    t += match cfg.media {
        SynthMedia::Video => "format = \"mmaction_video\"\n",
        SynthMedia::Frames => "format = \"mmaction_rawframes\"\n",
    };
    t += "root = \".\"\n";
    for (split, count) in cfg.per_split() {
        if count > 0 {
            t += &format!("{0} = \"{0}.txt\"\n", split.name());
        }
    }
    t += "classes = \"classes.txt\"\n";
    t += &format!("flip = {}\n", cfg.kind.flip_keeps_label());
    if cfg.media == SynthMedia::Frames {
        t += &format!("filename_tmpl = \"{}\"\n", "img_{:05}.jpg");
        t += "start_index = 1\n";
    }
    t
}

/// Writes `synth.json`: generator, whether the run completed, the config and the summary.
fn write_record(
    out: &Path,
    cfg: &SynthConfig,
    summary: &SynthSummary,
    complete: bool,
) -> Result<()> {
    let record = serde_json::json!({
        "generator": GENERATOR,
        "complete": complete,
        "config": cfg,
        "summary": summary,
    });
    let mut text = serde_json::to_string_pretty(&record).expect("plain data serialises");
    text.push('\n');
    crate::util::write_atomic(&out.join(SYNTH_JSON), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_fill_missing_fields_and_unknown_fields_are_rejected() {
        let cfg: SynthConfig = toml::from_str("kind = \"motion\"\nframes = 8").unwrap();
        assert_eq!(cfg.kind, SynthKind::Motion);
        assert_eq!(cfg.frames, 8);
        assert_eq!(cfg.size, SynthConfig::default().size);
        let e = toml::from_str::<SynthConfig>("frame = 8").unwrap_err();
        assert!(e.to_string().contains("unknown field `frame`"), "{e}");
        let e = toml::from_str::<SynthConfig>("kind = \"faces\"").unwrap_err();
        assert!(e.to_string().contains("expressions"), "{e}");
    }

    #[test]
    fn validation_names_the_field_and_the_value() {
        let check = |cfg: SynthConfig, needle: &str| {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        };
        let d = SynthConfig::default();
        check(
            SynthConfig {
                frames: 3,
                ..d.clone()
            },
            "`frames` must be at least 4 (got 3)",
        );
        check(
            SynthConfig {
                size: 63,
                ..d.clone()
            },
            "`size` must be an even number",
        );
        check(
            SynthConfig {
                size: 8,
                ..d.clone()
            },
            "(got 8)",
        );
        check(
            SynthConfig {
                train: 0,
                ..d.clone()
            },
            "`train`",
        );
        check(
            SynthConfig {
                fps: 0,
                ..d.clone()
            },
            "`fps`",
        );
        assert!(d.validate().is_ok());
    }

    #[test]
    fn kind_parses_its_names_and_lists_them_when_wrong() {
        assert_eq!("motion".parse::<SynthKind>().unwrap(), SynthKind::Motion);
        let e = "faces".parse::<SynthKind>().unwrap_err().to_string();
        assert!(
            e.contains("`faces`") && e.contains("`expressions` or `motion`"),
            "{e}"
        );
        assert!(SynthKind::Expressions.flip_keeps_label());
        assert!(!SynthKind::Motion.flip_keeps_label());
    }

    #[test]
    fn image_label_factors_decompose_the_still_labels() {
        for kind in [SynthKind::Expressions, SynthKind::Motion] {
            let factors = kind.image_label_factors();
            assert_eq!(
                factors.iter().product::<usize>(),
                kind.image_classes().len(),
                "{kind}"
            );
        }
        // r1_c2_axis090: cell 1 * 3 + 2 = 5, axis bin 2, label 5 * 4 + 2.
        let names = SynthKind::Motion.image_classes();
        assert_eq!(names[(3 + 2) * 4 + 2], "r1_c2_axis090");
        assert_eq!(SynthKind::Motion.image_label_factors(), [9, 4]);
    }

    #[test]
    fn dataset_toml_has_the_agreed_keys() {
        let cfg = SynthConfig {
            kind: SynthKind::Motion,
            media: SynthMedia::Frames,
            val: 0,
            ..SynthConfig::default()
        };
        let text = dataset_toml(&cfg, 6, false);
        let v: toml::Value = toml::from_str(&text).unwrap();
        let data = v["data"].as_table().unwrap();
        assert_eq!(data["format"].as_str(), Some("mmaction_rawframes"));
        assert_eq!(data["root"].as_str(), Some("."));
        assert_eq!(data["train"].as_str(), Some("train.txt"));
        assert!(!data.contains_key("val"));
        assert_eq!(data["test"].as_str(), Some("test.txt"));
        assert_eq!(data["classes"].as_str(), Some("classes.txt"));
        assert_eq!(data["flip"].as_bool(), Some(false));
        assert_eq!(data["filename_tmpl"].as_str(), Some("img_{:05}.jpg"));
        assert_eq!(data["start_index"].as_integer(), Some(1));
        let video = dataset_toml(&SynthConfig::default(), 8, false);
        let v: toml::Value = toml::from_str(&video).unwrap();
        assert_eq!(v["data"]["format"].as_str(), Some("mmaction_video"));
        assert_eq!(v["data"]["flip"].as_bool(), Some(true));
        assert!(!v["data"].as_table().unwrap().contains_key("filename_tmpl"));
    }
}
