"""The command line of a stage: the paths it reads and writes, named by dvc.yaml.

dvc.yaml is the one place that names an artifact's path; each stage takes the paths
it needs as required options (`--model models/cnn.keras`), so none is hard-coded.
"""

import argparse
from collections.abc import Sequence
from pathlib import Path


def stage_paths(
    doc: str | None,
    argv: Sequence[str] | None,
    *names: str,
    words: Sequence[str] = (),
) -> argparse.Namespace:
    """Parse `--<name> PATH` for each of `names` and `--<word> TEXT` for each of
    `words` (all required) from `argv`.

    `argv` None reads sys.argv; the namespace holds each path as a Path and each word
    as a str, under the name with dashes turned into underscores.
    """
    first_line = (doc or "").strip().splitlines()[:1]
    parser = argparse.ArgumentParser(description=first_line[0] if first_line else None)
    for name in names:
        parser.add_argument(f"--{name}", type=Path, required=True, metavar="PATH")
    for word in words:
        parser.add_argument(f"--{word}", required=True, metavar="TEXT")
    return parser.parse_args(argv)
