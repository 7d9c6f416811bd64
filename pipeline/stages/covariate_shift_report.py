"""Stage `covariate_shift_report`: the covariate-shift experiment's notebook, executed
and rendered.

Runs under the backend the experiment ran on (the `backend` stage's record), on the
experiment's results -> `<output>.ipynb` and `.html`. Fails, keeping the previous
page, as the report stage does.
"""

from collections.abc import Sequence

from pipeline.backends import recorded_backend
from pipeline.cli import stage_paths
from pipeline.errors import PipelineError, one_line_errors
from pipeline.render import render_report


@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    paths = stage_paths(__doc__, argv, "notebook", "output", "results", "backend")
    if not paths.results.exists():
        raise PipelineError(
            f"{paths.results} is missing: run `dvc repro covariate_shift` first."
        )
    render_report(
        paths.notebook,
        paths.output,
        {"results_path": str(paths.results)},
        recorded_backend(paths.backend),
        "bnk: is it internal covariate shift?",
    )


if __name__ == "__main__":
    main()
