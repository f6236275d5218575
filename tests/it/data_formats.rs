//! Annotation readers: every dataset layout, written here as the dataset distributes it
//! (real frame folders of PNGs, real videos from the `ffmpeg` tool), must give the right
//! clips, labels and class order; a malformed line, a label outside the class map and a
//! missing clip must come back as problems naming file and line; the validation holdout
//! must be disjoint from train, stratified and stable.

use std::path::{Path, PathBuf};
use std::process::Command;

use vidapter::data::check::{Verdict, check};
use vidapter::data::config::{DatasetConfig, Split};
use vidapter::data::decode::DecodeOptions;
use vidapter::data::{Dataset, Problem, Source};

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// A folder of `n` 8x8 PNG frames named by `name(i)` for i in 1..=n.
fn frames(dir: &Path, n: usize, name: impl Fn(usize) -> String) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for i in 1..=n {
        image::RgbImage::from_pixel(8, 8, image::Rgb([i as u8 * 9, 40, 90]))
            .save(dir.join(name(i)))
            .unwrap();
    }
    dir.to_path_buf()
}

/// A 12-frame 32x24 video; the codec follows the extension (mp4/mkv H.264, avi MPEG-4,
/// webm VP9).
fn video(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let codec: &[&str] = match path.extension().and_then(|e| e.to_str()) {
        Some("avi") => &["-c:v", "mpeg4"],
        Some("webm") => &["-c:v", "libvpx-vp9", "-deadline", "realtime"],
        _ => &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    };
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
        .args(["testsrc2=size=32x24:rate=25", "-frames:v", "12"])
        .args(codec)
        .arg(path)
        .status()
        .expect("the ffmpeg tool is installed (scripts/install-deps.sh)")
        .success();
    assert!(ok, "ffmpeg could not write {}", path.display());
    path.to_path_buf()
}

/// Copies of one real video under several names (one encode per test keeps tests fast).
fn videos(first: &Path, others: &[PathBuf]) {
    video(first);
    for o in others {
        std::fs::create_dir_all(o.parent().unwrap()).unwrap();
        std::fs::copy(first, o).unwrap();
    }
}

/// Writes `dir/data.toml` with a `[data]` table and reads it.
fn config(dir: &Path, body: &str) -> DatasetConfig {
    let path = write(&dir.join("data.toml"), &format!("[data]\n{body}"));
    DatasetConfig::from_toml_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn config_err(dir: &Path, body: &str) -> String {
    let path = write(&dir.join("data.toml"), &format!("[data]\n{body}"));
    DatasetConfig::from_toml_file(&path)
        .map(|_| ())
        .expect_err("the config should be refused")
        .to_string()
}

/// `(line, reason)` of each problem, asserting they all name `file`.
fn problems_in(d: &Dataset, file: &Path) -> Vec<(usize, String)> {
    d.problems
        .iter()
        .map(|p: &Problem| {
            assert_eq!(p.path, file, "{p}");
            (p.line.expect("a line problem"), p.reason.clone())
        })
        .collect()
}

fn labels(d: &Dataset) -> Vec<Vec<usize>> {
    d.entries.iter().map(|e| e.labels.clone()).collect()
}

fn paths(d: &Dataset) -> Vec<PathBuf> {
    d.entries
        .iter()
        .map(|e| e.source.path().to_path_buf())
        .collect()
}

fn lines(d: &Dataset) -> Vec<usize> {
    d.entries
        .iter()
        .map(|e| e.origin.as_ref().unwrap().1)
        .collect()
}

#[test]
fn mmaction_video_list_reads_multi_label_lines_and_reports_bad_ones() {
    let dir = vidapter::util::tempdir().unwrap();
    let root = dir.path().join("videos");
    videos(
        &root.join("a.mp4"),
        &[root.join("sub/b.mp4"), root.join("e.mp4")],
    );
    let train = write(
        &dir.path().join("train.txt"),
        "# clip labels\n\
         a.mp4 0\n\
         sub/b.mp4 1 2 1\n\
         c.mp4\n\
         d.mp4 x\n\
         missing.mp4 1\n\
         e.mp4 7\n",
    );
    let cfg = config(
        dir.path(),
        "format = \"mmaction_video\"\nroot = \"videos\"\ntrain = \"train.txt\"\n\
         classes = [\"walk\", \"run\", \"jump\"]\n",
    );
    let d = cfg.load(Split::Train).unwrap();
    assert_eq!(d.classes.names, ["walk", "run", "jump"]);
    assert_eq!(
        labels(&d),
        vec![vec![0], vec![1, 2]],
        "multi-label, repeats dropped"
    );
    assert_eq!(paths(&d), vec![root.join("a.mp4"), root.join("sub/b.mp4")]);
    assert_eq!(lines(&d), vec![2, 3]);
    assert!(matches!(d.entries[0].source, Source::Video(_)));
    let p = problems_in(&d, &train);
    assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![4, 5, 6, 7]);
    assert!(p[0].1.contains("`path label [label ...]`"), "{p:?}");
    assert!(
        p[1].1.contains("label `x` is not a non-negative integer"),
        "{p:?}"
    );
    assert!(
        p[2].1.contains("does not exist") && p[2].1.contains("missing.mp4"),
        "{p:?}"
    );
    assert!(
        p[3].1
            .contains("label 7 is outside the class map (3 classes"),
        "{p:?}"
    );
    assert!(cfg.flip_allowed());
    assert_eq!(cfg.splits(), vec![Split::Train, Split::Val], "no test list");
    let e = cfg.load(Split::Test).unwrap_err().to_string();
    assert!(e.contains("data.test"), "{e}");
}

#[test]
fn mmaction_classes_default_to_numbers_up_to_the_largest_label() {
    let dir = vidapter::util::tempdir().unwrap();
    let root = dir.path().join("videos");
    videos(&root.join("a.mp4"), &[root.join("b.mp4")]);
    write(&dir.path().join("train.txt"), "a.mp4 0\n");
    write(&dir.path().join("test.txt"), "b.mp4 4\n");
    let cfg = config(
        dir.path(),
        "format = \"mmaction_video\"\nroot = \"videos\"\ntrain = \"train.txt\"\ntest = \"test.txt\"\n",
    );
    let map = cfg.class_map().unwrap();
    assert_eq!(map.names, ["0", "1", "2", "3", "4"], "K from every list");
    assert_eq!(labels(&cfg.load(Split::Test).unwrap()), vec![vec![4]]);
    assert_eq!(cfg.splits(), Split::ALL.to_vec());
}

#[test]
fn mmaction_rawframes_use_template_start_and_count() {
    let dir = vidapter::util::tempdir().unwrap();
    let root = dir.path().join("rawframes");
    frames(&root.join("walk/clip1"), 10, |i| format!("img_{i:05}.jpg"));
    frames(&root.join("run/clip2"), 6, |i| format!("img_{i:05}.jpg"));
    let list = write(
        &dir.path().join("train_list.txt"),
        "walk/clip1 10 0\nrun/clip2 6 1\nrun/clip3 ten 1\nrun/gone 8 1\n",
    );
    let cfg = config(
        dir.path(),
        "format = \"mmaction_rawframes\"\nroot = \"rawframes\"\ntrain = \"train_list.txt\"\n\
         classes = [\"walk\", \"run\"]\nval_fraction = 0.0\n",
    );
    let d = cfg.load(Split::Train).unwrap();
    assert_eq!(
        d.entries[0].source,
        Source::Frames {
            dir: root.join("walk/clip1"),
            template: Some("img_{:05}.jpg".into()),
            start: 1,
            count: Some(10),
        }
    );
    let p = problems_in(&d, &list);
    assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 4]);
    assert!(p[0].1.contains("total_frames `ten`"), "{p:?}");
    assert!(
        p[1].1.contains("frame folder") && p[1].1.contains("gone"),
        "{p:?}"
    );
    // The folders decode as the list says.
    let report = check(&d, 8, 1, &DecodeOptions::default(), false);
    assert_eq!(report.clean, 1);
    assert_eq!(report.count(Verdict::TooShort), 1, "{:#?}", report.findings);
    assert_eq!(report.count(Verdict::Annotation), 2);
}

/// `DFEW/`: `EmoLabel_DataSplit/` and `Clip/clip_224x224/` as distributed.
fn dfew_tree(base: &Path) -> (PathBuf, PathBuf) {
    let clips = base.join("DFEW/Clip/clip_224x224");
    // Two namings seen in copies of DFEW: `00001.jpg` ... and `1.jpg` ...
    frames(&clips.join("00001"), 9, |i| format!("{i:05}.png"));
    frames(&clips.join("00002"), 12, |i| format!("{i}.png"));
    frames(&clips.join("00006"), 9, |i| format!("00006_{i:05}.png"));
    let train = write(
        &base.join("DFEW/EmoLabel_DataSplit/train(single-labeled)/set_1.csv"),
        "video_name,label\n1,1\n00002,7\n3,8\n4;2\n5,3\n",
    );
    write(
        &base.join("DFEW/EmoLabel_DataSplit/test(single-labeled)/set_1.csv"),
        "video_name,label\r\n6,4\r\n",
    );
    (clips, train)
}

#[test]
fn dfew_labels_start_at_one() {
    let dir = vidapter::util::tempdir().unwrap();
    let (clips, train) = dfew_tree(dir.path());
    let cfg = config(
        dir.path(),
        "format = \"dfew\"\nroot = \"DFEW/Clip/clip_224x224\"\nannotations = \"DFEW\"\nfold = 1\n",
    );
    let d = cfg.load(Split::Train).unwrap();
    assert_eq!(
        d.classes.names,
        [
            "Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear"
        ]
    );
    assert_eq!(labels(&d), vec![vec![0], vec![6]], "1 = Happy, 7 = Fear");
    assert_eq!(paths(&d), vec![clips.join("00001"), clips.join("00002")]);
    assert!(
        matches!(&d.entries[0].source, Source::Frames { template: None, .. }),
        "every image of the folder, numeric order"
    );
    let p = problems_in(&d, &train);
    assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![4, 5, 6]);
    assert!(
        p[0].1.contains("label `8` is outside DFEW's 1..=7"),
        "{p:?}"
    );
    assert!(p[1].1.contains("expected `video_name,label`"), "{p:?}");
    assert!(p[2].1.contains("`00005`"), "{p:?}");

    let test = cfg.load(Split::Test).unwrap();
    assert_eq!(labels(&test), vec![vec![3]], "4 = Angry");
    // Frame folders named either way decode.
    let mut both = d.clone();
    both.entries.extend(test.entries);
    let report = check(&both, 8, 2, &DecodeOptions::default(), false);
    assert_eq!(report.clean, 3, "{:#?}", report.findings);
}

#[test]
fn dfew_videos_are_found_by_padded_or_plain_number() {
    let dir = vidapter::util::tempdir().unwrap();
    dfew_tree(dir.path());
    let original = dir.path().join("DFEW/Clip/original");
    videos(&original.join("00001.mp4"), &[original.join("2.mp4")]);
    let cfg = config(
        dir.path(),
        "format = \"dfew\"\nroot = \"DFEW/Clip/original\"\n\
         annotations = \"DFEW/EmoLabel_DataSplit\"\nfold = 1\nmedia = \"videos\"\n",
    );
    let d = cfg.load(Split::Train).unwrap();
    assert_eq!(
        d.entries
            .iter()
            .map(|e| e.source.clone())
            .collect::<Vec<_>>(),
        vec![
            Source::Video(original.join("00001.mp4")),
            Source::Video(original.join("2.mp4"))
        ]
    );
    let missing = &d.problems.last().unwrap().reason;
    assert!(
        missing.contains("`00005` or `5`") && missing.contains("{mp4,mkv,webm,avi,mov}"),
        "{missing}"
    );
}

#[test]
fn dfew_wrong_header_or_missing_fold_file_is_an_error() {
    let dir = vidapter::util::tempdir().unwrap();
    dfew_tree(dir.path());
    let body = "format = \"dfew\"\nroot = \"DFEW/Clip/clip_224x224\"\nannotations = \"DFEW\"\n";
    let e = config(dir.path(), &format!("{body}fold = 3\n"))
        .load(Split::Train)
        .unwrap_err()
        .to_string();
    assert!(e.contains("set_3.csv"), "{e}");
    write(
        &dir.path()
            .join("DFEW/EmoLabel_DataSplit/train(single-labeled)/set_2.csv"),
        "name,emotion\n1,1\n",
    );
    let e = config(dir.path(), &format!("{body}fold = 2\n"))
        .load(Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("set_2.csv") && e.contains("line 1") && e.contains("`video_name,label`"),
        "{e}"
    );
}

#[test]
fn ferv39k_reads_scene_paths_with_dfew_class_order() {
    let dir = vidapter::util::tempdir().unwrap();
    let clips = dir.path().join("FERV39k/2_ClipsforFaceCrop");
    frames(&clips.join("Action/Sad/0010"), 4, |i| {
        format!("{:02}.png", i - 1)
    });
    frames(&clips.join("Talk-Show/Happy/0412"), 4, |i| {
        format!("{:02}.png", i - 1)
    });
    let train = write(
        &dir.path().join("FERV39k/4_setups/All_scenes/train_All.csv"),
        "Action/Sad/0010 Sad\nTalk-Show/Happy/0412 Happy\nAction/Sad/0011,Sad\n\
         Action/Fear/0001 Scared\nAction/Angry/0002 Angry\n",
    );
    write(
        &dir.path().join("FERV39k/4_setups/All_scenes/test_All.csv"),
        "Action/Sad/0010 Sad\n",
    );
    let body =
        "format = \"ferv39k\"\nroot = \"FERV39k/2_ClipsforFaceCrop\"\nannotations = \"FERV39k\"\n";
    let d = config(dir.path(), body).load(Split::Train).unwrap();
    assert_eq!(d.classes.names[..2], ["Happy", "Sad"]);
    assert_eq!(labels(&d), vec![vec![1], vec![0]]);
    assert_eq!(paths(&d)[0], clips.join("Action/Sad/0010"));
    let p = problems_in(&d, &train);
    assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 4, 5]);
    assert!(p[0].1.contains("`Scene/Emotion/NNNN Emotion`"), "{p:?}");
    assert!(p[1].1.contains("label `Scared` is not a class"), "{p:?}");
    assert!(p[2].1.contains("does not exist"), "{p:?}");

    // `classes` reorders (alphabetical, as some repos use) ...
    let d = config(
        dir.path(),
        &format!(
            "{body}classes = [\"Angry\", \"Disgust\", \"Fear\", \"Happy\", \"Neutral\", \"Sad\", \"Surprise\"]\n"
        ),
    )
    .load(Split::Train)
    .unwrap();
    assert_eq!(labels(&d), vec![vec![5], vec![3]]);
    // ... or keeps a subset, the other classes' clips reported ...
    let d = config(dir.path(), &format!("{body}classes = [\"Sad\"]\n"))
        .load(Split::Train)
        .unwrap();
    assert_eq!(labels(&d), vec![vec![0]]);
    assert!(
        d.problems
            .iter()
            .any(|p| p.line == Some(2) && p.reason.contains("`Happy` is not in the configured")),
        "{:?}",
        d.problems
    );
    // ... and a name the dataset lacks is a config error with a suggestion.
    let e = config(
        dir.path(),
        &format!("{body}classes = [\"Sad\", \"happy\"]\n"),
    )
    .class_map()
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("data.classes") && e.contains("did you mean `Happy`"),
        "{e}"
    );
}

#[test]
fn mafw_uses_the_official_class_order_and_folder_names() {
    let dir = vidapter::util::tempdir().unwrap();
    let clips = dir.path().join("MAFW/data/clips");
    videos(&clips.join("00001.mp4"), &[clips.join("00002.mp4")]);
    frames(&dir.path().join("MAFW/data/frames/00001"), 3, |i| {
        format!("{i}.png")
    });
    let train = write(
        &dir.path()
            .join("MAFW/Train & Test Set/single/no_caption/set_2/train.txt"),
        "00001.mp4 anger\n00002.mp4 helplessness\n00003.mp4\n00004.mp4 joy\n00005.mp4 fear\n",
    );
    write(
        &dir.path()
            .join("MAFW/Train & Test Set/single/no_caption/set_2/test.txt"),
        "00002.mp4 disappointment\n",
    );
    let body = "format = \"mafw\"\nannotations = \"MAFW\"\nfold = 2\n";
    let cfg = config(dir.path(), &format!("{body}root = \"MAFW/data/clips\"\n"));
    let d = cfg.load(Split::Train).unwrap();
    assert_eq!(d.classes.len(), 11);
    assert_eq!(d.classes.names[0], "anger");
    assert_eq!(d.classes.names[10], "disappointment");
    assert_eq!(labels(&d), vec![vec![0], vec![9]]);
    assert_eq!(paths(&d)[1], clips.join("00002.mp4"));
    let p = problems_in(&d, &train);
    assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 4, 5]);
    assert!(p[1].1.contains("`joy`"), "{p:?}");
    assert!(p[2].1.contains("00005.mp4 does not exist"), "{p:?}");
    assert_eq!(labels(&cfg.load(Split::Test).unwrap()), vec![vec![10]]);

    // The same annotation read as frame folders.
    let cfg = config(
        dir.path(),
        &format!("{body}root = \"MAFW/data/frames\"\nmedia = \"frames\"\n"),
    );
    let d = cfg.load(Split::Train).unwrap();
    assert_eq!(paths(&d), vec![dir.path().join("MAFW/data/frames/00001")]);
}

#[test]
fn kinetics_class_index_is_sorted_train_labels_and_test_is_the_val_csv() {
    let dir = vidapter::util::tempdir().unwrap();
    let v = dir.path().join("k400/videos");
    videos(
        &v.join("train/abseiling/abcdefghijk_000010_000020.mp4"),
        &[
            v.join("train/passing_American_football_in_game/-Q2FqqXzGho_000005_000015.mkv"),
            v.join("val/vvvvvvvvvvv_000000_000010.mp4"),
        ],
    );
    let train = write(
        &dir.path().join("k400/annotations/kinetics_train.csv"),
        "label,youtube_id,time_start,time_end,split,is_cc\n\
         zumba,zzzzzzzzzzz,1,11,train,0\n\
         abseiling,abcdefghijk,10,20,train,0\n\
         \"passing American football (in game)\",-Q2FqqXzGho,5.0,15,train,0\n\
         zumba,bad,1.5,11,train,0\n\
         abseiling,short,1\n",
    );
    let val = write(
        &dir.path().join("k400/annotations/kinetics_val.csv"),
        "label,youtube_id,time_start,time_end,split\n\
         zumba,vvvvvvvvvvv,0,10,val\n\
         skydiving,sssssssssss,0,10,val\n",
    );
    let cfg = config(
        dir.path(),
        "format = \"kinetics\"\nroot = \"k400/videos\"\nannotations = \"k400\"\n",
    );
    let d = cfg.load(Split::Train).unwrap();
    assert_eq!(
        d.classes.names,
        ["abseiling", "passing American football (in game)", "zumba"]
    );
    assert_eq!(labels(&d), vec![vec![0], vec![1]]);
    assert_eq!(
        paths(&d),
        vec![
            v.join("train/abseiling/abcdefghijk_000010_000020.mp4"),
            v.join("train/passing_American_football_in_game/-Q2FqqXzGho_000005_000015.mkv")
        ]
    );
    let p = problems_in(&d, &train);
    assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2, 5, 6]);
    assert!(p[0].1.contains("zzzzzzzzzzz_000001_000011"), "{p:?}");
    assert!(p[1].1.contains("time_start `1.5`"), "{p:?}");
    assert!(
        p[2].1.contains("expected 6 comma-separated fields"),
        "{p:?}"
    );

    let t = cfg.load(Split::Test).unwrap();
    assert_eq!(labels(&t), vec![vec![2]]);
    assert_eq!(paths(&t), vec![v.join("val/vvvvvvvvvvv_000000_000010.mp4")]);
    let p = problems_in(&t, &val);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, 3);
    assert!(p[0].1.contains("`skydiving` is not a class"), "{p:?}");
}

/// Issue 17, item 11: the Kinetics class map is mmaction2's (quotes removed, spaces kept in
/// names, sorted as mmaction2 sorts, a class whose only row is malformed still counted), and
/// class folders renamed as mmaction2's `rename_classnames.sh` does (spaces to underscores,
/// parentheses and apostrophes kept) are found.
#[test]
fn kinetics_follows_mmaction2_class_map_and_folder_names() {
    let dir = vidapter::util::tempdir().unwrap();
    let v = dir.path().join("k/videos");
    videos(
        &v.join("passing_American_football_(in_game)/aaaaaaaaaaa_000001_000011.mp4"),
        &[v.join("massaging_person's_head/bbbbbbbbbbb_000002_000012.mp4")],
    );
    write(
        &dir.path().join("k/kinetics_train.csv"),
        "label,youtube_id,time_start,time_end,split\n\
         \"passing American football (in game)\",aaaaaaaaaaa,1,11,train\n\
         massaging person's head,bbbbbbbbbbb,2,12,train\n\
         abseiling,ccccccccccc,not-a-time,12,train\n\
         \"\"\"quoted\"\" class\",ddddddddddd,1,2,train\n",
    );
    write(
        &dir.path().join("k/kinetics_val.csv"),
        "label,youtube_id,time_start,time_end,split\n",
    );
    let cfg = config(
        dir.path(),
        "format = \"kinetics\"\nroot = \"k/videos\"\nannotations = \"k\"\n",
    );
    let d = cfg.load(Split::Train).unwrap();
    assert_eq!(
        d.classes.names,
        [
            "abseiling",
            "massaging person's head",
            "passing American football (in game)",
            "quoted class"
        ],
        "abseiling's only row is malformed but it keeps its index"
    );
    assert_eq!(labels(&d), vec![vec![2], vec![1]]);
    assert_eq!(
        paths(&d),
        vec![
            v.join("passing_American_football_(in_game)/aaaaaaaaaaa_000001_000011.mp4"),
            v.join("massaging_person's_head/bbbbbbbbbbb_000002_000012.mp4"),
        ]
    );
}

/// Issue 17, item 11: a `labels.json` of a class subset (non-contiguous indices) is read as
/// numbered, as mmaction2 reads it: the head has max + 1 outputs.
#[test]
fn ssv2_class_subset_keeps_its_indices() {
    let dir = vidapter::util::tempdir().unwrap();
    let v = dir.path().join("s/videos");
    videos(&v.join("1.webm"), &[]);
    write(
        &dir.path().join("s/labels.json"),
        r#"{"Pushing something from left to right": "3", "Holding something": "7"}"#,
    );
    write(
        &dir.path().join("s/train.json"),
        r#"[{"id": "1", "template": "Holding [something]"}]"#,
    );
    let cfg = config(
        dir.path(),
        "format = \"ssv2\"\nroot = \"s/videos\"\nannotations = \"s\"\n",
    );
    let d = cfg.load(Split::Train).unwrap();
    assert_eq!(d.classes.names.len(), 8);
    assert_eq!(d.classes.names[3], "Pushing something from left to right");
    assert_eq!(labels(&d), vec![vec![7]]);
    write(&dir.path().join("s/labels.json"), r#"{"A": "1", "B": "1"}"#);
    let e = cfg.load(Split::Train).err().unwrap().to_string();
    assert!(e.contains("share index 1"), "{e}");
}

/// Issue 17, item 10: a folder where an annotation names a video is reported as a folder.
#[test]
fn a_folder_listed_as_a_video_is_reported_as_a_folder() {
    let dir = vidapter::util::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("clips/a.mp4")).unwrap();
    write(&dir.path().join("train.txt"), "clips/a.mp4 0\n");
    let cfg = config(
        dir.path(),
        "format = \"mmaction_video\"\nroot = \".\"\ntrain = \"train.txt\"\n",
    );
    let d = cfg.load(Split::Train).unwrap();
    assert!(
        d.problems
            .iter()
            .any(|p| p.reason.contains("is a folder, not a video file")),
        "{:?}",
        d.problems
    );
}

#[test]
fn ssv2_never_flips() {
    let dir = vidapter::util::tempdir().unwrap();
    let v = dir.path().join("ssv2/videos");
    videos(&v.join("1.webm"), &[v.join("2.webm"), v.join("6.webm")]);
    write(
        &dir.path().join("ssv2/labels/labels.json"),
        r#"{"Pushing something from left to right": "0",
            "Holding something next to something": "1",
            "Approaching something with your camera": "2"}"#,
    );
    let train = write(
        &dir.path().join("ssv2/labels/train.json"),
        r#"[
{"id": "1", "label": "holding a cup next to a pen", "template": "Holding [something] next to [something]", "placeholders": ["a cup", "a pen"]},
{"id": "2", "label": "pushing a pen from left to right", "template": "Pushing [something] from left to right", "placeholders": ["a pen"]},
{"id": "3", "label": "no template"},
{"id": "4", "template": "Dancing with [something]"},
{"id": 5, "template": "Approaching [something] with your camera"}
]"#,
    );
    write(
        &dir.path().join("ssv2/labels/validation.json"),
        r#"[{"id": "6", "template": "Pushing [something] from left to right"}]"#,
    );
    let body = "format = \"ssv2\"\nroot = \"ssv2/videos\"\nannotations = \"ssv2\"\n";
    let cfg = config(dir.path(), body);
    assert!(!cfg.flip_allowed());
    let e = config_err(dir.path(), &format!("{body}flip = true\n"));
    assert!(
        e.contains("data.flip") && e.contains("left to right"),
        "{e}"
    );

    let d = cfg.load(Split::Train).unwrap();
    assert_eq!(d.classes.names[0], "Pushing something from left to right");
    assert_eq!(
        labels(&d),
        vec![vec![1], vec![0]],
        "brackets removed, indices from labels.json"
    );
    assert_eq!(paths(&d), vec![v.join("1.webm"), v.join("2.webm")]);
    let p = problems_in(&d, &train);
    assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![4, 5, 6]);
    assert!(
        p[0].1
            .contains("item 3 needs a string `id` and a string `template`"),
        "{p:?}"
    );
    assert!(p[1].1.contains("`Dancing with something`"), "{p:?}");
    assert!(p[2].1.contains("`5`"), "{p:?}");
    assert_eq!(labels(&cfg.load(Split::Test).unwrap()), vec![vec![0]]);
}

#[test]
fn ucf101_test_labels_come_from_the_folder() {
    let dir = vidapter::util::tempdir().unwrap();
    let v = dir.path().join("UCF-101");
    videos(
        &v.join("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"),
        &[
            v.join("HandstandPushups/v_HandStandPushups_g08_c01.avi"),
            v.join("YoYo/v_YoYo_g01_c01.avi"),
            v.join("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"),
        ],
    );
    let lists = dir.path().join("ucfTrainTestlist");
    write(
        &lists.join("classInd.txt"),
        "1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n3 YoYo\r\n",
    );
    let train = write(
        &lists.join("trainlist01.txt"),
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n\
         HandstandPushups/v_HandStandPushups_g08_c01.avi 2\r\n\
         YoYo/v_YoYo_g01_c01.avi 1\r\n\
         YoYo/v_YoYo_g02_c01.avi 9\r\n\
         YoYo/v_YoYo_g03_c01.avi 3\r\n",
    );
    let test = write(
        &lists.join("testlist01.txt"),
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\nJuggling/v_Juggling_g01_c01.avi\r\n",
    );
    let cfg = config(
        dir.path(),
        "format = \"ucf101\"\nroot = \"UCF-101\"\nannotations = \".\"\nfold = 1\n",
    );
    let d = cfg.load(Split::Train).unwrap();
    assert_eq!(
        d.classes.names,
        ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
    );
    assert_eq!(labels(&d), vec![vec![0], vec![1]]);
    let p = problems_in(&d, &train);
    assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 4, 5]);
    assert!(
        p[0].1
            .contains("label 1 is ApplyEyeMakeup, but the clip is in the folder `YoYo`"),
        "{p:?}"
    );
    assert!(
        p[1].1.contains("label `9` is outside classInd.txt's 1..=3"),
        "{p:?}"
    );
    assert!(
        p[2].1.contains("v_YoYo_g03_c01.avi does not exist"),
        "{p:?}"
    );

    let t = cfg.load(Split::Test).unwrap();
    assert_eq!(labels(&t), vec![vec![0]]);
    let p = problems_in(&t, &test);
    assert_eq!(p.len(), 1);
    assert!(p[0].1.contains("`Juggling` is not a class"), "{p:?}");
}

#[test]
fn ucf101_class_index_file_must_count_from_one() {
    let dir = vidapter::util::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("UCF-101")).unwrap();
    write(
        &dir.path().join("ucfTrainTestlist/classInd.txt"),
        "1 ApplyEyeMakeup\n3 YoYo\n",
    );
    write(&dir.path().join("ucfTrainTestlist/trainlist02.txt"), "");
    let e = config(
        dir.path(),
        "format = \"ucf101\"\nroot = \"UCF-101\"\nannotations = \"ucfTrainTestlist\"\nfold = 2\n",
    )
    .load(Split::Train)
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("classInd.txt") && e.contains("line 2: expected `2 ClassName`"),
        "{e}"
    );
}

#[test]
fn hmdb51_split_marks_choose_train_and_test() {
    let dir = vidapter::util::tempdir().unwrap();
    let v = dir.path().join("hmdb51");
    videos(
        &v.join("brush_hair/a.avi"),
        &[v.join("brush_hair/b.avi"), v.join("cartwheel/f.avi")],
    );
    let splits = dir.path().join("testTrainMulti_7030_splits");
    let brush = write(
        &splits.join("brush_hair_test_split1.txt"),
        "a.avi 1 \nb.avi 2 \nc.avi 0 \nd.avi 3 \ne.avi\n",
    );
    let cart = write(
        &splits.join("cartwheel_test_split1.txt"),
        "f.avi 1\ng.avi 1\n",
    );
    write(&splits.join("brush_hair_test_split2.txt"), "a.avi 2\n");
    write(&splits.join("climb_test_split2.txt"), "x.avi 1\n");
    let body = "format = \"hmdb51\"\nroot = \"hmdb51\"\nannotations = \"testTrainMulti_7030_splits\"\nfold = 1\n";
    let cfg = config(dir.path(), body);
    let d = cfg.load(Split::Train).unwrap();
    assert_eq!(
        d.classes.names,
        ["brush_hair", "cartwheel"],
        "split 1's classes only"
    );
    assert_eq!(
        paths(&d),
        vec![v.join("brush_hair/a.avi"), v.join("cartwheel/f.avi")]
    );
    assert_eq!(labels(&d), vec![vec![0], vec![1]]);
    let found: Vec<(PathBuf, usize)> = d
        .problems
        .iter()
        .map(|p| (p.path.clone(), p.line.unwrap()))
        .collect();
    assert_eq!(found, vec![(brush.clone(), 4), (brush, 5), (cart, 2)]);
    assert!(
        d.problems[0].reason.contains("not a split mark"),
        "{:?}",
        d.problems
    );
    assert!(
        d.problems[2].reason.contains("g.avi does not exist"),
        "{:?}",
        d.problems
    );
    assert_eq!(
        paths(&cfg.load(Split::Test).unwrap()),
        vec![v.join("brush_hair/b.avi")]
    );

    // A class left out of `classes` makes its clips problems.
    let d = config(dir.path(), &format!("{body}classes = [\"cartwheel\"]\n"))
        .load(Split::Train)
        .unwrap();
    assert_eq!(labels(&d), vec![vec![0]]);
    assert!(d.problems.iter().any(|p| {
        p.line == Some(1)
            && p.reason
                .contains("`brush_hair` is not in the configured `classes`")
    }));
    let e = config_err(dir.path(), &format!("{body}train = \"x.txt\"\n"));
    assert!(e.contains("data.train"), "{e}");
}

/// An mmaction2 raw-frame dataset of `per_class` clips in each of 3 classes; frame folders
/// hold one PNG (the holdout does not decode).
fn holdout_tree(
    base: &Path,
    per_class: &[usize],
    seed: u64,
    fraction: f64,
    reverse: bool,
) -> DatasetConfig {
    let mut lines = Vec::new();
    for (c, &n) in per_class.iter().enumerate() {
        for i in 0..n {
            let name = format!("c{c}/clip{i:03}");
            if !base.join("frames").join(&name).exists() {
                frames(&base.join("frames").join(&name), 1, |i| {
                    format!("img_{i:05}.png")
                });
            }
            lines.push(format!("{name} 1 {c}"));
        }
    }
    lines.push("broken line".into());
    if reverse {
        lines.reverse();
    }
    write(&base.join("train.txt"), &(lines.join("\n") + "\n"));
    config(
        base,
        &format!(
            "format = \"mmaction_rawframes\"\nroot = \"frames\"\ntrain = \"train.txt\"\n\
             filename_tmpl = \"img_{{:05}}.png\"\nval_fraction = {fraction}\nsplit_seed = {seed}\n"
        ),
    )
}

#[test]
fn holdout_val_is_disjoint_and_stratified() {
    let dir = vidapter::util::tempdir().unwrap();
    let cfg = holdout_tree(dir.path(), &[20, 40, 1], 7, 0.25, false);
    let train = cfg.load(Split::Train).unwrap();
    let val = cfg.load(Split::Val).unwrap();
    let (t, v) = (paths(&train), paths(&val));
    assert_eq!(t.len() + v.len(), 61);
    assert!(t.iter().all(|p| !v.contains(p)), "disjoint");
    let per_class = |d: &Dataset, c: usize| d.entries.iter().filter(|e| e.labels[0] == c).count();
    assert_eq!(per_class(&val, 0), 5, "25% of 20");
    assert_eq!(per_class(&val, 1), 10, "25% of 40");
    assert_eq!(per_class(&val, 2), 0, "a lone clip stays in train");
    // The malformed line is reported once, by train.
    assert_eq!(train.problems.len(), 1);
    assert!(val.problems.is_empty());

    // Same seed, lines reversed: same holdout. Another seed: another holdout.
    let again = holdout_tree(dir.path(), &[20, 40, 1], 7, 0.25, true);
    let mut v2 = paths(&again.load(Split::Val).unwrap());
    let mut v1 = v.clone();
    v1.sort();
    v2.sort();
    assert_eq!(v1, v2);
    let other = holdout_tree(dir.path(), &[20, 40, 1], 8, 0.25, false);
    let mut v3 = paths(&other.load(Split::Val).unwrap());
    v3.sort();
    assert_ne!(v1, v3);
}

#[test]
fn a_val_list_replaces_the_holdout() {
    let dir = vidapter::util::tempdir().unwrap();
    let root = dir.path().join("videos");
    videos(&root.join("a.mp4"), &[root.join("b.mp4")]);
    write(&dir.path().join("train.txt"), &"a.mp4 0\n".repeat(30));
    write(&dir.path().join("val.txt"), "b.mp4 1\n");
    let cfg = config(
        dir.path(),
        "format = \"mmaction_video\"\nroot = \"videos\"\ntrain = \"train.txt\"\nval = \"val.txt\"\n",
    );
    assert!(!cfg.val_is_holdout());
    assert_eq!(cfg.load(Split::Train).unwrap().entries.len(), 30);
    assert_eq!(
        paths(&cfg.load(Split::Val).unwrap()),
        vec![root.join("b.mp4")]
    );
}

#[test]
fn dataset_configs_need_their_fields() {
    let dir = vidapter::util::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("clips")).unwrap();
    let e = config_err(dir.path(), "format = \"kinetics\"\nroot = \"clips\"\n");
    assert!(
        e.contains("data.annotations") && e.contains("kinetics_train.csv"),
        "{e}"
    );
    let e = config_err(
        dir.path(),
        "format = \"kinetics\"\nroot = \"clips\"\nannotations = \"clips\"\nfold = 1\n",
    );
    assert!(e.contains("data.fold") && e.contains("no folds"), "{e}");
    let e = config_err(
        dir.path(),
        "format = \"mmaction_video\"\nroot = \"clips\"\n",
    );
    assert!(e.contains("data.train"), "{e}");
    let e = config_err(
        dir.path(),
        "format = \"mmaction_video\"\nroot = \"clips\"\ntrain = \"data.toml\"\nmedia = \"frames\"\n",
    );
    assert!(
        e.contains("data.media") && e.contains("mmaction_rawframes"),
        "{e}"
    );
    // Annotations that are there but hold nothing of the format: the load names the place.
    let e = config(
        dir.path(),
        "format = \"kinetics\"\nroot = \"clips\"\nannotations = \"clips\"\n",
    )
    .load(Split::Train)
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("kinetics_train.csv") && e.contains("looked in"),
        "{e}"
    );
}
