"""Stage `index`: the page a reader starts from, executed and rendered.

The headline numbers of every report, the backends side by side (each backend's
`compare` run, read from `<compare>/<backend>.json`), and links to the other reports
(every experiment of `experiments.registry`, by its title)
-> `<output>.ipynb` and `.html`. Fails, keeping the previous page, as the report
stage does.
"""

from collections.abc import Sequence

from pipeline.core import params
from pipeline.core.backends import selected_backend
from pipeline.core.cli import stage_paths
from pipeline.core.errors import one_line_errors
from pipeline.reporting.render import render_report


@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    paths = stage_paths(
        __doc__,
        argv,
        "notebook",
        "output",
        "train-run",
        "eval-run",
        "experiment-results",
        "compare",
    )
    backend = selected_backend()
    config = params.load()
    backends = config.report.backends
    parameters = {
        "backends": list(backends),
        "experiment_titles": dict(config.experiments.registry),
        "train_run_path": str(paths.train_run),
        "eval_run_path": str(paths.eval_run),
        "experiment_results_path": str(paths.experiment_results),
        "compare_run_paths": {
            name: str(paths.compare / f"{name}.json") for name in backends
        },
    }
    render_report(
        paths.notebook,
        paths.output,
        parameters,
        backend,
        "bnk: results on every backend",
    )


if __name__ == "__main__":
    main()
