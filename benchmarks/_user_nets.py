"""Networks a user brings: written and trained outside the toolkit, then wrapped with ``ed.Teacher``.

- :class:`LeNet` for 1x28x28: two 5x5 convolutions (32 and 64 channels, each followed by a ReLU
  and a 2x2 max pool), a 1024 -> 60 -> 10 head: 114,206 parameters, layer names of its own
  (``c1``, ``act1``, ``s2``, ``c3``, ``act3``, ``s4``, ``f5``, ``out``).
- :class:`SmallResNet` for 3x32x32: a 3x3 stem with BatchNorm, three residual blocks (the second
  and third halve the resolution, with a 1x1 convolution + BatchNorm on the shortcut), the ReLU
  after the sum written functionally (as torchvision does), adaptive average pooling and a linear
  head.

:func:`train_plain` is the plain torch loop such a user writes (seeded, AdamW, a few epochs), on
the Dataset's scaled inputs reshaped to images.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LeNet", "SmallResNet", "train_plain"]


class LeNet(nn.Module):
    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 5)
        self.act1 = nn.ReLU()
        self.s2 = nn.MaxPool2d(2)
        self.c3 = nn.Conv2d(32, 64, 5)
        self.act3 = nn.ReLU()
        self.s4 = nn.MaxPool2d(2)
        self.f5 = nn.Linear(64 * 4 * 4, 60)
        self.out = nn.Linear(60, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.s2(self.act1(self.c1(x)))
        x = self.s4(self.act3(self.c3(x)))
        return self.out(F.relu(self.f5(x.flatten(1))))


class Block(nn.Module):
    """A basic residual block: conv-BN-ReLU-conv-BN, plus the (projected) input, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(c_out)
        self.conv_b = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn_b = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn_a(self.conv_a(x)))
        h = self.bn_b(self.conv_b(h))
        return F.relu(h + self.shortcut(x))


class SmallResNet(nn.Module):
    def __init__(self, n_classes: int = 10, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stage1 = Block(width, width)
        self.stage2 = Block(width, 2 * width, stride=2)
        self.stage3 = Block(2 * width, 4 * width, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4 * width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.head(self.pool(x).flatten(1))


def train_plain(
    net: nn.Module, data: Any, *, epochs: int = 8, batch_size: int = 64, lr: float = 2e-3, seed: int = 0
) -> dict[str, Any]:
    """Train ``net`` on ``data``'s training split with a plain loop; returns accuracy and seconds."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    shape = tuple(data.input_shape)
    X = torch.from_numpy(np.asarray(data.X_train, dtype=np.float32)).reshape(-1, *shape)
    y = torch.from_numpy(np.asarray(data.y_train, dtype=np.int64))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * -(-len(X) // batch_size))
    t0 = time.perf_counter()
    for _ in range(epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(X)))
        for start in range(0, len(X), batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(net(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        Xt = torch.from_numpy(np.asarray(data.X_test, dtype=np.float32)).reshape(-1, *shape)
        acc = float((net(Xt).argmax(1).numpy() == data.y_test).mean())
    return {"test_accuracy": acc, "train_s": time.perf_counter() - t0, "epochs": epochs,
            "params": int(sum(p.numel() for p in net.parameters()))}
