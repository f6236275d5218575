//! OpenAI's original CLIP layout (`visual.transformer.resblocks.N...`, also used by
//! OpenCLIP's `open_clip_model.safetensors`), mapped to [`RawVit`].
//!
//! Such files come without a HF `config.json`; the configuration is read off the tensor
//! shapes as OpenAI's `build_model` does (heads = width / 64, QuickGELU, eps 1e-5). A
//! `config.json` beside the file, if present, overrides what shapes cannot tell (heads,
//! activation: OpenCLIP's LAION models use GELU, OpenAI's QuickGELU).

use super::config::{Activation, Architecture, CLIP_MEAN, CLIP_STD, Pooler, VitConfig};
use super::load_hf::{check_no_extra_layers, linear_w, norm, patch, transpose};
use super::vit::{RawBlock, RawVit};
use super::weights::WeightStore;
use crate::error::{Error, Result};

const P: &str = "visual.";

/// Whether `store` is in OpenAI's layout (probe: the first block's `ln_1`).
pub(crate) fn detect(store: &WeightStore) -> bool {
    store.contains("visual.transformer.resblocks.0.ln_1.weight")
}

fn dim(s: &WeightStore, key: &str, axis: usize) -> Result<usize> {
    s.shape(key)
        .and_then(|sh| sh.get(axis).copied())
        .ok_or_else(|| Error::MissingTensor {
            path: s.origin().to_path_buf(),
            key: key.to_string(),
            expected: vec![],
            hint: String::new(),
        })
}

/// Reads the configuration off the tensor shapes; `given` (from a `config.json`) supplies
/// heads, activation and eps when present and must agree with the shapes.
pub(crate) fn infer_config(s: &WeightStore, given: Option<VitConfig>) -> Result<VitConfig> {
    let width = dim(s, "visual.conv1.weight", 0)?;
    let patch_size = dim(s, "visual.conv1.weight", 2)?;
    let n_pos = dim(s, "visual.positional_embedding", 0)?;
    let grid = ((n_pos.saturating_sub(1)) as f64).sqrt().round() as usize;
    if grid * grid + 1 != n_pos {
        return Err(Error::format(
            s.origin(),
            format!("`visual.positional_embedding` has {n_pos} rows; expected 1 + a square number"),
        ));
    }
    let layers = s
        .keys()
        .into_iter()
        .filter_map(|k| k.strip_prefix("visual.transformer.resblocks."))
        .filter_map(|r| r.split('.').next()?.parse::<usize>().ok())
        .max()
        .map_or(0, |n| n + 1);
    let mlp = dim(s, "visual.transformer.resblocks.0.mlp.c_fc.weight", 0)?;
    let mut cfg = VitConfig {
        arch: Architecture::Clip,
        hidden_size: width,
        num_layers: layers,
        num_heads: width / 64,
        intermediate_size: mlp,
        patch_size,
        image_size: grid * patch_size,
        num_channels: 3,
        act: Activation::QuickGelu,
        layer_norm_eps: 1e-5,
        qkv_bias: true,
        patch_bias: false,
        layer_scale: false,
        swiglu: false,
        pre_norm: true,
        final_norm: false,
        pooler: Pooler::ClsPostNorm,
        image_mean: CLIP_MEAN,
        image_std: CLIP_STD,
    };
    if let Some(g) = given {
        cfg.num_heads = g.num_heads;
        cfg.act = g.act;
        cfg.layer_norm_eps = g.layer_norm_eps;
        cfg.image_mean = g.image_mean;
        cfg.image_std = g.image_std;
    } else if !width.is_multiple_of(64) {
        return Err(Error::format(
            s.origin(),
            format!(
                "OpenAI-layout CLIP of width {width}: heads are width / 64 by OpenAI's convention, which does not divide; put a config.json (model_type clip_vision_model, num_attention_heads) beside the weights"
            ),
        ));
    }
    cfg.validate(s.origin())?;
    Ok(cfg)
}

/// Reads the vision tower; tensors outside `visual.` (the text tower) are ignored, and
/// `visual.proj` (the joint-embedding projection, not part of the image encoder's outputs).
pub(crate) fn load(s: &mut WeightStore, cfg: &VitConfig) -> Result<RawVit> {
    let (c, h) = (cfg.hidden_size, cfg.intermediate_size);
    let mut blocks = Vec::with_capacity(cfg.num_layers);
    for i in 0..cfg.num_layers {
        let b = format!("{P}transformer.resblocks.{i}.");
        let in_w = s.take(&format!("{b}attn.in_proj_weight"), &[3 * c, c])?;
        blocks.push(RawBlock {
            norm1: norm(s, &format!("{b}ln_1"), c)?,
            // [3C, C] (out, in) -> [C, 3C]: q | k | v along the output axis, as fused here.
            qkv_w: transpose(&in_w, 3 * c, c),
            qkv_b: Some(s.take(&format!("{b}attn.in_proj_bias"), &[3 * c])?),
            proj_w: linear_w(s, &format!("{b}attn.out_proj.weight"), c, c)?,
            proj_b: s.take(&format!("{b}attn.out_proj.bias"), &[c])?,
            ls1: None,
            norm2: norm(s, &format!("{b}ln_2"), c)?,
            fc1_w: linear_w(s, &format!("{b}mlp.c_fc.weight"), c, h)?,
            fc1_b: s.take(&format!("{b}mlp.c_fc.bias"), &[h])?,
            fc2_w: linear_w(s, &format!("{b}mlp.c_proj.weight"), h, c)?,
            fc2_b: s.take(&format!("{b}mlp.c_proj.bias"), &[c])?,
            ls2: None,
        });
    }
    check_no_extra_layers(s, &format!("{P}transformer.resblocks."), cfg)?;
    let raw = RawVit {
        patch_w: patch(s, &format!("{P}conv1.weight"), cfg)?,
        patch_b: None,
        cls: s.take(&format!("{P}class_embedding"), &[c])?,
        pos: s.take(
            &format!("{P}positional_embedding"),
            &[1 + cfg.grid() * cfg.grid(), c],
        )?,
        pre_norm: Some(norm(s, &format!("{P}ln_pre"), c)?),
        blocks,
        final_norm: None,
        post_norm: Some(norm(s, &format!("{P}ln_post"), c)?),
        pooler: None,
    };
    s.skip(&format!("{P}proj"));
    let unused = s.untaken_with_prefix(P);
    if !unused.is_empty() {
        return Err(Error::UnexpectedTensors {
            path: s.origin().to_path_buf(),
            arch: "OpenAI-layout CLIP".into(),
            keys: unused,
        });
    }
    Ok(raw)
}
