"""Bad inputs, crashes and a second trainer: one line naming the problem, nothing lost.

Each stage runs in-process on this process's backend (the suite runs once per backend).
"""

import io
import json
import math
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import filelock
import keras
import numpy as np
import pytest
import yaml
from conftest import BACKENDS, TINY
from stages import experiment_params, run_stage, stage_args, stage_path

from pipeline.core import environment, mnist, params
from pipeline.core.atomic import OutputError, write_json
from pipeline.stages import train

ROOT = Path(__file__).resolve().parents[1]
TRAIN_OUTPUTS = ("model", "metrics", "history", "run")


def train_outputs():
    return {name: stage_path("train", name).read_bytes() for name in TRAIN_OUTPUTS}


@pytest.fixture
def trained(workdir, monkeypatch):
    """A scratch project after a successful train; returns its outputs' bytes."""
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    run_stage("train")
    return train_outputs()


def replace_arrays(workdir, **arrays):
    with np.load(workdir / "data/mnist.npz") as data:
        np.savez(workdir / "data/mnist.npz", **{**data, **arrays})


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x_train": np.full((256, 28, 28), np.nan)},
         ("data/mnist.npz: `x_train` must be uint8 of shape (n, 28, 28) with 0 < n <= "
          "60000, got float64 (256, 28, 28).")),
        ({"y_train": np.full(256, 11, np.uint8)},
         "data/mnist.npz: `y_train` must be in 0..9, got 11 at index 0."),
        ({"x_train": np.zeros((100, 32, 32), np.uint8)},
         "got uint8 (100, 32, 32)."),
    ],
)
def test_bad_data_fails_naming_the_file_and_keeps_the_model(
    trained, workdir, arrays, message
):
    replace_arrays(workdir, **arrays)
    with pytest.raises(SystemExit) as exit_info:
        run_stage("train")
    assert str(exit_info.value.code).endswith(message)
    assert "\n" not in str(exit_info.value.code)
    assert train_outputs() == trained


def test_truncated_data_and_garbage_model_are_named(trained, workdir):
    data = workdir / "data/mnist.npz"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(
        SystemExit, match=r"^data/mnist.npz is not a readable .npz file"
    ):
        run_stage("evaluate")
    model = stage_path("evaluate", "model")
    model.write_bytes(b"garbage")
    with pytest.raises(SystemExit, match=rf"^{model} is not a Keras model file"):
        run_stage("evaluate")
    assert not stage_path("evaluate", "metrics").exists()


def test_nan_loss_stops_training_before_writing(trained, workdir):
    config = yaml.safe_load((workdir / "params.yaml").read_text())
    config["train"]["learning_rate"] = 1e30
    (workdir / "params.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit, match=r"^training diverged: loss is (nan|inf)"):
        run_stage("train")
    assert train_outputs() == trained


def test_batch_larger_than_the_data_is_refused(workdir, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    config = {**TINY, "train": {**TINY["train"], "batch_size": 500}}
    (workdir / "params.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(
        SystemExit, match=r"`train.batch_size`=500 is larger than the 192"
    ):
        run_stage("train")


def test_a_second_trainer_on_the_same_checkpoints_refuses(workdir, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    config = params.load()
    backup = train.backup_dir(stage_path("train", "checkpoints"), config.train,
                              config.seed, keras.backend.backend())
    backup.mkdir(parents=True)
    # The lock is per open file, so this process holding it stands for another trainer.
    with filelock.FileLock(backup / "lock"), pytest.raises(
        SystemExit, match=r"is in use by another trainer"
    ):
        run_stage("train")
    assert not stage_path("train", "model").exists()


def test_a_checkpoint_of_other_code_is_not_resumed(tmp_path, monkeypatch):
    """A run killed before a change of bnk or the pipeline leaves a checkpoint
    that the changed code must not resume: the backup folder depends on the code."""
    package = tmp_path / "package"
    package.mkdir()
    (package / "module.py").write_text("SCALE = 1\n")
    before = environment.code_digest([package])
    (package / "module.py").write_text("SCALE = 2\n")
    assert environment.code_digest([package]) != before
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(TINY))
    config = params.load(tmp_path / "params.yaml")
    folders = []
    for digest in ("code-a", "code-b", "code-a"):
        monkeypatch.setattr(train, "code_digest", lambda digest=digest: digest)
        folders.append(train.backup_dir(tmp_path, config.train, config.seed, "jax"))
    assert folders[0] != folders[1] and folders[0] == folders[2]


def test_evaluate_writes_all_outputs_or_none(trained, workdir):
    probabilities = stage_path("evaluate", "probabilities")
    probabilities.write_bytes(b"previous")
    predictions = stage_path("evaluate", "predictions")
    for path in predictions.parent.iterdir():
        path.unlink()
    predictions.parent.rmdir()
    predictions.parent.write_text("a file where the folder should be")
    with pytest.raises(SystemExit, match=rf"^cannot write {predictions}"):
        run_stage("evaluate")
    assert probabilities.read_bytes() == b"previous"


def test_metrics_are_strict_json(tmp_path):
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_json(tmp_path / "m.json", {"loss": math.nan})
    with pytest.raises(OutputError, match=r"^cannot write .*file/m.json: "):
        (tmp_path / "file").write_text("")
        write_json(tmp_path / "file/m.json", {})


def test_unquoted_sha256_is_explained(workdir):
    config = json.loads(json.dumps(TINY))
    config["fetch"]["file"]["sha256"] = 0
    (workdir / "params.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(params.ParamsError, match="`fetch.file.sha256` must be a quoted "
                                                 "string: YAML read"):
        params.load()


def test_npz_headers_are_checked_before_inflating():
    """A header that claims 784 GB of images, with no data behind it: rejected from the
    header alone (inflating it would fail, or fill the memory)."""
    archive = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": (10**9, 28, 28)}
    with (
        zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped,
        zipped.open("x_train.npy", "w") as member,
    ):
        np.lib.format.write_array_header_1_0(member, header)
    message = (
        r"`x_train` should be uint8 \(60000, 28, 28\), "
        r"got uint8 \(1000000000, 28, 28\)"
    )
    with pytest.raises(mnist.MnistError, match=message):
        mnist.decode_npz(archive.getvalue(), "bomb.npz")


@pytest.mark.parametrize("variable", [None, ""])
def test_backend_comes_from_keras_config_file(tmp_path, variable):
    """keras.json names the next backend; KERAS_BACKEND unset or empty: Keras uses the
    file, and so does the record (in a fresh process, as Keras reads it on import)."""
    configured = BACKENDS[(BACKENDS.index(keras.backend.backend()) + 1) % len(BACKENDS)]
    (tmp_path / "keras.json").write_text(json.dumps({"backend": configured}))
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    env.update(KERAS_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    if variable is not None:
        env["KERAS_BACKEND"] = variable
    arguments = stage_args("backend")
    subprocess.run([sys.executable, "-m", "pipeline.stages.backend", *arguments],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    recorded = tmp_path / stage_path("backend", "output")
    assert recorded.read_text() == configured + "\n"


def test_every_section_of_the_committed_params_loads_as_its_type():
    loaded = params.load(ROOT / "params.yaml")
    for name, field in type(loaded).model_fields.items():
        section = getattr(loaded, name)
        assert isinstance(section, field.annotation), (name, section)
    for name in loaded.experiments.registry:
        section = experiment_params(ROOT / "params.yaml", name)
        assert type(section).__module__ == f"pipeline.experiments.{name}.params"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.update(bn_experimnet=c.pop("bn_experiment")),
         "unknown top-level key `bn_experimnet`"),
        (lambda c: c.pop("non_iid"),
         "missing section `non_iid` (`experiments.registry` lists it)."),
        (lambda c: c["experiments"]["registry"].update(nosuch="a title"),
         "`experiments.registry` lists 'nosuch', but pipeline/experiments/nosuch/"),
        (lambda c: c["experiments"].update(backend="theano"),
         "`experiments.backend` must be one of tensorflow, jax, torch, got 'theano'"),
    ],
)
def test_the_registry_and_its_sections_are_checked(tmp_path, change, message):
    config = json.loads(json.dumps(TINY))
    change(config)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(params.ParamsError, match=re.escape(message)):
        params.load(tmp_path / "params.yaml")


def test_an_experiment_runs_only_on_the_experiments_backend(workdir, monkeypatch):
    other = next(b for b in BACKENDS if b != keras.backend.backend())
    config = json.loads(json.dumps(TINY))
    config["experiments"]["backend"] = other
    (workdir / "params.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(
        SystemExit,
        match=rf"experiments run on `experiments.backend`={other} \(params.yaml\), "
        rf"but KERAS_BACKEND is {keras.backend.backend()}",
    ):
        run_stage("experiment@non_iid")
    assert not stage_path("experiment@non_iid", "results").exists()


def test_an_unregistered_experiment_is_named(workdir):
    with pytest.raises(SystemExit, match="no experiment 'toy' in params.yaml's"):
        run_stage("experiment@non_iid", name="toy")
