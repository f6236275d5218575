//! `vidapter demo --quick` end to end, as CI runs it: every method trains through the real
//! `train` command, and the report's numbers are present and sane.

use std::path::PathBuf;
use std::process::Command;

/// Runs `vidapter -q demo --quick [extra...]` into a temporary folder; returns the folder (kept
/// alive by the guard), the output path and the parsed `report.json`.
fn quick_demo(extra: &[&str]) -> (vidapter::util::TempDir, PathBuf, serde_json::Value) {
    let tmp = vidapter::util::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = Command::new(env!("CARGO_BIN_EXE_vidapter"))
        .args(["-q", "demo"])
        .args(extra)
        .args(["--quick", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let report =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    (tmp, out, report)
}

/// Checks what every report row must hold (UAR and WAR in [0, 1], a peak above 1 MiB, some
/// trainable parameters); returns (trainable, total) for the caller's own bound.
fn check_row(r: &serde_json::Value) -> (u64, u64) {
    let (uar, war) = (r["uar"].as_f64().unwrap(), r["war"].as_f64().unwrap());
    assert!(
        (0.0..=1.0).contains(&uar) && (0.0..=1.0).contains(&war),
        "{r}"
    );
    assert!(r["peak_bytes"].as_u64().unwrap() > 1 << 20, "{r}");
    let (t, total) = (
        r["trainable"].as_u64().unwrap(),
        r["total"].as_u64().unwrap(),
    );
    assert!(t > 0, "{r}");
    (t, total)
}

#[test]
fn quick_demo_writes_a_sane_report() {
    let (_tmp, out, report) = quick_demo(&[]);
    let rows = report["rows"].as_array().unwrap();
    let methods: Vec<&str> = rows.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(
        methods,
        [
            "linear_probe",
            "st_adapter",
            "fe_adapter",
            "st_adapter_cls",
            "fe_adapter_cls",
            "m_adapter",
            "evl",
            "full_finetune"
        ]
    );
    // Every method trained on the videos, so that the memory column compares like with like.
    for r in rows {
        let (t, total) = check_row(r);
        assert!(t <= total, "{r}");
        assert_eq!(r["cache_views"], 0, "{r}");
    }
    assert!(!out.join("cache").exists());
    let full = rows
        .iter()
        .find(|r| r["method"] == "full_finetune")
        .unwrap();
    assert_eq!(full["trainable"], full["total"]);
    let acc = report["image_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    // The kept initialisation is one of those tried, and only it remains on disk.
    let (tried, kept) = (
        report["image_attempts"].as_u64().unwrap(),
        report["image_kept"].as_u64().unwrap(),
    );
    assert!((1..=tried).contains(&kept), "kept {kept} of {tried}");
    assert!(out.join("image_classifier/model.safetensors").exists());
    assert!(!out.join("image_classifier.attempt0").exists());
    assert!(!report["findings"].as_array().unwrap().is_empty());
    assert!(
        !report["timeline"]["timeline"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The timeline is shown with a temporal method (not frame averaging), named in the report.
    let shown = report["timeline_method"].as_str().unwrap();
    assert!(
        [
            "st_adapter",
            "fe_adapter",
            "st_adapter_cls",
            "fe_adapter_cls",
            "m_adapter",
            "evl"
        ]
        .contains(&shown),
        "{shown}"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| fe_adapter") && md.contains("## What it shows"),
        "{md}"
    );
    for png in ["uar.png", "memory.png"] {
        let img = image::open(out.join(png)).unwrap();
        assert!(img.width() > 100 && img.height() > 100);
    }
    assert!(out.join("image_classifier/config.json").exists());
    assert!(out.join("runs/evl/best.safetensors").exists());
}

/// `vidapter demo --dataset motion --quick`: the motion story (issue 5) end to end — stills
/// labelled by position and orientation, the linear probe, M-adapter and EVL through the real
/// `train` command, and a report that names the 50 % frame-averaging ceiling.
#[test]
fn quick_motion_demo_writes_a_sane_report() {
    let (_tmp, out, report) = quick_demo(&["--dataset", "motion"]);
    assert_eq!(report["dataset"], "motion");
    let rows = report["rows"].as_array().unwrap();
    let methods: Vec<&str> = rows.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["linear_probe", "m_adapter", "evl"]);
    for r in rows {
        let (t, total) = check_row(r);
        assert!(t < total, "{r}");
        assert_eq!(r["family"], "side branch");
    }
    // The probe's head reads 6 classes from the 64-wide features; the branches train more.
    let trainable = |m: &str| {
        rows.iter().find(|r| r["method"] == m).unwrap()["trainable"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(trainable("linear_probe"), 64 * 6 + 6);
    assert!(trainable("m_adapter") > trainable("linear_probe"));
    assert!(trainable("evl") > trainable("m_adapter"));
    let acc = report["image_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    let findings: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(findings.iter().any(|f| f.contains("50%")), "{findings:?}");
    assert!(
        findings.iter().any(|f| f.starts_with("m_adapter")),
        "{findings:?}"
    );
    assert!(
        findings.iter().any(|f| f.starts_with("evl")),
        "{findings:?}"
    );
    let shown = report["timeline_method"].as_str().unwrap();
    assert!(["m_adapter", "evl"].contains(&shown), "{shown}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    // The motion data must never be mirrored: every config says so. Every side branch
    // trained from the one feature cache that `extract` wrote, named in its config.
    let cache = out.join("cache");
    assert!(cache.join("index.json").exists(), "{}", cache.display());
    for m in methods {
        let cfg = std::fs::read_to_string(out.join(format!("configs/{m}.toml"))).unwrap();
        assert!(cfg.contains("flip = false"), "{cfg}");
        // Relative to the config's own folder, so the demo folder works from anywhere.
        assert!(cfg.contains("cache = \"../cache\""), "{cfg}");
    }
    for r in rows {
        assert_eq!(r["cache_views"], 2, "{r}");
    }
    assert!(md.contains("| cache, 2 views"), "{md}");
    let classes = std::fs::read_to_string(out.join("data/image_classes.txt")).unwrap();
    assert_eq!(classes.lines().count(), 36);
    assert!(
        md.contains("| m_adapter") && md.contains("| evl") && md.contains("## What it shows"),
        "{md}"
    );
    assert!(out.join("image_classifier/config.json").exists());
    assert!(out.join("uar.png").exists() && out.join("memory.png").exists());
}
