"""vidapter's trainable tensors by path, in vidapter's orientation, for a reference model.

The paths are those of `vidapter::train::checkpoint::trainable_values` (also the `model.*`
keys of a vidapter checkpoint): the adapters' and head's parameters under their own names
(`attn_adapters.0.down.weight [C, r]`, `attn_adapters.0.branches.1.weight [r, 1, kt, kh, kw]`,
`attn_adapters.0.gate.weight [r, K]`, `head.weight [C, K]`, ...) and, for full fine-tuning,
every backbone tensor as `backbone.<vidapter path>` (see `HFBackbone.vidapter_entries`).
"""

import torch


def _own(model):
    """The classifier's own parameters (adapters, head) by name: already vidapter's paths."""
    return {k: p for k, p in model.named_parameters() if not k.startswith("backbone.")}


def _backbone(model):
    if model.method.kind != "full_finetune":
        return {}
    return {f"backbone.{k}": e for k, e in model.backbone.vidapter_entries().items()}


def trainable_tensors(model):
    """path -> value (a detached copy) of every tensor training updates."""
    out = {k: p.detach().clone() for k, p in _own(model).items()}
    out.update({k: e.value().clone() for k, e in _backbone(model).items()})
    return dict(sorted(out.items()))


def trainable_grads(model):
    """path -> gradient after `backward()`; paths that received no gradient are left out
    (ViT's tanh pooler under full fine-tuning: no method reads it)."""
    out = {k: p.grad.clone() for k, p in _own(model).items() if p.grad is not None}
    for k, e in _backbone(model).items():
        g = e.grad()
        if g is not None:
            out[k] = g.clone()
    return dict(sorted(out.items()))


def load_trainable(model, tensors):
    """Sets the model's trainable tensors from `tensors` (path -> tensor in vidapter's
    orientation). Like vidapter's `apply_trainable`, every trainable tensor must be given with
    its shape and nothing else may be; raises ValueError naming the offending path."""
    own, bb = _own(model), _backbone(model)
    expected = {k: tuple(p.shape) for k, p in own.items()}
    expected.update({k: tuple(e.value().shape) for k, e in bb.items()})
    for k, shape in expected.items():
        if k not in tensors:
            raise ValueError(f"missing trainable tensor {k} (expected shape {list(shape)})")
        if tuple(tensors[k].shape) != shape:
            raise ValueError(f"tensor {k}: shape {list(tensors[k].shape)}, expected {list(shape)}")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise ValueError(f"tensors the {model.method.kind} model does not train: {extra}")
    with torch.no_grad():
        for k, p in own.items():
            p.copy_(tensors[k])
    for k, e in bb.items():
        e.set(tensors[k])
