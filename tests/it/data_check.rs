//! `data check` as a library: every entry is decoded and classified — clean, unreadable,
//! zero frames, truncated, too short — annotation problems are carried over, and the bad
//! list names path, line and reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use vidapter::data::check::{Verdict, check, write_bad_list};
use vidapter::data::decode::DecodeOptions;
use vidapter::data::{ClassMap, Dataset, Entry, Problem, Source};

fn frames_dir(root: &Path, name: &str, n: usize) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in 0..n {
        image::RgbImage::from_pixel(16, 16, image::Rgb([f as u8 * 20, 0, 0]))
            .save(dir.join(format!("img_{:05}.png", f + 1)))
            .unwrap();
    }
    dir
}

/// An H.264 mp4 with its index at the front (`+faststart`), so that a cut-off copy still
/// opens and decodes its first part, as a truncated download does.
fn video(root: &Path, name: &str, frames: usize) -> PathBuf {
    let path = root.join(name);
    let ok = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x48:rate=25",
            "-frames:v",
            &frames.to_string(),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
        ])
        .arg(&path)
        .status()
        .expect("the ffmpeg tool is installed (scripts/install-deps.sh)")
        .success();
    assert!(ok);
    path
}

fn entry(source: Source, label: usize, line: usize) -> Entry {
    Entry {
        source,
        labels: vec![label],
        origin: Some((PathBuf::from("list.txt"), line)),
    }
}

#[test]
fn check_classifies_every_kind_of_bad_entry() {
    let dir = vidapter::util::tempdir().unwrap();
    let root = dir.path();
    let good = video(root, "good.mp4", 30);
    let short = video(root, "short.mp4", 3);
    let truncated = root.join("truncated.mp4");
    let bytes = std::fs::read(video(root, "long.mp4", 120)).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let not_video = root.join("notes.mp4");
    std::fs::write(&not_video, "just text").unwrap();
    let empty_dir = root.join("empty_frames");
    std::fs::create_dir_all(&empty_dir).unwrap();
    let frames = frames_dir(root, "frames", 10);
    let frames_src = |dir: PathBuf| Source::Frames {
        dir,
        template: Some("img_{:05}.png".into()),
        start: 1,
        count: None,
    };
    let dataset = Dataset {
        entries: vec![
            entry(Source::Video(good), 0, 1),
            entry(Source::Video(short.clone()), 1, 2),
            entry(Source::Video(truncated.clone()), 0, 3),
            entry(Source::Video(not_video.clone()), 1, 4),
            entry(frames_src(empty_dir.clone()), 0, 5),
            entry(frames_src(frames), 1, 6),
        ],
        classes: ClassMap::new(vec!["a".into(), "b".into()]),
        problems: vec![Problem {
            path: "list.txt".into(),
            line: Some(7),
            reason: "label 9 is outside the class map (2 classes)".into(),
        }],
    };
    let report = check(&dataset, 8, 2, &DecodeOptions::default(), false);
    assert_eq!(report.entries, 6);
    assert_eq!(report.clean, 2, "{:#?}", report.findings);
    let verdict_of = |p: &Path| {
        report
            .findings
            .iter()
            .find(|f| f.problem.path == p)
            .map(|f| f.verdict)
    };
    assert_eq!(verdict_of(&short), Some(Verdict::TooShort));
    assert_eq!(
        verdict_of(&truncated),
        Some(Verdict::Truncated),
        "{:#?}",
        report.findings
    );
    assert_eq!(verdict_of(&not_video), Some(Verdict::Unreadable));
    assert_eq!(verdict_of(&empty_dir), Some(Verdict::ZeroFrames));
    assert_eq!(report.count(Verdict::Annotation), 1);
    assert_eq!(
        report.histogram.get("a"),
        Some(&2),
        "good + truncated decode"
    );
    assert_eq!(report.histogram.get("b"), Some(&2), "short + frames decode");

    let list = root.join("bad.tsv");
    write_bad_list(&report, &list).unwrap();
    let text = std::fs::read_to_string(&list).unwrap();
    assert!(text.starts_with("verdict\tpath\tline\treason\n"));
    assert!(
        text.contains(&format!("too_short\t{}\t2\t", short.display())),
        "{text}"
    );
    assert!(text.contains("annotation\tlist.txt\t7\tlabel 9"), "{text}");
}
