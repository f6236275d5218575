//! Writing videos and images: [`VideoWriter`] (MP4 through FFmpeg's encoders, for users'
//! videos such as `predict --annotate`), [`write_jpeg`] (face-crop frame folders), and the
//! encoder both they and `data::synth` use. No `ffmpeg` executable is involved.
//!
//! Every MP4 written here:
//! - is H.264 through libx264 when the linked FFmpeg has it, else FFmpeg's native MPEG-4
//!   Part 2 ([`VideoCodec::detect`]);
//! - converts RGB -> YUV 4:2:0 with libswscale's default BT.601 matrix and limited range,
//!   and is tagged so (BT.470BG / limited), which is how [`crate::data::decode`] converts it
//!   back;
//! - keeps every frame: timestamps `0, 1, 2, ...` in a `1/fps` time base, each packet one
//!   frame period long (without durations the MP4 muxer ends the track at the last frame's
//!   start and decoders drop that frame), and flushes the encoder at the end.
//!
//! The settings differ by use (the crate-internal `Settings`): `data::synth` encodes
//! deterministically (fixed quantiser, one thread; see its `encode.rs`), users' videos as
//! [`VideoWriter`] says (libx264 CRF 20, preset veryfast, threads as FFmpeg picks; MPEG-4 at
//! quantiser 3).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ffmpeg::util::color;
use ffmpeg::{Dictionary, Packet, Rational, codec, encoder, format, frame};
use ffmpeg_next as ffmpeg;

use crate::data::decode::Frame;
use crate::data::decode::ffmpeg_log::{self, Capture};
use crate::error::{Error, Result};

/// The video encoder of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 through libx264.
    X264,
    /// MPEG-4 Part 2 through FFmpeg's native encoder (every FFmpeg build has it).
    Mpeg4,
}

impl VideoCodec {
    /// libx264 when the linked FFmpeg has it, else MPEG-4; an error if it has neither.
    pub fn detect() -> Result<VideoCodec> {
        ffmpeg_log::init();
        if encoder::find_by_name("libx264").is_some() {
            Ok(VideoCodec::X264)
        } else if encoder::find_by_name("mpeg4").is_some() {
            Ok(VideoCodec::Mpeg4)
        } else {
            Err(Error::Input(
                "the FFmpeg libraries vidapter is linked against have neither the libx264 nor \
                 the mpeg4 encoder; write frame folders instead (`--frames-only`)"
                    .into(),
            ))
        }
    }

    /// FFmpeg's name of the encoder: `libx264` or `mpeg4`.
    pub fn encoder_name(self) -> &'static str {
        match self {
            VideoCodec::X264 => "libx264",
            VideoCodec::Mpeg4 => "mpeg4",
        }
    }

    /// How summaries name it, e.g. `h264 (libx264)`.
    pub fn describe(self) -> &'static str {
        match self {
            VideoCodec::X264 => "h264 (libx264)",
            VideoCodec::Mpeg4 => "mpeg4 (FFmpeg native MPEG-4 Part 2)",
        }
    }
}

/// How an [`Encoder`] codes: the codec and its options.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    /// The encoder.
    pub(crate) codec: VideoCodec,
    /// Frames between key frames; `None`: the encoder's default.
    pub(crate) gop: Option<u32>,
    /// Most B-frames in a row; `None`: the encoder's default.
    pub(crate) max_b_frames: Option<usize>,
    /// FFmpeg's `threads` option: a count, or `auto`.
    pub(crate) threads: &'static str,
    /// libx264 options, in order (e.g. `("crf", "20")`).
    pub(crate) x264: Vec<(&'static str, &'static str)>,
    /// MPEG-4 Part 2 fixed quantiser (1 = best, 31 = worst).
    pub(crate) mpeg4_qscale: i32,
}

/// libx264 constant rate factor of users' videos (visually near-transparent).
pub const USER_CRF: &str = "20";
/// libx264 preset of users' videos: about real time for 1080p on two cores.
pub const USER_PRESET: &str = "veryfast";
/// MPEG-4 Part 2 quantiser of users' videos when libx264 is missing.
pub const USER_MPEG4_QSCALE: i32 = 3;

impl Settings {
    /// Users' videos: libx264 CRF [`USER_CRF`], preset [`USER_PRESET`], the encoder's own
    /// GOP and B-frames, threads as FFmpeg picks; MPEG-4 at [`USER_MPEG4_QSCALE`].
    pub(crate) fn for_users(codec: VideoCodec) -> Settings {
        Settings {
            codec,
            gop: None,
            max_b_frames: None,
            threads: "auto",
            x264: vec![("crf", USER_CRF), ("preset", USER_PRESET)],
            mpeg4_qscale: USER_MPEG4_QSCALE,
        }
    }
}

/// A write failure of `path`, quoting FFmpeg's own messages when it logged any.
fn failed(path: &Path, what: &str, e: impl std::fmt::Display, capture: &Capture) -> Error {
    let messages = capture.messages();
    let detail = if messages.is_empty() {
        String::new()
    } else {
        format!(" (FFmpeg: {})", messages.join("; "))
    };
    Error::io(
        path,
        std::io::Error::other(format!("cannot {what}: {e}{detail}")),
    )
}

/// An open MP4 file and its encoder: RGB8 frames in, packets out (see the module docs).
pub(crate) struct Encoder {
    octx: format::context::Output,
    enc: encoder::Video,
    scaler: ffmpeg::software::scaling::Context,
    /// The RGB frame handed to the scaler; black where a picture smaller than the coded
    /// size leaves padding.
    rgb: frame::Video,
    packet: Packet,
    time_base: Rational,
    stream_tb: Rational,
    /// The path errors name (the file the user asked for, not a temporary).
    shown: PathBuf,
    frames: i64,
}

impl Encoder {
    /// Creates `file` (an MP4 whatever its name) for `width` x `height` (both even) frames at
    /// `frame_rate` frames per second; errors name `shown`.
    pub(crate) fn create(
        file: &Path,
        shown: &Path,
        width: usize,
        height: usize,
        frame_rate: Rational,
        settings: &Settings,
    ) -> Result<Encoder> {
        ffmpeg_log::init();
        let capture = Capture::start();
        let fail = |what: &str, e: ffmpeg::Error| failed(shown, what, e, &capture);
        let (w, h) = match (u32::try_from(width), u32::try_from(height)) {
            (Ok(w), Ok(h)) if w > 0 && h > 0 && w % 2 == 0 && h % 2 == 0 => (w, h),
            _ => {
                return Err(Error::Input(format!(
                    "{}: cannot encode {width}x{height} frames (4:2:0 needs an even size)",
                    shown.display()
                )));
            }
        };
        let time_base = frame_rate.invert();

        let mut octx = format::output_as(file, "mp4").map_err(|e| fail("create the file", e))?;
        let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
        let found = encoder::find_by_name(settings.codec.encoder_name())
            .ok_or_else(|| fail("find the encoder", ffmpeg::Error::EncoderNotFound))?;
        let mut enc = codec::context::Context::new_with_codec(found)
            .encoder()
            .video()
            .map_err(|e| fail("set up the encoder", e))?;
        enc.set_width(w);
        enc.set_height(h);
        enc.set_format(format::Pixel::YUV420P);
        enc.set_time_base(time_base);
        enc.set_frame_rate(Some(frame_rate));
        if let Some(gop) = settings.gop {
            enc.set_gop(gop);
        }
        if let Some(b) = settings.max_b_frames {
            enc.set_max_b_frames(b);
        }
        enc.set_colorspace(color::Space::BT470BG);
        enc.set_color_range(color::Range::MPEG);
        let mut flags = codec::Flags::empty();
        if global_header {
            flags |= codec::Flags::GLOBAL_HEADER;
        }
        let mut opts = Dictionary::new();
        opts.set("threads", settings.threads);
        match settings.codec {
            VideoCodec::X264 => {
                for (key, value) in &settings.x264 {
                    opts.set(key, value);
                }
            }
            VideoCodec::Mpeg4 => {
                flags |= codec::Flags::QSCALE;
                // FF_QP2LAMBDA: the fixed quantiser is given in lambda units.
                enc.set_global_quality(settings.mpeg4_qscale * ffmpeg::ffi::FF_QP2LAMBDA);
            }
        }
        enc.set_flags(flags);
        let enc = enc
            .open_with(opts)
            .map_err(|e| fail("open the encoder", e))?;

        let mut ost = octx
            .add_stream(found)
            .map_err(|e| fail("add the video stream", e))?;
        ost.set_parameters(&enc);
        ost.set_time_base(time_base);
        octx.write_header()
            .map_err(|e| fail("write the MP4 header", e))?;
        // The muxer may pick its own time base for the stream.
        let stream_tb = octx.stream(0).map(|s| s.time_base()).unwrap_or(time_base);

        let scaler = ffmpeg::software::scaling::Context::get(
            format::Pixel::RGB24,
            w,
            h,
            format::Pixel::YUV420P,
            w,
            h,
            ffmpeg::software::scaling::Flags::BICUBIC,
        )
        .map_err(|e| fail("set up RGB to YUV conversion", e))?;
        let mut rgb = frame::Video::new(format::Pixel::RGB24, w, h);
        rgb.data_mut(0).fill(0);
        Ok(Encoder {
            octx,
            enc,
            scaler,
            rgb,
            packet: Packet::empty(),
            time_base,
            stream_tb,
            shown: shown.to_path_buf(),
            frames: 0,
        })
    }

    /// Encodes one RGB8 picture of `width` x `height` (at most the coded size; the rest of
    /// the coded picture stays black). The caller checks `data.len() == width * height * 3`.
    pub(crate) fn write_rgb(&mut self, data: &[u8], width: usize, height: usize) -> Result<()> {
        let capture = Capture::start();
        let shown = self.shown.clone();
        let fail = |what: &str, e: ffmpeg::Error| failed(&shown, what, e, &capture);
        let stride = self.rgb.stride(0);
        let plane = self.rgb.data_mut(0);
        for (row, src) in data.chunks_exact(width * 3).take(height).enumerate() {
            plane[row * stride..row * stride + width * 3].copy_from_slice(src);
        }
        let (w, h) = (self.rgb.width(), self.rgb.height());
        let mut yuv = frame::Video::new(format::Pixel::YUV420P, w, h);
        for plane in 0..3 {
            yuv.data_mut(plane).fill(0);
        }
        self.scaler
            .run(&self.rgb, &mut yuv)
            .map_err(|e| fail("convert a frame to YUV", e))?;
        yuv.set_color_space(color::Space::BT470BG);
        yuv.set_color_range(color::Range::MPEG);
        let k = self.frames;
        yuv.set_pts(Some(k));
        self.enc
            .send_frame(&yuv)
            .map_err(|e| fail(&format!("encode frame {k}"), e))?;
        self.frames += 1;
        self.drain().map_err(|e| fail("write a packet", e))
    }

    /// Flushes the encoder and writes the MP4 trailer; the file is complete when this
    /// returns `Ok` (and closed once `self` is dropped, which this does).
    pub(crate) fn finish(mut self) -> Result<()> {
        let capture = Capture::start();
        let shown = self.shown.clone();
        let fail = |what: &str, e: ffmpeg::Error| failed(&shown, what, e, &capture);
        self.enc
            .send_eof()
            .map_err(|e| fail("flush the encoder", e))?;
        self.drain().map_err(|e| fail("write a packet", e))?;
        self.octx
            .write_trailer()
            .map_err(|e| fail("finish the MP4 file", e))?;
        Ok(())
    }

    /// Writes the packets the encoder has ready.
    fn drain(&mut self) -> std::result::Result<(), ffmpeg::Error> {
        while self.enc.receive_packet(&mut self.packet).is_ok() {
            self.packet.set_stream(0);
            // The encoder leaves durations at 0; the MP4 muxer then ends the track's edit
            // list at the last frame's start and players (and our decoder) drop that frame.
            // One frame period, as the ffmpeg tool sets it.
            self.packet.set_duration(1);
            self.packet.rescale_ts(self.time_base, self.stream_tb);
            self.packet.write_interleaved(&mut self.octx)?;
        }
        Ok(())
    }
}

/// The frame rate `fps` as an exact fraction: whole rates as `n/1`, NTSC rates given
/// rounded (29.97, 23.976, 59.94, ...) as `n*1000/1001`, anything else as the closest
/// fraction with a denominator up to 100,000. `None` unless `0 < fps <= 1000`.
pub fn fps_rational(fps: f64) -> Option<(i32, i32)> {
    if !fps.is_finite() || fps <= 0.0 || fps > 1000.0 {
        return None;
    }
    if (fps - fps.round()).abs() < 1e-3 {
        return Some((fps.round() as i32, 1));
    }
    let ntsc = fps * 1.001;
    if (ntsc - ntsc.round()).abs() < 2e-3 {
        return Some((ntsc.round() as i32 * 1000, 1001));
    }
    // SAFETY: a pure function of its arguments.
    let q = unsafe { ffmpeg::ffi::av_d2q(fps, 100_000) };
    (q.num > 0 && q.den > 0).then_some((q.num, q.den))
}

/// Numbers the temporary files of writers within this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes a video file (MP4) frame by frame, for users' videos (`predict --annotate`):
/// H.264 through libx264 at CRF [`USER_CRF`], preset [`USER_PRESET`], yuv420p, threads as
/// FFmpeg picks; MPEG-4 Part 2 at quantiser [`USER_MPEG4_QSCALE`] when the linked FFmpeg has
/// no libx264. BT.601 limited range, tagged (see the module docs).
///
/// - Any size: 4:2:0 chroma needs an even width and height, so an odd width gets one black
///   column on the right and an odd height one black row at the bottom; the file is
///   [`coded_size`](Self::coded_size) (161x97 is written as 162x98).
/// - `fps` is kept as an exact fraction ([`fps_rational`]): 29.97 is written as 30000/1001.
/// - The container is MP4 whatever the file name says.
/// - Frames go to a temporary file next to `path` (`.<name>.tmp<pid>-<n>`);
///   [`finish`](Self::finish) completes it and renames it to `path`, so `path` never holds a
///   partial video. A writer dropped without `finish` (an error, a panic elsewhere) removes
///   its temporary file and leaves `path` as it was.
pub struct VideoWriter {
    path: PathBuf,
    tmp: PathBuf,
    width: usize,
    height: usize,
    codec: VideoCodec,
    /// `None` once finished (or failed).
    encoder: Option<Encoder>,
    frames: usize,
}

// SAFETY: the FFmpeg objects a writer holds (output and codec contexts, frames, packet, the
// swscale context) are owned by it alone and used only through `&mut self`; FFmpeg lets such
// objects be used from any thread as long as no two threads use one at once. (The scaler
// context alone is not marked `Send` by ffmpeg-next.)
unsafe impl Send for VideoWriter {}

impl VideoWriter {
    /// Starts writing `width` x `height` RGB8 frames at `fps` frames per second to `path`
    /// (creating its folder). Errors (naming `path`): a zero size, an `fps` outside
    /// `0 < fps <= 1000`, no usable encoder, a file that cannot be created.
    pub fn create(path: &Path, width: usize, height: usize, fps: f64) -> Result<VideoWriter> {
        if width == 0 || height == 0 || width > 16384 || height > 16384 {
            return Err(Error::Input(format!(
                "{}: cannot write a {width}x{height} video (1 to 16384 pixels a side)",
                path.display()
            )));
        }
        let Some((num, den)) = fps_rational(fps) else {
            return Err(Error::Input(format!(
                "{}: cannot write a video at {fps} frames per second (0 < fps <= 1000)",
                path.display()
            )));
        };
        let codec = VideoCodec::detect()?;
        let Some(name) = path.file_name() else {
            return Err(Error::Input(format!(
                "{}: not a file name to write a video to",
                path.display()
            )));
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_file_name(format!(
            ".{}.tmp{}-{n}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let (cw, ch) = (width + width % 2, height + height % 2);
        let encoder = Encoder::create(
            &tmp,
            path,
            cw,
            ch,
            Rational(num, den),
            &Settings::for_users(codec),
        );
        let encoder = match encoder {
            Ok(e) => e,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        Ok(VideoWriter {
            path: path.to_path_buf(),
            tmp,
            width,
            height,
            codec,
            encoder: Some(encoder),
            frames: 0,
        })
    }

    /// Encodes one frame, which must be `width` x `height` RGB8 as given to
    /// [`create`](Self::create) (else an error naming the file and both sizes).
    pub fn write(&mut self, frame: &Frame) -> Result<()> {
        if frame.width != self.width
            || frame.height != self.height
            || frame.data.len() != frame.width * frame.height * 3
        {
            return Err(Error::Input(format!(
                "{}: frame {} is {}x{} ({} bytes), but the video is {}x{} RGB8 ({} bytes)",
                self.path.display(),
                self.frames,
                frame.width,
                frame.height,
                frame.data.len(),
                self.width,
                self.height,
                self.width * self.height * 3
            )));
        }
        let Some(encoder) = self.encoder.as_mut() else {
            return Err(Error::Input(format!(
                "{}: the video failed earlier; nothing more is written",
                self.path.display()
            )));
        };
        let written = encoder.write_rgb(&frame.data, frame.width, frame.height);
        if written.is_err() {
            self.encoder = None; // a failed encoder is not used again
        } else {
            self.frames += 1;
        }
        written
    }

    /// Frames written so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// The size of the coded pictures: the size given, each side rounded up to even.
    pub fn coded_size(&self) -> (usize, usize) {
        (self.width + self.width % 2, self.height + self.height % 2)
    }

    /// The encoder used.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Flushes the encoder, writes the trailer, syncs the file and renames it to `path`,
    /// which it returns. A video without frames is an error (and no file).
    pub fn finish(mut self) -> Result<PathBuf> {
        let Some(encoder) = self.encoder.take() else {
            return Err(Error::Input(format!(
                "{}: the video failed earlier and was not written",
                self.path.display()
            )));
        };
        if self.frames == 0 {
            return Err(Error::Input(format!(
                "{}: no frame was written, so no video is",
                self.path.display()
            )));
        }
        // Dropping the encoder (inside `finish`) closes the file.
        encoder.finish()?;
        std::fs::File::open(&self.tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&self.tmp, &self.path))
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(self.path.clone())
    }
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        // Close the file before removing it; after a successful `finish` it is renamed away
        // and this finds nothing.
        self.encoder = None;
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// JPEG bytes of an RGB8 picture at `quality` (1..=100).
pub(crate) fn jpeg_bytes(
    data: &[u8],
    width: usize,
    height: usize,
    quality: u8,
) -> std::result::Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100)).encode(
        data,
        width as u32,
        height as u32,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

/// Writes `frame` as a JPEG file at `quality` (clamped to 1..=100; 95 is near-lossless),
/// atomically ([`crate::util::write_atomic`]: a temporary file, then a rename), creating the
/// folder. Errors name `path`: a frame whose data does not match its size, a size JPEG
/// cannot hold (over 65,535 a side), a file that cannot be written.
pub fn write_jpeg(path: &Path, frame: &Frame, quality: u8) -> Result<()> {
    let fits = |n: usize| (1..=usize::from(u16::MAX)).contains(&n);
    if frame.data.len() != frame.width * frame.height * 3
        || !fits(frame.width)
        || !fits(frame.height)
    {
        return Err(Error::Input(format!(
            "{}: cannot write a {}x{} frame of {} bytes as JPEG (RGB8 needs {} bytes, 1 to \
             65535 pixels a side)",
            path.display(),
            frame.width,
            frame.height,
            frame.data.len(),
            frame.width * frame.height * 3
        )));
    }
    let bytes = jpeg_bytes(&frame.data, frame.width, frame.height, quality)
        .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    crate::util::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::decode::{DecodeOptions, VideoReader};

    #[test]
    fn fps_fractions_are_exact() {
        assert_eq!(fps_rational(25.0), Some((25, 1)));
        assert_eq!(fps_rational(29.97), Some((30000, 1001)));
        assert_eq!(fps_rational(30000.0 / 1001.0), Some((30000, 1001)));
        assert_eq!(fps_rational(23.976), Some((24000, 1001)));
        assert_eq!(fps_rational(59.94), Some((60000, 1001)));
        assert_eq!(fps_rational(12.5), Some((25, 2)));
        assert_eq!(fps_rational(0.0), None);
        assert_eq!(fps_rational(f64::NAN), None);
        assert_eq!(fps_rational(-1.0), None);
    }

    /// The users' settings of both encoders write every frame, readable at the coded size
    /// (VideoWriter itself only ever gets libx264 where FFmpeg has it).
    #[test]
    fn user_settings_of_both_encoders_round_trip() {
        let dir = crate::util::tempdir().unwrap();
        let (w, h) = (48, 32);
        let data: Vec<u8> = (0..w * h * 3).map(|i| (i % 251) as u8).collect();
        for codec in [VideoCodec::X264, VideoCodec::Mpeg4] {
            if encoder::find_by_name(codec.encoder_name()).is_none() {
                continue;
            }
            let path = dir.path().join(format!("{codec:?}.mp4"));
            let settings = Settings::for_users(codec);
            let mut enc =
                Encoder::create(&path, &path, w, h, Rational(30000, 1001), &settings).unwrap();
            for _ in 0..10 {
                enc.write_rgb(&data, w, h).unwrap();
            }
            enc.finish().unwrap();
            let reader = VideoReader::open(&path, &DecodeOptions::default()).unwrap();
            assert_eq!((reader.width(), reader.height()), (w, h), "{codec:?}");
            assert!((reader.fps() - 30000.0 / 1001.0).abs() < 1e-9, "{codec:?}");
            assert_eq!(reader.filter(Result::is_ok).count(), 10, "{codec:?}");
        }
    }
}
