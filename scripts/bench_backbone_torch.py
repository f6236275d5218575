"""PyTorch side of `vidapter bench backbone`: the same ViT forward, timed the same way.

Usage: python bench_backbone_torch.py '<json args>'  (called by vidapter; prints one JSON line)
args: {"config": {HF ViTConfig fields}, "frames": 8, "size": 224, "iters": 5, "warmup": 1}
"""

import json
import sys
import time

import torch
from transformers import ViTConfig, ViTModel


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
    print(json.dumps({"ms": times, "gemm_ms": gemm, "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
