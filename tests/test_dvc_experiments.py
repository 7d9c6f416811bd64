"""DVC's experiment workflow on the pipeline: `dvc exp run -S ...` then `dvc exp show`,
with the real `dvc` in a scratch git copy of the project, tiny params and a local MNIST.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import yaml
from fake_mnist import fake_mnist

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["bnk", "pipeline", "dvc.yaml", "params.yaml", ".dvc/config",
                 ".dvc/.gitignore", ".dvcignore", ".gitignore"]
DVC = str(Path(sys.executable).parent / "dvc")


def scratch_project(root):
    """A committed git repository holding the project, tiny params and a local MNIST."""
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / name)
    mnist_file = root.parent / "mnist.npz"
    np.savez(mnist_file, **fake_mnist())
    config = yaml.safe_load((ROOT / "params.yaml").read_text())
    config["fetch"]["sources"] = ["file"]
    config["fetch"]["file"] = {
        "path": str(mnist_file),
        "sha256": hashlib.sha256(mnist_file.read_bytes()).hexdigest(),
    }
    config["train"].update(epochs=2, limit=256)
    config["report"]["backends"] = [keras.backend.backend()]
    (root / "params.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for command in (["git", "init", "-q"],
                    # `dvc exp run` commits the experiment, under this identity.
                    ["git", "config", "user.name", "bnk tests"],
                    ["git", "config", "user.email", "tests@bnk.invalid"],
                    ["git", "add", "-A"], ["git", "commit", "-qm", "baseline"]):
        subprocess.run(command, cwd=root, check=True)


def run_dvc(*arguments, cwd):
    env = {
        **os.environ,
        "KERAS_BACKEND": keras.backend.backend(),
        # The stages' `python` is this interpreter.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    result = subprocess.run([DVC, *arguments], cwd=cwd, env=env, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, f"dvc {arguments} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_experiment_run_with_a_changed_param_is_shown_with_its_metrics(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    scratch_project(project)

    run_dvc("exp", "run", "-S", "train.epochs=1", "evaluate", cwd=project)
    shown = json.loads(run_dvc("exp", "show", "--json", cwd=project))

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
