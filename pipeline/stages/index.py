"""Stage `index`: the page a reader starts from, executed and rendered.

The headline numbers of every report, the main model over seeds (stage `seeds`:
`--seeds-metrics` and `--seeds-run`, every seed's accuracy with each choice of BN's
inference statistics), the backends side by side (each backend's `compare` run, every
seed of it, read from `<compare>/<backend>.json`), and links to the other reports
(every experiment of `experiments.registry`, by its title) -> `<output>.ipynb` and
`.html`. A missing input stops it in one line naming the file and the stage that
writes it; a failure keeps the previous page, as the report stage does.
"""

import json
from collections.abc import Sequence
from pathlib import Path

from pipeline.core import params
from pipeline.core.backends import selected_backend
from pipeline.core.cli import stage_paths
from pipeline.core.errors import PipelineError, one_line_errors
from pipeline.reporting.render import render_report


def required(path: Path, stage: str, key: str | None = None) -> None:
    """PipelineError unless `path` exists (and, given `key`, its JSON has it)."""
    if not path.exists():
        raise PipelineError(f"{path} is missing: run `dvc repro {stage}` first.")
    if key is not None and key not in json.loads(path.read_text()):
        raise PipelineError(
            f"{path} has no `{key}`, so it predates the current stage: run "
            f"`dvc repro {stage}`."
        )


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
        "seeds-metrics",
        "seeds-run",
        "compare",
    )
    backend = selected_backend()
    config = params.load()
    backends = config.report.backends
    compare_runs = {name: paths.compare / f"{name}.json" for name in backends}
    required(paths.train_run, "train")
    required(paths.eval_run, "evaluate")
    required(paths.experiment_results, "experiment@bn_experiment", "by_seed")
    required(paths.seeds_metrics, "seeds")
    required(paths.seeds_run, "seeds", "spread")
    for name, path in compare_runs.items():
        required(path, f"compare@{name}", "runs")
    parameters = {
        "backends": list(backends),
        "experiment_titles": dict(config.experiments.registry),
        "train_run_path": str(paths.train_run),
        "eval_run_path": str(paths.eval_run),
        "experiment_results_path": str(paths.experiment_results),
        "seeds_metrics_path": str(paths.seeds_metrics),
        "seeds_run_path": str(paths.seeds_run),
        "compare_run_paths": {name: str(path) for name, path in compare_runs.items()},
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
