"""The train stage over 2 devices (`train.devices: 2`), simulated on this CPU: JAX's
DataParallel, TensorFlow's MirroredStrategy, in a subprocess each (the devices are
set up before the backend starts); PyTorch refuses with an error naming what works."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from conftest import TINY, in_one_suite_run
from stages import run_stage, stage_args, stage_path

from pipeline import params
from pipeline.models import load_trained_cnn

ROOT = Path(__file__).resolve().parents[1]


def write_params(root, **train):
    config = json.loads(json.dumps(TINY))
    config["train"].update(train)
    (root / "params.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("jax", marks=in_one_suite_run("jax")),
        pytest.param("tensorflow", marks=in_one_suite_run("tensorflow")),
    ],
)
def test_train_stage_runs_over_two_simulated_devices(workdir, backend):
    write_params(workdir, devices=2, epochs=1)
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("XLA_FLAGS", None)
    command = [sys.executable, "-m", "pipeline.stages.train", *stage_args("train")]
    subprocess.run(command, cwd=workdir, env=env, check=True, capture_output=True)
    run = json.loads(stage_path("train", "run").read_text())
    assert run["backend"] == backend and len(run["devices"]) == 2, run["devices"]
    assert len(set(run["devices"])) == 2
    assert np.isfinite(run["loss"]) and run["epochs_run_by_this_process"] == 1
    # The saved model keeps its synchronized BatchNorm, and loads here as the
    # evaluate stage loads it.
    model = load_trained_cnn(stage_path("train", "model"))
    norms = [layer for layer in model.layers_in_call_order if "bn" in layer.name]
    assert [layer.synchronized for layer in norms] == [True, True]


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="the refusal is torch's: this run's backend trains")
def test_torch_refuses_naming_what_works(workdir):
    write_params(workdir, devices=2)
    with pytest.raises(SystemExit, match=r"`train.devices`=2: data-parallel training "
                                         r"runs on jax and tensorflow"):
        run_stage("train")
    assert not stage_path("train", "model").exists()


def test_batch_must_split_evenly_over_the_devices(workdir):
    write_params(workdir, devices=3, batch_size=32)
    with pytest.raises(params.ParamsError, match=r"`train.batch_size`=32 must be a "
                                                 r"multiple of `train.devices`=3"):
        params.load()
