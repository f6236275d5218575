//! `vidapter bench train`: one training step (forward, backward, AdamW) and the forward pass
//! alone of each method on the same backbone, batch and clip size — step time, forward time,
//! clips/s and peak memory — in vidapter and, with `--torch`, in the PyTorch reference
//! (`reference/vidapter_ref`) in the same run, method by method, alternating sides.
//!
//! Peak memory is the process's own accounting (Linux `VmHWM`, the resident high-water mark;
//! PyTorch's side reads `ru_maxrss`, the same figure), never an estimate. Since a high-water
//! mark only grows, every method runs in a child process of its own on each side: vidapter's
//! is `vidapter bench train-step` ([`train_step`]), PyTorch's is
//! `scripts/bench_train_torch.py` (compiled into the binary). Each child reports its resident
//! memory before building anything (the runtime: for PyTorch, the interpreter with torch and
//! transformers imported) and once the model is built, so the table can separate the
//! runtime, the weights and what training adds. Both children time the training steps first
//! and read the peak before timing the forward passes, so the peak is the training peak.
//!
//! Same work on both sides: the `[method]` table vidapter resolved (every field) is what the
//! reference builds, on a random-weight transformers model of the backbone's config.json;
//! the same batch, frames, input side, classes, loss (label smoothing
//! [`LABEL_SMOOTHING`]), optimiser settings (AdamW, lr 1e-4, weight decay 0.05 on tensors of
//! two or more dimensions) and thread count (`RAYON_NUM_THREADS` for vidapter's CPU backend,
//! `torch.set_num_threads` for PyTorch).
//!
//! On a GPU (`--device vulkan|cuda`, with `--torch-device cuda` for the reference) the times
//! are taken after synchronising the device (vidapter: `Device::sync`; PyTorch:
//! `torch.cuda.synchronize`), and device memory is reported beside the host's: PyTorch's
//! `torch.cuda.max_memory_reserved` / `max_memory_allocated`, vidapter's largest
//! `Device::memory_pool_usage().bytes_reserved` read after each synchronised training step
//! (what burn's allocator holds; `None`, shown as "not measured", where the backend does not
//! report it, e.g. the CPU). [`check_torch_device`] refuses comparing a CPU side with a GPU
//! side.
//!
//! What should move, and by how much (methods.md): in-backbone methods keep the activations
//! of every block for the backward pass, so their training memory grows with frames x tokens x
//! blocks; the side branch (linear probe here; M-adapter, EVL) runs the backbone without
//! autodiff and should need a fraction of it. Full fine-tuning adds gradients and two AdamW
//! moments for every backbone weight (3x the weights' size) on top of the in-backbone
//! activations.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::backbone::{Backbone, VisionTransformer, VitConfig};
use crate::error::{Error, Result};
use crate::methods::{MethodConfig, VideoClassifier};
use crate::train::optim::{AdamW, OptimConfig};
use crate::train::step::{Inputs, Stepper, classifier_loss};
use crate::util::peak_rss_bytes;

/// The PyTorch side, compiled in so that the binary runs it from anywhere.
const TORCH_SCRIPT: &str = include_str!("../../../scripts/bench_train_torch.py");

/// Label smoothing of the benchmarked loss, on both sides (the trainers' usual setting).
pub const LABEL_SMOOTHING: f64 = 0.1;

/// One method's figures on one side, measured in a process of its own.
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
    /// Clips per second of training at the median step.
    pub clips_per_s: f64,
    /// Median seconds per forward pass alone (no autodiff / `torch.inference_mode`).
    pub forward_s: f64,
    /// Resident memory before building anything (the runtime itself), bytes.
    pub rss_start_bytes: u64,
    /// Resident memory after building the model, bytes.
    pub rss_model_bytes: u64,
    /// Peak resident memory over the training steps (the process's high-water mark), bytes.
    pub peak_bytes: u64,
    /// GPU memory held by the allocator over the training steps, bytes: PyTorch's
    /// `torch.cuda.max_memory_reserved()`; vidapter's largest
    /// `memory_pool_usage().bytes_reserved` read after each synchronised step. `None` on the
    /// CPU or where the backend does not report it.
    #[serde(default)]
    pub gpu_peak_bytes: Option<u64>,
}

impl StepFigures {
    /// What training adds on top of the built model: peak minus resident memory after the
    /// build, bytes.
    pub fn training_bytes(&self) -> u64 {
        self.peak_bytes.saturating_sub(self.rss_model_bytes)
    }
}

/// What vidapter's child prints: its figures, the method table it ran and the input side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildReport {
    /// The figures.
    #[serde(flatten)]
    pub figures: StepFigures,
    /// The `[method]` table as resolved (defaults filled in): what the reference builds.
    pub config: MethodConfig,
    /// Input side used, pixels.
    pub size: usize,
}

/// PyTorch's figures for one method (`scripts/bench_train_torch.py`'s JSON line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TorchFigures {
    /// The figures, same meanings as vidapter's (`rss_start_bytes`: after importing torch and
    /// transformers; `peak_bytes`: `ru_maxrss`).
    #[serde(flatten)]
    pub figures: StepFigures,
    /// `torch.__version__`.
    pub torch: String,
    /// `transformers.__version__`.
    pub transformers: String,
    /// `torch.get_num_threads()` while timing.
    pub threads: usize,
    /// The transformers attention implementation (`eager`, as the reference loads models).
    pub attn_implementation: String,
    /// The torch device it ran on (`cpu`, `cuda`, `cuda:1`, ...).
    #[serde(default = "cpu_name")]
    pub device: String,
    /// `torch.cuda.max_memory_allocated()` over the training steps (tensors alone, without
    /// the caching allocator's spare blocks), bytes; `None` on the CPU.
    #[serde(default)]
    pub gpu_peak_allocated_bytes: Option<u64>,
}

fn cpu_name() -> String {
    "cpu".into()
}

/// vidapter / PyTorch for one method: below 1 means vidapter takes less time or memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratios {
    /// Training step time.
    pub step: f64,
    /// Forward time.
    pub forward: f64,
    /// Peak resident memory (each side's runtime included).
    pub peak: f64,
    /// Peak minus resident memory after the build (what training adds).
    pub training_memory: f64,
    /// GPU memory held by the allocator, when both sides report it.
    #[serde(default)]
    pub gpu_peak: Option<f64>,
}

/// One method, both sides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MethodRow {
    /// The method's name.
    pub method: String,
    /// vidapter's figures.
    pub vidapter: StepFigures,
    /// PyTorch's figures, when PyTorch ran this method.
    pub pytorch: Option<TorchFigures>,
    /// Why `pytorch` is missing although PyTorch was asked for (`reference lacks it`, or
    /// what failed).
    pub pytorch_error: Option<String>,
    /// vidapter / PyTorch, when both ran.
    pub ratios: Option<Ratios>,
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// Logical cores available to this process.
    pub cores: usize,
    /// `model name` of /proc/cpuinfo (`unknown` where there is none).
    pub cpu_model: String,
    /// Operating system and architecture, e.g. `linux x86_64`.
    pub os: String,
}

impl Machine {
    /// This machine.
    pub fn this() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// The benchmark's result: what `--json` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// Where it ran.
    pub machine: Machine,
    /// The command line that produced it.
    pub command_line: Vec<String>,
    /// vidapter's device (`cpu`, `cuda:0`, ...).
    pub device: String,
    /// The backbone (`--backbone`, or ViT-B/16 shapes with random weights).
    pub backbone: String,
    /// Clips per step.
    pub batch: usize,
    /// Frames per clip.
    pub frames: usize,
    /// Input side asked for (`None`: each backbone's own).
    pub size: Option<usize>,
    /// Timed steps and forward passes per method and side (after one untimed).
    pub steps: usize,
    /// Head classes.
    pub classes: usize,
    /// Label smoothing of the loss.
    pub label_smoothing: f64,
    /// CPU threads of both sides.
    pub threads: usize,
    /// Whether `--torch` asked for PyTorch.
    pub torch_requested: bool,
    /// The torch device of the PyTorch side (`--torch-device`).
    #[serde(default = "cpu_name")]
    pub torch_device: String,
    /// Why PyTorch did not run at all, when it was asked for and could not.
    pub torch_unavailable: Option<String>,
    /// The Python interpreter used for PyTorch.
    pub python: Option<String>,
    /// `torch.__version__` of the PyTorch side, when it ran a method.
    pub torch_version: Option<String>,
    /// One row per method, in the order asked for.
    pub rows: Vec<MethodRow>,
}

/// Settings of a step benchmark (one method, one side).
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

/// Where the PyTorch side comes from.
#[derive(Debug, Clone)]
pub struct TorchSide {
    /// A Python interpreter that imports torch and transformers.
    pub python: String,
    /// The folder holding the `vidapter_ref` package.
    pub reference: PathBuf,
}

/// The whole benchmark: which methods, on which device, with which threads, against what.
#[derive(Debug, Clone)]
pub struct TrainBench {
    /// Methods: names, or run configs whose `[method]` is used.
    pub methods: Vec<String>,
    /// Backbone, batch, clip and step settings.
    pub step: StepBench,
    /// vidapter's `--device`.
    pub device: String,
    /// The PyTorch side's torch device (`cpu`, `cuda[:N]`); see [`check_torch_device`].
    pub torch_device: String,
    /// CPU threads of both sides.
    pub threads: usize,
    /// `None`: PyTorch not asked for; otherwise the PyTorch side, or why there can be none.
    pub torch: Option<std::result::Result<TorchSide, String>>,
}

impl TrainBench {
    /// The benchmark a command line asks for: `threads` defaults to [`default_threads`] and
    /// must be at least 1; with `torch` (PyTorch asked for, through `python`) `torch_device`
    /// must suit `device` ([`check_torch_device`]), and when no PyTorch side can run
    /// ([`find_torch`]) a note on standard error says that only vidapter is timed.
    ///
    /// # Errors
    /// `threads` of 0; a torch device unlike `device`.
    pub fn new(
        methods: Vec<String>,
        step: StepBench,
        device: &str,
        torch_device: String,
        threads: Option<usize>,
        torch: Option<String>,
    ) -> Result<Self> {
        if threads == Some(0) {
            return Err(Error::Input("--threads must be at least 1".into()));
        }
        if torch.is_some() {
            check_torch_device(device, &torch_device)?;
        }
        let torch = torch.map(|python| find_torch(&python));
        if let Some(Err(why)) = &torch {
            tracing::warn!(target: crate::util::PROGRESS, "note: {why}; timing vidapter only");
        }
        Ok(TrainBench {
            methods,
            step,
            device: device.to_string(),
            torch_device,
            threads: threads.unwrap_or_else(default_threads),
            torch,
        })
    }
}

/// Which side a child process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchSide {
    /// vidapter (`vidapter bench train-step`).
    Vidapter,
    /// The PyTorch reference (`scripts/bench_train_torch.py`).
    PyTorch,
}

impl std::fmt::Display for BenchSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BenchSide::Vidapter => "vidapter",
            BenchSide::PyTorch => "PyTorch",
        })
    }
}

/// Checks that vidapter's `--device` and PyTorch's `--torch-device` are alike, so that the
/// ratios compare the same kind of hardware: `cpu` with `cpu`, a GPU (`vulkan[:N]`,
/// `cuda[:N]`) with `cuda[:N]`. `torch_device` must be `cpu`, `cuda` or `cuda:N`.
pub fn check_torch_device(device: &str, torch_device: &str) -> Result<()> {
    let torch_gpu = match torch_device.split_once(':') {
        None if torch_device == "cpu" => false,
        None if torch_device == "cuda" => true,
        Some(("cuda", index)) if index.parse::<usize>().is_ok() => true,
        _ => {
            return Err(Error::Input(format!(
                "--torch-device `{torch_device}`: use cpu, cuda or cuda:N (a GPU index)"
            )));
        }
    };
    let ours_gpu = device != "cpu";
    if ours_gpu != torch_gpu {
        return Err(Error::Input(format!(
            "--torch-device {torch_device} with --device {device}: both sides must run on the \
             same kind of hardware (--device cpu with --torch-device cpu, a GPU --device such \
             as vulkan or cuda with --torch-device cuda), or the ratios compare a CPU with a GPU"
        )));
    }
    Ok(())
}

/// The CPU threads vidapter's backend uses: `RAYON_NUM_THREADS` when set to a positive
/// number, else the logical cores (rayon's own rule).
pub fn default_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The folder holding the reference package: `$VIDAPTER_REFERENCE`, else the source tree's
/// `reference/` when it is there.
pub fn reference_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("VIDAPTER_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("reference"));
    dir.join("vidapter_ref/__init__.py")
        .is_file()
        .then_some(dir)
}

/// The PyTorch side with `python`, or why there can be none (missing interpreter, torch or
/// transformers, or reference package).
pub fn find_torch(python: &str) -> std::result::Result<TorchSide, String> {
    let reference = reference_dir().ok_or_else(|| {
        "the PyTorch reference package (reference/vidapter_ref) was not found; set \
         VIDAPTER_REFERENCE to the folder that holds it"
            .to_string()
    })?;
    if !crate::app::bench::python_has_torch(python) {
        return Err(format!(
            "`{python}` cannot be run or cannot import torch and transformers"
        ));
    }
    Ok(TorchSide {
        python: python.to_string(),
        reference,
    })
}

/// Runs the steps of `method` in this process (the child side of [`bench_train`]): one
/// untimed and `opts.steps` timed training steps, the peak, then as many forward passes
/// without autodiff.
pub fn train_step(method: &MethodConfig, opts: &StepBench, device: &Device) -> Result<ChildReport> {
    let rss_start_bytes = crate::util::proc_status_bytes("VmRSS").unwrap_or(0);
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
    let mut stepper = Stepper::new(cfg, 1, AdamW::default());
    let targets: Vec<usize> = (0..opts.batch).map(|i| i % opts.classes).collect();
    let shape = [opts.batch, opts.frames, 3, size, size];
    let mut times = Vec::new();
    let mut gpu_peak_bytes: Option<u64> = None;
    for step in 0..=opts.steps {
        let x = Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.0), &ad);
        // A GPU queues work: drain it so the clock times this step alone (a no-op on the CPU).
        drain(device)?;
        let t0 = Instant::now();
        let inputs = Inputs::Clips(Box::new(x));
        let loss = classifier_loss(&model, inputs, &targets, LABEL_SMOOTHING, Some(step as u64))?;
        model = stepper.backward(model, loss, true).0;
        drain(device)?;
        if step > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
        // Outside the timed span. burn's GPU pools keep the pages a step needed, so what is
        // reserved once it ended covers its activations; the CPU backend reports nothing.
        if let Some(usage) = device.memory_pool_usage() {
            gpu_peak_bytes = Some(gpu_peak_bytes.unwrap_or(0).max(usage.bytes_reserved));
        }
    }
    // Read before the forward passes, so that the high-water mark is the training peak.
    let peak_bytes = peak_rss_bytes().unwrap_or(0);
    let plain = model.valid();
    let mut forward = Vec::new();
    for step in 0..=opts.steps {
        let x = Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.0), device);
        drain(device)?;
        let t0 = Instant::now();
        // No dropout seed: inference, as PyTorch's side runs under `inference_mode`.
        let _ = plain.forward(x, None).into_data();
        if step > 0 {
            forward.push(t0.elapsed().as_secs_f64());
        }
    }
    let step_s = median(&times);
    Ok(ChildReport {
        figures: StepFigures {
            method: method.name().to_string(),
            trainable,
            total,
            step_s,
            clips_per_s: opts.batch as f64 / step_s,
            forward_s: median(&forward),
            rss_start_bytes,
            rss_model_bytes,
            peak_bytes,
            gpu_peak_bytes,
        },
        config: method.clone(),
        size,
    })
}

/// Waits until `device` has run everything queued; a device that failed meanwhile is an error
/// (a timing taken across it would be meaningless).
fn drain(device: &Device) -> Result<()> {
    device
        .sync()
        .map_err(|e| Error::Device(format!("{device:?} failed while running the step: {e}")))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Runs each method in a child process of `exe` (this binary) and, when the PyTorch side is
/// there, right after it the same method in a Python child; collects both sides' figures.
/// `progress(done, method, side)` is called before each child starts, `done` counting the
/// children already finished.
pub fn bench_train(
    exe: &Path,
    bench: &TrainBench,
    mut progress: impl FnMut(usize, &str, BenchSide),
) -> Result<TrainReport> {
    let opts = &bench.step;
    let torch = bench.torch.as_ref().and_then(|t| t.as_ref().ok());
    if bench.torch.is_some() {
        check_torch_device(&bench.device, &bench.torch_device)?;
    }
    let script = torch.map(|_| write_script()).transpose()?;
    // The backbone's config.json for the reference to build from, once for every method.
    let hf_config = torch.map(|_| backbone_hf_config(opts.backbone.as_deref()));
    let mut rows = Vec::new();
    let mut done = 0;
    let result = (|| -> Result<()> {
        for m in &bench.methods {
            progress(done, m, BenchSide::Vidapter);
            let child = run_vidapter_child(exe, m, bench)?;
            done += 1;
            let (mut pytorch, mut pytorch_error) = (None, None);
            if let (Some(side), Some(script), Some(config)) = (torch, &script, &hf_config) {
                progress(done, m, BenchSide::PyTorch);
                let outcome = config
                    .clone()
                    .and_then(|c| run_torch_child(side, script, &c, &child, bench));
                done += 1;
                match outcome {
                    Ok(f) => pytorch = Some(f),
                    Err(e) => pytorch_error = Some(e),
                }
            }
            let ratios = pytorch.as_ref().map(|p| ratios(&child.figures, &p.figures));
            rows.push(MethodRow {
                method: child.figures.method.clone(),
                vidapter: child.figures,
                pytorch,
                pytorch_error,
                ratios,
            });
        }
        Ok(())
    })();
    if let Some(script) = &script {
        let _ = std::fs::remove_file(script);
    }
    result?;
    let torch_version = rows
        .iter()
        .find_map(|r| r.pytorch.as_ref().map(|p| p.torch.clone()));
    Ok(TrainReport {
        machine: Machine::this(),
        command_line: std::env::args().collect(),
        device: bench.device.clone(),
        backbone: opts
            .backbone
            .clone()
            .unwrap_or_else(|| "ViT-B/16 (random weights)".into()),
        batch: opts.batch,
        frames: opts.frames,
        size: opts.size,
        steps: opts.steps,
        classes: opts.classes,
        label_smoothing: LABEL_SMOOTHING,
        threads: bench.threads,
        torch_requested: bench.torch.is_some(),
        torch_device: bench.torch_device.clone(),
        torch_unavailable: bench.torch.as_ref().and_then(|t| t.as_ref().err().cloned()),
        python: torch.map(|t| t.python.clone()),
        torch_version,
        rows,
    })
}

/// [`bench_train`] with a spinner on standard error (when `progress`) naming the method and
/// side that runs.
pub fn bench_train_with_progress(
    exe: &Path,
    bench: &TrainBench,
    progress: bool,
) -> Result<TrainReport> {
    let sides = if matches!(bench.torch, Some(Ok(_))) {
        2
    } else {
        1
    };
    let bar = crate::util::progress_bar(
        (bench.methods.len() * sides) as u64,
        "{spinner} [{pos}/{len}] {msg} ({elapsed})",
        progress,
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let report = bench_train(exe, bench, |done, m, side| {
        bar.set_position(done as u64);
        bar.set_message(format!("{m}: {side}"));
    })?;
    bar.finish_and_clear();
    Ok(report)
}

fn ratios(ours: &StepFigures, theirs: &StepFigures) -> Ratios {
    let r = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    Ratios {
        step: r(ours.step_s, theirs.step_s),
        forward: r(ours.forward_s, theirs.forward_s),
        peak: r(ours.peak_bytes as f64, theirs.peak_bytes as f64),
        training_memory: r(ours.training_bytes() as f64, theirs.training_bytes() as f64),
        gpu_peak: ours
            .gpu_peak_bytes
            .zip(theirs.gpu_peak_bytes)
            .map(|(a, b)| r(a as f64, b as f64)),
    }
}

/// `vidapter bench train-step` for `method`, pinned to `bench.threads` CPU threads.
fn run_vidapter_child(exe: &Path, method: &str, bench: &TrainBench) -> Result<ChildReport> {
    let opts = &bench.step;
    let mut cmd = Command::new(exe);
    cmd.args(["--device", &bench.device, "-q", "bench", "train-step"])
        .args(["--method", method])
        .args(["--batch", &opts.batch.to_string()])
        .args(["--frames", &opts.frames.to_string()])
        .args(["--steps", &opts.steps.to_string()])
        .args(["--classes", &opts.classes.to_string()])
        .env("RAYON_NUM_THREADS", bench.threads.to_string());
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
            "bench train-step --method {method} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    serde_json::from_slice(&o.stdout).map_err(|e| {
        Error::Input(format!(
            "bench train-step --method {method} printed no figures ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        ))
    })
}

/// The transformers config.json of the benchmarked backbone, or why the reference cannot
/// build it (no config.json beside OpenAI-layout weights, unreadable file).
fn backbone_hf_config(spec: Option<&str>) -> std::result::Result<serde_json::Value, String> {
    let Some(spec) = spec else {
        // The same shapes as `VitConfig::vit_base_patch16_224`, in transformers' names.
        let c = VitConfig::vit_base_patch16_224();
        return Ok(serde_json::json!({
            "model_type": "vit", "hidden_size": c.hidden_size,
            "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads,
            "intermediate_size": c.intermediate_size, "image_size": c.image_size,
            "patch_size": c.patch_size,
        }));
    };
    let files = crate::backbone::resolve(spec).map_err(|e| e.to_string())?;
    let path = files.config.ok_or_else(|| {
        format!("{spec} has no config.json for the reference to build a transformers model from")
    })?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON: {e}", path.display()))
}

/// One method in the PyTorch reference; `Err` is the reason shown instead of its figures.
fn run_torch_child(
    side: &TorchSide,
    script: &Path,
    hf_config: &serde_json::Value,
    child: &ChildReport,
    bench: &TrainBench,
) -> std::result::Result<TorchFigures, String> {
    let opts = &bench.step;
    // vidapter's resolved table, every field written out; TOML has no null, so unset
    // optional fields are left out (the reference fills in the same defaults).
    let mut table = serde_json::to_value(&child.config).map_err(|e| e.to_string())?;
    if let Some(map) = table.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    let args = serde_json::json!({
        "method": table, "config": hf_config, "reference": side.reference,
        "batch": opts.batch, "frames": opts.frames, "size": child.size, "steps": opts.steps,
        "classes": opts.classes, "threads": bench.threads, "label_smoothing": LABEL_SMOOTHING,
        "device": bench.torch_device,
    });
    let o = Command::new(&side.python)
        .arg(script)
        .arg(args.to_string())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", side.python))?;
    read_torch_output(
        &String::from_utf8_lossy(&o.stdout),
        &String::from_utf8_lossy(&o.stderr),
        &o.status.to_string(),
    )
}

/// The PyTorch child's figures from its last stdout line; otherwise the reason to show in
/// their place: `reference lacks it: ...` when the reference package does not know the
/// method, its error, or (no JSON at all: a crash) `status` and the end of `stderr`.
fn read_torch_output(
    stdout: &str,
    stderr: &str,
    status: &str,
) -> std::result::Result<TorchFigures, String> {
    let line = stdout.trim().lines().last().unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(line).map_err(|_| {
        let tail: Vec<&str> = stderr.trim().lines().rev().take(3).collect();
        format!(
            "the PyTorch child ended ({status}) without figures: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        )
    })?;
    if let Some(error) = v.get("error").and_then(|e| e.as_str()) {
        return Err(if v["unsupported"].as_bool() == Some(true) {
            format!("reference lacks it: {error}")
        } else {
            error.to_string()
        });
    }
    serde_json::from_value(v).map_err(|e| format!("unreadable PyTorch figures `{line}`: {e}"))
}

fn write_script() -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!(
        "vidapter_bench_train_torch_{}.py",
        std::process::id()
    ));
    std::fs::write(&path, TORCH_SCRIPT).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

fn mib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / (1u64 << 20) as f64)
}

/// The report as text: a heading, then one table of every method (vidapter alone), or, when
/// PyTorch was asked for and could run, a small table per method with both sides and the
/// ratio vidapter / PyTorch.
pub fn render(report: &TrainReport) -> String {
    let mut out = format!(
        "one training step and one forward pass, {} x {} clips x {} frames{}, {} classes, \
         {} on {} ({} cores, {}), {} CPU threads per side\n",
        report.backbone,
        report.batch,
        report.frames,
        report
            .size
            .map(|s| format!(" at {s} px"))
            .unwrap_or_default(),
        report.classes,
        report.device,
        report.machine.os,
        report.machine.cores,
        report.machine.cpu_model,
        report.threads,
    );
    let both = report.torch_requested && report.torch_unavailable.is_none();
    if !both {
        out.push_str(&summary_table(&report.rows));
        out.push_str("training MiB = peak minus resident memory once the model is built\n");
        return out;
    }
    out.push_str(&format!(
        "PyTorch: torch {} via {} on {} (torch.set_num_threads({}); vidapter: \
         RAYON_NUM_THREADS={}), {} attention\n",
        report
            .torch_version
            .as_deref()
            .unwrap_or("(version unknown: no method ran)"),
        report.python.as_deref().unwrap_or("?"),
        report.torch_device,
        report.threads,
        report.threads,
        report
            .rows
            .iter()
            .find_map(|r| r.pytorch.as_ref().map(|p| p.attn_implementation.as_str()))
            .unwrap_or("eager"),
    ));
    for row in &report.rows {
        out.push('\n');
        out.push_str(&method_table(row));
    }
    out.push_str(
        "\nruntime MiB = resident before building the model (PyTorch: after importing torch and \
         transformers); training MiB = peak minus resident once the model is built; ratio = \
         vidapter / PyTorch (below 1: vidapter needs less)\n",
    );
    if report.device != "cpu" {
        out.push_str(
            "peak MiB and training MiB are host memory; GPU MiB = device memory held by the \
             allocator (PyTorch: max_memory_reserved; vidapter: the most burn's pools held after \
             a synchronised training step)\n",
        );
    }
    out
}

/// vidapter alone: one row per method, with the peak against full fine-tuning's.
fn summary_table(rows: &[MethodRow]) -> String {
    let full = rows.iter().find(|r| r.method == "full_finetune");
    let gpu = rows.iter().any(|r| r.vidapter.gpu_peak_bytes.is_some());
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let v = &r.vidapter;
            let mut cells = vec![
                r.method.clone(),
                v.trainable.to_string(),
                format!("{:.2}", v.step_s),
                format!("{:.2}", v.forward_s),
                format!("{:.2}", v.clips_per_s),
                mib(v.peak_bytes),
                mib(v.training_bytes()),
                full.map_or("-".into(), |f| {
                    format!(
                        "{:.2}",
                        v.peak_bytes as f64 / f.vidapter.peak_bytes.max(1) as f64
                    )
                }),
            ];
            if gpu {
                cells.push(v.gpu_peak_bytes.map_or("not measured".into(), mib));
            }
            cells
        })
        .collect();
    let mut headers = vec![
        "method",
        "trainable",
        "s/step",
        "s/forward",
        "clips/s",
        "peak MiB",
        "training MiB",
        "peak / full FT",
    ];
    if gpu {
        headers.push("GPU MiB");
    }
    crate::eval::plain_table(&headers, &table)
}

/// One method, both sides: a row per figure, columns vidapter, PyTorch, ratio.
fn method_table(row: &MethodRow) -> String {
    let v = &row.vidapter;
    let p = row.pytorch.as_ref().map(|p| &p.figures);
    let mut out = format!(
        "{}: trainable {} of {} parameters",
        row.method, v.trainable, v.total
    );
    match (p, &row.pytorch_error) {
        (Some(p), _) if p.trainable != v.trainable => {
            out.push_str(&format!(" (PyTorch counts {} of {})", p.trainable, p.total))
        }
        (Some(_), _) => out.push_str(" (the same in PyTorch)"),
        (None, Some(e)) if e.starts_with("reference lacks it") => {
            out.push_str("; PyTorch n/a (reference lacks it)")
        }
        (None, Some(e)) => out.push_str(&format!("; PyTorch n/a ({e})")),
        (None, None) => {}
    }
    out.push('\n');
    let secs = |x: f64| format!("{x:.3}");
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}", a / b)
        } else {
            "-".into()
        }
    };
    type Figure = fn(&StepFigures) -> f64;
    let figures: [(&str, Figure, bool); 7] = [
        ("step s", |f| f.step_s, true),
        ("forward s", |f| f.forward_s, true),
        ("clips/s", |f| f.clips_per_s, false),
        ("peak MiB", |f| f.peak_bytes as f64, true),
        ("runtime MiB", |f| f.rss_start_bytes as f64, false),
        (
            "model MiB",
            |f| f.rss_model_bytes.saturating_sub(f.rss_start_bytes) as f64,
            false,
        ),
        ("training MiB", |f| f.training_bytes() as f64, true),
    ];
    let mut table: Vec<Vec<String>> = figures
        .iter()
        .map(|(name, get, with_ratio)| {
            let show = |f: &StepFigures| {
                if name.ends_with("MiB") {
                    mib(get(f) as u64)
                } else {
                    secs(get(f))
                }
            };
            vec![
                name.to_string(),
                show(v),
                p.map_or("n/a".into(), show),
                match p {
                    Some(p) if *with_ratio => ratio(get(v), get(p)),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    let their_gpu = p.and_then(|p| p.gpu_peak_bytes);
    if v.gpu_peak_bytes.is_some() || their_gpu.is_some() {
        let show = |b: Option<u64>| b.map_or("not measured".into(), mib);
        table.push(vec![
            "GPU MiB".into(),
            show(v.gpu_peak_bytes),
            if p.is_some() {
                show(their_gpu)
            } else {
                "n/a".into()
            },
            match (v.gpu_peak_bytes, their_gpu) {
                (Some(a), Some(b)) => ratio(a as f64, b as f64),
                _ => "-".into(),
            },
        ]);
        if let Some(a) = row
            .pytorch
            .as_ref()
            .and_then(|p| p.gpu_peak_allocated_bytes)
        {
            table.push(vec![
                "GPU allocated MiB".into(),
                "-".into(),
                mib(a),
                "-".into(),
            ]);
        }
    }
    out.push_str(&crate::eval::plain_table(
        &["", "vidapter", "PyTorch", "ratio"],
        &table,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(method: &str, step_s: f64, peak_mib: u64) -> StepFigures {
        StepFigures {
            method: method.into(),
            trainable: 10,
            total: 100,
            step_s,
            clips_per_s: 2.0 / step_s,
            forward_s: step_s / 3.0,
            rss_start_bytes: 20 << 20,
            rss_model_bytes: 30 << 20,
            peak_bytes: peak_mib << 20,
            gpu_peak_bytes: None,
        }
    }

    /// The PyTorch side of a row: `figures` measured on `device`.
    fn torch_figures(
        figures: StepFigures,
        device: &str,
        gpu_allocated: Option<u64>,
    ) -> TorchFigures {
        TorchFigures {
            figures,
            torch: "2.x".into(),
            transformers: "5.x".into(),
            threads: 2,
            attn_implementation: "eager".into(),
            device: device.into(),
            gpu_peak_allocated_bytes: gpu_allocated,
        }
    }

    fn report(rows: Vec<MethodRow>) -> TrainReport {
        TrainReport {
            machine: Machine::this(),
            command_line: vec!["vidapter".into()],
            device: "cpu".into(),
            backbone: "tiny".into(),
            batch: 2,
            frames: 2,
            size: None,
            steps: 1,
            classes: 3,
            label_smoothing: LABEL_SMOOTHING,
            threads: 2,
            torch_requested: true,
            torch_device: "cpu".into(),
            torch_unavailable: None,
            python: Some("python3".into()),
            torch_version: Some("2.x".into()),
            rows,
        }
    }

    #[test]
    fn unknown_method_in_the_reference_reads_as_reference_lacks_it() {
        let line = r#"{"error": "the reference package has no method 'evl'", "unsupported": true}"#;
        let err = read_torch_output(line, "", "exit status: 0").unwrap_err();
        assert!(err.starts_with("reference lacks it"), "{err}");
        let line = r#"{"error": "ValueError: unknown fields ['x']", "unsupported": false}"#;
        let err = read_torch_output(line, "", "exit status: 0").unwrap_err();
        assert_eq!(err, "ValueError: unknown fields ['x']");
    }

    #[test]
    fn crashed_torch_child_is_reported_with_its_stderr_tail() {
        let err = read_torch_output("", "a\nb\nc\nKilled", "signal: 9 (SIGKILL)").unwrap_err();
        assert!(
            err.contains("SIGKILL") && err.contains("b / c / Killed"),
            "{err}"
        );
    }

    #[test]
    fn torch_figures_are_read_from_the_last_line() {
        let line = r#"{"method": "fe_adapter", "trainable": 5, "total": 9, "step_s": 0.5,
            "clips_per_s": 4.0, "forward_s": 0.1, "rss_start_bytes": 1, "rss_model_bytes": 2,
            "peak_bytes": 3, "torch": "2.1", "transformers": "5.0", "threads": 2,
            "attn_implementation": "eager"}"#
            .replace('\n', " ");
        let f = read_torch_output(&format!("a warning\n{line}\n"), "", "exit status: 0").unwrap();
        assert_eq!((f.figures.trainable, f.threads), (5, 2));
        assert_eq!(f.figures.peak_bytes, 3);
    }

    #[test]
    fn table_shows_ratios_and_na_for_methods_the_reference_lacks() {
        let ours = figures("fe_adapter", 2.0, 100);
        let theirs = figures("fe_adapter", 4.0, 400);
        let both = MethodRow {
            method: "fe_adapter".into(),
            ratios: Some(ratios(&ours, &theirs)),
            vidapter: ours,
            pytorch: Some(torch_figures(theirs, "cpu", None)),
            pytorch_error: None,
        };
        let lacking = MethodRow {
            method: "evl".into(),
            vidapter: figures("evl", 1.0, 50),
            pytorch: None,
            pytorch_error: Some("reference lacks it: no method 'evl'".into()),
            ratios: None,
        };
        let r = both.ratios.as_ref().unwrap();
        assert_eq!((r.step, r.peak), (0.5, 0.25));
        // Training memory: (100 - 30) / (400 - 30) MiB.
        assert!((r.training_memory - 70.0 / 370.0).abs() < 1e-12);
        let text = render(&report(vec![both, lacking]));
        assert!(
            text.contains("evl: trainable 10 of 100 parameters; PyTorch n/a (reference lacks it)"),
            "{text}"
        );
        let step = text.lines().find(|l| l.starts_with("step s")).unwrap();
        assert_eq!(
            step.split_whitespace().collect::<Vec<_>>(),
            ["step", "s", "2.000", "4.000", "0.50"]
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("step s") && l.contains("n/a"))
        );
    }

    #[test]
    fn torch_device_must_be_the_same_kind_of_hardware_as_vidapters() {
        for (ours, theirs) in [("cpu", "cpu"), ("vulkan", "cuda"), ("cuda:1", "cuda:0")] {
            check_torch_device(ours, theirs).unwrap();
        }
        for (ours, theirs) in [("cpu", "cuda"), ("vulkan:0", "cpu")] {
            let err = check_torch_device(ours, theirs).unwrap_err().to_string();
            assert!(
                err.contains(theirs) && err.contains(ours) && err.contains("same kind"),
                "{err}"
            );
        }
        for bad in ["gpu", "cuda:x", "mps"] {
            let err = check_torch_device("vulkan", bad).unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("cuda:N"), "{err}");
        }
    }

    #[test]
    fn gpu_memory_is_shown_with_not_measured_where_a_side_lacks_it() {
        let mut ours = figures("fe_adapter", 1.0, 100);
        ours.gpu_peak_bytes = Some(512 << 20);
        let mut theirs = figures("fe_adapter", 2.0, 100);
        theirs.gpu_peak_bytes = Some(1024 << 20);
        let row = |ours: StepFigures, theirs: StepFigures| MethodRow {
            method: "fe_adapter".into(),
            ratios: Some(ratios(&ours, &theirs)),
            vidapter: ours,
            pytorch: Some(torch_figures(theirs, "cuda", Some(800 << 20))),
            pytorch_error: None,
        };
        let both = row(ours.clone(), theirs.clone());
        assert_eq!(both.ratios.as_ref().unwrap().gpu_peak, Some(0.5));
        let mut r = report(vec![both]);
        r.device = "vulkan".into();
        r.torch_device = "cuda".into();
        let text = render(&r);
        let gpu = text.lines().find(|l| l.starts_with("GPU MiB")).unwrap();
        assert_eq!(
            gpu.split_whitespace().collect::<Vec<_>>(),
            ["GPU", "MiB", "512", "1024", "0.50"]
        );
        assert!(text.contains("GPU allocated MiB"), "{text}");
        assert!(text.contains("via python3 on cuda"), "{text}");
        ours.gpu_peak_bytes = None;
        let text = render(&report(vec![row(ours, theirs)]));
        let gpu = text.lines().find(|l| l.starts_with("GPU MiB")).unwrap();
        assert!(
            gpu.contains("not measured") && gpu.contains("1024"),
            "{gpu}"
        );
    }

    #[test]
    fn without_torch_one_table_lists_every_method() {
        let row = |m: &str, peak| MethodRow {
            method: m.into(),
            vidapter: figures(m, 1.0, peak),
            pytorch: None,
            pytorch_error: None,
            ratios: None,
        };
        let mut r = report(vec![row("linear_probe", 40), row("full_finetune", 80)]);
        r.torch_requested = false;
        let text = render(&r);
        assert!(!text.contains("PyTorch"), "{text}");
        let probe = text
            .lines()
            .find(|l| l.starts_with("linear_probe"))
            .unwrap();
        assert!(probe.trim_end().ends_with("0.50"), "{probe}");
    }
}
