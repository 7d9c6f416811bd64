"""Stages `report@<backend>` and `index`: the report notebooks, executed and rendered.

`python -m pipeline.report` executes notebooks/results.ipynb under the backend
KERAS_BACKEND names -> reports/<backend>.ipynb and .html, after checking the data and
the model it reads; `python -m pipeline.report index` executes notebooks/index.ipynb,
the page that compares the backends and links every report -> reports/index.ipynb and
.html. A failing cell, or one that writes to stderr, fails the stage and leaves the
previous report as it was; the failed notebook, its error shown at the top, is
reports/<name>.failed.ipynb.
"""

import sys
from pathlib import Path

import papermill

from pipeline import dataset, evaluate, params
from pipeline.backend import BACKENDS, selected_backend
from pipeline.errors import one_line_errors
from pipeline.render import ReportError, failed_notebook, render

NOTEBOOK = Path("notebooks/results.ipynb")
INDEX_NOTEBOOK = Path("notebooks/index.ipynb")
REPORTS = Path("reports")
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def backend_list(key, value):
    if not isinstance(value, list) or not value or not set(value) <= set(BACKENDS):
        raise params.ParamsError(
            f"params.yaml: `{key}` must be a non-empty list of {', '.join(BACKENDS)}, "
            f"got {value!r}."
        )
    return value


SCHEMA = {"backends": backend_list, "inference_batch": params.positive_int}


@one_line_errors
def main(argv=(), notebook=None):
    """`argv` is the command line (`[]` or `["index"]`); `notebook` overrides its file."""
    argv = list(argv)
    if argv not in ([], ["index"]):
        sys.exit("usage: python -m pipeline.report [index]")
    backend = selected_backend()
    config = params.load("report", SCHEMA)
    parameters = {"backends": config["backends"], "inference_batch": config["inference_batch"]}
    if argv == ["index"]:
        notebook = notebook or INDEX_NOTEBOOK
        stem, title = REPORTS / "index", "bnk: results on every backend"
    else:
        dataset.load_test()
        evaluate.load_model()
        notebook = notebook or NOTEBOOK
        stem, title = REPORTS / backend, f"bnk results under {BACKEND_NAMES[backend]}"
    try:
        render(notebook, stem, parameters, backend, title)
    except (papermill.PapermillExecutionError, ReportError) as error:
        reason = (f"{error.ename}: {error.evalue}"
                  if isinstance(error, papermill.PapermillExecutionError) else str(error))
        sys.exit(
            f"{notebook} failed under {backend} ({reason}); the failed notebook is "
            f"{failed_notebook(stem)}, and the previous report is unchanged."
        )


if __name__ == "__main__":
    main(sys.argv[1:])
