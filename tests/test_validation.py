"""Bad input raises errors that name the argument and the expected value."""

import pytest
import torch

from solsa import SNN, LIFLayer
from solsa.rules import SOLSA


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"alpha": 1.0}, r"alpha must be in \[0.0, 0.999\]"),
        ({"alpha": -0.1}, "alpha must be in"),
        ({"lam": 1.5}, r"lam must be in \[0.0, 0.999\]"),
        ({"lam": float("nan")}, "lam must be a finite number"),
        ({"beta": 0.0}, "beta must be in"),
        ({"threshold": 0.0}, r"threshold must be in \(0.0, inf\)"),
        ({"threshold": -1.0}, "threshold must be in"),
        ({"reset": "soft"}, r"reset must be one of \['subtract', 'zero', 'none'\]"),
        ({"surrogate": "relu"}, "surrogate must be one of"),
        ({"width": -1.0}, "surrogate width must be a positive"),
        ({"filter_granularity": "neuron"}, "filter_granularity must be one of"),
    ],
)
def test_layer_options_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LIFLayer(4, 3, **kwargs)


def test_sizes_are_validated():
    with pytest.raises(ValueError, match="in_features must be a positive integer"):
        LIFLayer(0, 3)
    with pytest.raises(ValueError, match="hidden layer size must be a positive integer"):
        SNN(4, [10, -2], 3)
    with pytest.raises(ValueError, match="readout must be one of"):
        SNN(4, [10], 3, readout="softmax")


@pytest.mark.parametrize(
    "x,err,match",
    [
        (torch.zeros(5, 4), ValueError, r"x must have rank 3 \[T, B, N\], got shape \(5, 4\)"),
        (torch.zeros(5, 2, 7), ValueError, "x must have 4 features in its last dimension, got shape"),
        (torch.zeros(5, 2, 4, dtype=torch.int64), TypeError, "x must have a floating dtype"),
        (torch.full((5, 2, 4), float("nan")), ValueError, "x contains NaN or inf"),
        (torch.full((5, 2, 4), float("inf")), ValueError, "x contains NaN or inf"),
    ],
)
def test_bad_input_to_network_and_rule(x, err, match):
    net = SNN(4, [6], 3)
    with pytest.raises(err, match=match):
        net(x)
    with pytest.raises(err, match=match):
        SOLSA(net, "mse").sequence(x, torch.zeros(x.shape[1] if x.dim() > 1 else 1, dtype=torch.long))


def test_unknown_loss_and_non_network():
    with pytest.raises(ValueError, match="loss must be one of"):
        SOLSA(SNN(4, [], 2), "hinge")
    with pytest.raises(TypeError, match="net must be a solsa.SNN"):
        SOLSA(torch.nn.Linear(2, 2), "mse")


def test_readout_alpha_sets_only_the_output_layer():
    net = SNN(4, [3], 2, alpha=0.5, readout="leaky", readout_alpha=0.0)
    assert net.layers[0].alpha.item() == 0.5 and net.layers[-1].alpha.item() == 0.0
    assert not net.layers[-1].spiking
    with pytest.raises(ValueError, match="alpha must be in"):
        SNN(4, [3], 2, readout_alpha=1.5)


def test_inputs_are_checked_value_by_value_after_the_cast_to_the_network():
    """1e300 is finite in float64 but inf in a float32 network (it passed the check made before the cast and
    turned layer 0 into NaN); 3e38 fits float32 and is taken."""
    net = SNN(3, [4], 2, readout="leaky")
    rule = SOLSA(net, "ce")
    y = torch.tensor([0, 1])
    for call in (lambda x: net(x), lambda x: rule.sequence(x, y)):
        with pytest.raises(ValueError, match=r"x holds values beyond the range of torch.float32 \(\|x\| up to 1e\+300"):
            call(torch.full((5, 2, 3), 1e300, dtype=torch.float64))
        call(torch.full((5, 2, 3), 3e38))
        with pytest.raises(ValueError, match="x contains NaN or inf values"):
            call(torch.full((5, 2, 3), float("nan"), dtype=torch.float64))
