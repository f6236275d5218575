//! The one Vision Transformer behind every backbone: CLIP's vision tower, DINOv2 and ViT
//! differ only by [`VitConfig`] fields.
//!
//! References (transformers, the definition of correct here):
//! `models/clip/modeling_clip.py` (`CLIPVisionTransformer`), `models/dinov2/modeling_dinov2.py`
//! (`Dinov2Model`), `models/vit/modeling_vit.py` (`ViTModel`).
//!
//! ```text
//! pixels [B, 3, H, W]
//!   -> patches [B, N, 3*p*p] @ W_patch (+ b)        N = (H/p) * (W/p)
//!   -> [cls; patches] + pos (resampled to the grid)  [B, 1+N, C]
//!   -> pre-norm (CLIP)                               = hidden_states[0]
//!   -> block_1 .. block_L                            = hidden_states[1..=L]   (the "levels")
//!      x = x + ls1 * Attn(LN1(x)); x = x + ls2 * MLP(LN2(x))
//!   -> final norm (ViT, DINOv2)                      = last_hidden_state
//!   -> pooler (CLIP: post-norm of cls; ViT: tanh(dense(cls)); DINOv2: cls)
//! ```
//!
//! Seams: [`VisionTransformer::embed`], [`VisionTransformer::blocks`] (each block's
//! `forward`), [`VisionTransformer::finish`]. In-backbone methods walk the blocks and
//! transform the tokens between them; side-branch methods read levels from
//! [`VisionTransformer::forward`]. Neither copies this forward pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor, TensorData, activation};

use super::config::{Activation, Pooler, VitConfig};
use super::interp;
use crate::error::{Error, Result};

/// Weights in vidapter's orientation (linear weights `[in, out]`), produced by a loader.
pub(crate) struct RawVit {
    pub patch_w: Vec<f32>, // [3*p*p, C], input order (channel, row, column)
    pub patch_b: Option<Vec<f32>>,
    pub cls: Vec<f32>, // [C]
    pub pos: Vec<f32>, // [1 + g0*g0, C]
    pub pre_norm: Option<(Vec<f32>, Vec<f32>)>,
    pub blocks: Vec<RawBlock>,
    pub final_norm: Option<(Vec<f32>, Vec<f32>)>,
    pub post_norm: Option<(Vec<f32>, Vec<f32>)>,
    pub pooler: Option<(Vec<f32>, Vec<f32>)>, // [C, C] in->out, [C]
}

/// One block's weights in vidapter's orientation.
pub(crate) struct RawBlock {
    pub norm1: (Vec<f32>, Vec<f32>),
    pub qkv_w: Vec<f32>, // [C, 3C]: q | k | v along the output axis
    pub qkv_b: Option<Vec<f32>>,
    pub proj_w: Vec<f32>, // [C, C]
    pub proj_b: Vec<f32>,
    pub ls1: Option<Vec<f32>>,
    pub norm2: (Vec<f32>, Vec<f32>),
    pub fc1_w: Vec<f32>, // [C, H] (SwiGLU: [C, 2H])
    pub fc1_b: Vec<f32>,
    pub fc2_w: Vec<f32>, // [H, C]
    pub fc2_b: Vec<f32>,
    pub ls2: Option<Vec<f32>>,
}

/// How [`VisionTransformer::random_with`] draws the weights; the class token and position
/// embeddings are N(0, 0.02) and norms one either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// Matrices N(0, 0.02), biases zero, as timm and transformers initialise a ViT.
    Normal,
    /// PyTorch's module defaults (`nn.Linear.reset_parameters`, `nn.Conv2d`): weights and
    /// biases uniform in ±1/sqrt(fan_in), 3-6x larger than `Normal` at the demo's widths.
    FanIn,
}

impl RawVit {
    /// Random weights for `cfg` drawn as `init` says (unit norms).
    pub(crate) fn random(cfg: &VitConfig, seed: u64, init: Init) -> Self {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal, Uniform};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, 0.02).expect("valid std");
        // What a tensor is, for drawing it: a weight or bias reading `fan_in` inputs, or an
        // embedding (class token, positions: N(0, 0.02) under either init).
        enum Part {
            Weight(usize),
            Bias(usize),
            Embedding,
        }
        use Part::{Bias, Embedding, Weight};
        // `Normal`: weights and embeddings N(0, 0.02), biases zero (nothing drawn, so its
        // weights stay what they were); `FanIn`: weights and biases U(±1/sqrt(fan_in)).
        let mut draw = |n: usize, part: Part| -> Vec<f32> {
            match (init, part) {
                (Init::FanIn, Weight(f) | Bias(f)) => {
                    let b = 1.0 / (f as f32).sqrt();
                    let u = Uniform::new_inclusive(-b, b).expect("valid bound");
                    (0..n).map(|_| u.sample(&mut rng)).collect()
                }
                (Init::Normal, Bias(_)) => vec![0.0; n],
                _ => (0..n).map(|_| normal.sample(&mut rng)).collect(),
            }
        };
        let (c, h, p) = (cfg.hidden_size, cfg.intermediate_size, cfg.patch_size);
        let fc1_out = if cfg.swiglu { 2 * h } else { h };
        let ones = |n: usize| vec![1f32; n];
        let g = cfg.grid();
        let blocks = (0..cfg.num_layers)
            .map(|_| {
                let qkv_w = draw(3 * c * c, Weight(c));
                let qkv_b = cfg.qkv_bias.then(|| draw(3 * c, Bias(c)));
                let proj_w = draw(c * c, Weight(c));
                let proj_b = draw(c, Bias(c));
                let fc1_w = draw(c * fc1_out, Weight(c));
                let fc1_b = draw(fc1_out, Bias(c));
                let fc2_w = draw(h * c, Weight(h));
                let fc2_b = draw(c, Bias(h));
                RawBlock {
                    norm1: (ones(c), vec![0.0; c]),
                    qkv_w,
                    qkv_b,
                    proj_w,
                    proj_b,
                    ls1: cfg.layer_scale.then(|| ones(c)),
                    norm2: (ones(c), vec![0.0; c]),
                    fc1_w,
                    fc1_b,
                    fc2_w,
                    fc2_b,
                    ls2: cfg.layer_scale.then(|| ones(c)),
                }
            })
            .collect();
        let patch_in = cfg.num_channels * p * p;
        let patch_w = draw(patch_in * c, Weight(patch_in));
        let patch_b = cfg.patch_bias.then(|| draw(c, Bias(patch_in)));
        let cls = draw(c, Embedding);
        let pos = draw((1 + g * g) * c, Embedding);
        let pooler = (cfg.pooler == Pooler::DenseTanh).then(|| {
            let w = draw(c * c, Weight(c));
            (w, draw(c, Bias(c)))
        });
        RawVit {
            patch_w,
            patch_b,
            cls,
            pos,
            pre_norm: cfg.pre_norm.then(|| (ones(c), vec![0.0; c])),
            blocks,
            final_norm: cfg.final_norm.then(|| (ones(c), vec![0.0; c])),
            post_norm: (cfg.pooler == Pooler::ClsPostNorm).then(|| (ones(c), vec![0.0; c])),
            pooler,
        }
    }
}

fn param<const D: usize>(data: Vec<f32>, shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(data, shape), device))
}

fn layer_norm((w, b): (Vec<f32>, Vec<f32>), eps: f64, device: &Device) -> LayerNorm {
    let d = w.len();
    let mut ln = LayerNormConfig::new(d).with_epsilon(eps).init(device);
    ln.gamma = param(w, [d], device);
    ln.beta = Some(param(b, [d], device));
    ln
}

fn linear(w: Vec<f32>, b: Option<Vec<f32>>, d_in: usize, d_out: usize, device: &Device) -> Linear {
    Linear {
        weight: param(w, [d_in, d_out], device),
        bias: b.map(|b| param(b, [d_out], device)),
    }
}

/// Multi-head self-attention with fused q/k/v.
#[derive(Module, Debug)]
pub struct Attention {
    qkv: Linear,
    proj: Linear,
    num_heads: usize,
}

impl Attention {
    /// # Shapes
    /// - x: `[B, L, C]` -> `[B, L, C]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, l, c] = x.dims();
        let h = self.num_heads;
        let qkv = crate::kernels::linear(&self.qkv, x); // [B, L, 3C]
        let out = crate::kernels::self_attention(qkv, h); // [B, h, L, d]
        let out = out.swap_dims(1, 2).reshape([b, l, c]); // [B, L, C]
        crate::kernels::linear(&self.proj, out)
    }

    /// The per-head queries and keys of `x`, unscaled (`x W_q + b_q`, `x W_k + b_k`), as the
    /// forward pass computes them; the values are not computed.
    ///
    /// # Shapes
    /// - x: `[B, L, C]` -> (`[B, L, h, C/h]`, `[B, L, h, C/h]`)
    pub fn query_key(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let [b, l, c] = x.dims();
        let h = self.num_heads;
        let w = self.qkv.weight.val().slice_dim(1, 0..2 * c); // [C, 2C]: q | k
        let mut qk = x.matmul(w.unsqueeze::<3>()); // [B, L, 2C]
        if let Some(bias) = &self.qkv.bias {
            qk = qk + bias.val().slice_dim(0, 0..2 * c).unsqueeze::<3>();
        }
        let qk = qk.reshape([b, l, 2, h, c / h]); // [B, L, 2, h, C/h]
        let q = qk.clone().slice_dim(2, 0..1).reshape([b, l, h, c / h]);
        let k = qk.slice_dim(2, 1..2).reshape([b, l, h, c / h]);
        (q, k)
    }
}

/// The feed-forward part of a block.
#[derive(Module, Debug)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    #[module(skip)]
    act: Activation,
    swiglu: bool,
}

fn activate<const D: usize>(x: Tensor<D>, act: Activation) -> Tensor<D> {
    match act {
        Activation::Gelu => crate::kernels::gelu(x),
        Activation::GeluTanh => activation::gelu_approximate(x),
        Activation::QuickGelu => x.clone() * activation::sigmoid(x * 1.702),
        Activation::Relu => activation::relu(x),
        Activation::Silu => activation::silu(x),
    }
}

impl Mlp {
    /// # Shapes
    /// - x: `[B, L, C]` -> `[B, L, C]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = crate::kernels::linear(&self.fc1, x); // [B, L, H] or [B, L, 2H]
        let h = if self.swiglu {
            let mut halves = h.chunk(2, 2);
            let x2 = halves.pop().expect("two halves");
            let x1 = halves.pop().expect("two halves");
            activation::silu(x1) * x2 // [B, L, H]
        } else {
            activate(h, self.act)
        };
        crate::kernels::linear(&self.fc2, h)
    }
}

/// One pre-norm transformer block (with optional LayerScale).
#[derive(Module, Debug)]
pub struct Block {
    norm1: LayerNorm,
    attn: Attention,
    ls1: Option<Param<Tensor<1>>>,
    norm2: LayerNorm,
    mlp: Mlp,
    ls2: Option<Param<Tensor<1>>>,
}

impl Block {
    /// # Shapes
    /// - x: `[B, L, C]` -> `[B, L, C]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.mlp_residual(self.attn_residual(x))
    }

    /// The first half of [`Block::forward`]: `x + ls1 * Attn(LN1(x))`. In-backbone adapters
    /// placed between the halves (before the MLP) call the halves separately.
    ///
    /// # Shapes
    /// - x: `[B, L, C]` -> `[B, L, C]`
    pub fn attn_residual(&self, x: Tensor<3>) -> Tensor<3> {
        x.clone() + scale(self.attn.forward(self.norm1.forward(x)), &self.ls1)
    }

    /// The attention's per-head queries and keys for the block input `x` (from `LN1(x)`),
    /// unscaled. For side branches that read attention maps (EVL's temporal
    /// cross-attention); it changes nothing in the forward pass.
    ///
    /// # Shapes
    /// - x: `[B, L, C]` -> (`[B, L, h, C/h]`, `[B, L, h, C/h]`)
    pub fn query_key(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        self.attn.query_key(self.norm1.forward(x))
    }

    /// The second half of [`Block::forward`]: `x + ls2 * MLP(LN2(x))`.
    ///
    /// # Shapes
    /// - x: `[B, L, C]` -> `[B, L, C]`
    pub fn mlp_residual(&self, x: Tensor<3>) -> Tensor<3> {
        x.clone() + scale(self.mlp.forward(self.norm2.forward(x)), &self.ls2)
    }
}

fn scale(x: Tensor<3>, ls: &Option<Param<Tensor<1>>>) -> Tensor<3> {
    match ls {
        Some(g) => x * g.val().unsqueeze::<3>(),
        None => x,
    }
}

/// Outputs of a forward pass, named as transformers names them.
#[derive(Debug, Clone)]
pub struct VitOutput {
    /// The requested levels as `(index, [B, 1+N, C])`, index 0 being the embeddings and
    /// `i` the output of block `i`, in the order asked.
    pub levels: Vec<(usize, Tensor<3>)>,
    /// `[B, 1+N, C]`.
    pub last_hidden_state: Tensor<3>,
    /// `[B, C]`.
    pub pooler_output: Tensor<2>,
}

/// Position-embedding resampling matrices per input grid `(gh, gw)`.
type PosCache = Arc<Mutex<HashMap<(usize, usize), Vec<f32>>>>;

/// A CLIP / DINOv2 / ViT image encoder.
#[derive(Module, Debug)]
pub struct VisionTransformer {
    patch_w: Param<Tensor<2>>,
    patch_b: Option<Param<Tensor<1>>>,
    cls: Param<Tensor<1>>,
    pos: Param<Tensor<2>>,
    pre_norm: Option<LayerNorm>,
    blocks: Vec<Block>,
    final_norm: Option<LayerNorm>,
    post_norm: Option<LayerNorm>,
    pooler: Option<Linear>,
    #[module(skip)]
    config: VitConfig,
    /// Resampling matrices per input grid, built once on the CPU.
    #[module(skip)]
    pos_cache: PosCache,
}

impl VisionTransformer {
    /// The same model with ViT's dense + tanh pooler (if any) frozen. vidapter's clip
    /// features read the class token through the final norm (CLIP: its post-norm), never
    /// through that pooler, so fine-tuning it would count weights that get no gradient.
    pub fn with_pooler_frozen(mut self) -> Self {
        self.pooler = self.pooler.map(|l| l.no_grad());
        self
    }

    pub(crate) fn from_raw(raw: RawVit, config: VitConfig, device: &Device) -> Self {
        let c = config.hidden_size;
        let p = config.patch_size;
        let inter = config.intermediate_size;
        let eps = config.layer_norm_eps;
        let fc1_out = if config.swiglu { 2 * inter } else { inter };
        let n_pos = raw.pos.len() / c;
        let blocks = raw
            .blocks
            .into_iter()
            .map(|b| Block {
                norm1: layer_norm(b.norm1, eps, device),
                attn: Attention {
                    qkv: linear(b.qkv_w, b.qkv_b, c, 3 * c, device),
                    proj: linear(b.proj_w, Some(b.proj_b), c, c, device),
                    num_heads: config.num_heads,
                },
                ls1: b.ls1.map(|g| param(g, [c], device)),
                norm2: layer_norm(b.norm2, eps, device),
                mlp: Mlp {
                    fc1: linear(b.fc1_w, Some(b.fc1_b), c, fc1_out, device),
                    fc2: linear(b.fc2_w, Some(b.fc2_b), inter, c, device),
                    act: config.act,
                    swiglu: config.swiglu,
                },
                ls2: b.ls2.map(|g| param(g, [c], device)),
            })
            .collect();
        let model = VisionTransformer {
            patch_w: param(raw.patch_w, [config.num_channels * p * p, c], device),
            patch_b: raw.patch_b.map(|b| param(b, [c], device)),
            cls: param(raw.cls, [c], device),
            pos: param(raw.pos, [n_pos, c], device),
            pre_norm: raw.pre_norm.map(|n| layer_norm(n, eps, device)),
            blocks,
            final_norm: raw.final_norm.map(|n| layer_norm(n, eps, device)),
            post_norm: raw.post_norm.map(|n| layer_norm(n, eps, device)),
            pooler: raw.pooler.map(|(w, b)| linear(w, Some(b), c, c, device)),
            config,
            pos_cache: Arc::default(),
        };
        // A backbone is frozen unless a method (full fine-tuning) says otherwise.
        model.no_grad()
    }

    /// The weights back in loader orientation (the inverse of `from_raw`), for writers.
    pub(crate) fn to_raw(&self) -> RawVit {
        fn v<const D: usize>(p: &Param<Tensor<D>>) -> Vec<f32> {
            p.val()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 after convert")
        }
        let ln = |n: &LayerNorm| {
            (
                v(&n.gamma),
                n.beta
                    .as_ref()
                    .map(v)
                    .unwrap_or_else(|| vec![0.0; n.gamma.dims()[0]]),
            )
        };
        let lin_b = |l: &Linear| l.bias.as_ref().map(v);
        RawVit {
            patch_w: v(&self.patch_w),
            patch_b: self.patch_b.as_ref().map(v),
            cls: v(&self.cls),
            pos: v(&self.pos),
            pre_norm: self.pre_norm.as_ref().map(ln),
            blocks: self
                .blocks
                .iter()
                .map(|b| RawBlock {
                    norm1: ln(&b.norm1),
                    qkv_w: v(&b.attn.qkv.weight),
                    qkv_b: lin_b(&b.attn.qkv),
                    proj_w: v(&b.attn.proj.weight),
                    proj_b: lin_b(&b.attn.proj).expect("projection has a bias"),
                    ls1: b.ls1.as_ref().map(v),
                    norm2: ln(&b.norm2),
                    fc1_w: v(&b.mlp.fc1.weight),
                    fc1_b: lin_b(&b.mlp.fc1).expect("fc1 has a bias"),
                    fc2_w: v(&b.mlp.fc2.weight),
                    fc2_b: lin_b(&b.mlp.fc2).expect("fc2 has a bias"),
                    ls2: b.ls2.as_ref().map(v),
                })
                .collect(),
            final_norm: self.final_norm.as_ref().map(ln),
            post_norm: self.post_norm.as_ref().map(ln),
            pooler: self
                .pooler
                .as_ref()
                .map(|l| (v(&l.weight), lin_b(l).expect("pooler has a bias"))),
        }
    }

    /// A model of `config` with random weights (seeded, [`Init::Normal`]), for benchmarks
    /// and tests.
    pub fn random(config: VitConfig, seed: u64, device: &Device) -> Self {
        Self::random_with(config, seed, Init::Normal, device)
    }

    /// A model of `config` with random weights drawn as `init` says, for training from
    /// scratch.
    pub fn random_with(config: VitConfig, seed: u64, init: Init, device: &Device) -> Self {
        Self::from_raw(RawVit::random(&config, seed, init), config, device)
    }

    /// The configuration this model was built from.
    pub fn config(&self) -> &VitConfig {
        &self.config
    }

    /// The transformer blocks, in order (block `i` produces level `i + 1`).
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Checks a pixel batch's form before any work is done.
    pub fn check_pixels(&self, dims: &[usize]) -> Result<()> {
        let cfg = self.config();
        if dims.len() != 4 {
            return Err(Error::Input(format!(
                "pixel tensor has rank {} (shape {dims:?}); expected [N, {}, H, W]",
                dims.len(),
                cfg.num_channels
            )));
        }
        if dims[1] != cfg.num_channels {
            return Err(Error::Input(format!(
                "pixel tensor has {} channels (shape {dims:?}); the backbone expects {} (RGB) in dimension 1",
                dims[1], cfg.num_channels
            )));
        }
        if dims[2] < cfg.patch_size || dims[3] < cfg.patch_size {
            return Err(Error::Input(format!(
                "pixel tensor of {}x{} is smaller than one {}x{} patch",
                dims[2], dims[3], cfg.patch_size, cfg.patch_size
            )));
        }
        if dims[0] == 0 {
            return Err(Error::Input("pixel tensor holds no images (N = 0)".into()));
        }
        Ok(())
    }

    /// Position embeddings for a `gh x gw` grid: `[1 + gh*gw, C]`.
    fn pos_embed(&self, gh: usize, gw: usize) -> Tensor<2> {
        let pos = self.pos.val();
        let [n_pos, c] = pos.dims();
        let g0 = ((n_pos - 1) as f64).sqrt().round() as usize;
        // transformers returns the stored table unchanged when the grid is the trained one.
        if (gh, gw) == (g0, g0) {
            return pos;
        }
        let m = {
            let mut cache = self.pos_cache.lock().expect("pos cache poisoned");
            cache
                .entry((gh, gw))
                .or_insert_with(|| interp::grid_matrix((g0, g0), (gh, gw)))
                .clone()
        };
        let device = pos.device();
        let m = Tensor::<2>::from_data(TensorData::new(m, [gh * gw, g0 * g0]), &device);
        let cls = pos.clone().slice_dim(0, 0..1); // [1, C]
        let patches = m.matmul(pos.slice_dim(0, 1..n_pos)); // [gh*gw, C]
        debug_assert_eq!(patches.dims()[1], c);
        Tensor::cat(vec![cls, patches], 0)
    }

    /// Patch + class + position embedding (+ CLIP's pre-norm): `hidden_states[0]`.
    ///
    /// Pixels beyond a whole number of patches are ignored, as a strided convolution does.
    ///
    /// # Shapes
    /// - pixels: `[B, 3, H, W]` -> `[B, 1+N, C]`, `N = (H/p)*(W/p)`
    pub fn embed(&self, pixels: Tensor<4>) -> Tensor<3> {
        let cfg = self.config();
        let p = cfg.patch_size;
        let [b, ch, h, w] = pixels.dims();
        let (gh, gw) = (h / p, w / p);
        let pixels = if h != gh * p || w != gw * p {
            pixels.slice([0..b, 0..ch, 0..gh * p, 0..gw * p])
        } else {
            pixels
        };
        let patches = pixels
            .reshape([b, ch, gh, p, gw, p])
            .permute([0, 2, 4, 1, 3, 5]) // [B, gh, gw, 3, p, p]
            .reshape([b * gh * gw, ch * p * p]);
        let mut x = patches.matmul(self.patch_w.val()); // [B*N, C]
        if let Some(bias) = &self.patch_b {
            x = x + bias.val().unsqueeze::<2>();
        }
        let c = cfg.hidden_size;
        let x = x.reshape([b, gh * gw, c]); // [B, N, C]
        let cls = self.cls.val().reshape([1, 1, c]).expand([b, 1, c]); // [B, 1, C]
        let x = Tensor::cat(vec![cls, x], 1); // [B, 1+N, C]
        let x = x + self.pos_embed(gh, gw).unsqueeze::<3>();
        match &self.pre_norm {
            Some(norm) => norm.forward(x),
            None => x,
        }
    }

    /// From the last block's output to `(last_hidden_state, pooler_output)`.
    ///
    /// # Shapes
    /// - x: `[B, 1+N, C]` -> (`[B, 1+N, C]`, `[B, C]`)
    pub fn finish(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<2>) {
        let last = match &self.final_norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        let [b, _, c] = last.dims();
        let cls = last.clone().slice_dim(1, 0..1).reshape([b, c]); // [B, C]
        let pooled = match (self.config().pooler, &self.post_norm, &self.pooler) {
            (Pooler::ClsPostNorm, Some(norm), _) => norm.forward(cls),
            (Pooler::DenseTanh, _, Some(dense)) => dense.forward(cls).tanh(),
            _ => cls,
        };
        (last, pooled)
    }

    /// The full forward pass, handing out the hidden states listed in `levels` (0 =
    /// embeddings, `i` = output of block `i`). Asking for levels changes no number.
    ///
    /// # Shapes
    /// - pixels: `[B, 3, H, W]`
    pub fn forward(&self, pixels: Tensor<4>, levels: &[usize]) -> VitOutput {
        let mut x = self.embed(pixels);
        let mut kept: Vec<Option<Tensor<3>>> = vec![None; levels.len()];
        let mut keep = |i: usize, x: &Tensor<3>| {
            for (slot, &l) in kept.iter_mut().zip(levels) {
                if l == i {
                    *slot = Some(x.clone());
                }
            }
        };
        keep(0, &x);
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            keep(i + 1, &x);
        }
        let (last_hidden_state, pooler_output) = self.finish(x);
        let levels = levels
            .iter()
            .zip(kept)
            .map(|(&l, t)| {
                let t = t.unwrap_or_else(|| {
                    panic!(
                        "level {l} requested but the model has {} blocks",
                        self.blocks.len()
                    )
                });
                (l, t)
            })
            .collect();
        VitOutput {
            levels,
            last_hidden_state,
            pooler_output,
        }
    }

    /// Total parameter count (all tensors, trainable or not).
    pub fn param_count(&self) -> usize {
        self.num_params()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_key_are_the_queries_and_keys_attention_uses() {
        // Rebuild one block's attention from `query_key` plus the value slice of the fused
        // projection; it must equal the block's own attention.
        let device = Device::flex();
        let mut cfg = VitConfig::vit_base_patch16_224();
        (
            cfg.hidden_size,
            cfg.num_heads,
            cfg.intermediate_size,
            cfg.num_layers,
        ) = (16, 4, 32, 1);
        (cfg.image_size, cfg.patch_size) = (8, 4);
        let model = VisionTransformer::random(cfg, 1, &device);
        let block = &model.blocks()[0];
        let x = model.embed(Tensor::random(
            [2, 3, 8, 8],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        )); // [2, 5, 16]
        let xn = block.norm1.forward(x.clone());
        let want = block.attn.forward(xn.clone());
        let (q, k) = block.query_key(x); // [2, 5, 4, 4]
        let w_v = block.attn.qkv.weight.val().slice_dim(1, 32..48);
        let b_v = block
            .attn
            .qkv
            .bias
            .as_ref()
            .unwrap()
            .val()
            .slice_dim(0, 32..48);
        let v = (xn.matmul(w_v.unsqueeze::<3>()) + b_v.unsqueeze::<3>()).reshape([2, 5, 4, 4]);
        let heads = |t: Tensor<4>| t.swap_dims(1, 2); // [2, 4, 5, 4]
        let scores = heads(q).matmul(heads(k).swap_dims(2, 3)) / 2.0; // sqrt(4)
        let mixed = activation::softmax(scores, 3).matmul(heads(v)); // [2, 4, 5, 4]
        let got = block
            .attn
            .proj
            .forward(mixed.swap_dims(1, 2).reshape([2, 5, 16]));
        let (got, want) = (
            got.into_data().try_to_vec::<f32>().unwrap(),
            want.into_data().try_to_vec::<f32>().unwrap(),
        );
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-5, "max abs diff {err}");
    }

    #[test]
    fn fan_in_init_draws_pytorch_module_defaults_and_normal_stays_n_0_002() {
        let mut cfg = VitConfig::vit_base_patch16_224();
        (cfg.hidden_size, cfg.intermediate_size, cfg.num_layers) = (64, 128, 2);
        (cfg.image_size, cfg.patch_size) = (16, 4);
        let max = |v: &[f32]| v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let rms = |v: &[f32]| (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
        let torch = RawVit::random(&cfg, 3, Init::FanIn);
        let b = &torch.blocks[0];
        let (patch, hidden, inner) = (1.0 / 48f32.sqrt(), 1.0 / 8.0, 1.0 / 128f32.sqrt());
        for (name, v, bound) in [
            ("patch_w", &torch.patch_w, patch),
            ("patch_b", torch.patch_b.as_ref().unwrap(), patch),
            ("qkv_w", &b.qkv_w, hidden),
            ("qkv_b", b.qkv_b.as_ref().unwrap(), hidden),
            ("proj_w", &b.proj_w, hidden),
            ("proj_b", &b.proj_b, hidden),
            ("fc1_w", &b.fc1_w, hidden),
            ("fc1_b", &b.fc1_b, hidden),
            ("fc2_w", &b.fc2_w, inner),
            ("fc2_b", &b.fc2_b, inner),
        ] {
            // Uniform on [-bound, bound]: rms bound/sqrt(3), extremes near the bound.
            assert!(
                max(v) <= bound && max(v) > 0.8 * bound,
                "{name}: max {}",
                max(v)
            );
            let want = bound / 3f32.sqrt();
            assert!(
                (rms(v) / want - 1.0).abs() < 0.2,
                "{name}: rms {} want {want}",
                rms(v)
            );
        }
        assert!((rms(&torch.pos) - 0.02).abs() < 0.002);
        // Normal: every matrix N(0, 0.02), biases zero.
        let normal = RawVit::random(&cfg, 3, Init::Normal);
        let b = &normal.blocks[0];
        for v in [&normal.patch_w, &b.qkv_w, &b.proj_w, &b.fc1_w, &b.fc2_w] {
            assert!((rms(v) - 0.02).abs() < 0.002, "rms {}", rms(v));
        }
        assert!(b.fc1_b.iter().chain(&b.proj_b).all(|&x| x == 0.0));
    }
}
