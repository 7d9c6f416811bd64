"""params.yaml's `batch_sizes` section."""

from __future__ import annotations

from pydantic import model_validator

from pipeline.core.dataset import TRAINING_IMAGES
from pipeline.core.normalizations import NormalizationNames, Normalizers
from pipeline.core.params import (
    BatchSizeList,
    CrossKeyError,
    OptionalPositiveInt,
    PositiveFloat,
    PositiveInt,
    Section,
    test_images_check,
)


class Params(Section):
    batch_sizes: BatchSizeList
    normalizations: NormalizationNames
    epochs: PositiveInt
    learning_rate: PositiveFloat
    reference_batch_size: PositiveInt
    limit: OptionalPositiveInt
    test_images: PositiveInt
    statistics_batches: PositiveInt
    normalizers: Normalizers

    @model_validator(mode="after")
    def _fits_the_data(self) -> Params:
        largest = max(self.batch_sizes)
        if self.limit is not None and not largest <= self.limit <= TRAINING_IMAGES:
            raise CrossKeyError(
                f"`batch_sizes.limit`={self.limit} must be between the largest batch "
                f"size ({largest}) and the {TRAINING_IMAGES} training images."
            )
        test_images_check("batch_sizes", self.test_images, largest)
        return self
