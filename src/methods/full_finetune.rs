//! Full fine-tuning: every backbone weight trainable, the linear probe's head on the
//! time-averaged class token (methods.md). The memory and parameter ceiling every adapter is
//! compared with.
//!
//! ```text
//! logits = fc(dropout(pool(mean_T(cls_t))))      gradients through every block
//! ```
//! The backbone's weights train at `backbone_lr_scale` times the learning rate; ViT's tanh
//! pooler, which no clip feature reads, stays frozen.

use serde::{Deserialize, Serialize};

use super::Method;

/// Full fine-tuning settings (`kind = "full_finetune"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FullFinetuneConfig {
    /// Dropout before the head (default 0.5).
    pub dropout: f64,
    /// Learning-rate multiplier for backbone weights (default 0.1; the head gets 1).
    pub backbone_lr_scale: f64,
}

impl Default for FullFinetuneConfig {
    fn default() -> Self {
        FullFinetuneConfig {
            dropout: 0.5,
            backbone_lr_scale: 0.1,
        }
    }
}

impl Method for FullFinetuneConfig {
    fn dropout(&self) -> f64 {
        self.dropout
    }

    fn check(&self, _blocks: usize) -> Result<(), (String, String)> {
        if self.backbone_lr_scale.is_nan() || self.backbone_lr_scale < 0.0 {
            return Err((
                "backbone_lr_scale".into(),
                format!("{} must be >= 0", self.backbone_lr_scale),
            ));
        }
        Ok(())
    }

    fn backbone_lr_scale(&self) -> Option<f64> {
        Some(self.backbone_lr_scale)
    }
}
