//! `vidapter demo --quick` end to end, as CI runs it: every method trains through the real
//! `train` command, and the report's numbers are present and sane.

use std::process::Command;

#[test]
fn quick_demo_writes_a_sane_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = Command::new(env!("CARGO_BIN_EXE_vidapter"))
        .args(["-q", "demo", "--quick", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let methods: Vec<&str> = rows.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(
        methods,
        [
            "linear_probe",
            "st_adapter",
            "fe_adapter",
            "m_adapter",
            "evl",
            "full_finetune"
        ]
    );
    for r in rows {
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
        assert!(t > 0 && t <= total, "{r}");
    }
    let full = rows
        .iter()
        .find(|r| r["method"] == "full_finetune")
        .unwrap();
    assert_eq!(full["trainable"], full["total"]);
    let acc = report["image_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
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
        ["st_adapter", "fe_adapter", "m_adapter", "evl"].contains(&shown),
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
