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

/// Issue 17, item 1: a frame folder with one corrupt JPEG (its first 20 bytes, then text)
/// is not clean: `data check` decodes every frame image, not just counts the files.
/// Item 4: a folder with a frame missing in the middle is listed too.
#[test]
fn check_decodes_frame_images_and_finds_gaps() {
    let dir = vidapter::util::tempdir().unwrap();
    let root = dir.path();
    let jpegs = |name: &str, skip: Option<usize>| {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in (1..=16).filter(|f| Some(*f) != skip) {
            image::RgbImage::from_pixel(16, 16, image::Rgb([f as u8 * 10, 0, 0]))
                .save(d.join(format!("img_{f:05}.jpg")))
                .unwrap();
        }
        d
    };
    let clean = jpegs("clean", None);
    let corrupt = jpegs("corrupt", None);
    let frame = corrupt.join("img_00009.jpg");
    let mut bytes = std::fs::read(&frame).unwrap()[..20].to_vec();
    bytes.extend_from_slice(b"<html>this download failed</html>\n");
    std::fs::write(&frame, bytes).unwrap();
    let gapped = jpegs("gapped", Some(8));
    let listed = |dir: PathBuf| Source::Frames {
        dir,
        template: None,
        start: 1,
        count: None,
    };
    let dataset = Dataset {
        entries: vec![
            entry(listed(clean), 0, 1),
            entry(listed(corrupt.clone()), 0, 2),
            entry(listed(gapped.clone()), 0, 3),
        ],
        classes: ClassMap::new(vec!["a".into()]),
        problems: Vec::new(),
    };
    let report = check(&dataset, 8, 2, &DecodeOptions::default(), false);
    assert_eq!(report.clean, 1, "{:#?}", report.findings);
    assert_eq!(
        report.count(Verdict::Truncated),
        2,
        "{:#?}",
        report.findings
    );
    let reasons: Vec<String> = report
        .findings
        .iter()
        .map(|f| f.problem.to_string())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("img_00009.jpg")),
        "{reasons:#?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("img_00008.jpg")),
        "{reasons:#?}"
    );
    assert!(report.seconds > 0.0);
}

/// Issue 17, item 3: the training loader skips a truncated video (with a problem naming it)
/// and stops on it in strict mode, as it does for a zero-byte file; with `allow_damaged` it
/// loads the clip.
#[test]
fn loader_skips_truncated_videos_and_strict_stops() {
    use std::sync::Arc;
    use vidapter::data::loader::{self, ClipSpec, LoaderConfig, Views};
    use vidapter::data::sampling::Sampling;
    use vidapter::data::transform::SpatialConfig;
    let dir = vidapter::util::tempdir().unwrap();
    let root = dir.path();
    let good = video(root, "good.mp4", 20);
    let truncated = root.join("truncated.mp4");
    let bytes = std::fs::read(video(root, "long.mp4", 64)).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let entries = Arc::new(vec![
        entry(Source::Video(good), 0, 1),
        entry(Source::Video(truncated.clone()), 0, 2),
    ]);
    let spec = Arc::new(ClipSpec {
        sampling: Sampling::Segment { frames: 4 },
        spatial: SpatialConfig {
            size: 16,
            short_side: 18,
            area: [0.5, 1.0],
            ratio: [0.75, 1.33],
            flip: false,
            mean: [0.5; 3],
            std: [0.5; 3],
        },
    });
    let cfg = |strict: bool, allow_damaged: bool| LoaderConfig {
        batch_size: 2,
        workers: 1,
        prefetch: 1,
        seed: 0,
        shuffle: false,
        views: Views::Train,
        strict,
        decode: DecodeOptions {
            allow_damaged,
            ..Default::default()
        },
    };
    let mut epoch = loader::epoch(entries.clone(), spec.clone(), &cfg(false, false), 0);
    let batch = epoch.next().unwrap().unwrap();
    assert_eq!(batch.entries, vec![0], "the truncated clip is left out");
    let problems = epoch.problems();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, truncated);
    assert!(problems[0].reason.contains("damaged"), "{}", problems[0]);
    let mut epoch = loader::epoch(entries.clone(), spec.clone(), &cfg(true, false), 0);
    let e = epoch.next().unwrap().unwrap_err();
    assert_eq!(e.path, truncated);
    let mut epoch = loader::epoch(entries, spec, &cfg(false, true), 0);
    assert_eq!(epoch.next().unwrap().unwrap().entries, vec![0, 1]);
}
