"""Stage `covariate_shift_report`: the covariate-shift experiment's notebook,
executed on its results and rendered (see
`pipeline.render.render_experiment_report`).
"""

from collections.abc import Sequence

from pipeline.errors import one_line_errors
from pipeline.render import render_experiment_report


@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    render_experiment_report(
        __doc__, argv, "covariate_shift", "bnk: is it internal covariate shift?"
    )


if __name__ == "__main__":
    main()
