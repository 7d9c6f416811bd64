"""Sums over data-parallel replicas: the one backend-specific part of bnk.

`all_reduce_sum(x)` returns the sum of ``x`` over every replica of the
running data-parallel computation (each replica gets the same result), or
``x`` itself where there is only one. Gradients flow through it: the gradient
of an all-reduced sum is the all-reduced sum of the gradients.

- TensorFlow: inside a `tf.distribute` replica context with more than one
  replica in sync (`MirroredStrategy.run`, which `fit` uses under
  `strategy.scope()`), `ReplicaContext.all_reduce`; elsewhere ``x``.
- PyTorch: in a `torch.distributed` process group of more than one process
  (gloo on CPU, NCCL on GPU), the functional, autograd-aware `all_reduce` of
  `torch.distributed._functional_collectives`, which torch 2.13 names in place
  of the deprecated `torch.distributed.nn.functional.all_reduce` (the same
  sums and gradients, and no FutureWarning); elsewhere ``x``.
- JAX: ``x``. Under `keras.distribution.DataParallel`, Keras compiles one
  program over the global, sharded batch: a sum written with `keras.ops` is
  already a sum over every device, and XLA inserts the all-reduce itself.
"""

from __future__ import annotations

import keras

from bnk.functional import Tensor


def _tensorflow_all_reduce_sum(x: Tensor) -> Tensor:
    import tensorflow as tf

    context = tf.distribute.get_replica_context()  # None across replicas
    if context is None or context.num_replicas_in_sync == 1:
        return x
    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


def _torch_all_reduce_sum(x: Tensor) -> Tensor:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return x
    if dist.get_world_size() == 1:
        return x
    from torch.distributed._functional_collectives import all_reduce

    return all_reduce(x, "sum", dist.group.WORLD)


def all_reduce_sum(x: Tensor) -> Tensor:
    """``x`` summed over the data-parallel replicas of the active backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_all_reduce_sum(x)
    if backend == "torch":
        return _torch_all_reduce_sum(x)
    return x
