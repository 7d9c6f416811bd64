"""params.yaml's `bn_experiment` section: Figure 1's MLP and the CNN with and without
BN."""

from __future__ import annotations

from typing import Annotated

from pydantic import model_validator

from pipeline.core.dataset import TRAINING_IMAGES
from pipeline.core.params import (
    CrossKeyError,
    LearningRates,
    OptionalPositiveInt,
    PositiveFloat,
    PositiveInt,
    Section,
    integer,
    rule,
    split_check,
)

MLP_UNITS = 100  # per hidden layer of Ioffe & Szegedy's Figure 1 network
SigmoidUnit = Annotated[
    int,
    rule(
        lambda v: integer(v) and 0 <= v < MLP_UNITS, f"an integer in [0, {MLP_UNITS})"
    ),
]


class _Steps(Section):
    steps: PositiveInt
    eval_every: PositiveInt
    batch_size: PositiveInt
    limit: OptionalPositiveInt

    def _steps_check(self, part: str) -> None:
        if self.steps % self.eval_every:
            raise CrossKeyError(
                f"`bn_experiment.{part}.steps`={self.steps} must be a multiple of "
                f"`bn_experiment.{part}.eval_every`={self.eval_every}."
            )


class Mlp(_Steps):
    learning_rate: PositiveFloat
    init_stddev: PositiveFloat
    unit: SigmoidUnit

    @model_validator(mode="after")
    def _consistent(self) -> Mlp:
        self._steps_check("mlp")
        if self.limit is not None and self.limit > TRAINING_IMAGES:
            raise CrossKeyError(
                f"`bn_experiment.mlp.limit`={self.limit} is larger than the "
                f"{TRAINING_IMAGES} training images available."
            )
        return self


class Cnn(_Steps):
    learning_rates: LearningRates
    validation: PositiveInt

    @model_validator(mode="after")
    def _consistent(self) -> Cnn:
        self._steps_check("cnn")
        split_check("bn_experiment.cnn", self.validation, self.limit)
        return self


class Params(Section):
    mlp: Mlp
    cnn: Cnn
