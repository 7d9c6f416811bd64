"""Errors a user can fix, reported as one line instead of a traceback."""

import functools
import sys

from pipeline.atomic import OutputError


class PipelineError(Exception):
    """A bad parameter, input file or environment; the message names it."""


def one_line_errors(main):
    """Run a stage's `main`, turning a PipelineError or unwritable output into one line."""
    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except (PipelineError, OutputError) as error:
            sys.exit(str(error))

    return wrapped
