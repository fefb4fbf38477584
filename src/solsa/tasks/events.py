"""Event-based data: Spiking Heidelberg Digits (``shd:PATH``) and N-MNIST (``nmnist:PATH``),
read from their own files, binned in time and pooled over channels.

Files (download them once; solsa never downloads):

* SHD (https://zenkelab.org/datasets/): ``PATH/shd_train.h5`` and ``PATH/shd_test.h5``, each with
  ``spikes/times`` (per sample, seconds), ``spikes/units`` (per sample, 0..699) and ``labels``;
* N-MNIST (https://www.garrickorchard.com/datasets/n-mnist): ``PATH/Train/<digit>/*.bin`` and
  ``PATH/Test/<digit>/*.bin``; each event is 5 bytes: x, y, then polarity (bit 7) and a
  23-bit timestamp in µs; an event with y = 240 marks a timestamp overflow (+2¹³ µs).

Every sample becomes a ``[T, C]`` count tensor: events are binned in ``bin_ms`` wide steps
from t = 0 (or ``steps`` bins over ``max_ms``, by default up to the data set's last event),
``pool`` sums neighbouring channels (units for SHD, pixels along x and y for N-MNIST),
``polarity=False`` merges ON and OFF, ``binary`` clips counts to spikes. A sample's length is
its last event's bin; events after ``max_ms`` are dropped. ``limit`` keeps a stratified,
seeded subset of that many samples per split. Samples are read and binned one at a time
(:class:`LazySamples`): the raw events of a data set are never all in memory.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ._prep import build_task, encoder_settings, index_labels, pad_sequences, stratified_split
from .base import Task, TaskFamily
from .encoders import check_bool

__all__ = [
    "load_shd", "load_nmnist", "events_task", "Events", "LazySamples", "DEFAULT_ENCODER", "read_nmnist_file",
]

DEFAULT_ENCODER = "direct"
SHD_UNITS = 700
NMNIST_SIZE = (34, 34, 2)
EVENT_FIELDS = ("t", "x", "y", "p")
MAX_SECONDS = 1e6  # event times at or beyond (11.6 days) are refused: no recording is that long
MAX_FRAME_BYTES = 8 * 2**30  # the binned data set may take this much memory at most


class Events(dict):
    """One sample's events: ``{"t": µs, "x": ..., "y": ..., "p": ...}`` int64 arrays of equal length."""


class LazySamples(Sequence):
    """Samples read on demand (``read(i)`` for each kept source index ``i``), so a data set is binned one
    sample at a time and never held as raw events."""

    def __init__(self, indices: np.ndarray, read: Callable[[int], Events]) -> None:
        self.indices, self.read = indices, read

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> Events:  # type: ignore[override]
        return self.read(int(self.indices[k]))


def _positive(name: str, value: Any, kind: type = float) -> Any:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok or (kind is int and int(value) != value):
        raise ValueError(f"{name} must be a positive {'integer' if kind is int else 'number'}, got {value!r}")
    return kind(value)


def _frame(ev: Events, sensor: tuple[int, int, int], bin_us: float, steps: int | None, pool: int, polarity: bool,
           binary: bool) -> np.ndarray:
    """``[L, C]`` counts of one sample, ``L`` = the bin of its last event kept (at least 1)."""
    W, H, P = sensor
    w, h, p = math.ceil(W / pool), math.ceil(H / pool), (P if polarity else 1)
    t = np.asarray(ev["t"], dtype=np.float64)
    b = np.floor(t / bin_us).astype(np.int64)
    keep = (b >= 0) & (b < steps) if steps is not None else b >= 0
    b = b[keep]
    x = np.asarray(ev["x"], dtype=np.int64)[keep] // pool
    y = np.asarray(ev.get("y", np.zeros_like(t)), dtype=np.int64)[keep] // pool
    pol = np.asarray(ev.get("p", np.zeros_like(t)), dtype=np.int64)[keep] if P > 1 and polarity else np.zeros_like(b)
    for what, v, size in (("x", x, w), ("y", y, h), ("polarity", pol, p)):
        if v.size and (v.min() < 0 or v.max() >= size):
            raise ValueError(f"event {what} outside the sensor {sensor} (after pooling by {pool}: 0..{size - 1})")
    channels = w * h * p
    length = int(b.max()) + 1 if b.size else 1
    check_frame_size(length, channels, bin_us, float(t[keep].max()) if b.size else 0.0)
    idx = b * channels + (pol * h + y) * w + x
    counts = np.bincount(idx, minlength=length * channels).reshape(length, channels).astype(np.float32)
    return np.minimum(counts, 1.0) if binary else counts


def check_frame_size(steps: int, channels: int, bin_us: float, last_us: float, samples: int = 1) -> None:
    """Refuse binning that would need more than :data:`MAX_FRAME_BYTES` (an event far in time, a fine bin)."""
    need = steps * channels * samples * 4  # float32 counts
    if need > MAX_FRAME_BYTES:
        raise ValueError(f"binning needs {need / 2**30:,.1f} GiB: an event at t = {last_us / 1e6:g} s in bins of "
                         f"{bin_us / 1e3:g} ms is step {steps:,} of {channels} channels"
                         f"{f' for {samples} samples' if samples > 1 else ''} (limit {MAX_FRAME_BYTES / 2**30:g} GiB); "
                         "bin coarser (task option bin_ms), or set steps or max_ms (events after max_ms are dropped)")


def _subset(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Indices of a stratified, seeded subset of ``limit`` samples (all of them without a limit)."""
    if limit is not None:
        limit = _positive("limit", limit, int)
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    _, held = stratified_split(labels, limit / len(labels), [seed, 104729])
    return held


def events_task(
    name: str,
    train: tuple[Sequence[Events], np.ndarray],
    test: tuple[Sequence[Events], np.ndarray],
    sensor: tuple[int, int, int],
    *,
    seed: int,
    val_fraction: float,
    encoder: str | None,
    encoder_options: dict[str, Any] | None,
    bin_ms: float,
    steps: int | None,
    max_ms: float | None,
    pool: int,
    polarity: bool,
    binary: bool,
    info: dict[str, Any],
) -> Task:
    """Bin, pool and wrap event samples ``(events, labels)`` into a :class:`Task` (see the module docstring)."""
    pool = _positive("pool", pool, int)
    polarity, binary = check_bool("polarity", polarity), check_bool("binary", binary)
    if max_ms is not None:
        max_ms = _positive("max_ms", max_ms)
    enc_name, enc_opts = encoder_settings(encoder, DEFAULT_ENCODER, encoder_options)
    if steps is not None:
        steps = _positive("steps", steps, int)
        if max_ms is None:  # a first pass for the span: the last event of the whole data set
            last_us = max((float(np.max(ev["t"])) for part in (train[0], test[0]) for ev in part if len(ev["t"])),
                          default=0.0)
            bin_us = (last_us + 1.0) / steps
        else:
            bin_us = max_ms * 1e3 / steps
    else:
        bin_us = _positive("bin_ms", bin_ms) * 1e3
        steps = math.ceil(max_ms * 1e3 / bin_us) if max_ms is not None else None  # None: keep every event
    frames: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for part, (evs, _) in (("train", train), ("test", test)):
        for k, ev in enumerate(evs):
            try:
                frames[part].append(_frame(ev, sensor, bin_us, steps, pool, polarity, binary))
            except ValueError as err:
                raise ValueError(f"event data set {name}, {part} sample {k}: {err}") from None
    T = max(len(f) for f in frames["train"] + frames["test"])
    check_frame_size(T, frames["train"][0].shape[1], bin_us, (T - 1) * bin_us, len(frames["train"]) + len(frames["test"]))
    x_tr, len_tr = pad_sequences(frames["train"], T)
    x_te, len_te = pad_sequences(frames["test"], T)
    y_tr, y_te, classes = index_labels(train[1], test[1], what=f"event data set {name}")
    if len(classes) < 2:
        raise ValueError(f"event data set {name} has fewer than 2 classes in its training split")
    info = {**info, "classes": classes, "sensor_size": list(sensor), "bin_ms": bin_us / 1e3, "steps": T,
            "pool": pool, "polarity": polarity, "binary": binary, "original_channels": int(np.prod(sensor)),
            "original_train_size": len(train[1]), "original_test_size": len(test[1])}
    return build_task(name=name, kind="classification", n_classes=len(classes), x_train=x_tr, len_train=len_tr,
                      y_train=torch.from_numpy(y_tr), x_test=x_te, len_test=len_te, y_test=torch.from_numpy(y_te),
                      seed=seed, val_fraction=val_fraction, encoder=enc_name, encoder_options=enc_opts,
                      normalize=False, info=info)


# --------------------------------------------------------------------------------------------- SHD
def _open_shd(path: Path, limit: int | None, seed: int, stack: ExitStack) -> tuple[LazySamples, np.ndarray]:
    """Open an SHD file (closed by ``stack``); its kept samples are read when binned."""
    import h5py

    if not path.is_file():
        raise ValueError(f"SHD file '{path}' does not exist; expected shd_train.h5 and shd_test.h5 "
                         "(unzipped from https://zenkelab.org/datasets/) in that folder")
    try:
        f = stack.enter_context(h5py.File(path, "r"))
    except OSError as err:
        raise ValueError(f"'{path}' could not be read as an HDF5 file ({err})") from err
    for field in ("spikes/times", "spikes/units", "labels"):
        if field not in f:
            found: list[str] = []
            f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
            raise ValueError(f"SHD file '{path}' has no field '{field}' (found: {found or 'nothing'})")
    labels = np.asarray(f["labels"][()]).astype(np.int64).reshape(-1)
    times, units = f["spikes/times"], f["spikes/units"]
    if not (len(times) == len(units) == len(labels)):
        raise ValueError(f"SHD file '{path}': 'spikes/times' ({len(times)}), 'spikes/units' ({len(units)}) and "
                         f"'labels' ({len(labels)}) must have one entry per sample")

    def read(i: int) -> Events:
        t, u = np.asarray(times[i], dtype=np.float64), np.asarray(units[i]).astype(np.int64)
        if t.shape != u.shape:
            raise ValueError(f"SHD file '{path}', sample {i}: 'spikes/times' has {t.size} events but "
                             f"'spikes/units' has {u.size}")
        if u.size and (u.min() < 0 or u.max() >= SHD_UNITS):
            raise ValueError(f"SHD file '{path}', sample {i}: 'spikes/units' must lie in 0..{SHD_UNITS - 1}")
        bad = ~np.isfinite(t) | (t < 0) | (t >= MAX_SECONDS)
        if bad.any():
            raise ValueError(f"SHD file '{path}', sample {i}: 'spikes/times' must be seconds in [0, {MAX_SECONDS:g}); "
                             f"{int(bad.sum())} of its {t.size} events are not (e.g. {float(t[bad][0])!r})")
        return Events(t=(t * 1e6).astype(np.int64), x=u)  # µs, truncated as tonic reads them

    keep = _subset(labels, limit, seed)
    return LazySamples(keep, read), labels[keep]


def load_shd(
    path: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    encoder: str | None = None,
    encoder_options: dict[str, Any] | None = None,
    bin_ms: float = 10.0,
    steps: int | None = None,
    max_ms: float | None = None,
    pool: int = 1,
    binary: bool = False,
    limit: int | None = None,
) -> Task:
    """Spiking Heidelberg Digits from ``path/shd_train.h5`` and ``path/shd_test.h5`` (20 classes,
    700 channels / ``pool``). Options: ``bin_ms`` (default 10), ``steps``, ``max_ms``, ``pool``,
    ``binary``, ``limit`` (see the module docstring)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(f"SHD folder '{root}' does not exist; it must hold shd_train.h5 and shd_test.h5")
    with ExitStack() as stack:
        train = _open_shd(root / "shd_train.h5", limit, seed, stack)
        test = _open_shd(root / "shd_test.h5", limit, seed, stack)
        return events_task(f"shd:{root}", train, test, (SHD_UNITS, 1, 1), seed=seed, val_fraction=val_fraction,
                           encoder=encoder, encoder_options=encoder_options, bin_ms=bin_ms, steps=steps,
                           max_ms=max_ms, pool=pool, polarity=False, binary=binary,
                           info={"source": "shd", "path": str(root)})


# ------------------------------------------------------------------------------------------ N-MNIST
def read_nmnist_file(path: str | Path) -> Events:
    """The events of one N-MNIST ``.bin`` file (t in µs, x, y in 0..33, p in {0, 1})."""
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 5:
        raise ValueError(f"'{path}' is not an N-MNIST event file: its size ({raw.size} bytes) is not a multiple "
                         "of 5 (x, y, polarity+timestamp in 3 bytes per event)")
    ev = raw.reshape(-1, 5).astype(np.int64)
    x, y = ev[:, 0], ev[:, 1]
    p = ev[:, 2] >> 7
    t = ((ev[:, 2] & 0x7F) << 16) | (ev[:, 3] << 8) | ev[:, 4]
    overflow = y == 240
    t = t + np.cumsum(overflow) * (1 << 13)
    keep = ~overflow
    x, y, p, t = x[keep], y[keep], p[keep], t[keep]
    if x.size and (x.max() >= NMNIST_SIZE[0] or y.max() >= NMNIST_SIZE[1]):
        raise ValueError(f"'{path}': N-MNIST pixel coordinates must lie in 0..33, got x up to {x.max()}, "
                         f"y up to {y.max()}")
    return Events(t=t, x=x, y=y, p=p)


def _read_nmnist_split(folder: Path, limit: int | None, seed: int) -> tuple[LazySamples, np.ndarray]:
    if not folder.is_dir():
        raise ValueError(f"N-MNIST folder '{folder}' does not exist; expected Train/<digit>/*.bin and "
                         "Test/<digit>/*.bin under the path")
    files, labels = [], []
    for sub in sorted(folder.iterdir()):
        if sub.is_dir() and sub.name.isdigit():
            for f in sorted(sub.glob("*.bin")):
                files.append(f)
                labels.append(int(sub.name))
    if not files:
        raise ValueError(f"N-MNIST folder '{folder}' holds no <digit>/*.bin files")
    labels = np.asarray(labels, dtype=np.int64)
    keep = _subset(labels, limit, seed)
    return LazySamples(keep, lambda i: read_nmnist_file(files[i])), labels[keep]


def load_nmnist(
    path: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    encoder: str | None = None,
    encoder_options: dict[str, Any] | None = None,
    bin_ms: float = 5.0,
    steps: int | None = None,
    max_ms: float | None = None,
    pool: int = 2,
    polarity: bool = True,
    binary: bool = False,
    limit: int | None = None,
) -> Task:
    """N-MNIST from ``path/Train`` and ``path/Test`` (10 classes, 34×34×2 pixels; default
    ``pool=2`` → 17×17×2 = 578 channels, ``bin_ms=5``). Options as for :func:`load_shd`, plus
    ``polarity``. The full set is 70,000 samples: use ``limit`` to keep a subset in memory."""
    root = Path(path).expanduser()
    train = _read_nmnist_split(root / "Train", limit, seed)
    test = _read_nmnist_split(root / "Test", limit, seed)
    return events_task(f"nmnist:{root}", train, test, NMNIST_SIZE, seed=seed, val_fraction=val_fraction,
                       encoder=encoder, encoder_options=encoder_options, bin_ms=bin_ms, steps=steps, max_ms=max_ms,
                       pool=pool, polarity=polarity, binary=binary, info={"source": "nmnist", "path": str(root)})


SHD_FAMILY = TaskFamily(
    "shd", load_shd, DEFAULT_ENCODER,
    (("shd:PATH", "Spiking Heidelberg Digits, PATH/shd_{train,test}.h5 (700 ch, 20 classes); options: bin_ms, steps, "
                  "max_ms, pool, binary, limit"),),
    argument="required",
)
NMNIST_FAMILY = TaskFamily(
    "nmnist", load_nmnist, DEFAULT_ENCODER,
    (("nmnist:PATH", "N-MNIST, PATH/{Train,Test}/<digit>/*.bin (34x34x2); options: bin_ms, steps, max_ms, pool, "
                     "polarity, binary, limit"),),
    argument="required",
)
