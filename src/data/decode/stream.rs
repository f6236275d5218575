//! Streaming a video file frame by frame: [`VideoReader`].
//!
//! [`super::decode`] counts every frame before it converts the selected ones, which suits
//! training clips of a few seconds; a user's raw video of minutes is read with
//! [`VideoReader`] instead, one frame at a time, with bounded memory. Both share the same
//! pieces of `video.rs` (file checks, stream choice, decoder set-up, the packet loop) and
//! `convert.rs` (RGB conversion and autorotation), so a frame read here is bit-identical to
//! the frame [`super::decode`] gives for the same index.
//!
//! Videos only: a folder of frame images is not read here (it is already one file per frame;
//! read it with [`super::decode`] or the `image` crate).

use std::path::{Path, PathBuf};

use ffmpeg::frame;
use ffmpeg_next as ffmpeg;

use super::convert::Converter;
use super::ffmpeg_log::{self, Capture};
use super::video::{Deadline, Demuxer, check_file, cut_off, with_messages};
use super::{DecodeError, DecodeErrorKind as Kind, DecodeOptions, Frame, VideoInfo};

/// Frame rate [`VideoReader::fps`] reports for a stream that states none.
pub const DEFAULT_FPS: f64 = 25.0;

/// FFmpeg messages kept per reader (the first ones say what went wrong).
const MAX_MESSAGES: usize = 6;

/// Reads a video file frame by frame, as RGB8 [`Frame`]s in decoder output order.
///
/// ```no_run
/// # use vidapter::data::decode::{DecodeOptions, VideoReader};
/// let reader = VideoReader::open("talk.mp4".as_ref(), &DecodeOptions::default())?;
/// println!("{}x{} at {} fps", reader.width(), reader.height(), reader.fps());
/// for frame in reader {
///     let frame = frame?; // RGB8, upright
///     # let _ = frame;
/// }
/// # Ok::<(), vidapter::data::decode::DecodeError>(())
/// ```
///
/// - Frames are converted exactly as [`super::decode`] converts them (same colour matrix,
///   range and scaler, autorotation per [`DecodeOptions::autorotate`]): frame `k` of the
///   iterator equals index `k` of [`super::decode`], bit for bit.
/// - Memory is bounded: one packet is read at a time and each decoded frame is converted
///   and handed over as it comes out of the decoder; nothing is buffered beyond the frames
///   the decoder itself holds for reordering and the first frame, decoded by
///   [`open`](Self::open) to learn the picture size.
/// - [`DecodeOptions::timeout`] bounds [`open`](Self::open) and each call of `next` on its
///   own (the time the caller spends between frames does not count), so a stalled read or
///   a decoder stuck on a bad file ends with [`DecodeErrorKind::Timeout`](Kind::Timeout)
///   while a video of any length can be read.
/// - Damage (corrupt packets, frames with decode errors, a file cut off before the frames
///   its header states): with [`DecodeOptions::allow_damaged`] it is counted (see
///   [`damage`](Self::damage)) and iteration goes on; without, the iterator yields one
///   [`DecodeErrorKind::Damaged`](Kind::Damaged) error naming the file where the damage is
///   found (the frames before it have been yielded) and then ends.
/// - After any error the iterator returns `None`. Nothing panics on bad input.
/// - [`DecodeOptions::buffer_frames`], [`buffer_bytes`](DecodeOptions::buffer_bytes) and
///   [`verify_frames`](DecodeOptions::verify_frames) do not apply.
pub struct VideoReader {
    path: PathBuf,
    /// `None` once the stream has ended or failed.
    demuxer: Option<Demuxer>,
    /// The first frame, decoded by `open`, not yet converted.
    pending: Option<frame::Video>,
    converter: Converter,
    rotation: u16,
    info: VideoInfo,
    /// Where the container's index says the stream ends (see `Demuxer::index_end`).
    index_end: u64,
    /// Whether FFmpeg logged "partial file" (kept apart: `info.messages` is capped).
    partial_file: bool,
    deadline: Deadline,
    allow_damaged: bool,
}

// SAFETY: every FFmpeg object a reader holds (format and codec contexts, frames, the swscale
// context) is owned by it alone and used only through `&mut self`; FFmpeg lets such objects
// be used from any thread as long as no two threads use one at once. The interrupt callback
// only reads an atomic. (The scaler context alone is not marked `Send` by ffmpeg-next.)
unsafe impl Send for VideoReader {}

impl VideoReader {
    /// Opens `path` and decodes its first frame.
    ///
    /// Fails as [`super::decode`] does, with a [`DecodeError`] naming the file: `Missing`,
    /// `Empty`, `NotVideo` (not a video FFmpeg can open, a text file named `.mp4`, a folder,
    /// no video stream), `Corrupt`, `Unsupported` (no decoder), `NoFrames` (not one frame
    /// decodes), `Damaged` (damage before the first frame without
    /// [`DecodeOptions::allow_damaged`]) or `Timeout`.
    pub fn open(path: &Path, opts: &DecodeOptions) -> Result<VideoReader, DecodeError> {
        check_file(path)?;
        ffmpeg_log::init();
        let capture = Capture::start();
        let deadline = Deadline::new(opts);
        let demuxer = match Demuxer::open(path, opts, &deadline) {
            Ok(d) => d,
            Err(e) => return Err(with_messages(e, &capture.messages())),
        };
        let rotation = if opts.autorotate { demuxer.rotation } else { 0 };
        let mut reader = VideoReader {
            path: path.to_path_buf(),
            index_end: demuxer.index_end(),
            info: VideoInfo {
                rotation,
                ..demuxer.info.clone()
            },
            demuxer: Some(demuxer),
            pending: None,
            converter: Converter::default(),
            rotation,
            partial_file: false,
            deadline,
            allow_damaged: opts.allow_damaged,
        };
        let first = reader.decode_next(&capture);
        reader.keep_messages(&capture);
        match first {
            Ok(Some(f)) => {
                let (w, h) = (f.width() as usize, f.height() as usize);
                (reader.info.width, reader.info.height) =
                    if rotation % 180 == 90 { (h, w) } else { (w, h) };
                reader.pending = Some(f);
                Ok(reader)
            }
            // decode_next ends a stream without frames with an error; kept for safety.
            Ok(None) => Err(DecodeError::new(path, Kind::NoFrames, "no frame decodes")),
            Err(e) => Err(e),
        }
    }

    /// Width of the frames, after autorotation (the first frame's; a stream that changes
    /// resolution midway gives later frames at their own size).
    pub fn width(&self) -> usize {
        self.info.width
    }

    /// Height of the frames, after autorotation.
    pub fn height(&self) -> usize {
        self.info.height
    }

    /// The stream's average frame rate (its `r_frame_rate` when it states no average), or
    /// [`DEFAULT_FPS`] (25) when it states neither.
    pub fn fps(&self) -> f64 {
        self.info.fps.unwrap_or(DEFAULT_FPS)
    }

    /// The frame count the container states, for progress bars: a hint only (Matroska states
    /// none, a truncated file states more than decode, packed B-frame AVIs state extra).
    pub fn frame_count_hint(&self) -> Option<usize> {
        self.info.header_frames
    }

    /// The decode errors seen so far, in one line as [`VideoInfo::damage`] says it (error
    /// count, frames decoded, the header's count, FFmpeg's first message); `None` while
    /// there are none. With [`DecodeOptions::allow_damaged`] the caller should warn with it
    /// once iteration has ended.
    pub fn damage(&self) -> Option<String> {
        (self.info.decode_errors > 0).then(|| self.info.damage())
    }

    /// What is known about the video so far: `decoded_frames` counts the frames yielded,
    /// `decode_errors` and `messages` the damage seen; codec, rotation, header count, fps.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copies FFmpeg's messages of the current call into `info.messages` (capped).
    fn keep_messages(&mut self, capture: &Capture) {
        let messages = capture.messages();
        self.partial_file |= messages.iter().any(|m| m.contains("partial file"));
        let room = MAX_MESSAGES.saturating_sub(self.info.messages.len());
        self.info.messages.extend(messages.into_iter().take(room));
    }

    /// The next decoded (not yet converted) frame; `None` at the end. Ends the stream (drops
    /// the demuxer) on any error, on damage when damage is not allowed, and at the end.
    fn decode_next(&mut self, capture: &Capture) -> Result<Option<frame::Video>, DecodeError> {
        let Some(demuxer) = self.demuxer.as_mut() else {
            return Ok(None);
        };
        self.deadline.restart();
        let next = demuxer.next_frame(&self.path, &self.deadline);
        let stats = demuxer.stats;
        let ended = !matches!(next, Ok(Some(_)));
        if ended {
            self.demuxer = None;
        }
        let mut errors = stats.errors;
        if matches!(next, Ok(None)) {
            // The end: a file cut off before the frames its header states is damaged too.
            self.info.decoded_frames = stats.frames;
            let mut messages = self.info.messages.clone();
            messages.extend(capture.messages());
            if self.partial_file {
                messages.push("partial file".into());
            }
            errors += usize::from(cut_off(&self.path, &self.info, self.index_end, &messages));
        }
        self.info.decode_errors = errors;
        let frame = match next {
            Ok(f) => f,
            Err(e) => return Err(self.fail(e, capture)),
        };
        // As in `decode`: a video where nothing decodes is `NoFrames`, damaged or not.
        let refused = if frame.is_none() && stats.frames == 0 {
            let claims = self.header_note("; the header claims {} frames");
            Some((
                Kind::NoFrames,
                format!("no frame decodes ({errors} decode errors{claims})"),
            ))
        } else if errors > 0 && !self.allow_damaged {
            let of = self.header_note(" of the {} the header states");
            let done = self.info.decoded_frames;
            Some((
                Kind::Damaged,
                format!(
                    "{errors} decode error(s) after {done} frame(s){of}: a truncated or \
                     damaged file (allow damaged videos to read on)"
                ),
            ))
        } else {
            None
        };
        if let Some((kind, reason)) = refused {
            let e = DecodeError::new(&self.path, kind, reason);
            return Err(self.fail(e, capture));
        }
        Ok(frame)
    }

    /// `template` with its `{}` replaced by the header's frame count; empty when it states
    /// none.
    fn header_note(&self, template: &str) -> String {
        self.info
            .header_frames
            .map_or(String::new(), |h| template.replace("{}", &h.to_string()))
    }

    /// `e` with FFmpeg's messages so far; the stream ends.
    fn fail(&mut self, e: DecodeError, capture: &Capture) -> DecodeError {
        self.demuxer = None;
        self.pending = None;
        let mut messages = self.info.messages.clone();
        messages.extend(capture.messages());
        with_messages(e, &messages)
    }
}

impl Iterator for VideoReader {
    type Item = Result<Frame, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let decoded = match self.pending.take() {
            Some(f) => Ok(Some(f)),
            None => {
                // Messages logged while decoding this frame are kept for `damage`.
                let capture = Capture::start();
                let next = self.decode_next(&capture);
                if next.is_ok() {
                    self.keep_messages(&capture);
                }
                next
            }
        };
        let f = match decoded {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        self.info.decoded_frames += 1;
        match self.converter.convert(&f, self.rotation) {
            Ok(frame) => Some(Ok(frame)),
            Err(reason) => {
                self.demuxer = None;
                Some(Err(DecodeError::new(&self.path, Kind::Unsupported, reason)))
            }
        }
    }
}
