"""BPTT's compiled scan (``solsa.fast.scan``, backend "fused") gives the gradients of autograd through the
PyTorch whole-sequence path (backend "reference"), in float64, for every reset mode, surrogate, filter and λ
granularity, readout and padding mask; and falls back to that path when it cannot run (recurrent and ALIF
layers: tests/test_bptt_scan_native.py)."""

import pytest
import torch

import solsa.fast.build as build
import solsa.fast.scan as scan
from solsa import SNN
from solsa.fast.scan import lif_sequence_scan, load_scan, scan_unsupported_reason
from solsa.functional import LIFState, lif_sequence
from solsa.learner import Learner
from solsa.rules import RULES

pytestmark = pytest.mark.skipif(load_scan() is None, reason="no C++ compiler for the scan library")

CASES = {
    "subtract-gaussian": {},
    "zero-atan": {"reset": "zero", "surrogate": "atan"},
    "none-triangle": {"reset": "none", "surrogate": "triangle"},
    "subtract-fast_sigmoid": {"surrogate": "fast_sigmoid"},
    "channel-neuron-lam": {"filter_granularity": "channel", "lam_granularity": "neuron"},
    "zero-channel": {"reset": "zero", "filter_granularity": "channel", "lam_granularity": "neuron"},
    "leaky": {"readout": "leaky", "readout_lam": 0.6, "filter_granularity": "channel"},
    "leaky-zero-lam": {"readout": "leaky", "readout_lam": 0.0, "reset": "zero"},
    "no-bias-fixed-filter": {"bias": False, "learn_alpha": False, "learn_beta": False},
}


def _net(options: dict, seed: int = 0) -> SNN:
    torch.manual_seed(seed)
    return SNN(5, [7, 6], 3, alpha=0.6, beta=1.3, lam=0.7, threshold=0.4, learn_lam=True, **options).double()


def _run(backend: str, options: dict, x, y, mask):
    net = _net(options)
    rule = RULES["bptt"].build(net, "ce" if net.readout == "leaky" else "mse", backend=backend)
    run = Learner(rule).sequence(x, y, mask)
    grads = {name: p.grad.clone() for name, p in net.named_parameters()}
    return rule, run, grads


def _data(T=11, B=4, per_step=False, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, 5, generator=gen, dtype=torch.float64) * 2
    y = torch.randint(0, 3, (T, B) if per_step else (B,), generator=gen)
    mask = torch.ones(T, B, dtype=torch.float64)
    if T > 7 and B > 3:
        mask[7:, 1] = 0  # padded samples, as the trainer cuts a batch to its longest
        mask[4:, 3] = 0
    return x, y, mask


@pytest.mark.parametrize("per_step", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_scan_gradients_equal_reference(case, per_step):
    x, y, mask = _data(per_step=per_step)
    _, ref_run, want = _run("reference", CASES[case], x, y, mask)
    rule, run, got = _run("auto", CASES[case], x, y, mask)
    assert rule.active_backend == "fused" and rule.fallback_reason == ""
    torch.testing.assert_close(run.outputs, ref_run.outputs, atol=1e-12, rtol=0)
    assert abs(float(run.loss) - float(ref_run.loss)) <= 1e-10
    assert set(got) == set(want) and "layers.0.lam" in got
    assert all(float(g.abs().sum()) > 0 for name, g in want.items() if name.startswith("layers.0."))
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-10, rtol=0, msg=name)
    assert rule.train_state_bytes() > 0


@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (6, 1)], ids=["T1-B1", "T1", "B1"])
def test_one_step_and_one_sample(shape):
    T, B = shape
    x, y, _ = _data(T=T, B=B)
    mask = torch.ones(T, B, dtype=torch.float64)
    _, _, want = _run("reference", CASES["leaky"], x, y, mask)
    _, _, got = _run("auto", CASES["leaky"], x, y, mask)
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-10, rtol=0, msg=name)


@pytest.mark.parametrize("options", [{}, {"reset": "zero", "surrogate": "atan"}, {"spiking": False}],
                         ids=["subtract", "zero", "readout"])
def test_layer_scan_gradients_through_the_state(options):
    """Every input of one layer, the starting state and the last state included, against autograd."""
    torch.manual_seed(3)
    layer = _net({"filter_granularity": "channel", "lam_granularity": "neuron"}).layers[0]
    if options:
        layer.config = layer.config._replace(**options)
    x = (torch.randn(8, 3, 5, dtype=torch.float64) * 2).requires_grad_()
    start = LIFState(*(torch.randn(3, n, dtype=torch.float64).requires_grad_() for n in (5, 7)),
                     (torch.rand(3, 7, dtype=torch.float64) > 0.5).double().requires_grad_())
    wo, wV, wF = (torch.randn(*shape, dtype=torch.float64) for shape in ((8, 3, 7), (3, 7), (3, 5)))
    inputs = [x, *start[:3], *(p for p in layer.params() if p is not None)]
    results = []
    for fn in (lif_sequence, lif_sequence_scan):
        out, last = fn(x, start, layer.params(), layer.config)
        total = (out * wo).sum() + (last.V * wV).sum() + (last.F * wF).sum()
        results.append((out, torch.autograd.grad(total, inputs, allow_unused=True, materialize_grads=True)))
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-12, rtol=0)
    for got, want in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


def test_float32_runs_close_to_reference():
    x, y, mask = (t.float() if t.is_floating_point() else t for t in _data())
    grads = []
    for backend in ("reference", "fused"):
        torch.manual_seed(0)
        net = SNN(5, [7, 6], 3, alpha=0.6, lam=0.7, threshold=0.4, readout="leaky")
        rule = RULES["bptt"].build(net, "ce", backend=backend)
        Learner(rule).sequence(x, y, mask)
        grads.append([p.grad for p in net.parameters()])
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.fixture
def no_compiler(monkeypatch):
    monkeypatch.setattr(build, "_compiler", lambda: None)
    monkeypatch.setattr(scan, "_STATE", {"tried": False, "lib": None, "reason": "not built yet"})
    monkeypatch.setenv("SOLSA_CACHE_DIR", "/nonexistent-is-not-reached")


def test_falls_back_to_pytorch_without_a_compiler(no_compiler):
    x, y, mask = _data()
    _, _, want = _run("reference", {}, x, y, mask)
    rule, _, got = _run("auto", {}, x, y, mask)
    assert rule.active_backend == "reference" and "no C++ compiler" in rule.fallback_reason
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-10, rtol=0)
    with pytest.raises(RuntimeError, match="backend='fused' is not available"):
        _run("fused", {}, x, y, mask)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("SOLSA_DISABLE_SCAN", "1")
    net = _net({})
    assert "SOLSA_DISABLE_SCAN" in scan_unsupported_reason(net.layers[0].params(), net.layers[0].config)
    rule = RULES["bptt"].build(net, "mse")
    rule.reset(2)
    assert rule.active_backend == "reference"
