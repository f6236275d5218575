//! `VideoWriter` and `write_jpeg`: what is written reads back (through `VideoReader` and the
//! `image` crate) at the documented size, rate and quality; bad frames are errors naming the
//! file; nothing partial is ever left at the target path.

use std::path::Path;

use vidapter::data::decode::{DecodeOptions, Frame, VideoReader};
use vidapter::data::encode::{VideoWriter, write_jpeg};

/// Frame `t` of a test clip: smooth colour gradients with a light grey square moving right
/// (like camera footage, little chroma detail: 4:2:0 halves the chroma resolution, and
/// saturated colour edges alone would cap the PSNR near 30 dB whatever the encoder does).
fn pattern(t: usize, width: usize, height: usize) -> Frame {
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let inside = (20..50).contains(&y) && (4 * t + 10..4 * t + 40).contains(&x);
            let px = if inside {
                [235, 235, 235]
            } else {
                [
                    (x * 255 / width) as u8,
                    (y * 255 / height) as u8,
                    ((x + y + 3 * t) / 2 + 40).min(255) as u8,
                ]
            };
            data.extend_from_slice(&px);
        }
    }
    Frame {
        width,
        height,
        data,
    }
}

/// PSNR in dB of `got`'s top-left `want.width` x `want.height` region against `want`.
fn psnr(got: &Frame, want: &Frame) -> f64 {
    let mut sum = 0f64;
    for y in 0..want.height {
        for x in 0..want.width * 3 {
            let a = f64::from(got.data[y * got.width * 3 + x]);
            let b = f64::from(want.data[y * want.width * 3 + x]);
            sum += (a - b) * (a - b);
        }
    }
    let mse = sum / (want.width * want.height * 3) as f64;
    10.0 * (255.0 * 255.0 / mse.max(1e-12)).log10()
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn odd_sized_video_at_ntsc_rate_round_trips() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = dir.path().join("out.mp4");
    let (w, h) = (161, 97);
    let mut writer = VideoWriter::create(&path, w, h, 29.97).unwrap();
    assert_eq!(writer.coded_size(), (162, 98));
    let frames: Vec<Frame> = (0..30).map(|t| pattern(t, w, h)).collect();
    for f in &frames {
        writer.write(f).unwrap();
    }
    assert_eq!(writer.frames(), 30);
    assert!(!path.exists(), "nothing at the path before finish");
    assert_eq!(writer.finish().unwrap(), path);
    assert_eq!(listing(dir.path()), ["out.mp4"], "no temporary file left");

    let mut reader = VideoReader::open(&path, &DecodeOptions::default()).unwrap();
    assert_eq!((reader.width(), reader.height()), (162, 98));
    assert!((reader.fps() - 29.97).abs() < 1e-3, "{}", reader.fps());
    assert!(
        (reader.fps() - 30000.0 / 1001.0).abs() < 1e-9,
        "{}",
        reader.fps()
    );
    assert_eq!(reader.frame_count_hint(), Some(30));
    let got: Vec<Frame> = reader.by_ref().map(Result::unwrap).collect();
    assert_eq!(reader.damage(), None);
    assert_eq!(got.len(), 30);
    let (mut worst, mut total) = (f64::INFINITY, 0.0);
    for (k, (g, f)) in got.iter().zip(&frames).enumerate() {
        let p = psnr(g, f);
        assert!(p > 30.0, "frame {k}: PSNR {p:.1} dB");
        worst = worst.min(p);
        total += p;
        // The padding column and row are black (limited-range black, blurred a little by
        // chroma subsampling next to the picture).
        let pad: Vec<u8> = (0..98)
            .map(|y| g.data[(y * 162 + 161) * 3 + 1])
            .chain((0..162).map(|x| g.data[(97 * 162 + x) * 3 + 1]))
            .collect();
        let mean = pad.iter().map(|&v| f64::from(v)).sum::<f64>() / pad.len() as f64;
        assert!(mean < 40.0, "frame {k}: padding mean {mean}");
    }
    println!(
        "round trip 161x97 at 29.97 fps: PSNR worst {worst:.1} dB, mean {:.1} dB over 30 frames",
        total / 30.0
    );
}

#[test]
fn frame_of_the_wrong_size_is_an_error_naming_both_sizes() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = dir.path().join("out.mp4");
    let mut writer = VideoWriter::create(&path, 161, 97, 25.0).unwrap();
    let e = writer.write(&pattern(0, 160, 96)).unwrap_err().to_string();
    assert!(e.contains("out.mp4"), "{e}");
    assert!(e.contains("160x96") && e.contains("161x97"), "{e}");
    let mut short = pattern(0, 161, 97);
    short.data.pop();
    assert!(writer.write(&short).is_err());
    // The writer still works after a refused frame.
    writer.write(&pattern(0, 161, 97)).unwrap();
    writer.finish().unwrap();
    let n = VideoReader::open(&path, &DecodeOptions::default())
        .unwrap()
        .count();
    assert_eq!(n, 1);
    for (w, h, fps) in [(0, 10, 25.0), (10, 10, 0.0), (10, 10, f64::NAN)] {
        let e = VideoWriter::create(&dir.path().join("bad.mp4"), w, h, fps)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("bad.mp4"), "{e}");
    }
}

#[test]
fn unfinished_writer_leaves_no_file() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = dir.path().join("out.mp4");
    let mut writer = VideoWriter::create(&path, 64, 48, 25.0).unwrap();
    for t in 0..3 {
        writer.write(&pattern(t, 64, 48)).unwrap();
    }
    assert_eq!(listing(dir.path()).len(), 1, "the temporary file");
    drop(writer);
    assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    // An earlier file at the path is kept as it was.
    std::fs::write(&path, b"old").unwrap();
    let writer = VideoWriter::create(&path, 64, 48, 25.0).unwrap();
    drop(writer);
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    // Finishing without a frame writes nothing either.
    let other = dir.path().join("none.mp4");
    assert!(
        VideoWriter::create(&other, 64, 48, 25.0)
            .unwrap()
            .finish()
            .is_err()
    );
    assert_eq!(listing(dir.path()), ["out.mp4"]);
}

#[test]
fn write_jpeg_round_trips() {
    let dir = vidapter::util::tempdir().unwrap();
    let path = dir.path().join("faces").join("img_00001.jpg");
    let frame = pattern(2, 33, 17);
    write_jpeg(&path, &frame, 95).unwrap();
    assert_eq!(listing(&dir.path().join("faces")), ["img_00001.jpg"]);
    let back = image::open(&path).unwrap().to_rgb8();
    assert_eq!(back.dimensions(), (33, 17));
    let back = Frame {
        width: 33,
        height: 17,
        data: back.into_raw(),
    };
    let p = psnr(&back, &frame);
    assert!(p > 30.0, "PSNR {p:.1} dB");
    let mut bad = frame.clone();
    bad.width = 34;
    let e = write_jpeg(&dir.path().join("bad.jpg"), &bad, 95).unwrap_err();
    assert!(e.to_string().contains("bad.jpg"), "{e}");
    assert!(!dir.path().join("bad.jpg").exists());
}
