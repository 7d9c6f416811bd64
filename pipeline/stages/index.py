"""Stage `index`: the page a reader starts from, executed and rendered.

The headline numbers of every report, the backends side by side (each backend's
`compare` run, read from `<compare>/<backend>.json`), and links to the other reports
-> `<output>.ipynb` and `.html`. Fails, keeping the previous page, as the report
stage does.
"""

from collections.abc import Sequence

from pipeline import params
from pipeline.backends import selected_backend
from pipeline.cli import stage_paths
from pipeline.errors import one_line_errors
from pipeline.render import render_report


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
    backends = params.load().report.backends
    parameters = {
        "backends": list(backends),
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
