"""Stage `non_iid`: bnk.CNN trained on batches of a few classes vs shuffled batches.

Runs pipeline.experiments.non_iid on the backend KERAS_BACKEND names (Ioffe, 2017,
section 4.2). Writes every run and the settings, which the report reads, and a
metrics file with each normalization's test accuracy after i.i.d. and after
non-i.i.d. training.
"""

from collections.abc import Sequence
from typing import Any

from pipeline.atomic import json_text
from pipeline.errors import one_line_errors
from pipeline.experiment_stage import run_experiment_stage
from pipeline.experiments import non_iid
from pipeline.outputs import keeps_outputs


def headline(runs: list[dict]) -> dict[str, float | None]:
    """`<normalization>_<sampling>`: the test accuracy (inference mode) of each
    run, the first three normalizations only, so `dvc metrics show` fits a screen."""
    shown = list(dict.fromkeys(run["normalization"] for run in runs))[:3]
    return {
        f"{run['normalization']}_{run['sampling']}": run["test_accuracy"]
        for run in runs
        if run["normalization"] in shown
    }


@keeps_outputs("non_iid")
@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    def metrics(results: dict[str, Any]) -> str:
        return json_text(headline(results["runs"]))

    run_experiment_stage(__doc__, argv, "non_iid", non_iid.run, {"metrics": metrics})


if __name__ == "__main__":
    main()
