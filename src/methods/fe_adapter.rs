//! FE-Adapter: "Facial Expression Adapter" — Gowda, Gao, Clifton, *FE-Adapter: Adapting Image-
//! based Emotion Classifiers to Videos*, arXiv 2408.02421 (2024).
//!
//! Paper facts: an adapter built on a "Dynamic Dilated Conv3D" sits before multi-head
//! self-attention in the blocks of a frozen image model; gradients flow through the frozen
//! backbone; about 8% of the backbone's parameters are trained per task; evaluated on DFEW,
//! FERV39k and MAFW (UAR / WAR). The paper body was not available to us (see
//! `shared/design/methods.md`); every open choice below is a config field and the defaults are
//! ours:
//!
//! ```text
//! x: [B*T, 1+N, C] entering block i (for i in `blocks`, at `placement`)
//! z = x[:, 1:] @ W_down + b_down                   [B*T, N, r]
//! a = softmax(gate(mean_{T,h,w} z))                [B, K]       "dynamic": per-clip weights
//! z = sum_k a_k * DWConv3d_k(z)                    kernel (3,3,3), temporal dilation d_k in {1,2,3}
//! x[:, 1:] += act(z) @ W_up + b_up
//! logits = fc(dropout(pool(mean_T(cls))))          pool: the backbone's pooled cls (CLIP's post-LN)
//! ```
//! Init: convolutions and projection biases zero, so the adapted model equals the image model
//! at step 0 (`zero_init_adapter_equals_image_model` in `tests/methods.rs`).
//!
//! Departures / choices where the paper is silent: the gate reads the clip's mean bottleneck
//! feature; the class token is left untouched by default (as ST-Adapter's code does;
//! `adapt_cls = true` adapts it too); no activation by default.

use serde::{Deserialize, Serialize};

use super::adapter::{AdapterAct, ConvAdapterConfig};
use super::{BlockSet, Method, Placement};

/// FE-Adapter settings (the `[method]` table with `kind = "fe_adapter"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeAdapterConfig {
    /// Bottleneck width `r` (default 384, methods.md).
    pub bottleneck: usize,
    /// Depthwise kernel `[kt, kh, kw]`, odd (default `[3, 3, 3]`).
    pub kernel: [usize; 3],
    /// Temporal dilations, one branch each (default `[1, 2, 3]`).
    pub dilations: Vec<usize>,
    /// Per-clip softmax gate over the branches (default on).
    pub gate: bool,
    /// Activation after the convolution (default identity).
    pub act: AdapterAct,
    /// Where in a block the adapter sits (default before attention).
    pub placement: Placement,
    /// Which blocks get adapters (default all).
    pub blocks: BlockSet,
    /// Also pass the class token through the adapter (default false, as the papers; see
    /// `adapter.rs`: on the offline demo it is what lets the adapter learn the temporal task).
    pub adapt_cls: bool,
    /// Dropout before the head (default 0.5).
    pub dropout: f64,
}

impl Default for FeAdapterConfig {
    fn default() -> Self {
        FeAdapterConfig {
            bottleneck: 384,
            kernel: [3, 3, 3],
            dilations: vec![1, 2, 3],
            gate: true,
            act: AdapterAct::Identity,
            placement: Placement::default(),
            blocks: BlockSet::default(),
            adapt_cls: false,
            dropout: 0.5,
        }
    }
}

impl FeAdapterConfig {
    /// The adapter for a backbone of width `dim`.
    pub fn adapter(&self, dim: usize) -> ConvAdapterConfig {
        ConvAdapterConfig {
            dim,
            bottleneck: self.bottleneck,
            kernel: self.kernel,
            dilations: self.dilations.clone(),
            gate: self.gate,
            act: self.act,
            adapt_cls: self.adapt_cls,
        }
    }
}

impl Method for FeAdapterConfig {
    fn dropout(&self) -> f64 {
        self.dropout
    }

    fn adapters(&self, dim: usize) -> Option<(ConvAdapterConfig, Placement, &BlockSet)> {
        Some((self.adapter(dim), self.placement, &self.blocks))
    }
}
