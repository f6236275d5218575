//! ST-Adapter — Pan, Lin, Zhu, Shao, Li, *ST-Adapter: Parameter-Efficient Image-to-Video
//! Transfer Learning*, NeurIPS 2022 (arXiv 2206.13559); code: github.com/linziyi96/st-adapter.
//!
//! Code-verified: `fc1 (C -> r)`, a depthwise `Conv3d(r, r, (3, 1, 1), groups = r)` over
//! `(T, h, w)` with padding keeping the size, `fc2 (r -> C)`, added to the patch tokens only
//! (the class token passes unchanged); no activation; conv weight and bias and both linear
//! biases zero-initialised, so the model starts as the image model. Placed before attention in
//! every block; the "24x384" preset adds a second adapter before the MLP.
//!
//! ```text
//! x[:, 1:] += fc2(DWConv3d_{3,1,1}(fc1(x[:, 1:]) -> [B, r, T, h, w]) -> [B*T, N, r])
//! logits = fc(dropout(pool(mean_T(cls))))
//! ```
//! It is [`ConvAdapter`](super::adapter::ConvAdapter) with one branch and no gate. Our option
//! `adapt_cls` (default off) also adapts the class token.

use serde::{Deserialize, Serialize};

use super::adapter::{AdapterAct, ConvAdapterConfig};
use super::{BlockSet, Method, Placement};

/// ST-Adapter settings (`kind = "st_adapter"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StAdapterConfig {
    /// Bottleneck width `r` (default 384).
    pub bottleneck: usize,
    /// Depthwise kernel (default `[3, 1, 1]`: temporal only).
    pub kernel: [usize; 3],
    /// Before attention (default, "12x384") or before attention and MLP ("24x384").
    pub placement: Placement,
    /// Which blocks get adapters (default all).
    pub blocks: BlockSet,
    /// Also pass the class token through the adapter (default false, as the papers; see
    /// `adapter.rs`: on the offline demo it is what lets the adapter learn the temporal task).
    pub adapt_cls: bool,
    /// Dropout before the head (default 0.5, the paper's recipe).
    pub dropout: f64,
}

impl Default for StAdapterConfig {
    fn default() -> Self {
        StAdapterConfig {
            bottleneck: 384,
            kernel: [3, 1, 1],
            placement: Placement::default(),
            blocks: BlockSet::default(),
            adapt_cls: false,
            dropout: 0.5,
        }
    }
}

impl StAdapterConfig {
    /// The adapter for a backbone of width `dim`.
    pub fn adapter(&self, dim: usize) -> ConvAdapterConfig {
        ConvAdapterConfig {
            dim,
            bottleneck: self.bottleneck,
            kernel: self.kernel,
            dilations: vec![1],
            gate: false,
            act: AdapterAct::Identity,
            adapt_cls: self.adapt_cls,
        }
    }
}

impl Method for StAdapterConfig {
    fn dropout(&self) -> f64 {
        self.dropout
    }

    fn adapters(&self, dim: usize) -> Option<(ConvAdapterConfig, Placement, &BlockSet)> {
        Some((self.adapter(dim), self.placement, &self.blocks))
    }
}
