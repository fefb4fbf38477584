"""The one learner loop: a rule, its optimizer, and the update step every caller shares.

Training (:mod:`solsa.training`), the stream facade (:mod:`solsa.stream`), the
benchmarks and :meth:`LearningRule.sequence` all run sequences through
:meth:`Learner.sequence` and apply updates through :meth:`Learner.update`::

    learner = Learner(rule, optimizer)
    run = learner.sequence(x, y, mask, points={T - 1})   # forward in time, update at the points
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Collection, NamedTuple

import torch

from .coordinates import stepped_in_coordinates
from .distributed import DataParallel
from .early_stop import EarlyStop
from .losses import sequence_weights, target_at

if TYPE_CHECKING:
    from .rules.base import LearningRule

__all__ = ["Learner", "SequenceRun"]


class SequenceRun(NamedTuple):
    outputs: torch.Tensor | None  # [steps, B, C] (None when not kept)
    loss: torch.Tensor  # scalar: the summed per-step losses of the steps processed
    steps: int  # time steps processed (< T when stopped early)
    updates: int  # updates applied
    state_bytes: int  # the rule's train-state bytes at its largest (measured at the update points)


class Learner:
    """A rule and the optimizer that applies its gradients.

    Args:
        rule: any :class:`~solsa.rules.LearningRule`.
        optimizer: a ``torch.optim`` optimizer over the rule's network; None only accumulates ``.grad``
            (``update`` then just flushes).
    """

    def __init__(
        self, rule: LearningRule, optimizer: torch.optim.Optimizer | None = None, sync: DataParallel | None = None
    ) -> None:
        self.rule = rule
        self.optimizer = optimizer
        self.sync = sync or DataParallel()

    def update(self) -> None:
        """Flush the rule's gradient into ``.grad`` (a learned encoder's chain rule applied,
        :meth:`solsa.SNN.encoder_grads_`; summed over the processes of a data-parallel run) and :meth:`apply` it."""
        self.rule.flush()
        self.rule.net.encoder_grads_()
        self.sync.all_reduce_grads(self.rule.net.parameters())
        self.apply()

    def apply(self) -> None:
        """With an optimizer: step (each parameter group in its ``coordinates``, :mod:`solsa.coordinates`), zero
        the gradients, clamp the filters into their valid ranges."""
        if self.optimizer is not None:
            with stepped_in_coordinates(self.optimizer):
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.rule.net.clamp_()

    def sequence(
        self,
        x: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        points: Collection[int] | None = None,
        early_stop: EarlyStop | None = None,
        on_magnitude: Callable[[int, int, float], None] | None = None,
        on_step: Callable[[int], None] | None = None,
        keep_outputs: bool = True,
        weights: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> SequenceRun:
        """Train on one batch ``x`` ``[T, B, N]``, updating after the steps in ``points`` (default: the last).

        Args:
            target: labels ``[B]`` or per-step targets ``[T, B]`` / ``[T, B, C]``.
            mask: ``[T, B]`` valid steps (default all); sets each sample's per-step loss weight.
            early_stop: checked at update points before the last step; once the batch was confidently
                right at ``h`` checks, the rest of the sequence is skipped (needs ``keep_outputs``).
            on_magnitude: ``(T, t, Σ|∂ℓ_t/∂W|)`` after each step (the ``search`` schedule's record).
            on_step: ``(t)`` after each step (benchmarks time the steps with it).
            keep_outputs: keep the outputs ``[T, B, C]`` (off: memory measurements).
            weights: per-step sample weights ``[T, B]`` (default: from ``mask``, see
                :func:`~solsa.rules.sequence_weights`); a data-parallel shard passes the global batch's.
            valid: ``[B]`` samples that count for early stop (a shard's padding does not).
        """
        rule = self.rule
        T, B = x.shape[:2]
        if mask is None:
            mask = x.new_ones(T, B)
        if early_stop is not None and not keep_outputs:
            raise ValueError("early_stop needs the outputs: keep_outputs must be True")
        points = {T - 1} if points is None else points
        if weights is None:
            weights = sequence_weights(mask.to(x.dtype), rule.net.readout_score)
        weights = weights.to(x.dtype)
        reduce = self.sync.sum if self.sync.active else None
        rule.reset(B)
        # a whole-sequence rule takes one run_sequence call per stretch of steps up to an update point (one
        # call when the update is at the end) unless a callback asks for each step: the same result
        whole = rule.capabilities.whole_sequence and on_magnitude is None and on_step is None
        ends = sorted({t for t in points if 0 <= t < T} | {T - 1}) if whole else range(T)
        outputs: list[torch.Tensor] = []
        total, hits, updates, state_bytes, start = x.new_zeros(()), 0, 0, 0, 0
        for end in ends:
            if whole:
                res = rule.run_sequence(x[start:end + 1], target if target.dim() == 1 else target[start:end + 1],
                                        weights[start:end + 1])
                out = res.output
            else:
                res = rule.step(x[end], target_at(target, end), weights[end], magnitude=on_magnitude is not None)
                out = res.output[None]
                if on_magnitude is not None:
                    on_magnitude(T, end, res.magnitude)
                if on_step is not None:
                    on_step(end)
            total = total + res.loss
            if keep_outputs:
                outputs.append(out)
            start = end + 1
            if end in points:
                state_bytes = max(state_bytes, rule.train_state_bytes())
                self.update()
                updates += 1
                if early_stop is not None and end < T - 1:
                    hits += early_stop.check(rule.net, torch.cat(outputs), mask[:end + 1], target, valid, reduce)
                    if hits >= early_stop.h:
                        break
        return SequenceRun(torch.cat(outputs) if keep_outputs else None, total, start, updates, state_bytes)
