"""Each stage of dvc.yaml that runs bnk depends on every bnk module the pipeline runs
(directly or through another module), and on no other: a stage re-runs when the
layer it trains with changes, and not when the package gains a tool no stage uses."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MODULES = {path.stem for path in (ROOT / "bnk").glob("*.py")} - {"__init__"}


def exported_by(module: str) -> set[str]:
    """The names bnk/__init__.py re-exports from bnk.<module>."""
    init = (ROOT / "bnk/__init__.py").read_text()
    found = re.search(rf"^from bnk\.{module} import (.+)$", init, re.MULTILINE)
    return {name.strip() for name in found.group(1).split(",")} if found else set()


def imported_by(module: str) -> set[str]:
    """The bnk modules bnk/<module>.py imports."""
    source = (ROOT / "bnk" / f"{module}.py").read_text()
    return set(re.findall(r"^from bnk\.(\w+) import", source, re.MULTILINE))


def run_by_the_pipeline() -> set[str]:
    """The bnk modules whose names, or those of what they export, the pipeline or
    the notebooks use, and the modules those import."""
    code = "\n".join(
        path.read_text()
        for folder in ("pipeline", "notebooks")
        for path in (ROOT / folder).rglob("*.py")
    )
    used = {
        module
        for module in MODULES
        if f"bnk.{module}" in code
        or any(re.search(rf"\bbnk\.{name}\b", code) for name in exported_by(module))
    }
    while True:
        more = used | {m for module in used for m in imported_by(module)}
        if more == used:
            return used
        used = more


def test_stages_depend_on_the_bnk_modules_the_pipeline_runs():
    expected = {f"bnk/{module}.py" for module in run_by_the_pipeline()}
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    listed = {}
    for name, stage in stages.items():
        deps = stage.get("do", stage).get("deps", [])
        bnk = {dep for dep in deps if isinstance(dep, str) and dep.startswith("bnk")}
        if bnk:
            listed[name] = bnk
    assert set(listed) >= {"train", "evaluate", "compare", "report", "seeds",
                           "experiment"}
    for name, bnk in listed.items():
        assert bnk == expected, name


def test_the_check_sees_a_module_the_pipeline_starts_to_use():
    assert {"batch_norm", "cnn", "statistics", "functional"} <= run_by_the_pipeline()
    assert "swap" not in run_by_the_pipeline()


def test_importing_bnk_leaves_the_swap_tool_out_until_it_is_used():
    """What lets the stages leave bnk/swap.py out of their dependencies."""
    import subprocess
    import sys

    probe = (
        "import sys, bnk; before = 'bnk.swap' in sys.modules; "
        "bnk.replace_batch_norm; print(before, 'bnk.swap' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                          text=True, check=True, cwd=ROOT)
    assert done.stdout.split() == ["False", "True"]
