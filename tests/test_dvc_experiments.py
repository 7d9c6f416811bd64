"""DVC's experiment workflow on the pipeline: `dvc exp run -S ...` then `dvc exp show`,
with the real `dvc` in a scratch git copy of the project, tiny params and a local MNIST.
"""

import json

import keras
from conftest import in_one_suite_run
from dvc_project import dvc, run, scratch_project


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
    trained = data["metrics"]["metrics/train.json"]["data"]
    assert trained["epochs"] == 1 and trained["backend"] == keras.backend.backend()
    evaluated = data["metrics"]["metrics/eval.json"]["data"]
    assert evaluated["test_images"] == 10_000 and 0 <= evaluated["accuracy"] <= 1
    # The baseline commit still holds the committed params.
    assert baseline["data"]["params"]["params.yaml"]["data"]["train"]["epochs"] == 2
