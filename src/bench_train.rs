//! `vidapter bench train`: one training step (forward, backward, AdamW) of each method on the
//! same backbone, batch and clip size — step time, clips/s and peak memory.
//!
//! Peak memory is the process's own accounting (Linux `VmHWM`, the resident high-water mark),
//! never an estimate. Since a high-water mark only grows, every method runs in a child
//! process of its own (`vidapter bench train-step`, started by [`bench_train`]); each child
//! also reports its resident memory after the model is built, so the table can separate what
//! training adds from the weights themselves.
//!
//! What should move, and by how much (methods.md): in-backbone methods keep the activations
//! of every block for the backward pass, so their training memory grows with frames x tokens x
//! blocks; the side branch (linear probe here; M-adapter, EVL) runs the backbone without
//! autodiff and should need a fraction of it. Full fine-tuning adds gradients and two AdamW
//! moments for every backbone weight (3x the weights' size) on top of the in-backbone
//! activations.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::backbone::{Backbone, VisionTransformer, VitConfig};
use crate::error::{Error, Result};
use crate::methods::{MethodConfig, VideoClassifier};
use crate::train::loss::cross_entropy;
use crate::train::optim::{AdamW, GradBuffer, OptimConfig};
use crate::train::run::peak_rss_bytes;

/// One method's step, measured in its own process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepFigures {
    /// The method.
    pub method: String,
    /// Trainable parameters.
    pub trainable: usize,
    /// All parameters.
    pub total: usize,
    /// Median seconds per training step (forward + backward + update).
    pub step_s: f64,
    /// Clips per second at the median.
    pub clips_per_s: f64,
    /// Resident memory after building the model, bytes.
    pub rss_model_bytes: u64,
    /// Peak resident memory over the steps, bytes.
    pub peak_bytes: u64,
}

/// Settings of a step benchmark.
#[derive(Debug, Clone)]
pub struct StepBench {
    /// Backbone folder / hub id; `None`: ViT-B/16 shapes with random weights.
    pub backbone: Option<String>,
    /// Clips per step.
    pub batch: usize,
    /// Frames per clip.
    pub frames: usize,
    /// Input side (default: the backbone's).
    pub size: Option<usize>,
    /// Timed steps (after one untimed).
    pub steps: usize,
    /// Head classes.
    pub classes: usize,
}

/// Runs the steps of `method` in this process (the child side of [`bench_train`]).
pub fn train_step(method: &MethodConfig, opts: &StepBench, device: &Device) -> Result<StepFigures> {
    let backbone = match &opts.backbone {
        Some(spec) => Backbone::load(spec, device)?.model,
        None => VisionTransformer::random(VitConfig::vit_base_patch16_224(), 0, device),
    };
    method
        .validate_for(backbone.config())
        .map_err(|(f, r)| Error::Input(format!("method field `{f}`: {r}")))?;
    let size = opts.size.unwrap_or(backbone.config().image_size);
    let model = VideoClassifier::new(backbone, method, opts.classes, 0, device);
    let (trainable, total) = model.param_totals();
    let ad = device.clone().autodiff();
    let mut model = model.fork(&ad).train();
    let rss_model_bytes = crate::util::proc_status_bytes("VmRSS").unwrap_or(0);
    let cfg = OptimConfig {
        lr: 1e-4,
        weight_decay: 0.05,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        warmup_steps: 0,
        total_steps: opts.steps + 1,
        min_lr: 0.0,
        clip_grad_norm: 0.0,
        backbone_lr_scale: 1.0,
    };
    let mut optim = AdamW::default();
    let targets: Vec<usize> = (0..opts.batch).map(|i| i % opts.classes).collect();
    let mut times = Vec::new();
    for step in 0..=opts.steps {
        let x = Tensor::<5>::random(
            [opts.batch, opts.frames, 3, size, size],
            Distribution::Normal(0.0, 1.0),
            &ad,
        );
        let t0 = Instant::now();
        let loss = cross_entropy(model.forward(x, Some(step as u64)), &targets, 0.0);
        let grads = loss.backward();
        let mut buffer = GradBuffer::default();
        buffer.accumulate(&model, &grads);
        drop(grads);
        let (m, _) = optim.step(model, &mut buffer, &cfg);
        model = m;
        let _ = device.sync();
        if step > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let step_s = times[times.len() / 2];
    Ok(StepFigures {
        method: method.name().to_string(),
        trainable,
        total,
        step_s,
        clips_per_s: opts.batch as f64 / step_s,
        rss_model_bytes,
        peak_bytes: peak_rss_bytes().unwrap_or(0),
    })
}

/// Runs [`train_step`] for each method in a child process of `exe` (this binary) and collects
/// the figures.
pub fn bench_train(
    exe: &Path,
    methods: &[String],
    opts: &StepBench,
    device_name: &str,
    mut progress: impl FnMut(&str),
) -> Result<Vec<StepFigures>> {
    let mut out = Vec::new();
    for m in methods {
        progress(m);
        let mut cmd = Command::new(exe);
        cmd.args([
            "--device",
            device_name,
            "-q",
            "bench",
            "train-step",
            "--method",
            m,
        ])
        .args(["--batch", &opts.batch.to_string()])
        .args(["--frames", &opts.frames.to_string()])
        .args(["--steps", &opts.steps.to_string()])
        .args(["--classes", &opts.classes.to_string()]);
        if let Some(b) = &opts.backbone {
            cmd.args(["--backbone", b]);
        }
        if let Some(s) = opts.size {
            cmd.args(["--size", &s.to_string()]);
        }
        let o = cmd
            .output()
            .map_err(|e| Error::Input(format!("cannot start {}: {e}", exe.display())))?;
        if !o.status.success() {
            return Err(Error::Input(format!(
                "bench train-step --method {m} failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
        let figures: StepFigures = serde_json::from_slice(&o.stdout).map_err(|e| {
            Error::Input(format!(
                "bench train-step --method {m} printed no figures ({e}): {}",
                String::from_utf8_lossy(&o.stdout)
            ))
        })?;
        out.push(figures);
    }
    Ok(out)
}
