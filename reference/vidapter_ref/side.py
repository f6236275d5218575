"""Parts shared by the side-branch methods (M-adapter, EVL), after vidapter's
`src/methods/side.rs`, in plain PyTorch.

A side branch works on clips as `[B, T, L, d]` (batch, frames, tokens, width): the frozen
backbone's `[B*T, L, C]` levels reshaped. The temporal operators act along `T` for every token
and channel independently.

Each part is written the way PyTorch users write it (a grouped `conv1d`, `F.interpolate`,
`F.layer_norm`), not as a transcription of the Rust, so that parity checks two derivations of
the same definition. Parameter names and shapes are vidapter's trainable paths:
`norm.gamma [d]`, `conv.weight [d, 3]`, `pos.table [F, d]`, linear weights `[in, out]`.
"""

import torch
import torch.nn.functional as F
from torch import nn


def default_heads(width):
    """vidapter's `default_heads`: one head per 64 channels, or one head when the width is
    not a multiple of 64."""
    return width // 64 if width >= 64 and width % 64 == 0 else 1


class LayerNorm(nn.Module):
    """burn's `LayerNorm` (eps 1e-5), with its parameter names `gamma` and `beta`."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.gamma, self.beta, self.eps)


class TemporalConv(nn.Module):
    """Depthwise temporal convolution, kernel 3, padding 1, over `T` for every token and
    channel: `Conv1d(d, d, 3, padding=1, groups=d)` on `[B*L, d, T]`. vidapter stores the
    weight `[d, 3]` (PyTorch's `[d, 1, 3]` without its singleton axis). Returns the
    convolution's output; the caller adds the residual."""

    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim, 3))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        """x: [B, T, L, d] -> [B, T, L, d]."""
        b, t, l, d = x.shape
        seq = x.permute(0, 2, 3, 1).reshape(b * l, d, t)  # [B*L, d, T]
        y = F.conv1d(seq, self.weight.unsqueeze(1), self.bias, padding=1, groups=d)
        return y.reshape(b, l, d, t).permute(0, 3, 1, 2)  # [B, T, L, d]


class TemporalPosEmbed(nn.Module):
    """A learned temporal position table `[F, d]`, one row per frame. A clip of another length
    gets the table resampled linearly in time (`interpolate(mode="linear",
    align_corners=False)`), as vidapter does."""

    def __init__(self, frames, dim):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(frames, dim))

    def at(self, t):
        """The embedding of each of `t` frames: [t, d]."""
        if self.table.shape[0] == t:
            return self.table
        resampled = F.interpolate(self.table.t().unsqueeze(0), size=t, mode="linear",
                                  align_corners=False)  # [1, d, t]
        return resampled[0].t()


def quick_gelu(x):
    """CLIP's QuickGELU, `x * sigmoid(1.702 x)`."""
    return x * torch.sigmoid(1.702 * x)
