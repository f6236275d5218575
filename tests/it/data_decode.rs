//! Decoding videos and frame folders: frames must equal what the `ffmpeg` tool decodes, the
//! frame count must be the count that actually decodes, and bad inputs must come back as
//! errors naming the file, never as panics or hangs.
//!
//! Every video is made here with the `ffmpeg` tool (installed by scripts/install-deps.sh)
//! in a temporary folder: small (96x64 or so, 30 frames), so the whole file runs in seconds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use vidapter::data::Source;
use vidapter::data::decode::{DecodeErrorKind, DecodeOptions, Decoded, Frame, decode};

/// Largest mean absolute difference per channel value allowed against the `ffmpeg` tool.
/// Both sides run the same libswscale conversion with the same matrix, range and flags, so
/// the frames are expected to be identical, and are (0 difference on every file here with
/// FFmpeg 5.1); the margin only admits a different SIMD path (libswscale picks some by
/// buffer alignment), which moves values by a rounding step. A wrong matrix or range moves
/// them by 10 levels or more (see `bt709_tagged_hd_uses_bt709_matrix`).
const MAX_MEAN_DIFF: f64 = 0.5;
/// Largest single channel difference allowed (same reason: one or two rounding steps).
const MAX_ABS_DIFF: u8 = 2;

/// Runs `ffmpeg <args> <output>` quietly; panics with its stderr if it fails. `args` is split
/// at whitespace (no argument holds a space); paths are passed apart.
pub(crate) fn ffmpeg(args: &str, output: &Path) {
    run_ffmpeg(None, args, output);
}

/// Runs `ffmpeg -i <input> <args> <output>` (see [`ffmpeg`]).
fn ffmpeg_in(input: &Path, args: &str, output: &Path) {
    run_ffmpeg(Some(input), args, output);
}

fn run_ffmpeg(input: Option<&Path>, args: &str, output: &Path) {
    let mut cmd = Command::new("ffmpeg");
    // -timelimit: a mistaken command (an endless source) fails instead of hanging.
    cmd.args("-hide_banner -nostdin -v error -y -timelimit 20".split_whitespace());
    if let Some(input) = input {
        cmd.arg("-i").arg(input);
    }
    let out = cmd
        .args(args.split_whitespace())
        .arg(output)
        .output()
        .expect("the ffmpeg tool runs (scripts/install-deps.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg {args} failed:\n{stderr}");
}

/// Whether the `ffmpeg` tool has an encoder.
pub(crate) fn has_encoder(name: &str) -> bool {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .expect("ffmpeg runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .any(|w| w == name)
}

/// A 30-frame 96x64 test pattern encoded with `codec_args` into `dir/name`.
pub(crate) fn make_video(dir: &Path, name: &str, codec_args: &str) -> PathBuf {
    let path = dir.join(name);
    let source = "-f lavfi -i testsrc2=size=96x64:rate=25 -frames:v 30";
    ffmpeg(&format!("{source} {codec_args}"), &path);
    path
}

/// The frames as the `ffmpeg` tool decodes and converts them (every frame it decodes, no
/// frame-rate conversion), each `w * h * 3` bytes.
fn reference_frames(path: &Path, extra_filters: Option<&str>, w: usize, h: usize) -> Vec<Vec<u8>> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(path);
    if let Some(vf) = extra_filters {
        cmd.args(["-vf", vf]);
    }
    let out = cmd
        .args([
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .stderr(Stdio::null())
        .output()
        .expect("ffmpeg runs");
    let size = w * h * 3;
    assert_eq!(
        out.stdout.len() % size,
        0,
        "ffmpeg output is not whole {w}x{h} frames"
    );
    out.stdout.chunks(size).map(<[u8]>::to_vec).collect()
}

fn opts() -> DecodeOptions {
    DecodeOptions::default()
}

/// Decodes every frame, recording the count `select` was given.
fn decode_all(path: &Path, opts: &DecodeOptions) -> (Decoded, usize) {
    let mut seen = 0;
    let decoded = decode(
        &Source::Video(path.to_path_buf()),
        &mut |n| {
            seen = n;
            (0..n).collect()
        },
        opts,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (decoded, seen)
}

/// (mean, max) absolute difference per channel value.
fn diff(a: &[u8], b: &[u8]) -> (f64, u8) {
    assert_eq!(a.len(), b.len());
    let mut sum = 0u64;
    let mut max = 0u8;
    for (x, y) in a.iter().zip(b) {
        let d = x.abs_diff(*y);
        sum += u64::from(d);
        max = max.max(d);
    }
    (sum as f64 / a.len() as f64, max)
}

/// Decodes every frame and checks count and pixels against the `ffmpeg` tool.
fn assert_matches_cli(path: &Path) -> Decoded {
    let (decoded, n) = decode_all(path, &opts());
    let first = &decoded.frames[0];
    let (w, h) = (first.width, first.height);
    let reference = reference_frames(path, None, w, h);
    assert_eq!(
        n,
        reference.len(),
        "{}: frame count differs from the ffmpeg tool's",
        path.display()
    );
    assert_eq!(decoded.frames.len(), n);
    assert_eq!(decoded.info.decoded_frames, n);
    for (i, (ours, theirs)) in decoded.frames.iter().zip(&reference).enumerate() {
        assert_eq!((ours.width, ours.height), (w, h));
        assert_eq!(ours.data.len(), w * h * 3);
        let (mean, max) = diff(&ours.data, theirs);
        assert!(
            mean <= MAX_MEAN_DIFF && max <= MAX_ABS_DIFF,
            "{} frame {i}: mean diff {mean:.3}, max {max} vs the ffmpeg tool",
            path.display()
        );
    }
    decoded
}

// ----------------------------------------------------------------------------------------
// Codecs and containers, against the ffmpeg tool.

#[test]
fn h264_mp4_matches_ffmpeg_cli() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = make_video(dir.path(), "a.mp4", "-pix_fmt yuv420p -c:v libx264 -bf 2");
    let d = assert_matches_cli(&path);
    assert_eq!(d.info.decoded_frames, 30);
    assert_eq!(d.info.header_frames, Some(30));
    assert_eq!((d.info.width, d.info.height), (96, 64));
    assert_eq!(d.info.codec, "h264");
    assert_eq!(d.info.fps, Some(25.0));
    assert_eq!(d.info.decode_errors, 0);
    assert!(!d.info.is_damaged());
}

#[test]
fn mpeg4_avi_with_b_frames_matches_ffmpeg_cli() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = make_video(dir.path(), "a.avi", "-c:v mpeg4 -bf 2 -q:v 4");
    let d = assert_matches_cli(&path);
    assert_eq!(d.info.codec, "mpeg4");
}

#[test]
fn vp9_webm_matches_ffmpeg_cli() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = make_video(
        dir.path(),
        "a.webm",
        "-pix_fmt yuv420p -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 200k",
    );
    let d = assert_matches_cli(&path);
    assert_eq!(d.info.codec, "vp9");
    assert_eq!(d.info.header_frames, None, "WebM states no frame count");
}

#[test]
fn hevc_mkv_matches_ffmpeg_cli() {
    if !has_encoder("libx265") {
        println!("note: skipped, this ffmpeg has no libx265 encoder to make an HEVC file");
        return;
    }
    let dir = vidapter::util::tempdir().unwrap();
    let path = make_video(
        dir.path(),
        "a.mkv",
        "-pix_fmt yuv420p -c:v libx265 -preset ultrafast -x265-params log-level=error",
    );
    let d = assert_matches_cli(&path);
    assert_eq!(d.info.codec, "hevc");
}

#[test]
fn audio_first_stream_is_skipped() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = dir.path().join("audio_first.mp4");
    ffmpeg(
        "-f lavfi -i sine=frequency=440:duration=1.2 \
         -f lavfi -i testsrc2=size=96x64:rate=25:duration=1.2 \
         -map 0:a -map 1:v -c:a aac -c:v libx264 -pix_fmt yuv420p",
        &path,
    );
    let d = assert_matches_cli(&path);
    assert_eq!(d.info.codec, "h264");
    assert_eq!(d.info.decoded_frames, 30);
}

#[test]
fn variable_frame_rate_indexes_frames_in_decode_order() {
    let dir = vidapter::util::tempdir().unwrap();
    // Frames 10.. are spaced twice as far apart as frames 0..10.
    let path = make_video(
        dir.path(),
        "vfr.mkv",
        "-vf setpts='if(lt(N,10),N,2*N-10)/(25*TB)' -fps_mode vfr -c:v libx264 -pix_fmt yuv420p",
    );
    let d = assert_matches_cli(&path);
    assert_eq!(
        d.info.decoded_frames, 30,
        "every frame once, none duplicated for the gaps"
    );
}

#[test]
fn bt709_tagged_hd_uses_bt709_matrix() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = dir.path().join("hd709.mp4");
    // Saturated colours (testsrc2 bars) make BT.601 vs BT.709 differ by many levels.
    ffmpeg(
        "-f lavfi -i testsrc2=size=320x180:rate=25 -frames:v 5 \
         -vf scale=out_color_matrix=bt709:out_range=tv \
         -colorspace bt709 -color_primaries bt709 -color_trc bt709 \
         -pix_fmt yuv420p -c:v libx264",
        &path,
    );
    let d = assert_matches_cli(&path);
    // The test has teeth: decoding with the BT.601 matrix gives visibly different colours.
    let as_601 = reference_frames(&path, Some("scale=in_color_matrix=bt601"), 320, 180);
    let (mean, max) = diff(&d.frames[0].data, &as_601[0]);
    assert!(
        max > 10 && mean > 0.5,
        "BT.601 and BT.709 decodes barely differ (mean {mean:.2}, max {max})"
    );
}

#[test]
fn full_range_stream_keeps_full_range() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = make_video(
        dir.path(),
        "full.mp4",
        "-pix_fmt yuvj420p -c:v libx264 -color_range pc",
    );
    assert_matches_cli(&path);
}

#[test]
fn rotated_phone_video_is_turned_upright() {
    let dir = vidapter::util::tempdir().unwrap();
    let rotated = rotated_video(dir.path());
    let d = assert_matches_cli(&rotated);
    assert_eq!((d.frames[0].width, d.frames[0].height), (64, 96));
    assert_eq!((d.info.width, d.info.height), (64, 96));
    // `rotate=90` stores FFmpeg's display matrix for 90 degrees counter-clockwise
    // (`ffprobe` prints rotation=90); turning it upright is 270 degrees clockwise, which the
    // tool does with `transpose=cclock`, and the pixels above matched the tool's.
    assert_eq!(d.info.rotation, 270);
    // Without autorotate the stored orientation comes back.
    let raw = DecodeOptions {
        autorotate: false,
        ..opts()
    };
    let (d, _) = decode_all(&rotated, &raw);
    assert_eq!((d.frames[0].width, d.frames[0].height), (96, 64));
    assert_eq!(d.info.rotation, 0);
}

/// A phone video: the H.264 test pattern with a display matrix of 90 degrees
/// counter-clockwise (`rotate=90`), as `dir/rotated.mp4`.
pub(crate) fn rotated_video(dir: &Path) -> PathBuf {
    let plain = make_video(dir, "plain.mp4", "-pix_fmt yuv420p -c:v libx264");
    let rotated = dir.join("rotated.mp4");
    ffmpeg_in(&plain, "-c copy -metadata:s:v rotate=90", &rotated);
    rotated
}

// ----------------------------------------------------------------------------------------
// The select contract.

#[test]
fn select_receives_the_decoded_count_not_the_header_count() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = make_video(
        dir.path(),
        "a.mp4",
        "-pix_fmt yuv420p -c:v libx264 -movflags +faststart",
    );
    let truncated = truncate_half(&path);
    let reference = reference_frames(&truncated, None, 96, 64).len();
    assert!(
        reference > 0 && reference < 30,
        "the ffmpeg tool decodes {reference} frames of the half file"
    );
    let (d, n) = decode_all(&truncated, &allowed());
    assert_eq!(n, reference, "select gets the count that decodes");
    assert_eq!(d.info.decoded_frames, reference);
    assert_eq!(d.info.header_frames, Some(30));
    assert_eq!(d.info.missing_frames(), 30 - reference);
    assert!(d.info.decode_errors > 0);
    assert!(d.info.is_damaged());
    assert!(!d.info.messages.is_empty(), "FFmpeg's own words are kept");
}

#[test]
fn repeated_and_unordered_indices_come_back_in_the_order_given() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = make_video(dir.path(), "a.mp4", "-pix_fmt yuv420p -c:v libx264");
    let (all, _) = decode_all(&path, &opts());
    let order = vec![29, 3, 3, 0, 17, 3];
    let mut calls = 0;
    let d = decode(
        &Source::Video(path.clone()),
        &mut |n| {
            calls += 1;
            assert_eq!(n, 30);
            order.clone()
        },
        &opts(),
    )
    .unwrap();
    assert_eq!(calls, 1, "select is called exactly once");
    let expected: Vec<&Frame> = order.iter().map(|&i| &all.frames[i]).collect();
    assert_eq!(d.frames.iter().collect::<Vec<_>>(), expected);
}

#[test]
fn second_pass_gives_the_same_frames_when_the_buffer_is_too_small() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = make_video(dir.path(), "a.avi", "-c:v mpeg4 -bf 2");
    let order = vec![25, 2, 11, 2];
    let run = |opts: &DecodeOptions| {
        decode(&Source::Video(path.clone()), &mut |_| order.clone(), opts).unwrap()
    };
    let buffered = run(&opts());
    let by_frames = run(&DecodeOptions {
        buffer_frames: 4,
        ..opts()
    });
    let by_bytes = run(&DecodeOptions {
        buffer_bytes: 20_000,
        ..opts()
    });
    assert_eq!(buffered, by_frames);
    assert_eq!(buffered, by_bytes);
}

// ----------------------------------------------------------------------------------------
// Frame folders.

/// A frame whose every pixel is `(v, 255 - v, 128)`.
fn solid_rgb(v: u8, w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_pixel(w, h, image::Rgb([v, 255 - v, 128]))
}

fn folder_source(dir: &Path, template: Option<&str>, start: usize, count: Option<usize>) -> Source {
    Source::Frames {
        dir: dir.to_path_buf(),
        template: template.map(str::to_string),
        start,
        count,
    }
}

#[test]
fn jpg_folder_reads_mmaction_default_layout() {
    let dir = vidapter::util::tempdir().unwrap();
    for k in 1..=12u8 {
        solid_rgb(k * 20, 16, 8)
            .save(dir.path().join(format!("img_{k:05}.jpg")))
            .unwrap();
    }
    let src = folder_source(dir.path(), Some("img_{:05d}.jpg"), 1, Some(12));
    let mut seen = 0;
    let d = decode(
        &src,
        &mut |n| {
            seen = n;
            vec![0, 11, 5]
        },
        &opts(),
    )
    .unwrap();
    assert_eq!(seen, 12);
    assert_eq!(d.info.decoded_frames, 12);
    assert_eq!((d.info.width, d.info.height), (16, 8));
    assert_eq!(d.info.codec, "jpeg");
    // JPEG is lossy: a flat colour comes back within a few levels.
    for (frame, k) in d.frames.iter().zip([1u8, 12, 6]) {
        assert_eq!(
            (frame.width, frame.height, frame.data.len()),
            (16, 8, 16 * 8 * 3)
        );
        let expected = [k * 20, 255 - k * 20, 128];
        for px in frame.data.chunks(3) {
            for (got, want) in px.iter().zip(expected) {
                assert!(got.abs_diff(want) <= 3, "frame {k}: {px:?} vs {expected:?}");
            }
        }
    }
}

#[test]
fn png_folder_with_custom_template_counts_consecutive_files() {
    let dir = vidapter::util::tempdir().unwrap();
    for k in 0..7u8 {
        solid_rgb(k, 4, 3)
            .save(dir.path().join(format!("frame-{k:03}.png")))
            .unwrap();
    }
    let src = folder_source(dir.path(), Some("frame-{:03}.png"), 0, None);
    let d = decode(&src, &mut |n| (0..n).rev().collect(), &opts()).unwrap();
    assert_eq!(d.info.decoded_frames, 7);
    let firsts: Vec<u8> = d.frames.iter().map(|f| f.data[0]).collect();
    assert_eq!(
        firsts,
        vec![6, 5, 4, 3, 2, 1, 0],
        "PNG is lossless and order is as asked"
    );
    // A file of the template after a gap means frames are missing: refused (issue 17),
    // or with allow_damaged the run before the gap, with the gap counted.
    solid_rgb(99, 4, 3)
        .save(dir.path().join("frame-009.png"))
        .unwrap();
    let e = decode(&src, &mut |n| (0..n).collect(), &opts()).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::FrameMissing);
    assert!(e.to_string().contains("frame-007.png"), "{e}");
    let d = decode(&src, &mut |n| (0..n).collect(), &allowed()).unwrap();
    assert_eq!((d.info.decoded_frames, d.info.decode_errors), (7, 1));
}

#[test]
fn folder_without_template_reads_images_in_natural_order() {
    let dir = vidapter::util::tempdir().unwrap();
    for k in 1u8..=11 {
        solid_rgb(k, 2, 2)
            .save(dir.path().join(format!("{k}.png")))
            .unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "not a frame").unwrap();
    let d = decode(
        &folder_source(dir.path(), None, 0, None),
        &mut |n| (0..n).collect(),
        &opts(),
    )
    .unwrap();
    let firsts: Vec<u8> = d.frames.iter().map(|f| f.data[0]).collect();
    assert_eq!(firsts, (1u8..=11).collect::<Vec<_>>());
}

/// Issue 17, items 1 and 4: a frame folder read without a template (as `predict` reads one)
/// with a frame missing in the middle is refused naming the missing file, not read as a
/// shorter clip; with `allow_damaged` it is used and the gap is counted.
#[test]
fn gap_in_a_listed_folder_is_frame_missing() {
    let dir = vidapter::util::tempdir().unwrap();
    for k in (1..=16).filter(|&k| k != 8) {
        solid_rgb(k as u8, 2, 2)
            .save(dir.path().join(format!("img_{k:05}.jpg")))
            .unwrap();
    }
    let src = folder_source(dir.path(), None, 1, None);
    let e = decode(&src, &mut |n| (0..n).collect(), &opts()).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::FrameMissing);
    assert!(e.to_string().contains("img_00008.jpg"), "{e}");
    let allowed = DecodeOptions {
        allow_damaged: true,
        ..opts()
    };
    let d = decode(&src, &mut |n| (0..n).collect(), &allowed).unwrap();
    assert_eq!(d.frames.len(), 15);
    assert_eq!(d.info.decode_errors, 1);
    assert!(d.info.damage().contains("img_00008.jpg"), "{:?}", d.info);
    // With a template and no count the run from the start stops at the gap: the files
    // beyond it are not silently dropped.
    let src = folder_source(dir.path(), Some("img_{:05}.jpg"), 1, None);
    let e = decode(&src, &mut |n| (0..n).collect(), &opts()).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::FrameMissing);
    assert!(e.to_string().contains("img_00008.jpg"), "{e}");
}

/// Issue 17, item 1: a corrupt JPEG (a JPEG head followed by text) is refused even when
/// the sampler does not select it; `verify_frames` decodes every frame.
#[test]
fn corrupt_unselected_frame_is_refused() {
    let dir = vidapter::util::tempdir().unwrap();
    for k in 1..=8 {
        solid_rgb(k as u8, 8, 8)
            .save(dir.path().join(format!("img_{k:05}.jpg")))
            .unwrap();
    }
    let bad = dir.path().join("img_00005.jpg");
    let head = std::fs::read(&bad).unwrap();
    let mut damaged = head[..20].to_vec();
    damaged.extend_from_slice(b"this is not the rest of a jpeg\n".repeat(4).as_slice());
    std::fs::write(&bad, damaged).unwrap();
    for template in [None, Some("img_{:05}.jpg")] {
        let src = folder_source(dir.path(), template, 1, None);
        let e = decode(&src, &mut |_| vec![0, 7], &opts()).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::Image, "{e}");
        assert!(e.to_string().contains("img_00005.jpg"), "{e}");
    }
    let check = DecodeOptions {
        allow_damaged: true,
        verify_frames: true,
        ..opts()
    };
    let d = decode(
        &folder_source(dir.path(), None, 1, None),
        &mut |_| Vec::new(),
        &check,
    )
    .unwrap();
    assert_eq!(d.info.decode_errors, 1);
    assert!(d.info.damage().contains("img_00005.jpg"), "{:?}", d.info);
}

/// Issue 17, items 2 and 3: a truncated MP4 (the header states more frames than decode, and
/// FFmpeg says "partial file") is refused by default, naming the file and the counts; with
/// `allow_damaged` it decodes what it can and says it is damaged.
#[test]
fn truncated_video_is_damaged_unless_allowed() {
    let dir = vidapter::util::tempdir().unwrap();
    let fast = make_video(
        dir.path(),
        "fast.mp4",
        "-pix_fmt yuv420p -c:v libx264 -movflags +faststart",
    );
    let half = truncate_half(&fast);
    let e = decode(
        &Source::Video(half.clone()),
        &mut |n| (0..n).collect(),
        &opts(),
    )
    .unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::Damaged, "{e}");
    assert!(e.to_string().contains("half_fast.mp4"), "{e}");
    assert!(e.reason.contains("of the 30 the header states"), "{e}");
    let (d, _) = decode_all(&half, &allowed());
    assert!(d.info.decode_errors > 0 && d.info.damage().contains("of 30"));
    // Cut between packets, the file decodes without one decoder error; FFmpeg only logs
    // "partial file". Still damaged, wherever the cut falls.
    let bytes = std::fs::read(&fast).unwrap();
    for percent in [60, 70, 80, 90, 95] {
        let cut = dir.path().join(format!("cut{percent}.mp4"));
        std::fs::write(&cut, &bytes[..bytes.len() * percent / 100]).unwrap();
        let e = decode(&Source::Video(cut), &mut |n| (0..n).collect(), &opts()).unwrap_err();
        assert!(
            matches!(
                e.kind,
                DecodeErrorKind::Damaged | DecodeErrorKind::NoFrames | DecodeErrorKind::Corrupt
            ),
            "{percent}%: {e}"
        );
    }
}

fn allowed() -> DecodeOptions {
    DecodeOptions {
        allow_damaged: true,
        ..opts()
    }
}

#[test]
fn gap_inside_annotated_range_is_frame_missing() {
    let dir = vidapter::util::tempdir().unwrap();
    for k in [1, 2, 3, 5] {
        solid_rgb(0, 2, 2)
            .save(dir.path().join(format!("img_{k:05}.jpg")))
            .unwrap();
    }
    let src = folder_source(dir.path(), Some("img_{:05}.jpg"), 1, Some(5));
    let e = decode(&src, &mut |n| (0..n).collect(), &opts()).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::FrameMissing);
    assert!(e.to_string().contains("img_00004.jpg"), "{e}");
}

#[test]
fn wrong_start_index_is_no_frames_with_a_hint() {
    let dir = vidapter::util::tempdir().unwrap();
    for k in 0..3 {
        solid_rgb(0, 2, 2)
            .save(dir.path().join(format!("img_{k:05}.jpg")))
            .unwrap();
    }
    std::fs::remove_file(dir.path().join("img_00001.jpg")).unwrap();
    let src = folder_source(dir.path(), Some("img_{:05}.jpg"), 1, None);
    let e = decode(&src, &mut |n| (0..n).collect(), &opts()).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::NoFrames);
    let msg = e.to_string();
    assert!(
        msg.contains(&dir.path().display().to_string()) && msg.contains("img_00000.jpg"),
        "{msg}"
    );
}

#[test]
fn unreadable_frame_image_is_image_error_naming_the_file() {
    let dir = vidapter::util::tempdir().unwrap();
    solid_rgb(0, 2, 2)
        .save(dir.path().join("img_00001.jpg"))
        .unwrap();
    std::fs::write(dir.path().join("img_00002.jpg"), "this is not a jpeg").unwrap();
    let src = folder_source(dir.path(), Some("img_{:05}.jpg"), 1, Some(2));
    let e = decode(&src, &mut |_| vec![1], &opts()).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::Image);
    assert!(e.to_string().contains("img_00002.jpg"), "{e}");
}

// ----------------------------------------------------------------------------------------
// Bad inputs: an error of the right kind, naming the path; never a panic.

/// Decodes, expecting an error of `kind` whose message names `path`.
fn assert_fails(path: &Path, kind: DecodeErrorKind) {
    let mut called = false;
    let e = decode(
        &Source::Video(path.to_path_buf()),
        &mut |n| {
            called = true;
            (0..n).collect()
        },
        &opts(),
    )
    .expect_err("decoding should fail");
    assert_eq!(e.kind, kind, "{e}");
    assert!(
        e.to_string().contains(&path.display().to_string()),
        "message does not name the file: {e}"
    );
    assert!(!called, "select must not be called when nothing decodes");
}

/// The first half of `path`'s bytes, as `half_<name>` beside it.
pub(crate) fn truncate_half(path: &Path) -> PathBuf {
    let bytes = std::fs::read(path).unwrap();
    let out = path.with_file_name(format!(
        "half_{}",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&out, &bytes[..bytes.len() / 2]).unwrap();
    out
}

#[test]
fn missing_video_is_missing() {
    let dir = vidapter::util::tempdir().unwrap();
    assert_fails(&dir.path().join("absent.mp4"), DecodeErrorKind::Missing);
}

#[test]
fn zero_byte_file_is_empty() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = dir.path().join("empty.mp4");
    std::fs::write(&path, b"").unwrap();
    assert_fails(&path, DecodeErrorKind::Empty);
}

#[test]
fn text_file_named_mp4_is_not_video() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = dir.path().join("notes.mp4");
    std::fs::write(&path, "hello\nthis is a text file, not a video\n").unwrap();
    assert_fails(&path, DecodeErrorKind::NotVideo);
}

#[test]
fn audio_only_file_is_not_video() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = dir.path().join("sound.m4a");
    ffmpeg("-f lavfi -i sine=duration=0.5 -c:a aac", &path);
    assert_fails(&path, DecodeErrorKind::NotVideo);
}

#[test]
fn truncated_mp4_reports_instead_of_panicking() {
    let dir = vidapter::util::tempdir().unwrap();
    // Index (moov) at the end, as ffmpeg writes by default: the first half has no index and
    // cannot be opened; the content says MP4, so it is corrupt rather than "not a video".
    let path = make_video(dir.path(), "a.mp4", "-pix_fmt yuv420p -c:v libx264");
    let half = truncate_half(&path);
    assert_fails(&half, DecodeErrorKind::Corrupt);
    let e = decode(
        &Source::Video(half.clone()),
        &mut |n| (0..n).collect(),
        &opts(),
    )
    .unwrap_err();
    assert!(
        e.reason.contains("moov atom not found"),
        "FFmpeg's reason is quoted: {e}"
    );
    // Index first (faststart): opens fine, decodes part, and says so.
    // (select_receives_the_decoded_count_not_the_header_count checks counts for this case.)
    let fast = make_video(
        dir.path(),
        "fast.mp4",
        "-pix_fmt yuv420p -c:v libx264 -movflags +faststart",
    );
    let (d, n) = decode_all(&truncate_half(&fast), &allowed());
    assert!(n < 30 && d.info.is_damaged());
}

#[test]
fn truncated_avi_returns_the_frames_that_decode() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = make_video(dir.path(), "a.avi", "-c:v mpeg4 -bf 2");
    let half = truncate_half(&path);
    match decode(
        &Source::Video(half.clone()),
        &mut |n| (0..n).collect(),
        &allowed(),
    ) {
        Ok(d) => {
            assert!(d.info.is_damaged(), "{:?}", d.info);
            assert_eq!(d.frames.len(), d.info.decoded_frames);
            assert_eq!(d.frames.len(), reference_frames(&half, None, 96, 64).len());
        }
        Err(e) => assert!(
            matches!(e.kind, DecodeErrorKind::Corrupt | DecodeErrorKind::NoFrames),
            "{e}"
        ),
    }
}

#[test]
fn folder_path_given_as_video_is_not_video() {
    let dir = vidapter::util::tempdir().unwrap();
    assert_fails(dir.path(), DecodeErrorKind::NotVideo);
}

#[test]
fn exhausted_timeout_stops_with_timeout() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = make_video(dir.path(), "a.mp4", "-pix_fmt yuv420p -c:v libx264");
    let zero = DecodeOptions {
        timeout: Duration::ZERO,
        ..opts()
    };
    let e = decode(
        &Source::Video(path.clone()),
        &mut |n| (0..n).collect(),
        &zero,
    )
    .unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::Timeout);
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}
