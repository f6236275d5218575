//! The linear layer `y = x W + b` over the last axis (`W: [in, out]`, burn's layout): every
//! projection of the backbones and the methods.
//!
//! burn's CPU `linear` is a matrix product into a fresh output followed by a second pass that
//! adds the bias (`float_add`, another full read and write of the output), and its backward
//! builds the transposes as views and calls the same product. Here:
//!
//! ```text
//! forward:  Y = broadcast(b);  Y += X W        (one GEMM that reads its output: no bias pass)
//! backward: dX = dY Wᵀ                          (GEMM on the transposed strides of W)
//!           dW = Xᵀ dY                          (GEMM on the transposed strides of X)
//!           db = column sums of dY
//! ```
//!
//! GEMMs are the `gemm` crate's (burn's CPU backend uses the same), on the operands' own
//! strides; only the gradients that autodiff asks for are computed, and the tensors kept for
//! backward are the ones those gradients read (`X` for `dW`, `W` for `dX`), as in burn.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::Linear;
use burn::tensor::Tensor;
use gemm::Parallelism;
use rayon::prelude::*;

use super::{gemm_strided, native, tensor, values};

/// `layer` applied to the last axis of `x: [..., in]` -> `[..., out]`: vidapter's kernel on the
/// CPU in f32, burn's `Linear::forward` elsewhere.
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let weight = layer.weight.val();
    let [d_in, d_out] = weight.dims();
    let bias = match &layer.bias {
        Some(b) => b.val(),
        None => Tensor::zeros([d_out], &weight.device()),
    };
    let ours = D >= 2
        && x.dims()[D - 1] == d_in
        && d_in > 0
        && d_out > 0
        && native(&x)
        && native(&weight)
        && native(&bias);
    if !ours {
        return layer.forward(x);
    }
    Tensor::from_dispatch(<Dispatch as LinearOps>::linear_bias(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// The backend extension: vidapter's kernel on Flex, with a hand-written backward.
#[backend_extension(Flex, Autodiff)]
pub trait LinearOps: Backend {
    /// See [`linear`]: `x: [..., in]`, `weight: [in, out]`, `bias: [out]`.
    fn linear_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl LinearOps for Flex {
    fn linear_bias(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        forward(&x, &weight, &bias)
    }
}

#[derive(Debug)]
struct LinearBackward;

/// `(x if dW is wanted, weight if dX is wanted, x's shape)`.
type State = (Option<NodeId>, Option<NodeId>, Vec<usize>);

impl Backward<Flex, 3> for LinearBackward {
    type State = State;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, weight_state, x_shape) = ops.state;
        let dy = values(&grad);
        let d_out = *grad
            .layout()
            .shape()
            .last()
            .expect("a linear output has an axis");
        let rows = dy.len() / d_out;
        if let (Some(node), Some(id)) = (node_x, weight_state) {
            let weight: FlexTensor = checkpointer.retrieve_node_output(id);
            grads.register::<Flex>(node.id, input_grad(&dy, rows, &weight, &x_shape));
        }
        if let (Some(node), Some(id)) = (node_weight, x_state) {
            let x: FlexTensor = checkpointer.retrieve_node_output(id);
            grads.register::<Flex>(node.id, weight_grad(&x, &dy, rows, d_out));
        }
        if let Some(node) = node_bias {
            grads.register::<Flex>(node.id, bias_grad(&dy, d_out));
        }
    }
}

impl<C: CheckpointStrategy> LinearOps for Autodiff<Flex, C> {
    fn linear_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let x_tracked = x.is_tracked();
        let weight_tracked = weight.is_tracked();
        match LinearBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                // x is read only by the weight's gradient, the weight only by x's.
                let x_state = weight_tracked.then(|| prep.checkpoint(&x));
                let weight_state = x_tracked.then(|| prep.checkpoint(&weight));
                let shape = x.primitive().layout().shape().to_vec();
                let out = forward(x.primitive(), weight.primitive(), bias.primitive());
                prep.finish((x_state, weight_state, shape), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(forward(x.primitive(), weight.primitive(), bias.primitive()))
            }
        }
    }
}

/// Products of at least this many multiply-adds are shared out over rayon's threads (burn's
/// threshold for its own products).
const PARALLEL_OPS: usize = 192 * 192 * 192;

fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_OPS {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

/// A tensor's leading axes merged into rows, read in place: `(tensor, row stride, column
/// stride)`; a contiguous copy when its strides do not allow that (a negative stride, or
/// leading axes that do not chain).
fn as_rows(t: &FlexTensor) -> (FlexTensor, isize, isize) {
    let layout = t.layout();
    let (shape, strides) = (layout.shape(), layout.strides());
    let rank = shape.num_dims();
    let col = strides[rank - 1];
    // Walking the leading axes from the innermost: (row stride, stride the next axis needs).
    let mut chain: Option<(isize, isize)> = None;
    let mut merges = strides.iter().all(|&s| s >= 0);
    for i in (0..rank - 1).rev().filter(|&i| shape[i] != 1) {
        chain = match chain {
            None => Some((strides[i], strides[i] * shape[i] as isize)),
            Some((row, next)) if strides[i] == next => Some((row, next * shape[i] as isize)),
            Some(_) => {
                merges = false;
                break;
            }
        };
    }
    if merges {
        let row = chain.map_or(shape[rank - 1] as isize * col, |(row, _)| row);
        return (t.clone(), row, col);
    }
    let c = t.to_contiguous();
    (c, shape[rank - 1] as isize, 1)
}

/// `(pointer to the first element, row stride, column stride)` of a 2-D view.
fn operand(t: &FlexTensor, row_stride: isize, col_stride: isize) -> (*const f32, isize, isize) {
    let data = t.storage::<f32>();
    let offset = t.layout().start_offset();
    assert!(
        offset <= data.len(),
        "linear operand's view out of its buffer"
    );
    // SAFETY: `offset` is within the buffer (checked).
    (unsafe { data.as_ptr().add(offset) }, row_stride, col_stride)
}

fn dims2(t: &FlexTensor) -> [usize; 2] {
    let shape = t.layout().shape();
    assert_eq!(shape.num_dims(), 2, "linear weight must be [in, out]");
    [shape[0], shape[1]]
}

fn weight_strides(t: &FlexTensor) -> (FlexTensor, isize, isize) {
    let strides = t.layout().strides();
    if strides.iter().all(|&s| s >= 0) {
        (t.clone(), strides[0], strides[1])
    } else {
        let c = t.to_contiguous();
        let cols = dims2(&c)[1] as isize;
        (c, cols, 1)
    }
}

fn forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let shape = x.layout().shape().to_vec();
    let d_in = shape[shape.len() - 1];
    let [wi, d_out] = dims2(weight);
    assert_eq!(
        wi, d_in,
        "linear: input width {d_in}, weight [{wi}, {d_out}]"
    );
    let bias = values(bias);
    assert_eq!(
        bias.len(),
        d_out,
        "linear: bias of {} for {d_out} outputs",
        bias.len()
    );
    let rows = shape[..shape.len() - 1].iter().product::<usize>();

    let mut out = Vec::with_capacity(rows * d_out);
    for _ in 0..rows {
        out.extend_from_slice(&bias);
    }
    let (x, xr, xc) = as_rows(x);
    let (w, wr, wc) = weight_strides(weight);
    // SAFETY: both operands are views of their own tensors' buffers with the layouts' strides.
    unsafe {
        gemm_strided(
            &mut out,
            true,
            [rows, d_out, d_in],
            operand(&x, xr, xc),
            operand(&w, wr, wc),
            1.0,
            parallelism(rows, d_out, d_in),
        );
    }
    let mut out_shape = shape;
    *out_shape.last_mut().expect("a linear input has an axis") = d_out;
    tensor(out, out_shape)
}

/// `dX = dY Wᵀ`, shaped as `x`.
fn input_grad(dy: &[f32], rows: usize, weight: &FlexTensor, x_shape: &[usize]) -> FlexTensor {
    let [d_in, d_out] = dims2(weight);
    let (w, wr, wc) = weight_strides(weight);
    let mut dx = vec![0.0; rows * d_in];
    // SAFETY: `dy` is `[rows, d_out]` contiguous; Wᵀ is W's view with its strides swapped.
    unsafe {
        gemm_strided(
            &mut dx,
            false,
            [rows, d_in, d_out],
            (dy.as_ptr(), d_out as isize, 1),
            operand(&w, wc, wr),
            1.0,
            parallelism(rows, d_in, d_out),
        );
    }
    tensor(dx, x_shape.to_vec())
}

/// `dW = Xᵀ dY`, `[in, out]`.
fn weight_grad(x: &FlexTensor, dy: &[f32], rows: usize, d_out: usize) -> FlexTensor {
    let d_in = *x
        .layout()
        .shape()
        .last()
        .expect("a linear input has an axis");
    let (x, xr, xc) = as_rows(x);
    let mut dw = vec![0.0; d_in * d_out];
    // SAFETY: Xᵀ is X's rows view with its strides swapped; `dy` is `[rows, d_out]` contiguous.
    unsafe {
        gemm_strided(
            &mut dw,
            false,
            [d_in, d_out, rows],
            operand(&x, xc, xr),
            (dy.as_ptr(), d_out as isize, 1),
            1.0,
            parallelism(d_in, d_out, rows),
        );
    }
    tensor(dw, vec![d_in, d_out])
}

/// `db = sum over rows of dY`, `[out]`: bands of rows summed on rayon's threads, the band
/// sums then added in order (the same sum on every run).
fn bias_grad(dy: &[f32], d_out: usize) -> FlexTensor {
    const BAND: usize = 256;
    let add = |acc: &mut [f32], rows: &[f32]| {
        for row in rows.chunks_exact(d_out) {
            for (a, v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
    };
    let bands: Vec<Vec<f32>> = dy
        .par_chunks(BAND * d_out)
        .map(|band| {
            let mut acc = vec![0.0; d_out];
            add(&mut acc, band);
            acc
        })
        .collect();
    let mut db = vec![0.0; d_out];
    for band in &bands {
        add(&mut db, band);
    }
    tensor(db, vec![d_out])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, Distribution};

    use crate::kernels::assert_close as close;

    /// How a test input is laid out in memory.
    #[derive(Clone, Copy, Debug)]
    enum Layout {
        Contiguous,
        /// The last two axes swapped (column stride > 1).
        Transposed,
        /// The first half of a twice-as-wide tensor's last axis (row stride > width).
        Sliced,
    }

    /// Outputs and all three gradients against burn's `Linear`: 3-D and 2-D inputs, inputs
    /// read in place through strides (transposed, sliced) or copied (leading axes that do not
    /// merge), a transposed weight, a layer without bias, shapes past the parallel threshold.
    #[test]
    fn matches_burn_linear_with_gradients() {
        use Layout::*;
        let device = Device::flex().autodiff();
        for (case, (shape, d_out, bias, layout, transpose_w)) in [
            ([2, 5, 7], 9, true, Contiguous, false),
            ([1, 13, 6], 4, true, Contiguous, false),
            ([1, 13, 6], 4, true, Transposed, false),
            ([3, 7, 6], 5, true, Transposed, false),
            ([3, 4, 8], 6, true, Sliced, false),
            ([4, 3, 8], 6, true, Contiguous, true),
            ([2, 3, 5], 3, false, Contiguous, false),
            ([40, 50, 64], 72, true, Contiguous, false),
        ]
        .into_iter()
        .enumerate()
        {
            let what = |part: &str| format!("case {case} ({layout:?}): {part}");
            let d_in = shape[2];
            let mut layer = LinearConfig::new(d_in, d_out).with_bias(bias).init(&device);
            if transpose_w {
                let w = Tensor::<2>::random([d_out, d_in], Distribution::Normal(0.0, 1.0), &device);
                layer.weight = burn::module::Param::from_tensor(w.transpose());
            }
            let x = random(shape, layout, &device);
            assert!(
                native(&x),
                "{}",
                what("the test must exercise vidapter's kernel")
            );
            let (x1, x2) = (x.clone().require_grad(), x.require_grad());
            let ours = linear(&layer, x1.clone());
            let theirs = layer.forward(x2.clone());
            assert_eq!(ours.dims(), theirs.dims(), "{}", what("shape"));
            let probe = Tensor::<3>::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
            let g1 = (ours.clone() * probe.clone()).sum().backward();
            let g2 = (theirs.clone() * probe).sum().backward();
            close(ours, theirs, 1e-5, &what("output"));
            let grad = |t: &Tensor<3>, g| t.grad(g).unwrap();
            close(
                grad(&x1, &g1),
                grad(&x2, &g2),
                1e-5,
                &what("input gradient"),
            );
            let (w1, w2) = (layer.weight.grad(&g1), layer.weight.grad(&g2));
            close(w1.unwrap(), w2.unwrap(), 1e-5, &what("weight gradient"));
            if let Some(b) = &layer.bias {
                let (b1, b2) = (b.grad(&g1).unwrap(), b.grad(&g2).unwrap());
                close(b1, b2, 1e-5, &what("bias gradient"));
            }
        }
    }

    /// Without autodiff (the frozen backbone's forward) and on a 2-D input.
    #[test]
    fn runs_untracked_on_two_dimensional_input() {
        let device = Device::flex();
        let layer = LinearConfig::new(6, 3).init(&device);
        let x = Tensor::<2>::random([5, 6], Distribution::Normal(0.0, 1.0), &device);
        close(linear(&layer, x.clone()), layer.forward(x), 1e-5, "output");
    }

    fn random(shape: [usize; 3], layout: Layout, device: &Device) -> Tensor<3> {
        let [a, b, c] = shape;
        let normal =
            |dims: [usize; 3]| Tensor::<3>::random(dims, Distribution::Normal(0.0, 1.0), device);
        match layout {
            Layout::Contiguous => normal(shape),
            Layout::Transposed => normal([a, c, b]).swap_dims(1, 2),
            Layout::Sliced => normal([a, b, 2 * c]).slice_dim(2, 0..c),
        }
    }
}
