"""Stage `batch_sizes`: bnk.CNN's test accuracy against batch size, per normalization.

Runs pipeline.experiments.batch_sizes on the backend KERAS_BACKEND names (Wu & He,
2018, Figure 1; and the train/inference gap of the BN family). Writes every run and
the settings, which the report reads, a metrics file with the headline accuracies a
reader compares across runs, and a plots file of the test accuracy by batch size
(`dvc plots show` / `dvc plots diff`).
"""

from collections.abc import Sequence
from typing import Any

from pipeline import params
from pipeline.atomic import json_text
from pipeline.errors import one_line_errors
from pipeline.experiment_stage import run_experiment_stage
from pipeline.experiments import batch_sizes
from pipeline.outputs import keeps_outputs

#: The normalizations whose accuracies the metrics file holds, by the short name its
#: keys give them (`bn_smallest_batch`): the long ones made its row of `dvc metrics
#: show` wider than a screen.
HEADLINE = {"batch_norm": "bn", "batch_renorm": "renorm", "group_norm": "gn"}


def headline(runs: list[dict]) -> dict[str, float | None]:
    """Test accuracy at the smallest and the largest batch size of BN, Batch Renorm
    and GroupNorm (those that ran): what `dvc metrics show` lists."""
    metrics = {}
    for name, short in HEADLINE.items():
        accuracy = {
            run["batch_size"]: run["test_accuracy"]
            for run in runs
            if run["normalization"] == name
        }
        if accuracy:
            metrics[f"{short}_smallest_batch"] = accuracy[min(accuracy)]
            metrics[f"{short}_largest_batch"] = accuracy[max(accuracy)]
    return metrics


def accuracy_table(runs: list[dict]) -> str:
    """CSV: a row per batch size, the test accuracy of each normalization in a column
    of its name (every known one, empty where it did not run or diverged), the
    columns dvc.yaml's plot names."""
    accuracy = {(r["normalization"], r["batch_size"]): r["test_accuracy"] for r in runs}
    lines = [",".join(["batch_size", *params.NORMALIZATIONS])]
    for size in sorted({r["batch_size"] for r in runs}):
        values = [accuracy.get((name, size)) for name in params.NORMALIZATIONS]
        cells = ["" if value is None else f"{value:.6g}" for value in values]
        lines.append(",".join([str(size), *cells]))
    return "\n".join(lines) + "\n"


@keeps_outputs("batch_sizes")
@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    def metrics(results: dict[str, Any]) -> str:
        return json_text(headline(results["runs"]))

    def plots(results: dict[str, Any]) -> str:
        return accuracy_table(results["runs"])

    run_experiment_stage(
        __doc__,
        argv,
        "batch_sizes",
        batch_sizes.run,
        {"metrics": metrics, "plots": plots},
    )


if __name__ == "__main__":
    main()
