//! The parallel loader: batches come in a seed-fixed order with seed-fixed content whatever
//! the number of workers, test views multiply the batch, and a broken clip is reported and
//! skipped (or stops the epoch in strict mode).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vidapter::data::decode::DecodeOptions;
use vidapter::data::loader::{Batch, ClipSpec, LoaderConfig, Views, epoch};
use vidapter::data::sampling::Sampling;
use vidapter::data::transform::SpatialConfig;
use vidapter::data::{Entry, Source};

/// A folder of `n` 24x16 PNG frames whose colour encodes (clip, frame).
fn frames_dir(root: &Path, clip: usize, n: usize) -> PathBuf {
    let dir = root.join(format!("clip{clip:03}"));
    std::fs::create_dir_all(&dir).unwrap();
    for f in 0..n {
        let img = image::RgbImage::from_fn(24, 16, |x, y| {
            image::Rgb([(clip * 20) as u8, (f * 10) as u8, (x + y) as u8])
        });
        img.save(dir.join(format!("img_{:05}.png", f + 1))).unwrap();
    }
    dir
}

fn entries(root: &Path, n: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry {
            source: Source::Frames {
                dir: frames_dir(root, i, 5 + i % 4),
                template: Some("img_{:05}.png".into()),
                start: 1,
                count: None,
            },
            labels: vec![i % 3],
            origin: None,
        })
        .collect()
}

fn spec() -> Arc<ClipSpec> {
    Arc::new(ClipSpec {
        sampling: Sampling::Segment { frames: 4 },
        spatial: SpatialConfig {
            size: 8,
            short_side: 12,
            area: [0.3, 1.0],
            ratio: [0.75, 1.333],
            flip: true,
            mean: [0.5; 3],
            std: [0.25; 3],
        },
    })
}

fn config(workers: usize, views: Views, strict: bool) -> LoaderConfig {
    LoaderConfig {
        batch_size: 3,
        workers,
        prefetch: 2,
        seed: 42,
        shuffle: true,
        views,
        strict,
        decode: DecodeOptions::default(),
    }
}

fn collect(entries: &Arc<Vec<Entry>>, cfg: &LoaderConfig, e: u64) -> Vec<Batch> {
    epoch(entries.clone(), spec(), cfg, e)
        .map(|b| b.unwrap())
        .collect()
}

#[test]
fn same_seed_gives_same_batches_whatever_the_worker_count() {
    let dir = vidapter::util::tempdir().unwrap();
    let entries = Arc::new(entries(dir.path(), 10));
    let one = collect(&entries, &config(1, Views::Train, false), 0);
    let three = collect(&entries, &config(3, Views::Train, false), 0);
    assert_eq!(one.len(), 4, "10 entries in batches of 3");
    for (a, b) in one.iter().zip(&three) {
        assert_eq!(a.entries, b.entries);
        assert_eq!(a.clips, b.clips);
        assert_eq!(a.shape, [a.entries.len(), 4, 3, 8, 8]);
    }
    let mut seen: Vec<usize> = one.iter().flat_map(|b| b.entries.clone()).collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..10).collect::<Vec<_>>(),
        "every entry once per epoch"
    );
}

#[test]
fn epochs_differ_in_order_and_augmentation() {
    let dir = vidapter::util::tempdir().unwrap();
    let entries = Arc::new(entries(dir.path(), 10));
    let cfg = config(2, Views::Train, false);
    let e0: Vec<usize> = collect(&entries, &cfg, 0)
        .iter()
        .flat_map(|b| b.entries.clone())
        .collect();
    let e1: Vec<usize> = collect(&entries, &cfg, 1)
        .iter()
        .flat_map(|b| b.entries.clone())
        .collect();
    assert_ne!(e0, e1);
}

#[test]
fn test_views_multiply_the_batch() {
    let dir = vidapter::util::tempdir().unwrap();
    let entries = Arc::new(entries(dir.path(), 4));
    let mut cfg = config(
        2,
        Views::Test {
            temporal: 2,
            spatial: 3,
        },
        false,
    );
    cfg.shuffle = false;
    let batches = collect(&entries, &cfg, 0);
    assert_eq!(batches[0].entries, vec![0, 1, 2]);
    assert_eq!(batches[0].views, 6);
    assert_eq!(batches[0].shape, [18, 4, 3, 8, 8]);
    // Test views do not depend on the seed.
    cfg.seed = 7;
    assert_eq!(collect(&entries, &cfg, 0)[0].clips, batches[0].clips);
}

#[test]
fn broken_clip_is_reported_and_skipped_or_fatal_when_strict() {
    let dir = vidapter::util::tempdir().unwrap();
    let mut list = entries(dir.path(), 4);
    let bad = dir.path().join("broken.mp4");
    std::fs::write(&bad, b"this is not a video").unwrap();
    list[1].source = Source::Video(bad.clone());
    let entries = Arc::new(list);
    let mut cfg = config(2, Views::Train, false);
    cfg.shuffle = false;
    let mut ep = epoch(entries.clone(), spec(), &cfg, 0);
    let first = ep.next().unwrap().unwrap();
    assert_eq!(first.entries, vec![0, 2], "the broken entry is left out");
    assert_eq!(first.labels.len(), 2);
    let rest: Vec<_> = ep.by_ref().collect();
    assert_eq!(rest.len(), 1);
    let problems = ep.problems();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, bad);

    cfg.strict = true;
    let mut ep = epoch(entries, spec(), &cfg, 0);
    let err = ep.next().unwrap().unwrap_err();
    assert_eq!(err.path, bad);
}
