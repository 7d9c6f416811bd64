"""Stage `seeds`: the main model's recipe over several seeds, tested with each choice of
BN's inference statistics; and `train.statistics`, the recipe `train` uses."""

import json

import keras
import numpy as np
import pytest
import yaml
from conftest import TINY
from stages import run_stage, stage_path

import bnk
from pipeline.core.backends import BACKENDS
from pipeline.stages import seeds

RECIPES = {"moving_0_9", "moving_0_99", "recomputed"}


def test_every_seed_is_tested_with_every_recipe(workdir):
    run_stage("seeds")
    results = json.loads(stage_path("seeds", "results").read_text())
    metrics = json.loads(stage_path("seeds", "metrics").read_text())
    assert [run["seed"] for run in results["runs"]] == TINY["seeds"]["seeds"]
    for run in results["runs"]:
        assert set(run["accuracy"]) == RECIPES
        assert all(0 <= a <= 1 for a in run["accuracy"].values())
    assert results["recipe"] == "recomputed"  # train.statistics in params.yaml
    accuracies = [run["accuracy"]["recomputed"] for run in results["runs"]]
    assert metrics["seeds"] == TINY["seeds"]["seeds"]
    assert metrics["accuracy_mean"] == pytest.approx(np.mean(accuracies))
    assert metrics["accuracy_std"] == pytest.approx(np.std(accuracies, ddof=1))
    for recipe in RECIPES:
        assert metrics[recipe] == results["spread"][recipe]["accuracy_mean"]
    # The metrics file is a row of numbers (and the seeds): dvc metrics show's.
    assert all(isinstance(v, float) for k, v in metrics.items() if k != "seeds")


def test_the_default_recipe_follows_train_params():
    moving = TINY["train"] | {"statistics": "moving", "momentum": 0.99}
    from pipeline.core.params import Train

    assert seeds.default_recipe(Train(**moving)) == "moving_0_99"
    assert seeds.default_recipe(Train(**TINY["train"])) == "recomputed"


def test_seeds_run_only_on_the_experiments_backend(workdir):
    other = next(b for b in BACKENDS if b != keras.backend.backend())
    config = json.loads(json.dumps(TINY))
    config["experiments"]["backend"] = other
    (workdir / "params.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit, match=f"KERAS_BACKEND is {keras.backend.backend()}"):
        run_stage("seeds")
    assert not stage_path("seeds", "results").exists()
    assert not stage_path("seeds", "metrics").exists()


@pytest.mark.parametrize("statistics", ["moving", "recomputed"])
def test_train_uses_the_inference_statistics_params_name(
    workdir, monkeypatch, statistics
):
    """`recomputed` replaces the moving averages after training by population
    statistics (bnk.recompute_statistics); `moving` keeps them."""
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    config = json.loads(json.dumps(TINY))
    config["train"]["statistics"] = statistics
    (workdir / "params.yaml").write_text(yaml.safe_dump(config))
    recomputed = []
    original = bnk.recompute_statistics

    def recording(model, batches):
        recomputed.append(len(batches))
        return original(model, batches)

    monkeypatch.setattr(bnk, "recompute_statistics", recording)
    run_stage("train")
    assert recomputed == ([TINY["train"]["statistics_batches"]]
                          if statistics == "recomputed" else [])
    model = keras.saving.load_model(stage_path("train", "model"))
    assert model.built


def test_a_bad_statistics_choice_is_named(workdir):
    config = json.loads(json.dumps(TINY))
    config["train"]["statistics"] = "ema"
    (workdir / "params.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit, match="`train.statistics` must be one of moving, "
                                         "recomputed, got 'ema'"):
        run_stage("check")


def test_bad_seed_lists_are_named(workdir):
    config = json.loads(json.dumps(TINY))
    config["seeds"]["seeds"] = [1, 1]
    (workdir / "params.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit, match=r"`seeds.seeds` must be a non-empty list of "
                                         r"distinct integers >= 0, got \[1, 1\]"):
        run_stage("check")
