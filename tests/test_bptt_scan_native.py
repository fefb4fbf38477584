"""BPTT's compiled scan on recurrent and ALIF layers (``solsa.fast.recurrent_scan``, backend "fused"; model
``native``, e-prop's own recurrent ALIF network) gives the gradients of autograd through the PyTorch
whole-sequence path (backend "reference"), in float64 ≤ 1e-10, over shapes, resets, surrogates, losses, readouts,
truncation points and the layer's starting and last state; and falls back to that path when it cannot run."""

import pytest
import torch

from solsa import SNN
from solsa.fast.recurrent_scan import recurrent_sequence_scan
from solsa.fast.scan import load_scan, scan_unsupported_reason
from solsa.functional import LIFState, lif_sequence
from solsa.learner import Learner
from solsa.rules import NATIVE_MODEL, RULES
from test_online_sequence_native import CASES as NATIVE_CASES

pytestmark = pytest.mark.skipif(load_scan() is None, reason="no C++ compiler for the scan library")

HIDDEN = {"1 layer": [], "2 layers": [7], "3 layers": [7, 6]}
# network options on top of {lam 0.7, threshold 0.4}; the loss follows the readout ("ce" for leaky, else "mse"):
# the online rules' native cases, and three more
CASES = {
    **NATIVE_CASES,
    "alif-only-zero-atan": {"neuron": "alif", "adapt": 0.3, "rho": 0.6, "reset": "zero", "surrogate": "atan",
                            "readout": "leaky", "readout_lam": 0.5},
    "recurrent-only": {"recurrent": True, "alpha": 0.6, "beta": 1.3, "learn_lam": True},
    "native-none-reset-learned-lam": {**NATIVE_MODEL, "reset": "none", "learn_lam": True, "adapt": 0.9, "rho": 0.9},
}
SHAPES = {"T1-B1": (1, 1), "T7-B1": (7, 1), "T11-B4": (11, 4), "T23-B3": (23, 3)}


def _net(hidden, options, dtype=torch.float64) -> SNN:
    torch.manual_seed(0)
    return SNN(5, hidden, 3, **{"lam": 0.7, "threshold": 0.4, **options}).to(dtype)


def _data(T=11, B=4, per_step=False, dtype=torch.float64):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, 5, generator=gen, dtype=dtype) * 2
    y = torch.randint(0, 3, (T, B) if per_step else (B,), generator=gen)
    mask = torch.ones(T, B, dtype=dtype)
    if B > 1 and T > 2:
        mask[T * 2 // 3:, 1] = 0  # a shorter sample, as the trainer pads a batch to its longest
    return x, y, mask


def _train(backend, hidden, case, shape=(11, 4), per_step=False, points=None, dtype=torch.float64):
    net = _net(hidden, CASES[case], dtype)
    rule = RULES["bptt"].build(net, "ce" if net.readout == "leaky" else "mse", backend=backend)
    x, y, mask = _data(*shape, per_step=per_step, dtype=dtype)
    run = Learner(rule).sequence(x, y, mask, points=points)  # no optimizer: the flushes add up in .grad
    return rule, run, {name: p.grad.clone() for name, p in net.named_parameters()}


def _compare(hidden, case, shape=(11, 4), per_step=False, points=None):
    """Compiled against reference: outputs ≤ 1e-12, loss and every gradient ≤ 1e-10; returns the gradients."""
    _, ref_run, want = _train("reference", hidden, case, shape, per_step, points)
    rule, run, got = _train("auto", hidden, case, shape, per_step, points)
    assert rule.active_backend == "fused" and rule.fallback_reason == ""
    torch.testing.assert_close(run.outputs, ref_run.outputs, atol=1e-12, rtol=0)
    assert abs(float(run.loss) - float(ref_run.loss)) <= 1e-10
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-10, rtol=0, msg=name)
    assert rule.train_state_bytes() > 0
    return want


@pytest.mark.parametrize("per_step", [False, True], ids=["label", "per-step"])
@pytest.mark.parametrize("layers", HIDDEN)
@pytest.mark.parametrize("case", CASES)
def test_compiled_equals_reference(case, layers, per_step):
    want = _compare(HIDDEN[layers], case, per_step=per_step)
    recurrent = [g for key, g in want.items() if key.endswith("rec_weight")]
    assert not recurrent or any(float(g.abs().sum()) > 0 for g in recurrent)  # the recurrent weights learn
    if HIDDEN[layers]:  # the first hidden layer's weights get a gradient through the layers above it
        assert float(want["layers.0.weight"].abs().sum()) > 0


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", ["native", "native-leaky", "alif-only-zero-atan"])
def test_shapes_and_truncation_points(case, shape):
    """Batch 1 and several, T from 1 to 23; updates at mid-sequence points (truncated BPTT: the state, b included,
    is carried detached into the next stretch)."""
    T, B = SHAPES[shape]
    _compare([7], case, (T, B), points={T // 3, T - 1})


def _layer(options):
    torch.manual_seed(3)
    layer = _net([7], {**NATIVE_MODEL, "alpha": 0.5, "beta": 1.2, "filter_granularity": "channel",
                       "lam_granularity": "neuron", "learn_lam": True, "learn_alpha": True, "learn_beta": True,
                       **options}).layers[0]
    return layer


@pytest.mark.parametrize("options", [{}, {"reset": "zero", "surrogate": "atan"}, {"reset": "none"},
                                     {"neuron": "lif"}, {"recurrent": False}],
                         ids=["native", "zero", "none", "recurrent-lif", "alif-feedforward"])
def test_layer_gradients_through_the_state(options):
    """Every input of one layer — x, the starting state (F, V, o, b), every parameter — with outside gradients
    on its outputs and on its last state (F, V, b), against autograd through the PyTorch path."""
    layer = _layer(options)
    p, cfg = layer.params(), layer.config
    adaptive = cfg.neuron == "alif"
    gen = torch.Generator().manual_seed(4)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    x = (rand(9, 3, 5) * 2).requires_grad_()
    start = LIFState(rand(3, 5).requires_grad_(), rand(3, 7).requires_grad_(),
                     (torch.rand(3, 7, generator=gen, dtype=torch.float64) > 0.5).double().requires_grad_(),
                     rand(3, 7).abs().requires_grad_() if adaptive else None)
    wo, wV, wF, wb = rand(9, 3, 7), rand(3, 7), rand(3, 5), rand(3, 7)
    inputs = [x, *(s for s in start if s is not None), *(t for t in p if t is not None)]
    assert all(t.requires_grad for t in inputs)  # α, β, λ learned: their adjoints are checked too
    results = []
    for fn in (lif_sequence, recurrent_sequence_scan):
        out, last = fn(x, start, p, cfg)
        total = (out * wo).sum() + (last.V * wV).sum() + (last.F * wF).sum()
        if adaptive:
            total = total + (last.b * wb).sum()
        results.append((out, last, torch.autograd.grad(total, inputs, allow_unused=True, materialize_grads=True)))
    (want_out, want_last, want), (got_out, got_last, got) = results
    torch.testing.assert_close(got_out, want_out, atol=1e-12, rtol=0)
    for g, w in zip(got_last, want_last):
        assert (g is None) == (w is None)
        if w is not None:
            torch.testing.assert_close(g, w, atol=1e-12, rtol=0)
    for i, (g, w) in enumerate(zip(got, want)):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=0, msg=f"input {i}")
    assert float(want_out.detach().sum()) > 0 and float(want[0].abs().sum()) > 0  # it spiked; x had a gradient


def test_float32_runs_close_to_reference():
    grads = [_train(backend, [7], "native-leaky", dtype=torch.float32)[2] for backend in ("reference", "fused")]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-5, rtol=1e-4, msg=name)


def test_each_layer_runs_on_its_scan():
    """ALIF / recurrent hidden layers on the recurrent scan, a leaky readout on the feedforward one; a spiking
    readout of model native is itself recurrent ALIF."""
    from solsa.fast.scan import lif_sequence_scan

    for case, hidden, want in (("native-leaky", [7], [recurrent_sequence_scan, lif_sequence_scan]),
                               ("alif-only-zero-atan", [7, 6], [recurrent_sequence_scan] * 2 + [lif_sequence_scan]),
                               ("native", [7], [recurrent_sequence_scan] * 2)):
        rule, _, _ = _train("auto", hidden, case)
        assert rule._layer_runs == want, case


def test_disabled_scan_falls_back_and_fused_raises(monkeypatch):
    monkeypatch.setenv("SOLSA_DISABLE_SCAN", "1")
    net = _net([7], CASES["native"])
    assert "SOLSA_DISABLE_SCAN" in scan_unsupported_reason(net.layers[0].params(), net.layers[0].config, True)
    _, _, want = _train("reference", [7], "native")
    rule, _, got = _train("auto", [7], "native")
    assert rule.active_backend == "reference" and "SOLSA_DISABLE_SCAN" in rule.fallback_reason
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=0, rtol=0)
    with pytest.raises(RuntimeError, match="backend='fused' is not available"):
        _train("fused", [7], "native")
