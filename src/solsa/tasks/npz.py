"""The user's own data from a ``.npz`` archive.

Expected arrays (``numpy.savez(path, X=..., y=...)``):

* ``X``: ``(samples, time, channels)`` real values or spikes (float, int or bool dtype);
* ``y``: ``(samples,)`` non-negative integer class labels;
* optional ``X_test`` / ``y_test``: an official test set (else a stratified, seeded 25% of
  ``X`` is held out as test);
* optional ``lengths`` / ``lengths_test``: valid steps per sample (``1..time``); values after
  a sample's length are ignored and set to 0.

Note that ``X`` is samples-first on disk; tasks are time-first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._prep import UNIT_RANGE_DEFAULTS, build_task, check_normalize, encoder_settings, index_labels, is_binary, stratified_split
from .base import Task, TaskFamily, length_mask

__all__ = ["load_npz", "DEFAULT_ENCODER", "KNOWN_ARRAYS", "FAMILY"]

DEFAULT_ENCODER = "direct"
KNOWN_ARRAYS = ("X", "y", "X_test", "y_test", "lengths", "lengths_test")


def _read(path: str | Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Open the archive and read every array, with errors that name the file (and array)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ValueError(f"npz file '{p}' does not exist")
    if not p.is_file():
        raise ValueError(f"npz path '{p}' is not a file")
    try:
        archive = np.load(p, allow_pickle=False)
    except Exception as exc:
        raise ValueError(f"could not read '{p}' as a .npz archive ({type(exc).__name__}: {exc})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"'{p}' holds a single array, not a .npz archive; save with numpy.savez('{p.name}', X=..., y=...)")
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except Exception as exc:
                raise ValueError(f"could not read array '{key}' in '{p}' ({type(exc).__name__}: {exc})") from exc
    return p, arrays


def _check_X(a: np.ndarray, key: str, p: Path) -> None:
    if a.dtype.kind not in "biuf":
        raise ValueError(f"array '{key}' in '{p}' must be numeric (float, int or bool), got dtype {a.dtype}")
    if a.ndim != 3:
        raise ValueError(f"array '{key}' in '{p}' must be 3-D (samples, time, channels), got shape {a.shape}")
    if min(a.shape) < 1:
        raise ValueError(f"array '{key}' in '{p}' is empty: shape {a.shape}")


def _check_labels(a: np.ndarray, key: str, p: Path, n: int, x_key: str) -> np.ndarray:
    if a.ndim != 1:
        raise ValueError(f"array '{key}' in '{p}' must be 1-D (samples,), got shape {a.shape}")
    if len(a) != n:
        raise ValueError(f"array '{key}' in '{p}' has {len(a)} labels but '{x_key}' has {n} samples")
    if a.dtype.kind in "iu":
        labels = a.astype(np.int64)
    elif a.dtype.kind == "f" and np.isfinite(a).all() and (a == np.round(a)).all():
        labels = a.astype(np.int64)
    else:
        raise ValueError(f"array '{key}' in '{p}' must hold integer class labels, got dtype {a.dtype}"
                         + (" with non-integer or non-finite values" if a.dtype.kind == "f" else ""))
    if (labels < 0).any():
        raise ValueError(f"array '{key}' in '{p}' has negative labels (min {labels.min()}); labels must be >= 0")
    return labels


def _check_lengths(a: np.ndarray | None, key: str, p: Path, n: int, steps: int, x_key: str) -> np.ndarray:
    if a is None:
        return np.full(n, steps, dtype=np.int64)
    if a.ndim != 1 or len(a) != n:
        raise ValueError(f"array '{key}' in '{p}' must have shape ({n},) to match '{x_key}', got {a.shape}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"array '{key}' in '{p}' must be integer, got dtype {a.dtype}")
    if len(a) and (a.min() < 1 or a.max() > steps):
        raise ValueError(f"array '{key}' in '{p}' must lie in 1..{steps} (the time axis of '{x_key}'), got {a.min()}..{a.max()}")
    return a.astype(np.int64)


def _time_first(a: np.ndarray, lengths: np.ndarray, key: str, p: Path, steps: int) -> torch.Tensor:
    """``(samples, time, channels)`` -> ``[steps, N, C]`` float32, zero after each length,
    rejecting NaN/inf on valid steps."""
    with np.errstate(over="ignore"):  # overflow is reported below
        x = torch.from_numpy(np.ascontiguousarray(a.transpose(1, 0, 2)).astype(np.float32, copy=False))
    valid = length_mask(torch.from_numpy(lengths), x.shape[0]).unsqueeze(-1)
    if not torch.isfinite(x).logical_or(~valid).all():  # checked value by value after the cast to float32
        overflow = np.issubdtype(a.dtype, np.floating) and bool(np.isfinite(a).all())
        what = "values beyond the range of float32 (3.4e+38)" if overflow else "NaN or infinite values"
        raise ValueError(f"array '{key}' in '{p}' contains {what} within the valid steps")
    x = torch.where(valid, x, torch.zeros(()))
    if x.shape[0] < steps:
        x = torch.cat([x, x.new_zeros(steps - x.shape[0], *x.shape[1:])])
    return x[:steps].contiguous()


def load_npz(
    path: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    encoder: str | None = None,
    encoder_options: dict[str, Any] | None = None,
    test_fraction: float = 0.25,
    split_seed: int | None = None,
    normalize: bool | str | None = None,
) -> Task:
    """Load a classification task from the ``.npz`` file at ``path`` (see the module docstring).

    Labels map to ``0..K-1`` by their sorted unique training values (``info["classes"]`` holds
    the originals). Without ``X_test`` a stratified ``test_fraction`` of the samples (seed
    ``split_seed``, default ``seed``) becomes the test set. ``normalize=None`` (default)
    z-scores every channel with train-only statistics ("channel") unless the data are binary
    spikes (all values 0 or 1: "none"); "series" z-scores each sample's channels by themselves; spike data also get unit-range encoder defaults (e.g. ``rate``
    with ``squash="clip"``). Every problem raises ``ValueError`` naming the file and array.
    ``Split.index`` holds positions in ``X`` (train, val, and a held-out test) or in ``X_test``.
    """
    p, arrays = _read(path)
    for key in ("X", "y"):
        if key not in arrays:
            raise ValueError(
                f"'{p}' has no array '{key}' (found: {sorted(arrays) or 'none'}); "
                "expected X (samples, time, channels) and y (samples,)"
            )
    has_test = "X_test" in arrays or "y_test" in arrays
    if has_test and not ("X_test" in arrays and "y_test" in arrays):
        present, absent = ("X_test", "y_test") if "X_test" in arrays else ("y_test", "X_test")
        raise ValueError(f"'{p}' has array '{present}' but no '{absent}'; give both or neither")
    if "lengths_test" in arrays and not has_test:
        raise ValueError(f"'{p}' has array 'lengths_test' but no 'X_test'")

    X = arrays["X"]
    _check_X(X, "X", p)
    y = _check_labels(arrays["y"], "y", p, X.shape[0], "X")
    len_x = _check_lengths(arrays.get("lengths"), "lengths", p, X.shape[0], X.shape[1], "X")
    if has_test:
        X_te = arrays["X_test"]
        _check_X(X_te, "X_test", p)
        if X_te.shape[2] != X.shape[2]:
            raise ValueError(f"array 'X_test' in '{p}' has {X_te.shape[2]} channels but 'X' has {X.shape[2]}")
        y_te = _check_labels(arrays["y_test"], "y_test", p, X_te.shape[0], "X_test")
        len_te = _check_lengths(arrays.get("lengths_test"), "lengths_test", p, X_te.shape[0], X_te.shape[1], "X_test")
    if len(np.unique(y)) < 2:
        raise ValueError(f"array 'y' in '{p}' has only one class (label {y[0]}); need at least 2 classes")

    steps = int(len_x.max()) if not has_test else int(max(len_x.max(), len_te.max()))
    x_all = _time_first(X, len_x, "X", p, steps)
    info: dict[str, Any] = {"source": "npz", "path": str(p), "ignored_arrays": sorted(set(arrays) - set(KNOWN_ARRAYS))}
    if has_test:
        tr_ids = te_ids = None
        x_tr, l_tr, x_te = x_all, len_x, _time_first(X_te, len_te, "X_test", p, steps)
        y_tr_raw, y_te_raw, l_te = y, y_te, len_te
        info["test_source"] = "X_test/y_test"
    else:
        split_seed = seed if split_seed is None else split_seed
        tr_idx, te_idx = stratified_split(y, float(test_fraction), [int(split_seed), 7919])
        if len(te_idx) == 0:
            raise ValueError(f"'{p}': too few samples in 'X' ({len(y)}) to hold out a test set of {test_fraction:.0%}")
        x_tr, l_tr, y_tr_raw = x_all[:, torch.from_numpy(tr_idx)], len_x[tr_idx], y[tr_idx]
        x_te, l_te, y_te_raw = x_all[:, torch.from_numpy(te_idx)], len_x[te_idx], y[te_idx]
        tr_ids, te_ids = torch.from_numpy(tr_idx), torch.from_numpy(te_idx)
        info.update({"test_source": f"stratified {test_fraction} of X", "split_seed": int(split_seed)})
    y_tr, y_te_idx, classes = index_labels(y_tr_raw, y_te_raw, what=f"'{p}' (array 'y_test' vs 'y')")

    binary = is_binary(x_tr) and is_binary(x_te)
    normalize = ("none" if binary else "channel") if normalize is None else check_normalize(normalize)
    base = UNIT_RANGE_DEFAULTS if binary else None
    enc_name, enc_opts = encoder_settings(encoder, DEFAULT_ENCODER, encoder_options, base)
    info.update(
        {
            "classes": classes,
            "binary_spikes": binary,
            "original_train_size": int(x_tr.shape[1]),
            "original_test_size": int(x_te.shape[1]),
            "original_channels": int(X.shape[2]),
            "original_T": steps,
        }
    )
    return build_task(
        name=f"npz:{p}",
        kind="classification",
        n_classes=len(classes),
        x_train=x_tr,
        len_train=torch.from_numpy(np.asarray(l_tr, dtype=np.int64)),
        y_train=torch.from_numpy(y_tr),
        x_test=x_te,
        len_test=torch.from_numpy(np.asarray(l_te, dtype=np.int64)),
        y_test=torch.from_numpy(y_te_idx),
        seed=seed,
        val_fraction=val_fraction,
        encoder=enc_name,
        encoder_options=enc_opts,
        normalize=normalize,
        train_ids=tr_ids,
        test_ids=te_ids,
        info=info,
    )


FAMILY = TaskFamily(
    "npz", load_npz, DEFAULT_ENCODER,
    (("npz:PATH", "your own .npz with X (samples, time, channels) and y; options: test_fraction, split_seed, "
                  "normalize (channel, series, none)"),),
    argument="required",
)
