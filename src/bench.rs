//! `vidapter bench`: vidapter against PyTorch on the same work, in the same run.
//!
//! Figures are ratios measured side by side (alternating rounds), never absolute targets:
//! the machine's load moves both sides alike. PyTorch is optional; without it only
//! vidapter's figures are printed.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use serde::Serialize;

use crate::backbone::{VisionTransformer, VitConfig};
use crate::error::{Error, Result};

const TORCH_SCRIPT: &str = include_str!("../scripts/bench_backbone_torch.py");

/// What to time.
#[derive(Debug, Clone)]
pub struct BackboneBench {
    /// Frames per forward (one clip).
    pub frames: usize,
    /// Input side in pixels.
    pub size: usize,
    /// Timed iterations per round and side.
    pub iters: usize,
    /// Untimed iterations before each round.
    pub warmup: usize,
    /// Alternating rounds (vidapter, then PyTorch).
    pub rounds: usize,
    /// Python interpreter with torch + transformers; `None` skips PyTorch.
    pub python: Option<String>,
}

/// One side's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// Median milliseconds per forward.
    pub median_ms: f64,
    /// Frames per second at the median.
    pub frames_per_s: f64,
    /// Every timed iteration, in ms.
    pub samples_ms: Vec<f64>,
}

/// The benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct BackboneReport {
    /// Model described (HF config fields).
    pub model: String,
    /// Frames per forward.
    pub frames: usize,
    /// Input side.
    pub size: usize,
    /// vidapter's figures.
    pub vidapter: Side,
    /// PyTorch's figures, when it ran.
    pub pytorch: Option<Side>,
    /// PyTorch's version and threads, when it ran.
    pub pytorch_info: Option<String>,
    /// vidapter time / PyTorch time (lower is better for vidapter).
    pub ratio: Option<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn side(samples: Vec<f64>, frames: usize) -> Side {
    let m = median(&samples);
    Side {
        median_ms: m,
        frames_per_s: frames as f64 * 1000.0 / m,
        samples_ms: samples,
    }
}

/// Whether `python` can import torch and transformers.
pub fn python_has_torch(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import torch, transformers"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Times the ViT-B/16 forward (random weights) on one clip of `frames` frames.
pub fn bench_backbone(opts: &BackboneBench, device: &Device) -> Result<BackboneReport> {
    let config = VitConfig::vit_base_patch16_224();
    let hf_config = serde_json::json!({
        "hidden_size": config.hidden_size, "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads, "intermediate_size": config.intermediate_size,
        "image_size": config.image_size, "patch_size": config.patch_size,
    });
    let model = VisionTransformer::random(config, 0, device);
    let x = Tensor::<4>::random(
        [opts.frames, 3, opts.size, opts.size],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let script = write_script()?;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut info = None;
    for _ in 0..opts.rounds.max(1) {
        for i in 0..opts.warmup + opts.iters {
            let t0 = Instant::now();
            let out = model.forward(x.clone(), &[]);
            let _ = out.pooler_output.into_data();
            let dt = t0.elapsed().as_secs_f64() * 1000.0;
            if i >= opts.warmup {
                ours.push(dt);
            }
        }
        if let Some(py) = &opts.python {
            let args = serde_json::json!({
                "config": hf_config, "frames": opts.frames, "size": opts.size,
                "iters": opts.iters, "warmup": opts.warmup,
            });
            let out = Command::new(py)
                .arg(&script)
                .arg(args.to_string())
                .output()
                .map_err(|e| Error::Input(format!("running {py}: {e}")))?;
            if !out.status.success() {
                return Err(Error::Input(format!(
                    "the PyTorch benchmark failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            let line = String::from_utf8_lossy(&out.stdout);
            let v: serde_json::Value =
                serde_json::from_str(line.trim().lines().last().unwrap_or("")).map_err(|e| {
                    Error::Input(format!("unreadable PyTorch benchmark output `{line}`: {e}"))
                })?;
            theirs.extend(
                v["ms"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_f64()),
            );
            info = Some(format!(
                "torch {} ({} threads)",
                v["torch"].as_str().unwrap_or("?"),
                v["threads"]
            ));
        }
    }
    let vidapter = side(ours, opts.frames);
    let pytorch = (!theirs.is_empty()).then(|| side(theirs, opts.frames));
    let ratio = pytorch.as_ref().map(|p| vidapter.median_ms / p.median_ms);
    Ok(BackboneReport {
        model: format!("ViT-B/16 (random weights) {hf_config}"),
        frames: opts.frames,
        size: opts.size,
        vidapter,
        pytorch,
        pytorch_info: info,
        ratio,
    })
}

fn write_script() -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("vidapter_bench_torch_{}.py", std::process::id()));
    std::fs::write(&path, TORCH_SCRIPT).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}
