"""Keras's own BatchNormalization tests, run against bnk.BatchNorm.

The test file ships inside the keras wheel
(keras/src/layers/normalization/batch_normalization_test.py) and is imported from
the installed keras when the suite runs, so a Keras upgrade re-runs its tests as
they are then. Every `layers.BatchNormalization` in it becomes
`KerasDefaultBatchNorm`: bnk.BatchNorm whose only change is Keras's default
momentum, 0.99. A test that checks behaviour bnk differs from on purpose is listed
in DIFFERENCES with the reason (docs/batch_norm.md's table of differences has them
all), and expected to fail: if Keras's test or bnk changes so that it passes, the
suite says so.
"""

import keras
import pytest
from keras.src import layers as keras_layers
from keras.src.layers.normalization import batch_normalization_test as keras_tests

import bnk


@keras.saving.register_keras_serializable(package="bnk_tests")
class KerasDefaultBatchNorm(bnk.BatchNorm):
    """bnk.BatchNorm with Keras's default momentum, 0.99 (bnk's is 0.9)."""

    def __init__(self, momentum=0.99, **kwargs):
        super().__init__(momentum=momentum, **kwargs)


class _LayersWithBnk:
    """`keras.src.layers` as the test file sees it, but for BatchNormalization."""

    BatchNormalization = KerasDefaultBatchNorm

    def __getattr__(self, name):
        return getattr(keras_layers, name)


@pytest.fixture(autouse=True)
def _bnk_in_keras_tests(monkeypatch):
    monkeypatch.setattr(keras_tests, "layers", _LayersWithBnk())


# Keras's test name (as its parameterized product names them) -> why bnk differs.
ALL_MASKED_CHANNEL = (
    "axis=1, and the test masks every entry of channel 1 (x[:, 1, :] is the masked "
    "row). Keras normalizes such a channel with mean 0 and variance 0 (and pulls its "
    "moving statistics towards them); bnk normalizes it with its moving statistics "
    "and leaves them as they are, so the output equals the inference output that "
    "the test asserts it differs from"
)
DIFFERENCES = {
    # test_correctness's product: axis (-1, 1) x 2 shapes x 2 x 2 initializers;
    # 8 to 15 are the axis=1 ones.
    f"test_correctness{index}": ALL_MASKED_CHANNEL
    for index in range(8, 16)
}


class TestKerasBatchNormalizationFile(keras_tests.BatchNormalizationTest):
    """Every test of Keras's BatchNormalizationTest, inherited as it is."""


for _name, _reason in DIFFERENCES.items():
    setattr(
        TestKerasBatchNormalizationFile,
        _name,
        pytest.mark.xfail(reason=_reason, raises=AssertionError, strict=True)(
            getattr(keras_tests.BatchNormalizationTest, _name)
        ),
    )


def test_the_file_tests_bnk():
    """The substitution reaches the tests: Keras's name there is bnk's layer."""
    assert keras_tests.layers.BatchNormalization is KerasDefaultBatchNorm
    layer = keras_tests.layers.BatchNormalization()
    assert isinstance(layer, bnk.BatchNorm) and layer.momentum == 0.99
