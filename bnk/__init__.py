"""bnk: batch normalization written once in Keras 3, for TensorFlow, JAX and PyTorch."""

from bnk.batch_norm import BatchNorm
from bnk.cnn import CNN
from bnk.fold import fold_batch_norm
from bnk.statistics import recompute_statistics
from bnk.swap import replace_batch_norm, restore_batch_norm

__all__ = [
    "CNN",
    "BatchNorm",
    "fold_batch_norm",
    "recompute_statistics",
    "replace_batch_norm",
    "restore_batch_norm",
]
