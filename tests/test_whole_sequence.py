"""The whole-sequence path (``Capabilities.whole_sequence``: one ``run_sequence`` call per sequence) gives the
gradients of the per-step path (``T`` calls of ``step``) in float64, for every rule that has it, on every
neuron option the per-step path has."""


import pytest
import torch

from solsa import SNN
from solsa.functional import lif_sequence, lif_step
from solsa.learner import Learner
from solsa.rules import OSTL, RULES, Capabilities, sequence_weights, target_at

WHOLE = [name for name, spec in RULES.items() if spec.cls.capabilities.whole_sequence]
VARIANTS = {
    "lif": {},
    "alif": {"neuron": "alif"},
    "recurrent": {"recurrent": True},
    "zero-reset": {"reset": "zero", "surrogate": "atan"},
    "channel-leaky": {"filter_granularity": "channel", "readout": "leaky", "readout_lam": 0.6},
}


def _net(options: dict, seed: int = 0) -> SNN:
    torch.manual_seed(seed)
    return SNN(5, [7, 6], 3, alpha=0.6, beta=1.3, lam=0.7, threshold=0.4, **options).double()


def _grads(net: SNN) -> list[torch.Tensor | None]:
    grads = [None if p.grad is None else p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    return grads


def test_some_rule_has_the_whole_sequence_path():
    assert "bptt" in WHOLE


# OTTT refuses the hard reset at construction (tests/test_online_sequence.py tests the refusal): not generated
PAIRS = [(name, variant) for name in WHOLE for variant in VARIANTS if (name, variant) != ("ottt", "zero-reset")]


@pytest.mark.parametrize("name,variant", PAIRS)
@pytest.mark.parametrize("target_kind", ["labels", "per-step"])
def test_whole_sequence_equals_steps(name, variant, target_kind):
    T, B = 9, 4
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, 5, generator=gen, dtype=torch.float64) * 2
    y = torch.randint(0, 3, (B,) if target_kind == "labels" else (T, B), generator=gen)
    mask = torch.ones(T, B, dtype=torch.float64)
    mask[6:, 1] = 0  # a shorter sample
    net = _net(VARIANTS[variant])
    rule = RULES[name].build(net, "ce" if net.readout == "leaky" else "mse")
    weights = sequence_weights(mask)
    rule.reset(B)
    outputs, total = [], 0.0
    for t in range(T):  # the reference: one call per step
        res = rule.step(x[t], target_at(y, t), weights[t])
        outputs.append(res.output)
        total += float(res.loss)
    rule.flush()
    reference = _grads(net)
    run = Learner(rule).sequence(x, y, mask)  # takes the whole-sequence path
    assert run.steps == T and run.updates == 1
    torch.testing.assert_close(run.outputs, torch.stack(outputs), atol=1e-12, rtol=0)
    assert abs(float(run.loss) - total) <= 1e-10
    assert any(g is not None and float(g.abs().sum()) > 0 for g in reference)  # something to compare
    for got, want in zip(_grads(net), reference):
        assert (got is None) == (want is None)
        if want is not None:
            torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


def test_lif_sequence_equals_lif_steps():
    net = _net({"neuron": "alif", "recurrent": True})
    layer = net.layers[0]
    x = torch.randn(6, 2, 5, dtype=torch.float64)
    state = layer.init_state(2)
    outs, last = lif_sequence(x, state, layer.params(), layer.config)
    for t in range(6):
        state = lif_step(x[t], state, layer.params(), layer.config)
        torch.testing.assert_close(outs[t], state.o, atol=1e-12, rtol=0)
    for a, b in zip(last, state):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


class _Stepping(OSTL):
    """A rule without the whole-sequence path (every registered rule has it now)."""

    name = "stepping"
    capabilities = Capabilities(online=True, step_magnitude=True)


def test_rules_without_the_path_refuse_it_and_the_learner_steps_them():
    name = "stepping"
    rule = _Stepping(_net({}), "mse")
    rule.reset(2)
    with pytest.raises(NotImplementedError, match=name):
        rule.run_sequence(torch.zeros(3, 2, 5, dtype=torch.float64), torch.zeros(2, dtype=torch.long),
                          torch.ones(3, 2, dtype=torch.float64))
    run = Learner(rule).sequence(torch.zeros(3, 2, 5, dtype=torch.float64), torch.zeros(2, dtype=torch.long))
    assert run.steps == 3


def test_run_sequence_checks_its_input():
    rule = RULES["bptt"].build(_net({}), "mse")
    with pytest.raises(RuntimeError, match="reset"):
        rule.run_sequence(torch.zeros(3, 2, 5), torch.zeros(2, dtype=torch.long), torch.ones(3, 2))
    rule.reset(2)
    with pytest.raises(ValueError, match="B = 2"):
        rule.run_sequence(torch.zeros(3, 4, 5), torch.zeros(4, dtype=torch.long), torch.ones(3, 4))


def _bptt_grads(backend: str, x, y, options=None):
    net = _net(options or {"readout": "leaky", "readout_lam": 0.6})
    rule = RULES["bptt"].build(net, "ce", backend=backend)
    run = Learner(rule).sequence(x, y)
    return rule, run, _grads(net)


def test_compiled_backend_falls_back_when_compiling_fails(monkeypatch):
    import solsa.rules.bptt as bptt

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(bptt, "compiled_lif_sequence", lambda: broken)
    x = torch.randn(7, 3, 5, dtype=torch.float64)
    y = torch.tensor([0, 2, 1])
    _, _, want = _bptt_grads("reference", x, y)
    rule, run, got = _bptt_grads("compiled", x, y)
    assert rule.active_backend == "reference" and "no compiler here" in rule.fallback_reason
    assert run.steps == 7 and rule.train_state_bytes() > 0
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_backend_option_is_checked():
    with pytest.raises(ValueError, match="backend"):
        RULES["bptt"].build(_net({}), "mse", backend="vectorised")


@pytest.mark.filterwarnings("ignore")  # torch's compiler warns about its own internals (would fall back)
def test_compiled_backend_equals_reference():
    x = torch.randn(6, 2, 5, dtype=torch.float64)
    y = torch.tensor([0, 2])
    _, ref_run, want = _bptt_grads("reference", x, y)
    rule, run, got = _bptt_grads("compiled", x, y)
    assert rule.active_backend == "compiled", rule.fallback_reason
    torch.testing.assert_close(run.outputs, ref_run.outputs, atol=1e-12, rtol=0)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
