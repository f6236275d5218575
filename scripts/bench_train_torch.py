"""PyTorch side of `vidapter bench train --torch`: one method's training step and forward pass
in the reference (reference/vidapter_ref), timed as vidapter's `bench train-step` child times
its own.

Usage: python bench_train_torch.py '<json args>'   (called by vidapter; prints one JSON line)

args:
    method      the `[method]` table as vidapter resolved it (every field, nulls left out),
                e.g. {"kind": "fe_adapter", "bottleneck": 384, ...}
    config      the backbone's transformers config.json as a dict (model_type vit,
                clip_vision_model, clip or dinov2), or
    backbone    a backbone folder whose config.json is read instead
    reference   the folder that holds the `vidapter_ref` package
    batch, frames, size, steps, classes, threads, label_smoothing
    device      the torch device: "cpu" (default), "cuda" or "cuda:N"

What runs, in this order (the same as vidapter's child):
    1. torch.set_num_threads(threads): the thread count vidapter's CPU backend uses;
    2. a transformers model of the config's shapes with random weights (seed 0, float32, eager
       attention as the reference's `load_backbone` uses), wrapped in `HFBackbone`, and
       `VideoClassifier(backbone, method, classes)`; the resident memory is read here;
    3. steps + 1 training steps on fresh random clips [batch, frames, 3, size, size]: forward,
       label-smoothed cross-entropy, backward, torch.optim.AdamW (lr 1e-4, betas 0.9/0.999,
       eps 1e-8, weight decay 0.05 on tensors of 2+ dims and none on biases / norms, as
       vidapter's AdamW) over the trainable parameters only; the first is not timed;
    4. the peak resident memory: `ru_maxrss`, the process's own high-water mark (the same
       figure as vidapter's VmHWM), read before the forward passes so that it is the
       training peak;
    5. steps + 1 forward passes under torch.inference_mode(), the first not timed.

With VIDAPTER_TORCH_PROFILE=PREFIX in the environment, the timed steps and forward passes
also run under torch.profiler (CPU activities) and the operator tables, sorted by self CPU
time, are written to PREFIX.step.txt and PREFIX.forward.txt (scripts/profile-cpu.sh).

On a CUDA device the model and the clips live on the GPU, every timed span starts and ends
with torch.cuda.synchronize() (kernels run asynchronously), and the peak GPU memory over the
training steps is reported too: torch.cuda.max_memory_reserved() (what the caching allocator
held) and max_memory_allocated() (the tensors alone), counted from after the model was built
and moved. A CUDA device torch cannot use is an error, not a silent CPU run.

Output: {"method", "trainable", "total", "step_s", "clips_per_s", "forward_s",
"rss_start_bytes", "rss_model_bytes", "peak_bytes", "torch", "transformers", "threads",
"attn_implementation", "device", "gpu_peak_bytes", "gpu_peak_allocated_bytes" (null on the
CPU)}; times are medians in seconds, memory in bytes. On failure:
{"error": "...", "unsupported": true when the reference package does not know the method}.
"""

import json
import os
import resource
import sys
import time


class Unsupported(Exception):
    """The reference package has no such method."""


def proc_status_bytes(field):
    """A /proc/self/status memory field (VmRSS, VmHWM, ...) in bytes; 0 off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def median(values):
    s = sorted(values)
    return s[len(s) // 2]


def backbone_config(args):
    """(transformers config class name, kwargs) from `config` or `backbone`/config.json."""
    if "config" in args:
        cfg = dict(args["config"])
    else:
        path = os.path.join(args["backbone"], "config.json")
        with open(path) as f:
            cfg = json.load(f)
    if cfg.get("model_type") == "clip":  # a whole CLIPModel: its vision tower
        cfg = dict(cfg["vision_config"], model_type="clip_vision_model")
    return cfg


def build_backbone(cfg):
    """A random-weight transformers model of `cfg`'s shapes, in vidapter's seams."""
    import torch
    from transformers import AutoConfig, AutoModel
    from vidapter_ref import HFBackbone

    families = {"vit": "vit", "clip_vision_model": "clip", "dinov2": "dinov2"}
    model_type = cfg.pop("model_type", None)
    if model_type not in families:
        raise ValueError(f"config.json model_type {model_type!r} is not one of {sorted(families)}")
    for key in ("architectures", "transformers_version", "dtype", "torch_dtype"):
        cfg.pop(key, None)
    config = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(0)
    model = AutoModel.from_config(config, attn_implementation="eager", dtype=torch.float32)
    return HFBackbone(model, families[model_type])


def build_classifier(backbone, table, classes):
    """`VideoClassifier(backbone, table, classes)`; Unsupported when the package does not
    know the method's kind at all (as opposed to rejecting one of its fields)."""
    import vidapter_ref

    try:
        return vidapter_ref.VideoClassifier(backbone, table, classes)
    except (ValueError, KeyError, NotImplementedError, TypeError) as e:
        parse = getattr(vidapter_ref, "parse_method", None)
        known = True
        if parse is not None:
            try:
                parse({"kind": table["kind"]})
            except (ValueError, KeyError, NotImplementedError):
                known = False
        if not known:
            raise Unsupported(f"the reference package has no method {table['kind']!r}: {e}") from e
        raise


class Profile:
    """torch.profiler over the timed iterations when VIDAPTER_TORCH_PROFILE is set; the
    operator table (self CPU time per call of the timed iterations) goes to PREFIX.NAME.txt."""

    def __init__(self, name):
        self.prefix = os.environ.get("VIDAPTER_TORCH_PROFILE")
        self.name = name
        self.prof = None

    def start(self):
        if self.prefix:
            from torch.profiler import ProfilerActivity, profile

            self.prof = profile(activities=[ProfilerActivity.CPU])
            self.prof.__enter__()

    def stop(self, iterations):
        if self.prof is None:
            return
        self.prof.__exit__(None, None, None)
        table = self.prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
        with open(f"{self.prefix}.{self.name}.txt", "w") as f:
            f.write(f"{iterations} timed iteration(s)\n{table}")


def run(args):
    import torch
    import transformers

    sys.path.insert(0, args["reference"])
    from vidapter_ref import cross_entropy

    # The runtime's own footprint (interpreter, torch, transformers), before any model.
    rss_start = proc_status_bytes("VmRSS")

    torch.set_num_threads(int(args["threads"]))
    device = torch.device(args.get("device", "cpu"))
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise RuntimeError(f"torch {torch.__version__} cannot use {device}: torch.cuda.is_available() is False")
    if cuda and (device.index or 0) >= torch.cuda.device_count():
        raise RuntimeError(f"{device}: torch sees {torch.cuda.device_count()} CUDA device(s)")

    def sync():
        if cuda:
            torch.cuda.synchronize(device)
    b, t, s = args["batch"], args["frames"], args["size"]
    steps, classes = max(1, args["steps"]), args["classes"]
    model = build_classifier(build_backbone(backbone_config(args)), args["method"], classes)
    model = model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    n_total = sum(p.numel() for p in model.parameters())
    rss_model = proc_status_bytes("VmRSS")

    # vidapter's AdamW decays tensors of two or more dimensions only.
    groups = [
        {"params": [p for p in trainable if p.dim() > 1], "weight_decay": 0.05},
        {"params": [p for p in trainable if p.dim() <= 1], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    optim = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    targets = (torch.arange(b) % classes).to(device)
    if cuda:
        sync()
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    model.train()
    step_times = []
    profile = Profile("step")
    for step in range(steps + 1):
        x = torch.randn(b, t, 3, s, s, device=device)
        sync()
        if step == 1:
            profile.start()
        t0 = time.perf_counter()
        optim.zero_grad(set_to_none=True)
        loss = cross_entropy(model(x), targets, args["label_smoothing"])
        loss.backward()
        optim.step()
        sync()
        if step > 0:
            step_times.append(time.perf_counter() - t0)
    profile.stop(steps)
    # Linux reports ru_maxrss in KiB.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gpu_peak = torch.cuda.max_memory_reserved(device) if cuda else None
    gpu_allocated = torch.cuda.max_memory_allocated(device) if cuda else None

    model.eval()
    forward_times = []
    profile = Profile("forward")
    with torch.inference_mode():
        for step in range(steps + 1):
            x = torch.randn(b, t, 3, s, s, device=device)
            sync()
            if step == 1:
                profile.start()
            t0 = time.perf_counter()
            model(x)
            sync()
            if step > 0:
                forward_times.append(time.perf_counter() - t0)
    profile.stop(steps)
    step_s = median(step_times)
    return {
        "method": args["method"]["kind"],
        "trainable": n_trainable,
        "total": n_total,
        "step_s": step_s,
        "clips_per_s": b / step_s,
        "forward_s": median(forward_times),
        "rss_start_bytes": rss_start,
        "rss_model_bytes": rss_model,
        "peak_bytes": peak,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "attn_implementation": "eager",
        "device": str(device),
        "gpu_peak_bytes": gpu_peak,
        "gpu_peak_allocated_bytes": gpu_allocated,
    }


def main():
    args = json.loads(sys.argv[1])
    try:
        out = run(args)
    except Unsupported as e:
        out = {"error": str(e), "unsupported": True}
    except Exception as e:  # reported as this method's PyTorch figure being unavailable
        out = {"error": f"{type(e).__name__}: {e}", "unsupported": False}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
