"""`fold_batch_norm`: fold inference-mode batch norm into the layer before it.

In inference mode a batch-norm layer is an affine map per channel,
``y = (x - mean) * s + beta`` with ``s = gamma / sqrt(moving_variance + eps)``.
When ``x`` is the output of a Conv or Dense layer ``x = w * in + b``, the two
collapse into one layer with ``w' = w * s`` (per output channel) and
``b' = (b - mean) * s + beta``, which saves the batch-norm pass at inference.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from bnk.batch_norm import BatchNorm
from bnk.cnn import CNN, INPUT_SHAPE

BATCH_NORMS = (BatchNorm, keras.layers.BatchNormalization)
# Kernels of all of these keep the output channels on their last axis.
FOLDABLE_INTO = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Dense,
)


def fold_batch_norm(
    model: keras.Model, input_shape: tuple[int, ...] | None = None
) -> keras.Model:
    """Return an inference copy of `model` with its batch norms folded away.

    Every `bnk.BatchNorm` or `keras.layers.BatchNormalization` whose only
    input is the output of a Conv1D/2D/3D or Dense layer (without activation,
    its output used by nothing else, and the batch norm's `axis` being its
    channel axis) is folded into that layer's kernel and bias and removed; a
    layer without bias gets one. Every other batch norm stays as it is, and a
    `UserWarning` names it and says why. `model` itself is left untouched: the
    result has its own layers and weights.

    The result matches `model` in inference mode (`training=False`), not in
    training mode: the folded layers no longer use batch statistics.

    Args:
        model: a built Sequential or Functional model, or a `bnk.CNN`.
            Batch norms inside nested models are not folded (and are reported).
        input_shape: only for `bnk.CNN`: the shape of one input image,
            channels last; defaults to the shape the model was built for
            (`bnk.cnn.INPUT_SHAPE` if the model does not say).

    Returns:
        A new Functional model (also for `bnk.CNN`: the same layers, called in
        inference order). Its attribute `unfolded_batch_norms` is a dict from
        the name of each batch norm left in place to the reason why (empty
        when all were folded).
    """
    graph = _as_functional(model, input_shape)
    folds, unfolded = _plan(graph)
    for name, reason in unfolded.items():
        warnings.warn(f"Batch norm {name!r} was not folded: {reason}.", stacklevel=2)

    producers = {producer: bn for bn, producer in folds.items()}

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if layer.name in producers:
            config["use_bias"] = True  # The folded offset needs a bias.
        return layer.__class__.from_config(config)

    def call(layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> Any:
        if layer.name in folds:
            return args[0]  # Skip the batch norm: its producer now does its job.
        return layer(*args, **kwargs)

    folded = keras.models.clone_model(graph, clone_function=clone, call_function=call)
    # Names are unique within a model and clone_model keeps them.
    for layer in folded.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue  # No weights, and clone_model renames it.
        old = graph.get_layer(layer.name)
        if layer.name in producers:
            layer.set_weights(_fold(old, graph.get_layer(producers[layer.name])))
        else:
            layer.set_weights(old.get_weights())
    folded.unfolded_batch_norms = unfolded
    return folded


def _as_functional(
    model: keras.Model, input_shape: tuple[int, ...] | None
) -> keras.Model:
    """A Functional copy of `model` with new layers and the same weights.

    Working on a copy whose layers are used by this graph only makes the
    graph checks below exact, and keeps `model`'s layers free of new nodes.
    """
    if not model.built:
        raise ValueError(f"Build model {model.name!r} before folding it.")
    if isinstance(model, (keras.Sequential, CNN)):
        if isinstance(model, CNN):
            layers = model.layers_in_call_order
            inputs = keras.Input(
                shape=input_shape or _image_shape(model), name=f"{model.name}_input"
            )
        else:
            layers = model.layers
            spec = model.inputs[0]
            inputs = keras.Input(
                batch_shape=spec.shape, dtype=spec.dtype, name=f"{model.name}_input"
            )
        x = inputs
        for layer in layers:
            copy = layer.__class__.from_config(layer.get_config())
            x = copy(x)
            copy.set_weights(layer.get_weights())
        return keras.Model(inputs, x, name=model.name)
    if not isinstance(model, keras.Model) or not hasattr(model, "_run_through_graph"):
        raise TypeError(
            "fold_batch_norm takes a Sequential or Functional model or a "
            f"bnk.CNN, got {type(model).__name__}."
        )
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _image_shape(model: CNN) -> tuple[int, ...]:
    """The shape of one image `model` was built for, channels last."""
    built = (model.get_build_config() or {}).get("input_shape")
    if built is None:
        return INPUT_SHAPE
    image = tuple(built[1:])
    # A CNN adds the channel axis of single-channel images given without one.
    return image if len(image) == len(INPUT_SHAPE) else (*image, 1)


def _plan(graph: keras.Model) -> tuple[dict[str, str], dict[str, str]]:
    """Which batch norms fold into which layer, and why the others cannot.

    Returns:
        `(folds, unfolded)`: `folds` maps each foldable batch norm's name to
        its producer's name; `unfolded` maps the other ones' names to a reason.
    """
    folds, unfolded = {}, {}
    for layer in graph.layers:
        if isinstance(layer, keras.Model):  # Not looked into: say so.
            for inner in _batch_norms_in(layer):
                unfolded[inner.name] = f"it is inside the nested model {layer.name!r}"
        elif isinstance(layer, BATCH_NORMS):
            producer, reason = _producer(layer, graph)
            if reason:
                unfolded[layer.name] = reason
            else:
                folds[layer.name] = producer.name
    return folds, unfolded


def _producer(
    bn: keras.layers.Layer, graph: keras.Model
) -> tuple[keras.layers.Layer | None, str | None]:
    """`(layer bn folds into, None)`, or `(None, why it cannot be folded)`."""
    nodes = bn._inbound_nodes
    if len(nodes) != 1:
        return None, "it is called more than once"
    if nodes[0].arguments.kwargs.get("training"):
        return None, "it is called with training=True, so uses batch statistics"
    (x,) = nodes[0].input_tensors
    producer = x._keras_history.operation
    if isinstance(producer, keras.layers.InputLayer):
        return None, "its input is a model input, not a Conv or Dense output"
    if not isinstance(producer, FOLDABLE_INTO):
        return None, (
            f"its input comes from {producer.name!r} "
            f"({type(producer).__name__}), not from a Conv or Dense layer"
        )
    if producer.activation is not keras.activations.linear:
        return None, f"{producer.name!r} applies an activation before it"
    # Folding changes the producer's output for every other user of it.
    if (
        len(producer._inbound_nodes) != 1
        or len(producer._outbound_nodes) != 1
        or any(x is output for output in graph.outputs)
    ):
        return None, f"the output of {producer.name!r} is also used elsewhere"
    rank = len(x.shape)
    channels_first = getattr(producer, "data_format", None) == "channels_first"
    if bn.axis % rank != (1 if channels_first else rank - 1):
        return None, f"its axis {bn.axis} is not the channel axis of {producer.name!r}"
    return producer, None


def _batch_norms_in(model: keras.Model) -> Iterator[keras.layers.Layer]:
    for layer in model.layers:
        if isinstance(layer, BATCH_NORMS):
            yield layer
        elif isinstance(layer, keras.Model):
            yield from _batch_norms_in(layer)


def _fold(producer: keras.layers.Layer, bn: keras.layers.Layer) -> list[np.ndarray]:
    """The producer's `[kernel, bias]` with `bn`'s inference map folded in."""
    dtype = keras.backend.standardize_dtype(producer.kernel.dtype)

    def value(variable: Any, default: float | None) -> Any:
        if variable is None:  # scale=False or center=False.
            return default
        # float64, so that folding itself adds no rounding beyond the final cast.
        return keras.ops.convert_to_numpy(variable).astype("float64")

    kernel = value(producer.kernel, None)
    bias = value(producer.bias, 0.0)
    mean = value(bn.moving_mean, None)
    scale = value(bn.gamma, 1.0) / np.sqrt(value(bn.moving_variance, None) + bn.epsilon)
    # Output channels are the kernel's last axis, so `scale` broadcasts there.
    kernel = kernel * scale
    bias = (bias - mean) * scale + value(bn.beta, 0.0)
    return [kernel.astype(dtype), np.broadcast_to(bias, scale.shape).astype(dtype)]
