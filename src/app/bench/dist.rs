//! `vidapter bench dist`: what data-parallel training buys on this machine. The same run
//! config is trained for one epoch at 1 rank and at each larger rank count (`vidapter train
//! --nproc N`, each rank with `--threads` CPU threads, the per-rank batch fixed, so the global
//! batch grows with N), and the figures come from the runs' own step records: seconds per
//! optimiser step, clips per second, scaling efficiency (throughput at N ranks over N times
//! the 1-rank throughput, both from this run), and the bytes each rank all-reduces per step
//! with the time that takes.
//!
//! Without `--backbone` the config's backbone is replaced by ViT-B/16 shapes with random
//! weights, written to a temporary folder (timing does not depend on the weights' values).
//! The first step of each run (start-up, first decode) is left out of the averages.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::Device;
use serde::Serialize;

use crate::backbone::{VisionTransformer, VitConfig, save_vit_hf};
use crate::error::{Error, Result};

/// What to run.
#[derive(Debug, Clone)]
pub struct DistBench {
    /// Run config.
    pub config: PathBuf,
    /// Backbone override (default: ViT-B/16 shapes, random weights).
    pub backbone: Option<String>,
    /// Rank counts; 1 is always run first (the reference).
    pub ranks: Vec<usize>,
    /// CPU threads per rank.
    pub threads: usize,
    /// Config overrides (`--set`), passed on to each run.
    pub set: Vec<String>,
    /// This executable.
    pub exe: PathBuf,
}

/// The figures of one rank count.
#[derive(Debug, Clone, Serialize)]
pub struct DistRow {
    /// Processes.
    pub ranks: usize,
    /// Optimiser steps averaged (the first of the run left out).
    pub steps: usize,
    /// Mean seconds per optimiser step.
    pub step_s: f64,
    /// Clips per second over all ranks.
    pub clips_per_s: f64,
    /// Throughput over `ranks` times the 1-rank throughput.
    pub efficiency: f64,
    /// Bytes each rank all-reduced per step (0 for one rank).
    pub allreduce_bytes: usize,
    /// Mean milliseconds of that all-reduce (host copies included).
    pub allreduce_ms: f64,
}

/// The benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct DistReport {
    /// Method of the config.
    pub method: String,
    /// Trainable parameters.
    pub trainable: usize,
    /// Per-rank batch.
    pub batch: usize,
    /// Threads per rank.
    pub threads: usize,
    /// One row per rank count.
    pub rows: Vec<DistRow>,
}

impl std::fmt::Display for DistReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} trainable parameters, batch {} per rank, {} thread(s) per rank",
            self.method, self.trainable, self.batch, self.threads
        )?;
        writeln!(
            f,
            "| ranks | steps | s/step | clips/s | scaling efficiency | all-reduce per step |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|")?;
        for r in &self.rows {
            let reduce = if r.ranks == 1 {
                "none".to_string()
            } else {
                format!(
                    "{:.1} KiB in {:.2} ms",
                    r.allreduce_bytes as f64 / 1024.0,
                    r.allreduce_ms
                )
            };
            writeln!(
                f,
                "| {} | {} | {:.3} | {:.2} | {:.0}% | {reduce} |",
                r.ranks,
                r.steps,
                r.step_s,
                r.clips_per_s,
                r.efficiency * 100.0
            )?;
        }
        writeln!(f, "{}", serde_json::to_string(self).expect("json"))
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |a, x| a + x) / v.len().max(1) as f64
}

/// The step records of a run folder's log, the first left out.
fn steps(run: &Path) -> Result<Vec<serde_json::Value>> {
    let log = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&log).map_err(|e| Error::io(&log, e))?;
    let steps: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "step")
        .skip(1)
        .collect();
    if steps.is_empty() {
        return Err(Error::Input(format!(
            "{}: fewer than two optimiser steps were logged; give the run more training clips (or a smaller batch) to time",
            log.display()
        )));
    }
    Ok(steps)
}

fn field(steps: &[serde_json::Value], name: &str) -> Vec<f64> {
    steps.iter().filter_map(|s| s[name].as_f64()).collect()
}

/// Runs the benchmark; work files go to a temporary folder.
///
/// # Errors
/// A run that fails (its output is shown), or a config that cannot be read.
pub fn bench_dist(opts: &DistBench, device: &Device) -> Result<DistReport> {
    let tmp = std::env::temp_dir().join(format!("vidapter-bench-dist-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = run(opts, &tmp, device);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn run(opts: &DistBench, tmp: &Path, device: &Device) -> Result<DistReport> {
    let backbone = match &opts.backbone {
        Some(b) => b.clone(),
        None => {
            let dir = tmp.join("vit_b16_random");
            let model = VisionTransformer::random(VitConfig::vit_base_patch16_224(), 0, device);
            save_vit_hf(&model, &dir)?;
            dir.to_string_lossy().into_owned()
        }
    };
    let mut set = opts.set.clone();
    set.push(format!("backbone={:?}", backbone));
    let cfg = crate::app::args::run_config(&opts.config, &set, Vec::new())?;
    let mut ranks = vec![1];
    ranks.extend(opts.ranks.iter().copied().filter(|&r| r > 1));
    ranks.dedup();
    let mut rows: Vec<DistRow> = Vec::new();
    let mut trainable = 0;
    for &n in &ranks {
        let out = tmp.join(format!("ranks{n}"));
        let mut cmd = Command::new(&opts.exe);
        cmd.args(["train", "-q"])
            .arg(&opts.config)
            // One epoch of two: the schedule does not matter, and no test pass follows.
            .args([
                "--epochs",
                "2",
                "--stop-after",
                "1",
                "--nproc",
                &n.to_string(),
            ])
            .arg("--out")
            .arg(&out)
            .env("RAYON_NUM_THREADS", opts.threads.to_string())
            .env_remove("WORLD_SIZE")
            .env_remove("MASTER_PORT");
        for s in &set {
            cmd.args(["--set", s]);
        }
        tracing::info!(target: crate::util::PROGRESS, "training one epoch on {n} rank(s) ...");
        let o = cmd
            .output()
            .map_err(|e| Error::Input(format!("cannot run {}: {e}", opts.exe.display())))?;
        if !o.status.success() {
            return Err(Error::Input(format!(
                "the {n}-rank run failed:\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )));
        }
        if trainable == 0 {
            let report: serde_json::Value = std::fs::read_to_string(out.join("report.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            trainable = report["train"]["params"][0].as_u64().unwrap_or(0) as usize;
        }
        let s = steps(&out)?;
        let clips_per_s = mean(&field(&s, "clips_per_s"));
        let base = rows.first().map_or(clips_per_s, |r| r.clips_per_s);
        rows.push(DistRow {
            ranks: n,
            steps: s.len(),
            step_s: mean(&field(&s, "step_s")),
            clips_per_s,
            efficiency: clips_per_s / (n as f64 * base).max(1e-12),
            allreduce_bytes: field(&s, "allreduce_bytes").first().copied().unwrap_or(0.0) as usize,
            allreduce_ms: mean(&field(&s, "allreduce_ms")),
        });
    }
    Ok(DistReport {
        method: cfg.method.name().to_string(),
        trainable,
        batch: cfg.train.batch_size,
        threads: opts.threads,
        rows,
    })
}
