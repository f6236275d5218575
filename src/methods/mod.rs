//! Adaptation methods: how a frozen image model becomes a video classifier.
//!
//! Two families (methods.md): *in-backbone* methods put trainable parts inside every block and
//! back-propagate through the frozen backbone (FE-Adapter, ST-Adapter, full fine-tuning);
//! *side-branch* methods read the backbone without autodiff (the linear probe, M-adapter,
//! EVL). One file per method opens with its paper and our reading of it and implements
//! [`Method`] for its config; the shared convolutional adapter is `adapter.rs`;
//! [`VideoClassifier`] (classifier.rs) puts a backbone, a method and a head together.
//!
//! The registry below (`registry!`) is the one list of methods: it makes
//! [`MethodConfig`] (the `[method]` table, `kind` naming the method) and [`METHODS`] (name,
//! family, summary of each), from which the help texts, the feature cache's messages and the
//! demo take theirs.
//! ```toml
//! [method]
//! kind = "fe_adapter"        # linear_probe | m_adapter | evl | st_adapter | fe_adapter | full_finetune
//! bottleneck = 384
//! dilations = [1, 2, 3]
//! ```
//!
//! # Adding a method
//! 1. Its file, `src/methods/<name>.rs`: the paper and our reading of it in the `//!` docs (as
//!    `st_adapter.rs`); the config struct, `#[serde(default, deny_unknown_fields)]` with one
//!    `impl Default` giving every default; `impl Method` for it (dropout, the field checks,
//!    [`Method::adapters`] for an in-backbone adapter); its modules. A method that reads the
//!    pooled frame features (as the linear probe) or only places a [`adapter`] needs nothing
//!    else. A side branch with modules of its own also gets a field in [`VideoClassifier`],
//!    named after the method (checkpoint paths start with it), and its arms in
//!    `classifier.rs` (`new`, `levels_needed`, `branch_features`).
//! 2. Registration, here: `pub mod <name>;`, `pub use` of its config, and one entry of
//!    `registry!` (variant, config, name, family, whether it models time, a one-line summary).
//!    The name is the `kind` of run configs and checkpoints; the order is `vidapter bench
//!    train`'s default order. Help texts, `info --method`, `train`, the feature cache and the
//!    demo's families follow from it.
//! 3. Its reference: the PyTorch re-implementation in `reference/vidapter_ref/` (`<name>.py`,
//!    and its `kind` in `classifier.py`'s `parse_method`).
//! 4. Its fixtures: cases in `scripts/make_method_fixtures.py` (`CASES`, every field written
//!    out), written to `tests/fixtures/methods/<backbone>-<case>.safetensors`, and one parity
//!    test per case in `tests/it/method_parity.rs` (`check("<backbone>-<case>")`).
//! 5. Its preset: `configs/<name>/<backbone>_<frames>x<stride>_<dataset>.toml`, opening with
//!    the paper and recipe it reproduces (as `configs/evl/clip_vit_b16_8x16_k400.toml`).

pub mod adapter;
mod classifier;
pub mod evl;
pub mod fe_adapter;
pub mod full_finetune;
pub mod linear_probe;
pub mod m_adapter;
mod side;
pub mod st_adapter;

pub use classifier::{ParamRow, VideoClassifier};
pub use evl::EvlConfig;
pub use fe_adapter::FeAdapterConfig;
pub use full_finetune::FullFinetuneConfig;
pub use linear_probe::LinearProbeConfig;
pub use m_adapter::MAdapterConfig;
pub use st_adapter::StAdapterConfig;

use serde::{Deserialize, Serialize};

use crate::backbone::VitConfig;
use adapter::ConvAdapterConfig;

/// The registry: makes [`MethodConfig`] with one variant per entry (serde's `kind` is the
/// entry's name, so run configs and checkpoints read as before), [`METHODS`] in the same
/// order, and the one dispatch from a config to its [`Method`] and [`MethodInfo`].
macro_rules! registry {
    ($($variant:ident($config:ty) = $name:literal, $family:ident, temporal: $temporal:literal,
        $summary:literal;)*) => {
        /// The `[method]` table of a run config: `kind` names the method (see [`METHODS`]),
        /// the other keys are its config's.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum MethodConfig {
            $(
                #[doc = $summary]
                #[serde(rename = $name)]
                $variant($config),
            )*
        }

        /// Every method, in the registry's order.
        pub const METHODS: &[MethodInfo] = &[$(MethodInfo {
            name: $name,
            family: Family::$family,
            temporal: $temporal,
            summary: $summary,
        }),*];

        impl MethodConfig {
            /// The method's entry of [`METHODS`].
            pub fn info(&self) -> &'static MethodInfo {
                let name = match self {
                    $(MethodConfig::$variant(_) => $name,)*
                };
                METHODS
                    .iter()
                    .find(|m| m.name == name)
                    .expect("every variant is registered")
            }

            /// The method's settings, as what every method provides.
            pub fn method(&self) -> &dyn Method {
                match self {
                    $(MethodConfig::$variant(c) => c,)*
                }
            }
        }
    };
}

registry! {
    LinearProbe(LinearProbeConfig) = "linear_probe", SideBranch, temporal: false,
        "The linear probe: a linear head on the frozen image features averaged over time.";
    MAdapter(MAdapterConfig) = "m_adapter", SideBranch, temporal: true,
        "M-adapter (CVIU 2024): a side branch over multi-level outputs.";
    Evl(EvlConfig) = "evl", SideBranch, temporal: true,
        "EVL (ECCV 2022): a query decoder beside the frozen backbone.";
    StAdapter(StAdapterConfig) = "st_adapter", InBackbone, temporal: true,
        "ST-Adapter (NeurIPS 2022): temporal convolution adapters inside the blocks.";
    FeAdapter(FeAdapterConfig) = "fe_adapter", InBackbone, temporal: true,
        "FE-Adapter (arXiv 2408.02421): gated dilated 3D convolution adapters in the blocks.";
    FullFinetune(FullFinetuneConfig) = "full_finetune", InBackbone, temporal: false,
        "Full fine-tuning: every backbone weight trainable, the ceiling adapters are held to.";
}

/// One method of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo {
    /// The `kind` of run configs and checkpoints, and the name in reports.
    pub name: &'static str,
    /// In the backbone or beside it.
    pub family: Family,
    /// Whether it has a temporal module (the linear probe and full fine-tuning average frame
    /// features instead).
    pub temporal: bool,
    /// One line saying what it is.
    pub summary: &'static str,
}

/// What a method's config tells the classifier and the checks; implemented in the method's
/// file. The defaults fit a method with no field beyond dropout and no adapter.
pub trait Method {
    /// Dropout before the head.
    fn dropout(&self) -> f64;

    /// Checks the method's own fields against a backbone of `blocks` blocks; the error names
    /// the field (relative to `[method]`) and what is allowed. Dropout is checked for every
    /// method by [`MethodConfig::validate`].
    fn check(&self, _blocks: usize) -> Result<(), (String, String)> {
        Ok(())
    }

    /// Upper bounds of the size fields, so that no setting allocates without bound (see
    /// [`MAX_WIDTH`]).
    fn check_sizes(&self) -> Result<(), (String, String)> {
        Ok(())
    }

    /// The checks that need the backbone's width `dim` too.
    fn check_width(&self, _blocks: usize, _dim: usize) -> Result<(), (String, String)> {
        Ok(())
    }

    /// The adapter an in-backbone method puts into a backbone of width `dim`, where in a block
    /// and in which blocks; `None` for a method without one.
    fn adapters(&self, _dim: usize) -> Option<(ConvAdapterConfig, Placement, &BlockSet)> {
        None
    }

    /// The learning-rate multiplier of the backbone's weights when the method trains them
    /// (full fine-tuning); `None` keeps the backbone frozen.
    fn backbone_lr_scale(&self) -> Option<f64> {
        None
    }
}

/// The names of the methods of `family` (every method for `None`) in the registry's order,
/// comma-separated with `last` before the last one: with `" and "`, the side branches are
/// `"linear_probe, m_adapter and evl"`.
pub fn names_of(family: Option<Family>, last: &str) -> String {
    let names: Vec<&str> = METHODS
        .iter()
        .filter(|m| family.is_none_or(|f| m.family == f))
        .map(|m| m.name)
        .collect();
    crate::util::listed(&names, last)
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

impl Family {
    /// How reports name it: `"in-backbone"` or `"side branch"`.
    pub fn label(self) -> &'static str {
        match self {
            Family::InBackbone => "in-backbone",
            Family::SideBranch => "side branch",
        }
    }
}

impl MethodConfig {
    /// The name used in configs and reports.
    pub fn name(&self) -> &'static str {
        self.info().name
    }

    /// Which family the method belongs to.
    pub fn family(&self) -> Family {
        self.info().family
    }

    /// Dropout before the head.
    pub fn dropout(&self) -> f64 {
        self.method().dropout()
    }

    /// Checks every field against a backbone of `blocks` blocks; the error names the field
    /// (relative to `[method]`) and what is allowed.
    pub fn validate(&self, blocks: usize) -> Result<(), (String, String)> {
        let method = self.method();
        // Sizes first: nothing below allocates or loops over an unbounded setting.
        let adapters = method.adapters(0);
        if let Some((adapter, _, _)) = &adapters {
            adapter.check_sizes()?;
        }
        method.check_sizes()?;
        let dropout = method.dropout();
        if !(0.0..1.0).contains(&dropout) {
            return Err(("dropout".into(), format!("{dropout} is not in [0, 1)")));
        }
        if let Some((adapter, _, set)) = &adapters {
            adapter.check()?;
            set.resolve(blocks).map_err(|e| ("blocks".into(), e))?;
        }
        method.check(blocks)
    }

    /// [`MethodConfig::validate`] plus the checks that need the backbone's width (EVL's heads
    /// must divide its q/k/v width, which defaults to the backbone's). Run this before
    /// [`VideoClassifier::new`].
    pub fn validate_for(&self, backbone: &VitConfig) -> Result<(), (String, String)> {
        self.validate(backbone.num_layers)?;
        self.method()
            .check_width(backbone.num_layers, backbone.hidden_size)
    }
}

/// `Err((field, ...))` when `v` is over `max`: the size checks of [`Method::check_sizes`].
pub(crate) fn at_most(field: &str, v: usize, max: usize) -> Result<(), (String, String)> {
    if v > max {
        Err((field.into(), format!("{v} is more than the maximum, {max}")))
    } else {
        Ok(())
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
    fn every_registered_method_parses_by_name_round_trips_and_validates() {
        for info in METHODS {
            let m: MethodConfig = toml::from_str(&format!("kind = {:?}", info.name)).unwrap();
            assert_eq!(m.info(), info);
            // Serialised with its defaults filled in (as checkpoints store it), it reads back.
            let table = toml::to_string(&m).unwrap();
            assert!(
                table.starts_with(&format!("kind = {:?}\n", info.name)),
                "{table}"
            );
            assert_eq!(toml::from_str::<MethodConfig>(&table).unwrap(), m);
            m.validate(12)
                .unwrap_or_else(|e| panic!("{}: defaults rejected: {e:?}", info.name));
        }
    }

    #[test]
    fn method_lists_read_as_sentences() {
        let side = names_of(Some(Family::SideBranch), ", ");
        for m in METHODS {
            assert_eq!(
                side.split(", ").any(|n| n == m.name),
                m.family == Family::SideBranch,
                "{side}"
            );
        }
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
