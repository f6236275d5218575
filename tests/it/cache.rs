//! The side-branch feature cache end to end on the tiny ViT fixture and frame-folder clips
//! written here: stored levels give the live forward's logits, a cache made with other
//! settings is refused naming the field, a corrupted or missing shard is found by its
//! checksum and re-extracted (an interrupted extraction resumes), and training from the
//! cache follows the live run's loss trajectory step by step.

use crate::common;
use crate::common::fixtures::{self, ramp_dataset, ramp_entries};

use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;

use vidapter::backbone::Backbone;
use vidapter::backbone::BackboneId;
use vidapter::data::loader::{self, ClipSpec, LoaderConfig, Views};
use vidapter::data::sampling::Sampling;
use vidapter::data::transform::SpatialConfig;
use vidapter::data::{ClassMap, Entry};
use vidapter::methods::{EvlConfig, MAdapterConfig, MethodConfig, VideoClassifier};
use vidapter::train::cache::{
    CacheDtype, CacheIndex, CacheKey, CacheViews, ExtractOptions, FeatureCache, extract,
};
use vidapter::train::config::TrainSettings;
use vidapter::train::{TrainJob, train};

struct Fixture {
    backbone: Backbone,
    id: BackboneId,
}

fn fixture() -> Fixture {
    let spec = common::fixture("vit");
    let backbone = Backbone::load(spec.to_str().unwrap(), &Device::flex()).unwrap();
    let id = BackboneId::of(
        "vit",
        std::slice::from_ref(&backbone.files.weights),
        "tiny".into(),
    )
    .unwrap();
    Fixture { backbone, id }
}

fn spec(f: &Fixture, frames: usize) -> ClipSpec {
    ClipSpec {
        sampling: Sampling::Segment { frames },
        spatial: SpatialConfig {
            size: 32,
            short_side: 36,
            area: [0.5, 1.0],
            ratio: [0.75, 1.333],
            flip: true,
            mean: f.backbone.config.image_mean,
            std: f.backbone.config.image_std,
        },
    }
}

/// EVL on every block with its cross-attention (so the embeddings are stored too).
fn evl() -> MethodConfig {
    MethodConfig::Evl(EvlConfig {
        levels: 3,
        heads: Some(2),
        qkv_dim: Some(16),
        frames: 4,
        ..Default::default()
    })
}

fn m_adapter() -> MethodConfig {
    MethodConfig::MAdapter(MAdapterConfig {
        width: 8,
        dropout: 0.3,
        ..Default::default()
    })
}

fn opts(shard_size: usize) -> ExtractOptions {
    ExtractOptions {
        batch_size: 2,
        workers: 2,
        shard_size,
        ..Default::default()
    }
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn cached_levels_give_the_logits_of_the_live_forward() {
    let tmp = vidapter::util::tempdir().unwrap();
    let f = fixture();
    let device = Device::flex();
    let entries = Arc::new(ramp_entries(&tmp.path().join("data"), 5));
    let spec = spec(&f, 4);
    let views = CacheViews::Test {
        temporal: 2,
        spatial: 1,
    };
    for method in [evl(), m_adapter()] {
        let model = VideoClassifier::new(f.backbone.model.clone(), &method, 2, 5, &device);
        // Live: the test loader's batches, views of a clip adjacent.
        let cfg = LoaderConfig {
            batch_size: 5,
            workers: 1,
            prefetch: 1,
            seed: 0,
            shuffle: false,
            views: Views::Test {
                temporal: 2,
                spatial: 1,
            },
            strict: true,
            decode: Default::default(),
        };
        let batch = loader::epoch(entries.clone(), Arc::new(spec.clone()), &cfg, 0)
            .next()
            .unwrap()
            .unwrap();
        let live: Vec<f32> = model
            .forward(batch.tensor(&device), None)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(); // [5*2, 2]
        for (dtype, tol) in [(CacheDtype::F32, 1e-5), (CacheDtype::F16, 2e-2)] {
            let dir = tmp.path().join(format!("{}-{dtype:?}", method.name()));
            let key = CacheKey::new(&f.id, &model, &spec, views, dtype, "test", &entries).unwrap();
            let r = extract(
                &model,
                &key,
                entries.clone(),
                &spec,
                &dir,
                &opts(2),
                &device,
            )
            .unwrap();
            assert_eq!((r.shards, r.extracted, r.clips), (3, 3, 5));
            let mut cache = FeatureCache::open(&dir, &key).unwrap();
            assert_eq!(cache.views(), 2);
            assert_eq!(cache.labels(3), Some(&[1usize][..]));
            for view in 0..2 {
                let ids = [0, 1, 2, 3, 4];
                let levels = cache.levels(&ids, view, &device).unwrap();
                assert_eq!(levels.len(), model.levels_needed().len());
                let cached: Vec<f32> = model
                    .forward_from_levels(levels, 4, None)
                    .unwrap()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap();
                let live_view: Vec<f32> = (0..5)
                    .flat_map(|e| live[(e * 2 + view) * 2..(e * 2 + view) * 2 + 2].to_vec())
                    .collect();
                let d = max_rel_diff(&cached, &live_view);
                assert!(
                    d < tol,
                    "{} {dtype:?} view {view}: relative difference {d}",
                    method.name()
                );
            }
        }
    }
}

#[test]
fn a_cache_made_with_other_settings_is_refused_naming_the_field() {
    let tmp = vidapter::util::tempdir().unwrap();
    let f = fixture();
    let device = Device::flex();
    let entries = Arc::new(ramp_entries(&tmp.path().join("data"), 3));
    let model = VideoClassifier::new(f.backbone.model.clone(), &m_adapter(), 2, 5, &device);
    let views = CacheViews::Train { count: 1, seed: 3 };
    let dir = tmp.path().join("cache");
    let key = CacheKey::new(
        &f.id,
        &model,
        &spec(&f, 4),
        views,
        CacheDtype::F16,
        "train",
        &entries,
    )
    .unwrap();
    extract(
        &model,
        &key,
        entries.clone(),
        &spec(&f, 4),
        &dir,
        &opts(8),
        &device,
    )
    .unwrap();

    // A run cutting 6-frame clips needs other numbers.
    let six = CacheKey::new(
        &f.id,
        &model,
        &spec(&f, 6),
        views,
        CacheDtype::F16,
        "train",
        &entries,
    )
    .unwrap();
    let err = FeatureCache::open(&dir, &six).err().unwrap();
    assert!(matches!(err, vidapter::Error::StaleCache { .. }), "{err}");
    let err = err.to_string();
    assert!(
        err.contains("sampling") && err.contains("\"frames\":6"),
        "{err}"
    );
    assert!(!err.contains("backbone_sha256"), "{err}");
    // So does another backbone and another entry list.
    let mut other = key.clone();
    other.backbone_sha256 = "0".repeat(64);
    other.entries_sha256 = vidapter::train::cache::entries_sha256(&entries[..2]);
    let err = FeatureCache::open(&dir, &other).err().unwrap().to_string();
    assert!(
        err.contains("backbone_sha256") && err.contains("entries_sha256"),
        "{err}"
    );
    // The views and the dtype are the cache's choice.
    let mut any = key.clone();
    any.views = CacheViews::Train { count: 4, seed: 9 };
    any.dtype = CacheDtype::F32;
    FeatureCache::open(&dir, &any).unwrap();
    // Extracting other settings into the same folder is refused too, and leaves it intact.
    let err = extract(
        &model,
        &six,
        entries.clone(),
        &spec(&f, 6),
        &dir,
        &opts(8),
        &device,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("sampling"), "{err}");
    FeatureCache::open(&dir, &key).unwrap();
}

#[test]
fn a_corrupted_shard_is_detected_by_checksum_and_re_extracted() {
    let tmp = vidapter::util::tempdir().unwrap();
    let f = fixture();
    let device = Device::flex();
    let entries = Arc::new(ramp_entries(&tmp.path().join("data"), 5));
    let spec = spec(&f, 4);
    let model = VideoClassifier::new(f.backbone.model.clone(), &evl(), 2, 5, &device);
    let views = CacheViews::Train { count: 2, seed: 3 };
    let key = CacheKey::new(
        &f.id,
        &model,
        &spec,
        views,
        CacheDtype::F16,
        "train",
        &entries,
    )
    .unwrap();
    let dir = tmp.path().join("cache");
    extract(
        &model,
        &key,
        entries.clone(),
        &spec,
        &dir,
        &opts(2),
        &device,
    )
    .unwrap();
    let shard = |k: usize| dir.join(format!("shard-{k:05}.safetensors"));
    let original: Vec<Vec<u8>> = (0..3).map(|k| std::fs::read(shard(k)).unwrap()).collect();

    // Shard 1 truncated; shard 2 never listed (the extraction was killed before it).
    std::fs::write(shard(1), &original[1][..original[1].len() / 2]).unwrap();
    let mut index = CacheIndex::read(&dir).unwrap();
    index.shards.retain(|s| s.chunk != 2);
    index.complete = false;
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_string(&index).unwrap(),
    )
    .unwrap();
    let err = FeatureCache::open(&dir, &key).err().unwrap().to_string();
    assert!(err.contains("did not finish"), "{err}");

    let r = extract(
        &model,
        &key,
        entries.clone(),
        &spec,
        &dir,
        &opts(2),
        &device,
    )
    .unwrap();
    assert_eq!((r.reused, r.extracted), (1, 2), "{r:?}");
    assert_eq!(r.corrupt.len(), 1, "{r:?}");
    assert!(
        r.corrupt[0].contains("shard-00001.safetensors") && r.corrupt[0].contains("SHA-256"),
        "{}",
        r.corrupt[0]
    );
    // Extraction is deterministic: the repaired cache is byte for byte the first one.
    for (k, bytes) in original.iter().enumerate() {
        assert!(
            std::fs::read(shard(k)).unwrap() == *bytes,
            "shard {k} differs"
        );
    }
    let index = CacheIndex::read(&dir).unwrap();
    assert!(index.complete);
    assert_eq!(index.shards.len(), 3);
    FeatureCache::open(&dir, &key).unwrap();

    // Issue 17: bytes flipped inside one level tensor (the header intact) are refused when
    // the tensor is read, naming the shard and the tensor; opening alone cannot see them.
    let mut bytes = original[0].clone();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let name = "clip.1.view.1.levels.".to_string() + &key.levels.last().unwrap().to_string();
    let offsets = &header[&name]["data_offsets"];
    let at = 8 + header_len + offsets[0].as_u64().unwrap() as usize + 32;
    for x in &mut bytes[at..at + 16] {
        *x ^= 0x5A;
    }
    std::fs::write(shard(0), bytes).unwrap();
    let mut cache = FeatureCache::open(&dir, &key).unwrap();
    cache.levels(&[0], 1, &device).unwrap();
    let err = cache.levels(&[1], 1, &device).err().unwrap().to_string();
    assert!(
        err.contains(&name) && err.contains("shard-00000.safetensors") && err.contains("damaged"),
        "{err}"
    );
}

fn job(f: &Fixture, entries: &[Entry], out: &Path, cache: Option<&Path>) -> TrainJob {
    let device = Device::flex();
    let method = m_adapter();
    TrainJob {
        model: VideoClassifier::new(f.backbone.model.clone(), &method, 2, 7, &device),
        method,
        classes: ClassMap::new(vec!["darker".into(), "brighter".into()]),
        backbone: f.id.clone(),
        train: Arc::new(entries.to_vec()),
        val: None,
        spec: spec(f, 4),
        settings: TrainSettings {
            epochs: 3,
            batch_size: 2,
            accumulate: 2,
            lr: 1e-2,
            warmup_epochs: 0.5,
            clip_grad_norm: 1.0,
            label_smoothing: 0.1,
            seed: 3,
            workers: 2,
            cache: cache.map(Path::to_path_buf),
            ..Default::default()
        },
        out: out.to_path_buf(),
        run_config: serde_json::json!({}),
        stop_after: None,
        dist: None,
    }
}

fn step_losses(out: &Path) -> Vec<f64> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"] == "step")
        .map(|r| r["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn training_from_the_cache_follows_the_live_loss_trajectory() {
    let tmp = vidapter::util::tempdir().unwrap();
    let f = fixture();
    let device = Device::flex();
    let entries = ramp_entries(&tmp.path().join("data"), 5);
    let live_out = tmp.path().join("live");
    let cached_out = tmp.path().join("cached");
    let dir = tmp.path().join("cache");
    // One stored view per epoch: view e is the loader's augmented epoch e, so the cached run
    // sees exactly the clips (crops, flips, frame offsets) the live run decodes.
    let j = job(&f, &entries, &cached_out, Some(&dir));
    let views = CacheViews::Train { count: 3, seed: 3 };
    let key = CacheKey::new(
        &f.id,
        &j.model,
        &j.spec,
        views,
        CacheDtype::F32,
        "train",
        &entries,
    )
    .unwrap();
    extract(
        &j.model,
        &key,
        j.train.clone(),
        &j.spec,
        &dir,
        &opts(3),
        &device,
    )
    .unwrap();

    let live = train(job(&f, &entries, &live_out, None), &device, false, false).unwrap();
    let cached = train(j, &device, false, false).unwrap();
    assert_eq!((live.epochs, live.steps), (cached.epochs, cached.steps));
    let (a, b) = (step_losses(&live_out), step_losses(&cached_out));
    assert_eq!(a.len(), 3 * 2, "3 epochs of 2 optimiser steps");
    assert_eq!(a.len(), b.len());
    for (s, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * x.abs().max(1.0),
            "step {s}: live {x}, cached {y}"
        );
    }
    // The loss moved: the comparison is of a trajectory, not of a constant.
    assert!(a.iter().any(|l| (l - a[0]).abs() > 1e-3), "{a:?}");

    // An in-backbone method cannot train from a cache.
    let mut fe = job(&f, &entries, &tmp.path().join("fe"), Some(&dir));
    fe.method = MethodConfig::FeAdapter(Default::default());
    fe.model = VideoClassifier::new(f.backbone.model.clone(), &fe.method, 2, 7, &device);
    let err = train(fe, &device, false, false).err().unwrap().to_string();
    assert!(err.contains("trains inside the backbone"), "{err}");
}

fn vidapter(args: &[&str], cwd: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_vidapter"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A linear-probe run config over [`ramp_dataset`], seeded, running in `root/runs/cached`.
fn run_config(root: &Path) -> std::path::PathBuf {
    ramp_dataset(root);
    let path = fixtures::probe_config(root);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("out = \"runs/linear_probe\"", "out = \"runs/cached\"")
        .replace("temporal_views = 1", "temporal_views = 2")
        .replace("workers = 2\n", "workers = 2\nseed = 5\n");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn extract_command_writes_a_cache_that_train_uses() {
    let tmp = vidapter::util::tempdir().unwrap();
    let root = tmp.path();
    let cfg = run_config(root);
    let cfg = cfg.to_str().unwrap();
    let o = vidapter(
        &[
            "extract", "-q", "--config", cfg, "--out", "cache", "--views", "2", "--dtype", "f32",
        ],
        root,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("6 clips in 1 shards"), "{}", text(&o));
    // Again: everything is kept.
    let o = vidapter(
        &[
            "extract", "-q", "--config", cfg, "--out", "cache", "--views", "2", "--dtype", "f32",
        ],
        root,
    );
    assert!(text(&o).contains("0 extracted, 1 kept"), "{}", text(&o));
    // The test split holds the test protocol's 2 x 3 views.
    let o = vidapter(
        &[
            "extract",
            "-q",
            "--config",
            cfg,
            "--out",
            "test-cache",
            "--split",
            "test",
        ],
        root,
    );
    assert!(o.status.success(), "{}", text(&o));
    let index = CacheIndex::read(&root.join("test-cache")).unwrap();
    assert_eq!(index.key.views.count(), 6);
    assert_eq!(index.key.split, "test");
    let o = vidapter(
        &[
            "extract", "-q", "--config", cfg, "--out", "x", "--split", "val", "--views", "2",
        ],
        root,
    );
    assert!(
        !o.status.success() && text(&o).contains("--views"),
        "{}",
        text(&o)
    );

    let o = vidapter(&["train", cfg, "-q", "--set", "train.cache=cache"], root);
    assert!(o.status.success(), "{}", text(&o));
    let o = vidapter(&["train", cfg, "-q", "--set", "out=runs/live"], root);
    assert!(o.status.success(), "{}", text(&o));
    let (a, b) = (
        step_losses(&root.join("runs/live")),
        step_losses(&root.join("runs/cached")),
    );
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x - y).abs() <= 1e-4 * x.abs().max(1.0),
            "live {a:?}, cached {b:?}"
        );
    }
    // A cache of other settings is refused by name.
    let o = vidapter(
        &[
            "train",
            cfg,
            "-q",
            "--set",
            "train.cache=cache",
            "--set",
            "sampling.frames=3",
        ],
        root,
    );
    assert!(
        !o.status.success() && text(&o).contains("sampling"),
        "{}",
        text(&o)
    );
}

/// A cache that stores more levels than a run reads serves it: EVL's (embeddings and every
/// block) gives M-adapter exactly what M-adapter's own cache gives; the other way round, the
/// missing level is named.
#[test]
fn a_cache_with_more_levels_serves_a_method_that_reads_fewer() {
    let tmp = vidapter::util::tempdir().unwrap();
    let f = fixture();
    let device = Device::flex();
    let entries = Arc::new(ramp_entries(&tmp.path().join("data"), 3));
    let spec = spec(&f, 4);
    let views = CacheViews::Train { count: 1, seed: 3 };
    let evl_model = VideoClassifier::new(f.backbone.model.clone(), &evl(), 2, 5, &device);
    let m_model = VideoClassifier::new(f.backbone.model.clone(), &m_adapter(), 2, 5, &device);
    assert!(m_model.levels_needed().len() < evl_model.levels_needed().len());
    let key_of = |model: &VideoClassifier| {
        CacheKey::new(
            &f.id,
            model,
            &spec,
            views,
            CacheDtype::F32,
            "train",
            &entries,
        )
        .unwrap()
    };
    let (evl_key, m_key) = (key_of(&evl_model), key_of(&m_model));
    let (evl_dir, m_dir) = (tmp.path().join("evl"), tmp.path().join("m"));
    for (model, key, dir) in [(&evl_model, &evl_key, &evl_dir), (&m_model, &m_key, &m_dir)] {
        extract(model, key, entries.clone(), &spec, dir, &opts(8), &device).unwrap();
    }
    let read = |dir: &std::path::Path| -> Vec<Vec<f32>> {
        let mut cache = FeatureCache::open(dir, &m_key).unwrap();
        cache
            .levels(&[0, 1, 2], 0, &device)
            .unwrap()
            .into_iter()
            .map(|t| t.into_data().try_to_vec::<f32>().unwrap())
            .collect()
    };
    let (from_evl, from_own) = (read(&evl_dir), read(&m_dir));
    assert_eq!(from_evl.len(), m_model.levels_needed().len());
    assert_eq!(from_evl, from_own);
    let err = FeatureCache::open(&m_dir, &evl_key)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("levels") && err.contains("[0,"), "{err}");
}
