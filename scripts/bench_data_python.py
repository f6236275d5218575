"""Python side of `vidapter bench data`: decode + sample + transform with PyAV or decord.

Usage: python bench_data_python.py '<json args>'  (called by vidapter; prints one JSON line)
args: {"videos": [...], "backend": "pyav"|"decord", "workers": 1, "frames": 8, "size": 224,
       "short_side": 256, "repeats": 2}

Per clip, as mmaction2-style pipelines do: decode the video, take T frames by segment
sampling, convert only those to RGB, resize the short side to 256 (bilinear, antialiased),
random-crop a square, resize it to 224, normalise. One process per worker, torch threads 1.
"""

import json
import random
import sys
import time


def load(path, backend, frames, size, short_side, seed):
    import numpy as np
    import torch
    import torch.nn.functional as F

    rng = random.Random(seed)
    if backend == "pyav":
        import av

        with av.open(path) as container:
            decoded = list(container.decode(video=0))
        n = len(decoded)
        seg = n / frames
        idx = [min(int((i + rng.random()) * seg), n - 1) for i in range(frames)]
        rgb = np.stack([decoded[i].to_ndarray(format="rgb24") for i in idx])
    else:
        import decord

        vr = decord.VideoReader(path, num_threads=1)
        n = len(vr)
        seg = n / frames
        idx = [min(int((i + rng.random()) * seg), n - 1) for i in range(frames)]
        rgb = vr.get_batch(idx).asnumpy()
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float()  # [T, 3, H, W]
    h, w = x.shape[-2:]
    f = short_side / min(h, w)
    x = F.interpolate(x, size=(round(h * f), round(w * f)), mode="bilinear", antialias=True, align_corners=False)
    h, w = x.shape[-2:]
    side = rng.randint(min(h, w) // 2, min(h, w))
    y0, x0 = rng.randint(0, h - side), rng.randint(0, w - side)
    x = x[:, :, y0:y0 + side, x0:x0 + side]
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    return ((x - mean) / std).shape


def work(item):
    import torch

    torch.set_num_threads(1)
    path, args, seed = item
    return load(path, args["backend"], args["frames"], args["size"], args["short_side"], seed)


def main():
    from multiprocessing import get_context

    args = json.loads(sys.argv[1])
    items = [(v, args, i) for i, v in enumerate(args["videos"] * args["repeats"])]
    with get_context("fork").Pool(args["workers"]) as pool:
        pool.map(work, items[: args["workers"]])  # warm-up: imports in every worker
        t0 = time.perf_counter()
        pool.map(work, items, chunksize=1)
        dt = time.perf_counter() - t0
    print(json.dumps({"clips": len(items), "seconds": dt}))


if __name__ == "__main__":
    main()
