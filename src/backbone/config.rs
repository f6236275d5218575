//! Backbone configuration: one [`VitConfig`] for CLIP, DINOv2 and ViT, read from the
//! Hugging Face `config.json` with HF's field names and HF's defaults for each class.
//!
//! The three families differ only by fields of this struct (pre-norm, LayerScale,
//! activation, where the final norm sits, what the pooler is), never by code paths of
//! their own. References: transformers `CLIPVisionConfig`, `Dinov2Config`, `ViTConfig`.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Which family a checkpoint belongs to (decides defaults and key layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// CLIP vision tower (HF `CLIPVisionModel`, the vision half of `CLIPModel`, or OpenAI's layout).
    Clip,
    /// DINOv2 (HF `Dinov2Model`).
    Dinov2,
    /// Plain ViT (HF `ViTModel`).
    Vit,
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Architecture::Clip => "CLIP ViT",
            Architecture::Dinov2 => "DINOv2",
            Architecture::Vit => "ViT",
        })
    }
}

/// The MLP non-linearity, named as HF's `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
pub enum Activation {
    /// Exact (erf) GELU: HF `gelu`.
    Gelu,
    /// Tanh-approximated GELU: HF `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`.
    GeluTanh,
    /// `x * sigmoid(1.702 x)`: HF `quick_gelu` (OpenAI CLIP).
    QuickGelu,
    /// ReLU.
    Relu,
    /// SiLU / swish.
    Silu,
}

impl Activation {
    /// Parses HF's `hidden_act` string.
    pub fn from_hf(name: &str) -> Option<Self> {
        Some(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "quick_gelu" => Activation::QuickGelu,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            _ => return None,
        })
    }

    /// The accepted `hidden_act` values, for error messages.
    pub const ALLOWED: &'static str =
        "gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, quick_gelu, relu, silu, swish";
}

/// What `pooler_output` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
pub enum Pooler {
    /// CLIP: `post_layernorm(last_hidden_state[:, 0])`.
    ClsPostNorm,
    /// ViT: `tanh(dense(last_hidden_state[:, 0]))`.
    DenseTanh,
    /// DINOv2: `last_hidden_state[:, 0]` (already normalised).
    Cls,
    /// ViT checkpoints saved without a pooler: same as [`Pooler::Cls`].
    None,
}

/// Everything needed to build the shared Vision Transformer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct VitConfig {
    /// Family (defaults and key layout).
    pub arch: Architecture,
    /// Token width `C`.
    pub hidden_size: usize,
    /// Number of blocks.
    pub num_layers: usize,
    /// Attention heads per block.
    pub num_heads: usize,
    /// MLP hidden width (for SwiGLU: the width of each of the two halves).
    pub intermediate_size: usize,
    /// Patch size `p` (square).
    pub patch_size: usize,
    /// Input size the position embeddings were trained for (square).
    pub image_size: usize,
    /// Input channels.
    pub num_channels: usize,
    /// MLP activation.
    pub act: Activation,
    /// LayerNorm epsilon (all norms of the model).
    pub layer_norm_eps: f64,
    /// Whether q, k, v projections have biases.
    pub qkv_bias: bool,
    /// Whether the patch projection has a bias (CLIP: no).
    pub patch_bias: bool,
    /// LayerScale after attention and MLP (DINOv2).
    pub layer_scale: bool,
    /// SwiGLU MLP (DINOv2 giant).
    pub swiglu: bool,
    /// LayerNorm on the embeddings before the first block (CLIP `pre_layrnorm`).
    pub pre_norm: bool,
    /// LayerNorm on all tokens after the last block, giving `last_hidden_state` (ViT, DINOv2).
    pub final_norm: bool,
    /// What `pooler_output` is.
    pub pooler: Pooler,
    /// Normalisation mean (RGB, on 0..1 pixels).
    pub image_mean: [f32; 3],
    /// Normalisation std (RGB).
    pub image_std: [f32; 3],
}

/// CLIP's normalisation constants (OpenAI).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's normalisation constants (OpenAI).
pub const CLIP_STD: [f32; 3] = [0.268_629_5, 0.261_302_6, 0.275_777_1];
/// ImageNet normalisation (DINOv2).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet normalisation (DINOv2).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

impl VitConfig {
    /// ViT-B/16 at 224 px as HF's `google/vit-base-patch16-224-in21k` config.json has it
    /// (<https://huggingface.co/google/vit-base-patch16-224-in21k/blob/main/config.json>):
    /// the backbone size the papers report.
    pub fn vit_base_patch16_224() -> Self {
        Self::from_hf_str(
            r#"{"model_type":"vit","hidden_size":768,"num_hidden_layers":12,"num_attention_heads":12,"intermediate_size":3072,"image_size":224,"patch_size":16}"#,
            Path::new("<preset vit-base-patch16-224>"),
        )
        .expect("preset is valid")
    }

    /// Patch-grid side for the trained image size.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Head width.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Checks internal consistency; `path` is named in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let positive = [
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("intermediate_size", self.intermediate_size),
            ("patch_size", self.patch_size),
            ("image_size", self.image_size),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(Error::config(
                    path,
                    field,
                    "must be a positive integer, got 0",
                ));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(Error::config(
                path,
                "num_attention_heads",
                format!(
                    "hidden_size {} is not divisible by num_attention_heads {}",
                    self.hidden_size, self.num_heads
                ),
            ));
        }
        if self.image_size < self.patch_size {
            return Err(Error::config(
                path,
                "image_size",
                format!(
                    "{} is smaller than patch_size {}",
                    self.image_size, self.patch_size
                ),
            ));
        }
        if self.num_channels != 3 {
            return Err(Error::config(
                path,
                "num_channels",
                format!(
                    "vidapter feeds RGB frames, so it must be 3; got {}",
                    self.num_channels
                ),
            ));
        }
        Ok(())
    }

    /// Reads a HF `config.json` (a `CLIPVisionConfig`, a full `CLIPConfig` whose
    /// `vision_config` is used, a `Dinov2Config` or a `ViTConfig`).
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_hf_str(&text, path)
    }

    /// As [`VitConfig::from_hf_json`], from the file's text; `path` is named in errors.
    pub fn from_hf_str(text: &str, path: &Path) -> Result<Self> {
        let root: Value = serde_json::from_str(text)
            .map_err(|e| Error::format(path, format!("malformed JSON: {e}")))?;
        let Some(obj) = root.as_object() else {
            return Err(Error::format(
                path,
                "expected a JSON object at the top level",
            ));
        };
        let model_type = obj
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::config(
                    path,
                    "model_type",
                    "missing; expected one of clip, clip_vision_model, dinov2, vit",
                )
            })?;
        let (arch, section, prefix): (Architecture, &Value, &str) = match model_type {
            "clip" => {
                let vision = obj.get("vision_config").ok_or_else(|| {
                    Error::config(path, "vision_config", "missing from a `clip` config")
                })?;
                (Architecture::Clip, vision, "vision_config.")
            }
            "clip_vision_model" => (Architecture::Clip, &root, ""),
            "dinov2" => (Architecture::Dinov2, &root, ""),
            "vit" => (Architecture::Vit, &root, ""),
            other => {
                return Err(Error::config(
                    path,
                    "model_type",
                    format!(
                        "`{other}` is not an architecture vidapter knows; expected one of clip, clip_vision_model, dinov2, vit"
                    ),
                ));
            }
        };
        let raw: HfVisionConfig =
            serde_path_to_error::deserialize(section.clone()).map_err(|e| {
                Error::config(path, format!("{prefix}{}", e.path()), e.inner().to_string())
            })?;
        let act_name = raw.hidden_act.clone().unwrap_or_else(|| {
            match arch {
                Architecture::Clip => "quick_gelu",
                _ => "gelu",
            }
            .to_string()
        });
        let act = Activation::from_hf(&act_name).ok_or_else(|| {
            Error::config(
                path,
                format!("{prefix}hidden_act"),
                format!(
                    "`{act_name}` is not supported; allowed: {}",
                    Activation::ALLOWED
                ),
            )
        })?;
        let cfg = match arch {
            Architecture::Clip => VitConfig {
                arch,
                hidden_size: raw.hidden_size.unwrap_or(768),
                num_layers: raw.num_hidden_layers.unwrap_or(12),
                num_heads: raw.num_attention_heads.unwrap_or(12),
                intermediate_size: raw.intermediate_size.unwrap_or(3072),
                patch_size: raw.patch_size.unwrap_or(32),
                image_size: raw.image_size.unwrap_or(224),
                num_channels: raw.num_channels.unwrap_or(3),
                act,
                layer_norm_eps: raw.layer_norm_eps.unwrap_or(1e-5),
                qkv_bias: true,
                patch_bias: false,
                layer_scale: false,
                swiglu: false,
                pre_norm: true,
                final_norm: false,
                pooler: Pooler::ClsPostNorm,
                image_mean: CLIP_MEAN,
                image_std: CLIP_STD,
            },
            Architecture::Dinov2 => {
                let hidden = raw.hidden_size.unwrap_or(768);
                let ratio = raw.mlp_ratio.unwrap_or(4.0);
                let swiglu = raw.use_swiglu_ffn.unwrap_or(false);
                let mut inter = (hidden as f64 * ratio) as usize;
                if swiglu {
                    // transformers Dinov2SwiGLUFFN: round 2/3 of the width up to a multiple of 8.
                    inter = (inter * 2 / 3).div_ceil(8) * 8;
                }
                VitConfig {
                    arch,
                    hidden_size: hidden,
                    num_layers: raw.num_hidden_layers.unwrap_or(12),
                    num_heads: raw.num_attention_heads.unwrap_or(12),
                    intermediate_size: inter,
                    patch_size: raw.patch_size.unwrap_or(14),
                    image_size: raw.image_size.unwrap_or(518),
                    num_channels: raw.num_channels.unwrap_or(3),
                    act,
                    layer_norm_eps: raw.layer_norm_eps.unwrap_or(1e-6),
                    qkv_bias: raw.qkv_bias.unwrap_or(true),
                    patch_bias: true,
                    layer_scale: true,
                    swiglu,
                    pre_norm: false,
                    final_norm: true,
                    pooler: Pooler::Cls,
                    image_mean: IMAGENET_MEAN,
                    image_std: IMAGENET_STD,
                }
            }
            Architecture::Vit => VitConfig {
                arch,
                hidden_size: raw.hidden_size.unwrap_or(768),
                num_layers: raw.num_hidden_layers.unwrap_or(12),
                num_heads: raw.num_attention_heads.unwrap_or(12),
                intermediate_size: raw.intermediate_size.unwrap_or(3072),
                patch_size: raw.patch_size.unwrap_or(16),
                image_size: raw.image_size.unwrap_or(224),
                num_channels: raw.num_channels.unwrap_or(3),
                act,
                layer_norm_eps: raw.layer_norm_eps.unwrap_or(1e-12),
                qkv_bias: raw.qkv_bias.unwrap_or(true),
                patch_bias: true,
                layer_scale: false,
                swiglu: false,
                pre_norm: false,
                final_norm: true,
                pooler: Pooler::DenseTanh,
                image_mean: [0.5; 3],
                image_std: [0.5; 3],
            },
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Overrides mean/std from a HF `preprocessor_config.json` (`image_mean`, `image_std`).
    pub fn apply_preprocessor_json(&mut self, path: &Path) -> Result<()> {
        #[derive(Deserialize)]
        struct Pre {
            image_mean: Option<Vec<f32>>,
            image_std: Option<Vec<f32>>,
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let pre: Pre = serde_json::from_str(&text)
            .map_err(|e| Error::format(path, format!("malformed preprocessor config: {e}")))?;
        for (field, value, slot) in [
            ("image_mean", pre.image_mean, &mut self.image_mean),
            ("image_std", pre.image_std, &mut self.image_std),
        ] {
            if let Some(v) = value {
                *slot = v.as_slice().try_into().map_err(|_| {
                    Error::config(
                        path,
                        field,
                        format!("expected 3 numbers (RGB), got {}", v.len()),
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// The union of the HF vision-config fields vidapter reads; absent fields take the
/// class's default in [`VitConfig::from_hf_str`].
#[derive(Deserialize)]
struct HfVisionConfig {
    hidden_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    intermediate_size: Option<usize>,
    mlp_ratio: Option<f64>,
    patch_size: Option<usize>,
    image_size: Option<usize>,
    num_channels: Option<usize>,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
    qkv_bias: Option<bool>,
    use_swiglu_ffn: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<VitConfig> {
        VitConfig::from_hf_str(text, Path::new("config.json"))
    }

    #[test]
    fn clip_full_config_uses_vision_section_and_defaults() {
        let cfg = parse(r#"{"model_type":"clip","vision_config":{"hidden_size":64,"num_attention_heads":4,"num_hidden_layers":2,"intermediate_size":128,"patch_size":8,"image_size":32}}"#).unwrap();
        assert_eq!(cfg.arch, Architecture::Clip);
        assert_eq!(cfg.act, Activation::QuickGelu);
        assert_eq!(cfg.layer_norm_eps, 1e-5);
        assert_eq!(cfg.grid(), 4);
    }

    #[test]
    fn dinov2_swiglu_width_rounds_to_multiple_of_eight() {
        let cfg = parse(r#"{"model_type":"dinov2","hidden_size":40,"num_attention_heads":4,"use_swiglu_ffn":true}"#).unwrap();
        // 40 * 4 = 160; 160 * 2 / 3 = 106; rounded up to 112.
        assert_eq!(cfg.intermediate_size, 112);
    }

    #[test]
    fn unknown_model_type_names_the_field() {
        let err = parse(r#"{"model_type":"bert"}"#).unwrap_err().to_string();
        assert!(err.contains("model_type") && err.contains("bert"), "{err}");
    }

    #[test]
    fn unknown_activation_lists_allowed_values() {
        let err = parse(r#"{"model_type":"vit","hidden_act":"mish"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hidden_act") && err.contains("quick_gelu"),
            "{err}"
        );
    }

    #[test]
    fn heads_must_divide_width() {
        let err = parse(r#"{"model_type":"vit","hidden_size":30,"num_attention_heads":4}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("num_attention_heads"), "{err}");
    }

    #[test]
    fn wrongly_typed_field_is_reported() {
        let err = parse(r#"{"model_type":"vit","hidden_size":"big"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("hidden_size"), "{err}");
    }
}
