"""Real-series input (issue 16): normalisation modes and bad input (NaN, unequal lengths, constant
channels, a single class), each with a named error or documented handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from solsa.rules import RULES
from solsa.tune.folds import fold_tasks
from solsa.tasks import load_task
from solsa.tasks._prep import check_normalize, series_normalization
from test_tasks import _write_ts


def _valid(split) -> torch.Tensor:
    return torch.arange(split.x.shape[0])[:, None] < split.lengths[None, :]


def _uea(folder: Path, train: list[np.ndarray], labels: list[str], name: str = "Odd") -> str:
    _write_ts(folder, name, "TRAIN", train, labels)
    _write_ts(folder, name, "TEST", train[:4], labels[:4])
    return str(folder)


def _series(n: int = 12, seed: int = 0, constant: bool = False) -> tuple[list[np.ndarray], list[str]]:
    rng = np.random.default_rng(seed)
    train = [rng.normal(3.0, 2.0, size=(2, int(rng.integers(4, 10)))) for _ in range(n)]
    if constant:
        for s in train:
            s[1] = 5.0  # channel 1 never moves
    return train, ["a", "b"] * (n // 2)


def test_check_normalize_accepts_the_old_bool() -> None:
    assert check_normalize(True) == "channel" and check_normalize(False) == "none"
    assert check_normalize("series") == "series"
    with pytest.raises(ValueError, match="normalize must be one of channel, series, none"):
        check_normalize("zscore")


def test_series_normalization_known_values_and_padding() -> None:
    x = torch.zeros(4, 2, 1, dtype=torch.float64)
    x[:, 0, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    x[:2, 1, 0] = torch.tensor([7.0, 7.0])  # constant within its 2 valid steps
    out, constant = series_normalization(x, torch.tensor([4, 2]))
    s = np.sqrt(1.25)  # population std of 1..4
    assert torch.allclose(out[:, 0, 0], torch.tensor([-1.5, -0.5, 0.5, 1.5], dtype=torch.float64) / s)
    assert bool((out[:, 1, 0] == 0).all()) and int(constant) == 1


def test_uea_series_mode_standardises_each_sample(tmp_path: Path) -> None:
    train, labels = _series()
    path = _uea(tmp_path, train, labels)
    t = load_task("uea:Odd", extract_path=path, normalize="series")
    for split in (t.train, t.val, t.test):
        for n in range(len(split)):
            v = split.x[: int(split.lengths[n]), n].double()
            assert torch.allclose(v.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-5)
            assert torch.allclose(v.std(0, unbiased=False), torch.ones(2, dtype=torch.float64), atol=1e-5)
        assert bool((split.x[~_valid(split)] == 0).all())  # padding stays 0
    assert t.info["normalization"]["method"] == "z-score per sample and channel"
    assert load_task("uea:Odd", extract_path=path, normalize=True).info == \
        load_task("uea:Odd", extract_path=path, normalize="channel").info
    assert load_task("uea:Odd", extract_path=path, normalize="none").info["normalization"] is None


@pytest.mark.parametrize("mode", ["channel", "series"])
def test_uea_constant_channel_maps_to_zero_not_nan(tmp_path: Path, mode: str) -> None:
    train, labels = _series(constant=True)
    t = load_task("uea:Odd", extract_path=_uea(tmp_path, train, labels), normalize=mode)
    for split in (t.train, t.val, t.test):
        assert bool(torch.isfinite(split.x).all())
        assert bool((split.x[..., 1] == 0).all())
        assert bool((split.x[..., 0] != 0).any())


def test_uea_unequal_lengths_are_padded_and_recorded(tmp_path: Path) -> None:
    train, labels = _series()
    t = load_task("uea:Odd", extract_path=_uea(tmp_path, train, labels), val_fraction=0.25)
    lengths = sorted(s.shape[1] for s in train)
    got = sorted(torch.cat([t.train.lengths, t.val.lengths]).tolist())
    assert got == lengths and t.info["min_length"] == min(lengths)
    assert bool((t.train.x[~_valid(t.train)] == 0).all())


def test_uea_nan_inside_a_series_is_a_named_error(tmp_path: Path) -> None:
    train, labels = _series()
    train[3][0, 1] = np.nan
    with pytest.raises(ValueError, match="'Odd'.*sample 3 has missing or non-finite values inside the series"):
        load_task("uea:Odd", extract_path=_uea(tmp_path, train, labels))


def test_uea_single_class_is_a_named_error(tmp_path: Path) -> None:
    train, _ = _series()
    with pytest.raises(ValueError, match="'Odd' has fewer than 2 classes in its training split"):
        load_task("uea:Odd", extract_path=_uea(tmp_path, train, ["a"] * len(train)))


def test_npz_series_mode_and_constant_channel(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(2.0, 3.0, size=(10, 6, 2))
    X[:, :, 1] = 4.0
    np.savez(tmp_path / "d.npz", X=X, y=np.arange(10) % 2)
    for mode in ("channel", "series", True):
        t = load_task(f"npz:{tmp_path / 'd.npz'}", normalize=mode)
        assert bool(torch.isfinite(t.train.x).all()) and bool((t.train.x[..., 1] == 0).all())


def test_fold_with_a_single_training_class_is_a_named_error(tmp_path: Path) -> None:
    # class b has one sample: the fold that validates on it would train on class a alone
    train, _ = _series()
    t = load_task("uea:Odd", extract_path=_uea(tmp_path, train, ["a"] * 11 + ["b"]))
    with pytest.raises(ValueError, match="cv_folds.*only one class"):
        fold_tasks(t, 2, seed=0)



def test_uea_delta_level_keeps_the_signal_of_one_channel(tmp_path: Path) -> None:
    one = [s[:1] for s in _series()[0]]
    _write_ts(tmp_path, "One", "TRAIN", one, ["a", "b"] * 6)
    _write_ts(tmp_path, "One", "TEST", one[:4], ["a", "b"] * 2)
    t = load_task("uea:One", extract_path=str(tmp_path), encoder="direct")
    level = load_task("uea:One", extract_path=str(tmp_path), encoder="delta", level=True)
    assert level.n_inputs == 3 and torch.equal(level.train.x[..., 2], t.train.x[..., 0])


# ---- the temporal filter bank and pooling (layer-0 heterogeneity) -------------------------------------------


def test_bank_known_values_and_channel_layout() -> None:
    from solsa.tasks.encoders import bank, bank_timescales

    assert torch.allclose(bank_timescales(3, 1.0, 4.0), torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64))
    x = torch.tensor([1.0, 0.0, 2.0, 0.0]).reshape(4, 1, 1).repeat(1, 2, 2)
    x[:, :, 1] *= -1.0
    out, new_len = bank(x, torch.tensor([4, 3]), n_per_channel=3, tau_min=1.0, tau_max=4.0)
    assert out.shape == (4, 2, 6) and torch.equal(new_len, torch.tensor([4, 3]))
    for k, a in enumerate((0.0, 0.5, 0.75)):  # y[t] = a y[t-1] + (1 - a) x[t], y[-1] = 0
        y, expected = 0.0, []
        for v in (1.0, 0.0, 2.0, 0.0):
            y = a * y + (1 - a) * v
            expected.append(y)
        assert torch.allclose(out[:, 0, k], torch.tensor(expected))
        assert torch.allclose(out[:, 0, 3 + k], -torch.tensor(expected))  # channel 1's copies follow channel 0's
    assert torch.equal(out[:, 0, 0], x[:, 0, 0])  # tau 1: the signal itself
    assert bool((out[3, 1] == 0).all())  # padding stays 0


def test_bank_default_tau_max_is_half_the_length_and_bad_options_are_named() -> None:
    from solsa.tasks.encoders import bank

    x = torch.zeros(40, 1, 1)
    x[0] = 1.0
    out, _ = bank(x, torch.tensor([40]), n_per_channel=2)
    assert torch.allclose(out[1, 0, 1] / out[0, 0, 1], torch.tensor(1 - 1 / 20.0))  # slowest τ = T/2 = 20 steps
    for opts, name in (({"n_per_channel": 0}, "n_per_channel"), ({"tau_min": 0.5}, "tau_min"),
                       ({"tau_min": 4.0, "tau_max": 2.0}, "tau_max")):
        with pytest.raises(ValueError, match=name):
            bank(x, torch.tensor([40]), **opts)


def test_uea_max_steps_pools_every_sample_by_one_factor(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    train = [rng.normal(size=(1, n)) for n in (10, 10, 7, 9, 10, 8, 10, 10)]
    path = _uea(tmp_path, train, ["a", "b"] * 4)
    full = load_task("uea:Odd", extract_path=path, normalize="none", val_fraction=0.25)
    pooled = load_task("uea:Odd", extract_path=path, normalize="none", val_fraction=0.25, max_steps=4)
    assert pooled.info["pool"] == 3 and full.info["pool"] == 1 and pooled.info["original_T"] == 10
    assert pooled.train.steps == 4
    assert torch.equal(pooled.train.lengths, (full.train.lengths + 2) // 3)
    n = int(torch.nonzero(full.train.lengths == 7)[0])  # a 7-step series: windows of 3, 3 and 1 steps
    v = full.train.x[:7, n, 0]
    assert torch.allclose(pooled.train.x[:3, n, 0], torch.stack([v[:3].mean(), v[3:6].mean(), v[6]]))
    assert bool((pooled.train.x[~_valid(pooled.train)] == 0).all())
    with pytest.raises(ValueError, match="max_steps"):
        load_task("uea:Odd", extract_path=path, max_steps=0)


@pytest.mark.parametrize("rule", list(RULES))
def test_every_rule_learns_from_a_banked_pooled_series(tmp_path: Path, rule: str) -> None:
    from solsa.config import TrainConfig
    from solsa.factories import build_learner, build_network
    from solsa.tasks import iterate_batches

    rng = np.random.default_rng(2)
    train = [rng.normal(size=(2, 30)) for _ in range(8)]
    task = load_task("uea:Odd", extract_path=_uea(tmp_path, train, ["a", "b"] * 4), encoder="bank",
                     n_per_channel=3, max_steps=10, val_fraction=0.25)
    assert task.n_inputs == 6 and task.train.steps == 10
    cfg = TrainConfig(rule=rule, hidden=(5,), dtype="float64")
    torch.manual_seed(0)
    net = build_network(cfg, task.n_inputs, task.n_classes)
    learner = build_learner(cfg, net)
    batch = next(iterate_batches(task.train, 4))
    learner.rule.reset(4)
    res = learner.sequence(batch.x.double(), batch.y, batch.mask)
    assert bool(torch.isfinite(torch.as_tensor(res.loss)))
    assert all(bool(torch.isfinite(p).all()) for p in net.parameters())
    assert net.layers[0].weight.grad is None or bool(torch.isfinite(net.layers[0].weight.grad).all())


def test_uea_default_is_the_delay_line_for_one_channel_and_direct_for_several(tmp_path: Path) -> None:
    from solsa.tasks.uea import DEFAULT_ENCODER, MAX_STEPS, UNIVARIATE_ENCODER

    rng = np.random.default_rng(3)
    one = [rng.normal(size=(1, 12)) for _ in range(8)]
    path = _uea(tmp_path / "one", one, ["a", "b"] * 4)
    t = load_task("uea:Odd", extract_path=path, val_fraction=0.25)
    assert (UNIVARIATE_ENCODER, DEFAULT_ENCODER, MAX_STEPS) == ("delay", "direct", 300)
    # T = 12: 5 taps, dilations 1 and 2 (max (12 - 1) // 4 = 2): delays 0, 1, 2, 3, 4, 6, 8
    assert t.info["encoder"] == "delay" and t.n_inputs == 7 and t.info["pool"] == 1
    assert load_task("uea:Odd", extract_path=path, encoder="direct").n_inputs == 1  # a named encoder wins
    train, labels = _series()  # two channels
    assert load_task("uea:Odd", extract_path=_uea(tmp_path / "two", train, labels)).info["encoder"] == "direct"
    assert load_task("uea:Odd", extract_path=path, max_steps="none").info["pool"] == 1
    # the default bound: a series of MAX_STEPS steps is kept whole, one step longer is pooled by 2
    for steps, pool in ((MAX_STEPS, 1), (MAX_STEPS + 1, 2)):
        long = _uea(tmp_path / f"long{steps}", [rng.normal(size=(1, steps)) for _ in range(8)], ["a", "b"] * 4)
        t = load_task("uea:Odd", extract_path=long, val_fraction=0.25)
        assert (t.info["pool"], t.info["original_T"], t.train.steps) == (pool, steps, -(-steps // pool))


def test_default_one_channel_encoder_takes_its_options_without_naming_it():
    """uea picks `delay` for a one-channel set by the data: its options are accepted without `encoder`,
    and a set with several channels (default `direct`) refuses them with an error naming the default."""
    task = load_task("uea:ItalyPowerDemand", taps=3, dilations=1)
    assert task.info["encoder"] == "delay" and task.info["encoder_options"]["taps"] == 3
    assert task.train.x.shape[-1] == 3  # 3 taps at one dilation
    with pytest.raises(ValueError, match="default encoder is 'direct'"):
        load_task("uea:BasicMotions", taps=3)
    with pytest.raises(ValueError, match="options of encoder 'delay'"):
        load_task("uea:ItalyPowerDemand", bogus=1)
