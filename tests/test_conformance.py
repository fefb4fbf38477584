"""The same checks over every rule of the registry (in the spirit of river's estimator checks).

Each test is parametrised over ``solsa.rules.RULES``: a rule added to the registry is
checked by every test here without writing one.
"""

import copy

import pytest
import torch

from solsa.config import TrainConfig
from solsa.factories import build_network, build_rule, make_optimizer
from solsa.learner import Learner
from solsa.rules import RULES, LearningRule, sequence_weights
from solsa.validation import OptionError

NAMES = list(RULES)
N_IN, N_OUT = 4, 3
# the neuron and readout options every rule must run on (docs/memory.md)
VARIANTS = {
    "lif": {},
    "alif": {"neuron": "alif"},
    "recurrent-alif": {"neuron": "alif", "recurrent": True, "readout_score": "last"},
    "recurrent-max": {"recurrent": True, "readout_score": "max", "reset": "zero"},
}


def make(name, dtype=torch.float64, seed=0, variant="lif", **options):
    options = {**VARIANTS[variant], **options}
    if name == "ottt" and options.get("reset") == "zero":
        options["reset"] = "subtract"  # OTTT refuses the hard reset (tests below)
    cfg = TrainConfig(rule=name, hidden=(6,), alpha=0.4, lam=0.6, weight_scale=2.0, **options)
    torch.manual_seed(seed)
    net = build_network(cfg, N_IN, N_OUT).to(dtype)
    return cfg, net, build_rule(cfg, net)


def data(T=12, B=3, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, N_IN, generator=g, dtype=dtype), torch.randint(0, N_OUT, (B,), generator=g)


def grads(net):
    return {n: p.grad.detach().clone() for n, p in net.named_parameters() if p.grad is not None}


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-300)).item()


@pytest.mark.parametrize("name", NAMES)
def test_is_a_learning_rule_with_declared_capabilities(name):
    _, _, rule = make(name)
    assert isinstance(rule, LearningRule)
    caps = rule.capabilities
    assert isinstance(caps.online, bool) and isinstance(caps.step_magnitude, bool) and "reference" in caps.backends
    with pytest.raises(OptionError, match="backend must be one of"):
        RULES[name].build(rule.net, "ce", backend="quantum")


@pytest.mark.parametrize("name", NAMES)
def test_step_before_reset_is_a_clear_error(name):
    _, _, rule = make(name)
    x, _ = data()
    with pytest.raises(RuntimeError, match=r"call reset\(batch_size\) before step\(\)"):
        rule.step(x[0])


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_width_dtype_and_batch(name):
    _, _, rule = make(name)
    rule.reset(3)
    with pytest.raises(ValueError, match="features"):
        rule.step(torch.zeros(3, N_IN + 1, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating dtype"):
        rule.step(torch.zeros(3, N_IN, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        rule.step(torch.zeros(2, N_IN, dtype=torch.float64))
    with pytest.raises(ValueError, match="batch_size"):
        rule.reset(0)
    out = rule.step(torch.zeros(3, N_IN, dtype=torch.float32))  # another float precision is converted
    assert out.output.dtype == torch.float64 and out.output.shape == (3, N_OUT)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", NAMES)
def test_gradients_land_in_grad_and_an_optimizer_applies_them(name, variant):
    cfg, net, rule = make(name, variant=variant)
    x, y = data()
    before = copy.deepcopy(net.state_dict())
    opt = make_optimizer("sgd", [p for p in net.parameters() if p.requires_grad], 0.1)
    run = Learner(rule, opt).sequence(x, y)
    assert run.updates == 1 and run.steps == x.shape[0] and torch.isfinite(run.loss)
    after = net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    for i, layer in enumerate(net.layers):
        assert layer.weight.grad is None  # the update zeroed them (set_to_none)
        assert not torch.equal(layer.weight, before[f"layers.{i}.weight"])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", NAMES)
def test_flush_at_any_step(name, variant):
    """Online rules: flushing mid-sequence adds up to one flush at the end (nothing lost, nothing twice).
    Every rule: a flush at any step leaves finite gradients, and a second flush adds nothing."""
    _, net, rule = make(name, variant=variant)
    x, y = data(T=10)
    rule.sequence(x, y)
    once = grads(net)
    net.zero_grad(set_to_none=True)
    rule.reset(3)
    weights = sequence_weights(torch.ones(10, 3, dtype=torch.float64), net.readout_score)  # as sequence() weighs
    for t in range(10):
        rule.step(x[t], y, weights[t])
        if t in (0, 4, 7):
            rule.flush()
    rule.flush()
    rule.flush()
    pieces = grads(net)
    assert pieces.keys() == once.keys() and pieces
    assert all(torch.isfinite(g).all() for g in pieces.values())
    if rule.capabilities.online:
        for k in once:
            assert rel(pieces[k], once[k]) < 1e-10, k


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_gradient(name, variant):
    results = []
    for _ in range(2):
        _, net, rule = make(name, variant=variant, seed=5)
        rule.sequence(*data(seed=2))
        results.append(grads(net))
    assert results[0].keys() == results[1].keys()
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", NAMES)
def test_train_state_bytes_flat_in_T_for_online_rules(name, variant):
    sizes = []
    for T in (5, 40):
        _, net, rule = make(name, variant=variant)
        rule.sequence(*data(T=T))
        sizes.append(rule.train_state_bytes())
    assert sizes[0] > 0
    if rule.capabilities.online:
        assert sizes[0] == sizes[1]
    else:
        assert sizes[1] > 4 * sizes[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("variant", ["lif", "recurrent-alif"])
@pytest.mark.parametrize("name", NAMES)
def test_float32_and_float64(name, variant, dtype):
    _, net, rule = make(name, dtype=dtype, variant=variant)
    out = rule.sequence(*data(dtype=dtype))
    assert out.outputs.dtype == dtype
    g = grads(net)
    assert g and all(v.dtype == dtype and torch.isfinite(v).all() for v in g.values())


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name, variant):
    cfg, net, rule = make(name, variant=variant, seed=3)
    x, y = data()
    rule.sequence(x, y)
    reference = grads(net)
    _, other, other_rule = make(name, variant=variant, seed=4)
    other.load_state_dict(net.state_dict())
    other_rule.sequence(x, y)
    with torch.no_grad():
        assert torch.equal(net(x), other(x))
    restored = grads(other)
    assert all(torch.equal(reference[k], restored[k]) for k in reference)


@pytest.mark.parametrize("name", NAMES)
def test_step_magnitude_as_declared(name):
    _, _, rule = make(name)
    x, y = data()
    rule.reset(3)
    if rule.capabilities.step_magnitude:
        res = rule.step(x[0], y, magnitude=True)
        assert isinstance(res.magnitude, float) and res.magnitude >= 0
        assert rule.step(x[1], y).magnitude is None
    else:
        with pytest.raises(ValueError, match="magnitude"):
            rule.step(x[0], y, magnitude=True)
