//! The train / eval / predict / info commands end to end through the built binary, on a
//! raw-frame dataset in mmaction2's layout written here and the tiny committed ViT: the files
//! a run leaves (checkpoints, log, plots, report), stop and resume, evaluation and prediction
//! from the checkpoint alone, per-module parameter counts, and config errors that name the field.

use crate::common;

use std::path::Path;

use crate::common::fixtures::{probe_config, ramp_dataset, run_config};
use crate::common::{text, vidapter, vidapter_in};

#[test]
fn train_eval_predict_from_a_run_config() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    ramp_dataset(root);
    let cfg = run_config(root, "fe_adapter");
    let cfg = cfg.to_str().unwrap();
    // Stopped after one epoch, then resumed to the end.
    let o = vidapter(&["train", cfg, "-q", "--stop-after", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = root.join("runs/fe_adapter");
    assert!(run.join("last.safetensors").exists());
    let o = vidapter(&["train", cfg, "-q", "--resume"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("test ") && out.contains("UAR"), "{out}");
    for f in [
        "best.safetensors",
        "last.safetensors",
        "metrics.jsonl",
        "report.json",
        "config.json",
        "training_loss.png",
        "validation.png",
        "eval_test.json",
        "confusion_test.png",
    ] {
        assert!(run.join(f).exists(), "{f} missing; {out}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["train"]["epochs"], 2);
    let uar = report["test"]["uar"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&uar), "{report}");
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval_test.json")).unwrap())
            .unwrap();
    assert_eq!(eval["views"]["temporal"], 2);
    assert_eq!(eval["views"]["spatial"], 3);

    // eval from the checkpoint alone, another split, one view.
    let best = run.join("best.safetensors");
    let o = vidapter(&[
        "eval",
        best.to_str().unwrap(),
        "--split",
        "val",
        "--temporal-views",
        "1",
        "-q",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("val: 6 clips"), "{}", text(&o));
    assert!(run.join("confusion_val.png").exists());
    // The flag given replaces only its own count: the run config's 3 spatial views stay.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval_val.json")).unwrap()).unwrap();
    assert_eq!(json["views"]["temporal"], 1, "{json}");
    assert_eq!(json["views"]["spatial"], 3, "{json}");

    // predict: a frame folder with a timeline, and a missing input reported in its row.
    let clip = root.join("frames/test1");
    let o = vidapter(&[
        "predict",
        "--checkpoint",
        best.to_str().unwrap(),
        clip.to_str().unwrap(),
        "--timeline",
        "4",
        "--stride",
        "2",
        "-q",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(p["classes"], serde_json::json!(["darker", "brighter"]));
    let probs: Vec<f64> = p["predictions"][0]["probs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{probs:?}");
    let windows = p["predictions"][0]["timeline"].as_array().unwrap();
    assert_eq!(
        windows.len(),
        2,
        "6 frames, windows of 4 every 2: [0,4) [2,6)"
    );
    assert_eq!(windows[1]["start"], 2);
    // A crop box (X,Y,W,H) inside the 40x36 frames works; one outside is reported per input.
    let o = vidapter(&[
        "predict",
        "--checkpoint",
        best.to_str().unwrap(),
        clip.to_str().unwrap(),
        "--crop",
        "4,2,32,32",
        "-q",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = vidapter(&[
        "predict",
        "--checkpoint",
        best.to_str().unwrap(),
        clip.to_str().unwrap(),
        "--crop",
        "30,2,32,32",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("does not fit in the 40x36 frame"),
        "{}",
        text(&o)
    );
    let missing = root.join("nope.mp4");
    let o = vidapter(&[
        "predict",
        "--checkpoint",
        best.to_str().unwrap(),
        clip.to_str().unwrap(),
        missing.to_str().unwrap(),
        "--format",
        "csv",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let csv = String::from_utf8_lossy(&o.stdout);
    assert!(
        csv.starts_with("path,window_start,window_end,top,darker,brighter"),
        "{csv}"
    );
    assert!(csv.contains("nope.mp4,,,error:"), "{csv}");
}

#[test]
fn linear_probe_trains_and_reports_its_parameter_share() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    ramp_dataset(root);
    let cfg = run_config(root, "linear_probe");
    let text_cfg = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("bottleneck = 4\n", "");
    std::fs::write(&cfg, text_cfg).unwrap();
    let o = vidapter(&["train", cfg.to_str().unwrap(), "-q", "--epochs", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    // Head only: 32 * 2 + 2 trainable.
    assert!(text(&o).contains("66 trainable of"), "{}", text(&o));
}

/// Progress lines come from the library through `tracing` (no printing in library code): the
/// binary shows an epoch's summary line on stderr, plainly, and `--quiet` hides it.
#[test]
fn epoch_lines_reach_stderr_unless_quiet() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    ramp_dataset(root);
    let cfg = probe_config(root);
    let cfg = cfg.to_str().unwrap();
    let o = vidapter(&["train", cfg, "--epochs", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("epoch 1/1: train loss ") && l.contains("val UAR")),
        "{err}"
    );
    let out = root.join("quiet");
    let o = vidapter(&[
        "train",
        cfg,
        "-q",
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("epoch 1/1"), "{err}");
}

#[test]
fn info_counts_parameters_per_module() {
    let backbone = common::fixture("vit");
    let o = vidapter(&[
        "info",
        "--backbone",
        backbone.to_str().unwrap(),
        "--method",
        "st_adapter",
        "--classes",
        "5",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Tiny ViT: C = 32, r = 384 by default, 3 blocks: 32*384+384 + 384*3+384 + 384*32+32.
    let per_adapter = 32 * 384 + 384 + 384 * 3 + 384 + 384 * 32 + 32;
    let head = 32 * 5 + 5;
    assert_eq!(v["trainable"], 3 * per_adapter + head);
    let modules = v["modules"].as_array().unwrap();
    assert_eq!(modules[0]["module"], "backbone");
    assert_eq!(modules[0]["trainable"], false);
}

#[test]
fn config_errors_name_the_field_and_the_allowed_values() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    ramp_dataset(root);
    let cfg = run_config(root, "fe_adapter");
    let cfg_s = cfg.to_str().unwrap();
    let o = vidapter(&["train", cfg_s, "--set", "method.kernel=[2, 3, 3]"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("method.kernel") && text(&o).contains("odd"),
        "{}",
        text(&o)
    );
    let o = vidapter(&["train", cfg_s, "--set", "method.kind=fe_adaptor"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("fe_adapter"), "{}", text(&o));
    let o = vidapter(&["train", cfg_s, "--set", "eval.spatial_views=2"]);
    assert!(
        text(&o).contains("eval.spatial_views") && text(&o).contains("1 (centre crop)"),
        "{}",
        text(&o)
    );
    let o = vidapter(&["train", cfg_s, "--set", "train.epoch=3"]);
    assert!(text(&o).contains("epoch"), "{}", text(&o));
}

#[test]
fn every_preset_parses_and_validates() {
    use vidapter::train::config::RunConfig;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    // The presets name dataset folders of the machine they are used on; point those at a
    // folder that exists so that everything else in them is checked.
    let tmp = vidapter::util::tempdir().unwrap();
    let here = format!("{:?}", tmp.path().display().to_string());
    let ov = vec![
        ("data.root".to_string(), here.clone()),
        ("data.annotations".to_string(), here),
    ];
    let mut n = 0;
    for method in std::fs::read_dir(&dir).unwrap() {
        for f in std::fs::read_dir(method.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            let cfg = RunConfig::from_file(&path, &ov).unwrap_or_else(|e| panic!("{e}"));
            // Twelve ViT-B/16 blocks: the method fields must fit them.
            cfg.method
                .validate(12)
                .unwrap_or_else(|(f, r)| panic!("{}: method.{f}: {r}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 9, "{n} presets");
}

#[test]
fn bench_train_measures_every_method_in_its_own_process() {
    let backbone = common::fixture("vit");
    let tmp = vidapter::util::tempdir().unwrap();
    let json = tmp.path().join("b.json");
    let o = vidapter(&[
        "-q",
        "bench",
        "train",
        "--backbone",
        backbone.to_str().unwrap(),
        "--methods",
        "linear_probe,fe_adapter,full_finetune",
        "--frames",
        "2",
        "--steps",
        "1",
        "--classes",
        "3",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let rows: Vec<&serde_json::Value> = rows.iter().map(|r| &r["vidapter"]).collect();
    for r in &rows {
        assert!(r["peak_bytes"].as_u64().unwrap() >= r["rss_model_bytes"].as_u64().unwrap());
        assert!(r["step_s"].as_f64().unwrap() > 0.0);
        assert!(r["forward_s"].as_f64().unwrap() > 0.0);
    }
    // Without --torch, no PyTorch side.
    assert!(report["rows"].as_array().unwrap()[0]["pytorch"].is_null());
    // Only the head trains in the probe; full fine-tuning trains everything but ViT's tanh
    // pooler, which no clip feature reads (C^2 + C weights, C = 32).
    assert_eq!(rows[0]["trainable"], 32 * 3 + 3);
    assert_eq!(
        rows[2]["trainable"].as_u64().unwrap() + 32 * 32 + 32,
        rows[2]["total"].as_u64().unwrap()
    );
}

/// A DFEW-layout dataset: clips `00001`.. as frame folders, two folds of split files; the
/// class of a clip is fixed by its number (Happy brightens over time, Sad darkens).
fn dfew(root: &Path) {
    let clips = root.join("DFEW/Clip/clip_224x224");
    for n in 1..=12u32 {
        let dir = clips.join(format!("{n:05}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..6u32 {
            let level = if n % 2 == 1 { f * 40 } else { 200 - f * 40 };
            image::RgbImage::from_fn(40, 36, |x, y| {
                image::Rgb([level as u8, ((x * 5 + y * 3 + n * 11) % 256) as u8, 90])
            })
            .save(dir.join(format!("{f:05}.png")))
            .unwrap();
        }
    }
    // DFEW labels: 1 = Happy, 2 = Sad. Fold k tests clips 6k-5..6k, trains on the others.
    for fold in 1..=2u32 {
        let split = root.join("DFEW/EmoLabel_DataSplit");
        let (mut train, mut test) = (
            String::from("video_name,label\n"),
            String::from("video_name,label\n"),
        );
        for n in 1..=12u32 {
            let line = format!("{n},{}\n", if n % 2 == 1 { 1 } else { 2 });
            if (6 * fold - 5..=6 * fold).contains(&n) {
                test.push_str(&line);
            } else {
                train.push_str(&line);
            }
        }
        for (dir, text) in [
            ("train(single-labeled)", train),
            ("test(single-labeled)", test),
        ] {
            std::fs::create_dir_all(split.join(dir)).unwrap();
            std::fs::write(split.join(dir).join(format!("set_{fold}.csv")), text).unwrap();
        }
    }
}

#[test]
fn kfold_trains_and_tests_each_fold_and_reports_the_mean() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    dfew(root);
    let cfg = root.join("dfew.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"backbone = "{}"
out = "runs/kfold"

[data]
format = "dfew"
root = "DFEW/Clip/clip_224x224"
annotations = "DFEW/EmoLabel_DataSplit"
fold = 1
classes = ["Happy", "Sad"]
val_fraction = 0.2

[sampling]
kind = "segment"
frames = 4

[spatial]
size = 32

[method]
kind = "linear_probe"

[train]
epochs = 2
batch_size = 3
lr = 0.05
workers = 2
"#,
            common::fixture("vit").display()
        ),
    )
    .unwrap();
    let o = vidapter(&["kfold", cfg.to_str().unwrap(), "--folds", "1,2", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("fold 1") && out.contains("fold 2") && out.contains("mean"),
        "{out}"
    );
    let run = root.join("runs/kfold");
    for f in [
        "kfold.md",
        "kfold.json",
        "fold1/eval_test.json",
        "fold2/best.safetensors",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let k: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("kfold.json")).unwrap()).unwrap();
    let folds = k["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 2);
    let mean = (folds[0]["test"]["uar"].as_f64().unwrap()
        + folds[1]["test"]["uar"].as_f64().unwrap())
        / 2.0;
    assert!((k["summary"]["uar_mean"].as_f64().unwrap() - mean).abs() < 1e-9);
    // Each fold tests its own six clips.
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("fold2/eval_test.json")).unwrap())
            .unwrap();
    assert_eq!(e["clips"], 6, "{e}");
}

/// The path rule (issue 15): a TOML's relative paths are relative to its folder, a flag's to
/// the working directory, and what a run records resolves from anywhere, so a checkpoint is
/// all `predict` needs (the class file may be gone) wherever it is run from.
#[test]
fn relative_paths_mean_the_same_from_any_directory() {
    let tmp = vidapter::util::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    ramp_dataset(&data);
    run_config(&data, "st_adapter");
    let elsewhere = tmp.path().join("a/b");
    std::fs::create_dir_all(&elsewhere).unwrap();
    // Run from the parent of the config's folder, with a relative config and a relative --out.
    let o = vidapter_in(
        tmp.path(),
        &[
            "-q",
            "train",
            "data/st_adapter.toml",
            "--epochs",
            "1",
            "--out",
            "myruns/probe",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let run = tmp.path().join("myruns/probe");
    assert!(run.join("best.safetensors").exists(), "{}", text(&o));
    // Every path the run recorded is absolute.
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    for p in [
        &stored["out"],
        &stored["data"]["root"],
        &stored["data"]["train"],
        &stored["data"]["classes"],
    ] {
        assert!(Path::new(p.as_str().unwrap()).is_absolute(), "{stored}");
    }
    // predict from another directory, with a relative checkpoint and input, and without the
    // class file the run was trained with: the checkpoint carries the class map.
    std::fs::remove_file(data.join("classes.txt")).unwrap();
    let o = vidapter_in(
        &elsewhere,
        &[
            "-q",
            "predict",
            "--checkpoint",
            "../../myruns/probe/best.safetensors",
            "../../data/frames/test1",
            "--timeline",
            "32",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["classes"], serde_json::json!(["darker", "brighter"]));
    // Probabilities with at most 6 decimals.
    for p in out["predictions"][0]["probs"].as_array().unwrap() {
        let s = p.to_string();
        let decimals = s.split('.').nth(1).map_or(0, str::len);
        assert!(decimals <= 6, "{s}");
    }
    // A timeline longer than the clip is said, not silently shortened.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--timeline 32 is longer than the clip's 6 frames"),
        "{err}"
    );
    assert!(
        !out["predictions"][0]["warnings"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// A bad value given on the command line is blamed on the command line, not on the file.
#[test]
fn override_errors_name_the_command_line() {
    let tmp = vidapter::util::tempdir().unwrap();
    ramp_dataset(tmp.path());
    let cfg = run_config(tmp.path(), "st_adapter");
    let o = vidapter(&["train", cfg.to_str().unwrap(), "--set", "train.lr=fast"]);
    assert!(!o.status.success());
    let err = text(&o);
    assert!(
        err.contains("command line `train.lr=fast`") && err.contains("field `train.lr`"),
        "{err}"
    );
    let o = vidapter(&["train", cfg.to_str().unwrap(), "--epochs", "0"]);
    assert!(
        text(&o).contains("command line `train.epochs=0`"),
        "{}",
        text(&o)
    );
    // `data check` samples what the run config samples.
    let o = vidapter(&["data", "check", cfg.to_str().unwrap(), "--split", "test"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("checking 4 frames per clip"),
        "{}",
        text(&o)
    );
}

/// Issue 17, items 1, 2 and 4 through `predict`: a truncated MP4, a frame folder with a
/// corrupt JPEG the sampler skips and one with a frame missing in the middle are error rows
/// (exit 1) naming the file; `--allow-damaged` classifies them with a warning naming each.
#[test]
fn predict_refuses_damaged_inputs_unless_allowed() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    ramp_dataset(root);
    let cfg = probe_config(root);
    let o = vidapter(&["train", cfg.to_str().unwrap(), "-q", "--epochs", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let best = root.join("runs/linear_probe/best.safetensors");
    // A 64-frame MP4 (index first) cut to its first part.
    let full = root.join("full.mp4");
    let ok = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x48:rate=25",
        ])
        .args(["-frames:v", "64", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .args(["-movflags", "+faststart"])
        .arg(&full)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let bytes = std::fs::read(&full).unwrap();
    let truncated = root.join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let jpegs = |name: &str| {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in 1..=16u32 {
            image::RgbImage::from_pixel(40, 36, image::Rgb([(f * 12) as u8, 50, 90]))
                .save(d.join(format!("img_{f:05}.jpg")))
                .unwrap();
        }
        d
    };
    let corrupt = jpegs("corrupt");
    let frame = corrupt.join("img_00001.jpg");
    let mut head = std::fs::read(&frame).unwrap()[..20].to_vec();
    head.extend_from_slice(b"not the rest of a jpeg\n");
    std::fs::write(&frame, head).unwrap();
    let gapped = jpegs("gapped");
    std::fs::remove_file(gapped.join("img_00008.jpg")).unwrap();
    for (input, names) in [
        (&truncated, "truncated.mp4"),
        (&corrupt, "img_00001.jpg"),
        (&gapped, "img_00008.jpg"),
    ] {
        let args = [
            "predict",
            "--checkpoint",
            best.to_str().unwrap(),
            input.to_str().unwrap(),
            "-q",
        ];
        let o = vidapter(&args);
        assert_eq!(o.status.code(), Some(1), "{input:?}: {}", text(&o));
        let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let err = p["predictions"][0]["error"].as_str().unwrap_or_default();
        assert!(err.contains(names), "{input:?}: {err}");
        let mut allowed = args.to_vec();
        allowed.push("--allow-damaged");
        let o = vidapter(&allowed);
        assert!(o.status.success(), "{input:?}: {}", text(&o));
        let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let warning = p["predictions"][0]["warnings"][0]
            .as_str()
            .unwrap_or_default();
        assert!(warning.contains("damaged"), "{input:?}: {p}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(&input.display().to_string()),
            "the warning names the input: {}",
            text(&o)
        );
    }
}
