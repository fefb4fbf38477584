"""The river-style facade: learn_one / predict_one over single time steps."""

import pytest
import torch

from solsa import SNN
from solsa.stream import StreamClassifier


def cue(label, T=12, gen=None):
    x = (torch.rand(T, 6, generator=gen) < 0.1).float()
    x[: T // 2, 3 * label : 3 * label + 3] = (torch.rand(T // 2, 3, generator=gen) < 0.7).float()
    return x


def test_learns_a_stream_and_predicts():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    clf = StreamClassifier(SNN(6, [16], 2, readout="leaky"), lr=0.01, update_every=6)
    bytes_at_start = clf.rule.train_state_bytes()
    for i in range(60):
        label = i % 2
        for x_t in cue(label, gen=gen):
            clf.learn_one(x_t, label)
        clf.end_sequence()
    assert clf.rule.train_state_bytes() == bytes_at_start
    correct = 0
    for i in range(40):
        label = i % 2
        for x_t in cue(label, gen=gen):
            pred = clf.predict_one(x_t)
        clf.end_sequence()
        correct += pred == label
    assert correct / 40 >= 0.85


def test_bad_input():
    clf = StreamClassifier(SNN(6, [4], 2))
    with pytest.raises(ValueError, match=r"y must be a class in \[0, 2\)"):
        clf.learn_one(torch.zeros(6), 5)
    with pytest.raises(ValueError, match="x must have 6 features"):
        clf.learn_one(torch.zeros(7), 0)
    with pytest.raises(ValueError, match="x contains NaN"):
        clf.predict_one(torch.full((6,), float("nan")))
    with pytest.raises(ValueError, match="needs an online rule"):
        StreamClassifier(SNN(6, [4], 2), rule="bptt")
    with pytest.raises(ValueError, match="update_every must be a positive integer"):
        StreamClassifier(SNN(6, [4], 2), update_every=0)
