//! One training step, the same code for `vidapter train`, `bench train` (which times it) and
//! the demo's image classifier: a micro-batch's forward pass and loss, its backward pass, its
//! gradients accumulated, and, once `accumulate` micro-batches are in, one AdamW update of
//! the trainable parameters.

use burn::module::Module;
use burn::tensor::Tensor;

use super::loss::cross_entropy;
use super::optim::{AdamW, GradBuffer, OptimConfig};
use crate::error::Result;
use crate::methods::VideoClassifier;

/// What one training micro-batch feeds a [`VideoClassifier`].
pub enum Inputs {
    /// Decoded clips `[B, T, 3, S, S]` for [`VideoClassifier::forward`].
    Clips(Box<Tensor<5>>),
    /// Stored backbone levels (each `[B*T, 1+N, C]`) of `T`-frame clips for
    /// [`VideoClassifier::forward_from_levels`] (the feature cache).
    Levels(Vec<Tensor<3>>, usize),
}

/// The training loss of `model` (on an autodiff device) on one micro-batch: its forward pass
/// with dropout seeded by `dropout_seed`, then the cross-entropy against one target per clip
/// with `label_smoothing`.
///
/// # Errors
/// Those of [`VideoClassifier::forward_from_levels`] (levels that do not fit the model).
pub fn classifier_loss(
    model: &VideoClassifier,
    inputs: Inputs,
    targets: &[usize],
    label_smoothing: f64,
    dropout_seed: Option<u64>,
) -> Result<Tensor<1>> {
    let logits = match inputs {
        Inputs::Clips(x) => model.forward(*x, dropout_seed),
        Inputs::Levels(levels, frames) => {
            model.forward_from_levels(levels, frames, dropout_seed)?
        }
    };
    Ok(cross_entropy(logits, targets, label_smoothing))
}

/// The optimiser side of training: AdamW's state, its settings and schedule, and the
/// gradients accumulated since the last update.
pub struct Stepper {
    /// AdamW's moments and step count (what a checkpoint stores for resuming).
    pub optim: AdamW,
    /// Learning rate, schedule, weight decay, clipping.
    pub cfg: OptimConfig,
    buffer: GradBuffer,
    accumulate: usize,
}

impl Stepper {
    /// A stepper that updates every `accumulate` micro-batches (at least 1), continuing from
    /// `optim` (fresh: `AdamW::default()`; resumed: a checkpoint's optimiser).
    pub fn new(cfg: OptimConfig, accumulate: usize, optim: AdamW) -> Self {
        Stepper {
            optim,
            cfg,
            buffer: GradBuffer::default(),
            accumulate: accumulate.max(1),
        }
    }

    /// Micro-batches accumulated since the last update.
    pub fn micro_batches(&self) -> usize {
        self.buffer.micro_batches()
    }

    /// Data-parallel: the last gradient all-reduce's bytes per rank and seconds.
    pub fn last_reduce(&self) -> Option<(usize, f64)> {
        self.buffer.last_reduce
    }

    /// Backpropagates `loss` through `model` and accumulates the trainable parameters'
    /// gradients; when `accumulate` micro-batches are in, or `flush` is set (an epoch's last
    /// micro-batch), updates the parameters.
    ///
    /// The loss value is read back after the backward pass is queued, so a GPU is not left
    /// idle waiting for it; a loss that is not finite updates nothing (the caller stops, see
    /// [`MicroStep::loss`]). The gradients are dropped before the update, so the backward
    /// pass's memory is free while the optimiser runs. Device syncs per update: this read and
    /// the optimiser's one read of the gradient norm.
    pub fn backward<M: Module>(
        &mut self,
        model: M,
        loss: Tensor<1>,
        flush: bool,
    ) -> (M, MicroStep) {
        self.optim.reserve(&model);
        let grads = loss.clone().backward();
        self.buffer.accumulate(&model, &grads);
        drop(grads);
        let loss = loss
            .into_data()
            .iter::<f32>()
            .next()
            .map_or(f64::NAN, f64::from);
        let due = self.buffer.micro_batches() >= self.accumulate || flush;
        if !loss.is_finite() || !due {
            let grad_norm = None;
            return (model, MicroStep { loss, grad_norm });
        }
        let (model, norm) = self.optim.step(model, &mut self.buffer, &self.cfg);
        let grad_norm = Some(norm);
        (model, MicroStep { loss, grad_norm })
    }
}

impl Stepper {
    /// Data-parallel, first half of a step: backpropagates `loss` (the mean over `clips`
    /// clips) through `model` and adds its gradients times `clips` to the buffer, so that
    /// [`Stepper::sync`] can average over the clips of every rank. Returns the loss value.
    pub fn accumulate_clips<M: Module>(&mut self, model: &M, loss: Tensor<1>, clips: usize) -> f64 {
        self.optim.reserve(model);
        let grads = loss.clone().backward();
        self.buffer
            .accumulate_scaled(model, &grads, Some(clips as f32));
        drop(grads);
        loss.into_data()
            .iter::<f32>()
            .next()
            .map_or(f64::NAN, f64::from)
    }

    /// Data-parallel, second half: sums the buffers of `group`'s ranks and their `clips` and
    /// `loss_sum` (the clip-weighted loss sum), divides the gradients by the total clips,
    /// and, unless no rank read a clip, updates `model` with them. Every rank makes the same
    /// update. Returns the model, the clips of the step over all ranks, their mean loss and
    /// the gradient norm (`None`: no update).
    ///
    /// # Errors
    /// A peer stopped or did not answer in time.
    pub fn sync<M: Module>(
        &mut self,
        model: M,
        group: &crate::dist::Group,
        layout: &[(String, usize)],
        (clips, loss_sum): (usize, f64),
        device: &burn::tensor::Device,
    ) -> Result<(M, usize, f64, Option<f64>)> {
        let summed = self.buffer.all_reduce(
            group,
            layout,
            &[clips as f32, loss_sum as f32],
            |s| s[0],
            device,
        )?;
        let clips = summed[0].round() as usize;
        let loss = f64::from(summed[1]) / clips.max(1) as f64;
        if clips == 0 || !loss.is_finite() {
            return Ok((model, clips, loss, None));
        }
        let (model, norm) = self.optim.step(model, &mut self.buffer, &self.cfg);
        Ok((model, clips, loss, Some(norm)))
    }
}

/// What one micro-batch's backward pass gave.
#[derive(Debug, Clone, Copy)]
pub struct MicroStep {
    /// The micro-batch's loss. When it is not finite (NaN, infinite) the parameters were not
    /// updated and training must stop: its last checkpoint still holds the last good state.
    pub loss: f64,
    /// The gradient norm before clipping, when this micro-batch completed an update.
    pub grad_norm: Option<f64>,
}
