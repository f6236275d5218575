"""Generate the AdamW parity fixture from torch.optim.AdamW.

Run from anywhere (needs torch and safetensors: `pip install torch safetensors`):

    python scripts/make_optim_fixture.py

Writes tests/fixtures/optim/adamw.safetensors: three optimiser steps on a 2-D tensor (weight
decay applies) and a 1-D one (no decay, as vidapter's parameter groups have it), with global
gradient-norm clipping that acts on the second step only:

    start.weight, start.bias      f32 [6, 5], [5]   the parameters before the first step
    grad.<s>.weight, .bias        f32               the gradients of step s (0, 1, 2)
    after.<s>.weight, .bias       f32               the parameters after step s
    norm.<s>                      f64 [1]           the global gradient norm before clipping

and the metadata key `vidapter_adamw`: JSON {"lr", "weight_decay", "beta1", "beta2", "eps",
"clip_grad_norm"}. Seeded, so re-running gives the same file. Versions go to VERSIONS.txt.
"""

import json
import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "optim")

HP = {
    "lr": 1e-2,
    "weight_decay": 0.05,
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "clip_grad_norm": 5.0,
}


def main():
    torch.manual_seed(22)
    weight = torch.nn.Parameter(torch.randn(6, 5))
    bias = torch.nn.Parameter(torch.randn(5))
    tensors = {"start.weight": weight.detach().clone(), "start.bias": bias.detach().clone()}
    opt = torch.optim.AdamW(
        [
            {"params": [weight], "weight_decay": HP["weight_decay"]},
            {"params": [bias], "weight_decay": 0.0},
        ],
        lr=HP["lr"],
        betas=(HP["beta1"], HP["beta2"]),
        eps=HP["eps"],
    )
    # Step 1's gradients are large enough for the clipping to act; steps 0 and 2 are not.
    for step, scale in enumerate([0.5, 4.0, 0.3]):
        weight.grad = torch.randn(6, 5) * scale
        bias.grad = torch.randn(5) * scale
        tensors[f"grad.{step}.weight"] = weight.grad.clone()
        tensors[f"grad.{step}.bias"] = bias.grad.clone()
        norm = torch.nn.utils.clip_grad_norm_([weight, bias], HP["clip_grad_norm"])
        tensors[f"norm.{step}"] = norm.detach().double().reshape(1)
        opt.step()
        tensors[f"after.{step}.weight"] = weight.detach().clone()
        tensors[f"after.{step}.bias"] = bias.detach().clone()
    assert tensors["norm.1"].item() > HP["clip_grad_norm"] > tensors["norm.0"].item()
    assert tensors["norm.2"].item() < HP["clip_grad_norm"]
    os.makedirs(OUT, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        os.path.join(OUT, "adamw.safetensors"),
        metadata={"vidapter_adamw": json.dumps(HP)},
    )
    with open(os.path.join(OUT, "VERSIONS.txt"), "w") as f:
        f.write(f"torch {torch.__version__}\n")


if __name__ == "__main__":
    main()
