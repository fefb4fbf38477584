"""Surrogate derivatives of the spike function ``o = H(V - θ)``.

Each surrogate is a function of ``u = V - θ`` that integrates to 1 (a smooth
stand-in for the Dirac delta), parametrised by a width ``w``. The same
function serves the online rules (called directly) and BPTT (as the backward
of :func:`spike`), so every rule sees exactly the same derivative.

| name           | ε(u)                                   | peak        |
|----------------|----------------------------------------|-------------|
| ``gaussian``   | exp(-u²/2w²) / (√(2π) w)               | 0.399 / w   |
| ``fast_sigmoid``| 1 / (2w (1 + |u|/w)²)                 | 1 / (2w)    |
| ``atan``       | 1 / (2w (1 + (πu / 2w)²))              | 1 / (2w)    |
| ``triangle``   | max(0, 1 - |u|/w) / w                  | 1 / w       |

Stability of the traces needs ``|λ - θ_r ε| ≤ 1``, i.e. a peak no larger
than ``(1 + λ) / θ_r`` (docs/model.md §7); the default widths respect this for
``λ ≥ 0`` and ``θ_r = 1``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

__all__ = ["SURROGATES", "DEFAULT_WIDTH", "surrogate_derivative", "spike", "check_surrogate"]


def _gaussian(u: torch.Tensor, w: float) -> torch.Tensor:
    return torch.exp(-0.5 * (u / w) ** 2) / (math.sqrt(2.0 * math.pi) * w)


def _fast_sigmoid(u: torch.Tensor, w: float) -> torch.Tensor:
    return 1.0 / (2.0 * w * (1.0 + u.abs() / w) ** 2)


def _atan(u: torch.Tensor, w: float) -> torch.Tensor:
    return 1.0 / (2.0 * w * (1.0 + (math.pi * u / (2.0 * w)) ** 2))


def _triangle(u: torch.Tensor, w: float) -> torch.Tensor:
    return torch.clamp(1.0 - u.abs() / w, min=0.0) / w


SURROGATES: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "gaussian": _gaussian,
    "fast_sigmoid": _fast_sigmoid,
    "atan": _atan,
    "triangle": _triangle,
}

# Widths whose peak stays ≤ 1 (≤ 1 + λ for any λ ≥ 0 with θ_r = 1).
DEFAULT_WIDTH: dict[str, float] = {"gaussian": 0.5, "fast_sigmoid": 0.5, "atan": 0.5, "triangle": 1.0}


def check_surrogate(name: str, width: float | None) -> float:
    """Validate a surrogate name and width; return the width to use."""
    if name not in SURROGATES:
        raise ValueError(f"surrogate must be one of {sorted(SURROGATES)}, got {name!r}")
    if width is None:
        return DEFAULT_WIDTH[name]
    if not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
        raise ValueError(f"surrogate width must be a positive finite number, got {width!r}")
    return float(width)


def surrogate_derivative(u: torch.Tensor, name: str, width: float) -> torch.Tensor:
    """ε(u): the surrogate derivative of ``H(u)`` at ``u = V - θ``."""
    return SURROGATES[name](u, width)


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor, name: str, width: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.name, ctx.width = name, width
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return grad_out * surrogate_derivative(u, ctx.name, ctx.width), None, None


def spike(u: torch.Tensor, name: str = "gaussian", width: float = 0.5) -> torch.Tensor:
    """Heaviside ``H(u)`` (1 where ``u > 0``) whose backward is the surrogate ε(u)."""
    if torch.is_grad_enabled() and u.requires_grad:
        return _Spike.apply(u, name, width)
    return (u > 0).to(u.dtype)
