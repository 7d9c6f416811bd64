"""Stage `bn_experiment`: what batch normalization buys, measured with bnk.BatchNorm.

Two experiments, on the backend KERAS_BACKEND names: Ioffe & Szegedy's Figure 1
(pipeline.experiments.figure1) and the seed's CNN with and without BN
(pipeline.experiments.cnn_bn). Writes the series and the settings, which the report
reads, and a metrics file with the four final accuracies a reader compares across
runs.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline import params
from pipeline.atomic import json_text
from pipeline.errors import one_line_errors
from pipeline.experiment_stage import run_experiment_stage
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


def both(config: params.Experiment, seed: int, mnist: Path) -> dict[str, Any]:
    """Figure 1 and the CNN with and without BN, and each run's final accuracy."""
    mlp = figure1.run(config.mlp, seed, mnist)
    cnn = cnn_bn.run(config.cnn, seed, mnist)
    return {"final": final_accuracies(mlp, cnn), "mlp": mlp, "cnn": cnn}


@keeps_outputs("bn_experiment")
@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    def metrics(results: dict[str, Any]) -> str:
        return json_text(headline(results["mlp"], results["cnn"]))

    run_experiment_stage(__doc__, argv, "experiment", both, {"metrics": metrics})


if __name__ == "__main__":
    main()
