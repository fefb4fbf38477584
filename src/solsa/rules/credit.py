"""Cross-layer credit for SOLSA: the hidden layers' traces filtered through the layers above (docs/credit.md).

``credit`` chooses how far up a hidden layer's sensitivities are carried:

- ``"same-step"``: not at all; the error crosses layers within the step (SOLSA.md §3). No extra memory.
- ``"next"``: through the synaptic filter and membrane of the layer directly above
  (two extra copies of each trace of the layer). Exact for one hidden layer under a leaky readout
  with one λ; elsewhere the upper layer's ``d_j[t]`` is replaced by its mean over neurons.
- ``"cascade"``: through every layer above, stage after stage (two extra copies per layer above).
  Layers two or more levels up use their mean α (their channels are not this layer's neurons).

Each stage is a pair ``(q, u)`` per trace: ``q`` after the upper synaptic filter
(:func:`~solsa.functional.synaptic_credit`), ``u`` after its membrane
(:func:`~solsa.functional.membrane_credit`). The last stage's ``u`` pairs with the same-step
spatial error ``g`` (not ``g ⊙ ε``: ``ε^k`` is inside the filter, taken when the spike happened).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..functional import channel_decay, mean_decay, membrane_credit, synaptic_credit
from .base import state_nbytes

__all__ = ["CREDIT_MODES", "CREDIT_TRACES", "LayerCredit", "check_credit", "credit_depth", "new_credit",
           "advance_credit"]

CREDIT_MODES = ("same-step", "next", "cascade")
# the traces of a layer that are filtered (``p`` only builds ``a`` and is not)
CREDIT_TRACES = ("e", "a", "m", "n")


def check_credit(credit: str) -> str:
    """``credit`` when it is one of :data:`CREDIT_MODES`; a ``ValueError`` otherwise."""
    if credit not in CREDIT_MODES:
        raise ValueError(f"credit must be one of {list(CREDIT_MODES)}, got {credit!r}")
    return credit


def credit_depth(credit: str, index: int, n_layers: int) -> int:
    """How many layers above layer ``index`` (0-based) its traces are filtered through."""
    above = n_layers - 1 - index
    return {"same-step": 0, "next": min(1, above), "cascade": above}[credit]


@dataclass
class LayerCredit:
    """One hidden layer's filtered traces: ``stages[s][name] = [q, u]`` for the (s+1)-th layer above."""

    stages: list[dict[str, list[torch.Tensor]]] = field(default_factory=list)

    def final(self, name: str) -> torch.Tensor | None:
        """The trace ``name`` after every stage (None when the layer has no such trace)."""
        last = self.stages[-1].get(name)
        return None if last is None else last[1]

    def nbytes(self) -> int:
        return state_nbytes(*(t for stage in self.stages for pair in stage.values() for t in pair))


def new_credit(traces, depth: int) -> LayerCredit | None:
    """Zeroed stages for a layer whose :class:`~solsa.rules.solsa.LayerTraces` are ``traces``; None at depth 0."""
    if depth == 0:
        return None
    names = [n for n in CREDIT_TRACES if getattr(traces, n) is not None]
    return LayerCredit([{n: [torch.zeros_like(getattr(traces, n)) for _ in range(2)] for n in names}
                        for _ in range(depth)])


def advance_credit(traces: list, upper: int, alpha: torch.Tensor, d: torch.Tensor) -> None:
    """Advance, at step t, every stage that runs through layer ``upper`` (its α and its ``d[t]``).

    Called once layer ``upper`` has its ``d[t]`` and every layer below it its traces at t, so a stage
    reads the stage below it (or layer k's own ``ε^k[t] z^k[t]``) at the same step.
    """
    d_bar = mean_decay(d)
    for k in range(upper):
        credit = traces[k].credit
        level = upper - k - 1  # which stage of layer k runs through layer `upper`
        if credit is None or level >= len(credit.stages):
            continue
        a = alpha if level == 0 else channel_decay(alpha)
        for name, pair in credit.stages[level].items():
            if level == 0:
                q = synaptic_credit(pair[0], getattr(traces[k], name), a, traces[k].eps)
            else:
                q = synaptic_credit(pair[0], credit.stages[level - 1][name][1], a)
            pair[0] = q
            pair[1] = membrane_credit(pair[1], q, d_bar)
