"""End to end: the real `dvc repro` in a scratch copy of the project, tiny params.

Each backend's run of the suite trains on its own backend, then switches to the next
one (so the three runs together cover every backend and every switch), then back.
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
import pytest
import yaml
from conftest import BACKENDS
from fake_mnist import fake_mnist

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["bnk", "pipeline", "notebooks", "dvc.yaml", "params.yaml", ".dvc/config",
                 ".dvcignore", ".gitignore"]


def run(command, cwd, backend, check=True):
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        # The stages' `python` is this interpreter.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git repository holding a copy of the project, tiny params and a local MNIST."""
    root = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
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
    config["train"].update(epochs=1, limit=512)
    config["compare"].update(limit=48, batch_size=16)
    config["experiment"]["mlp"].update(steps=20, eval_every=10)
    config["experiment"]["cnn"].update(
        steps=4, eval_every=2, batch_size=8, learning_rates=[0.001], limit=64
    )
    config["report"]["backends"] = [keras.backend.backend()]
    (root / "params.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "t"]):
        subprocess.run(command, cwd=root, check=True)
    return root


def trained_on(project):
    return json.loads((project / "metrics/train.json").read_text())["backend"]


def dvc(*arguments):
    return [str(Path(sys.executable).parent / "dvc"), *arguments]


def test_backend_switch_reruns_and_switching_back_restores(project):
    first = keras.backend.backend()
    second = BACKENDS[(BACKENDS.index(first) + 1) % len(BACKENDS)]
    repro = dvc("repro", "evaluate")

    run(repro, project, first)
    assert trained_on(project) == first
    evaluated = json.loads((project / "metrics/eval.json").read_text())
    assert evaluated["backend"] == first and evaluated["test_images"] == 10_000
    assert run(repro, project, first).stdout.count("Running stage 'train'") == 0

    switched = run(repro, project, second).stdout
    assert "Running stage 'train'" in switched and "Running stage 'fetch'" not in switched
    assert trained_on(project) == second

    back = run(repro, project, first).stdout
    assert "Stage 'train' is cached - skipping run, checking out outputs" in back
    assert "Running stage 'train'" not in back
    assert trained_on(project) == first


def test_whole_pipeline_renders_the_report(project):
    backend = keras.backend.backend()
    run(dvc("repro"), project, backend)
    assert (project / f"reports/{backend}.html").stat().st_size > 0
    assert (project / "reports/bn_experiment.html").stat().st_size > 0
    assert json.loads((project / f"metrics/compare/{backend}.json").read_text())["steps"] == 3
    index = (project / "reports/index.html").read_text()
    assert "<title>bnk: results on every backend</title>" in index
    assert f'href="{backend}.html"' in index and 'href="bn_experiment.html"' in index
    # Everything is up to date but the stage that by design always runs.
    assert set(json.loads(run(dvc("status", "--json"), project, backend).stdout)) <= {"backend"}


def test_unknown_backend_fails_at_once_naming_it(project):
    result = run(dvc("repro"), project, "theano", check=False)
    assert result.returncode != 0
    assert "Unknown KERAS_BACKEND='theano'" in result.stdout + result.stderr


def test_failed_stages_keep_their_outputs_and_a_fixed_rerun_recovers(project):
    """Each breakage fails `dvc repro` with one line and changes no output; undoing it
    brings the pipeline back to up to date without --force. Runs after the whole
    pipeline has run (the test above), so every output exists."""
    backend = keras.backend.backend()
    outputs = [
        "data/mnist.npz", "data/provenance.json", "state/checked.json",
        "models/cnn.keras", "metrics/train.json", "metrics/train_history.csv",
        "models/test_probabilities.npy", "metrics/eval.json",
        "metrics/test_predictions.csv", f"reports/{backend}.ipynb", f"reports/{backend}.html",
    ]
    before = {name: (project / name).read_bytes() for name in outputs}
    committed = {name: (project / name).read_bytes()
                 for name in ("params.yaml", "notebooks/results.ipynb")}

    def set_params(change):
        config = yaml.safe_load(committed["params.yaml"])
        change(config)
        (project / "params.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    breakages = [
        (lambda c: c["train"].update(epochs=-1),
         "params.yaml: `train.epochs` must be a positive integer, got -1."),
        (lambda c: c["fetch"].update(sources=["nosuch"]),
         "params.yaml: `fetch.sources` has unknown source 'nosuch'"),
        (lambda c: c.pop("evaluate"), "'evaluate' are missing from 'params.yaml'"),
        (lambda c: c["report"].update(backends=["theano"]),
         "params.yaml: `report.backends` must be a non-empty list of"),
    ]
    for change, message in breakages:
        set_params(change)
        result = run(dvc("repro"), project, backend, check=False)
        assert result.returncode != 0 and message in result.stdout + result.stderr, message
        assert {name: (project / name).read_bytes() for name in outputs} == before, message
    (project / "params.yaml").write_bytes(committed["params.yaml"])

    notebook = json.loads(committed["notebooks/results.ipynb"])
    notebook["cells"].insert(0, {"cell_type": "code", "metadata": {}, "outputs": [],
                                 "execution_count": None,
                                 "source": "raise ValueError('broken cell')"})
    (project / "notebooks/results.ipynb").write_text(json.dumps(notebook))
    result = run(dvc("repro"), project, backend, check=False)
    assert result.returncode != 0 and "ValueError: broken cell" in result.stderr
    assert "broken cell" in (project / f"reports/{backend}.failed.ipynb").read_text()
    assert {name: (project / name).read_bytes() for name in outputs} == before
    (project / "notebooks/results.ipynb").write_bytes(committed["notebooks/results.ipynb"])

    recovered = run(dvc("repro"), project, backend).stdout
    assert "Running stage 'train'" not in recovered
    assert {name: (project / name).read_bytes() for name in outputs} == before
    assert set(json.loads(run(dvc("status", "--json"), project, backend).stdout)) <= {"backend"}
