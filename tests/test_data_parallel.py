"""The train stage over 2 devices (`train.devices: 2`), simulated on this CPU: JAX's
DataParallel, TensorFlow's MirroredStrategy, PyTorch's two processes under torchrun
(gloo), in a subprocess each (the devices are set up before the backend starts)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from conftest import TINY
from stages import stage_args, stage_path

import bnk
from pipeline.core import params
from pipeline.core.devices import DevicesError, Replica, check_batches_split
from pipeline.core.models import load_trained_cnn

ROOT = Path(__file__).resolve().parents[1]


def write_params(root, **train):
    config = json.loads(json.dumps(TINY))
    config["train"].update(train)
    (root / "params.yaml").write_text(yaml.safe_dump(config))


def train_over(workdir, backend, devices):
    """Run the train stage in its own process over `devices` devices (dropout off,
    so one device and several see the same network); its run record and model."""
    write_params(workdir, devices=devices, epochs=1, dropout=0.0)
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("XLA_FLAGS", None)
    command = [sys.executable, "-m", "pipeline.stages.train", *stage_args("train")]
    trained = subprocess.run(command, cwd=workdir, env=env, capture_output=True,
                             text=True)
    assert trained.returncode == 0, trained.stderr[-3000:]
    run = json.loads(stage_path("train", "run").read_text())
    return run, load_trained_cnn(stage_path("train", "model"))


def test_train_stage_over_two_simulated_devices_equals_one_device(workdir):
    """The same global batches over two devices (synchronized BatchNorm, gradients
    averaged) train the same weights and moving statistics as on one device."""
    backend = keras.backend.backend()
    run, model = train_over(workdir, backend, devices=2)
    assert run["backend"] == backend and len(set(run["devices"])) == 2, run["devices"]
    assert np.isfinite(run["loss"]) and run["epochs_run_by_this_process"] == 1
    # The saved model keeps its synchronized BatchNorm, and loads here as the
    # evaluate stage loads it.
    norms = [layer for layer in model.layers_in_call_order if "bn" in layer.name]
    assert [layer.synchronized for layer in norms] == [True, True]
    one_run, one_device = train_over(workdir, backend, devices=1)
    assert len(one_run["devices"]) == 1
    assert run["loss"] == pytest.approx(one_run["loss"], rel=1e-4)
    numpy = keras.ops.convert_to_numpy
    # A bias just before a BatchNorm has no gradient but rounding noise, which Adam
    # scales up to full steps, and the moving mean after it follows that bias:
    # neither is determined by the data (the model's outputs, below, are).
    determined = {}
    for trained in (model, one_device):
        order = trained.layers_in_call_order
        values = {variable.path: numpy(variable) for variable in trained.weights}
        for layer, norm in zip(order, order[1:], strict=False):
            if isinstance(norm, bnk.BatchNorm):
                del values[layer.bias.path], values[norm.moving_mean.path]
        determined[trained is model] = values
    assert determined[True].keys() == determined[False].keys()
    # In norm, not per element: Adam also turns the rounding noise of an element
    # whose gradient is near zero into steps of up to the learning rate. Had the
    # processes not averaged their gradients, every element would be off by about
    # the learning rate, and the norm by a few percent.
    for path, value in determined[True].items():
        difference = np.linalg.norm(value - determined[False][path])
        assert difference <= 1e-3 * np.linalg.norm(value), (path, difference)
    images = np.load("data/mnist.npz")["x_test"][:50, ..., None] / np.float32(255)
    np.testing.assert_allclose(numpy(model(images)), numpy(one_device(images)),
                               rtol=1e-3, atol=1e-3)


def test_batch_must_split_evenly_over_the_devices(workdir):
    write_params(workdir, devices=3, batch_size=32)
    with pytest.raises(params.ParamsError, match=r"`train.batch_size`=32 must be a "
                                                 r"multiple of `train.devices`=3"):
        params.load()


def test_the_last_batch_of_a_pass_must_split_evenly_too():
    check_batches_split(images=100, batch_size=32, count=2)  # the last batch: 4
    with pytest.raises(DevicesError, match=r"`train.devices`=4: the last batch of "
                                           r"each pass over the 98 training images "
                                           r"holds 2"):
        check_batches_split(images=98, batch_size=32, count=4)


def test_the_processes_shares_make_up_each_batch_once():
    x, y = np.arange(10).reshape(5, 2), np.arange(5)
    shares = [Replica(rank, 2).share((x, y)) for rank in range(2)]
    assert sorted(np.concatenate([share[1] for share in shares])) == list(range(5))
    for share_x, share_y in shares:
        np.testing.assert_array_equal(share_x, x[share_y])
