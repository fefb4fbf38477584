"""ALIF and recurrent layers (docs/memory.md): the step by hand, the other rules and credit on ALIF, the
recurrent truncation, and the fused kernel's fallback (one ALIF layer's exactness: tests/test_exactness.py)."""

import json

import pytest
import torch

from solsa import SNN
from solsa.cli import main
from solsa.functional import RESET_MODES, LIFConfig, LIFParams, LIFState, lif_step
from solsa.gradcheck import compare_gradients, gradcheck, rule_gradients
from solsa.rules import BPTT, OSTL, SOLSA, EProp

D = torch.float64
ALL = ("weight", "alpha", "beta", "lambda", "bias")


def test_alif_threshold_rises_with_each_spike_and_decays():
    """b[t] = ρ b[t-1] + o[t-1], spike when V > θ + β_a b: a constant drive of 1.5 (λ = 0) spikes every other step."""
    p = LIFParams(torch.ones(1, 1, dtype=D), None, torch.tensor(0.0, dtype=D), torch.tensor(1.0, dtype=D),
                  torch.tensor(0.0, dtype=D))
    cfg = LIFConfig(threshold=1.0, reset_amount=1.0, reset="zero", neuron="alif", adapt=0.5, rho=0.5)
    s = LIFState(*(torch.zeros(1, 1, dtype=D) for _ in range(4)))
    got = []
    for _ in range(5):
        s = lif_step(torch.full((1, 1), 1.5, dtype=D), s, p, cfg)
        got.append((s.b.item(), s.o.item()))
    # b: 0 (A = 1: o=1), 1 (A = 1.5, not exceeded: o=0), 0.5 (A = 1.25: o=1), 1.25 (A = 1.625: o=0), 0.625 (o=1)
    assert got == [(0.0, 1.0), (1.0, 0.0), (0.5, 1.0), (1.25, 0.0), (0.625, 1.0)]


def alif_layer(reset, granularity, recurrent=False, n_out=4, seed=3):
    torch.manual_seed(seed)
    net = SNN(6, [], n_out, readout="spike", alpha=0.6, beta=1.3, lam=0.7, reset=reset, filter_granularity=granularity,
              learn_lam=True, lam_granularity="neuron", weight_scale=2.5, neuron="alif", adapt=0.3, rho=0.9,
              recurrent=recurrent, dtype=D)
    x = torch.randn(60, 5, 6, dtype=D)
    return net, x, torch.randint(0, n_out, (5,))


def test_alif_hidden_layer_under_a_leaky_readout_is_exact_with_next_credit():
    rep = gradcheck(layers=2, readout="leaky", lam_granularity="layer", credit="next", neuron="alif")
    assert max(rep["max_rel_error"].values()) < 1e-10


@pytest.mark.parametrize("reset", RESET_MODES)
def test_recurrent_with_a_diagonal_matrix_is_exact(reset):
    """The truncation keeps the path through a neuron's own spike: with W_rec diagonal nothing is dropped,
    and every entry's gradient (the off-diagonal ones included) is BPTT's."""
    net, x, y = alif_layer(reset, "channel", recurrent=True)
    with torch.no_grad():
        net.layers[0].rec_weight.copy_(torch.diag(torch.tensor([0.5, -0.3, 0.2, -0.6], dtype=D)))
    rep = compare_gradients(rule_gradients(net, SOLSA, x, y, "mse"), rule_gradients(net, BPTT, x, y, "mse"))
    assert set(rep["max_rel_error"]) == {*ALL, "recurrent"}
    assert max(rep["max_rel_error"].values()) < 1e-10


@pytest.mark.parametrize("neuron", ["lif", "alif"])
def test_recurrent_truncation_is_approximate_and_reported(neuron):
    rep = gradcheck(layers=1, neuron=neuron, recurrent=True, hidden=8, outputs=8, seed=0)
    cos = rep["per_layer_cosine"]["recurrent"][0]
    assert 0.5 < cos < 1 - 1e-6  # dropped paths, still the gradient's direction
    assert rep["neuron"] == neuron and rep["recurrent"] is True


def test_ostl_is_exact_on_one_alif_layer():
    net, x, y = alif_layer("zero", "layer")
    grads = {}
    for rule in (OSTL, BPTT):
        net.zero_grad(set_to_none=True)
        rule(net, "mse").sequence(x, y)
        grads[rule] = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    for name, g in grads[OSTL].items():
        assert ((g - grads[BPTT][name]).abs().max() / grads[BPTT][name].abs().max()).item() < 1e-10, name


def test_eprop_alif_eligibility_is_exact_without_a_reset():
    """With no reset there is nothing for e-prop to detach: its ALIF eligibility e = ψ(x̄ - β_a ε^a) gives
    BPTT's gradient on one layer."""
    net, x, y = alif_layer("none", "layer")
    grads = {}
    for rule in (EProp, BPTT):
        net.zero_grad(set_to_none=True)
        rule(net, "mse").sequence(x, y)
        grads[rule] = {n: net.get_parameter(n).grad.clone() for n in ("layers.0.weight", "layers.0.bias")}
    for name, g in grads[EProp].items():
        assert ((g - grads[BPTT][name]).abs().max() / grads[BPTT][name].abs().max()).item() < 1e-10, name


@pytest.mark.parametrize("options", [{"neuron": "alif"}, {"recurrent": True}])
def test_fused_backend_runs_alif_and_recurrent_layers(options):
    """The fused kernel covers them (tests/test_fused_alif.py compares it with the reference)."""
    from solsa.fast import fused_available

    if not fused_available():
        pytest.skip("fused kernel unavailable")
    torch.manual_seed(0)
    rule = SOLSA(SNN(3, [5], 2, **options), "ce", backend="auto")
    rule.reset(2)
    assert rule.active_backend == "fused", rule.fallback_reason


def test_gradcheck_cli_covers_alif_and_recurrent(capsys):
    assert main(["gradcheck", "--neuron", "alif", "--reset", "zero", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["neuron"] == "alif" and max(rep["max_rel_error"].values()) < 1e-10
    assert main(["gradcheck", "--recurrent", "true", "--layers", "2", "--readout", "leaky"]) == 0
    out = capsys.readouterr().out
    assert "recurrent=true" in out and "\nrecurrent " in out


def test_bad_alif_options_are_named_errors():
    with pytest.raises(ValueError, match="neuron"):
        SNN(2, [], 2, neuron="izhikevich")
    with pytest.raises(ValueError, match="^rho"):
        SNN(2, [], 2, neuron="alif", rho=1.5)
    with pytest.raises(ValueError, match="^adapt"):
        SNN(2, [], 2, neuron="alif", adapt=-1.0)


def test_nir_export_refuses_alif_and_recurrent_layers():
    pytest.importorskip("nir")
    from solsa.interop import to_nir

    with pytest.raises(ValueError, match="ALIF"):
        to_nir(SNN(2, [3], 2, neuron="alif"))
    with pytest.raises(ValueError, match="recurrent"):
        to_nir(SNN(2, [3], 2, recurrent=True))
