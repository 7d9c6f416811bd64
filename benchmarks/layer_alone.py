"""The BN layer alone: one training-mode forward and backward pass (the gradients
with respect to the input, `gamma` and `beta`), compiled as each backend compiles,
and the bytes each variant keeps for its backward pass.

The activation is shaped like the input of `bnk.CNN`'s first BN layer: the first
convolution's output, `(batch, 28, 28, 32)`. The upstream gradient is a fixed
random tensor.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # Imported for real only once KERAS_BACKEND is known.
    import jax
    import keras

# The output of bnk.CNN's first convolution (SAME padding keeps the image's
# height and width; bnk.cnn.FILTERS[0] channels). Restated, not derived from
# bnk.cnn: `benchmarks.markdown` needs it in the parent process, which runs
# without Keras (importing bnk imports Keras, which would pick a backend).
# tests/test_benchmark_networks.py checks it against bnk.CNN.
FIRST_BLOCK_ACTIVATION = (28, 28, 32)


def activation(batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`(x, dy)`: a first-block activation of `batch` images and an upstream
    gradient for it, float32; `x` has a non-zero mean, as a conv output has."""
    rng = np.random.default_rng(seed)
    shape = (batch, *FIRST_BLOCK_ACTIVATION)
    x = rng.normal(0.5, 2.0, shape).astype(np.float32)
    return x, rng.normal(0.0, 1.0, shape).astype(np.float32)


def step_function(
    backend: str, layer: keras.layers.Layer, jit: bool, x: np.ndarray, dy: np.ndarray
) -> Callable[[], Any]:
    """A function running `layer`'s forward and backward pass once per call (the
    inputs held on the device). On jax it returns the input's gradient, which
    the caller waits for (`block_until_ready`); the others return when done
    (torch on CUDA waits for the device).
    JAX's pass is stateless: it leaves out the moving statistics' update, which
    the other backends make.

    Args:
        backend: the Keras backend.
        layer: a built BN layer (bnk.BatchNorm or keras.layers.BatchNormalization).
        jit: compile: `jax.jit` (always, on jax), `tf.function(jit_compile=True)`
            (else a plain tf.function), `torch.compile` of the forward pass (else
            eager; AOTAutograd compiles the backward with it).
        x, dy: the input and the upstream gradient.
    """
    if backend == "tensorflow":
        import tensorflow as tf

        x_t, dy_t = tf.constant(x), tf.constant(dy)
        variables = layer.trainable_variables

        @tf.function(jit_compile=jit)
        def step(x: tf.Tensor, dy: tf.Tensor) -> list[tf.Tensor]:
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
            return tape.gradient(y, [x, *variables], output_gradients=dy)

        return lambda: step(x_t, dy_t)[0][0, 0, 0, 0].numpy()
    if backend == "jax":
        import jax

        x_j, dy_j = jax.numpy.asarray(x), jax.numpy.asarray(dy)
        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        # The variables are arguments, not constants XLA could fold (gamma 1, beta 0).
        @jax.jit
        def step(
            x: jax.Array,
            dy: jax.Array,
            trainable: list[jax.Array],
            non_trainable: list[jax.Array],
        ) -> tuple[jax.Array, list[jax.Array]]:
            return _jax_vjp(layer, x, trainable, non_trainable)[1](dy)

        return lambda: step(x_j, dy_j, trainable, non_trainable)[0]
    import torch

    x_t, dy_t = _torch_on_device(x), _torch_on_device(dy)
    x_t.requires_grad_()
    variables = [v.value for v in layer.trainable_variables]

    def forward(x: torch.Tensor) -> torch.Tensor:
        return layer(x, training=True)

    if jit:
        forward = torch.compile(forward)

    def step() -> tuple[torch.Tensor, ...]:
        grads = torch.autograd.grad(forward(x_t), [x_t, *variables], dy_t)
        if x_t.is_cuda:  # CUDA runs asynchronously: wait, as the other backends do.
            torch.cuda.synchronize()
        return grads

    return step


def _torch_on_device(array: np.ndarray) -> Any:
    """`array` as a torch tensor on the device Keras's torch backend computes on."""
    import keras

    return keras.ops.convert_to_tensor(array).detach().clone()


def _jax_vjp(
    layer: keras.layers.Layer,
    x: jax.Array,
    trainable: list[jax.Array],
    non_trainable: list[jax.Array],
) -> tuple[jax.Array, Callable[[jax.Array], tuple[jax.Array, list[jax.Array]]]]:
    """`jax.vjp` of the layer's training-mode output in `x` and its trainable
    variables (`gamma`, `beta`), its moving statistics held fixed."""
    import jax

    def forward(x: jax.Array, trainable: list[jax.Array]) -> jax.Array:
        return layer.stateless_call(trainable, non_trainable, x, training=True)[0]

    return jax.vjp(forward, x, trainable)


def saved_bytes(backend: str, layer: keras.layers.Layer, x: np.ndarray) -> int | None:
    """Bytes the backward pass of `layer` keeps from one training-mode forward
    pass on `x`, or None where the backend cannot say (TensorFlow).

    JAX: the residuals of `jax.vjp`, the array leaves of the pytree of the
    function it returns. PyTorch (eager): the tensors autograd saves, seen by
    `torch.autograd.graph.saved_tensors_hooks`, plus the tensors that a custom
    gradient's backward function holds in its closure (Keras's torch
    `custom_gradient` keeps them there, out of the hooks' sight), found as the
    tensors alive after the forward pass that were not before it. Counted once
    per storage (JAX: per array), the input included where it is kept, the
    output left out.
    """
    if backend == "jax":
        import jax

        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]
        _, vjp = _jax_vjp(layer, jax.numpy.asarray(x), trainable, non_trainable)
        leaves = {id(leaf): leaf for leaf in jax.tree_util.tree_leaves(vjp)}
        return sum(leaf.nbytes for leaf in leaves.values() if hasattr(leaf, "nbytes"))
    if backend != "torch":
        return None
    import torch

    def storages() -> dict[int, int]:
        # Plain tensors only, by exact type: torch.compile's fake and functional
        # tensor subclasses hold no data, and type() looks up no lazy module.
        return {
            t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
            for t in gc.get_objects()
            if type(t) in (torch.Tensor, torch.nn.Parameter)
        }

    x_t = _torch_on_device(x).requires_grad_()
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    gc.collect()
    before = storages()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        y = layer(x_t, training=True)
    gc.collect()
    output = y.untyped_storage().data_ptr()
    held = {
        pointer: nbytes
        for pointer, nbytes in storages().items()
        if pointer not in before and pointer != output
    }
    kept = {**held, **saved}
    del y
    return sum(kept.values())
