//! Video files through FFmpeg: open, pick the video stream, count the frames that decode,
//! convert the selected ones to RGB8.
//!
//! Takes a path; gives the frames at the indices `select` returns (base 0, decoder output
//! order), RGB8 `[H, W, 3]`, converted by [`super::convert`] as `ffmpeg -i f -pix_fmt rgb24`
//! converts them.
//!
//! The video stream is the one the `ffmpeg` tool picks (largest picture; never cover art).
//! Pass 1 decodes every packet of it, counting output frames and keeping them (YUV) while
//! they fit [`DecodeOptions::buffer_frames`] / [`DecodeOptions::buffer_bytes`]; the selected
//! ones are then converted. When they did not fit, pass 2 reopens the file and decodes up
//! to the last selected frame, converting on the way. Damage (unreadable or corrupt packets,
//! frames flagged with decode errors) is counted in [`VideoInfo::decode_errors`]; such a
//! video is refused as [`Kind::Damaged`] unless [`DecodeOptions::allow_damaged`] is set.

use std::ffi::{CStr, c_int};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ffmpeg::ffi;
use ffmpeg::format::stream::Disposition;
use ffmpeg::util::error::{EAGAIN, ENOENT};
use ffmpeg::{Error as FfError, Packet, Rational, codec, decoder, format, frame, media};
use ffmpeg_next as ffmpeg;

use super::convert::Converter;
use super::ffmpeg_log::{self, Capture};
use super::{
    DecodeError, DecodeErrorKind as Kind, DecodeOptions, Decoded, VideoInfo, distinct_sorted,
    gather, select_checked,
};

/// Probe score from which FFmpeg trusts a content-based format guess (`AVPROBE_SCORE_RETRY`).
const PROBE_SCORE_RETRY: c_int = 25;

/// Consecutive unreadable packets after which the demuxer is considered lost.
const MAX_BAD_PACKETS_IN_A_ROW: usize = 10_000;

/// See [`super::decode`]; this is its video half.
pub(super) fn decode(
    path: &Path,
    select: &mut dyn FnMut(usize) -> Vec<usize>,
    opts: &DecodeOptions,
) -> Result<Decoded, DecodeError> {
    check_file(path)?;
    ffmpeg_log::init();
    let capture = Capture::start();
    let deadline = Deadline::new(opts);
    match decode_video(path, select, opts, &deadline, &capture) {
        Ok(mut decoded) => {
            decoded.info.messages = capture.messages();
            Ok(decoded)
        }
        Err(e) => Err(with_messages(e, &capture.messages())),
    }
}

/// Fails early, with a precise kind, for paths that are not a readable non-empty file.
pub(super) fn check_file(path: &Path) -> Result<(), DecodeError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(DecodeError::new(path, Kind::Missing, "no such file"))
        }
        Err(e) => Err(DecodeError::new(
            path,
            Kind::Missing,
            format!("cannot be read: {e}"),
        )),
        Ok(m) if m.is_dir() => Err(DecodeError::new(
            path,
            Kind::NotVideo,
            "is a folder, not a video file",
        )),
        Ok(m) if m.len() == 0 => Err(DecodeError::new(path, Kind::Empty, "the file has 0 bytes")),
        Ok(_) => Ok(()),
    }
}

/// When a decode must give up: [`DecodeOptions::timeout`] after the start of the current
/// window. Clones share the window (FFmpeg's interrupt callback holds one), and
/// [`restart`](Self::restart) opens a new one: [`decode`] uses one window for the whole call,
/// the streaming reader one per call of `open` and `next`. A timeout too large to represent
/// never passes.
#[derive(Clone)]
pub(super) struct Deadline {
    base: Instant,
    /// Nanoseconds from `base` at which the current window began.
    window_ns: Arc<AtomicU64>,
    limit: Duration,
}

impl Deadline {
    pub(super) fn new(opts: &DecodeOptions) -> Self {
        Deadline {
            base: Instant::now(),
            window_ns: Arc::new(AtomicU64::new(0)),
            limit: opts.timeout,
        }
    }

    /// Starts a new window now.
    pub(super) fn restart(&self) {
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.window_ns.store(now, Ordering::Relaxed);
    }

    fn elapsed(&self) -> Duration {
        let began = Duration::from_nanos(self.window_ns.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(began)
    }

    /// The limit of each window.
    pub(super) fn limit(&self) -> Duration {
        self.limit
    }

    pub(super) fn passed(&self) -> bool {
        self.elapsed() >= self.limit
    }

    pub(super) fn check(&self, path: &Path, frames_so_far: usize) -> Result<(), DecodeError> {
        if self.passed() {
            Err(self.error(path, frames_so_far))
        } else {
            Ok(())
        }
    }

    fn error(&self, path: &Path, frames_so_far: usize) -> DecodeError {
        DecodeError::new(
            path,
            Kind::Timeout,
            format!(
                "gave up after {:.1?} (limit {:?}) with {frames_so_far} frames decoded",
                self.elapsed(),
                self.limit
            ),
        )
    }
}

/// Appends FFmpeg's messages about the file, if any, to an error's reason.
pub(super) fn with_messages(mut e: DecodeError, messages: &[String]) -> DecodeError {
    if !messages.is_empty() {
        e.reason = format!("{} (FFmpeg: {})", e.reason, messages.join("; "));
    }
    e
}

/// Whether a video that decoded fewer frames than its header states was cut off: a file cut
/// between packets decodes without one error, the demuxer only logs "partial file" and stops
/// early; or the container's index ends past the file's end. Fewer frames alone is not
/// damage: packed B-frame AVIs report extra frames.
pub(super) fn cut_off(path: &Path, info: &VideoInfo, index_end: u64, messages: &[String]) -> bool {
    let file_len = std::fs::metadata(path).map_or(u64::MAX, |m| m.len());
    info.missing_frames() > 0
        && (index_end > file_len || messages.iter().any(|m| m.contains("partial file")))
}

fn decode_video(
    path: &Path,
    select: &mut dyn FnMut(usize) -> Vec<usize>,
    opts: &DecodeOptions,
    deadline: &Deadline,
    capture: &Capture,
) -> Result<Decoded, DecodeError> {
    let mut first = Demuxer::open(path, opts, deadline)?;
    let first_index_end = first.index_end();
    let mut info = first.info.clone();
    let rotation = if opts.autorotate { first.rotation } else { 0 };
    info.rotation = rotation;

    // Pass 1: decode everything, keeping the YUV frames while they fit the budget.
    let mut kept: Vec<frame::Video> = Vec::new();
    let mut kept_bytes = 0usize;
    let mut overflowed = false;
    let mut first_size = None;
    let stats = first.run(path, deadline, None, &mut |i, f| {
        if i == 0 {
            first_size = Some((f.width() as usize, f.height() as usize));
        }
        if !overflowed {
            kept_bytes += frame_bytes(&f);
            if kept.len() < opts.buffer_frames && kept_bytes <= opts.buffer_bytes {
                kept.push(f);
            } else {
                overflowed = true;
                kept = Vec::new(); // free now: the rest of the pass only counts
            }
        }
        Ok(())
    })?;
    drop(first);
    info.decoded_frames = stats.frames;
    let cut_off = cut_off(path, &info, first_index_end, &capture.messages());
    info.decode_errors = stats.errors + usize::from(cut_off);
    let stats = PassStats {
        errors: info.decode_errors,
        ..stats
    };
    if let Some((w, h)) = first_size {
        (info.width, info.height) = if rotation % 180 == 90 { (h, w) } else { (w, h) };
    }
    if stats.frames == 0 {
        let header = info
            .header_frames
            .map_or(String::new(), |h| format!("; the header claims {h} frames"));
        return Err(DecodeError::new(
            path,
            Kind::NoFrames,
            format!("no frame decodes ({} decode errors{header})", stats.errors),
        ));
    }

    if stats.errors > 0 && !opts.allow_damaged {
        let header = info
            .header_frames
            .map_or(String::new(), |h| format!(" of the {h} the header states"));
        return Err(DecodeError::new(
            path,
            Kind::Damaged,
            format!(
                "{} decode error(s); {} frame(s) decode{header}, so the clip is not used \
                 (a truncated or damaged file)",
                stats.errors, stats.frames
            ),
        ));
    }
    let indices = select_checked(select, stats.frames);
    let wanted = distinct_sorted(&indices);
    let mut converter = Converter::default();
    let mut converted = Vec::with_capacity(wanted.len());
    if !overflowed {
        for &i in &wanted {
            deadline.check(path, stats.frames)?;
            let frame = converter
                .convert(&kept[i], rotation)
                .map_err(|r| DecodeError::new(path, Kind::Unsupported, r))?;
            converted.push((i, frame));
        }
    } else {
        // Pass 2: decode again up to the last wanted frame, converting only wanted ones.
        drop(kept);
        let mut second = Demuxer::open(path, opts, deadline)?;
        let last = wanted.last().copied();
        let mut next = 0; // position in `wanted`
        second.run(path, deadline, last, &mut |i, f| {
            if next < wanted.len() && wanted[next] == i {
                let frame = converter
                    .convert(&f, rotation)
                    .map_err(|r| DecodeError::new(path, Kind::Unsupported, r))?;
                converted.push((i, frame));
                next += 1;
            }
            Ok(())
        })?;
        if converted.len() != wanted.len() {
            return Err(DecodeError::new(
                path,
                Kind::Corrupt,
                format!(
                    "decodes differently each time: {} frames the first time, frame {} \
                     missing the second",
                    stats.frames,
                    wanted[converted.len()]
                ),
            ));
        }
    }
    Ok(Decoded {
        frames: gather(&indices, converted),
        info,
    })
}

/// Bytes held by a decoded frame's planes.
fn frame_bytes(f: &frame::Video) -> usize {
    (0..f.planes())
        .map(|p| f.stride(p) * f.plane_height(p) as usize)
        .sum()
}

/// An open input with its chosen video stream and decoder, giving decoded frames one at a
/// time ([`next_frame`](Self::next_frame)): [`decode`] runs it to the end, the streaming
/// reader pulls from it.
pub(super) struct Demuxer {
    input: format::context::Input,
    stream: usize,
    decoder: decoder::Video,
    /// The stream's time base (seconds per timestamp unit).
    pub(super) time_base: Rational,
    /// Clockwise quarter turns (in degrees) that make frames upright.
    pub(super) rotation: u16,
    /// Header facts: frame count, fps, codec.
    pub(super) info: VideoInfo,
    /// Frames output and errors seen so far.
    pub(super) stats: PassStats,
    /// Unreadable packets since the last readable one.
    bad_in_a_row: usize,
    feed: Feed,
}

/// Where a [`Demuxer`] is in its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// Reading packets.
    Packets,
    /// The end was sent to the decoder; it gives the frames it still holds.
    Flushing,
    /// Nothing more comes.
    Done,
}

/// What a pass over the packets found.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PassStats {
    /// Frames the decoder output.
    pub(super) frames: usize,
    /// Packets or frames flagged broken.
    pub(super) errors: usize,
}

impl Demuxer {
    /// Where the container's index says the stream's last packet ends (byte offset; 0 when
    /// it has no index). Past the file's length, the file was cut off.
    pub(super) fn index_end(&self) -> u64 {
        let Some(st) = self.input.stream(self.stream) else {
            return 0;
        };
        let mut end: i64 = 0;
        // SAFETY: `st` is a stream of the open input; entries are read before any call that
        // could change the index.
        unsafe {
            let st = st.as_ptr() as *mut ffi::AVStream;
            let n = ffi::avformat_index_get_entries_count(st);
            for i in 0..n {
                let e = ffi::avformat_index_get_entry(st, i);
                if !e.is_null() {
                    end = end.max((*e).pos.saturating_add(i64::from((*e).size())));
                }
            }
        }
        u64::try_from(end).unwrap_or(0)
    }

    pub(super) fn open(
        path: &Path,
        opts: &DecodeOptions,
        deadline: &Deadline,
    ) -> Result<Demuxer, DecodeError> {
        deadline.check(path, 0)?;
        let d = deadline.clone();
        // FFmpeg polls this during blocking I/O and stream probing.
        let input = format::input_with_interrupt(path, move || d.passed())
            .map_err(|e| open_error(path, e, deadline))?;
        Demuxer::with_input(path, input, opts)
    }

    /// A demuxer over an input opened by the caller (a live source with its own options);
    /// `path` names it in errors.
    pub(super) fn with_input(
        path: &Path,
        input: format::context::Input,
        opts: &DecodeOptions,
    ) -> Result<Demuxer, DecodeError> {
        let Some(stream) = choose_stream(&input) else {
            let kinds: Vec<String> = input
                .streams()
                .map(|s| format!("{:?}", s.parameters().medium()).to_lowercase())
                .collect();
            let listed = if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(", ")
            };
            return Err(DecodeError::new(
                path,
                Kind::NotVideo,
                format!("has no video stream (streams: {listed})"),
            ));
        };
        let st = input.stream(stream).expect("chosen stream exists");
        let params = st.parameters();
        let id = params.id();
        let codec_name = id.name().to_string();
        let info = VideoInfo {
            header_frames: usize::try_from(st.frames()).ok().filter(|&n| n > 0),
            fps: rate(st.avg_frame_rate()).or_else(|| rate(st.rate())),
            codec: codec_name.clone(),
            ..VideoInfo::default()
        };
        let rotation = display_rotation(&st);
        let time_base = st.time_base();

        let Some(codec) = decoder::find(id) else {
            return Err(DecodeError::new(
                path,
                Kind::Unsupported,
                format!("no decoder for codec `{codec_name}` in this FFmpeg build"),
            ));
        };
        let mut ctx = codec::context::Context::from_parameters(params).map_err(|e| {
            DecodeError::new(path, Kind::Corrupt, format!("bad stream parameters: {e}"))
        })?;
        // SAFETY: plain field write on a context not yet opened.
        unsafe { (*ctx.as_mut_ptr()).thread_count = opts.threads.min(64) as c_int };
        let mut dec = ctx.decoder();
        dec.set_packet_time_base(time_base);
        let decoder = dec.open_as(codec).and_then(|o| o.video()).map_err(|e| {
            DecodeError::new(
                path,
                Kind::Unsupported,
                format!("the `{codec_name}` decoder does not open: {e}"),
            )
        })?;
        Ok(Demuxer {
            input,
            stream,
            decoder,
            time_base,
            rotation,
            info,
            stats: PassStats::default(),
            bad_in_a_row: 0,
            feed: Feed::Packets,
        })
    }

    /// Decodes the rest of the stream, calling `on_frame(index, frame)` for each frame in
    /// output order (index base 0). Stops at the end of the file, or once frame `stop_after`
    /// has been delivered.
    fn run(
        &mut self,
        path: &Path,
        deadline: &Deadline,
        stop_after: Option<usize>,
        on_frame: &mut dyn FnMut(usize, frame::Video) -> Result<(), DecodeError>,
    ) -> Result<PassStats, DecodeError> {
        while let Some(f) = self.next_frame(path, deadline)? {
            let i = self.stats.frames - 1;
            on_frame(i, f)?;
            if stop_after.is_some_and(|last| i >= last) {
                break;
            }
        }
        Ok(self.stats)
    }

    /// The next decoded frame in output order (it is frame `stats.frames - 1`), or `None` at
    /// the end of the stream. Reads packets of the chosen stream only as far as needed: the
    /// decoder holds a few frames at most (reordering, frame threads), nothing else is kept.
    /// Damage is counted in `stats.errors`, never returned as an error; only the deadline
    /// ends a stream with an error.
    pub(super) fn next_frame(
        &mut self,
        path: &Path,
        deadline: &Deadline,
    ) -> Result<Option<frame::Video>, DecodeError> {
        loop {
            if self.feed != Feed::Done
                && let Some(f) = self.receive()
            {
                return Ok(Some(f));
            }
            match self.feed {
                Feed::Packets => self.feed_packet(path, deadline)?,
                Feed::Flushing | Feed::Done => {
                    self.feed = Feed::Done;
                    return Ok(None);
                }
            }
        }
    }

    /// Reads one packet and sends it to the decoder if it is of the chosen stream; at the end
    /// of the file (or when reading fails for good) sends the decoder the end of the stream.
    fn feed_packet(&mut self, path: &Path, deadline: &Deadline) -> Result<(), DecodeError> {
        deadline.check(path, self.stats.frames)?;
        let mut packet = Packet::empty();
        match packet.read(&mut self.input) {
            Ok(()) => self.bad_in_a_row = 0,
            Err(FfError::Eof) => {
                self.flush();
                return Ok(());
            }
            Err(FfError::Exit) => return Err(deadline.error(path, self.stats.frames)),
            // The demuxer can resync past invalid data (a truncated MP4 reports each
            // missing sample this way).
            Err(FfError::InvalidData) => {
                self.stats.errors += 1;
                self.bad_in_a_row += 1;
                if self.bad_in_a_row >= MAX_BAD_PACKETS_IN_A_ROW {
                    self.flush();
                }
                return Ok(());
            }
            // Any other read error is sticky in FFmpeg: stop reading, keep what decoded.
            Err(_) => {
                self.stats.errors += 1;
                self.flush();
                return Ok(());
            }
        }
        if packet.stream() != self.stream {
            return Ok(());
        }
        if packet.is_corrupt() {
            self.stats.errors += 1;
        }
        match self.decoder.send_packet(&packet) {
            Ok(()) => {}
            // The caller drains the decoder after every packet.
            Err(FfError::Other { errno: EAGAIN }) => {}
            Err(_) => self.stats.errors += 1,
        }
        Ok(())
    }

    /// Sends the end of the stream, so that the decoder gives the frames it still holds
    /// (B-frame reordering, frame threads).
    fn flush(&mut self) {
        self.feed = if self.decoder.send_eof().is_ok() {
            Feed::Flushing
        } else {
            Feed::Done
        };
    }

    /// A frame the decoder has ready, counting it (and its damage) in `stats`.
    fn receive(&mut self) -> Option<frame::Video> {
        let mut f = frame::Video::empty();
        match self.decoder.receive_frame(&mut f) {
            Ok(()) => {
                if f.is_corrupt() || f.has_decode_errors() {
                    self.stats.errors += 1;
                }
                self.stats.frames += 1;
                Some(f)
            }
            Err(FfError::Other { errno: EAGAIN }) | Err(FfError::Eof) => None,
            Err(_) => {
                self.stats.errors += 1;
                None
            }
        }
    }
}

/// Classifies a failure to open: timeout, vanished file, damaged container, or not a video.
fn open_error(path: &Path, e: FfError, deadline: &Deadline) -> DecodeError {
    match e {
        FfError::Exit => deadline.error(path, 0),
        FfError::Other { errno: ENOENT } => DecodeError::new(path, Kind::Missing, "no such file"),
        e => match recognised_format(path) {
            // The content (not the file name) says what container this is: it is damaged.
            Some(name) => DecodeError::new(
                path,
                Kind::Corrupt,
                format!("looks like `{name}` but does not open: {e}"),
            ),
            None => DecodeError::new(path, Kind::NotVideo, format!("FFmpeg cannot open it: {e}")),
        },
    }
}

/// The container FFmpeg recognises from the first bytes of `path` alone (ignoring the file
/// name, which FFmpeg otherwise trusts: a text file named `.mp4` is "an MP4 without moov").
fn recognised_format(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(path)
        .ok()?
        .take(4096)
        .read_to_end(&mut head)
        .ok()?;
    let size = head.len();
    head.resize(size + ffi::AVPROBE_PADDING_SIZE as usize, 0); // FFmpeg requires zero padding
    let mut score: c_int = 0;
    // SAFETY: the probe data points to `head` (size bytes + zeroed padding) and a valid empty
    // file name; FFmpeg only reads them during the call.
    let name = unsafe {
        let mut pd: ffi::AVProbeData = std::mem::zeroed();
        pd.filename = c"".as_ptr();
        pd.buf = head.as_mut_ptr();
        pd.buf_size = size as c_int;
        let fmt = ffi::av_probe_input_format3(&pd, 1, &mut score);
        if fmt.is_null() {
            return None;
        } else {
            CStr::from_ptr((*fmt).name).to_string_lossy().into_owned()
        }
    };
    (score >= PROBE_SCORE_RETRY).then_some(name)
}

/// The video stream the `ffmpeg` tool would pick: largest picture, then the default-flagged
/// one (ffmpeg_opt.c); cover art (attached pictures) is never a video.
fn choose_stream(input: &format::context::Input) -> Option<usize> {
    input
        .streams()
        .filter(|s| s.parameters().medium() == media::Type::Video)
        .filter(|s| !s.disposition().contains(Disposition::ATTACHED_PIC))
        .max_by_key(|s| {
            // SAFETY: reading plain fields of the stream's codec parameters.
            let (w, h) = unsafe {
                let p = s.parameters().as_ptr();
                ((*p).width.max(0) as u64, (*p).height.max(0) as u64)
            };
            let default = s.disposition().contains(Disposition::DEFAULT) as u64;
            // Later streams lose ties, as in the tool.
            (w * h + 5_000_000 * default, std::cmp::Reverse(s.index()))
        })
        .map(|s| s.index())
}

fn rate(r: Rational) -> Option<f64> {
    (r.numerator() > 0 && r.denominator() > 0).then(|| f64::from(r))
}

/// Clockwise rotation (0, 90, 180 or 270) that turns the stream's frames upright, read from
/// its display matrix as the 5.1 tool does (cmdutils.c `get_rotation`); other angles are
/// ignored, as a right-angle turn is all we apply.
fn display_rotation(stream: &format::stream::Stream) -> u16 {
    for sd in stream.side_data() {
        if sd.kind() != codec::packet::side_data::Type::DisplayMatrix || sd.data().len() < 36 {
            continue;
        }
        let m: Vec<i32> = sd.data()[..36]
            .chunks_exact(4)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        // SAFETY: `m` holds the 9 entries the function reads.
        let r = unsafe { ffi::av_display_rotation_get(m.as_ptr()) };
        if r.is_nan() {
            return 0;
        }
        let mut theta = -r.round();
        theta -= 360.0 * (theta / 360.0 + 0.9 / 360.0).floor();
        for quarter in [90u16, 180, 270] {
            if (theta - f64::from(quarter)).abs() < 1.0 {
                return quarter;
            }
        }
        return 0;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_reported_before_ffmpeg_runs() {
        let e = check_file(Path::new("/nonexistent/vidapter/a.mp4")).unwrap_err();
        assert_eq!(e.kind, Kind::Missing);
    }
}
