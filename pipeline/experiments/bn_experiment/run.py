"""What batch normalization buys, measured with bnk.BatchNorm: two experiments.

Ioffe & Szegedy (2015), section 4.1, Figure 1 (`figure1`): a 784-100-100-100-10
network of sigmoid units, Gaussian initial weights, cross-entropy, mini-batches of 60,
trained with and without a BatchNorm before each
sigmoid (the same initial kernels and the same batch order for both). Every
`eval_every` steps (and at step 0): test accuracy and loss on the test set, and the
15th, 50th and 85th percentiles over the test set of the input to one sigmoid of the
last hidden layer (with BN: the BN output; without: the dense pre-activation), in
inference mode; with BN also that unit's gamma and beta.

Training is `model.fit` over `training_batches`, in "epochs" of `eval_every` steps
(compiled steps; several steps per execution where the backend allows).

The seed's CNN (bnk.CNN) with and without BatchNorm, Adam at several rates
(`cnn_with_and_without_bn`): validation accuracy and loss every `eval_every` steps, on
held-out training images; the same initial weights and the same batches for both
variants at every rate.
"""

import time
from pathlib import Path

import keras
import numpy as np
from keras import layers

import bnk
from pipeline.core import dataset
from pipeline.core.models import compile_classifier, logits_loss
from pipeline.core.normalizations import INFERENCE_BATCH, accuracy
from pipeline.core.runs import (
    aligned,
    finite_list,
    steps_per_execution,
    training_batches,
)
from pipeline.experiments.bn_experiment.params import MLP_UNITS, Cnn, Mlp, Params

PERCENTILES = (15, 50, 85)
HIDDEN_LAYERS = 3
UNITS = MLP_UNITS
VALIDATION_BATCH = 500
PIXELS = 28 * 28


def build_mlp(batch_norm: bool, init_stddev: float, seed: int) -> keras.Model:
    """784 -> 3 x (dense 100 [-> BatchNorm] -> sigmoid) -> dense 10 (logits).

    Kernels from N(0, init_stddev^2), seeded per layer, so both variants start from
    the same kernels. With BatchNorm the dense layers have no bias: BN's beta takes
    its place (Ioffe & Szegedy, section 3.2).
    """

    def kernels(layer_seed: int) -> keras.initializers.Initializer:
        return keras.initializers.RandomNormal(stddev=init_stddev, seed=layer_seed)

    inputs = keras.Input((PIXELS,), name="pixels")
    x = inputs
    for i in range(1, HIDDEN_LAYERS + 1):
        x = layers.Dense(
            UNITS,
            use_bias=not batch_norm,
            kernel_initializer=kernels(seed + i),
            name=f"dense{i}",
        )(x)
        if batch_norm:
            x = bnk.BatchNorm(name=f"bn{i}")(x)
        x = layers.Activation("sigmoid", name=f"sigmoid{i}")(x)
    outputs = layers.Dense(10, kernel_initializer=kernels(seed), name="logits")(x)
    return keras.Model(inputs, outputs, name="mlp_bn" if batch_norm else "mlp_plain")


def sigmoid_input_model(model: keras.Model) -> keras.Model:
    """(logits, input of the last hidden layer's sigmoids) of a build_mlp model."""
    last_sigmoid = model.get_layer(f"sigmoid{HIDDEN_LAYERS}")
    return keras.Model(model.input, [model.output, last_sigmoid.input])


class Figure1Recorder(keras.callbacks.Callback):
    """Test accuracy, loss and sigmoid-input percentiles at step 0 and every epoch."""

    def __init__(
        self, x_test: np.ndarray, y_test: np.ndarray, unit: int, eval_every: int
    ) -> None:
        super().__init__()
        self.x_test, self.y_test = x_test, y_test
        self.unit, self.eval_every = unit, eval_every
        self.steps: list[int] = []
        self.accuracy: list[float] = []
        self.loss: list[float] = []
        self.percentiles: dict[str, list[float]] = {str(p): [] for p in PERCENTILES}
        # of the followed unit's BatchNorm, if any
        self.gamma: list[float] = []
        self.beta: list[float] = []
        self._loss = logits_loss()

    def record(self, step: int) -> None:
        logits, pre_sigmoid = self._probe(self.x_test, training=False)
        logits = keras.ops.convert_to_numpy(logits)
        values = keras.ops.convert_to_numpy(pre_sigmoid)[:, self.unit]
        self.steps.append(step)
        self.accuracy.append(float(np.mean(np.argmax(logits, 1) == self.y_test)))
        loss = self._loss(self.y_test, logits)
        self.loss.append(float(keras.ops.convert_to_numpy(loss)))
        for p, value in zip(
            PERCENTILES, np.percentile(values, PERCENTILES), strict=True
        ):
            self.percentiles[str(p)].append(float(value))
        if self._bn is not None:
            gamma = keras.ops.convert_to_numpy(self._bn.gamma)[self.unit]
            beta = keras.ops.convert_to_numpy(self._bn.beta)[self.unit]
            self.gamma.append(float(gamma))
            self.beta.append(float(beta))

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._probe = sigmoid_input_model(self.model)
        names = [layer.name for layer in self.model.layers]
        last_bn = f"bn{HIDDEN_LAYERS}"
        self._bn = self.model.get_layer(last_bn) if last_bn in names else None
        self.record(0)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.record((epoch + 1) * self.eval_every)


def train_mlp(
    batch_norm: bool,
    config: Mlp,
    seed: int,
    training: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
) -> tuple[keras.Model, Figure1Recorder, float]:
    """Train one variant of Figure 1's network; return (model, recorder, seconds)."""
    keras.utils.set_random_seed(seed)  # the same initial kernels for both variants
    model = build_mlp(batch_norm, config.init_stddev, seed)
    eval_every = config.eval_every
    # Plain SGD: the paper names no optimizer; see params.yaml.
    compile_classifier(
        model,
        keras.optimizers.SGD(config.learning_rate),
        steps_per_execution=steps_per_execution(eval_every),
    )
    recorder = Figure1Recorder(*test, config.unit, eval_every)
    start = time.perf_counter()
    model.fit(
        training_batches(*training, config.batch_size, seed),
        steps_per_epoch=eval_every,
        epochs=config.steps // eval_every,
        shuffle=False,
        callbacks=[recorder],
        verbose=0,
    )
    return model, recorder, time.perf_counter() - start


def figure1(config: Mlp, seed: int, mnist: Path) -> dict:
    """Both variants on the MNIST file `mnist`: the series Figure 1 plots."""
    x_train, y_train, _, _ = dataset.load_training(mnist, 0, config.limit)
    x_test, y_test = dataset.load_test(mnist)
    training = aligned(
        x_train.reshape(-1, PIXELS),
        y_train,
        config.batch_size,
        config.eval_every,
        "bn_experiment.mlp",
    )
    test = (x_test.reshape(-1, PIXELS), y_test)
    result: dict = {
        "unit": config.unit,
        "training_images": len(training[0]),
        "test_images": len(y_test),
        "loss": {},
        "percentiles": {},
        "wall_seconds": {},
    }
    for name, batch_norm in (("bn", True), ("plain", False)):
        _, recorder, seconds = train_mlp(batch_norm, config, seed, training, test)
        result["steps"] = recorder.steps
        result[name] = finite_list(recorder.accuracy)
        result["loss"][name] = finite_list(recorder.loss)
        result["percentiles"][name] = {
            p: finite_list(values) for p, values in recorder.percentiles.items()
        }
        result["wall_seconds"][name] = round(seconds, 2)
        if batch_norm:
            # What BN itself learns for the followed unit: the scale and shift of 1c.
            result["bn_gamma"] = finite_list(recorder.gamma)
            result["bn_beta"] = finite_list(recorder.beta)
        print(
            f"mlp {name}: test accuracy {recorder.accuracy[-1]:.4f} after "
            f"{recorder.steps[-1]} steps ({seconds:.0f} s)",
            flush=True,
        )
    return result


def train_cnn(
    batch_norm: bool,
    learning_rate: float,
    config: Cnn,
    seed: int,
    training: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
) -> dict:
    """One run: the per-evaluation series of one variant at one learning rate, and
    its final accuracy on the test images."""
    keras.utils.set_random_seed(seed)  # the same initial weights for both
    normalization = bnk.BatchNorm if batch_norm else None
    model = bnk.CNN(normalization=normalization)
    eval_every = config.eval_every
    compile_classifier(
        model,
        keras.optimizers.Adam(learning_rate),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution(eval_every),
    )
    start = time.perf_counter()
    history = model.fit(
        training_batches(*training, config.batch_size, seed),
        steps_per_epoch=eval_every,
        epochs=config.steps // eval_every,
        validation_data=validation,
        validation_batch_size=VALIDATION_BATCH,
        shuffle=False,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    logs = history.history
    return {
        "learning_rate": learning_rate,
        "batch_norm": batch_norm,
        "val_accuracy": finite_list(logs["val_accuracy"]),
        "val_loss": finite_list(logs["val_loss"]),
        "loss": finite_list(logs["loss"]),
        "accuracy": finite_list(logs["accuracy"]),
        "test_accuracy": accuracy(model, *test, INFERENCE_BATCH),
        "wall_seconds": round(seconds, 2),
    }


def cnn_with_and_without_bn(config: Cnn, seed: int, mnist: Path) -> dict:
    """Every rate, with and without BN, on the MNIST file `mnist`."""
    x_train, y_train, x_val, y_val = dataset.load_training(
        mnist, config.validation, config.limit
    )
    training = aligned(
        x_train, y_train, config.batch_size, config.eval_every, "bn_experiment.cnn"
    )
    test = dataset.load_test(mnist)
    runs = []
    for learning_rate in config.learning_rates:
        for batch_norm in (True, False):
            result = train_cnn(
                batch_norm, learning_rate, config, seed, training, (x_val, y_val), test
            )
            runs.append(result)
            final = result["val_accuracy"][-1]
            print(
                f"cnn lr={learning_rate:g} {'bn' if batch_norm else 'plain'}: "
                f"val accuracy {final if final is None else round(final, 4)} "
                f"({result['wall_seconds']:.0f} s)",
                flush=True,
            )
    every = config.eval_every
    return {
        "steps": list(range(every, config.steps + 1, every)),
        "training_images": len(training[0]),
        "validation_images": len(x_val),
        "test_images": len(test[0]),
        "runs": runs,
    }


def run(config: Params, seed: int, mnist: Path) -> dict:
    """Figure 1 and the CNN with and without BN, on the MNIST file `mnist`."""
    return {
        "mlp": figure1(config.mlp, seed, mnist),
        "cnn": cnn_with_and_without_bn(config.cnn, seed, mnist),
    }
