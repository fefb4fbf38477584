"""filter_update "log": the optimizer steps α, λ as ln 1/(1−α) and β as ln β (solsa.coordinates)."""

import math

import pytest
import torch

from solsa.config import TrainConfig
from solsa.coordinates import stepped_in_coordinates
from solsa.factories import build_learner, build_network, parameter_groups
from solsa.validation import OptionError


def _learner(**options):
    cfg = TrainConfig(hidden=(6,), learn_lam=True, alpha=0.9, lam=0.5, beta=1.5, lr=0.1, filter_lr_scale=0.5,
                      dtype="float64", **options)
    return build_learner(cfg, build_network(cfg, 3, 2))


def test_log_groups_mark_decays_and_gains():
    learner = _learner(filter_update="log")
    groups = learner.optimizer.param_groups
    assert [g.get("coordinates") for g in groups] == [None, "log-timescale", "log"]
    assert [g["lr"] for g in groups] == [0.1, pytest.approx(0.05), pytest.approx(0.05)]
    kinds = {id(p): n.rpartition(".")[2] for n, p in learner.rule.net.named_parameters()}
    assert {kinds[id(p)] for p in groups[1]["params"]} == {"alpha", "lam"}
    assert {kinds[id(p)] for p in groups[2]["params"]} == {"beta"}
    assert [g.get("coordinates") for g in _learner(filter_update="linear").optimizer.param_groups] == [None, None]


def test_sgd_step_is_the_gradient_step_in_log_coordinates():
    # plain SGD, one step: coordinate -= lr × dL/dcoordinate, with dL/dφ = dL/dα (1 − α), dL/dlnβ = dL/dβ β
    learner = _learner(filter_update="log", optimizer="sgd")
    net = learner.rule.net
    layer = net.layers[0]
    grads = {}
    for name, p in net.named_parameters():
        grads[name] = torch.linspace(-1.0, 1.0, p.numel(), dtype=p.dtype).reshape(p.shape)
        p.grad = grads[name].clone()
    a0, b0, l0, w0 = (t.detach().clone() for t in (layer.alpha, layer.beta, layer.lam, layer.weight))
    learner.apply()
    eta = 0.05
    phi = -torch.log1p(-a0) - eta * grads["layers.0.alpha"] * (1 - a0)
    assert torch.allclose(layer.alpha, (-torch.expm1(-phi)).clamp(0.0, 0.999), atol=1e-12)
    psi = torch.log(b0) - eta * grads["layers.0.beta"] * b0
    assert torch.allclose(layer.beta, psi.exp(), atol=1e-12)
    phi_lam = -torch.log1p(-l0) - eta * grads["layers.0.lam"] * (1 - l0)
    assert torch.allclose(layer.lam, -torch.expm1(-phi_lam), atol=1e-12)
    assert torch.allclose(layer.weight, w0 - 0.1 * grads["layers.0.weight"], atol=1e-12)  # weights: linear


def test_log_coordinates_match_autograd_of_the_reparameterised_value():
    # the gradient the optimizer sees equals autograd through α = 1 − exp(−φ), β = exp(ψ)
    alpha = torch.nn.Parameter(torch.tensor([0.3, 0.95], dtype=torch.float64))
    beta = torch.nn.Parameter(torch.tensor([0.5, 2.0], dtype=torch.float64))
    loss = lambda a, b: (a ** 3 * b).sum() + (a * b ** 2).sum()  # noqa: E731
    loss(alpha, beta).backward()
    phi = (-torch.log1p(-alpha.detach())).requires_grad_()
    psi = beta.detach().log().requires_grad_()
    loss(-torch.expm1(-phi), psi.exp()).backward()
    seen = {}

    class Spy(torch.optim.SGD):
        def step(self, closure=None):
            seen["phi"], seen["gphi"] = alpha.detach().clone(), alpha.grad.clone()
            seen["psi"], seen["gpsi"] = beta.detach().clone(), beta.grad.clone()

    opt = Spy([{"params": [alpha], "coordinates": "log-timescale"}, {"params": [beta], "coordinates": "log"}], lr=1.0)
    before = alpha.detach().clone(), beta.detach().clone()
    with stepped_in_coordinates(opt):
        opt.step()
    assert torch.allclose(seen["phi"], phi.detach()) and torch.allclose(seen["gphi"], phi.grad)
    assert torch.allclose(seen["psi"], psi.detach()) and torch.allclose(seen["gpsi"], psi.grad)
    assert torch.allclose(alpha.detach(), before[0]) and torch.allclose(beta.detach(), before[1])  # mapped back


def test_adam_moves_a_slow_decay_by_a_fraction_of_its_time_constant():
    # Adam's first step moves each coordinate by ≈ lr: the time constant 1/(1−α) by a factor e^{±lr}
    learner = _learner(filter_update="log")
    layer = learner.rule.net.layers[0]
    for p in learner.rule.net.parameters():
        p.grad = torch.ones_like(p)
    learner.apply()
    assert (1 / (1 - layer.alpha)).tolist() == pytest.approx([10 * math.exp(-0.05)] * 3, rel=1e-6)
    assert layer.beta.tolist() == pytest.approx([1.5 * math.exp(-0.05)] * 3, rel=1e-6)


def test_filter_update_names_the_option():
    with pytest.raises(OptionError, match="filter_update"):
        TrainConfig(filter_update="sqrt")
    with pytest.raises(OptionError, match="filter_update"):
        parameter_groups(build_network(TrainConfig(hidden=(4,)), 2, 2), 0.1, 0.1, "exp")


def test_optimizer_state_round_trips_with_coordinates():
    learner = _learner(filter_update="log")
    for p in learner.rule.net.parameters():
        p.grad = torch.ones_like(p)
    learner.apply()
    other = _learner(filter_update="log")
    other.optimizer.load_state_dict(learner.optimizer.state_dict())
    assert [g.get("coordinates") for g in other.optimizer.param_groups] == [None, "log-timescale", "log"]
