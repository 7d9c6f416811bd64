"""The stages' logic on small synthetic data, in a scratch working directory."""

import json
import os
import subprocess
import sys

import keras
import pytest
import yaml
from conftest import ROOT, TINY
from stages import run_stage, stage_path

from pipeline.core import environment, params
from pipeline.core.atomic import atomic_path
from pipeline.stages import train
from pipeline.stages.compare import SEED_KEYS


def write_params(path, **changes):
    config = json.loads(json.dumps(TINY))
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        config[section][key] = value
    (path / "params.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"train__epochs": 0}, "`train.epochs` must be a positive integer, got 0"),
        (
            {"train__batch_size": -64},
            "`train.batch_size` must be a positive integer, got -64",
        ),
        (
            {"train__learning_rate": 0},
            "`train.learning_rate` must be a positive number, got 0",
        ),
        ({"train__limit": 60_000}, "`train.limit`=60000 is larger than the 59936"),
        ({"train__epoch": 3}, "unknown key `train.epoch`"),
    ],
)
def test_invalid_train_params_name_the_key(workdir, change, message):
    write_params(workdir, **change)
    with pytest.raises(params.ParamsError, match=message):
        params.load()


def test_unknown_top_level_key(workdir):
    (workdir / "params.yaml").write_text(yaml.safe_dump({**TINY, "trian": {}}))
    with pytest.raises(params.ParamsError, match="unknown top-level key `trian`"):
        params.load()


def test_unknown_backend_is_named(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "mxnet")
    with pytest.raises(SystemExit, match="Unknown KERAS_BACKEND='mxnet'"):
        run_stage("backend")


def test_backend_stage_records_this_backend(workdir, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    run_stage("backend")
    recorded = (workdir / stage_path("backend", "output")).read_text().strip()
    assert recorded == keras.backend.backend()


@pytest.mark.parametrize("unset", [{}, {environment.ONEDNN: ""}],
                         ids=["unset", "empty"])
def test_onednn_is_turned_on_on_x86_64_when_the_user_left_it_unset(unset):
    environ = dict(unset)
    environment.choose_onednn(environ, "x86_64")
    assert environ[environment.ONEDNN] == "1"
    assert environment.onednn_setting(environ) == {
        "enabled": True, "chosen_by": "pipeline"}


@pytest.mark.parametrize("value, enabled", [("0", False), ("1", True),
                                            ("false", False), ("TRUE", True)])
def test_the_users_onednn_setting_wins(value, enabled):
    for machine in ("x86_64", "aarch64"):
        environ = {environment.ONEDNN: value}
        environment.choose_onednn(environ, machine)
        assert environ == {environment.ONEDNN: value}
        assert environment.onednn_setting(environ) == {
            "enabled": enabled, "chosen_by": "user"}


def test_onednn_stays_tensorflows_choice_off_x86_64():
    environ = {}
    environment.choose_onednn(environ, "aarch64")
    assert environ == {}
    assert environment.onednn_setting(environ) == {
        "enabled": None, "chosen_by": "tensorflow"}


def test_a_onednn_value_tensorflow_ignores_stops_a_stage_in_one_line(tmp_path):
    env = {**os.environ, environment.ONEDNN: "yes", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.stages.backend", "--output", "backend.txt"],
        cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"{environment.ONEDNN}='yes': TensorFlow reads only 1, true, 0 or false "
        "(1: oneDNN on, 0: off; unset: the pipeline's choice)."]


def test_train_then_evaluate(workdir, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    run_stage("train")
    run = json.loads(stage_path("train", "run").read_text())
    assert run["backend"] == keras.backend.backend()
    assert run["training_images"] == 256 - 64
    assert run["images_per_second"] > 0 and run["epochs_run_by_this_process"] == 2
    # The metrics file holds the headline only, as it is in the run's record, and
    # oneDNN's setting, which the run's record details with the CPU's flags.
    metrics = json.loads(stage_path("train", "metrics").read_text())
    assert all(metrics[key] == run[key] for key in train.HEADLINE)
    assert run["onednn"] == environment.onednn_setting(os.environ)
    if os.environ.get(environment.ONEDNN_CHOSEN):  # the user left it unset
        assert run["onednn"] == {"enabled": True, "chosen_by": "pipeline"}
    if run["onednn"]["enabled"] is None:  # not x86-64: TensorFlow's own default
        assert set(metrics) == set(train.HEADLINE)
    else:
        assert set(metrics) == {*train.HEADLINE, "onednn"}
        assert metrics["onednn"] == int(run["onednn"]["enabled"])
    with open("/proc/cpuinfo") as cpuinfo:
        flags = next(line for line in cpuinfo if line.startswith("flags")).split()
    assert run["cpu_flags"] == {"avx2": "avx2" in flags, "avx512f": "avx512f" in flags}
    history = stage_path("train", "history").read_text().splitlines()
    assert history[0].split(",")[0] == "epoch" and len(history) == 3
    assert not list(stage_path("train", "checkpoints").iterdir())  # backup removed

    run_stage("evaluate")
    result = json.loads(stage_path("evaluate", "run").read_text())
    assert set(result["per_class_accuracy"]) == {str(c) for c in range(10)}
    assert 0 <= result["accuracy"] <= 1 and result["test_images"] == 100
    metrics = json.loads(stage_path("evaluate", "metrics").read_text())
    assert metrics == {"accuracy": result["accuracy"], "loss": result["loss"]}
    predictions = stage_path("evaluate", "predictions").read_text().splitlines()
    assert predictions[0] == "actual,predicted" and len(predictions) == 101


def test_interrupted_training_resumes_from_last_epoch(workdir, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())

    def crash_after_first_epoch(self, epoch, logs=None):
        raise RuntimeError("simulated crash")

    with monkeypatch.context() as patch:
        patch.setattr(train.EpochCounter, "on_epoch_end", crash_after_first_epoch)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_stage("train")
    assert not stage_path("train", "model").exists()
    run_stage("train")
    run = json.loads(stage_path("train", "run").read_text())
    assert run["epochs_run_by_this_process"] == 1
    assert len(stage_path("train", "history").read_text().splitlines()) == 3


def test_evaluate_without_model_says_what_to_do(workdir, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    model = stage_path("evaluate", "model")
    with pytest.raises(SystemExit, match=f"No trained model at {model}"):
        run_stage("evaluate")
    assert not stage_path("evaluate", "metrics").exists()


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_compare_records_every_step_and_the_probes(workdir, monkeypatch):
    run_stage("compare")
    result = json.loads(stage_path("compare", "output").read_text())
    assert result["backend"] == keras.backend.backend()
    assert result["steps"] == len(result["losses"]) == 3  # 40 images in batches of 16
    assert all(loss > 0 for loss in result["losses"])
    assert result["test_images"] == 100 and 0 <= result["test_accuracy"] <= 1
    assert set(result["batch_mean_error"]) == {
        "keras.ops.mean",
        "bnk.functional.moments",
    }
    assert result["batch_mean_error"]["bnk.functional.moments"] < 1e-5
    gamma = [
        name for name in result["weights_after_first_step"] if name.endswith("gamma")
    ]
    assert len(gamma) == 2 and len(result["weights_after_first_step"][gamma[0]]) == 32
    # Every seed's run, the first one the one at the top level.
    runs = result["runs"]
    assert [run["seed"] for run in runs] == TINY["compare"]["seeds"] == [3, 4]
    assert all(set(run) == set(SEED_KEYS) for run in runs)
    assert {key: runs[0][key] for key in SEED_KEYS} == {
        key: result[key] for key in SEED_KEYS
    }
    assert runs[1]["losses"] != runs[0]["losses"] and len(runs[1]["losses"]) == 3


def test_code_version_names_the_commit_and_marks_changes(workdir):
    from pipeline.core.environment import code_version

    assert code_version() == "not a git checkout"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["git", "add", "params.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "t"], check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short=10", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert code_version() == commit
    (workdir / "params.yaml").write_text("seed: 4\n")
    assert code_version() == f"{commit} plus uncommitted changes"
