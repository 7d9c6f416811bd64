"""One benchmark worker: a process that builds its configurations once, then
runs one measurement per request, so that the parent (`benchmarks.runner`) can
interleave measurements of different backends in time.

Protocol, JSON lines: the worker writes `{"ready": ..., "info": ...,
"configs": [...]}` once everything is built, compiled and warmed up; then for
each request `{"run": NAME}` on stdin it writes one result `{"seconds": s,
"work": n, "unit": "images" | "flop", "device": "cpu" | "gpu"}`; for
`{"profile": NAME}` (a training configuration the worker's info lists under
`profiles`) it writes `{"profile": {"steps": N, "with_bn": ROWS, "without_bn":
ROWS}}`, the ops (`[name, self seconds, calls]`) of the same N training steps
of that configuration and of its model with no BN (null if the profiler caught
no op); `{"quit": true}` ends it. Anything the
libraries print goes to stderr (the parent's log).

`--backend` is one of `benchmarks.analysis.WORKERS`: a Keras backend (jax,
torch; it must match KERAS_BACKEND, which the parent sets), TensorFlow with
oneDNN on or off (`TF_ENABLE_ONEDNN_OPTS`, which the parent sets too), or
`torch-native`, the plain PyTorch loop and the matmul peaks (see
`benchmarks.native_torch`).
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

from benchmarks import layer_alone, xplane
from benchmarks.analysis import (
    AUTODIFF,
    CLOSED_FORM,
    KERAS_BN,
    NO_BN,
    WORKERS,
    backend_of,
)

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

    from bnk.cnn import INPUT_SHAPE

    shape = (1, *INPUT_SHAPE)
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

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            if epoch == 1:
                self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch == 1:  # `logs` arrive as Python numbers: the epoch is done.
                self.seconds = time.perf_counter() - self.start

        def on_predict_begin(self, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

    return Clock()


def normalizations() -> dict[str, Callable[..., keras.layers.Layer] | None]:
    """The variants compared, by label: `normalization` of `bnk.CNN`."""
    import keras

    import bnk

    return {
        CLOSED_FORM: functools.partial(bnk.BatchNorm, closed_form_gradient=True),
        AUTODIFF: functools.partial(bnk.BatchNorm, closed_form_gradient=False),
        KERAS_BN: keras.layers.BatchNormalization,
        NO_BN: None,
    }


def compile_mode(backend: str, jit: bool) -> str:
    """The name of a backend's compile mode: Keras's `jit_compile=jit`."""
    if jit:
        return "torch.compile" if backend == "torch" else "xla"
    return "graph" if backend == "tensorflow" else "eager"


def op_rows(backend: str, fit: Callable[[], Any]) -> list[xplane.OpTime] | None:
    """The ops run in `fit`, a few training steps on `backend`, by time of
    their own (children left out), most first: torch.profiler's on torch (its
    `key_averages`: self CPU time and calls per name), `benchmarks.xplane`'s of
    TensorFlow's or JAX's profiler on the others (None if it caught no op)."""
    if backend != "torch":
        return xplane.profile(backend, fit)
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as p:
        fit()
    return xplane.by_self_time(
        xplane.OpTime(event.key, event.self_cpu_time_total * 1e-6, event.count)
        for event in p.key_averages()
    ) or None


class KerasBench:
    """Training and inference measurements of `bnk.CNN` on one Keras backend."""

    def __init__(self, worker: str, args: argparse.Namespace) -> None:
        backend = backend_of(worker)
        if backend == "tensorflow":
            import tensorflow as tf

            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        import keras

        import bnk
        from bnk.cnn import INPUT_SHAPE
        from pipeline.core.models import compile_classifier

        if keras.backend.backend() != backend:
            raise RuntimeError(
                f"KERAS_BACKEND gives {keras.backend.backend()}, not {backend}."
            )
        self.backend = backend
        self.onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
        self.devices = self._devices()
        self.device = self.devices["device"]
        self.batch, self.steps = args.batch, args.steps
        self.infer_batch, self.infer_steps = args.infer_batch, args.infer_steps
        keras.utils.set_random_seed(args.seed)
        rng = np.random.default_rng(args.seed)
        n = 2 * args.batch * args.steps  # two epochs: see steady_state_clock
        self.x = rng.random((n, *INPUT_SHAPE), dtype=np.float32)
        self.y = rng.integers(0, 10, n)
        self.xi = rng.random(
            (args.infer_batch * args.infer_steps, *INPUT_SHAPE), dtype=np.float32
        )

        jit_modes = [True]
        if backend == "torch":  # Eager is Keras's default on torch.
            jit_modes = [False] if args.no_torch_compile else [False, True]
        elif backend == "tensorflow":
            # Keras's default on a CPU-only machine is a tf.function without XLA.
            jit_modes = [False, True]
        self.worker = worker
        x_layer, dy_layer = layer_alone.activation(args.batch, args.seed)
        self.measurements: dict[str, Callable[[], dict[str, Any]]] = {}
        self.saved_bytes: dict[str, int | None] = {}
        # The closed-form step's models with BN and without, by its name.
        self.profiled: dict[str, tuple[keras.Model, keras.Model]] = {}
        for jit in jit_modes:
            mode = compile_mode(backend, jit)
            models = {}
            for label, normalization in normalizations().items():
                model = bnk.CNN(normalization=normalization)
                model.build((None, *INPUT_SHAPE))
                compile_classifier(model, keras.optimizers.Adam(1e-3), jit_compile=jit)
                for _ in range(2):  # Compiles, then warms up.
                    self._fit(model, args.warmup)
                models[label] = model
                name = f"train/{self.worker}/{label}/{mode}"
                self.measurements[name] = functools.partial(
                    self._fit, model, self.steps
                )
                if normalization is None:
                    continue
                if label == CLOSED_FORM:
                    self.flop = flop_per_image(model)
                    unfolded = model
                layer = normalization(momentum=model.momentum, epsilon=model.epsilon)
                layer.build((None, *layer_alone.FIRST_BLOCK_ACTIVATION))
                name = f"layer/{self.worker}/{label}/{mode}"
                step = layer_alone.step_function(backend, layer, jit, x_layer, dy_layer)
                for _ in range(2):
                    step()
                self.measurements[name] = functools.partial(
                    self._layer_steps, step, args.layer_reps
                )
                if jit == jit_modes[0]:  # The variant's, measured in one mode.
                    self.saved_bytes[f"{self.worker}/{label}"] = (
                        layer_alone.saved_bytes(backend, layer, x_layer)
                    )
            closed_form = f"train/{self.worker}/{CLOSED_FORM}/{mode}"
            self.profiled[closed_form] = (models[CLOSED_FORM], models[NO_BN])
            if mode == "eager":  # Folding pays in eager mode only: see TARGETS.
                folded = bnk.fold_batch_norm(unfolded)
                folded.compile(jit_compile=jit)
                for label, model in (("unfolded", unfolded), ("folded", folded)):
                    for _ in range(2):
                        self._predict(model, 1)
                    self.measurements[f"infer/{self.worker}/{label}/{mode}"] = (
                        functools.partial(self._predict, model, self.infer_steps)
                    )

        if backend in ("tensorflow", "jax"):  # torch's is torch-native's.
            self._matmul = self._matmul_function(args.matmul_n, args.seed)
            self.matmul_n, self.matmul_reps = args.matmul_n, args.matmul_reps
            self.measure_matmul()  # Compiles.
            # Per worker: TensorFlow's two workers may differ (oneDNN).
            self.measurements[f"peak/{worker}-matmul"] = self.measure_matmul

    def _matmul_function(
        self, n: int, seed: int
    ) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
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

    def _layer_steps(self, step: Callable[[], Any], reps: int) -> dict[str, Any]:
        """`reps` forward and backward passes of the BN layer alone."""
        start = time.perf_counter()
        for _ in range(reps):
            done = step()
        if self.backend == "jax":
            done.block_until_ready()  # The others return when it is computed.
        seconds = time.perf_counter() - start
        return {
            "seconds": seconds,
            "work": self.batch * reps,
            "unit": "images",
            "device": self.device,
        }

    def profile(self, name: str) -> dict[str, Any] | None:
        """`op_rows` of the same `fit` of `name` (a key of `profiled`) and of
        its model with no BN: `{"steps": N, "with_bn": ROWS, "without_bn":
        ROWS}`, or None if the profiler caught no op."""
        # Two epochs of up to five steps (see steady_state_clock), as many as
        # the data holds (--quick has fewer).
        steps = min(5, self.steps)
        with_bn, without_bn = (
            op_rows(self.backend, functools.partial(self._fit, model, steps))
            for model in self.profiled[name]
        )
        if with_bn is None or without_bn is None:
            return None
        return {"steps": 2 * steps, "with_bn": with_bn, "without_bn": without_bn}

    def _fit(self, model: keras.Model, steps: int) -> dict[str, Any]:
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

    def _predict(self, model: keras.Model, steps: int) -> dict[str, Any]:
        clock = steady_state_clock()
        n = self.infer_batch * steps
        model.predict(
            self.xi[:n], batch_size=self.infer_batch, verbose=0, callbacks=[clock]
        )
        seconds = time.perf_counter() - clock.start
        return {"seconds": seconds, "work": n, "unit": "images", "device": self.device}

    def _devices(self) -> dict[str, str]:
        """`{"device": "cpu" | "gpu", "device_name": ...}` this backend computes on."""
        from pipeline.core.environment import accelerator

        kind, name = accelerator() or ("cpu", "cpu")
        return {"device": kind, "device_name": name}

    def info(self) -> dict[str, Any]:
        import keras

        info = {
            "keras": keras.__version__,
            **self.devices,
            "saved_bytes": self.saved_bytes,
            "profiles": list(self.profiled),
        }
        if self.backend == "tensorflow":
            import tensorflow as tf

            info["tensorflow"] = tf.__version__
            info["TF_ENABLE_ONEDNN_OPTS"] = self.onednn
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
    parser.add_argument("--backend", required=True, choices=WORKERS)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--infer-batch", type=int, required=True)
    parser.add_argument("--infer-steps", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--layer-reps", type=int, required=True)
    parser.add_argument("--matmul-n", type=int, required=True)
    parser.add_argument("--matmul-reps", type=int, required=True)
    parser.add_argument("--no-torch-compile", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # The protocol gets the real stdout; whatever else writes to fd 1 goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def send(message: dict[str, Any]) -> None:
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
        if "profile" in request:
            send({"profile": bench.profile(request["profile"])})
        else:
            send(bench.measurements[request["run"]]())


if __name__ == "__main__":
    main()
