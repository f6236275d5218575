//! Frozen image backbones: CLIP's vision tower, DINOv2 and ViT, one implementation
//! ([`VisionTransformer`]) loaded from the files people have (HF folders or hub ids,
//! OpenAI-layout CLIP files; f32/f16/bf16; single or sharded safetensors).
//!
//! Correct means equal to transformers on the same weights: `tests/backbone_parity.rs`
//! compares every hidden state with references made by `scripts/make_backbone_fixtures.py`.

mod config;
pub mod extract;
mod id;
mod interp;
mod load_hf;
mod load_openai_clip;
mod save_hf;
mod source;
mod vit;
mod weights;

pub use config::{Activation, Architecture, Pooler, VitConfig};
pub use id::{BackboneId, weight_files};
pub use save_hf::save_vit_hf;
pub use source::{ModelFiles, resolve};
pub use vit::{Attention, Block, Init, Mlp, VisionTransformer, VitOutput};
pub use weights::{WeightStore, write_f32};

use burn::tensor::Device;

use crate::error::Result;

/// Which key layout a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// transformers' module names.
    HuggingFace,
    /// OpenAI's original CLIP names (`visual.transformer.resblocks.N...`).
    OpenAiClip,
}

/// A loaded backbone with what it was loaded from.
#[derive(Debug)]
pub struct Backbone {
    /// The model (all parameters frozen).
    pub model: VisionTransformer,
    /// Its configuration (also `model.config()`).
    pub config: VitConfig,
    /// The files it came from.
    pub files: ModelFiles,
    /// The key layout found.
    pub layout: Layout,
    /// Dtypes of the stored tensors (e.g. `{"BF16"}`).
    pub stored_dtypes: Vec<String>,
}

impl Backbone {
    /// Resolves `spec` (folder, file or hub id) and loads it onto `device`.
    pub fn load(spec: &str, device: &Device) -> Result<Self> {
        Self::load_files(resolve(spec)?, device)
    }

    /// Loads already-resolved files onto `device`.
    pub fn load_files(files: ModelFiles, device: &Device) -> Result<Self> {
        let mut store = WeightStore::open(&files.weights)?;
        let stored_dtypes = store.dtypes().into_iter().collect();
        let given = files
            .config
            .as_deref()
            .map(VitConfig::from_hf_json)
            .transpose()?;
        let (mut config, layout) = if load_openai_clip::detect(&store) {
            (
                load_openai_clip::infer_config(&store, given)?,
                Layout::OpenAiClip,
            )
        } else {
            let config = given.ok_or_else(|| {
                crate::error::Error::format(
                    &files.weights,
                    "no config.json beside these weights, and they are not in OpenAI's CLIP layout \
                     (the only layout whose configuration can be read off the tensors); put the \
                     model's config.json in the same folder",
                )
            })?;
            (config, Layout::HuggingFace)
        };
        if let Some(pre) = &files.preprocessor {
            config.apply_preprocessor_json(pre)?;
        }
        let raw = match layout {
            Layout::OpenAiClip => load_openai_clip::load(&mut store, &config)?,
            Layout::HuggingFace => load_hf::load(&mut store, &config)?,
        };
        if config.arch == Architecture::Vit && raw.pooler.is_none() {
            config.pooler = Pooler::None;
        }
        let model = VisionTransformer::from_raw(raw, config.clone(), device);
        Ok(Backbone {
            model,
            config,
            files,
            layout,
            stored_dtypes,
        })
    }
}
