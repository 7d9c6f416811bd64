"""Stage `bn_experiment`: what batch normalization buys, measured with bnk.BatchNorm.

Two experiments, on the backend KERAS_BACKEND names, -> metrics/bn_experiment.json:

1. Ioffe & Szegedy (2015), section 4.1, Figure 1: a 784-100-100-100-10 network of
   sigmoid units, Gaussian initial weights, cross-entropy, mini-batches of 60, trained
   with and without a BatchNorm before each sigmoid (the same initial kernels and the
   same batch order for both). Every `eval_every` steps (and at step 0): test accuracy
   and loss on the test set, and the 15th, 50th and 85th percentiles over the test set
   of the input to one sigmoid of the last hidden layer (with BN: the BN output; without:
   the dense pre-activation), in inference mode; with BN also that unit's gamma and beta.
2. The seed's CNN (bnk.CNN) with and without BatchNorm, Adam at several learning rates:
   validation accuracy and loss every `eval_every` steps, on held-out training images.

Training is `model.fit` over `ShuffledBatches` (a fresh shuffle of the training
images on every pass, the same batches for both variants and on every backend), one
call per run, in "epochs" of `eval_every` steps (compiled steps; several steps per
execution where the backend allows). Only the first multiple of
`batch_size * eval_every` training images is used (all 60,000 for the MLP's defaults),
so that the evaluations fall on whole passes wherever they can.

`python -m pipeline.bn_experiment report` (stage `bn_experiment_report`) executes
notebooks/bn_experiment.ipynb on the metrics -> reports/bn_experiment.{ipynb,html}.
"""

import math
import numbers
import sys
import time
from pathlib import Path

import keras
import numpy as np
from keras import layers

import bnk
from pipeline import dataset, params
from pipeline.atomic import write_json
from pipeline.backend import BACKEND_FILE, BACKENDS, selected_backend
from pipeline.batches import ShuffledBatches
from pipeline.environment import describe
from pipeline.outputs import keeps_outputs

METRICS_FILE = Path("metrics/bn_experiment.json")
NOTEBOOK = Path("notebooks/bn_experiment.ipynb")
REPORT_STEM = Path("reports/bn_experiment")
PERCENTILES = (15, 50, 85)
HIDDEN_LAYERS = 3
UNITS = 100
PIXELS = 28 * 28


class DataError(ValueError):
    """The data file does not fit the params (too few images for one block)."""


def unit_index(key, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not 0 <= value < UNITS:
        raise params.ParamsError(
            f"params.yaml: `{key}` must be an integer in [0, {UNITS}), got {value!r}."
        )
    return int(value)


def learning_rates(key, value):
    if not isinstance(value, list) or not value:
        raise params.ParamsError(
            f"params.yaml: `{key}` must be a non-empty list of positive numbers, got {value!r}."
        )
    return [params.positive_float(f"{key}[{i}]", rate) for i, rate in enumerate(value)]


SCHEMA = {
    "mlp": {
        "steps": params.positive_int,
        "eval_every": params.positive_int,
        "batch_size": params.positive_int,
        "learning_rate": params.positive_float,
        "init_stddev": params.positive_float,
        "unit": unit_index,
        "limit": params.optional_positive_int,
    },
    "cnn": {
        "steps": params.positive_int,
        "eval_every": params.positive_int,
        "batch_size": params.positive_int,
        "learning_rates": learning_rates,
        "validation": params.positive_int,
        "limit": params.optional_positive_int,
    },
}


def load_params(path=params.PARAMS_FILE):
    config = params.load("experiment", SCHEMA, path)
    for part in ("mlp", "cnn"):
        section = config[part]
        if section["steps"] % section["eval_every"]:
            raise params.ParamsError(
                f"params.yaml: `experiment.{part}.steps`={section['steps']} must be a "
                f"multiple of `experiment.{part}.eval_every`={section['eval_every']}."
            )
    validation = config["cnn"]["validation"]
    if validation >= dataset.TRAINING_IMAGES:
        raise params.ParamsError(
            f"params.yaml: `experiment.cnn.validation`={validation} leaves no training "
            f"images (MNIST has {dataset.TRAINING_IMAGES})."
        )
    for part, available in (("mlp", dataset.TRAINING_IMAGES),
                            ("cnn", dataset.TRAINING_IMAGES - validation)):
        limit = config[part]["limit"]
        if limit is not None and limit > available:
            raise params.ParamsError(
                f"params.yaml: `experiment.{part}.limit`={limit} is larger than the "
                f"{available} training images available."
            )
    return config


def aligned(x, y, batch_size, eval_every, part):
    """The first multiple of `batch_size * eval_every` images (see the module doc)."""
    block = batch_size * eval_every
    keep = len(x) // block * block
    if keep == 0:
        raise DataError(
            f"experiment.{part}: {len(x)} training images are fewer than one block of "
            f"batch_size * eval_every = {block}."
        )
    return x[:keep], y[:keep]


def steps_per_execution(eval_every):
    """Several compiled steps per call where Keras allows it (not on torch)."""
    if keras.backend.backend() == "torch":
        return 1
    return math.gcd(eval_every, 50)


def training_batches(x, y, config, seed):
    """The batches both variants train on: a fresh shuffle in every pass."""
    return ShuffledBatches(x, y, config["batch_size"], seed)


def finite_list(values):
    """JSON has no NaN or infinity: a diverged value is written as null."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, float)]


# --- Ioffe & Szegedy, Figure 1 -------------------------------------------------------


def build_mlp(batch_norm, init_stddev, seed):
    """784 -> 3 x (dense 100 [-> BatchNorm] -> sigmoid) -> dense 10 (logits).

    Kernels from N(0, init_stddev^2), seeded per layer, so both variants start from the
    same kernels. With BatchNorm the dense layers have no bias: BN's beta takes its
    place (Ioffe & Szegedy, section 3.2).
    """
    inputs = keras.Input((PIXELS,), name="pixels")
    x = inputs
    for i in range(1, HIDDEN_LAYERS + 1):
        x = layers.Dense(
            UNITS,
            use_bias=not batch_norm,
            kernel_initializer=keras.initializers.RandomNormal(stddev=init_stddev, seed=seed + i),
            name=f"dense{i}",
        )(x)
        if batch_norm:
            x = bnk.BatchNorm(name=f"bn{i}")(x)
        x = layers.Activation("sigmoid", name=f"sigmoid{i}")(x)
    outputs = layers.Dense(
        10,
        kernel_initializer=keras.initializers.RandomNormal(stddev=init_stddev, seed=seed),
        name="logits",
    )(x)
    return keras.Model(inputs, outputs, name="mlp_bn" if batch_norm else "mlp_plain")


def sigmoid_input_model(model):
    """(logits, input of the last hidden layer's sigmoids) for a model from build_mlp."""
    last_sigmoid = model.get_layer(f"sigmoid{HIDDEN_LAYERS}")
    return keras.Model(model.input, [model.output, last_sigmoid.input])


class Figure1Recorder(keras.callbacks.Callback):
    """Test accuracy, loss and sigmoid-input percentiles at step 0 and every epoch."""

    def __init__(self, x_test, y_test, unit, eval_every):
        super().__init__()
        self.x_test, self.y_test = x_test, y_test
        self.unit, self.eval_every = unit, eval_every
        self.steps, self.accuracy, self.loss = [], [], []
        self.percentiles = {str(p): [] for p in PERCENTILES}
        self.gamma, self.beta = [], []  # of the followed unit's BatchNorm, if any
        self._loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def record(self, step):
        logits, pre_sigmoid = self._probe(self.x_test, training=False)
        logits = keras.ops.convert_to_numpy(logits)
        values = keras.ops.convert_to_numpy(pre_sigmoid)[:, self.unit]
        self.steps.append(step)
        self.accuracy.append(float(np.mean(np.argmax(logits, 1) == self.y_test)))
        self.loss.append(float(keras.ops.convert_to_numpy(self._loss(self.y_test, logits))))
        for p, value in zip(PERCENTILES, np.percentile(values, PERCENTILES)):
            self.percentiles[str(p)].append(float(value))
        if self._bn is not None:
            self.gamma.append(float(keras.ops.convert_to_numpy(self._bn.gamma)[self.unit]))
            self.beta.append(float(keras.ops.convert_to_numpy(self._bn.beta)[self.unit]))

    def on_train_begin(self, logs=None):
        self._probe = sigmoid_input_model(self.model)
        names = [layer.name for layer in self.model.layers]
        last_bn = f"bn{HIDDEN_LAYERS}"
        self._bn = self.model.get_layer(last_bn) if last_bn in names else None
        self.record(0)

    def on_epoch_end(self, epoch, logs=None):
        self.record((epoch + 1) * self.eval_every)


def train_mlp(batch_norm, config, seed, x_train, y_train, x_test, y_test):
    """Train one variant of Figure 1's network; return (model, recorder, seconds)."""
    keras.utils.set_random_seed(seed)  # the same initial kernels for both variants
    model = build_mlp(batch_norm, config["init_stddev"], seed)
    eval_every = config["eval_every"]
    # Plain SGD: the paper names no optimizer; see params.yaml.
    model.compile(
        optimizer=keras.optimizers.SGD(config["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=steps_per_execution(eval_every),
    )
    recorder = Figure1Recorder(x_test, y_test, config["unit"], eval_every)
    start = time.perf_counter()
    model.fit(
        training_batches(x_train, y_train, config, seed),
        steps_per_epoch=eval_every,
        epochs=config["steps"] // eval_every,
        shuffle=False,
        callbacks=[recorder],
        verbose=0,
    )
    return model, recorder, time.perf_counter() - start


def run_mlp(config, seed, path=dataset.MNIST_FILE):
    x_train, y_train, _, _ = dataset.load_training(0, config["limit"], path)
    x_test, y_test = dataset.load_test(path)
    x_train, y_train = aligned(
        x_train.reshape(-1, PIXELS), y_train, config["batch_size"], config["eval_every"], "mlp"
    )
    x_test = x_test.reshape(-1, PIXELS)
    result = {
        "unit": config["unit"],
        "training_images": len(x_train),
        "test_images": len(x_test),
        "loss": {},
        "percentiles": {},
        "wall_seconds": {},
    }
    for name, batch_norm in (("bn", True), ("plain", False)):
        _, recorder, seconds = train_mlp(
            batch_norm, config, seed, x_train, y_train, x_test, y_test
        )
        result["steps"] = recorder.steps
        result[name] = finite_list(recorder.accuracy)
        result["loss"][name] = finite_list(recorder.loss)
        result["percentiles"][name] = {
            p: finite_list(values) for p, values in recorder.percentiles.items()
        }
        result["wall_seconds"][name] = round(seconds, 2)
        if batch_norm:
            # What BN itself learns for the followed unit: the scale and shift of Fig. 1c.
            result["bn_gamma"] = finite_list(recorder.gamma)
            result["bn_beta"] = finite_list(recorder.beta)
        print(
            f"mlp {name}: test accuracy {recorder.accuracy[-1]:.4f} after "
            f"{recorder.steps[-1]} steps ({seconds:.0f} s)",
            flush=True,
        )
    return result


# --- the seed's CNN, with and without BatchNorm --------------------------------------


def train_cnn(batch_norm, learning_rate, config, seed, x_train, y_train, x_val, y_val):
    keras.utils.set_random_seed(seed)  # the same initial weights for both
    model = bnk.CNN(batch_norm=batch_norm)
    eval_every = config["eval_every"]
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution(eval_every),
    )
    start = time.perf_counter()
    history = model.fit(
        training_batches(x_train, y_train, config, seed),
        steps_per_epoch=eval_every,
        epochs=config["steps"] // eval_every,
        validation_data=(x_val, y_val),
        validation_batch_size=500,
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
        "wall_seconds": round(seconds, 2),
    }


def run_cnn(config, seed, path=dataset.MNIST_FILE):
    x_train, y_train, x_val, y_val = dataset.load_training(
        config["validation"], config["limit"], path
    )
    x_train, y_train = aligned(
        x_train, y_train, config["batch_size"], config["eval_every"], "cnn"
    )
    runs = []
    for learning_rate in config["learning_rates"]:
        for batch_norm in (True, False):
            run = train_cnn(
                batch_norm, learning_rate, config, seed, x_train, y_train, x_val, y_val
            )
            runs.append(run)
            final = run["val_accuracy"][-1]
            print(
                f"cnn lr={learning_rate:g} {'bn' if batch_norm else 'plain'}: "
                f"val accuracy {final if final is None else round(final, 4)} "
                f"({run['wall_seconds']:.0f} s)",
                flush=True,
            )
    every = config["eval_every"]
    return {
        "steps": list(range(every, config["steps"] + 1, every)),
        "training_images": len(x_train),
        "validation_images": len(x_val),
        "runs": runs,
    }


def headline(mlp, cnn):
    """The final accuracies as scalars, which is what `dvc metrics show` lists."""
    final = {
        "mlp_bn_test_accuracy": mlp["bn"][-1],
        "mlp_plain_test_accuracy": mlp["plain"][-1],
    }
    for run in cnn["runs"]:
        variant = "bn" if run["batch_norm"] else "plain"
        rate = f"{run['learning_rate']:g}".replace(".", "_")
        final[f"cnn_{variant}_lr{rate}_val_accuracy"] = run["val_accuracy"][-1]
    return final


def experiment(config, path=dataset.MNIST_FILE):
    start = time.perf_counter()
    mlp = run_mlp(config["mlp"], config["seed"], path)
    cnn = run_cnn(config["cnn"], config["seed"], path)
    return {
        **describe(),
        "params": config,
        "final": headline(mlp, cnn),
        "mlp": mlp,
        "cnn": cnn,
        "wall_seconds": round(time.perf_counter() - start, 2),
    }


# --- report ----------------------------------------------------------------------------


def recorded_backend(path=BACKEND_FILE):
    backend = Path(path).read_text().strip()
    if backend not in BACKENDS:
        raise ValueError(f"{path} names an unknown backend {backend!r}.")
    return backend


def report(metrics=METRICS_FILE, notebook=NOTEBOOK, output_stem=REPORT_STEM, backend=None):
    from pipeline.render import render  # papermill is only needed for the report

    if not Path(metrics).exists():
        raise FileNotFoundError(f"{metrics} is missing: run `dvc repro bn_experiment` first.")
    render(notebook, output_stem, {"metrics_path": str(metrics)},
           backend or recorded_backend(), "bnk: what batch normalization buys")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["report"]:
        try:
            report()
        except (ValueError, OSError, RuntimeError) as error:
            sys.exit(str(error))
        return
    if argv:
        sys.exit("usage: python -m pipeline.bn_experiment [report]")
    run_experiment()


@keeps_outputs("bn_experiment")
def run_experiment():
    try:
        selected_backend()
        config = load_params()
    except ValueError as error:
        sys.exit(str(error))
    if not Path(dataset.MNIST_FILE).exists():
        sys.exit(f"{dataset.MNIST_FILE} is missing: run `dvc repro fetch` first.")
    try:
        metrics = experiment(config)
    except DataError as error:
        sys.exit(str(error))
    write_json(METRICS_FILE, metrics)
    print(f"wrote {METRICS_FILE} ({metrics['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
