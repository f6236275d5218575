//! The `vidapter` binary: parses arguments, calls the library, maps errors to an exit code.
//! No tensor code lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use vidapter::backbone::{Backbone, Layout};
use vidapter::{bench, compare, device, extract};

/// Parameter-efficient image-to-video transfer learning: frozen image models (CLIP, DINOv2,
/// ViT) adapted to video.
#[derive(Parser)]
#[command(name = "vidapter", version, about, max_term_width = 100)]
struct Cli {
    /// Compute device: cpu, vulkan[:N] or cuda[:N] (GPU backends need the cargo feature).
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe a backbone: architecture, parameters, input size, patch, levels, mean/std.
    Info {
        /// Model folder, .safetensors file, or hub id (e.g. openai/clip-vit-base-patch16).
        #[arg(long)]
        backbone: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a backbone on a pixel tensor and write every hidden state (transformers naming).
    Extract {
        /// Model folder, .safetensors file, or hub id.
        #[arg(long)]
        backbone: String,
        /// safetensors file holding `pixel_values` [N, 3, H, W], already normalised.
        #[arg(long)]
        pixels: PathBuf,
        /// Output safetensors: hidden_states.{0..L}, last_hidden_state, pooler_output.
        #[arg(long)]
        out: PathBuf,
        /// Images per forward pass.
        #[arg(long, default_value_t = 8)]
        batch: usize,
    },
    /// Relative error, tensor by tensor, of a safetensors file against a reference.
    Compare {
        /// The file to check (e.g. `extract` output).
        candidate: PathBuf,
        /// The reference (e.g. saved from transformers).
        reference: PathBuf,
        /// Fail (exit 1) if any tensor's relative error exceeds this.
        #[arg(long, default_value_t = 1e-4)]
        tolerance: f64,
    },
    /// Generate a synthetic video dataset (real encoded videos) that only temporal models can
    /// learn: faces whose expression follows a time course, or objects moving or turning.
    Synth {
        /// Which dataset: `expressions` (8 classes) or `motion` (6 classes).
        #[arg(long)]
        kind: vidapter::data::synth::SynthKind,
        /// Output folder (created; an earlier synth output there is replaced).
        #[arg(long)]
        out: PathBuf,
        /// Training clips per class [default: 24].
        #[arg(long)]
        train: Option<usize>,
        /// Validation clips per class [default: 8].
        #[arg(long)]
        val: Option<usize>,
        /// Test clips per class [default: 8].
        #[arg(long)]
        test: Option<usize>,
        /// Frames per clip [default: 16].
        #[arg(long)]
        frames: Option<usize>,
        /// Side of the square frames in pixels, even [default: 64].
        #[arg(long)]
        size: Option<usize>,
        /// Frame rate stored in the videos [default: 8].
        #[arg(long)]
        fps: Option<u32>,
        /// Random seed [default: 0].
        #[arg(long)]
        seed: Option<u64>,
        /// Write folders of numbered JPEG frames instead of MP4 videos.
        #[arg(long)]
        frames_only: bool,
        /// Expressions only: still images per class (neutral, smile, frown) for image
        /// pre-training [default: 0].
        #[arg(long)]
        peak_images: Option<usize>,
        /// Write into a non-empty folder that is not an earlier synth output.
        #[arg(long)]
        force: bool,
    },
    /// Benchmarks against PyTorch in the same run.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// ViT-B/16 forward (random weights) on one clip; PyTorch alongside when installed.
    Backbone {
        /// Frames per clip.
        #[arg(long, default_value_t = 8)]
        frames: usize,
        /// Input side in pixels.
        #[arg(long, default_value_t = 224)]
        size: usize,
        /// Timed iterations per round and side.
        #[arg(long, default_value_t = 5)]
        iters: usize,
        /// Alternating rounds.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Python with torch + transformers (default: $VIDAPTER_PYTHON or python3).
        #[arg(long)]
        python: Option<String>,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Decode + sample + transform throughput (clips/s) on generated H.264 files, with 1 and
    /// 2 workers; PyAV and decord alongside when installed.
    Data {
        /// Videos to generate (320x240, 25 fps).
        #[arg(long, default_value_t = 8)]
        videos: usize,
        /// Seconds per video.
        #[arg(long, default_value_t = 4)]
        seconds: usize,
        /// Passes over the videos.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Python with torch and PyAV / decord (default: $VIDAPTER_PYTHON or python3).
        #[arg(long)]
        python: Option<String>,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let device = device::parse(&cli.device)?;
    match cli.command {
        Command::Info { backbone, json } => {
            let b = Backbone::load(&backbone, &device)?;
            if json {
                let value = serde_json::json!({
                    "backbone": backbone,
                    "weights": b.files.weights,
                    "layout": format!("{:?}", b.layout),
                    "stored_dtypes": b.stored_dtypes,
                    "parameters": b.model.param_count(),
                    "levels": b.config.num_layers,
                    "config": b.config,
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print_info(&b);
            }
        }
        Command::Extract {
            backbone,
            pixels,
            out,
            batch,
        } => {
            let b = Backbone::load(&backbone, &device)?;
            extract::extract_pixels(&b.model, &pixels, &out, batch, &device, !cli.quiet)?;
            println!(
                "wrote {} (hidden_states.0..{}, last_hidden_state, pooler_output)",
                out.display(),
                b.config.num_layers
            );
        }
        Command::Compare {
            candidate,
            reference,
            tolerance,
        } => {
            let (rows, only) = compare::compare(&candidate, &reference)?;
            if rows.is_empty() {
                bail!(
                    "{} and {} share no tensor names; nothing to compare",
                    candidate.display(),
                    reference.display()
                );
            }
            println!(
                "{:<24} {:>18} {:>12} {:>12}",
                "tensor", "shape", "rel. error", "max |diff|"
            );
            let mut worst = 0f64;
            for r in &rows {
                println!(
                    "{:<24} {:>18} {:>12.3e} {:>12.3e}",
                    r.name,
                    format!("{:?}", r.shape),
                    r.rel_err,
                    r.max_abs
                );
                worst = worst.max(r.rel_err);
            }
            for name in only {
                println!("not compared: {name}");
            }
            let ok = worst <= tolerance;
            println!(
                "{}: worst relative error {worst:.3e} (tolerance {tolerance:.1e})",
                if ok { "PASS" } else { "FAIL" }
            );
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Synth {
            kind,
            out,
            train,
            val,
            test,
            frames,
            size,
            fps,
            seed,
            frames_only,
            peak_images,
            force,
        } => {
            use vidapter::data::synth::{self, SynthConfig, SynthMedia};
            let d = SynthConfig::default();
            let cfg = SynthConfig {
                kind,
                train: train.unwrap_or(d.train),
                val: val.unwrap_or(d.val),
                test: test.unwrap_or(d.test),
                frames: frames.unwrap_or(d.frames),
                size: size.unwrap_or(d.size),
                fps: fps.unwrap_or(d.fps),
                seed: seed.unwrap_or(d.seed),
                media: if frames_only {
                    SynthMedia::Frames
                } else {
                    SynthMedia::Video
                },
                peak_images: peak_images.unwrap_or(d.peak_images),
            };
            let start = std::time::Instant::now();
            let s = if force {
                synth::generate_forced(&cfg, &out, !cli.quiet)?
            } else {
                synth::generate(&cfg, &out, !cli.quiet)?
            };
            let c = &s.counts;
            println!(
                "{}: {} classes, {} train + {} val + {} test clips of {} frames {}x{} at {} fps, {} ({:.1} s)",
                s.kind,
                s.classes.len(),
                c.train,
                c.val,
                c.test,
                s.frames,
                s.size,
                s.size,
                cfg.fps,
                s.codec,
                start.elapsed().as_secs_f64()
            );
            println!("classes: {}", s.classes.join(" "));
            if c.images > 0 {
                println!(
                    "still images: {} ({}), listed in images.txt",
                    c.images,
                    s.image_classes.join(" ")
                );
            }
            println!("wrote {}", out.join("dataset.toml").display());
        }
        Command::Bench { what } => match what {
            BenchWhat::Data {
                videos,
                seconds,
                repeats,
                python,
                json,
            } => {
                let python = python
                    .or_else(|| std::env::var("VIDAPTER_PYTHON").ok())
                    .unwrap_or_else(|| "python3".into());
                let has_torch = bench::python_has_torch(&python);
                if !has_torch {
                    eprintln!("note: `{python}` cannot import torch; timing vidapter only");
                }
                let opts = bench::DataBench {
                    videos,
                    seconds,
                    repeats,
                    frames: 8,
                    size: 224,
                    workers: vec![1, 2],
                    python: has_torch.then_some(python),
                };
                let rows = bench::bench_data(&opts)?;
                println!(
                    "decode + sample + transform, T=8, 224 px, {videos} H.264 videos 320x240 x {seconds} s, {repeats} passes"
                );
                println!(
                    "{:>8} {:>16} {:>16} {:>16}",
                    "workers", "vidapter clip/s", "PyAV clip/s", "decord clip/s"
                );
                let fmt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
                for r in &rows {
                    println!(
                        "{:>8} {:>16.1} {:>16} {:>16}",
                        r.workers,
                        r.vidapter,
                        fmt(r.pyav),
                        fmt(r.decord)
                    );
                }
                if let Some(path) = json {
                    std::fs::write(&path, serde_json::to_string_pretty(&rows)?)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
            BenchWhat::Backbone {
                frames,
                size,
                iters,
                rounds,
                python,
                json,
            } => {
                let python = python
                    .or_else(|| std::env::var("VIDAPTER_PYTHON").ok())
                    .unwrap_or_else(|| "python3".into());
                let python = if bench::python_has_torch(&python) {
                    Some(python)
                } else {
                    eprintln!(
                        "note: `{python}` cannot import torch and transformers; timing vidapter only"
                    );
                    None
                };
                let opts = bench::BackboneBench {
                    frames,
                    size,
                    iters,
                    warmup: 1,
                    rounds,
                    python,
                };
                let report = bench::bench_backbone(&opts, &device)?;
                println!("{}: {} frames at {size} px", report.model, report.frames);
                println!(
                    "vidapter ({}): {:8.1} ms/clip  {:7.1} frames/s",
                    cli.device, report.vidapter.median_ms, report.vidapter.frames_per_s
                );
                if let (Some(p), Some(ratio)) = (&report.pytorch, report.ratio) {
                    println!(
                        "PyTorch ({}): {:8.1} ms/clip  {:7.1} frames/s",
                        report.pytorch_info.as_deref().unwrap_or("?"),
                        p.median_ms,
                        p.frames_per_s
                    );
                    println!("ratio vidapter/PyTorch time: {ratio:.2}");
                }
                let g = &report.gemm_gflops;
                print!(
                    "GEMM {:?} alone: vidapter {:.1} GFLOP/s",
                    g.shape, g.vidapter
                );
                match g.pytorch {
                    Some(p) => println!(", PyTorch {p:.1} GFLOP/s"),
                    None => println!(),
                }
                if let Some(path) = json {
                    let text = serde_json::to_string_pretty(&report)?;
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn print_info(b: &Backbone) {
    let c = &b.config;
    let layout = match b.layout {
        Layout::HuggingFace => "Hugging Face",
        Layout::OpenAiClip => "OpenAI CLIP",
    };
    println!("backbone      {}", b.files.spec);
    println!(
        "weights       {} ({layout} layout, stored as {})",
        b.files.weights.display(),
        b.stored_dtypes.join("/")
    );
    println!("architecture  {}", c.arch);
    println!(
        "parameters    {} ({:.1} M)",
        b.model.param_count(),
        b.model.param_count() as f64 / 1e6
    );
    println!(
        "input size    {0}x{0} (other sizes: position embeddings resampled bicubically)",
        c.image_size
    );
    println!(
        "patch         {0}x{0} ({1}x{1} grid, {2} tokens with the class token)",
        c.patch_size,
        c.grid(),
        1 + c.grid() * c.grid()
    );
    println!(
        "width         {} ({} heads, MLP {}{})",
        c.hidden_size,
        c.num_heads,
        c.intermediate_size,
        if c.swiglu { ", SwiGLU" } else { "" }
    );
    println!(
        "levels        {} blocks: levels 1..={} (0 = embeddings)",
        c.num_layers, c.num_layers
    );
    println!(
        "activation    {:?}; LayerNorm eps {:e}{}",
        c.act,
        c.layer_norm_eps,
        if c.layer_scale { "; LayerScale" } else { "" }
    );
    println!("mean          {:?}", c.image_mean);
    println!("std           {:?}", c.image_std);
}
