//! EVL — Lin, Geng, Zhang, Gao, de Melo, Wang, Dai, Qiao, Li, *Frozen CLIP Models are
//! Efficient Video Learners*, ECCV 2022 (arXiv 2208.03550); code:
//! github.com/OpenGVLab/efficient-video-recognition (`model.py`, `vision_transformer.py` at
//! 26d79fb, `main.py` at 69be385, read for the details below).
//!
//! A transformer decoder beside the frozen image model: one learnable query gathers the
//! spatio-temporal tokens of the last `n` block outputs, one decoder layer per level, shallow
//! to deep, the query carried from level to level.
//!
//! ```text
//! feats[i]: [B, T, L, C]   output of block b_i = blocks - n + i, i = 0..n, no autodiff, cacheable
//! q_i, k_i: [B, T, L, h, c] block b_i's attention queries and keys (from its input level)
//! x = query                [B, 1, C]                    learnable, zeros
//! for i in 0..n:
//!     f = feats[i]
//!     f = f + DWConv1d_i(f)                              depthwise, k = 3 over T, per token
//!     f = f + pos_i[t]                                   [T, C] temporal position embedding
//!     f = f + TCA_i(q_i, k_i)                            temporal cross-attention, below
//!     y = LN3_i(f -> [B, T*L, C])
//!     x = x + out_i(MHA(q_i(LN1_i(x)), k_i(y), v_i(y)))  heads h, width D (qkv_dim)
//!     x = x + fc2_i(dropout(QuickGELU(fc1_i(LN2_i(x)))))   C -> 4C -> C, dropout 0.5
//! feature = LN(x)          [B, C]
//! logits = fc(dropout(feature))                          dropout 0.5 (VideoClassifier's head)
//!
//! TCA: attention maps of frame t's patch queries to the patch keys of frames t-1 and t+1
//! (mean over heads) mix one learned C-vector per relative patch offset; evl/cross_attention.rs
//! ```
//!
//! Init as the code: query zeros (`_initialize_weights`, which would draw N(0, 0.02), is never
//! called); position embeddings zeros; the temporal convolutions PyTorch's `Conv1d` default
//! (uniform in `±1/sqrt(3)` for weight and bias; `conv_init = "zero"` makes the branch start
//! from the frozen features instead); q/k/v/out Xavier-uniform, bias 0; fc1/fc2
//! Xavier-uniform, bias N(0, 1e-6); LayerNorms (1, 0), eps 1e-5.
//!
//! The queries and keys are recomputed from the level entering each block (one more level
//! than the outputs: [`Evl::levels_needed`]) with the frozen block's `LN1` and q/k
//! projections, so a cache of levels suffices.
//!
//! Departures from the reference:
//! - A patch grid larger than the trained one clamps relative offsets to the trained range
//!   (the code supports only the trained grid).
//! - The head is the common one of [`VideoClassifier`](super::VideoClassifier) (weights
//!   N(0, 0.02), bias 0) instead of PyTorch's `Linear` default.
//! - The backbone runs in f32, not fp16.
//! - A clip with another number of frames than `frames` gets the position table resampled
//!   linearly in time (the code asserts equality).

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::side::{
    TemporalConv, TemporalPosEmbed, default_heads, dropout, multi_head, quick_gelu, sub_seed,
    xavier_linear,
};
use super::{MAX_WIDTH, Method, at_most};
use crate::kernels::linear;
use cross_attention::TemporalCrossAttention;

mod cross_attention;

/// Initial values of EVL's temporal convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConvInit {
    /// PyTorch's `Conv1d` default, as EVL's code (uniform in `±1/sqrt(3)`).
    #[default]
    Torch,
    /// Weight and bias zero: the branch starts from the frozen features.
    Zero,
}

/// EVL settings (`kind = "evl"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvlConfig {
    /// Decoder layers, one per level: the outputs of the last `levels` blocks (default 4).
    pub levels: usize,
    /// Width `D` of the decoder's q/k/v projections (default: the backbone width, 768 for
    /// ViT-B as the paper's "dec4x768").
    pub qkv_dim: Option<usize>,
    /// Decoder attention heads (default: one per 64 channels of `qkv_dim`, 12 for ViT-B).
    pub heads: Option<usize>,
    /// Decoder MLP width as a multiple of the backbone width (default 4).
    pub mlp_factor: f64,
    /// Dropout inside the decoder MLPs (default 0.5).
    pub mlp_dropout: f64,
    /// Depthwise temporal convolution on every level (default on).
    pub temporal_conv: bool,
    /// Initial values of the temporal convolutions (default `torch`, as EVL's code).
    pub conv_init: ConvInit,
    /// Learned temporal position embedding on every level (default on).
    pub temporal_pos_embed: bool,
    /// Temporal cross-attention on every level (default on, as EVL's code).
    pub temporal_cross_attention: bool,
    /// Frames the position embeddings are made for (default 8; other clip lengths get them
    /// resampled).
    pub frames: usize,
    /// Dropout before the head (default 0.5).
    pub dropout: f64,
}

impl Default for EvlConfig {
    fn default() -> Self {
        EvlConfig {
            levels: 4,
            qkv_dim: None,
            heads: None,
            mlp_factor: 4.0,
            mlp_dropout: 0.5,
            temporal_conv: true,
            conv_init: ConvInit::default(),
            temporal_pos_embed: true,
            temporal_cross_attention: true,
            frames: 8,
            dropout: 0.5,
        }
    }
}

impl EvlConfig {
    /// Decoder q/k/v width for a backbone of width `dim`.
    pub fn qkv_dim(&self, dim: usize) -> usize {
        self.qkv_dim.unwrap_or(dim)
    }

    /// Decoder heads for a backbone of width `dim`.
    pub fn heads(&self, dim: usize) -> usize {
        self.heads
            .unwrap_or_else(|| default_heads(self.qkv_dim(dim)))
    }

    /// Decoder MLP width for a backbone of width `dim` (rounded, as the code's `round`).
    pub fn mlp_dim(&self, dim: usize) -> usize {
        (self.mlp_factor * dim as f64).round() as usize
    }

    /// Checks every field against a backbone of `blocks` blocks and, when known, width `dim`;
    /// the error names the field.
    pub(crate) fn validate(
        &self,
        blocks: usize,
        dim: Option<usize>,
    ) -> Result<(), (String, String)> {
        let err = |f: &str, m: String| Err((f.to_string(), m));
        if self.levels == 0 || self.levels > blocks {
            return err(
                "levels",
                format!(
                    "{}: expected 1..={blocks} (the backbone has {blocks} blocks)",
                    self.levels
                ),
            );
        }
        if self.qkv_dim == Some(0) {
            return err("qkv_dim", "must be at least 1".into());
        }
        if self.heads == Some(0) {
            return err("heads", "must be at least 1".into());
        }
        if let Some(dim) = dim.or(self.qkv_dim) {
            let (qkv, heads) = (self.qkv_dim(dim), self.heads(dim));
            if !qkv.is_multiple_of(heads) {
                return err(
                    "heads",
                    format!("{heads} heads do not divide the q/k/v width {qkv}"),
                );
            }
        }
        if !(self.mlp_factor.is_finite() && self.mlp_factor > 0.0) {
            return err(
                "mlp_factor",
                format!("{} must be a positive number", self.mlp_factor),
            );
        }
        if !(0.0..1.0).contains(&self.mlp_dropout) {
            return err(
                "mlp_dropout",
                format!("{} is not in [0, 1)", self.mlp_dropout),
            );
        }
        if self.frames == 0 {
            return err("frames", "must be at least 1".into());
        }
        Ok(())
    }

    /// Builds the branch for a backbone of `blocks` blocks of width `dim` trained on a
    /// `grid` of patches (the cross-attention's offset tables).
    ///
    /// # Panics
    /// When the config did not pass validation (our bug, see `MethodConfig::validate_for`).
    pub(crate) fn init(
        &self,
        blocks: usize,
        dim: usize,
        grid: (usize, usize),
        rng: &mut StdRng,
        device: &Device,
    ) -> Evl {
        if let Err((field, msg)) = self.validate(blocks, Some(dim)) {
            panic!("evl config not validated: {field}: {msg}");
        }
        let (qkv, heads, mlp) = (self.qkv_dim(dim), self.heads(dim), self.mlp_dim(dim));
        let levels = (0..self.levels)
            .map(|_| EvlLevel {
                conv: self.temporal_conv.then(|| match self.conv_init {
                    ConvInit::Torch => TemporalConv::torch_default(dim, rng, device),
                    ConvInit::Zero => TemporalConv::zeros(dim, device),
                }),
                pos: self
                    .temporal_pos_embed
                    .then(|| TemporalPosEmbed::zeros(self.frames, dim, device)),
                cross: self
                    .temporal_cross_attention
                    .then(|| TemporalCrossAttention::zeros(grid, dim, device)),
                decoder: DecoderLayer {
                    norm1: LayerNormConfig::new(dim).init(device),
                    norm2: LayerNormConfig::new(dim).init(device),
                    norm3: LayerNormConfig::new(dim).init(device),
                    q: xavier_linear(dim, qkv, 0.0, rng, device),
                    k: xavier_linear(dim, qkv, 0.0, rng, device),
                    v: xavier_linear(dim, qkv, 0.0, rng, device),
                    out: xavier_linear(qkv, dim, 0.0, rng, device),
                    fc1: xavier_linear(dim, mlp, 1e-6, rng, device),
                    fc2: xavier_linear(mlp, dim, 1e-6, rng, device),
                    heads,
                },
            })
            .collect();
        Evl {
            query: Param::from_tensor(Tensor::zeros([dim], device)),
            levels,
            norm: LayerNormConfig::new(dim).init(device),
            first_block: blocks - self.levels,
            cross_attention: self.temporal_cross_attention,
            mlp_dropout: self.mlp_dropout,
        }
    }
}

impl Method for EvlConfig {
    fn dropout(&self) -> f64 {
        self.dropout
    }

    fn check(&self, blocks: usize) -> Result<(), (String, String)> {
        self.validate(blocks, None)
    }

    fn check_sizes(&self) -> Result<(), (String, String)> {
        at_most("levels", self.levels, 4096)?;
        at_most("frames", self.frames, 1024)?;
        if let Some(q) = self.qkv_dim {
            at_most("qkv_dim", q, MAX_WIDTH)?;
        }
        if let Some(h) = self.heads {
            at_most("heads", h, self.qkv_dim.unwrap_or(MAX_WIDTH))?;
        }
        if self.mlp_factor > 16.0 {
            return Err((
                "mlp_factor".into(),
                format!("{} is more than the maximum, 16", self.mlp_factor),
            ));
        }
        Ok(())
    }

    fn check_width(&self, blocks: usize, dim: usize) -> Result<(), (String, String)> {
        self.validate(blocks, Some(dim))
    }
}

/// The EVL decoder branch.
#[derive(Module, Debug)]
pub struct Evl {
    /// `[C]`: the one learnable query, carried through the decoder layers.
    query: Param<Tensor<1>>,
    levels: Vec<EvlLevel>,
    /// LayerNorm(C) on the final query (the head's norm).
    norm: LayerNorm,
    /// 0-based index of the first block read.
    #[module(skip)]
    first_block: usize,
    /// Whether the levels carry the cross-attention (and the block inputs are needed).
    #[module(skip)]
    cross_attention: bool,
    #[module(skip)]
    mlp_dropout: f64,
}

/// One level: temporal modules on the frame features, then a decoder layer.
#[derive(Module, Debug)]
struct EvlLevel {
    conv: Option<TemporalConv>,
    pos: Option<TemporalPosEmbed>,
    cross: Option<TemporalCrossAttention>,
    decoder: DecoderLayer,
}

/// Pre-norm decoder layer: cross-attention of the query to the tokens, then an MLP.
#[derive(Module, Debug)]
struct DecoderLayer {
    /// On the query before attention.
    norm1: LayerNorm,
    /// On the query before the MLP.
    norm2: LayerNorm,
    /// On the tokens (keys and values).
    norm3: LayerNorm,
    /// `C -> D`.
    q: Linear,
    /// `C -> D`.
    k: Linear,
    /// `C -> D`.
    v: Linear,
    /// `D -> C`.
    out: Linear,
    /// `C -> H` (H = mlp_factor * C).
    fc1: Linear,
    /// `H -> C`.
    fc2: Linear,
    #[module(skip)]
    heads: usize,
}

impl DecoderLayer {
    /// `dropout_seed` switches the MLP's dropout on (training).
    ///
    /// # Shapes
    /// - x: `[B, 1, C]`, y: `[B, T*L, C]` -> `[B, 1, C]`
    fn forward(&self, x: Tensor<3>, y: Tensor<3>, p: f64, dropout_seed: Option<u64>) -> Tensor<3> {
        let y = self.norm3.forward(y);
        let q = linear(&self.q, self.norm1.forward(x.clone())); // [B, 1, D]
        let k = linear(&self.k, y.clone()); // [B, T*L, D]
        let v = linear(&self.v, y); // [B, T*L, D]
        let x = x + linear(&self.out, multi_head(q, k, v, self.heads)); // [B, 1, C]
        let h = quick_gelu(linear(&self.fc1, self.norm2.forward(x.clone()))); // [B, 1, H]
        let h = match dropout_seed {
            Some(seed) => dropout(h, p, seed),
            None => h,
        };
        x + linear(&self.fc2, h)
    }
}

impl Evl {
    /// The 0-based blocks whose outputs the branch reads, ascending.
    pub fn blocks(&self) -> Vec<usize> {
        (self.first_block..self.first_block + self.levels.len()).collect()
    }

    /// Whether the branch reads the blocks' attention queries and keys.
    pub fn reads_attention(&self) -> bool {
        self.cross_attention
    }

    /// The backbone levels the branch needs (level `i` = output of 1-based block `i`): the
    /// outputs of [`Evl::blocks`], and with the cross-attention also the level entering the
    /// first of them (each block's queries and keys come from its input).
    pub fn levels_needed(&self) -> Vec<usize> {
        let first = self.first_block + usize::from(!self.cross_attention);
        (first..=self.first_block + self.levels.len()).collect()
    }

    /// The clip feature `LN(query)` after the decoder, from the outputs of [`Evl::blocks`] in
    /// that order and, when [`Evl::reads_attention`], those blocks' queries and keys (as
    /// [`Block::query_key`](crate::backbone::Block::query_key) gives them); `grid` is the patch
    /// grid. `dropout_seed` switches the decoder MLPs' dropout on (training).
    ///
    /// # Shapes
    /// - outputs: each `[B*T, L, C]`; attention: each (`[B*T, L, h, c]`, `[B*T, L, h, c]`)
    ///   -> `[B, C]`
    pub fn forward(
        &self,
        outputs: Vec<Tensor<3>>,
        attention: Vec<(Tensor<4>, Tensor<4>)>,
        frames: usize,
        grid: (usize, usize),
        dropout_seed: Option<u64>,
    ) -> Tensor<2> {
        debug_assert_eq!(outputs.len(), self.levels.len());
        debug_assert_eq!(
            attention.len(),
            if self.cross_attention {
                outputs.len()
            } else {
                0
            }
        );
        let [bt, l, c] = outputs[0].dims();
        let (b, t) = (bt / frames, frames);
        let mut attention = attention.into_iter();
        let mut x = self.query.val().reshape([1, 1, c]).expand([b, 1, c]); // [B, 1, C]
        for (i, (level, f)) in self.levels.iter().zip(outputs).enumerate() {
            let mut f = f.reshape([b, t, l, c]); // [B, T, L, C]
            if let Some(conv) = &level.conv {
                f = f.clone() + conv.forward(f);
            }
            if let Some(pos) = &level.pos {
                f = f + pos.at(t).reshape([1, t, 1, c]);
            }
            if let Some(cross) = &level.cross {
                let (q, k) = attention.next().expect("queries and keys per level");
                let [_, _, h, hc] = q.dims();
                let q = q.reshape([b, t, l, h, hc]); // [B, T, L, h, c]
                let k = k.reshape([b, t, l, h, hc]);
                f = f + cross.forward(q, k, grid);
            }
            let y = f.reshape([b, t * l, c]); // [B, T*L, C]
            let seed = dropout_seed.map(|s| sub_seed(s, i as u64));
            x = level.decoder.forward(x, y, self.mlp_dropout, seed);
        }
        self.norm.forward(x.reshape([b, c]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_papers_vit_b_recipe() {
        let c = EvlConfig::default();
        assert_eq!(c.levels, 4);
        assert_eq!(
            (c.qkv_dim(768), c.heads(768), c.mlp_dim(768)),
            (768, 12, 3072)
        );
        assert_eq!((c.heads(1024), c.mlp_dim(1024)), (16, 4096));
        assert_eq!((c.dropout, c.mlp_dropout), (0.5, 0.5));
        assert!(c.temporal_conv && c.temporal_pos_embed);
        assert_eq!(c.conv_init, ConvInit::Torch);
    }

    #[test]
    fn heads_must_divide_the_backbone_width() {
        let c = EvlConfig {
            heads: Some(5),
            ..Default::default()
        };
        assert_eq!(c.validate(12, Some(768)).unwrap_err().0, "heads");
        // Width unknown: nothing to check against yet.
        assert!(c.validate(12, None).is_ok());
    }
}
