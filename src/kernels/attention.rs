//! Scaled dot-product attention without a mask, `softmax(q kᵀ / sqrt(d)) v`, per batch entry
//! and head: the backbone's self-attention and the side branches' (M-adapter, EVL) attention.
//!
//! burn's CPU attention copies `q`, `k` and `v` into contiguous buffers and evaluates the
//! softmax's exp one score at a time (scalar `expf`): on ViT-B (8 frames, 197 tokens) 2x
//! PyTorch's time. Under autodiff burn decomposes attention into a matrix product, a softmax
//! and a second product, each with its own saved tensors. Here, per `(batch, head)`:
//!
//! ```text
//! forward:  S = scale q kᵀ            (GEMM on the strided views, no copies)
//!           P = softmax_rows(S)       (vectorised exp), lse = rowmax + ln(rowsum)
//!           o = P v                   (GEMM)
//! backward: P = exp(scale q kᵀ - lse) (recomputed: only lse, [B, h, Lq], is kept)
//!           dv = Pᵀ do,  dP = do vᵀ,  dS = P ∘ (dP - rowsum(P ∘ dP)) scale
//!           dq = dS k,   dk = dSᵀ q
//! ```
//!
//! GEMMs are the `gemm` crate's (burn's CPU backend uses the same), one head per rayon task.

use std::sync::Arc;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;
use burn::tensor::module;
use burn::tensor::ops::AttentionModuleOptions;
use gemm::Parallelism;
use rayon::prelude::*;

use super::{gemm_strided, has_fma, native, simd, tensor};

/// Attention over `q: [B, h, Lq, d]`, `k: [B, h, Lk, d]`, `v: [B, h, Lk, dv]` -> `[B, h, Lq, dv]`,
/// scale `1/sqrt(d)`, no mask: vidapter's kernel on the CPU in f32, burn's `attention`
/// elsewhere.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let [b, h, _, d] = q.dims();
    let [bk, hk, lk, dk] = k.dims();
    let [bv, hv, lv, _] = v.dims();
    let ours = native(&q)
        && native(&k)
        && native(&v)
        && (bk, hk, dk) == (b, h, d)
        && (bv, hv, lv) == (b, h, lk)
        && lk > 0
        && d > 0;
    if ours {
        let scale = 1.0 / (d as f32).sqrt();
        Tensor::from_dispatch(<Dispatch as Attention>::attention_unmasked(
            q.into_dispatch(),
            k.into_dispatch(),
            v.into_dispatch(),
            scale,
        ))
    } else {
        module::attention(q, k, v, None, None, AttentionModuleOptions::default())
    }
}

/// Multi-head self-attention on a packed projection `qkv: [B, L, 3C]` (queries, keys and
/// values side by side, `heads` heads each) -> `[B, heads, L, C/heads]`. On the CPU the heads
/// are read in place from `qkv` (no split copies); elsewhere burn's `attention`.
pub fn self_attention(qkv: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, l, c3] = qkv.dims();
    let d = c3 / 3 / heads;
    assert_eq!(3 * heads * d, c3, "qkv width {c3} is not 3 x {heads} heads");
    let packed = qkv.reshape([b, l, 3, heads, d]).permute([2, 0, 3, 1, 4]); // [3, B, h, L, d]
    let part = |i: usize| packed.clone().slice_dim(0, i..i + 1); // [1, B, h, L, d], views
    if native(&packed) && l > 0 && d > 0 {
        let out = <Dispatch as Attention>::attention_unmasked(
            part(0).into_dispatch(),
            part(1).into_dispatch(),
            part(2).into_dispatch(),
            1.0 / (d as f32).sqrt(),
        );
        Tensor::<5>::from_dispatch(out).reshape([b, heads, l, d])
    } else {
        let head = |i: usize| part(i).squeeze_dim::<4>(0);
        module::attention(
            head(0),
            head(1),
            head(2),
            None,
            None,
            AttentionModuleOptions::default(),
        )
    }
}

/// The backend extension: vidapter's kernel on Flex, with a hand-written backward.
#[backend_extension(Flex, Autodiff)]
pub trait Attention: Backend {
    /// See [`attention`]; `scale` multiplies `q kᵀ`.
    fn attention_unmasked(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self>;
}

impl Attention for Flex {
    fn attention_unmasked(q: FlexTensor, k: FlexTensor, v: FlexTensor, scale: f32) -> FlexTensor {
        forward(&q, &k, &v, scale).0
    }
}

#[derive(Debug)]
struct AttentionBackward;

/// `(q, k, v, row log-sum-exps, scale)`.
type State = (NodeId, NodeId, NodeId, Arc<Vec<f32>>, f32);

impl Backward<Flex, 3> for AttentionBackward {
    type State = State;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_q, node_k, node_v] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (q_state, k_state, v_state, lse, scale) = ops.state;
        let q: FlexTensor = checkpointer.retrieve_node_output(q_state);
        let k: FlexTensor = checkpointer.retrieve_node_output(k_state);
        let v: FlexTensor = checkpointer.retrieve_node_output(v_state);
        let [dq, dk, dv] = backward(&q, &k, &v, &grad, &lse, scale);
        for (node, g) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, g);
            }
        }
    }
}

impl<C: CheckpointStrategy> Attention for Autodiff<Flex, C> {
    fn attention_unmasked(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        match AttentionBackward
            .prepare::<C>([q.node(), k.node(), v.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let q_state = prep.checkpoint(&q);
                let k_state = prep.checkpoint(&k);
                let v_state = prep.checkpoint(&v);
                let (out, lse) = forward(q.primitive(), k.primitive(), v.primitive(), scale);
                prep.finish((q_state, k_state, v_state, Arc::new(lse), scale), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(forward(q.primitive(), k.primitive(), v.primitive(), scale).0)
            }
        }
    }
}

/// A 4-D f32 tensor read in place through its strides (a 5-D one with a leading 1, as
/// [`self_attention`] passes them, is read as its 4-D part).
struct View {
    tensor: FlexTensor,
    dims: [usize; 4],
    strides: [isize; 4],
    offset: usize,
    shape: Vec<usize>,
}

impl View {
    /// `t` itself when its strides are non-negative, else a contiguous copy.
    fn of(t: &FlexTensor) -> View {
        let layout = t.layout();
        let tensor = if layout.strides().iter().all(|&s| s >= 0) {
            t.clone()
        } else {
            t.to_contiguous()
        };
        let layout = tensor.layout();
        let shape = layout.shape().to_vec();
        assert!(
            shape.len() == 4 || (shape.len() == 5 && shape[0] == 1),
            "attention operands must be [B, h, L, d], got {shape:?}"
        );
        let lead = shape.len() - 4;
        let dims = std::array::from_fn(|i| shape[lead + i]);
        let strides = std::array::from_fn(|i| layout.strides()[lead + i]);
        let offset = layout.start_offset();
        View {
            tensor,
            dims,
            strides,
            offset,
            shape,
        }
    }

    /// The operand's own shape with the last dimension `last`.
    fn shape_with_last(&self, last: usize) -> Vec<usize> {
        let mut shape = self.shape.clone();
        *shape.last_mut().expect("4 or 5 dimensions") = last;
        shape
    }

    fn data(&self) -> &[f32] {
        self.tensor.storage::<f32>()
    }

    /// Pointer to element `[b, h, 0, 0]`, with row and column strides.
    fn head(&self, b: usize, h: usize) -> (*const f32, isize, isize) {
        let at = self.offset as isize + b as isize * self.strides[0] + h as isize * self.strides[1];
        let data = self.data();
        assert!(
            at >= 0 && (at as usize) <= data.len(),
            "attention view out of its buffer"
        );
        // SAFETY: `at` is within the buffer (checked); the strides are the layout's, which
        // keep every element of the head inside it.
        (
            unsafe { data.as_ptr().offset(at) },
            self.strides[2],
            self.strides[3],
        )
    }
}

/// `dst (m x n, row-major, contiguous) = beta * lhs (m x k) @ rhs (k x n)`, strided operands,
/// on the calling thread (the heads are the parallel tasks).
///
/// # Safety
/// As [`gemm_strided`].
unsafe fn matmul(
    dst: &mut [f32],
    dims: [usize; 3],
    lhs: (*const f32, isize, isize),
    rhs: (*const f32, isize, isize),
    beta: f32,
) {
    // SAFETY: the caller's contract.
    unsafe { gemm_strided(dst, false, dims, lhs, rhs, beta, Parallelism::None) }
}

/// The output `[B, h, Lq, dv]` and the row log-sum-exps `[B, h, Lq]`.
fn forward(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, scale: f32) -> (FlexTensor, Vec<f32>) {
    let (q, k, v) = (View::of(q), View::of(k), View::of(v));
    let [b, h, lq, d] = q.dims;
    let lk = k.dims[2];
    let dv = v.dims[3];
    let fma = has_fma();
    let mut out = vec![0.0f32; b * h * lq * dv];
    let mut lse = vec![0.0f32; b * h * lq];
    if !out.is_empty() {
        out.par_chunks_mut(lq * dv)
            .zip(lse.par_chunks_mut(lq))
            .enumerate()
            .for_each_init(
                || vec![0.0f32; lq * lk],
                |scores, (i, (out, lse))| {
                    let (bi, hi) = (i / h, i % h);
                    let (qp, qr, qc) = q.head(bi, hi);
                    let (kp, kr, kc) = k.head(bi, hi);
                    let (vp, vr, vc) = v.head(bi, hi);
                    // SAFETY: the views address [Lq, d], [Lk, d] and [Lk, dv] heads.
                    unsafe {
                        matmul(scores, [lq, lk, d], (qp, qr, qc), (kp, kc, kr), scale);
                    }
                    for (row, lse) in scores.chunks_exact_mut(lk).zip(lse.iter_mut()) {
                        *lse = simd::softmax_row(row, fma);
                    }
                    // SAFETY: as above.
                    unsafe {
                        matmul(
                            out,
                            [lq, dv, lk],
                            (scores.as_ptr(), lk as isize, 1),
                            (vp, vr, vc),
                            1.0,
                        );
                    }
                },
            );
    }
    (tensor(out, q.shape_with_last(dv)), lse)
}

/// `[dq, dk, dv]` from the output gradient `grad: [B, h, Lq, dv]` (see the module docs).
fn backward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    grad: &FlexTensor,
    lse: &[f32],
    scale: f32,
) -> [FlexTensor; 3] {
    let (q, k, v, g) = (View::of(q), View::of(k), View::of(v), View::of(grad));
    let [b, h, lq, d] = q.dims;
    let lk = k.dims[2];
    let dvd = v.dims[3];
    assert_eq!(g.dims, [b, h, lq, dvd], "attention output gradient shape");
    assert_eq!(lse.len(), b * h * lq, "attention log-sum-exps");
    let fma = has_fma();
    let mut dq = vec![0.0f32; b * h * lq * d];
    let mut dk = vec![0.0f32; b * h * lk * d];
    let mut dv = vec![0.0f32; b * h * lk * dvd];
    if !dq.is_empty() && !dv.is_empty() {
        dq.par_chunks_mut(lq * d)
            .zip(dk.par_chunks_mut(lk * d))
            .zip(dv.par_chunks_mut(lk * dvd))
            .enumerate()
            .for_each_init(
                || (vec![0.0f32; lq * lk], vec![0.0f32; lq * lk]),
                |(p, dp), (i, ((dq, dk), dv))| {
                    let (bi, hi) = (i / h, i % h);
                    let (qp, qr, qc) = q.head(bi, hi);
                    let (kp, kr, kc) = k.head(bi, hi);
                    let (vp, vr, vc) = v.head(bi, hi);
                    let (gp, gr, gc) = g.head(bi, hi);
                    let lse = &lse[i * lq..(i + 1) * lq];
                    // SAFETY (all GEMMs): the views address whole heads; the scratch
                    // matrices are [Lq, Lk], the outputs [Lq, d], [Lk, d], [Lk, dv].
                    unsafe {
                        matmul(p, [lq, lk, d], (qp, qr, qc), (kp, kc, kr), scale);
                    }
                    for (row, lse) in p.chunks_exact_mut(lk).zip(lse) {
                        simd::exp_shifted_row(row, *lse, fma);
                    }
                    let pp = p.as_ptr();
                    unsafe {
                        // dv = Pᵀ do
                        matmul(dv, [lk, dvd, lq], (pp, 1, lk as isize), (gp, gr, gc), 1.0);
                        // dP = do vᵀ
                        matmul(dp, [lq, lk, dvd], (gp, gr, gc), (vp, vc, vr), 1.0);
                    }
                    for (prow, dprow) in p.chunks_exact(lk).zip(dp.chunks_exact_mut(lk)) {
                        simd::softmax_grad_row(dprow, prow, scale, fma);
                    }
                    let dsp = dp.as_ptr();
                    unsafe {
                        // dq = dS k
                        matmul(dq, [lq, d, lk], (dsp, lk as isize, 1), (kp, kr, kc), 1.0);
                        // dk = dSᵀ q
                        matmul(dk, [lk, d, lq], (dsp, 1, lk as isize), (qp, qr, qc), 1.0);
                    }
                },
            );
    }
    [
        tensor(dq, q.shape.clone()),
        tensor(dk, k.shape.clone()),
        tensor(dv, v.shape.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    use crate::kernels::assert_close as close;

    /// Output and the three gradients against burn's attention (its decomposition under
    /// autodiff) on strided views of a packed `[B, L, 3, h, d]` tensor, as the backbone
    /// makes them, self-attention and cross-attention with `Lq != Lk`.
    #[test]
    fn matches_burn_attention_with_gradients() {
        let device = Device::flex().autodiff();
        for (b, lq, lk, h, d) in [(2, 7, 7, 3, 4), (1, 2, 9, 2, 5)] {
            let packed_q =
                Tensor::<5>::random([b, lq, 3, h, d], Distribution::Normal(0.0, 1.5), &device);
            let packed_kv =
                Tensor::<5>::random([b, lk, 3, h, d], Distribution::Normal(0.0, 1.5), &device);
            let head = |t: Tensor<5>, i: usize| {
                t.permute([2, 0, 3, 1, 4])
                    .slice_dim(0, i..i + 1)
                    .squeeze_dim::<4>(0)
            };
            let run = |ours: bool| {
                let (pq, pkv) = (
                    packed_q.clone().require_grad(),
                    packed_kv.clone().require_grad(),
                );
                let (q, k, v) = (
                    head(pq.clone(), 0),
                    head(pkv.clone(), 1),
                    head(pkv.clone(), 2),
                );
                if ours {
                    assert!(native(&q));
                }
                let out = if ours {
                    attention(q, k, v)
                } else {
                    module::attention(q, k, v, None, None, AttentionModuleOptions::default())
                };
                let probe = Tensor::<4>::random(
                    out.dims(),
                    Distribution::Normal(0.0, 1.0),
                    &Device::flex().autodiff(),
                );
                (out, pq, pkv, probe)
            };
            let (o1, q1, kv1, probe) = run(true);
            let (o2, q2, kv2, _) = run(false);
            let g1 = (o1.clone() * probe.clone()).sum().backward();
            let g2 = (o2.clone() * probe).sum().backward();
            close(o1, o2, 1e-5, "output");
            let flat = |t: Tensor<5>| t.reshape([1, 1, 1, -1]);
            close(
                flat(q1.grad(&g1).unwrap()),
                flat(q2.grad(&g2).unwrap()),
                1e-5,
                "query gradient",
            );
            close(
                flat(kv1.grad(&g1).unwrap()),
                flat(kv2.grad(&g2).unwrap()),
                1e-5,
                "key and value gradients",
            );
        }
    }

    /// The packed entry point against the 4-D one on the same projection, with gradients.
    #[test]
    fn self_attention_reads_the_packed_projection() {
        let device = Device::flex().autodiff();
        let qkv = Tensor::<3>::random([2, 5, 3 * 2 * 4], Distribution::Normal(0.0, 1.0), &device);
        let (a, b) = (qkv.clone().require_grad(), qkv.require_grad());
        let ours = self_attention(a.clone(), 2);
        let split = b.clone().reshape([2, 5, 3, 2, 4]).permute([2, 0, 3, 1, 4]);
        let head = |i: usize| split.clone().slice_dim(0, i..i + 1).squeeze_dim::<4>(0);
        let theirs = module::attention(
            head(0),
            head(1),
            head(2),
            None,
            None,
            AttentionModuleOptions::default(),
        );
        let probe = Tensor::<4>::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
        let ga = (ours.clone() * probe.clone()).sum().backward();
        let gb = (theirs.clone() * probe).sum().backward();
        close(ours, theirs, 1e-5, "output");
        let flat = |t: Tensor<3>| t.reshape([1, 1, 1, -1]);
        close(
            flat(a.grad(&ga).unwrap()),
            flat(b.grad(&gb).unwrap()),
            1e-5,
            "qkv gradient",
        );
    }

    #[test]
    fn runs_untracked_like_burn() {
        let device = Device::flex();
        let q = Tensor::<4>::random([2, 3, 5, 8], Distribution::Normal(0.0, 1.0), &device);
        let k = Tensor::<4>::random([2, 3, 6, 8], Distribution::Normal(0.0, 1.0), &device);
        let v = Tensor::<4>::random([2, 3, 6, 4], Distribution::Normal(0.0, 1.0), &device);
        let ours = attention(q.clone(), k.clone(), v.clone());
        let theirs = module::attention(q, k, v, None, None, AttentionModuleOptions::default());
        close(ours, theirs, 1e-5, "output");
    }
}
