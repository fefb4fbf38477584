"""Checks of user input that raise errors naming the argument and what was expected."""

from __future__ import annotations

import math

import torch

__all__ = ["check_range", "check_positive_int", "check_input"]


def check_range(name: str, value: float, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = True) -> float:
    """Return ``float(value)`` if it lies in the interval, else raise ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    below = value <= lo if lo_open else value < lo
    above = value >= hi if hi_open else value > hi
    if below or above:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


def check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_input(x: torch.Tensor, n_features: int, *, rank: int, name: str = "x") -> None:
    """Validate an input tensor: ``rank`` 3 is ``[T, B, N]``, rank 2 is ``[B, N]``."""
    layout = "[T, B, N]" if rank == 3 else "[B, N]"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype (e.g. torch.float32), got {x.dtype}")
    if x.dim() != rank:
        raise ValueError(f"{name} must have rank {rank} {layout}, got shape {tuple(x.shape)}")
    if x.shape[-1] != n_features:
        raise ValueError(f"{name} must have {n_features} features in its last dimension, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values")
