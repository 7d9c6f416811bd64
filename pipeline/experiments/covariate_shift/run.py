"""Santurkar et al. (2018), "How does batch normalization help optimization?",
measured with bnk.BatchNorm in the seed's CNN (bnk.CNN, dropout off).

Three variants train from the same initial weights on the same batches with SGD and
momentum: without normalization ("plain"), with bnk.BatchNorm ("bn"), and with
bnk.BatchNorm followed by `DistributionNoise` ("noisy_bn"), which moves every channel's
distribution to a new random mean and scale at every training step. Every
`probe_every` steps, and at step 0:

- validation accuracy (inference mode) and the training loss;
- the distribution of a layer's input, the input of the second convolution (training
  mode, the noise of the step about to be taken): its mean and standard deviation per
  channel on a fixed batch of training images. How much those move between probes is
  the instability that "internal covariate shift" names (the paper's Figure 2);
- for "plain" and "bn", the loss landscape along the gradient (the paper's Figure 4):
  on the batch the next step trains on, the loss and the gradient at
  theta - eta * g for each eta of `step_sizes` (g: the gradient at theta). Its spread
  (max - min of the loss) and the largest l2 change of the gradient measure how
  smooth the landscape is where training goes.

Probes use `stateless_call` on copies of the variables, so they change nothing in
training: the batch statistics of BN (training mode, as in a step), the noise's seed
and the moving statistics are read, not advanced.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

import bnk
from bnk.batch_norm import Shape
from bnk.cnn import INPUT_SHAPE
from bnk.functional import Tensor
from pipeline.core import dataset
from pipeline.core.batches import ShuffledBatches
from pipeline.core.models import compile_classifier, logits_loss
from pipeline.core.normalizations import INFERENCE_BATCH, accuracy
from pipeline.core.runs import (
    aligned,
    finite_list,
    steps_per_execution,
    training_batches,
)
from pipeline.experiments.covariate_shift.params import Noise, Params

VARIANTS = ("plain", "bn", "noisy_bn")
#: The variants whose loss landscape is probed (the paper's Figure 4 compares these).
LANDSCAPE_VARIANTS = ("plain", "bn")
#: The layer whose input distribution is followed.
PROBED_LAYER = "conv2"
VALIDATION_BATCH = 500


@keras.saving.register_keras_serializable(package="pipeline")
class DistributionNoise(keras.layers.Layer):
    """A random affine map per channel, drawn afresh at every training step.

    In training, for each channel c a shift m_c ~ U(-mean, mean) and a scale
    s_c ~ U(1, max_scale) are drawn at every call, and the output is s_c * x + m_c.
    After a BatchNorm (within a batch: mean beta_c, standard deviation gamma_c) the
    next layer so sees a channel whose mean and spread jump at every step: non-zero
    mean, non-unit variance, changing over time. In inference the map is the noise's
    expectation, x * (1 + max_scale) / 2, as dropout's inference is its training
    map's expectation. Santurkar et al. (2018) draw such noise also per example;
    here each batch gets one draw per channel, the same for all its examples, which
    shifts the distribution the next layer sees as a whole, the shift that internal
    covariate shift names.

    Args:
        mean: half-width of the shift's uniform distribution, >= 0.
        max_scale: upper end of the scale's uniform distribution U(1, max_scale),
            >= 1.
        seed: seed of the draws (a `keras.random.SeedGenerator`, whose state is a
            variable of the layer, so `stateless_call` can replay a draw).
        **kwargs: base layer arguments (`name`, ...).

    Call arguments:
        inputs: any tensor, channels last.
        training: True draws the noise; False or None applies its expectation.
    """

    def __init__(
        self, mean: float, max_scale: float, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if mean < 0 or max_scale < 1:
            raise ValueError(
                f"DistributionNoise needs mean >= 0 and max_scale >= 1, got "
                f"mean={mean!r}, max_scale={max_scale!r}."
            )
        self.mean, self.max_scale, self.seed = mean, max_scale, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        if not training:
            return inputs * ((1.0 + self.max_scale) / 2.0)
        channels = (inputs.shape[-1],)
        shift = keras.random.uniform(
            channels, -self.mean, self.mean, seed=self.seed_generator
        )
        scale = keras.random.uniform(
            channels, 1.0, self.max_scale, seed=self.seed_generator
        )
        return inputs * keras.ops.cast(scale, inputs.dtype) + keras.ops.cast(
            shift, inputs.dtype
        )

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "mean": self.mean,
            "max_scale": self.max_scale,
            "seed": self.seed,
        }


def noisy_batch_norm(noise: Noise, seed: int) -> Callable[..., keras.Layer]:
    """bnk.CNN's `normalization` for "noisy_bn": bnk.BatchNorm then
    DistributionNoise, each block's noise seeded differently."""
    blocks = itertools.count(1)

    def make(name: str, **kwargs: Any) -> keras.Layer:
        return keras.Sequential(
            [
                bnk.BatchNorm(name="bn", **kwargs),
                DistributionNoise(
                    noise.mean, noise.max_scale, seed=seed + next(blocks), name="noise"
                ),
            ],
            name=name,
        )

    return make


def build_cnn(variant: str, noise: Noise, seed: int) -> bnk.CNN:
    """bnk.CNN without dropout (so a probe's loss is a function of the weights), with
    the normalization of `variant`, from the weights `seed` gives every variant."""
    normalization = {
        "plain": None,
        "bn": bnk.BatchNorm,
        "noisy_bn": noisy_batch_norm(noise, seed),
    }[variant]
    keras.utils.set_random_seed(seed)
    model = bnk.CNN(normalization=normalization, dropout=0.0)
    model.build((None, *INPUT_SHAPE))
    return model


def loss_and_gradients(model: keras.Model) -> Callable:
    """f(trainable, non_trainable, x, y) -> (loss, gradients): `model`'s
    cross-entropy in training mode at the given variable values (as `stateless_call`
    takes them) and its gradients with respect to `trainable`, on the backend in use.
    Nothing of `model` changes."""
    loss_fn = logits_loss()

    def loss(
        trainable: Sequence[Tensor],
        non_trainable: Sequence[Tensor],
        x: Tensor,
        y: Tensor,
    ) -> Tensor:
        logits, _ = model.stateless_call(trainable, non_trainable, x, training=True)
        return loss_fn(y, logits)

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(jax.value_and_grad(loss))
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def tensorflow_gradients(
            trainable: Sequence[Tensor],
            non_trainable: Sequence[Tensor],
            x: Tensor,
            y: Tensor,
        ) -> tuple[Tensor, list[Tensor]]:
            with tf.GradientTape() as tape:
                tape.watch(trainable)
                value = loss(trainable, non_trainable, x, y)
            return value, tape.gradient(value, trainable)

        def traced_once(
            trainable: Sequence[Tensor],
            non_trainable: Sequence[Tensor],
            x: Tensor,
            y: Tensor,
        ) -> tuple[Tensor, list[Tensor]]:
            # Tensors of fixed shapes, so that every probe reuses the one trace.
            return tensorflow_gradients(
                [tf.convert_to_tensor(v) for v in trainable],
                [tf.convert_to_tensor(v) for v in non_trainable],
                tf.convert_to_tensor(x),
                tf.convert_to_tensor(y),
            )

        return traced_once
    if backend == "torch":
        import torch

        def torch_gradients(
            trainable: Sequence[Tensor],
            non_trainable: Sequence[Tensor],
            x: Tensor,
            y: Tensor,
        ) -> tuple[Tensor, list[Tensor]]:
            trainable = [
                keras.ops.convert_to_tensor(v).detach().requires_grad_(True)
                for v in trainable
            ]
            value = loss(trainable, non_trainable, x, y)
            gradients = torch.autograd.grad(value, trainable)
            return value.detach(), [g.detach() for g in gradients]

        return torch_gradients
    raise ValueError(f"no gradient for backend {backend!r}")


def flat(tensors: Sequence) -> np.ndarray:
    """Tensors as one float64 vector."""
    return np.concatenate(
        [np.ravel(keras.ops.convert_to_numpy(t)).astype("float64") for t in tensors]
    )


def landscape(
    gradient_fn: Callable,
    trainable: Sequence,
    non_trainable: Sequence,
    x: np.ndarray,
    y: np.ndarray,
    step_sizes: Sequence[float],
) -> dict:
    """Along the gradient g at `trainable`: the loss and the l2 distance of the
    gradient from g at trainable - eta * g, for each eta of `step_sizes`."""
    trainable = [keras.ops.convert_to_numpy(v) for v in trainable]
    loss, gradients = gradient_fn(trainable, non_trainable, x, y)
    gradients = [keras.ops.convert_to_numpy(g) for g in gradients]
    g = flat(gradients)
    losses, changes = [], []
    for eta in step_sizes:
        moved = [v - eta * d for v, d in zip(trainable, gradients, strict=True)]
        moved_loss, moved_gradients = gradient_fn(moved, non_trainable, x, y)
        losses.append(float(keras.ops.convert_to_numpy(moved_loss)))
        changes.append(float(np.linalg.norm(flat(moved_gradients) - g)))
    return {
        "loss": float(keras.ops.convert_to_numpy(loss)),
        "gradient_norm": float(np.linalg.norm(g)),
        "losses": finite_list(losses),
        "gradient_changes": finite_list(changes),
    }


def channel_moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel (last axis) mean and standard deviation over every other axis."""
    values = np.asarray(values, "float64").reshape(-1, values.shape[-1])
    return values.mean(axis=0), values.std(axis=0)


def layer_input(model: bnk.CNN, name: str) -> Callable:
    """f(trainable, non_trainable, x) -> the input of `model`'s layer `name` in
    training mode at those variable values (nothing of `model` changes)."""
    layers = model.layers_in_call_order
    head = layers[: next(i for i, layer in enumerate(layers) if layer.name == name)]
    variables = model.trainable_variables + model.non_trainable_variables

    def probe(
        trainable: Sequence[Tensor], non_trainable: Sequence[Tensor], x: Tensor
    ) -> np.ndarray:
        values = list(trainable) + list(non_trainable)
        mapping = list(zip(variables, values, strict=True))
        with keras.StatelessScope(state_mapping=mapping):
            for layer in head:
                x = layer(x, training=True)
            return keras.ops.convert_to_numpy(x)

    return probe


class Prober(keras.callbacks.Callback):
    """Validation accuracy, the probed layer's input moments and (optionally) the
    loss landscape, at step 0 and at the end of every epoch of `every` steps."""

    def __init__(
        self,
        every: int,
        probe_x: np.ndarray,
        batches: ShuffledBatches,
        validation: tuple[np.ndarray, np.ndarray],
        step_sizes: Sequence[float] | None,
    ) -> None:
        super().__init__()
        self.every, self.probe_x, self.batches = every, probe_x, batches
        self.validation, self.step_sizes = validation, step_sizes
        self.steps: list[int] = []
        self.val_accuracy: list[float] = []
        self.train_loss: list[float | None] = []
        self.input_mean: list[list[float]] = []
        self.input_std: list[list[float]] = []
        self.landscapes: list[dict] = []

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self._input = layer_input(self.model, PROBED_LAYER)
        self._gradients = loss_and_gradients(self.model)
        self.record(0, None)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.record((epoch + 1) * self.every, (logs or {}).get("loss"))

    def record(self, step: int, train_loss: float | None) -> None:
        # Copies: JAX's fit and predict may donate (delete) the variables' buffers.
        trainable, non_trainable = (
            [keras.ops.convert_to_numpy(v) for v in variables]
            for variables in (
                self.model.trainable_variables,
                self.model.non_trainable_variables,
            )
        )
        mean, std = channel_moments(self._input(trainable, non_trainable, self.probe_x))
        x_val, y_val = self.validation
        logits = self.model.predict(x_val, batch_size=VALIDATION_BATCH, verbose=0)
        self.steps.append(step)
        self.val_accuracy.append(float(np.mean(np.argmax(logits, 1) == y_val)))
        self.train_loss.append(None if train_loss is None else float(train_loss))
        self.input_mean.append(finite_list(mean))
        self.input_std.append(finite_list(std))
        if self.step_sizes is not None:
            x, y = self.batches[step]  # the batch the next step trains on
            self.landscapes.append(
                landscape(
                    self._gradients, trainable, non_trainable, x, y, self.step_sizes
                )
            )


def train_variant(
    variant: str,
    config: Params,
    seed: int,
    training: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
) -> dict:
    """One variant trained with SGD and momentum; its series, one value per probe,
    and its final accuracy on the test images."""
    model = build_cnn(variant, config.noise, seed)
    every = config.probe_every
    compile_classifier(
        model,
        keras.optimizers.SGD(config.learning_rate, momentum=config.momentum),
        steps_per_execution=steps_per_execution(every),
    )
    batches = training_batches(*training, config.batch_size, seed)
    probe_x = training[0][: config.batch_size]
    step_sizes = config.step_sizes if variant in LANDSCAPE_VARIANTS else None
    prober = Prober(every, probe_x, batches, validation, step_sizes)
    start = time.perf_counter()
    model.fit(
        batches,
        steps_per_epoch=every,
        epochs=config.steps // every,
        shuffle=False,
        callbacks=[prober],
        verbose=0,
    )
    result = {
        "val_accuracy": finite_list(prober.val_accuracy),
        "train_loss": prober.train_loss[:1] + finite_list(prober.train_loss[1:]),
        "input_mean": prober.input_mean,
        "input_std": prober.input_std,
        "test_accuracy": accuracy(model, *test, INFERENCE_BATCH),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    if step_sizes is not None:
        result["landscape"] = prober.landscapes
    return result


def run(config: Params, seed: int, mnist: Path) -> dict:
    """Every variant on the MNIST file `mnist`: the series the report plots."""
    x_train, y_train, x_val, y_val = dataset.load_training(
        mnist, config.validation, config.limit
    )
    training = aligned(
        x_train,
        y_train,
        config.batch_size,
        config.probe_every,
        "covariate_shift",
        "probe_every",
    )
    test = dataset.load_test(mnist)
    result: dict = {
        "steps": list(range(0, config.steps + 1, config.probe_every)),
        "training_images": len(training[0]),
        "validation_images": len(x_val),
        "test_images": len(test[0]),
        "probed_layer": PROBED_LAYER,
    }
    for variant in VARIANTS:
        series = train_variant(variant, config, seed, training, (x_val, y_val), test)
        result[variant] = series
        print(
            f"covariate_shift {variant}: val accuracy {series['val_accuracy'][-1]} "
            f"({series['wall_seconds']:.0f} s)",
            flush=True,
        )
    return result
