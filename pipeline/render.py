"""Execute a notebook with papermill under a given backend, and render it to HTML.

Shared by the report stages. The kernel is the project's own interpreter, through a
kernelspec made for the run (so no kernelspec in the user's home can shadow it), and
it inherits KERAS_BACKEND from this process.
"""

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

import nbconvert
import nbformat
import papermill

from pipeline.atomic import atomic_path

KERNEL_NAME = "bnk-project-python"


class ReportError(RuntimeError):
    """The executed notebook shows something a reader must not see: a log line."""


@contextlib.contextmanager
def _kernelspec():
    """A JUPYTER_PATH entry holding one kernelspec, this interpreter, for the run.

    The kernel leaves output written straight to its file descriptors (TensorFlow's
    C++ start-up log, for one) on its own stderr, the stage's log, instead of copying
    it into the notebook.
    """
    with tempfile.TemporaryDirectory(prefix="bnk-kernel-") as root:
        spec = Path(root) / "kernels" / KERNEL_NAME
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                "--IPKernelApp.capture_fd_output=False"]
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "bnk (project)", "language": "python"})
        )
        yield root


def check_outputs(notebook):
    """Raise ReportError naming the first cell that wrote to stderr."""
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                first = output.get("text", "").strip().splitlines()[:1]
                raise ReportError(
                    f"cell {index} wrote to stderr, which would show in the report: "
                    f"{first[0] if first else ''!r}"
                )


def to_html(notebook_path, html_path, title):
    """Render without code cells, so the page reads as a report."""
    exporter = nbconvert.HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                                      exclude_output_prompt=True)
    notebook = nbformat.read(notebook_path, as_version=4)
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": title}})
    with atomic_path(html_path) as tmp:
        tmp.write_text(body)


def render(notebook, output_stem, parameters, backend, title):
    """Run `notebook` under `backend` into `<output_stem>.ipynb` and `.html`.

    On a failing cell papermill still writes the executed notebook (error cell at the
    top) and raises; so does a cell that wrote to stderr (ReportError). The HTML is
    then not written, and the caller exits non-zero.
    """
    output_stem = Path(output_stem)
    output_stem.parent.mkdir(parents=True, exist_ok=True)
    executed = output_stem.with_suffix(".ipynb")
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _kernelspec() as kernels:
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            filter(None, [kernels, os.environ.get("JUPYTER_PATH")])
        )
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            cwd=os.getcwd(),
            progress_bar=True,
            log_output=False,
        )
    check_outputs(nbformat.read(executed, as_version=4))
    to_html(executed, output_stem.with_suffix(".html"), title)
