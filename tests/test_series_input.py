"""Real-series input (issue 16): normalisation modes and bad input (NaN, unequal lengths, constant
channels, a single class), each with a named error or documented handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

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



def test_uea_default_encoder_is_direct_for_one_and_several_channels(tmp_path: Path) -> None:
    # the choice of docs/series.md §3: the normalised signal itself, one channel or several
    one = [s[:1] for s in _series()[0]]
    _write_ts(tmp_path, "One", "TRAIN", one, ["a", "b"] * 6)
    _write_ts(tmp_path, "One", "TEST", one[:4], ["a", "b"] * 2)
    t = load_task("uea:One", extract_path=str(tmp_path))
    assert t.n_inputs == 1 and t.info["encoder"] == "direct"
    level = load_task("uea:One", extract_path=str(tmp_path), encoder="delta", level=True)
    assert level.n_inputs == 3 and torch.equal(level.train.x[..., 2], t.train.x[..., 0])
    train, labels = _series()
    assert load_task("uea:Odd", extract_path=_uea(tmp_path, train, labels)).info["encoder"] == "direct"
