"""The coordinates an optimizer steps the neuron dynamics in (``filter_update``).

``linear`` steps α, β, λ themselves. ``log`` (the default) steps a decay ``α`` (and ``λ``) as
``φ = −ln(1 − α)``, the log of its time constant ``1/(1 − α)``, and a gain ``β``
as ``ln β``: the optimizer sees ``∂L/∂φ = ∂L/∂α · (1 − α)`` and
``∂L/∂(ln β) = ∂L/∂β · β``, and the values are mapped back after the step.
Adam moves each coordinate by about its learning rate per update, so in ``log``
a decay near 0 moves as fast as in ``linear`` while one near 1 moves by
``(1 − α)`` times that: a time constant changes by about the same *fraction*
per update whatever its size, and a decay cannot run to the clamp in a few
hundred updates (docs/credit.md §7).

The module and its state stay in the parameters' own values: only the
optimizer's state (Adam's moments) lives in these coordinates.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from .layers import ALPHA_MAX

__all__ = ["FILTER_UPDATES", "DEFAULT_FILTER_UPDATE", "COORDINATES", "LOG_COORDINATES", "stepped_in_coordinates"]

FILTER_UPDATES = ("linear", "log")
DEFAULT_FILTER_UPDATE = "log"

Map = Callable[[torch.Tensor], torch.Tensor]
# name: (value → coordinate, coordinate → value, d value / d coordinate as a function of the value)
COORDINATES: dict[str, tuple[Map, Map, Map]] = {
    "log-timescale": (lambda a: -torch.log1p(-a.clamp(max=ALPHA_MAX)), lambda q: -torch.expm1(-q), lambda a: 1 - a),
    "log": (torch.log, torch.exp, lambda b: b),
}
# filter_update "log": the coordinates of each neuron-dynamics parameter (by its name in an SNN)
LOG_COORDINATES = {"alpha": "log-timescale", "lam": "log-timescale", "beta": "log"}


@contextmanager
def stepped_in_coordinates(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Inside the block, every parameter of a group with a ``"coordinates"`` key (one of :data:`COORDINATES`)
    holds its coordinate and its ``.grad`` the gradient in that coordinate; on leaving, the values are mapped
    back. Groups without the key are untouched, so any optimizer works unchanged."""
    moved: list[tuple[torch.Tensor, Map]] = []
    with torch.no_grad():
        for group in optimizer.param_groups:
            name = group.get("coordinates")
            if name is None:
                continue
            to, back, jacobian = COORDINATES[name]
            for p in group["params"]:
                if p.grad is None:
                    continue
                p.grad.mul_(jacobian(p))
                p.copy_(to(p))
                moved.append((p, back))
    try:
        yield
    finally:
        with torch.no_grad():
            for p, back in moved:
                p.copy_(back(p))
