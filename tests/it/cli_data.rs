//! `vidapter data check` as a user meets it: on a small mmaction2 dataset with a truncated
//! and a missing video it prints the per-split summary, writes the bad-entry list beside the
//! config, exits 0 (1 with `--strict`), and a bad config ends in an error naming the field.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vidapter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidapter"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An H.264 mp4 of `frames` frames with its index at the front, so that a cut-off copy
/// still opens and decodes its first part, as a truncated download does.
fn video(path: &Path, frames: usize) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
        .args([
            "testsrc2=size=64x48:rate=25",
            "-frames:v",
            &frames.to_string(),
        ])
        .args([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
        ])
        .arg(path)
        .status()
        .expect("the ffmpeg tool is installed (scripts/install-deps.sh)")
        .success();
    assert!(ok);
    path.to_path_buf()
}

/// `videos/` with good.mp4 (30 frames), long.mp4 (40), truncated.mp4; lists naming them plus
/// missing.mp4; `data.toml` pointing at them.
fn dataset(dir: &Path) -> (PathBuf, PathBuf) {
    let v = dir.join("videos");
    video(&v.join("good.mp4"), 30);
    video(&v.join("long.mp4"), 40);
    let full = std::fs::read(video(&dir.join("whole.mp4"), 120)).unwrap();
    std::fs::write(v.join("truncated.mp4"), &full[..full.len() * 2 / 3]).unwrap();
    let train = dir.join("train.txt");
    std::fs::write(
        &train,
        "good.mp4 0\ntruncated.mp4 1\nmissing.mp4 1\nlong.mp4 1\n",
    )
    .unwrap();
    std::fs::write(dir.join("test.txt"), "good.mp4 0\n").unwrap();
    let config = dir.join("data.toml");
    std::fs::write(
        &config,
        "[data]\nformat = \"mmaction_video\"\nroot = \"videos\"\ntrain = \"train.txt\"\n\
         test = \"test.txt\"\nclasses = [\"walk\", \"run\"]\nval_fraction = 0.0\n",
    )
    .unwrap();
    (config, train)
}

#[test]
fn data_check_reports_truncated_and_missing_videos() {
    let dir = vidapter::util::tempdir().unwrap();
    let (config, train) = dataset(dir.path());
    let out = vidapter(&[
        "data",
        "check",
        config.to_str().unwrap(),
        "--quiet",
        "--workers",
        "2",
    ]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "not strict: exit 0\n{stdout}{}",
        text(&out.stderr)
    );
    // train: 3 entries read (missing.mp4 is an annotation problem), 2 clean, 2 listed.
    assert!(
        stdout.contains("train: 3 entries, 2 clean, 2 listed"),
        "{stdout}"
    );
    assert!(stdout.contains("  annotation           1\n"), "{stdout}");
    assert!(stdout.contains("  truncated            1\n"), "{stdout}");
    assert!(stdout.contains("  frames        "), "{stdout}");
    assert!(
        stdout.contains("  walk          1\n") && stdout.contains("  run           2\n"),
        "{stdout}"
    );
    assert!(stdout.contains("val: 0 entries"), "{stdout}");
    assert!(
        stdout.contains("test: 1 entries, 1 clean, 0 listed"),
        "{stdout}"
    );

    let list = std::fs::read_to_string(dir.path().join("bad_entries.tsv")).unwrap();
    let rows: Vec<&str> = list.lines().collect();
    assert_eq!(rows.len(), 3, "{list}");
    assert_eq!(rows[0], "verdict\tpath\tline\treason");
    assert!(
        rows[1].starts_with(&format!("annotation\t{}\t3\tvideo ", train.display()))
            && rows[1].contains("missing.mp4 does not exist"),
        "{list}"
    );
    let truncated = dir.path().join("videos/truncated.mp4");
    assert!(
        rows[2].starts_with(&format!("truncated\t{}\t2\t", truncated.display())),
        "{list}"
    );

    let strict = vidapter(&[
        "data",
        "check",
        config.to_str().unwrap(),
        "--quiet",
        "--split",
        "train",
        "--strict",
        "--bad-list",
        dir.path().join("out/bad.tsv").to_str().unwrap(),
    ]);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict.stdout));
    assert!(text(&strict.stderr).contains("strict: 2 bad entries found"));
    assert!(
        !text(&strict.stdout).contains("test:"),
        "only the train split"
    );
    assert!(dir.path().join("out/bad.tsv").is_file());
}

#[test]
fn data_check_strict_passes_a_clean_split_and_names_config_errors() {
    let dir = vidapter::util::tempdir().unwrap();
    let (config, _) = dataset(dir.path());
    let clean = vidapter(&[
        "data",
        "check",
        config.to_str().unwrap(),
        "--quiet",
        "--split",
        "test",
        "--strict",
        "--frames",
        "16",
    ]);
    assert!(clean.status.success(), "{}", text(&clean.stderr));
    assert!(text(&clean.stdout).contains("1 of 1 entries clean; 0 listed"));

    // 30 frames are too few for 32-frame clips: listed, and fatal under --strict.
    let short = vidapter(&[
        "data",
        "check",
        config.to_str().unwrap(),
        "--quiet",
        "--split",
        "test",
        "--strict",
        "--frames",
        "32",
    ]);
    assert_eq!(short.status.code(), Some(1));
    assert!(text(&short.stdout).contains("  too short            1\n"));

    std::fs::write(&config, "[data]\nformat = \"dfw\"\nroot = \"videos\"\n").unwrap();
    let bad = vidapter(&["data", "check", config.to_str().unwrap(), "--quiet"]);
    let err = text(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{err}"
    );
    assert!(
        err.contains("data.format") && err.contains("unknown variant `dfw`"),
        "{err}"
    );
}

/// Issue 17, item 10: when a later split's file is missing, `data check --split all` still
/// writes the bad list of the splits it already checked, then fails naming the file; it
/// says how fast it decoded.
#[test]
fn data_check_writes_what_it_checked_before_a_missing_split() {
    let dir = vidapter::util::tempdir().unwrap();
    let (config, _) = dataset(dir.path());
    let ok = vidapter(&["data", "check", config.to_str().unwrap(), "--quiet"]);
    assert!(text(&ok.stdout).contains("clips/s"), "{}", text(&ok.stdout));
    // Kinetics finds its val csv (the test split) only when reading it.
    let k = dir.path().join("k");
    let full = std::fs::read(dir.path().join("whole.mp4")).unwrap();
    std::fs::create_dir_all(k.join("videos")).unwrap();
    std::fs::write(
        k.join("videos/aaaaaaaaaaa_000001_000011.mp4"),
        &full[..full.len() * 2 / 3],
    )
    .unwrap();
    std::fs::write(
        k.join("kinetics_train.csv"),
        "label,youtube_id,time_start,time_end,split\nzumba,aaaaaaaaaaa,1,11,train\n",
    )
    .unwrap();
    let config = k.join("data.toml");
    std::fs::write(
        &config,
        "[data]\nformat = \"kinetics\"\nroot = \"videos\"\nannotations = \".\"\n\
         val_fraction = 0.0\n",
    )
    .unwrap();
    let out = vidapter(&["data", "check", config.to_str().unwrap(), "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("kinetics_val.csv"),
        "{}",
        text(&out.stderr)
    );
    let list = std::fs::read_to_string(k.join("bad_entries.tsv")).unwrap();
    assert!(list.contains("aaaaaaaaaaa_000001_000011.mp4"), "{list}");
}

/// Issue 17, item 10: counts that must be positive are refused on the command line, as in
/// the run config, instead of being read as 1.
#[test]
fn zero_counts_are_refused_on_the_command_line() {
    let dir = vidapter::util::tempdir().unwrap();
    let (config, _) = dataset(dir.path());
    let ckpt = dir.path().join("none.safetensors");
    for args in [
        vec![
            "predict",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "x.mp4",
            "--timeline",
            "0",
        ],
        vec![
            "predict",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "x.mp4",
            "--stride",
            "0",
        ],
        vec!["eval", ckpt.to_str().unwrap(), "--temporal-views", "0"],
        vec!["data", "check", config.to_str().unwrap(), "--workers", "0"],
    ] {
        let out = vidapter(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("at least 1") || text(&out.stderr).contains("1..="),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}
