"""The convolutional bottleneck adapter of vidapter's `src/methods/adapter.rs`, in PyTorch.

    x: [B*T, 1+N, C]                                   frames of one clip are consecutive rows
    z = x[:, 1:] @ W_down + b_down                     [B*T, N, r]     class token untouched
    z -> [B, r, T, h, w]                               h = w = sqrt(N), tokens row-major
    a = softmax(gate(mean_{T,h,w} z))                  [B, K]          only with the gate and K > 1
    z = sum_k a[:, k] * DWConv3d_k(z)                  (without the gate: plain sum)
    z = act(z) -> [B*T, N, r] @ W_up + b_up            [B*T, N, C]
    x[:, 1:] += z
    adapt_cls: the class token too, as a 1 x 1 grid through the same down / branches (gate
    weights of the patch path) / act / up, added to it.

Branch k is `Conv3d(r, r, (kt, kh, kw), groups=r, dilation=(d_k, 1, 1),
padding=(d_k*(kt-1)/2, (kh-1)/2, (kw-1)/2))`: a cross-correlation, as in burn, with the
weight `[r, 1, kt, kh, kw]` in the same layout on both sides.

Linear layers here store their weight `[in, out]` (vidapter's orientation, `y = x @ W + b`),
so a module's parameter names and shapes are exactly vidapter's trainable paths
(`down.weight [C, r]`, `branches.1.weight [r, 1, kt, kh, kw]`, `gate.weight [r, K]`, ...).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class InOutLinear(nn.Module):
    """`y = x @ weight + bias` with `weight` stored `[in, out]`, as burn's `Linear` stores it
    (the transpose of `nn.Linear`'s `[out, in]`)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


class ConvAdapter(nn.Module):
    """One adapter on the patch tokens (see the module docstring).

    Args:
        dim: token width C of the backbone.
        bottleneck: r.
        kernel: depthwise kernel (kt, kh, kw), each odd.
        dilations: temporal dilation of each branch (K = len(dilations)).
        gate: per-clip softmax gate over the branches; only built when K > 1, as in vidapter.
        act: "identity" or "gelu" (exact, erf-based), applied after the branch mix.
        adapt_cls: also adapt the class token (as a 1 x 1 grid; vidapter's `adapt_cls`).

    Parameters start at zero; callers load values (`params.load_trainable`).
    """

    def __init__(self, dim, bottleneck, kernel, dilations, gate, act, adapt_cls=False):
        super().__init__()
        if any(k % 2 == 0 for k in kernel):
            raise ValueError(f"adapter kernel {kernel} must be odd on every axis")
        if not dilations:
            raise ValueError("adapter needs at least one branch")
        if act not in ("identity", "gelu"):
            raise ValueError(f"adapter act {act!r}: expected 'identity' or 'gelu'")
        r = bottleneck
        kt, kh, kw = kernel
        self.down = InOutLinear(dim, r)
        self.branches = nn.ModuleList(
            nn.Conv3d(r, r, tuple(kernel), groups=r, dilation=(d, 1, 1),
                      padding=(d * (kt - 1) // 2, (kh - 1) // 2, (kw - 1) // 2), bias=True)
            for d in dilations
        )
        self.gate = InOutLinear(r, len(dilations)) if gate and len(dilations) > 1 else None
        self.up = InOutLinear(r, dim)
        self.act = act
        self.adapt_cls = adapt_cls
        with torch.no_grad():
            for p in self.parameters():
                p.zero_()

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """x: [B*T, 1+N, C] with N a square grid -> [B*T, 1+N, C]."""
        bt, l, c = x.shape
        n = l - 1
        g = math.isqrt(n)
        if g * g != n:
            raise ValueError(f"adapters need a square patch grid, got {n} patches")
        b, t = bt // frames, frames
        cls, patches = x[:, :1], x[:, 1:]
        z = self._to_grid(patches, b, t, g)  # [B, r, T, h, w]
        weights = None
        if self.gate is not None:
            weights = torch.softmax(self.gate(z.mean(dim=(2, 3, 4))), dim=1)  # [B, K]
        patches = patches + self._from_grid(self._mix(z, weights), bt, n)
        if self.adapt_cls:
            zc = self._to_grid(cls, b, t, 1)  # [B, r, T, 1, 1]
            cls = cls + self._from_grid(self._mix(zc, weights), bt, 1)
        return torch.cat([cls, patches], dim=1)

    def _to_grid(self, tokens, b, t, g):
        z = self.down(tokens)  # [B*T, g*g, r]
        return z.reshape(b, t, g, g, z.shape[2]).permute(0, 4, 1, 2, 3)

    def _mix(self, z, weights):
        b = z.shape[0]
        if weights is not None:
            mixed = sum(weights[:, k].reshape(b, 1, 1, 1, 1) * conv(z)
                        for k, conv in enumerate(self.branches))
        else:
            mixed = sum(conv(z) for conv in self.branches)  # [B, r, T, h, w]
        if self.act == "gelu":
            mixed = F.gelu(mixed)  # exact (erf) GELU, as burn's activation::gelu
        return mixed

    def _from_grid(self, z, bt, n):
        r = z.shape[1]
        return self.up(z.permute(0, 2, 3, 4, 1).reshape(bt, n, r))
