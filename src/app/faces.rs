//! Faces in raw video, end to end: `vidapter faces` (a folder of raw videos -> aligned face
//! clips, an mmaction2 list and a manifest), `vidapter predict --faces` (each person's
//! emotion over time, and `--annotate` to draw it on the video), and `[data.faces]` (train
//! and evaluate on raw videos, faces cropped once and cached).
//!
//! One pipeline serves all three ([`FacePipeline`]):
//! 1. **scan** ([`FacePipeline::scan`]): the video is read frame by frame (bounded memory);
//!    the detector runs on every `every`-th frame, several frames at a time on all cores;
//!    detections are linked into tracks by IoU; gaps are interpolated and the landmarks
//!    smoothed over time (a Gaussian of `smooth` frames), so crops do not jitter. Tracks
//!    shorter than `min_frames` are dropped; the main face is the track with the most
//!    detections ([`crate::faces::track::main_track`]).
//! 2. **crop** ([`FacePipeline::crops`]): the video is read again and each kept track's
//!    face aligned to the five-point template ([`crate::faces::align()`]).
//!
//! Decoding twice costs far less than detection and keeps memory independent of the
//! video's length.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::experiment::{Classifier, PredictOptions, WindowPrediction, default_window};
use crate::data::config::FaceCrops;
use crate::data::config::Split;
use crate::data::decode::{DecodeOptions, Frame, VideoReader};
use crate::data::encode::{VideoWriter, write_jpeg};
use crate::data::sampling::{Mode, Sampling};
use crate::data::{Entry, Problem, Source};
use crate::error::{Error, Result};
use crate::faces::align::{AlignConfig, align};
use crate::faces::detect::{Detector, DetectorConfig, resolve_weights};
use crate::faces::draw::{draw_box, draw_label, draw_points, track_color};
use crate::faces::track::{Track, Tracker, TrackerConfig, main_track};
use crate::train::config::RunConfig;
use crate::util::{PROGRESS, write_atomic};

/// Frames the detector is given at once (spread over the cores).
const DETECT_BATCH: usize = 8;
/// JPEG quality of face-crop frames.
const JPEG_QUALITY: u8 = 95;
/// Frame file names of face-crop folders: mmaction2's `img_{:05}.jpg`, from 1.
pub const FRAME_TEMPLATE: &str = "img_{:05}.jpg";
/// Video file extensions `faces` looks for in a folder.
const VIDEO_EXTENSIONS: [&str; 11] = [
    "mp4", "avi", "mov", "mkv", "webm", "m4v", "mpg", "mpeg", "flv", "wmv", "3gp",
];

/// One frame of a track: where the face is (after interpolation and smoothing).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrackFrame {
    /// Frame index in the video (0-based, decoder order).
    pub frame: usize,
    /// Whether the detector found this face in this frame; false: interpolated between
    /// detections (a miss, or a frame the detector skipped with `every > 1`).
    pub detected: bool,
    /// Box `[x1, y1, x2, y2]`, pixels.
    pub bbox: [f32; 4],
    /// Detector score (interpolated when not detected).
    pub score: f32,
    /// The five landmarks the crop is aligned with.
    pub landmarks: [[f32; 2]; 5],
}

/// One person followed through a video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceTrack {
    /// Track id, 0.. in order of first appearance.
    pub id: u32,
    /// First frame.
    pub first: usize,
    /// Last frame (inclusive).
    pub last: usize,
    /// Frames where the detector found it.
    pub hits: usize,
    /// One entry per frame from `first` to `last`.
    pub frames: Vec<TrackFrame>,
}

impl FaceTrack {
    /// Frames spanned, `last - first + 1`.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True for a track without frames (never kept).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The track at frame `i`, if it spans it.
    pub fn at(&self, i: usize) -> Option<&TrackFrame> {
        i.checked_sub(self.first).and_then(|k| self.frames.get(k))
    }
}

/// What a scan found in one video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoFaces {
    /// The video.
    pub video: PathBuf,
    /// Frame width (after autorotation).
    pub width: usize,
    /// Frame height.
    pub height: usize,
    /// Frame rate.
    pub fps: f64,
    /// Frames decoded.
    pub frames: usize,
    /// Frames the detector ran on.
    pub detected_frames: usize,
    /// Faces followed, ids 0.. in order of first appearance.
    pub tracks: Vec<FaceTrack>,
    /// Id of the main face (most detections), none when no face was found.
    pub main: Option<u32>,
    /// Decode damage tolerated with `--allow-damaged`.
    pub damage: Option<String>,
}

impl VideoFaces {
    /// The main face's track.
    pub fn main_track(&self) -> Option<&FaceTrack> {
        self.main
            .and_then(|id| self.tracks.iter().find(|t| t.id == id))
    }

    /// The sentence users get for a video without faces.
    pub fn no_face_reason(&self, settings: &FaceCrops) -> String {
        format!(
            "no face found in {} frames (detector run on {} of them, threshold {}, tracks of at least {} frames)",
            self.frames, self.detected_frames, settings.threshold, settings.min_frames
        )
    }
}

/// The detector plus the settings of tracking and alignment.
pub struct FacePipeline {
    detector: Detector,
    settings: FaceCrops,
    weights: PathBuf,
}

impl fmt::Debug for FacePipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FacePipeline")
            .field("weights", &self.weights)
            .field("settings", &self.settings)
            .finish()
    }
}

impl FacePipeline {
    /// Loads the detector `settings` name (default: the one the setup script installs).
    ///
    /// # Errors
    /// Settings out of range (naming the field); a detector file that is missing or not
    /// CenterFace.
    pub fn load(settings: &FaceCrops) -> Result<FacePipeline> {
        settings
            .check()
            .map_err(|(field, why)| Error::Input(format!("faces.{field}: {why}")))?;
        let weights = resolve_weights(settings.detector.as_deref())?;
        let detector = Detector::load(
            &weights,
            DetectorConfig {
                threshold: settings.threshold,
                max_side: settings.max_side,
                ..DetectorConfig::default()
            },
        )?;
        Ok(FacePipeline {
            detector,
            settings: settings.clone(),
            weights,
        })
    }

    /// The detector weights in use.
    pub fn weights(&self) -> &Path {
        &self.weights
    }

    /// The settings in use.
    pub fn settings(&self) -> &FaceCrops {
        &self.settings
    }

    /// The faces in one frame (a live source's), as the scan finds them.
    ///
    /// # Errors
    /// The detector fails on the frame.
    pub fn detect(&self, frame: &Frame) -> Result<Vec<crate::faces::Detection>> {
        self.detector.detect(frame)
    }

    /// Pass 1: finds and follows the faces of `video`; `frame_done(i)` after each frame.
    ///
    /// # Errors
    /// An unreadable or (without `allow_damaged`) damaged video, naming the file.
    pub fn scan(
        &self,
        video: &Path,
        decode: &DecodeOptions,
        frame_done: &mut dyn FnMut(usize),
    ) -> Result<VideoFaces> {
        let s = &self.settings;
        let mut reader =
            VideoReader::open(video, decode).map_err(|e| Error::UnreadableClip(e.to_string()))?;
        let (width, height, fps) = (reader.width(), reader.height(), reader.fps());
        let mut tracker = Tracker::new(TrackerConfig {
            max_miss: s.max_miss,
            min_hits: 1,
            ..TrackerConfig::default()
        });
        let mut detected_frames = 0;
        let mut n = 0;
        let mut batch_idx: Vec<usize> = Vec::with_capacity(DETECT_BATCH);
        let mut batch: Vec<Frame> = Vec::with_capacity(DETECT_BATCH);
        for (i, frame) in (&mut reader).enumerate() {
            let frame = frame.map_err(|e| Error::UnreadableClip(e.to_string()))?;
            n = i + 1;
            if i.is_multiple_of(s.every) {
                batch_idx.push(i);
                batch.push(frame);
                if batch.len() == DETECT_BATCH {
                    detected_frames += batch.len();
                    self.detect_into(&mut tracker, &batch_idx, &batch)?;
                    batch_idx.clear();
                    batch.clear();
                }
            }
            frame_done(i);
        }
        detected_frames += batch.len();
        self.detect_into(&mut tracker, &batch_idx, &batch)?;
        if n == 0 {
            return Err(Error::UnreadableClip(format!(
                "{}: no frame decodes",
                video.display()
            )));
        }
        let (tracks, main) = self.keep(tracker.finish());
        Ok(VideoFaces {
            video: video.to_path_buf(),
            width,
            height,
            fps,
            frames: n,
            detected_frames,
            tracks,
            main,
            damage: reader.damage(),
        })
    }

    fn detect_into(&self, tracker: &mut Tracker, idx: &[usize], frames: &[Frame]) -> Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        let found = self.detector.detect_batch(frames)?;
        for (&i, dets) in idx.iter().zip(&found) {
            tracker.update(i, dets);
        }
        Ok(())
    }

    /// Tracks long enough to be someone, smoothed, renumbered 0.. in order of appearance,
    /// and the main one's id.
    fn keep(&self, tracks: Vec<Track>) -> (Vec<FaceTrack>, Option<u32>) {
        let mut tracks: Vec<Track> = tracks
            .into_iter()
            .filter(|t| t.last() + 1 - t.first >= self.settings.min_frames)
            .collect();
        tracks.sort_by_key(|t| t.first);
        let main = main_track(&tracks).map(|i| i as u32);
        let kept = tracks
            .iter()
            .enumerate()
            .map(|(id, t)| FaceTrack {
                id: id as u32,
                first: t.first,
                last: t.last(),
                hits: t.hits(),
                frames: t
                    .smoothed(self.settings.smooth)
                    .iter()
                    .enumerate()
                    .map(|(k, d)| TrackFrame {
                        frame: t.first + k,
                        detected: t.detections.get(k).is_some_and(|d| d.is_some()),
                        bbox: d.bbox,
                        score: d.score,
                        landmarks: d.landmarks,
                    })
                    .collect(),
            })
            .collect();
        (kept, main)
    }

    /// Pass 2: reads `faces.video` again and gives each frame of the tracks `ids` aligned
    /// at `size` pixels: `f(track, frame index, crop)`, in frame order.
    ///
    /// # Errors
    /// The video no longer decodes; those of `f`.
    pub fn crops(
        &self,
        faces: &VideoFaces,
        ids: &[u32],
        size: usize,
        decode: &DecodeOptions,
        f: &mut dyn FnMut(&FaceTrack, usize, Frame) -> Result<()>,
    ) -> Result<()> {
        let tracks: Vec<&FaceTrack> = faces
            .tracks
            .iter()
            .filter(|t| ids.contains(&t.id))
            .collect();
        let Some(end) = tracks.iter().map(|t| t.last).max() else {
            return Ok(());
        };
        let cfg = AlignConfig {
            size,
            margin: self.settings.margin,
        };
        let reader = VideoReader::open(&faces.video, decode)
            .map_err(|e| Error::UnreadableClip(e.to_string()))?;
        let mut seen = 0;
        for (i, frame) in reader.enumerate().take(end + 1) {
            let frame = frame.map_err(|e| Error::UnreadableClip(e.to_string()))?;
            for t in &tracks {
                if let Some(tf) = t.at(i) {
                    f(t, i, align(&frame, &tf.landmarks, &cfg))?;
                }
            }
            seen = i + 1;
        }
        if seen <= end {
            return Err(Error::UnreadableClip(format!(
                "{}: gave {seen} frames on the second reading, {} on the first; was it changed meanwhile?",
                faces.video.display(),
                faces.frames
            )));
        }
        Ok(())
    }
}

/// The face settings a checkpoint was trained with (its `[data.faces]`, else the
/// defaults), with the detector and its frequency overridden where the user names them:
/// crops for prediction are made as they were for training.
pub fn face_settings(cfg: &RunConfig, detector: Option<&str>, every: Option<usize>) -> FaceCrops {
    let mut settings = cfg.data.faces.clone().unwrap_or_default();
    if let Some(d) = detector {
        settings.detector = Some(d.to_string());
    }
    if let Some(n) = every {
        settings.every = n;
    }
    settings
}

// ---------------------------------------------------------------------------------------
// `vidapter faces`: raw videos -> aligned face clips, an mmaction2 list, a manifest.
// ---------------------------------------------------------------------------------------

/// How `faces` writes each face clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClipFormat {
    /// A folder of `img_00001.jpg`, ... (mmaction2 raw frames; what DFEW and FERV39k ship).
    Frames,
    /// One MP4 per face.
    Mp4,
}

/// Options of `vidapter faces`.
#[derive(Debug, Clone)]
pub struct FacesOptions {
    /// Detection, tracking and alignment.
    pub settings: FaceCrops,
    /// Output folder.
    pub out: PathBuf,
    /// Frame folders or MP4s.
    pub format: ClipFormat,
    /// List every face of a video, not only its main one.
    pub all_tracks: bool,
    /// Use damaged videos (with a warning) instead of skipping them.
    pub allow_damaged: bool,
    /// Stop at the first video that cannot be read.
    pub strict: bool,
    /// Progress bar.
    pub progress: bool,
}

/// One input of `faces`: a video and its labels (from an mmaction2 list; none given: 0).
#[derive(Debug, Clone, PartialEq)]
pub struct FaceInput {
    /// The video.
    pub video: PathBuf,
    /// Its name under the output folder (unique; no extension).
    pub name: String,
    /// Labels written to the output list.
    pub labels: Vec<usize>,
}

/// The videos of `paths` (files, and folders searched recursively for video files, sorted),
/// each named by its path relative to the folder it was found in (or its file stem), made
/// unique with `-2`, `-3`, ...; all labelled 0.
///
/// # Errors
/// A path that does not exist; no video at all.
pub fn inputs_from_paths(paths: &[PathBuf]) -> Result<Vec<FaceInput>> {
    let mut found: Vec<(PathBuf, String)> = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files = Vec::new();
            walk_videos(p, &mut files)?;
            files.sort();
            for f in files {
                let rel = f.strip_prefix(p).unwrap_or(&f).with_extension("");
                found.push((f.clone(), rel.to_string_lossy().replace('\\', "/")));
            }
        } else if p.is_file() {
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "video".into());
            found.push((p.clone(), stem));
        } else {
            return Err(Error::Input(format!(
                "{}: no such file or folder",
                p.display()
            )));
        }
    }
    if found.is_empty() {
        return Err(Error::Input(format!(
            "no video found in {} (looked for files ending in {})",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            VIDEO_EXTENSIONS.join(", ")
        )));
    }
    Ok(unique_names(
        found
            .into_iter()
            .map(|(video, name)| FaceInput {
                video,
                name,
                labels: vec![0],
            })
            .collect(),
    ))
}

/// The videos of an mmaction2 video list (`path label [label ...]`, paths relative to
/// `root`), named by their path without extension, with their labels.
///
/// # Errors
/// An unreadable list; a line without a path and integer labels (naming file and line).
pub fn inputs_from_list(list: &Path, root: &Path) -> Result<Vec<FaceInput>> {
    let text = std::fs::read_to_string(list).map_err(|e| Error::io(list, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let rel = fields.next().unwrap_or_default();
        let labels: std::result::Result<Vec<usize>, _> = fields.map(str::parse).collect();
        let labels = match labels {
            Ok(l) if !l.is_empty() => l,
            _ => {
                return Err(Error::format(
                    list,
                    format!(
                        "line {}: expected `path label [label ...]` with integer labels, got `{line}`",
                        i + 1
                    ),
                ));
            }
        };
        out.push(FaceInput {
            video: root.join(rel),
            name: Path::new(rel)
                .with_extension("")
                .to_string_lossy()
                .replace('\\', "/"),
            labels,
        });
    }
    if out.is_empty() {
        return Err(Error::format(list, "lists no video"));
    }
    Ok(unique_names(out))
}

fn walk_videos(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if p.is_dir() {
            walk_videos(&p, out)?;
        } else if p.extension().is_some_and(|x| {
            VIDEO_EXTENSIONS.contains(&x.to_string_lossy().to_ascii_lowercase().as_str())
        }) {
            out.push(p);
        }
    }
    Ok(())
}

fn unique_names(mut inputs: Vec<FaceInput>) -> Vec<FaceInput> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for input in &mut inputs {
        let n = seen.entry(input.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            input.name = format!("{}-{n}", input.name);
        }
    }
    inputs
}

/// What `faces` did with one video (a line of `manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoEntry {
    /// The input video.
    pub video: PathBuf,
    /// Its folder under the output folder.
    pub name: String,
    /// `ok`, `no_face` or `error`.
    pub status: String,
    /// Why, for `no_face` and `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Frames decoded.
    pub frames: usize,
    /// Faces followed.
    pub tracks: usize,
    /// The clips written (relative to the output folder), main face first.
    pub clips: Vec<String>,
    /// Labels the list gives these clips.
    pub labels: Vec<usize>,
}

/// `manifest.json` of a `faces` output folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The detector file.
    pub detector: PathBuf,
    /// Its sha256.
    pub detector_sha256: String,
    /// Detection, tracking and alignment settings (a changed setting redoes every video).
    pub settings: FaceCrops,
    /// Clip format.
    pub format: ClipFormat,
    /// Whether every face was listed, or only each video's main one.
    pub all_tracks: bool,
    /// One per input, in input order.
    pub videos: Vec<VideoEntry>,
}

/// What `vidapter faces` did.
#[derive(Debug, Clone)]
pub struct FacesReport {
    /// The output folder.
    pub out: PathBuf,
    /// Per video.
    pub videos: Vec<VideoEntry>,
    /// Videos already done by an earlier run with the same settings (resumed).
    pub reused: usize,
    /// Seconds spent.
    pub seconds: f64,
    /// Frames decoded in this run.
    pub frames: usize,
}

impl FacesReport {
    /// Videos that could not be read: the command's failure, once everything else is done.
    pub fn failure(&self) -> Option<String> {
        let bad = self.videos.iter().filter(|v| v.status == "error").count();
        (bad > 0).then(|| {
            format!(
                "{bad} of {} video(s) could not be read; they are listed with status \"error\" in {}",
                self.videos.len(),
                self.out.join("manifest.json").display()
            )
        })
    }
}

impl fmt::Display for FacesReport {
    /// Counts, the videos without faces and the unreadable ones, and the `[data]` table
    /// that trains on the output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |s: &str| self.videos.iter().filter(|v| v.status == s).count();
        let clips: usize = self.videos.iter().map(|v| v.clips.len()).sum();
        writeln!(
            f,
            "videos        {} ({} with faces, {} without, {} unreadable; {} done by an earlier run)",
            self.videos.len(),
            count("ok"),
            count("no_face"),
            count("error"),
            self.reused
        )?;
        writeln!(f, "face clips    {clips}")?;
        if self.seconds > 0.0 && self.frames > 0 {
            writeln!(
                f,
                "speed         {:.1} frames/s ({} frames in {:.1} s)",
                self.frames as f64 / self.seconds,
                self.frames,
                self.seconds
            )?;
        }
        for v in self.videos.iter().filter(|v| v.status != "ok") {
            writeln!(
                f,
                "{:<13} {}: {}",
                v.status.replace('_', " "),
                v.video.display(),
                v.reason.as_deref().unwrap_or("")
            )?;
        }
        writeln!(
            f,
            "list          {}",
            self.out.join("faces_list.txt").display()
        )?;
        writeln!(
            f,
            "manifest      {}",
            self.out.join("manifest.json").display()
        )?;
        let format = if self.videos.is_empty() || self.is_mp4() {
            "mmaction_video"
        } else {
            "mmaction_rawframes"
        };
        writeln!(f, "train on it with:")?;
        writeln!(f, "  [data]")?;
        writeln!(f, "  format = \"{format}\"")?;
        writeln!(f, "  root = \"{}\"", self.out.display())?;
        write!(
            f,
            "  train = \"{}\"",
            self.out.join("faces_list.txt").display()
        )
    }
}

impl FacesReport {
    fn is_mp4(&self) -> bool {
        self.videos
            .iter()
            .flat_map(|v| v.clips.first())
            .any(|c| c.ends_with(".mp4"))
    }
}

/// The settings a finished video folder was made with (its `faces.json`), to resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VideoRecord {
    settings: FaceCrops,
    detector_sha256: String,
    format: ClipFormat,
    video_bytes: u64,
    entry: VideoEntry,
    faces: Option<VideoFaces>,
}

/// `vidapter faces`: finds, follows and aligns the faces of `inputs`, writing per video
/// `OUT/<name>/face_<id>/img_00001.jpg ...` (or `face_<id>.mp4`) and `OUT/<name>/faces.json`
/// (boxes, landmarks, scores per frame per face), then `OUT/faces_list.txt` (an mmaction2
/// list of the main faces, or of all with `all_tracks`) and `OUT/manifest.json`.
///
/// Resumable: a video whose `faces.json` holds the same settings and detector is not done
/// again; a video interrupted half-way is redone. A video without faces is recorded as
/// `no_face` (not an error); an unreadable one as `error` (the run goes on unless `strict`).
///
/// # Errors
/// Settings out of range; the detector cannot be loaded; the output cannot be written;
/// with `strict`, the first unreadable video.
pub fn run_faces(inputs: &[FaceInput], opts: &FacesOptions) -> Result<FacesReport> {
    let start = Instant::now();
    let pipeline = FacePipeline::load(&opts.settings)?;
    let detector_sha256 = file_sha256(pipeline.weights())?;
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    let decode = DecodeOptions {
        allow_damaged: opts.allow_damaged,
        threads: 0,
        ..DecodeOptions::default()
    };
    let bar = crate::util::progress_bar(
        inputs.len() as u64,
        "faces {bar:25} {pos}/{len} videos  {msg}  ETA {eta}",
        opts.progress,
    );
    let mut videos = Vec::with_capacity(inputs.len());
    let (mut reused, mut frames) = (0, 0);
    for input in inputs {
        bar.set_message(input.name.clone());
        let dir = opts.out.join(&input.name);
        let record_path = dir.join("faces.json");
        let bytes = std::fs::metadata(&input.video)
            .map(|m| m.len())
            .unwrap_or(0);
        if let Some(r) = read_record(&record_path)
            && r.settings == opts.settings
            && r.detector_sha256 == detector_sha256
            && r.format == opts.format
            && r.video_bytes == bytes
            && r.entry.labels == input.labels
        {
            let mut entry = r.entry;
            entry.video = input.video.clone();
            videos.push(entry);
            reused += 1;
            bar.inc(1);
            continue;
        }
        clear_face_outputs(&dir)?;
        let name = input.name.clone();
        let mut frame_done = |i: usize| {
            if i.is_multiple_of(25) {
                bar.set_message(format!("{name} frame {i}"));
            }
        };
        let (entry, faces) =
            match face_clips(&pipeline, input, &dir, opts, &decode, &mut frame_done) {
                Ok(x) => x,
                Err(e) if opts.strict => return Err(e),
                Err(e) => {
                    tracing::warn!(target: PROGRESS, "skipping {}: {e}", input.video.display());
                    (
                        VideoEntry {
                            video: input.video.clone(),
                            name: input.name.clone(),
                            status: "error".into(),
                            reason: Some(e.to_string()),
                            frames: 0,
                            tracks: 0,
                            clips: Vec::new(),
                            labels: input.labels.clone(),
                        },
                        None,
                    )
                }
            };
        frames += entry.frames;
        if entry.status == "no_face" {
            tracing::warn!(
                target: PROGRESS,
                "{}: {}",
                input.video.display(),
                entry.reason.as_deref().unwrap_or("no face")
            );
        }
        let record = VideoRecord {
            settings: opts.settings.clone(),
            detector_sha256: detector_sha256.clone(),
            format: opts.format,
            video_bytes: bytes,
            entry: entry.clone(),
            faces,
        };
        // An unreadable video leaves no record, so a later run tries it again.
        if record.entry.status != "error" {
            write_atomic(
                &record_path,
                serde_json::to_string(&record).expect("json").as_bytes(),
            )?;
        }
        videos.push(entry);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut list = String::new();
    for v in &videos {
        let labels: Vec<String> = v.labels.iter().map(|l| l.to_string()).collect();
        for clip in &v.clips {
            match opts.format {
                ClipFormat::Frames => {
                    let n = count_frames(&opts.out.join(clip));
                    list.push_str(&format!("{clip} {n} {}\n", labels.join(" ")));
                }
                ClipFormat::Mp4 => list.push_str(&format!("{clip} {}\n", labels.join(" "))),
            }
        }
    }
    write_atomic(&opts.out.join("faces_list.txt"), list.as_bytes())?;
    let manifest = Manifest {
        detector: pipeline.weights().to_path_buf(),
        detector_sha256,
        settings: opts.settings.clone(),
        format: opts.format,
        all_tracks: opts.all_tracks,
        videos: videos.clone(),
    };
    write_atomic(
        &opts.out.join("manifest.json"),
        (serde_json::to_string_pretty(&manifest).expect("json") + "\n").as_bytes(),
    )?;
    Ok(FacesReport {
        out: opts.out.clone(),
        videos,
        reused,
        seconds: start.elapsed().as_secs_f64(),
        frames,
    })
}

/// Removes what an earlier, other or unfinished run wrote for one video (its `faces.json`,
/// `face_*` folders and files), and nothing else that may be in the folder.
fn clear_face_outputs(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let ours = name
            .as_deref()
            .is_some_and(|n| n == "faces.json" || n.starts_with("face_"));
        if !ours {
            continue;
        }
        let removed = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        removed.map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

fn read_record(path: &Path) -> Option<VideoRecord> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn count_frames(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "jpg"))
            })
            .count()
        })
        .unwrap_or(0)
}

/// sha256 of a file, hex.
fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(crate::util::sha256_hex(&bytes))
}

/// Scans one video and writes its clips under `dir`.
fn face_clips(
    pipeline: &FacePipeline,
    input: &FaceInput,
    dir: &Path,
    opts: &FacesOptions,
    decode: &DecodeOptions,
    frame_done: &mut dyn FnMut(usize),
) -> Result<(VideoEntry, Option<VideoFaces>)> {
    let faces = pipeline.scan(&input.video, decode, frame_done)?;
    if let Some(d) = &faces.damage {
        tracing::warn!(
            target: PROGRESS,
            "{}: damaged, used anyway (--allow-damaged): {d}",
            input.video.display()
        );
    }
    let mut entry = VideoEntry {
        video: input.video.clone(),
        name: input.name.clone(),
        status: "ok".into(),
        reason: None,
        frames: faces.frames,
        tracks: faces.tracks.len(),
        clips: Vec::new(),
        labels: input.labels.clone(),
    };
    let Some(main) = faces.main else {
        entry.status = "no_face".into();
        entry.reason = Some(faces.no_face_reason(&pipeline.settings));
        return Ok((entry, Some(faces)));
    };
    // Main face first, then the others in id order.
    let mut ids = vec![main];
    if opts.all_tracks {
        ids.extend(faces.tracks.iter().map(|t| t.id).filter(|&id| id != main));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let size = pipeline.settings.size;
    let mut writers: BTreeMap<u32, VideoWriter> = BTreeMap::new();
    if opts.format == ClipFormat::Mp4 {
        for &id in &ids {
            let path = dir.join(format!("face_{id}.mp4"));
            writers.insert(id, VideoWriter::create(&path, size, size, faces.fps)?);
        }
    }
    pipeline.crops(
        &faces,
        &ids,
        size,
        decode,
        &mut |t, i, crop| match opts.format {
            ClipFormat::Frames => {
                let folder = dir.join(format!("face_{}", t.id));
                let file = folder.join(format!("img_{:05}.jpg", i - t.first + 1));
                write_jpeg(&file, &crop, JPEG_QUALITY)
            }
            ClipFormat::Mp4 => writers
                .get_mut(&t.id)
                .expect("a writer per track")
                .write(&crop),
        },
    )?;
    for (_, w) in writers {
        w.finish()?;
    }
    entry.clips = ids
        .iter()
        .map(|id| match opts.format {
            ClipFormat::Frames => format!("{}/face_{id}", input.name),
            ClipFormat::Mp4 => format!("{}/face_{id}.mp4", input.name),
        })
        .collect();
    Ok((entry, Some(faces)))
}

// ---------------------------------------------------------------------------------------
// `vidapter predict --faces`: each person's emotion over time.
// ---------------------------------------------------------------------------------------

/// The predictions for one face of a video.
#[derive(Debug, Clone, Serialize)]
pub struct TrackPrediction {
    /// Track id (as in `--annotate`'s drawing).
    pub id: u32,
    /// Whether this is the video's main face.
    pub main: bool,
    /// First frame.
    pub first: usize,
    /// Last frame (inclusive).
    pub last: usize,
    /// Most probable class over the whole track.
    pub top: String,
    /// Mean of the windows' probabilities, in class order.
    #[serde(serialize_with = "six_decimals")]
    pub probs: Vec<f32>,
    /// One prediction per window of the track (frames are the video's).
    pub timeline: Vec<WindowPrediction>,
}

/// The faces of one input and their timelines.
#[derive(Debug, Clone, Serialize)]
pub struct FacePrediction {
    /// The video.
    pub path: PathBuf,
    /// Frames decoded.
    pub frames: usize,
    /// Frame rate.
    pub fps: f64,
    /// Per face, main face first.
    pub tracks: Vec<TrackPrediction>,
    /// Why the video could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the user should know (no face found, damage used anyway).
    pub warnings: Vec<String>,
    /// Where `--annotate` wrote the drawn video.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotated: Option<PathBuf>,
}

fn six_decimals<S: serde::Serializer>(p: &[f32], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(p.iter().map(|&x| (x as f64 * 1e6).round() / 1e6))
}

/// The result of `predict --faces`.
#[derive(Debug, Clone)]
pub struct FacePredictReport {
    /// Class names.
    pub classes: Vec<String>,
    /// One per input.
    pub videos: Vec<FacePrediction>,
    /// Seconds of video read.
    pub video_seconds: f64,
    /// Seconds spent (detection, tracking, classification, drawing).
    pub seconds: f64,
}

impl FacePredictReport {
    /// `{"classes": [...], "videos": [...]}`, pretty, with a trailing newline.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(&serde_json::json!({
            "classes": self.classes, "videos": self.videos,
        }))
        .expect("json")
            + "\n"
    }

    /// A header `path,track,main,window_start,window_end,start_s,top,<classes>`, a row per
    /// track (empty window: the whole track) and per window; a video without faces gets
    /// `path,,,,,,no face,`; an unreadable one `path,,,,,,error: <reason>,`.
    pub fn csv(&self) -> String {
        let mut t = format!(
            "path,track,main,window_start,window_end,start_s,top,{}\n",
            self.classes.join(",")
        );
        let probs = |p: &[f32]| {
            p.iter()
                .map(|x| format!("{x:.6}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        for v in &self.videos {
            let path = v.path.display();
            if let Some(e) = &v.error {
                t.push_str(&format!("{path},,,,,,error: {},\n", e.replace(',', ";")));
                continue;
            }
            if v.tracks.is_empty() {
                t.push_str(&format!("{path},,,,,,no face,\n"));
            }
            for tr in &v.tracks {
                t.push_str(&format!(
                    "{path},{},{},,,,{},{}\n",
                    tr.id,
                    tr.main,
                    tr.top,
                    probs(&tr.probs)
                ));
                for w in &tr.timeline {
                    let s = w.start_s.map(|s| format!("{s:.3}")).unwrap_or_default();
                    t.push_str(&format!(
                        "{path},{},{},{},{},{s},{},{}\n",
                        tr.id,
                        tr.main,
                        w.start,
                        w.end,
                        w.top,
                        probs(&w.probs)
                    ));
                }
            }
        }
        t
    }

    /// `<path>: <warning>` each.
    pub fn warnings(&self) -> Vec<String> {
        self.videos
            .iter()
            .flat_map(|v| {
                v.warnings
                    .iter()
                    .map(move |w| format!("{}: {w}", v.path.display()))
            })
            .collect()
    }

    /// Unreadable inputs fail the command once the predictions are written; videos
    /// without faces do not (they have an empty `tracks` and a warning).
    pub fn failure(&self) -> Option<String> {
        let bad = self.videos.iter().filter(|v| v.error.is_some()).count();
        (bad > 0).then(|| {
            format!(
                "{bad} of {} input(s) could not be read; see their `error` field",
                self.videos.len()
            )
        })
    }

    /// Seconds of video per second of processing (above 1: faster than real time).
    pub fn realtime_factor(&self) -> f64 {
        if self.seconds > 0.0 {
            self.video_seconds / self.seconds
        } else {
            0.0
        }
    }
}

/// Options of `predict --faces` beyond [`PredictOptions`].
#[derive(Debug, Clone, Default)]
pub struct FacePredictOptions {
    /// Detector weights instead of the checkpoint's `[data.faces]` one (else the default).
    pub detector: Option<String>,
    /// Run the detector on every N-th frame instead of the checkpoint's setting.
    pub every: Option<usize>,
    /// Write the video with boxes, ids and labels drawn: a file for one input, a folder
    /// (`<stem>.faces.mp4` each) for several.
    pub annotate: Option<PathBuf>,
    /// Use damaged videos with a warning.
    pub allow_damaged: bool,
    /// Progress bar.
    pub progress: bool,
}

/// `vidapter predict --faces`: per video, the faces found and each one's emotion over
/// time in windows of `opts.window` frames (default: one second of video, at least the
/// model's clip length) every `opts.stride` frames (default half a window).
///
/// # Errors
/// The checkpoint or detector cannot be loaded; `--annotate` cannot be written. An
/// unreadable video is an error row, a video without faces an empty `tracks`.
pub fn predict_faces(
    checkpoint: &Path,
    inputs: &[PathBuf],
    opts: &PredictOptions,
    face_opts: &FacePredictOptions,
    device: &Device,
) -> Result<FacePredictReport> {
    let start = Instant::now();
    let (classifier, cfg, prep) = Classifier::load(checkpoint, device)?;
    let settings = face_settings(&cfg, face_opts.detector.as_deref(), face_opts.every);
    let pipeline = FacePipeline::load(&settings)?;
    let decode = DecodeOptions {
        allow_damaged: face_opts.allow_damaged,
        threads: 0,
        ..DecodeOptions::default()
    };
    let names = prep.classes.names.clone();
    let t = classifier.frames;
    let bar = crate::util::progress_bar(
        inputs.len() as u64,
        "predict {bar:25} {pos}/{len} videos  ETA {eta}",
        face_opts.progress,
    );
    let mut videos = Vec::new();
    let mut video_seconds = 0.0;
    for (k, path) in inputs.iter().enumerate() {
        let mut warnings = Vec::new();
        let faces = match pipeline.scan(path, &decode, &mut |_| {}) {
            Ok(f) => f,
            Err(e) => {
                videos.push(FacePrediction {
                    path: path.clone(),
                    frames: 0,
                    fps: 0.0,
                    tracks: Vec::new(),
                    error: Some(e.to_string()),
                    warnings,
                    annotated: None,
                });
                bar.inc(1);
                continue;
            }
        };
        video_seconds += faces.frames as f64 / faces.fps;
        if let Some(d) = &faces.damage {
            warnings.push(format!("damaged, used anyway (--allow-damaged): {d}"));
        }
        if faces.tracks.is_empty() {
            warnings.push(faces.no_face_reason(&settings));
        }
        let window = opts
            .window
            .unwrap_or_else(|| default_window(Some(faces.fps), t))
            .max(1);
        let stride = opts.stride.unwrap_or((window / 2).max(1)).max(1);
        // Crops of every track, kept until classified.
        let ids: Vec<u32> = faces.tracks.iter().map(|t| t.id).collect();
        let mut crops: BTreeMap<u32, Vec<Frame>> = BTreeMap::new();
        pipeline.crops(&faces, &ids, settings.size, &decode, &mut |tr, _, crop| {
            crops.entry(tr.id).or_default().push(crop);
            Ok(())
        })?;
        let mut tracks = Vec::new();
        for tr in &faces.tracks {
            let frames = crops.remove(&tr.id).unwrap_or_default();
            if frames.is_empty() {
                continue;
            }
            let spans = windows(frames.len(), window, stride);
            let seg = Sampling::Segment { frames: t };
            let mut rng = StdRng::seed_from_u64(0);
            let mut probs_all: Vec<f32> = Vec::new();
            for chunk in spans.chunks(16) {
                let mut clips: Vec<Frame> = Vec::with_capacity(chunk.len() * t);
                for &(a, b) in chunk {
                    let idx = seg.indices(b - a, Mode::Test { view: 0, views: 1 }, &mut rng);
                    clips.extend(idx.iter().map(|&i| frames[a + i].clone()));
                }
                probs_all.extend(classifier.probs(&clips)?);
            }
            let k = names.len();
            let timeline: Vec<WindowPrediction> = spans
                .iter()
                .enumerate()
                .map(|(w, &(a, b))| {
                    let p = probs_all[w * k..(w + 1) * k].to_vec();
                    WindowPrediction {
                        start: tr.first + a,
                        end: tr.first + b,
                        start_s: Some((tr.first + a) as f64 / faces.fps),
                        top: top_class(&names, &p),
                        probs: p,
                    }
                })
                .collect();
            let mut mean = vec![0f32; k];
            for w in &timeline {
                for (m, p) in mean.iter_mut().zip(&w.probs) {
                    *m += p / timeline.len() as f32;
                }
            }
            tracks.push(TrackPrediction {
                id: tr.id,
                main: faces.main == Some(tr.id),
                first: tr.first,
                last: tr.last,
                top: top_class(&names, &mean),
                probs: mean,
                timeline,
            });
        }
        tracks.sort_by_key(|t| (!t.main, t.id));
        let annotated = match &face_opts.annotate {
            Some(out) => {
                let file = if inputs.len() == 1 {
                    out.clone()
                } else {
                    let stem = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| format!("video{k}"));
                    out.join(format!("{stem}.faces.mp4"))
                };
                annotate(&faces, &tracks, &file, &decode)?;
                Some(file)
            }
            None => None,
        };
        videos.push(FacePrediction {
            path: path.clone(),
            frames: faces.frames,
            fps: faces.fps,
            tracks,
            error: None,
            warnings,
            annotated,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(FacePredictReport {
        classes: names,
        videos,
        video_seconds,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn top_class(names: &[String], p: &[f32]) -> String {
    let best = p
        .iter()
        .enumerate()
        .fold(0, |b, (i, x)| if *x > p[b] { i } else { b });
    names[best].clone()
}

/// Windows `(start, end)` of `w` frames every `stride` frames over `n` frames, the last one
/// flush with the end; one window of all `n` when `w >= n`.
fn windows(n: usize, w: usize, stride: usize) -> Vec<(usize, usize)> {
    let w = w.clamp(1, n.max(1));
    let mut out = Vec::new();
    let mut s = 0;
    loop {
        out.push((s, s + w));
        if s + w >= n {
            break;
        }
        s = (s + stride).min(n - w);
    }
    out
}

/// Writes `faces.video` to `out` with each face's box, landmarks, id and the class of the
/// window nearest each frame drawn.
fn annotate(
    faces: &VideoFaces,
    tracks: &[TrackPrediction],
    out: &Path,
    decode: &DecodeOptions,
) -> Result<()> {
    let reader = VideoReader::open(&faces.video, decode)
        .map_err(|e| Error::UnreadableClip(e.to_string()))?;
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut writer = VideoWriter::create(out, faces.width, faces.height, faces.fps)?;
    let label_px = (faces.height as f32 / 30.0).clamp(12.0, 40.0);
    let thickness = (faces.height / 240).max(2);
    for (i, frame) in reader.enumerate() {
        let mut frame = frame.map_err(|e| Error::UnreadableClip(e.to_string()))?;
        for face in &faces.tracks {
            let Some(tf) = face.at(i) else { continue };
            let color = track_color(face.id);
            draw_box(&mut frame, tf.bbox, color, thickness);
            draw_points(&mut frame, &tf.landmarks, color, thickness as f32);
            let label = match tracks.iter().find(|t| t.id == face.id) {
                Some(t) => match nearest_window(&t.timeline, i) {
                    Some(w) => {
                        let p = w.probs.iter().copied().fold(0.0f32, f32::max);
                        format!("#{} {} {:.0}%", face.id, w.top, 100.0 * p)
                    }
                    None => format!("#{}", face.id),
                },
                None => format!("#{}", face.id),
            };
            draw_label(
                &mut frame,
                tf.bbox[0],
                tf.bbox[1],
                &label,
                [255, 255, 255],
                color,
                label_px,
            );
        }
        writer.write(&frame)?;
    }
    writer.finish()?;
    Ok(())
}

/// The window whose centre is nearest frame `i`.
fn nearest_window(timeline: &[WindowPrediction], i: usize) -> Option<&WindowPrediction> {
    timeline.iter().min_by_key(|w| {
        let centre2 = w.start + w.end; // twice the centre
        (2 * i).abs_diff(centre2)
    })
}

// ---------------------------------------------------------------------------------------
// `[data.faces]`: train and evaluate on raw videos.
// ---------------------------------------------------------------------------------------

/// Loads `split` of `cfg`'s dataset; with `[data.faces]`, each video entry becomes the
/// aligned crops of its main face, made once and kept in the face cache (a video without a
/// face, or that cannot be read, becomes a problem and is skipped).
///
/// # Errors
/// Those of [`crate::data::config::DatasetConfig::load`]; the detector cannot be loaded;
/// the cache cannot be written.
pub fn load_split(cfg: &RunConfig, split: Split, progress: bool) -> Result<crate::data::Dataset> {
    let mut ds = cfg.data.load(split)?;
    let Some(settings) = &cfg.data.faces else {
        return Ok(ds);
    };
    let cache = settings
        .cache
        .clone()
        .unwrap_or_else(|| cfg.data.root.join(".vidapter-faces"));
    let mut pipeline: Option<FacePipeline> = None;
    let bar = crate::util::progress_bar(
        ds.entries.len() as u64,
        "faces {bar:25} {pos}/{len} clips  ETA {eta}",
        progress,
    );
    let mut entries = Vec::with_capacity(ds.entries.len());
    for entry in std::mem::take(&mut ds.entries) {
        bar.inc(1);
        let Source::Video(video) = &entry.source else {
            entries.push(entry);
            continue;
        };
        match cached_face_clip(video, settings, &cache, &mut pipeline)? {
            Ok((dir, n)) => entries.push(Entry {
                source: Source::Frames {
                    dir,
                    template: Some(FRAME_TEMPLATE.into()),
                    start: 1,
                    count: Some(n),
                },
                ..entry
            }),
            Err(reason) => ds.problems.push(Problem {
                path: video.clone(),
                line: entry.origin.as_ref().map(|o| o.1),
                reason,
            }),
        }
    }
    bar.finish_and_clear();
    ds.entries = entries;
    Ok(ds)
}

/// The cached main-face clip of `video`: `Ok(Ok((folder, frames)))`, or `Ok(Err(why))`
/// for a video without a face or that cannot be read (remembered, so it is not tried
/// again until the video or the settings change).
fn cached_face_clip(
    video: &Path,
    settings: &FaceCrops,
    cache: &Path,
    pipeline: &mut Option<FacePipeline>,
) -> Result<std::result::Result<(PathBuf, usize), String>> {
    let meta = std::fs::metadata(video).map_err(|e| Error::io(video, e))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut key_settings = settings.clone();
    key_settings.cache = None;
    let key = crate::util::sha256_hex(
        format!(
            "{}\n{}\n{modified}\n{}",
            video.display(),
            meta.len(),
            serde_json::to_string(&key_settings).expect("json")
        )
        .as_bytes(),
    );
    let dir = cache.join(&key[..24]);
    let done = dir.join("faces.json");
    if let Ok(text) = std::fs::read_to_string(&done)
        && let Ok(r) = serde_json::from_str::<CachedClip>(&text)
    {
        return Ok(r.result.map(|n| (dir, n)));
    }
    if pipeline.is_none() {
        *pipeline = Some(FacePipeline::load(settings)?);
    }
    let p = pipeline.as_ref().expect("loaded");
    let decode = DecodeOptions {
        threads: 0,
        ..DecodeOptions::default()
    };
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let result = match p.scan(video, &decode, &mut |_| {}) {
        Err(e) => Err(e.to_string()),
        Ok(faces) => match faces.main {
            None => Err(faces.no_face_reason(settings)),
            Some(main) => {
                let mut n = 0;
                p.crops(
                    &faces,
                    &[main],
                    settings.size,
                    &decode,
                    &mut |t, i, crop| {
                        n += 1;
                        write_jpeg(
                            &dir.join(format!("img_{:05}.jpg", i - t.first + 1)),
                            &crop,
                            JPEG_QUALITY,
                        )
                    },
                )?;
                Ok(n)
            }
        },
    };
    let record = CachedClip {
        video: video.to_path_buf(),
        result: result.clone(),
    };
    write_atomic(
        &done,
        serde_json::to_string(&record).expect("json").as_bytes(),
    )?;
    Ok(result.map(|n| (dir, n)))
}

/// `faces.json` of a face-cache folder.
#[derive(Debug, Serialize, Deserialize)]
struct CachedClip {
    video: PathBuf,
    /// Frames written, or why there are none.
    result: std::result::Result<usize, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_track_and_end_flush() {
        assert_eq!(windows(10, 4, 2), [(0, 4), (2, 6), (4, 8), (6, 10)]);
        assert_eq!(windows(10, 4, 5), [(0, 4), (5, 9), (6, 10)]);
        assert_eq!(windows(3, 8, 4), [(0, 3)]);
        assert_eq!(windows(1, 1, 1), [(0, 1)]);
    }

    #[test]
    fn names_are_made_unique() {
        let i = |n: &str| FaceInput {
            video: format!("{n}.mp4").into(),
            name: n.into(),
            labels: vec![0],
        };
        let names: Vec<String> = unique_names(vec![i("a"), i("b"), i("a"), i("a")])
            .into_iter()
            .map(|x| x.name)
            .collect();
        assert_eq!(names, ["a", "b", "a-2", "a-3"]);
    }

    #[test]
    fn a_list_line_without_labels_names_file_and_line() {
        let dir = crate::util::tempdir().unwrap();
        let list = dir.path().join("l.txt");
        std::fs::write(&list, "a.mp4 1\n\nb.mp4\n").unwrap();
        let e = inputs_from_list(&list, dir.path()).unwrap_err().to_string();
        assert!(e.contains("l.txt") && e.contains("line 3"), "{e}");
        std::fs::write(&list, "# c\nx/a.mp4 1 2\n").unwrap();
        let got = inputs_from_list(&list, dir.path()).unwrap();
        assert_eq!(got[0].name, "x/a");
        assert_eq!(got[0].labels, [1, 2]);
    }

    #[test]
    fn the_nearest_window_is_picked_by_centre() {
        let w = |start, end| WindowPrediction {
            start,
            end,
            start_s: None,
            top: format!("{start}"),
            probs: vec![1.0],
        };
        let t = [w(0, 10), w(5, 15), w(10, 20)];
        assert_eq!(nearest_window(&t, 0).unwrap().start, 0);
        assert_eq!(nearest_window(&t, 11).unwrap().start, 5);
        assert_eq!(nearest_window(&t, 19).unwrap().start, 10);
        assert!(nearest_window(&[], 3).is_none());
    }
}
