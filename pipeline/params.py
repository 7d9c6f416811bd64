"""Reading and checking params.yaml, so bad values fail before any heavy work."""

import numbers
from pathlib import Path

import yaml

from pipeline.errors import PipelineError

PARAMS_FILE = Path("params.yaml")
SECTIONS = ("seed", "fetch", "train", "evaluate", "report", "compare", "experiment")


class ParamsError(PipelineError, ValueError):
    """A key of params.yaml is missing, unknown or has a bad value."""


def positive_int(key, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ParamsError(f"params.yaml: `{key}` must be a positive integer, got {value!r}.")
    return int(value)


def optional_positive_int(key, value):
    return None if value is None else positive_int(key, value)


def positive_float(key, value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
        raise ParamsError(f"params.yaml: `{key}` must be a positive number, got {value!r}.")
    return float(value)


def fraction(key, value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value < 1:
        raise ParamsError(f"params.yaml: `{key}` must be in [0, 1), got {value!r}.")
    return float(value)


def integer(key, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ParamsError(f"params.yaml: `{key}` must be an integer, got {value!r}.")
    return int(value)


def anything(key, value):
    return value


def _check(prefix, values, schema):
    if not isinstance(values, dict):
        raise ParamsError(f"params.yaml: `{prefix}` must be a mapping, got {values!r}.")
    unknown = sorted(set(values) - set(schema))
    if unknown:
        raise ParamsError(
            f"params.yaml: unknown key `{prefix}.{unknown[0]}` "
            f"(known keys of `{prefix}`: {', '.join(sorted(schema))})."
        )
    missing = sorted(set(schema) - set(values))
    if missing:
        raise ParamsError(f"params.yaml: missing key `{prefix}.{missing[0]}`.")
    checked = {}
    for key, rule in schema.items():
        name = f"{prefix}.{key}"
        if isinstance(rule, dict):
            checked[key] = _check(name, values[key], rule)
        else:
            checked[key] = rule(name, values[key])
    return checked


def load(section, schema, path=PARAMS_FILE):
    """Return the checked `section` of params.yaml, plus the top-level `seed`.

    Raises ParamsError naming the first key that is unknown (at the top level
    or in `section`), missing, or out of range.
    """
    with open(path) as f:
        params = yaml.safe_load(f) or {}
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise ParamsError(
            f"params.yaml: unknown top-level key `{unknown[0]}` "
            f"(known: {', '.join(SECTIONS)})."
        )
    if section not in params:
        raise ParamsError(f"params.yaml: missing section `{section}`.")
    checked = _check(section, params[section], schema)
    checked["seed"] = integer("seed", params.get("seed", 0))
    return checked
