//! The `vidapter` binary: parses arguments, calls the library, maps errors to an exit code.
//! No tensor code lives here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::LazyLock;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use vidapter::app::bench::{self, train as bench_train};
use vidapter::app::experiment;
use vidapter::backbone::extract;
use vidapter::backbone::{Backbone, Layout};
use vidapter::data::config::{DatasetConfig, Split};
use vidapter::device;
use vidapter::eval::compare;
use vidapter::methods::{self, MethodConfig, VideoClassifier};
use vidapter::train::config::RunConfig;

/// Every method's name, comma-separated in the registry's order: `bench train`'s default.
static ALL_METHODS: LazyLock<String> = LazyLock::new(|| {
    let names: Vec<&str> = methods::METHODS.iter().map(|m| m.name).collect();
    names.join(",")
});

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
    /// The papers' story offline, in minutes, on a CPU: synthetic expression videos, a small
    /// image classifier trained on stills, every method adapting it, a report with plots.
    Demo {
        /// Output folder (everything goes here).
        #[arg(long, default_value = "vidapter-demo")]
        out: PathBuf,
        /// A shorter run (a few minutes; what CI runs).
        #[arg(long)]
        quick: bool,
        /// Seed of everything random.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Which synthetic dataset: `expressions` (every method) or `motion` (linear probe,
        /// M-adapter and EVL on moving and turning objects).
        #[arg(long, default_value = "expressions")]
        dataset: vidapter::data::synth::SynthKind,
    },
    /// Describe a backbone (architecture, parameters, input size, patch, levels, mean/std)
    /// and, with --method, a method on it: trainable and total parameters per module.
    Info {
        /// Model folder, .safetensors file, or hub id (e.g. openai/clip-vit-base-patch16).
        #[arg(long)]
        backbone: String,
        #[arg(long, help = format!(
            "A method name ({}) with its defaults, or a run config whose [method] table is used",
            methods::names_of(None, ", ")
        ))]
        method: Option<String>,
        /// Classes of the head, for --method (default 400: Kinetics-400).
        #[arg(long, default_value_t = 400)]
        classes: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Train a method on a dataset as a run config describes (see configs/ for presets).
    Train {
        /// Run config (TOML).
        config: PathBuf,
        /// Override a config field, e.g. `--set train.lr=3e-4` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Shortcut for `--set train.epochs=N`.
        #[arg(long)]
        epochs: Option<usize>,
        /// Shortcut for `--set train.batch_size=N`.
        #[arg(long)]
        batch_size: Option<usize>,
        /// Shortcut for `--set train.lr=X`.
        #[arg(long)]
        lr: Option<f64>,
        /// Shortcut for `--set out=DIR`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue a killed run from its last checkpoint.
        #[arg(long)]
        resume: bool,
        /// Stop after this many epochs in this session (continue later with --resume).
        #[arg(long)]
        stop_after: Option<usize>,
        /// Choose checkpoints on the test split, as peer DFER repositories do; reports say so.
        #[arg(long)]
        val_on_test: bool,
    },
    /// Train and test every official fold (DFEW, MAFW: 5; UCF101, HMDB51: 3); mean UAR / WAR.
    Kfold {
        /// Run config (TOML).
        config: PathBuf,
        /// Override a config field (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Only these folds (comma-separated, e.g. 1,2).
        #[arg(long, value_delimiter = ',')]
        folds: Option<Vec<usize>>,
        /// Continue killed folds from their last checkpoints.
        #[arg(long)]
        resume: bool,
    },
    /// Test a checkpoint: UAR, WAR, top-1/top-5, mean class accuracy, confusion matrix (JSON + PNG).
    Eval {
        /// Checkpoint (best.safetensors or last.safetensors of a run folder).
        checkpoint: PathBuf,
        /// Split to test: train, val or test.
        #[arg(long, default_value = "test")]
        split: String,
        /// Temporal views (default: the run config's; 1 to 64, as in the run config).
        #[arg(long, value_parser = temporal_views)]
        temporal_views: Option<usize>,
        /// Spatial views, 1 or 3 (default: the run config's).
        #[arg(long)]
        spatial_views: Option<usize>,
        /// Folder for eval_<split>.json and confusion_<split>.png (default: the checkpoint's).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Classify videos (files or frame folders) with a checkpoint; JSON or CSV.
    Predict {
        /// Checkpoint.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Videos or frame folders.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Also predict per window of N frames along each video (at least 1).
        #[arg(long, value_name = "N", value_parser = at_least_one)]
        timeline: Option<usize>,
        /// Frames between window starts (default: half a window; at least 1).
        #[arg(long, value_parser = at_least_one)]
        stride: Option<usize>,
        /// Classify damaged inputs (a truncated video, a frame folder with a gap or a broken
        /// frame file) from the frames that decode, with a warning naming each, instead of
        /// reporting them as errors.
        #[arg(long)]
        allow_damaged: bool,
        /// Crop every frame to X,Y,W,H first (e.g. a face box), e.g. `--crop 120,40,224,224`.
        #[arg(long, value_delimiter = ',')]
        crop: Option<Vec<usize>>,
        /// Output format.
        #[arg(long, default_value = "json", value_parser = ["json", "csv"])]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },

    /// Run a backbone on a pixel tensor and write every hidden state (transformers naming), or
    /// (--config) extract a side-branch run's feature cache.
    Extract {
        /// Model folder, .safetensors file, or hub id (with --pixels).
        #[arg(long, requires = "pixels", conflicts_with = "config")]
        backbone: Option<String>,
        /// safetensors file holding `pixel_values` [N, 3, H, W], already normalised.
        #[arg(long, requires = "backbone", required_unless_present = "config")]
        pixels: Option<PathBuf>,
        /// Output: a safetensors file (with --pixels: hidden_states.{0..L}, last_hidden_state,
        /// pooler_output), or the feature-cache folder (with --config).
        #[arg(long)]
        out: PathBuf,
        /// Images per forward pass (with --pixels).
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Run config of a side-branch method: extract its feature cache (levels the method
        /// reads, per clip and view); train from it with `[train] cache = "DIR"`.
        #[arg(long, conflicts_with = "pixels")]
        config: Option<PathBuf>,
        /// Which split to cache (with --config): train, val or test.
        #[arg(long, default_value = "train")]
        split: String,
        /// Augmented training views per clip (train split; epoch e trains on view e mod N).
        #[arg(long)]
        views: Option<usize>,
        /// Stored precision: f16 or f32.
        #[arg(long, default_value = "f16")]
        dtype: vidapter::train::cache::CacheDtype,
        /// Override a config field (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
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
        /// Still images per image class for image pre-training: expressions neutral, smile,
        /// frown; motion 36 classes of grid cell x axis orientation [default: 0].
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
    /// Dataset tools.
    Data {
        #[command(subcommand)]
        what: DataWhat,
    },
}

#[derive(Subcommand)]
enum DataWhat {
    /// Decode every clip of a dataset and list what is wrong: malformed annotation lines,
    /// unknown labels, missing, unreadable, truncated, zero-frame and too-short clips; print
    /// counts and a class histogram per split.
    Check {
        /// TOML file with a [data] table (a run config works).
        config: PathBuf,
        /// Which split to check: train, val, test or all.
        #[arg(long, default_value = "all", value_parser = ["train", "val", "test", "all"])]
        split: String,
        /// Clip length the run will sample; shorter clips are listed as too short (default:
        /// the config's `sampling.frames` when it is a run config, else 8).
        #[arg(long, value_parser = clip_frames)]
        frames: Option<usize>,
        /// Decode threads (default: all cores; at most 256).
        #[arg(long, value_parser = workers)]
        workers: Option<usize>,
        /// Where to write the tab-separated bad-entry list (default: bad_entries.tsv beside
        /// the config).
        #[arg(long)]
        bad_list: Option<PathBuf>,
        /// Exit with status 1 when anything is listed.
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// One training step of each method on the same backbone and batch, each method in a
    /// process of its own: step time, clips/s, peak memory (the process's own VmHWM).
    Train {
        /// Methods, comma-separated (names, or run configs whose [method] is used).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = ALL_METHODS.as_str()
        )]
        methods: Vec<String>,
        /// Backbone (default: ViT-B/16 shapes, random weights).
        #[arg(long)]
        backbone: Option<String>,
        /// Clips per step.
        #[arg(long, default_value_t = 2)]
        batch: usize,
        /// Frames per clip.
        #[arg(long, default_value_t = 8)]
        frames: usize,
        /// Input side (default: the backbone's).
        #[arg(long)]
        size: Option<usize>,
        /// Timed steps per method (after one untimed).
        #[arg(long, default_value_t = 2)]
        steps: usize,
        /// Head classes.
        #[arg(long, default_value_t = 400)]
        classes: usize,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also run each method in the PyTorch reference (reference/vidapter_ref), right
        /// after vidapter's, and print both sides with the ratio.
        #[arg(long)]
        torch: bool,
        /// Python with torch and transformers for --torch (default: $VIDAPTER_PYTHON, else
        /// python3).
        #[arg(long, requires = "torch")]
        python: Option<String>,
        /// Torch device of the PyTorch side: cpu, cuda or cuda:N; a GPU --device (vulkan,
        /// cuda) needs cuda here, --device cpu needs cpu.
        #[arg(long, requires = "torch", default_value = "cpu")]
        torch_device: String,
        /// CPU threads of each side (default: RAYON_NUM_THREADS, else all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Epoch time of a side-branch run from its feature cache against decoding and running
    /// the backbone every epoch (and the extraction's one-off cost).
    Cache {
        /// Run config of a side-branch method (its training split is used).
        config: PathBuf,
        /// Backbone (default: ViT-B/16 shapes, random weights).
        #[arg(long)]
        backbone: Option<String>,
        /// Epochs timed each way.
        #[arg(long, default_value_t = 2)]
        epochs: usize,
        /// Stored precision: f16 or f32.
        #[arg(long, default_value = "f16")]
        dtype: vidapter::train::cache::CacheDtype,
        /// Override a config field (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// (Used by `bench train`.) One method's steps in this process; prints JSON figures.
    #[command(hide = true)]
    TrainStep {
        #[arg(long)]
        method: String,
        #[arg(long)]
        backbone: Option<String>,
        #[arg(long)]
        batch: usize,
        #[arg(long)]
        frames: usize,
        #[arg(long)]
        size: Option<usize>,
        #[arg(long)]
        steps: usize,
        #[arg(long)]
        classes: usize,
    },
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
        Command::Info {
            backbone,
            method: Some(method),
            classes,
            json,
        } => {
            let b = Backbone::load(&backbone, &device)?;
            let method = parse_method(&method)?;
            method
                .validate_for(&b.config)
                .map_err(|(f, r)| anyhow::anyhow!("--method: field `{f}`: {r}"))?;
            let model = VideoClassifier::new(b.model, &method, classes, 0, &device);
            let rows = model.param_rows();
            let (trainable, total) = model.param_totals();
            if json {
                let value = serde_json::json!({
                    "backbone": backbone, "method": method, "classes": classes,
                    "modules": rows, "trainable": trainable, "total": total,
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.module.clone(),
                            r.params.to_string(),
                            if r.trainable { "yes" } else { "frozen" }.to_string(),
                        ]
                    })
                    .collect();
                println!("{} on {backbone}, {classes} classes", method.name());
                print!(
                    "{}",
                    vidapter::eval::plain_table(&["module", "parameters", "trainable"], &table)
                );
                println!(
                    "trainable {trainable} of {total} ({:.2}%)",
                    100.0 * trainable as f64 / total.max(1) as f64
                );
            }
        }
        Command::Info {
            backbone,
            method: None,
            json,
            ..
        } => {
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
        Command::Demo {
            out,
            quick,
            seed,
            dataset,
        } => {
            let opts = vidapter::app::demo::DemoOptions {
                out: out.clone(),
                quick,
                seed,
                progress: !cli.quiet,
                exe: std::env::current_exe().context("locating the vidapter binary")?,
                device_name: cli.device.clone(),
                dataset,
            };
            let report = vidapter::app::demo::run(&opts, &device)?;
            println!(
                "\nreport: {} (plots uar.png, memory.png; runs under {})",
                report.report.display(),
                out.join("runs").display()
            );
        }
        Command::Train {
            config,
            set,
            epochs,
            batch_size,
            lr,
            out,
            resume,
            stop_after,
            val_on_test,
        } => {
            let ov = overrides(
                &set,
                vec![
                    ("train.epochs", epochs.map(|v| v.to_string())),
                    ("train.batch_size", batch_size.map(|v| v.to_string())),
                    ("train.lr", lr.map(|v| v.to_string())),
                    ("out", out.map(|p| format!("{:?}", p.display().to_string()))),
                    ("eval.val_on_test", val_on_test.then(|| "true".to_string())),
                ],
            )?;
            let cfg = RunConfig::from_file(&config, &ov)?;
            let opts = experiment::TrainOptions {
                resume,
                stop_after,
                progress: !cli.quiet,
            };
            let report = experiment::train_run(&cfg, &config, &opts, &device)?;
            print_run_report(&report);
        }
        Command::Kfold {
            config,
            set,
            folds,
            resume,
        } => {
            let cfg = RunConfig::from_file(&config, &overrides(&set, vec![])?)?;
            let opts = experiment::TrainOptions {
                resume,
                stop_after: None,
                progress: !cli.quiet,
            };
            let (results, summary) = experiment::kfold(&cfg, &config, folds, &opts, &device)?;
            for r in &results {
                println!(
                    "fold {}  UAR {:.2}%  WAR {:.2}%",
                    r.fold,
                    r.test.uar * 100.0,
                    r.test.war * 100.0
                );
            }
            println!(
                "mean    UAR {:.2}%  WAR {:.2}%  ({} folds; {})",
                summary.uar_mean * 100.0,
                summary.war_mean * 100.0,
                summary.folds,
                cfg.out.join("kfold.md").display()
            );
        }
        Command::Eval {
            checkpoint,
            split,
            temporal_views,
            spatial_views,
            out,
        } => {
            let split: Split = split.parse().map_err(anyhow::Error::msg)?;
            let views = match (temporal_views, spatial_views) {
                (None, None) => None,
                (t, s) => Some((t.unwrap_or(1), s.unwrap_or(1))),
            };
            if let Some((_, s)) = views
                && !matches!(s, 1 | 3)
            {
                bail!(
                    "--spatial-views {s}: allowed values are 1 (centre crop) and 3 (three crops)"
                );
            }
            let (m, path) = experiment::evaluate(
                &checkpoint,
                split,
                views,
                out.as_deref(),
                !cli.quiet,
                &device,
            )?;
            println!(
                "{split}: {} clips  UAR {:.2}%  WAR {:.2}%  top-1 {:.2}%  top-{} {:.2}%  mean class acc. {:.2}%",
                m.clips,
                m.uar * 100.0,
                m.war * 100.0,
                m.top1 * 100.0,
                m.top_k,
                m.top5 * 100.0,
                m.mean_class_accuracy * 100.0
            );
            println!(
                "wrote {} and the confusion matrix PNG beside it",
                path.display()
            );
        }
        Command::Predict {
            checkpoint,
            inputs,
            timeline,
            stride,
            crop,
            allow_damaged,
            format,
            out,
        } => {
            let crop = match crop.as_deref() {
                None => None,
                Some(&[x, y, w, h]) => Some([x, y, w, h]),
                Some(other) => bail!(
                    "--crop takes four numbers X,Y,W,H (e.g. 120,40,224,224); got {} ({other:?})",
                    other.len()
                ),
            };
            let opts = experiment::PredictOptions {
                window: timeline,
                stride,
                crop,
            };
            let decode = vidapter::data::decode::DecodeOptions {
                allow_damaged,
                ..Default::default()
            };
            let (preds, classes) = experiment::predict_with(
                &checkpoint,
                &inputs,
                &opts,
                &decode,
                !cli.quiet,
                &device,
            )?;
            for p in &preds {
                for w in &p.warnings {
                    eprintln!("warning: {}: {w}", p.path.display());
                }
            }
            let text = if format == "csv" {
                let mut t = format!(
                    "path,window_start,window_end,top,{}\n",
                    classes.names.join(",")
                );
                for p in &preds {
                    let row = |a: String, b: String, top: &str, probs: &[f32]| {
                        let probs: Vec<String> = probs.iter().map(|x| format!("{x:.6}")).collect();
                        format!("{},{a},{b},{top},{}\n", p.path.display(), probs.join(","))
                    };
                    if let Some(e) = &p.error {
                        t.push_str(&format!(
                            "{},,,error: {},\n",
                            p.path.display(),
                            e.replace(',', ";")
                        ));
                        continue;
                    }
                    t.push_str(&row(String::new(), String::new(), &p.top, &p.probs));
                    for w in &p.timeline {
                        t.push_str(&row(
                            w.start.to_string(),
                            w.end.to_string(),
                            &w.top,
                            &w.probs,
                        ));
                    }
                }
                t
            } else {
                serde_json::to_string_pretty(&serde_json::json!({
                    "classes": classes.names, "predictions": preds,
                }))? + "\n"
            };
            match out {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
            let bad = preds.iter().filter(|p| p.error.is_some()).count();
            if bad > 0 {
                eprintln!(
                    "{bad} of {} input(s) could not be read; see their `error` field",
                    preds.len()
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Extract {
            config: Some(config),
            out,
            split,
            views,
            dtype,
            set,
            ..
        } => {
            let split: Split = split.parse().map_err(anyhow::Error::msg)?;
            let cfg = RunConfig::from_file(&config, &overrides(&set, Vec::new())?)?;
            let r = vidapter::app::extract::extract_run(
                &cfg, &config, split, views, dtype, &out, !cli.quiet, &device,
            )?;
            println!(
                "feature cache {}: {} clips in {} shards ({} extracted, {} kept from before, {} re-extracted as corrupt, {} clips unreadable)",
                out.display(),
                r.clips,
                r.shards,
                r.extracted,
                r.reused,
                r.corrupt.len(),
                r.problems.len()
            );
        }
        Command::Extract {
            backbone: Some(backbone),
            pixels: Some(pixels),
            out,
            batch,
            ..
        } => {
            let b = Backbone::load(&backbone, &device)?;
            extract::extract_pixels(&b.model, &pixels, &out, batch, &device, !cli.quiet)?;
            println!(
                "wrote {} (hidden_states.0..{}, last_hidden_state, pooler_output)",
                out.display(),
                b.config.num_layers
            );
        }
        Command::Extract { .. } => {
            bail!("extract needs --config (a feature cache) or --backbone with --pixels")
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
        Command::Data {
            what:
                DataWhat::Check {
                    config,
                    split,
                    frames,
                    workers,
                    bad_list,
                    strict,
                },
        } => {
            return data_check(
                &config, &split, frames, workers, bad_list, strict, cli.quiet,
            );
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
            BenchWhat::Cache {
                config,
                backbone,
                epochs,
                dtype,
                set,
            } => {
                let cfg = RunConfig::from_file(&config, &overrides(&set, Vec::new())?)?;
                let b = vidapter::app::bench::cache::bench_cache(
                    &cfg,
                    &config,
                    backbone.as_deref(),
                    epochs,
                    dtype,
                    &device,
                )?;
                println!(
                    "{} on {} clips, {} epoch(s) each way: live {:.2} s/epoch, from the cache {:.3} s/epoch ({:.1}x); extraction {:.2} s once, {:.1} MiB ({:?})",
                    b.method,
                    b.clips,
                    b.epochs,
                    b.live_epoch_s,
                    b.cached_epoch_s,
                    b.live_epoch_s / b.cached_epoch_s.max(1e-9),
                    b.extract_s,
                    b.cache_bytes as f64 / (1 << 20) as f64,
                    b.dtype
                );
                println!("{}", serde_json::to_string(&b)?);
            }
            BenchWhat::TrainStep {
                method,
                backbone,
                batch,
                frames,
                size,
                steps,
                classes,
            } => {
                let opts = bench_train::StepBench {
                    backbone,
                    batch,
                    frames,
                    size,
                    steps: steps.max(1),
                    classes,
                };
                let f = bench_train::train_step(&parse_method(&method)?, &opts, &device)?;
                println!("{}", serde_json::to_string(&f)?);
            }
            BenchWhat::Train {
                methods,
                backbone,
                batch,
                frames,
                size,
                steps,
                classes,
                json,
                torch,
                python,
                torch_device,
                threads,
            } => {
                if threads == Some(0) {
                    bail!("--threads must be at least 1");
                }
                if torch {
                    bench_train::check_torch_device(&cli.device, &torch_device)?;
                }
                let torch_side = torch.then(|| bench_train::find_torch(&python_for_bench(python)));
                if let Some(Err(why)) = &torch_side {
                    eprintln!("note: {why}; timing vidapter only");
                }
                let bench = bench_train::TrainBench {
                    methods,
                    step: bench_train::StepBench {
                        backbone,
                        batch,
                        frames,
                        size,
                        steps: steps.max(1),
                        classes,
                    },
                    device: cli.device.clone(),
                    torch_device,
                    threads: threads.unwrap_or_else(bench_train::default_threads),
                    torch: torch_side,
                };
                let exe = std::env::current_exe().context("locating the vidapter binary")?;
                let sides = if matches!(bench.torch, Some(Ok(_))) {
                    2
                } else {
                    1
                };
                let bar = vidapter::util::progress_bar(
                    (bench.methods.len() * sides) as u64,
                    "{spinner} [{pos}/{len}] {msg} ({elapsed})",
                    !cli.quiet,
                );
                bar.enable_steady_tick(std::time::Duration::from_millis(200));
                let report = bench_train::bench_train(&exe, &bench, |done, m, side| {
                    bar.set_position(done as u64);
                    bar.set_message(format!("{m}: {side}"));
                })?;
                bar.finish_and_clear();
                print!("{}", bench_train::render(&report));
                if let Some(path) = json {
                    vidapter::util::write_atomic(
                        &path,
                        serde_json::to_string_pretty(&report)?.as_bytes(),
                    )?;
                }
            }
            BenchWhat::Data {
                videos,
                seconds,
                repeats,
                python,
                json,
            } => {
                let python = python_for_bench(python);
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
                let python = python_for_bench(python);
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

fn data_check(
    config: &std::path::Path,
    split: &str,
    frames: Option<usize>,
    workers: Option<usize>,
    bad_list: Option<PathBuf>,
    strict: bool,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    use vidapter::data::{check, decode::DecodeOptions, report};
    let cfg = DatasetConfig::from_toml_file(config)?;
    // A run config says how many frames its clips take; a bare [data] file does not.
    let frames = match frames {
        Some(f) => f,
        None => match std::fs::read_to_string(config)
            .ok()
            .and_then(|t| toml::from_str::<toml::Value>(&t).ok())
            .and_then(|d| d.get("sampling")?.get("frames")?.as_integer())
        {
            Some(f) => usize::try_from(f)
                .ok()
                .filter(|f| (1..=vidapter::train::config::MAX_FRAMES).contains(f))
                .with_context(|| {
                    format!(
                        "{}: field `sampling.frames`: {f} is outside 1..={}",
                        config.display(),
                        vidapter::train::config::MAX_FRAMES
                    )
                })?,
            None => 8,
        },
    };
    if !quiet {
        eprintln!("checking {frames} frames per clip (--frames to change)");
    }
    let splits = match split {
        "all" => cfg.splits(),
        one => vec![one.parse::<Split>().map_err(anyhow::Error::msg)?],
    };
    let workers = workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let bad_list = bad_list.unwrap_or_else(|| {
        config
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("bad_entries.tsv")
    });
    let mut reports = Vec::new();
    for s in splits {
        let dataset = match cfg.load(s) {
            Ok(d) => d,
            Err(e) => {
                // The splits already checked keep their findings: write them before failing.
                if !reports.is_empty() {
                    let done = report::merge(&reports);
                    check::write_bad_list(&done, &bad_list)?;
                    eprintln!(
                        "{} entr{} of the splits checked before listed in {}",
                        done.findings.len(),
                        if done.findings.len() == 1 { "y" } else { "ies" },
                        bad_list.display()
                    );
                }
                return Err(anyhow::Error::new(e)
                    .context(format!("reading the {s} split of {}", config.display())));
            }
        };
        let r = check::check(&dataset, frames, workers, &DecodeOptions::default(), !quiet);
        print!("{}", report::render(s, &dataset, &r, 10));
        if s == Split::Val && cfg.val_is_holdout() {
            println!(
                "  (no validation list: val is {:.0}% of train per class, chosen by split_seed {}, and train excludes it; `data.val_fraction` sets the share, and a class with few clips may give none)",
                cfg.val_fraction * 100.0,
                cfg.split_seed
            );
        }
        reports.push(r);
    }
    let all = report::merge(&reports);
    check::write_bad_list(&all, &bad_list)?;
    println!(
        "{} of {} entries clean; {} listed in {}",
        all.clean,
        all.entries,
        all.findings.len(),
        bad_list.display()
    );
    println!(
        "decoded {} clips in {:.1} s ({:.1} clips/s on {workers} worker(s))",
        all.entries,
        all.seconds,
        all.entries as f64 / all.seconds.max(1e-9)
    );
    if strict && !all.findings.is_empty() {
        eprintln!(
            "strict: {} bad entr{} found",
            all.findings.len(),
            if all.findings.len() == 1 { "y" } else { "ies" }
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A count flag that must be at least 1.
fn at_least_one(s: &str) -> Result<usize, String> {
    in_range(s, 1, usize::MAX)
}

/// `--temporal-views`: the run config's range.
fn temporal_views(s: &str) -> Result<usize, String> {
    in_range(s, 1, vidapter::train::config::MAX_TEMPORAL_VIEWS)
}

/// `data check --frames`: the run config's range of `sampling.frames`.
fn clip_frames(s: &str) -> Result<usize, String> {
    in_range(s, 1, vidapter::train::config::MAX_FRAMES)
}

/// Decode threads.
fn workers(s: &str) -> Result<usize, String> {
    in_range(s, 1, vidapter::train::config::MAX_WORKERS)
}

fn in_range(s: &str, lo: usize, hi: usize) -> Result<usize, String> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if v < lo || v > hi {
        return Err(if hi == usize::MAX {
            format!("{v} is too small: it must be at least {lo}")
        } else {
            format!("{v} is outside the allowed range {lo}..={hi}")
        });
    }
    Ok(v)
}

/// `KEY=VALUE` pairs of `--set`, plus the shortcut flags.
fn overrides(
    set: &[String],
    extra: Vec<(&str, Option<String>)>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for s in set {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("--set `{s}`: expected KEY=VALUE, e.g. train.lr=3e-4"))?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    for (k, v) in extra {
        if let Some(v) = v {
            out.push((k.to_string(), v));
        }
    }
    Ok(out)
}

fn print_run_report(r: &experiment::RunReport) {
    let t = &r.train;
    println!("method        {}", r.method);
    println!(
        "parameters    {} trainable of {} ({:.2}%)",
        t.params.0,
        t.params.1,
        100.0 * t.params.0 as f64 / t.params.1.max(1) as f64
    );
    println!(
        "epochs        {} ({} optimiser steps), final train loss {:.4}",
        t.epochs, t.steps, t.final_loss
    );
    println!(
        "speed         {:.2} s/step, {:.1} clips/s; peak memory {}",
        t.step_seconds,
        t.clips_per_second,
        t.peak_rss_bytes.map_or("n/a".into(), |b| format!(
            "{:.0} MiB",
            b as f64 / (1 << 20) as f64
        ))
    );
    if let Some((uar, war)) = t.best_val {
        println!(
            "best {:<8} UAR {:.2}%  WAR {:.2}%",
            r.selected_on,
            uar * 100.0,
            war * 100.0
        );
    }
    if let Some(m) = &r.test {
        println!(
            "test          UAR {:.2}%  WAR {:.2}%  top-5 {:.2}%  ({} clips)",
            m.uar * 100.0,
            m.war * 100.0,
            m.top5 * 100.0,
            m.clips
        );
    }
    if !t.skipped.is_empty() {
        println!(
            "skipped       {} unreadable clip(s); see the log",
            t.skipped.len()
        );
    }
    println!("run folder    {}", t.out.display());
}

/// `--python`, else `$VIDAPTER_PYTHON`, else `python3`.
fn python_for_bench(python: Option<String>) -> String {
    python
        .or_else(|| std::env::var("VIDAPTER_PYTHON").ok())
        .unwrap_or_else(|| "python3".into())
}

/// `--method`: a method name with defaults, or a TOML file with a [method] table.
fn parse_method(arg: &str) -> anyhow::Result<MethodConfig> {
    let path = std::path::Path::new(arg);
    if path.is_file() {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {arg}"))?;
        let doc: toml::Value =
            toml::from_str(&text).with_context(|| format!("{arg}: not valid TOML"))?;
        let table = doc
            .get("method")
            .cloned()
            .with_context(|| format!("{arg}: there is no [method] table"))?;
        return table
            .try_into()
            .map_err(|e| anyhow::anyhow!("{arg}: [method]: {e}"));
    }
    toml::from_str(&format!("kind = {arg:?}"))
        .map_err(|e| anyhow::anyhow!("--method `{arg}` is neither a file nor a method name: {e}"))
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
