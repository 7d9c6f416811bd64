"""Stage `non_iid_report`: the non-i.i.d. experiment's notebook, executed on its
results and rendered (see
`pipeline.render.render_experiment_report`).
"""

from collections.abc import Sequence

from pipeline.errors import one_line_errors
from pipeline.render import render_experiment_report


@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    render_experiment_report(
        __doc__, argv, "non_iid", "bnk: batch normalization on non-i.i.d. batches"
    )


if __name__ == "__main__":
    main()
