//! `vidapter predict --live SOURCE`: classify a camera, a network stream or a pipe as it
//! comes, one record per sliding window, flushed at once.
//!
//! Two threads share a ring of decoded frames ([`Ring`]):
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

use std::collections::VecDeque;
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

use super::experiment::Classifier;
use crate::data::decode::{Frame, LiveOptions, LiveReader, LiveSource};
use crate::data::sampling::{Mode, Sampling};
use crate::error::{Error, Result};
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

fn millis<S: serde::Serializer>(t: &Option<f64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&((t * 1e3).round() / 1e3)),
        None => s.serialize_none(),
    }
}

/// One classified window.
#[derive(Debug, Clone, Serialize)]
pub struct LiveRecord {
    /// Records so far (0-based).
    pub window: usize,
    /// First frame, counted from the first frame of the run (across reconnects).
    pub start: usize,
    /// One past the last frame.
    pub end: usize,
    /// The stream's time of the first frame, in seconds, when it carries timestamps.
    #[serde(serialize_with = "millis")]
    pub pts: Option<f64>,
    /// From the arrival of the window's newest frame to this record, in milliseconds.
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
        let mut h = "window,start,end,pts,latency_ms,dropped".to_string();
        for i in 1..=k {
            h.push_str(&format!(",class{i},p{i}"));
        }
        h
    }

    /// One CSV row (no newline).
    pub fn csv_row(&self) -> String {
        let pts = self.pts.map_or(String::new(), |t| format!("{t:.3}"));
        let mut r = format!(
            "{},{},{},{pts},{:.1},{}",
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
    /// Why it ended: `end of stream`, `interrupted`, `time limit`, or the error.
    pub end: String,
    /// Whether it ended on an error (the exit status is then 1).
    pub failed: bool,
}

impl fmt::Display for LiveSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "live {}: {} frames in {:.1} s ({:.1} frames/s), {} windows of {} (stride {}), {} frames dropped ({:.1}%), latency mean {:.0} ms, p95 {:.0} ms, {} decode errors, {} reconnect(s); {}",
            self.source,
            self.frames,
            self.seconds,
            self.input_fps,
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

/// Frames per window by default: one second of the source, at least one clip.
fn default_window(fps: Option<f64>, clip: usize) -> usize {
    let second = fps
        .filter(|f| f.is_finite() && *f > 0.0)
        .map_or(25, |f| f.round() as usize);
    second.max(clip)
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
    let (classifier, _cfg, _prep) = Classifier::load(checkpoint, device)?;
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
    let status = crate::util::progress_bar(0, "{spinner} {msg}", run.progress);
    let started = Instant::now();
    let offsets = Sampling::Segment { frames: t }.indices(
        w,
        Mode::Test { view: 0, views: 1 },
        &mut StdRng::seed_from_u64(0),
    );
    let mut latencies: Vec<f64> = Vec::new();
    let mut dropped_total = 0;
    let (mut connection, mut next_start, mut covered_end) = (0, 0, 0);
    let mut flushed = false;
    let mut timed_out = false;
    let outcome: Result<()> = loop {
        if run.duration.is_some_and(|d| started.elapsed() >= d) && !stop.load(Ordering::Relaxed) {
            timed_out = true;
            stop.store(true, Ordering::Relaxed);
        }
        let job = {
            let mut st = ring.lock();
            loop {
                if st.connection != connection {
                    connection = st.connection;
                    next_start = st.origin;
                    covered_end = st.origin;
                    flushed = false;
                }
                let newest = st.next_seq;
                let oldest = st.frames.front().map_or(newest, |s| s.seq);
                if next_start + w <= newest {
                    let start = if lossless {
                        next_start
                    } else {
                        next_start + (newest - w - next_start) / stride * stride
                    };
                    break Some(take(&st, start, w, oldest, &offsets));
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
                        break Some(take(&st, newest - w, w, oldest, &offsets));
                    }
                    break None;
                }
                st = ring
                    .changed
                    .wait_timeout(st, Duration::from_millis(100))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                if run.duration.is_some_and(|d| started.elapsed() >= d)
                    && !stop.load(Ordering::Relaxed)
                {
                    timed_out = true;
                    stop.store(true, Ordering::Relaxed);
                }
            }
        };
        let Some(job) = job else { break Ok(()) };
        // Frames the grid meant to cover and no window did (a stride longer than the window
        // leaves gaps by design: those are not dropped).
        let dropped = job.start.saturating_sub(covered_end.max(next_start));
        dropped_total += dropped;
        covered_end = job.start + w;
        next_start = job.start + stride;
        {
            let mut st = ring.lock();
            st.need_from = next_start;
        }
        ring.changed.notify_all();
        let frames: Vec<Frame> = match run.crop {
            Some(b) => match job
                .frames
                .iter()
                .map(|f| super::experiment::crop_frame(f, b))
                .collect::<std::result::Result<Vec<_>, _>>()
            {
                Ok(f) => f,
                Err(e) => break Err(Error::Input(format!("--crop: {e}"))),
            },
            None => job.frames.iter().map(|f| (**f).clone()).collect(),
        };
        let probs = match classifier.probs(&frames) {
            Ok(p) => p,
            Err(e) => break Err(e),
        };
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        let mut record = LiveRecord {
            window: latencies.len(),
            start: job.start,
            end: job.start + w,
            pts: job.pts,
            latency_ms: 0.0,
            dropped,
            top: order[..k]
                .iter()
                .map(|&c| ClassProb {
                    class: classifier.classes[c].clone(),
                    p: probs[c],
                })
                .collect(),
        };
        record.latency_ms = job.newest_arrival.elapsed().as_secs_f64() * 1e3;
        let line = if run.csv {
            record.csv_row()
        } else {
            serde_json::to_string(&record).expect("json")
        };
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            break Err(Error::io("the records' output", e));
        }
        latencies.push(job.newest_arrival.elapsed().as_secs_f64() * 1e3);
        status.set_message(format!(
            "live {label}: window {} at frame {}, latency {:.0} ms, {dropped_total} dropped",
            record.window, record.end, record.latency_ms
        ));
        status.tick();
    };
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
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(LiveSummary {
        source: label,
        frames,
        windows: latencies.len(),
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
        seconds,
        input_fps: frames as f64 / seconds.max(1e-9),
        window: w,
        stride,
        lossless,
        end,
        failed,
    })
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
            "window,start,end,pts,latency_ms,dropped,class1,p1,class2,p2"
        );
        assert_eq!(
            r.csv_row(),
            "2,24,48,0.960,41.3,3,smile,0.750000,frown,0.250000"
        );
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"window":2,"start":24,"end":48,"pts":0.96,"latency_ms":41.26,"dropped":3,"top":[{"class":"smile","p":0.75},{"class":"frown","p":0.25}]}"#
        );
    }
}
