"""The learned linear encoder (``--encoder linear``; solsa.linear_encoder): M = W·E, the chain rule for every rule."""

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from solsa import SNN, Learner
from solsa.cli import main
from solsa.config import TrainConfig
from solsa.evaluation import network_from_checkpoint
from solsa.factories import build_learner, build_network
from solsa.rules import BPTT, OSTL, OTTT, SOLSA, EProp
from solsa.tasks import encode, load_task
from solsa.training import train
from solsa.validation import OptionError

D = torch.float64


def _net(hidden, readout, encoder_channels=4, n_inputs=6, seed=1):
    torch.manual_seed(seed)
    return SNN(n_inputs, hidden, 3, readout=readout, readout_lam=0.6, alpha=0.6, beta=1.3, lam=0.7, weight_scale=2.5,
               encoder_channels=encoder_channels, dtype=D)


def _data(T=40, B=5, C=6, seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, C, generator=g, dtype=D), torch.randint(0, 3, (B,), generator=g)


class _Product(nn.Module):
    """weight = W @ E as a torch parametrisation: autograd differentiates through the product itself."""

    def __init__(self, W, E):
        super().__init__()
        self.W0, self.E0 = W, E

    def forward(self, W, E):
        return W @ E

    def right_inverse(self, M):
        return self.W0, self.E0


def _plain(net, hidden, readout):
    """``net`` without its encoder: layer 0's weight is the plain leaf M = W·E."""
    plain = _net(hidden, readout, encoder_channels=None)
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("encoder.")})
    return plain


def _autograd(net, hidden, readout, x, y, loss):
    """(G_W, G_E, other grads) by torch.autograd through W·E (BPTT's reference backend: plain PyTorch)."""
    plain = _plain(net, hidden, readout)
    parametrize.register_parametrization(plain.layers[0], "weight",
                                         _Product(net.encoder.weight.detach().clone(), net.encoder.matrix.detach().clone()))
    BPTT(plain, loss, backend="reference").sequence(x, y)
    p = plain.layers[0].parametrizations.weight
    rest = [q.grad for name, q in plain.named_parameters() if "parametrizations" not in name]
    return p.original0.grad, p.original1.grad, rest


def _grads(net):
    return (net.encoder.weight.grad, net.encoder.matrix.grad,
            [q.grad for name, q in net.named_parameters() if not name.startswith("encoder.") and name != "layers.0.weight"])


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


CASES = [([], "spike", "mse"), ([7], "leaky", "ce")]  # where SOLSA is exact: one layer; one hidden + leaky readout


@pytest.mark.parametrize("hidden,readout,loss", CASES)
@pytest.mark.parametrize("rule,backend", [(SOLSA, "auto"), (SOLSA, "reference"), (BPTT, "auto"), (BPTT, "reference")])
def test_factors_gradient_equals_autograd_through_the_product(hidden, readout, loss, rule, backend):
    net = _net(hidden, readout)
    x, y = _data()
    g_w, g_e, rest = _autograd(net, hidden, readout, x, y, loss)
    rule(net, loss, backend=backend).sequence(x, y)
    assert net.layers[0].weight.grad is None  # moved onto the factors
    got_w, got_e, got_rest = _grads(net)
    assert g_w.abs().max() > 1e-6 and g_e.abs().max() > 1e-6
    assert _rel(got_w, g_w) < 1e-10 and _rel(got_e, g_e) < 1e-10
    for a, b in zip(got_rest, rest):
        assert (a is None) == (b is None)
        if b is not None and b.abs().max() > 0:
            assert _rel(a, b) < 1e-10


@pytest.mark.parametrize("rule", [SOLSA, EProp, OTTT, OSTL, BPTT])
@pytest.mark.parametrize("hidden", [[], [7]])
def test_every_rule_gets_the_chain_rule_of_its_own_first_layer_gradient(rule, hidden):
    """Whatever G_M a rule defines (e-prop, OTTT, OSTL: their own approximations), the encoder net gets exactly
    G_W = G_M Eᵀ and G_E = Wᵀ G_M, and every other parameter the gradient of the plain net with weight M."""
    net = _net(hidden, "spike")
    x, y = _data()
    plain = _plain(net, hidden, "spike")
    rule(plain, "mse").sequence(x, y)
    g_m = plain.layers[0].weight.grad
    rule(net, "mse").sequence(x, y)
    W, E = net.encoder.weight.detach(), net.encoder.matrix.detach()
    assert g_m.abs().max() > 1e-8
    assert _rel(net.encoder.weight.grad, g_m @ E.T) < 1e-12
    assert _rel(net.encoder.matrix.grad, W.T @ g_m) < 1e-12
    others = [q.grad for name, q in plain.named_parameters() if name != "layers.0.weight"]
    for a, b in zip(_grads(net)[2], others):
        assert (a is None) == (b is None) and (b is None or torch.equal(a, b))


def test_initialisation_keeps_the_first_layers_weight_variance():
    for K, C in ((16, 12), (4, 40), (40, 4)):
        torch.manual_seed(0)
        net = SNN(C, [3000], 2, encoder_channels=K, weight_scale=2.0, dtype=D)
        E = net.encoder.matrix.detach()
        assert torch.allclose((E ** 2).sum(), torch.tensor(float(K), dtype=D))
        gram = E @ E.T if K <= C else E.T @ E
        assert torch.allclose(gram, gram.diagonal().mean() * torch.eye(min(K, C), dtype=D), atol=1e-10)
        M = net.layers[0].weight.detach()
        assert torch.equal(M, net.encoder.weight.detach() @ E)
        assert abs(M.var().item() / (4.0 / C) - 1) < 0.1, (K, C, M.var().item() * C / 4)


def test_update_steps_the_factors_and_keeps_M_equal_to_their_product():
    cfg = TrainConfig(task="x", hidden=(7,), encoder="linear", task_options={"channels": 5}, dtype="float64",
                      optimizer="sgd", lr=0.1)
    net = build_network(cfg, 6, 3)
    learner = build_learner(cfg, net)
    stepped = {id(p) for g in learner.optimizer.param_groups for p in g["params"]}
    assert id(net.layers[0].weight) not in stepped
    assert {id(net.encoder.weight), id(net.encoder.matrix)} <= stepped
    before = [p.detach().clone() for p in (net.encoder.weight, net.encoder.matrix)]
    x, y = _data()
    learner.sequence(x, y)
    assert all(not torch.equal(a, b) for a, b in zip(before, (net.encoder.weight, net.encoder.matrix)))
    assert torch.allclose(net.layers[0].weight, net.encoder.weight @ net.encoder.matrix, rtol=0, atol=1e-14)


def test_state_dict_round_trips_the_encoder():
    net, x = _net([7], "spike"), _data()[0]
    other = _net([7], "spike", seed=5)
    assert not torch.equal(other.encoder.matrix, net.encoder.matrix)
    other.load_state_dict(net.state_dict())
    assert torch.equal(other.encoder.matrix, net.encoder.matrix) and torch.equal(other(x), net(x))


def test_nir_export_folds_M_exactly():
    pytest.importorskip("nir")
    from solsa.interop import NIRCompatibilityWarning, from_nir, to_nir

    net, x = _net([7], "spike"), _data()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRCompatibilityWarning)
        back = from_nir(to_nir(net), dtype=D)
    assert back.encoder is None  # the graph holds M = W·E: an ordinary first layer
    with torch.no_grad():
        out, ref = back(x), net(x)
    assert ref.abs().sum() > 0 and torch.allclose(out, ref, rtol=0, atol=1e-12)


def test_listed_with_options_and_bad_options_are_named(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "linear" in out and "channels=16, base=None, base_options=None" in out
    for options, name in (({"channels": 0}, "channels"), ({"channels": 2.5}, "channels"),
                          ({"base": "nope"}, "base"), ({"base": "linear"}, "base"),
                          ({"base_options": "taps:9"}, "base_options")):
        with pytest.raises(OptionError) as err:
            load_task("uea:ItalyPowerDemand", encoder="linear", **options)
        assert err.value.option == name
    with pytest.raises(OptionError, match="channels"):
        build_network(TrainConfig(task="x", encoder="linear", task_options={"channels": -1}), 3, 2)


def test_data_side_is_the_tasks_default_encoder():
    default = load_task("uea:ItalyPowerDemand", seed=0)
    lin = load_task("uea:ItalyPowerDemand", seed=0, encoder="linear", channels=3)
    assert default.info["encoder"] == "delay"
    assert lin.info["encoder_options"] == {"channels": 3, "base": "delay", "base_options": {}}
    assert torch.equal(lin.train.x, default.train.x) and torch.equal(lin.val.x, default.val.x)
    direct = load_task("uea:ItalyPowerDemand", seed=0, encoder="linear", base="direct")
    assert direct.n_inputs == 1
    wide = load_task("uea:ItalyPowerDemand", seed=0, encoder="linear", base_options={"taps": 3, "dilations": 1})
    assert wide.n_inputs == 3 and wide.info["encoder_options"]["base_options"] == {"taps": 3, "dilations": 1}
    digits = load_task("digits", seed=0, encoder="linear", channels=3)  # the task's defaults for its base too
    assert torch.equal(digits.train.x, load_task("digits", seed=0).train.x)
    x, n = torch.randn(9, 2, 3), torch.tensor([9, 4])
    assert torch.equal(encode("linear", x, n)[0], encode("direct", x, n)[0])  # no task: base direct


def test_train_smoke_and_checkpoint_reload(tmp_path):
    cfg = TrainConfig(task="uea:ItalyPowerDemand", encoder="linear", task_options={"channels": 8}, epochs=2)
    m = train(cfg, tmp_path / "run", progress=False, log=None)
    net, _, ckpt = network_from_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert net.encoder is not None and net.encoder.matrix.shape == (8, 11)
    assert torch.allclose(net.layers[0].weight, net.encoder.weight @ net.encoder.matrix, rtol=0, atol=1e-6)
    again, _, _ = network_from_checkpoint(tmp_path / "run" / "checkpoint.pt")
    task = load_task("uea:ItalyPowerDemand", seed=0, encoder="linear", channels=8)
    with torch.no_grad():
        assert torch.equal(net(task.test.x), again(task.test.x))
    result = main(["evaluate", str(tmp_path / "run" / "checkpoint.pt")])
    assert result == 0 and m["test_accuracy"] == ckpt["config"]["test_accuracy"]


def test_c_export_folds_M_and_runs_the_base_on_the_device(tmp_path):
    """Inference: E folded into layer 0's weight, the delay base built in C, classifying as PyTorch; the C
    learner (which would train M, not W and E) is refused by name."""
    from solsa.export_c import CExportError, export_checkpoint
    from solsa.export_c.native import export_accuracy, find_compiler

    cfg = TrainConfig(task="uea:ItalyPowerDemand", encoder="linear", task_options={"channels": 4}, epochs=1)
    train(cfg, tmp_path / "run", progress=False, log=None)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    with pytest.raises(CExportError, match="linear encoder cannot be exported as a C learner") as err:
        export_checkpoint(ckpt, tmp_path / "learn", learn=True)
    assert err.value.option == "encoder"
    m = export_checkpoint(ckpt, tmp_path / "c")
    assert m["input"]["encoder"] == "delay" and m["n_inputs"] == 1 and m["n_net_inputs"] == 11
    if find_compiler() is None:
        pytest.skip("no C compiler (cc) on this machine")
    r = export_accuracy(ckpt, tmp_path / "inf", limit=60)
    assert r["same_class"] == 60 and r["max_output_difference"] < 1e-5, r
    cfg = TrainConfig(task="uea:ItalyPowerDemand", encoder="linear", task_options={"base": "bank"}, epochs=1)
    train(cfg, tmp_path / "bank", progress=False, log=None)
    with pytest.raises(CExportError, match="the linear encoder's base 'bank' cannot run on the device"):
        export_checkpoint(tmp_path / "bank" / "checkpoint.pt", tmp_path / "c2")


def test_learner_without_optimizer_only_moves_the_gradient():
    net = _net([], "spike")
    x, y = _data()
    rule = SOLSA(net, "mse")
    Learner(rule).sequence(x, y)
    first = net.encoder.matrix.grad.clone()
    Learner(rule).sequence(x, y)
    assert torch.allclose(net.encoder.matrix.grad, 2 * first) and net.layers[0].weight.grad is None


def test_stream_command_trains_the_factors(tmp_path):
    out = tmp_path / "stream"
    assert main(["stream", "--task", "uea:ItalyPowerDemand", "--encoder", "linear", "--task-option", "channels=4",
                 "--out", str(out), "--quiet"]) == 0
    from solsa.io import load_checkpoint

    state = load_checkpoint(out / "checkpoint.pt")["state_dict"]["classifier"]["net"]
    W, E, M = state["encoder.weight"], state["encoder.matrix"], state["layers.0.weight"]
    assert E.shape == (4, 11) and torch.allclose(M, W @ E, rtol=0, atol=1e-6)
