"""PyTorch side of `vidapter bench backbone`: the same ViT forward, timed the same way.

Usage: python bench_backbone_torch.py '<json args>'  (called by vidapter; prints one JSON line)
args: {"config": {HF ViTConfig fields}, "frames": 8, "size": 224, "iters": 5, "warmup": 1}
"""

import json
import sys
import time

import torch
from transformers import ViTConfig, ViTModel


# The operations of one block, in the order and with the names of src/app/bench/ops.rs.
OPS = [
    "layer_norm (attention)",
    "qkv linear [C, 3C]",
    "attention (split, fused)",
    "merge heads (copy)",
    "out linear [C, C]",
    "residual add",
    "layer_norm (MLP)",
    "fc1 linear [C, 4C]",
    "gelu (erf)",
    "fc2 linear [4C, C]",
    "residual add (MLP)",
]


def block_ops(frames, tokens, iters):
    """Each operation of one ViT-B block timed alone on its input (median-able ms lists)."""
    c, heads = 768, 12
    d = c // heads
    nn = torch.nn
    ln1, ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
    qkv, out, fc1, fc2 = nn.Linear(c, 3 * c), nn.Linear(c, c), nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
    x = torch.randn(frames, tokens, c)
    ms = [[] for _ in OPS]

    def time(i, run):
        for k in range(iters + 1):
            t0 = time_now()
            run()
            if k > 0:
                ms[i].append((time_now() - t0) * 1000.0)

    def split(packed):
        t = packed.reshape(frames, tokens, 3, heads, d).permute(2, 0, 3, 1, 4)
        return t[0], t[1], t[2]

    sdpa = torch.nn.functional.scaled_dot_product_attention
    with torch.inference_mode():
        xn = ln1(x)
        time(0, lambda: ln1(x))
        packed = qkv(xn)
        time(1, lambda: qkv(xn))
        time(2, lambda: sdpa(*split(packed)))
        mixed = sdpa(*split(packed))
        time(3, lambda: mixed.transpose(1, 2).reshape(frames, tokens, c))
        merged = mixed.transpose(1, 2).reshape(frames, tokens, c)
        time(4, lambda: out(merged))
        attended = out(merged)
        time(5, lambda: x + attended)
        x2 = x + attended
        time(6, lambda: ln2(x2))
        xn2 = ln2(x2)
        time(7, lambda: fc1(xn2))
        hidden = fc1(xn2)
        time(8, lambda: torch.nn.functional.gelu(hidden))
        act = torch.nn.functional.gelu(hidden)
        time(9, lambda: fc2(act))
        mlp = fc2(act)
        time(10, lambda: x2 + mlp)
    return OPS, ms


time_now = time.perf_counter


def main():
    args = json.loads(sys.argv[1])
    torch.manual_seed(0)
    model = ViTModel(ViTConfig(**args["config"]), add_pooling_layer=True).eval()
    x = torch.randn(args["frames"], 3, args["size"], args["size"])
    times = []
    with torch.inference_mode():
        for i in range(args["warmup"] + args["iters"]):
            t0 = time.perf_counter()
            model(pixel_values=x, interpolate_pos_encoding=True)
            dt = time.perf_counter() - t0
            if i >= args["warmup"]:
                times.append(dt * 1000.0)
    # The MLP's first GEMM at this batch: [frames*tokens, C] @ [C, 4C], timed alone.
    tokens = args["frames"] * ((args["size"] // args["config"]["patch_size"]) ** 2 + 1)
    c, h = args["config"]["hidden_size"], args["config"]["intermediate_size"]
    a, b = torch.randn(tokens, c), torch.randn(c, h)
    gemm = []
    with torch.inference_mode():
        for i in range(args["warmup"] + args["iters"]):
            t0 = time.perf_counter()
            a @ b
            dt = time.perf_counter() - t0
            if i >= args["warmup"]:
                gemm.append(dt * 1000.0)
    names, op_ms = block_ops(args["frames"], tokens // args["frames"], args["iters"])
    print(json.dumps({"ms": times, "gemm_ms": gemm, "op_names": names, "op_ms": op_ms, "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
