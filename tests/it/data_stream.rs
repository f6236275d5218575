//! `VideoReader`: streaming a video frame by frame gives exactly the frames `decode` gives
//! (bit for bit, autorotation included), refuses bad files with the same error kinds,
//! handles damage as `allow_damaged` says, and keeps memory bounded on long videos.
//!
//! Videos are made here with the `ffmpeg` tool, as in `data_decode.rs` (whose helpers this
//! file uses).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vidapter::data::Source;
use vidapter::data::decode::{DecodeErrorKind, DecodeOptions, Frame, VideoReader, decode};

use crate::data_decode::{ffmpeg, has_encoder, make_video, rotated_video, truncate_half};

fn opts() -> DecodeOptions {
    DecodeOptions::default()
}

fn allowed() -> DecodeOptions {
    DecodeOptions {
        allow_damaged: true,
        ..opts()
    }
}

/// Every frame `decode` gives, in index order.
fn decode_every_frame(path: &Path, opts: &DecodeOptions) -> Vec<Frame> {
    decode(
        &Source::Video(path.to_path_buf()),
        &mut |n| (0..n).collect(),
        opts,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .frames
}

/// Every frame the reader gives; panics on an error.
fn stream_every_frame(path: &Path, opts: &DecodeOptions) -> Vec<Frame> {
    VideoReader::open(path, opts)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|f| f.unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn assert_same_frames(path: &Path, opts: &DecodeOptions) -> usize {
    let streamed = stream_every_frame(path, opts);
    let decoded = decode_every_frame(path, opts);
    assert_eq!(streamed.len(), decoded.len(), "{}", path.display());
    for (k, (a, b)) in streamed.iter().zip(&decoded).enumerate() {
        assert!(a == b, "{} frame {k} differs from decode()", path.display());
    }
    streamed.len()
}

#[test]
fn every_frame_equals_decode_bit_for_bit() {
    let dir = vidapter::util::tempdir().unwrap();
    // B-frames (reordering) in both; frame threads in the second pass.
    let mut videos = vec![
        make_video(dir.path(), "a.mp4", "-pix_fmt yuv420p -c:v libx264 -bf 3"),
        make_video(dir.path(), "b.avi", "-c:v mpeg4 -bf 2"),
    ];
    if has_encoder("libvpx-vp9") {
        videos.push(make_video(
            dir.path(),
            "c.webm",
            "-pix_fmt yuv420p -c:v libvpx-vp9 -deadline realtime -cpu-used 8",
        ));
    }
    for threads in [1, 0] {
        let opts = DecodeOptions { threads, ..opts() };
        for path in &videos {
            assert_eq!(assert_same_frames(path, &opts), 30, "{}", path.display());
        }
    }
    let reader = VideoReader::open(&videos[0], &opts()).unwrap();
    assert_eq!((reader.width(), reader.height()), (96, 64));
    assert_eq!(reader.fps(), 25.0);
    assert_eq!(reader.frame_count_hint(), Some(30));
    assert_eq!(reader.info().codec, "h264");
    let mut reader = reader;
    assert!(reader.by_ref().all(|f| f.is_ok()));
    assert_eq!(reader.damage(), None);
    assert_eq!(reader.info().decoded_frames, 30);
    assert!(reader.next().is_none(), "the end stays the end");
}

#[test]
fn rotated_phone_video_is_turned_upright_as_decode_does() {
    let dir = vidapter::util::tempdir().unwrap();
    // A display matrix of 90 degrees counter-clockwise (see data_decode.rs).
    let rotated = rotated_video(dir.path());
    let reader = VideoReader::open(&rotated, &opts()).unwrap();
    assert_eq!((reader.width(), reader.height()), (64, 96));
    assert_eq!(reader.info().rotation, 270);
    assert_eq!(assert_same_frames(&rotated, &opts()), 30);
    let first = stream_every_frame(&rotated, &opts()).remove(0);
    assert_eq!((first.width, first.height), (64, 96));
    let raw = DecodeOptions {
        autorotate: false,
        ..opts()
    };
    let reader = VideoReader::open(&rotated, &raw).unwrap();
    assert_eq!((reader.width(), reader.height()), (96, 64));
    assert_eq!(assert_same_frames(&rotated, &raw), 30);
}

/// A download cut in half: without `allow_damaged` the frames before the damage come, then
/// one `Damaged` error naming the file, then nothing; with it, every frame that decodes (the
/// same as `decode`'s) and the damage described.
#[test]
fn truncated_video_is_damaged_unless_allowed() {
    let dir = vidapter::util::tempdir().unwrap();
    // Index first, so that the first half opens.
    let args = "-pix_fmt yuv420p -c:v libx264 -movflags +faststart";
    let fast = make_video(dir.path(), "fast.mp4", args);
    let half = truncate_half(&fast);

    let mut reader = VideoReader::open(&half, &opts()).unwrap();
    let mut good = 0;
    let e = loop {
        match reader.next() {
            Some(Ok(_)) => good += 1,
            Some(Err(e)) => break e,
            None => panic!("a damaged file must end with an error"),
        }
    };
    assert_eq!(e.kind, DecodeErrorKind::Damaged, "{e}");
    assert!(e.to_string().contains("half_fast.mp4"), "{e}");
    assert!(e.reason.contains("of the 30 the header states"), "{e}");
    assert!(reader.next().is_none(), "nothing after an error");
    assert!(reader.next().is_none());
    assert!(good < 30);

    let streamed = stream_every_frame(&half, &allowed());
    let decoded = decode_every_frame(&half, &allowed());
    assert!(good <= streamed.len() && streamed.len() < 30);
    assert!(streamed == decoded, "same frames as decode()");
    let mut reader = VideoReader::open(&half, &allowed()).unwrap();
    assert_eq!(reader.frame_count_hint(), Some(30));
    assert!(reader.by_ref().all(|f| f.is_ok()));
    let damage = reader.damage().expect("damage is described");
    assert!(damage.contains("of 30"), "{damage}");
    assert_eq!(reader.info().decoded_frames, streamed.len());

    // Cut between packets, the file decodes without one decoder error; the end of the
    // stream still reveals it.
    let bytes = std::fs::read(&fast).unwrap();
    for percent in [60, 80, 95] {
        let cut = dir.path().join(format!("cut{percent}.mp4"));
        std::fs::write(&cut, &bytes[..bytes.len() * percent / 100]).unwrap();
        let last = match VideoReader::open(&cut, &opts()) {
            Err(e) => e,
            Ok(reader) => reader
                .filter_map(Result::err)
                .last()
                .unwrap_or_else(|| panic!("{percent}%: no error")),
        };
        let damaged = [
            DecodeErrorKind::Damaged,
            DecodeErrorKind::NoFrames,
            DecodeErrorKind::Corrupt,
        ];
        assert!(damaged.contains(&last.kind), "{percent}%: {last}");
    }
}

/// Opening fails as `decode` fails, naming the file.
#[test]
fn bad_files_fail_to_open_with_decode_error_kinds() {
    let dir = vidapter::util::tempdir().unwrap();
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "hello\nthis is a text file, not a video\n").unwrap();
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let sound = dir.path().join("sound.m4a");
    ffmpeg("-f lavfi -i sine=duration=0.5 -c:a aac", &sound);
    let cases = [
        (text, DecodeErrorKind::NotVideo),
        (empty, DecodeErrorKind::Empty),
        (sound, DecodeErrorKind::NotVideo),
        (dir.path().join("absent.mp4"), DecodeErrorKind::Missing),
        (dir.path().to_path_buf(), DecodeErrorKind::NotVideo),
    ];
    for (path, kind) in cases {
        let e = match VideoReader::open(&path, &opts()) {
            Ok(_) => panic!("{} opened", path.display()),
            Err(e) => e,
        };
        assert_eq!(e.kind, kind, "{e}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
    let path = make_video(dir.path(), "a.mp4", "-pix_fmt yuv420p -c:v libx264");
    let zero = DecodeOptions {
        timeout: Duration::ZERO,
        ..opts()
    };
    let e = VideoReader::open(&path, &zero).err().expect("times out");
    assert_eq!(e.kind, DecodeErrorKind::Timeout);
}

/// 300 frames of 640x480 at 30 fps (10 s), H.264, as `dir/long.mp4`.
fn long_video(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("long.mp4");
    let source = "-f lavfi -i testsrc2=size=640x480:rate=30 -frames:v 300";
    ffmpeg(
        &format!("{source} -pix_fmt yuv420p -c:v libx264 -preset ultrafast"),
        &path,
    );
    path
}

/// Environment variable naming the video the memory child reads.
const MEMORY_VIDEO: &str = "VIDAPTER_TEST_STREAM_VIDEO";

/// 300 frames of 640x480 (276 MB as RGB, 138 MB as YUV): streaming them must not hold them.
/// Measured in a child process (this test binary, running only [`memory_child`]), where the
/// peak resident size (VmHWM) is not disturbed by tests running in parallel.
#[test]
fn memory_stays_bounded_on_a_long_video() {
    if !Path::new("/proc/self/status").exists() {
        println!("note: skipped, no /proc to measure memory");
        return;
    }
    let dir = vidapter::util::tempdir().unwrap();
    let path = long_video(dir.path());
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "data_stream::memory_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MEMORY_VIDEO, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest prints the test's name on the same line.
    let line = stdout
        .lines()
        .find_map(|l| l.find("stream-memory").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("the child ran: {stdout}"));
    println!("{line}");
    let growth: u64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("growth_bytes="))
        .and_then(|v| v.parse().ok())
        .unwrap();
    // Decoder reference frames, one RGB frame and the scaler: a few MB. All frames: 276 MB.
    assert!(growth < 64 << 20, "{line}");
}

/// The child of [`memory_stays_bounded_on_a_long_video`]; does nothing on its own.
#[test]
#[ignore = "run by memory_stays_bounded_on_a_long_video in a process of its own"]
fn memory_child() {
    let Some(path) = std::env::var_os(MEMORY_VIDEO) else {
        return;
    };
    let status = |field: &str| vidapter::util::proc_status_bytes(field).unwrap();
    let reader = VideoReader::open(Path::new(&path), &DecodeOptions::default()).unwrap();
    let before = status("VmRSS");
    let mut frames = 0usize;
    let mut checksum = 0u64;
    for f in reader {
        let f = f.unwrap();
        checksum = checksum.wrapping_add(u64::from(f.data[f.data.len() / 2]));
        frames += 1;
    }
    let peak = status("VmHWM");
    assert_eq!(frames, 300);
    println!(
        "stream-memory frames={frames} rss_before={before} peak={peak} growth_bytes={} \
         checksum={checksum}",
        peak.saturating_sub(before)
    );
}

/// Throughput of the reader against `decode` on 300 frames of 640x480; run by hand:
/// `cargo test --release -- --ignored --nocapture data_stream::throughput`.
#[test]
#[ignore = "a measurement, run by hand"]
fn throughput_against_decode() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = long_video(dir.path());
    for round in 0..2 {
        let t = Instant::now();
        let n = VideoReader::open(&path, &opts()).unwrap().count();
        let reader = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let m = decode_every_frame(&path, &opts()).len();
        let whole = t.elapsed().as_secs_f64();
        assert_eq!(n, m);
        println!(
            "round {round}: VideoReader {:.0} frames/s, decode() {:.0} frames/s ({n} frames \
             640x480)",
            n as f64 / reader,
            m as f64 / whole
        );
    }
}
