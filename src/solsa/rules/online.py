"""The skeleton shared by the forward-only rules (SOLSA, e-prop, OTTT, OSTL).

Per time step every layer advances its state and traces (``_forward_layer``);
with a target, the output error goes down the layers *within the same step*
(``_backward``): each layer turns the error ``g`` at its output into
``δ = g ⊙ ε``, adds its gradient to an accumulator (``_accumulate``) and sends
the spatial error of docs/model.md §3 to the layer below. ``flush`` hands the
accumulators to ``.grad``. Nothing is kept per time step.

A new online rule subclasses :class:`OnlineRule`, implements the three
abstract hooks below, and is added to :data:`solsa.rules.RULES` with one line.
"""

from __future__ import annotations

import abc
from typing import Any

import torch

from ..functional import adapted, spatial_error
from ..layers import LIFLayer
from .base import Capabilities, LearningRule, StepResult

__all__ = ["OnlineRule", "couple_adaptation"]


def couple_adaptation(tr: Any, before: dict[str, torch.Tensor], k: torch.Tensor, eps: torch.Tensor,
                      rho: float) -> None:
    """ALIF (docs/memory.md §1): couple each trace of ``tr`` advanced from ``before`` (its value at t-1) to its
    adaptation partner in ``tr.adapt``, in place (:func:`~solsa.functional.adapted`)."""
    for name, z in before.items():
        value, tr.adapt[name] = adapted(getattr(tr, name), z, tr.adapt[name], k, eps, rho)
        setattr(tr, name, value)


class OnlineRule(LearningRule):
    """Base class of the forward-only rules.

    Hooks (abstract): ``_new_traces(layer, B)`` returns an object with ``state`` (a
    :class:`~solsa.functional.LIFState`), ``eps`` and ``nbytes()``; ``_forward_layer(layer,
    traces, x)`` advances them one step; ``_accumulate(layer, traces, acc, delta)`` adds the step's
    gradient to ``acc`` and returns its weight gradient. Optional: ``_learned(layer)`` (the
    parameters with an accumulator; W and b by default) and ``_derived_grads(layer, acc)``
    (gradients computed at flush time).
    """

    capabilities = Capabilities(online=True, step_magnitude=True)

    def __init__(self, net, loss="mse", *, backend: str = "auto") -> None:
        super().__init__(net, loss, backend=backend)
        self.traces: list = []
        self._grads: list[dict[str, torch.Tensor]] = []

    def _learned(self, layer: LIFLayer) -> list[str]:
        """The parameters of ``layer`` this rule learns (those with an accumulator)."""
        return [n for n in ("weight", "bias") if layer.is_learnable(n)]

    @abc.abstractmethod
    def _new_traces(self, layer: LIFLayer, batch_size: int) -> Any:
        """Fresh (zero) state and traces of one layer."""

    @abc.abstractmethod
    def _forward_layer(self, layer: LIFLayer, traces: Any, x: torch.Tensor) -> None:
        """Advance one layer's state and traces by one step (in place on ``traces``)."""

    @abc.abstractmethod
    def _accumulate(self, layer: LIFLayer, traces: Any, acc: dict[str, torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
        """Add ``Σ_b δ · trace`` for each learned parameter to ``acc``; return the step's weight gradient."""

    def _reset(self, batch_size: int) -> None:
        self.traces = [self._new_traces(layer, batch_size) for layer in self.net.layers]
        if not self._grads:
            self._grads = [
                {n: torch.zeros_like(getattr(layer, n)) for n in self._learned(layer)} for layer in self.net.layers
            ]

    @torch.no_grad()
    def _step(self, x, target, weight, magnitude) -> StepResult:
        inp = x
        for layer, tr in zip(self.net.layers, self.traces):
            self._forward_layer(layer, tr, inp)
            inp = tr.state.o
        y = inp
        if target is None:
            return StepResult(y, y.new_zeros(()))
        value, g = self.loss.grad(y, target, self._weight(weight, x))
        return StepResult(y, value, self._backward(g, magnitude))

    def _backward(self, g: torch.Tensor, magnitude: bool) -> float | None:
        """Send ``g = ∂ℓ_t/∂y`` down the layers; returns Σ|∂ℓ_t/∂W| when ``magnitude`` (else None)."""
        total = 0.0
        for layer, tr, acc in zip(reversed(self.net.layers), reversed(self.traces), reversed(self._grads)):
            delta = g * tr.eps
            credited, signal = self._credited(tr, g, delta)
            g_weight = self._accumulate(layer, credited, acc, signal)
            if magnitude:
                total += g_weight.abs().sum().item()
            g = spatial_error(delta, layer.weight, layer.beta)
        return total if magnitude else None

    def _credited(self, tr, g: torch.Tensor, delta: torch.Tensor) -> tuple:
        """The traces and the signal that pair in ``_accumulate``: ``(tr, g ⊙ ε)``, the same-step credit."""
        return tr, delta

    def _derived_grads(self, layer: LIFLayer, acc: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Gradients computed from the accumulators at flush time (SOLSA's β); none by default."""
        return {}

    @torch.no_grad()
    def flush(self) -> None:
        for layer, acc in zip(self.net.layers, self._grads):
            grads = {**acc, **self._derived_grads(layer, acc)}
            for name, g in grads.items():
                param = getattr(layer, name)
                param.grad = g.clone() if param.grad is None else param.grad + g
            for g in acc.values():
                g.zero_()

    def train_state_bytes(self) -> int:
        return sum(tr.nbytes() for tr in self.traces)

    @torch.no_grad()
    def predict_step(self, x: torch.Tensor) -> torch.Tensor:
        """The output ``[B, C]`` the next :meth:`step` on ``x`` would give, from the current state, with
        nothing advanced or accumulated (the pure :func:`~solsa.functional.lif_step`, through ``net.step``)."""
        if not self.batch_size:
            raise RuntimeError(f"{self.name}: call reset(batch_size) before predict_step()")
        return self.net.step(self._check_step(x), [tr.state for tr in self.traces])[0]
