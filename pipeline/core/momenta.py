"""The moving statistics BatchNorm layers of other momenta would hold after the same
training, from one training run.

A moving average's update `m_t = a * m_(t-1) + (1 - a) * b_t` (bnk.functional.
moving_average) is linear, so two consecutive values of the average kept in training
give that step's batch statistic, `b_t = (m_t - a * m_(t-1)) / (1 - a)`; averaging
those at momentum `c` gives what a layer of momentum `c` would hold. Training never
reads the moving averages, so the weights and the batches are the same whatever the
momentum: one run answers for every momentum, at the cost of reading the statistics
after each step.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

import bnk


class OtherMomenta(keras.callbacks.Callback):
    """Follows every bnk.BatchNorm's moving statistics through `fit` (which must call
    back after every step: `steps_per_execution=1`) and keeps, for each momentum of
    `momenta`, the averages a layer of that momentum would hold.

    Each average starts from the layer's values when training starts, as a fresh layer
    of that momentum would. Kept in float64, so that the division by `1 - a` adds no
    rounding of its own beyond the float32 values it reads.
    """

    def __init__(self, momenta: Sequence[float]) -> None:
        super().__init__()
        self.momenta = tuple(momenta)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.layers = [
            layer
            for layer in self.model._flatten_layers(include_self=False)
            if isinstance(layer, bnk.BatchNorm)
        ]
        self.previous = self._values()
        self.averages = {c: [v.copy() for v in self.previous] for c in self.momenta}

    def _variables(self) -> list:
        return [
            variable
            for layer in self.layers
            for variable in (layer.moving_mean, layer.moving_variance)
        ]

    def _values(self) -> list[np.ndarray]:
        # JAX's fit keeps the variables' values in its own state until the epoch
        # ends; the layers show them only once synchronized.
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        return [
            keras.ops.convert_to_numpy(v).astype(np.float64) for v in self._variables()
        ]

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        current = self._values()
        trained = [layer.momentum for layer in self.layers for _ in range(2)]
        for momentum, averages in self.averages.items():
            for i, (now, before, a) in enumerate(
                zip(current, self.previous, trained, strict=True)
            ):
                batch_value = (now - a * before) / (1.0 - a)
                averages[i] = momentum * averages[i] + (1.0 - momentum) * batch_value
        self.previous = current

    def assign(self, momentum: float) -> None:
        """Set every layer's moving statistics to those of `momentum`."""
        for variable, value in zip(
            self._variables(), self.averages[momentum], strict=True
        ):
            variable.assign(value.astype(variable.dtype))
