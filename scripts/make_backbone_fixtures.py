"""Generate the tiny backbone fixtures and their transformers reference outputs.

Run from the repository root (needs torch, transformers, safetensors):

    python scripts/make_backbone_fixtures.py

Writes tests/fixtures/backbones/<name>/ with the model files (config.json, weights in the
layout and dtype under test) and reference_<case>.safetensors holding `pixel_values`,
`hidden_states.{i}`, `last_hidden_state` and `pooler_output` exactly as transformers returns
them with output_hidden_states=True. Everything is seeded, so re-running gives the same files.
The versions used are written to tests/fixtures/backbones/VERSIONS.txt.
"""

import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    Dinov2Config,
    Dinov2Model,
    ViTConfig,
    ViTModel,
)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "backbones")


def randomize(model, seed):
    """Replace HF's init (LayerNorm = identity, zero biases) by values that exercise every weight."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or "layrnorm" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "lambda1" in name:  # DINOv2 LayerScale
                p.copy_(0.5 + 0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1 and name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2 and ("weight" in name or "projection" in name):
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
            else:  # class / mask tokens, position embeddings
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return model.eval()


def round_to(model, dtype):
    """Round weights through `dtype` so the f32 reference sees what the file stores."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    return model


def save_weights(state, folder, dtype=torch.float32, name="model.safetensors"):
    state = {k: v.detach().to(dtype).contiguous() for k, v in state.items()}
    save_file(state, os.path.join(folder, name), metadata={"format": "pt"})


def reference(module, folder, case, pixels, **kwargs):
    with torch.no_grad():
        out = module(pixel_values=pixels, output_hidden_states=True, **kwargs)
    tensors = {"pixel_values": pixels.contiguous()}
    for i, h in enumerate(out.hidden_states):
        tensors[f"hidden_states.{i}"] = h.clone().contiguous()
    tensors["last_hidden_state"] = out.last_hidden_state.clone().contiguous()
    tensors["pooler_output"] = out.pooler_output.clone().contiguous()
    save_file(tensors, os.path.join(folder, f"reference_{case}.safetensors"))
    return out


def pixels(seed, h, w, n=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, 3, h, w), generator=g)


def fresh(name):
    folder = os.path.join(ROOT, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    return folder


def vit():
    folder = fresh("vit")
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                    image_size=32, patch_size=8)
    model = randomize(ViTModel(cfg, add_pooling_layer=True), 1)
    model.save_pretrained(folder, safe_serialization=True)
    reference(model, folder, "default", pixels(10, 32, 32))
    reference(model, folder, "interp", pixels(11, 48, 40), interpolate_pos_encoding=True)


def clip_vision_f16():
    folder = fresh("clip_vision_f16")
    cfg = CLIPVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                           image_size=32, patch_size=8)
    model = round_to(randomize(CLIPVisionModel(cfg), 2), torch.float16)
    cfg.save_pretrained(folder)
    # transformers 4.x wrote CLIPVisionModel keys under `vision_model.` (most hub files have
    # them so); 5.x writes them bare. The other CLIP fixtures cover the bare and full-model forms.
    state = {"vision_model." + k: v for k, v in model.state_dict().items()}
    save_weights(state, folder, torch.float16)
    reference(model, folder, "default", pixels(20, 32, 32))
    reference(model, folder, "interp", pixels(21, 40, 24), interpolate_pos_encoding=True)


def clip_full_sharded():
    folder = fresh("clip_full_sharded")
    cfg = CLIPConfig(
        text_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         vocab_size=64, max_position_embeddings=8),
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    model = randomize(CLIPModel(cfg), 3)
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="20KB")
    assert os.path.exists(os.path.join(folder, "model.safetensors.index.json")), "expected a sharded save"
    reference(model.vision_model, folder, "default", pixels(30, 32, 32))


def v5_names(name, make_model, seed, pix):
    """The same kind of model saved with transformers 5's in-memory names (what
    `save_file(model.state_dict())` writes), which differ from save_pretrained's."""
    folder = fresh(name)
    model = make_model()
    randomize(model, seed)
    model.config.save_pretrained(folder)
    save_weights(model.state_dict(), folder)
    reference(model, folder, "default", pix)


def dinov2_bf16():
    folder = fresh("dinov2_bf16")
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, mlp_ratio=2,
                       image_size=56, patch_size=14)
    model = round_to(randomize(Dinov2Model(cfg), 4), torch.bfloat16)
    cfg.save_pretrained(folder)
    save_weights(model.state_dict(), folder, torch.bfloat16)
    reference(model, folder, "default", pixels(40, 56, 56))
    # (Saved from state_dict(): transformers 5's in-memory names, `attention.q_proj` ...)
    # A 5x3 grid from the trained 4x4 one: upsampling one axis, downsampling the other.
    reference(model, folder, "interp", pixels(41, 70, 42))


def dinov2_swiglu():
    folder = fresh("dinov2_swiglu")
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=4,
                       image_size=28, patch_size=14, use_swiglu_ffn=True)
    model = randomize(Dinov2Model(cfg), 5)
    model.save_pretrained(folder, safe_serialization=True)
    reference(model, folder, "default", pixels(50, 28, 28))


def vit_v5_names():
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    image_size=32, patch_size=8)
    v5_names("vit_v5_names", lambda: ViTModel(cfg, add_pooling_layer=True), 7, pixels(70, 32, 32))


def dinov2_swiglu_v5_names():
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=4,
                       image_size=28, patch_size=14, use_swiglu_ffn=True)
    v5_names("dinov2_swiglu_v5_names", lambda: Dinov2Model(cfg), 8, pixels(80, 28, 28))


def to_openai(state, width):
    """HF CLIPVisionModel keys (5.x, unprefixed) -> OpenAI CLIP's `visual.*` layout."""
    out = {}
    p = ""
    out["visual.conv1.weight"] = state[p + "embeddings.patch_embedding.weight"]
    out["visual.class_embedding"] = state[p + "embeddings.class_embedding"]
    out["visual.positional_embedding"] = state[p + "embeddings.position_embedding.weight"]
    out["visual.ln_pre.weight"] = state[p + "pre_layrnorm.weight"]
    out["visual.ln_pre.bias"] = state[p + "pre_layrnorm.bias"]
    out["visual.ln_post.weight"] = state[p + "post_layernorm.weight"]
    out["visual.ln_post.bias"] = state[p + "post_layernorm.bias"]
    i = 0
    while f"{p}encoder.layers.{i}.layer_norm1.weight" in state:
        s = f"{p}encoder.layers.{i}."
        d = f"visual.transformer.resblocks.{i}."
        out[d + "attn.in_proj_weight"] = torch.cat([state[s + f"self_attn.{x}_proj.weight"] for x in "qkv"])
        out[d + "attn.in_proj_bias"] = torch.cat([state[s + f"self_attn.{x}_proj.bias"] for x in "qkv"])
        out[d + "attn.out_proj.weight"] = state[s + "self_attn.out_proj.weight"]
        out[d + "attn.out_proj.bias"] = state[s + "self_attn.out_proj.bias"]
        out[d + "ln_1.weight"] = state[s + "layer_norm1.weight"]
        out[d + "ln_1.bias"] = state[s + "layer_norm1.bias"]
        out[d + "ln_2.weight"] = state[s + "layer_norm2.weight"]
        out[d + "ln_2.bias"] = state[s + "layer_norm2.bias"]
        out[d + "mlp.c_fc.weight"] = state[s + "mlp.fc1.weight"]
        out[d + "mlp.c_fc.bias"] = state[s + "mlp.fc1.bias"]
        out[d + "mlp.c_proj.weight"] = state[s + "mlp.fc2.weight"]
        out[d + "mlp.c_proj.bias"] = state[s + "mlp.fc2.bias"]
        i += 1
    g = torch.Generator().manual_seed(99)
    # The joint-embedding projection and a few text-side tensors, as a full OpenAI file has them.
    out["visual.proj"] = torch.randn((width, 16), generator=g)
    out["positional_embedding"] = torch.randn((8, 16), generator=g)
    out["token_embedding.weight"] = torch.randn((64, 16), generator=g)
    out["logit_scale"] = torch.tensor(4.6052)
    return out


def openai_clip():
    folder = fresh("openai_clip")
    # OpenAI's convention: heads = width / 64, QuickGELU, eps 1e-5; nothing else is needed.
    cfg = CLIPVisionConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
                           image_size=32, patch_size=8)
    model = randomize(CLIPVisionModel(cfg), 6)
    save_weights(to_openai(model.state_dict(), 128), folder, name="open_clip_model.safetensors")
    reference(model, folder, "default", pixels(60, 32, 32))


def main():
    torch.set_num_threads(1)
    os.makedirs(ROOT, exist_ok=True)
    for make in (vit, clip_vision_f16, clip_full_sharded, dinov2_bf16, dinov2_swiglu, openai_clip,
                 vit_v5_names, dinov2_swiglu_v5_names):
        make()
        print("wrote", make.__name__)
    with open(os.path.join(ROOT, "VERSIONS.txt"), "w") as f:
        f.write(f"python {sys.version.split()[0]}\ntorch {torch.__version__}\ntransformers {transformers.__version__}\n")


if __name__ == "__main__":
    main()
