//! Parts shared by the side-branch methods (M-adapter, EVL): the depthwise temporal
//! convolution, the learned temporal position embedding, multi-head attention over given
//! queries and keys, seeded dropout, and the initialisers their reference code uses.
//!
//! Layout: a side branch works on clips as `[B, T, L, d]` (batch, frames, tokens, width), the
//! frozen backbone's `[B*T, L, C]` levels reshaped; the temporal operators here act along `T`
//! for every token and channel independently.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData, activation};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Bernoulli, Distribution, Normal};

/// A trainable parameter from values in row-major order.
pub(crate) fn param<const D: usize>(
    data: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(data, shape), device))
}

/// `n` values uniform in `±bound`, drawn from `rng`.
pub(crate) fn uniform(n: usize, bound: f32, rng: &mut StdRng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

/// A linear layer `[d_in, d_out]` with Xavier-uniform weights (bound `sqrt(6 / (in + out))`)
/// and a bias drawn from `N(0, bias_std)` (`0` gives a zero bias): EVL's init of its attention
/// projections (bias 0) and decoder MLPs (bias std 1e-6).
pub(crate) fn xavier_linear(
    d_in: usize,
    d_out: usize,
    bias_std: f32,
    rng: &mut StdRng,
    device: &Device,
) -> Linear {
    let bound = (6.0 / (d_in + d_out) as f32).sqrt();
    let w = uniform(d_in * d_out, bound, rng);
    let b: Vec<f32> = if bias_std > 0.0 {
        let normal = Normal::new(0.0f32, bias_std).expect("valid std");
        (0..d_out).map(|_| normal.sample(rng)).collect()
    } else {
        vec![0.0; d_out]
    };
    Linear {
        weight: param(w, [d_in, d_out], device),
        bias: Some(param(b, [d_out], device)),
    }
}

/// A linear layer with weight and bias zero: an output projection that starts the branch as
/// an identity residual.
pub(crate) fn zero_linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    Linear {
        weight: Param::from_tensor(Tensor::zeros([d_in, d_out], device)),
        bias: Some(Param::from_tensor(Tensor::zeros([d_out], device))),
    }
}

/// Heads used when a config leaves them open: one per 64 channels (12 for width 768, 16 for
/// 1024, as EVL's presets), or a single head when the width is not a multiple of 64.
pub fn default_heads(width: usize) -> usize {
    if width >= 64 && width.is_multiple_of(64) {
        width / 64
    } else {
        1
    }
}

/// A seed for sub-part `salt` of a forward pass seeded with `seed`, so parts draw independent
/// dropout masks that a resumed run draws again.
pub(crate) fn sub_seed(seed: u64, salt: u64) -> u64 {
    // SplitMix64 finaliser over the pair: nearby salts give unrelated streams.
    let mut z = seed ^ salt.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Inverted dropout with a mask drawn from `seed` (kept values scaled by `1 / (1 - p)`);
/// `p = 0` returns `x` unchanged.
pub(crate) fn dropout<const D: usize>(x: Tensor<D>, p: f64, seed: u64) -> Tensor<D> {
    if p <= 0.0 {
        return x;
    }
    let keep = 1.0 - p;
    let dist = Bernoulli::new(keep).expect("dropout validated in [0, 1)");
    let mut rng = StdRng::seed_from_u64(seed);
    let shape = x.shape();
    let scale = 1.0 / keep as f32;
    let mask: Vec<f32> = (0..shape.num_elements())
        .map(|_| if dist.sample(&mut rng) { scale } else { 0.0 })
        .collect();
    let device = x.device();
    x * Tensor::<D>::from_data(TensorData::new(mask, shape), &device)
}

/// CLIP's QuickGELU, `x * sigmoid(1.702 x)` (EVL's decoder MLP activation).
pub(crate) fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() * activation::sigmoid(x * 1.702)
}

/// Scaled dot-product attention with `heads` heads over already projected queries, keys
/// and values.
///
/// # Shapes
/// - q: `[N, Lq, D]`, k and v: `[N, Lk, D]` -> `[N, Lq, D]`
pub(crate) fn multi_head(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, heads: usize) -> Tensor<3> {
    let [n, lq, d] = q.dims();
    let lk = k.dims()[1];
    let split = |x: Tensor<3>, l: usize| x.reshape([n, l, heads, d / heads]).swap_dims(1, 2); // [N, h, L, D/h]
    let out = crate::kernels::attention(split(q, lq), split(k, lk), split(v, lk)); // [N, h, Lq, D/h]
    out.swap_dims(1, 2).reshape([n, lq, d])
}

/// Depthwise temporal convolution, kernel 3, stride 1, zero padding 1, over `T` for every token
/// and channel: PyTorch's `Conv1d(d, d, 3, padding=1, groups=d)` applied to `[B*L, d, T]`,
/// computed here on `[B, T, L, d]` directly as three shifted, per-channel-scaled copies (no
/// transposes).
///
/// `y[t] = w[:, 0] * x[t-1] + w[:, 1] * x[t] + w[:, 2] * x[t+1] + b`, with `x[-1] = x[T] = 0`.
#[derive(Module, Debug)]
pub struct TemporalConv {
    /// `[d, 3]`: PyTorch's `[d, 1, 3]` depthwise weight without its singleton axis.
    weight: Param<Tensor<2>>,
    /// `[d]`.
    bias: Param<Tensor<1>>,
}

impl TemporalConv {
    /// Weight and bias zero: `x + conv(x)` starts as `x`.
    pub(crate) fn zeros(width: usize, device: &Device) -> Self {
        TemporalConv {
            weight: Param::from_tensor(Tensor::zeros([width, 3], device)),
            bias: Param::from_tensor(Tensor::zeros([width], device)),
        }
    }

    /// PyTorch's default `Conv1d` init: weight and bias uniform in `±1/sqrt(fan_in)`,
    /// `fan_in = 3` for a depthwise kernel of 3.
    pub(crate) fn torch_default(width: usize, rng: &mut StdRng, device: &Device) -> Self {
        let bound = 1.0 / 3f32.sqrt();
        let weight = uniform(width * 3, bound, rng);
        let bias = uniform(width, bound, rng);
        TemporalConv {
            weight: param(weight, [width, 3], device),
            bias: param(bias, [width], device),
        }
    }

    /// From PyTorch-layout values (`weight [d, 1, 3]` flattened, `bias [d]`).
    #[cfg(test)]
    pub(crate) fn from_values(weight: Vec<f32>, bias: Vec<f32>, device: &Device) -> Self {
        let d = bias.len();
        TemporalConv {
            weight: param(weight, [d, 3], device),
            bias: param(bias, [d], device),
        }
    }

    /// The convolution's output (the caller adds the residual).
    ///
    /// # Shapes
    /// - x: `[B, T, L, d]` -> `[B, T, L, d]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, t, l, d] = x.dims();
        let w = self.weight.val(); // [d, 3]
        let tap = |j: usize| w.clone().slice_dim(1, j..j + 1).reshape([1, 1, 1, d]);
        let bias = self.bias.val().reshape([1, 1, 1, d]);
        let mut y = x.clone() * tap(1) + bias;
        if t > 1 {
            let zero = Tensor::<4>::zeros([b, 1, l, d], &x.device());
            let prev = Tensor::cat(vec![zero.clone(), x.clone().slice_dim(1, 0..t - 1)], 1); // x[t-1]
            let next = Tensor::cat(vec![x.slice_dim(1, 1..t), zero], 1); // x[t+1]
            y = y + prev * tap(0) + next * tap(2);
        }
        y
    }
}

/// A learned temporal position embedding, one row per frame, initialised to zeros (EVL's
/// `temporal_pos_embed`).
///
/// Built for `frames` frames; a clip of another length gets the table linearly resampled along
/// time (PyTorch's `interpolate(mode="linear", align_corners=False)`), so evaluating with other
/// clip lengths works instead of failing (EVL's code asserts the length).
#[derive(Module, Debug)]
pub struct TemporalPosEmbed {
    /// `[F, d]`.
    table: Param<Tensor<2>>,
}

impl TemporalPosEmbed {
    /// A zero table of `frames` rows.
    pub(crate) fn zeros(frames: usize, width: usize, device: &Device) -> Self {
        TemporalPosEmbed {
            table: Param::from_tensor(Tensor::zeros([frames, width], device)),
        }
    }

    /// The embedding of each of `t` frames.
    ///
    /// # Shapes
    /// -> `[t, d]`
    pub fn at(&self, t: usize) -> Tensor<2> {
        let table = self.table.val();
        let [f, _] = table.dims();
        if f == t {
            return table;
        }
        let m = resample_matrix(f, t);
        let device = table.device();
        Tensor::<2>::from_data(TensorData::new(m, [t, f]), &device).matmul(table) // [t, d]
    }
}

/// `[to, from]` weights of linear resampling (half-pixel centres, edges clamped).
fn resample_matrix(from: usize, to: usize) -> Vec<f32> {
    let mut m = vec![0f32; to * from];
    let scale = from as f64 / to as f64;
    for t in 0..to {
        let src = ((t as f64 + 0.5) * scale - 0.5).clamp(0.0, (from - 1) as f64);
        let i0 = src.floor() as usize;
        let i1 = (i0 + 1).min(from - 1);
        let w1 = (src - i0 as f64) as f32;
        m[t * from + i0] += 1.0 - w1;
        m[t * from + i1] += w1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::PaddingConfig1d;
    use burn::nn::conv::Conv1dConfig;

    fn randn(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        (0..n).map(|_| normal.sample(&mut rng)).collect()
    }

    fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn temporal_conv_equals_depthwise_conv1d_with_padding_one() {
        let device = Device::flex();
        let (b, l, d) = (2, 3, 5);
        for t in [1, 2, 5] {
            let x = randn(b * t * l * d, 1);
            let (w, bias) = (randn(d * 3, 2), randn(d, 3));
            let ours = TemporalConv::from_values(w.clone(), bias.clone(), &device);
            let xt = Tensor::<4>::from_data(TensorData::new(x, [b, t, l, d]), &device);
            let got = to_vec(ours.forward(xt.clone()));
            // burn's grouped Conv1d on PyTorch's layout [B*L, d, T].
            let mut conv = Conv1dConfig::new(d, d, 3)
                .with_groups(d)
                .with_padding(PaddingConfig1d::Explicit(1, 1))
                .init(&device);
            conv.weight = param(w, [d, 1, 3], &device);
            conv.bias = Some(param(bias, [d], &device));
            let seq = xt.permute([0, 2, 3, 1]).reshape([b * l, d, t]); // [B*L, d, T]
            let want = conv
                .forward(seq)
                .reshape([b, l, d, t])
                .permute([0, 3, 1, 2]); // [B, T, L, d]
            let want = to_vec(want);
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(err < 1e-5, "T = {t}: max abs diff {err}");
        }
    }

    #[test]
    fn zero_temporal_conv_outputs_zero() {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(TensorData::new(randn(24, 4), [1, 4, 2, 3]), &device);
        let y = to_vec(TemporalConv::zeros(3, &device).forward(x));
        assert!(y.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn position_table_resamples_linearly_in_time() {
        // 2 rows -> 4 frames: source positions -0.25, 0.25, 0.75, 1.25 (clamped to [0, 1]).
        let m = resample_matrix(2, 4);
        let want = [1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0];
        for (a, b) in m.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{m:?}");
        }
        // Same length: the identity.
        assert_eq!(
            resample_matrix(3, 3),
            vec![1., 0., 0., 0., 1., 0., 0., 0., 1.]
        );
    }

    #[test]
    fn dropout_keeps_the_expected_share_and_rescales() {
        let device = Device::flex();
        let x = Tensor::<2>::ones([100, 100], &device);
        let y = to_vec(dropout(x.clone(), 0.25, 7));
        let kept = y.iter().filter(|v| **v != 0.0).count();
        assert!((7_000..8_000).contains(&kept), "{kept} of 10000 kept");
        assert!(
            y.iter()
                .all(|v| *v == 0.0 || (*v - 1.0 / 0.75).abs() < 1e-6)
        );
        assert_eq!(
            y,
            to_vec(dropout(x.clone(), 0.25, 7)),
            "same seed, same mask"
        );
        assert_eq!(to_vec(dropout(x, 0.0, 7)), vec![1.0; 10_000]);
    }

    #[test]
    fn default_heads_follow_evl_presets() {
        assert_eq!(default_heads(768), 12);
        assert_eq!(default_heads(1024), 16);
        assert_eq!(default_heads(384), 6);
        assert_eq!(default_heads(32), 1);
        assert_eq!(default_heads(200), 1);
    }
}
