//! Issue 17's proof of "no panic reachable from a config, a flag or a file": random values
//! for every run-config field, through loading, validation and the backbone-dependent
//! checks, and (when accepted and small) the dataset, one clip and a forward pass on the
//! tiny ViT; then random flag values through the built binary, each with a time limit.
//! Every input must end in `Ok` or an error naming what is wrong, never a panic or a hang.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use vidapter::backbone::Backbone;
use vidapter::data::config::Split;
use vidapter::data::decode::DecodeOptions;
use vidapter::data::loader::{ClipSpec, Views, load_clip};
use vidapter::methods::VideoClassifier;
use vidapter::train::config::{RunConfig, apply_override};

use crate::common;
use crate::common::fixtures::{probe_config, ramp_dataset, run_config};

/// Every field of a run config, with the method kinds whose fields they are.
const FIELDS: &[&str] = &[
    "sampling.kind",
    "sampling.frames",
    "sampling.interval",
    "spatial.size",
    "spatial.short_side",
    "spatial.area",
    "spatial.ratio",
    "spatial.mean",
    "spatial.std",
    "method.bottleneck",
    "method.kernel",
    "method.dilations",
    "method.blocks",
    "method.dropout",
    "method.gate",
    "method.placement",
    "method.adapt_cls",
    "method.act",
    "method.width",
    "method.heads",
    "method.frames",
    "method.grid_pool",
    "method.fusion",
    "method.temporal",
    "method.pool",
    "method.levels",
    "method.qkv_dim",
    "method.mlp_factor",
    "method.mlp_dropout",
    "method.temporal_conv",
    "method.backbone_lr_scale",
    "train.epochs",
    "train.batch_size",
    "train.accumulate",
    "train.lr",
    "train.min_lr",
    "train.warmup_epochs",
    "train.weight_decay",
    "train.label_smoothing",
    "train.clip_grad_norm",
    "train.gradient_checkpointing",
    "train.seed",
    "train.workers",
    "train.strict",
    "train.allow_damaged",
    "eval.temporal_views",
    "eval.spatial_views",
    "eval.val_on_test",
    "data.val_fraction",
    "data.split_seed",
    "data.start_index",
    "data.filename_tmpl",
    "data.flip",
    "data.media",
    "data.fold",
    "backbone",
];

const KINDS: &[&str] = &[
    "linear_probe",
    "full_finetune",
    "fe_adapter",
    "st_adapter",
    "m_adapter",
    "evl",
];

/// A random TOML value: mostly numbers around the edges (0, 1, patch-sized, huge,
/// negative, non-finite), sometimes strings, booleans, arrays and tables.
fn value(rng: &mut impl Rng) -> String {
    let ints = [
        "0",
        "1",
        "2",
        "3",
        "4",
        "7",
        "8",
        "16",
        "24",
        "32",
        "33",
        "100",
        "1024",
        "1025",
        "100000",
        "4294967297",
        "9223372036854775807",
        "-1",
        "-9223372036854775808",
    ];
    let floats = [
        "0.0", "0.5", "1.0", "-0.5", "1e-9", "1e300", "-1e300", "nan", "inf", "-inf", "0.999",
    ];
    let others = [
        "\"\"",
        "\"abc\"",
        "\"last:2\"",
        "\"first:9\"",
        "\"img_{:05}.png\"",
        "\"{}{}\"",
        "\"%d\"",
        "\"frames\"",
        "\"videos\"",
        "\"segment\"",
        "\"interval\"",
        "true",
        "false",
        "[]",
        "[0.5, 1.0]",
        "[1.0, 0.5]",
        "[0.0, 0.0]",
        "[1, 2, 3]",
        "[3, 3, 3]",
        "[0, 0, 0]",
        "[1e300, 1e300, 1e300]",
        "[0.5, 0.5, 0.5]",
        "[-1, 2]",
        "{ a = 1 }",
    ];
    match rng.random_range(0..10) {
        0..=4 => ints.choose(rng).unwrap().to_string(),
        5..=6 => floats.choose(rng).unwrap().to_string(),
        7 => rng.random_range(0..70_000u64).to_string(),
        _ => others.choose(rng).unwrap().to_string(),
    }
}

/// Runs `f` and fails the test if it takes longer than `limit` (a hang).
fn bounded<T>(what: &str, limit: Duration, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let out = f();
    assert!(
        t0.elapsed() < limit,
        "{what} took {:?} (limit {limit:?})",
        t0.elapsed()
    );
    out
}

#[test]
fn random_config_values_never_panic_or_hang() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    ramp_dataset(root);
    let path = run_config(root, "fe_adapter");
    let base: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let device = Device::flex();
    let backbone = Backbone::load(common::fixture("vit").to_str().unwrap(), &device).unwrap();
    let vit = backbone.config.clone();
    let mut rng = StdRng::seed_from_u64(17);
    let began = Instant::now();
    let (mut tried, mut accepted, mut ran) = (0, 0, 0);
    // Every field at least 8 times alone, then random combinations of 1-4 fields.
    let mut plan: Vec<Vec<&str>> = FIELDS
        .iter()
        .flat_map(|f| std::iter::repeat_n(vec![*f], 8))
        .collect();
    for _ in 0..3000 {
        let n = rng.random_range(1..=4);
        plan.push((0..n).map(|_| *FIELDS.choose(&mut rng).unwrap()).collect());
    }
    for fields in plan {
        let mut doc = base.clone();
        let kind = *KINDS.choose(&mut rng).unwrap();
        doc["method"] = toml::Value::Table(toml::toml! { kind = kind });
        let mut sets = Vec::new();
        for f in fields {
            let v = value(&mut rng);
            apply_override(&mut doc, f, &v).unwrap();
            sets.push(format!("{f}={v}"));
        }
        tried += 1;
        let what = format!("[method] kind = {kind}; {}", sets.join(", "));
        let cfg = bounded(&what, Duration::from_secs(5), || {
            RunConfig::from_value(doc, &path)
                .and_then(|c| c.check_for_backbone(&vit, &path).map(|()| c))
        });
        let Ok(cfg) = cfg else {
            let e = cfg.err().unwrap().to_string();
            assert!(e.contains(&path.display().to_string()), "{what}: {e}");
            continue;
        };
        accepted += 1;
        // Accepted and small: the rest of the path a run takes must not panic either.
        let size = cfg.spatial.size.unwrap_or(vit.image_size);
        if cfg.sampling.frames() > 8 || size > 64 || ran >= 150 {
            continue;
        }
        ran += 1;
        bounded(&what, Duration::from_secs(20), || {
            let Ok(data) = cfg.data.load(Split::Train) else {
                return;
            };
            let spatial = cfg.spatial.resolve(
                vit.image_size,
                vit.image_mean,
                vit.image_std,
                cfg.data.flip_allowed(),
            );
            let spec = ClipSpec {
                sampling: cfg.sampling,
                spatial,
            };
            let views = Views::Test {
                temporal: cfg.eval.temporal_views.min(2),
                spatial: cfg.eval.spatial_views,
            };
            if let Some(e) = data.entries.first() {
                let _ = load_clip(
                    e,
                    &spec,
                    views,
                    &mut StdRng::seed_from_u64(0),
                    &DecodeOptions::default(),
                );
                let _ = load_clip(
                    e,
                    &spec,
                    Views::Train,
                    &mut StdRng::seed_from_u64(1),
                    &DecodeOptions::default(),
                );
            }
            let t = cfg.sampling.frames();
            let model = VideoClassifier::new(backbone.model.clone(), &cfg.method, 2, 0, &device);
            let clip = Tensor::<5>::from_data(
                TensorData::new(vec![0.1f32; t * 3 * size * size], [1, t, 3, size, size]),
                &device,
            );
            let logits = model.forward(clip, None);
            assert_eq!(logits.dims(), [1, 2], "{what}");
        });
    }
    eprintln!(
        "config fuzz: {tried} inputs, {accepted} accepted, {ran} run through data + forward, {:.1?}",
        began.elapsed()
    );
    assert!(
        tried >= 3400 && accepted > 100 && ran > 20,
        "{tried} {accepted} {ran}"
    );
}

/// Runs the binary with a time limit; `None` when it had to be killed.
fn run_bounded(args: &[String], limit: Duration) -> Option<(Option<i32>, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vidapter"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).ok();
            return Some((status.code(), err));
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn random_flag_values_never_panic_or_hang() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    ramp_dataset(root);
    let cfg = probe_config(root);
    let cfg_s = cfg.to_str().unwrap().to_string();
    let o = common::vidapter(&["train", &cfg_s, "-q", "--epochs", "1"]);
    assert!(o.status.success(), "{}", common::text(&o));
    let ckpt = root
        .join("runs/linear_probe/best.safetensors")
        .to_str()
        .unwrap()
        .to_string();
    let clip = root.join("frames/test0").to_str().unwrap().to_string();
    let nums = [
        "0",
        "1",
        "2",
        "3",
        "64",
        "65",
        "1024",
        "100000",
        "-1",
        "18446744073709551616",
        "abc",
        "",
        "1.5",
    ];
    let mut rng = StdRng::seed_from_u64(17);
    let began = Instant::now();
    let mut tried = 0;
    for i in 0..240 {
        let n = |rng: &mut StdRng| nums.choose(rng).unwrap().to_string();
        let mut args: Vec<String> = match i % 6 {
            0 => vec![
                "predict".into(),
                "--checkpoint".into(),
                ckpt.clone(),
                clip.clone(),
                "--timeline".into(),
                n(&mut rng),
                "--stride".into(),
                n(&mut rng),
            ],
            1 => vec![
                "predict".into(),
                "--checkpoint".into(),
                ckpt.clone(),
                clip.clone(),
                "--crop".into(),
                format!(
                    "{},{},{},{}",
                    n(&mut rng),
                    n(&mut rng),
                    n(&mut rng),
                    n(&mut rng)
                ),
            ],
            2 => vec![
                "eval".into(),
                ckpt.clone(),
                "--split".into(),
                ["val", "test", "all", "x"]
                    .choose(&mut rng)
                    .unwrap()
                    .to_string(),
                "--temporal-views".into(),
                n(&mut rng),
                "--spatial-views".into(),
                n(&mut rng),
            ],
            3 => vec![
                "data".into(),
                "check".into(),
                cfg_s.clone(),
                "--frames".into(),
                n(&mut rng),
                "--workers".into(),
                n(&mut rng),
                "--bad-list".into(),
                root.join("bad.tsv").to_str().unwrap().into(),
            ],
            4 => vec![
                "train".into(),
                cfg_s.clone(),
                "--stop-after".into(),
                "1".into(),
                "--epochs".into(),
                n(&mut rng),
                "--batch-size".into(),
                n(&mut rng),
                "--set".into(),
                format!(
                    "{}={}",
                    [
                        "sampling.frames",
                        "spatial.size",
                        "eval.temporal_views",
                        "train.workers"
                    ]
                    .choose(&mut rng)
                    .unwrap(),
                    n(&mut rng)
                ),
                "--out".into(),
                root.join(format!("fuzz{i}")).to_str().unwrap().into(),
            ],
            _ => vec![
                "info".into(),
                "--backbone".into(),
                common::fixture("vit").to_str().unwrap().into(),
                "--classes".into(),
                n(&mut rng),
            ],
        };
        args.push("-q".into());
        tried += 1;
        let Some((code, err)) = run_bounded(&args, Duration::from_secs(60)) else {
            panic!("hang: vidapter {}", args.join(" "));
        };
        assert!(
            code.is_some() && code != Some(101) && !err.contains("panicked"),
            "vidapter {} -> {code:?}\n{err}",
            args.join(" ")
        );
    }
    eprintln!("flag fuzz: {tried} invocations in {:.1?}", began.elapsed());
}

/// Issue 17, items 6 and 7: the two settings found to panic or grow memory without bound
/// are refused at load time naming the field.
#[test]
fn patch_sized_input_and_frame_count_are_checked() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    ramp_dataset(root);
    let path = run_config(root, "fe_adapter");
    let device = Device::flex();
    let vit = Backbone::load(common::fixture("vit").to_str().unwrap(), &device)
        .unwrap()
        .config;
    for size in ["0", "4", "7", "12"] {
        let e = RunConfig::from_file(&path, &[("spatial.size".into(), size.into())])
            .and_then(|c| c.check_for_backbone(&vit, &path))
            .unwrap_err()
            .to_string();
        assert!(e.contains("spatial.size"), "{size}: {e}");
        assert!(size == "0" || e.contains("patch"), "{size}: {e}");
    }
    let e = RunConfig::from_file(&path, &[("sampling.frames".into(), "100000".into())])
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("sampling.frames") && e.contains("1024"), "{e}");
}
