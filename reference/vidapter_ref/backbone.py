"""A transformers image model (ViT, CLIP vision tower, DINOv2) seen through vidapter's seams.

vidapter's `VisionTransformer` (`src/backbone/vit.rs`) exposes `embed`, per-block
`attn_residual` / `mlp_residual` halves and `finish`; in-backbone methods put adapters between
them. `HFBackbone` gives the same seams over the transformers modules themselves, calling each
block's own submodules (ViTLayer, CLIPEncoderLayer, Dinov2Layer) so that nothing of the
backbone is re-implemented here:

    embed:  ViT / DINOv2: embeddings(pixels)       CLIP: pre_layrnorm(embeddings(pixels))
    attn half:  x + ls1 * attention(norm1(x))      (ls1 only in DINOv2: layer_scale1)
    mlp half:   x + ls2 * mlp(norm2(x))
    final_norm: ViT / DINOv2: layernorm            CLIP: none
    pool(cls):  CLIP: post_layernorm(cls)          ViT / DINOv2: the final layernorm of cls
                (ViT's tanh pooler is not used by any method, as in vidapter)

It also maps vidapter's backbone paths (`backbone.blocks.0.attn.qkv.weight [C, 3C]`, ...) to
the transformers parameters, in vidapter's orientation: linear weights `[in, out]`, q|k|v fused
along the output axis, the patch projection `[3*p*p, C]` with input order (channel, row,
column), class token `[C]`, position table `[1+N, C]` (see `RawVit` in vit.rs).

Written against transformers 5.x module names (`attention.q_proj`, `mlp.fc1`, ...); the
versions the fixtures were made with are in `tests/fixtures/methods/VERSIONS.txt`.
"""

import json
import os

import torch
from torch import nn
from transformers import CLIPVisionModel, Dinov2Model, ViTModel


class Entry:
    """One vidapter backbone tensor and the transformers parameters it is made of.

    kind: "same" (reshape only), "linear" (weight [out, in] -> [in, out]), "fused_w"
    (q, k, v weights -> [C, 3C]), "fused_b" (q, k, v biases -> [3C]), "patch"
    (conv weight [C, 3, p, p] -> [3*p*p, C]).
    """

    def __init__(self, kind, params, shape=None):
        self.kind, self.params, self.shape = kind, params, shape

    def to_vidapter(self, tensors):
        """The vidapter-orientation tensor made from `tensors` (values or gradients of
        `self.params`, in order)."""
        if self.kind == "same":
            return tensors[0].reshape(self.shape)
        if self.kind == "linear":
            return tensors[0].t()
        if self.kind == "fused_w":
            return torch.cat(tensors, dim=0).t()
        if self.kind == "fused_b":
            return torch.cat(tensors, dim=0)
        if self.kind == "patch":
            return tensors[0].reshape(tensors[0].shape[0], -1).t()
        raise ValueError(self.kind)

    def value(self):
        return self.to_vidapter([p.detach() for p in self.params])

    def grad(self):
        """The gradient in vidapter's orientation, or None where autograd gave none."""
        if any(p.grad is None for p in self.params):
            return None
        return self.to_vidapter([p.grad for p in self.params])

    def set(self, v):
        """Writes the vidapter-orientation tensor `v` into the transformers parameters."""
        with torch.no_grad():
            if self.kind == "same":
                self.params[0].copy_(v.reshape(self.params[0].shape))
            elif self.kind in ("linear", "patch"):
                self.params[0].copy_(v.t().reshape(self.params[0].shape))
            elif self.kind in ("fused_w", "fused_b"):
                parts = (v.t() if self.kind == "fused_w" else v).chunk(len(self.params), dim=0)
                for p, part in zip(self.params, parts):
                    p.copy_(part)
            else:
                raise ValueError(self.kind)


def _linear(prefix, lin, entries):
    entries[f"{prefix}.weight"] = Entry("linear", [lin.weight])
    if lin.bias is not None:
        entries[f"{prefix}.bias"] = Entry("same", [lin.bias], lin.bias.shape)


def _norm(prefix, ln, entries):
    entries[f"{prefix}.gamma"] = Entry("same", [ln.weight], ln.weight.shape)
    entries[f"{prefix}.beta"] = Entry("same", [ln.bias], ln.bias.shape)


class HFBackbone(nn.Module):
    """vidapter's seams over a transformers model; `family` is "vit", "clip" or "dinov2"."""

    def __init__(self, model, family):
        super().__init__()
        if family not in ("vit", "clip", "dinov2"):
            raise ValueError(f"unknown backbone family {family!r}")
        self.model, self.family = model, family

    @property
    def layers(self):
        """The transformers blocks, in order. Where they sit moved between transformers
        releases (5.24's ViTModel holds `layers` itself; CLIP has `encoder.layers`, DINOv2
        `encoder.layer`), so look in each place."""
        m = self.model
        for owner, attr in ((m, "layers"), (getattr(m, "encoder", None), "layers"),
                            (getattr(m, "encoder", None), "layer")):
            if owner is not None and isinstance(getattr(owner, attr, None), nn.ModuleList):
                return getattr(owner, attr)
        raise ValueError(f"{type(m).__name__}: cannot find its transformer blocks")

    @property
    def hidden_size(self):
        return self.model.config.hidden_size

    def embed(self, pixels):
        """pixels [B, 3, H, W] -> hidden_states[0] [B, 1+N, C]. Position embeddings are
        resampled when the grid differs from the trained one, as vidapter always does."""
        m = self.model
        if self.family == "vit":
            return m.embeddings(pixels, interpolate_pos_encoding=True)
        if self.family == "clip":
            return m.pre_layrnorm(m.embeddings(pixels, interpolate_pos_encoding=True))
        return m.embeddings(pixels)  # DINOv2 always interpolates

    def attn_half(self, i, x):
        """Block i's first half: x + ls1 * Attn(LN1(x))."""
        layer = self.layers[i]
        if self.family == "vit":
            return x + layer.attention(layer.layernorm_before(x))[0]
        if self.family == "clip":
            return x + layer.self_attn(hidden_states=layer.layer_norm1(x))[0]
        return x + layer.layer_scale1(layer.attention(layer.norm1(x))[0])

    def mlp_half(self, i, x):
        """Block i's second half: x + ls2 * MLP(LN2(x))."""
        layer = self.layers[i]
        if self.family == "vit":
            return x + layer.mlp(layer.layernorm_after(x))
        if self.family == "clip":
            return x + layer.mlp(layer.layer_norm2(x))
        return x + layer.layer_scale2(layer.mlp(layer.norm2(x)))

    @property
    def patch_size(self):
        return self.model.config.patch_size

    @property
    def trained_grid(self):
        """The patch grid `(gh, gw)` of the trained image size (vidapter's `VitConfig::grid`)."""
        g = self.model.config.image_size // self.model.config.patch_size
        return (g, g)

    def query_key(self, i, x):
        """Block i's attention queries and keys for its input x [B, L, C]: the frozen block's
        q and k projections of LN1(x), unscaled, each [B, L, heads, C/heads] (vidapter's
        `Block::query_key`, which EVL's temporal cross-attention reads)."""
        layer = self.layers[i]
        if self.family == "vit":
            attn, ln1 = layer.attention, layer.layernorm_before
        elif self.family == "clip":
            attn, ln1 = layer.self_attn, layer.layer_norm1
        else:
            attn, ln1 = layer.attention, layer.norm1
        y = ln1(x)
        heads = self.model.config.num_attention_heads
        shape = (*x.shape[:2], heads, x.shape[2] // heads)
        return attn.q_proj(y).reshape(shape), attn.k_proj(y).reshape(shape)

    def pool(self, x):
        """The pooled feature of class tokens x [..., C] (vidapter's `frame_features` on a
        `[*, 1, C]` input): CLIP's post-LN, ViT / DINOv2's final LN."""
        if self.family == "clip":
            return self.model.post_layernorm(x)
        return self.model.layernorm(x)

    def vidapter_entries(self):
        """vidapter path (without `backbone.`) -> Entry, for every backbone tensor vidapter
        has (what full fine-tuning trains)."""
        m, e = self.model, {}
        if self.family == "dinov2" and m.config.use_swiglu_ffn:
            # vidapter fuses SwiGLU's gate and up projections into one fc1: not mapped here.
            raise ValueError("the reference's path map does not cover SwiGLU DINOv2 (full fine-tuning)")
        emb = m.embeddings
        c = self.hidden_size
        if self.family == "clip":
            e["patch_w"] = Entry("patch", [emb.patch_embedding.weight])
            e["cls"] = Entry("same", [emb.class_embedding], (c,))
            e["pos"] = Entry("same", [emb.position_embedding.weight], emb.position_embedding.weight.shape)
            _norm("pre_norm", m.pre_layrnorm, e)
        else:
            proj = emb.patch_embeddings.projection
            e["patch_w"] = Entry("patch", [proj.weight])
            if proj.bias is not None:
                e["patch_b"] = Entry("same", [proj.bias], proj.bias.shape)
            e["cls"] = Entry("same", [emb.cls_token], (c,))
            n_pos = emb.position_embeddings.shape[1]
            e["pos"] = Entry("same", [emb.position_embeddings], (n_pos, c))
        for i, layer in enumerate(self.layers):
            p = f"blocks.{i}"
            if self.family == "vit":
                attn, ln1, ln2 = layer.attention, layer.layernorm_before, layer.layernorm_after
                out = attn.o_proj
            elif self.family == "clip":
                attn, ln1, ln2 = layer.self_attn, layer.layer_norm1, layer.layer_norm2
                out = attn.out_proj
            else:
                attn, ln1, ln2 = layer.attention, layer.norm1, layer.norm2
                out = attn.o_proj
            _norm(f"{p}.norm1", ln1, e)
            qkv = [attn.q_proj, attn.k_proj, attn.v_proj]
            e[f"{p}.attn.qkv.weight"] = Entry("fused_w", [l.weight for l in qkv])
            if qkv[0].bias is not None:
                e[f"{p}.attn.qkv.bias"] = Entry("fused_b", [l.bias for l in qkv])
            _linear(f"{p}.attn.proj", out, e)
            if self.family == "dinov2":
                e[f"{p}.ls1"] = Entry("same", [layer.layer_scale1.lambda1], (c,))
                e[f"{p}.ls2"] = Entry("same", [layer.layer_scale2.lambda1], (c,))
            _norm(f"{p}.norm2", ln2, e)
            _linear(f"{p}.mlp.fc1", layer.mlp.fc1, e)
            _linear(f"{p}.mlp.fc2", layer.mlp.fc2, e)
        if self.family == "clip":
            _norm("post_norm", m.post_layernorm, e)
        else:
            _norm("final_norm", m.layernorm, e)
        if self.family == "vit" and m.pooler is not None:
            _linear("pooler", m.pooler.dense, e)
        return e


def load_backbone(folder):
    """Loads a transformers model folder (config.json + weights) in float32 with eager
    attention, wrapped in `HFBackbone`."""
    with open(os.path.join(folder, "config.json")) as f:
        model_type = json.load(f)["model_type"]
    kinds = {
        "vit": (ViTModel, "vit"),
        "clip_vision_model": (CLIPVisionModel, "clip"),
        "dinov2": (Dinov2Model, "dinov2"),
    }
    if model_type not in kinds:
        raise ValueError(f"{folder}/config.json: model_type {model_type!r} is not one of {list(kinds)}")
    cls, family = kinds[model_type]
    model = cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    return HFBackbone(model.eval(), family)
