"""Checks of user input that raise errors naming the option and what was expected.

Every error about an option is an :class:`OptionError` (a ``ValueError``) that
carries the option's name, so the command line can point at its flag while the
library's message names the option as Python code spells it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Iterable

import torch

__all__ = ["OptionError", "check_range", "check_positive_int", "check_choice", "check_input", "check_finite", "check_device",
           "available_devices", "InputScaleWarning", "warn_input_scale", "INPUT_SCALE_WARN",
           "nonfinite_parameters"]


class OptionError(ValueError):
    """A bad value of the option ``option`` (its Python name, e.g. ``"batch_size"``)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


def check_range(name: str, value: float, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = True) -> float:
    """Return ``float(value)`` if it lies in the interval, else raise :class:`OptionError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptionError(name, f"{name} must be a finite number, got {value!r}")
    below = value <= lo if lo_open else value < lo
    above = value >= hi if hi_open else value > hi
    if below or above:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise OptionError(name, f"{name} must be in {interval}, got {value!r}")
    return float(value)


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer ≥ ``minimum`` (default 1), else raise :class:`OptionError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
        raise OptionError(name, f"{name} must be {kind}, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise :class:`OptionError` listing them."""
    choices = list(choices)
    if value not in choices:
        raise OptionError(name, f"{name} must be one of {choices}, got {value!r}")
    return value


def available_devices() -> list[str]:
    """The torch devices this machine can use, e.g. ``["cpu", "cuda:0"]``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def check_device(value: Any, option: str = "device", *, here: bool = True) -> torch.device:
    """``torch.device(value)`` if this machine has it (``here=False``: if it names a torch device at all),
    else :class:`OptionError` naming what is available."""
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise OptionError(option, f"device {value!r} is not a torch device; available here: "
                                  f"{', '.join(available_devices())}") from None
    if device.type == "cpu" or not here:
        return device
    if device.type == "cuda" and torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count():
        return device
    if device.type == "mps" and "mps" in available_devices():
        return device
    raise OptionError(option, f"device {value!r} is not available on this machine; available here: "
                              f"{', '.join(available_devices())}")


def check_input(x: torch.Tensor, n_features: int, *, rank: int, name: str = "x", finite: bool = True,
                dtype: torch.dtype | None = None) -> None:
    """Validate an input tensor: ``rank`` 3 is ``[T, B, N]``, rank 2 is ``[B, N]``.

    ``finite=False`` skips the NaN/inf scan (it reads every element; the per-step hot path skips it).
    ``dtype``: the precision the values will be cast to (the network's); they are checked after that cast.
    """
    layout = "[T, B, N]" if rank == 3 else "[B, N]"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype (e.g. torch.float32), got {x.dtype}")
    if x.dim() != rank:
        raise ValueError(f"{name} must have rank {rank} {layout}, got shape {tuple(x.shape)}")
    if x.shape[-1] != n_features:
        raise ValueError(f"{name} must have {n_features} features in its last dimension, got shape {tuple(x.shape)}")
    if finite:
        check_finite(x if dtype is None else x.to(dtype), name, x)


def check_finite(x: torch.Tensor, name: str = "x", before_cast: torch.Tensor | None = None) -> None:
    """Raise a ``ValueError`` if any value of ``x`` is NaN or infinite, checked value by value (a sum
    would overflow). ``before_cast``: the values before they were cast to ``x``'s dtype, to say that
    finite values overflowed it."""
    if bool(torch.isfinite(x).all()):
        return
    if before_cast is not None and before_cast.dtype != x.dtype and bool(torch.isfinite(before_cast).all()):
        raise ValueError(f"{name} holds values beyond the range of {x.dtype} (|x| up to "
                         f"{float(before_cast.abs().max()):.3g}; {x.dtype} ends at {torch.finfo(x.dtype).max:.3g}): "
                         "they become inf in the network; scale the input")
    raise ValueError(f"{name} contains NaN or inf values")


# Inputs larger than this saturate the first layer: with weights ~1/sqrt(N) its neurons get a current
# hundreds of times the threshold, where the surrogate derivative is ~0. Measured (StreamClassifier,
# SNN(8, [16], 2), 300 steps of uniform inputs × scale, update_every=1): layer 0's summed |ΔW| was 1.2,
# 1.7, 0.72, 0.43, 0.00026 and 0 at scales 1, 10, 1e2, 1e3, 1e4 and 1e6.
INPUT_SCALE_WARN = 1e3


class InputScaleWarning(UserWarning):
    """Inputs so large that the first layer saturates and stops learning."""


def warn_input_scale(scale: float, where: str) -> bool:
    """Warn (an :class:`InputScaleWarning`) that inputs reach ``|x| = scale`` in ``where``, if ``scale`` exceeds
    :data:`INPUT_SCALE_WARN`; returns whether it warned."""
    if not scale > INPUT_SCALE_WARN:
        return False
    warnings.warn(f"{where}: inputs reach |x| = {scale:.3g}; the first layer saturates (its surrogate derivative "
                  "is ~0, so its weights do not learn). Normalise the features (e.g. to zero mean and unit "
                  f"variance); inputs above {INPUT_SCALE_WARN:g} trigger this warning", InputScaleWarning,
                  stacklevel=3)
    return True


def nonfinite_parameters(module: torch.nn.Module) -> list[str]:
    """The names of ``module``'s parameters holding NaN or inf (empty when all are finite: one check over them
    all, about a third of the time of one per tensor, which matters once per update of a stream)."""
    with torch.no_grad():
        whole = torch.cat([p.reshape(-1) for p in module.parameters()])
    if bool(torch.isfinite(whole).all()):
        return []
    return [name for name, p in module.named_parameters() if not bool(torch.isfinite(p).all())]
