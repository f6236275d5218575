//! M-adapter — Li, Xu, Wu, Li, Yang, Shen, Kittler, *M-adapter: Multi-level image-to-video
//! adaptation for video action recognition*, Computer Vision and Image Understanding 249:104150
//! (2024), doi:10.1016/j.cviu.2024.104150. No public code was available to us.
//!
//! Paper facts (abstract): a parallel branch adapts the multi-level outputs of the frozen image
//! model; it is built from hierarchically combined multi-level output adapters, each a fusion
//! module and a temporal module; no gradient passes through the backbone, so training memory
//! is much lower; it gains most with larger models and on temporally demanding data. The body
//! was not available; this is our reading (`shared/design/methods.md`), with every ablation
//! axis a config field:
//!
//! ```text
//! feats[l]: [B*T, L, C]  output of block l, for l in S (shallow -> deep), no autodiff, cacheable
//! x_l = reduce(feats[l])                    [B*T, L', C]   grid_pool > 1: average-pool the patch
//!                                                          grid by grid_pool (class token kept)
//! z_l = Proj_l(LN_l(x_l)) -> [B, T, L', d]  C -> d
//! h = z_first                               the first level starts the branch
//! h = Fusion_l(h, z_l)                      later levels: gated  g*h + (1-g)*z, g = sigmoid(a_l)
//!                                                         sum    h + z
//!                                                         concat_proj  W_l [h; z] + b_l (2d -> d)
//! h = h + act(Temporal_l(h))                every level:  conv  depthwise Conv1d k=3 over T
//!                                           attention  MHSA over T per token of LN(h + pos_T)
//!                                           act: identity (default) or GELU (`temporal_act`)
//! feature = LN(pool(h))                     [B, d]  pool: mean over T and tokens, or cls:
//!                                                   the class token averaged over T
//! logits = fc(dropout(feature))             (VideoClassifier's head, d -> K)
//! ```
//!
//! Init: `a_l = 0` (the gate starts at g = 0.5); the temporal conv's weight and bias zero, and
//! the attention's output projection zero, so `h + Temporal(h) = h` at step 0; `Proj_l`, the
//! concat projection and the attention's qkv as PyTorch's `nn.Linear` default (uniform in
//! `±1/sqrt(fan_in)`); the temporal position embedding zero; LayerNorms (1, 0); the head as
//! every method's (N(0, 0.02), bias 0).
//!
//! Choices where the paper is silent (ours): the first level initialises `h` (the reading
//! `h = 0; h = Fusion(h, z)` would give the first level a fusion whose inputs are one constant,
//! a scale or half a projection that does nothing the projection cannot); the temporal
//! attention is pre-norm with a zero-initialised learned temporal position embedding (without
//! one, attention over frames cannot tell their order); token reduction pools the patch grid
//! before `LN_l`, so the projection runs on fewer tokens; head dropout 0.5.
//!
//! What the default can see of frame order (`temporal_act = "identity"`): projection aside,
//! every step after `LN_l` is linear in time (gated or summed fusion, temporal convolution) and
//! the mean readout averages over time, so the mean of a convolved sequence is a weighted mean
//! of its frames in which only the frames within the stacked kernels' reach of either end get
//! their own weights. Order reaches the feature through the clip's ends; that sufficed on the
//! synthetic expression videos (first and last frame tell all four time courses apart: 96% UAR
//! against 25% for frame averaging). `temporal_act = "gelu"` makes every frame's local
//! change count (`act(0) = 0`, so the branch still starts as the fused projections); it learned
//! more slowly there (82%), so it is an option, not the default.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor, activation};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::adapter::{AdapterAct, torch_linear};
use super::side::{TemporalConv, TemporalPosEmbed, default_heads, multi_head, zero_linear};
use super::{BlockSet, MAX_WIDTH, Method, at_most};
use crate::kernels::linear;

/// How a level's projected tokens join the branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// `g*h + (1-g)*z` with a learned per-channel gate `g = sigmoid(a)`, `a` starting at 0.
    #[default]
    Gated,
    /// `h + z`.
    Sum,
    /// `W [h; z] + b`, a `2d -> d` projection of the concatenation.
    ConcatProj,
}

/// The temporal module after each fusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TemporalOp {
    /// Depthwise temporal convolution, kernel 3 over T, per token and channel (zero init).
    #[default]
    Conv,
    /// Multi-head self-attention over T per token (zero-initialised output projection).
    Attention,
}

/// How the branch's tokens become one clip feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenPool {
    /// Mean over frames and tokens.
    #[default]
    Mean,
    /// The class token, averaged over frames.
    Cls,
}

/// M-adapter settings (`kind = "m_adapter"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MAdapterConfig {
    /// Blocks whose outputs are read, 0-based (block `i`'s output is level `i + 1`); default
    /// all.
    pub blocks: BlockSet,
    /// Branch width `d` (default 384, half of ViT-B's 768).
    pub width: usize,
    /// Fusion of each later level into the branch (default gated).
    pub fusion: Fusion,
    /// Temporal module (default conv).
    pub temporal: TemporalOp,
    /// Nonlinearity on the temporal module's output before the residual sum (default
    /// identity; `gelu` lets the mean readout see order away from the clip's ends, see the
    /// module docs).
    pub temporal_act: AdapterAct,
    /// Heads of the temporal attention (default: one per 64 channels of `width`, or 1).
    pub heads: Option<usize>,
    /// Frames the temporal attention's position embedding is made for (default 8; other clip
    /// lengths get it resampled). Unused by the conv.
    pub frames: usize,
    /// Clip feature: mean over frames and tokens (default) or the class token.
    pub pool: TokenPool,
    /// Average-pool the patch grid by this factor before projecting (default 1: off; 2 keeps
    /// a quarter of the patch tokens).
    pub grid_pool: usize,
    /// Dropout before the head (default 0.5).
    pub dropout: f64,
}

impl Default for MAdapterConfig {
    fn default() -> Self {
        MAdapterConfig {
            blocks: BlockSet::default(),
            width: 384,
            fusion: Fusion::default(),
            temporal: TemporalOp::default(),
            temporal_act: AdapterAct::default(),
            heads: None,
            frames: 8,
            pool: TokenPool::default(),
            grid_pool: 1,
            dropout: 0.5,
        }
    }
}

impl MAdapterConfig {
    /// Heads of the temporal attention.
    pub fn heads(&self) -> usize {
        self.heads.unwrap_or_else(|| default_heads(self.width))
    }

    /// Checks the fields that do not depend on the backbone beyond its block count; the error
    /// names the field.
    pub(crate) fn validate(&self, blocks: usize) -> Result<(), (String, String)> {
        self.blocks
            .resolve(blocks)
            .map_err(|e| ("blocks".to_string(), e))?;
        let err = |f: &str, m: String| Err((f.to_string(), m));
        if self.width == 0 {
            return err("width", "must be at least 1".into());
        }
        if self.grid_pool == 0 {
            return err(
                "grid_pool",
                "must be at least 1 (1 = no token reduction)".into(),
            );
        }
        if self.frames == 0 {
            return err("frames", "must be at least 1".into());
        }
        let heads = self.heads();
        if heads == 0 || !self.width.is_multiple_of(heads) {
            return err(
                "heads",
                format!(
                    "{heads} heads do not divide the branch width {}",
                    self.width
                ),
            );
        }
        Ok(())
    }

    /// Builds the branch for a backbone of `blocks` blocks of width `dim`.
    ///
    /// # Panics
    /// When the config did not pass validation (our bug, see `MethodConfig::validate`).
    pub(crate) fn init(
        &self,
        blocks: usize,
        dim: usize,
        rng: &mut StdRng,
        device: &Device,
    ) -> MAdapter {
        let chosen = self
            .blocks
            .resolve(blocks)
            .unwrap_or_else(|e| panic!("m_adapter config not validated: blocks {e}"));
        let d = self.width;
        let levels = chosen
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let fusion = (i > 0).then_some(self.fusion);
                LevelAdapter {
                    norm: LayerNormConfig::new(dim).init(device),
                    proj: torch_linear(dim, d, rng, device),
                    gate: (fusion == Some(Fusion::Gated))
                        .then(|| Param::from_tensor(Tensor::zeros([d], device))),
                    mix: (fusion == Some(Fusion::ConcatProj))
                        .then(|| torch_linear(2 * d, d, rng, device)),
                    conv: (self.temporal == TemporalOp::Conv)
                        .then(|| TemporalConv::zeros(d, device)),
                    attn: (self.temporal == TemporalOp::Attention)
                        .then(|| TemporalAttention::new(d, self.heads(), self.frames, rng, device)),
                    fusion,
                    act: self.temporal_act,
                }
            })
            .collect();
        MAdapter {
            levels,
            norm: LayerNormConfig::new(d).init(device),
            blocks: chosen,
            pool: self.pool,
            grid_pool: self.grid_pool,
        }
    }
}

impl Method for MAdapterConfig {
    fn dropout(&self) -> f64 {
        self.dropout
    }

    fn check(&self, blocks: usize) -> Result<(), (String, String)> {
        self.validate(blocks)
    }

    fn check_sizes(&self) -> Result<(), (String, String)> {
        at_most("width", self.width, MAX_WIDTH)?;
        at_most("frames", self.frames, 1024)?;
        at_most("grid_pool", self.grid_pool, 64)?;
        if let Some(h) = self.heads {
            at_most("heads", h, self.width.max(1))?;
        }
        Ok(())
    }
}

/// The M-adapter branch: one level adapter (norm, projection, fusion, temporal module) per
/// level read, and the final norm.
#[derive(Module, Debug)]
pub struct MAdapter {
    levels: Vec<LevelAdapter>,
    /// LayerNorm(d) on the pooled feature.
    norm: LayerNorm,
    /// 0-based blocks read, ascending (one per entry of `levels`).
    #[module(skip)]
    blocks: Vec<usize>,
    #[module(skip)]
    pool: TokenPool,
    #[module(skip)]
    grid_pool: usize,
}

/// One level's adapter: projection, fusion with the branch so far, temporal module.
#[derive(Module, Debug)]
struct LevelAdapter {
    /// LayerNorm(C) on the level's tokens.
    norm: LayerNorm,
    /// `C -> d`.
    proj: Linear,
    /// Gated fusion: the gate's logits `a`, `[d]`.
    gate: Option<Param<Tensor<1>>>,
    /// Concat fusion: `2d -> d`.
    mix: Option<Linear>,
    conv: Option<TemporalConv>,
    attn: Option<TemporalAttention>,
    /// `None` on the first level, which starts the branch.
    #[module(skip)]
    fusion: Option<Fusion>,
    /// On the temporal module's output.
    #[module(skip)]
    act: AdapterAct,
}

impl LevelAdapter {
    /// # Shapes
    /// - h, z: `[B, T, L', d]` -> `[B, T, L', d]`
    fn fuse(&self, h: Tensor<4>, z: Tensor<4>) -> Tensor<4> {
        match (self.fusion, &self.gate, &self.mix) {
            (Some(Fusion::Gated), Some(a), _) => {
                let d = z.dims()[3];
                let g = activation::sigmoid(a.val()).reshape([1, 1, 1, d]);
                h * g.clone() + z * (g.neg() + 1.0)
            }
            (Some(Fusion::ConcatProj), _, Some(mix)) => linear(mix, Tensor::cat(vec![h, z], 3)),
            (Some(Fusion::Sum), _, _) => h + z,
            (None, _, _) => z,
            (f, gate, mix) => panic!(
                "fusion {f:?} built with gate {} and projection {}",
                gate.is_some(),
                mix.is_some()
            ),
        }
    }

    /// The temporal module's output after its activation (without the residual).
    ///
    /// # Shapes
    /// - h: `[B, T, L', d]` -> `[B, T, L', d]`
    fn temporal(&self, h: Tensor<4>) -> Tensor<4> {
        let y = match (&self.conv, &self.attn) {
            (Some(conv), _) => conv.forward(h),
            (_, Some(attn)) => attn.forward(h),
            (None, None) => unreachable!("a level adapter always has a temporal module"),
        };
        match self.act {
            AdapterAct::Identity => y,
            AdapterAct::Gelu => crate::kernels::gelu(y),
        }
    }
}

/// Pre-norm multi-head self-attention over the frames of each token.
#[derive(Module, Debug)]
struct TemporalAttention {
    pos: TemporalPosEmbed,
    norm: LayerNorm,
    /// `d -> 3d`: q | k | v along the output axis.
    qkv: Linear,
    /// `d -> d`, zero init.
    out: Linear,
    #[module(skip)]
    heads: usize,
}

impl TemporalAttention {
    fn new(d: usize, heads: usize, frames: usize, rng: &mut StdRng, device: &Device) -> Self {
        TemporalAttention {
            pos: TemporalPosEmbed::zeros(frames, d, device),
            norm: LayerNormConfig::new(d).init(device),
            qkv: torch_linear(d, 3 * d, rng, device),
            out: zero_linear(d, d, device),
            heads,
        }
    }

    /// `out(MHSA_T(LN(h + pos)))`.
    ///
    /// # Shapes
    /// - h: `[B, T, L, d]` -> `[B, T, L, d]`
    fn forward(&self, h: Tensor<4>) -> Tensor<4> {
        let [b, t, l, d] = h.dims();
        let pos = self.pos.at(t).reshape([1, t, 1, d]);
        let x = self.norm.forward(h + pos);
        let x = x.swap_dims(1, 2).reshape([b * l, t, d]); // [B*L, T, d]
        let mut qkv = linear(&self.qkv, x).chunk(3, 2); // 3 x [B*L, T, d]
        let v = qkv.pop().expect("three chunks");
        let k = qkv.pop().expect("three chunks");
        let q = qkv.pop().expect("three chunks");
        let y = linear(&self.out, multi_head(q, k, v, self.heads)); // [B*L, T, d]
        y.reshape([b, l, t, d]).swap_dims(1, 2) // [B, T, L, d]
    }
}

/// Average-pools the patch grid of every frame by `factor` (the class token is kept). Rows or
/// columns beyond a whole number of windows are dropped; a grid smaller than `factor` is
/// pooled to one token along that side.
///
/// # Shapes
/// - x: `[B*T, 1 + gh*gw, C]` -> `[B*T, 1 + (gh/f)*(gw/f), C]`
fn reduce_tokens(x: Tensor<3>, grid: (usize, usize), factor: usize) -> Tensor<3> {
    if factor <= 1 {
        return x;
    }
    let [bt, l, c] = x.dims();
    let (gh, gw) = grid;
    let (fh, fw) = (factor.min(gh), factor.min(gw));
    let (oh, ow) = (gh / fh, gw / fw);
    let cls = x.clone().slice_dim(1, 0..1); // [B*T, 1, C]
    let patches = x.slice_dim(1, 1..l).reshape([bt, gh, gw, c]); // [B*T, gh, gw, C]
    let patches = patches
        .slice([0..bt, 0..oh * fh, 0..ow * fw, 0..c])
        .reshape([bt, oh, fh, ow, fw, c]) // [B*T, oh, fh, ow, fw, C]
        .mean_dim(2)
        .mean_dim(4) // [B*T, oh, 1, ow, 1, C]
        .reshape([bt, oh * ow, c]);
    Tensor::cat(vec![cls, patches], 1)
}

impl MAdapter {
    /// The 0-based blocks whose outputs the branch reads, ascending.
    pub fn blocks(&self) -> &[usize] {
        &self.blocks
    }

    /// The clip feature `LN(pool(h))` from the levels of [`MAdapter::blocks`], in that order.
    /// `grid` is the patch grid `(gh, gw)` of the frames (used by token reduction).
    ///
    /// # Shapes
    /// - levels: each `[B*T, 1+N, C]` with `N = gh*gw` -> `[B, d]`
    pub fn forward(
        &self,
        levels: Vec<Tensor<3>>,
        frames: usize,
        grid: (usize, usize),
    ) -> Tensor<2> {
        debug_assert_eq!(levels.len(), self.levels.len());
        let mut h: Option<Tensor<4>> = None;
        for (adapter, x) in self.levels.iter().zip(levels) {
            let x = reduce_tokens(x, grid, self.grid_pool); // [B*T, L', C]
            let [bt, l, _] = x.dims();
            let z = linear(&adapter.proj, adapter.norm.forward(x)); // [B*T, L', d]
            let d = z.dims()[2];
            let z = z.reshape([bt / frames, frames, l, d]); // [B, T, L', d]
            let fused = match h {
                Some(h) => adapter.fuse(h, z),
                None => z,
            };
            h = Some(fused.clone() + adapter.temporal(fused));
        }
        let h = h.expect("at least one level (validated)"); // [B, T, L', d]
        let [b, _, _, d] = h.dims();
        let pooled = match self.pool {
            TokenPool::Mean => h.mean_dim(1).mean_dim(2), // [B, 1, 1, d]
            TokenPool::Cls => h.slice_dim(2, 0..1).mean_dim(1), // [B, 1, 1, d]
        };
        self.norm.forward(pooled.reshape([b, d]))
    }

    /// Whether the branch pools the patch grid (and so needs to know it).
    pub fn pools_tokens(&self) -> bool {
        self.grid_pool > 1
    }

    /// Width `d` of the clip feature.
    pub fn width(&self) -> usize {
        self.norm.gamma.dims()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn token_reduction_averages_two_by_two_windows_and_keeps_cls() {
        let device = Device::flex();
        // One frame, 4x4 grid, one channel: patch value = its index.
        let mut v = vec![-1.0f32];
        v.extend((0..16).map(|i| i as f32));
        let x = Tensor::<3>::from_data(TensorData::new(v, [1, 17, 1]), &device);
        let y = reduce_tokens(x, (4, 4), 2)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        // Windows {0,1,4,5} {2,3,6,7} {8,9,12,13} {10,11,14,15}.
        assert_eq!(y, vec![-1.0, 2.5, 4.5, 10.5, 12.5]);
    }

    #[test]
    fn token_reduction_drops_the_ragged_edge() {
        let device = Device::flex();
        let x = Tensor::<3>::ones([2, 1 + 5 * 5, 3], &device);
        assert_eq!(reduce_tokens(x, (5, 5), 2).dims(), [2, 1 + 4, 3]);
    }

    #[test]
    fn config_defaults_follow_methods_md() {
        let c = MAdapterConfig::default();
        assert_eq!(c.blocks, BlockSet::default());
        assert_eq!(c.width, 384);
        assert_eq!(
            (c.fusion, c.temporal, c.pool),
            (Fusion::Gated, TemporalOp::Conv, TokenPool::Mean)
        );
        assert_eq!(c.grid_pool, 1);
        assert_eq!(c.temporal_act, AdapterAct::Identity);
        assert_eq!(c.heads(), 6);
    }
}
