//! The training loop: epochs of loader batches through a [`VideoClassifier`] on an autodiff
//! device, AdamW on the trainable tensors, validation after every epoch, checkpoints written
//! atomically (`last.safetensors` every epoch, `best.safetensors` on a better validation UAR),
//! a JSONL metrics log, and resumption of a killed run.
//!
//! Determinism: the loader's batches depend only on `(seed, epoch)`, dropout masks on
//! `(seed, step, micro-batch)`, the model's init on `seed`, and the optimiser state is
//! checkpointed exactly; so on the CPU a run resumed from `last.safetensors` ends with the same
//! weights as one that was never interrupted (`tests/train.rs` checks this).
//!
//! A loss that is NaN or infinite stops the run with an error naming the epoch and step; the
//! last good checkpoint stays as it was.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::Serialize;

use super::checkpoint::{self, CheckpointMeta};
use super::config::TrainSettings;
use super::optim::{AdamW, OptimConfig};
use super::predict::predict_probs_shared;
use super::step::{Inputs, Stepper, classifier_loss};
use crate::backbone::BackboneId;
use crate::data::loader::{self, ClipSpec, LoaderConfig, Views};
use crate::data::{ClassMap, Entry, Problem};
use crate::error::{Error, Result};
use crate::methods::{self, Family, MethodConfig, VideoClassifier};
use crate::train::cache::{CacheDtype, CacheKey, CacheViews, FeatureCache};
use crate::util::peak_rss_bytes;

/// Drops from the `metrics.jsonl` at `path` every record of an epoch after `epochs` (and a
/// partial last line a kill left), so that a resumed run appends to exactly the history its
/// checkpoint holds. No file: nothing to do.
pub fn keep_log_until(path: &Path, epochs: usize) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut kept = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if !line.ends_with('\n') {
            continue; // cut off mid-write
        }
        let epoch = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["epoch"].as_u64());
        if epoch.is_some_and(|e| e as usize <= epochs) {
            kept.push_str(line);
        }
    }
    if kept.len() != text.len() {
        crate::util::write_atomic(path, kept.as_bytes())?;
    }
    Ok(())
}

/// What a training run is given.
pub struct TrainJob {
    /// The model (plain device; the loop moves it to autodiff).
    pub model: VideoClassifier,
    /// Its method.
    pub method: MethodConfig,
    /// Class names.
    pub classes: ClassMap,
    /// The frozen backbone's identity.
    pub backbone: BackboneId,
    /// Training entries.
    pub train: Arc<Vec<Entry>>,
    /// Validation entries (none: no validation).
    pub val: Option<Arc<Vec<Entry>>>,
    /// How clips are cut.
    pub spec: ClipSpec,
    /// Loop settings.
    pub settings: TrainSettings,
    /// Run folder: checkpoints, `metrics.jsonl`.
    pub out: PathBuf,
    /// Stored in every checkpoint (the run config, for `eval` and `predict`).
    pub run_config: serde_json::Value,
    /// Stop after this many epochs in this session (the schedule still spans
    /// `settings.epochs`); `--resume` continues later. For time-sliced or pre-emptible machines.
    pub stop_after: Option<usize>,
    /// The other processes of a data-parallel run (none: this process alone). Each rank
    /// trains on its share of every global batch of `world x batch_size` clips, gradients
    /// are averaged over the global batch's clips every optimiser step, validation is
    /// shared out and gathered; rank 0 alone writes the log and checkpoints.
    pub dist: Option<Arc<crate::dist::Group>>,
}

/// What a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// Epochs completed (including resumed ones).
    pub epochs: usize,
    /// Optimiser steps taken.
    pub steps: usize,
    /// Last epoch's mean training loss.
    pub final_loss: f64,
    /// Best validation UAR (and WAR at that epoch), if validated.
    pub best_val: Option<(f64, f64)>,
    /// Seconds per optimiser step (this session's steps).
    pub step_seconds: f64,
    /// Clips per second in training (this session).
    pub clips_per_second: f64,
    /// Peak resident memory of the process, bytes (`VmHWM`).
    pub peak_rss_bytes: Option<u64>,
    /// `(trainable, total)` parameters.
    pub params: (usize, usize),
    /// Clips skipped as unreadable.
    pub skipped: Vec<Problem>,
    /// The run folder.
    pub out: PathBuf,
}

/// Gives every parameter the gradient-checkpointing strategy of `device`: burn's
/// `Module::train` lifts parameters with the default strategy, and an operation whose operands
/// carry different strategies panics.
fn with_device_strategy<M: Module>(model: M, device: &Device) -> M {
    use burn::module::{ModuleMapper, Param};
    struct Apply(burn::tensor::GradientCheckpointingStrategy);
    impl ModuleMapper for Apply {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let strategy = self.0;
            p.map(|t| {
                let grad = t.is_require_grad();
                let t = t.with_gradient_checkpointing_strategy(strategy);
                if grad { t.set_require_grad(true) } else { t }
            })
        }
    }
    match device.gradient_checkpointing_strategy() {
        Some(strategy) => model.map(&mut Apply(strategy)),
        None => model,
    }
}

/// One micro-batch: inputs, one target per clip.
struct TrainBatch {
    inputs: Inputs,
    targets: Vec<usize>,
}

/// Where a training epoch's batches come from: the loader (decode, then the model runs the
/// backbone) or a feature cache (stored levels, no decoding, no backbone). Both visit the
/// entries in the loader's order for `(seed, epoch)`, so they see the same batches.
enum BatchSource<'a> {
    Live {
        epoch: loader::Epoch,
        device: Device,
    },
    Cached {
        cache: &'a mut FeatureCache,
        batches: std::vec::IntoIter<Vec<usize>>,
        view: usize,
        device: Device,
    },
}

impl BatchSource<'_> {
    /// The next micro-batch; `Ok(None)` for a batch whose clips were all unreadable.
    fn next_batch(&mut self) -> Option<Result<Option<TrainBatch>>> {
        match self {
            BatchSource::Live { epoch, device } => {
                let batch = epoch.next()?;
                Some(
                    batch
                        .map_err(|p| Error::UnreadableClip(p.to_string()))
                        .map(|batch| {
                            (!batch.entries.is_empty()).then(|| TrainBatch {
                                targets: batch.labels.iter().map(|l| l[0]).collect(),
                                inputs: Inputs::Clips(Box::new(batch.tensor(device))),
                            })
                        }),
                )
            }
            BatchSource::Cached {
                cache,
                batches,
                view,
                device,
                ..
            } => {
                // Clips unreadable at extraction are not stored; as live, their batch shrinks.
                let ids: Vec<usize> = batches
                    .next()?
                    .into_iter()
                    .filter(|&i| cache.contains(i))
                    .collect();
                if ids.is_empty() {
                    return Some(Ok(None));
                }
                let targets = ids
                    .iter()
                    .map(|&i| {
                        cache
                            .labels(i)
                            .and_then(|l| l.first().copied())
                            .unwrap_or(0)
                    })
                    .collect();
                let frames = cache.frames();
                Some(cache.levels(&ids, *view, device).map(|levels| {
                    Some(TrainBatch {
                        inputs: Inputs::Levels(levels, frames),
                        targets,
                    })
                }))
            }
        }
    }

    fn problems(&self) -> Vec<Problem> {
        match self {
            BatchSource::Live { epoch, .. } => epoch.problems(),
            // Reported when the cache was extracted.
            BatchSource::Cached { .. } => Vec::new(),
        }
    }
}

/// Opens `[train] cache` for `job`, checking that it holds what the run needs.
fn open_cache(job: &TrainJob, dir: &Path) -> Result<FeatureCache> {
    if job.model.levels_needed().is_empty() {
        return Err(Error::Input(format!(
            "[train] cache = {:?} is set, but method `{}` trains inside the backbone, which a feature cache cannot serve; remove `cache` or use {}",
            dir.display().to_string(),
            job.method.name(),
            methods::names_of(Some(Family::SideBranch), " or ")
        )));
    }
    // The views and dtype are the cache's choice; every other field must match.
    let needed = CacheKey::new(
        &job.backbone,
        &job.model,
        &job.spec,
        CacheViews::Train {
            count: 1,
            seed: job.settings.seed,
        },
        CacheDtype::F32,
        "train",
        &job.train,
    )?;
    FeatureCache::open(dir, &needed)
}

fn dropout_seed(seed: u64, step: usize, micro: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((step as u64) << 20) ^ micro as u64
}

/// Rank `rank`'s share of an epoch visiting `order` in global batches of `world x batch`
/// entries: the `rank`-th run of `batch` entries of each global batch (the last global batch
/// may leave a rank fewer, or none). Returns the share (consecutive runs: a loader batching
/// it by `batch` gives exactly the runs) and the number of global batches. One process
/// (`world` 1) gets `order` whole.
fn shard(order: Vec<usize>, batch: usize, rank: usize, world: usize) -> (Vec<usize>, usize) {
    let global = batch * world;
    let batches = order.len().div_ceil(global);
    if world == 1 {
        return (order, batches);
    }
    let mut share = Vec::with_capacity(order.len() / world + batch);
    for g in order.chunks(global) {
        let lo = (rank * batch).min(g.len());
        let hi = ((rank + 1) * batch).min(g.len());
        share.extend_from_slice(&g[lo..hi]);
    }
    (share, batches)
}

/// Whether rank `rank` has clips in global batch `k` (0-based) of an epoch of `n` entries.
fn has_share(n: usize, k: usize, batch: usize, rank: usize, world: usize) -> bool {
    k * batch * world + rank * batch < n
}

/// Data-parallel start: every rank must run the same config (its settings decide the steps
/// and the collectives' sizes) and begin from the same epoch and trainable weights (the same
/// seed, or the same checkpoint on a shared filesystem).
fn check_same_start(
    group: &crate::dist::Group,
    job: &TrainJob,
    epoch: usize,
    model: &VideoClassifier,
) -> Result<()> {
    // The config's digest as three 16-bit numbers (exact in f32).
    // What decides the steps and the collectives' sizes; not what may differ per machine
    // (decode workers, timeouts).
    let mut settings = job.settings.clone();
    settings.workers = 0;
    settings.dist_timeout = 0.0;
    settings.rendezvous = None;
    let config = format!(
        "{settings:?}|{:?}|{:?}|{:?}|{}",
        job.method,
        job.spec,
        job.classes,
        job.train.len()
    );
    let digest = crate::util::sha256_hex(config.as_bytes());
    let part = |i: usize| u16::from_str_radix(&digest[i * 4..i * 4 + 4], 16).map_or(0.0, f32::from);
    let [sum, sq] = super::optim::trainable_checksum(model);
    let mine = [part(0), part(1), part(2), epoch as f32, sum, sq];
    let all = group.all_gather(&mine, "the starting point")?;
    let first = &all[0];
    if let Some((r, _)) = all.iter().enumerate().find(|(_, v)| v[..3] != first[..3]) {
        return Err(Error::Distributed(format!(
            "rank {r} runs another config than rank 0 (other settings, or another training list of {} entries here): launch every rank with the same config and --set overrides",
            job.train.len(),
        )));
    }
    if let Some((r, other)) = all.iter().enumerate().find(|(_, v)| *v != first) {
        return Err(Error::Distributed(format!(
            "the ranks do not start from the same point: rank 0 after epoch {} (weights sum {}), rank {r} after epoch {} (weights sum {}). \
             The run folder {} must be one all ranks share (the same path on a shared filesystem)",
            first[3],
            first[4],
            other[3],
            other[4],
            job.out.display()
        )));
    }
    Ok(())
}

/// Trains `job` on `device`; resumes from `job.out/last.safetensors` when `resume` is set and
/// that file exists.
pub fn train(job: TrainJob, device: &Device, resume: bool, progress: bool) -> Result<TrainSummary> {
    let s = &job.settings;
    let dist = job.dist.clone();
    let (rank, world) = dist.as_ref().map_or((0, 1), |g| (g.rank(), g.size()));
    let lead = rank == 0;
    let progress = progress && lead;
    std::fs::create_dir_all(&job.out).map_err(|e| Error::io(&job.out, e))?;
    let last_path = job.out.join("last.safetensors");
    let best_path = job.out.join("best.safetensors");
    let batch = s.batch_size.max(1);
    let accumulate = s.accumulate.max(1);
    let steps_per_epoch = job.train.len().div_ceil(batch * world).div_ceil(accumulate);
    let cfg = OptimConfig {
        lr: s.lr,
        weight_decay: s.weight_decay,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        warmup_steps: (s.warmup_epochs * steps_per_epoch as f64).round() as usize,
        total_steps: steps_per_epoch * s.epochs,
        min_lr: s.min_lr,
        clip_grad_norm: s.clip_grad_norm,
        backbone_lr_scale: job.method.method().backbone_lr_scale().unwrap_or(1.0),
    };
    let mut model = job.model.clone();
    let mut optim = AdamW::default();
    let mut start_epoch = 0;
    let mut best: Option<(f64, f64)> = None;
    let mut history: Vec<serde_json::Value> = Vec::new();
    if resume && last_path.exists() {
        let ckpt = checkpoint::load(&last_path)?;
        if ckpt.meta.backbone.sha256 != job.backbone.sha256 {
            return Err(Error::ResumeMismatch {
                checkpoint: last_path,
                what: "backbone",
                reason: format!(
                    "trained on backbone `{}` ({}, sha256 {}), but this run uses `{}` ({}, sha256 {}): its weights differ",
                    ckpt.meta.backbone.spec,
                    ckpt.meta.backbone.summary,
                    crate::util::short_digest(&ckpt.meta.backbone.sha256),
                    job.backbone.spec,
                    job.backbone.summary,
                    crate::util::short_digest(&job.backbone.sha256)
                ),
            });
        }
        if ckpt.meta.method != job.method || ckpt.meta.classes != job.classes {
            return Err(Error::ResumeMismatch {
                checkpoint: last_path,
                what: "config",
                reason: "written by a run with another method config or class map".into(),
            });
        }
        model = ckpt.apply(model, &last_path)?;
        optim = ckpt.optimizer(&model, &last_path, device)?;
        start_epoch = ckpt.meta.epoch;
        best = serde_json::from_value(ckpt.meta.extra["best_val"].clone()).unwrap_or(None);
        history = serde_json::from_value(ckpt.meta.extra["history"].clone()).unwrap_or_default();
        tracing::info!("resuming {} after epoch {start_epoch}", last_path.display());
    }
    let params = model.param_totals();
    let mut stepper = Stepper::new(cfg, s.accumulate, optim);
    let ad = if s.gradient_checkpointing {
        device.clone().autodiff().gradient_checkpointing()
    } else {
        device.clone().autodiff()
    };
    let mut model = with_device_strategy(model.fork(&ad).train(), &ad);
    let layout = super::optim::trainable_layout(&model);
    if let Some(group) = &dist {
        check_same_start(group, &job, start_epoch, &model)?;
    }
    let spec = Arc::new(job.spec.clone());
    let loader_cfg = LoaderConfig {
        batch_size: s.batch_size.max(1),
        workers: s.workers.max(1),
        prefetch: 2,
        seed: s.seed,
        shuffle: true,
        views: Views::Train,
        strict: s.strict,
        decode: s.decode_options(),
    };
    let val_cfg = LoaderConfig {
        shuffle: false,
        views: Views::Test {
            temporal: 1,
            spatial: 1,
        },
        ..loader_cfg.clone()
    };
    let log_path = job.out.join("metrics.jsonl");
    // The log must say what the checkpoint holds: records of epochs after it (a killed
    // epoch's steps, or an earlier run's in the same folder) would be counted twice.
    // Rank 0 alone writes it.
    let mut log: Box<dyn Write> = if lead {
        keep_log_until(&log_path, start_epoch)?;
        Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| Error::io(&log_path, e))?,
        )
    } else {
        Box::new(std::io::sink())
    };
    let mut skipped = Vec::new();
    let mut final_loss = f64::NAN;
    let (mut timed_steps, mut timed_secs, mut timed_clips) = (0usize, 0f64, 0usize);
    let mut cache = match &s.cache {
        Some(dir) => Some(open_cache(&job, dir)?),
        None => None,
    };
    let end_epoch = match job.stop_after {
        Some(n) => (start_epoch + n).min(s.epochs),
        None => s.epochs,
    };
    for epoch in start_epoch..end_epoch {
        let order = loader::epoch_order(job.train.len(), &loader_cfg, epoch as u64);
        let (order, global_batches) = shard(order, batch, rank, world);
        let mut batches = match cache.as_mut() {
            None => BatchSource::Live {
                epoch: loader::epoch_with_order(
                    job.train.clone(),
                    order,
                    spec.clone(),
                    &loader_cfg,
                    epoch as u64,
                ),
                device: ad.clone(),
            },
            Some(cache) => {
                let batches: Vec<Vec<usize>> = order
                    .chunks(loader_cfg.batch_size)
                    .map(<[usize]>::to_vec)
                    .collect();
                BatchSource::Cached {
                    batches: batches.into_iter(),
                    view: epoch % cache.views(),
                    cache,
                    device: ad.clone(),
                }
            }
        };
        let pb = crate::util::progress_bar(
            global_batches as u64,
            &format!(
                "epoch {}/{} {{bar:25}} {{pos}}/{{len}} batches  {{msg}}  ETA {{eta}}",
                epoch + 1,
                s.epochs
            ),
            progress,
        );
        let epoch_t0 = Instant::now();
        let (mut loss_sum, mut loss_n) = (0f64, 0usize);
        let total = global_batches;
        let n_train = job.train.len();
        let mut t0 = Instant::now();
        let mut clips_in_step = 0;
        // Data-parallel: this rank's clips and clip-weighted loss since the last update.
        let (mut rank_clips, mut rank_loss) = (0usize, 0f64);
        for i in 1..=total {
            // A rank whose share of the last global batch is empty still takes part in the
            // update: every rank makes the same number of all-reduces.
            let batch = if has_share(n_train, i - 1, batch, rank, world) {
                match batches.next_batch() {
                    Some(b) => b?,
                    None => None,
                }
            } else {
                None
            };
            let seed = dropout_seed(s.seed, stepper.optim.step, stepper.micro_batches())
                ^ (rank as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
            let due = i % accumulate == 0 || i == total;
            let loss = match batch {
                Some(b) => Some((
                    classifier_loss(&model, b.inputs, &b.targets, s.label_smoothing, Some(seed))?,
                    b.targets.len(),
                )),
                None => None,
            };
            let (value, grad_norm, clips) = match &dist {
                None => {
                    let Some((loss, n)) = loss else {
                        continue;
                    };
                    let (m, micro) = stepper.backward(model, loss, i == total);
                    model = m;
                    (micro.loss, micro.grad_norm, n)
                }
                Some(group) => {
                    if let Some((loss, n)) = loss {
                        let v = stepper.accumulate_clips(&model, loss, n);
                        rank_clips += n;
                        rank_loss += v * n as f64;
                    }
                    if !due {
                        pb.inc(1);
                        continue;
                    }
                    let (m, clips, loss, norm) =
                        stepper.sync(model, group, &layout, (rank_clips, rank_loss), device)?;
                    model = m;
                    (rank_clips, rank_loss) = (0, 0.0);
                    if clips == 0 {
                        pb.inc(1);
                        continue;
                    }
                    (loss, norm, clips)
                }
            };
            if !value.is_finite() {
                pb.abandon();
                return Err(Error::Diverged {
                    loss: value,
                    epoch: epoch + 1,
                    step: stepper.optim.step,
                    last_good: last_path,
                });
            }
            loss_sum += value;
            loss_n += 1;
            clips_in_step += clips;
            if let Some(norm) = grad_norm {
                let dt = t0.elapsed().as_secs_f64();
                timed_steps += 1;
                timed_secs += dt;
                timed_clips += clips_in_step;
                let mut record = serde_json::json!({
                    "kind": "step", "epoch": epoch + 1, "step": stepper.optim.step, "loss": value,
                    "lr": stepper.cfg.lr_at(stepper.optim.step - 1), "grad_norm": norm,
                    "clips_per_s": clips_in_step as f64 / dt.max(1e-9), "step_s": dt,
                });
                if let Some((bytes, secs)) = stepper.last_reduce().filter(|_| world > 1) {
                    record["ranks"] = world.into();
                    record["allreduce_bytes"] = bytes.into();
                    record["allreduce_ms"] = (secs * 1e3).into();
                }
                writeln!(log, "{record}")
                    .map_err(|e| Error::io(job.out.join("metrics.jsonl"), e))?;
                pb.set_message(format!(
                    "loss {:.4}  lr {:.2e}  {:.1} clips/s",
                    loss_sum / loss_n as f64,
                    stepper.cfg.lr_at(stepper.optim.step - 1),
                    clips_in_step as f64 / dt.max(1e-9)
                ));
                clips_in_step = 0;
                t0 = Instant::now();
            }
            pb.inc(1);
        }
        skipped.extend(batches.problems());
        drop(batches);
        pb.finish_and_clear();
        final_loss = loss_sum / loss_n.max(1) as f64;
        let mut record = serde_json::json!({
            "kind": "epoch", "epoch": epoch + 1, "step": stepper.optim.step, "train_loss": final_loss,
            "peak_rss_bytes": peak_rss_bytes(),
        });
        let mut improved = false;
        if let Some(val) = &job.val {
            let vb = crate::util::progress_bar(
                val.len() as u64,
                "validate {bar:25} {pos}/{len} clips  ETA {eta}",
                progress,
            );
            let plain = model.valid();
            let p = predict_probs_shared(
                &plain,
                val.clone(),
                spec.clone(),
                &val_cfg,
                device,
                &vb,
                dist.as_deref(),
            )?;
            vb.finish_and_clear();
            skipped.extend(p.problems);
            let m = crate::eval::evaluate(&p.probs, job.classes.len(), &p.labels)?;
            record["val_uar"] = m.uar.into();
            record["val_war"] = m.war.into();
            if best.is_none_or(|(u, _)| m.uar > u) {
                best = Some((m.uar, m.war));
                improved = true;
            }
        }
        writeln!(log, "{record}").map_err(|e| Error::io(job.out.join("metrics.jsonl"), e))?;
        if progress {
            // One line per epoch that stays (the bars clear themselves), in a terminal and in
            // a log alike.
            let val = record["val_uar"].as_f64().map_or(String::new(), |u| {
                format!(
                    ", val UAR {:.1}%{}",
                    u * 100.0,
                    if improved { " (best)" } else { "" }
                )
            });
            tracing::info!(
                target: crate::util::PROGRESS,
                "epoch {}/{}: train loss {final_loss:.4}{val}, {:.1} s",
                epoch + 1,
                s.epochs,
                epoch_t0.elapsed().as_secs_f64()
            );
        }
        history.push(record);
        let meta = CheckpointMeta {
            format: checkpoint::FORMAT,
            method: job.method.clone(),
            classes: job.classes.clone(),
            backbone: job.backbone.clone(),
            epoch: epoch + 1,
            step: stepper.optim.step,
            extra: serde_json::json!({
                "run_config": job.run_config, "best_val": best, "history": history,
            }),
        };
        if lead {
            checkpoint::save(&last_path, &model, &stepper.optim, &meta)?;
            if improved || job.val.is_none() {
                checkpoint::save(&best_path, &model, &AdamW::default(), &meta)?;
            }
        }
    }
    if !lead {
        // Rank 0 reports its own; this rank's skipped clips are said here.
        for p in &skipped {
            tracing::warn!(target: crate::util::PROGRESS, "rank {rank}: skipped {p}");
        }
    }
    Ok(TrainSummary {
        epochs: end_epoch,
        steps: stepper.optim.step,
        final_loss,
        best_val: best,
        step_seconds: timed_secs / timed_steps.max(1) as f64,
        clips_per_second: timed_clips as f64 / timed_secs.max(1e-9),
        peak_rss_bytes: peak_rss_bytes(),
        params,
        skipped,
        out: job.out,
    })
}

/// The run folder's checkpoint path for `which` (`last` or `best`).
pub fn checkpoint_path(out: &Path, which: &str) -> PathBuf {
    out.join(format!("{which}.safetensors"))
}
