"""One benchmark worker: a process that builds its configurations once, then
runs one measurement per request, so that the parent (`benchmarks.runner`) can
interleave measurements of different backends in time.

Protocol, JSON lines: the worker writes `{"ready": ..., "info": ...,
"configs": [...]}` once everything is built, compiled and warmed up; then for
each request `{"run": NAME}` on stdin it writes one result `{"seconds": s,
"work": n, "unit": "images" | "flop", "device": "cpu" | "gpu"}`; `{"quit":
true}` ends it. Anything the libraries print goes to stderr (the parent's log).

`--backend` is a Keras backend (tensorflow, jax, torch; it must match
KERAS_BACKEND, which the parent sets) or `torch-native`, the plain PyTorch
loop and the matmul peaks (see `benchmarks.native_torch`).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.backends import BACKENDS

if TYPE_CHECKING:  # Imported for real only once KERAS_BACKEND is known.
    import keras

    import bnk



def flop_per_image(model: bnk.CNN) -> tuple[int, int]:
    """Multiply-add FLOP (2 per MAC) of one image through `bnk.CNN`'s Conv2D and
    Dense layers: `(forward, training)`. Training is forward + the gradients
    with respect to the inputs (not needed for the first layer) and weights,
    each costing a forward pass. Elementwise work (BN, ReLU, pooling, Adam) is
    left out: it is a few percent and memory-bound, not matmul-bound.
    """
    import keras

    shape = (1, 28, 28, 1)
    forward, first = 0, None
    for layer in model.layers_in_call_order:
        out = layer.compute_output_shape(shape)
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            flop = 2 * int(np.prod(out[1:])) * kh * kw * shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            flop = 2 * shape[-1] * layer.units
        else:
            flop = 0
        if flop and first is None:
            first = flop
        forward += flop
        shape = out
    return forward, 3 * forward - first


def steady_state_clock() -> keras.callbacks.Callback:
    """A Keras callback timing one epoch of a two-epoch `fit`, and `predict` from
    its start: this leaves out the per-call setup (data adapter, iterator), which
    an epoch of a real run pays once but a short measurement would pay every time
    (about 0.8 s per `fit` on TensorFlow here). It uses no batch-level hook: Keras
    calls those every step, which costs a host sync per step."""
    import keras

    class Clock(keras.callbacks.Callback):
        start = None
        seconds = None

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:  # `logs` arrive as Python numbers: the epoch is done.
                self.seconds = time.perf_counter() - self.start

        def on_predict_begin(self, logs=None):
            self.start = time.perf_counter()

    return Clock()


class KerasBench:
    """Training and inference measurements of `bnk.CNN` on one Keras backend."""

    def __init__(self, backend: str, args: argparse.Namespace) -> None:
        if backend == "tensorflow":
            import tensorflow as tf

            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        import keras

        import bnk
        from pipeline.models import compile_classifier

        if keras.backend.backend() != backend:
            raise RuntimeError(
                f"KERAS_BACKEND gives {keras.backend.backend()}, not {backend}."
            )
        self.backend = backend
        self.devices = self._devices()
        self.device = self.devices["device"]
        self.batch, self.steps = args.batch, args.steps
        self.infer_batch, self.infer_steps = args.infer_batch, args.infer_steps
        keras.utils.set_random_seed(args.seed)
        rng = np.random.default_rng(args.seed)
        n = 2 * args.batch * args.steps  # two epochs: see steady_state_clock
        self.x = rng.random((n, 28, 28, 1), dtype=np.float32)
        self.y = rng.integers(0, 10, n)
        self.xi = rng.random(
            (args.infer_batch * args.infer_steps, 28, 28, 1), dtype=np.float32
        )

        jit_modes = [True]
        if backend == "torch":  # Eager is Keras's default on torch.
            jit_modes = [False] if args.no_torch_compile else [False, True]
        elif backend == "tensorflow":
            # Keras's default on a CPU-only machine is a tf.function without XLA:
            # its XLA convolutions are slower here.
            jit_modes = [False, True]
        makers = {
            "bnk.BatchNorm": bnk.CNN,
            "keras.BatchNormalization": functools.partial(
                bnk.CNN, normalization=keras.layers.BatchNormalization
            ),
            "no BN": functools.partial(bnk.CNN, normalization=None),
        }
        self.measurements: dict[str, Callable[[], dict[str, Any]]] = {}
        for jit in jit_modes:
            if jit:
                mode = "torch.compile" if backend == "torch" else "xla"
            else:
                mode = "graph" if backend == "tensorflow" else "eager"
            for label, make in makers.items():
                model = make()
                model.build((None, 28, 28, 1))
                compile_classifier(
                    model, keras.optimizers.Adam(1e-3), jit_compile=jit
                )
                for _ in range(2):  # Compiles, then warms up.
                    self._fit(model, args.warmup)
                self.measurements[f"train/{backend}/{label}/{mode}"] = (
                    functools.partial(self._fit, model, self.steps)
                )
                if label == "bnk.BatchNorm":
                    unfolded = model
                    self.flop = flop_per_image(model)
            folded = bnk.fold_batch_norm(unfolded)
            folded.compile(jit_compile=jit)
            for label, model in (("unfolded", unfolded), ("folded", folded)):
                for _ in range(2):
                    self._predict(model, 1)
                self.measurements[f"infer/{backend}/{label}/{mode}"] = (
                    functools.partial(self._predict, model, self.infer_steps)
                )

        if backend in ("tensorflow", "jax"):  # torch's is torch-native's.
            self._matmul = self._matmul_function(args.matmul_n, args.seed)
            self.matmul_n, self.matmul_reps = args.matmul_n, args.matmul_reps
            self.measure_matmul()  # Compiles.
            self.measurements[f"peak/{backend}-matmul"] = self.measure_matmul

    def _matmul_function(self, n, seed):
        """A compiled float32 `n x n` product on this backend, and a function
        that waits for a result (the device runs products in order)."""
        a = np.random.default_rng(seed + 1).random((n, n), dtype=np.float32)
        if self.backend == "tensorflow":
            import tensorflow as tf

            x = tf.constant(a)
            matmul = tf.function(lambda y: tf.linalg.matmul(y, y), jit_compile=True)
            return (lambda: matmul(x)), lambda out: out[0, 0].numpy()
        import jax
        import jax.numpy as jnp

        x = jnp.asarray(a)
        matmul = jax.jit(lambda y: y @ y)  # An argument: no constant folding.
        return (lambda: matmul(x)), lambda out: out.block_until_ready()

    def measure_matmul(self) -> dict[str, Any]:
        product, wait = self._matmul
        start = time.perf_counter()
        for _ in range(self.matmul_reps):
            out = product()
        wait(out)
        seconds = time.perf_counter() - start
        flop = 2 * self.matmul_n**3 * self.matmul_reps
        return {"seconds": seconds, "work": flop, "unit": "flop", "device": self.device}

    def _fit(self, model, steps):
        clock = steady_state_clock()
        n = self.batch * steps
        model.fit(
            self.x[: 2 * n],
            self.y[: 2 * n],
            batch_size=self.batch,
            steps_per_epoch=steps,
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=[clock],
        )
        seconds = clock.seconds
        return {"seconds": seconds, "work": n, "unit": "images", "device": self.device}

    def _predict(self, model, steps):
        clock = steady_state_clock()
        n = self.infer_batch * steps
        model.predict(
            self.xi[:n], batch_size=self.infer_batch, verbose=0, callbacks=[clock]
        )
        seconds = time.perf_counter() - clock.start
        return {"seconds": seconds, "work": n, "unit": "images", "device": self.device}

    def _devices(self):
        """`{"device": "cpu" | "gpu", "device_name": ...}` this backend computes on."""
        from pipeline.environment import accelerator

        kind, name = accelerator() or ("cpu", "cpu")
        return {"device": kind, "device_name": name}

    def info(self) -> dict[str, Any]:
        import keras

        info = {"keras": keras.__version__, **self.devices}
        if self.backend == "tensorflow":
            import tensorflow as tf

            info["tensorflow"] = tf.__version__
        elif self.backend == "jax":
            import jax

            info["jax"] = jax.__version__
        else:
            import torch

            info["torch"] = torch.__version__
            info["torch_threads"] = torch.get_num_threads()
        info["flop_forward_per_image"], info["flop_train_per_image"] = self.flop
        return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--backend", required=True, choices=BACKENDS + ("torch-native",)
    )
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--infer-batch", type=int, required=True)
    parser.add_argument("--infer-steps", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--matmul-n", type=int, required=True)
    parser.add_argument("--matmul-reps", type=int, required=True)
    parser.add_argument("--no-torch-compile", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # The protocol gets the real stdout; whatever else writes to fd 1 goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def send(message):
        protocol.write(json.dumps(message) + "\n")

    if args.backend == "torch-native":
        from benchmarks.native_torch import NativeTorch

        bench = NativeTorch(
            args.batch,
            args.steps,
            args.warmup,
            args.matmul_n,
            args.matmul_reps,
            args.seed,
        )
    else:
        bench = KerasBench(args.backend, args)
    send({"ready": True, "info": bench.info(), "configs": list(bench.measurements)})
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        send(bench.measurements[request["run"]]())


if __name__ == "__main__":
    main()
