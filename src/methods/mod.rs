//! Adaptation methods: how a frozen image model becomes a video classifier.
//!
//! Two families (methods.md): *in-backbone* methods put trainable parts inside every block and
//! back-propagate through the frozen backbone (FE-Adapter, ST-Adapter, full fine-tuning);
//! *side-branch* methods read the backbone without autodiff (the linear probe, M-adapter,
//! EVL). One file per method opens with its paper and our reading of it; the
//! shared convolutional adapter is `adapter.rs`; [`VideoClassifier`] (classifier.rs) puts a
//! backbone, a method and a head together.
//!
//! A method is chosen by the `[method]` table of a run config, `kind` naming it:
//! ```toml
//! [method]
//! kind = "fe_adapter"        # linear_probe | full_finetune | fe_adapter | st_adapter | m_adapter | evl
//! bottleneck = 384
//! dilations = [1, 2, 3]
//! ```

pub mod adapter;
mod classifier;
pub mod evl;
pub mod fe_adapter;
pub mod m_adapter;
mod side;
pub mod st_adapter;

pub use classifier::{ParamRow, VideoClassifier};
pub use evl::EvlConfig;
pub use fe_adapter::FeAdapterConfig;
pub use m_adapter::MAdapterConfig;
pub use st_adapter::StAdapterConfig;

use serde::{Deserialize, Serialize};

use crate::backbone::VitConfig;

/// The linear probe: frozen backbone, the pooled per-frame features averaged over time, a
/// linear head. The backbone runs without autodiff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearProbeConfig {
    /// Dropout before the head (default 0).
    #[serde(default)]
    pub dropout: f64,
}

/// Full fine-tuning: every backbone weight trainable, the linear probe's head. The memory and
/// parameter ceiling every adapter is compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullFinetuneConfig {
    /// Dropout before the head (default 0.5).
    #[serde(default = "half")]
    pub dropout: f64,
    /// Learning-rate multiplier for backbone weights (default 0.1; the head gets 1).
    #[serde(default = "tenth")]
    pub backbone_lr_scale: f64,
}

fn half() -> f64 {
    0.5
}
fn tenth() -> f64 {
    0.1
}

/// Where in a block an adapter sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Before multi-head self-attention (FE-Adapter; ST-Adapter "12x384").
    #[default]
    BeforeAttn,
    /// Before the MLP.
    BeforeMlp,
    /// Both (ST-Adapter "24x384").
    Both,
}

/// Which blocks get adapters: `"all"`, `"last:N"`, `"first:N"`, or a list of 0-based block
/// indices (block `i` produces level `i + 1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BlockSet {
    /// `"all"`, `"last:N"` or `"first:N"`.
    Named(String),
    /// Explicit 0-based indices.
    List(Vec<usize>),
}

impl Default for BlockSet {
    fn default() -> Self {
        BlockSet::Named("all".into())
    }
}

impl BlockSet {
    /// The block indices for a backbone of `blocks` blocks, ascending.
    pub fn resolve(&self, blocks: usize) -> Result<Vec<usize>, String> {
        let bad = |s: &str| {
            format!("`{s}`: expected \"all\", \"last:N\", \"first:N\" or a list of block indices")
        };
        let mut out = match self {
            BlockSet::Named(s) if s == "all" => (0..blocks).collect(),
            BlockSet::Named(s) => {
                let (which, n) = s.split_once(':').ok_or_else(|| bad(s))?;
                let n: usize = n.trim().parse().map_err(|_| bad(s))?;
                if n == 0 || n > blocks {
                    return Err(format!("`{s}`: the backbone has {blocks} blocks"));
                }
                match which.trim() {
                    "last" => (blocks - n..blocks).collect(),
                    "first" => (0..n).collect(),
                    _ => return Err(bad(s)),
                }
            }
            BlockSet::List(v) => {
                if let Some(b) = v.iter().find(|&&b| b >= blocks) {
                    return Err(format!(
                        "block {b} does not exist: the backbone has blocks 0..={}",
                        blocks.saturating_sub(1)
                    ));
                }
                v.clone()
            }
        };
        out.sort_unstable();
        out.dedup();
        if out.is_empty() {
            return Err("no block selected".into());
        }
        Ok(out)
    }
}

/// The `[method]` table of a run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MethodConfig {
    /// Frozen backbone + linear head on time-averaged pooled features.
    LinearProbe(LinearProbeConfig),
    /// Everything trainable.
    FullFinetune(FullFinetuneConfig),
    /// FE-Adapter (arXiv 2408.02421).
    FeAdapter(FeAdapterConfig),
    /// ST-Adapter (NeurIPS 2022).
    StAdapter(StAdapterConfig),
    /// M-adapter (CVIU 2024): a side branch over multi-level outputs.
    MAdapter(MAdapterConfig),
    /// EVL (ECCV 2022): a query decoder beside the frozen backbone.
    Evl(EvlConfig),
}

/// Largest width a method's own layers may have (bottleneck, branch width, q/k/v width).
pub const MAX_WIDTH: usize = 16_384;

/// The two families of methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Gradients flow through the (frozen or not) backbone.
    InBackbone,
    /// The backbone runs without autodiff; only what reads its outputs trains.
    SideBranch,
}

impl MethodConfig {
    /// The name used in configs and reports.
    pub fn name(&self) -> &'static str {
        match self {
            MethodConfig::LinearProbe(_) => "linear_probe",
            MethodConfig::FullFinetune(_) => "full_finetune",
            MethodConfig::FeAdapter(_) => "fe_adapter",
            MethodConfig::StAdapter(_) => "st_adapter",
            MethodConfig::MAdapter(_) => "m_adapter",
            MethodConfig::Evl(_) => "evl",
        }
    }

    /// Which family the method belongs to.
    pub fn family(&self) -> Family {
        match self {
            MethodConfig::LinearProbe(_) | MethodConfig::MAdapter(_) | MethodConfig::Evl(_) => {
                Family::SideBranch
            }
            _ => Family::InBackbone,
        }
    }

    /// Dropout before the head.
    pub fn dropout(&self) -> f64 {
        match self {
            MethodConfig::LinearProbe(c) => c.dropout,
            MethodConfig::FullFinetune(c) => c.dropout,
            MethodConfig::FeAdapter(c) => c.dropout,
            MethodConfig::StAdapter(c) => c.dropout,
            MethodConfig::MAdapter(c) => c.dropout,
            MethodConfig::Evl(c) => c.dropout,
        }
    }

    /// Checks every field against a backbone of `blocks` blocks; the error names the field
    /// (relative to `[method]`) and what is allowed.
    pub fn validate(&self, blocks: usize) -> Result<(), (String, String)> {
        self.validate_sizes()?;
        let dropout = self.dropout();
        if !(0.0..1.0).contains(&dropout) {
            return Err(("dropout".into(), format!("{dropout} is not in [0, 1)")));
        }
        let adapter = |bottleneck: usize,
                       kernel: [usize; 3],
                       dilations: &[usize],
                       set: &BlockSet|
         -> Result<(), (String, String)> {
            if bottleneck == 0 {
                return Err(("bottleneck".into(), "must be at least 1".into()));
            }
            if kernel.iter().any(|k| k % 2 == 0) {
                return Err((
                    "kernel".into(),
                    format!("{kernel:?}: every side must be odd (padding keeps T, h, w)"),
                ));
            }
            if dilations.is_empty() || dilations.contains(&0) {
                return Err((
                    "dilations".into(),
                    format!("{dilations:?}: give one or more dilations, each at least 1"),
                ));
            }
            set.resolve(blocks).map_err(|e| ("blocks".into(), e))?;
            Ok(())
        };
        match self {
            MethodConfig::FeAdapter(c) => adapter(c.bottleneck, c.kernel, &c.dilations, &c.blocks),
            MethodConfig::StAdapter(c) => adapter(c.bottleneck, c.kernel, &[1], &c.blocks),
            MethodConfig::MAdapter(c) => c.validate(blocks),
            MethodConfig::Evl(c) => c.validate(blocks, None),
            MethodConfig::FullFinetune(c)
                if c.backbone_lr_scale.is_nan() || c.backbone_lr_scale < 0.0 =>
            {
                Err((
                    "backbone_lr_scale".into(),
                    format!("{} must be >= 0", c.backbone_lr_scale),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Upper bounds of the size fields, so that no setting allocates without bound: widths
    /// (bottleneck, width, qkv_dim) at most [`MAX_WIDTH`], kernel sides at most 15,
    /// dilations at most 64 (8 of them), frames at most 1,024, grid pooling at most 64, MLP
    /// factor at most 16, heads at most the width.
    fn validate_sizes(&self) -> Result<(), (String, String)> {
        let over = |field: &str, v: usize, max: usize| -> Result<(), (String, String)> {
            if v > max {
                Err((field.into(), format!("{v} is more than the maximum, {max}")))
            } else {
                Ok(())
            }
        };
        let adapter = |bottleneck: usize, kernel: [usize; 3], dilations: &[usize]| {
            over("bottleneck", bottleneck, MAX_WIDTH)?;
            for k in kernel {
                over("kernel", k, 15)?;
            }
            over("dilations", dilations.len(), 8)?;
            for &d in dilations {
                over("dilations", d, 64)?;
            }
            Ok(())
        };
        match self {
            MethodConfig::FeAdapter(c) => adapter(c.bottleneck, c.kernel, &c.dilations),
            MethodConfig::StAdapter(c) => adapter(c.bottleneck, c.kernel, &[1]),
            MethodConfig::MAdapter(c) => {
                over("width", c.width, MAX_WIDTH)?;
                over("frames", c.frames, 1024)?;
                over("grid_pool", c.grid_pool, 64)?;
                if let Some(h) = c.heads {
                    over("heads", h, c.width.max(1))?;
                }
                Ok(())
            }
            MethodConfig::Evl(c) => {
                over("levels", c.levels, 4096)?;
                over("frames", c.frames, 1024)?;
                if let Some(q) = c.qkv_dim {
                    over("qkv_dim", q, MAX_WIDTH)?;
                }
                if let Some(h) = c.heads {
                    over("heads", h, c.qkv_dim.unwrap_or(MAX_WIDTH))?;
                }
                if c.mlp_factor > 16.0 {
                    return Err((
                        "mlp_factor".into(),
                        format!("{} is more than the maximum, 16", c.mlp_factor),
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// [`MethodConfig::validate`] plus the checks that need the backbone's width (EVL's heads
    /// must divide its q/k/v width, which defaults to the backbone's). Run this before
    /// [`VideoClassifier::new`].
    pub fn validate_for(&self, backbone: &VitConfig) -> Result<(), (String, String)> {
        self.validate(backbone.num_layers)?;
        match self {
            MethodConfig::Evl(c) => c.validate(backbone.num_layers, Some(backbone.hidden_size)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_set_forms_resolve() {
        assert_eq!(BlockSet::default().resolve(3).unwrap(), vec![0, 1, 2]);
        assert_eq!(
            BlockSet::Named("last:2".into()).resolve(4).unwrap(),
            vec![2, 3]
        );
        assert_eq!(
            BlockSet::Named("first:1".into()).resolve(4).unwrap(),
            vec![0]
        );
        assert_eq!(
            BlockSet::List(vec![3, 1, 3]).resolve(4).unwrap(),
            vec![1, 3]
        );
        assert!(
            BlockSet::List(vec![4])
                .resolve(4)
                .unwrap_err()
                .contains("0..=3")
        );
        assert!(BlockSet::Named("middle".into()).resolve(4).is_err());
    }

    #[test]
    fn method_table_parses_with_defaults_and_names_unknown_fields() {
        let m: MethodConfig = toml::from_str("kind = \"fe_adapter\"\nbottleneck = 8").unwrap();
        match &m {
            MethodConfig::FeAdapter(c) => {
                assert_eq!(c.bottleneck, 8);
                assert_eq!(c.dilations, vec![1, 2, 3]);
                assert_eq!(c.kernel, [3, 3, 3]);
            }
            other => panic!("{other:?}"),
        }
        let err = toml::from_str::<MethodConfig>("kind = \"st_adapter\"\nbotleneck = 8")
            .unwrap_err()
            .to_string();
        assert!(err.contains("botleneck"), "{err}");
        let err = toml::from_str::<MethodConfig>("kind = \"fe_adaptor\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("fe_adapter"), "{err}");
    }

    #[test]
    fn even_kernel_is_rejected_with_its_field() {
        let m = MethodConfig::FeAdapter(FeAdapterConfig {
            kernel: [2, 3, 3],
            ..Default::default()
        });
        assert_eq!(m.validate(12).unwrap_err().0, "kernel");
    }
}
