"""Stage `non_iid`: bnk.CNN trained on batches of a few classes vs shuffled batches.

Runs pipeline.experiments.non_iid on the backend KERAS_BACKEND names (Ioffe, 2017,
section 4.2). Writes every run and the settings, which the report reads, and a
metrics file with each normalization's test accuracy after i.i.d. and after
non-i.i.d. training.
"""

import time
from collections.abc import Sequence

from pipeline import params
from pipeline.atomic import atomic_paths, json_text
from pipeline.backends import selected_backend
from pipeline.cli import stage_paths
from pipeline.environment import describe
from pipeline.errors import one_line_errors
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
    paths = stage_paths(__doc__, argv, "mnist", "results", "metrics")
    selected_backend()
    config = params.load()
    start = time.perf_counter()
    measured = non_iid.run(config.non_iid, config.seed, paths.mnist)
    seconds = round(time.perf_counter() - start, 2)
    results = {
        **describe(),
        "params": {"seed": config.seed, **config.non_iid.model_dump()},
        **measured,
        "wall_seconds": seconds,
    }
    with atomic_paths(paths.results, paths.metrics) as (results_file, metrics):
        results_file.write_text(json_text(results))
        metrics.write_text(json_text(headline(measured["runs"])))
    print(f"wrote {paths.results} and {paths.metrics} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
