"""The compiled whole-sequence path (``backend="fused"``) on ALIF and recurrent layers (model ``native``, e-prop's
own recurrent ALIF network; also OSTL and OTTT there): the reference path's outputs, loss, gradients and every
trace (the ALIF partners included), float64 ≤ 1e-10, over several shapes, resets, losses, stretches and chunks."""

import pytest
import torch

from solsa import SNN
from solsa.fast.scan import load_scan
from solsa.learner import Learner
from solsa.rules import NATIVE_MODEL, RULES, sequence_weights, target_at
from test_online_sequence import (_HalfMSE, _assert_float32_close, _assert_same_run, _assert_same_training, _grads,
                                  _stream, _traces)

pytestmark = pytest.mark.skipif(load_scan() is None, reason="no C++ compiler for the scan library")

RULE_NAMES = ("eprop", "ostl", "ottt")
HIDDEN = {"1 layer": [], "2 layers": [7], "3 layers": [7, 6]}
# network options on top of the model; the loss follows the readout ("ce" for leaky, else "mse")
CASES = {
    "native": dict(NATIVE_MODEL),
    "native-leaky": {**NATIVE_MODEL, "readout": "leaky", "readout_lam": 0.6},
    "native-leaky-instant": {**NATIVE_MODEL, "readout": "leaky", "readout_lam": 0.0},
    "alif-only": {"neuron": "alif", "adapt": 0.5, "rho": 0.8},
    "recurrent-only-none-reset": {"recurrent": True, "reset": "none", "surrogate": "atan"},
    "native-filter-channel": {**NATIVE_MODEL, "alpha": 0.6, "beta": 1.3, "filter_granularity": "channel",
                              "surrogate": "fast_sigmoid", "readout": "leaky", "readout_lam": 0.5},
    "native-zero-reset-lam-neuron": {**NATIVE_MODEL, "reset": "zero", "surrogate": "triangle", "width": 0.8,
                                     "lam_granularity": "neuron", "learn_lam": True},
    "native-no-bias": {**NATIVE_MODEL, "bias": False},
}
RULE_OPTIONS = {("eprop", "random"): {"feedback": "random", "seed": 3}}
REFUSED = {("ottt", "native-zero-reset-lam-neuron")}  # OTTT: one λ per layer, no hard reset
RULE_CASES = [(n, c) for n in RULE_NAMES for c in CASES if (n, c) not in REFUSED]
SHAPES = {"T11-B4": (11, 4), "T7-B1": (7, 1), "T23-B3": (23, 3)}


def _net(hidden, options, dtype=torch.float64, inputs=5) -> SNN:
    torch.manual_seed(0)
    options = {"lam": 0.7, "threshold": 0.4, **options}
    return SNN(inputs, hidden, 3, **options).to(dtype)


def _data(T=11, B=4, per_step=False, dtype=torch.float64, inputs=5):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, inputs, generator=gen, dtype=dtype) * 2
    y = torch.randint(0, 3, (T, B) if per_step else (B,), generator=gen)
    mask = torch.ones(T, B, dtype=dtype)
    if B > 1:
        mask[T * 2 // 3:, 1] = 0  # a shorter sample
    return x, y, mask


def _build(name, hidden, case, backend, dtype=torch.float64, **rule_options):
    net = _net(hidden, CASES[case], dtype)
    return net, RULES[name].build(net, "ce" if net.readout == "leaky" else "mse", backend=backend, **rule_options)


def _train(name, hidden, case, backend, shape=(11, 4), per_step=False, points=None, **rule_options):
    net, rule = _build(name, hidden, case, backend, **rule_options)
    x, y, mask = _data(*shape, per_step=per_step)
    run = Learner(rule).sequence(x, y, mask, points=points)  # no optimizer: the flushes add up in .grad
    return rule, run, _grads(net), _traces(rule)


def _compare(name, hidden, case, shape=(11, 4), per_step=False, points=None, **rule_options):
    reference = _train(name, hidden, case, "reference", shape, per_step, points, **rule_options)
    _assert_same_training(_train(name, hidden, case, "fused", shape, per_step, points, **rule_options), reference)
    return reference[2]


@pytest.mark.parametrize("layers", HIDDEN)
@pytest.mark.parametrize("name,case", RULE_CASES)
def test_compiled_equals_reference_native(name, layers, case):
    want = _compare(name, HIDDEN[layers], case, points={3, 10})
    recurrent = [g for key, g in want.items() if key.endswith("rec_weight")]
    assert not recurrent or any(float(g.abs().sum()) > 0 for g in recurrent)  # the recurrent weights learn


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", ["native", "native-leaky", "native-zero-reset-lam-neuron"])
def test_eprop_native_shapes_and_stretches(shape, case):
    """e-prop on its own network: batch sizes, lengths, one stretch or several (update points), per-step targets."""
    T = SHAPES[shape][0]
    for points in (None, {1, T // 2, T - 1}):
        _compare("eprop", [7, 6], case, SHAPES[shape], points=points)
    _compare("eprop", [8], case, SHAPES[shape], per_step=True, points={T // 3})


@pytest.mark.parametrize("case", ["native", "native-leaky"])
def test_eprop_native_random_feedback(case):
    _compare("eprop", [7, 6], case, points={3, 10}, feedback="random", seed=3)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_long_stretches_run_in_chunks_native(name, monkeypatch):
    """A stretch longer than SEQUENCE_CHUNK runs as several calls, the state and traces (b, ε^a) carried over."""
    import solsa.rules.compiled as compiled

    _, ref, want, want_traces = _train(name, [7], "native-leaky", "reference", (23, 3), per_step=True)
    monkeypatch.setattr(compiled, "SEQUENCE_CHUNK", 4)
    _, run, got, got_traces = _train(name, [7], "native-leaky", "fused", (23, 3), per_step=True)
    _assert_same_run((run.outputs, got, got_traces), (ref.outputs, want, want_traces))


@pytest.mark.parametrize("name", RULE_NAMES)
def test_several_sequences_and_streaming_handover_native(name):
    """Two sequences in a row (each from a reset), the second's stretch handed over to the per-step API."""
    x, y, mask = _data()
    weights = sequence_weights(mask)
    results = []
    for backend, split in (("reference", 0), ("fused", 5)):
        net, rule = _build(name, [7, 6], "native-leaky", backend)
        Learner(rule).sequence(x.flip(0), y, mask)
        results.append(_stream(net, rule, x, y, weights, split))
    (ref_out, _, want, want_traces), (out, predicted, got, got_traces) = results
    torch.testing.assert_close(predicted, ref_out[5], atol=1e-10, rtol=0)
    _assert_same_run((out, got, got_traces), (ref_out, want, want_traces))


@pytest.mark.parametrize("name", RULE_NAMES)
def test_float32_close_native(name):
    _assert_float32_close(lambda backend: _build(name, [7], "native", backend, dtype=torch.float32),
                          _data(dtype=torch.float32))


@pytest.mark.parametrize("name", RULE_NAMES)
def test_native_falls_back_on_a_custom_loss(name):
    rule = RULES[name].build(_net([7], CASES["native"]), _HalfMSE())
    rule.reset(2)
    assert rule.active_backend == "reference" and "_HalfMSE" in rule.fallback_reason
    with pytest.raises(RuntimeError, match="backend='fused' is not available: .*_HalfMSE"):
        RULES[name].build(_net([7], CASES["native"]), _HalfMSE(), backend="fused").reset(2)
