"""Execute a notebook with papermill under a given backend, and render it to HTML.

Shared by the report stages. The kernel is the project's own interpreter, through a
kernelspec made for the run in a temporary folder removed afterwards (so no
kernelspec in the user's home can shadow it), and it inherits KERAS_BACKEND from this
process.

The report stages keep their outputs across runs (`persist: true` in dvc.yaml), so the
previous report must survive a failure: the notebook and its HTML are written beside
their targets and replace them together only when both are complete. A failed run's
notebook goes to `<stem>.failed.ipynb` instead, for debugging.
"""

import datetime
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import nbconvert
import nbformat
import papermill

from pipeline.core.atomic import atomic_paths
from pipeline.core.environment import code_version
from pipeline.core.errors import PipelineError

KERNEL_NAME = "bnk-project-python"
TEMPLATES = Path(__file__).resolve().parent / "templates"
#: A link in a report's bar: (text, address relative to reports/).
Link = tuple[str, str]
BENCHMARKS_LINK: Link = ("Benchmarks", "../benchmarks/results.md")


class ReportError(PipelineError, RuntimeError):
    """The executed notebook failed, or shows something a reader must not see."""


def _write_kernelspec(root: str | Path) -> None:
    """Make `root` a JUPYTER_PATH entry holding one kernelspec: this interpreter.

    The kernel leaves output written straight to its file descriptors (TensorFlow's
    C++ start-up log, for one) on its own stderr, the stage's log, instead of copying
    it into the notebook.
    """
    spec = Path(root) / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    argv = [
        sys.executable,
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
        "--IPKernelApp.capture_fd_output=False",
    ]
    (spec / "kernel.json").write_text(
        json.dumps(
            {"argv": argv, "display_name": "bnk (project)", "language": "python"}
        )
    )


def check_outputs(notebook: nbformat.NotebookNode) -> None:
    """Raise ReportError naming the first cell that wrote to stderr."""
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                first = output.get("text", "").strip().splitlines()[:1]
                raise ReportError(
                    f"cell {index} wrote to stderr, which would show in the report: "
                    f"{first[0] if first else ''!r}"
                )


def to_html(
    notebook_path: Path, html_path: Path, title: str, links: Sequence[Link] = ()
) -> None:
    """Render without code cells, so the page reads as a report, with the project's
    template (templates/bnk): nothing loaded from the network, and a bar with the
    commit and date it was rendered from and links to the index, `links` and the
    benchmarks."""
    exporter = nbconvert.HTMLExporter(
        template_name="bnk",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    notebook = nbformat.read(notebook_path, as_version=4)
    now = datetime.datetime.now(datetime.timezone.utc)
    page = {
        "links": [("All results", "index.html"), *links, BENCHMARKS_LINK],
        "commit": code_version(),
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
    }
    body, _ = exporter.from_notebook_node(
        notebook, resources={"metadata": {"name": title}, "bnk": page}
    )
    Path(html_path).write_text(body)


def failed_notebook(output_stem: Path) -> Path:
    return Path(output_stem).with_suffix(".failed.ipynb")


def render(
    notebook: Path,
    output_stem: Path,
    parameters: dict,
    backend: str,
    title: str,
    also: Mapping[Path, str] | None = None,
    links: Sequence[Link] = (),
) -> None:
    """Run `notebook` under `backend` into `<output_stem>.ipynb` and `.html` (its
    bar linking `links` too: see `to_html`), and write `also`'s texts to its paths:
    all replace their targets together.

    On a failing cell papermill still writes the executed notebook (error cell at the
    top) and raises; so does `check_outputs` on a cell that wrote to stderr
    (ReportError). That notebook becomes `<output_stem>.failed.ipynb`, the previous
    `.ipynb` and `.html` stay as they were, and the caller exits non-zero.
    """
    output_stem = Path(output_stem)
    try:
        declared = papermill.inspect_notebook(str(notebook))
    except ValueError as error:  # no kernelspec, or a parameters cell it cannot read
        raise PipelineError(f"{notebook} cannot be run: {error}") from None
    unknown = sorted(set(parameters) - set(declared))
    if unknown:  # papermill would only log it, and the notebook run on its defaults
        raise ReportError(
            f"{notebook} has no parameter {', '.join(unknown)} in its `parameters` "
            f"cell (it has: {', '.join(declared) or 'none'})."
        )
    failed_notebook(output_stem).unlink(missing_ok=True)
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    jupyter_path = os.environ.get("JUPYTER_PATH")
    also = dict(also or {})
    with (
        tempfile.TemporaryDirectory(prefix="bnk-kernel-") as kernels,
        atomic_paths(
            output_stem.with_suffix(".ipynb"), output_stem.with_suffix(".html"), *also
        ) as (executed, html, *others),
    ):
        _write_kernelspec(kernels)
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            filter(None, [kernels, jupyter_path])
        )
        try:
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
        except (papermill.PapermillExecutionError, ReportError):
            os.replace(executed, failed_notebook(output_stem))
            raise
        finally:
            if jupyter_path is None:
                del os.environ["JUPYTER_PATH"]
            else:
                os.environ["JUPYTER_PATH"] = jupyter_path
        to_html(executed, html, title, links)
        for other, text in zip(others, also.values(), strict=True):
            other.write_text(text)


def render_report(
    notebook: Path,
    output_stem: Path,
    parameters: dict,
    backend: str,
    title: str,
    also: Mapping[Path, str] | None = None,
    links: Sequence[Link] = (),
) -> None:
    """`render`, its failure turned into a ReportError that says where to look."""
    try:
        render(notebook, output_stem, parameters, backend, title, also, links)
    except (papermill.PapermillExecutionError, ReportError) as error:
        reason = (
            f"{error.ename}: {error.evalue}"
            if isinstance(error, papermill.PapermillExecutionError)
            else str(error)
        )
        raise ReportError(
            f"{notebook} failed under {backend} ({reason}); the failed notebook is "
            f"{failed_notebook(output_stem)}, and the previous report is unchanged."
        ) from None
