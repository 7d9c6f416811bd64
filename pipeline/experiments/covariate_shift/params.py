"""params.yaml's `covariate_shift` section."""

from __future__ import annotations

from typing import Annotated

from pydantic import model_validator

from pipeline.core.params import (
    CrossKeyError,
    Fraction,
    LearningRates,
    OptionalPositiveInt,
    PositiveFloat,
    PositiveInt,
    Section,
    number,
    rule,
    split_check,
)


class Noise(Section):
    """DistributionNoise after each BN of the "noisy BN" variant."""

    mean: Annotated[float, rule(lambda v: number(v) and v >= 0, "a number >= 0", float)]
    max_scale: Annotated[
        float, rule(lambda v: number(v) and v >= 1, "a number >= 1", float)
    ]


StepSizes = LearningRates  # the same rule: a non-empty list of positive numbers


class Params(Section):
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
    def _consistent(self) -> Params:
        if self.steps % self.probe_every:
            raise CrossKeyError(
                f"`covariate_shift.steps`={self.steps} must be a multiple of "
                f"`covariate_shift.probe_every`={self.probe_every}."
            )
        split_check("covariate_shift", self.validation, self.limit)
        return self
