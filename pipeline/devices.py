"""Data-parallel training over N devices, each backend its own way.

- JAX: `keras.distribution.DataParallel` over the first N devices. On a CPU, JAX
  shows one device unless XLA_FLAGS asks for more before JAX starts, so the stage
  restarts itself once with `--xla_force_host_platform_device_count=N`.
- TensorFlow: `tf.distribute.MirroredStrategy` over N GPUs, or N logical CPUs carved
  out of the CPU before TensorFlow starts its runtime.
- PyTorch: refused. Its data parallelism is one process per device
  (`torch.distributed`), and Keras's `fit` on torch neither starts those processes
  nor averages their gradients.

The train stage then builds bnk.CNN with `pipeline.models.synchronized_batch_norm`,
so BatchNorm's statistics are those of the global batch on every backend.
"""

import contextlib
import os
import sys
from collections.abc import Iterator

import keras

from pipeline.errors import PipelineError

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


class DevicesError(PipelineError, ValueError):
    """`train.devices` asks for what this backend or machine cannot give."""


def restart_with_jax_devices(count: int) -> None:
    """Re-execute this process with XLA_FLAGS asking for `count` CPU devices, once."""
    flags = os.environ.get("XLA_FLAGS", "")
    if DEVICE_COUNT_FLAG in flags:
        return  # already asked; what JAX gives is checked by the caller
    env = {**os.environ, "XLA_FLAGS": f"{flags} {DEVICE_COUNT_FLAG}={count}".strip()}
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def data_parallel(count: int) -> contextlib.AbstractContextManager:
    """A context in which to build, compile and fit a model over `count` devices."""
    backend = keras.backend.backend()
    if count == 1:
        return contextlib.nullcontext()
    if backend == "jax":
        import jax

        if len(jax.devices()) < count and jax.default_backend() == "cpu":
            restart_with_jax_devices(count)
        devices = jax.devices()[:count]
        if len(devices) < count:
            raise DevicesError(
                f"params.yaml: `train.devices`={count}, but JAX has {len(devices)} "
                f"devices: {', '.join(map(str, devices))}."
            )
        return _jax_distribution(keras.distribution.DataParallel(devices=devices))
    if backend == "tensorflow":
        return _tensorflow_strategy(count).scope()
    raise DevicesError(
        f"params.yaml: `train.devices`={count}: data-parallel training runs on jax "
        "and tensorflow. On torch it would take one process per device "
        "(torch.distributed), which Keras's `fit` neither starts nor synchronizes; "
        "set `train.devices: 1`, or KERAS_BACKEND=jax or tensorflow."
    )


@contextlib.contextmanager
def _jax_distribution(distribution: keras.distribution.DataParallel) -> Iterator:
    keras.distribution.set_distribution(distribution)
    try:
        yield
    finally:
        keras.distribution.set_distribution(None)


def _tensorflow_strategy(count: int):  # -> tf.distribute.MirroredStrategy
    import tensorflow as tf

    # Physical, not logical: listing logical devices would start the runtime.
    if len(tf.config.list_physical_devices("GPU")) >= count:
        return tf.distribute.MirroredStrategy([f"GPU:{i}" for i in range(count)])
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )
    except RuntimeError as error:  # the runtime had started already
        raise DevicesError(
            f"train.devices={count}: cannot split the CPU into {count} logical "
            f"devices after TensorFlow started: {error}"
        ) from None
    return tf.distribute.MirroredStrategy([f"CPU:{i}" for i in range(count)])


def device_names(count: int) -> list[str]:
    """The names of the devices a run over `count` of them uses."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [str(device) for device in jax.devices()[:count]]
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = len(tf.config.list_logical_devices("GPU")) >= count
        devices = tf.config.list_logical_devices("GPU" if gpus else "CPU")
        return [device.name for device in devices[:count]]
    import torch

    return [str(torch.device("cpu"))]
