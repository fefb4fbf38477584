"""The fused kernel on ALIF and recurrent layers (fast/alif.h) gives the reference path's outputs, states, traces
(the ALIF partners included) and gradients (W, W_rec, b, α, β, λ) in float64 to 1e-10: per step and in one
call, every credit mode, filter granularity and reset, batch > 1; and the combinations it refuses fall back
with a reason that names them."""

import itertools

import pytest
import torch

from solsa import SNN
from solsa.fast import fused_available, fused_unavailable_reason
from solsa.rules import SOLSA
from test_fast_path import assert_same, compare, run
from test_fused_sequence import _assert_close, _data, _train

D = torch.float64
pytestmark = pytest.mark.skipif(not fused_available(), reason=f"fused kernel unavailable ({fused_unavailable_reason()})")
KINDS = {"alif": {"neuron": "alif"}, "recurrent": {"recurrent": True},
         "recurrent-alif": {"neuron": "alif", "recurrent": True}}


def make_net(kind, n_in=6, hidden=(7, 5), readout="spike", reset="subtract", gran="first", dtype=D, seed=0, **extra):
    torch.manual_seed(seed)
    options = dict(readout=readout, readout_lam=0.3, alpha=0.5, beta=1.2, lam=0.6, reset=reset, filter_granularity=gran,
                   lam_granularity="neuron", learn_lam=True, weight_scale=2.5, threshold=0.7, adapt=0.3, rho=0.9)
    return SNN(n_in, list(hidden), 4, dtype=dtype, **{**options, **KINDS[kind], **extra})


def data(T=30, B=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, 6, generator=g, dtype=D) * 1.5, torch.randint(0, 4, (B,), generator=g)


@pytest.mark.parametrize("kind,reset,gran", itertools.product(KINDS, ["subtract", "zero", "none"],
                                                              ["first", "layer", "channel"]))
def test_fused_equals_reference_per_step(kind, reset, gran):
    """Two hidden layers and a spiking readout, cascade credit, a flush midway, the magnitude tracked."""
    net = make_net(kind, reset=reset, gran=gran)
    with torch.no_grad():
        rate = (net(data()[0]) > 0).double().mean().item()
    assert 0.02 < rate < 0.98  # the neurons actually spike
    compare(net, *data(), flush_at=(11,), track=True)


@pytest.mark.parametrize("kind,credit", itertools.product(KINDS, ["cascade", "next", "same-step"]))
def test_every_credit_mode_under_a_leaky_readout(kind, credit):
    """Cross-entropy on a leaky readout over ALIF / recurrent hidden layers; the gradients include W_rec."""
    net = make_net(kind, hidden=(8, 6), readout="leaky")
    start = {k: v.clone() for k, v in net.state_dict().items()}
    ref = run("reference", net, *data(), "ce", flush_at=(7,), credit=credit)
    assert (kind == "alif") != any("rec_weight" in k for k in ref[2])
    net.load_state_dict(start)
    fused = run("fused", net, *data(), "ce", flush_at=(7,), credit=credit)
    assert_same(ref, fused)


@pytest.mark.parametrize("kind", KINDS)
def test_one_layer_and_updates_mid_sequence(kind):
    """A single ALIF / recurrent layer (no credit); optimizer steps between time steps change W and W_rec."""
    net = make_net(kind, hidden=(), gran="channel")
    compare(net, *data(T=25), opt_at=(5, 12, 20))


@pytest.mark.parametrize("kind", KINDS)
def test_whole_sequence_call_equals_per_step_and_reference(kind):
    """The learner's one-call path (solsa_sequence) over padded batches, and two batches with SGD between."""
    net = make_net(kind, n_in=5, hidden=(7, 6))
    x, y, mask = _data()
    whole = _train(net, "fused", "cascade", x, y, mask, per_step=False)
    assert whole[2].active_backend == "fused"
    per_step = _train(net, "fused", "cascade", x, y, mask, per_step=True)
    assert all(torch.equal(whole[1][k], per_step[1][k]) for k in whole[1])
    _assert_close(whole, _train(net, "reference", "cascade", x, y, mask, per_step=True))
    assert any((whole[1][k] - v).abs().max() > 1e-3 for k, v in net.named_parameters())  # it learned


@pytest.mark.parametrize("kind", KINDS)
def test_native_model_is_fused_and_predict_step_gives_the_next_output(kind):
    net = make_net(kind, readout="leaky", alpha=0.0, learn_alpha=False, learn_beta=False)
    rule = SOLSA(net, "ce")
    x, y = data(T=12)
    rule.reset(3)
    assert rule.active_backend == "fused", rule.fallback_reason
    for t in range(x.shape[0]):
        guess = rule.predict_step(x[t])
        assert torch.equal(guess, rule.step(x[t], y).output)


def test_float32_close_to_the_reference():
    net = make_net("recurrent-alif", dtype=torch.float32)
    x, y = data(T=20)
    ref = run("reference", net, x.float(), y, "mse")
    fused = run("fused", net, x.float(), y, "mse")
    for k in ref[2]:
        assert ((ref[2][k] - fused[2][k]).abs().max() / ref[2][k].abs().max().clamp(min=1e-6)).item() < 1e-3, k


def test_restart_zeroes_the_adaptation():
    """A second sequence on the same stepper (restart) starts from zero adaptation, partners and W_rec traces."""
    net = make_net("recurrent-alif")
    x, y = data(T=15)
    for backend in ("reference", "fused"):
        rule = SOLSA(net, "mse", backend=backend)
        outs = []
        for _ in range(2):
            rule.reset(3)
            outs.append(torch.stack([rule.step(x_t, y).output for x_t in x]))
        rule.flush()
        assert torch.equal(outs[0], outs[1])
        net.zero_grad(set_to_none=True)


def test_narrow_traces_with_alif_fall_back_by_name():
    net = make_net("alif")
    rule = SOLSA(net, "mse", trace_dtype="float16")
    rule.reset(2)
    assert rule.active_backend == "reference"
    assert "trace_dtype 'float16'" in rule.fallback_reason and "alif" in rule.fallback_reason
    with pytest.raises(RuntimeError, match="not available"):
        SOLSA(net, "mse", backend="fused", trace_dtype="float16").reset(2)


def test_narrow_traces_on_a_recurrent_lif_layer():
    """Recurrent LIF stores its [F, o[t-1]] traces in bfloat16 as the reference does."""
    net = make_net("recurrent")
    start = {k: v.clone() for k, v in net.state_dict().items()}
    ref = run("reference", net, *data(), "mse", trace_dtype="bfloat16")
    net.load_state_dict(start)
    fused = run("fused", net, *data(), "mse", trace_dtype="bfloat16")
    for k in ref[2]:
        assert ((ref[2][k] - fused[2][k]).abs().max() / ref[2][k].abs().max().clamp(min=1e-12)).item() <= 1e-5, k
