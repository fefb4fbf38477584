"""UEA / UCR time-series classification archives via ``aeon``."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from ._prep import build_task, check_normalize, encoder_settings, index_labels, pad_sequences
from ..validation import check_positive_int
from .base import Task, TaskFamily

__all__ = ["load_uea", "pool_sequences", "DEFAULT_ENCODER", "UNIVARIATE_ENCODER", "MAX_STEPS", "FAMILY"]

# Chosen on the validation splits of ACSF1, ItalyPowerDemand, OSULeaf (one channel) and BasicMotions,
# JapaneseVowels (several) against population, delta, bank, slow α₀ and readout scores (docs/series.md §3),
# then the delay line against the bank (§8). Several channels: the signal itself (DEFAULT_ENCODER, the
# family's: what option routing and the C export see); one channel: the tapped, dilated delay line at its own
# defaults (5 taps, 3 dilations from 1 to (T - 1) // 4).
DEFAULT_ENCODER = "direct"
UNIVARIATE_ENCODER = "delay"
# Longer series are average-pooled to at most this many steps (ACSF1 1,460 -> 292, OSULeaf 427 -> 214): 300
# against 100 by a paired validation rule fixed before fresh seeds 6-9 (docs/series.md §9).
MAX_STEPS = 300


def _read_split(name: str, split: str, extract_path: str | None) -> tuple[Any, np.ndarray]:
    """``aeon.datasets.load_classification`` with third-party warnings silenced and errors
    turned into ``ValueError`` naming the data set."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from aeon.datasets import load_classification

            kwargs: dict[str, Any] = {"split": split}
            if extract_path is not None:
                kwargs["extract_path"] = str(extract_path)
            X, y = load_classification(name, **kwargs)
    except Exception as exc:  # aeon raises many kinds (ValueError, OSError, URLError, ...)
        where = f" from {extract_path!r}" if extract_path is not None else ""
        raise ValueError(
            f"could not load UEA/UCR data set {name!r} ({split} split){where}: {type(exc).__name__}: {exc}. "
            "Only data sets bundled with aeon (e.g. BasicMotions, JapaneseVowels) load offline; "
            "for others pass extract_path=<folder holding NAME/NAME_TRAIN.ts and NAME_TEST.ts>."
        ) from exc
    return X, np.asarray(y)


def _to_sequences(X: Any, name: str, split: str) -> list[np.ndarray]:
    """aeon's ``[N, C, L]`` array or list of ``[C, L_i]`` arrays -> list of ``[L_i, C]`` float arrays.

    Trailing all-NaN steps are treated as padding and dropped; other NaN/inf raise.
    """
    seqs = []
    for i, a in enumerate(X):
        a = np.asarray(a, dtype=np.float64).T  # [L, C]
        finite = np.isfinite(a)
        rows_ok = finite.all(axis=1)
        rows_nan = np.isnan(a).all(axis=1)
        n_valid = len(a)
        while n_valid > 0 and rows_nan[n_valid - 1]:
            n_valid -= 1
        if n_valid == 0 or not rows_ok[:n_valid].all():
            raise ValueError(
                f"UEA data set {name!r} ({split} split): sample {i} has missing or non-finite values "
                "inside the series; impute them first"
            )
        seqs.append(a[:n_valid].astype(np.float32))
    if not seqs:
        raise ValueError(f"UEA data set {name!r} ({split} split) is empty")
    channels = {s.shape[1] for s in seqs}
    if len(channels) != 1:
        raise ValueError(f"UEA data set {name!r} ({split} split): samples have different channel counts {sorted(channels)}")
    return seqs


def pool_sequences(seqs: list[np.ndarray], factor: int) -> list[np.ndarray]:
    """Average each ``[L, C]`` series over consecutive windows of ``factor`` steps: ``ceil(L / factor)`` steps,
    the last window averaged over the steps it has."""
    if factor == 1:
        return seqs
    pooled = []
    for s in seqs:
        starts = np.arange(0, len(s), factor)
        counts = np.minimum(starts + factor, len(s)) - starts
        pooled.append((np.add.reduceat(s.astype(np.float64), starts, axis=0) / counts[:, None]).astype(np.float32))
    return pooled


def load_uea(
    name: str,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    encoder: str | None = None,
    encoder_options: dict[str, Any] | None = None,
    extract_path: str | None = None,
    normalize: bool | str = "channel",
    max_steps: int | str | None = MAX_STEPS,
) -> Task:
    """Load UEA/UCR classification data set ``name`` with its official train/test split.

    Series of unequal length are zero-padded at the end (all splits to the same ``T``) and
    their lengths recorded. String labels map to ``0..K-1`` by the sorted training labels.
    With ``normalize="channel"`` (default) every channel is z-scored with statistics from the
    training samples left after carving the validation set (valid steps only); the same
    statistics are applied to validation and test. ``"series"`` z-scores every channel of every
    sample by itself; ``"none"`` keeps the raw values (``True``/``False`` mean channel/none). A
    channel with zero spread maps to 0. The encoder (default :data:`DEFAULT_ENCODER`, for a set with one
    channel :data:`UNIVARIATE_ENCODER`) runs afterwards.

    Args:
        name: Data set name as known to ``aeon.datasets.load_classification``.
        extract_path: Optional folder aeon reads from / extracts to (``NAME/NAME_TRAIN.ts``).
        normalize: "channel", "series" or "none" (see :data:`solsa.tasks._prep.NORMALIZATIONS`).
        max_steps: bound on the series' length: series longer than this are average-pooled over windows of
            ``p = ceil(longest / max_steps)`` steps (every sample by the same ``p``, recorded as ``info["pool"]``),
            before normalisation (default :data:`MAX_STEPS`). None (or ``"none"``): full length.
    """
    normalize = check_normalize(normalize)
    X_tr, y_tr_raw = _read_split(name, "train", extract_path)
    X_te, y_te_raw = _read_split(name, "test", extract_path)
    seq_tr = _to_sequences(X_tr, name, "train")
    seq_te = _to_sequences(X_te, name, "test")
    if max_steps == "none":  # the command line's spelling of None
        max_steps = None
    if max_steps is not None:
        check_positive_int("max_steps", max_steps)
    original = max(len(s) for s in seq_tr + seq_te)
    pool = 1 if max_steps is None else math.ceil(original / max_steps)
    seq_tr, seq_te = pool_sequences(seq_tr, pool), pool_sequences(seq_te, pool)
    channels = seq_tr[0].shape[1]
    default = UNIVARIATE_ENCODER if channels == 1 else DEFAULT_ENCODER
    try:
        enc_name, enc_opts = encoder_settings(encoder, default, encoder_options)
    except ValueError as exc:
        if encoder is not None:
            raise
        raise ValueError(f"{exc} (UEA data set {name!r} has {channels} channel(s), so its default encoder is "
                         f"{default!r}; name the encoder to set another one's options)") from None
    if seq_tr[0].shape[1] != seq_te[0].shape[1]:
        raise ValueError(
            f"UEA data set {name!r}: train has {seq_tr[0].shape[1]} channels but test has {seq_te[0].shape[1]}"
        )
    y_tr, y_te, classes = index_labels(y_tr_raw, y_te_raw, what=f"UEA data set {name!r}")
    if len(classes) < 2:
        raise ValueError(f"UEA data set {name!r} has fewer than 2 classes in its training split")
    steps = max(len(s) for s in seq_tr + seq_te)
    x_tr, len_tr = pad_sequences(seq_tr, steps)
    x_te, len_te = pad_sequences(seq_te, steps)
    info = {
        "source": "uea",
        "dataset": name,
        "classes": classes,
        "original_train_size": len(seq_tr),
        "original_test_size": len(seq_te),
        "original_channels": int(seq_tr[0].shape[1]),
        "original_T": original,
        "pool": pool,
        "min_length": int(min(len_tr.min(), len_te.min())),
        "max_length": steps,
    }
    return build_task(
        name=f"uea:{name}",
        kind="classification",
        n_classes=len(classes),
        x_train=x_tr,
        len_train=len_tr,
        y_train=torch.from_numpy(y_tr),
        x_test=x_te,
        len_test=len_te,
        y_test=torch.from_numpy(y_te),
        seed=seed,
        val_fraction=val_fraction,
        encoder=enc_name,
        encoder_options=enc_opts,
        normalize=normalize,
        info=info,
    )


FAMILY = TaskFamily(
    "uea", load_uea, DEFAULT_ENCODER,
    (("uea:NAME", "UEA/UCR classification set NAME via aeon (offline: the sets aeon bundles, e.g. "
                  "BasicMotions, JapaneseVowels, ItalyPowerDemand, OSULeaf, ACSF1); "
                  "default encoder: direct, delay for one channel; "
                  "options: extract_path, normalize (channel, series, none), max_steps (average-pool longer "
                  f"series to at most this many steps; default {MAX_STEPS}, none: full length)"),),
    argument="required",
    data_encoders=(UNIVARIATE_ENCODER,),
)
