//! The convolutional bottleneck adapter shared by FE-Adapter and ST-Adapter: down-projection,
//! one or more depthwise 3D convolutions over `(T, h, w)` (optionally mixed per clip by a
//! "dynamic" gate), an activation, up-projection, added to the patch tokens.
//!
//! ST-Adapter is the case of one branch, kernel `(3, 1, 1)`, no gate, no activation; FE-Adapter
//! adds dilated branches and the gate (see `fe_adapter.rs`, `st_adapter.rs` for the papers and
//! our readings).
//!
//! ```text
//! x: [B*T, 1+N, C]
//! z = x[:, 1:] @ W_down + b_down                  [B*T, N, r]    class token untouched
//! z -> [B, r, T, h, w]                            h = w = sqrt(N)
//! a = softmax(gate(mean_{T,h,w} z))               [B, K]         (K > 1 and gate on; else a = 1/K... see below)
//! z = sum_k a[:, k] * DWConv3d_k(z)               [B, r, T, h, w]
//! z = act(z) -> [B*T, N, r] @ W_up + b_up         [B*T, N, C]
//! x[:, 1:] += z
//! ```
//! Without a gate the branches are summed (weights 1), as a plain multi-branch convolution.
//!
//! Init (the model equals the image model at step 0): conv weights and biases zero, both
//! projection biases zero; `W_down`, `W_up` and the gate weights as PyTorch's `nn.Linear`
//! default (uniform in `±1/sqrt(fan_in)`), which ST-Adapter's code keeps; the gate bias zero.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{Initializer, Linear, PaddingConfig3d};
use burn::tensor::{Device, Tensor, TensorData, activation};
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// The adapter's nonlinearity after the convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AdapterAct {
    /// None (ST-Adapter; FE-Adapter's default here).
    #[default]
    Identity,
    /// Exact GELU.
    Gelu,
}

/// Sizes of one adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvAdapterConfig {
    /// Token width `C` of the backbone.
    pub dim: usize,
    /// Bottleneck width `r`.
    pub bottleneck: usize,
    /// Depthwise kernel `(kt, kh, kw)`, each odd.
    pub kernel: [usize; 3],
    /// Temporal dilation of each branch (`K` = number of branches).
    pub dilations: Vec<usize>,
    /// Per-clip softmax gate over the branches ("dynamic").
    pub gate: bool,
    /// Activation after the convolution.
    pub act: AdapterAct,
}

/// PyTorch's default `nn.Linear` weight init, uniform in `±1/sqrt(fan_in)`, drawn from `rng`
/// (not burn's global generator, so that a seed fixes the model whatever else runs), with a
/// zero bias. Stored `[in, out]`.
pub(crate) fn torch_linear(d_in: usize, d_out: usize, rng: &mut StdRng, device: &Device) -> Linear {
    let bound = 1.0 / (d_in as f32).sqrt();
    let w: Vec<f32> = (0..d_in * d_out)
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    Linear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [d_in, d_out]), device)),
        bias: Some(Param::from_tensor(Tensor::zeros([d_out], device))),
    }
}

impl ConvAdapterConfig {
    /// Builds the adapter with its zero-output init.
    ///
    /// # Panics
    /// On an even kernel side or an empty dilation list: configs are validated before this
    /// (see `MethodConfig::validate`), so reaching it is our bug.
    pub fn init(&self, rng: &mut StdRng, device: &Device) -> ConvAdapter {
        assert!(
            self.kernel.iter().all(|k| k % 2 == 1),
            "adapter kernel {:?} must be odd on every axis",
            self.kernel
        );
        assert!(
            !self.dilations.is_empty(),
            "adapter needs at least one branch"
        );
        let r = self.bottleneck;
        let branches = self
            .dilations
            .iter()
            .map(|&d| {
                let [kt, kh, kw] = self.kernel;
                Conv3dConfig::new([r, r], self.kernel)
                    .with_groups(r)
                    .with_dilation([d, 1, 1])
                    .with_padding(PaddingConfig3d::Explicit(
                        d * (kt - 1) / 2,
                        (kh - 1) / 2,
                        (kw - 1) / 2,
                    ))
                    .with_initializer(Initializer::Zeros)
                    .init(device)
            })
            .collect();
        let gate = (self.gate && self.dilations.len() > 1)
            .then(|| torch_linear(r, self.dilations.len(), rng, device));
        ConvAdapter {
            down: torch_linear(self.dim, r, rng, device),
            branches,
            gate,
            up: torch_linear(r, self.dim, rng, device),
            act: self.act,
        }
    }
}

/// A convolutional bottleneck adapter on the patch tokens (see the module docs).
#[derive(Module, Debug)]
pub struct ConvAdapter {
    /// `C -> r`.
    down: Linear,
    /// One depthwise `Conv3d(r, r, kernel, groups = r)` per temporal dilation.
    branches: Vec<Conv3d>,
    /// `r -> K` branch logits from the clip's mean bottleneck feature.
    gate: Option<Linear>,
    /// `r -> C`.
    up: Linear,
    #[module(skip)]
    act: AdapterAct,
}

impl ConvAdapter {
    /// Adds the adapter's output to the patch tokens of `x`.
    ///
    /// # Shapes
    /// - x: `[B*T, 1+N, C]` with `N` a square grid -> `[B*T, 1+N, C]`
    pub fn forward(&self, x: Tensor<3>, frames: usize) -> Tensor<3> {
        let [bt, l, c] = x.dims();
        let n = l - 1;
        let g = (n as f64).sqrt().round() as usize;
        assert_eq!(
            g * g,
            n,
            "adapters need a square patch grid, got {n} patches"
        );
        let (b, t) = (bt / frames, frames);
        let cls = x.clone().slice_dim(1, 0..1); // [B*T, 1, C]
        let patches = x.slice_dim(1, 1..l); // [B*T, N, C]
        let z = self.down.forward(patches.clone()); // [B*T, N, r]
        let r = z.dims()[2];
        let z = z.reshape([b, t, g, g, r]).permute([0, 4, 1, 2, 3]); // [B, r, T, h, w]
        let mixed = match &self.gate {
            Some(gate) => {
                let pooled = z
                    .clone()
                    .mean_dim(2)
                    .mean_dim(3)
                    .mean_dim(4)
                    .reshape([b, r]); // [B, r]
                let weights = activation::softmax(gate.forward(pooled), 1); // [B, K]
                let k = self.branches.len();
                self.branches
                    .iter()
                    .enumerate()
                    .map(|(i, conv)| {
                        let w = weights
                            .clone()
                            .slice_dim(1, i..i + 1)
                            .reshape([b, 1, 1, 1, 1]);
                        conv.forward(z.clone()) * w
                    })
                    .reduce(|a, b| a + b)
                    .unwrap_or_else(|| panic!("adapter with {k} branches"))
            }
            None => self
                .branches
                .iter()
                .map(|conv| conv.forward(z.clone()))
                .reduce(|a, b| a + b)
                .expect("at least one branch"),
        }; // [B, r, T, h, w]
        let mixed = match self.act {
            AdapterAct::Identity => mixed,
            AdapterAct::Gelu => activation::gelu(mixed),
        };
        let z = mixed.permute([0, 2, 3, 4, 1]).reshape([bt, n, r]); // [B*T, N, r]
        let delta = self.up.forward(z); // [B*T, N, C]
        debug_assert_eq!(delta.dims()[2], c);
        Tensor::cat(vec![cls, patches + delta], 1)
    }
}
