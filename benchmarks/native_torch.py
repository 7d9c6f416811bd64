"""The seed CNN as plain PyTorch (no Keras), and the float32 matmul peak.

This is the peer a PyTorch user would otherwise write: `torch.nn.BatchNorm2d`,
channels-first images, an eager training loop. The architecture, initial
weight sizes, BN momentum/epsilon and the optimizer match `bnk.CNN` compiled
with `keras.optimizers.Adam` in `benchmarks.worker`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn


def seed_cnn() -> nn.Sequential:
    """The seed CNN, channels first: conv5x5(32)-BN-ReLU-pool,
    conv5x5(64)-BN-ReLU-pool, fc 1024 ReLU, dropout, fc 10.

    `bnk.CNN` restated rather than built from `bnk.cnn`'s constants: this
    worker runs without Keras, which importing bnk would import (with a
    backend). tests/test_benchmark_networks.py checks it against `bnk.CNN`."""
    layers = []
    channels = 1
    for filters in (32, 64):
        layers += [
            nn.Conv2d(channels, filters, 5, padding=2),
            # PyTorch's momentum is Keras's 1 - momentum: this is bnk's 0.9.
            nn.BatchNorm2d(filters, eps=1e-3, momentum=0.1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        channels = filters
    layers += [
        nn.Flatten(),
        nn.Linear(7 * 7 * 64, 1024),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(1024, 10),
    ]
    model = nn.Sequential(*layers)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            # bnk.CNN: TruncatedNormal(stddev=0.01) (cut at 2 stddev), bias 0.01.
            nn.init.trunc_normal_(module.weight, std=0.01, a=-0.02, b=0.02)
            nn.init.constant_(module.bias, 0.01)
    return model


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


class NativeTorch:
    """Measurements of the `torch-native` worker: native training, matmul peaks."""

    def __init__(
        self,
        batch: int,
        steps: int,
        warmup: int,
        matmul_n: int,
        matmul_reps: int,
        seed: int = 0,
    ) -> None:
        torch.manual_seed(seed)
        self.dev = device()
        self.batch, self.steps = batch, steps
        rng = np.random.default_rng(seed)
        n = batch * steps
        self.x = torch.from_numpy(rng.random((n, 1, 28, 28), dtype=np.float32)).to(
            self.dev
        )
        self.y = torch.from_numpy(rng.integers(0, 10, n)).to(self.dev)
        self.model = seed_cnn().to(self.dev)
        # Keras's Adam: learning rate 1e-3, epsilon 1e-7.
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, eps=1e-7)
        self.loss = nn.CrossEntropyLoss()
        self.model.train()
        self._train(warmup)
        self._train(warmup)

        self.matmul_n, self.matmul_reps = matmul_n, matmul_reps
        a = np.random.default_rng(seed + 1).random((matmul_n, matmul_n), np.float32)
        self.a_np, self.b_np = a, a.T.copy()
        self.a_t = torch.from_numpy(self.a_np).to(self.dev)
        self.b_t = torch.from_numpy(self.b_np).to(self.dev)
        self.matmul_numpy()
        self.matmul_torch()

        self.measurements: dict[str, Callable[[], dict[str, Any]]] = {
            "train/torch-native/BatchNorm2d/eager": self.train,
            "peak/numpy-matmul": self.matmul_numpy,
            "peak/torch-matmul": self.matmul_torch,
        }

    def _train(self, steps: int) -> None:
        model, optimizer, loss, batch = (
            self.model,
            self.optimizer,
            self.loss,
            self.batch,
        )
        for i in range(steps):
            xb = self.x[i * batch : (i + 1) * batch]
            yb = self.y[i * batch : (i + 1) * batch]
            optimizer.zero_grad(set_to_none=True)
            loss(model(xb), yb).backward()
            optimizer.step()
        sync(self.dev)

    def train(self) -> dict[str, Any]:
        start = time.perf_counter()
        self._train(self.steps)
        seconds = time.perf_counter() - start
        return {
            "seconds": seconds,
            "work": self.batch * self.steps,
            "unit": "images",
            "device": self.device_kind(),
        }

    def matmul_numpy(self) -> dict[str, Any]:
        start = time.perf_counter()
        for _ in range(self.matmul_reps):
            self.a_np @ self.b_np
        seconds = time.perf_counter() - start
        return {
            "seconds": seconds,
            "work": self._matmul_flop(),
            "unit": "flop",
            "device": "cpu",
        }

    def matmul_torch(self) -> dict[str, Any]:
        sync(self.dev)
        start = time.perf_counter()
        for _ in range(self.matmul_reps):
            self.a_t @ self.b_t
        sync(self.dev)
        seconds = time.perf_counter() - start
        return {
            "seconds": seconds,
            "work": self._matmul_flop(),
            "unit": "flop",
            "device": self.device_kind(),
        }

    def device_kind(self) -> str:
        return "gpu" if self.dev.type == "cuda" else "cpu"

    def _matmul_flop(self) -> int:
        return 2 * self.matmul_n**3 * self.matmul_reps

    def info(self) -> dict[str, Any]:
        info = {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(),
            "device": self.device_kind(),
            "device_name": "cpu",
        }
        if self.dev.type == "cuda":
            info["device_name"] = torch.cuda.get_device_name(0)
        return info
