//! AdamW's update of one tensor in one pass on the CPU, in place.
//!
//! Written as tensor operations (the path every other device takes, `train::optim`), one
//! update is fifteen element-wise passes over the parameter, each into a fresh buffer: for full
//! fine-tuning's 86 M parameters that was 0.29-0.46 s of a 6-8 s step on two cores, and the
//! moments were rebuilt every step. Here the gradient, both moments and the parameter are read
//! once and written in place (when the tensor owns its buffer, as a parameter, its moments and
//! its gradient do after the backward pass), with the same f32 operations in the same order, so
//! the result is the tensor path's to the bit.

use burn::backend::flex::FlexTensor;
use burn::backend::{BackendTensor, DispatchTensor, DispatchTensorKind};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::{holds_exactly, native, tensor, values};

/// Elements per parallel task.
const CHUNK: usize = 32 * 1024;

/// One tensor's update coefficients, in f32 as the tensor path applies them:
///
/// ```text
/// g <- g / micro_batches * clip
/// m <- m * beta1 + g * (1 - beta1);   v <- v * beta2 + g² * (1 - beta2)
/// p <- p * keep - (m / bc1) / (sqrt(v / bc2) + eps) * lr
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    /// Micro-batches the gradient sums.
    pub micro_batches: f32,
    /// The clipping factor (1 when not clipped).
    pub clip: f32,
    /// Adam's beta1.
    pub beta1: f32,
    /// Adam's beta2.
    pub beta2: f32,
    /// `1 - beta1^t`.
    pub bc1: f32,
    /// `1 - beta2^t`.
    pub bc2: f32,
    /// Adam's epsilon.
    pub eps: f32,
    /// This tensor's learning rate.
    pub lr: f32,
    /// `1 - lr * weight_decay` (1 without decay).
    pub keep: f32,
}

/// Whether [`adamw_update`] and [`sum_squares`] take `t`: f32 on the Flex backend, without
/// autodiff.
pub fn fused<const D: usize>(t: &Tensor<D>) -> bool {
    native(t) && !t.is_autodiff()
}

/// The sum of squares of `grad / micro_batches`, in f64 over bands summed in order (the same
/// value on every run); `None` when `grad` is not an f32 tensor on the CPU.
pub fn sum_squares(grad: &Tensor<1>, micro_batches: f32) -> Option<f64> {
    if !fused(grad) {
        return None;
    }
    let g = flex(grad.clone());
    let g = values(&g);
    let bands: Vec<f64> = g
        .par_chunks(CHUNK)
        .map(|band| {
            band.iter()
                .map(|&x| {
                    let x = f64::from(x / micro_batches);
                    x * x
                })
                .sum::<f64>()
        })
        .collect();
    Some(bands.iter().sum())
}

/// One AdamW update of `param` (any shape) from its flattened gradient and moments `(m, v)`:
/// `(param, m, v)` updated, in the buffers they came in when they own them. The caller checks
/// [`fused`] for all four.
pub fn adamw_update<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<1>,
    (m, v): (Tensor<1>, Tensor<1>),
    k: AdamWStep,
) -> (Tensor<D>, Tensor<1>, Tensor<1>) {
    let g = flex(grad);
    let g = values(&g);
    let n = g.len();
    let mut p = owned(flex(param));
    assert_eq!(
        p.layout().num_elements(),
        n,
        "AdamW: a parameter and its gradient differ in size"
    );
    let (mut m, mut v) = (owned(flex(m)), owned(flex(v)));
    assert!(
        m.layout().num_elements() == n && v.layout().num_elements() == n,
        "AdamW: moments of another size than the gradient"
    );
    let (b1, b2) = (k.beta1, k.beta2);
    let (a1, a2) = (1.0 - b1, 1.0 - b2);
    p.storage_mut::<f32>()
        .par_chunks_mut(CHUNK)
        .zip(m.storage_mut::<f32>().par_chunks_mut(CHUNK))
        .zip(v.storage_mut::<f32>().par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .for_each(|(((p, m), v), g)| {
            for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
                let g = g / k.micro_batches * k.clip;
                let mi = *m * b1 + g * a1;
                let vi = *v * b2 + g * g * a2;
                let denom = (vi / k.bc2).sqrt() + k.eps;
                let delta = mi / k.bc1 / denom * k.lr;
                *p = *p * k.keep - delta;
                *m = mi;
                *v = vi;
            }
        });
    (plain(p), plain(m), plain(v))
}

/// The Flex tensor inside a plain (not autodiff) f32 CPU tensor.
fn flex<const D: usize>(t: Tensor<D>) -> FlexTensor {
    match t.into_dispatch().kind {
        DispatchTensorKind::Flex(BackendTensor::Float(t)) => t,
        _ => unreachable!("AdamW's CPU path takes plain f32 CPU tensors (checked by `fused`)"),
    }
}

/// `t` contiguous from the start of a buffer of exactly its values (a copy otherwise), so
/// that `storage_mut` is the values in order; shared buffers are copied there on write.
fn owned(t: FlexTensor) -> FlexTensor {
    if holds_exactly(&t) {
        t
    } else {
        tensor(values(&t).into_owned(), t.layout().shape().to_vec())
    }
}

fn plain<const D: usize>(t: FlexTensor) -> Tensor<D> {
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
        autodiff: Default::default(),
    })
}
