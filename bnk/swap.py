"""`replace_batch_norm` and `restore_batch_norm`: an existing model's batch norm
layers swapped for bnk's, and back, with their configuration and weights.

Both rebuild the model with `keras.models.clone_model(..., recursive=True)`, so
nested Functional and Sequential models are rebuilt too; every other layer is
cloned from its config, and every variable (weights, and the random-seed state
of layers such as `Dropout`) is copied from the original layer to its copy.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np

from bnk.batch_norm import BatchNorm

# The arguments the two layers share, with the same meaning and weights.
SHARED_ARGUMENTS = (
    "axis",
    "momentum",
    "epsilon",
    "center",
    "scale",
    "beta_initializer",
    "gamma_initializer",
    "moving_mean_initializer",
    "moving_variance_initializer",
    "beta_regularizer",
    "gamma_regularizer",
    "beta_constraint",
    "gamma_constraint",
    "synchronized",
    "renorm",
    "renorm_clipping",
    "renorm_momentum",
)
# The base `keras.layers.Layer` arguments a layer's config holds.
BASE_ARGUMENTS = ("name", "trainable", "dtype")
# bnk's arguments that Keras's layer does not have and that change training only
# (inference uses the moving statistics whatever they are). bnk's third,
# `closed_form_gradient`, changes how the gradient is computed, not its value.
TRAINING_ONLY_ARGUMENTS = ("unbiased_moving_variance", "virtual_batch_size")
# Arguments that decide which weights a layer has, or their shape: the copy must
# keep the original's, so `replace_batch_norm` takes none of them as an override.
WEIGHT_ARGUMENTS = ("axis", "center", "scale", "renorm")
# `replace_batch_norm`'s overrides: bnk.BatchNorm's own arguments, but those.
OVERRIDABLE = tuple(
    name
    for name in inspect.signature(BatchNorm.__init__).parameters
    if name not in ("self", "kwargs", *WEIGHT_ARGUMENTS)
)


def replace_batch_norm(model: keras.Model, **overrides: Any) -> keras.Model:
    """A copy of `model` with every `keras.layers.BatchNormalization` a
    `bnk.BatchNorm`, with the same configuration and weights.

    The copy is rebuilt with `keras.models.clone_model(recursive=True)`, so
    batch norm layers inside nested Functional and Sequential models are
    replaced too. Each `bnk.BatchNorm` takes its Keras layer's arguments
    (`axis`, `momentum` (Keras's, not bnk's default of 0.9), `epsilon`,
    `center`, `scale`, the initializers, regularizers and constraints,
    `synchronized`, `renorm`, `renorm_clipping`, `renorm_momentum`), its name,
    `trainable` flag and dtype policy, and its weights, which are the same
    four (plus renorm's three) in the same order. Every other layer is a clone
    of its original with the same weights; every variable is copied, random
    seed states too, so a `Dropout` layer and its copy draw the same masks.
    Names, layer order and `trainable` flags (of models, layers and
    variables) are kept. `model` itself is not changed. A compiled `model`
    gives a copy compiled with the same settings (a new optimizer: its state
    is not copied).

    With no overrides, the copy computes what `model` computes, in inference
    and in training, up to float32 rounding (bnk's variance is computed in two
    passes, and its gradient in closed form); see docs/batch_norm.md for where
    the two layers differ.

    Args:
        model: a built Functional or Sequential model. A subclassed model
            cannot be rebuilt by `clone_model` (its layers are called by its
            own Python code): a TypeError says so. Neither can a custom layer
            or subclassed model inside `model` that holds batch norm layers
            of its own (a TypeError names it); one that holds none is cloned
            from its config, as `clone_model` does. A subclass of
            `BatchNormalization` is refused (ValueError): what it changes is
            not known here.
        **overrides: bnk.BatchNorm arguments set on every replaced layer,
            over those taken from Keras's layer: bnk's own
            (`synchronized=True`, `virtual_batch_size`,
            `unbiased_moving_variance`, `closed_form_gradient`) or shared
            ones such as `momentum` or `epsilon`. Not `axis`, `center`,
            `scale` or `renorm`, which decide the layer's weights (a
            ValueError says so, as it does for a name bnk.BatchNorm does not
            take).

    Returns:
        A new model of `model`'s kind (Functional or Sequential).

    Raises:
        TypeError: `model` (or a layer in it holding batch norm layers) is
            not a Functional or Sequential model.
        ValueError: `model` is not built; an override is not allowed; a
            Keras layer has a setting bnk.BatchNorm cannot take (named).
    """
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(
            f"replace_batch_norm got overrides it cannot set: {unknown}. "
            "`axis`, `center`, `scale` and `renorm` decide a layer's weights, "
            "which are copied from Keras's layer; the others it takes are "
            f"bnk.BatchNorm's arguments: {list(OVERRIDABLE)}."
        )

    def convert(layer: keras.layers.Layer) -> BatchNorm:
        config = {**_bnk_config(layer), **overrides}
        try:
            return BatchNorm(**config)
        except ValueError as error:
            raise ValueError(
                f"Layer {layer.name!r} cannot be a bnk.BatchNorm: {error}"
            ) from error

    return _swap(model, keras.layers.BatchNormalization, convert, "replace_batch_norm")


def restore_batch_norm(
    model: keras.Model, drop_training_options: bool = False
) -> keras.Model:
    """A copy of `model` with every `bnk.BatchNorm` a
    `keras.layers.BatchNormalization`, with the same configuration and weights:
    the inverse of `replace_batch_norm`, for a model to ship without bnk.

    Everything `replace_batch_norm` says of the copy holds here, the other way
    round: the same names, flags and weights (bit for bit: after
    `replace_batch_norm` and `restore_batch_norm`, the weights are the
    original's), nested Functional and Sequential models included.
    `closed_form_gradient` is dropped (it changes how the gradient is
    computed, not its value).

    Args:
        model: a built Functional or Sequential model (see
            `replace_batch_norm`; the same errors).
        drop_training_options: what to do with the bnk options Keras's layer
            lacks, which change training only: `unbiased_moving_variance=True`,
            `virtual_batch_size`, and `synchronized=True` on a backend other
            than TensorFlow (Keras's `synchronized` is TensorFlow's only). If
            False (the default), a ValueError names the first layer that uses
            one; if True, they are dropped, so the copy's inference is the
            same as `model`'s but its training is Keras's plain batch norm.

    Returns:
        A new model of `model`'s kind (Functional or Sequential).
    """

    def convert(layer: keras.layers.Layer) -> keras.layers.BatchNormalization:
        config = _keras_config(layer, drop_training_options)
        return keras.layers.BatchNormalization(**config)

    return _swap(model, BatchNorm, convert, "restore_batch_norm")


def _bnk_config(layer: keras.layers.BatchNormalization) -> dict[str, Any]:
    """bnk.BatchNorm's config for Keras's `layer`; a ValueError names a setting
    it has no counterpart for."""
    config = layer.get_config()
    extra = sorted(set(config) - set(BASE_ARGUMENTS) - set(SHARED_ARGUMENTS))
    if extra:
        raise ValueError(
            f"Layer {layer.name!r}: bnk.BatchNorm has no counterpart for the "
            f"BatchNormalization settings {extra} (values "
            f"{[config[key] for key in extra]})."
        )
    if not config.get("renorm"):
        # Keras's layer ignores renorm_clipping without renorm; bnk's refuses it.
        config.pop("renorm_clipping", None)
    return config


def _keras_config(layer: BatchNorm, drop_training_options: bool) -> dict[str, Any]:
    """Keras's BatchNormalization config for bnk's `layer`; a ValueError names a
    training option Keras's layer lacks, unless `drop_training_options`."""
    config = layer.get_config()
    config.pop("closed_form_gradient")
    training_only = {key: config.pop(key) for key in TRAINING_ONLY_ARGUMENTS}
    extra = {key: value for key, value in training_only.items() if value}
    if config["synchronized"] and keras.backend.backend() != "tensorflow":
        extra["synchronized"] = config.pop("synchronized")
    if extra and not drop_training_options:
        raise ValueError(
            f"Layer {layer.name!r} uses {extra}, which "
            "keras.layers.BatchNormalization does not have (its `synchronized` "
            "works on TensorFlow only; the backend here is "
            f"{keras.backend.backend()}). They change training only: pass "
            "drop_training_options=True to drop them (inference stays the "
            "same), or keep bnk.BatchNorm."
        )
    return config


def _swap(
    model: keras.Model,
    source: type[keras.layers.Layer],
    convert: Callable[[keras.layers.Layer], keras.layers.Layer],
    caller: str,
) -> keras.Model:
    """`model` cloned with each `source` layer `convert`ed, its state copied."""
    _check_cloneable(model, source, caller)

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if type(layer) is source:
            return convert(layer)
        if isinstance(layer, source):
            raise ValueError(
                f"{caller} does not convert layer {layer.name!r}: it is a "
                f"{type(layer).__name__}, a subclass of {source.__name__} whose "
                "changes it cannot carry over."
            )
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    pairs = list(_pairs(model, copy))
    for original, new in pairs:  # Outer models first: they set their layers'.
        new.trainable = original.trainable
    for original, new in pairs:
        if not _is_graph_model(original):
            _copy_variables(original, new)
    return copy


def _is_graph_model(layer: keras.layers.Layer) -> bool:
    """Whether `layer` is a Sequential or Functional model, which `clone_model`
    rebuilds layer by layer."""
    return isinstance(layer, keras.Sequential) or (
        isinstance(layer, keras.Model) and hasattr(layer, "_run_through_graph")
    )


def _check_cloneable(
    model: keras.Model, source: type[keras.layers.Layer], caller: str
) -> None:
    if not _is_graph_model(model):
        raise TypeError(
            f"{caller} takes a Functional or Sequential model, whose layers "
            "keras.models.clone_model can rebuild; got "
            f"{type(model).__name__} {getattr(model, 'name', '')!r}, a subclassed "
            "model (or layer) whose layers are called by its own Python code, "
            "which cannot be cloned. Build it with the batch norm layer you want "
            "instead (bnk.BatchNorm takes Keras's arguments, and `set_weights` "
            "takes a BatchNormalization's `get_weights()`: bnk.CNN, for one, "
            "takes a `normalization` argument), or convert the Functional or "
            "Sequential models it is made of and assemble it from those."
        )
    if not model.built:
        raise ValueError(
            f"{caller}: build model {model.name!r} first (call it on data, or "
            "give it an Input): the weights to copy do not exist yet."
        )
    _check_no_hidden(model, source, caller)


def _check_no_hidden(
    layer: keras.layers.Layer, source: type[keras.layers.Layer], caller: str
) -> None:
    """A TypeError if `layer` holds `source` layers that `clone_model` cannot
    reach: inside a custom layer or subclassed model, at any depth."""
    if _is_graph_model(layer):
        for inner in layer.layers:
            _check_no_hidden(inner, source, caller)
        return
    hidden = [
        inner.name
        for inner in layer._flatten_layers(include_self=False)
        if isinstance(inner, source)
    ]
    if hidden:
        raise TypeError(
            f"{caller} cannot convert the {source.__name__} layers {hidden} inside "
            f"{layer.name!r}: it is a {type(layer).__name__}, a custom layer or "
            "subclassed model, whose sub-layers keras.models.clone_model cannot "
            "rebuild. Build it with the batch norm layer you want instead, or "
            "make it a Functional or Sequential model."
        )


def _pairs(
    original: keras.layers.Layer, copy: keras.layers.Layer
) -> Iterator[tuple[keras.layers.Layer, keras.layers.Layer]]:
    """Each layer of `original` with its copy, outer models before their layers
    (`clone_model` keeps the names, which are unique within a model)."""
    yield original, copy
    if _is_graph_model(original):
        for layer in original.layers:
            if not isinstance(layer, keras.layers.InputLayer):
                yield from _pairs(layer, copy.get_layer(layer.name))


def _copy_variables(original: keras.layers.Layer, copy: keras.layers.Layer) -> None:
    """Every variable of `original` into `copy`'s, by position, after checking
    that they pair up by name and shape."""
    old, new = original.variables, copy.variables
    described = [
        [(variable.name, tuple(variable.shape)) for variable in variables]
        for variables in (old, new)
    ]
    if described[0] != described[1]:
        raise ValueError(
            f"The copy of layer {original.name!r} ({type(copy).__name__}) has "
            f"variables {described[1]}, the original ({type(original).__name__}) "
            f"{described[0]}: they cannot be copied one to one."
        )
    for source, target in zip(old, new, strict=True):
        target.assign(np.asarray(keras.ops.convert_to_numpy(source)))
        target.trainable = source.trainable
