"""Run a pipeline stage in this process, with the command line dvc.yaml gives it.

The paths come from the project's own dvc.yaml (through DVC, which resolves its
`vars` and `foreach`), so the tests exercise the wiring that `dvc repro` runs.
"""

import contextlib
import functools
import importlib
import json
import os
import shlex
from pathlib import Path

import keras

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def stage_command(stage):
    """The module and argument list of `stage` ("train", "report@jax"...) in
    dvc.yaml."""
    from dvc.repo import Repo

    # DVC finds dvc.yaml from the working directory, which a test may have changed.
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with Repo(str(ROOT)) as repo:
            (found,) = repo.stage.collect(stage)
            words = shlex.split(found.cmd)
    finally:
        os.chdir(cwd)
    words = [word for word in words if not word.startswith("KERAS_BACKEND=")]
    assert words[:2] == ["python", "-m"], found.cmd
    return words[2], tuple(words[3:])


def stage_args(stage, **overrides):
    """The arguments of `stage`, with `--<name>` set to `overrides[name]` instead."""
    _, arguments = stage_command(stage)
    arguments = list(arguments)
    for name, value in overrides.items():
        option = "--" + name.replace("_", "-")
        arguments[arguments.index(option) + 1] = str(value)
    return arguments


def run_stage(stage, **overrides):
    """Call `stage`'s main as dvc.yaml would run it; `stage` may name its backend
    ("report@jax"), else this process's backend is used for a per-backend stage."""
    if stage in ("compare", "report"):
        stage = f"{stage}@{keras.backend.backend()}"
    module, _ = stage_command(stage)
    return importlib.import_module(module).main(stage_args(stage, **overrides))


def stage_path(stage, option):
    """The path dvc.yaml gives `stage` for `--<option>`."""
    if stage in ("compare", "report"):
        stage = f"{stage}@{keras.backend.backend()}"
    arguments = stage_args(stage)
    return Path(arguments[arguments.index("--" + option) + 1])


def run_in(root, experiment):
    """Run the stage `experiment@<experiment>` with `root` as the working directory;
    its results, and the metrics its analysis makes of them."""
    stage = f"experiment@{experiment}"
    with contextlib.chdir(root):
        run_stage(stage)
    results = json.loads((root / stage_path(stage, "results")).read_text())
    analysis = importlib.import_module(f"pipeline.experiments.{experiment}.analysis")
    return results, analysis.metrics(results)


def experiment_params(path, experiment):
    """The section of `experiment` in the params file `path`, checked as its stage
    checks it."""
    from pipeline.core import params

    section = importlib.import_module(f"pipeline.experiments.{experiment}.params")
    return params.experiment_section(params.load(path), experiment, section.Params)
