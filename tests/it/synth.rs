//! `vidapter synth`: the generated datasets are real videos that vidapter's own decoder reads
//! back at the configured size and length, their lists and class maps agree, a seed fixes
//! every byte of the lists and every decoded pixel, and, measured on the decoded videos, the
//! classes of each group cannot be told apart from the frame average while simple temporal
//! features (last minus first frame, middle minus ends, image motion) separate them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vidapter::data::Source;
use vidapter::data::decode::{DecodeOptions, decode};
use vidapter::data::synth::{
    SynthConfig, SynthKind, SynthMedia, generate, generate_forced, is_synth_output,
};

/// One decoded clip: its label and its frames as grey `f32` images (`size * size` each).
struct Clip {
    label: usize,
    grey: Vec<Vec<f32>>,
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// Decodes every clip of a video list (`path label`) or raw-frame list
/// (`dir frames label`), checking each against the expected frame count and size.
fn load_split(root: &Path, list: &str, frames: usize, size: usize) -> Vec<Clip> {
    read_lines(&root.join(list))
        .iter()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let label: usize = fields.last().unwrap().parse().unwrap();
            let source = match fields.len() {
                2 => Source::Video(root.join(fields[0])),
                3 => {
                    assert_eq!(fields[1], frames.to_string(), "{line}");
                    Source::Frames {
                        dir: root.join(fields[0]),
                        template: Some("img_{:05}.jpg".into()),
                        start: 1,
                        count: Some(frames),
                    }
                }
                _ => panic!("{list}: malformed line `{line}`"),
            };
            let decoded = decode(
                &source,
                &mut |n| (0..n).collect(),
                &DecodeOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(decoded.info.decoded_frames, frames, "{line}");
            assert!(!decoded.info.is_damaged(), "{line}: {:?}", decoded.info);
            let grey = decoded
                .frames
                .iter()
                .map(|f| {
                    assert_eq!((f.width, f.height), (size, size), "{line}");
                    f.data
                        .chunks_exact(3)
                        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
                        .collect()
                })
                .collect();
            Clip { label, grey }
        })
        .collect()
}

/// What a classifier sees of a clip.
type Feature<'a> = &'a dyn Fn(&Clip) -> Vec<f32>;

/// Accuracy on `test` of the nearest-class-mean classifier fitted on `train`, over the
/// classes in `group` only. Features are what `feature` makes of a clip.
fn nearest_mean_accuracy(train: &[Clip], test: &[Clip], group: &[usize], feature: Feature) -> f64 {
    let mut means: BTreeMap<usize, (Vec<f64>, usize)> = BTreeMap::new();
    for clip in train.iter().filter(|c| group.contains(&c.label)) {
        let f = feature(clip);
        let (sum, n) = means
            .entry(clip.label)
            .or_insert_with(|| (vec![0.0; f.len()], 0));
        for (s, v) in sum.iter_mut().zip(&f) {
            *s += *v as f64;
        }
        *n += 1;
    }
    let means: Vec<(usize, Vec<f64>)> = means
        .into_iter()
        .map(|(l, (s, n))| (l, s.into_iter().map(|v| v / n as f64).collect()))
        .collect();
    let tests: Vec<&Clip> = test.iter().filter(|c| group.contains(&c.label)).collect();
    let correct = tests
        .iter()
        .filter(|clip| {
            let f = feature(clip);
            let dist = |m: &Vec<f64>| -> f64 {
                m.iter().zip(&f).map(|(a, b)| (a - *b as f64).powi(2)).sum()
            };
            let best = means
                .iter()
                .min_by(|a, b| dist(&a.1).total_cmp(&dist(&b.1)))
                .unwrap();
            best.0 == clip.label
        })
        .count();
    correct as f64 / tests.len() as f64
}

/// Mean over the `(2r + 1) x (2r + 1)` box around each pixel of a `size x size` image (boxes
/// clipped at the borders).
fn box_blur(f: &[f32], size: usize, r: usize) -> Vec<f32> {
    let mut out = vec![0.0; f.len()];
    for y in 0..size {
        for x in 0..size {
            let (mut s, mut n) = (0.0, 0.0);
            for yy in y.saturating_sub(r)..(y + r + 1).min(size) {
                for xx in x.saturating_sub(r)..(x + r + 1).min(size) {
                    s += f[yy * size + xx];
                    n += 1.0;
                }
            }
            out[y * size + x] = s / n;
        }
    }
    out
}

/// Mean of a clip's frames.
fn frame_average(clip: &Clip) -> Vec<f32> {
    let n = clip.grey.len() as f32;
    let mut avg = vec![0.0; clip.grey[0].len()];
    for f in &clip.grey {
        for (a, v) in avg.iter_mut().zip(f) {
            *a += v / n;
        }
    }
    avg
}

/// `a * x + b * y` pixelwise.
fn combine(a: f32, x: &[f32], b: f32, y: &[f32]) -> Vec<f32> {
    x.iter().zip(y).map(|(p, q)| a * p + b * q).collect()
}

/// Image motion by least squares on the brightness-constancy equation `I_t + g . v = 0`,
/// summed over consecutive frame pairs: the mean translation `(vx, vy)` (pixels per frame)
/// and the rotation rate (radians per frame, positive = clockwise on screen) about the
/// centroid of the pixels that change. Frames are blurred first (5x5 box) so that motions of
/// a pixel or two per frame stay within the equation's linear range.
fn motion_features(clip: &Clip, size: usize) -> Vec<f32> {
    let blur = |f: &[f32]| -> Vec<f32> {
        let mut out = vec![0.0; f.len()];
        for y in 0..size {
            for x in 0..size {
                let (mut s, mut n) = (0.0, 0.0);
                for yy in y.saturating_sub(2)..(y + 3).min(size) {
                    for xx in x.saturating_sub(2)..(x + 3).min(size) {
                        s += f[yy * size + xx];
                        n += 1.0;
                    }
                }
                out[y * size + x] = s / n;
            }
        }
        out
    };
    let frames: Vec<Vec<f32>> = clip.grey.iter().map(|f| blur(f)).collect();
    let (mut sxx, mut sxy, mut syy, mut sxt, mut syt) = (0f64, 0f64, 0f64, 0f64, 0f64);
    let (mut sqq, mut sqt) = (0f64, 0f64);
    for pair in frames.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let at = |f: &[f32], x: usize, y: usize| f[y * size + x] as f64;
        // Centre of the change: of the pixels that change by more than the (blurred) noise.
        let (mut cx, mut cy, mut w) = (0f64, 0f64, 0f64);
        for y in 0..size {
            for x in 0..size {
                let d = (at(b, x, y) - at(a, x, y)).abs();
                let d = if d > 8.0 { d } else { 0.0 };
                cx += d * x as f64;
                cy += d * y as f64;
                w += d;
            }
        }
        let (cx, cy) = (cx / w.max(1e-9), cy / w.max(1e-9));
        let radius2 = (0.2 * size as f64).powi(2);
        for y in 1..size - 1 {
            for x in 1..size - 1 {
                let gx =
                    (at(a, x + 1, y) - at(a, x - 1, y) + at(b, x + 1, y) - at(b, x - 1, y)) / 4.0;
                let gy =
                    (at(a, x, y + 1) - at(a, x, y - 1) + at(b, x, y + 1) - at(b, x, y - 1)) / 4.0;
                let it = at(b, x, y) - at(a, x, y);
                sxx += gx * gx;
                sxy += gx * gy;
                syy += gy * gy;
                sxt += gx * it;
                syt += gy * it;
                // Rotation only near the centre, where the object is: far from it the lever
                // arm multiplies background noise.
                let (dx, dy) = (x as f64 - cx, y as f64 - cy);
                if dx * dx + dy * dy <= radius2 {
                    let q = gy * dx - gx * dy;
                    sqq += q * q;
                    sqt += q * it;
                }
            }
        }
    }
    let det = sxx * syy - sxy * sxy;
    let vx = -(syy * sxt - sxy * syt) / det;
    let vy = -(sxx * syt - sxy * sxt) / det;
    let omega = -sqt / sqq;
    // Radians per frame times a typical radius, so that all three are in pixels per frame.
    vec![vx as f32, vy as f32, (omega * size as f64 / 8.0) as f32]
}

/// The shape of the region where a clip changes, read without regard to order: the
/// per-pixel variance over time (frames blurred 5x5 first) weights the pixel coordinates,
/// and the feature is their covariance's elongation `[(cxx - cyy), 2 cxy] / (cxx + cyy)`:
/// about `[1, 0]` for a horizontal streak, `[-1, 0]` for a vertical one, near 0 for a blob.
fn path_shape(clip: &Clip, size: usize) -> Vec<f32> {
    let frames: Vec<Vec<f32>> = clip.grey.iter().map(|f| box_blur(f, size, 2)).collect();
    let n = frames.len() as f64;
    let (mut w, mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    for i in 0..size * size {
        let mean = frames.iter().map(|f| f[i] as f64).sum::<f64>() / n;
        let var = frames
            .iter()
            .map(|f| (f[i] as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        // Blurred noise has a variance of a few units; the object's path, hundreds.
        let v = if var > 20.0 { var } else { 0.0 };
        let (x, y) = ((i % size) as f64, (i / size) as f64);
        w += v;
        sx += v * x;
        sy += v * y;
        sxx += v * x * x;
        syy += v * y * y;
        sxy += v * x * y;
    }
    let w = w.max(1e-9);
    let (mx, my) = (sx / w, sy / w);
    let (cxx, cyy, cxy) = (sxx / w - mx * mx, syy / w - my * my, sxy / w - mx * my);
    let total = (cxx + cyy).max(1e-9);
    vec![((cxx - cyy) / total) as f32, (2.0 * cxy / total) as f32]
}

fn small(kind: SynthKind) -> SynthConfig {
    SynthConfig {
        kind,
        train: 2,
        val: 1,
        test: 1,
        frames: 8,
        size: 32,
        ..SynthConfig::default()
    }
}

/// Checks the class map, the lists and `dataset.toml` of a generated folder.
fn check_layout(root: &Path, cfg: &SynthConfig) -> Vec<String> {
    let classes = read_lines(&root.join("classes.txt"));
    assert_eq!(classes, cfg.kind.classes());
    for (split, per_class) in [("train", cfg.train), ("val", cfg.val), ("test", cfg.test)] {
        let lines = read_lines(&root.join(format!("{split}.txt")));
        assert_eq!(lines.len(), per_class * classes.len(), "{split}");
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let label: usize = fields.last().unwrap().parse().unwrap();
            let path = Path::new(fields[0]);
            assert!(path.is_relative(), "{line}");
            // videos/<class>/<class>_<split>_<k>[.mp4]
            let parts: Vec<&str> = fields[0].split('/').collect();
            assert_eq!(parts[0], "videos", "{line}");
            assert_eq!(
                parts[1], classes[label],
                "{line}: label and folder disagree"
            );
            assert!(
                parts[2].starts_with(&format!("{}_{split}_", classes[label])),
                "{line}"
            );
            assert!(root.join(path).exists(), "{line}");
        }
    }
    let toml: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("dataset.toml")).unwrap()).unwrap();
    let data = &toml["data"];
    assert_eq!(data["root"].as_str(), Some("."));
    assert_eq!(data["classes"].as_str(), Some("classes.txt"));
    assert_eq!(data["train"].as_str(), Some("train.txt"));
    assert_eq!(
        data["flip"].as_bool(),
        Some(cfg.kind == SynthKind::Expressions)
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("synth.json")).unwrap()).unwrap();
    assert_eq!(record["complete"], true);
    assert_eq!(
        serde_json::from_value::<SynthConfig>(record["config"].clone()).unwrap(),
        *cfg
    );
    classes
}

#[test]
fn generated_videos_decode_to_the_configured_length_and_size_with_matching_labels() {
    for kind in [SynthKind::Expressions, SynthKind::Motion] {
        let dir = vidapter::util::tempdir().unwrap();
        let cfg = small(kind);
        let summary = generate(&cfg, dir.path(), false).unwrap();
        let classes = check_layout(dir.path(), &cfg);
        assert_eq!(summary.classes, classes);
        assert_eq!(summary.counts.train, 2 * classes.len());
        assert_eq!(summary.counts.test, classes.len());
        assert!(
            summary.codec.starts_with("h264") || summary.codec.starts_with("mpeg4"),
            "{}",
            summary.codec
        );
        let toml = std::fs::read_to_string(dir.path().join("dataset.toml")).unwrap();
        assert!(toml.contains("format = \"mmaction_video\""), "{toml}");
        for split in ["train.txt", "val.txt", "test.txt"] {
            let clips = load_split(dir.path(), split, 8, 32);
            assert_eq!(clips.len(), read_lines(&dir.path().join(split)).len());
        }
        assert!(is_synth_output(dir.path()));
    }
}

#[test]
fn same_seed_gives_identical_lists_and_pixels_and_another_seed_differs() {
    let cfg = small(SynthKind::Expressions);
    let (a, b, c) = (
        vidapter::util::tempdir().unwrap(),
        vidapter::util::tempdir().unwrap(),
        vidapter::util::tempdir().unwrap(),
    );
    generate(&cfg, a.path(), false).unwrap();
    generate(&cfg, b.path(), false).unwrap();
    generate(
        &SynthConfig {
            seed: 1,
            ..cfg.clone()
        },
        c.path(),
        false,
    )
    .unwrap();
    for name in [
        "train.txt",
        "val.txt",
        "test.txt",
        "classes.txt",
        "dataset.toml",
        "synth.json",
    ] {
        assert_eq!(
            std::fs::read(a.path().join(name)).unwrap(),
            std::fs::read(b.path().join(name)).unwrap(),
            "{name}"
        );
    }
    // The lists do not depend on the seed; the pixels do.
    assert_eq!(
        std::fs::read(a.path().join("train.txt")).unwrap(),
        std::fs::read(c.path().join("train.txt")).unwrap()
    );
    let pixels = |root: &Path| -> Vec<Vec<Vec<f32>>> {
        load_split(root, "train.txt", 8, 32)
            .into_iter()
            .map(|c| c.grey)
            .collect()
    };
    // With one encoder thread per video the files themselves are identical.
    for line in read_lines(&a.path().join("train.txt")) {
        let rel = line.split_whitespace().next().unwrap();
        let bytes = |root: &Path| std::fs::read(root.join(rel)).unwrap();
        assert!(
            bytes(a.path()) == bytes(b.path()),
            "{rel} differs between runs"
        );
    }
    let (pa, pb, pc) = (pixels(a.path()), pixels(b.path()), pixels(c.path()));
    assert!(pa == pb, "same seed, different decoded frames");
    for (x, y) in pa.iter().zip(&pc) {
        assert!(x != y, "seeds 0 and 1 gave the same clip");
    }
}

/// The central property, on decoded videos at the default size and length, measured with a
/// nearest-class-mean classifier (class means from the training split, scored on the test
/// split):
/// - on frame averages, the four time courses of an expression are near chance (1/4), and so
///   is each pair (`onset`/`offset`, `apex`/`dip`) at 1/2;
/// - on temporal features the same classifier separates each pair: the last frame minus the
///   first (`onset`/`offset`), the middle frame minus the mean of the two ends (`apex`/`dip`).
///
/// Features are blurred (7x7 box) first: faces sit at random positions and scales, and class
/// means of a mouth that moves by a few pixels blur away at pixel resolution. (A pixel-space
/// classifier cannot read an expression from one absolute frame either: faces, skin tones and
/// backgrounds vary far more than an expression changes a face. The frame differences cancel
/// all of that, which is why the temporal features work and the control that matters is
/// theirs; `expressions.rs` tests the intensity-level argument exactly.)
#[test]
fn expression_courses_need_temporal_order() {
    let dir = vidapter::util::tempdir().unwrap();
    let cfg = SynthConfig {
        kind: SynthKind::Expressions,
        train: 48,
        val: 0,
        test: 32,
        seed: 5,
        ..SynthConfig::default()
    };
    generate(&cfg, dir.path(), false).unwrap();
    let train = load_split(dir.path(), "train.txt", 16, 64);
    let test = load_split(dir.path(), "test.txt", 16, 64);
    let average = |c: &Clip| box_blur(&frame_average(c), 64, 3);
    let last_minus_first = |c: &Clip| {
        let t = c.grey.len();
        box_blur(&combine(1.0, &c.grey[t - 1], -1.0, &c.grey[0]), 64, 3)
    };
    let middle_minus_ends = |c: &Clip| {
        let t = c.grey.len();
        let ends = combine(0.5, &c.grey[0], 0.5, &c.grey[t - 1]);
        box_blur(&combine(1.0, &c.grey[t / 2], -1.0, &ends), 64, 3)
    };
    let mut report = Vec::new();
    let mut failed = false;
    let mut check = |ok: bool, line: String| {
        failed |= !ok;
        report.push(format!("{} {line}", if ok { "ok  " } else { "FAIL" }));
    };
    for (name, base) in [("smile", 0), ("frown", 4)] {
        let group = [base, base + 1, base + 2, base + 3];
        let acc = nearest_mean_accuracy(&train, &test, &group, &average);
        // Chance is 0.25; 128 test clips per group: 0.40 is 4 standard deviations above.
        check(
            acc < 0.40,
            format!("{name}, 4 courses, frame average: accuracy {acc:.3} < 0.40"),
        );
        let pairs: [(&str, [usize; 2], Feature); 2] = [
            ("onset/offset", [base, base + 1], &last_minus_first),
            ("apex/dip", [base + 2, base + 3], &middle_minus_ends),
        ];
        for (pair_name, pair, temporal) in pairs {
            let acc = nearest_mean_accuracy(&train, &test, &pair, &average);
            // Chance is 0.5; 64 test clips per pair: 0.70 is over 3 standard deviations above.
            check(
                acc < 0.70,
                format!("{name}, {pair_name}, frame average: accuracy {acc:.3} < 0.70"),
            );
            let acc = nearest_mean_accuracy(&train, &test, &pair, temporal);
            check(
                acc > 0.85,
                format!("{name}, {pair_name}, temporal: accuracy {acc:.3} > 0.85"),
            );
        }
    }
    let report = report.join("\n");
    assert!(!failed, "\n{report}");
    eprintln!("{report}");
}

/// The same property for motion, measured with a nearest-class-mean classifier (class means
/// from the training split, scored on the test split). Within each pair (left/right, up/down,
/// clockwise/counter-clockwise):
/// - frame averages are near chance (1/2);
/// - so is the shape of the object's path, read without order from the per-pixel variance
///   over time; yet that same order-free reading tells the three axes (horizontal, vertical,
///   turning) apart, so it is a competent reader of what order-free summaries hold;
/// - image motion, which needs the frames in order, separates every pair.
#[test]
fn motion_directions_need_temporal_order() {
    let dir = vidapter::util::tempdir().unwrap();
    let cfg = SynthConfig {
        kind: SynthKind::Motion,
        train: 32,
        val: 0,
        test: 32,
        seed: 5,
        ..SynthConfig::default()
    };
    generate(&cfg, dir.path(), false).unwrap();
    let train = load_split(dir.path(), "train.txt", 16, 64);
    let test = load_split(dir.path(), "test.txt", 16, 64);
    let motion = |c: &Clip| motion_features(c, 64);
    let path = |c: &Clip| path_shape(c, 64);
    let mut report = Vec::new();
    let mut failed = false;
    let mut check = |ok: bool, line: String| {
        failed |= !ok;
        report.push(format!("{} {line}", if ok { "ok  " } else { "FAIL" }));
    };
    for (name, pair) in [
        ("left/right", [0, 1]),
        ("up/down", [2, 3]),
        ("turns", [4, 5]),
    ] {
        // Chance is 0.5; 64 test clips per pair: 0.70 is over 3 standard deviations above.
        let acc = nearest_mean_accuracy(&train, &test, &pair, &frame_average);
        check(
            acc < 0.70,
            format!("{name}, frame average: accuracy {acc:.3} < 0.70"),
        );
        let acc = nearest_mean_accuracy(&train, &test, &pair, &path);
        check(
            acc < 0.70,
            format!("{name}, path shape: accuracy {acc:.3} < 0.70"),
        );
        let acc = nearest_mean_accuracy(&train, &test, &pair, &motion);
        check(
            acc > 0.90,
            format!("{name}, image motion: accuracy {acc:.3} > 0.90"),
        );
    }
    // Axes: labels 0,1 -> 0 (horizontal), 2,3 -> 1 (vertical), 4,5 -> 2 (turning).
    let by_axis = |clips: &[Clip]| -> Vec<Clip> {
        clips
            .iter()
            .map(|c| Clip {
                label: c.label / 2,
                grey: c.grey.clone(),
            })
            .collect()
    };
    let acc = nearest_mean_accuracy(&by_axis(&train), &by_axis(&test), &[0, 1, 2], &path);
    check(
        acc > 0.90,
        format!("3 axes, path shape: accuracy {acc:.3} > 0.90"),
    );
    let report = report.join("\n");
    assert!(!failed, "\n{report}");
    eprintln!("{report}");
}

#[test]
fn frame_folders_variant_writes_raw_frame_lists_that_decode() {
    let dir = vidapter::util::tempdir().unwrap();
    let cfg = SynthConfig {
        media: SynthMedia::Frames,
        ..small(SynthKind::Motion)
    };
    let summary = generate(&cfg, dir.path(), false).unwrap();
    assert_eq!(summary.codec, "jpeg frames");
    check_layout(dir.path(), &cfg);
    let toml: toml::Value =
        toml::from_str(&std::fs::read_to_string(dir.path().join("dataset.toml")).unwrap()).unwrap();
    assert_eq!(toml["data"]["format"].as_str(), Some("mmaction_rawframes"));
    assert_eq!(
        toml["data"]["filename_tmpl"].as_str(),
        Some("img_{:05}.jpg")
    );
    assert_eq!(toml["data"]["start_index"].as_integer(), Some(1));
    let first = read_lines(&dir.path().join("train.txt"))[0].clone();
    assert_eq!(first, "videos/move_left/move_left_train_0000 8 0");
    let clip = dir.path().join("videos/move_left/move_left_train_0000");
    assert!(clip.join("img_00001.jpg").is_file() && clip.join("img_00008.jpg").is_file());
    assert!(!clip.join("img_00009.jpg").exists());
    for split in ["train.txt", "val.txt", "test.txt"] {
        load_split(dir.path(), split, 8, 32);
    }
}

#[test]
fn peak_images_are_listed_with_neutral_smile_and_frown_labels() {
    let dir = vidapter::util::tempdir().unwrap();
    let cfg = SynthConfig {
        peak_images: 3,
        test: 0,
        ..small(SynthKind::Expressions)
    };
    let summary = generate(&cfg, dir.path(), false).unwrap();
    assert_eq!(summary.counts.images, 9);
    assert_eq!(summary.counts.test, 0);
    assert!(!dir.path().join("test.txt").exists());
    let toml = std::fs::read_to_string(dir.path().join("dataset.toml")).unwrap();
    assert!(!toml.contains("test ="), "{toml}");
    let classes = read_lines(&dir.path().join("image_classes.txt"));
    assert_eq!(classes, ["neutral", "smile", "frown"]);
    let lines = read_lines(&dir.path().join("images.txt"));
    assert_eq!(lines.len(), 9);
    let images = read_stills(dir.path(), &lines, &classes);
    // Every still is a different face.
    for i in 0..images.len() {
        for j in i + 1..images.len() {
            assert_ne!(images[i], images[j], "{} and {}", lines[i], lines[j]);
        }
    }
}

/// Checks every `images.txt` line (`images/<class>/....png <label>`, the file a 32x32 image)
/// and returns the images' RGB bytes in list order.
fn read_stills(dir: &Path, lines: &[String], classes: &[String]) -> Vec<Vec<u8>> {
    lines
        .iter()
        .map(|line| {
            let (path, label) = line.split_once(' ').unwrap();
            let label: usize = label.parse().unwrap();
            assert!(
                path.starts_with(&format!("images/{}/", classes[label])),
                "{line}"
            );
            assert!(path.ends_with(".png"), "{line}");
            let img = image::open(dir.join(path)).unwrap().to_rgb8();
            assert_eq!(img.dimensions(), (32, 32));
            img.into_raw()
        })
        .collect()
}

#[test]
fn motion_stills_are_labelled_by_grid_cell_and_axis() {
    let dir = vidapter::util::tempdir().unwrap();
    let cfg = SynthConfig {
        peak_images: 2,
        ..small(SynthKind::Motion)
    };
    let summary = generate(&cfg, dir.path(), false).unwrap();
    assert_eq!(summary.counts.images, 72);
    let classes = read_lines(&dir.path().join("image_classes.txt"));
    assert_eq!(classes, SynthKind::Motion.image_classes());
    assert_eq!(classes.len(), 36);
    assert_eq!(classes[0], "r0_c0_axis000");
    assert_eq!(classes[35], "r2_c2_axis135");
    let lines = read_lines(&dir.path().join("images.txt"));
    assert_eq!(lines.len(), 72);
    read_stills(dir.path(), &lines, &classes);
    // The stills keep the motion set's no-flip rule in dataset.toml.
    let toml = std::fs::read_to_string(dir.path().join("dataset.toml")).unwrap();
    assert!(
        toml.contains("flip = false") && toml.contains("images.txt"),
        "{toml}"
    );
}

#[test]
fn a_foreign_non_empty_folder_is_refused_unless_forced() {
    let dir = vidapter::util::tempdir().unwrap();
    let mine = dir.path().join("notes.txt");
    std::fs::write(&mine, "keep me").unwrap();
    let cfg = small(SynthKind::Motion);
    let e = generate(&cfg, dir.path(), false).unwrap_err().to_string();
    assert!(e.contains("not empty") && e.contains("synth.json"), "{e}");
    assert!(
        !dir.path().join("videos").exists(),
        "nothing written when refused"
    );
    generate_forced(&cfg, dir.path(), false).unwrap();
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "keep me");
    assert!(is_synth_output(dir.path()));
    // Now an earlier output: regenerating replaces it without force, and stale clips go.
    let fewer = SynthConfig {
        train: 1,
        val: 0,
        ..cfg.clone()
    };
    generate(&fewer, dir.path(), false).unwrap();
    assert!(!dir.path().join("val.txt").exists());
    assert!(
        !dir.path()
            .join("videos/move_left/move_left_train_0001.mp4")
            .exists()
    );
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "keep me");
}

fn vidapter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidapter"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("binary runs")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn cli_writes_a_dataset_and_refuses_a_foreign_folder() {
    let dir = vidapter::util::tempdir().unwrap();
    let out: PathBuf = dir.path().join("expr");
    let args = [
        "synth",
        "--kind",
        "expressions",
        "--out",
        p(&out),
        "--train",
        "1",
        "--val",
        "1",
        "--test",
        "1",
        "--frames",
        "6",
        "--size",
        "32",
        "--seed",
        "3",
        "--peak-images",
        "1",
        "--quiet",
    ];
    let run = vidapter(&args);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("8 classes"), "{stdout}");
    assert!(stdout.contains("smile_onset"), "{stdout}");
    assert!(stdout.contains("dataset.toml"), "{stdout}");
    for name in [
        "train.txt",
        "val.txt",
        "test.txt",
        "classes.txt",
        "dataset.toml",
        "synth.json",
        "images.txt",
        "image_classes.txt",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("synth.json")).unwrap()).unwrap();
    assert_eq!(record["config"]["frames"], 6);
    assert_eq!(record["config"]["seed"], 3);
    // Running again over its own output is allowed.
    assert!(vidapter(&args).status.success());

    // A folder with other things in it is refused, with a reason and no panic.
    let foreign = dir.path().join("photos");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("a.jpg"), b"not ours").unwrap();
    let run = vidapter(&["synth", "--kind", "motion", "--out", p(&foreign), "-q"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.starts_with("error: ") && stderr.contains("--force"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!foreign.join("videos").exists());

    // Bad values are errors naming the field.
    let run = vidapter(&[
        "synth",
        "--kind",
        "motion",
        "--out",
        p(&out),
        "--size",
        "33",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && stderr.contains("`size`"),
        "{stderr}"
    );
    let run = vidapter(&["synth", "--kind", "faces", "--out", p(&out)]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && stderr.contains("expressions"),
        "{stderr}"
    );
}
