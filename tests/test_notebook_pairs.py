"""Each notebook in notebooks/ is a pair: the jupytext percent script (`.py`), which
reviewers read and edit, and the `.ipynb` that papermill executes. They must hold the
same cells; `make notebooks` (`jupytext --sync notebooks/*.py`) brings them together.
"""

from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PAIRED_NOTEBOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))
OUT_OF_SYNC = "out of sync with its .py: edit the .py, then run `make notebooks`"


def test_every_notebook_and_script_has_its_pair():
    scripts = {path.stem for path in NOTEBOOKS.glob("*.py")}
    notebooks = {path.stem for path in PAIRED_NOTEBOOKS}
    assert notebooks and scripts == notebooks


def cells(notebook):
    return [
        (cell.cell_type, cell.source, dict(cell.metadata)) for cell in notebook.cells
    ]


@pytest.mark.parametrize("notebook_path", PAIRED_NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_holds_the_cells_of_its_script(notebook_path):
    executed = nbformat.read(notebook_path, as_version=4)
    script = jupytext.read(notebook_path.with_suffix(".py"), fmt="py:percent")
    assert cells(executed) == cells(script), f"{notebook_path.name} is {OUT_OF_SYNC}"
    # The script is exactly what jupytext writes for the notebook, so a sync changes
    # neither file.
    assert jupytext.writes(executed, fmt="py:percent") == (
        notebook_path.with_suffix(".py").read_text()
    ), f"{notebook_path.name} is {OUT_OF_SYNC}"


@pytest.mark.parametrize("notebook_path", PAIRED_NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_ready_for_papermill(notebook_path):
    executed = nbformat.read(notebook_path, as_version=4)
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{notebook_path.name} needs one cell tagged `parameters`"
