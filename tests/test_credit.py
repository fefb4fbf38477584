"""Cross-layer credit (docs/credit.md): exact where the derivation says so, better than same-step elsewhere."""

import json

import pytest
import torch

from solsa import SNN
from solsa.cli import main
from solsa.fast import fused_available, fused_unavailable_reason
from solsa.functional import lagged_surrogate, membrane_credit, synaptic_credit
from solsa.gradcheck import compare_gradients, gradcheck_seeds, rule_gradients
from solsa.config import TrainConfig, rule_credit
from solsa.rules import BPTT, RULES, SOLSA

D = torch.float64
ALL = ("weight", "alpha", "beta", "lambda", "bias")
MODES = ("next", "cascade")
needs_kernel = pytest.mark.skipif(not fused_available(), reason=f"fused kernel unavailable ({fused_unavailable_reason()})")


def two_layers(reset, granularity, readout="leaky", lam_granularity="layer", T=30):
    torch.manual_seed(5)
    net = SNN(6, [10], 4, readout=readout, readout_lam=0.6, alpha=0.6, beta=1.3, lam=0.7, reset=reset,
              filter_granularity=granularity, learn_lam=True, lam_granularity=lam_granularity, weight_scale=2.5,
              dtype=D)
    x = torch.randn(T, 3, 6, dtype=D)
    y = torch.randint(0, 4, (3,))
    with torch.no_grad():
        states, rate = net.init_state(3), 0.0
        for x_t in x:
            _, states = net.step(x_t, states)
            rate += states[0].o.mean().item() / T
    assert 0.05 < rate < 0.9, f"the hidden layer must spike (rate {rate})"
    return net, x, y


def errors(net, x, y, loss, credit):
    ref = rule_gradients(net, BPTT, x, y, loss)
    return compare_gradients(rule_gradients(net, SOLSA, x, y, loss, credit=credit, backend="reference"), ref)


@pytest.mark.parametrize("credit", MODES)
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("granularity", ["layer", "channel"])
def test_hidden_layer_under_leaky_one_lambda_readout_is_exact(credit, reset, granularity):
    net, x, y = two_layers(reset, granularity)
    rep = errors(net, x, y, "ce", credit)
    assert set(rep["max_rel_error"]) == set(ALL)
    for kind in ALL:
        assert rep["max_rel_error"][kind] < 1e-8, (kind, rep["max_rel_error"][kind])


def test_same_step_is_not_exact_there():
    """The exactness above is the credit mode's doing: today's rule misses it by far."""
    net, x, y = two_layers("subtract", "layer")
    assert errors(net, x, y, "ce", "same-step")["max_rel_error"]["weight"] > 0.1


@pytest.mark.parametrize("credit", MODES)
def test_spiking_output_with_one_lambda_and_no_reset_is_exact(credit):
    """d of the upper layer is λ for every neuron: the same derivation holds for a spiking output."""
    net, x, y = two_layers("none", "channel", readout="spike")
    rep = errors(net, x, y, "mse", credit)
    assert max(rep["max_rel_error"].values()) < 1e-8


def test_cascade_keeps_each_output_neurons_decay_for_per_neuron_traces():
    """Spiking output, soft reset, λ per neuron: α (one per layer), λ and b exact; W and β close."""
    net, x, y = two_layers("subtract", "layer", readout="spike", lam_granularity="neuron")
    rep = errors(net, x, y, "mse", "cascade")
    for kind in ("alpha", "lambda", "bias"):
        assert rep["max_rel_error"][kind] < 1e-8, (kind, rep["max_rel_error"][kind])
    assert rep["max_rel_error"]["weight"] > 1e-6  # the weight trace takes the mean decay
    assert rep["per_layer_cosine"]["weight"][0] > 0.9
    assert errors(net, x, y, "mse", "next")["max_rel_error"]["lambda"] > 1e-6


def test_three_layers_reach_the_issue_thresholds():
    """gradcheck --layers 3 --credit cascade --seeds 10 (α = 0.5, λ = 0.7, subtract, spiking)."""
    rep = gradcheck_seeds(10, layers=3, credit="cascade")
    cos, sign = rep["per_layer_cosine_mean"], rep["per_layer_sign_agreement"]
    assert min(cos["weight"]) >= 0.9 and min(cos["lambda"]) >= 0.8, cos
    for kind in ("alpha", "beta"):
        assert min(sign[kind][:-1]) >= 9, (kind, sign[kind])
    base = rep["same_step"]["per_layer_cosine_mean"]
    assert base["weight"][0] < cos["weight"][0] - 0.2  # today's rule, same seeds, is far behind


def test_single_layer_credit_is_a_no_op():
    torch.manual_seed(0)
    net = SNN(5, [], 3, alpha=0.5, lam=0.7, learn_lam=True, dtype=D)
    x, y = torch.randn(20, 2, 5, dtype=D), torch.tensor([0, 2])
    base = rule_gradients(net, SOLSA, x, y, "mse")
    for credit in MODES:
        other = rule_gradients(net, SOLSA, x, y, "mse", credit=credit)
        assert all(torch.equal(base[0][k], other[0][k]) for k in base[0])


def test_credit_is_validated():
    net = SNN(3, [4], 2)
    with pytest.raises(ValueError, match="credit must be one of"):
        SOLSA(net, credit="future")


def test_fused_backend_never_runs_a_credit_mode_it_does_not_implement(monkeypatch):
    import solsa.rules.solsa as solsa_rule

    monkeypatch.setattr(solsa_rule, "FUSED_CREDIT", ("same-step", "next"))
    net = SNN(4, [6], 3, alpha=0.5, dtype=torch.float32)
    rule = SOLSA(net, "mse", credit="cascade", backend="auto")
    rule.reset(2)
    assert rule.active_backend == "reference" and "credit" in rule.fallback_reason
    with pytest.raises(RuntimeError, match="credit"):
        SOLSA(net, "mse", credit="cascade", backend="fused").reset(2)


def _fused_run(backend, net, x, y, loss, track, credit, flush_at=(), opt_at=()):
    net.zero_grad(set_to_none=True)
    rule = SOLSA(net, loss, credit=credit, backend=backend)
    rule.reset(x.shape[1])
    assert rule.active_backend == backend, rule.fallback_reason
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    outs = []
    for t in range(x.shape[0]):
        tracked = track(t) if callable(track) else track
        res = rule.step(x[t], y, magnitude=tracked)
        outs.append(torch.cat([res.output.flatten(), res.loss.reshape(1),
                               torch.tensor([res.magnitude if tracked else 0.0], dtype=D)]))
        if t in flush_at or t in opt_at:
            rule.flush()
        if t in opt_at:
            opt.step()
            net.clamp_()
    rule.flush()
    grads = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
    return torch.stack(outs), grads, rule.train_state_bytes()


@needs_kernel
@pytest.mark.parametrize("credit", MODES)
@pytest.mark.parametrize("case", [
    dict(reset="subtract", gran="layer", readout="spike", hidden=(7, 5), track=False),
    dict(reset="zero", gran="channel", readout="spike", hidden=(7,), track=True),
    dict(reset="subtract", gran="layer", readout="spike", hidden=(7, 6, 5), track=True),
    dict(reset="zero", gran="channel", readout="leaky", hidden=(7, 5), track=False),
])
def test_fused_credit_equals_reference(case, credit):
    case = dict(case)
    track = case.pop("track")
    readout = case.pop("readout")
    torch.manual_seed(2)
    net = SNN(6, list(case.pop("hidden")), 4, readout=readout, readout_lam=0.4, alpha=0.5, beta=1.2, lam=0.6,
              reset=case["reset"], filter_granularity=case["gran"], learn_lam=True, lam_granularity="neuron",
              weight_scale=2.5, dtype=D)
    x, y = torch.randn(25, 3, 6, dtype=D), torch.tensor([0, 3, 1])
    loss = "mse" if readout == "spike" else "ce"
    state = {k: v.clone() for k, v in net.state_dict().items()}
    ref = _fused_run("reference", net, x, y, loss, track, credit, flush_at=(8,), opt_at=(15,))
    net.load_state_dict(state)
    fused = _fused_run("fused", net, x, y, loss, track, credit, flush_at=(8,), opt_at=(15,))
    assert torch.allclose(ref[0], fused[0], rtol=0, atol=1e-10)
    assert ((ref[1] - fused[1]).abs().max() / ref[1].abs().max()).item() < 1e-10
    assert ref[2] == fused[2]


@needs_kernel
@pytest.mark.parametrize("credit", MODES)
def test_fused_credit_with_magnitude_on_some_steps_equals_reference(credit):
    """The kernel defers a one-stage credit layer's weight gradient into the next step's pass over its stage
    (credit.h, stage_grad_deferred) except on steps that report the magnitude: both kinds of step, mixed, and a
    flush and an update between them, still give the reference's outputs, magnitudes and gradients."""
    torch.manual_seed(3)
    net = SNN(6, [7, 5], 4, readout="leaky", readout_lam=0.4, alpha=0.5, beta=1.2, lam=0.6, weight_scale=2.5,
              dtype=D)
    x, y = torch.randn(20, 1, 6, dtype=D), torch.tensor([2])
    state = {k: v.clone() for k, v in net.state_dict().items()}
    runs = []
    for backend in ("reference", "fused"):
        net.load_state_dict(state)
        runs.append(_fused_run(backend, net, x, y, "ce", lambda t: t % 3 == 1, credit, flush_at=(8,), opt_at=(12,)))
    ref, fused = runs
    assert torch.allclose(ref[0], fused[0], rtol=0, atol=1e-10)
    assert ((ref[1] - fused[1]).abs().max() / ref[1].abs().max()).item() < 1e-10


def test_train_state_bytes_are_flat_in_T_and_counted():
    net = SNN(6, [10, 8], 4, alpha=0.5, lam=0.7, learn_lam=True, dtype=D)
    sizes = {}
    for credit in ("same-step", "next", "cascade"):
        rule = SOLSA(net, "mse", credit=credit, backend="reference")
        per_T = []
        for T in (30, 300):
            rule.sequence(torch.randn(T, 2, 6, dtype=D), torch.tensor([1, 3]))
            per_T.append(rule.train_state_bytes())
        assert per_T[0] == per_T[1], credit
        sizes[credit] = per_T[0]
    assert sizes["same-step"] < sizes["next"] < sizes["cascade"]
    # next: [q, u] for e [B,10,6], m, n [B,10] (layer 1) and e [B,8,10], m, n [B,8] (layer 2); α per layer: a [B,N]
    B, bytes_ = 2, 8
    layer1 = 2 * B * (10 * 6 + 3 * 10)
    layer2 = 2 * B * (8 * 10 + 3 * 8)
    assert sizes["next"] - sizes["same-step"] == (layer1 + layer2) * bytes_


def test_lagged_surrogate_of_a_constant_is_that_constant():
    B, N = 2, 3
    eps = torch.full((B, N), 0.3, dtype=D)
    alpha, d = torch.tensor(0.5, dtype=D), torch.full((B,), 0.6, dtype=D)
    qE, uE, qN, uN = (torch.zeros(B, N, dtype=D) for _ in range(4))
    for t in range(5):
        qE, qN = synaptic_credit(qE, eps, alpha), synaptic_credit(qN, torch.ones_like(eps), alpha)
        uE, uN = membrane_credit(uE, qE, d), membrane_credit(uN, qN, d)
        expected = torch.zeros_like(eps) if t == 0 else eps  # no lag at the first step
        assert torch.allclose(lagged_surrogate(uE, uN, eps), expected)
    assert torch.allclose(uN[0, 0], torch.tensor(sum(sum(0.5**i * 0.6**(r - i) for i in range(r + 1))
                                                     for r in range(5)), dtype=D))


def test_rule_registry_has_the_credit_modes():
    assert RULES["solsa-samestep"].options == {"credit": "same-step"}
    assert RULES["solsa-next"].options == {"credit": "next"}
    # the default (chosen on the suite's validation accuracy): the rule, the class and the config agree
    assert RULES["solsa"].options == {"credit": "cascade"} and SOLSA(SNN(2, [3], 2)).credit == "cascade"
    assert rule_credit(TrainConfig()) == "cascade" and rule_credit(TrainConfig(rule="bptt")) is None


def test_cli_two_layer_leaky_readout_is_exact(capsys):
    argv = ["gradcheck", "--layers", "2", "--readout", "leaky", "--lam-granularity", "layer", "--credit", "cascade",
            "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["max_rel_error"]) == set(ALL)
    assert max(report["max_rel_error"].values()) < 1e-8
    assert report["same_step"]["max_rel_error"]["weight"] > 1e-3


def test_cli_seeds_json_keys(capsys):
    assert main(["gradcheck", "--layers", "3", "--credit", "next", "--seeds", "2", "--T", "20", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["seeds"] == 2 and report["credit"] == "next"
    for key in ("per_layer_cosine_mean", "per_layer_sign_agreement"):
        assert set(report[key]) == set(ALL) and all(len(v) == 3 for v in report[key].values())
        assert set(report["same_step"][key]) == set(ALL)
    assert all(0 <= s <= 2 for v in report["per_layer_sign_agreement"].values() for s in v)


def test_cli_table_shows_same_step_beside(capsys):
    assert main(["gradcheck", "--layers", "2", "--credit", "next", "--T", "20"]) == 0
    out = capsys.readouterr().out
    assert "next cosine" in out and "same-step cosine" in out


def test_cli_rejects_unknown_credit(capsys):
    with pytest.raises(SystemExit):
        main(["gradcheck", "--credit", "future"])


def test_mass_correction_is_the_spatial_error_when_every_decay_is_the_mean():
    from solsa.functional import decay_mass, mass_corrected_error, spatial_error

    torch.manual_seed(1)
    B, n_up, n_k = 3, 4, 5
    delta, W, beta = torch.randn(B, n_up, dtype=D), torch.randn(n_up, n_k, dtype=D), torch.rand(n_k, dtype=D) + 0.5
    d_same, d_diff = torch.full((B, n_up), 0.6, dtype=D), torch.rand(B, n_up, dtype=D)
    M_same, M_diff = torch.zeros(B, n_up, dtype=D), torch.zeros(B, n_up, dtype=D)
    M_bar = torch.zeros(B, dtype=D)
    for _ in range(6):
        M_same, M_diff = decay_mass(M_same, d_same), decay_mass(M_diff, d_diff)
        M_bar = decay_mass(M_bar, torch.full((B,), 0.6, dtype=D))
    assert torch.allclose(M_bar, torch.full((B,), sum(0.6**k for k in range(6)), dtype=D))
    plain = spatial_error(delta, W, beta)
    assert torch.allclose(mass_corrected_error(delta, M_same, M_bar, W, beta), plain)
    assert not torch.allclose(mass_corrected_error(delta, M_diff, M_bar, W, beta), plain)


@pytest.mark.parametrize("backend", ["reference", pytest.param("fused", marks=needs_kernel)])
def test_stage_through_a_memoryless_readout_is_stored_once(backend, monkeypatch):
    """Readout λ = 0, not learned (the trainer's default): ``u = q`` in every stage through it, one tensor;
    the gradient is that of the two-tensor filter (zero_decay forced False) to rounding, bytes fewer."""
    import solsa.rules.solsa as solsa_rule
    from solsa.rules.credit import zero_decay

    torch.manual_seed(3)
    net = SNN(6, [9, 7], 4, readout="leaky", readout_lam=0.0, alpha=0.5, beta=1.2, lam=0.6,
              filter_granularity="channel", weight_scale=2.5, dtype=D)
    assert zero_decay(net.layers[-1]) and not zero_decay(net.layers[0])
    x, y = torch.randn(25, 3, 6, dtype=D), torch.tensor([0, 3, 1])
    state = {k: v.clone() for k, v in net.state_dict().items()}
    once = _fused_run(backend, net, x, y, "ce", True, "cascade", flush_at=(8,), opt_at=(15,))
    rule = SOLSA(net, "ce", credit="cascade", backend=backend)
    rule.reset(3)
    stages = rule.traces[1].credit.stages[0].values()
    assert all(pair[1] is pair[0] for pair in stages)
    monkeypatch.setattr(solsa_rule, "zero_decay", lambda layer: False)
    net.load_state_dict(state)
    twice = _fused_run(backend, net, x, y, "ce", True, "cascade", flush_at=(8,), opt_at=(15,))
    assert torch.allclose(once[0], twice[0], rtol=0, atol=1e-12)
    assert ((once[1] - twice[1]).abs().max() / once[1].abs().max()).item() < 1e-12
    B, bytes_ = 3, 8
    # layer 1: its level-1 stage (e, a per channel [B,9,6]; n [B,9]); layer 2: stage e, a [B,7,9], n, and lag u's
    saved = B * (2 * 9 * 6 + 9) + B * (2 * 7 * 9 + 7) + 2 * B * 7
    assert twice[2] - once[2] == saved * bytes_
