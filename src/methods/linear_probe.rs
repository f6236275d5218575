//! The linear probe: the frozen image model's pooled feature of every frame, averaged over
//! time, and a linear head (methods.md). The baseline every method is compared with: it sees
//! no frame order, and trains only the head.
//!
//! ```text
//! logits = fc(dropout(mean_T(pool(cls_t))))      the backbone run without autodiff
//! ```
//! A side-branch method without a branch: it reads one level (the last block's output), so a
//! feature cache serves it (`VideoClassifier::levels_needed`).

use serde::{Deserialize, Serialize};

use super::Method;

/// Linear-probe settings (`kind = "linear_probe"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LinearProbeConfig {
    /// Dropout before the head (default 0).
    pub dropout: f64,
}

impl Method for LinearProbeConfig {
    fn dropout(&self) -> f64 {
        self.dropout
    }
}
