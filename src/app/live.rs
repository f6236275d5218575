//! `vidapter predict --live SOURCE`: classify a camera, a network stream or a pipe as it
//! comes, one record per sliding window, flushed at once.
//!
//! Two threads share a ring of decoded frames (`Ring`):
//! - the **reader** decodes the source into the ring as fast as it delivers. In real-time
//!   mode (a paced source: a stream, a camera, a pipe) it never waits for the model: the
//!   ring holds `window + stride` frames and the oldest fall out. In lossless mode (a file,
//!   or `--lossless`) it waits until the model is done with the oldest frame, so every
//!   window is classified and the source is held back instead. When the source fails or
//!   stalls it reconnects (network streams and cameras) with a back-off of 0.5, 1, 2, 4,
//!   8 s, up to `--reconnect` attempts in a row; a pipe or a file that ends has ended.
//! - the **classifier** (the calling thread) waits for a complete window on the grid
//!   `origin + k * stride` (the origin is the first frame of the current connection), and
//!   in real-time mode takes the newest complete one, skipping those it is too late for;
//!   the frames no classified window covered are the record's `dropped`. It samples the
//!   window as `predict --timeline` does (the checkpoint's clip length, segment sampling),
//!   classifies it and writes the record. At the end of a stream it classifies the last
//!   window flush with the last frame, as `predict --timeline` does, so a lossless run over
//!   the same frames gives the same windows and probabilities as `predict --timeline`.
//!
//! Latency is measured from the arrival (decoded and converted) of a window's newest frame
//! to its record being flushed. Memory is bounded by the ring: it does not grow with the
//! length of the run.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use super::experiment::{Classifier, default_window};
use super::faces::{FacePipeline, face_settings};
use crate::data::decode::{Frame, LiveOptions, LiveReader, LiveSource};
use crate::data::sampling::{Mode, Sampling};
use crate::error::{Error, Result};
use crate::faces::align::{AlignConfig, align};
use crate::faces::track::{OneEuro, Tracker, TrackerConfig};
use crate::util::PROGRESS;

/// How `predict --live` runs.
#[derive(Debug, Clone)]
pub struct LiveRun {
    /// What the user typed: `-`, `/dev/video0`, a URL, a file or FIFO.
    pub source: String,
    /// Frames per window (default: one second of the source, at least the clip length).
    pub window: Option<usize>,
    /// Frames between window starts (default: half a window).
    pub stride: Option<usize>,
    /// Crop every frame to `(x, y, w, h)` first.
    pub crop: Option<[usize; 4]>,
    /// Classes per record, most probable first.
    pub top_k: usize,
    /// CSV rows instead of JSON lines.
    pub csv: bool,
    /// Classify every window, holding the source back (`None`: for files only).
    pub lossless: Option<bool>,
    /// Opening and reading the source.
    pub reader: LiveOptions,
    /// Reconnect attempts in a row before giving up on a lost stream.
    pub reconnect: usize,
    /// Stop after this long (wall clock), as SIGINT would.
    pub duration: Option<Duration>,
    /// Show a status line on stderr.
    pub progress: bool,
    /// Follow each face and classify its aligned crops (one record per face and window).
    pub faces: Option<LiveFaceOptions>,
}

impl Default for LiveRun {
    fn default() -> Self {
        LiveRun {
            source: String::new(),
            window: None,
            stride: None,
            crop: None,
            top_k: 3,
            csv: false,
            lossless: None,
            reader: LiveOptions::default(),
            reconnect: 5,
            duration: None,
            progress: false,
            faces: None,
        }
    }
}

/// One class and its probability.
#[derive(Debug, Clone, Serialize)]
pub struct ClassProb {
    /// Class name.
    pub class: String,
    /// Probability (written with 6 decimals).
    #[serde(serialize_with = "six_decimals")]
    pub p: f32,
}

fn six_decimals<S: serde::Serializer>(p: &f32, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64((f64::from(*p) * 1e6).round() / 1e6)
}

fn tenth<S: serde::Serializer>(t: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64((t * 10.0).round() / 10.0)
}

/// One classified window.
#[derive(Debug, Clone, Serialize)]
pub struct LiveRecord {
    /// Records so far (0-based).
    pub window: usize,
    /// With `--faces`: the face's track id (as the tracker numbers them, from 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub face: Option<u32>,
    /// First frame, counted from the first frame of the run (across reconnects).
    pub start: usize,
    /// One past the last frame.
    pub end: usize,
    /// The stream's time of the first frame, in seconds, when it carries timestamps.
    #[serde(serialize_with = "super::experiment::seconds_ms")]
    pub pts: Option<f64>,
    /// From the arrival of the window's newest frame to this record, in milliseconds
    /// (written to 0.1 ms).
    #[serde(serialize_with = "tenth")]
    pub latency_ms: f64,
    /// Frames since the previous record that no classified window covered (the model was
    /// behind the source).
    pub dropped: usize,
    /// The most probable classes, most probable first.
    pub top: Vec<ClassProb>,
}

impl LiveRecord {
    /// The CSV header for records with `k` classes.
    pub fn csv_header(k: usize) -> String {
        let mut h = "window,face,start,end,pts,latency_ms,dropped".to_string();
        for i in 1..=k {
            h.push_str(&format!(",class{i},p{i}"));
        }
        h
    }

    /// One CSV row (no newline).
    pub fn csv_row(&self) -> String {
        let pts = self.pts.map_or(String::new(), |t| format!("{t:.3}"));
        let face = self.face.map_or(String::new(), |f| f.to_string());
        let mut r = format!(
            "{},{face},{},{},{pts},{:.1},{}",
            self.window, self.start, self.end, self.latency_ms, self.dropped
        );
        for c in &self.top {
            r.push_str(&format!(",{},{:.6}", c.class, c.p));
        }
        r
    }
}

/// What a live run did, printed at its end.
#[derive(Debug, Clone, Serialize)]
pub struct LiveSummary {
    /// The source.
    pub source: String,
    /// Frames decoded.
    pub frames: usize,
    /// Windows classified.
    pub windows: usize,
    /// Frames no classified window covered because the model was behind.
    pub dropped: usize,
    /// `dropped / frames`.
    pub drop_rate: f64,
    /// Broken packets or frames the decoder reported (lost network packets).
    pub decode_errors: usize,
    /// Successful reconnections.
    pub reconnects: usize,
    /// Mean latency (ms) from a window's newest frame to its record.
    pub latency_mean_ms: f64,
    /// 95th percentile of that latency (ms).
    pub latency_p95_ms: f64,
    /// Mean time (ms) the model took per window (resize, normalise, forward, softmax).
    pub model_ms_mean: f64,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// Frames decoded per second of the run.
    pub input_fps: f64,
    /// Frames per window and between windows.
    pub window: usize,
    /// Frames between window starts.
    pub stride: usize,
    /// Whether every window was classified (the source held back).
    pub lossless: bool,
    /// With `--faces`: face tracks followed (a face lost for longer than `max_miss` frames
    /// and found again counts again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faces: Option<usize>,
    /// Why it ended: `end of stream`, `interrupted`, `time limit`, or the error.
    pub end: String,
    /// Whether it ended on an error (the exit status is then 1).
    pub failed: bool,
}

impl fmt::Display for LiveSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "live {}: {} frames in {:.1} s ({:.1} frames/s), {}{} windows of {} (stride {}), {} frames dropped ({:.1}%), latency mean {:.0} ms, p95 {:.0} ms, {} decode errors, {} reconnect(s); {}",
            self.source,
            self.frames,
            self.seconds,
            self.input_fps,
            match self.faces {
                Some(0) => "no face found, ".to_string(),
                Some(n) => format!("{n} face track(s), "),
                None => String::new(),
            },
            self.windows,
            self.window,
            self.stride,
            self.dropped,
            self.drop_rate * 100.0,
            self.latency_mean_ms,
            self.latency_p95_ms,
            self.decode_errors,
            self.reconnects,
            self.end
        )
    }
}

/// A decoded frame in the ring.
struct Slot {
    seq: usize,
    frame: Arc<Frame>,
    pts: Option<f64>,
    arrival: Instant,
}

/// How the reader ended.
#[derive(Debug, Clone)]
enum End {
    Stream,
    Stopped,
    Failed(String),
}

struct State {
    frames: VecDeque<Slot>,
    /// Sequence number of the next frame.
    next_seq: usize,
    /// First frame of the current connection.
    origin: usize,
    /// Connections made (windows never span two).
    connection: usize,
    /// Lossless mode: the reader keeps every frame from here.
    need_from: usize,
    reconnects: usize,
    decode_errors: usize,
    end: Option<End>,
}

/// The frames shared by the reader and the classifier.
struct Ring {
    state: Mutex<State>,
    changed: Condvar,
    capacity: usize,
    lossless: bool,
    stop: Arc<AtomicBool>,
}

impl Ring {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in the other thread would poison the lock; the state is still coherent
        // (every update is a few field writes), so it is used as is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a frame; in lossless mode first waits while the ring is full of frames the
    /// classifier still needs.
    fn push(&self, frame: Frame, pts: Option<f64>) {
        let mut st = self.lock();
        if self.lossless {
            while st.frames.len() >= self.capacity
                && st.frames.front().is_some_and(|s| s.seq >= st.need_from)
                && !self.stop.load(Ordering::Relaxed)
            {
                st = self
                    .changed
                    .wait_timeout(st, Duration::from_millis(100))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        st.frames.push_back(Slot {
            seq,
            frame: Arc::new(frame),
            pts,
            arrival: Instant::now(),
        });
        while st.frames.len() > self.capacity {
            st.frames.pop_front();
        }
        drop(st);
        self.changed.notify_all();
    }

    fn connected(&self) {
        let mut st = self.lock();
        st.origin = st.next_seq;
        st.connection += 1;
        drop(st);
        self.changed.notify_all();
    }

    fn finish(&self, end: End) {
        self.lock().end = Some(end);
        self.changed.notify_all();
    }
}

/// A window ready to classify.
struct Job {
    start: usize,
    frames: Vec<Arc<Frame>>,
    pts: Option<f64>,
    newest_arrival: Instant,
}

/// Runs `predict --live`: records to `out` as they come (flushed each), the summary
/// returned at the end (end of stream, SIGINT via `stop`, the time limit, or giving up on
/// a lost source).
///
/// # Errors
/// The checkpoint does not load; the source does not open (naming it); the window is
/// shorter than the checkpoint's clip; the crop box does not fit the frames; writing
/// fails.
pub fn run_live(
    checkpoint: &Path,
    run: &LiveRun,
    stop: Arc<AtomicBool>,
    out: &mut dyn Write,
    device: &Device,
) -> Result<LiveSummary> {
    let (classifier, cfg, _prep) = Classifier::load(checkpoint, device)?;
    let faces = match &run.faces {
        Some(f) => Some(LiveFaces {
            pipeline: FacePipeline::load(&face_settings(&cfg, f.detector.as_deref(), f.every))?,
        }),
        None => None,
    };
    run_live_with(&classifier, faces.as_ref(), run, stop, out)
}

/// [`run_live`] with a model already loaded (the benchmark runs one without a checkpoint).
///
/// # Errors
/// As [`run_live`].
pub fn run_live_with(
    classifier: &Classifier,
    faces: Option<&LiveFaces>,
    run: &LiveRun,
    stop: Arc<AtomicBool>,
    out: &mut dyn Write,
) -> Result<LiveSummary> {
    let t = classifier.frames;
    let source = LiveSource::parse(&run.source);
    let label = source.label();
    let first = LiveReader::open(&source, &run.reader, Arc::clone(&stop))
        .map_err(|e| Error::Input(e.to_string()))?;
    let w = run.window.unwrap_or_else(|| default_window(first.fps(), t));
    if w < t {
        return Err(Error::Input(format!(
            "--timeline {w} is shorter than the checkpoint's clip of {t} frames"
        )));
    }
    let stride = run.stride.unwrap_or((w / 2).max(1)).max(1);
    let lossless = run.lossless.unwrap_or(!source.paced());
    let k = run.top_k.clamp(1, classifier.classes.len());
    let ring = Arc::new(Ring {
        state: Mutex::new(State {
            frames: VecDeque::new(),
            next_seq: 0,
            origin: 0,
            connection: 0,
            need_from: 0,
            reconnects: 0,
            decode_errors: 0,
            end: None,
        }),
        changed: Condvar::new(),
        capacity: w + stride,
        lossless,
        stop: Arc::clone(&stop),
    });
    let reader = {
        let ring = Arc::clone(&ring);
        let opts = run.reader.clone();
        let max = run.reconnect;
        let source = source.clone();
        std::thread::spawn(move || read_loop(first, &source, &opts, max, &ring))
    };
    if run.csv {
        writeln!(out, "{}", LiveRecord::csv_header(k))
            .and_then(|()| out.flush())
            .map_err(|e| Error::io("the records' output", e))?;
    }
    let mut emit = Emitter {
        classifier,
        k,
        csv: run.csv,
        crop: run.crop,
        out,
        latencies: Vec::new(),
        model_ms: Vec::new(),
        dropped: 0,
        status: crate::util::progress_bar(0, "{spinner} {msg}", run.progress),
        label: label.clone(),
        faces_seen: None,
    };
    let clock = Clock {
        started: Instant::now(),
        limit: run.duration,
        stop: Arc::clone(&stop),
        timed_out: AtomicBool::new(false),
    };
    let grid = Grid {
        w,
        stride,
        lossless,
    };
    let outcome = match faces {
        Some(f) => faces_loop(&ring, &grid, f, &clock, &mut emit),
        None => windows_loop(&ring, &grid, &clock, &mut emit),
    };
    let timed_out = clock.timed_out.load(Ordering::Relaxed);
    let started = clock.started;
    let Emitter {
        latencies,
        model_ms,
        dropped: dropped_total,
        status,
        faces_seen,
        ..
    } = emit;
    status.finish_and_clear();
    if outcome.is_err() {
        // The reader ends within one read once `stop` is set (FFmpeg's interrupt callback).
        stop.store(true, Ordering::Relaxed);
    }
    let _ = reader.join();
    outcome?;
    let st = ring.lock();
    let (frames, decode_errors, reconnects) = (st.next_seq, st.decode_errors, st.reconnects);
    let (end, failed) = match &st.end {
        Some(End::Failed(e)) => (e.clone(), true),
        Some(End::Stopped) if timed_out => ("time limit".to_string(), false),
        Some(End::Stopped) => ("interrupted".to_string(), false),
        Some(End::Stream) | None => ("end of stream".to_string(), false),
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut sorted = latencies;
    sorted.sort_by(f64::total_cmp);
    Ok(LiveSummary {
        source: label,
        frames,
        windows: sorted.len(),
        dropped: dropped_total,
        drop_rate: if frames > 0 {
            dropped_total as f64 / frames as f64
        } else {
            0.0
        },
        decode_errors,
        reconnects,
        latency_mean_ms: if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().sum::<f64>() / sorted.len() as f64
        },
        latency_p95_ms: percentile(&sorted, 0.95),
        model_ms_mean: if model_ms.is_empty() {
            0.0
        } else {
            model_ms.iter().sum::<f64>() / model_ms.len() as f64
        },
        seconds,
        input_fps: frames as f64 / seconds.max(1e-9),
        window: w,
        stride,
        lossless,
        faces: faces_seen,
        end,
        failed,
    })
}

/// Face tracking for `predict --live --faces`: the detector and crop settings.
pub struct LiveFaces {
    /// The detector with the checkpoint's `[data.faces]` settings.
    pub pipeline: FacePipeline,
}

/// `--faces` with `--live`: the detector and how often it runs.
#[derive(Debug, Clone, Default)]
pub struct LiveFaceOptions {
    /// Detector weights (default: the checkpoint's, else the installed CenterFace).
    pub detector: Option<String>,
    /// Run the detector on every N-th frame read (default: the checkpoint's setting).
    pub every: Option<usize>,
}

/// The window grid.
struct Grid {
    w: usize,
    stride: usize,
    lossless: bool,
}

/// The wall clock of a run: its time limit sets `stop` as SIGINT would.
struct Clock {
    started: Instant,
    limit: Option<Duration>,
    stop: Arc<AtomicBool>,
    timed_out: AtomicBool,
}

impl Clock {
    fn check(&self) {
        if self.limit.is_some_and(|d| self.started.elapsed() >= d)
            && !self.stop.load(Ordering::Relaxed)
        {
            self.timed_out.store(true, Ordering::Relaxed);
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Classifies windows and writes their records, keeping the run's figures.
struct Emitter<'a> {
    classifier: &'a Classifier,
    k: usize,
    csv: bool,
    crop: Option<[usize; 4]>,
    out: &'a mut dyn Write,
    latencies: Vec<f64>,
    model_ms: Vec<f64>,
    dropped: usize,
    status: indicatif::ProgressBar,
    label: String,
    /// With `--faces`: face tracks seen so far.
    faces_seen: Option<usize>,
}

/// A window ready to classify.
struct Window {
    face: Option<u32>,
    start: usize,
    end: usize,
    pts: Option<f64>,
    dropped: usize,
    frames: Vec<Frame>,
    newest_arrival: Instant,
}

impl Emitter<'_> {
    fn emit(&mut self, w: Window) -> Result<()> {
        let frames = match self.crop {
            Some(b) => w
                .frames
                .iter()
                .map(|f| super::experiment::crop_frame(f, b))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Input(format!("--crop: {e}")))?,
            None => w.frames,
        };
        let began = Instant::now();
        let probs = self.classifier.probs(&frames)?;
        self.model_ms.push(began.elapsed().as_secs_f64() * 1e3);
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        self.dropped += w.dropped;
        let mut record = LiveRecord {
            window: self.latencies.len(),
            face: w.face,
            start: w.start,
            end: w.end,
            pts: w.pts,
            latency_ms: 0.0,
            dropped: w.dropped,
            top: order[..self.k]
                .iter()
                .map(|&c| ClassProb {
                    class: self.classifier.classes[c].clone(),
                    p: probs[c],
                })
                .collect(),
        };
        record.latency_ms = w.newest_arrival.elapsed().as_secs_f64() * 1e3;
        let line = if self.csv {
            record.csv_row()
        } else {
            serde_json::to_string(&record).expect("json")
        };
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(|e| Error::io("the records' output", e))?;
        self.latencies
            .push(w.newest_arrival.elapsed().as_secs_f64() * 1e3);
        self.status.set_message(format!(
            "live {}: window {} at frame {}, latency {:.0} ms, {} dropped",
            self.label, record.window, record.end, record.latency_ms, self.dropped
        ));
        self.status.tick();
        Ok(())
    }
}

/// Waits on the ring for `ready` (which may take what it needs from the state), checking
/// the clock; `None` once `ready` says so.
fn wait_for<T>(
    ring: &Ring,
    clock: &Clock,
    mut ready: impl FnMut(&mut State) -> Option<Option<T>>,
) -> Option<T> {
    let mut st = ring.lock();
    loop {
        clock.check();
        if let Some(r) = ready(&mut st) {
            return r;
        }
        st = ring
            .changed
            .wait_timeout(st, Duration::from_millis(100))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// The frames of a window of `w` that a clip of `t` takes, as `predict --timeline` samples
/// a window (segment sampling, the test view).
fn window_offsets(t: usize, w: usize) -> Vec<usize> {
    Sampling::Segment { frames: t }.indices(
        w,
        Mode::Test { view: 0, views: 1 },
        &mut StdRng::seed_from_u64(0),
    )
}

/// Whole frames, window by window (see the module doc).
fn windows_loop(ring: &Ring, grid: &Grid, clock: &Clock, emit: &mut Emitter<'_>) -> Result<()> {
    let (w, stride) = (grid.w, grid.stride);
    let offsets = window_offsets(emit.classifier.frames, w);
    let (mut connection, mut next_start, mut covered_end) = (0, 0, 0);
    let mut flushed = false;
    loop {
        let job = wait_for(ring, clock, |st| {
            if st.connection != connection {
                connection = st.connection;
                next_start = st.origin;
                covered_end = st.origin;
                flushed = false;
            }
            let newest = st.next_seq;
            let oldest = st.frames.front().map_or(newest, |s| s.seq);
            if next_start + w <= newest {
                let start = if grid.lossless {
                    next_start
                } else {
                    next_start + (newest - w - next_start) / stride * stride
                };
                return Some(Some(take(st, start, w, oldest, &offsets)));
            }
            if st.end.is_some() {
                // The stream ended: the last window flush with the last frame, as
                // `predict --timeline` ends.
                let ended = matches!(st.end, Some(End::Stream));
                if ended
                    && !flushed
                    && covered_end < newest
                    && newest >= st.origin + w
                    && newest - w >= oldest
                    && covered_end > st.origin
                {
                    flushed = true;
                    return Some(Some(take(st, newest - w, w, oldest, &offsets)));
                }
                return Some(None);
            }
            None
        });
        let Some(job) = job else { return Ok(()) };
        // Frames the grid meant to cover and no window did (a stride longer than the window
        // leaves gaps by design: those are not dropped).
        let dropped = job.start.saturating_sub(covered_end.max(next_start));
        covered_end = covered_end.max(job.start + w);
        next_start = job.start + stride;
        ring.lock().need_from = next_start;
        ring.changed.notify_all();
        emit.emit(Window {
            face: None,
            start: job.start,
            end: job.start + w,
            pts: job.pts,
            dropped,
            frames: job.frames.iter().map(|f| (**f).clone()).collect(),
            newest_arrival: job.newest_arrival,
        })?;
    }
}

/// One face being followed: its aligned crops since its next window's start.
struct FaceState {
    crops: VecDeque<(usize, Frame, Option<f64>, Instant)>,
    next_start: usize,
    euro: OneEuro,
    last_seen: usize,
}

/// Frame by frame: detect (every N-th frame read), track, align each face and classify each
/// face's windows on the grid `first frame + k * stride` of its own track. Behind the
/// source, only the newest frame is taken and those in between are dropped; a window then
/// samples, for each of its offsets, the nearest crop the track has.
fn faces_loop(
    ring: &Ring,
    grid: &Grid,
    faces: &LiveFaces,
    clock: &Clock,
    emit: &mut Emitter<'_>,
) -> Result<()> {
    let (w, stride) = (grid.w, grid.stride);
    let settings = faces.pipeline.settings().clone();
    let offsets = window_offsets(emit.classifier.frames, w);
    let align_cfg = AlignConfig {
        size: settings.size,
        margin: settings.margin,
    };
    let new_tracker = || {
        Tracker::new(TrackerConfig {
            max_miss: settings.max_miss,
            min_hits: 1,
            ..TrackerConfig::default()
        })
    };
    let mut tracker = new_tracker();
    let mut tracks: BTreeMap<u32, FaceState> = BTreeMap::new();
    let (mut connection, mut next_seq, mut read) = (0, 0, 0usize);
    let mut dropped_since = 0;
    let mut seen = std::collections::BTreeSet::new();
    emit.faces_seen = Some(0);
    loop {
        let got = wait_for(ring, clock, |st| {
            if st.connection != connection {
                connection = st.connection;
                next_seq = st.origin;
                tracker = new_tracker();
                tracks.clear();
            }
            let newest = st.next_seq;
            if next_seq < newest {
                let oldest = st.frames.front().map_or(newest, |s| s.seq);
                let seq = if grid.lossless {
                    next_seq.max(oldest)
                } else {
                    newest - 1
                };
                dropped_since += seq - next_seq;
                let slot = &st.frames[seq - oldest];
                let got = (seq, Arc::clone(&slot.frame), slot.pts, slot.arrival);
                next_seq = seq + 1;
                st.need_from = next_seq;
                return Some(Some(got));
            }
            st.end.is_some().then_some(None)
        });
        ring.changed.notify_all();
        let Some((seq, frame, pts, arrival)) = got else {
            // Frames skipped since the last record still count in the summary.
            emit.dropped += dropped_since;
            return Ok(());
        };
        if read.is_multiple_of(settings.every) {
            let dets = faces.pipeline.detect(&frame)?;
            tracker.update(seq, &dets);
        }
        read += 1;
        let active = tracker.active();
        tracks.retain(|id, _| active.iter().any(|(a, _)| a == id));
        for (id, det) in active {
            if seen.insert((connection, id)) {
                emit.faces_seen = Some(seen.len());
            }
            let face = tracks.entry(id).or_insert_with(|| FaceState {
                crops: VecDeque::new(),
                next_start: seq,
                euro: OneEuro::default(),
                last_seen: seq,
            });
            let dt = (seq - face.last_seen).max(1) as f32;
            face.last_seen = seq;
            let smooth = face.euro.smooth_dt(&det, dt);
            let crop = align(&frame, &smooth.landmarks, &align_cfg);
            face.crops.push_back((seq, crop, pts, arrival));
            if seq + 1 < face.next_start + w {
                continue;
            }
            // A complete window [start, start + w): each offset takes the nearest crop.
            let start = face.next_start;
            let pick = |o: usize| {
                let target = start + o;
                face.crops
                    .iter()
                    .min_by_key(|(s, ..)| s.abs_diff(target))
                    .map(|(_, c, ..)| c.clone())
                    .expect("the track has this frame's crop")
            };
            let frames: Vec<Frame> = offsets.iter().map(|&o| pick(o)).collect();
            let first_pts = face.crops.front().and_then(|c| c.2);
            face.next_start = if grid.lossless {
                start + stride
            } else {
                // Behind the source: the next window on the grid that is not complete yet.
                start + ((seq + 1 - w - start) / stride + 1) * stride
            };
            let keep_from = face.next_start;
            // Keep the newest crop before the next window too (the nearest to its start).
            while face.crops.len() > 1 && face.crops[1].0 <= keep_from {
                face.crops.pop_front();
            }
            emit.emit(Window {
                face: Some(id),
                start,
                end: start + w,
                pts: first_pts,
                dropped: std::mem::take(&mut dropped_since),
                frames,
                newest_arrival: arrival,
            })?;
        }
    }
}

/// The `q` quantile of sorted values (nearest rank); 0 when empty.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The sampled frames of the window `[start, start + w)`, which the ring holds.
fn take(st: &State, start: usize, w: usize, oldest: usize, offsets: &[usize]) -> Job {
    let slot = |seq: usize| &st.frames[seq - oldest];
    Job {
        start,
        frames: offsets
            .iter()
            .map(|&o| Arc::clone(&slot(start + o).frame))
            .collect(),
        pts: slot(start).pts,
        newest_arrival: slot(start + w - 1).arrival,
    }
}

/// The reader thread: decodes into the ring, reconnecting a lost network stream or camera.
fn read_loop(
    first: LiveReader,
    source: &LiveSource,
    opts: &LiveOptions,
    max_attempts: usize,
    ring: &Ring,
) {
    let label = source.label();
    let mut reader = Some(first);
    let mut attempts = 0usize;
    let mut last_error = String::new();
    loop {
        if let Some(mut r) = reader.take() {
            ring.connected();
            let lost = loop {
                match r.next_frame() {
                    Ok(Some(f)) => {
                        attempts = 0;
                        ring.push(f.frame, f.pts);
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            ring.lock().decode_errors += r.decode_errors();
            if ring.stop.load(Ordering::Relaxed) {
                return ring.finish(End::Stopped);
            }
            if !source.reconnects() {
                return ring.finish(match lost {
                    None => End::Stream,
                    Some(e) => End::Failed(e.to_string()),
                });
            }
            last_error = match lost {
                None => format!("{label}: the stream ended"),
                Some(e) => e.to_string(),
            };
        }
        if attempts >= max_attempts {
            return ring.finish(End::Failed(format!(
                "{last_error}; gave up after {max_attempts} reconnect attempt(s)"
            )));
        }
        attempts += 1;
        let wait = Duration::from_millis(500 << (attempts - 1).min(4));
        tracing::warn!(
            target: PROGRESS,
            "{last_error}; reconnecting in {:.1} s (attempt {attempts} of {max_attempts})",
            wait.as_secs_f64()
        );
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if ring.stop.load(Ordering::Relaxed) {
                return ring.finish(End::Stopped);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        match LiveReader::open(source, opts, Arc::clone(&ring.stop)) {
            Ok(r) => {
                ring.lock().reconnects += 1;
                tracing::warn!(target: PROGRESS, "{label}: reconnected");
                reader = Some(r);
            }
            Err(e) => {
                if ring.stop.load(Ordering::Relaxed) {
                    return ring.finish(End::Stopped);
                }
                last_error = e.to_string();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_window_is_a_second_and_at_least_a_clip() {
        assert_eq!(default_window(Some(25.0), 8), 25);
        assert_eq!(default_window(Some(29.97), 8), 30);
        assert_eq!(default_window(Some(5.0), 8), 8);
        assert_eq!(default_window(None, 8), 25);
        assert_eq!(default_window(Some(f64::NAN), 8), 25);
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&[3.0], 0.95), 3.0);
        assert_eq!(percentile(&[], 0.95), 0.0);
    }

    #[test]
    fn csv_rows_match_the_header() {
        let r = LiveRecord {
            window: 2,
            face: None,
            start: 24,
            end: 48,
            pts: Some(0.96),
            latency_ms: 41.26,
            dropped: 3,
            top: vec![
                ClassProb {
                    class: "smile".into(),
                    p: 0.75,
                },
                ClassProb {
                    class: "frown".into(),
                    p: 0.25,
                },
            ],
        };
        assert_eq!(
            LiveRecord::csv_header(2),
            "window,face,start,end,pts,latency_ms,dropped,class1,p1,class2,p2"
        );
        assert_eq!(
            r.csv_row(),
            "2,,24,48,0.960,41.3,3,smile,0.750000,frown,0.250000"
        );
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"window":2,"start":24,"end":48,"pts":0.96,"latency_ms":41.3,"dropped":3,"top":[{"class":"smile","p":0.75},{"class":"frown","p":0.25}]}"#
        );
    }
}
