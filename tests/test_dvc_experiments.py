"""DVC's experiment workflow on the pipeline: `dvc exp run -S ...` then `dvc exp show`,
with the real `dvc` in a scratch git copy of the project, tiny params and a local MNIST.
"""

import json

import keras
from conftest import in_one_suite_run
from dvc_project import dvc, run, scratch_project
from stages import stage_path

from pipeline.stages import train


@in_one_suite_run("jax")
def test_experiment_run_with_a_changed_param_is_shown_with_its_metrics(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    scratch_project(project, lambda config: config["train"].update(epochs=2, limit=256))
    backend = keras.backend.backend()

    run(dvc("exp", "run", "-S", "train.epochs=1", "evaluate"), project, backend)
    shown = json.loads(run(dvc("exp", "show", "--json"), project, backend).stdout)

    baseline = next(row for row in shown if row["rev"] != "workspace")
    [experiment] = [rev for group in baseline["experiments"] for rev in group["revs"]]
    data = experiment["data"]
    assert experiment["name"]
    assert data["params"]["params.yaml"]["data"]["train"]["epochs"] == 1
    trained = data["metrics"][str(stage_path("train", "metrics"))]["data"]
    # The headline, and oneDNN's setting where TensorFlow has one (x86-64).
    assert set(trained) - {"onednn"} == set(train.HEADLINE)
    assert 0 <= trained["val_accuracy"] <= 1
    evaluated = data["metrics"][str(stage_path("evaluate", "metrics"))]["data"]
    assert set(evaluated) == {"accuracy", "loss"} and 0 <= evaluated["accuracy"] <= 1
    # The baseline commit still holds the committed params.
    assert baseline["data"]["params"]["params.yaml"]["data"]["train"]["epochs"] == 2
