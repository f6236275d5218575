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
//! z -> [B, T, h, w, r]                            h = w = sqrt(N), channels last
//! a = softmax(gate(mean_{T,h,w} z))               [B, K]         (K > 1 and gate on; else a = 1/K... see below)
//! z = sum_k a[:, k] * DWConv3d_k(z)               [B, T, h, w, r]
//! z = act(z) -> [B*T, N, r] @ W_up + b_up         [B*T, N, C]
//! x[:, 1:] += z
//! ```
//! Without a gate the branches are summed (weights 1), as a plain multi-branch convolution.
//!
//! With `adapt_cls` (off by default: both papers leave the class token alone) the class token
//! goes through the same adapter as a `1 x 1` grid: `down`, the branches (only their spatial
//! centre taps meet it; the gate weights are the patch path's), the activation and `up`, added
//! to the class token. The temporal path then reaches a class-token readout directly instead of
//! only through attention to the patches; on the offline demo that is the difference between
//! the adapters learning the temporal task and staying at the frame-average ceiling (README,
//! "Where it stands").
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

use super::{MAX_WIDTH, at_most};
use crate::kernels::{DepthwiseGeom, depthwise_conv3d, linear};

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
    /// Also adapt the class token (see the module docs).
    pub adapt_cls: bool,
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
    /// Checks the sizes a config may ask for: what [`ConvAdapterConfig::init`] requires; the
    /// error names the field.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        if self.bottleneck == 0 {
            return Err(("bottleneck".into(), "must be at least 1".into()));
        }
        if self.kernel.iter().any(|k| k % 2 == 0) {
            return Err((
                "kernel".into(),
                format!(
                    "{:?}: every side must be odd (padding keeps T, h, w)",
                    self.kernel
                ),
            ));
        }
        if self.dilations.is_empty() || self.dilations.contains(&0) {
            return Err((
                "dilations".into(),
                format!(
                    "{:?}: give one or more dilations, each at least 1",
                    self.dilations
                ),
            ));
        }
        Ok(())
    }

    /// Upper bounds: bottleneck at most [`MAX_WIDTH`], kernel sides at most 15, at most 8
    /// dilations of at most 64.
    pub(crate) fn check_sizes(&self) -> Result<(), (String, String)> {
        at_most("bottleneck", self.bottleneck, MAX_WIDTH)?;
        for k in self.kernel {
            at_most("kernel", k, 15)?;
        }
        at_most("dilations", self.dilations.len(), 8)?;
        for &d in &self.dilations {
            at_most("dilations", d, 64)?;
        }
        Ok(())
    }

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
            adapt_cls: self.adapt_cls,
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
    #[module(skip)]
    adapt_cls: bool,
}

impl ConvAdapter {
    /// Adds the adapter's output to the patch tokens of `x` (and to its class token with
    /// `adapt_cls`).
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
        let b = bt / frames;
        let cls = x.clone().slice_dim(1, 0..1); // [B*T, 1, C]
        let patches = x.slice_dim(1, 1..l); // [B*T, N, C]
        let z = self.down_to_grid(patches.clone(), b, frames, g); // [B, T, h, w, r]
        let weights = self.gate.as_ref().map(|gate| {
            let r = z.dims()[4];
            let pooled = z
                .clone()
                .mean_dim(1)
                .mean_dim(2)
                .mean_dim(3)
                .reshape([b, r]); // [B, r]
            activation::softmax(gate.forward(pooled), 1) // [B, K]
        });
        let delta = self.up_from_grid(self.mix(z, weights.as_ref()), bt, n); // [B*T, N, C]
        debug_assert_eq!(delta.dims()[2], c);
        let cls = if self.adapt_cls {
            let z = self.down_to_grid(cls.clone(), b, frames, 1); // [B, T, 1, 1, r]
            cls.clone() + self.up_from_grid(self.mix(z, weights.as_ref()), bt, 1)
        } else {
            cls
        };
        Tensor::cat(vec![cls, patches + delta], 1)
    }

    /// `[B*T, g*g, C]` tokens -> down-projected `[B, T, g, g, r]` (channels last: the
    /// projection's own layout, so no copy).
    fn down_to_grid(&self, tokens: Tensor<3>, b: usize, t: usize, g: usize) -> Tensor<5> {
        let z = linear(&self.down, tokens); // [B*T, g*g, r]
        let r = z.dims()[2];
        z.reshape([b, t, g, g, r])
    }

    /// The branches on `z: [B, T, h, w, r]`, weighted per clip by `weights: [B, K]` (the gate)
    /// or summed, then the activation.
    fn mix(&self, z: Tensor<5>, weights: Option<&Tensor<2>>) -> Tensor<5> {
        let b = z.dims()[0];
        let mixed = self
            .branches
            .iter()
            .enumerate()
            .map(|(i, conv)| {
                let y = depthwise(conv, z.clone());
                match weights {
                    Some(w) => y * w.clone().slice_dim(1, i..i + 1).reshape([b, 1, 1, 1, 1]),
                    None => y,
                }
            })
            .reduce(|a, b| a + b)
            .expect("at least one branch");
        match self.act {
            AdapterAct::Identity => mixed,
            AdapterAct::Gelu => crate::kernels::gelu(mixed),
        }
    }

    /// `[B, T, h, w, r]` -> up-projected `[B*T, h*w, C]`.
    fn up_from_grid(&self, z: Tensor<5>, bt: usize, n: usize) -> Tensor<3> {
        let r = z.dims()[4];
        linear(&self.up, z.reshape([bt, n, r]))
    }
}

/// One depthwise branch on channels-last `z: [B, T, h, w, r]` (vidapter's depthwise kernel on
/// the CPU, burn's grouped `conv3d` elsewhere; see `crate::kernels::depthwise`).
fn depthwise(conv: &Conv3d, z: Tensor<5>) -> Tensor<5> {
    let padding = match conv.padding {
        PaddingConfig3d::Explicit(t, h, w) => [t, h, w],
        ref other => {
            unreachable!("adapter convolutions are built with explicit padding, not {other:?}")
        }
    };
    let bias = match &conv.bias {
        Some(bias) => bias.val(),
        None => Tensor::zeros([conv.weight.dims()[0]], &z.device()),
    };
    let geom = DepthwiseGeom {
        kernel: conv.kernel_size,
        dilation: conv.dilation,
        padding,
    };
    depthwise_conv3d(z, conv.weight.val(), bias, geom)
}
