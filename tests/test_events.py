"""Event data loaders on tiny files written in the real formats (nothing is downloaded)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from solsa.tasks import load_task
from solsa.tasks.events import read_nmnist_file

h5py = pytest.importorskip("h5py")


def write_shd(path: Path, samples: list[tuple[list[float], list[int]]], labels: list[int], drop: str = "",
              time_dtype=np.float16) -> None:
    """An SHD HDF5 file: spikes/times (s) and spikes/units as variable-length arrays, labels, extra/."""
    with h5py.File(path, "w") as f:
        if drop != "spikes/times":
            t = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(time_dtype))
            for i, (times, _) in enumerate(samples):
                t[i] = np.asarray(times, dtype=time_dtype)
        if drop != "spikes/units":
            u = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
            for i, (_, units) in enumerate(samples):
                u[i] = np.asarray(units, dtype=np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        f.create_dataset("extra/keys", data=np.array([b"zero", b"one", b"two"]))
        f.create_dataset("extra/speaker", data=np.zeros(len(samples), dtype=np.uint16))


def shd_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    train = [([0.001, 0.0125, 0.0125, 0.031], [0, 5, 699, 10]), ([0.002], [1]), ([0.0], [3]),
             ([0.004, 0.005], [2, 2]), ([0.0], [0]), ([0.009], [9])]
    write_shd(root / "shd_train.h5", train, [0, 1, 2, 0, 1, 2])
    write_shd(root / "shd_test.h5", [([0.001], [7]), ([0.015, 0.002], [8, 9]), ([0.02], [1])], [1, 0, 2])
    return root


@pytest.mark.parametrize("time, message", [
    (float("nan"), r"sample 1: 'spikes/times' must be seconds in \[0, 1e\+06\); 1 of its 2 events are not \(e.g. nan\)"),
    (1e30, r"1 of its 2 events are not \(e.g. 1e\+30\)"),
    (-1.0, r"e.g. -1.0"),
    (1e5, r"train sample 1: binning needs 26.1 GiB: an event at t = 100000 s in bins of 10 ms .* bin coarser"),
])
def test_shd_event_times_out_of_range_are_named_not_dropped(tmp_path, time, message):
    """NaN, negative or absurd times were dropped with only a numpy warning; a far event tried to allocate 52 GiB."""
    shd_folder(tmp_path)
    samples = [([0.001], [0]), ([0.002, time], [1, 2]), ([0.003], [3])]
    write_shd(tmp_path / "shd_train.h5", samples, [0, 1, 0], time_dtype=np.float64)
    with pytest.raises(ValueError, match=message):
        load_task(f"shd:{tmp_path}")


def test_shd_bins_and_pools_events(tmp_path):
    root = shd_folder(tmp_path / "shd")
    task = load_task(f"shd:{root}", bin_ms=10.0, pool=5, val_fraction=0.3)
    assert task.n_inputs == 140 and task.n_classes == 3 and task.info["steps"] == 4  # 0..31 ms in 10 ms bins
    i = int((task.train.index == 0).nonzero()[0, 0]) if (task.train.index == 0).any() else None
    split, k = (task.train, i) if i is not None else (task.val, int((task.val.index == 0).nonzero()[0, 0]))
    x = split.x[:, k]
    assert int(split.lengths[k]) == 4  # last event at 31 ms -> bin 3
    assert x[0, 0] == 1 and x[1, 1] == 1 and x[1, 139] == 1 and x[3, 2] == 1  # units 0, 5, 699, 10 pooled by 5
    assert float(x.sum()) == 4
    assert len(task.test) == 3 and len(task.train) + len(task.val) == 6


def test_shd_steps_binary_and_limit(tmp_path):
    root = shd_folder(tmp_path / "shd")
    task = load_task(f"shd:{root}", steps=2, max_ms=20.0, binary=True, limit=3, val_fraction=0.34)
    assert task.info["steps"] == 2 and task.info["bin_ms"] == 10.0
    assert len(task.train) + len(task.val) == 3 and len(task.test) == 3
    assert set(task.train.x.unique().tolist()) <= {0.0, 1.0}
    spanned = load_task(f"shd:{root}", steps=4, val_fraction=0.34)  # 4 bins up to the last event (31 ms)
    assert spanned.info["steps"] == 4 and int(spanned.train.lengths.max()) <= 4


@pytest.mark.parametrize("drop", ["spikes/times", "spikes/units"])
def test_shd_wrong_layout_names_file_and_field(tmp_path, drop):
    root = shd_folder(tmp_path / "shd")
    write_shd(root / "shd_test.h5", [([0.001], [7])], [1], drop=drop)
    with pytest.raises(ValueError, match=rf"shd_test.h5' has no field '{drop}'"):
        load_task(f"shd:{root}")


def test_shd_missing_file_and_not_hdf5(tmp_path):
    root = shd_folder(tmp_path / "shd")
    (root / "shd_test.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="shd_test.h5' could not be read as an HDF5 file"):
        load_task(f"shd:{root}")
    (root / "shd_test.h5").unlink()
    with pytest.raises(ValueError, match="shd_test.h5' does not exist"):
        load_task(f"shd:{root}")


def write_nmnist(path: Path, events: list[tuple[int, int, int, int]], overflow_after: int | None = None) -> None:
    """N-MNIST .bin: 5 bytes per event (x, y, p<<7 | t>>16, t>>8, t); y = 240 marks a +2^13 µs overflow."""
    out = bytearray()
    for n, (x, y, t, p) in enumerate(events):
        if overflow_after is not None and n == overflow_after:
            out += bytes([0, 240, 0, 0, 0])
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))


def nmnist_folder(root: Path) -> Path:
    for part, n in (("Train", 4), ("Test", 2)):
        for digit in (0, 1, 2):
            for k in range(n):
                write_nmnist(root / part / str(digit) / f"{k:05d}.bin",
                             [(digit, k, 100 * k, 0), (33, 33, 4000 + k, 1), (10, 20, 9000, digit % 2)])
    return root


def test_nmnist_reader_decodes_bits_and_overflow(tmp_path):
    f = tmp_path / "a.bin"
    write_nmnist(f, [(3, 4, 5, 1), (33, 0, 0x7FFFFF, 0), (1, 2, 10, 1)], overflow_after=2)
    ev = read_nmnist_file(f)
    assert ev["x"].tolist() == [3, 33, 1] and ev["y"].tolist() == [4, 0, 2] and ev["p"].tolist() == [1, 0, 1]
    assert ev["t"].tolist() == [5, 0x7FFFFF, 10 + 2**13]


def test_nmnist_frames(tmp_path):
    root = nmnist_folder(tmp_path / "nmnist")
    task = load_task(f"nmnist:{root}", bin_ms=5.0, pool=2, val_fraction=0.25)
    assert task.n_inputs == 17 * 17 * 2 and task.n_classes == 3 and task.info["steps"] == 2
    x, y = task.test.x[:, 0], int(task.test.y[0])  # test sample 0: digit 0, k = 0
    assert y == 0 and float(x.sum()) == 3
    assert x[0, 0] == 1  # (x 0, y 0, p 0) at 0 µs
    assert x[0, 17 * 17 + 16 * 17 + 16] == 1  # (33, 33, p 1) at 4 ms -> pooled (16, 16), OFF/ON plane 1
    assert x[1, 10 * 17 + 5] == 1  # (10, 20, p 0) at 9 ms -> bin 1, pooled (5, 10)
    merged = load_task(f"nmnist:{root}", polarity=False, pool=34)
    assert merged.n_inputs == 1 and float(merged.test.x[:, 0].sum()) == 3


def test_nmnist_wrong_layout(tmp_path):
    root = nmnist_folder(tmp_path / "nmnist")
    (root / "Test" / "1" / "00000.bin").write_bytes(b"\x00" * 7)
    with pytest.raises(ValueError, match=r"00000.bin' is not an N-MNIST event file: its size \(7 bytes\)"):
        load_task(f"nmnist:{root}")
    with pytest.raises(ValueError, match=r"N-MNIST folder '.*missing/Train' does not exist"):
        load_task(f"nmnist:{tmp_path / 'missing'}")


def test_event_task_trains_end_to_end(tmp_path, capsys):
    from solsa.cli import main

    root = shd_folder(tmp_path / "shd")
    rc = main(["train", "--task", f"shd:{root}", "--task-option", "pool=10", "--epochs", "1", "--hidden", "4",
               "--val-fraction", "0.34", "--out", str(tmp_path / "run"), "--quiet"])
    assert rc == 0 and (tmp_path / "run" / "checkpoint.pt").is_file()


def test_tonic_reads_the_same_files(tmp_path):
    pytest.importorskip("tonic")
    shd = shd_folder(tmp_path / "root" / "SHD")
    nm = nmnist_folder(tmp_path / "root" / "NMNIST")
    for spec, native, opts in ((f"tonic:SHD:{tmp_path / 'root'}", f"shd:{shd}", {"pool": 7}),
                               (f"tonic:NMNIST:{tmp_path / 'root'}", f"nmnist:{nm}", {"pool": 2, "bin_ms": 5.0})):
        a, b = load_task(spec, **opts), load_task(native, **opts)
        assert a.n_inputs == b.n_inputs
        for part in ("train", "val", "test"):
            sa, sb = getattr(a, part), getattr(b, part)
            assert torch.equal(sa.x, sb.x) and torch.equal(sa.y, sb.y) and torch.equal(sa.lengths, sb.lengths)


def test_tonic_never_downloads(tmp_path):
    pytest.importorskip("tonic")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="solsa never downloads"):
        load_task(f"tonic:NMNIST:{tmp_path / 'empty'}")
    with pytest.raises(ValueError, match="tonic has no data set 'Nope'"):
        load_task(f"tonic:Nope:{tmp_path}")
