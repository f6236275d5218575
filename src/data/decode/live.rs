//! Live sources: a camera, a network stream or a pipe, read frame by frame with their
//! timestamps: [`LiveSource`], [`LiveReader`].
//!
//! A live source differs from a file in three ways, and this reader is built for them:
//! - it is named by a URL, a device or `-`, not by a file that can be checked first; FFmpeg
//!   picks the protocol (`rtsp://`, `rtmp://`, `srt://`, `udp://`, `http(s)://`, ...) or
//!   the device demuxer (`/dev/videoN` through Video4Linux2), with options the caller passes
//!   as FFmpeg would take them (`-rtsp_transport tcp` is `("rtsp_transport", "tcp")`);
//! - it can stall: [`LiveOptions::stall`] bounds the opening and the wait for each frame,
//!   and a stop flag set by the caller (SIGINT) interrupts any blocking read at once;
//! - it is damaged as a matter of course (a lost UDP packet): decode errors are counted
//!   ([`LiveReader::decode_errors`]) and reading goes on.
//!
//! Frames are converted exactly as [`super::decode`] and [`super::VideoReader`] convert them
//! (same colour handling, autorotation), so a live source and the same packets in a file
//! give the same pixels.

use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ffmpeg::ffi;
use ffmpeg::{Dictionary, Error as FfError, format};
use ffmpeg_next as ffmpeg;

use super::convert::Converter;
use super::ffmpeg_log::{self, Capture};
use super::video::{Deadline, Demuxer, with_messages};
use super::{DecodeError, DecodeErrorKind as Kind, DecodeOptions, Frame};

/// Where live frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveSource {
    /// Standard input (`-`): e.g. `ffmpeg ... -f mpegts - | vidapter predict --live -`.
    Pipe,
    /// A Video4Linux2 camera, `/dev/videoN`.
    Device(PathBuf),
    /// Anything FFmpeg opens by URL: `rtsp://`, `rtmp://`, `srt://`, `udp://`, `http(s)://`,
    /// `tcp://`, ...
    Url(String),
    /// A file or named pipe (FIFO) on disk.
    File(PathBuf),
}

impl LiveSource {
    /// Reads what the user typed: `-`, `/dev/video*`, `scheme://...`, else a path.
    pub fn parse(s: &str) -> LiveSource {
        if s == "-" {
            LiveSource::Pipe
        } else if s.starts_with("/dev/video") {
            LiveSource::Device(PathBuf::from(s))
        } else if s.contains("://") {
            LiveSource::Url(s.to_string())
        } else {
            LiveSource::File(PathBuf::from(s))
        }
    }

    /// What FFmpeg is given to open.
    fn ffmpeg_name(&self) -> String {
        match self {
            LiveSource::Pipe => "pipe:0".into(),
            LiveSource::Device(p) | LiveSource::File(p) => p.display().to_string(),
            LiveSource::Url(u) => u.clone(),
        }
    }

    /// Whether losing the source is worth reconnecting to: a network stream or a camera
    /// can come back; a pipe or a file that ends has ended.
    pub fn reconnects(&self) -> bool {
        matches!(self, LiveSource::Url(_) | LiveSource::Device(_))
    }

    /// Whether the source pushes frames at its own pace (a network stream, a camera or a
    /// pipe fed by one), so that a slow reader must drop frames rather than hold it back; a
    /// file is read as fast as it is consumed.
    pub fn paced(&self) -> bool {
        !matches!(self, LiveSource::File(_))
    }

    /// The name used in messages and errors.
    pub fn label(&self) -> String {
        match self {
            LiveSource::Pipe => "standard input".into(),
            other => other.ffmpeg_name(),
        }
    }
}

/// How a live source is opened and read.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Longest wait for the source to open and then for each frame; past it the read fails
    /// with [`Kind::Timeout`] (a stalled stream). Default 10 s.
    pub stall: Duration,
    /// FFmpeg options for the protocol or demuxer, as `ffmpeg` takes them before `-i`
    /// (`rtsp_transport=tcp`, `video_size=640x480`, `input_format=mjpeg`, ...).
    pub ffmpeg_options: Vec<(String, String)>,
    /// Decoder threads (0: FFmpeg picks).
    pub threads: usize,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            stall: Duration::from_secs(10),
            ffmpeg_options: Vec::new(),
            threads: 1,
        }
    }
}

/// One frame of a live source.
#[derive(Debug, Clone)]
pub struct LiveFrame {
    /// RGB8, upright.
    pub frame: Frame,
    /// The stream's presentation time of this frame in seconds, when it carries one.
    pub pts: Option<f64>,
}

/// Reads a live source frame by frame.
pub struct LiveReader {
    name: PathBuf,
    demuxer: Demuxer,
    converter: Converter,
    rotation: u16,
    deadline: Deadline,
    stop: Arc<AtomicBool>,
    fps: Option<f64>,
    codec: String,
    ended: bool,
}

// SAFETY: as for `VideoReader`: every FFmpeg object here is owned by the reader and used
// through `&mut self` only; the interrupt callback reads atomics.
unsafe impl Send for LiveReader {}

/// The FFmpeg input format a source needs named (FFmpeg probes the others).
fn input_format(source: &LiveSource) -> Option<&'static str> {
    match source {
        LiveSource::Device(_) => Some("video4linux2"),
        _ => None,
    }
}

impl LiveReader {
    /// Opens `source` (waiting at most [`LiveOptions::stall`] for it to answer and show a
    /// video stream). `stop` set by another thread interrupts the opening and any later
    /// read.
    ///
    /// # Errors
    /// A [`DecodeError`] naming the source: `Missing` (no such device or file), `Timeout`
    /// (nothing came within the stall limit, or `stop` was set), `NotVideo` (FFmpeg cannot
    /// open it: a bad URL, a refused connection, no video stream), `Unsupported` (no
    /// decoder).
    pub fn open(
        source: &LiveSource,
        opts: &LiveOptions,
        stop: Arc<AtomicBool>,
    ) -> Result<LiveReader, DecodeError> {
        ffmpeg_log::init();
        // Devices (and network protocols) are registered once; harmless to repeat.
        ffmpeg::device::register_all();
        let name = PathBuf::from(source.label());
        if let LiveSource::Device(p) | LiveSource::File(p) = source
            && !p.exists()
        {
            return Err(DecodeError::new(
                &name,
                Kind::Missing,
                "no such device or file",
            ));
        }
        let capture = Capture::start();
        let decode_opts = DecodeOptions {
            timeout: opts.stall,
            threads: opts.threads,
            ..DecodeOptions::default()
        };
        let deadline = Deadline::new(&decode_opts);
        deadline.restart();
        let input = open_input(source, opts, &deadline, &stop).map_err(|e| {
            with_messages(
                open_error(&name, source, e, &deadline, &stop),
                &capture.messages(),
            )
        })?;
        let demuxer = Demuxer::with_input(&name, input, &decode_opts)
            .map_err(|e| with_messages(e, &capture.messages()))?;
        Ok(LiveReader {
            fps: demuxer.info.fps,
            codec: demuxer.info.codec.clone(),
            rotation: demuxer.rotation,
            name,
            demuxer,
            converter: Converter::default(),
            deadline,
            stop,
            ended: false,
        })
    }

    /// The next frame; `Ok(None)` once the source has ended (end of file or pipe, or the
    /// server closed the stream).
    ///
    /// # Errors
    /// [`Kind::Timeout`] when no frame came within the stall limit or `stop` was set;
    /// `Unsupported` when a frame cannot be converted. The reader is finished after an
    /// error.
    pub fn next_frame(&mut self) -> Result<Option<LiveFrame>, DecodeError> {
        if self.ended {
            return Ok(None);
        }
        let capture = Capture::start();
        self.deadline.restart();
        let next = self.demuxer.next_frame(&self.name, &self.deadline);
        let f = match next {
            Ok(Some(f)) => f,
            Ok(None) => {
                self.ended = true;
                return Ok(None);
            }
            Err(e) => {
                self.ended = true;
                let e = if self.stop.load(Ordering::Relaxed) {
                    DecodeError::new(&self.name, Kind::Timeout, "stopped")
                } else {
                    e
                };
                return Err(with_messages(e, &capture.messages()));
            }
        };
        let tb = self.demuxer.time_base;
        let pts = f
            .timestamp()
            .filter(|_| tb.denominator() != 0)
            .map(|t| t as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator()));
        match self.converter.convert(&f, self.rotation) {
            Ok(frame) => Ok(Some(LiveFrame { frame, pts })),
            Err(reason) => {
                self.ended = true;
                Err(DecodeError::new(&self.name, Kind::Unsupported, reason))
            }
        }
    }

    /// The frame rate the stream states, if any.
    pub fn fps(&self) -> Option<f64> {
        self.fps
    }

    /// The stream's codec (`h264`, `mjpeg`, `rawvideo`, ...).
    pub fn codec(&self) -> &str {
        &self.codec
    }

    /// Packets and frames flagged broken so far (lost packets of a network stream).
    pub fn decode_errors(&self) -> usize {
        self.demuxer.stats.errors
    }

    /// Frames decoded so far.
    pub fn frames(&self) -> usize {
        self.demuxer.stats.frames
    }

    /// The source's name in messages.
    pub fn name(&self) -> &Path {
        &self.name
    }
}

/// `avformat_open_input` with the source's input format, the caller's options and an
/// interrupt callback that fires past the deadline or once `stop` is set.
fn open_input(
    source: &LiveSource,
    opts: &LiveOptions,
    deadline: &Deadline,
    stop: &Arc<AtomicBool>,
) -> Result<format::context::Input, FfError> {
    let mut dict = Dictionary::new();
    if let LiveSource::Url(u) = source
        && u.starts_with("udp://")
    {
        // A burst the reader cannot take at once is dropped by FFmpeg, not fatal.
        dict.set("overrun_nonfatal", "1");
    }
    for (k, v) in &opts.ffmpeg_options {
        dict.set(k, v);
    }
    let d = deadline.clone();
    let stop = Arc::clone(stop);
    let closure = move || d.passed() || stop.load(Ordering::Relaxed);
    let Some(fmt) = input_format(source) else {
        return format::input_with_interrupt_and_dictionary(&source.ffmpeg_name(), closure, dict);
    };
    // A named input format (a device): ffmpeg-next has no call taking one, so this is
    // `input_with_interrupt_and_dictionary` with the format set.
    let c_fmt = std::ffi::CString::new(fmt).expect("no NUL in a format name");
    let c_name = std::ffi::CString::new(source.ffmpeg_name()).map_err(|_| FfError::InvalidData)?;
    // SAFETY: the same sequence as ffmpeg-next's `input_with_interrupt_and_dictionary`,
    // with an input format found by name (a static FFmpeg object); every pointer is
    // checked or owned as there.
    unsafe {
        let ifmt = ffi::av_find_input_format(c_fmt.as_ptr());
        if ifmt.is_null() {
            return Err(FfError::DemuxerNotFound);
        }
        let mut ps = ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(FfError::Other {
                errno: ffmpeg::util::error::ENOMEM,
            });
        }
        let interrupt = ffmpeg::util::interrupt::new(Box::new(closure));
        (*ps).interrupt_callback = interrupt.interrupt;
        let mut raw = dict.disown();
        let res = ffi::avformat_open_input(&mut ps, c_name.as_ptr(), ifmt, &mut raw);
        Dictionary::own(raw);
        if res != 0 {
            return Err(FfError::from(res));
        }
        let r = ffi::avformat_find_stream_info(ps, ptr::null_mut());
        if r < 0 {
            ffi::avformat_close_input(&mut ps);
            return Err(FfError::from(r));
        }
        Ok(format::context::Input::wrap_with_interrupt(
            ps,
            interrupt.guard,
        ))
    }
}

/// Why a live source did not open, in words a user can act on.
fn open_error(
    name: &Path,
    source: &LiveSource,
    e: FfError,
    deadline: &Deadline,
    stop: &AtomicBool,
) -> DecodeError {
    if stop.load(Ordering::Relaxed) {
        return DecodeError::new(name, Kind::Timeout, "stopped before it opened");
    }
    match e {
        FfError::Exit => DecodeError::new(
            name,
            Kind::Timeout,
            format!(
                "nothing came within {:?} (is the stream running, the address right?)",
                deadline.limit()
            ),
        ),
        FfError::DemuxerNotFound if matches!(source, LiveSource::Device(_)) => DecodeError::new(
            name,
            Kind::Unsupported,
            "this FFmpeg has no Video4Linux2 input (libavdevice without v4l2)",
        ),
        e => {
            let hint = match source {
                LiveSource::Url(_) => {
                    " (check the URL, that the server runs, and its protocol options)"
                }
                LiveSource::Device(_) => {
                    " (is it a camera, and free? `v4l2-ctl --list-devices` lists them)"
                }
                _ => "",
            };
            DecodeError::new(
                name,
                Kind::NotVideo,
                format!("FFmpeg cannot open it: {e}{hint}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_apart() {
        assert_eq!(LiveSource::parse("-"), LiveSource::Pipe);
        assert_eq!(
            LiveSource::parse("/dev/video0"),
            LiveSource::Device("/dev/video0".into())
        );
        assert_eq!(
            LiveSource::parse("rtsp://cam/stream"),
            LiveSource::Url("rtsp://cam/stream".into())
        );
        assert_eq!(
            LiveSource::parse("clips/a.ts"),
            LiveSource::File("clips/a.ts".into())
        );
        assert!(LiveSource::parse("udp://127.0.0.1:1234").reconnects());
        assert!(!LiveSource::parse("-").reconnects());
        assert!(LiveSource::parse("-").paced());
        assert!(!LiveSource::parse("a.ts").paced());
        assert_eq!(LiveSource::Pipe.label(), "standard input");
    }

    #[test]
    fn a_missing_device_is_named() {
        let stop = Arc::new(AtomicBool::new(false));
        let e = LiveReader::open(
            &LiveSource::parse("/dev/video97"),
            &LiveOptions::default(),
            stop,
        )
        .err()
        .expect("no such device");
        assert_eq!(e.kind, Kind::Missing);
        assert!(e.to_string().contains("/dev/video97"), "{e}");
    }

    #[test]
    fn a_refused_url_is_a_clear_error_in_bounded_time() {
        let stop = Arc::new(AtomicBool::new(false));
        let opts = LiveOptions {
            stall: Duration::from_secs(2),
            ..LiveOptions::default()
        };
        let t = std::time::Instant::now();
        // Port 9 on loopback: nothing listens (connection refused at once).
        let e = LiveReader::open(&LiveSource::parse("tcp://127.0.0.1:9"), &opts, stop)
            .err()
            .expect("refused");
        assert!(t.elapsed() < Duration::from_secs(5));
        let msg = e.to_string();
        assert!(msg.contains("tcp://127.0.0.1:9"), "{msg}");
        assert!(
            msg.contains("check the URL") || msg.contains("nothing came"),
            "{msg}"
        );
    }
}
