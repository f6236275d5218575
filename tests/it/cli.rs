//! The `vidapter` binary as a user meets it: `extract` reproduces transformers through the
//! command line, `info` describes a model, `compare` judges, and every kind of bad input
//! ends in a one-paragraph error naming the file and tensor or field, a non-zero exit, and
//! no panic.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use safetensors::Dtype;

use crate::common::{copy_fixture, fixture, read_f32, read_raw, rel_err, write_raw};

fn vidapter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidapter"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("binary runs")
}

/// Runs a command expected to fail; returns its stderr after checking it is a clean error.
fn fails(args: &[&str]) -> String {
    let out = vidapter(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} should fail; stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("stack backtrace"),
        "{args:?} panicked: {err}"
    );
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    err
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn extract_reproduces_transformers_hidden_states() {
    let dir = vidapter::util::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let model = fixture("dinov2_bf16");
    let reference = model.join("reference_interp.safetensors");
    let run = vidapter(&[
        "extract",
        "--quiet",
        "--backbone",
        p(&model),
        "--pixels",
        p(&reference),
        "--out",
        p(&out),
        "--batch",
        "1",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut keys: Vec<String> = read_raw(&out).into_keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "hidden_states.0",
            "hidden_states.1",
            "hidden_states.2",
            "hidden_states.3",
            "last_hidden_state",
            "pooler_output"
        ]
    );
    for key in &keys {
        let (s1, got) = read_f32(&out, key);
        let (s2, want) = read_f32(&reference, key);
        assert_eq!(s1, s2, "{key}");
        let e = rel_err(&got, &want);
        assert!(e <= 1e-4, "{key}: {e:.3e}");
    }
    // `compare` agrees, and exits 0.
    let cmp = vidapter(&["compare", p(&out), p(&reference)]);
    let text = String::from_utf8_lossy(&cmp.stdout);
    assert!(cmp.status.success() && text.contains("PASS"), "{text}");
}

#[test]
fn compare_refuses_tensors_of_different_shapes() {
    let a = fixture("vit").join("reference_default.safetensors");
    let b = fixture("vit").join("reference_interp.safetensors");
    let err = fails(&["compare", p(&a), p(&b)]);
    assert!(
        err.contains("hidden_states.0")
            && err.contains("[2, 17, 32]")
            && err.contains("[2, 31, 32]"),
        "{err}"
    );
}

#[test]
fn compare_fails_beyond_tolerance() {
    let dir = vidapter::util::tempdir().unwrap();
    let reference = fixture("vit").join("reference_default.safetensors");
    let (shape, mut v) = read_f32(&reference, "pooler_output");
    v.iter_mut().for_each(|x| *x *= 1.001);
    let off = dir.path().join("off.safetensors");
    vidapter::backbone::write_f32(&off, &[("pooler_output".into(), shape, v)]).unwrap();
    let out = vidapter(&["compare", p(&off), p(&reference)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("FAIL") && text.contains("1.000e-3"),
        "{text}"
    );
}

#[test]
fn info_describes_the_model() {
    let out = vidapter(&["info", "--backbone", p(&fixture("dinov2_bf16"))]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in ["DINOv2", "14x14", "levels        3 blocks", "BF16", "0.485"] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
    let out = vidapter(&["info", "--json", "--backbone", p(&fixture("openai_clip"))]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["layout"], "OpenAiClip");
    assert_eq!(v["config"]["num_heads"], 2);
}

#[test]
fn hub_id_resolves_from_the_hf_cache_offline() {
    let home = vidapter::util::tempdir().unwrap();
    let snap = home
        .path()
        .join("hub/models--tiny--dinov2/snapshots/abc123");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(home.path().join("hub/models--tiny--dinov2/refs")).unwrap();
    std::fs::write(
        home.path().join("hub/models--tiny--dinov2/refs/main"),
        "abc123",
    )
    .unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("dinov2_bf16").join(f), snap.join(f)).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_vidapter"))
        .args(["info", "--backbone", "tiny/dinov2"])
        .env("HF_HOME", home.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("DINOv2"));
}

#[test]
fn missing_hub_model_offline_says_which_files_and_where() {
    let home = vidapter::util::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vidapter"))
        .args(["info", "--backbone", "nobody/nothing"])
        .env("HF_HOME", home.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for want in [
        "nobody/nothing",
        "config.json",
        "model.safetensors",
        "--backbone",
        "HF_HUB_OFFLINE",
    ] {
        assert!(err.contains(want), "missing `{want}` in: {err}");
    }
}

#[test]
fn missing_path_is_named() {
    let err = fails(&["info", "--backbone", "/no/such/model"]);
    assert!(err.contains("/no/such/model"), "{err}");
}

#[test]
fn an_os_error_is_printed_once() {
    let err = fails(&["train", "/no/such/run.toml"]);
    assert!(err.contains("/no/such/run.toml"), "{err}");
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "the OS message should appear exactly once: {err}"
    );
}

#[test]
fn unknown_architecture_names_model_type() {
    let dir = copy_fixture("vit");
    let cfg = dir.path().join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"vit\"", "\"swin\"");
    std::fs::write(&cfg, text).unwrap();
    let err = fails(&["info", "--backbone", p(dir.path())]);
    assert!(
        err.contains("config.json") && err.contains("model_type") && err.contains("swin"),
        "{err}"
    );
}

#[test]
fn malformed_config_is_reported_with_its_path() {
    let dir = copy_fixture("vit");
    std::fs::write(
        dir.path().join("config.json"),
        "{ \"model_type\": \"vit\", ",
    )
    .unwrap();
    let err = fails(&["info", "--backbone", p(dir.path())]);
    assert!(
        err.contains("config.json") && err.contains("malformed JSON"),
        "{err}"
    );
}

fn edit_weights(
    name: &str,
    edit: impl FnOnce(&mut std::collections::BTreeMap<String, common::Raw>),
) -> vidapter::util::TempDir {
    let dir = copy_fixture(name);
    let path = dir.path().join("model.safetensors");
    let mut tensors = read_raw(&path);
    edit(&mut tensors);
    write_raw(&path, &tensors);
    dir
}

#[test]
fn missing_tensor_is_named_with_expected_shape() {
    let dir = edit_weights("vit", |t| {
        t.remove("encoder.layer.1.attention.attention.key.weight");
    });
    let err = fails(&["info", "--backbone", p(dir.path())]);
    assert!(
        err.contains("encoder.layer.1.attention.attention.key.weight")
            && err.contains("[32, 32]")
            && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn extra_tensor_is_named() {
    let dir = edit_weights("vit", |t| {
        let v = t["layernorm.bias"].clone();
        t.insert("encoder.layer.0.surprise.bias".into(), v);
    });
    let err = fails(&["info", "--backbone", p(dir.path())]);
    assert!(err.contains("encoder.layer.0.surprise.bias"), "{err}");
}

#[test]
fn wrong_shape_names_tensor_and_both_shapes() {
    let dir = edit_weights("vit", |t| {
        let (d, _, b) = t["layernorm.weight"].clone();
        t.insert("layernorm.weight".into(), (d, vec![4, 8], b));
    });
    let err = fails(&["info", "--backbone", p(dir.path())]);
    assert!(
        err.contains("layernorm.weight") && err.contains("[4, 8]") && err.contains("[32]"),
        "{err}"
    );
}

#[test]
fn wrong_dtype_is_named() {
    let dir = edit_weights("vit", |t| {
        let (_, s, b) = t["layernorm.weight"].clone();
        t.insert("layernorm.weight".into(), (Dtype::I32, s, b));
    });
    let err = fails(&["info", "--backbone", p(dir.path())]);
    assert!(
        err.contains("layernorm.weight") && err.contains("I32"),
        "{err}"
    );
}

#[test]
fn truncated_weights_file_is_reported() {
    let dir = copy_fixture("vit");
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&["info", "--backbone", p(dir.path())]);
    assert!(
        err.contains("model.safetensors") && err.contains("safetensors"),
        "{err}"
    );
}

fn pixels_file(dir: &Path, shape: Vec<usize>, key: &str) -> std::path::PathBuf {
    let n: usize = shape.iter().product();
    let path = dir.join("px.safetensors");
    vidapter::backbone::write_f32(&path, &[(key.to_string(), shape, vec![0.5; n])]).unwrap();
    path
}

#[test]
fn pixels_of_wrong_rank_or_channels_are_refused() {
    let dir = vidapter::util::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let model = fixture("vit");
    for (shape, want) in [
        (vec![3, 32, 32], "rank 3"),
        (vec![1, 4, 32, 32], "4 channels"),
    ] {
        let px = pixels_file(dir.path(), shape, "pixel_values");
        let err = fails(&[
            "extract",
            "--backbone",
            p(&model),
            "--pixels",
            p(&px),
            "--out",
            p(&out),
        ]);
        assert!(
            err.contains("px.safetensors") && err.contains("pixel_values") && err.contains(want),
            "{err}"
        );
    }
    let px = pixels_file(dir.path(), vec![1, 3, 32, 32], "images");
    let err = fails(&[
        "extract",
        "--backbone",
        p(&model),
        "--pixels",
        p(&px),
        "--out",
        p(&out),
    ]);
    assert!(
        err.contains("no tensor named `pixel_values`") && err.contains("`images`"),
        "{err}"
    );
    assert!(!out.exists(), "no output is written on error");
}

#[test]
fn unknown_device_is_refused_before_work() {
    let err = fails(&["--device", "tpu", "info", "--backbone", p(&fixture("vit"))]);
    assert!(err.contains("tpu"), "{err}");
}
