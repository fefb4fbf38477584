"""Inspection plots: the recorded activity is the network's, and every plot renders."""

import pytest
import torch

from solsa import SNN
from solsa.plots import LayerRecord, pick_neurons, plot_activity, record_activity

pytest.importorskip("matplotlib")


def _net() -> SNN:
    torch.manual_seed(0)
    return SNN(4, [6], 3, readout="leaky", filter_granularity="channel", alpha=0.5, weight_scale=3.0)


def test_record_activity_is_what_the_network_computes():
    net = _net()
    x = (torch.rand(15, 4) < 0.5).float()
    records = record_activity(net, x)
    assert [r.V.shape for r in records] == [(15, 6), (15, 3)] and records[0].F.shape == (15, 4)
    torch.testing.assert_close(records[-1].o, net(x.unsqueeze(1))[:, 0].detach())
    assert records[0].o.sum() > 0  # the hidden layer spikes, so the raster has something to draw


def test_pick_neurons_prefers_neither_silent_nor_saturated():
    o = torch.zeros(4, 4)
    o[:, 2] = 1  # saturated
    o[:2, 0] = 1  # half the steps
    o[:1, 3] = 1  # a quarter
    rec = LayerRecord(F=torch.zeros(4, 1), V=torch.zeros(4, 4), o=o)
    assert pick_neurons(rec, k=3) == [0, 3, 2]  # neuron 1 never fires


def test_plot_activity_writes_a_png(tmp_path):
    net = _net()
    plot_activity(tmp_path / "activity.png", net, torch.rand(20, 4), layer=0, neurons=[0, 1])
    assert (tmp_path / "activity.png").read_bytes()[:4] == b"\x89PNG"
