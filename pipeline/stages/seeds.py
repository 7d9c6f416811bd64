"""Stage `seeds`: the main model's recipe (params.yaml's `train`, on one device) over
every seed of `seeds.seeds`, on `experiments.backend`, with three choices of the
statistics BN uses at inference.

The one model the reports dissect is one draw; this says how far another seed lands
from it. For each seed it trains once and tests with: the moving averages at the
seed tutorial's momentum 0.9, at Keras's 0.99 (both from the same run:
pipeline.core.momenta), and population statistics recomputed after training
(`bnk.recompute_statistics` over `train.statistics_batches` batches). `--results`
gets every seed's accuracies, and each recipe's mean and standard deviation over the
seeds; `--metrics` the seeds, the mean and standard deviation of the test accuracy of
the recipe `train` uses (its `statistics` and `momentum`: `recipe` in the results),
and every recipe's mean. Both files are committed and
written together (a failed run keeps the old ones).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import keras
import numpy as np

import bnk
from pipeline.core import dataset, params
from pipeline.core.atomic import atomic_paths, json_text
from pipeline.core.batches import ShuffledBatches
from pipeline.core.cli import stage_paths
from pipeline.core.environment import describe
from pipeline.core.errors import one_line_errors
from pipeline.core.models import evaluate_classifier
from pipeline.core.momenta import OtherMomenta
from pipeline.core.outputs import stops_with_parent
from pipeline.core.runs import statistics_batches
from pipeline.reporting.spread import mean_std
from pipeline.stages.experiment import on_the_experiments_backend
from pipeline.stages.train import build_model

#: The seed tutorial's momentum and Keras's default.
MOMENTA = (0.9, 0.99)
RECOMPUTED = "recomputed"


def recipe_name(momentum: float) -> str:
    """The key of the moving averages at `momentum`: "moving_0_9" for 0.9."""
    return f"moving_{momentum:g}".replace(".", "_")


def default_recipe(config: params.Train) -> str:
    """The name of the recipe `train` uses."""
    if config.statistics == "recomputed":
        return RECOMPUTED
    return recipe_name(config.momentum)


def one_seed(
    config: params.Train,
    seed: int,
    data: tuple[np.ndarray, ...],
    test_batch_size: int,
) -> dict:
    """Train with `seed`; the test accuracy and loss of every recipe."""
    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(seed)
    model = build_model(config)
    # The trained momentum too, should params.yaml's not be one of MOMENTA.
    momenta = OtherMomenta(sorted({*MOMENTA, config.momentum}))
    batches = ShuffledBatches(x_train, y_train, config.batch_size, seed)
    start = time.perf_counter()
    model.fit(
        batches,
        steps_per_epoch=batches.batches_per_pass,
        epochs=config.epochs,
        shuffle=False,
        callbacks=[momenta],
        verbose=2,
    )
    seconds = time.perf_counter() - start
    scores = {}
    for momentum in momenta.momenta:
        momenta.assign(momentum)
        scores[recipe_name(momentum)] = evaluate_classifier(
            model, x_test, y_test, test_batch_size
        )[1]
    population = statistics_batches(
        x_train, y_train, config.batch_size, config.statistics_batches, seed
    )
    bnk.recompute_statistics(model, population)
    scores[RECOMPUTED] = evaluate_classifier(model, x_test, y_test, test_batch_size)[1]
    return {
        "seed": seed,
        "accuracy": {recipe: s["accuracy"] for recipe, s in scores.items()},
        "loss": {recipe: s["loss"] for recipe, s in scores.items()},
        "wall_seconds": round(seconds, 2),
    }


def accuracy_spread(runs: list[dict], recipe: str) -> dict[str, float]:
    """The mean and standard deviation (n - 1) over `runs` of `recipe`'s test
    accuracy."""
    mean, std = mean_std(run["accuracy"][recipe] for run in runs)
    return {"accuracy_mean": mean, "accuracy_std": std}


def headline(runs: list[dict], default: str) -> dict:
    """The metrics file: the seeds, the default recipe's mean and standard deviation,
    and every recipe's mean (a row of `dvc metrics show`)."""
    return {
        "seeds": [run["seed"] for run in runs],
        **accuracy_spread(runs, default),
        **{
            recipe: accuracy_spread(runs, recipe)["accuracy_mean"]
            for recipe in runs[0]["accuracy"]
        },
    }


@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    paths = stage_paths(__doc__, argv, "mnist", "results", "metrics")
    every = params.load()
    on_the_experiments_backend(every)
    # One device: the spread between seeds, not that of a data-parallel run.
    config = every.train.model_copy(update={"devices": 1})
    x_train, y_train, _, _ = dataset.training_split(paths.mnist, "train", config)
    data = (x_train, y_train, *dataset.load_test(paths.mnist))
    with stops_with_parent():
        runs = []
        for seed in every.seeds.seeds:
            runs.append(one_seed(config, seed, data, every.evaluate.batch_size))
            print(
                f"seeds: seed {seed} done ({runs[-1]['wall_seconds']:.0f} s): "
                + ", ".join(f"{r} {a:.4f}" for r, a in runs[-1]["accuracy"].items()),
                flush=True,
            )
        default = default_recipe(config)
        metrics = headline(runs, default)
        results = {
            **describe(),
            "params": config.model_dump(),
            "recipe": default,
            "spread": {
                recipe: accuracy_spread(runs, recipe) for recipe in runs[0]["accuracy"]
            },
            "runs": runs,
        }
        with atomic_paths(paths.results, paths.metrics) as (results_file, metrics_file):
            results_file.write_text(json_text(results))
            metrics_file.write_text(json_text(metrics))
    print(
        f"seeds: {default}: test accuracy {metrics['accuracy_mean']:.4f} "
        f"+- {metrics['accuracy_std']:.4f} over {len(runs)} seeds"
    )


if __name__ == "__main__":
    main()
