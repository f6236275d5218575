//! Writes a ViT in transformers' `ViTModel` layout (`config.json`, `model.safetensors`,
//! `preprocessor_config.json`), so that a model vidapter trained (the demo's image
//! classifier, or a fully fine-tuned backbone) is an ordinary backbone folder that vidapter
//! and transformers both load. The inverse of `load_hf.rs` for `Architecture::Vit`.

use std::path::Path;

use serde_json::json;

use super::config::{Activation, Architecture, Pooler};
use super::vit::VisionTransformer;
use super::weights::write_f32;
use crate::error::{Error, Result};

/// `[rows, cols]` row-major -> `[cols, rows]`.
fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = w[r * cols + c];
        }
    }
    out
}

/// Saves `model` (a plain ViT: no pre-norm, LayerScale or SwiGLU) into `dir`.
pub fn save_vit_hf(model: &VisionTransformer, dir: &Path) -> Result<()> {
    let cfg = model.config();
    let unsupported =
        cfg.arch != Architecture::Vit || cfg.pre_norm || cfg.layer_scale || cfg.swiglu;
    if unsupported || !cfg.final_norm {
        return Err(Error::Input(format!(
            "only plain ViT backbones ({:?} given) can be written in the ViTModel layout",
            cfg.arch
        )));
    }
    let act = match cfg.act {
        Activation::Gelu => "gelu",
        Activation::GeluTanh => "gelu_pytorch_tanh",
        Activation::QuickGelu => "quick_gelu",
        Activation::Relu => "relu",
        Activation::Silu => "silu",
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let raw = model.to_raw();
    let (c, h, p, ch) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.patch_size,
        cfg.num_channels,
    );
    let n_pos = raw.pos.len() / c;
    let mut t: Vec<(String, Vec<usize>, Vec<f32>)> = vec![
        ("embeddings.cls_token".into(), vec![1, 1, c], raw.cls),
        (
            "embeddings.position_embeddings".into(),
            vec![1, n_pos, c],
            raw.pos,
        ),
        (
            "embeddings.patch_embeddings.projection.weight".into(),
            vec![c, ch, p, p],
            transpose(&raw.patch_w, ch * p * p, c),
        ),
        (
            "embeddings.patch_embeddings.projection.bias".into(),
            vec![c],
            raw.patch_b.unwrap_or_else(|| vec![0.0; c]),
        ),
    ];
    for (i, b) in raw.blocks.into_iter().enumerate() {
        let pre = format!("encoder.layer.{i}.");
        // qkv is [C, 3C] (in, out) with q | k | v along the output axis.
        let qkv_t = transpose(&b.qkv_w, c, 3 * c); // [3C, C]
        for (j, name) in ["query", "key", "value"].iter().enumerate() {
            t.push((
                format!("{pre}attention.attention.{name}.weight"),
                vec![c, c],
                qkv_t[j * c * c..(j + 1) * c * c].to_vec(),
            ));
            let bias = b
                .qkv_b
                .as_ref()
                .map_or_else(|| vec![0.0; c], |q| q[j * c..(j + 1) * c].to_vec());
            t.push((
                format!("{pre}attention.attention.{name}.bias"),
                vec![c],
                bias,
            ));
        }
        t.push((
            format!("{pre}attention.output.dense.weight"),
            vec![c, c],
            transpose(&b.proj_w, c, c),
        ));
        t.push((
            format!("{pre}attention.output.dense.bias"),
            vec![c],
            b.proj_b,
        ));
        t.push((format!("{pre}layernorm_before.weight"), vec![c], b.norm1.0));
        t.push((format!("{pre}layernorm_before.bias"), vec![c], b.norm1.1));
        t.push((format!("{pre}layernorm_after.weight"), vec![c], b.norm2.0));
        t.push((format!("{pre}layernorm_after.bias"), vec![c], b.norm2.1));
        t.push((
            format!("{pre}intermediate.dense.weight"),
            vec![h, c],
            transpose(&b.fc1_w, c, h),
        ));
        t.push((format!("{pre}intermediate.dense.bias"), vec![h], b.fc1_b));
        t.push((
            format!("{pre}output.dense.weight"),
            vec![c, h],
            transpose(&b.fc2_w, h, c),
        ));
        t.push((format!("{pre}output.dense.bias"), vec![c], b.fc2_b));
    }
    let (g, beta) = raw.final_norm.expect("checked above");
    t.push(("layernorm.weight".into(), vec![c], g));
    t.push(("layernorm.bias".into(), vec![c], beta));
    if let (Pooler::DenseTanh, Some((w, b))) = (cfg.pooler, raw.pooler) {
        t.push((
            "pooler.dense.weight".into(),
            vec![c, c],
            transpose(&w, c, c),
        ));
        t.push(("pooler.dense.bias".into(), vec![c], b));
    }
    write_f32(&dir.join("model.safetensors"), &t)?;
    let config = json!({
        "architectures": ["ViTModel"],
        "model_type": "vit",
        "hidden_size": c,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": h,
        "hidden_act": act,
        "layer_norm_eps": cfg.layer_norm_eps,
        "image_size": cfg.image_size,
        "patch_size": p,
        "num_channels": ch,
        "qkv_bias": cfg.qkv_bias,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "add_pooling_layer": cfg.pooler == Pooler::DenseTanh,
        "pooler_act": "tanh",
        "pooler_output_size": c,
        "torch_dtype": "float32",
    });
    let pre = json!({
        "image_mean": cfg.image_mean,
        "image_std": cfg.image_std,
        "size": {"height": cfg.image_size, "width": cfg.image_size},
        "image_processor_type": "ViTImageProcessor",
    });
    for (name, v) in [("config.json", config), ("preprocessor_config.json", pre)] {
        let path = dir.join(name);
        crate::util::write_atomic(
            &path,
            serde_json::to_string_pretty(&v).expect("json").as_bytes(),
        )?;
    }
    Ok(())
}
