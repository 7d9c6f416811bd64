"""Bad arguments and inputs raise a ValueError that names the value."""

import numpy as np
import pytest

import bnk


@pytest.mark.parametrize("momentum", [1.0, -0.1, 1.5, "0.9"])
def test_bad_momentum(momentum):
    with pytest.raises(ValueError, match=f"momentum={momentum!r}"):
        bnk.BatchNorm(momentum=momentum)


@pytest.mark.parametrize("epsilon", [0.0, -1e-3])
def test_bad_epsilon(epsilon):
    with pytest.raises(ValueError, match=f"epsilon={epsilon!r}"):
        bnk.BatchNorm(epsilon=epsilon)


def test_axis_out_of_range():
    with pytest.raises(
        ValueError, match="`axis`=3 is out of range for inputs of rank 2"
    ):
        bnk.BatchNorm(axis=3)(np.ones((4, 3), "float32"))


def test_channel_size_differs_from_build():
    layer = bnk.BatchNorm()
    layer(np.ones((4, 3), "float32"))
    with pytest.raises(
        ValueError, match="Input size 5 along axis -1 differs from the 3"
    ):
        layer(np.ones((4, 5), "float32"))


def test_mask_of_wrong_rank():
    layer = bnk.BatchNorm()
    x = np.ones((4, 6, 3), "float32")
    with pytest.raises(
        ValueError, match=r"mask must have rank 2.*mask shape \(4, 6, 3\)"
    ):
        layer(x, training=True, mask=np.ones((4, 6, 3), bool))


def test_axis_that_is_not_an_integer():
    with pytest.raises(TypeError, match="axis=1.5"):
        bnk.BatchNorm(axis=1.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"renorm_clipping": {"rmax": 2.0, "r_max": 3.0}},
         r"invalid keys for `renorm_clipping`: \['r_max'\]"),
        ({"renorm_clipping": {"rmax": 0.5, "rmin": 2.0}}, "rmax=0.5, rmin=2.0"),
        ({"renorm_clipping": {"dmax": -1.0}}, "dmax=-1.0"),
        ({"renorm_clipping": {"dmax": "5"}}, r"renorm_clipping\['dmax'\].*'5'"),
        ({"renorm_clipping": [2.0, 0.5, 5.0]}, r"renorm_clipping=\[2.0, 0.5, 5.0\]"),
        ({"renorm_momentum": 1.0}, "renorm_momentum=1.0"),
        ({"unbiased_moving_variance": True},
         "`renorm=True` and `unbiased_moving_variance=True` cannot be combined"),
    ],
)
def test_bad_renorm_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bnk.BatchNorm(renorm=True, **kwargs)


def test_renorm_clipping_without_renorm():
    with pytest.raises(ValueError, match=r"renorm_clipping=\{'rmax': 2.0\}"):
        bnk.BatchNorm(renorm_clipping={"rmax": 2.0})
