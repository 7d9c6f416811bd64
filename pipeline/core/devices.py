"""Data-parallel training over N devices, each backend its own way.

- JAX: `keras.distribution.DataParallel` over the first N devices. On a CPU, JAX
  shows one device unless XLA_FLAGS asks for more before JAX starts, so the stage
  restarts itself once with `--xla_force_host_platform_device_count=N`.
- TensorFlow: `tf.distribute.MirroredStrategy` over N GPUs, or N logical CPUs carved
  out of the CPU before TensorFlow starts its runtime.
- PyTorch: one process per device, as `torch.distributed` wants it. Keras 3.15 has
  no data parallelism on torch (`keras.distribution` is JAX's and TensorFlow's), so
  the stage restarts itself under `torchrun`, each process joins a process group
  (gloo on CPU, NCCL on GPU) and fits its share of every batch with Keras's own
  `fit`, and a hook on each weight averages its gradient over the processes before
  the optimizer sees it: what PyTorch's DistributedDataParallel does.

The train stage then builds bnk.CNN with `pipeline.core.models.synchronized_batch_norm`,
so BatchNorm's statistics are those of the global batch on every backend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import keras
import numpy as np

from pipeline.core.errors import PipelineError

if TYPE_CHECKING:  # torch is imported only where the backend is torch
    import torch

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


@dataclasses.dataclass(frozen=True)
class Replica:
    """This process's place among the processes that train together: one process
    holding every device (JAX, TensorFlow), or one of `processes` (PyTorch)."""

    rank: int = 0
    processes: int = 1

    @property
    def writes_outputs(self) -> bool:
        return self.rank == 0

    def share(self, batch: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """This process's examples of a global batch."""
        return tuple(array[self.rank :: self.processes] for array in batch)


def check_batches_split(images: int, batch_size: int, count: int) -> None:
    """Every batch of a pass, the last (the remainder) too, splits evenly."""
    last = images % batch_size or batch_size
    if last % count:
        raise DevicesError(
            f"params.yaml: `train.devices`={count}: the last batch of each pass over "
            f"the {images} training images holds {last}, which does not split "
            f"evenly over {count} devices; change `train.batch_size` or "
            "`train.limit`."
        )


def data_parallel(count: int) -> contextlib.AbstractContextManager[Replica]:
    """A context in which to build, compile and fit a model over `count` devices;
    it gives this process's `Replica`."""
    backend = keras.backend.backend()
    if count == 1:
        return contextlib.nullcontext(Replica())
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
        return _tensorflow_strategy(count)
    return _torch_process_group(count)


@contextlib.contextmanager
def _jax_distribution(
    distribution: keras.distribution.DataParallel,
) -> Iterator[Replica]:
    keras.distribution.set_distribution(distribution)
    try:
        yield Replica()
    finally:
        keras.distribution.set_distribution(None)


@contextlib.contextmanager
def _tensorflow_strategy(count: int) -> Iterator[Replica]:
    import tensorflow as tf

    # Physical, not logical: listing logical devices would start the runtime.
    if len(tf.config.list_physical_devices("GPU")) >= count:
        strategy = tf.distribute.MirroredStrategy([f"GPU:{i}" for i in range(count)])
    else:
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
        strategy = tf.distribute.MirroredStrategy([f"CPU:{i}" for i in range(count)])
    with strategy.scope():
        yield Replica()


def restart_under_torchrun(count: int) -> None:
    """Re-execute this command as `torchrun --standalone --nproc-per-node=count`."""
    command = sys.orig_argv[1:]
    as_module = command[:1] == ["-m"]
    # "--": torchrun's parser would take the stage's options (`--run`) for its own.
    os.execve(
        sys.executable,
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc-per-node={count}", *(["-m"] if as_module else []), "--",
         *(command[1:] if as_module else command)],
        os.environ,
    )


@contextlib.contextmanager
def _torch_process_group(count: int) -> Iterator[Replica]:
    import torch
    import torch.distributed as dist

    if "TORCHELASTIC_RUN_ID" not in os.environ:  # not started by torchrun yet
        restart_under_torchrun(count)
    if int(os.environ["WORLD_SIZE"]) != count:
        raise DevicesError(
            f"params.yaml: `train.devices`={count}, but torchrun started "
            f"{os.environ['WORLD_SIZE']} processes."
        )
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield Replica(dist.get_rank(), count)
    finally:
        dist.destroy_process_group()


def average_gradients_over_processes(model: keras.Model) -> None:
    """On torch in a process group: each trainable weight's gradient becomes its
    mean over the processes as soon as backpropagation computes it, so every process
    applies the same update (the gradient of the loss over the global batch)."""
    import torch.distributed as dist

    processes = dist.get_world_size()

    def average(gradient: torch.Tensor) -> torch.Tensor:
        gradient = gradient.clone()
        dist.all_reduce(gradient)
        return gradient / processes

    for variable in model.trainable_variables:
        variable.value.register_hook(average)


class AverageLogsOverProcesses(keras.callbacks.Callback):
    """Each process's epoch logs (its share of the batches) become the mean over
    the processes: equal shares, so the mean over the global batches. First in the
    callbacks, so the ones after it log and back up the averaged values."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        import torch
        import torch.distributed as dist

        if not logs:
            return
        keys = sorted(logs)
        values = torch.tensor([float(logs[key]) for key in keys], dtype=torch.float64)
        dist.all_reduce(values)
        logs.update(zip(keys, (values / dist.get_world_size()).tolist(), strict=True))


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

    if torch.cuda.is_available():
        return [f"cuda:{rank}" for rank in range(count)]
    if count == 1:
        return ["cpu"]
    return [f"cpu, process {rank}" for rank in range(count)]
