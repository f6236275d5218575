//! Decoding: a [`Source`] (video file or frame folder) -> the RGB8 frames a sampler asked for.
//!
//! Contract of [`decode`]:
//! - takes a source, a `select` callback and [`DecodeOptions`];
//! - finds out how many frames *actually* decode (`n`; a container's frame count is only a
//!   hint: packed B-frames, truncated files), then calls `select(n)` exactly once, and only
//!   when `n >= 1`;
//! - `select` returns frame indices, base 0, each `< n`, in any order, repeats allowed;
//! - gives back one [`Frame`] per returned index, in the order returned: RGB8, row-major
//!   `[H, W, 3]`, no padding, values 0..=255; plus a [`VideoInfo`] saying what was found
//!   (decoded count, header count, decode errors) so that `data check` can report damage.
//!
//! Frames are numbered in the order the decoder outputs them (presentation order), never by
//! timestamp arithmetic: variable frame rates and odd timestamps do not move indices.
//!
//! Files: `video.rs` decodes video files with FFmpeg (only the selected frames are
//! converted); `convert.rs` converts to RGB with the colour matrix and range the stream is
//! tagged with, exactly as the `ffmpeg` command-line tool (5.1) does, and turns frames
//! upright when the stream carries a quarter-turn display matrix (the tool's autorotate);
//! `frames.rs` reads folders of numbered jpg/png files with the `image` crate;
//! `ffmpeg_log.rs` keeps FFmpeg off stderr and quotes its messages in reports;
//! `stream.rs` is [`VideoReader`], which reads a video file frame by frame with bounded
//! memory (users' raw videos of any length), sharing `video.rs`'s opening and packet loop
//! and `convert.rs`'s conversion, so its frames equal [`decode`]'s bit for bit.
//!
//! Nothing here panics on bad input or hangs: every failure is a [`DecodeError`] naming the
//! file, and a decode that runs past [`DecodeOptions::timeout`] stops with
//! [`DecodeErrorKind::Timeout`].

mod convert;
pub(crate) mod ffmpeg_log;
mod frames;
mod live;
mod stream;
mod video;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{Problem, Source};

pub use frames::format_template;
pub use live::{LiveFrame, LiveOptions, LiveReader, LiveSource};
pub use stream::{DEFAULT_FPS, VideoReader};

/// One decoded picture.
///
/// Layout: RGB8, row-major `[height, width, 3]`, no row padding, so
/// `data.len() == width * height * 3`; values 0..=255 (full range).
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` bytes: R, G, B per pixel, rows top to bottom.
    pub data: Vec<u8>,
}

impl fmt::Debug for Frame {
    // The pixel bytes would flood any assertion message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Frame {{ {}x{} RGB8, {} bytes }}",
            self.width,
            self.height,
            self.data.len()
        )
    }
}

/// Decoder settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// Wall-clock limit for one [`decode`] call (all its passes); for a [`VideoReader`], for
    /// its `open` and for each frame it yields, on their own. Past it the decode stops with
    /// [`DecodeErrorKind::Timeout`]. Checked between packets and inside FFmpeg's I/O through
    /// its interrupt callback. Default 60 s.
    pub timeout: Duration,
    /// Decoder threads per video: 1 (default) suits a loader that already runs one decode per
    /// worker; 0 lets FFmpeg pick (one per core).
    pub threads: usize,
    /// Decoded (still YUV) frames kept in memory while counting, so that one pass suffices.
    /// Past this many, or past [`buffer_bytes`](Self::buffer_bytes), the frames are dropped and
    /// the video is decoded a second time, converting only the selected frames. Default 1,500.
    pub buffer_frames: usize,
    /// Byte budget of the same buffer. Default 512 MiB (about 170 frames of 1080p YUV 4:2:0,
    /// 1,500 frames of 320x240).
    pub buffer_bytes: usize,
    /// Turn frames upright when the stream stores a rotation of 90, 180 or 270 degrees in its
    /// display matrix (phone videos), as the `ffmpeg` tool does by default. Default true.
    pub autorotate: bool,
    /// Use a damaged source instead of refusing it: a video with decode errors (a truncated
    /// download), a frame folder with a gap in its numbering or a frame file that is cut off
    /// or corrupt. The damage is then counted in [`VideoInfo::decode_errors`] and described in
    /// [`VideoInfo::messages`], and the caller must say so (warn naming the file). Default
    /// false: such a source is [`DecodeErrorKind::Damaged`] (or `FrameMissing` / `Image`
    /// naming the frame file). A frame that is selected and does not decode is an error
    /// either way.
    pub allow_damaged: bool,
    /// Frame folders: decode every frame image, not only the selected ones (what `data
    /// check` does). Default false: every unselected frame file still gets a cheap structural
    /// check (a JPEG must start with its SOI marker and end with its EOI marker, a PNG must
    /// start with its signature and end with its IEND chunk), which catches the usual damage
    /// (cut-off copies, text or HTML saved under an image name) at two small reads per file.
    pub verify_frames: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            timeout: Duration::from_secs(60),
            threads: 1,
            buffer_frames: 1500,
            buffer_bytes: 512 << 20,
            autorotate: true,
            allow_damaged: false,
            verify_frames: false,
        }
    }
}

/// What was learnt about a source while decoding it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VideoInfo {
    /// Frames that decoded (for a folder: frames in the sequence). This is the `n` given to
    /// `select`.
    pub decoded_frames: usize,
    /// Frame count the container header claims (for a folder: the annotation's count);
    /// `None` when it states none (Matroska, WebM).
    pub header_frames: Option<usize>,
    /// Width of the returned frames (after autorotation; for a folder, the first selected
    /// frame's).
    pub width: usize,
    /// Height of the returned frames.
    pub height: usize,
    /// Average frame rate the container states, if any.
    pub fps: Option<f64>,
    /// FFmpeg's codec name (`h264`, `mpeg4`, `vp9`, `hevc`, ...); for a folder the image
    /// format of its files (`jpeg`, `png`).
    pub codec: String,
    /// Rotation applied to turn frames upright, clockwise degrees: 0, 90, 180 or 270.
    pub rotation: u16,
    /// Packets or frames the demuxer or decoder flagged as broken (truncated or damaged data).
    /// Frames concealed by the decoder still count in `decoded_frames`.
    pub decode_errors: usize,
    /// The first few warnings and errors FFmpeg logged for this source (e.g. `mov,mp4,...:
    /// stream 0, offset 0x1789: partial file`).
    pub messages: Vec<String>,
}

impl VideoInfo {
    /// Frames the header promises but that did not decode (0 when it states no count).
    /// Packed B-frame AVIs report a few here although nothing is wrong with them.
    pub fn missing_frames(&self) -> usize {
        self.header_frames
            .map_or(0, |h| h.saturating_sub(self.decoded_frames))
    }

    /// Whether the source looks damaged: decode errors, or fewer frames than the header says.
    pub fn is_damaged(&self) -> bool {
        self.decode_errors > 0 || self.missing_frames() > 0
    }

    /// One line saying how a source is damaged, for reports and warnings: the error count,
    /// frames decoded against the header's count, and the first message (FFmpeg's words, or
    /// the frame file at fault). Empty when `decode_errors` is 0.
    pub fn damage(&self) -> String {
        if self.decode_errors == 0 {
            return String::new();
        }
        format!(
            "{} decode error(s), {} frame(s) decoded{}{}",
            self.decode_errors,
            self.decoded_frames,
            self.header_frames
                .map(|h| format!(" of {h} the header states"))
                .unwrap_or_default(),
            self.messages
                .first()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )
    }
}

/// The frames `select` asked for, and what was learnt about the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// One frame per index `select` returned, in that order (repeats are copies).
    pub frames: Vec<Frame>,
    /// Counts, size, codec and damage of the source.
    pub info: VideoInfo,
}

/// Why a source could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeErrorKind {
    /// The file or folder does not exist (or cannot be read at all).
    Missing,
    /// The file has zero bytes.
    Empty,
    /// The file is not a video FFmpeg can open (or has no video stream); a folder path is not
    /// a folder.
    NotVideo,
    /// No decoder for the codec, or a frame-name template we cannot format.
    Unsupported,
    /// The source opens but not one frame decodes (or the folder has no frames).
    NoFrames,
    /// A recognised container that is damaged beyond opening or decoding.
    Corrupt,
    /// Decoding ran past [`DecodeOptions::timeout`].
    Timeout,
    /// A frame inside a folder's declared range is missing.
    FrameMissing,
    /// A frame image could not be read or decoded.
    Image,
    /// The source decodes only with errors (a truncated download, corrupt packets) and
    /// [`DecodeOptions::allow_damaged`] is off.
    Damaged,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeErrorKind::Missing => "not found",
            DecodeErrorKind::Empty => "empty file",
            DecodeErrorKind::NotVideo => "not a video",
            DecodeErrorKind::Unsupported => "unsupported",
            DecodeErrorKind::NoFrames => "no frames",
            DecodeErrorKind::Corrupt => "corrupt",
            DecodeErrorKind::Timeout => "timed out",
            DecodeErrorKind::FrameMissing => "frame missing",
            DecodeErrorKind::Image => "unreadable image",
            DecodeErrorKind::Damaged => "damaged",
        })
    }
}

/// A source that could not be decoded: the file at fault, the kind of failure, and details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {kind}: {reason}", path.display())]
pub struct DecodeError {
    /// The file at fault: the video, the frame folder, or the one frame file concerned.
    pub path: PathBuf,
    /// What kind of failure.
    pub kind: DecodeErrorKind,
    /// What happened, with FFmpeg's own message when it gave one.
    pub reason: String,
}

impl DecodeError {
    fn new(path: impl Into<PathBuf>, kind: DecodeErrorKind, reason: impl Into<String>) -> Self {
        DecodeError {
            path: path.into(),
            kind,
            reason: reason.into(),
        }
    }
}

impl From<DecodeError> for Problem {
    fn from(e: DecodeError) -> Problem {
        Problem {
            path: e.path,
            line: None,
            reason: format!("{}: {}", e.kind, e.reason),
        }
    }
}

/// Decodes the frames of `source` that `select` asks for.
///
/// Takes: a video file or a frame folder; `select`, called once with the number `n >= 1` of
/// frames that actually decode and returning indices in `0..n` (any order, repeats allowed);
/// options. Gives: one RGB8 [`Frame`] per returned index, in the returned order, plus
/// [`VideoInfo`]. A source where no frame decodes is [`DecodeErrorKind::NoFrames`] and
/// `select` is not called.
///
/// Videos: every frame is decoded once to count them; if they fit in the buffer budget of
/// `opts` they are kept (as YUV) and only the selected ones are converted, otherwise the
/// video is decoded a second time, up to the last selected frame.
///
/// # Panics
/// If `select` returns an index `>= n`: that is a bug in the caller's sampler, not bad data.
pub fn decode(
    source: &Source,
    select: &mut dyn FnMut(usize) -> Vec<usize>,
    opts: &DecodeOptions,
) -> Result<Decoded, DecodeError> {
    match source {
        Source::Video(path) => video::decode(path, select, opts),
        Source::Frames {
            dir,
            template,
            start,
            count,
        } => frames::decode(dir, template.as_deref(), *start, *count, select, opts),
    }
}

/// Calls `select(n)` and checks its answer against the contract.
fn select_checked(select: &mut dyn FnMut(usize) -> Vec<usize>, n: usize) -> Vec<usize> {
    let indices = select(n);
    if let Some(bad) = indices.iter().find(|&&i| i >= n) {
        panic!("select({n}) returned frame index {bad}, but indices must be < {n}: {indices:?}");
    }
    indices
}

/// Lays out `frames` (converted once per distinct index, `(index, frame)` pairs) in the order
/// of `indices`, copying repeated ones.
fn gather(indices: &[usize], mut converted: Vec<(usize, Frame)>) -> Vec<Frame> {
    converted.sort_by_key(|(i, _)| *i);
    let mut out = Vec::with_capacity(indices.len());
    for (k, i) in indices.iter().enumerate() {
        let at = converted
            .binary_search_by_key(i, |(j, _)| *j)
            .expect("every selected index was converted");
        // The last use of a frame takes it; earlier uses copy it.
        let used_later = indices[k + 1..].contains(i);
        if used_later {
            out.push(converted[at].1.clone());
        } else {
            out.push(std::mem::replace(
                &mut converted[at].1,
                Frame {
                    width: 0,
                    height: 0,
                    data: Vec::new(),
                },
            ));
        }
    }
    out
}

/// The distinct indices of `indices`, ascending.
fn distinct_sorted(indices: &[usize]) -> Vec<usize> {
    let mut d = indices.to_vec();
    d.sort_unstable();
    d.dedup();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(v: u8) -> Frame {
        Frame {
            width: 1,
            height: 1,
            data: vec![v; 3],
        }
    }

    #[test]
    fn gather_keeps_requested_order_and_repeats() {
        let converted = vec![(5, solid(5)), (0, solid(0)), (2, solid(2))];
        let out = gather(&[2, 0, 2, 5, 2], converted);
        let firsts: Vec<u8> = out.iter().map(|f| f.data[0]).collect();
        assert_eq!(firsts, vec![2, 0, 2, 5, 2]);
    }

    #[test]
    fn distinct_sorted_removes_repeats() {
        assert_eq!(distinct_sorted(&[3, 1, 3, 0, 1]), vec![0, 1, 3]);
    }

    #[test]
    #[should_panic(expected = "select(4) returned frame index 4")]
    fn out_of_range_selection_is_a_caller_bug() {
        select_checked(&mut |_| vec![0, 4], 4);
    }

    #[test]
    fn error_display_names_path_kind_and_reason() {
        let e = DecodeError::new(
            "/data/a.mp4",
            DecodeErrorKind::Empty,
            "the file has 0 bytes",
        );
        assert_eq!(
            e.to_string(),
            "/data/a.mp4: empty file: the file has 0 bytes"
        );
        let p = Problem::from(e);
        assert_eq!(p.path, PathBuf::from("/data/a.mp4"));
        assert_eq!(p.reason, "empty file: the file has 0 bytes");
        assert_eq!(p.line, None);
    }

    #[test]
    fn damage_counts_errors_and_missing_frames() {
        let mut info = VideoInfo {
            decoded_frames: 8,
            header_frames: Some(30),
            ..Default::default()
        };
        assert_eq!(info.missing_frames(), 22);
        assert!(info.is_damaged());
        info.header_frames = None;
        assert!(!info.is_damaged());
        info.decode_errors = 1;
        assert!(info.is_damaged());
    }
}
