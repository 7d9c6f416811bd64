"""params.yaml's `non_iid` section."""

from __future__ import annotations

from typing import Annotated

from pydantic import model_validator

from pipeline.core.dataset import TRAINING_IMAGES
from pipeline.core.normalizations import NormalizationNames, Normalizers
from pipeline.core.params import (
    CrossKeyError,
    OptionalPositiveInt,
    PositiveFloat,
    PositiveInt,
    Section,
    integer,
    rule,
    test_images_check,
)


class Params(Section):
    batch_size: PositiveInt
    classes_per_batch: Annotated[
        int,
        rule(lambda v: integer(v) and 2 <= v <= 5, "an integer from 2 to 5"),
    ]
    normalizations: NormalizationNames
    epochs: PositiveInt
    learning_rate: PositiveFloat
    limit: OptionalPositiveInt
    test_images: PositiveInt
    normalizers: Normalizers

    @model_validator(mode="after")
    def _fits_the_data(self) -> Params:
        if self.batch_size % self.classes_per_batch:
            raise CrossKeyError(
                f"`non_iid.batch_size`={self.batch_size} must be a multiple of "
                f"`non_iid.classes_per_batch`={self.classes_per_batch}: each class "
                "fills an equal share of a batch."
            )
        if self.limit is not None and not (
            self.batch_size <= self.limit <= TRAINING_IMAGES
        ):
            raise CrossKeyError(
                f"`non_iid.limit`={self.limit} must be between `non_iid.batch_size` "
                f"({self.batch_size}) and the {TRAINING_IMAGES} training images."
            )
        test_images_check("non_iid", self.test_images, self.batch_size)
        return self
