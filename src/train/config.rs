//! The run config: one TOML file saying which backbone, which data, how clips are cut, which
//! method, how to train and how to test. Presets live under `configs/`.
//!
//! ```toml
//! backbone = "openai/clip-vit-base-patch16"   # folder, .safetensors file or hub id
//! out = "runs/fe_adapter_dfew"                # run folder (default: runs/<config name>)
//!
//! [data]                                      # see data::config::DatasetConfig
//! format = "dfew"
//! root = "/data/DFEW/Clip/clip_224x224"
//! annotations = "/data/DFEW/EmoLabel_DataSplit"
//! fold = 1
//!
//! [sampling]                                  # segment | interval
//! kind = "segment"
//! frames = 16
//!
//! [spatial]                                   # size defaults to the backbone's input size,
//! short_side = 256                            # mean/std to the backbone's
//!
//! [method]
//! kind = "fe_adapter"
//!
//! [train]                                     # see train::config::TrainSettings
//! epochs = 30
//!
//! [eval]
//! temporal_views = 2
//! spatial_views = 3
//! ```
//! Command-line overrides (`--set train.lr=3e-4`, `--epochs 5`, ...) are applied to the
//! parsed TOML before it is checked, so they are validated exactly like the file.
//! Relative paths (backbone, out, data paths) resolve against the config file's folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backbone::VitConfig;
use crate::data::config::DatasetConfig;
use crate::data::sampling::Sampling;
use crate::data::transform::SpatialConfig;
use crate::error::{Error, Result};
use crate::methods::MethodConfig;

/// Most frames a clip may have (`sampling.frames`, `data check --frames`): a clip of this
/// many 224x224 frames already holds 600 MB of f32 pixels before the backbone runs.
pub const MAX_FRAMES: usize = 1024;
/// Most temporal views at test time (`eval.temporal_views`, `eval --temporal-views`).
pub const MAX_TEMPORAL_VIEWS: usize = 64;
/// Largest input side (`spatial.size`, `spatial.short_side`), in pixels.
pub const MAX_SIZE: usize = 4096;
/// Most decode threads (`train.workers`, `data check --workers`).
pub const MAX_WORKERS: usize = 256;
/// Largest micro-batch (`train.batch_size`) and accumulation count (`train.accumulate`).
pub const MAX_BATCH: usize = 65_536;
/// Most bytes of f32 pixels one entry's clip (all test views) may take.
pub const MAX_CLIP_BYTES: u128 = 8_000_000_000;
/// Most epochs (`train.epochs`).
pub const MAX_EPOCHS: usize = 1_000_000;
/// Largest stride between sampled frames (`sampling.interval`).
pub const MAX_INTERVAL: usize = 1024;

/// Checks a count of spatial crops at test time (`eval.spatial_views`, `eval
/// --spatial-views`): 1 (centre crop) or 3 (three crops); otherwise says so.
pub fn check_spatial_views(views: usize) -> std::result::Result<(), String> {
    if matches!(views, 1 | 3) {
        Ok(())
    } else {
        Err(format!(
            "{views}: allowed values are 1 (centre crop) and 3 (three crops)"
        ))
    }
}

/// Spatial settings as written in a run config; unset fields come from the backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SpatialSection {
    /// Input side (default: the backbone's `image_size`).
    pub size: Option<usize>,
    /// Training: short side before the random crop (default 256, or `size * 8 / 7` when
    /// `size` is small).
    pub short_side: Option<usize>,
    /// Training: crop area range (default `[0.08, 1.0]`).
    pub area: Option<[f64; 2]>,
    /// Training: crop aspect-ratio range (default `[3/4, 4/3]`).
    pub ratio: Option<[f64; 2]>,
    /// Normalisation mean (default: the backbone's).
    pub mean: Option<[f32; 3]>,
    /// Normalisation std (default: the backbone's).
    pub std: Option<[f32; 3]>,
}

impl SpatialSection {
    /// The full spatial config for a backbone with input side `image_size` and the given
    /// mean/std; `flip` comes from the dataset.
    pub fn resolve(
        &self,
        image_size: usize,
        mean: [f32; 3],
        std: [f32; 3],
        flip: bool,
    ) -> SpatialConfig {
        let size = self.size.unwrap_or(image_size);
        SpatialConfig {
            size,
            short_side: self
                .short_side
                .unwrap_or(if size >= 224 { 256 } else { size * 8 / 7 }),
            area: self.area.unwrap_or([0.08, 1.0]),
            ratio: self.ratio.unwrap_or([3.0 / 4.0, 4.0 / 3.0]),
            flip,
            mean: self.mean.unwrap_or(mean),
            std: self.std.unwrap_or(std),
        }
    }
}

/// How a model is tested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSettings {
    /// Temporal clips per video at test time (default 1).
    pub temporal_views: usize,
    /// Spatial crops per clip at test time: 1 (centre) or 3 (default 1).
    pub spatial_views: usize,
    /// Choose checkpoints on the test split, as peer DFER repositories do (default off:
    /// validation is separate). Reports say so when it is on.
    pub val_on_test: bool,
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            temporal_views: 1,
            spatial_views: 1,
            val_on_test: false,
        }
    }
}

/// Loop settings (the `[train]` table of a run config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSettings {
    /// Passes over the training split.
    pub epochs: usize,
    /// Clips per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimiser step (gradient accumulation).
    pub accumulate: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of the cosine.
    pub min_lr: f64,
    /// Warm-up length in epochs (may be fractional).
    pub warmup_epochs: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Label smoothing of the cross-entropy.
    pub label_smoothing: f64,
    /// Clip the global gradient norm (0 = off).
    pub clip_grad_norm: f64,
    /// Recompute memory-bound activations in the backward pass (less memory, more time).
    pub gradient_checkpointing: bool,
    /// Seed of everything random.
    pub seed: u64,
    /// Decode threads.
    pub workers: usize,
    /// Stop at the first unreadable or damaged clip instead of skipping it.
    pub strict: bool,
    /// Use damaged clips (a truncated video, a frame folder with a gap or a broken frame
    /// file) with a warning naming each, instead of skipping them (default off).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_damaged: bool,
    /// Feature cache folder (`vidapter extract --config ... --out DIR`): side-branch methods
    /// train from its stored backbone levels instead of decoding clips and running the
    /// backbone; epoch `e` uses the cache's view `e mod views`. Refused when the cache was
    /// made with other settings than the run's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<PathBuf>,
    /// Rendezvous `host:port` (port default 29500) of a data-parallel run whose launcher
    /// sets no `MASTER_ADDR` (Slurm's `srun`): rank 0's host. Unused by a single process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rendezvous: Option<String>,
    /// Seconds a rank of a data-parallel run waits for the others (at the rendezvous and in
    /// each all-reduce) before it stops with an error (a peer that died is noticed at once:
    /// its connections close).
    #[serde(skip_serializing_if = "is_default_dist_timeout")]
    pub dist_timeout: f64,
}

/// `[train] dist_timeout`'s default: 30 minutes, as PyTorch's process groups.
pub const DEFAULT_DIST_TIMEOUT: f64 = 1800.0;

fn is_default_dist_timeout(v: &f64) -> bool {
    *v == DEFAULT_DIST_TIMEOUT
}

impl TrainSettings {
    /// The decoder settings these settings ask for (`allow_damaged`).
    pub fn decode_options(&self) -> crate::data::decode::DecodeOptions {
        crate::data::decode::DecodeOptions {
            allow_damaged: self.allow_damaged,
            ..Default::default()
        }
    }
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            epochs: 10,
            batch_size: 8,
            accumulate: 1,
            lr: 1e-3,
            min_lr: 0.0,
            warmup_epochs: 1.0,
            weight_decay: 0.05,
            label_smoothing: 0.0,
            clip_grad_norm: 0.0,
            gradient_checkpointing: false,
            seed: 0,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            strict: false,
            allow_damaged: false,
            cache: None,
            rendezvous: None,
            dist_timeout: DEFAULT_DIST_TIMEOUT,
        }
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// Backbone folder, file or hub id.
    pub backbone: String,
    /// Run folder.
    pub out: PathBuf,
    /// The dataset.
    pub data: DatasetConfig,
    /// Temporal sampling.
    pub sampling: Sampling,
    /// Spatial settings.
    #[serde(default)]
    pub spatial: SpatialSection,
    /// The method.
    pub method: MethodConfig,
    /// Training settings.
    #[serde(default)]
    pub train: TrainSettings,
    /// Test protocol.
    #[serde(default)]
    pub eval: EvalSettings,
}

/// A run config as its file states it, before paths are resolved: `out` may be left out
/// (then `runs/<config name>` beside the file), and `[data]` is read by
/// [`DatasetConfig::from_toml_table`], whose defaults depend on the dataset's format.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rest {
    backbone: String,
    out: Option<PathBuf>,
    #[allow(dead_code)]
    data: toml::Value,
    sampling: Sampling,
    #[serde(default)]
    spatial: SpatialSection,
    method: MethodConfig,
    #[serde(default)]
    train: TrainSettings,
    #[serde(default)]
    eval: EvalSettings,
}

/// Sets `key` (dotted, e.g. `train.lr`) to `value` (TOML syntax; bare words are strings).
pub fn apply_override(
    doc: &mut toml::Value,
    key: &str,
    value: &str,
) -> std::result::Result<(), String> {
    let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut node = doc;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let table = node
            .as_table_mut()
            .ok_or_else(|| format!("`{key}`: `{}` is not a table", parts[..i].join(".")))?;
        if i + 1 == parts.len() {
            table.insert(part.to_string(), parsed);
            return Ok(());
        }
        node = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    Err(format!("`{key}`: empty key"))
}

/// The run-config keys that hold paths.
const PATH_KEYS: [&str; 9] = [
    "out",
    "backbone",
    "train.cache",
    "data.root",
    "data.annotations",
    "data.train",
    "data.val",
    "data.test",
    "data.classes",
];

/// A path given on the command line (`--out DIR`, `--set data.root=DIR`) is relative to the
/// working directory, as for any command, not to the TOML's folder: made absolute here, before
/// the TOML's own relative paths are resolved. A backbone is a path only when it exists
/// (otherwise a hub id); `data.classes` only when it is a string (a list is class names).
fn command_line_path(doc: &mut toml::Value, key: &str) {
    if !PATH_KEYS.contains(&key) {
        return;
    }
    let mut node = Some(&mut *doc);
    for part in key.split('.') {
        node = node.and_then(|n| n.get_mut(part));
    }
    if let Some(toml::Value::String(p)) = node {
        let rel = Path::new(p.as_str());
        if rel.is_relative()
            && (key != "backbone" || rel.exists())
            && let Ok(abs) = std::path::absolute(rel)
        {
            *p = abs.to_string_lossy().into_owned();
        }
    }
}

impl RunConfig {
    /// Reads `path`, applies `overrides` (`(dotted key, TOML value)`), checks every field.
    /// Errors name the file, the field and what is allowed.
    pub fn from_file(path: &Path, overrides: &[(String, String)]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut doc: toml::Value = toml::from_str(&text)
            .map_err(|e| Error::format(path, format!("not valid TOML: {e}")))?;
        for (k, v) in overrides {
            apply_override(&mut doc, k, v).map_err(|reason| Error::Override {
                key: k.clone(),
                value: v.clone(),
                path: path.to_path_buf(),
                field: k.clone(),
                reason,
            })?;
            command_line_path(&mut doc, k);
        }
        Self::from_value(doc, path).map_err(|e| match e {
            // A field the command line set (or a field inside a table it set) is the command
            // line's fault, not the file's.
            Error::Config {
                path,
                field,
                reason,
            } => match overrides.iter().rev().find(|(k, _)| {
                field == *k
                    || field.starts_with(&format!("{k}."))
                    || k.starts_with(&format!("{field}."))
            }) {
                Some((k, v)) => Error::Override {
                    key: k.clone(),
                    value: v.clone(),
                    path,
                    field,
                    reason,
                },
                None => Error::Config {
                    path,
                    field,
                    reason,
                },
            },
            other => other,
        })
    }

    /// Checks an already-parsed document that came from `path`.
    pub fn from_value(doc: toml::Value, path: &Path) -> Result<Self> {
        let data_table = doc.get("data").cloned().ok_or_else(|| {
            Error::config(
                path,
                "data",
                "there is no [data] table; it needs at least `format` and `root`",
            )
        })?;
        let data = DatasetConfig::from_toml_table(&data_table, path)?;
        let rest: Rest = serde_path_to_error::deserialize(doc).map_err(|e| {
            let field = e.path().to_string();
            Error::config(path, field, e.inner().to_string())
        })?;
        let base = crate::util::config_dir(path);
        let base = base.as_path();
        // A backbone that exists relative to the config is a path; anything else is a hub id
        // (or an absolute path), left as written.
        let backbone =
            if Path::new(&rest.backbone).is_relative() && base.join(&rest.backbone).exists() {
                base.join(&rest.backbone).to_string_lossy().into_owned()
            } else {
                rest.backbone
            };
        let out = match rest.out {
            Some(o) if o.is_relative() => base.join(o),
            Some(o) => o,
            None => base.join("runs").join(
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "run".into()),
            ),
        };
        let mut train = rest.train;
        if let Some(c) = train.cache.as_mut().filter(|c| c.is_relative()) {
            *c = base.join(&*c);
        }
        let cfg = RunConfig {
            backbone,
            out,
            data,
            sampling: rest.sampling,
            spatial: rest.spatial,
            method: rest.method,
            train,
            eval: rest.eval,
        };
        cfg.check(path)?;
        Ok(cfg)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let t = &self.train;
        let counts = [
            ("train.epochs", t.epochs, MAX_EPOCHS),
            ("train.batch_size", t.batch_size, MAX_BATCH),
            ("train.accumulate", t.accumulate, MAX_BATCH),
            ("train.workers", t.workers, MAX_WORKERS),
            ("sampling.frames", self.sampling.frames(), MAX_FRAMES),
            (
                "eval.temporal_views",
                self.eval.temporal_views,
                MAX_TEMPORAL_VIEWS,
            ),
        ];
        for (field, v, max) in counts {
            if v == 0 {
                return Err(Error::config(path, field, "must be at least 1"));
            }
            if v > max {
                return Err(Error::config(
                    path,
                    field,
                    format!("{v} is more than the maximum, {max}"),
                ));
            }
        }
        if !(t.dist_timeout.is_finite() && (1.0..=86_400.0).contains(&t.dist_timeout)) {
            return Err(Error::config(
                path,
                "train.dist_timeout",
                format!("{} is outside 1..=86400 seconds", t.dist_timeout),
            ));
        }
        if let Sampling::Interval { interval, .. } = self.sampling
            && !(1..=MAX_INTERVAL).contains(&interval)
        {
            return Err(Error::config(
                path,
                "sampling.interval",
                format!("{interval} is outside 1..={MAX_INTERVAL}"),
            ));
        }
        let sp = &self.spatial;
        for (field, v) in [
            ("spatial.size", sp.size),
            ("spatial.short_side", sp.short_side),
        ] {
            if let Some(v) = v
                && !(1..=MAX_SIZE).contains(&v)
            {
                return Err(Error::config(
                    path,
                    field,
                    format!("{v} is outside 1..={MAX_SIZE} pixels"),
                ));
            }
        }
        if let (Some(size), Some(short)) = (sp.size, sp.short_side)
            && short < size
        {
            return Err(Error::config(
                path,
                "spatial.short_side",
                format!("{short} is smaller than spatial.size ({size}): the crop would not fit"),
            ));
        }
        for (field, range, high, allowed) in [
            (
                "spatial.area",
                sp.area,
                1.0,
                "<= 1 (fractions of the frame)",
            ),
            ("spatial.ratio", sp.ratio, 100.0, "<= 100"),
        ] {
            if let Some([a, b]) = range
                && (!(a.is_finite() && b.is_finite()) || a <= 0.0 || a > b || b > high)
            {
                return Err(Error::config(
                    path,
                    field,
                    format!("[{a}, {b}]: expected [low, high] with 0 < low <= high {allowed}"),
                ));
            }
        }
        if let Some(m) = sp.mean
            && m.iter().any(|v| !v.is_finite())
        {
            return Err(Error::config(
                path,
                "spatial.mean",
                format!("{m:?}: every value must be a finite number"),
            ));
        }
        if let Some(sd) = sp.std
            && sd.iter().any(|v| !(v.is_finite() && *v > 0.0))
        {
            return Err(Error::config(
                path,
                "spatial.std",
                format!("{sd:?}: every value must be a positive finite number"),
            ));
        }
        let non_negative = [
            ("train.min_lr", t.min_lr),
            ("train.warmup_epochs", t.warmup_epochs),
            ("train.weight_decay", t.weight_decay),
            ("train.clip_grad_norm", t.clip_grad_norm),
        ];
        for (field, v) in non_negative {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::config(
                    path,
                    field,
                    format!("{v} must be a finite number >= 0"),
                ));
            }
        }
        if t.min_lr > t.lr {
            return Err(Error::config(
                path,
                "train.min_lr",
                format!("{} is above train.lr ({})", t.min_lr, t.lr),
            ));
        }
        check_spatial_views(self.eval.spatial_views)
            .map_err(|reason| Error::config(path, "eval.spatial_views", reason))?;
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            return Err(Error::config(
                path,
                "train.lr",
                format!("{} must be a positive number", t.lr),
            ));
        }
        if !(0.0..1.0).contains(&t.label_smoothing) {
            return Err(Error::config(
                path,
                "train.label_smoothing",
                format!("{} is not in [0, 1)", t.label_smoothing),
            ));
        }
        Ok(())
    }

    /// The checks that need the backbone: the input side (`spatial.size`, default the
    /// backbone's) must be a whole number of patches, at least one; the method's fields are
    /// checked against its blocks and width. Errors name the field.
    pub fn check_for_backbone(&self, backbone: &VitConfig, path: &Path) -> Result<()> {
        let patch = backbone.patch_size.max(1);
        let size = self.spatial.size.unwrap_or(backbone.image_size);
        if size < patch || !size.is_multiple_of(patch) {
            return Err(Error::config(
                path,
                "spatial.size",
                format!(
                    "{size} is not a positive multiple of the backbone's {patch}-pixel patch \
                     (e.g. {})",
                    (size / patch).max(1) * patch
                ),
            ));
        }
        // One entry's pixels at test time (every view), as f32: bounded so that no setting
        // makes memory grow without bound before the first clip is seen.
        let views = self.eval.temporal_views * self.eval.spatial_views;
        let bytes = (self.sampling.frames() as u128) * (size as u128).pow(2) * 12 * views as u128;
        if bytes > MAX_CLIP_BYTES {
            return Err(Error::config(
                path,
                "sampling.frames",
                format!(
                    "{} frames of {size}x{size} pixels in {views} test view(s) are {:.1} GB of \
                     f32 pixels per clip; the limit is {} GB (fewer frames, a smaller \
                     spatial.size or fewer views)",
                    self.sampling.frames(),
                    bytes as f64 / 1e9,
                    MAX_CLIP_BYTES / 1_000_000_000
                ),
            ));
        }
        self.method
            .validate_for(backbone)
            .map_err(|(field, reason)| Error::config(path, format!("method.{field}"), reason))
    }

    /// The config as JSON (stored in checkpoints so `eval` and `predict` can rebuild the run).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("run config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_sets_nested_typed_values() {
        let mut doc: toml::Value = toml::from_str("[train]\nlr = 1.0").unwrap();
        apply_override(&mut doc, "train.lr", "3e-4").unwrap();
        apply_override(&mut doc, "method.kind", "st_adapter").unwrap();
        apply_override(&mut doc, "eval.spatial_views", "3").unwrap();
        assert_eq!(doc["train"]["lr"].as_float(), Some(3e-4));
        assert_eq!(doc["method"]["kind"].as_str(), Some("st_adapter"));
        assert_eq!(doc["eval"]["spatial_views"].as_integer(), Some(3));
        let err = apply_override(&mut doc, "train.lr.x", "1").unwrap_err();
        assert!(err.contains("train.lr"), "{err}");
    }
}
