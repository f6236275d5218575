//! What the `train`, `eval`, `predict` and `kfold` commands do, as library functions: build a
//! run from its config (or rebuild it from a checkpoint), call the training loop, test with
//! the community's protocol, and write what people look at (JSON, PNG plots, a Markdown
//! report) into the run folder.
//!
//! A checkpoint carries the run config it was trained with, so `eval` and `predict` need only
//! the checkpoint; the backbone it names is loaded and its SHA-256 compared with the one
//! recorded, and a different backbone is refused.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;

use crate::backbone::Backbone;
use crate::backbone::BackboneId;
use crate::data::config::{Format, Split};
use crate::data::decode::{DecodeOptions, Frame, decode};
use crate::data::loader::{ClipSpec, LoaderConfig, Views};
use crate::data::sampling::{Mode, Sampling};
use crate::data::transform::{View, clip_to_tensor};
use crate::data::{ClassMap, Entry, Source};
use crate::error::{Error, Result};
use crate::eval::{self, FoldSummary, Metrics};
use crate::methods::{MethodConfig, VideoClassifier};
use crate::train::checkpoint::{self, Checkpoint};
use crate::train::config::{RunConfig, check_spatial_views};
use crate::train::predict::predict_probs_shared;
use crate::train::run::{TrainJob, TrainSummary};

/// A run's pieces, built once.
pub struct Prepared {
    /// The frozen backbone.
    pub backbone: Backbone,
    /// Its identity for checkpoints.
    pub backbone_id: BackboneId,
    /// Class names.
    pub classes: ClassMap,
    /// How clips are cut (training flips per the dataset).
    pub spec: ClipSpec,
}

impl Prepared {
    /// The run's model before training: the backbone, `cfg`'s method and a head over the
    /// class map, initialised with the run's seed.
    pub fn model(&self, cfg: &RunConfig, device: &Device) -> VideoClassifier {
        VideoClassifier::new(
            self.backbone.model.clone(),
            &cfg.method,
            self.classes.len(),
            cfg.train.seed,
            device,
        )
    }
}

/// Loads the backbone and class map of `cfg` and checks the method against the backbone.
pub fn prepare(cfg: &RunConfig, config_path: &Path, device: &Device) -> Result<Prepared> {
    prepare_with(cfg, config_path, None, device)
}

/// [`prepare`] with the class map given (a checkpoint's own) instead of read from the dataset,
/// so that a checkpoint predicts without the dataset's files.
fn prepare_with(
    cfg: &RunConfig,
    config_path: &Path,
    classes: Option<ClassMap>,
    device: &Device,
) -> Result<Prepared> {
    let backbone = Backbone::load(&cfg.backbone, device)?;
    cfg.check_for_backbone(&backbone.config, config_path)?;
    let files = crate::backbone::weight_files(&backbone.files.weights)?;
    let c = &backbone.config;
    let backbone_id = BackboneId::of(
        &cfg.backbone,
        &files,
        format!(
            "{:?}, {} blocks, width {}",
            c.arch, c.num_layers, c.hidden_size
        ),
    )?;
    let classes = match classes {
        Some(c) => c,
        None => cfg.data.class_map()?,
    };
    let spatial = cfg.spatial.resolve(
        c.image_size,
        c.image_mean,
        c.image_std,
        cfg.data.flip_allowed(),
    );
    Ok(Prepared {
        spec: ClipSpec {
            sampling: cfg.sampling,
            spatial,
        },
        backbone,
        backbone_id,
        classes,
    })
}

/// What one training run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The method's name.
    pub method: String,
    /// The training loop's summary.
    pub train: TrainSummary,
    /// Test metrics of the best checkpoint (if the dataset has a test split).
    pub test: Option<MetricsSummary>,
    /// Which split chose the checkpoint (`val`, or `test` under the peers' protocol).
    pub selected_on: String,
}

/// The headline numbers of an evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsSummary {
    /// Clips evaluated.
    pub clips: usize,
    /// Unweighted average recall.
    pub uar: f64,
    /// Weighted average recall.
    pub war: f64,
    /// Top-5 (or top-K for K < 5) accuracy.
    pub top5: f64,
    /// Mean class accuracy.
    pub mean_class_accuracy: f64,
}

impl fmt::Display for RunReport {
    /// The run in a few lines: method, parameters, epochs, speed, the best validation (or
    /// test, under the peers' protocol) and test metrics when there are some, the run folder.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.train;
        writeln!(f, "method        {}", self.method)?;
        writeln!(
            f,
            "parameters    {} trainable of {} ({:.2}%)",
            t.params.0,
            t.params.1,
            100.0 * t.params.0 as f64 / t.params.1.max(1) as f64
        )?;
        writeln!(
            f,
            "epochs        {} ({} optimiser steps), final train loss {:.4}",
            t.epochs, t.steps, t.final_loss
        )?;
        writeln!(
            f,
            "speed         {:.2} s/step, {:.1} clips/s; peak memory {}",
            t.step_seconds,
            t.clips_per_second,
            t.peak_rss_bytes.map_or("n/a".into(), |b| format!(
                "{:.0} MiB",
                b as f64 / (1 << 20) as f64
            ))
        )?;
        if let Some((uar, war)) = t.best_val {
            writeln!(
                f,
                "best {:<8} UAR {:.2}%  WAR {:.2}%",
                self.selected_on,
                uar * 100.0,
                war * 100.0
            )?;
        }
        if let Some(m) = &self.test {
            writeln!(
                f,
                "test          UAR {:.2}%  WAR {:.2}%  top-5 {:.2}%  ({} clips)",
                m.uar * 100.0,
                m.war * 100.0,
                m.top5 * 100.0,
                m.clips
            )?;
        }
        if !t.skipped.is_empty() {
            writeln!(
                f,
                "skipped       {} unreadable clip(s); see the log",
                t.skipped.len()
            )?;
        }
        writeln!(f, "run folder    {}", t.out.display())
    }
}

impl From<&Metrics> for MetricsSummary {
    fn from(m: &Metrics) -> Self {
        MetricsSummary {
            clips: m.clips,
            uar: m.uar,
            war: m.war,
            top5: m.top5,
            mean_class_accuracy: m.mean_class_accuracy,
        }
    }
}

/// Options of a training run beyond its config.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from `out/last.safetensors` when it exists.
    pub resume: bool,
    /// Stop after this many epochs in this session.
    pub stop_after: Option<usize>,
    /// Progress bars.
    pub progress: bool,
    /// The other ranks of a data-parallel run (`vidapter train` under torchrun, Slurm or
    /// `--nproc`); rank 0 alone writes the run folder's files.
    pub dist: Option<Arc<crate::dist::Group>>,
}

fn load_split(cfg: &RunConfig, split: Split, progress: bool) -> Result<Arc<Vec<Entry>>> {
    let ds = super::faces::load_split(cfg, split, progress)?;
    for p in &ds.problems {
        tracing::warn!("{split}: skipping {p}");
    }
    if !ds.problems.is_empty() {
        tracing::warn!(
            target: crate::util::PROGRESS,
            "note: {} annotation problem(s) in the {split} split were skipped (run `vidapter data check` for the list)",
            ds.problems.len()
        );
    }
    Ok(Arc::new(ds.entries))
}

/// Trains the run described by `cfg`, then tests its best checkpoint and writes the report.
pub fn train_run(
    cfg: &RunConfig,
    config_path: &Path,
    opts: &TrainOptions,
    device: &Device,
) -> Result<RunReport> {
    let prep = prepare(cfg, config_path, device)?;
    let train = load_split(cfg, Split::Train, opts.progress)?;
    if train.is_empty() {
        return Err(Error::Input(format!(
            "{}: the train split has no readable entry",
            config_path.display()
        )));
    }
    let has_test = cfg.data.splits().contains(&Split::Test);
    let selected_on = if cfg.eval.val_on_test && has_test {
        Split::Test
    } else {
        Split::Val
    };
    let val = load_split(cfg, selected_on, opts.progress)?;
    let model = prep.model(cfg, device);
    let job = TrainJob {
        model,
        method: cfg.method.clone(),
        classes: prep.classes.clone(),
        backbone: prep.backbone_id.clone(),
        train,
        val: (!val.is_empty()).then_some(val),
        spec: prep.spec.clone(),
        settings: cfg.train.clone(),
        out: cfg.out.clone(),
        run_config: cfg.to_json(),
        stop_after: opts.stop_after,
        dist: opts.dist.clone(),
    };
    let lead = opts.dist.as_ref().is_none_or(|g| g.rank() == 0);
    std::fs::create_dir_all(&cfg.out).map_err(|e| Error::io(&cfg.out, e))?;
    if lead {
        crate::util::write_atomic(
            &cfg.out.join("config.json"),
            serde_json::to_string_pretty(&cfg.to_json())
                .expect("json")
                .as_bytes(),
        )?;
    }
    let summary = crate::train::train(job, device, opts.resume, opts.progress)?;
    if let Some(group) = &opts.dist {
        // The other ranks read best.safetensors once rank 0 has written it.
        group.barrier("waiting for rank 0's last checkpoint")?;
    }
    if lead {
        plot_training(&cfg.out)?;
    }
    let test = if has_test && summary.epochs == cfg.train.epochs {
        // The run's own backbone, loaded and hashed once: only the checkpoint is read again.
        let best = cfg.out.join("best.safetensors");
        let model = checkpoint_model(&prep, &cfg.method, &checkpoint::load(&best)?, &best, device)?;
        let (m, _) = evaluate_with(
            &prep,
            cfg,
            &model,
            &best,
            Split::Test,
            &cfg.out,
            opts.progress && lead,
            device,
            opts.dist.as_deref(),
        )?;
        Some(MetricsSummary::from(&m))
    } else {
        None
    };
    let report = RunReport {
        method: cfg.method.name().to_string(),
        train: summary,
        test,
        selected_on: selected_on.name().to_string(),
    };
    if lead {
        crate::util::write_atomic(
            &cfg.out.join("report.json"),
            serde_json::to_string_pretty(&report)
                .expect("json")
                .as_bytes(),
        )?;
    }
    Ok(report)
}

/// `training_loss.png` and `validation.png` from the run's `metrics.jsonl`.
pub fn plot_training(out: &Path) -> Result<()> {
    let records = eval::read_log(out.join("metrics.jsonl"))?;
    let loss = eval::curves_from_log(&records, "step", &["loss"]);
    if loss.iter().any(|(_, p)| !p.is_empty()) {
        eval::plot::plot_curves(
            "training loss",
            "optimiser step",
            "cross-entropy",
            &loss,
            out.join("training_loss.png"),
        )?;
    }
    let val = eval::curves_from_log(&records, "epoch", &["val_uar", "val_war"]);
    if val.iter().any(|(_, p)| !p.is_empty()) {
        eval::plot::plot_curves(
            "validation",
            "epoch",
            "recall",
            &val,
            out.join("validation.png"),
        )?;
    }
    Ok(())
}

/// Rebuilds the model a checkpoint was trained as, with its weights, refusing a backbone
/// other than the recorded one. Returns the model and the run config stored in it.
pub fn load_model(
    checkpoint: &Path,
    device: &Device,
) -> Result<(VideoClassifier, RunConfig, Prepared)> {
    let ckpt = checkpoint::load(checkpoint)?;
    let cfg: RunConfig =
        serde_json::from_value(ckpt.meta.extra["run_config"].clone()).map_err(|e| {
            Error::format(
                checkpoint,
                format!("the stored run config cannot be read: {e}"),
            )
        })?;
    let prep = prepare_with(&cfg, checkpoint, Some(ckpt.meta.classes.clone()), device)?;
    let model = checkpoint_model(&prep, &cfg.method, &ckpt, checkpoint, device)?;
    Ok((model, cfg, prep))
}

/// The model `ckpt` (read from `path`) holds, built on `prep`'s backbone, which must be the
/// one the checkpoint records.
fn checkpoint_model(
    prep: &Prepared,
    method: &MethodConfig,
    ckpt: &Checkpoint,
    path: &Path,
    device: &Device,
) -> Result<VideoClassifier> {
    if prep.backbone_id.sha256 != ckpt.meta.backbone.sha256 {
        return Err(Error::Input(format!(
            "{}: trained on backbone `{}` ({}, sha256 {}), but `{}` now holds different weights ({}, sha256 {}); adapters only work with the backbone they were trained on",
            path.display(),
            ckpt.meta.backbone.spec,
            ckpt.meta.backbone.summary,
            crate::util::short_digest(&ckpt.meta.backbone.sha256),
            prep.backbone_id.spec,
            prep.backbone_id.summary,
            crate::util::short_digest(&prep.backbone_id.sha256)
        )));
    }
    let model = VideoClassifier::new(
        prep.backbone.model.clone(),
        method,
        ckpt.meta.classes.len(),
        0,
        device,
    );
    ckpt.apply(model, path)
}

/// Tests `model`, read from `checkpoint`, on `split` with `cfg`'s test views; writes
/// `eval_<split>.json` and `confusion_<split>.png` to `out`. With `group`, the ranks share
/// the clips out and all get the metrics of the whole split; rank 0 writes the files.
#[allow(clippy::too_many_arguments)]
fn evaluate_with(
    prep: &Prepared,
    cfg: &RunConfig,
    model: &VideoClassifier,
    checkpoint: &Path,
    split: Split,
    out: &Path,
    progress: bool,
    device: &Device,
    group: Option<&crate::dist::Group>,
) -> Result<(Metrics, PathBuf)> {
    let entries = load_split(cfg, split, progress)?;
    if entries.is_empty() {
        return Err(Error::Input(format!(
            "the {split} split has no readable entry"
        )));
    }
    let loader = LoaderConfig {
        batch_size: cfg.train.batch_size.max(1),
        workers: cfg.train.workers.max(1),
        prefetch: 2,
        seed: cfg.train.seed,
        shuffle: false,
        views: Views::Test {
            temporal: cfg.eval.temporal_views,
            spatial: cfg.eval.spatial_views,
        },
        strict: cfg.train.strict,
        decode: cfg.train.decode_options(),
    };
    let bar = crate::util::progress_bar(
        entries.len() as u64,
        &format!("{split} {{bar:25}} {{pos}}/{{len}} clips  {{per_sec}}  ETA {{eta}}"),
        progress,
    );
    let p = predict_probs_shared(
        model,
        entries,
        Arc::new(prep.spec.clone()),
        &loader,
        device,
        &bar,
        group,
    )?;
    bar.finish_and_clear();
    let metrics = eval::evaluate(&p.probs, prep.classes.len(), &p.labels)?;
    let path = out.join(format!("eval_{split}.json"));
    if group.is_some_and(|g| g.rank() != 0) {
        return Ok((metrics, path));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut json = metrics.to_json(&prep.classes.names)?;
    json["split"] = split.name().into();
    json["checkpoint"] = checkpoint.display().to_string().into();
    json["views"] = serde_json::json!({
        "temporal": cfg.eval.temporal_views, "spatial": cfg.eval.spatial_views,
        "aggregate": "mean of softmax probabilities",
    });
    json["checkpoint_selected_on"] = if cfg.eval.val_on_test {
        "test (the peers' protocol: test used as validation)".into()
    } else {
        "val".into()
    };
    json["skipped"] = serde_json::to_value(&p.problems).expect("json");
    crate::util::write_atomic(
        &path,
        serde_json::to_string_pretty(&json)
            .expect("json")
            .as_bytes(),
    )?;
    eval::plot::plot_confusion(
        &metrics.confusion,
        &prep.classes.names,
        &format!(
            "{} on {split}: UAR {:.1}%, WAR {:.1}%",
            cfg.method.name(),
            metrics.uar * 100.0,
            metrics.war * 100.0
        ),
        out.join(format!("confusion_{split}.png")),
    )?;
    Ok((metrics, path))
}

/// Evaluates `checkpoint` on `split` with the test views of its run config (each of
/// `views` = `(temporal, spatial)` that is given replaces the config's),
/// writing `eval_<split>.json` and `confusion_<split>.png` to `out` (default: beside the
/// checkpoint).
///
/// # Errors
/// A spatial view count other than 1 or 3 (before anything is loaded); those of loading the
/// checkpoint and testing.
pub fn evaluate(
    checkpoint: &Path,
    split: Split,
    views: (Option<usize>, Option<usize>),
    out: Option<&Path>,
    progress: bool,
    device: &Device,
) -> Result<EvalReport> {
    let (temporal, spatial) = views;
    if let Some(s) = spatial {
        check_spatial_views(s).map_err(|r| Error::Input(format!("--spatial-views {r}")))?;
    }
    let (model, mut cfg, prep) = load_model(checkpoint, device)?;
    cfg.eval.temporal_views = temporal.unwrap_or(cfg.eval.temporal_views);
    cfg.eval.spatial_views = spatial.unwrap_or(cfg.eval.spatial_views);
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| checkpoint.parent().unwrap_or(Path::new(".")).to_path_buf());
    let (metrics, json) = evaluate_with(
        &prep, &cfg, &model, checkpoint, split, &out, progress, device, None,
    )?;
    Ok(EvalReport {
        split,
        metrics,
        json,
    })
}

/// What `eval` found and wrote.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// The split tested.
    pub split: Split,
    /// Its metrics.
    pub metrics: Metrics,
    /// `eval_<split>.json` (`confusion_<split>.png` is beside it).
    pub json: PathBuf,
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.metrics;
        writeln!(
            f,
            "{}: {} clips  UAR {:.2}%  WAR {:.2}%  top-1 {:.2}%  top-{} {:.2}%  mean class acc. {:.2}%",
            self.split,
            m.clips,
            m.uar * 100.0,
            m.war * 100.0,
            m.top1 * 100.0,
            m.top_k,
            m.top5 * 100.0,
            m.mean_class_accuracy * 100.0
        )?;
        writeln!(
            f,
            "wrote {} and the confusion matrix PNG beside it",
            self.json.display()
        )
    }
}

/// One fold's result in a k-fold run.
#[derive(Debug, Clone, Serialize)]
pub struct FoldResult {
    /// Fold number (1-based).
    pub fold: usize,
    /// Test metrics of that fold's best checkpoint.
    pub test: MetricsSummary,
}

/// Trains and tests every fold (DFEW, MAFW: 5; UCF101, HMDB51: 3) in `out/fold{N}`, and
/// reports per-fold and mean UAR / WAR (`kfold.json`, `kfold.md`).
pub fn kfold(
    cfg: &RunConfig,
    config_path: &Path,
    folds: Option<Vec<usize>>,
    opts: &TrainOptions,
    device: &Device,
) -> Result<KfoldReport> {
    let n = cfg.data.format.folds().ok_or_else(|| {
        Error::config(
            config_path,
            "data.format",
            format!(
                "`{}` has no official folds; kfold needs {}",
                cfg.data.format.name(),
                Format::names_with_folds()
            ),
        )
    })?;
    let folds = folds.unwrap_or_else(|| (1..=n).collect());
    let mut results = Vec::new();
    for f in folds {
        let mut fold_cfg = cfg.clone();
        fold_cfg.data.fold = Some(f);
        fold_cfg.out = cfg.out.join(format!("fold{f}"));
        if opts.progress {
            tracing::info!(target: crate::util::PROGRESS, "fold {f}/{n}");
        }
        let report = train_run(&fold_cfg, config_path, opts, device)?;
        let test = report.test.ok_or_else(|| {
            Error::Input(format!(
                "fold {f} produced no test metrics (was it stopped early?)"
            ))
        })?;
        results.push(FoldResult { fold: f, test });
    }
    let summary = FoldSummary::new(
        &results
            .iter()
            .map(|r| (r.test.uar, r.test.war))
            .collect::<Vec<_>>(),
    )?;
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.fold.to_string(),
                format!("{:.2}", r.test.uar * 100.0),
                format!("{:.2}", r.test.war * 100.0),
            ]
        })
        .collect();
    let md = eval::markdown_table(&["fold", "UAR %", "WAR %"], &rows);
    let std = |s: Option<f64>| s.map_or("n/a".to_string(), |v| format!("{:.2}", v * 100.0));
    let text = format!(
        "# {} on {}, {} folds\n\n{md}\nmean UAR {:.2} ± {}, mean WAR {:.2} ± {} (sample std over folds)\n",
        cfg.method.name(),
        cfg.data.format.name(),
        results.len(),
        summary.uar_mean * 100.0,
        std(summary.uar_std),
        summary.war_mean * 100.0,
        std(summary.war_std),
    );
    let markdown = cfg.out.join("kfold.md");
    crate::util::write_atomic(&markdown, text.as_bytes())?;
    crate::util::write_atomic(
        &cfg.out.join("kfold.json"),
        serde_json::to_string_pretty(&serde_json::json!({"folds": results, "summary": summary}))
            .expect("json")
            .as_bytes(),
    )?;
    Ok(KfoldReport {
        folds: results,
        summary,
        markdown,
    })
}

/// What `kfold` found and wrote.
#[derive(Debug, Clone)]
pub struct KfoldReport {
    /// Each fold's test metrics, in the order run.
    pub folds: Vec<FoldResult>,
    /// Mean (and spread) over the folds.
    pub summary: FoldSummary,
    /// `kfold.md` (`kfold.json` is beside it).
    pub markdown: PathBuf,
}

impl fmt::Display for KfoldReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.folds {
            writeln!(
                f,
                "fold {}  UAR {:.2}%  WAR {:.2}%",
                r.fold,
                r.test.uar * 100.0,
                r.test.war * 100.0
            )?;
        }
        let s = &self.summary;
        writeln!(
            f,
            "mean    UAR {:.2}%  WAR {:.2}%  ({} folds; {})",
            s.uar_mean * 100.0,
            s.war_mean * 100.0,
            s.folds,
            self.markdown.display()
        )
    }
}

/// How `predict` reads and windows videos.
#[derive(Debug, Clone, Default)]
pub struct PredictOptions {
    /// Predict per window of this many frames (a timeline) instead of per video.
    pub window: Option<usize>,
    /// Frames between window starts (default: half a window).
    pub stride: Option<usize>,
    /// Crop every frame to `(x, y, w, h)` first (e.g. a face box); default: the frames as
    /// they are (pre-cropped faces need none).
    pub crop: Option<[usize; 4]>,
}

/// One window of a timeline.
#[derive(Debug, Clone, Serialize)]
pub struct WindowPrediction {
    /// First frame (0-based).
    pub start: usize,
    /// One past the last frame.
    pub end: usize,
    /// Start time in seconds, when the frame rate is known (written to the millisecond).
    #[serde(serialize_with = "seconds_ms")]
    pub start_s: Option<f64>,
    /// Most probable class.
    pub top: String,
    /// Probability per class, in class order (written with 6 decimals).
    #[serde(serialize_with = "probabilities")]
    pub probs: Vec<f32>,
}

/// Probabilities as JSON numbers with 6 decimals (`0.123457`), the precision a softmax over
/// f32 logits carries, instead of the shortest round-trip form of each f32.
fn probabilities<S: serde::Serializer>(p: &[f32], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(p.iter().map(|&x| (x as f64 * 1e6).round() / 1e6))
}

/// Seconds to the millisecond (`1.333`, not `1.3333333333333333`).
pub(crate) fn seconds_ms<S: serde::Serializer>(
    t: &Option<f64>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&((t * 1e3).round() / 1e3)),
        None => s.serialize_none(),
    }
}

/// What `predict` says about one video.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The input.
    pub path: PathBuf,
    /// Most probable class.
    pub top: String,
    /// Probability per class, in class order (written with 6 decimals).
    #[serde(serialize_with = "probabilities")]
    pub probs: Vec<f32>,
    /// Per-window predictions when a timeline was asked for.
    pub timeline: Vec<WindowPrediction>,
    /// Why the video could not be read (then `probs` is empty).
    pub error: Option<String>,
    /// What the user should know about how this input was read: a damaged input used
    /// because the caller allowed it, a timeline longer than the clip (printed on stderr too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub(crate) fn crop_frame(
    f: &Frame,
    [x, y, w, h]: [usize; 4],
) -> std::result::Result<Frame, String> {
    if w == 0 || h == 0 || x + w > f.width || y + h > f.height {
        return Err(format!(
            "crop box {x},{y},{w},{h} does not fit in the {}x{} frame",
            f.width, f.height
        ));
    }
    let mut data = Vec::with_capacity(w * h * 3);
    for row in y..y + h {
        let start = (row * f.width + x) * 3;
        data.extend_from_slice(&f.data[start..start + w * 3]);
    }
    Ok(Frame {
        width: w,
        height: h,
        data,
    })
}

/// A checkpoint's model ready to classify clips of frames, as `predict` does: each clip of
/// [`frames`](Self::frames) RGB frames resized and centre-cropped per the checkpoint's
/// spatial settings, softmax over its classes.
pub struct Classifier {
    model: VideoClassifier,
    spatial: crate::data::transform::SpatialConfig,
    device: Device,
    /// Frames per clip (the run config's sampling).
    pub frames: usize,
    /// Class names, in the order of every probability row.
    pub classes: Vec<String>,
}

impl Classifier {
    /// A classifier over `model` (in inference mode) with clips of `frames` frames.
    pub fn new(
        model: VideoClassifier,
        spatial: crate::data::transform::SpatialConfig,
        frames: usize,
        classes: Vec<String>,
        device: &Device,
    ) -> Classifier {
        Classifier {
            model: burn::module::Module::valid(&model),
            spatial,
            device: device.clone(),
            frames,
            classes,
        }
    }

    /// Loads `checkpoint` (see [`load_model`]) for inference.
    ///
    /// # Errors
    /// Those of [`load_model`].
    pub fn load(checkpoint: &Path, device: &Device) -> Result<(Classifier, RunConfig, Prepared)> {
        let (model, cfg, prep) = load_model(checkpoint, device)?;
        let classifier = Classifier::new(
            model,
            prep.spec.spatial.clone(),
            cfg.sampling.frames(),
            prep.classes.names.clone(),
            device,
        );
        Ok((classifier, cfg, prep))
    }

    /// The side of the square frames the model takes.
    pub fn input_size(&self) -> usize {
        self.spatial.size
    }

    /// Probabilities (rows of `classes.len()`), one row per clip of `frames` consecutive
    /// entries of `frames` (a trailing partial clip is ignored).
    ///
    /// # Errors
    /// Non-finite scores (see [`eval::softmax_rows`]).
    pub fn probs(&self, frames: &[Frame]) -> Result<Vec<f32>> {
        let t = self.frames;
        let mut rng = StdRng::seed_from_u64(0);
        let mut clips = Vec::new();
        for chunk in frames.chunks_exact(t) {
            clips.extend(clip_to_tensor(chunk, &self.spatial, View::Center, &mut rng));
        }
        let n_clips = frames.len() / t;
        let s = self.spatial.size;
        let batch = crate::data::loader::Batch {
            clips,
            shape: [n_clips, t, 3, s, s],
            labels: Vec::new(),
            entries: Vec::new(),
            views: 1,
        };
        let logits = self.model.forward(batch.tensor(&self.device), None);
        let scores = logits
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32");
        eval::softmax_rows(&scores, self.classes.len())
    }
}

/// Frames per timeline window when the user names none: one second of the video (25
/// frames when its rate is unknown), at least one clip of `clip` frames.
pub fn default_window(fps: Option<f64>, clip: usize) -> usize {
    let second = fps
        .filter(|f| f.is_finite() && *f > 0.0)
        .map_or(25, |f| f.round() as usize);
    second.max(clip)
}

/// Class probabilities for each of `inputs` (video files or frame folders), and optionally a
/// timeline of windows. An unreadable or damaged input is reported in its row, not fatal.
pub fn predict(
    checkpoint: &Path,
    inputs: &[PathBuf],
    opts: &PredictOptions,
    progress: bool,
    device: &Device,
) -> Result<(Vec<Prediction>, ClassMap)> {
    predict_with(
        checkpoint,
        inputs,
        opts,
        &DecodeOptions::default(),
        progress,
        device,
    )
}

/// [`predict`] with decoder settings: with [`DecodeOptions::allow_damaged`] a damaged input
/// (truncated video, gapped or broken frame folder) is classified from the frames that
/// decode, and its row's `warnings` say so; without, it is an error row.
pub fn predict_with(
    checkpoint: &Path,
    inputs: &[PathBuf],
    opts: &PredictOptions,
    decode_opts: &DecodeOptions,
    progress: bool,
    device: &Device,
) -> Result<(Vec<Prediction>, ClassMap)> {
    let (classifier, cfg, prep) = Classifier::load(checkpoint, device)?;
    let t = classifier.frames;
    let views = cfg.eval.temporal_views.max(1);
    let names = &prep.classes.names;
    let bar = crate::util::progress_bar(
        inputs.len() as u64,
        "predict {bar:25} {pos}/{len} videos  ETA {eta}",
        progress,
    );
    let mut out = Vec::new();
    for path in inputs {
        let source = if path.is_dir() {
            Source::Frames {
                dir: path.clone(),
                template: None,
                start: 1,
                count: None,
            }
        } else {
            Source::Video(path.clone())
        };
        // Windows (start, end) in frames, known once the frame count is.
        let mut windows: Vec<(usize, usize)> = Vec::new();
        let mut warnings: Vec<String> = Vec::new();
        let mut select = |n: usize| {
            let mut rng = StdRng::seed_from_u64(0);
            let mut idx: Vec<usize> = (0..views)
                .flat_map(|v| {
                    cfg.sampling
                        .indices(n, Mode::Test { view: v, views }, &mut rng)
                })
                .collect();
            if let Some(w) = opts.window {
                if w > n {
                    warnings.push(format!(
                        "--timeline {w} is longer than the clip's {n} frames: the timeline is one window of all {n}"
                    ));
                }
                let w = w.clamp(1, n);
                let stride = opts.stride.unwrap_or((w / 2).max(1)).max(1);
                let mut s = 0;
                loop {
                    windows.push((s, s + w));
                    if s + w >= n {
                        break;
                    }
                    // A stride past the end ends with the window flush with the last frame.
                    s = (s + stride).min(n - w);
                }
                let seg = Sampling::Segment { frames: t };
                for &(a, _) in &windows {
                    idx.extend(
                        seg.indices(w, Mode::Test { view: 0, views: 1 }, &mut rng)
                            .into_iter()
                            .map(|i| a + i),
                    );
                }
            }
            idx
        };
        let decoded = decode(&source, &mut select, decode_opts);
        let result = decoded.map_err(|e| e.to_string()).and_then(|d| {
            if d.info.decode_errors > 0 {
                let w = format!(
                    "damaged, used anyway (--allow-damaged): {}",
                    d.info.damage()
                );
                warnings.push(w);
            }
            let frames = match opts.crop {
                Some(b) => d
                    .frames
                    .iter()
                    .map(|f| crop_frame(f, b))
                    .collect::<std::result::Result<Vec<_>, _>>()?,
                None => d.frames,
            };
            Ok((frames, d.info.fps))
        });
        let (frames, fps) = match result {
            Ok(x) => x,
            Err(reason) => {
                out.push(Prediction {
                    path: path.clone(),
                    top: String::new(),
                    probs: Vec::new(),
                    timeline: Vec::new(),
                    error: Some(reason),
                    warnings,
                });
                bar.inc(1);
                continue;
            }
        };
        let probs = classifier.probs(&frames)?;
        let k = names.len();
        let mut video = vec![0f32; k];
        for v in 0..views {
            for c in 0..k {
                video[c] += probs[v * k + c] / views as f32;
            }
        }
        let top = |p: &[f32]| {
            let best = p
                .iter()
                .enumerate()
                .fold(0, |b, (i, x)| if *x > p[b] { i } else { b });
            names[best].clone()
        };
        let timeline = windows
            .iter()
            .enumerate()
            .map(|(w, &(a, b))| {
                let p = probs[(views + w) * k..(views + w + 1) * k].to_vec();
                WindowPrediction {
                    start: a,
                    end: b,
                    start_s: fps.map(|f| a as f64 / f),
                    top: top(&p),
                    probs: p,
                }
            })
            .collect();
        out.push(Prediction {
            path: path.clone(),
            top: top(&video),
            probs: video,
            timeline,
            error: None,
            warnings,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((out, prep.classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_report(test: Option<MetricsSummary>, skipped: usize) -> RunReport {
        RunReport {
            method: "st_adapter".into(),
            train: TrainSummary {
                epochs: 3,
                steps: 12,
                final_loss: 0.51234,
                best_val: Some((0.5, 0.625)),
                step_seconds: 0.256,
                clips_per_second: 15.62,
                peak_rss_bytes: Some(300 << 20),
                params: (1_000, 8_000),
                skipped: (0..skipped)
                    .map(|i| crate::data::Problem {
                        path: format!("c{i}.mp4").into(),
                        line: None,
                        reason: "truncated".into(),
                    })
                    .collect(),
                out: "runs/st".into(),
            },
            test,
            selected_on: "val".into(),
        }
    }

    #[test]
    fn a_run_report_without_test_metrics() {
        assert_eq!(
            run_report(None, 0).to_string(),
            "method        st_adapter\n\
             parameters    1000 trainable of 8000 (12.50%)\n\
             epochs        3 (12 optimiser steps), final train loss 0.5123\n\
             speed         0.26 s/step, 15.6 clips/s; peak memory 300 MiB\n\
             best val      UAR 50.00%  WAR 62.50%\n\
             run folder    runs/st\n"
        );
    }

    #[test]
    fn a_run_report_with_test_metrics_and_skipped_clips() {
        let test = MetricsSummary {
            clips: 40,
            uar: 0.4,
            war: 0.45,
            top5: 0.9,
            mean_class_accuracy: 0.4,
        };
        let text = run_report(Some(test), 2).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[5..],
            [
                "test          UAR 40.00%  WAR 45.00%  top-5 90.00%  (40 clips)",
                "skipped       2 unreadable clip(s); see the log",
                "run folder    runs/st",
            ]
        );
    }

    #[test]
    fn eval_and_kfold_reports() {
        let metrics = eval::evaluate(&[0.9, 0.1, 0.2, 0.8, 0.6, 0.4], 2, &[0, 1, 1]).unwrap();
        let report = EvalReport {
            split: Split::Test,
            metrics,
            json: "runs/x/eval_test.json".into(),
        };
        assert_eq!(
            report.to_string(),
            "test: 3 clips  UAR 75.00%  WAR 66.67%  top-1 66.67%  top-2 100.00%  mean class acc. 75.00%\n\
             wrote runs/x/eval_test.json and the confusion matrix PNG beside it\n"
        );
        let fold = |fold, uar, war| FoldResult {
            fold,
            test: MetricsSummary {
                clips: 10,
                uar,
                war,
                top5: 1.0,
                mean_class_accuracy: uar,
            },
        };
        let folds = vec![fold(1, 0.5, 0.6), fold(2, 0.7, 0.8)];
        let kfold = KfoldReport {
            summary: FoldSummary::new(&[(0.5, 0.6), (0.7, 0.8)]).unwrap(),
            folds,
            markdown: "runs/k/kfold.md".into(),
        };
        assert_eq!(
            kfold.to_string(),
            "fold 1  UAR 50.00%  WAR 60.00%\n\
             fold 2  UAR 70.00%  WAR 80.00%\n\
             mean    UAR 60.00%  WAR 70.00%  (2 folds; runs/k/kfold.md)\n"
        );
    }
}
