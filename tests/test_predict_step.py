"""``predict_step``: the next step's output from the current state, with nothing advanced — what the
stream learner's predictions are made of. Every online rule's equals its following ``step`` output, and
SOLSA's fused kernel gives the very bits of its next step."""

import itertools

import pytest
import torch

from solsa import SNN
from solsa.fast import fused_available, fused_unavailable_reason
from solsa.functional import RESET_MODES
from solsa.layers import FILTER_GRANULARITIES, READOUTS
from solsa.rules import RULES, SOLSA
from solsa.stream import trace_tensors


def net_of(reset, readout, gran):
    torch.manual_seed(0)
    return SNN(5, [7, 6], 3, readout=readout, reset=reset, filter_granularity=gran, alpha=0.5, learn_lam=True,
               weight_scale=2.0).double()


def state_of(rule):
    return [t for tr in rule.traces for t in trace_tensors(tr).values()] + [
        g.clone() for acc in rule._grads for g in acc.values()]


def check(rule, steps=10):
    rule.reset(2)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(2, 5, generator=gen, dtype=torch.float64)
        before = state_of(rule)
        predicted = rule.predict_step(x)
        assert all(torch.equal(a, b) for a, b in zip(before, state_of(rule)))  # nothing moved
        out = rule.step(x, torch.tensor([0, 2])).output
        yield predicted, out


@pytest.mark.parametrize("name", [n for n, spec in RULES.items() if spec.cls.capabilities.online])
def test_every_online_rule_predicts_its_next_step(name):
    net = net_of("subtract", "leaky", "layer")
    rule = RULES[name].build(net, "ce", backend="reference" if name.startswith("solsa") else "auto")
    for predicted, out in check(rule):
        assert torch.allclose(predicted, out, rtol=0, atol=1e-12)


@pytest.mark.skipif(not fused_available(), reason=f"fused kernel unavailable: {fused_unavailable_reason()}")
@pytest.mark.parametrize("reset, readout, gran", list(itertools.product(RESET_MODES, READOUTS, FILTER_GRANULARITIES)))
def test_fused_predict_step_is_the_next_steps_bits_and_the_references_value(reset, readout, gran):
    loss = "ce" if readout == "leaky" else "mse"
    net = net_of(reset, readout, gran)
    fused, ref = SOLSA(net, loss, backend="fused"), SOLSA(net, loss, backend="reference")
    for (pf, of), (pr, _) in zip(check(fused), check(ref)):
        assert torch.equal(pf, of)
        assert torch.allclose(pf, pr, rtol=0, atol=1e-10)


def test_predict_step_needs_a_reset():
    with pytest.raises(RuntimeError, match="call reset"):
        SOLSA(SNN(2, [], 2), backend="reference").predict_step(torch.zeros(1, 2))
