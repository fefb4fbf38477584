"""The skeleton shared by the forward-only rules (SOLSA, e-prop, OTTT, OSTL).

Per time step every layer advances its state and traces (``_forward_layer``);
with a target, the output error goes down the layers *within the same step*
(``_backward``): each layer turns the error ``g`` at its output into
``δ = g ⊙ ε``, adds its gradient to an accumulator (``_accumulate``) and sends
the spatial error of SOLSA.md §3 to the layer below. ``flush`` hands the
accumulators to ``.grad``. Nothing is kept per time step.
"""

from __future__ import annotations

import torch

from ..functional import spatial_error
from ..layers import LIFLayer
from ..losses import Loss
from .base import LearningRule, StepResult

__all__ = ["OnlineRule"]


class OnlineRule(LearningRule):
    """Base class of the forward-only rules.

    Subclasses define ``_new_traces(layer, B)`` (an object with ``state``, ``eps``
    and ``nbytes()``), ``_forward_layer(layer, traces, x)``, ``_accumulate(layer,
    traces, acc, delta)`` (returns the step's weight gradient) and, where they
    learn more than W and b, ``_learned(layer)``.
    """

    supports_step_magnitude = True

    def __init__(self, net, loss: Loss | str = "mse") -> None:
        super().__init__(net, loss)
        self.traces: list = []
        self._grads: list[dict[str, torch.Tensor]] = []

    def _learned(self, layer: LIFLayer) -> list[str]:
        """The parameters of ``layer`` this rule learns (those with an accumulator)."""
        return [n for n in ("weight", "bias") if layer.is_learnable(n)]

    def _new_traces(self, layer: LIFLayer, batch_size: int):
        raise NotImplementedError

    def reset(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.traces = [self._new_traces(layer, batch_size) for layer in self.net.layers]
        if not self._grads:
            self._grads = [
                {n: torch.zeros_like(getattr(layer, n)) for n in self._learned(layer)} for layer in self.net.layers
            ]

    @torch.no_grad()
    def step(self, x, target=None, weight=None) -> StepResult:
        if not self.traces:
            raise RuntimeError("call reset(batch_size) before step()")
        inp = x
        for layer, tr in zip(self.net.layers, self.traces):
            self._forward_layer(layer, tr, inp)
            inp = tr.state.o
        y = inp
        if target is None:
            return StepResult(y, y.new_zeros(()))
        value, g = self.loss.grad(y, target, self._weight(weight, x))
        self.step_magnitude = self._backward(g)
        return StepResult(y, value)

    def _backward(self, g: torch.Tensor) -> float:
        """Send ``g = ∂ℓ_t/∂y`` down the layers; returns Σ|∂ℓ_t/∂W| when tracked (else 0)."""
        magnitude = 0.0
        for layer, tr, acc in zip(reversed(self.net.layers), reversed(self.traces), reversed(self._grads)):
            delta = g * tr.eps
            credited, signal = self._credited(tr, g, delta)
            g_weight = self._accumulate(layer, credited, acc, signal)
            if self.track_step_magnitude:
                magnitude += g_weight.abs().sum().item()
            g = spatial_error(delta, layer.weight, layer.beta)
        return magnitude

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
