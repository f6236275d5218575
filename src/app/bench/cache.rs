//! `vidapter bench cache`: what the side-branch feature cache buys. On a run config's training
//! split it times training epochs the live way (decode, sample, transform, frozen backbone,
//! branch), the one-off extraction of the cache, and the same epochs from the cache (stored
//! levels straight into the branch), all with the same model, batches and seed.
//!
//! Without `--backbone` the config's backbone is replaced by ViT-B/16 shapes with random
//! weights, written to a temporary folder (timing does not depend on the weights' values).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use serde::Serialize;

use crate::backbone::{VisionTransformer, VitConfig, save_vit_hf};
use crate::data::config::Split;
use crate::error::{Error, Result};
use crate::train::cache::{CacheDtype, CacheKey, CacheViews, ExtractOptions, extract};
use crate::train::config::RunConfig;
use crate::train::run::{TrainJob, train};

/// The figures of one cache benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct CacheBench {
    /// The method trained.
    pub method: String,
    /// Training clips.
    pub clips: usize,
    /// Epochs timed each way.
    pub epochs: usize,
    /// Seconds per epoch, decoding and running the backbone.
    pub live_epoch_s: f64,
    /// Seconds to extract the cache (one view per clip).
    pub extract_s: f64,
    /// Seconds per epoch from the cache.
    pub cached_epoch_s: f64,
    /// Bytes the cache takes on disk.
    pub cache_bytes: u64,
    /// Stored precision.
    pub dtype: CacheDtype,
}

impl std::fmt::Display for CacheBench {
    /// One line of figures (with the speed-up), then the figures as one line of JSON.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} on {} clips, {} epoch(s) each way: live {:.2} s/epoch, from the cache {:.3} s/epoch ({:.1}x); extraction {:.2} s once, {:.1} MiB ({:?})",
            self.method,
            self.clips,
            self.epochs,
            self.live_epoch_s,
            self.cached_epoch_s,
            self.live_epoch_s / self.cached_epoch_s.max(1e-9),
            self.extract_s,
            self.cache_bytes as f64 / (1 << 20) as f64,
            self.dtype
        )?;
        writeln!(f, "{}", serde_json::to_string(self).expect("json"))
    }
}

/// Runs the benchmark for `cfg` (read from `config_path`): `epochs` epochs live, the
/// extraction, `epochs` epochs from the cache; work files go to a temporary folder.
pub fn bench_cache(
    cfg: &RunConfig,
    config_path: &Path,
    backbone: Option<&str>,
    epochs: usize,
    dtype: CacheDtype,
    device: &Device,
) -> Result<CacheBench> {
    let tmp = std::env::temp_dir().join(format!("vidapter-bench-cache-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = run(cfg, config_path, backbone, epochs, dtype, &tmp, device);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn run(
    cfg: &RunConfig,
    config_path: &Path,
    backbone: Option<&str>,
    epochs: usize,
    dtype: CacheDtype,
    tmp: &Path,
    device: &Device,
) -> Result<CacheBench> {
    let mut cfg = cfg.clone();
    cfg.backbone = match backbone {
        Some(b) => b.to_string(),
        None => {
            let dir = tmp.join("vit_b16_random");
            let model = VisionTransformer::random(VitConfig::vit_base_patch16_224(), 0, device);
            save_vit_hf(&model, &dir)?;
            dir.to_string_lossy().into_owned()
        }
    };
    // The benchmark's spatial size is the backbone's unless the config says otherwise.
    let prep = crate::app::experiment::prepare(&cfg, config_path, device)?;
    let entries = crate::app::extract::split_entries(&cfg, config_path, Split::Train, false)?;
    let model = prep.model(&cfg, device);
    let epochs = epochs.max(1);
    let job = |out: PathBuf, cache: Option<PathBuf>| {
        let mut settings = cfg.train.clone();
        settings.epochs = epochs;
        settings.cache = cache;
        TrainJob {
            model: model.clone(),
            method: cfg.method.clone(),
            classes: prep.classes.clone(),
            backbone: prep.backbone_id.clone(),
            train: entries.clone(),
            val: None,
            spec: prep.spec.clone(),
            settings,
            out,
            run_config: serde_json::json!({}),
            stop_after: None,
            dist: None,
        }
    };
    let t0 = Instant::now();
    train(job(tmp.join("live"), None), device, false, true)?;
    let live = t0.elapsed().as_secs_f64();

    let dir = tmp.join("cache");
    let key = CacheKey::new(
        &prep.backbone_id,
        &model,
        &prep.spec,
        CacheViews::Train {
            count: 1,
            seed: cfg.train.seed,
        },
        dtype,
        "train",
        &entries,
    )?;
    let opts = ExtractOptions {
        batch_size: cfg.train.batch_size.max(1),
        workers: cfg.train.workers.max(1),
        progress: true,
        ..Default::default()
    };
    let t0 = Instant::now();
    extract(
        &model,
        &key,
        entries.clone(),
        &prep.spec,
        &dir,
        &opts,
        device,
    )?;
    let extract_s = t0.elapsed().as_secs_f64();
    let cache_bytes = std::fs::read_dir(&dir)
        .map_err(|e| Error::io(&dir, e))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();

    let t0 = Instant::now();
    train(job(tmp.join("cached"), Some(dir)), device, false, true)?;
    let cached = t0.elapsed().as_secs_f64();
    Ok(CacheBench {
        method: cfg.method.name().to_string(),
        clips: entries.len(),
        epochs,
        live_epoch_s: live / epochs as f64,
        extract_s,
        cached_epoch_s: cached / epochs as f64,
        cache_bytes,
        dtype,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_print_as_a_line_then_json() {
        let b = CacheBench {
            method: "evl".into(),
            clips: 12,
            epochs: 2,
            live_epoch_s: 3.0,
            extract_s: 4.0,
            cached_epoch_s: 0.5,
            cache_bytes: 3 << 20,
            dtype: CacheDtype::F16,
        };
        let text = b.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "evl on 12 clips, 2 epoch(s) each way: live 3.00 s/epoch, from the cache 0.500 s/epoch (6.0x); extraction 4.00 s once, 3.0 MiB (F16)"
        );
        let json: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(
            (json["clips"].as_u64(), json["dtype"].as_str()),
            (Some(12), Some("f16"))
        );
        assert_eq!(lines.len(), 2);
    }
}
