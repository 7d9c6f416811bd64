"""Stage `report@<backend>`: the results notebook, executed under one backend.

Executes the results notebook under the backend KERAS_BACKEND names (set by dvc.yaml)
-> `<output>.ipynb` and `.html`, after checking the data and the model it reads. A
failing cell, or one that writes to stderr, fails the stage and leaves the previous
report as it was; the failed notebook, its error shown at the top, is
`<output>.failed.ipynb`.
"""

from collections.abc import Sequence

from pipeline.core import dataset, params
from pipeline.core.backends import BACKEND_NAMES, selected_backend
from pipeline.core.cli import stage_paths
from pipeline.core.errors import one_line_errors
from pipeline.core.models import load_trained_cnn
from pipeline.reporting.render import render_report

# The notebook's parameters: the files it reads, each passed on as `<name>_path`.
INPUTS = (
    "mnist",
    "model",
    "probabilities",
    "compare_run",
    "train_run",
    "train_history",
    "eval_run",
    "predictions",
)


@one_line_errors
def main(argv: Sequence[str] | None = None) -> None:
    paths = stage_paths(
        __doc__,
        argv,
        "notebook",
        "output",
        *(name.replace("_", "-") for name in INPUTS),
    )
    backend = selected_backend()
    config = params.load()
    dataset.load_test(paths.mnist)
    load_trained_cnn(paths.model)
    parameters = {
        "backends": list(config.report.backends),
        "inference_batch": config.report.inference_batch,
        **{f"{name}_path": str(getattr(paths, name)) for name in INPUTS},
    }
    title = f"bnk results under {BACKEND_NAMES[backend]}"
    others = [
        (f"Results under {BACKEND_NAMES[b]}", f"{b}.html")
        for b in config.report.backends
        if b != backend
    ]
    render_report(
        paths.notebook, paths.output, parameters, backend, title, links=others
    )


if __name__ == "__main__":
    main()
