"""filter_granularity "first": one α, β per input channel in the first layer, one per layer above (the default)."""

import pytest
import torch

from solsa import SNN
from solsa.config import TrainConfig
from solsa.gradcheck import gradcheck
from solsa.layers import FILTER_GRANULARITIES
from solsa.rules import SOLSA
from solsa.validation import OptionError


def test_first_is_per_channel_below_and_per_layer_above():
    net = SNN(6, [9, 7], 4, readout="leaky", filter_granularity="first")
    assert [layer.alpha.shape for layer in net.layers] == [torch.Size([6]), torch.Size([]), torch.Size([])]
    assert [layer.filter_per_channel for layer in net.layers] == [True, False, False]
    alone = SNN(6, [], 4, filter_granularity="first")  # the readout is the first layer
    assert alone.layers[0].beta.shape == torch.Size([6])
    assert FILTER_GRANULARITIES[0] == "layer" and FILTER_GRANULARITIES[-1] == "channel"  # fewest α, β first


def test_first_is_validated_by_name():
    with pytest.raises(ValueError, match="filter_granularity"):
        SNN(6, [9], 4, filter_granularity="last")
    with pytest.raises(OptionError, match="filter_granularity"):
        TrainConfig(filter_granularity="last")
    assert TrainConfig().filter_granularity == "first"


def test_first_holds_less_than_channel_and_more_than_layer():
    sizes = {}
    for gran in ("layer", "first", "channel"):
        torch.manual_seed(0)
        rule = SOLSA(SNN(6, [9, 7], 4, readout="leaky", filter_granularity=gran), "ce")
        rule.reset(3)
        sizes[gran] = rule.train_state_bytes()
    assert sizes["layer"] < sizes["first"] < sizes["channel"]


def test_first_gradient_is_exact():
    """The cascade on a leaky readout with one λ: exact against BPTT (float64), as per layer and per channel."""
    report = gradcheck(layers=2, T=30, readout="leaky", lam_granularity="layer", filter_granularity="first")
    assert report["filter_granularity"] == "first"
    assert max(report["max_rel_error"].values()) < 1e-8
