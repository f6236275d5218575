"""Generate the method parity fixtures from the PyTorch reference in reference/vidapter_ref.

Run from anywhere (needs torch, transformers, safetensors; plain `pip install torch
transformers safetensors` from PyPI):

    python scripts/make_method_fixtures.py                  # every fixture
    python scripts/make_method_fixtures.py vit-evl ...      # only the named ones

For every in-backbone method (FE-Adapter, ST-Adapter before attention, ST-Adapter before
attention and MLP, linear probe, full fine-tuning) on each of the tiny committed backbones
(vit, clip_vision_f16, dinov2_bf16), and for the side branches (M-adapter, EVL: every option on
the ViT, the defaults on all three; SIDE_CASES) and the adapters with the class token adapted
(CLS_CASES), writes
tests/fixtures/methods/<backbone>-<case>.safetensors:

    clips        f16 [B, T, 3, H, W]    B = 2, T = 4; the f16 values, exactly, are the input
    labels       i64 [B]
    model.<path> f32                    random non-zero trainable tensors in vidapter's
                                        orientation (full fine-tuning: only `head.*`; its
                                        backbone tensors are the backbone fixture's own)
    logits       f32 [B, K]             PyTorch's, K = 5
    loss         f32 [1]                cross-entropy, label smoothing 0.1
    grad.<path>  f32                    d loss / d tensor for every trainable tensor that gets
                                        a gradient, in vidapter's orientation

and the metadata key `vidapter_parity`: JSON `{"method": <the [method] table>, "backbone",
"classes", "label_smoothing"}`. Input sizes are chosen for small files and to cover three patch grids:
ViT 24x24 (3x3, resampled positions), CLIP 32x32 (4x4, the trained grid), DINOv2 28x28 (2x2);
one EVL case runs the ViT at 40x40 (5x5, larger than the trained 4x4 grid).
Before writing anything, the reference backbone's seams are checked against the committed
transformers outputs of tests/fixtures/backbones/<name>/reference_default.safetensors.
Everything is seeded (each case has its own seed), so re-running gives the same files.
Versions go to VERSIONS.txt.
"""

import json
import os
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "reference"))

from vidapter_ref import (  # noqa: E402
    VideoClassifier,
    cross_entropy,
    load_backbone,
    load_trainable,
    trainable_grads,
    trainable_tensors,
)

BACKBONES = os.path.join(ROOT, "tests", "fixtures", "backbones")
OUT = os.path.join(ROOT, "tests", "fixtures", "methods")
B, T, CLASSES, SMOOTHING = 2, 4, 5, 0.1

# Input side per backbone (see the docstring).
SIZES = {"vit": 24, "clip_vision_f16": 32, "dinov2_bf16": 28}

# (case, [method] table) per backbone. Every field is written out, so the fixture does not
# depend on defaults; the variations cover the adapter's options across backbones.
CASES = {
    "vit": [
        ("fe_adapter", dict(kind="fe_adapter", bottleneck=4, kernel=[3, 3, 3], dilations=[1, 2, 3], gate=True,
                            act="gelu", placement="before_attn", blocks="all", dropout=0.0)),
        ("st_adapter", dict(kind="st_adapter", bottleneck=4, kernel=[3, 1, 1], placement="before_attn",
                            blocks="all", dropout=0.0)),
        ("st_adapter_both", dict(kind="st_adapter", bottleneck=4, kernel=[3, 1, 1], placement="both",
                                 blocks="all", dropout=0.0)),
        ("linear_probe", dict(kind="linear_probe", dropout=0.0)),
        ("full_finetune", dict(kind="full_finetune", dropout=0.0, backbone_lr_scale=0.1)),
    ],
    "clip_vision_f16": [
        ("fe_adapter", dict(kind="fe_adapter", bottleneck=6, kernel=[3, 3, 3], dilations=[1, 2, 3], gate=True,
                            act="identity", placement="before_attn", blocks="all", dropout=0.0)),
        ("st_adapter", dict(kind="st_adapter", bottleneck=4, kernel=[3, 1, 1], placement="before_attn",
                            blocks="all", dropout=0.0)),
        ("st_adapter_both", dict(kind="st_adapter", bottleneck=4, kernel=[3, 3, 3], placement="both",
                                 blocks="all", dropout=0.0)),
        ("linear_probe", dict(kind="linear_probe", dropout=0.0)),
        ("full_finetune", dict(kind="full_finetune", dropout=0.0, backbone_lr_scale=0.1)),
    ],
    "dinov2_bf16": [
        ("fe_adapter", dict(kind="fe_adapter", bottleneck=4, kernel=[3, 3, 3], dilations=[1, 3], gate=False,
                            act="gelu", placement="before_attn", blocks="last:2", dropout=0.0)),
        ("st_adapter", dict(kind="st_adapter", bottleneck=4, kernel=[3, 1, 1], placement="before_attn",
                            blocks=[0, 2], dropout=0.0)),
        ("st_adapter_both", dict(kind="st_adapter", bottleneck=4, kernel=[3, 1, 1], placement="both",
                                 blocks="all", dropout=0.0)),
        ("linear_probe", dict(kind="linear_probe", dropout=0.0)),
        ("full_finetune", dict(kind="full_finetune", dropout=0.0, backbone_lr_scale=0.1)),
    ],
}


# Side branches: (backbone, case, [method] table, input side or None for SIZES). Seeds start at
# 200, after the in-backbone cases' 100.., so adding cases here leaves those files unchanged.
# Widths are small to keep the files small; fields left out (`heads`, `qkv_dim`) take
# vidapter's default on purpose.
M_DEFAULT = dict(kind="m_adapter", blocks="all", width=16, fusion="gated", temporal="conv", frames=8,
                 pool="mean", grid_pool=1, dropout=0.0)
EVL_DEFAULT = dict(kind="evl", levels=2, mlp_factor=1.0, mlp_dropout=0.0, temporal_conv=True,
                   conv_init="torch", temporal_pos_embed=True, temporal_cross_attention=True,
                   frames=8, dropout=0.0)
SIDE_CASES = [
    # M-adapter: the defaults (gated fusion, temporal conv, mean readout, every block).
    ("vit", "m_adapter", M_DEFAULT, None),
    # Sum fusion; temporal attention with 2 heads and a position table made for 8 frames,
    # resampled to the clips' 4.
    ("vit", "m_adapter_sum_attention",
     dict(M_DEFAULT, fusion="sum", temporal="attention", heads=2, frames=8), None),
    # Concat-projection fusion, class-token readout, a level subset (blocks 0 and 2).
    ("vit", "m_adapter_concat_cls", dict(M_DEFAULT, fusion="concat_proj", pool="cls", blocks=[0, 2]),
     None),
    # Grid pooling of the 3x3 grid by 2 (one window, the ragged edge dropped), the last two
    # levels, temporal attention with 4 heads and a table of exactly T = 4 rows.
    ("vit", "m_adapter_grid_pool",
     dict(M_DEFAULT, grid_pool=2, blocks="last:2", temporal="attention", heads=4, frames=4), None),
    # EVL: two decoder levels, temporal conv, position table (resampled 8 -> 4), temporal
    # cross-attention with the trained grid's offset tables (3x3 grid inside the 4x4 tables),
    # q/k/v as wide as the backbone with the default head count (1 for width 32), an MLP of
    # 1 x the width (the default 4 x would double the file).
    ("vit", "evl", EVL_DEFAULT, None),
    # Every block as a level: the cross-attention of block 0 reads the embeddings; narrower
    # q/k/v with 4 heads.
    ("vit", "evl_levels3", dict(EVL_DEFAULT, levels=3, qkv_dim=16, heads=4, frames=4, conv_init="zero"),
     None),
    # Only the decoder: no temporal conv, position table or cross-attention.
    ("vit", "evl_plain", dict(EVL_DEFAULT, heads=2, temporal_conv=False,
                              temporal_pos_embed=False, temporal_cross_attention=False), None),
    # A 5x5 grid, larger than the trained 4x4: relative offsets clamped to the tables; an MLP
    # of 1.5 x 32 = 48.
    ("vit", "evl_big_grid", dict(EVL_DEFAULT, levels=1, mlp_factor=1.5, frames=4), 40),
    ("clip_vision_f16", "m_adapter", M_DEFAULT, None),
    # CLIP's 4x4 grid pooled to 2x2, concat fusion, class-token readout.
    ("clip_vision_f16", "m_adapter_grid_pool",
     dict(M_DEFAULT, grid_pool=2, fusion="concat_proj", pool="cls"), None),
    # Both CLIP blocks: block 0's queries and keys come from the pre-normed embeddings.
    ("clip_vision_f16", "evl", EVL_DEFAULT, None),
    ("dinov2_bf16", "m_adapter", M_DEFAULT, None),
    ("dinov2_bf16", "evl", EVL_DEFAULT, None),
    # M-adapter's temporal module followed by GELU (`temporal_act = "gelu"`).
    ("vit", "m_adapter_gelu_act", dict(M_DEFAULT, temporal_act="gelu"), None),
]

# The class token through the adapter too (`adapt_cls`): (backbone, case, table, size) as
# SIDE_CASES, seeds from 300 so the files above stay unchanged. ST's 3x3x3 kernel on CLIP
# checks that only the spatial centre taps meet the 1 x 1 class-token grid.
CLS_CASES = [
    ("vit", "fe_adapter_cls", dict(CASES["vit"][0][1], adapt_cls=True), None),
    ("vit", "st_adapter_cls", dict(CASES["vit"][1][1], adapt_cls=True), None),
    ("clip_vision_f16", "st_adapter_both_cls", dict(CASES["clip_vision_f16"][2][1], adapt_cls=True), None),
]


def check_seams(name, bb):
    """The reference's embed / halves / pool reproduce transformers' own forward (the committed
    backbone references), so a parity failure later cannot come from the seams."""
    ref = load_file(os.path.join(BACKBONES, name, "reference_default.safetensors"))
    pixels = ref["pixel_values"]
    with torch.no_grad():
        x = bb.embed(pixels)
        for i in range(len(bb.layers)):
            x = bb.mlp_half(i, bb.attn_half(i, x))
            want = ref[f"hidden_states.{i + 1}"]
            assert torch.allclose(x, want, rtol=1e-5, atol=1e-5), f"{name}: block {i} differs from transformers"
        pooled = bb.pool(x[:, 0])
    want = ref["pooler_output"] if bb.family == "clip" else ref["last_hidden_state"][:, 0]
    assert torch.allclose(pooled, want, rtol=1e-5, atol=1e-5), f"{name}: pooled feature differs"


def side_value(path, z):
    """A random value for a side-branch tensor: LayerNorms near (1, 0), temporal taps,
    position tables, offset tables and the EVL query O(1), gates spread over both sides of
    0.5, linear weights `[in, out]` of unit gain."""
    leaf = path.rsplit(".", 1)[1]
    if leaf == "gamma":
        return 1.0 + 0.2 * z
    if leaf in ("beta", "bias"):
        return 0.1 * z
    if leaf == "gate":  # sigmoid(a): gates between about 0.05 and 0.95
        return 1.5 * z
    if leaf == "query" or ".cross." in path:
        return z if leaf == "query" else 0.5 * z
    if ".conv." in path or leaf == "table":
        return 0.5 * z
    return z / z.shape[0] ** 0.5  # linear weight [in, out]


def randomize(model, g):
    """Non-zero values for every adapter, side-branch and head tensor, scaled so that each
    adapter changes the tokens by O(1) and the logits spread over a few units: every gradient
    carries signal."""
    with torch.no_grad():
        for path, p in model.named_parameters():
            if path.startswith("backbone."):
                continue
            z = torch.randn(p.shape, generator=g)
            if path.startswith(("m_adapter.", "evl.")):
                p.copy_(side_value(path, z))
                continue
            leaf = path.rsplit(".", 1)[1]
            if leaf == "bias":
                p.copy_(0.1 * z)
            elif ".branches." in path:  # [r, 1, kt, kh, kw]: unit gain over the taps
                p.copy_(z / p[0].numel() ** 0.5)
            elif ".gate." in path:  # pooled bottleneck features are small: a sharp gate
                p.copy_(2.0 * z)
            elif path.startswith("head."):
                p.copy_(0.3 * z)
            else:  # down / up projections [in, out]
                p.copy_(z / p.shape[0] ** 0.5)


def check_loader_round_trip(model):
    """load_trainable(trainable_tensors(model)) changes nothing (the backbone path map's
    set and get are inverse)."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    load_trainable(model, trainable_tensors(model))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"loader round trip changed {k}"


def make_case(name, bb, case, table, seed, size=None):
    g = torch.Generator().manual_seed(seed)
    model = VideoClassifier(bb, table, CLASSES)
    randomize(model, g)
    check_loader_round_trip(model)
    size = size or SIZES[name]
    clips = torch.randn((B, T, 3, size, size), generator=g).to(torch.float16)
    labels = torch.randint(0, CLASSES, (B,), generator=g)
    model.zero_grad(set_to_none=True)
    logits = model(clips.to(torch.float32))
    loss = cross_entropy(logits, labels, SMOOTHING)
    loss.backward()

    tensors = {"clips": clips.contiguous(), "labels": labels.to(torch.int64),
               "logits": logits.detach().contiguous(), "loss": loss.detach().reshape(1)}
    for path, v in trainable_tensors(model).items():
        if not path.startswith("backbone."):
            tensors[f"model.{path}"] = v.contiguous()
    grads = trainable_grads(model)
    for path, v in grads.items():
        tensors[f"grad.{path}"] = v.contiguous()
    missing = sorted(set(trainable_tensors(model)) - set(grads))
    # One metadata key: safetensors writes its metadata map in hash order, and a single
    # entry keeps re-generated files byte-identical.
    meta = {"vidapter_parity": json.dumps({"method": table, "backbone": name, "classes": CLASSES,
                                           "label_smoothing": SMOOTHING})}
    path = os.path.join(OUT, f"{name}-{case}.safetensors")
    save_file(tensors, path, metadata=meta)
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path) // 1024} KiB), "
          f"loss {loss.item():.4f}, {len(grads)} gradients"
          + (f", none for {missing}" if missing else ""))
    # Reset the backbone for the next case (full fine-tuning accumulated gradients in it).
    bb.zero_grad(set_to_none=True)


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT, exist_ok=True)
    # (backbone, case, table, seed, size) for every fixture.
    jobs, seed = [], 100
    for name, cases in CASES.items():
        for case, table in cases:
            jobs.append((name, case, table, seed, None))
            seed += 1
    jobs += [(name, case, table, 200 + i, size) for i, (name, case, table, size) in enumerate(SIDE_CASES)]
    jobs += [(name, case, table, 300 + i, size) for i, (name, case, table, size) in enumerate(CLS_CASES)]
    wanted = set(sys.argv[1:])
    unknown = wanted - {f"{j[0]}-{j[1]}" for j in jobs}
    if unknown:
        sys.exit(f"unknown fixtures {sorted(unknown)}: expected <backbone>-<case> from CASES / SIDE_CASES")
    if not wanted:  # a full run also removes fixtures no case makes any more
        for old in os.listdir(OUT):
            if old.endswith(".safetensors"):
                os.remove(os.path.join(OUT, old))
    backbones = {}
    for name, case, table, seed, size in jobs:
        if wanted and f"{name}-{case}" not in wanted:
            continue
        if name not in backbones:
            backbones[name] = load_backbone(os.path.join(BACKBONES, name))
            check_seams(name, backbones[name])
        make_case(name, backbones[name], case, table, seed, size)
    with open(os.path.join(OUT, "VERSIONS.txt"), "w") as f:
        f.write(f"python {sys.version.split()[0]}\ntorch {torch.__version__}\n"
                f"transformers {transformers.__version__}\n")


if __name__ == "__main__":
    main()
