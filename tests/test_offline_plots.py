"""`dvc plots show` writes a page that needs no internet: the project's template
(`.dvc/config`'s `plots.html_template`, written by `make setup`) holds vega, vega-lite
and vega-embed inline instead of DVC's CDN script tags.

Run on the committed metrics in a scratch git repository, with the real `dvc`.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config",
                 "metrics/train_history.csv", "metrics/test_predictions.csv"]
DVC = str(Path(sys.executable).parent / "dvc")


def test_plots_page_loads_no_script_from_the_network(tmp_path):
    for name in PROJECT_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    configured = subprocess.run(
        [DVC, "config", "plots.html_template"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout.strip()
    # DVC reads a relative template path from the .dvc folder.
    template = tmp_path / ".dvc" / configured
    subprocess.run(
        [sys.executable, "-m", "pipeline.reporting.plots_template", str(template)],
        cwd=ROOT, check=True,
    )

    subprocess.run(
        [DVC, "plots", "show"], cwd=tmp_path, capture_output=True, check=True
    )

    page = (tmp_path / "dvc_plots/index.html").read_text()
    script_tags = re.findall(r"<script\b[^>]*>", page, flags=re.IGNORECASE)
    assert script_tags
    assert not [tag for tag in script_tags if re.search(r"\bsrc\s*=", tag)], script_tags
    assert not re.search(r"""src\s*=\s*["']?https?:""", page, flags=re.IGNORECASE)
    assert "window.vegaEmbed=" in page
    assert "Confusion matrix (test set)" in page and "vegaEmbed('#" in page
