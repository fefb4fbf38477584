"""The three enhancements and the training loop, on a tiny generated task."""

import json

import pytest
import torch

import solsa.rules.solsa as solsa_rule
from solsa import SNN
from solsa.rules import SOLSA
from solsa.schedule import UpdateSchedule
from solsa.tasks import Split, Task
from solsa.config import TrainConfig
from solsa.early_stop import EarlyStop
from solsa.learner import Learner
from solsa.training import train


def tiny_task(n=48, T=12, seed=0):
    """Two classes: channel group 0 or 1 fires during the first half; easy and fast."""
    g = torch.Generator().manual_seed(seed)

    def split(k):
        y = torch.arange(k) % 2
        x = (torch.rand(T, k, 6, generator=g) < 0.1).float()
        for i in range(k):
            x[: T // 2, i, 3 * y[i] : 3 * y[i] + 3] = (torch.rand(T // 2, 3, generator=g) < 0.7).float()
        return Split(x, y.long(), torch.full((k,), T, dtype=torch.long))

    return Task("tiny", "classification", 6, 2, split(n), split(16), split(16), {})


class SpyOptimizer(torch.optim.SGD):
    """Records the rule's time step at each optimizer step."""

    def __init__(self, params, clock):
        super().__init__(params, lr=0.01)
        self.clock, self.calls = clock, []

    def step(self, closure=None):
        self.calls.append(self.clock["t"])
        return super().step(closure)


def run_with_schedule(spec, T=12):
    task = tiny_task(T=T)
    net = SNN(6, [8], 2)
    rule = SOLSA(net, "mse")
    clock = {"t": -1}
    original = rule.step

    def counting_step(*a, **k):
        clock["t"] += 1
        return original(*a, **k)

    rule.step = counting_step
    whole = rule.run_sequence

    def counting_run(x, *a, **k):  # the learner hands stretches of steps up to each update point
        clock["t"] += x.shape[0]
        return whole(x, *a, **k)

    rule.run_sequence = counting_run
    opt = SpyOptimizer(net.parameters(), clock)
    x, y = task.train.x[:, :4], task.train.y[:4]
    Learner(rule, opt).sequence(x, y, torch.ones(T, 4), points=UpdateSchedule(spec).points(T))
    return opt.calls


@pytest.mark.parametrize("spec,expected", [("end", [11]), ("every:4", [3, 7, 11]), ("every:5", [4, 9, 11])])
def test_optimizer_steps_exactly_at_scheduled_points(spec, expected):
    assert run_with_schedule(spec) == expected


def test_schedule_validation():
    for bad in ("sometimes", "every:0", "every:x", "search:", "end:3"):
        with pytest.raises(ValueError, match="schedule"):
            UpdateSchedule(bad)


def test_search_adds_strongest_offset_until_k():
    s = UpdateSchedule("search:3", period=2)
    for epoch in (1, 2):
        s.record(10, 4, 5.0)  # offset 5
        s.record(10, 8, 1.0)  # offset 1
        s.end_epoch(epoch)
    assert s.offsets == [0, 5]
    for epoch in (3, 4):
        s.record(10, 8, 1.0)
        s.end_epoch(epoch)
    assert s.offsets == [0, 5, 1] and not s.searching
    assert s.points(10) == {9, 4, 8}
    assert s.points(3) == {2, 1}  # offsets beyond a short sequence are skipped


def test_search_schedule_in_training_ends_with_k_points_including_last():
    m = train(TrainConfig(task="tiny", hidden=(8,), epochs=4, schedule="search:3", search_period=1, lr=0.01),
              task=tiny_task(), progress=False)
    offsets = m["schedule"]["offsets_from_end"]
    assert len(offsets) == 3 and 0 in offsets
    assert m["update_steps"] > 0


def test_early_stop_skips_the_rest_of_the_sequence(monkeypatch):
    calls = {"n": 0}
    real = solsa_rule.lif_step

    def counted(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(solsa_rule, "lif_step", counted)
    task = tiny_task(T=40)
    torch.manual_seed(0)
    net = SNN(6, [8], 2)
    rule = SOLSA(net, "mse", backend="reference")  # the reference path calls lif_step once per layer and step
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    x, y = task.train.x[:, :4], task.train.y[:4]
    # rho = p = tiny: any batch counts as "confidently right", so the run stops at the 2nd check
    run = Learner(rule, opt).sequence(x, y, torch.ones(40, 4), points=UpdateSchedule("every:5").points(40),
                                      early_stop=EarlyStop(rho=1e-9, p=1e-9, h=2))
    assert run.steps == 10 and run.updates == 2
    assert calls["n"] == 10 * len(net.layers)  # no forward step after the stop
    full = Learner(rule, opt).sequence(x, y, torch.ones(40, 4), points=UpdateSchedule("every:5").points(40))
    assert full.steps == 40


def test_early_stop_fraction_recorded():
    m = train(TrainConfig(task="tiny", hidden=(8,), epochs=3, schedule="every:3", early_stop=True,
                          early_stop_warmup=0, early_stop_rho=0.01, early_stop_p=0.01, early_stop_h=1, lr=0.01),
              task=tiny_task(), progress=False)
    assert m["steps_processed_fraction"] < 0.5


def test_alpha_beta_move_and_stay_in_range():
    torch.manual_seed(0)
    m = train(TrainConfig(task="tiny", hidden=(8,), epochs=6, alpha=0.5, beta=1.0, lr=0.05, schedule="every:2",
                          filter_granularity="channel"), task=tiny_task(), progress=False)
    alphas = [a for row in m["learned_filters"] for a in row["alpha"]]
    betas = [b for row in m["learned_filters"] for b in row["beta"]]
    assert any(abs(a - 0.5) > 1e-3 for a in alphas) and any(abs(b - 1.0) > 1e-3 for b in betas)
    assert all(0.0 <= a <= 0.999 + 1e-6 for a in alphas) and all(b >= 0.01 - 1e-7 for b in betas)


def test_clamp_keeps_filters_valid():
    net = SNN(3, [], 2, alpha=0.5)
    with torch.no_grad():
        net.layers[0].alpha.fill_(1.7)
        net.layers[0].beta.fill_(-3.0)
    net.clamp_()
    assert net.layers[0].alpha.item() == pytest.approx(0.999) and net.layers[0].beta.item() == pytest.approx(0.01)


@pytest.mark.parametrize("rule", ["solsa", "bptt"])
def test_training_learns_tiny_task_and_is_reproducible(rule):
    cfg = TrainConfig(task="tiny", rule=rule, hidden=(8,), epochs=8, lr=0.01, batch_size=8)
    m1 = train(cfg, task=tiny_task(), progress=False)
    m2 = train(cfg, task=tiny_task(), progress=False)
    assert m1["test_accuracy"] >= 0.8
    for key in ("test_accuracy", "val_accuracy", "train_accuracy", "best_epoch", "update_steps", "train_state_bytes"):
        assert m1[key] == m2[key]


def test_search_schedule_rejected_for_bptt():
    with pytest.raises(ValueError, match="does not report per step"):
        train(TrainConfig(task="tiny", rule="bptt", hidden=(4,), epochs=1, schedule="search:2"),
              task=tiny_task(), progress=False)


def test_run_files_written_and_out_protected(tmp_path):
    out = tmp_path / "run"
    cfg = TrainConfig(task="tiny", hidden=(8,), epochs=2, lr=0.01)
    m = train(cfg, out, task=tiny_task(), progress=False)
    for name in ("metrics.json", "history.csv", "checkpoint.pt", "report.png"):
        assert (out / name).is_file()
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("task", "rule", "seed", "epochs", "train_accuracy", "val_accuracy", "test_accuracy",
                "best_test_accuracy", "wall_seconds", "train_state_bytes", "steps_processed_fraction",
                "update_steps", "config"):
        assert key in saved
    assert saved["test_accuracy"] == m["test_accuracy"]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert "state_dict" in ckpt
    header = (out / "history.csv").read_text().splitlines()[0]
    assert "alpha_mean" in header and "steps_processed_fraction" in header
    with pytest.raises(FileExistsError, match="--force"):
        train(cfg, out, task=tiny_task(), progress=False)
    train(cfg, out, force=True, task=tiny_task(), progress=False)


def test_config_validation():
    with pytest.raises(ValueError, match="unknown rule 'sgd-magic'; valid rules: solsa, bptt"):
        TrainConfig(rule="sgd-magic")
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="unknown option"):
        TrainConfig.from_dict({"epochz": 3})


def test_filter_lr_scale_gives_the_neuron_dynamics_their_own_learning_rate():
    from solsa.factories import build_learner, build_network
    from solsa.validation import OptionError

    cfg = TrainConfig(hidden=(6,), learn_lam=True, lr=0.01, filter_lr_scale=0.1, filter_update="linear")
    learner = build_learner(cfg, build_network(cfg, 3, 2))
    groups = learner.optimizer.param_groups
    assert [g["lr"] for g in groups] == [0.01, pytest.approx(0.001)]
    dynamics = {id(p) for p in groups[1]["params"]}
    for name, p in learner.rule.net.named_parameters():
        assert (id(p) in dynamics) == (name.rpartition(".")[2] in ("alpha", "beta", "lam")), name
    # one Adam step moves α by lr × scale, the weights by lr
    net = learner.rule.net
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    learner.optimizer.step()
    assert (net.layers[0].weight - before["layers.0.weight"]).abs().max().item() == pytest.approx(0.01, rel=1e-3)
    assert (net.layers[0].beta - before["layers.0.beta"]).abs().max().item() == pytest.approx(0.001, rel=1e-3)
    with pytest.raises(OptionError, match="filter_lr_scale"):
        TrainConfig(filter_lr_scale=0.0)
