"""The one interface every learning rule implements.

A rule wraps a network and a per-step loss. Training a sequence is::

    rule.reset(batch_size)
    for t in range(T):
        rule.step(x[t], target, weight[t])   # forward one step, accumulate gradient
    rule.flush()                             # write the accumulated gradient into .grad
    optimizer.step(); optimizer.zero_grad(); net.clamp_()

Any ``torch.optim`` optimizer applies the update. ``flush`` may be called at any
step (scheduled updates); call it before every optimizer step.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..layers import SNN
from ..losses import Loss, make_loss
from ..validation import check_input

__all__ = ["StepResult", "SequenceResult", "LearningRule", "sequence_weights", "target_at", "state_nbytes"]


class StepResult(NamedTuple):
    output: torch.Tensor  # [B, C], detached
    loss: torch.Tensor  # scalar, detached (0 where no target was given)


class SequenceResult(NamedTuple):
    outputs: torch.Tensor  # [T, B, C]
    loss: torch.Tensor  # scalar: the sequence loss


def sequence_weights(mask: torch.Tensor) -> torch.Tensor:
    """Per-step sample weights ``[T, B]``: ``mask[t, b] / (length_b · B)``.

    With them the summed per-step losses are the batch mean of each sample's
    time-averaged loss, whatever the lengths.
    """
    lengths = mask.sum(0).clamp(min=1.0)
    return mask / (lengths * mask.shape[1])


def target_at(target: torch.Tensor, t: int) -> torch.Tensor:
    """The target at step ``t``: labels ``[B]`` are constant; ``[T, B]`` labels and ``[T, B, C]`` trains are per step."""
    return target if target.dim() == 1 else target[t]


def state_nbytes(*tensors: torch.Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


class LearningRule:
    """Base class: subclasses implement ``reset``, ``step``, ``flush`` and ``train_state_bytes``."""

    name = "rule"
    # Rules that can report Σ|∂ℓ_t/∂W| per step (needed by the search schedule) set this True,
    # and fill ``step_magnitude`` at each step while ``track_step_magnitude`` is set.
    supports_step_magnitude = False
    track_step_magnitude = False
    step_magnitude = 0.0

    def __init__(self, net: SNN, loss: Loss | str = "mse") -> None:
        if not isinstance(net, SNN):
            raise TypeError(f"net must be a solsa.SNN, got {type(net).__name__}")
        self.net = net
        self.loss = make_loss(loss) if isinstance(loss, str) else loss
        self.batch_size = 0

    def reset(self, batch_size: int) -> None:
        """Start new sequences for a batch of ``batch_size``: zero states and traces."""
        raise NotImplementedError

    def step(
        self, x: torch.Tensor, target: torch.Tensor | None = None, weight: torch.Tensor | None = None
    ) -> StepResult:
        """Process one time step ``x`` ``[B, N_in]``; with a target, accumulate the gradient of ℓ_t.

        ``weight`` ``[B]`` scales each sample's loss (default ``1/B``).
        """
        raise NotImplementedError

    def flush(self) -> None:
        """Add the gradient accumulated since the last flush to the parameters' ``.grad``."""
        raise NotImplementedError

    def train_state_bytes(self) -> int:
        """Bytes this rule holds for training (traces and states, or saved tensors), at its peak since reset."""
        raise NotImplementedError

    def _weight(self, weight: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        if weight is None:
            return x.new_full((x.shape[0],), 1.0 / x.shape[0])
        return weight

    def sequence(
        self, x: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> SequenceResult:
        """Train on a whole batch ``x`` ``[T, B, N_in]``; gradients land in ``.grad`` (no optimizer step).

        ``target``: labels ``[B]`` or per-step targets ``[T, B, C]``; ``mask`` ``[T, B]`` marks valid steps.
        """
        check_input(x, self.net.n_inputs, rank=3)
        T, B = x.shape[:2]
        if mask is None:
            mask = x.new_ones(T, B)
        weights = sequence_weights(mask.to(x.dtype))
        self.reset(B)
        outputs, total = [], x.new_zeros(())
        for t in range(T):
            out = self.step(x[t], target_at(target, t), weights[t])
            outputs.append(out.output)
            total = total + out.loss
        self.flush()
        return SequenceResult(torch.stack(outputs), total)
