"""vidapter's `VideoClassifier` (`src/methods/classifier.rs`) and loss (`src/train/loss.rs`).

    clips [B, T, 3, H, W] -> frames [B*T, 3, H, W]
      in-backbone: embed -> for each block i: (adapter before attn) -> attn half
                                             -> (adapter before MLP) -> MLP half
      linear probe: the frozen backbone's forward, without autograd
      side branch (M-adapter, EVL): the frozen backbone's forward, without autograd, handing
                    its per-block outputs (levels; for EVL also the blocks' attention queries
                    and keys) to the branch, which is all that trains
    -> clip feature [B, C]
         linear probe: mean_T(pool(cls_t))           image features averaged over time
         in-backbone:  pool(mean_T(cls_t))           the final norm after the temporal mean
         M-adapter:    the branch's LN(pool(h))      [B, d]   (m_adapter.py)
         EVL:          the decoder's LN(query)       [B, C]   (evl.py)
    -> fc [B, K]                                     weight [C, K] ([in, out]), bias [K]

Dropout is not modelled: the parity fixtures compare with vidapter's forward without a
dropout seed, which applies none.

A method is vidapter's `[method]` table as a dict (the JSON of the TOML table), with
vidapter's defaults for missing fields (`src/methods/{mod,fe_adapter,st_adapter,m_adapter,evl}.rs`).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import evl as evl_ref
from . import m_adapter as m_adapter_ref
from .adapter import ConvAdapter, InOutLinear


@dataclass
class MethodSpec:
    """A parsed `[method]` table. `adapter` is None for the linear probe, full fine-tuning
    and the side branches; otherwise the ConvAdapter keyword arguments (without `dim`).
    `branch` is the side branch's own fields (M-adapter, EVL; the table without `kind`,
    defaults applied when the branch is built), else None."""

    kind: str
    adapter: dict | None
    placement: str
    blocks: object
    dropout: float
    branch: dict | None = None


def parse_method(table):
    """vidapter's `MethodConfig` from its table (dict), with vidapter's defaults."""
    t = dict(table)
    kind = t.pop("kind")
    allowed = {
        "linear_probe": {"dropout"},
        "full_finetune": {"dropout", "backbone_lr_scale"},
        "fe_adapter": {"bottleneck", "kernel", "dilations", "gate", "act", "adapt_cls", "placement", "blocks",
                       "dropout"},
        "st_adapter": {"bottleneck", "kernel", "adapt_cls", "placement", "blocks", "dropout"},
        "m_adapter": m_adapter_ref.FIELDS,
        "evl": evl_ref.FIELDS,
    }
    if kind not in allowed:
        raise ValueError(f"[method] kind {kind!r}: expected one of {sorted(allowed)}")
    unknown = set(t) - allowed[kind]
    if unknown:
        raise ValueError(f"[method] kind {kind!r}: unknown fields {sorted(unknown)}")
    if kind == "linear_probe":
        return MethodSpec(kind, None, "before_attn", "all", t.get("dropout", 0.0))
    if kind == "full_finetune":
        return MethodSpec(kind, None, "before_attn", "all", t.get("dropout", 0.5))
    if kind in ("m_adapter", "evl"):
        return MethodSpec(kind, None, "before_attn", "all", t.get("dropout", 0.5), branch=t)
    if kind == "fe_adapter":
        adapter = dict(bottleneck=t.get("bottleneck", 384), kernel=list(t.get("kernel", [3, 3, 3])),
                       dilations=list(t.get("dilations", [1, 2, 3])), gate=t.get("gate", True),
                       act=t.get("act", "identity"), adapt_cls=t.get("adapt_cls", False))
    else:  # ST-Adapter: one branch, no gate, no activation
        adapter = dict(bottleneck=t.get("bottleneck", 384), kernel=list(t.get("kernel", [3, 1, 1])),
                       dilations=[1], gate=False, act="identity", adapt_cls=t.get("adapt_cls", False))
    placement = t.get("placement", "before_attn")
    if placement not in ("before_attn", "before_mlp", "both"):
        raise ValueError(f"[method] placement {placement!r}")
    return MethodSpec(kind, adapter, placement, t.get("blocks", "all"), t.get("dropout", 0.5))


def resolve_blocks(spec, blocks):
    """vidapter's `BlockSet::resolve`: "all", "last:N", "first:N" or a list -> sorted indices."""
    if isinstance(spec, list):
        bad = [b for b in spec if b >= blocks]
        if bad:
            raise ValueError(f"block {bad[0]} does not exist: the backbone has blocks 0..={blocks - 1}")
        out = sorted(set(spec))
    elif spec == "all":
        out = list(range(blocks))
    else:
        which, n = spec.split(":")
        n = int(n)
        if not 0 < n <= blocks:
            raise ValueError(f"`{spec}`: the backbone has {blocks} blocks")
        out = list(range(blocks - n, blocks)) if which == "last" else list(range(n))
    if not out:
        raise ValueError("no block selected")
    return out


class VideoClassifier(nn.Module):
    """A backbone (`HFBackbone`), the method's adapters and a linear head.

    Parameter names are vidapter's paths: `attn_adapters.{j}.*`, `mlp_adapters.{j}.*` (the
    j-th adapted block, ascending), `m_adapter.*` (`MAdapter`), `evl.*` (`Evl`),
    `head.weight [C, K]` (`[d, K]` for M-adapter), `head.bias [K]`; the backbone's tensors
    are reached through `params.trainable_tensors`. Everything starts at zero except the
    backbone (and LayerNorms at (1, 0)); load values with `params.load_trainable`.
    """

    def __init__(self, backbone, method, classes):
        super().__init__()
        self.backbone = backbone
        self.method = method if isinstance(method, MethodSpec) else parse_method(method)
        n = len(backbone.layers)
        self.before_attn = [None] * n
        self.before_mlp = [None] * n
        self.attn_adapters = nn.ModuleList()
        self.mlp_adapters = nn.ModuleList()
        spec = self.method
        if spec.adapter is not None:
            for i in resolve_blocks(spec.blocks, n):
                if spec.placement in ("before_attn", "both"):
                    self.before_attn[i] = len(self.attn_adapters)
                    self.attn_adapters.append(ConvAdapter(backbone.hidden_size, **spec.adapter))
                if spec.placement in ("before_mlp", "both"):
                    self.before_mlp[i] = len(self.mlp_adapters)
                    self.mlp_adapters.append(ConvAdapter(backbone.hidden_size, **spec.adapter))
        self.m_adapter, self.evl = None, None
        feature_dim = backbone.hidden_size
        if spec.kind == "m_adapter":
            kw = m_adapter_ref.parse(spec.branch)
            kw["blocks"] = resolve_blocks(kw["blocks"], n)
            self.m_adapter = m_adapter_ref.MAdapter(backbone.hidden_size, **kw)
            feature_dim = kw["width"]
        elif spec.kind == "evl":
            kw = evl_ref.parse(spec.branch, backbone.hidden_size)
            self.evl = evl_ref.Evl(backbone.hidden_size, n, backbone.trained_grid, **kw)
        self.head = InOutLinear(feature_dim, classes)
        # Only full fine-tuning trains the backbone.
        backbone.requires_grad_(spec.kind == "full_finetune")
        # ViT's tanh pooler is read by no clip feature: vidapter leaves it frozen (and
        # uncounted) under full fine-tuning too.
        pooler = getattr(backbone.model, "pooler", None)
        if pooler is not None:
            pooler.requires_grad_(False)

    def tokens(self, pixels, frames):
        """pixels [B*T, 3, H, W] -> last block's tokens [B*T, 1+N, C], through the adapters."""
        bb = self.backbone
        x = bb.embed(pixels)
        for i in range(len(bb.layers)):
            if self.before_attn[i] is not None:
                x = self.attn_adapters[self.before_attn[i]](x, frames)
            x = bb.attn_half(i, x)
            if self.before_mlp[i] is not None:
                x = self.mlp_adapters[self.before_mlp[i]](x, frames)
            x = bb.mlp_half(i, x)
        return x

    def frozen_levels(self, pixels):
        """Every hidden state of the frozen backbone, without autograd: [embeddings, output of
        block 0, ...], each [B*T, 1+N, C] (vidapter's level numbering)."""
        bb = self.backbone
        with torch.no_grad():
            x = bb.embed(pixels)
            levels = [x]
            for i in range(len(bb.layers)):
                x = bb.mlp_half(i, bb.attn_half(i, x))
                levels.append(x)
        return levels

    def branch_features(self, pixels, frames, grid):
        """The side branch's clip feature from the frozen backbone's levels (constants)."""
        levels = self.frozen_levels(pixels)
        if self.m_adapter is not None:
            m = self.m_adapter
            return m([levels[i] for i in m.levels_needed()], frames, grid)
        e = self.evl
        attention = []
        if e.reads_attention:
            with torch.no_grad():  # block b's queries and keys come from its input, level b
                attention = [self.backbone.query_key(b, levels[b]) for b in e.blocks]
        return e([levels[b + 1] for b in e.blocks], attention, frames, grid)

    def clip_features(self, clips):
        """clips [B, T, 3, H, W] -> [B, C] (see the module docstring)."""
        b, t, ch, h, w = clips.shape
        pixels = clips.reshape(b * t, ch, h, w)
        if self.m_adapter is not None or self.evl is not None:
            p = self.backbone.patch_size
            return self.branch_features(pixels, t, (h // p, w // p))
        if self.method.kind == "linear_probe":
            with torch.no_grad():
                x = self.tokens(pixels, t)
                f = self.backbone.pool(x[:, 0])  # [B*T, C]
            return f.reshape(b, t, -1).mean(dim=1)
        x = self.tokens(pixels, t)
        cls = x[:, 0].reshape(b, t, -1).mean(dim=1)  # [B, C]
        return self.backbone.pool(cls)

    def forward(self, clips):
        """clips [B, T, 3, H, W] -> logits [B, K]."""
        return self.head(self.clip_features(clips))


def cross_entropy(logits, targets, eps):
    """vidapter's loss: mean over the batch of -sum_k q_k log_softmax(logits)_k with
    q = (1 - eps) onehot(y) + eps / K, which is PyTorch's `label_smoothing`."""
    return F.cross_entropy(logits, targets, label_smoothing=eps)
