"""Readout scoring over time (mean, last, max), the run options of ALIF/recurrent/native, old checkpoints."""

import json

import pytest
import torch

from solsa import SNN
from solsa.cli import main
from solsa.config import TrainConfig
from solsa.evaluation import network_from_checkpoint
from solsa.factories import build_network, network_options
from solsa.io import save_checkpoint
from solsa.rules import BPTT, OSTL, SOLSA, get_rule, sequence_weights

D = torch.float64
NEW_OPTIONS = ("neuron", "adapt", "rho", "recurrent", "readout_score")


def test_scores_mean_last_max_over_the_valid_steps():
    out = torch.tensor([[[1.0, 0.0]], [[0.0, 3.0]], [[2.0, 0.0]], [[9.0, 9.0]]], dtype=D)  # [T=4, B=1, C=2]
    mask = torch.tensor([[1.0], [1.0], [1.0], [0.0]], dtype=D)  # the last step is padding
    net = SNN(1, [], 2, readout="leaky")
    assert net.scores(out, mask).tolist() == [[1.0, 1.0]]
    net.readout_score = "last"
    assert net.scores(out, mask).tolist() == [[2.0, 0.0]]
    net.readout_score = "max"
    assert net.scores(out, mask).tolist() == [[2.0, 3.0]]


def test_sequence_weights_follow_the_score():
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]], dtype=D)
    assert sequence_weights(mask).tolist() == sequence_weights(mask, "max").tolist()
    assert sequence_weights(mask, "mean").sum().item() == pytest.approx(1.0)
    assert sequence_weights(mask, "last").tolist() == [[0.0, 0.0], [0.0, 0.5], [0.5, 0.0]]
    with pytest.raises(ValueError, match="^readout_score"):
        sequence_weights(mask, "median")


@pytest.mark.parametrize("rule", [SOLSA, OSTL])
def test_loss_at_the_last_step_keeps_one_layer_exact(rule):
    torch.manual_seed(1)
    net = SNN(5, [], 3, readout="spike", alpha=0.5, lam=0.7, weight_scale=2.5, neuron="alif", readout_score="last",
              learn_alpha=rule is SOLSA, learn_beta=rule is SOLSA, dtype=D)
    x, y = torch.randn(30, 4, 5, dtype=D), torch.randint(0, 3, (4,))
    mask = torch.ones(30, 4, dtype=D)
    mask[20:, 1] = 0
    grads = []
    for r in (rule, BPTT):
        net.zero_grad(set_to_none=True)
        r(net, "mse").sequence(x, y, mask)
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None]))
    assert ((grads[0] - grads[1]).abs().max() / grads[1].abs().max()).item() < 1e-10


def test_run_options_reach_the_network_and_old_checkpoints_load(tmp_path):
    cfg = TrainConfig(neuron="alif", adapt=0.4, rho=0.8, recurrent=True, readout_score="max", hidden=(5,))
    net = build_network(cfg, 3, 2)
    hidden, out = net.layers
    assert hidden.adaptive and hidden.recurrent and hidden.config.adapt == 0.4 and hidden.config.rho == 0.8
    assert not out.recurrent and not out.adaptive  # the leaky readout has neither
    assert net.readout_score == "max"
    with pytest.raises(ValueError, match="^rho"):
        TrainConfig(rho=1.0)
    with pytest.raises(ValueError, match="^readout_score"):
        TrainConfig(readout_score="median")
    # a checkpoint written before these options existed: its config lacks them, its state dict is a LIF net's
    old = {k: v for k, v in TrainConfig(hidden=(5,)).to_dict().items() if k not in NEW_OPTIONS}
    state = build_network(TrainConfig(hidden=(5,)), 3, 2).state_dict()
    save_checkpoint(tmp_path / "old.pt", state, {"train": old, "n_inputs": 3, "n_classes": 2})
    loaded, loaded_cfg, _ = network_from_checkpoint(tmp_path / "old.pt")
    assert loaded_cfg.neuron == "lif" and not loaded_cfg.recurrent and loaded.readout_score == "mean"
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())


def test_native_model_is_recurrent_alif_for_every_rule():
    for rule in ("solsa", "eprop", "bptt"):
        opts = network_options(TrainConfig(rule=rule, model="native"))
        assert opts["neuron"] == "alif" and opts["recurrent"] and opts["alpha"] == 0.0 and not opts["learn_alpha"]
    assert get_rule("eprop").model_options("paper").get("neuron") is None  # eprop@paper is unchanged


def test_cli_trains_recurrent_alif_with_last_step_scoring(npz_task, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", npz_task, "--out", str(out), "--hidden", "8", "--epochs", "1", "--batch-size", "8",
                 "--quiet", "--neuron", "alif", "--recurrent", "true", "--readout-score", "last",
                 "--rule", "eprop"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["neuron"] == "alif" and metrics["config"]["readout_score"] == "last"
    capsys.readouterr()
    assert main(["evaluate", str(out / "checkpoint.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_every_rule_runs_on_the_native_model_as_a_compare_row():
    from solsa.compare import check_rules, plan_entries

    rules = ["solsa", "bptt", "eprop", "ottt", "ostl"]
    assert plan_entries(rules, ["native"]) == [(r, r, "native") for r in rules]
    # beside the paper's and the full model, native is one more row and the other labels stay
    assert plan_entries(["solsa", "eprop"], ["paper", "full", "native"]) == [
        ("solsa", "solsa", "full"), ("solsa@native", "solsa", "native"), ("eprop@paper", "eprop", "paper"),
        ("eprop@full", "eprop", "full"), ("eprop@native", "eprop", "native")]
    check_rules(TrainConfig(model="native", hidden=(4,)), rules)  # every rule builds on it


def test_stream_facade_learns_on_recurrent_alif():
    from solsa.stream import StreamClassifier

    torch.manual_seed(0)
    clf = StreamClassifier(SNN(2, [6], 2, readout="leaky", neuron="alif", recurrent=True), "solsa", update_every=4)
    for t in range(12):
        clf.learn_one({"a": float(t % 2), "b": 1.0}, t % 2)
    assert clf.predict_one({"a": 1.0, "b": 1.0}) in (0, 1)
