"""Errors a user can fix, reported as one line instead of a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from pipeline.core.atomic import OutputError

P = ParamSpec("P")
R = TypeVar("R")


class PipelineError(Exception):
    """A bad parameter, input file or environment; the message names it."""


def one_line_errors(main: Callable[P, R]) -> Callable[P, R]:
    """Run a stage's `main`; a PipelineError or unwritable output becomes one line."""

    @functools.wraps(main)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return main(*args, **kwargs)
        except (PipelineError, OutputError) as error:
            sys.exit(str(error))

    return wrapped
