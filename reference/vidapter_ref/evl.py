"""vidapter's EVL (`src/methods/evl.rs`, `src/methods/evl/cross_attention.rs`), in plain PyTorch.

Lin et al., *Frozen CLIP Models are Efficient Video Learners* (ECCV 2022); the structure
follows their code (github.com/OpenGVLab/efficient-video-recognition, `model.py`): an
`EVLDecoder` whose one query gathers the tokens of the last `levels` block outputs, one decoder
layer per level, with the departures vidapter documents (relative offsets of a patch grid
larger than the trained one clamped to the trained range; the temporal position table resampled
for another clip length; f32 backbone; vidapter's head).

    feats[i]: [B, T, L, C]    output of block b_i = blocks - levels + i
    q_i, k_i: [B, T, L, h, c]  block b_i's attention queries and keys, from its input level:
                               q_proj(LN1(x)), k_proj(LN1(x)) of the frozen block, unscaled
    x = query [B, 1, C]
    for each level i:
        f = feats[i] (+ DWConv1d_i(f)) (+ pos_i[t]) (+ TCA_i(q_i, k_i))
        y = LN3_i(f -> [B, T*L, C])
        x = x + out_i(MHA(q_i(LN1_i(x)), k_i(y), v_i(y)))          heads h over width D
        x = x + fc2_i(QuickGELU(fc1_i(LN2_i(x))))                  C -> round(f*C) -> C
    feature = LN(x) [B, C]

Dropout (the decoder MLPs', the head's) is not modelled: parity compares vidapter's forward
without a dropout seed, which applies none. `conv_init` only chooses initial values, which the
reference never uses (everything starts at zero; callers load values).

Parameter names are vidapter's trainable paths under `evl.`: `query [C]`,
`levels.{i}.conv.weight [C, 3]`, `levels.{i}.pos.table [F, C]`,
`levels.{i}.cross.{w_prev, w_next} [(2gh-1)*(2gw-1), C]`,
`levels.{i}.decoder.{norm1,norm2,norm3,q,k,v,out,fc1,fc2}.*`, `norm.*`.
"""

import math

import torch
from torch import nn

from .adapter import InOutLinear
from .side import LayerNorm, TemporalConv, TemporalPosEmbed, default_heads, quick_gelu


def offset_index(grid, trained):
    """EVL's `idx_tensor` [N, N] for a `grid` of patches: the row of the offset table for
    every (query patch, key patch) pair, row and column offsets clamped to what the `trained`
    grid's table holds (vidapter's departure; equal grids give EVL's own table)."""
    gh, gw = grid
    th, tw = trained
    n = gh * gw
    idx = torch.zeros(n, n, dtype=torch.long)
    for q in range(n):
        qi, qj = q // gw, q % gw
        for k in range(n):
            ki, kj = k // gw, k % gw
            i_offs = max(1 - th, min(th - 1, qi - ki)) + th - 1
            j_offs = max(1 - tw, min(tw - 1, qj - kj)) + tw - 1
            idx[q, k] = i_offs * (2 * tw - 1) + j_offs
    return idx


class TemporalCrossAttention(nn.Module):
    """EVL's `TemporalCrossAttention`: frame t's patch queries attend to the patch keys of
    frame t-1 (table `w_prev`, the code's `w1`) and, separately, t+1 (`w_next`, `w2`); the
    head-averaged attention map mixes one learned C-vector per relative patch offset. Class
    rows, frame 0's previous side and the last frame's next side stay zero."""

    def __init__(self, trained, dim):
        super().__init__()
        rows = (2 * trained[0] - 1) * (2 * trained[1] - 1)
        self.w_prev = nn.Parameter(torch.zeros(rows, dim))
        self.w_next = nn.Parameter(torch.zeros(rows, dim))
        self.trained = trained

    @staticmethod
    def _half(q, k, w, idx):
        q, k = q[:, :, 1:], k[:, :, 1:]  # patch tokens only
        attn = torch.einsum("ntqhd,ntkhd->ntqkh", q / (q.size(-1) ** 0.5), k)
        attn = attn.softmax(dim=-2).mean(dim=-1)  # [N, T', Nq, Nk]
        return torch.einsum("ntqk,qkc->ntqc", attn, w[idx])

    def forward(self, q, k, grid):
        """q, k: [B, T, 1+N, h, c] with N = gh*gw -> [B, T, 1+N, C]."""
        n, t, l, _, _ = q.shape
        idx = offset_index(grid, self.trained)
        ret = q.new_zeros(n, t, l, self.w_prev.shape[1])
        if t < 2:
            return ret
        ret[:, 1:, 1:] += self._half(q[:, 1:], k[:, :-1], self.w_prev, idx)
        ret[:, :-1, 1:] += self._half(q[:, :-1], k[:, 1:], self.w_next, idx)
        return ret


class DecoderLayer(nn.Module):
    """EVL's `TransformerDecoderLayer`: the query attends to the level's tokens, then an MLP,
    both pre-norm with residuals."""

    def __init__(self, dim, qkv_dim, heads, mlp_dim):
        super().__init__()
        if qkv_dim % heads:
            raise ValueError(f"{heads} heads do not divide the q/k/v width {qkv_dim}")
        self.norm1, self.norm2, self.norm3 = LayerNorm(dim), LayerNorm(dim), LayerNorm(dim)
        self.q, self.k, self.v = (InOutLinear(dim, qkv_dim) for _ in range(3))
        self.out = InOutLinear(qkv_dim, dim)
        self.fc1 = InOutLinear(dim, mlp_dim)
        self.fc2 = InOutLinear(mlp_dim, dim)
        self.heads = heads

    def attend(self, x, y):
        """EVL's `Attention`: x [B, Lq, C] queries, y [B, Lk, C] keys and values."""
        q, k, v = self.q(x), self.k(y), self.v(y)
        n, lq, d = q.shape
        lk, h = k.shape[1], self.heads
        q, k, v = q.view(n, lq, h, d // h), k.view(n, lk, h, d // h), v.view(n, lk, h, d // h)
        aff = torch.einsum("nqhd,nkhd->nqkh", q / math.sqrt(d // h), k).softmax(dim=-2)
        mix = torch.einsum("nqlh,nlhd->nqhd", aff, v)
        return self.out(mix.flatten(-2))

    def forward(self, x, y):
        """x: [B, 1, C], y: [B, T*L, C] -> [B, 1, C]."""
        y = self.norm3(y)
        x = x + self.attend(self.norm1(x), y)
        return x + self.fc2(quick_gelu(self.fc1(self.norm2(x))))


class EvlLevel(nn.Module):
    """One level: optional temporal conv, position table and cross-attention, then a decoder
    layer."""

    def __init__(self, dim, trained, frames, conv, pos, cross, decoder):
        super().__init__()
        self.conv = TemporalConv(dim) if conv else None
        self.pos = TemporalPosEmbed(frames, dim) if pos else None
        self.cross = TemporalCrossAttention(trained, dim) if cross else None
        self.decoder = decoder


class Evl(nn.Module):
    """The EVL decoder beside a backbone of `blocks` blocks, width `dim`, trained on a
    `trained` patch grid (the cross-attention tables' size)."""

    def __init__(self, dim, blocks, trained, levels, qkv_dim, heads, mlp_dim,
                 temporal_conv, temporal_pos_embed, temporal_cross_attention, frames):
        super().__init__()
        if not 0 < levels <= blocks:
            raise ValueError(f"evl levels {levels}: expected 1..={blocks}")
        self.query = nn.Parameter(torch.zeros(dim))
        self.levels = nn.ModuleList(
            EvlLevel(dim, trained, frames, temporal_conv, temporal_pos_embed,
                     temporal_cross_attention, DecoderLayer(dim, qkv_dim, heads, mlp_dim))
            for _ in range(levels)
        )
        self.norm = LayerNorm(dim)
        self.first_block = blocks - levels
        self.reads_attention = temporal_cross_attention

    @property
    def blocks(self):
        """0-based blocks whose outputs are read, ascending."""
        return list(range(self.first_block, self.first_block + len(self.levels)))

    def forward(self, outputs, attention, frames, grid):
        """outputs: each [B*T, L, C] (the blocks' outputs); attention: (q, k) per level, each
        [B*T, L, h, c], when the cross-attention is on -> [B, C]."""
        bt, l, c = outputs[0].shape
        b, t = bt // frames, frames
        x = self.query.reshape(1, 1, c).expand(b, 1, c)
        for i, (level, f) in enumerate(zip(self.levels, outputs, strict=True)):
            f = f.reshape(b, t, l, c)
            if level.conv is not None:
                f = f + level.conv(f)
            if level.pos is not None:
                f = f + level.pos.at(t).reshape(1, t, 1, c)
            if level.cross is not None:
                q, k = attention[i]
                shape = (b, t, l) + tuple(q.shape[2:])
                f = f + level.cross(q.reshape(shape), k.reshape(shape), grid)
            x = level.decoder(x, f.reshape(b, t * l, c))
        return self.norm(x.reshape(b, c))


def parse(t, dim):
    """EVL keyword arguments (without `dim`, `blocks`, `trained`) from its `[method]` table
    without `kind`, with vidapter's defaults (`EvlConfig`) for a backbone of width `dim`."""
    qkv_dim = dim if t.get("qkv_dim") is None else t["qkv_dim"]
    heads = default_heads(qkv_dim) if t.get("heads") is None else t["heads"]
    factor = t.get("mlp_factor", 4.0)
    conv_init = t.get("conv_init", "torch")
    if conv_init not in ("torch", "zero"):
        raise ValueError(f"evl conv_init {conv_init!r}: expected 'torch' or 'zero'")
    return dict(levels=t.get("levels", 4), qkv_dim=qkv_dim, heads=heads,
                mlp_dim=math.floor(factor * dim + 0.5),  # Rust's f64::round for positives
                temporal_conv=t.get("temporal_conv", True),
                temporal_pos_embed=t.get("temporal_pos_embed", True),
                temporal_cross_attention=t.get("temporal_cross_attention", True),
                frames=t.get("frames", 8))


FIELDS = {"levels", "qkv_dim", "heads", "mlp_factor", "mlp_dropout", "temporal_conv", "conv_init",
          "temporal_pos_embed", "temporal_cross_attention", "frames", "dropout"}
