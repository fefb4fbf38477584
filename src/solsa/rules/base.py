"""The one contract every learning rule implements (:class:`LearningRule`).

A rule wraps a network and a per-step loss. Training a sequence is::

    rule.reset(batch_size)
    for t in range(T):
        rule.step(x[t], target, weight[t])   # forward one step, accumulate gradient
    rule.flush()                             # write the accumulated gradient into .grad
    optimizer.step(); optimizer.zero_grad(); net.clamp_()

(:class:`solsa.learner.Learner` writes that loop and the update once.) Any
``torch.optim`` optimizer applies the update. ``flush`` may be called at any
step (scheduled updates); call it before every optimizer step.

What a rule can do is declared in its :class:`Capabilities`, never checked by
name: whether it is online (forward-only, memory flat in T), whether it reports
the per-step gradient magnitude the ``search`` schedule ranks steps by, and
which backends it has. ``tests/test_conformance.py`` runs the same checks over
every entry of :data:`solsa.rules.RULES`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import NamedTuple

import torch

from ..layers import SNN
from ..learner import Learner  # the one sequence loop
from ..losses import Loss, make_loss, sequence_weights, target_at
from ..validation import check_choice, check_input, check_positive_int

__all__ = [
    "Capabilities",
    "StepResult",
    "SequenceResult",
    "LearningRule",
    "sequence_weights",
    "target_at",
    "state_nbytes",
]


@dataclass(frozen=True)
class Capabilities:
    """What a rule can do.

    online: forward-only; its train-state bytes do not grow with T and a flush at any step loses nothing.
    step_magnitude: ``step(..., magnitude=True)`` fills :attr:`StepResult.magnitude` with Σ|∂ℓ_t/∂W|.
    backends: the implementations ``backend=`` may name besides ``"auto"`` (the rule's own choice).
    whole_sequence: :meth:`LearningRule.run_sequence` takes a whole sequence in one call, with the same
        result as its steps (the :class:`~solsa.learner.Learner` uses it when nothing asks for each step).
    """

    online: bool
    step_magnitude: bool
    backends: tuple[str, ...] = ("reference",)
    whole_sequence: bool = False


class StepResult(NamedTuple):
    output: torch.Tensor  # [B, C], detached
    loss: torch.Tensor  # scalar, detached (0 where no target was given)
    magnitude: float | None = None  # Σ|∂ℓ_t/∂W| of this step, when asked for with magnitude=True


class SequenceResult(NamedTuple):
    outputs: torch.Tensor  # [T, B, C]
    loss: torch.Tensor  # scalar: the sequence loss


def state_nbytes(*tensors: torch.Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


class LearningRule(abc.ABC):
    """Base class of every rule: validates, then hands each call to the subclass's ``_reset`` / ``_step``.

    Args:
        net: the :class:`~solsa.SNN` to train.
        loss: ``"mse"`` (spiking readout), ``"ce"`` (leaky readout) or a :class:`~solsa.losses.Loss`.
        backend: ``"auto"`` (the rule's choice) or one of ``capabilities.backends``.
    """

    name = "rule"
    capabilities = Capabilities(online=False, step_magnitude=False)

    def __init__(self, net: SNN, loss: Loss | str = "mse", *, backend: str = "auto") -> None:
        if not isinstance(net, SNN):
            raise TypeError(f"net must be a solsa.SNN, got {type(net).__name__}")
        self.net = net
        self.loss = make_loss(loss) if isinstance(loss, str) else loss
        self._backend = check_choice("backend", backend, ("auto", *self.capabilities.backends))
        self.batch_size = 0

    @property
    def backend(self) -> str:
        """The backend asked for at construction (``"auto"`` lets the rule choose)."""
        return self._backend

    @property
    def active_backend(self) -> str:
        """The implementation that runs (after ``reset``)."""
        return "reference"

    @property
    def fallback_reason(self) -> str:
        """Why ``"auto"`` could not take the rule's fastest backend ("" when it did, or has only one)."""
        return ""

    def reset(self, batch_size: int) -> None:
        """Start new sequences for a batch of ``batch_size``: zero states and traces."""
        self.batch_size = check_positive_int("batch_size", batch_size)
        self._reset(batch_size)

    def step(
        self,
        x: torch.Tensor,
        target: torch.Tensor | None = None,
        weight: torch.Tensor | None = None,
        *,
        magnitude: bool = False,
    ) -> StepResult:
        """Process one time step ``x`` ``[B, N_in]``; with a target, accumulate the gradient of ℓ_t.

        ``weight`` ``[B]`` scales each sample's loss (default ``1/B``). ``magnitude=True`` (rules whose
        capabilities say ``step_magnitude``) also returns Σ|∂ℓ_t/∂W| of this step.
        """
        if not self.batch_size:
            raise RuntimeError(f"{self.name}: call reset(batch_size) before step()")
        if magnitude and not self.capabilities.step_magnitude:
            raise ValueError(f"rule {self.name!r} does not report a per-step gradient magnitude")
        return self._step(self._check_step(x), target, weight, magnitude)

    def _check_step(self, x: torch.Tensor) -> torch.Tensor:
        """Shape and dtype of one step's input (cheap: no pass over the values); a floating input of
        another precision is converted to the network's."""
        check_input(x, self.net.n_inputs, rank=2, finite=False)
        if x.shape[0] != self.batch_size:
            raise ValueError(f"x must have shape [B, N_in] = {(self.batch_size, self.net.n_inputs)} "
                             f"(the batch size given to reset), got shape {tuple(x.shape)}")
        return x.to(self.net.layers[0].weight.dtype)

    @abc.abstractmethod
    def _reset(self, batch_size: int) -> None:
        """Zero states and traces for ``batch_size`` sequences."""

    @abc.abstractmethod
    def _step(
        self, x: torch.Tensor, target: torch.Tensor | None, weight: torch.Tensor | None, magnitude: bool
    ) -> StepResult:
        """One validated time step."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Add the gradient accumulated since the last flush to the parameters' ``.grad``."""

    @abc.abstractmethod
    def train_state_bytes(self) -> int:
        """Bytes this rule holds for training (traces and states, or saved tensors), at its peak since reset."""

    def run_sequence(self, x: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> StepResult:
        """All ``T`` steps of ``x`` ``[T, B, N_in]`` at once, for rules whose capabilities say ``whole_sequence``:
        the same gradient accumulated as ``T`` calls of :meth:`step` (``target`` as in :meth:`sequence`,
        ``weights`` ``[T, B]``). Returns the outputs ``[T, B, C]`` (detached) and the summed loss."""
        if not self.batch_size:
            raise RuntimeError(f"{self.name}: call reset(batch_size) before run_sequence()")
        if not self.capabilities.whole_sequence:
            raise NotImplementedError(f"rule {self.name!r} steps one time step per call")
        check_input(x, self.net.n_inputs, rank=3, finite=False)
        if x.shape[1] != self.batch_size:
            raise ValueError(f"x must have shape [T, B, N_in] with B = {self.batch_size} (the batch size given "
                             f"to reset), got shape {tuple(x.shape)}")
        return self._sequence(x.to(self.net.layers[0].weight.dtype), target, weights)

    def _sequence(self, x: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> StepResult:
        raise NotImplementedError

    def _steps(self, x: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> StepResult:
        """:meth:`run_sequence` as ``T`` calls of ``_step`` (for a rule whose one-call path cannot take a case)."""
        outputs, total = [], x.new_zeros(())
        for t in range(x.shape[0]):
            res = self._step(x[t], target_at(target, t), weights[t], False)
            outputs.append(res.output)
            total = total + res.loss
        return StepResult(torch.stack(outputs), total)

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
        check_input(x, self.net.n_inputs, rank=3, dtype=self.net.layers[0].weight.dtype)
        run = Learner(self).sequence(x, target, mask)
        return SequenceResult(run.outputs, run.loss)
