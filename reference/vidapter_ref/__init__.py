"""vidapter_ref: a PyTorch + transformers reference for vidapter's adaptation methods.

Numerical parity with the reference framework on the same weights is how vidapter defines a
correct model. This package re-implements, in plain PyTorch around a transformers backbone,
each method exactly as vidapter's Rust code defines it (`src/methods/`):

- the convolutional bottleneck adapter (`adapter.py`; FE-Adapter and ST-Adapter share it);
- adapters hooked between the attention half and the MLP half of each transformers block,
  the clip feature and the head (`classifier.py`);
- the side branches over the frozen backbone's per-block outputs: M-adapter (`m_adapter.py`)
  and EVL (`evl.py`), with their shared temporal parts (`side.py`);
- the label-smoothed cross-entropy of `src/train/loss.rs` (`classifier.cross_entropy`);
- reading and writing vidapter's trainable tensors by vidapter's own paths and orientation
  (`params.py`), so that weights and gradients can be exchanged with the Rust side.

`scripts/make_method_fixtures.py` uses it to write `tests/fixtures/methods/`, which
`tests/method_parity.rs` checks the Rust implementation against. Nothing here is imported by
the Rust build; it needs `torch`, `transformers` and `safetensors`.
"""

from .adapter import ConvAdapter, InOutLinear
from .backbone import HFBackbone, load_backbone
from .evl import Evl
from .m_adapter import MAdapter
from .classifier import MethodSpec, VideoClassifier, cross_entropy, parse_method
from .params import load_trainable, trainable_grads, trainable_tensors

__all__ = [
    "ConvAdapter",
    "Evl",
    "HFBackbone",
    "InOutLinear",
    "MAdapter",
    "MethodSpec",
    "VideoClassifier",
    "cross_entropy",
    "load_backbone",
    "load_trainable",
    "parse_method",
    "trainable_grads",
    "trainable_tensors",
]
