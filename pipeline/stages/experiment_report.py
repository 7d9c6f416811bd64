"""Stage `experiment_report@<name>`: one experiment's report, metrics and plots file.

Reads the experiment's `--results` and its `analysis` module
(`pipeline/experiments/<name>/analysis.py`: `metrics(results) -> dict` and
`plots(results) -> str`, CSV), then executes `--notebook` on the results under the
backend the experiment ran on and renders it to `<output>.ipynb` and `.html` titled
with its title in `experiments.registry` and the backend, its bar linking the other
experiments' reports. The four files replace their previous versions together, once
all are complete; on a failure none changes (pipeline.reporting.render).
"""

import importlib
import json
from collections.abc import Sequence

from pipeline.core import params
from pipeline.core.atomic import json_text
from pipeline.core.backends import BACKEND_NAMES
from pipeline.core.cli import stage_paths
from pipeline.core.errors import PipelineError, one_line_errors
from pipeline.reporting.render import render_report


@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    paths = stage_paths(
        __doc__,
        argv,
        "notebook",
        "results",
        "output",
        "metrics",
        "plots",
        words=("name",),
    )
    if not paths.results.exists():
        raise PipelineError(
            f"{paths.results} is missing: run `dvc repro experiment@{paths.name}` "
            "first."
        )
    results = json.loads(paths.results.read_text())
    analysis = importlib.import_module(f"pipeline.experiments.{paths.name}.analysis")
    registry = params.load().experiments.registry
    title = registry[paths.name]
    others = [
        (other[:1].upper() + other[1:], f"{name}.html")
        for name, other in registry.items()
        if name != paths.name
    ]
    backend = results["backend"]
    render_report(
        paths.notebook,
        paths.output,
        {"results_path": str(paths.results)},
        backend,
        f"bnk: {title} ({BACKEND_NAMES[backend]})",
        also={
            paths.metrics: json_text(analysis.metrics(results)),
            paths.plots: analysis.plots(results),
        },
        links=others,
    )


if __name__ == "__main__":
    main()
