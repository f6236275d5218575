"""The motion demo's image pre-training, in PyTorch: a reference to hold `vidapter demo
--dataset motion` step 2 against.

Trains a transformers `ViTModel` of the demo's shape (or of any `config.json`) on the stills of
`vidapter synth --kind motion --peak-images N`, with the demo's recipe (one softmax per label
factor, grid cell 9 and axis bin 4; AdamW lr 2e-3, weight decay 0.05 on matrices, one epoch of
warm-up then cosine, batch 16, gradient norm clipped to 1, 80/20 split), and prints the held-out
accuracy of each factor every 5 epochs.

`--init torch` keeps PyTorch's module defaults (uniform +-1/sqrt(fan_in)); `--init normal` draws
every matrix N(0, 0.02) with zero biases, as `VisionTransformer::random` does.
`--save-init DIR` writes the initial weights as a Hugging Face folder that vidapter loads, so a
run of the Rust loop can start from exactly the same weights.

    vidapter synth --kind motion --out /tmp/mo --size 48 --peak-images 60
    python scripts/motion_stills_torch.py --data /tmp/mo --patch 4 --init torch
"""

import argparse
import math
import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from transformers import ViTConfig, ViTModel


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a `vidapter synth --kind motion` folder")
    p.add_argument("--per-class", type=int, default=60, help="stills used per image class")
    p.add_argument("--patch", type=int, default=6)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", choices=["torch", "normal"], default="torch")
    p.add_argument("--save-init", help="write the initial weights here (Hugging Face folder)")
    a = p.parse_args()
    torch.manual_seed(a.seed)
    random.seed(a.seed)

    by_label = {}
    for line in open(f"{a.data}/images.txt"):
        path, label = line.split()[:2]
        by_label.setdefault(int(label), []).append(path)
    items = [(q, l) for l, paths in sorted(by_label.items()) for q in paths[: a.per_class]]
    random.shuffle(items)

    def load(path):
        img = Image.open(f"{a.data}/{path}").convert("RGB").resize((a.size, a.size), Image.BILINEAR)
        return (torch.tensor(np.asarray(img), dtype=torch.float32).permute(2, 0, 1) / 255 - 0.5) / 0.5

    x = torch.stack([load(q) for q, _ in items])
    y = torch.tensor([l for _, l in items])
    cell, axis = y // 4, y % 4
    held = len(y) // 5

    cfg = ViTConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                    image_size=a.size, patch_size=a.patch, hidden_act="gelu", layer_norm_eps=1e-12,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, qkv_bias=True)
    vit = ViTModel(cfg, add_pooling_layer=False)
    for m in vit.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            if a.init == "torch":
                m.reset_parameters()
            else:
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
    if a.save_init:
        vit.save_pretrained(a.save_init, safe_serialization=True)
    head = nn.Linear(64, 13)
    nn.init.normal_(head.weight, std=0.02)
    nn.init.zeros_(head.bias)
    params = list(vit.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW([
        {"params": [q for q in params if q.dim() > 1], "weight_decay": 0.05},
        {"params": [q for q in params if q.dim() <= 1], "weight_decay": 0.0},
    ], lr=a.lr)
    train_n = len(y) - held
    per_epoch = math.ceil(train_n / 16)
    total = per_epoch * a.epochs

    def lr_at(step):
        if step < per_epoch:
            return (step + 1) / per_epoch
        t = min(1.0, (step - per_epoch) / max(1, total - per_epoch))
        return (1e-5 + (a.lr - 1e-5) * 0.5 * (1 + math.cos(math.pi * t))) / a.lr

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)

    def logits(batch):
        return head(vit(pixel_values=batch).last_hidden_state[:, 0])

    for epoch in range(a.epochs):
        order = torch.randperm(train_n) + held
        total_loss = 0.0
        for i in range(0, train_n, 16):
            idx = order[i:i + 16]
            out = logits(x[idx])
            loss = F.cross_entropy(out[:, :9], cell[idx]) + F.cross_entropy(out[:, 9:], axis[idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            total_loss += loss.item()
        if (epoch + 1) % 5 == 0 or epoch + 1 == a.epochs:
            with torch.no_grad():
                out = logits(x[:held])
            c = (out[:, :9].argmax(1) == cell[:held]).float().mean().item()
            ax = (out[:, 9:].argmax(1) == axis[:held]).float().mean().item()
            print(f"epoch {epoch + 1}: train loss {total_loss / per_epoch:.3f}, "
                  f"held out cell {c:.1%} axis {ax:.1%}", flush=True)


if __name__ == "__main__":
    main()
