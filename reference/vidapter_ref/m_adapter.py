"""vidapter's M-adapter (`src/methods/m_adapter.rs`), in plain PyTorch.

A side branch over the frozen backbone's per-block outputs (levels), exactly as the Rust module
docs define it (our reading of Li et al., CVIU 2024; the paper's body was not available):

    feats[l]: [B*T, 1+N, C]   output of block l, for l in the block set (ascending), no autograd
    x_l = reduce(feats[l])    grid_pool > 1: average-pool the patch grid by grid_pool
                              (class token kept; ragged rows / columns dropped)
    z_l = Proj_l(LN_l(x_l)) -> [B, T, L', d]
    h = z_first                                   the first level starts the branch
    h = Fusion_l(h, z_l)                          gated: g*h + (1-g)*z, g = sigmoid(a_l)
                                                  sum: h + z;  concat_proj: W_l [h; z] + b_l
    h = h + act(Temporal_l(h))                    conv: depthwise Conv1d k=3 over T
                                                  attention: out(MHSA_T(LN(h + pos_T))) per token
                                                  act: identity (default) or exact GELU
    feature = LN(pool(h))     [B, d]   mean over T and tokens, or the class token averaged over T

Parameter names are vidapter's trainable paths under `m_adapter.`: `levels.{i}.norm.gamma`,
`levels.{i}.proj.weight [C, d]`, `levels.{i}.gate [d]`, `levels.{i}.mix.weight [2d, d]`,
`levels.{i}.conv.weight [d, 3]`, `levels.{i}.attn.{pos.table, norm.*, qkv.*, out.*}`, `norm.*`.
Everything starts at zero (LayerNorms at (1, 0)); callers load values.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .adapter import InOutLinear
from .side import LayerNorm, TemporalConv, TemporalPosEmbed, default_heads

FUSIONS = ("gated", "sum", "concat_proj")
TEMPORALS = ("conv", "attention")
POOLS = ("mean", "cls")
ACTS = ("gelu", "identity")


class TemporalAttention(nn.Module):
    """Pre-norm multi-head self-attention over the frames of each token:
    `out(MHSA_T(LN(h + pos)))`, q | k | v from one `d -> 3d` projection."""

    def __init__(self, dim, heads, frames):
        super().__init__()
        if dim % heads:
            raise ValueError(f"{heads} heads do not divide the branch width {dim}")
        self.pos = TemporalPosEmbed(frames, dim)
        self.norm = LayerNorm(dim)
        self.qkv = InOutLinear(dim, 3 * dim)
        self.out = InOutLinear(dim, dim)
        self.heads = heads

    def forward(self, h):
        """h: [B, T, L, d] -> [B, T, L, d]."""
        b, t, l, d = h.shape
        x = self.norm(h + self.pos.at(t).reshape(1, t, 1, d))
        x = x.transpose(1, 2).reshape(b * l, t, d)  # [B*L, T, d]
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        split = lambda z: z.reshape(b * l, t, self.heads, d // self.heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(split(q), split(k), split(v))  # [B*L, h, T, d/h]
        y = self.out(y.transpose(1, 2).reshape(b * l, t, d))
        return y.reshape(b, l, t, d).transpose(1, 2)  # [B, T, L, d]


class LevelAdapter(nn.Module):
    """One level: LN + projection, fusion with the branch so far (None on the first level),
    temporal module and its activation (`h + act(temporal(h))`)."""

    def __init__(self, dim, width, fusion, temporal, heads, frames, act="identity"):
        super().__init__()
        self.norm = LayerNorm(dim)
        self.proj = InOutLinear(dim, width)
        self.gate = nn.Parameter(torch.zeros(width)) if fusion == "gated" else None
        self.mix = InOutLinear(2 * width, width) if fusion == "concat_proj" else None
        self.conv = TemporalConv(width) if temporal == "conv" else None
        self.attn = TemporalAttention(width, heads, frames) if temporal == "attention" else None
        self.fusion = fusion
        self.act = act

    def fuse(self, h, z):
        if self.fusion is None:
            return z
        if self.fusion == "gated":
            g = torch.sigmoid(self.gate)
            return g * h + (1 - g) * z
        if self.fusion == "sum":
            return h + z
        return self.mix(torch.cat([h, z], dim=-1))

    def temporal(self, h):
        y = self.conv(h) if self.conv is not None else self.attn(h)
        return F.gelu(y) if self.act == "gelu" else y  # exact (erf) GELU, as burn's


def reduce_tokens(x, grid, factor):
    """Average-pools each frame's patch grid by `factor` (window clamped to the grid, ragged
    edge dropped), keeping the class token: [B*T, 1+gh*gw, C] -> [B*T, 1+(gh/f)*(gw/f), C]."""
    if factor <= 1:
        return x
    bt, _, c = x.shape
    gh, gw = grid
    patches = x[:, 1:].reshape(bt, gh, gw, c).permute(0, 3, 1, 2)  # [B*T, C, gh, gw]
    win = (min(factor, gh), min(factor, gw))
    pooled = F.avg_pool2d(patches, kernel_size=win, stride=win)  # floor: ragged edge dropped
    return torch.cat([x[:, :1], pooled.flatten(2).transpose(1, 2)], dim=1)


class MAdapter(nn.Module):
    """The M-adapter branch for a backbone of width `dim`; `blocks` are the 0-based blocks
    read, ascending. See the module docstring."""

    def __init__(self, dim, blocks, width, fusion, temporal, heads, frames, pool, grid_pool,
                 temporal_act="identity"):
        super().__init__()
        if (fusion not in FUSIONS or temporal not in TEMPORALS or pool not in POOLS
                or temporal_act not in ACTS):
            raise ValueError(f"m_adapter: fusion {fusion!r}, temporal {temporal!r}, pool {pool!r}, "
                             f"temporal_act {temporal_act!r}")
        self.levels = nn.ModuleList(
            LevelAdapter(dim, width, fusion if i > 0 else None, temporal, heads, frames, temporal_act)
            for i in range(len(blocks))
        )
        self.norm = LayerNorm(width)
        self.blocks, self.pool, self.grid_pool, self.width = list(blocks), pool, grid_pool, width

    def levels_needed(self):
        """Backbone levels read (level i = output of block i - 1)."""
        return [b + 1 for b in self.blocks]

    def forward(self, levels, frames, grid):
        """levels: the outputs of `self.blocks`, each [B*T, 1+N, C]; grid (gh, gw) -> [B, d]."""
        h = None
        for adapter, x in zip(self.levels, levels, strict=True):
            x = reduce_tokens(x, grid, self.grid_pool)  # [B*T, L', C]
            bt, l, _ = x.shape
            z = adapter.proj(adapter.norm(x)).reshape(bt // frames, frames, l, -1)  # [B, T, L', d]
            h = z if h is None else adapter.fuse(h, z)
            h = h + adapter.temporal(h)
        if self.pool == "mean":
            pooled = h.mean(dim=(1, 2))  # [B, d]
        else:
            pooled = h[:, :, 0].mean(dim=1)  # class token averaged over frames
        return self.norm(pooled)


def parse(t):
    """M-adapter keyword arguments (without `dim`, `blocks` unresolved) from its `[method]`
    table without `kind`, with vidapter's defaults (`MAdapterConfig`)."""
    width = t.get("width", 384)
    heads = t.get("heads")
    for field in ("width", "frames", "grid_pool"):
        if field in t and t[field] < 1:
            raise ValueError(f"m_adapter {field} {t[field]}: must be at least 1")
    return dict(blocks=t.get("blocks", "all"), width=width, fusion=t.get("fusion", "gated"),
                temporal=t.get("temporal", "conv"),
                heads=default_heads(width) if heads is None else heads,
                frames=t.get("frames", 8), pool=t.get("pool", "mean"),
                grid_pool=t.get("grid_pool", 1), temporal_act=t.get("temporal_act", "identity"))


FIELDS = {"blocks", "width", "fusion", "temporal", "heads", "frames", "pool", "grid_pool", "dropout",
          "temporal_act"}
