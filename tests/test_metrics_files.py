"""The committed metrics files hold headline numbers only, so that each one's row of
`dvc metrics show` fits on a screen; the details live in results/ and the reports.

Together they no longer fit: DVC's table has a column for every key of every file,
and each experiment adds its own. `dvc metrics show FILE` reads one."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from stages import stage_path

ROOT = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).parent / "dvc")
METRICS = [
    stage_path(stage, "metrics")
    for stage in (
        "train", "evaluate", "bn_experiment", "batch_sizes", "non_iid",
        "covariate_shift",
    )
]
# A terminal beside an editor, or a laptop's full-width one.
SCREEN_COLUMNS = 160


def test_metrics_files_hold_only_numbers():
    for path in METRICS:
        values = json.loads((ROOT / path).read_text())
        assert 0 < len(values) <= 6, path
        assert all(isinstance(v, int | float) for v in values.values()), path


def test_dvc_metrics_show_lists_every_file_each_on_a_screen(tmp_path):
    for name in ["dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config", *METRICS]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)

    def show(*targets):
        return subprocess.run(
            [DVC, "metrics", "show", *targets], cwd=tmp_path, capture_output=True,
            text=True, check=True,
        ).stdout.splitlines()

    rows = [line for line in show() if line.startswith("metrics/")]
    assert sorted(row.split()[0] for row in rows) == sorted(map(str, METRICS))
    for path in METRICS:
        shown = show(str(path))
        assert max(map(len, shown)) <= SCREEN_COLUMNS, "\n".join(shown)
