"""Stage `batch_sizes`: bnk.CNN's test accuracy against batch size, per normalization.

Runs pipeline.experiments.batch_sizes on the backend KERAS_BACKEND names (Wu & He,
2018, Figure 1; and the train/inference gap of the BN family). Writes every run and
the settings, which the report reads, a metrics file with the headline accuracies a
reader compares across runs, and a plots file of the test accuracy by batch size
(`dvc plots show` / `dvc plots diff`).
"""

import time
from collections.abc import Sequence

from pipeline import params
from pipeline.atomic import atomic_paths, json_text
from pipeline.backends import selected_backend
from pipeline.cli import stage_paths
from pipeline.environment import describe
from pipeline.errors import one_line_errors
from pipeline.experiments import batch_sizes
from pipeline.outputs import keeps_outputs

#: The normalizations whose accuracies the metrics file holds.
HEADLINE = ("batch_norm", "batch_renorm", "group_norm")


def headline(runs: list[dict]) -> dict[str, float | None]:
    """Test accuracy at the smallest and the largest batch size of BN, Batch Renorm
    and GroupNorm (those that ran): what `dvc metrics show` lists."""
    metrics = {}
    for name in HEADLINE:
        accuracy = {
            run["batch_size"]: run["test_accuracy"]
            for run in runs
            if run["normalization"] == name
        }
        if accuracy:
            metrics[f"{name}_smallest_batch"] = accuracy[min(accuracy)]
            metrics[f"{name}_largest_batch"] = accuracy[max(accuracy)]
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
    paths = stage_paths(__doc__, argv, "mnist", "results", "metrics", "plots")
    selected_backend()
    config = params.load()
    start = time.perf_counter()
    measured = batch_sizes.run(config.batch_sizes, config.seed, paths.mnist)
    seconds = round(time.perf_counter() - start, 2)
    results = {
        **describe(),
        "params": {"seed": config.seed, **config.batch_sizes.model_dump()},
        **measured,
        "wall_seconds": seconds,
    }
    outputs = (paths.results, paths.metrics, paths.plots)
    with atomic_paths(*outputs) as (results_file, metrics, plots):
        results_file.write_text(json_text(results))
        metrics.write_text(json_text(headline(measured["runs"])))
        plots.write_text(accuracy_table(measured["runs"]))
    print(f"wrote {paths.results} and {paths.metrics} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
