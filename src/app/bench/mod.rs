//! `vidapter bench`: vidapter against PyTorch on the same work, in the same run.
//!
//! Figures are ratios measured side by side (alternating rounds), never absolute targets:
//! the machine's load moves both sides alike. PyTorch is optional; without it only
//! vidapter's figures are printed.
//!
//! This file times the backbone's forward pass (`bench backbone`) and the data pipeline
//! (`bench data`); [`train`] times a training step of each method (`bench train`), [`cache`]
//! an epoch from the feature cache against live (`bench cache`), [`faces`] face detection
//! against onnxruntime and raw video to emotion timeline against real time (`bench faces`),
//! [`dist`] data-parallel training at 1 and N ranks (`bench dist`).

pub mod cache;
pub mod dist;
pub mod faces;
pub mod live;
pub mod ops;
pub mod train;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use serde::Serialize;

use crate::backbone::{VisionTransformer, VitConfig};
use crate::error::{Error, Result};

const TORCH_SCRIPT: &str = include_str!("../../../scripts/bench_backbone_torch.py");

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
    /// The MLP's first GEMM alone (`[frames*tokens, C] @ [C, 4C]`): GFLOP/s per side,
    /// the figure that says how much of the gap is matrix-multiply throughput.
    pub gemm_gflops: GemmFigures,
    /// One block's operations each timed alone (see [`ops`]).
    pub ops: Vec<ops::OpRow>,
    /// Transformer layers (the forward is about `layers` times the block).
    pub layers: usize,
}

/// GEMM throughput of both sides.
#[derive(Debug, Clone, Serialize)]
pub struct GemmFigures {
    /// Shape `[m, k] @ [k, n]`.
    pub shape: [usize; 3],
    /// vidapter's GFLOP/s at the median.
    pub vidapter: f64,
    /// PyTorch's GFLOP/s at the median, when it ran.
    pub pytorch: Option<f64>,
}

impl BackboneBench {
    /// `bench backbone`'s settings: one untimed iteration before each round, and the PyTorch
    /// side when `python` imports torch and transformers (else a note on standard error says
    /// that only vidapter is timed).
    pub fn with_python(
        frames: usize,
        size: usize,
        iters: usize,
        rounds: usize,
        python: String,
    ) -> Self {
        let python = if python_has_torch(&python) {
            Some(python)
        } else {
            tracing::warn!(
                target: crate::util::PROGRESS,
                "note: `{python}` cannot import torch and transformers; timing vidapter only"
            );
            None
        };
        BackboneBench {
            frames,
            size,
            iters,
            warmup: 1,
            rounds,
            python,
        }
    }
}

impl BackboneReport {
    /// The figures as printed: the model and clip, each side's time per clip and frames per
    /// second (vidapter's on `device`), the ratio, and the GEMM alone.
    pub fn render(&self, device: &str) -> String {
        let mut out = format!(
            "{}: {} frames at {} px\n",
            self.model, self.frames, self.size
        );
        out.push_str(&format!(
            "vidapter ({device}): {:8.1} ms/clip  {:7.1} frames/s\n",
            self.vidapter.median_ms, self.vidapter.frames_per_s
        ));
        if let (Some(p), Some(ratio)) = (&self.pytorch, self.ratio) {
            out.push_str(&format!(
                "PyTorch ({}): {:8.1} ms/clip  {:7.1} frames/s\n",
                self.pytorch_info.as_deref().unwrap_or("?"),
                p.median_ms,
                p.frames_per_s
            ));
            out.push_str(&format!("ratio vidapter/PyTorch time: {ratio:.2}\n"));
        }
        let g = &self.gemm_gflops;
        out.push_str(&format!(
            "GEMM {:?} alone: vidapter {:.1} GFLOP/s",
            g.shape, g.vidapter
        ));
        if let Some(p) = g.pytorch {
            out.push_str(&format!(", PyTorch {p:.1} GFLOP/s"));
        }
        out.push('\n');
        if !self.ops.is_empty() {
            out.push_str(&ops::render(&self.ops, self.layers));
        }
        out
    }
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
    let layers = config.num_layers;
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
    let tokens = opts.frames * ((opts.size / 16).pow(2) + 1);
    let gemm_shape = [tokens, 768, 3072];
    let ga = Tensor::<2>::random([tokens, 768], Distribution::Normal(0.0, 1.0), device);
    let gb = Tensor::<2>::random([768, 3072], Distribution::Normal(0.0, 1.0), device);
    let mut our_gemm = Vec::new();
    let mut their_gemm = Vec::new();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut info = None;
    let mut our_ops = vec![Vec::new(); ops::BLOCK_OPS.len()];
    let mut their_ops = vec![Vec::new(); ops::BLOCK_OPS.len()];
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
        for i in 0..opts.warmup + opts.iters {
            let t0 = Instant::now();
            let _ = ga.clone().matmul(gb.clone()).into_data();
            if i >= opts.warmup {
                our_gemm.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
        }
        for (all, new) in our_ops.iter_mut().zip(ops::time_block(
            opts.frames,
            tokens / opts.frames,
            opts.iters,
            device,
        )) {
            all.extend(new);
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
            let floats = |key: &str| -> Vec<f64> {
                v[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_f64())
                    .collect()
            };
            theirs.extend(floats("ms"));
            their_gemm.extend(floats("gemm_ms"));
            let names: Vec<&str> = v["op_names"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str())
                .collect();
            if names != ops::BLOCK_OPS {
                return Err(Error::Input(format!(
                    "the PyTorch benchmark timed the operations {names:?}, not {:?}",
                    ops::BLOCK_OPS
                )));
            }
            for (i, all) in their_ops.iter_mut().enumerate() {
                all.extend(
                    v["op_ms"][i]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_f64()),
                );
            }
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
    let flops = 2.0 * gemm_shape.iter().product::<usize>() as f64;
    let gflops = |ms: f64| flops / (ms * 1e6);
    let gemm_gflops = GemmFigures {
        shape: gemm_shape,
        vidapter: gflops(median(&our_gemm)),
        pytorch: (!their_gemm.is_empty()).then(|| gflops(median(&their_gemm))),
    };
    let flops = ops::block_flops(opts.frames, tokens / opts.frames);
    let ops = ops::BLOCK_OPS
        .iter()
        .enumerate()
        .map(|(i, op)| ops::OpRow {
            op: op.to_string(),
            vidapter_ms: median(&our_ops[i]),
            pytorch_ms: (!their_ops[i].is_empty()).then(|| median(&their_ops[i])),
            flops: flops[i],
        })
        .collect();
    Ok(BackboneReport {
        model: format!("ViT-B/16 (random weights) {hf_config}"),
        frames: opts.frames,
        size: opts.size,
        vidapter,
        pytorch,
        pytorch_info: info,
        ratio,
        gemm_gflops,
        ops,
        layers,
    })
}

fn write_script() -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("vidapter_bench_torch_{}.py", std::process::id()));
    std::fs::write(&path, TORCH_SCRIPT).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

const DATA_SCRIPT: &str = include_str!("../../../scripts/bench_data_python.py");

/// What `bench data` times.
#[derive(Debug, Clone)]
pub struct DataBench {
    /// Number of generated H.264 videos.
    pub videos: usize,
    /// Seconds per video (25 fps, 320x240).
    pub seconds: usize,
    /// Passes over the videos per measurement.
    pub repeats: usize,
    /// Frames per clip.
    pub frames: usize,
    /// Output side.
    pub size: usize,
    /// Worker counts to measure.
    pub workers: Vec<usize>,
    /// Python with PyAV and/or decord (and torch); `None` skips Python.
    pub python: Option<String>,
}

impl DataBench {
    /// `bench data`'s settings: T=8 frames at 224 px, with 1 and 2 workers, and the Python
    /// side when `python` imports torch (else a note on standard error says that only vidapter
    /// is timed).
    pub fn with_python(videos: usize, seconds: usize, repeats: usize, python: String) -> Self {
        let has_torch = python_has_torch(&python);
        if !has_torch {
            tracing::warn!(target: crate::util::PROGRESS, "note: `{python}` cannot import torch; timing vidapter only");
        }
        DataBench {
            videos,
            seconds,
            repeats,
            frames: 8,
            size: 224,
            workers: vec![1, 2],
            python: has_torch.then_some(python),
        }
    }

    /// The figures of `rows` as printed: what was timed, then clips/s per worker count and
    /// side (`-` for a side that did not run).
    pub fn render(&self, rows: &[DataRow]) -> String {
        let mut out = format!(
            "decode + sample + transform, T={}, {} px, {} H.264 videos 320x240 x {} s, {} passes\n",
            self.frames, self.size, self.videos, self.seconds, self.repeats
        );
        out.push_str(&format!(
            "{:>8} {:>16} {:>16} {:>16}\n",
            "workers", "vidapter clip/s", "PyAV clip/s", "decord clip/s"
        ));
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
        for r in rows {
            out.push_str(&format!(
                "{:>8} {:>16.1} {:>16} {:>16}\n",
                r.workers,
                r.vidapter,
                fmt(r.pyav),
                fmt(r.decord)
            ));
        }
        out
    }
}

/// One row: a worker count and each side's clips per second.
#[derive(Debug, Clone, Serialize)]
pub struct DataRow {
    /// Decode workers (threads for vidapter, processes for Python).
    pub workers: usize,
    /// vidapter clips/s.
    pub vidapter: f64,
    /// PyAV clips/s, when it ran.
    pub pyav: Option<f64>,
    /// decord clips/s, when it ran.
    pub decord: Option<f64>,
}

/// Decode + sample + transform throughput on real H.264 files (T frames, 224 px).
pub fn bench_data(opts: &DataBench) -> Result<Vec<DataRow>> {
    use crate::data::decode::DecodeOptions;
    use crate::data::loader::{ClipSpec, LoaderConfig, Views, epoch};
    use crate::data::sampling::Sampling;
    use crate::data::transform::SpatialConfig;
    use crate::data::{Entry, Source};
    use std::sync::Arc;

    let dir = std::env::temp_dir().join(format!("vidapter_bench_data_{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut paths = Vec::new();
    for i in 0..opts.videos {
        let path = dir.join(format!("v{i:03}.mp4"));
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size=320x240:rate=25,hue=h={}", i * 37))
            .args([
                "-t",
                &opts.seconds.to_string(),
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
            ])
            .arg(&path)
            .status()
            .map_err(|e| {
                Error::Input(format!(
                    "`ffmpeg` is needed to make the benchmark's videos: {e}"
                ))
            })?;
        if !status.success() {
            return Err(Error::Input(format!(
                "ffmpeg could not write {}",
                path.display()
            )));
        }
        paths.push(path);
    }
    let entries: Arc<Vec<Entry>> = Arc::new(
        paths
            .iter()
            .map(|p| Entry {
                source: Source::Video(p.clone()),
                labels: vec![0],
                origin: None,
            })
            .collect(),
    );
    let spec = Arc::new(ClipSpec {
        sampling: Sampling::Segment {
            frames: opts.frames,
        },
        spatial: SpatialConfig {
            size: opts.size,
            short_side: 256,
            area: [0.25, 1.0],
            ratio: [1.0, 1.0],
            flip: true,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        },
    });
    let script =
        std::env::temp_dir().join(format!("vidapter_bench_data_{}.py", std::process::id()));
    std::fs::write(&script, DATA_SCRIPT).map_err(|e| Error::io(&script, e))?;
    let python_run = |backend: &str, workers: usize| -> Option<f64> {
        let py = opts.python.as_ref()?;
        let args = serde_json::json!({
            "videos": paths, "backend": backend, "workers": workers, "frames": opts.frames,
            "size": opts.size, "short_side": 256, "repeats": opts.repeats,
        });
        let out = Command::new(py)
            .arg(&script)
            .arg(args.to_string())
            .output()
            .ok()?;
        if !out.status.success() {
            tracing::warn!(
                "{backend} benchmark failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(v["clips"].as_f64()? / v["seconds"].as_f64()?)
    };
    let mut rows = Vec::new();
    for &workers in &opts.workers {
        let cfg = LoaderConfig {
            batch_size: 1,
            workers,
            prefetch: 2,
            seed: 0,
            shuffle: true,
            views: Views::Train,
            strict: true,
            decode: DecodeOptions::default(),
        };
        let t0 = Instant::now();
        let mut clips = 0usize;
        for e in 0..opts.repeats as u64 {
            for batch in epoch(entries.clone(), spec.clone(), &cfg, e) {
                clips += batch
                    .map_err(|p| Error::Input(p.to_string()))?
                    .entries
                    .len();
            }
        }
        let ours = clips as f64 / t0.elapsed().as_secs_f64();
        rows.push(DataRow {
            workers,
            vidapter: ours,
            pyav: python_run("pyav", workers),
            decord: python_run("decord", workers),
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&script);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(median_ms: f64) -> Side {
        Side {
            median_ms,
            frames_per_s: 8000.0 / median_ms,
            samples_ms: vec![median_ms],
        }
    }

    #[test]
    fn the_backbone_figures_show_pytorch_only_when_it_ran() {
        let mut report = BackboneReport {
            model: "ViT-B/16".into(),
            frames: 8,
            size: 224,
            vidapter: side(200.0),
            pytorch: None,
            pytorch_info: None,
            ratio: None,
            gemm_gflops: GemmFigures {
                shape: [1576, 768, 3072],
                vidapter: 150.0,
                pytorch: None,
            },
            ops: Vec::new(),
            layers: 12,
        };
        assert_eq!(
            report.render("cpu"),
            "ViT-B/16: 8 frames at 224 px\n\
             vidapter (cpu):    200.0 ms/clip     40.0 frames/s\n\
             GEMM [1576, 768, 3072] alone: vidapter 150.0 GFLOP/s\n"
        );
        report.pytorch = Some(side(100.0));
        report.pytorch_info = Some("torch 2.4 (4 threads)".into());
        report.ratio = Some(2.0);
        report.gemm_gflops.pytorch = Some(300.0);
        let text = report.render("cpu");
        assert!(
            text.contains(
                "\nPyTorch (torch 2.4 (4 threads)):    100.0 ms/clip     80.0 frames/s\n\
                 ratio vidapter/PyTorch time: 2.00\n"
            ) && text.ends_with(", PyTorch 300.0 GFLOP/s\n"),
            "{text}"
        );
    }

    #[test]
    fn the_data_table_marks_sides_that_did_not_run() {
        let bench = DataBench {
            videos: 8,
            seconds: 4,
            repeats: 3,
            frames: 8,
            size: 224,
            workers: vec![1],
            python: None,
        };
        let rows = [DataRow {
            workers: 1,
            vidapter: 12.34,
            pyav: Some(10.0),
            decord: None,
        }];
        assert_eq!(
            bench.render(&rows),
            "decode + sample + transform, T=8, 224 px, 8 H.264 videos 320x240 x 4 s, 3 passes\n \
             workers  vidapter clip/s      PyAV clip/s    decord clip/s\n       \
             1             12.3             10.0                -\n"
        );
    }
}
