"""bnk: batch normalization written once in Keras 3, for TensorFlow, JAX and PyTorch."""

from typing import Any

from bnk.batch_norm import BatchNorm
from bnk.cnn import CNN
from bnk.fold import fold_batch_norm
from bnk.statistics import recompute_statistics

#: Imported on first use: the pipeline, which never swaps a model's layers, runs
#: without bnk/swap.py (and its stages need not depend on it).
_SWAP = ("replace_batch_norm", "restore_batch_norm")

__all__ = [
    "CNN",
    "BatchNorm",
    "fold_batch_norm",
    "recompute_statistics",
    *_SWAP,
]


def __getattr__(name: str) -> Any:
    if name in _SWAP:
        from bnk import swap

        return getattr(swap, name)
    raise AttributeError(f"module 'bnk' has no attribute {name!r}")
