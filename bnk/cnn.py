"""`CNN`: the seed tutorial's two-block convolutional network for MNIST."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import initializers, layers

from bnk.batch_norm import BatchNorm, Shape
from bnk.functional import Tensor

# The network's shape, said once: the pipeline and the benchmarks build their
# inputs and copies of the network from these.
INPUT_SHAPE = (28, 28, 1)  # One MNIST image, channels last.
FILTERS = (32, 64)  # Of the two convolutional blocks, in order.
KERNEL_SIZE = 5
POOL_SIZE = 2
HIDDEN_UNITS = 1024

# The seed tutorial's initialization, by weight name: kernels truncated normal
# with stddev 0.01 (cut at two stddev), biases 0.01, and the normalization
# layers' usual gamma 1, beta 0, moving mean 0, moving variance 1.
# Identifiers for `keras.initializers.get` rather than initializer objects: an
# unseeded random initializer draws its seed once, when it is created, so one
# object shared by every model would give every model the same kernels.
INITIALIZERS: dict[str, str | dict[str, Any]] = {
    "kernel": {"class_name": "TruncatedNormal", "config": {"stddev": 0.01}},
    "bias": {"class_name": "Constant", "config": {"value": 0.01}},
    "gamma": "ones",
    "beta": "zeros",
    "moving_mean": "zeros",
    "moving_variance": "ones",
}


@keras.saving.register_keras_serializable(package="bnk")
class CNN(keras.Model):
    """The seed's MNIST network as a subclassed model.

    Two blocks of conv 5x5 (SAME) -> normalization -> ReLU -> max-pool 2x2,
    with 32 then 64 filters; then dense 1024 ReLU, dropout, dense
    `num_classes` (the sizes are this module's `KERNEL_SIZE`, `FILTERS`,
    `POOL_SIZE` and `HIDDEN_UNITS`). The output is logits (use
    `from_logits=True` losses); the seed's softmax and clipped log are folded
    into the loss, which is the numerically stable form.

    Initialization as in the seed (`INITIALIZERS`): kernels truncated normal
    with stddev 0.01, biases 0.01. The convolutions keep their bias, as the
    seed does, although batch norm's `beta` makes it redundant (Ioffe &
    Szegedy, section 3.2): that keeps the parameter count at the seed's
    3,275,018 (192 non-trainable) and lets `normalization=None` use the bias.

    Args:
        normalization: the layer after each convolution: a layer class, or a
            function returning a layer, called once per block with the
            keyword arguments of `keras.layers.BatchNormalization` that the
            network sets: `momentum`, `epsilon`, `gamma_initializer`,
            `beta_initializer`, `moving_mean_initializer`,
            `moving_variance_initializer` and `name` ("bn1", "bn2").
            Default `bnk.BatchNorm`; `keras.layers.BatchNormalization` for
            Keras's own; None for no normalization. To save and load the
            model, it must be a Keras layer class or an object registered
            with `keras.saving.register_keras_serializable` (or passed to
            `load_model` in `custom_objects`).
        num_classes: number of outputs.
        dropout: dropout rate before the last layer (the seed keeps 0.5).
        momentum: normalization momentum (the seed's decay, 0.9).
        epsilon: normalization epsilon (1e-3).
        **kwargs: base model arguments (`name`, ...).

    Call arguments:
        inputs: images of shape (batch, 28, 28, 1) (`INPUT_SHAPE`), or
            (batch, 28, 28), float, channels last.
        training: True for training mode (batch statistics, dropout on).
    """

    def __init__(
        self,
        normalization: Callable[..., keras.layers.Layer] | None = BatchNorm,
        num_classes: int = 10,
        dropout: float = 0.5,
        momentum: float = 0.9,
        epsilon: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if normalization is not None and not callable(normalization):
            raise TypeError(
                "`normalization` must be a layer class, a function returning a "
                f"layer, or None; got normalization={normalization!r}."
            )
        self.normalization = normalization
        self.num_classes = num_classes
        self.dropout_rate = dropout
        self.momentum = momentum
        self.epsilon = epsilon
        # One object per model, shared by its layers: their shapes differ, so
        # their kernels do.
        kernel_initializer = initializers.get(INITIALIZERS["kernel"])
        bias_initializer = initializers.get(INITIALIZERS["bias"])

        # The attribute names and nesting below are where a saved model's weights
        # are stored: changing them would stop older files from loading.
        self.blocks = []
        for index, filters in enumerate(FILTERS, start=1):
            block = [
                layers.Conv2D(
                    filters,
                    KERNEL_SIZE,
                    padding="same",
                    kernel_initializer=kernel_initializer,
                    bias_initializer=bias_initializer,
                    name=f"conv{index}",
                )
            ]
            if normalization is not None:
                block.append(
                    normalization(
                        momentum=momentum,
                        epsilon=epsilon,
                        gamma_initializer=INITIALIZERS["gamma"],
                        beta_initializer=INITIALIZERS["beta"],
                        moving_mean_initializer=INITIALIZERS["moving_mean"],
                        moving_variance_initializer=INITIALIZERS["moving_variance"],
                        name=f"bn{index}",
                    )
                )
            block.append(layers.ReLU(name=f"relu{index}"))
            block.append(
                layers.MaxPooling2D(POOL_SIZE, padding="same", name=f"pool{index}")
            )
            self.blocks.append(block)
        self.flatten = layers.Flatten(name="flatten")
        self.hidden = layers.Dense(
            HIDDEN_UNITS,
            activation="relu",
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            name="fc1",
        )
        self.dropout = layers.Dropout(dropout, name="dropout")
        self.logits = layers.Dense(
            num_classes,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            name="logits",
        )

    @property
    def layers_in_call_order(self) -> list[keras.layers.Layer]:
        """The model's layers in the order `call` applies them, one after another."""
        return [layer for block in self.blocks for layer in block] + [
            self.flatten,
            self.hidden,
            self.dropout,
            self.logits,
        ]

    def build(self, input_shape: Shape) -> None:
        # A symbolic pass creates every sublayer's weights.
        self.call(keras.KerasTensor(input_shape))
        self.built = True

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        x = inputs
        if len(x.shape) == 3:
            x = keras.ops.expand_dims(x, -1)
        for layer in self.layers_in_call_order:
            x = layer(x, training=training)
        return x

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "normalization": _normalization_name(self.normalization),
            "num_classes": self.num_classes,
            "dropout": self.dropout_rate,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CNN:
        config = dict(config)
        name = config.get("normalization")
        if name is not None:
            config["normalization"] = keras.saving.get_registered_object(
                name, module_objects=vars(keras.layers)
            )
            if config["normalization"] is None:
                raise ValueError(
                    f"Unknown normalization {name!r}: register it with "
                    "`keras.saving.register_keras_serializable`, or pass it to "
                    "`keras.saving.load_model` in `custom_objects`."
                )
        return cls(**config)


def _normalization_name(
    normalization: Callable[..., keras.layers.Layer] | None,
) -> str | None:
    """The name `from_config` finds `normalization` by (None for None)."""
    if normalization is None:
        return None
    if not hasattr(normalization, "__name__"):
        raise TypeError(
            f"Cannot save normalization={normalization!r}: only a class or a "
            "named function can be found again when the model is loaded."
        )
    return keras.saving.get_registered_name(normalization)
