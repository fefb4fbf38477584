"""Task loaders: sizes, splits, normalisation without leakage, determinism, validation errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from solsa.tasks import Batch, Split, Task, iterate_batches, list_encoders, list_tasks, load_task
from solsa.tasks._prep import fit_normalization, stratified_split
from solsa.tasks.metrics import van_rossum_distance


# ----------------------------------------------------------------------------- helpers


def _valid(split: Split) -> torch.Tensor:
    return split.mask().bool()


def _padding_zero(split: Split) -> bool:
    return bool((split.x[~_valid(split)] == 0).all())


def _check_task(task: Task) -> None:
    """Invariants every task must satisfy."""
    json.dumps(task.info)
    assert task.kind in ("classification", "generation")
    for split in (task.train, task.val, task.test):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.lengths.dtype == torch.int64
        assert split.x.shape[1] == len(split) == len(split.y) == len(split.lengths)
        assert split.x.shape[2] == task.n_inputs
        assert int(split.lengths.min()) >= 1 and int(split.lengths.max()) <= split.x.shape[0]
        assert _padding_zero(split)
        if task.kind == "classification":
            assert int(split.y.min()) >= 0 and int(split.y.max()) < task.n_classes
            assert split.target is None
        else:
            assert split.target is not None and split.target.shape[2] == task.n_classes
    assert set(task.train.index.tolist()).isdisjoint(task.val.index.tolist())


def _write_ts(folder: Path, name: str, split: str, series: list[np.ndarray], labels: list[str]) -> None:
    """Write a multivariate, unequal-length .ts file aeon can read."""
    lines = [f"@problemName {name}", "@timeStamps false", "@missing false", "@univariate false",
             f"@dimensions {series[0].shape[0]}", "@equalLength false",
             f"@classLabel true {' '.join(sorted(set(labels)))}", "@data"]
    for s, lab in zip(series, labels):
        lines.append(":".join(",".join(f"{v:.6f}" for v in ch) for ch in s) + f":{lab}")
    (folder / name).mkdir(parents=True, exist_ok=True)
    (folder / name / f"{name}_{split}.ts").write_text("\n".join(lines) + "\n")


def _tiny_uea(folder: Path, test_offset: float = 0.0) -> None:
    rng = np.random.default_rng(0)
    train = [rng.normal(2.0, 3.0, size=(2, rng.integers(3, 9))) for _ in range(20)]
    test = [rng.normal(2.0, 3.0, size=(2, rng.integers(3, 9))) + test_offset for _ in range(8)]
    _write_ts(folder, "Tiny", "TRAIN", train, ["a", "b"] * 10)
    _write_ts(folder, "Tiny", "TEST", test, ["a", "b"] * 4)


# ----------------------------------------------------------------------------- base


def _toy_split() -> Split:
    x = torch.zeros(6, 5, 2)
    lengths = torch.tensor([6, 2, 3, 1, 4])
    for n, length in enumerate(lengths.tolist()):
        x[:length, n] = n + 1.0
    return Split(x=x, y=torch.arange(5), lengths=lengths, target=x[..., :1].clone(), index=torch.arange(5))


def test_split_mask_len_subset() -> None:
    split = _toy_split()
    assert len(split) == 5
    mask = split.mask()
    assert mask.dtype == torch.float32 and mask.shape == (6, 5)
    assert mask.sum(0).tolist() == [6, 2, 3, 1, 4]
    sub = split.subset([3, 1])
    assert sub.y.tolist() == [3, 1] and sub.lengths.tolist() == [1, 2] and sub.x.shape == (6, 2, 2)
    assert sub.target.shape == (6, 2, 1) and sub.index.tolist() == [3, 1]
    assert split.subset(torch.tensor([True, False, True, False, False])).y.tolist() == [0, 2]


def test_split_rejects_inconsistent_fields() -> None:
    with pytest.raises(ValueError, match="lengths"):
        Split(x=torch.zeros(3, 2, 1), y=torch.zeros(2, dtype=torch.int64), lengths=torch.tensor([4, 1]))
    with pytest.raises(ValueError, match="y"):
        Split(x=torch.zeros(3, 2, 1), y=torch.zeros(3, dtype=torch.int64), lengths=torch.tensor([3, 1]))
    with pytest.raises(ValueError, match="float32"):
        Split(x=torch.zeros(3, 2, 1, dtype=torch.float64), y=torch.zeros(2, dtype=torch.int64), lengths=torch.tensor([3, 1]))


def test_iterate_batches_trims_and_covers() -> None:
    split = _toy_split()
    batches = list(iterate_batches(split, 2))
    assert [b.y.tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert all(isinstance(b, Batch) for b in batches)
    assert [b.x.shape[0] for b in batches] == [6, 3, 4]  # T_b = longest in the batch
    for b in batches:
        assert b.mask.shape == b.x.shape[:2] and b.target.shape[:2] == b.x.shape[:2]
        assert torch.equal(b.mask.sum(0), split.lengths[b.y].float())
    shuffled = [b.y for b in iterate_batches(split, 2, shuffle=True, generator=torch.Generator().manual_seed(0))]
    again = [b.y for b in iterate_batches(split, 2, shuffle=True, generator=torch.Generator().manual_seed(0))]
    assert all(torch.equal(a, b) for a, b in zip(shuffled, again))
    assert sorted(torch.cat(shuffled).tolist()) == [0, 1, 2, 3, 4]
    assert len(list(iterate_batches(split, 2, drop_last=True))) == 2
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_batches(split, 0))


def test_stratified_split_proportions_and_seed() -> None:
    y = np.repeat(np.arange(3), [10, 20, 30])
    keep, held = stratified_split(y, 0.2, seed=1)
    assert len(held) == 12 and np.bincount(y[held]).tolist() == [2, 4, 6]
    assert set(keep).isdisjoint(held) and len(keep) + len(held) == 60
    k2, h2 = stratified_split(y, 0.2, seed=1)
    assert np.array_equal(h2, held)
    assert not np.array_equal(stratified_split(y, 0.2, seed=2)[1], held)
    _, none = stratified_split(y, 0.0, seed=0)
    assert len(none) == 0


# ----------------------------------------------------------------------------- registry


def test_list_tasks_and_encoders() -> None:
    names = [n for n, _ in list_tasks()]
    assert {"uea:NAME", "digits", "patterns", "patterns:generate", "npz:PATH"} <= set(names)
    assert [n for n, _ in list_encoders()] == ["direct", "population", "delta", "bank", "delay", "rate", "latency", "linear"]


def test_unknown_task_encoder_option() -> None:
    with pytest.raises(ValueError, match="valid tasks: .*uea:NAME.*digits.*patterns.*npz:PATH"):
        load_task("mnist")
    with pytest.raises(ValueError, match="valid tasks"):
        load_task("uea:")
    with pytest.raises(ValueError, match="valid encoders"):
        load_task("patterns", encoder="morse", n_samples=8, n_test=4)
    with pytest.raises(ValueError, match="unknown option 'stepz'.*steps"):
        load_task("digits", stepz=3)
    with pytest.raises(ValueError, match="seed"):
        load_task("digits", seed=-1)
    with pytest.raises(ValueError, match="normalize must be one of channel, series, none"):
        load_task("uea:BasicMotions", normalize="false")  # a string from a command line is not a bool
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        load_task("digits", steps="20")


# ----------------------------------------------------------------------------- uea


@pytest.fixture(scope="module")
def basic_motions() -> Task:
    return load_task("uea:BasicMotions", seed=0)


@pytest.fixture(scope="module")
def japanese_vowels() -> Task:
    return load_task("uea:JapaneseVowels", seed=0)


def test_basic_motions_sizes(basic_motions: Task) -> None:
    t = basic_motions
    _check_task(t)
    assert t.name == "uea:BasicMotions" and t.kind == "classification"
    assert (t.n_inputs, t.n_classes) == (6, 4)
    assert len(t.train) + len(t.val) == 40 and len(t.val) == 8 and len(t.test) == 40
    assert t.train.x.shape[0] == t.test.x.shape[0] == 100 and t.info["T"] == 100
    assert bool((t.train.lengths == 100).all())
    assert np.bincount(t.val.y.numpy(), minlength=4).tolist() == [2, 2, 2, 2]  # stratified
    assert sorted(t.train.index.tolist() + t.val.index.tolist()) == list(range(40))
    assert sorted(t.test.index.tolist()) == list(range(40))


def test_japanese_vowels_sizes(japanese_vowels: Task) -> None:
    t = japanese_vowels
    _check_task(t)
    assert (t.n_inputs, t.n_classes) == (12, 9)
    assert len(t.train) + len(t.val) == 270 and len(t.test) == 370
    assert t.info["T"] == 29 and t.train.x.shape[0] == t.test.x.shape[0] == 29
    all_lengths = torch.cat([t.train.lengths, t.val.lengths, t.test.lengths])
    assert int(all_lengths.min()) == 7 and int(all_lengths.max()) == 29
    assert int(t.test.lengths.max()) == 29
    # mask matches lengths and every valid step carries signal
    assert torch.equal(t.test.mask().sum(0).long(), t.test.lengths)
    assert bool((t.test.x.abs().sum(-1)[_valid(t.test)] > 0).all())


def test_uea_normalisation_uses_train_part_only(japanese_vowels: Task) -> None:
    t = japanese_vowels
    values = t.train.x[_valid(t.train)]  # valid steps of the training part only
    assert torch.allclose(values.mean(0), torch.zeros(12), atol=1e-4)
    assert torch.allclose(values.std(0, unbiased=False), torch.ones(12), atol=1e-4)
    # validation and test were transformed with the same stats, so they are not exactly standardised
    val_mean = t.val.x[_valid(t.val)].mean(0)
    assert not torch.allclose(val_mean, torch.zeros(12), atol=1e-4)
    norm = t.info["normalization"]
    assert len(norm["mean"]) == len(norm["std"]) == 12


def test_uea_raw_stats_come_from_train_without_val(tmp_path: Path) -> None:
    _tiny_uea(tmp_path)
    t = load_task("uea:Tiny", extract_path=str(tmp_path), seed=3, normalize=False)
    t_norm = load_task("uea:Tiny", extract_path=str(tmp_path), seed=3)
    mean, std = fit_normalization(t.train.x, t.train.lengths)  # raw train part, val excluded
    assert np.allclose(t_norm.info["normalization"]["mean"], mean.numpy(), atol=1e-5)
    assert np.allclose(t_norm.info["normalization"]["std"], std.numpy(), atol=1e-5)
    both = Split(
        x=torch.cat([t.train.x, t.val.x], 1), y=torch.cat([t.train.y, t.val.y]),
        lengths=torch.cat([t.train.lengths, t.val.lengths]),
    )
    with_val, _ = fit_normalization(both.x, both.lengths)
    assert not np.allclose(with_val.numpy(), mean.numpy(), atol=1e-5)


def test_uea_changing_test_data_does_not_change_stats(tmp_path: Path) -> None:
    _tiny_uea(tmp_path / "a")
    _tiny_uea(tmp_path / "b", test_offset=100.0)
    a = load_task("uea:Tiny", extract_path=str(tmp_path / "a"))
    b = load_task("uea:Tiny", extract_path=str(tmp_path / "b"))
    _check_task(a)
    assert a.info["normalization"] == b.info["normalization"]
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.x, b.val.x)
    assert not torch.equal(a.test.x, b.test.x)
    assert a.info["classes"] == ["a", "b"] and a.n_classes == 2
    assert len(a.train) + len(a.val) == 20 and len(a.test) == 8


def test_uea_val_disjoint_from_test(japanese_vowels: Task) -> None:
    t = japanese_vowels
    flat_test = {tuple(t.test.x[:, n].flatten().tolist()) for n in range(len(t.test))}
    assert all(tuple(t.val.x[:, n].flatten().tolist()) not in flat_test for n in range(len(t.val)))
    assert sorted(t.train.index.tolist() + t.val.index.tolist()) == list(range(270))


def test_uea_seeded_determinism(basic_motions: Task) -> None:
    again = load_task("uea:BasicMotions", seed=0)
    assert torch.equal(again.train.x, basic_motions.train.x) and torch.equal(again.val.index, basic_motions.val.index)
    other = load_task("uea:BasicMotions", seed=1)
    assert not torch.equal(other.val.index, basic_motions.val.index)


def test_uea_encoders(tmp_path: Path) -> None:
    _tiny_uea(tmp_path)
    pop = load_task("uea:Tiny", extract_path=str(tmp_path), encoder="population", n_per_channel=3)
    _check_task(pop)
    assert pop.n_inputs == 6 and pop.info["encoder_options"]["n_per_channel"] == 3
    lat = load_task("uea:Tiny", extract_path=str(tmp_path), encoder="latency", encoder_options={"window": 4})
    _check_task(lat)
    plain = load_task("uea:Tiny", extract_path=str(tmp_path))
    assert lat.train.x.shape[0] == 4 * plain.train.x.shape[0]
    assert torch.equal(lat.train.lengths, 4 * plain.train.lengths)
    dl = load_task("uea:Tiny", extract_path=str(tmp_path), encoder="delta")
    assert dl.n_inputs == 4 and set(dl.train.x.unique().tolist()) <= {0.0, 1.0}


def test_uea_missing_dataset_is_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NoSuchSet"):
        load_task("uea:NoSuchSet", extract_path=str(tmp_path))


# ----------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits_rate() -> Task:
    return load_task("digits", seed=0)


def test_digits_rate(digits_rate: Task) -> None:
    t = digits_rate
    _check_task(t)
    assert (t.n_inputs, t.n_classes) == (64, 10) and t.info["T"] == 20
    total = len(t.train) + len(t.val) + len(t.test)
    assert total == 1797 and abs(len(t.test) - 0.25 * 1797) <= 5
    assert set(t.train.x.unique().tolist()) == {0.0, 1.0}
    ids = [set(s.index.tolist()) for s in (t.train, t.val, t.test)]
    assert ids[0].isdisjoint(ids[1]) and ids[0].isdisjoint(ids[2]) and ids[1].isdisjoint(ids[2])
    assert set().union(*ids) == set(range(1797))
    assert np.bincount(t.test.y.numpy()).min() >= 40  # stratified


def test_digits_rate_seeded_and_max_rate(digits_rate: Task) -> None:
    again = load_task("digits", seed=0)
    assert torch.equal(again.train.x, digits_rate.train.x)
    half = load_task("digits", seed=0, max_rate=0.5, steps=10)  # plain kwarg routed to the encoder
    assert half.info["encoder_options"]["max_rate"] == 0.5 and half.info["T"] == 10
    assert half.train.x.mean() < 0.7 * digits_rate.train.x.mean()


def test_digits_latency() -> None:
    t = load_task("digits", encoder="latency", steps=10, seed=0)
    _check_task(t)
    assert t.train.x.shape[0] == 10
    counts = t.train.x.sum(0)  # spikes per pixel
    assert counts.max() == 1
    from sklearn.datasets import load_digits

    pixels = torch.from_numpy(load_digits().data[t.train.index.numpy()] / 16.0).float()
    assert torch.equal(counts.bool(), pixels >= 0.1)
    first = t.train.x.argmax(0).float()  # spike step per pixel
    on = pixels >= 0.1
    assert torch.equal(first[on], torch.round((1 - pixels[on]) * 9))
    # brighter pixels spike earlier
    assert first[pixels == 1.0].max() == 0


# ----------------------------------------------------------------------------- patterns


def _ncm_accuracy(train: Split, test: Split, feature) -> float:
    """Nearest-class-mean accuracy on a feature of the input."""
    f_tr, f_te = feature(train.x), feature(test.x)
    means = torch.stack([f_tr[train.y == k].mean(0) for k in range(int(train.y.max()) + 1)])
    return float((torch.cdist(f_te, means).argmin(1) == test.y).float().mean())


def test_patterns_classification_needs_time() -> None:
    t = load_task("patterns", seed=0, n_samples=400, n_test=400)
    _check_task(t)
    assert (t.n_inputs, t.n_classes, t.info["T"]) == (40, 4, 100)
    assert len(t.train) + len(t.val) == 400 and len(t.test) == 400
    assert set(t.train.x.unique().tolist()) == {0.0, 1.0}
    assert np.bincount(t.test.y.numpy()).tolist() == [100] * 4
    # total spike count per channel over the trial: nearly the same for all classes
    per_class = torch.stack([t.train.x[:, t.train.y == k].sum(0).mean(0) for k in range(4)])
    assert (per_class.max(0).values - per_class.min(0).values).abs().max() < 0.25 * per_class.mean() + 1.0
    time_avg = _ncm_accuracy(t.train, t.test, lambda x: x.mean(0))
    assert time_avg < 0.37  # chance is 0.25
    # ... while the temporal structure separates them
    binned = _ncm_accuracy(t.train, t.test, lambda x: x.reshape(10, 10, *x.shape[1:]).sum(1).permute(1, 0, 2).flatten(1))
    assert binned > 0.6
    # every class presents the same cues, in a different order, and no single slot gives the class away
    orders = t.info["class_orders"]
    assert all(sorted(o) == sorted(orders[0]) for o in orders) and len({tuple(o) for o in orders}) == 4
    assert t.info["single_slot_identifying"] == 0


def test_patterns_seeds() -> None:
    a = load_task("patterns", seed=1, n_samples=40, n_test=20)
    b = load_task("patterns", seed=1, n_samples=40, n_test=20)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    c = load_task("patterns", seed=2, n_samples=40, n_test=20, pattern_seed=1)
    assert c.info["class_orders"] == a.info["class_orders"]  # frozen templates from pattern_seed
    assert not torch.equal(c.train.x, a.train.x)


def test_patterns_options_and_errors() -> None:
    t = load_task("patterns", n_inputs=8, n_classes=2, steps=50, n_samples=20, n_test=10, cue_len=5)
    _check_task(t)
    assert (t.n_inputs, t.n_classes, t.info["T"]) == (8, 2, 50)
    with pytest.raises(ValueError, match="fit"):
        load_task("patterns", n_classes=4, steps=20, n_samples=8)
    with pytest.raises(ValueError, match="mode"):
        load_task("patterns", mode="dance")


def test_patterns_generation() -> None:
    t = load_task("patterns:generate", seed=0, n_samples=40, n_test=20, n_outputs=3)
    _check_task(t)
    assert t.kind == "generation" and t.n_classes == 3 and t.name == "patterns:generate"
    assert t.train.target.shape == (100, len(t.train), 3) and t.train.target.dtype == torch.float32
    assert t.info["n_patterns"] == 4
    for split in (t.train, t.val, t.test):
        for k in range(4):
            targets = split.target[:, split.y == k]
            assert targets.shape[1] > 0 and bool((targets == targets[:, :1]).all())  # same target per pattern
    first = {k: t.train.target[:, (t.train.y == k).nonzero()[0, 0]] for k in range(4)}
    assert all((first[k].sum(0) >= 1).all() for k in range(4))  # every output neuron spikes
    assert not torch.equal(first[0], first[1])
    same = load_task("patterns", mode="generate", seed=0, n_samples=40, n_test=20, n_outputs=3)
    assert torch.equal(same.test.target, t.test.target)
    batch = next(iterate_batches(t.train, 8))
    assert batch.target.shape == (100, 8, 3)
    with pytest.raises(ValueError, match="keeps T"):
        load_task("patterns:generate", encoder="latency", n_samples=8, n_test=4)


def test_van_rossum_distance() -> None:
    a = torch.zeros(200, 3, 2)
    a[10, :, 0] = 1
    b = a.clone()
    assert torch.allclose(van_rossum_distance(a, b), torch.zeros(3))
    b[10, 1, 0] = 0  # one missing spike
    b[14, 2, 0] = 1  # plus one extra spike, 4 steps later
    b[10, 2, 0] = 0
    d = van_rossum_distance(a, b, tau=5.0)
    assert d[0] == 0 and abs(float(d[1]) - 1.0) < 1e-3
    assert abs(float(d[2]) ** 2 - 2 * (1 - math.exp(-4 / 5))) < 1e-3  # shifted spike
    assert torch.allclose(van_rossum_distance(b, a), d)
    assert torch.allclose(van_rossum_distance(a, b, squared=True), d**2, atol=1e-6)
    g = a.clone().requires_grad_(True)
    van_rossum_distance(g, a).sum().backward()
    assert torch.isfinite(g.grad).all()
    with pytest.raises(ValueError, match="shape"):
        van_rossum_distance(a, b[:10])


# ----------------------------------------------------------------------------- npz


def _save(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _good_arrays(n: int = 24, steps: int = 7, c: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"X": rng.normal(5.0, 2.0, size=(n, steps, c)), "y": np.arange(n) % 3}


def test_npz_real_valued_with_default_test_split(tmp_path: Path) -> None:
    arrays = _good_arrays()
    p = _save(tmp_path / "mine.npz", **arrays)
    t = load_task(f"npz:{p}", seed=0)
    _check_task(t)
    assert (t.n_inputs, t.n_classes, t.info["T"]) == (3, 3, 7)
    assert len(t.train) + len(t.val) + len(t.test) == 24 and len(t.test) == 6
    ids = [set(s.index.tolist()) for s in (t.train, t.val, t.test)]
    assert ids[0].isdisjoint(ids[2]) and ids[1].isdisjoint(ids[2]) and ids[0].isdisjoint(ids[1])
    # time-first, normalised with train-part stats
    raw = torch.from_numpy(arrays["X"]).float().permute(1, 0, 2)  # [T, N, C]
    mean = torch.tensor(t.info["normalization"]["mean"])
    std = torch.tensor(t.info["normalization"]["std"])
    assert torch.allclose(t.test.x, (raw[:, t.test.index] - mean) / std, atol=1e-5)
    assert torch.allclose(t.train.x.reshape(-1, 3).mean(0), torch.zeros(3), atol=1e-5)
    assert torch.equal(t.test.y, torch.from_numpy(arrays["y"][t.test.index.numpy()]))


def test_npz_with_test_lengths_and_label_mapping(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 6, 2))
    X[0, 4:] = np.nan  # beyond its length: ignored
    lengths = np.full(12, 6)
    lengths[0] = 4
    X_test = rng.normal(size=(5, 9, 2))  # longer than X
    p = _save(tmp_path / "d.npz", X=X, y=np.repeat([3, 7], 6), lengths=lengths,
              X_test=X_test, y_test=np.array([3, 7, 7, 3, 7]), lengths_test=np.array([9, 2, 3, 4, 5]))
    t = load_task(f"npz:{p}", val_fraction=0.25)
    _check_task(t)
    assert t.info["classes"] == [3, 7] and t.n_classes == 2
    assert t.test.y.tolist() == [0, 1, 1, 0, 1]
    assert t.info["T"] == 9 and t.train.x.shape[0] == 9
    assert t.test.lengths.tolist() == [9, 2, 3, 4, 5]
    assert len(t.train) + len(t.val) == 12 and sorted(t.test.index.tolist()) == list(range(5))
    # changing test data leaves the training statistics unchanged
    p2 = _save(tmp_path / "d2.npz", X=X, y=np.repeat([3, 7], 6), lengths=lengths,
               X_test=X_test * 50 + 3, y_test=np.array([3, 7, 7, 3, 7]), lengths_test=np.array([9, 2, 3, 4, 5]))
    t2 = load_task(f"npz:{p2}", val_fraction=0.25)
    assert t2.info["normalization"] == t.info["normalization"] and torch.equal(t2.train.x, t.train.x)


def test_npz_binary_spikes_not_normalised(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    X = rng.random((20, 5, 4)) < 0.3
    p = _save(tmp_path / "spikes.npz", X=X, y=np.arange(20) % 2)
    t = load_task(f"npz:{p}")
    assert t.info["binary_spikes"] is True and t.info["normalization"] is None
    assert set(t.train.x.unique().tolist()) <= {0.0, 1.0}
    raw = torch.from_numpy(X).float().permute(1, 0, 2)
    assert torch.equal(t.train.x, raw[:, t.train.index])
    r = load_task(f"npz:{p}", encoder="rate")
    assert r.info["encoder_options"]["squash"] == "clip"


BAD_CASES = [
    ("no_X", {"y": np.arange(4) % 2}, "'X'"),
    ("no_y", {"X": np.zeros((4, 3, 2))}, "'y'"),
    ("X_2d", {"X": np.zeros((4, 3)), "y": np.arange(4) % 2}, "'X'.*3-D"),
    ("y_2d", {"X": np.zeros((4, 3, 2)), "y": np.zeros((4, 1), dtype=int)}, "'y'.*1-D"),
    ("count", {"X": np.zeros((4, 3, 2)), "y": np.arange(5) % 2}, "'y'.*5 labels.*'X' has 4"),
    ("strings", {"X": np.full((4, 3, 2), "a"), "y": np.arange(4) % 2}, "'X'.*numeric"),
    ("complex", {"X": np.zeros((4, 3, 2), dtype=complex), "y": np.arange(4) % 2}, "'X'.*numeric"),
    ("nan", {"X": np.full((4, 3, 2), np.nan), "y": np.arange(4) % 2}, "'X'.*NaN"),
    ("inf", {"X": np.where(np.eye(3)[None, :, :2] > 0, np.inf, 0.0).repeat(4, 0), "y": np.arange(4) % 2}, "'X'.*infinite"),
    ("float_labels", {"X": np.zeros((4, 3, 2)), "y": np.array([0.0, 1.5, 0.0, 1.0])}, "'y'.*integer"),
    ("str_labels", {"X": np.zeros((4, 3, 2)), "y": np.array(["a", "b", "a", "b"])}, "'y'.*integer"),
    ("negative", {"X": np.zeros((4, 3, 2)), "y": np.array([0, -1, 0, 1])}, "'y'.*negative"),
    ("one_class", {"X": np.zeros((4, 3, 2)), "y": np.zeros(4, dtype=int)}, "'y'.*2 classes"),
    ("test_channels", {"X": np.zeros((4, 3, 2)), "y": np.arange(4) % 2,
                       "X_test": np.zeros((2, 3, 5)), "y_test": np.arange(2)}, "'X_test'.*5 channels"),
    ("test_no_labels", {"X": np.zeros((4, 3, 2)), "y": np.arange(4) % 2, "X_test": np.zeros((2, 3, 2))}, "'X_test'.*'y_test'"),
    ("test_count", {"X": np.zeros((4, 3, 2)), "y": np.arange(4) % 2,
                    "X_test": np.zeros((2, 3, 2)), "y_test": np.arange(3) % 2}, "'y_test'.*3 labels"),
    ("test_unknown_label", {"X": np.zeros((4, 3, 2)), "y": np.arange(4) % 2,
                            "X_test": np.zeros((2, 3, 2)), "y_test": np.array([0, 5])}, "'y_test'"),
    ("lengths_range", {"X": np.zeros((4, 3, 2)), "y": np.arange(4) % 2, "lengths": np.array([3, 4, 1, 1])}, "'lengths'.*1..3"),
    ("lengths_shape", {"X": np.zeros((4, 3, 2)), "y": np.arange(4) % 2, "lengths": np.array([3, 3])}, "'lengths'"),
    ("empty", {"X": np.zeros((0, 3, 2)), "y": np.zeros(0, dtype=int)}, "'X'.*empty"),
]


@pytest.mark.parametrize("case, arrays, pattern", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_npz_validation_names_file_and_array(tmp_path: Path, case: str, arrays: dict, pattern: str) -> None:
    p = _save(tmp_path / f"{case}.npz", **arrays)
    with pytest.raises(ValueError, match=pattern) as err:
        load_task(f"npz:{p}")
    assert f"{case}.npz" in str(err.value)


def test_npz_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing.npz.*does not exist"):
        load_task(f"npz:{tmp_path / 'missing.npz'}")
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match="text.npz"):
        load_task(f"npz:{text}")
    np.save(tmp_path / "single.npy", np.zeros((3, 2, 1)))
    with pytest.raises(ValueError, match="single.npy.*not a .npz"):
        load_task(f"npz:{tmp_path / 'single.npy'}")
    obj = tmp_path / "obj.npz"
    np.savez(obj, X=np.array([None, 1], dtype=object), y=np.arange(2))
    with pytest.raises(ValueError, match="'X'.*obj.npz"):
        load_task(f"npz:{obj}")
    with pytest.raises(ValueError, match="not a file"):
        load_task(f"npz:{tmp_path}")


def test_npz_values_beyond_float32_are_named_as_such(tmp_path):
    X = np.ones((20, 5, 2))
    X[3, 1, 0] = 1e300  # finite in float64, inf in float32
    np.savez(tmp_path / "big.npz", X=X, y=np.arange(20) % 2)
    with pytest.raises(ValueError, match=r"array 'X' in .*big.npz' contains values beyond the range of float32"):
        load_task(f"npz:{tmp_path / 'big.npz'}")
