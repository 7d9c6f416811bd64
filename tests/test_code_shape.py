"""No function of the package, the pipeline or the benchmarks is longer than a
reader can hold: 120 lines at most, docstring and nested functions included."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bnk", "pipeline", "benchmarks")
MAX_LINES = 120


def long_functions(max_lines):
    """`path:line name (N lines)` of each function or method over `max_lines`."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(), filename=where)):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                lines = node.end_lineno - node.lineno + 1
                if lines > max_lines:
                    found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_over_120_lines():
    offenders = long_functions(MAX_LINES)
    assert not offenders, f"Over {MAX_LINES} lines:\n" + "\n".join(offenders)
