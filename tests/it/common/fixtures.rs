//! Small datasets the tests write: "ramp" clips of six 40x36 PNG frames whose brightness rises
//! over time for class 1 and falls for class 0 (a temporal signal a tiny model learns in a few
//! steps), as entries, as an mmaction2 raw-frame dataset with lists, and run configs over it.

use std::path::{Path, PathBuf};

use vidapter::data::{Entry, Source};

/// Writes the six frames `img_00001.png`.. of a ramp clip of class `label` (0 or 1) into
/// `dir`; `texture` shifts the green channel's pattern so that clips differ.
pub fn ramp_frames(dir: &Path, label: usize, texture: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for f in 0..6u32 {
        let level = if label == 1 { f * 40 } else { 200 - f * 40 };
        image::RgbImage::from_fn(40, 36, |x, y| {
            image::Rgb([level as u8, ((x * 5 + y * 3 + texture) % 256) as u8, 90])
        })
        .save(dir.join(format!("img_{:05}.png", f + 1)))
        .unwrap();
    }
}

/// `n` ramp clips `root/clip{i}` as frame-folder entries, classes alternating.
pub fn ramp_entries(root: &Path, n: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            let label = i % 2;
            let dir = root.join(format!("clip{i}"));
            ramp_frames(&dir, label, i as u32 * 7);
            Entry {
                source: Source::Frames {
                    dir,
                    template: None,
                    start: 1,
                    count: None,
                },
                labels: vec![label],
                origin: None,
            }
        })
        .collect()
}

/// An mmaction2 raw-frame dataset in `root`: six ramp clips per split under `frames/`,
/// `train.txt`, `val.txt`, `test.txt` and `classes.txt` (darker, brighter).
pub fn ramp_dataset(root: &Path) {
    for split in ["train", "val", "test"] {
        let mut list = String::new();
        for i in 0..6u32 {
            let label = i as usize % 2;
            let rel = format!("frames/{split}{i}");
            ramp_frames(&root.join(&rel), label, i * 11);
            list.push_str(&format!("{rel} 6 {label}\n"));
        }
        std::fs::write(root.join(format!("{split}.txt")), list).unwrap();
    }
    std::fs::write(root.join("classes.txt"), "darker\nbrighter\n").unwrap();
}

/// A run config `root/<method>.toml` over [`ramp_dataset`] and the tiny committed ViT:
/// 4 frames at 32 px, bottleneck 4, 2 epochs of batch 3, 2 x 3 test views; runs in
/// `root/runs/<method>`.
pub fn run_config(root: &Path, method: &str) -> PathBuf {
    let backbone = super::fixture("vit");
    let path = root.join(format!("{method}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"backbone = "{}"
out = "runs/{method}"

[data]
format = "mmaction_rawframes"
root = "."
train = "train.txt"
val = "val.txt"
test = "test.txt"
classes = "classes.txt"
filename_tmpl = "img_{{:05}}.png"

[sampling]
kind = "segment"
frames = 4

[spatial]
size = 32

[method]
kind = "{method}"
bottleneck = 4

[train]
epochs = 2
batch_size = 3
lr = 0.01
workers = 2

[eval]
temporal_views = 2
spatial_views = 3
"#,
            backbone.display()
        ),
    )
    .unwrap();
    path
}

/// [`run_config`] for the linear probe (which has no bottleneck), tested with one view.
pub fn probe_config(root: &Path) -> PathBuf {
    let cfg = run_config(root, "linear_probe");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("bottleneck = 4\n", "")
        .replace("temporal_views = 2", "temporal_views = 1");
    std::fs::write(&cfg, text).unwrap();
    cfg
}
