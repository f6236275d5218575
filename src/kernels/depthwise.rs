//! Depthwise 3D convolution, stride 1, on channels-last `[B, T, H, W, C]` tensors: the
//! convolution of FE-Adapter's and ST-Adapter's bottleneck (`Conv3d(r, r, k, groups = r)`).
//!
//! burn's `conv3d` with `groups = C` runs a general grouped convolution: its forward lays the
//! input out channels-first, and its weight gradient loops over the channels with a slice, a
//! convolution and a slice-assignment each. A depthwise kernel needs none of that: every output
//! element is the sum of `kt * kh * kw` products of one channel, so on channels-last data each
//! tap is one multiply-add over `C` contiguous floats:
//!
//! ```text
//! y[b, t, h, w, c] = bias[c] + sum_{i,j,k} x[b, t - pt + dt*i, h - ph + dh*j, w - pw + dw*k, c] * k[c, i, j, k]
//! dx[b, t, h, w, c] = sum_{i,j,k} dy[b, t + pt - dt*i, h + ph - dh*j, w + pw - dw*k, c] * k[c, i, j, k]
//! dk[c, i, j, k]    = sum_{b,t,h,w} dy[b, t, h, w, c] * x[b, t - pt + dt*i, ...]
//! dbias[c]          = sum_{b,t,h,w} dy[b, t, h, w, c]
//! ```
//!
//! (positions outside the input read as zero). The input gradient is the same tap loop with
//! the offsets negated, the weight gradient one dot product per tap and channel; rows of the
//! output are shared out over rayon's threads, and the inner loop over channels is vectorised
//! (AVX2 with FMA where the CPU has them, checked at run time).
//!
//! The operation is a burn backend extension: its own kernels on the Flex (CPU) backend and a
//! hand-written backward under autodiff. [`depthwise_conv3d`] falls back to burn's `conv3d` on
//! other devices and data types, so GPU builds run the convolution they always ran.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;
use burn::tensor::module::conv3d;
use burn::tensor::ops::ConvOptions;
use rayon::prelude::*;

use super::{has_fma, native, tensor, values};

/// Kernel size, dilation and zero padding of a stride-1 depthwise 3D convolution, axes
/// `(T, H, W)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwiseGeom {
    /// Taps per axis.
    pub kernel: [usize; 3],
    /// Spacing between taps per axis.
    pub dilation: [usize; 3],
    /// Zeros added on both sides per axis.
    pub padding: [usize; 3],
}

impl DepthwiseGeom {
    /// Output extent of an input of extent `input` (`None` when the kernel does not fit).
    pub fn out_dims(&self, input: [usize; 3]) -> Option<[usize; 3]> {
        let mut out = [0; 3];
        for a in 0..3 {
            let span = self.dilation[a] * (self.kernel[a].max(1) - 1);
            out[a] = (input[a] + 2 * self.padding[a]).checked_sub(span)?;
            if out[a] == 0 || self.kernel[a] == 0 {
                return None;
            }
        }
        Some(out)
    }

    fn taps(&self) -> usize {
        self.kernel.iter().product()
    }

    /// Per tap `(i, j, k)` in row-major order, the offset from an output position to the input
    /// position it reads (`sign = 1`), or from an input position to the output position whose
    /// gradient it receives (`sign = -1`).
    fn offsets(&self, sign: isize) -> Vec<[isize; 3]> {
        let mut out = Vec::with_capacity(self.taps());
        for i in 0..self.kernel[0] {
            for j in 0..self.kernel[1] {
                for k in 0..self.kernel[2] {
                    let tap = [i, j, k];
                    out.push(std::array::from_fn(|a| {
                        sign * ((self.dilation[a] * tap[a]) as isize - self.padding[a] as isize)
                    }));
                }
            }
        }
        out
    }
}

/// `x: [B, T, H, W, C]`, `weight: [C, 1, kt, kh, kw]` (burn's `Conv3d` layout with
/// `groups = C`), `bias: [C]` -> `[B, T', H', W', C]`.
///
/// On the CPU backend in f32 this is vidapter's depthwise kernel with its own backward; anywhere
/// else burn's `conv3d` on the channels-first view.
///
/// # Panics
/// On shapes that do not agree (the callers build them; a mismatch is our bug).
pub fn depthwise_conv3d(
    x: Tensor<5>,
    weight: Tensor<5>,
    bias: Tensor<1>,
    geom: DepthwiseGeom,
) -> Tensor<5> {
    let [_, t, h, w, c] = x.dims();
    assert_eq!(
        weight.dims(),
        [c, 1, geom.kernel[0], geom.kernel[1], geom.kernel[2]],
        "depthwise weight for {c} channels and kernel {:?}",
        geom.kernel
    );
    assert_eq!(bias.dims(), [c], "depthwise bias for {c} channels");
    assert!(
        geom.out_dims([t, h, w]).is_some(),
        "depthwise kernel {geom:?} does not fit a {t}x{h}x{w} input"
    );
    if native(&x) && native(&weight) && native(&bias) {
        Tensor::from_dispatch(<Dispatch as DepthwiseConv3d>::depthwise_conv3d(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            geom,
        ))
    } else {
        let options = ConvOptions::new([1, 1, 1], geom.padding, geom.dilation, c);
        conv3d(x.permute([0, 4, 1, 2, 3]), weight, Some(bias), options).permute([0, 2, 3, 4, 1])
    }
}

/// The backend extension: vidapter's kernels on Flex, with a hand-written backward.
#[backend_extension(Flex, Autodiff)]
pub trait DepthwiseConv3d: Backend {
    /// See [`depthwise_conv3d`].
    fn depthwise_conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geom: DepthwiseGeom,
    ) -> FloatTensor<Self>;
}

impl DepthwiseConv3d for Flex {
    fn depthwise_conv3d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        geom: DepthwiseGeom,
    ) -> FlexTensor {
        forward(&x, &weight, &bias, geom)
    }
}

#[derive(Debug)]
struct DepthwiseBackward;

impl Backward<Flex, 3> for DepthwiseBackward {
    type State = (NodeId, NodeId, DepthwiseGeom);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, weight_state, geom) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
        let weight: FlexTensor = checkpointer.retrieve_node_output(weight_state);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, input_grad(&grad, &weight, &x, geom));
        }
        if node_weight.is_some() || node_bias.is_some() {
            let (dw, db) = weight_bias_grad(&x, &grad, geom);
            if let Some(node) = node_weight {
                grads.register::<Flex>(node.id, dw);
            }
            if let Some(node) = node_bias {
                grads.register::<Flex>(node.id, db);
            }
        }
    }
}

impl<C: CheckpointStrategy> DepthwiseConv3d for Autodiff<Flex, C> {
    fn depthwise_conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geom: DepthwiseGeom,
    ) -> FloatTensor<Self> {
        match DepthwiseBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let out = forward(x.primitive(), weight.primitive(), bias.primitive(), geom);
                prep.finish((x_state, weight_state, geom), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(
                x.primitive(),
                weight.primitive(),
                bias.primitive(),
                geom,
            )),
        }
    }
}

fn dims5(t: &FlexTensor) -> [usize; 5] {
    let shape = t.layout().shape();
    assert_eq!(
        shape.num_dims(),
        5,
        "depthwise input must be [B, T, H, W, C]"
    );
    std::array::from_fn(|i| shape[i])
}

/// `[C, 1, kt, kh, kw]` -> taps-major `[kt*kh*kw, C]`.
fn taps_major(weight: &[f32], c: usize, taps: usize) -> Vec<f32> {
    let mut out = vec![0.0; taps * c];
    for ch in 0..c {
        for tap in 0..taps {
            out[tap * c + ch] = weight[ch * taps + tap];
        }
    }
    out
}

fn forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    geom: DepthwiseGeom,
) -> FlexTensor {
    let [b, t, h, w, c] = dims5(x);
    let [to, ho, wo] = geom
        .out_dims([t, h, w])
        .expect("kernel fits (checked by the caller)");
    let taps = taps_major(&values(weight), c, geom.taps());
    let mut out = vec![0.0; b * to * ho * wo * c];
    accumulate_taps(
        &values(x),
        [b, t, h, w, c],
        &mut out,
        [to, ho, wo],
        &taps,
        &geom.offsets(1),
        Some(&values(bias)),
    );
    tensor(out, vec![b, to, ho, wo, c])
}

/// The input gradient: the tap loop over the output gradient with negated offsets.
fn input_grad(
    grad: &FlexTensor,
    weight: &FlexTensor,
    x: &FlexTensor,
    geom: DepthwiseGeom,
) -> FlexTensor {
    let [b, t, h, w, c] = dims5(x);
    let [_, to, ho, wo, _] = dims5(grad);
    let taps = taps_major(&values(weight), c, geom.taps());
    let mut out = vec![0.0; b * t * h * w * c];
    accumulate_taps(
        &values(grad),
        [b, to, ho, wo, c],
        &mut out,
        [t, h, w],
        &taps,
        &geom.offsets(-1),
        None,
    );
    tensor(out, vec![b, t, h, w, c])
}

/// `dst[b, p, c] (+)= bias[c] + sum_tap src[b, p + offset[tap], c] * taps[tap, c]` over the
/// `dst` grid, positions outside `src` skipped. Rows `(b, t, h)` of `dst` run in parallel.
fn accumulate_taps(
    src: &[f32],
    [b, st, sh, sw, c]: [usize; 5],
    dst: &mut [f32],
    [dt, dh, dw]: [usize; 3],
    taps: &[f32],
    offsets: &[[isize; 3]],
    bias: Option<&[f32]>,
) {
    debug_assert_eq!(src.len(), b * st * sh * sw * c);
    debug_assert_eq!(dst.len(), b * dt * dh * dw * c);
    let row = dw * c;
    let fma = has_fma();
    dst.par_chunks_mut(row).enumerate().for_each(|(r, out)| {
        let (bi, rest) = (r / (dt * dh), r % (dt * dh));
        let (ti, hi) = (rest / dh, rest % dh);
        if let Some(bias) = bias {
            for px in out.chunks_exact_mut(c) {
                px.copy_from_slice(bias);
            }
        }
        for (tap, off) in offsets.iter().enumerate() {
            let (Some(ts), Some(hs)) = (shift(ti, off[0], st), shift(hi, off[1], sh)) else {
                continue;
            };
            // Output columns whose source column `w + off[2]` lies inside the source row.
            let lo = (-off[2]).max(0) as usize;
            let hi_w = (sw as isize - off[2]).clamp(0, dw as isize) as usize;
            if lo >= hi_w {
                continue;
            }
            let src_row = ((bi * st + ts) * sh + hs) * sw;
            let s0 = (src_row as isize + lo as isize + off[2]) as usize * c;
            let n = (hi_w - lo) * c;
            let weights = &taps[tap * c..(tap + 1) * c];
            mul_add_rows(&mut out[lo * c..lo * c + n], &src[s0..s0 + n], weights, fma);
        }
    });
}

/// `index + offset` when it lies in `0..len`.
fn shift(index: usize, offset: isize, len: usize) -> Option<usize> {
    let s = index as isize + offset;
    (s >= 0 && (s as usize) < len).then_some(s as usize)
}

/// The weight gradient `[C, 1, kt, kh, kw]` and the bias gradient `[C]`.
fn weight_bias_grad(
    x: &FlexTensor,
    grad: &FlexTensor,
    geom: DepthwiseGeom,
) -> (FlexTensor, FlexTensor) {
    let [b, t, h, w, c] = dims5(x);
    let [_, to, ho, wo, _] = dims5(grad);
    let (xv, gv) = (values(x), values(grad));
    let offsets = geom.offsets(1);
    let ntaps = offsets.len();
    let fma = has_fma();
    let rows = b * to * ho;
    // One partial sum per chunk of rows: taps-major weight gradient, then the bias gradient.
    let chunk = rows
        .div_ceil(rayon::current_num_threads().max(1) * 4)
        .max(1);
    let sums = (0..rows.div_ceil(chunk))
        .into_par_iter()
        .map(|k| {
            let mut acc = vec![0.0f32; (ntaps + 1) * c];
            for r in k * chunk..((k + 1) * chunk).min(rows) {
                let (bi, rest) = (r / (to * ho), r % (to * ho));
                let (ti, hi) = (rest / ho, rest % ho);
                let g = &gv[r * wo * c..(r + 1) * wo * c];
                for px in g.chunks_exact(c) {
                    add_rows(&mut acc[ntaps * c..], px);
                }
                for (tap, off) in offsets.iter().enumerate() {
                    let (Some(ts), Some(hs)) = (shift(ti, off[0], t), shift(hi, off[1], h)) else {
                        continue;
                    };
                    let lo = (-off[2]).max(0) as usize;
                    let hi_w = (w as isize - off[2]).clamp(0, wo as isize) as usize;
                    let src_row = ((bi * t + ts) * h + hs) * w;
                    let dst = &mut acc[tap * c..(tap + 1) * c];
                    for col in lo..hi_w {
                        let s0 = (src_row as isize + col as isize + off[2]) as usize * c;
                        mul_add_rows(dst, &xv[s0..s0 + c], &g[col * c..(col + 1) * c], fma);
                    }
                }
            }
            acc
        })
        .reduce_with(|mut a, b| {
            add_rows(&mut a, &b);
            a
        })
        .unwrap_or_else(|| vec![0.0; (ntaps + 1) * c]);
    let mut dw = vec![0.0; ntaps * c];
    for ch in 0..c {
        for tap in 0..ntaps {
            dw[ch * ntaps + tap] = sums[tap * c + ch];
        }
    }
    let db = sums[ntaps * c..].to_vec();
    (
        tensor(
            dw,
            vec![c, 1, geom.kernel[0], geom.kernel[1], geom.kernel[2]],
        ),
        tensor(db, vec![c]),
    )
}

/// `dst[i] += src[i] * w[i % w.len()]` (`dst` and `src` a whole number of `w`'s length).
fn mul_add_rows(dst: &mut [f32], src: &[f32], w: &[f32], fma: bool) {
    #[cfg(target_arch = "x86_64")]
    if fma {
        // SAFETY: `fma` is true only when the CPU reports AVX2 and FMA (`has_fma`).
        unsafe { mul_add_rows_fma(dst, src, w) };
        return;
    }
    let _ = fma;
    mul_add_rows_body::<false>(dst, src, w);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn mul_add_rows_fma(dst: &mut [f32], src: &[f32], w: &[f32]) {
    mul_add_rows_body::<true>(dst, src, w);
}

#[inline(always)]
fn mul_add_rows_body<const FMA: bool>(dst: &mut [f32], src: &[f32], w: &[f32]) {
    for (d, s) in dst.chunks_exact_mut(w.len()).zip(src.chunks_exact(w.len())) {
        for ((d, s), w) in d.iter_mut().zip(s).zip(w) {
            *d = if FMA { s.mul_add(*w, *d) } else { s * w + *d };
        }
    }
}

fn add_rows(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::module::conv3d;
    use burn::tensor::{Device, Distribution};

    use crate::kernels::assert_close as close;

    /// Outputs and all three gradients against burn's grouped `conv3d` on the channels-first
    /// view, for FE-Adapter's "same" geometry, an asymmetric one and one with a short output.
    #[test]
    fn matches_burn_grouped_conv3d_with_gradients() {
        let device = Device::flex().autodiff();
        let cases = [
            ([2, 5, 4, 6, 7], [3, 3, 3], [2, 1, 1], [2, 1, 1]),
            ([1, 4, 5, 3, 3], [1, 3, 3], [1, 2, 1], [0, 1, 2]),
            ([1, 6, 3, 4, 2], [3, 1, 2], [2, 1, 2], [0, 0, 0]),
        ];
        for (shape, kernel, dilation, padding) in cases {
            let geom = DepthwiseGeom {
                kernel,
                dilation,
                padding,
            };
            let c = shape[4];
            let x = Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            assert!(
                native(&x),
                "the test must exercise vidapter's kernel, not the fallback"
            );
            let w = Tensor::<5>::random(
                [c, 1, kernel[0], kernel[1], kernel[2]],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let bias = Tensor::<1>::random([c], Distribution::Normal(0.0, 1.0), &device);
            let (x1, w1, b1) = (
                x.clone().require_grad(),
                w.clone().require_grad(),
                bias.clone().require_grad(),
            );
            let (x2, w2, b2) = (x.require_grad(), w.require_grad(), bias.require_grad());

            let ours = depthwise_conv3d(x1.clone(), w1.clone(), b1.clone(), geom);
            let options = ConvOptions::new([1, 1, 1], padding, dilation, c);
            let theirs = conv3d(
                x2.clone().permute([0, 4, 1, 2, 3]),
                w2.clone(),
                Some(b2.clone()),
                options,
            )
            .permute([0, 2, 3, 4, 1]);
            assert_eq!(ours.dims(), theirs.dims(), "{geom:?}");
            // A weighted sum, so that every output position carries a different gradient.
            let probe = Tensor::<5>::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
            let g1 = (ours.clone() * probe.clone()).sum().backward();
            let g2 = (theirs.clone() * probe).sum().backward();
            close(ours, theirs, 1e-5, "output");
            close(
                x1.grad(&g1).unwrap(),
                x2.grad(&g2).unwrap(),
                1e-5,
                "input gradient",
            );
            close(
                w1.grad(&g1).unwrap(),
                w2.grad(&g2).unwrap(),
                1e-5,
                "weight gradient",
            );
            let (db1, db2) = (b1.grad(&g1).unwrap(), b2.grad(&g2).unwrap());
            close(
                db1.reshape([1, 1, 1, 1, c]),
                db2.reshape([1, 1, 1, 1, c]),
                1e-5,
                "bias gradient",
            );
        }
    }

    /// Without autodiff (inference, the feature cache) the same kernel runs untracked.
    #[test]
    fn runs_without_autodiff_and_in_the_fallback_layout() {
        let device = Device::flex();
        let geom = DepthwiseGeom {
            kernel: [3, 3, 3],
            dilation: [3, 1, 1],
            padding: [3, 1, 1],
        };
        let x = Tensor::<5>::random([1, 4, 3, 3, 5], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<5>::random([5, 1, 3, 3, 3], Distribution::Normal(0.0, 1.0), &device);
        let bias = Tensor::<1>::random([5], Distribution::Normal(0.0, 1.0), &device);
        let ours = depthwise_conv3d(x.clone(), w.clone(), bias.clone(), geom);
        let options = ConvOptions::new([1, 1, 1], geom.padding, geom.dilation, 5);
        let theirs =
            conv3d(x.permute([0, 4, 1, 2, 3]), w, Some(bias), options).permute([0, 2, 3, 4, 1]);
        close(ours, theirs, 1e-5, "output");
    }

    #[test]
    fn out_dims_refuses_a_kernel_that_does_not_fit() {
        let geom = DepthwiseGeom {
            kernel: [3, 3, 3],
            dilation: [4, 1, 1],
            padding: [0, 1, 1],
        };
        assert_eq!(geom.out_dims([8, 14, 14]), None);
        assert_eq!(geom.out_dims([9, 14, 14]), Some([1, 14, 14]));
    }
}
