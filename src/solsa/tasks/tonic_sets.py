"""``tonic:NAME:ROOT``: a tonic (https://tonic.readthedocs.io) event data set whose files are in place.

tonic's data sets download their files when they are missing; solsa never does. The data set
class ``tonic.datasets.NAME`` reads ``ROOT/NAME/...`` in tonic's own layout (download it once
with ``tonic.datasets.NAME(save_to=ROOT)``); a missing file raises a ``ValueError`` naming the
folder instead of starting a download. Its train and test splits (``train=True/False`` or
``split="train"/"test"``) are binned and pooled like ``shd:`` and ``nmnist:``
(:func:`solsa.tasks.events.events_task`).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from .base import Task, TaskFamily
from .events import Events, LazySamples, _subset, events_task

__all__ = ["load_tonic", "DEFAULT_ENCODER", "FAMILY"]

DEFAULT_ENCODER = "direct"


def _offline_class(name: str, root: Path) -> type:
    try:
        import tonic.dataset
        import tonic.datasets
    except ImportError as err:
        raise ValueError("task tonic:NAME:ROOT needs the tonic package: pip install -e \".[interop]\"") from err
    cls = getattr(tonic.datasets, name, None)
    if not (isinstance(cls, type) and issubclass(cls, tonic.dataset.Dataset)):
        names = sorted(n for n, c in vars(tonic.datasets).items()
                       if isinstance(c, type) and issubclass(c, tonic.dataset.Dataset))
        raise ValueError(f"tonic has no data set {name!r}; tonic.datasets has: {', '.join(names)}")

    class Offline(cls):  # type: ignore[misc, valid-type]
        def _check_exists(self) -> bool:  # the files decide, not the archive tonic downloaded them in
            return Path(self.location_on_system).is_dir()

        def download(self) -> None:
            raise ValueError(f"tonic data set {name}: no files under '{self.location_on_system}'; solsa never "
                             f"downloads: fetch them once with tonic.datasets.{name}(save_to='{root}')")

    Offline.__name__ = cls.__name__  # tonic reads ROOT/<class name>
    return Offline


def _split(cls: type, name: str, root: Path, train: bool) -> Any:
    params = inspect.signature(cls.__init__).parameters
    if "train" in params:
        kw: dict[str, Any] = {"train": train}
    elif "split" in params:
        kw = {"split": "train" if train else "test"}
    else:
        raise ValueError(f"tonic data set {name} has no train/test split (no 'train' or 'split' argument)")
    try:
        return cls(save_to=str(root), **kw)
    except ValueError:
        raise
    except Exception as err:  # tonic and h5py raise many kinds for files that are missing or malformed
        raise ValueError(f"tonic data set {name} under '{root / name}' could not be read: "
                         f"{type(err).__name__}: {err}") from err


def _events(ds: Any, name: str, limit: int | None, seed: int) -> tuple[LazySamples, np.ndarray]:
    if len(getattr(ds, "targets", [])) == len(ds):
        labels = np.asarray([int(t) for t in ds.targets], dtype=np.int64)
    else:  # the label comes with each sample (e.g. SHD's HDF5): one pass to read them
        labels = np.asarray([int(ds[i][1]) for i in range(len(ds))], dtype=np.int64)

    def read(i: int) -> Events:
        ev, _ = ds[i]
        fields = ev.dtype.names or ()
        if "t" not in fields or "x" not in fields:
            raise ValueError(f"tonic data set {name}: sample {i} has fields {list(fields)}; solsa needs 't' and 'x'")
        return Events({k: np.asarray(ev[k], dtype=np.int64) for k in ("t", "x", "y", "p") if k in fields})

    keep = _subset(labels, limit, seed)
    return LazySamples(keep, read), labels[keep]


def load_tonic(
    name: str,
    root: str,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    encoder: str | None = None,
    encoder_options: dict[str, Any] | None = None,
    bin_ms: float = 10.0,
    steps: int | None = None,
    max_ms: float | None = None,
    pool: int = 1,
    polarity: bool = True,
    binary: bool = False,
    limit: int | None = None,
) -> Task:
    """tonic data set ``name`` read from ``root`` (no download); options as for :func:`~solsa.tasks.events.load_shd`."""
    root_path = Path(root).expanduser()
    cls = _offline_class(name, root_path)
    train = _events(_split(cls, name, root_path, True), name, limit, seed)
    test = _events(_split(cls, name, root_path, False), name, limit, seed)
    sensor = tuple(int(s) for s in cls.sensor_size) if len(cls.sensor_size) == 3 else (int(cls.sensor_size[0]), 1, 1)
    return events_task(f"tonic:{name}:{root_path}", train, test, sensor, seed=seed, val_fraction=val_fraction,
                       encoder=encoder, encoder_options=encoder_options, bin_ms=bin_ms, steps=steps, max_ms=max_ms,
                       pool=pool, polarity=polarity, binary=binary,
                       info={"source": "tonic", "dataset": name, "path": str(root_path)})


FAMILY = TaskFamily(
    "tonic", load_tonic, DEFAULT_ENCODER,
    (("tonic:NAME:ROOT", "tonic data set NAME with its files under ROOT/NAME (never downloads); options as nmnist"),),
    argument="pair",
)
