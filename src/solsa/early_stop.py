"""Early stop training (docs/model.md §4): skip the rest of a sequence once the batch is confidently right.

At each update point before the last step the learner asks :meth:`EarlyStop.check`
whether the fraction ``ρ`` of the batch is right with class probability ≥ ``p``;
after ``h`` such checks the rest of the sequence is skipped (no forward steps,
no trace updates).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from .layers import SNN

__all__ = ["EarlyStop", "class_probabilities", "confidently_right"]


def class_probabilities(net: SNN, outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``[B, C]``: spike counts normalised (spiking readout), softmax (leaky readout)."""
    scores = net.scores(outputs, mask)
    if net.readout == "leaky":
        return torch.softmax(scores, -1)
    counts = (outputs * mask.unsqueeze(-1)).sum(0)
    total = counts.sum(-1, keepdim=True)
    uniform = torch.full_like(counts, 1.0 / counts.shape[-1])
    return torch.where(total > 0, counts / total.clamp(min=1e-12), uniform)


def confidently_right(probs: torch.Tensor, y: torch.Tensor, rho: float, p: float) -> bool:
    """Early-stop test: the fraction of samples that are right *and* have max probability ≥ p is ≥ ρ."""
    best, pred = probs.max(-1)
    return ((pred == y) & (best >= p)).float().mean().item() >= rho


class EarlyStop(NamedTuple):
    """Stop a sequence once ``h`` checks found the batch confidently right (see :func:`confidently_right`)."""

    rho: float = 0.9
    p: float = 0.9
    h: int = 2

    def check(
        self,
        net: SNN,
        outputs: torch.Tensor,
        mask: torch.Tensor,
        y: torch.Tensor,
        valid: torch.Tensor | None = None,
        reduce: Callable[[list[float]], list[float]] | None = None,
    ) -> bool:
        """Whether the outputs so far ``[t, B, C]`` (valid steps ``mask[:t]``) are confidently right.

        ``valid`` ``[B]`` leaves padding samples out; ``reduce`` sums the counts over the processes of a
        data-parallel run, so that every process takes the same decision.
        """
        if valid is None and reduce is None:
            return confidently_right(class_probabilities(net, outputs, mask), y, self.rho, self.p)
        best, pred = class_probabilities(net, outputs, mask).max(-1)
        ok = (pred == y) & (best >= self.p)
        if valid is not None:
            ok = ok & valid
        counts = [float(ok.sum()), float(len(y) if valid is None else valid.sum())]
        if reduce is not None:
            counts = reduce(counts)
        return counts[0] / max(counts[1], 1.0) >= self.rho
