"""Stage `bn_experiment`: what batch normalization buys, measured with bnk.BatchNorm.

Two experiments, on the backend KERAS_BACKEND names: Ioffe & Szegedy's Figure 1
(pipeline.experiments.figure1) and the seed's CNN with and without BN
(pipeline.experiments.cnn_bn). Writes the series and the settings, which the report
reads, and a metrics file with the four final accuracies a reader compares across
runs.
"""

import time
from collections.abc import Sequence

from pipeline import params
from pipeline.atomic import atomic_paths, json_text
from pipeline.backends import selected_backend
from pipeline.cli import stage_paths
from pipeline.environment import describe
from pipeline.errors import one_line_errors
from pipeline.experiments import cnn_bn, figure1
from pipeline.outputs import keeps_outputs


def final_accuracies(mlp: dict, cnn: dict) -> dict[str, float | None]:
    """Each run's last accuracy, by name (a diverged run's is None)."""
    final = {
        "mlp_bn_test_accuracy": mlp["bn"][-1],
        "mlp_plain_test_accuracy": mlp["plain"][-1],
    }
    for run in cnn["runs"]:
        variant = "bn" if run["batch_norm"] else "plain"
        rate = f"{run['learning_rate']:g}".replace(".", "_")
        final[f"cnn_{variant}_lr{rate}_val_accuracy"] = run["val_accuracy"][-1]
    return final


def headline(mlp: dict, cnn: dict) -> dict[str, float | None]:
    """Figure 1's final test accuracies and the CNN's best final validation accuracy
    over the learning rates, with and without BN: what `dvc metrics show` lists."""

    def best(batch_norm: bool) -> float | None:
        finals = [
            run["val_accuracy"][-1]
            for run in cnn["runs"]
            if run["batch_norm"] == batch_norm
        ]
        finite = [value for value in finals if value is not None]
        return max(finite) if finite else None

    return {
        "figure1_bn": mlp["bn"][-1],
        "figure1_plain": mlp["plain"][-1],
        "cnn_bn_best": best(True),
        "cnn_plain_best": best(False),
    }


@keeps_outputs("bn_experiment")
@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    paths = stage_paths(__doc__, argv, "mnist", "results", "metrics")
    selected_backend()
    config = params.load()
    start = time.perf_counter()
    mlp = figure1.run(config.experiment.mlp, config.seed, paths.mnist)
    cnn = cnn_bn.run(config.experiment.cnn, config.seed, paths.mnist)
    seconds = round(time.perf_counter() - start, 2)
    results = {
        **describe(),
        "params": {"seed": config.seed, **config.experiment.model_dump()},
        "final": final_accuracies(mlp, cnn),
        "mlp": mlp,
        "cnn": cnn,
        "wall_seconds": seconds,
    }
    with atomic_paths(paths.results, paths.metrics) as (results_file, metrics):
        results_file.write_text(json_text(results))
        metrics.write_text(json_text(headline(mlp, cnn)))
    print(f"wrote {paths.results} and {paths.metrics} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
