//! Writing the synthetic frames to disk: MP4 videos through the shared encoder of
//! [`crate::data::encode`] (libx264 when the linked FFmpeg has it, else FFmpeg's native
//! MPEG-4 Part 2) with deterministic settings, numbered JPEG folders, and PNG stills. No
//! `ffmpeg` executable is involved.
//!
//! Takes RGB8 `[H, W, 3]` frames (even `W` and `H`, as 4:2:0 chroma needs). Videos:
//! - RGB -> YUV 4:2:0 with libswscale's default BT.601 matrix and limited range, and tagged
//!   so (BT.470BG / limited), which is how [`crate::data::decode`] converts them back;
//! - every frame is kept: timestamps `0, 1, 2, ...` in a `1/fps` time base, each packet one
//!   frame period long (without durations the MP4 muxer ends the track at the last frame's
//!   start and decoders drop that frame), no B-frames, a key frame every [`GOP`] frames;
//! - libx264 at a constant quantiser [`X264_QP`], the same for I and P frames, with adaptive
//!   quantisation, the macroblock tree and scene-cut key frames off ([`X264_PARAMS`]); or MPEG-4 at a fixed
//!   quantiser [`MPEG4_QSCALE`]. Why no rate control: (1) with it, how well a frame is coded
//!   depends on the frames around it and on its place in the GOP, so the order of a clip,
//!   which is its label, would leave a trace in each frame's artefacts that an order-free
//!   model could read; (2) with the macroblock tree or adaptive quantisation on, libx264
//!   (core 164) gave a different bitstream for the same input in about 1 encode in 200 at
//!   32x32 (seen in this crate's tests; the root cause was not pinned down), which broke
//!   "same seed, same pixels";
//! - one encoder thread per video, since the generator already runs one video per core, and
//!   single-threaded x264 output depends only on its input: the files are byte-identical run
//!   to run.

use std::path::Path;

use ffmpeg::Rational;
use ffmpeg_next as ffmpeg;

pub(super) use crate::data::encode::VideoCodec;
use crate::data::encode::{Encoder, Settings, jpeg_bytes};
use crate::error::{Error, Result};

/// Frames between key frames.
pub(super) const GOP: u32 = 8;
/// libx264 constant quantiser (0 = lossless; about what CRF 18 gives these clips).
pub(super) const X264_QP: &str = "18";
/// libx264 settings: every frame at the same quantiser, no adaptive quantisation or
/// macroblock tree, key frames only every [`GOP`] frames (no scene-cut detection), so that
/// no coding decision depends on a clip's content order (see the module docs).
pub(super) const X264_PARAMS: &str = "ipratio=1.0:aq-mode=0:mbtree=0:scenecut=0";
/// MPEG-4 Part 2 quantiser (1 = best, 31 = worst).
pub(super) const MPEG4_QSCALE: i32 = 3;
/// JPEG quality of frame folders (1..=100).
pub(super) const JPEG_QUALITY: u8 = 95;

/// The deterministic encoder settings of synthetic videos (see the module docs).
fn settings(codec: VideoCodec) -> Settings {
    Settings {
        codec,
        gop: Some(GOP),
        max_b_frames: Some(0),
        threads: "1",
        // Speed matters more than the last percent of size for these tiny files.
        x264: vec![
            ("qp", X264_QP),
            ("x264-params", X264_PARAMS),
            ("preset", "veryfast"),
        ],
        mpeg4_qscale: MPEG4_QSCALE,
    }
}

/// Encodes `frames` (RGB8 `[height, width, 3]` each, even sizes) into an MP4 file at `path`,
/// `fps` frames per second, with the shared encoder of [`crate::data::encode`].
pub(super) fn write_mp4(
    path: &Path,
    frames: &[Vec<u8>],
    width: usize,
    height: usize,
    fps: u32,
    codec: VideoCodec,
) -> Result<()> {
    debug_assert!(frames.iter().all(|f| f.len() == width * height * 3));
    let fps_i = i32::try_from(fps).map_err(|_| Error::Input(format!("fps {fps} is too large")))?;
    let mut encoder = Encoder::create(
        path,
        path,
        width,
        height,
        Rational(fps_i, 1),
        &settings(codec),
    )?;
    for data in frames {
        encoder.write_rgb(data, width, height)?;
    }
    encoder.finish()
}

/// Writes `frames` as `dir/img_00001.jpg`, `img_00002.jpg`, ... (mmaction2's raw-frame
/// layout: template `img_{:05}.jpg`, first index 1), creating `dir`.
pub(super) fn write_jpeg_dir(
    dir: &Path,
    frames: &[Vec<u8>],
    width: usize,
    height: usize,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (k, data) in frames.iter().enumerate() {
        let path = dir.join(frame_name(k + 1));
        let bytes = jpeg_bytes(data, width, height, JPEG_QUALITY)
            .map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// File name of frame `index` (1-based) in a frame folder: `img_00001.jpg`.
pub(super) fn frame_name(index: usize) -> String {
    format!("img_{index:05}.jpg")
}

/// Writes one RGB8 image as PNG (lossless: the still images are training targets).
pub(super) fn write_png(path: &Path, data: &[u8], width: usize, height: usize) -> Result<()> {
    image::save_buffer_with_format(
        path,
        data,
        width as u32,
        height as u32,
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::io(path, std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Source;
    use crate::data::decode::{DecodeOptions, decode};
    use ffmpeg::encoder;

    /// 12 frames of a bright square moving right over a grey gradient, 32x24.
    fn moving_square() -> Vec<Vec<u8>> {
        (0..12)
            .map(|t| {
                let mut f = Vec::with_capacity(32 * 24 * 3);
                for y in 0..24 {
                    for x in 0..32 {
                        let inside = (4..12).contains(&y) && (t + 2..t + 10).contains(&x);
                        let v = if inside { 230 } else { 40 + 3 * x as u8 };
                        f.extend_from_slice(&[v, v / 2, 255 - v]);
                    }
                }
                f
            })
            .collect()
    }

    fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
        let s: u64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (x as i32 - y as i32).unsigned_abs() as u64)
            .sum();
        s as f64 / a.len() as f64
    }

    /// Both encoders: every frame comes back, in order, at the size given, close to the input.
    #[test]
    fn both_encoders_round_trip_through_the_decoder() {
        let dir = crate::util::tempdir().unwrap();
        let frames = moving_square();
        for codec in [VideoCodec::X264, VideoCodec::Mpeg4] {
            if encoder::find_by_name(codec.encoder_name()).is_none() {
                assert_eq!(codec, VideoCodec::X264, "every FFmpeg has mpeg4");
                continue;
            }
            let path = dir.path().join(format!("{codec:?}.mp4"));
            write_mp4(&path, &frames, 32, 24, 8, codec).unwrap();
            let got = decode(
                &Source::Video(path.clone()),
                &mut |n| (0..n).collect(),
                &DecodeOptions::default(),
            )
            .unwrap();
            assert_eq!(got.info.decoded_frames, 12, "{codec:?}");
            assert_eq!(got.info.header_frames, Some(12), "{codec:?}");
            assert_eq!((got.info.width, got.info.height), (32, 24));
            assert_eq!(got.info.fps, Some(8.0));
            for (k, (a, b)) in got.frames.iter().zip(&frames).enumerate() {
                // Chroma subsampling blurs the square's coloured edges by a few levels.
                let d = mean_abs_diff(&a.data, b);
                assert!(d < 6.0, "{codec:?} frame {k}: mean |diff| {d}");
            }
            // Frames are in order: each is closest to its own source frame.
            for (k, a) in got.frames.iter().enumerate() {
                let best = (0..12)
                    .min_by(|&i, &j| {
                        mean_abs_diff(&a.data, &frames[i])
                            .total_cmp(&mean_abs_diff(&a.data, &frames[j]))
                    })
                    .unwrap();
                assert_eq!(best, k, "{codec:?}");
            }
        }
    }

    #[test]
    fn x264_output_is_byte_identical_run_to_run() {
        if encoder::find_by_name("libx264").is_none() {
            return;
        }
        let dir = crate::util::tempdir().unwrap();
        let frames = moving_square();
        let (a, b) = (dir.path().join("a.mp4"), dir.path().join("b.mp4"));
        write_mp4(&a, &frames, 32, 24, 8, VideoCodec::X264).unwrap();
        write_mp4(&b, &frames, 32, 24, 8, VideoCodec::X264).unwrap();
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    }

    #[test]
    fn unwritable_path_is_an_error_naming_it() {
        let dir = crate::util::tempdir().unwrap();
        let path = dir.path().join("missing_folder").join("a.mp4");
        let e = write_mp4(&path, &moving_square(), 32, 24, 8, VideoCodec::Mpeg4).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("missing_folder/a.mp4"), "{text}");
        assert!(text.contains("cannot create the file"), "{text}");
    }

    #[test]
    fn jpeg_folders_use_the_mmaction_names() {
        let dir = crate::util::tempdir().unwrap();
        let frames = moving_square();
        write_jpeg_dir(&dir.path().join("v"), &frames[..3], 32, 24).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("v"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["img_00001.jpg", "img_00002.jpg", "img_00003.jpg"]);
    }
}
