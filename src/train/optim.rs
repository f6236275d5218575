//! AdamW over the trainable parameters only, with parameter groups, global-norm gradient
//! clipping and gradient accumulation; and the warm-up + cosine learning-rate schedule.
//!
//! State is keyed by the parameter's module path (`attn_adapters.3.down.weight`), not by
//! burn's run-time `ParamId`, so that a checkpoint can store it and a resumed run finds it
//! again. A frozen parameter is never visited: it has no moment estimates, no gradient
//! buffer, and is never written back (methods.md: "frozen means ...").
//!
//! Update (PyTorch's `torch.optim.AdamW`, decoupled weight decay):
//! ```text
//! p <- p * (1 - lr * wd)
//! m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
//! p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//! ```
//! Groups: 1-D tensors (biases, norm scales) get no weight decay, as timm and the adapters'
//! reference recipes do; backbone tensors (full fine-tuning) get `lr * backbone_lr_scale`.
//! Checked against `torch.optim.AdamW` with clipping (tests/fixtures/optim).
//!
//! On the CPU each tensor's update is one pass in place ([`crate::kernels::adamw`], the tensor
//! path's values to the bit); on other devices it is tensor operations. The moments are
//! allocated, as zeros, before the first backward pass ([`AdamW::reserve`]).

use std::collections::BTreeMap;
use std::f64::consts::PI;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Gradients, Tensor};
use serde::{Deserialize, Serialize};

use crate::kernels::adamw::{self, AdamWStep};

/// Optimiser and schedule settings (the `[train]` table's optimisation fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Decoupled weight decay (not applied to 1-D tensors).
    pub weight_decay: f64,
    /// Adam's beta1.
    pub beta1: f64,
    /// Adam's beta2.
    pub beta2: f64,
    /// Adam's epsilon.
    pub eps: f64,
    /// Linear warm-up length in optimiser steps.
    pub warmup_steps: usize,
    /// Total optimiser steps (the cosine reaches `min_lr` there).
    pub total_steps: usize,
    /// Final learning rate.
    pub min_lr: f64,
    /// Clip the global gradient norm to this (0 = off).
    pub clip_grad_norm: f64,
    /// Learning-rate multiplier for backbone tensors.
    pub backbone_lr_scale: f64,
}

impl OptimConfig {
    /// The learning rate at optimiser step `step` (0-based): linear warm-up from `lr / warmup`
    /// to `lr`, then half a cosine down to `min_lr` at `total_steps`.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + (PI * progress).cos())
    }
}

/// A trainable tensor's moments, flattened.
#[derive(Debug, Clone)]
pub struct Moments {
    /// First moment.
    pub m: Tensor<1>,
    /// Second moment.
    pub v: Tensor<1>,
}

/// AdamW state: step count and per-path moments.
#[derive(Debug, Clone, Default)]
pub struct AdamW {
    /// Optimiser steps taken.
    pub step: usize,
    /// Moments by parameter path.
    pub state: BTreeMap<String, Moments>,
}

/// Gradients of trainable parameters, flattened, summed over accumulated micro-batches.
#[derive(Debug, Default)]
pub struct GradBuffer {
    grads: BTreeMap<String, Tensor<1>>,
    micro_batches: usize,
    /// The last [`GradBuffer::all_reduce`]'s size in bytes (per rank) and its seconds (host
    /// copy, all-reduce, copy back).
    pub last_reduce: Option<(usize, f64)>,
}

/// Walks a module with dotted paths.
struct PathStack(Vec<String>);

impl PathStack {
    fn with(&self, leaf: &str) -> String {
        let mut p = self.0.join(".");
        if !leaf.is_empty() {
            p.push('.');
            p.push_str(leaf);
        }
        p
    }
}

impl GradBuffer {
    /// Adds the gradients in `grads` of `model`'s trainable parameters.
    pub fn accumulate<M: Module>(&mut self, model: &M, grads: &Gradients) {
        self.accumulate_scaled(model, grads, None);
    }

    /// Adds the gradients in `grads` of `model`'s trainable parameters, each multiplied by
    /// `scale` when given (data-parallel training weighs a micro-batch by its clips).
    pub fn accumulate_scaled<M: Module>(
        &mut self,
        model: &M,
        grads: &Gradients,
        scale: Option<f32>,
    ) {
        struct V<'a>(
            PathStack,
            &'a Gradients,
            &'a mut BTreeMap<String, Tensor<1>>,
            Option<f32>,
        );
        impl ModuleVisitor for V<'_> {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.0.0.push(name.into());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.0.0.pop();
            }
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                let val = p.val();
                if !val.is_require_grad() {
                    return;
                }
                if let Some(g) = val.grad(self.1) {
                    let n = g.shape().num_elements();
                    let g = g.reshape([n]);
                    let g = match self.3 {
                        Some(scale) => g * scale,
                        None => g,
                    };
                    let path = self.0.with("");
                    let sum = match self.2.remove(&path) {
                        Some(acc) => acc + g,
                        None => g,
                    };
                    self.2.insert(path, sum);
                }
            }
        }
        model.visit(&mut V(PathStack(Vec::new()), grads, &mut self.grads, scale));
        self.micro_batches += 1;
    }

    /// Micro-batches accumulated since the last step.
    pub fn micro_batches(&self) -> usize {
        self.micro_batches
    }

    /// Data-parallel: sums this buffer and `extra` over the ranks of `group`, then divides
    /// the summed gradients by `divisor(summed extra)` and leaves them as one micro-batch,
    /// so that the next [`AdamW::step`] applies them as they are. `layout` (from
    /// [`trainable_layout`], the same on every rank) fixes the order; a parameter without a
    /// gradient on a rank counts as zeros there, and one without a gradient on every rank
    /// stays without one (AdamW leaves it alone, as in a single process). One host copy of
    /// the buffer, one all-reduce. Returns the summed `extra`.
    ///
    /// # Errors
    /// Those of [`crate::dist::Group::all_reduce_sum`] (a peer stopped).
    pub fn all_reduce(
        &mut self,
        group: &crate::dist::Group,
        layout: &[(String, usize)],
        extra: &[f32],
        divisor: impl Fn(&[f32]) -> f32,
        device: &burn::tensor::Device,
    ) -> crate::Result<Vec<f32>> {
        let t0 = std::time::Instant::now();
        let total: usize = layout.iter().map(|(_, n)| n).sum();
        let mut flat = vec![0f32; total + layout.len() + extra.len()];
        let present: Vec<Tensor<1>> = layout
            .iter()
            .filter_map(|(path, _)| self.grads.get(path).cloned())
            .collect();
        if !present.is_empty() {
            let values = Tensor::cat(present, 0)
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 gradients");
            let (mut at, mut read) = (0, 0);
            for (i, (path, n)) in layout.iter().enumerate() {
                if self.grads.contains_key(path) {
                    flat[at..at + n].copy_from_slice(&values[read..read + n]);
                    flat[total + i] = 1.0;
                    read += n;
                }
                at += n;
            }
        }
        flat[total + layout.len()..].copy_from_slice(extra);
        group.all_reduce_sum(&mut flat, "the gradients")?;
        let summed = flat[total + layout.len()..].to_vec();
        let d = divisor(&summed);
        self.grads.clear();
        let mut at = 0;
        for (i, (path, n)) in layout.iter().enumerate() {
            if flat[total + i] > 0.0 && d > 0.0 {
                let g: Vec<f32> = flat[at..at + n].iter().map(|x| x / d).collect();
                let t = Tensor::<1>::from_data(burn::tensor::TensorData::new(g, [*n]), device);
                self.grads.insert(path.clone(), t);
            }
            at += n;
        }
        self.micro_batches = usize::from(!self.grads.is_empty());
        self.last_reduce = Some((flat.len() * 4, t0.elapsed().as_secs_f64()));
        Ok(summed)
    }
}

/// The trainable parameters of `model` by path (sorted, as a [`GradBuffer`] holds them) and
/// their element counts: the layout of a data-parallel all-reduce.
pub fn trainable_layout<M: Module>(model: &M) -> Vec<(String, usize)> {
    trainable_tensors(model)
        .into_iter()
        .map(|(path, n, _)| (path, n))
        .collect()
}

/// The trainable parameters of `model` by path (sorted): element count and device (without
/// autodiff, where the optimiser's tensors live).
fn trainable_tensors<M: Module>(model: &M) -> Vec<(String, usize, Device)> {
    struct V(PathStack, BTreeMap<String, (usize, Device)>);
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.0.push(name.into());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let val = p.val();
            if val.is_require_grad() {
                let device = val.device().without_autodiff();
                self.1
                    .insert(self.0.with(""), (val.shape().num_elements(), device));
            }
        }
    }
    let mut v = V(PathStack(Vec::new()), BTreeMap::new());
    model.visit(&mut v);
    v.1.into_iter().map(|(p, (n, d))| (p, n, d)).collect()
}

/// Sum and sum of squares of `model`'s trainable parameters, in path order: ranks that start
/// from the same weights agree on them bit for bit.
pub fn trainable_checksum<M: Module>(model: &M) -> [f32; 2] {
    struct V(Vec<Tensor<1>>);
    impl ModuleVisitor for V {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let val = p.val();
            if val.is_require_grad() {
                let n = val.shape().num_elements();
                let flat = val.without_autodiff().reshape([n]);
                self.0.push(flat.clone().sum());
                self.0.push(flat.powf_scalar(2.0).sum());
            }
        }
    }
    let mut v = V(Vec::new());
    model.visit(&mut v);
    if v.0.is_empty() {
        return [0.0; 2];
    }
    let sums = Tensor::cat(v.0, 0)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32");
    let mut out = [0f32; 2];
    for pair in sums.chunks(2) {
        out[0] += pair[0];
        out[1] += pair[1];
    }
    out
}

impl AdamW {
    /// Gives every trainable parameter of `model` that has none yet zero moments (what the
    /// first update would start from). Called before a backward pass while its activations are
    /// still held, so that the moments are allocated beside them: placed in the memory the
    /// activations free, they would push the next step's activations into fresh pages (on the
    /// CPU, 0.7 GB more for full fine-tuning's second step, faulted in and zeroed: 1.5-2 s).
    pub fn reserve<M: Module>(&mut self, model: &M) {
        for (path, n, device) in trainable_tensors(model) {
            self.state.entry(path).or_insert_with(|| Moments {
                m: Tensor::zeros([n], &device),
                v: Tensor::zeros([n], &device),
            });
        }
    }

    /// Applies one update from `buffer` (averaged over its micro-batches, clipped) to `model`
    /// and empties the buffer. Returns `(learning rate used, gradient norm before clipping)`.
    pub fn step<M: Module>(
        &mut self,
        model: M,
        buffer: &mut GradBuffer,
        cfg: &OptimConfig,
    ) -> (M, f64) {
        // Moments for tensors that have none (a caller that did not reserve them earlier).
        self.reserve(&model);
        let lr = cfg.lr_at(self.step);
        let n = buffer.micro_batches.max(1) as f32;
        let grads = std::mem::take(&mut buffer.grads);
        buffer.micro_batches = 0;
        // On the CPU the norm is read off the gradients as they are and the division by the
        // micro-batches happens in the fused update; elsewhere both are tensor operations.
        let squares: Option<Vec<f64>> = grads.values().map(|g| adamw::sum_squares(g, n)).collect();
        let (grads, norm, divide) = match squares {
            Some(squares) => (grads, squares.iter().sum::<f64>().sqrt(), n),
            None => {
                let grads: BTreeMap<String, Tensor<1>> =
                    grads.into_iter().map(|(k, g)| (k, g / n)).collect();
                let norm = global_norm(&grads);
                (grads, norm, 1.0)
            }
        };
        let clip = if cfg.clip_grad_norm > 0.0 && norm > cfg.clip_grad_norm {
            (cfg.clip_grad_norm / (norm + 1e-6)) as f32
        } else {
            1.0
        };
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (cfg.beta1, cfg.beta2);
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        let mut mapper = Update {
            path: PathStack(Vec::new()),
            grads,
            state: &mut self.state,
            cfg,
            lr,
            divide,
            clip,
            bc1,
            bc2,
        };
        let model = model.map(&mut mapper);
        (model, norm)
    }
}

/// The global L2 norm of `grads`: each tensor's sum of squares in f32 on its device, all of
/// them read back in one transfer (one wait for the device, however many tensors), summed in
/// f64 in path order.
fn global_norm(grads: &BTreeMap<String, Tensor<1>>) -> f64 {
    let sums: Vec<Tensor<1>> = grads
        .values()
        .map(|g| g.clone().powf_scalar(2.0).sum())
        .collect();
    if sums.is_empty() {
        return 0.0;
    }
    Tensor::cat(sums, 0)
        .into_data()
        .iter::<f32>()
        .map(f64::from)
        .sum::<f64>()
        .sqrt()
}

struct Update<'a> {
    path: PathStack,
    grads: BTreeMap<String, Tensor<1>>,
    state: &'a mut BTreeMap<String, Moments>,
    cfg: &'a OptimConfig,
    lr: f64,
    /// What the gradients are still to be divided by (the micro-batches; 1 when done).
    divide: f32,
    clip: f32,
    bc1: f64,
    bc2: f64,
}

impl ModuleMapper for Update<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.0.push(name.into());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.0.pop();
    }
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.with("");
        let Some(g) = self.grads.remove(&path) else {
            return p;
        };
        let cfg = self.cfg;
        let lr = if path.starts_with("backbone") {
            self.lr * cfg.backbone_lr_scale
        } else {
            self.lr
        };
        let decay = if D > 1 { lr * cfg.weight_decay } else { 0.0 };
        let step = AdamWStep {
            micro_batches: self.divide,
            clip: self.clip,
            beta1: cfg.beta1 as f32,
            beta2: cfg.beta2 as f32,
            bc1: self.bc1 as f32,
            bc2: self.bc2 as f32,
            eps: cfg.eps as f32,
            lr: lr as f32,
            keep: (1.0 - decay) as f32,
        };
        // `AdamW::step` reserved moments for every trainable tensor, and only those have
        // gradients.
        let Some(prev) = self.state.remove(&path) else {
            return p;
        };
        let mut moments = None;
        let p = p.map(|t| {
            let context = crate::util::AutodiffContext::of(&t);
            // Consumed, not cloned: the update can then write into the parameter's buffer.
            let plain = t.without_autodiff();
            let fused =
                [&prev.m, &prev.v, &g].into_iter().all(adamw::fused) && adamw::fused(&plain);
            let (updated, m, v) = if fused {
                adamw::adamw_update(plain, g, (prev.m, prev.v), step)
            } else {
                update_with_tensor_ops(plain, g, prev, step)
            };
            moments = Some(Moments { m, v });
            context.apply(updated).set_require_grad(true)
        });
        if let Some(m) = moments {
            self.state.insert(path, m);
        }
        p
    }
}

/// [`adamw::adamw_update`] as tensor operations, for every device.
fn update_with_tensor_ops<const D: usize>(
    plain: Tensor<D>,
    g: Tensor<1>,
    prev: Moments,
    k: AdamWStep,
) -> (Tensor<D>, Tensor<1>, Tensor<1>) {
    let g = if k.micro_batches == 1.0 {
        g
    } else {
        g / k.micro_batches
    };
    let g = g * k.clip;
    let (b1, b2) = (k.beta1, k.beta2);
    let m = prev.m * b1 + g.clone() * (1.0 - b1);
    let v = prev.v * b2 + g.clone().powf_scalar(2.0) * (1.0 - b2);
    let denom = (v.clone() / k.bc2).sqrt() + k.eps;
    let delta = (m.clone() / k.bc1) / denom * k.lr; // [n]
    let shape = plain.shape();
    let updated = plain * k.keep - delta.reshape(shape);
    (updated, m, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn cfg() -> OptimConfig {
        OptimConfig {
            lr: 1.0,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            warmup_steps: 2,
            total_steps: 12,
            min_lr: 0.0,
            clip_grad_norm: 0.0,
            backbone_lr_scale: 1.0,
        }
    }

    #[test]
    fn schedule_warms_up_linearly_then_follows_a_cosine() {
        let c = cfg();
        assert!((c.lr_at(0) - 0.5).abs() < 1e-12);
        assert!((c.lr_at(1) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(2) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(7) - 0.5).abs() < 1e-12, "half way down the cosine");
        assert!(c.lr_at(12).abs() < 1e-12);
        assert!(c.lr_at(50).abs() < 1e-12, "stays at min_lr past the end");
    }

    #[test]
    fn global_norm_reads_every_tensor_in_one_transfer() {
        let device = burn::tensor::Device::flex();
        let t =
            |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &device);
        let grads = BTreeMap::from([
            ("a".to_string(), t(vec![3.0, 0.0])),
            ("b".to_string(), t(vec![0.0, 4.0, 12.0])),
        ]);
        assert_eq!(global_norm(&grads), 13.0);
        assert_eq!(global_norm(&BTreeMap::new()), 0.0);
    }

    fn fixture() -> (BTreeMap<String, Vec<f32>>, serde_json::Value, Vec<f64>) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/optim/adamw.safetensors"
        );
        let data = std::fs::read(path).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&data).unwrap();
        let hp = header.metadata().as_ref().unwrap()["vidapter_adamw"].clone();
        let st = safetensors::SafeTensors::deserialize(&data).unwrap();
        let mut f32s = BTreeMap::new();
        let mut norms = vec![0.0; 3];
        for (name, view) in st.tensors() {
            if let Some(step) = name.strip_prefix("norm.") {
                let b: [u8; 8] = view.data().try_into().unwrap();
                norms[step.parse::<usize>().unwrap()] = f64::from_le_bytes(b);
            } else {
                let v = view.data().chunks_exact(4);
                let v = v
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect();
                f32s.insert(name, v);
            }
        }
        (f32s, serde_json::from_str(&hp).unwrap(), norms)
    }

    /// Three steps against `torch.optim.AdamW` (scripts/make_optim_fixture.py): decoupled
    /// weight decay on the 2-D tensor only, bias correction, and global-norm clipping acting
    /// on the second step; the parameters after each step and the norms before clipping.
    #[test]
    fn matches_torch_adamw_with_groups_and_clipping() {
        use burn::nn::LinearConfig;
        let (t, hp, norms) = fixture();
        // Parameters on autodiff (so that they require gradients), gradients off it.
        let device = burn::tensor::Device::flex();
        let ad = device.clone().autodiff();
        let f = |k: &str| hp[k].as_f64().unwrap();
        let cfg = OptimConfig {
            lr: f("lr"),
            weight_decay: f("weight_decay"),
            beta1: f("beta1"),
            beta2: f("beta2"),
            eps: f("eps"),
            warmup_steps: 0,
            total_steps: 10,
            min_lr: f("lr"),
            clip_grad_norm: f("clip_grad_norm"),
            backbone_lr_scale: 1.0,
        };
        let data = |k: &str, shape: &[usize]| TensorData::new(t[k].clone(), shape.to_vec());
        let weight = Tensor::<2>::from_data(data("start.weight", &[6, 5]), &ad);
        let bias = Tensor::<1>::from_data(data("start.bias", &[5]), &ad);
        let mut layer = LinearConfig::new(6, 5).init(&ad);
        layer.weight = Param::from_tensor(weight.require_grad());
        layer.bias = Some(Param::from_tensor(bias.require_grad()));
        let mut optim = AdamW::default();
        optim.reserve(&layer);
        assert_eq!(optim.state.len(), 2, "zero moments for both tensors");
        for (step, norm) in norms.iter().enumerate() {
            let grad = |k: &str| {
                let v = t[&format!("grad.{step}.{k}")].clone();
                Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &device)
            };
            let mut buffer = GradBuffer {
                grads: BTreeMap::from([
                    ("weight".to_string(), grad("weight")),
                    ("bias".to_string(), grad("bias")),
                ]),
                micro_batches: 1,
                last_reduce: None,
            };
            let (next, ours) = optim.step(layer, &mut buffer, &cfg);
            layer = next;
            assert!(
                (ours - norm).abs() <= 1e-6 * norm,
                "step {step}: norm {ours} vs {norm}"
            );
            let w = layer.weight.val().into_data().try_to_vec::<f32>().unwrap();
            let b = layer
                .bias
                .as_ref()
                .unwrap()
                .val()
                .into_data()
                .try_to_vec::<f32>();
            for (what, ours, theirs) in [
                ("weight", w, &t[&format!("after.{step}.weight")]),
                ("bias", b.unwrap(), &t[&format!("after.{step}.bias")]),
            ] {
                for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
                    assert!((a - b).abs() <= 1e-6, "step {step} {what}[{i}]: {a} vs {b}");
                }
            }
        }
    }

    /// The CPU's fused update gives the tensor path's values to the bit (first step and later,
    /// micro-batches, clipping, decay), and leaves a buffer that someone else holds unchanged.
    #[test]
    fn fused_update_is_the_tensor_path_to_the_bit() {
        use burn::tensor::Distribution;
        let device = burn::tensor::Device::flex();
        let normal = |n: usize| Tensor::<1>::random([n], Distribution::Normal(0.0, 1.0), &device);
        let k = AdamWStep {
            micro_batches: 2.0,
            clip: 0.7,
            beta1: 0.9,
            beta2: 0.999,
            bc1: 0.271,
            bc2: 0.004,
            eps: 1e-8,
            lr: 3e-3,
            keep: 0.9995,
        };
        let bits = |t: Tensor<1>| -> Vec<u32> {
            let v = t.into_data().try_to_vec::<f32>().unwrap();
            v.iter().map(|x| (x + 0.0).to_bits()).collect()
        };
        for first in [true, false] {
            // 100 000 elements: several parallel bands.
            let n = 100_000;
            let p = Tensor::<2>::random([400, 250], Distribution::Normal(0.0, 1.0), &device);
            // The first step starts from the zero moments `AdamW::reserve` gives.
            let (g, m, v) = match first {
                true => (
                    normal(n),
                    Tensor::zeros([n], &device),
                    Tensor::zeros([n], &device),
                ),
                false => (normal(n), normal(n), normal(n).abs()),
            };
            let moments = (m.clone(), v.clone());
            let prev = Moments { m, v };
            let (held, before) = (p.clone(), p.clone().into_data());
            let (p1, m1, v1) = adamw::adamw_update(p.clone(), g.clone(), moments, k);
            let (p2, m2, v2) = update_with_tensor_ops(p, g, prev, k);
            assert_eq!(bits(p1.reshape([n])), bits(p2.reshape([n])), "parameter");
            assert_eq!(bits(m1), bits(m2), "first moment");
            assert_eq!(bits(v1), bits(v2), "second moment");
            assert_eq!(before, held.into_data(), "the held copy is untouched");
        }
    }
}
