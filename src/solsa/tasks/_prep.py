"""Shared steps of the task loaders: padding, stratified splits, normalisation, encoding."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..validation import warn_input_scale
from .base import Split, Task, length_mask
from .encoders import encode, encoder_defaults

__all__ = [
    "pad_sequences",
    "stratified_split",
    "fit_normalization",
    "apply_normalization",
    "series_normalization",
    "check_normalize",
    "NORMALIZATIONS",
    "index_labels",
    "is_binary",
    "seeded_generator",
    "build_task",
    "UNIT_RANGE_DEFAULTS",
    "encoder_settings",
]

# How real-valued inputs are scaled before the encoder: "channel" z-scores every channel with statistics of
# the training samples (validation excluded); "series" z-scores every channel of every sample by itself
# (shape only, each series' level and scale dropped); "none" leaves the values as they are.
NORMALIZATIONS = ("channel", "series", "none")

# Encoder option defaults for data already in [0, 1] (images, spike trains) instead of z-scored data.
UNIT_RANGE_DEFAULTS: dict[str, dict[str, Any]] = {
    "rate": {"squash": "clip"},
    "latency": {"squash": "clip"},
    "population": {"lo": 0.0, "hi": 1.0},
    "delta": {"start": 0.0},
}


def encoder_settings(
    encoder: str | None,
    default: str,
    encoder_options: dict[str, Any] | None,
    base: dict[str, dict[str, Any]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Resolve the encoder name (``default`` when None) and its options: ``base[name]`` (task
    specific defaults) overridden by the user's ``encoder_options``. Validates both. The ``linear`` encoder's
    ``base`` defaults to ``default`` (the task's own encoder), its ``base_options`` to ``base[that encoder]``."""
    name = default if encoder is None else encoder
    valid = encoder_defaults(name)  # raises ValueError for an unknown encoder
    opts = {**(base or {}).get(name, {}), **(encoder_options or {})}
    if name == "linear":  # its base: the task's encoder by default, with the task's defaults for it
        opts["base"] = default if opts.get("base") is None else opts["base"]
        given = opts.get("base_options")
        if given is None or isinstance(given, dict):  # anything else: the encoder names the error
            opts["base_options"] = {**(base or {}).get(opts["base"], {}), **(given or {})}
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        raise ValueError(f"encoder {name!r} got unknown option(s) {unknown}; valid options: {sorted(valid) or 'none'}")
    return name, opts


def pad_sequences(seqs: Sequence[np.ndarray], steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``[L_i, C]`` arrays into a zero-padded ``[T, N, C]`` float32 tensor plus int64 lengths.

    ``T`` is ``steps`` if given (must be >= every ``L_i``), else the longest ``L_i``.
    """
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    n_channels = seqs[0].shape[1] if len(seqs) else 0
    longest = int(lengths.max()) if len(seqs) else 0
    steps = longest if steps is None else steps
    if steps < longest:
        raise ValueError(f"steps={steps} is shorter than the longest sequence ({longest})")
    x = np.zeros((steps, len(seqs), n_channels), dtype=np.float32)
    for i, s in enumerate(seqs):
        x[: len(s), i] = s
    return torch.from_numpy(x), torch.from_numpy(lengths)


def stratified_split(y: np.ndarray, fraction: float, seed: int | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into ``(keep, held)`` with ``held`` ~ ``fraction`` of every class.

    The total held out is ``round(fraction * N)``, shared among classes in proportion to their
    sizes (largest remainder, ties broken at random), never taking the last sample of a class.
    The draw is seeded by ``seed``. Both index arrays are sorted.
    """
    y = np.asarray(y)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"split fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    total = min(int(round(fraction * len(y))), int(np.sum(counts - 1)))
    exact = fraction * counts
    alloc = np.minimum(np.floor(exact).astype(np.int64), counts - 1)
    order = rng.permutation(len(classes))
    order = order[np.argsort(-(exact - alloc)[order], kind="stable")]
    while alloc.sum() < total:
        progressed = False
        for k in order:
            if alloc.sum() >= total:
                break
            if alloc[k] < counts[k] - 1:
                alloc[k] += 1
                progressed = True
        if not progressed:
            break
    held = []
    for cls, k in zip(classes, alloc):
        members = np.flatnonzero(y == cls)
        held.append(rng.permutation(members)[:k])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    keep_idx = np.setdiff1d(np.arange(len(y)), held_idx)
    return keep_idx.astype(np.int64), held_idx.astype(np.int64)


def fit_normalization(x: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over the valid (unpadded) steps of ``x [T, N, C]``.

    A channel with (near) zero spread gets std 1 so it maps to 0 instead of blowing up.
    """
    valid = length_mask(lengths, x.shape[0])
    values = x[valid].to(torch.float64)  # [n_valid_steps, C]
    if values.shape[0] == 0:
        raise ValueError("cannot compute normalisation statistics from an empty training set")
    mean = values.mean(dim=0)
    std = values.std(dim=0, unbiased=False)
    std = torch.where(std > eps, std, torch.ones_like(std))
    return mean.to(torch.float32), std.to(torch.float32)


def apply_normalization(x: torch.Tensor, lengths: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` on valid steps; padded steps stay exactly 0."""
    mask = length_mask(lengths, x.shape[0]).unsqueeze(-1)
    return torch.where(mask, (x - mean) / std, torch.zeros((), dtype=x.dtype))


def series_normalization(x: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Every channel of every sample z-scored over its own valid steps of ``x [T, N, C]``.

    A channel that is constant within a sample (std <= ``eps``) maps to 0. Padded steps stay exactly 0.
    Returns ``(normalised x, number of constant (sample, channel) pairs)``.
    """
    mask = length_mask(lengths, x.shape[0]).unsqueeze(-1)  # [T, N, 1]
    xd = torch.where(mask, x.to(torch.float64), torch.zeros((), dtype=torch.float64))
    n = lengths.to(torch.float64).clamp(min=1).unsqueeze(-1)  # [N, 1]
    mean = xd.sum(0) / n
    var = (torch.where(mask, xd - mean, torch.zeros((), dtype=torch.float64)) ** 2).sum(0) / n
    std = var.sqrt()
    constant = std <= eps
    std = torch.where(constant, torch.ones_like(std), std)
    out = torch.where(mask, (xd - mean) / std, torch.zeros((), dtype=torch.float64))
    return out.to(x.dtype), constant.sum()


def check_normalize(value: object) -> str:
    """The normalisation mode of ``value``: one of :data:`NORMALIZATIONS`, or a bool (true: "channel",
    the z-score of earlier versions; false: "none")."""
    if isinstance(value, bool):
        return "channel" if value else "none"
    if value not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)} (or true/false), got {value!r}")
    return str(value)


def index_labels(train: np.ndarray, test: np.ndarray, *, what: str) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Map labels to ``0..K-1`` by the sorted unique training labels (numeric order when all
    labels are numbers). Returns ``(y_train, y_test, classes)``; raises if the test set has a
    label the training set lacks.
    """
    uniq = list(np.unique(train))

    def key(v: Any) -> tuple[int, Any]:
        try:
            return (0, float(v))
        except (TypeError, ValueError):
            return (1, str(v))

    uniq.sort(key=key)
    lookup = {v: i for i, v in enumerate(uniq)}
    missing = sorted({v for v in np.unique(test) if v not in lookup}, key=key)
    if missing:
        raise ValueError(f"{what}: test labels {[_jsonable(m) for m in missing]} do not occur in the training labels")
    y_tr = np.array([lookup[v] for v in train], dtype=np.int64)
    y_te = np.array([lookup[v] for v in test], dtype=np.int64)
    return y_tr, y_te, [_jsonable(v) for v in uniq]


def _jsonable(v: Any) -> Any:
    """Plain Python value for ``info`` (numpy scalars -> int/float/str)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


def is_binary(x: torch.Tensor) -> bool:
    """True if every value of ``x`` is 0 or 1 (spike data)."""
    return bool(((x == 0) | (x == 1)).all())


def seeded_generator(seed: int, stream: int) -> torch.Generator:
    """An independent, reproducible torch generator for ``(seed, stream)``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & 0x7FFFFFFFFFFFFFFF)


def build_task(
    *,
    name: str,
    kind: str,
    n_classes: int,
    x_train: torch.Tensor,
    len_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    len_test: torch.Tensor,
    y_test: torch.Tensor,
    seed: int,
    val_fraction: float,
    encoder: str,
    encoder_options: dict[str, Any],
    normalize: bool | str,
    target_train: torch.Tensor | None = None,
    target_test: torch.Tensor | None = None,
    train_ids: torch.Tensor | None = None,
    test_ids: torch.Tensor | None = None,
    info: dict[str, Any] | None = None,
) -> Task:
    """Carve validation from train, normalise with train-only statistics, encode, and wrap up.

    Order of operations: (1) stratified, seeded validation split of the training set;
    (2) ``normalize`` (see :data:`NORMALIZATIONS`; a bool means "channel" or "none"): "channel" fits
    per-channel z-score statistics on the remaining training samples' valid steps and applies them to
    train, val and test; "series" z-scores each sample's channels by themselves; (3) the encoder on each
    split with its own seeded generator.

    ``train_ids`` / ``test_ids`` give each sample's position in its source (default
    ``0..N-1``); they end up in ``Split.index``.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    info = dict(info or {})
    keep, held = stratified_split(y_train.numpy(), float(val_fraction), seed)
    keep_t, held_t = torch.from_numpy(keep), torch.from_numpy(held)
    shared_source = test_ids is not None
    train_ids = torch.arange(x_train.shape[1]) if train_ids is None else torch.as_tensor(train_ids)
    test_ids = torch.arange(x_test.shape[1]) if test_ids is None else torch.as_tensor(test_ids)

    def take(t: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
        return None if t is None else t[:, idx]

    # part -> [x, lengths, y, index into the source set, target]
    parts: dict[str, list[Any]] = {
        "train": [x_train[:, keep_t], len_train[keep_t], y_train[keep_t], train_ids[keep_t], take(target_train, keep_t)],
        "val": [x_train[:, held_t], len_train[held_t], y_train[held_t], train_ids[held_t], take(target_train, held_t)],
        "test": [x_test, len_test, y_test, test_ids, target_test],
    }

    normalize = check_normalize(normalize)
    if normalize == "channel":
        mean, std = fit_normalization(parts["train"][0], parts["train"][1])
        for part in parts.values():
            part[0] = apply_normalization(part[0], part[1], mean, std)
        info["normalization"] = {
            "method": "z-score per channel",
            "fitted_on": "training samples (validation excluded), valid steps only",
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
        }
    elif normalize == "series":
        constant = 0
        for part in parts.values():
            part[0], n_constant = series_normalization(part[0], part[1])
            constant += int(n_constant)
        info["normalization"] = {
            "method": "z-score per sample and channel",
            "fitted_on": "each sample's own valid steps",
            "constant_channels": constant,  # (sample, channel) pairs with zero spread, mapped to 0
        }
    else:
        info["normalization"] = None

    splits: dict[str, Split] = {}
    for stream, (name_, (x, n, y, index, target)) in enumerate(parts.items(), start=1):
        ex, en = encode(encoder, x, n, generator=seeded_generator(seed, stream), **encoder_options)
        if target is not None and target.shape[0] != ex.shape[0]:
            raise ValueError(
                f"encoder {encoder!r} changes the number of time steps ({x.shape[0]} -> {ex.shape[0]}); "
                "generation tasks need an encoder that keeps T (direct, population, delta, rate)"
            )
        splits[name_] = Split(
            x=ex.contiguous(), y=y.to(torch.int64), lengths=en.to(torch.int64), target=target, index=index.to(torch.int64)
        )

    warn_input_scale(splits["train"].peak, f"task {name} (normalize={normalize}, encoder {encoder})")
    info.setdefault(
        "index_refers_to",
        "the full data set" if shared_source else "train/val: original training set, test: original test set",
    )
    options = {**encoder_defaults(encoder), **encoder_options}
    info.update(
        {
            "encoder": encoder,
            "encoder_options": {k: _jsonable(v) for k, v in options.items()},
            "T": max(s.steps for s in splits.values()),
            "n_train": len(splits["train"]),
            "n_val": len(splits["val"]),
            "n_test": len(splits["test"]),
            "seed": int(seed),
            "val_fraction": float(val_fraction),
        }
    )
    return Task(
        name=name,
        kind=kind,
        n_inputs=int(splits["train"].x.shape[2]),
        n_classes=int(n_classes),
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        info=info,
    )

