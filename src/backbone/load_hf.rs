//! Hugging Face key layouts of `CLIPVisionModel` / `CLIPModel`, `Dinov2Model` and `ViTModel`
//! (and their `*ForImageClassification` wrappers), mapped to [`RawVit`].
//!
//! The model code knows no checkpoint key: this file holds the names. The prefix in front
//! of the keys (`vision_model.`, `vit.`, `dinov2.`, or none: transformers 5 saves
//! `CLIPVisionModel` without a prefix, 4.x with `vision_model.`) is found by probing one
//! telltale key.

use super::config::{Architecture, Pooler, VitConfig};
use super::vit::{RawBlock, RawVit};
use super::weights::WeightStore;
use crate::error::{Error, Result};

/// Row-major `[rows, cols]` to `[cols, rows]`.
pub(crate) fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// A PyTorch `nn.Linear` weight (`[out, in]`) as vidapter's `[in, out]`.
pub(crate) fn linear_w(
    s: &mut WeightStore,
    key: &str,
    d_in: usize,
    d_out: usize,
) -> Result<Vec<f32>> {
    Ok(transpose(&s.take(key, &[d_out, d_in])?, d_out, d_in))
}

/// A LayerNorm's `(weight, bias)` under `prefix`.
pub(crate) fn norm(s: &mut WeightStore, prefix: &str, c: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    Ok((
        s.take(&format!("{prefix}.weight"), &[c])?,
        s.take(&format!("{prefix}.bias"), &[c])?,
    ))
}

/// A conv patch embedding `[C, 3, p, p]` as a `[3*p*p, C]` matrix.
pub(crate) fn patch(s: &mut WeightStore, key: &str, cfg: &VitConfig) -> Result<Vec<f32>> {
    let (c, p, ch) = (cfg.hidden_size, cfg.patch_size, cfg.num_channels);
    let w = s.take(key, &[c, ch, p, p])?;
    Ok(transpose(&w, c, ch * p * p))
}

/// Concatenates three `[C, C]` projections (already `[in, out]`) along the output axis.
pub(crate) fn fuse_qkv(q: &[f32], k: &[f32], v: &[f32], c: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(3 * c * c);
    for r in 0..c {
        for m in [q, k, v] {
            out.extend_from_slice(&m[r * c..(r + 1) * c]);
        }
    }
    out
}

/// Keys that may sit beside the vision weights and are not part of the image encoder.
fn ignorable(key: &str) -> bool {
    const PREFIXES: [&str; 6] = [
        "text_model.",
        "visual_projection.",
        "text_projection.",
        "logit_scale",
        "classifier.",
        "vision_model.embeddings.position_ids",
    ];
    PREFIXES.iter().any(|p| key.starts_with(p))
        || key.ends_with("embeddings.position_ids")
        || key.ends_with("embeddings.mask_token")
}

fn detect_prefix(
    s: &WeightStore,
    candidates: &[&str],
    probe: &str,
    cfg: &VitConfig,
) -> Result<String> {
    for p in candidates {
        if s.contains(&format!("{p}{probe}")) {
            return Ok(p.to_string());
        }
    }
    let shown: Vec<String> = s
        .keys()
        .into_iter()
        .take(5)
        .map(|k| format!("`{k}`"))
        .collect();
    Err(Error::format(
        s.origin(),
        format!(
            "config.json says {}, but no `{probe}` tensor was found under any of the prefixes {candidates:?}; the file starts with {}",
            cfg.arch,
            shown.join(", ")
        ),
    ))
}

/// Reads a HF-layout checkpoint described by `cfg`. Every tensor under the model's prefix
/// must be used; tensors of other heads (text tower, classifier) are ignored.
pub(crate) fn load(s: &mut WeightStore, cfg: &VitConfig) -> Result<RawVit> {
    let raw = match cfg.arch {
        Architecture::Clip => load_clip(s, cfg)?,
        Architecture::Dinov2 | Architecture::Vit => load_vit_like(s, cfg)?,
    };
    let unused: Vec<String> = s
        .untaken_with_prefix("")
        .into_iter()
        .filter(|k| !ignorable(k))
        .collect();
    if !unused.is_empty() {
        return Err(Error::UnexpectedTensors {
            path: s.origin().to_path_buf(),
            arch: cfg.arch.to_string(),
            keys: unused,
        });
    }
    Ok(raw)
}

fn n_positions(cfg: &VitConfig) -> usize {
    1 + cfg.grid() * cfg.grid()
}

fn load_clip(s: &mut WeightStore, cfg: &VitConfig) -> Result<RawVit> {
    let p = detect_prefix(s, &["vision_model.", ""], "embeddings.class_embedding", cfg)?;
    let (c, h) = (cfg.hidden_size, cfg.intermediate_size);
    let mut blocks = Vec::with_capacity(cfg.num_layers);
    for i in 0..cfg.num_layers {
        let b = format!("{p}encoder.layers.{i}.");
        let proj = |s: &mut WeightStore, x: &str| {
            linear_w(s, &format!("{b}self_attn.{x}_proj.weight"), c, c)
        };
        let bias =
            |s: &mut WeightStore, x: &str| s.take(&format!("{b}self_attn.{x}_proj.bias"), &[c]);
        let (q, k, v) = (proj(s, "q")?, proj(s, "k")?, proj(s, "v")?);
        let qkv_b = [bias(s, "q")?, bias(s, "k")?, bias(s, "v")?].concat();
        blocks.push(RawBlock {
            norm1: norm(s, &format!("{b}layer_norm1"), c)?,
            qkv_w: fuse_qkv(&q, &k, &v, c),
            qkv_b: Some(qkv_b),
            proj_w: proj(s, "out")?,
            proj_b: bias(s, "out")?,
            ls1: None,
            norm2: norm(s, &format!("{b}layer_norm2"), c)?,
            fc1_w: linear_w(s, &format!("{b}mlp.fc1.weight"), c, h)?,
            fc1_b: s.take(&format!("{b}mlp.fc1.bias"), &[h])?,
            fc2_w: linear_w(s, &format!("{b}mlp.fc2.weight"), h, c)?,
            fc2_b: s.take(&format!("{b}mlp.fc2.bias"), &[c])?,
            ls2: None,
        });
    }
    check_no_extra_layers(s, &format!("{p}encoder.layers."), cfg)?;
    Ok(RawVit {
        patch_w: patch(s, &format!("{p}embeddings.patch_embedding.weight"), cfg)?,
        patch_b: None,
        cls: s.take(&format!("{p}embeddings.class_embedding"), &[c])?,
        pos: s.take(
            &format!("{p}embeddings.position_embedding.weight"),
            &[n_positions(cfg), c],
        )?,
        pre_norm: Some(norm(s, &format!("{p}pre_layrnorm"), c)?),
        blocks,
        final_norm: None,
        post_norm: Some(norm(s, &format!("{p}post_layernorm"), c)?),
        pooler: None,
    })
}

/// Reads the first of `keys` the file holds (the same tensor under the names of different
/// transformers generations); a missing tensor is reported under the first name.
fn take_any(s: &mut WeightStore, keys: &[String], shape: &[usize]) -> Result<Vec<f32>> {
    match keys.iter().find(|k| s.contains(k)) {
        Some(k) => s.take(k, shape),
        None => s.take(&keys[0], shape),
    }
}

/// As [`take_any`] for a `nn.Linear` weight, returned as `[in, out]`.
fn linear_any(s: &mut WeightStore, keys: &[String], d_in: usize, d_out: usize) -> Result<Vec<f32>> {
    Ok(transpose(&take_any(s, keys, &[d_out, d_in])?, d_out, d_in))
}

/// ViT and DINOv2 share a layout. Two naming generations exist: files written by
/// `save_pretrained` (all hub files) use `attention.attention.query` ...; the in-memory
/// names of transformers 5 (what `torch.save(model.state_dict())` writes) are
/// `attention.q_proj` ..., ViT's blocks sit under `layers.N` and DINOv2's SwiGLU is split
/// into `gate_proj` / `up_proj` / `down_proj`. Both are read.
fn load_vit_like(s: &mut WeightStore, cfg: &VitConfig) -> Result<RawVit> {
    let p = detect_prefix(
        s,
        &["", "vit.", "dinov2.", "model."],
        "embeddings.cls_token",
        cfg,
    )?;
    let dino = cfg.arch == Architecture::Dinov2;
    let (c, h) = (cfg.hidden_size, cfg.intermediate_size);
    let layers = if s.contains(&format!("{p}layers.0.layernorm_before.weight")) {
        format!("{p}layers.")
    } else {
        format!("{p}encoder.layer.")
    };
    let mut blocks = Vec::with_capacity(cfg.num_layers);
    for i in 0..cfg.num_layers {
        let b = format!("{layers}{i}.");
        let names = |legacy: &str, v5: &str, suffix: &str| {
            vec![format!("{b}{legacy}.{suffix}"), format!("{b}{v5}.{suffix}")]
        };
        let q = linear_any(
            s,
            &names("attention.attention.query", "attention.q_proj", "weight"),
            c,
            c,
        )?;
        let k = linear_any(
            s,
            &names("attention.attention.key", "attention.k_proj", "weight"),
            c,
            c,
        )?;
        let v = linear_any(
            s,
            &names("attention.attention.value", "attention.v_proj", "weight"),
            c,
            c,
        )?;
        let qkv_b = if cfg.qkv_bias {
            let mut bias = Vec::with_capacity(3 * c);
            for (legacy, v5) in [("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")] {
                let keys = names(
                    &format!("attention.attention.{legacy}"),
                    &format!("attention.{v5}"),
                    "bias",
                );
                bias.extend(take_any(s, &keys, &[c])?);
            }
            Some(bias)
        } else {
            None
        };
        let (n1, n2) = if dino {
            ("norm1", "norm2")
        } else {
            ("layernorm_before", "layernorm_after")
        };
        let fc1_out = if cfg.swiglu { 2 * h } else { h };
        let (fc1_w, fc1_b) = if cfg.swiglu && s.contains(&format!("{b}mlp.gate_proj.weight")) {
            // SwiGLU split in two: gate (the half passed through SiLU) then up.
            let gate = s.take(&format!("{b}mlp.gate_proj.weight"), &[h, c])?;
            let up = s.take(&format!("{b}mlp.up_proj.weight"), &[h, c])?;
            let w = transpose(&[gate, up].concat(), 2 * h, c);
            let bias = [
                s.take(&format!("{b}mlp.gate_proj.bias"), &[h])?,
                s.take(&format!("{b}mlp.up_proj.bias"), &[h])?,
            ]
            .concat();
            (w, bias)
        } else {
            let fc1 = match (dino, cfg.swiglu) {
                (true, true) => names("mlp.weights_in", "mlp.weights_in", ""),
                (true, false) => names("mlp.fc1", "mlp.fc1", ""),
                _ => names("intermediate.dense", "mlp.fc1", ""),
            };
            let key = |suffix: &str| {
                fc1.iter()
                    .map(|k| format!("{k}{suffix}"))
                    .collect::<Vec<_>>()
            };
            (
                linear_any(s, &key("weight"), c, fc1_out)?,
                take_any(s, &key("bias"), &[fc1_out])?,
            )
        };
        let fc2 = match (dino, cfg.swiglu) {
            (true, true) => names("mlp.weights_out", "mlp.down_proj", ""),
            (true, false) => names("mlp.fc2", "mlp.fc2", ""),
            _ => names("output.dense", "mlp.fc2", ""),
        };
        let key2 = |suffix: &str| {
            fc2.iter()
                .map(|k| format!("{k}{suffix}"))
                .collect::<Vec<_>>()
        };
        let ls = |s: &mut WeightStore, n: u8| -> Result<Option<Vec<f32>>> {
            if cfg.layer_scale {
                Ok(Some(s.take(&format!("{b}layer_scale{n}.lambda1"), &[c])?))
            } else {
                Ok(None)
            }
        };
        blocks.push(RawBlock {
            norm1: norm(s, &format!("{b}{n1}"), c)?,
            qkv_w: fuse_qkv(&q, &k, &v, c),
            qkv_b,
            proj_w: linear_any(
                s,
                &names("attention.output.dense", "attention.o_proj", "weight"),
                c,
                c,
            )?,
            proj_b: take_any(
                s,
                &names("attention.output.dense", "attention.o_proj", "bias"),
                &[c],
            )?,
            ls1: ls(s, 1)?,
            norm2: norm(s, &format!("{b}{n2}"), c)?,
            fc1_w,
            fc1_b,
            fc2_w: linear_any(s, &key2("weight"), h, c)?,
            fc2_b: take_any(s, &key2("bias"), &[c])?,
            ls2: ls(s, 2)?,
        });
    }
    check_no_extra_layers(s, &layers, cfg)?;
    // `ViTModel(add_pooling_layer=False)` and `*ForImageClassification` files have no pooler:
    // then `pooler_output` is the class token (Pooler::None, set by the caller).
    let pooler =
        if cfg.pooler == Pooler::DenseTanh && s.contains(&format!("{p}pooler.dense.weight")) {
            Some((
                linear_w(s, &format!("{p}pooler.dense.weight"), c, c)?,
                s.take(&format!("{p}pooler.dense.bias"), &[c])?,
            ))
        } else {
            None
        };
    Ok(RawVit {
        patch_w: patch(
            s,
            &format!("{p}embeddings.patch_embeddings.projection.weight"),
            cfg,
        )?,
        patch_b: Some(s.take(
            &format!("{p}embeddings.patch_embeddings.projection.bias"),
            &[c],
        )?),
        cls: s.take(&format!("{p}embeddings.cls_token"), &[1, 1, c])?,
        pos: s.take(
            &format!("{p}embeddings.position_embeddings"),
            &[1, n_positions(cfg), c],
        )?,
        pre_norm: None,
        blocks,
        final_norm: Some(norm(s, &format!("{p}layernorm"), c)?),
        post_norm: None,
        pooler,
    })
}

/// A checkpoint with more blocks than `num_hidden_layers` is a config/weights mismatch.
pub(crate) fn check_no_extra_layers(
    s: &WeightStore,
    layer_prefix: &str,
    cfg: &VitConfig,
) -> Result<()> {
    let extra = s
        .keys()
        .into_iter()
        .filter_map(|k| k.strip_prefix(layer_prefix))
        .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
        .max();
    match extra {
        Some(n) if n >= cfg.num_layers => Err(Error::format(
            s.origin(),
            format!(
                "the weights hold {} blocks (`{layer_prefix}{n}...`) but config.json says num_hidden_layers = {}",
                n + 1,
                cfg.num_layers
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_axes() {
        assert_eq!(
            transpose(&[1., 2., 3., 4., 5., 6.], 2, 3),
            vec![1., 4., 2., 5., 3., 6.]
        );
    }

    #[test]
    fn fused_qkv_keeps_q_k_v_blocks_per_input_row() {
        let (q, k, v) = ([1., 2., 3., 4.], [5., 6., 7., 8.], [9., 10., 11., 12.]);
        assert_eq!(
            fuse_qkv(&q, &k, &v, 2),
            vec![1., 2., 5., 6., 9., 10., 3., 4., 7., 8., 11., 12.]
        );
    }
}
