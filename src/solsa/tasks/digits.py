"""scikit-learn's 8x8 handwritten digits as spike trains."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..validation import check_positive_int
from ._prep import UNIT_RANGE_DEFAULTS, build_task, encoder_settings, stratified_split
from .base import Task, TaskFamily

__all__ = ["load_digits_task", "DEFAULT_ENCODER", "FAMILY"]

DEFAULT_ENCODER = "rate"


def load_digits_task(
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    encoder: str | None = None,
    encoder_options: dict[str, Any] | None = None,
    steps: int = 20,
    test_fraction: float = 0.25,
    split_seed: int | None = None,
) -> Task:
    """``sklearn.datasets.load_digits``: 1797 images, 64 pixels scaled to ``[0, 1]``, 10 classes.

    Each image becomes a ``steps``-long input of 64 channels:

    * ``"rate"`` (default): the image is shown for ``steps`` steps; Bernoulli spikes with
      probability ``pixel * max_rate`` per step (``squash="clip"``).
    * ``"latency"``: the image is shown once and expanded to ``window`` (default ``steps``)
      sub-steps; pixel ``v`` spikes once at ``round((1 - v) * (window - 1))``; pixels with
      ``v < floor`` (default 0.1) stay silent.
    * any other encoder sees the image repeated for ``steps`` steps (unit-range defaults:
      population ``lo=0, hi=1``; delta ``start=0``).

    The train/test split is stratified and seeded (``test_fraction`` of each class, seed
    ``split_seed``, default ``seed``); validation is then carved from the training part.
    ``Split.index`` holds positions in the full 1797-image data set.
    """
    from sklearn.datasets import load_digits

    check_positive_int("steps", steps)
    base = {k: dict(v) for k, v in UNIT_RANGE_DEFAULTS.items()}
    base["latency"]["window"] = steps
    enc_name, enc_opts = encoder_settings(encoder, DEFAULT_ENCODER, encoder_options, base)

    data = load_digits()
    images = (np.asarray(data.data, dtype=np.float32) / 16.0).clip(0.0, 1.0)  # [N, 64]
    labels = np.asarray(data.target, dtype=np.int64)
    split_seed = seed if split_seed is None else split_seed
    train_idx, test_idx = stratified_split(labels, float(test_fraction), [int(split_seed), 7919])

    reps = 1 if enc_name == "latency" else steps

    def series(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(images[idx]).unsqueeze(0).repeat(reps, 1, 1)  # [reps, n, 64]
        return x, torch.full((len(idx),), reps, dtype=torch.int64)

    x_tr, len_tr = series(train_idx)
    x_te, len_te = series(test_idx)
    info = {
        "source": "sklearn.datasets.load_digits",
        "classes": list(range(10)),
        "original_size": int(len(labels)),
        "original_train_size": int(len(train_idx)),
        "original_test_size": int(len(test_idx)),
        "test_fraction": float(test_fraction),
        "split_seed": int(split_seed),
        "steps": steps,
        "pixel_scale": "value / 16 -> [0, 1]",
    }
    return build_task(
        name="digits",
        kind="classification",
        n_classes=10,
        x_train=x_tr,
        len_train=len_tr,
        y_train=torch.from_numpy(labels[train_idx]),
        x_test=x_te,
        len_test=len_te,
        y_test=torch.from_numpy(labels[test_idx]),
        seed=seed,
        val_fraction=val_fraction,
        encoder=enc_name,
        encoder_options=enc_opts,
        normalize=False,
        train_ids=torch.from_numpy(train_idx),
        test_ids=torch.from_numpy(test_idx),
        info=info,
    )


FAMILY = TaskFamily(
    "digits", load_digits_task, DEFAULT_ENCODER,
    (("digits", "sklearn 8x8 digits (64 ch, 10 classes) as spike trains; options: steps, test_fraction, "
                "split_seed"),),
)
