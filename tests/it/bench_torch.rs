//! `vidapter bench train --torch`: vidapter against the PyTorch reference in the same run,
//! through the binary, on the tiny ViT fixture. Where `python3` (or `$VIDAPTER_PYTHON`)
//! cannot import torch and transformers (CI), the PyTorch half is skipped with a printed
//! reason and the test checks that vidapter's figures still come out, with the reason in the
//! JSON.

use crate::common;

use std::process::{Command, Output};

use crate::common::{text, vidapter};

fn python() -> String {
    std::env::var("VIDAPTER_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn python_has_torch() -> bool {
    Command::new(python())
        .args(["-c", "import torch, transformers"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `bench train` on the tiny ViT: linear probe and FE-Adapter, 2 frames, 1 timed step.
fn bench(extra: &[&str], json: &std::path::Path) -> Output {
    let backbone = common::fixture("vit");
    let mut args = vec![
        "-q",
        "bench",
        "train",
        "--backbone",
        backbone.to_str().unwrap(),
        "--methods",
        "linear_probe,fe_adapter",
        "--frames",
        "2",
        "--steps",
        "1",
        "--classes",
        "3",
        "--json",
        json.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    vidapter(&args)
}

fn read(json: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

/// vidapter's own figures of a row: positive times, memory that only grows.
fn check_vidapter_side(row: &serde_json::Value) {
    let v = &row["vidapter"];
    assert!(v["step_s"].as_f64().unwrap() > 0.0, "{row}");
    assert!(v["forward_s"].as_f64().unwrap() > 0.0, "{row}");
    let start = v["rss_start_bytes"].as_u64().unwrap();
    let model = v["rss_model_bytes"].as_u64().unwrap();
    let peak = v["peak_bytes"].as_u64().unwrap();
    assert!(0 < start && start <= model && model <= peak, "{row}");
}

#[test]
fn bench_train_torch_writes_both_sides_figures_per_method() {
    let tmp = vidapter::util::tempdir().unwrap();
    let json = tmp.path().join("b.json");
    let o = bench(&["--torch", "--python", &python(), "--threads", "2"], &json);
    assert!(o.status.success(), "{}", text(&o));
    let report = read(&json);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["method"], "linear_probe");
    assert_eq!(rows[1]["method"], "fe_adapter");
    assert_eq!(report["threads"], 2);
    assert_eq!(report["torch_requested"], true);
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(!report["machine"]["cpu_model"].as_str().unwrap().is_empty());
    let cmd: Vec<&str> = report["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(cmd.contains(&"--torch"), "{cmd:?}");
    for row in rows {
        check_vidapter_side(row);
    }
    if !python_has_torch() {
        println!(
            "skipped the PyTorch half: `{}` cannot import torch and transformers",
            python()
        );
        // Said once, and vidapter's figures alone.
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.matches("timing vidapter only").count(), 1, "{err}");
        assert!(report["torch_unavailable"].is_string(), "{report}");
        assert!(rows.iter().all(|r| r["pytorch"].is_null()));
        return;
    }
    assert!(report["torch_unavailable"].is_null(), "{report}");
    assert!(report["torch_version"].is_string(), "{report}");
    let out = String::from_utf8_lossy(&o.stdout);
    for row in rows {
        let p = &row["pytorch"];
        assert!(p.is_object(), "no PyTorch figures: {row}");
        // The same model on both sides: the reference built vidapter's resolved table.
        assert_eq!(p["trainable"], row["vidapter"]["trainable"], "{row}");
        assert_eq!(p["threads"], 2, "{row}");
        assert!(p["step_s"].as_f64().unwrap() > 0.0, "{row}");
        assert!(p["forward_s"].as_f64().unwrap() > 0.0, "{row}");
        // ru_maxrss after the build can only be at least what was resident then.
        assert!(p["peak_bytes"].as_u64().unwrap() >= p["rss_model_bytes"].as_u64().unwrap());
        let ratio = row["ratios"]["step"].as_f64().unwrap();
        let expected = row["vidapter"]["step_s"].as_f64().unwrap() / p["step_s"].as_f64().unwrap();
        assert!((ratio - expected).abs() <= 1e-9 * expected, "{row}");
        let m = row["method"].as_str().unwrap();
        assert!(out.contains(&format!("{m}: trainable")), "{out}");
    }
    // Only the head trains in the probe (32 features x 3 classes + 3 biases).
    assert_eq!(rows[0]["pytorch"]["trainable"], 32 * 3 + 3);
}

#[test]
fn bench_train_torch_without_a_usable_python_times_vidapter_alone() {
    let tmp = vidapter::util::tempdir().unwrap();
    let json = tmp.path().join("b.json");
    let missing = tmp.path().join("no-such-python");
    let o = bench(&["--torch", "--python", missing.to_str().unwrap()], &json);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("timing vidapter only").count(), 1, "{err}");
    assert!(err.contains("no-such-python"), "{err}");
    let report = read(&json);
    let why = report["torch_unavailable"].as_str().unwrap();
    assert!(why.contains("no-such-python"), "{why}");
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        check_vidapter_side(row);
        assert!(row["pytorch"].is_null() && row["ratios"].is_null(), "{row}");
    }
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("linear_probe") && !out.contains("PyTorch"),
        "{out}"
    );
}

#[test]
fn bench_train_refuses_a_cuda_reference_against_a_cpu_run_before_timing_anything() {
    let tmp = vidapter::util::tempdir().unwrap();
    let json = tmp.path().join("b.json");
    // The default --device is cpu: a CUDA reference would compare a GPU with a CPU.
    let o = bench(&["--torch", "--torch-device", "cuda"], &json);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--torch-device cuda with --device cpu") && err.contains("same kind"),
        "{err}"
    );
    assert!(!json.exists(), "no figures may be written");
    // A torch device that is not cpu / cuda[:N] is named.
    let o = bench(&["--torch", "--torch-device", "cuda:x"], &json);
    assert!(!o.status.success());
    assert!(text(&o).contains("--torch-device `cuda:x`"), "{}", text(&o));
    // Without --torch there is no PyTorch side to place.
    let o = bench(&["--torch-device", "cuda"], &json);
    assert!(!o.status.success());
    assert!(text(&o).contains("--torch"), "{}", text(&o));
}
