"""The compiled whole-sequence path of e-prop, OSTL and OTTT (``backend="fused"``, :mod:`solsa.rules.compiled`)
gives the reference path's outputs, loss, gradients and traces (float64 ≤ 1e-10), says why when it cannot run,
and hands over to the per-step streaming API through the same traces."""

import dataclasses

import pytest
import torch

from solsa import SNN
from solsa.fast.scan import load_scan
from solsa.learner import Learner
from solsa.losses import SpikeMSE
from solsa.rules import RULES, sequence_weights, target_at

pytestmark = pytest.mark.skipif(load_scan() is None, reason="no C++ compiler for the scan library")

RULE_NAMES = ("eprop", "ostl", "ottt")
HIDDEN = {"1 layer": [], "2 layers": [7], "3 layers": [7, 6]}
# (network options, rule options): the readouts and neuron options each rule takes, and the rules' own options
CASES = {
    "spike": ({}, {}),
    "leaky": ({"readout": "leaky", "readout_lam": 0.6}, {}),
    "leaky-instant": ({"readout": "leaky", "readout_lam": 0.0}, {}),
    "none-reset-channel-atan": ({"reset": "none", "filter_granularity": "channel", "surrogate": "atan"}, {}),
    "zero-reset-triangle": ({"reset": "zero", "surrogate": "triangle", "width": 0.8}, {}),
    "lam-neuron-learned": ({"lam_granularity": "neuron", "learn_lam": True, "readout": "leaky",
                            "readout_lam": 0.5}, {}),
    "no-bias-fast-sigmoid": ({"bias": False, "surrogate": "fast_sigmoid"}, {}),
    "eprop-random": ({"readout": "leaky", "readout_lam": 0.6}, {"eprop": {"feedback": "random", "seed": 3}}),
    "ostl-lam-fixed": ({"learn_lam": True, "reset": "zero"}, {"ostl": {"learn_lam": False}}),
}


def _net(hidden, options, seed=0, dtype=torch.float64) -> SNN:
    torch.manual_seed(seed)
    return SNN(5, hidden, 3, alpha=0.6, beta=1.3, lam=0.7, threshold=0.4, **options).to(dtype)


def _data(T=11, B=4, per_step=False, dtype=torch.float64):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, 5, generator=gen, dtype=dtype) * 2
    y = torch.randint(0, 3, (T, B) if per_step else (B,), generator=gen)
    mask = torch.ones(T, B, dtype=dtype)
    mask[7:, 1] = 0  # a shorter sample
    return x, y, mask


# OTTT refuses these at construction (test_ottt_refuses_what_it_cannot_do): the pairs are not generated
REFUSED = {("ottt", "zero-reset-triangle"), ("ottt", "lam-neuron-learned"), ("ottt", "ostl-lam-fixed")}
RULE_CASES = [(name, case) for name in RULE_NAMES for case in CASES if (name, case) not in REFUSED]


def _build(name, hidden, case, backend, dtype=torch.float64):
    options, rule_options = CASES[case]
    net = _net(hidden, options, dtype=dtype)
    loss = "ce" if net.readout == "leaky" else "mse"
    return net, RULES[name].build(net, loss, backend=backend, **rule_options.get(name, {}))


@pytest.mark.parametrize("name,case", sorted(REFUSED))
def test_ottt_refuses_what_it_cannot_do(name, case):
    with pytest.raises(ValueError, match="OTTT|ottt"):
        _build(name, [7], case, "auto")


def _grads(net):
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def _traces(rule):
    """Every tensor the rule keeps per layer (state, ε, traces, the ALIF partners), by name."""
    out = {}
    for i, tr in enumerate(rule.traces):
        for field in dataclasses.fields(tr):
            value = getattr(tr, field.name)
            if field.name == "state":
                out.update({f"{i}.state.{k}": v for k, v in value._asdict().items() if v is not None})
            elif isinstance(value, dict):
                out.update({f"{i}.{field.name}.{k}": v for k, v in value.items()})
            elif isinstance(value, torch.Tensor):
                out[f"{i}.{field.name}"] = value
    return out


def _assert_same_run(got: tuple, want: tuple):
    """(outputs, gradients, traces) of one run equal another's (≤ 1e-10)."""
    torch.testing.assert_close(got[0], want[0], atol=1e-10, rtol=0)
    _assert_same(got[1], want[1])
    _assert_same(got[2], want[2])


def _stream(net, rule, x, y, weights, split):
    """``run_sequence`` on the first ``split`` steps, then ``step`` on the rest: (outputs, the prediction at
    ``split``, gradients, traces)."""
    rule.reset(x.shape[1])
    outputs = [rule.run_sequence(x[:split], y, weights[:split]).output] if split else []
    predicted = rule.predict_step(x[split])
    for t in range(split, x.shape[0]):
        outputs.append(rule.step(x[t], target_at(y, t), weights[t]).output[None])
    rule.flush()
    return torch.cat(outputs), predicted, _grads(net), _traces(rule)


def _assert_float32_close(build, data):
    """Reference and fused in float32 (``build(backend)`` -> (net, rule), ``data`` = (x, y, mask)) agree."""
    results = []
    for backend in ("reference", "fused"):
        net, rule = build(backend)
        run = Learner(rule).sequence(*data)
        results.append((run.outputs, _grads(net)))
    torch.testing.assert_close(results[1][0], results[0][0])
    _assert_same(results[1][1], results[0][1], atol=1e-5)


def _train(name, hidden, case, backend, per_step=False, points=None):
    net, rule = _build(name, hidden, case, backend)
    x, y, mask = _data(per_step=per_step)
    run = Learner(rule).sequence(x, y, mask, points=points)  # no optimizer: the flushes add up in .grad
    return rule, run, _grads(net), _traces(rule)


def _assert_same(got: dict, want: dict, atol=1e-10):
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], atol=atol, rtol=0, msg=key)


@pytest.mark.parametrize("layers", HIDDEN)
@pytest.mark.parametrize("name,case", RULE_CASES)
def test_compiled_equals_reference(name, layers, case):
    reference = _train(name, HIDDEN[layers], case, "reference", points={3, 10})
    fused = _train(name, HIDDEN[layers], case, "fused", points={3, 10})
    _assert_same_training(fused, reference)
    assert fused[1].updates == 2


def _assert_same_training(fused: tuple, reference: tuple) -> None:
    """Two ``_train`` results ``(rule, run, gradients, traces)``: each on its path, and the same steps, outputs,
    loss, gradients, traces (≤ 1e-10) and train-state bytes."""
    (ref_rule, ref, want, want_traces), (rule, run, got, got_traces) = reference, fused
    assert ref_rule.active_backend == "reference" and rule.active_backend == "fused", rule.fallback_reason
    assert rule.fallback_reason == ""
    assert run.steps == ref.steps and run.updates == ref.updates
    assert abs(float(run.loss) - float(ref.loss)) <= 1e-10
    assert any(float(g.abs().sum()) > 0 for g in want.values())  # the check has something to compare
    _assert_same_run((run.outputs, got, got_traces), (ref.outputs, want, want_traces))
    assert rule.train_state_bytes() == ref_rule.train_state_bytes()


@pytest.mark.parametrize("name", RULE_NAMES)
def test_long_stretches_run_in_chunks(name, monkeypatch):
    """A stretch longer than SEQUENCE_CHUNK runs as several calls, with the result of one."""
    import solsa.rules.compiled as compiled

    _, ref, want, want_traces = _train(name, [7], "leaky", "reference", per_step=True)
    monkeypatch.setattr(compiled, "SEQUENCE_CHUNK", 4)
    _, run, got, got_traces = _train(name, [7], "leaky", "fused", per_step=True)
    assert abs(float(run.loss) - float(ref.loss)) <= 1e-10
    _assert_same_run((run.outputs, got, got_traces), (ref.outputs, want, want_traces))


@pytest.mark.parametrize("name", RULE_NAMES)
def test_per_step_targets(name):
    _, ref, want, _ = _train(name, [6], "leaky", "reference", per_step=True)
    _, run, got, _ = _train(name, [6], "leaky", "fused", per_step=True)
    torch.testing.assert_close(run.outputs, ref.outputs, atol=1e-10, rtol=0)
    _assert_same(got, want)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_float32_close(name):
    def build(backend):
        net = _net([7], {}, dtype=torch.float32)
        return net, RULES[name].build(net, "mse", backend=backend)

    _assert_float32_close(build, _data(dtype=torch.float32))


@pytest.mark.parametrize("name", RULE_NAMES)
def test_streaming_steps_take_over_from_a_compiled_stretch(name):
    """``run_sequence`` on the first steps, then the per-step API: the result of stepping throughout."""
    x, y, mask = _data()
    weights = sequence_weights(mask)
    results = [_stream(*_build(name, [7, 6], "leaky", backend), x, y, weights, split)
               for backend, split in (("reference", 0), ("fused", 5))]
    (ref_out, _, want, want_traces), (out, predicted, got, got_traces) = results
    torch.testing.assert_close(predicted, ref_out[5], atol=1e-10, rtol=0)
    _assert_same_run((out, got, got_traces), (ref_out, want, want_traces))


@pytest.mark.parametrize("name", RULE_NAMES)
def test_step_is_the_reference_step_on_every_backend(name):
    x, y, mask = _data()
    weights = sequence_weights(mask)
    results = []
    for backend in ("reference", "fused"):
        net, rule = _build(name, [7], "spike", backend)
        rule.reset(x.shape[1])
        outs = [rule.step(x[t], target_at(y, t), weights[t], magnitude=True) for t in range(x.shape[0])]
        rule.flush()
        results.append((outs, _grads(net)))
    for a, b in zip(*(r[0] for r in results)):
        assert torch.equal(a.output, b.output) and torch.equal(a.loss, b.loss) and a.magnitude == b.magnitude
    for key, want in results[0][1].items():
        assert torch.equal(results[1][1][key], want)


class _HalfMSE(SpikeMSE):
    """A loss the compiled path does not know (a subclass of a known one)."""

    def __call__(self, y, target, weight):
        return 0.5 * super().__call__(y, target, weight)

    def grad(self, y, target, weight):
        value, g = super().grad(y, target, weight)
        return 0.5 * value, 0.5 * g


@pytest.mark.parametrize("name", RULE_NAMES)
def test_custom_loss_and_disabled_library_fall_back(name, monkeypatch):
    rule = RULES[name].build(_net([7], {}), _HalfMSE())
    rule.reset(2)
    assert rule.active_backend == "reference" and "_HalfMSE" in rule.fallback_reason
    monkeypatch.setenv("SOLSA_DISABLE_SCAN", "1")
    rule = RULES[name].build(_net([7], {}), "mse")
    rule.reset(2)
    assert rule.active_backend == "reference" and "SOLSA_DISABLE_SCAN" in rule.fallback_reason


@pytest.mark.parametrize("name", RULE_NAMES)
def test_reference_backend_is_reference(name):
    rule = RULES[name].build(_net([7], {}), "mse", backend="reference")
    rule.reset(2)
    assert rule.active_backend == "reference" and rule.fallback_reason == ""
    assert rule.capabilities.backends == ("reference", "fused") and rule.capabilities.whole_sequence
