"""BPTT: autograd through time on exactly the model of SOLSA.md §1.

The forward pass is the same :func:`solsa.functional.lif_step` as every other
rule, with the reset path in the graph and the same surrogate. A whole sequence
(:meth:`~solsa.rules.LearningRule.run_sequence`, which the learner takes when
nothing asks for each step) runs layer by layer through
:func:`solsa.functional.lif_sequence` and takes the loss of all steps in one
call: the same gradient with fewer operations per step. ``flush``
backpropagates the loss accumulated since the last flush, then detaches the
state (so a mid-sequence flush is truncated BPTT).
"""

from __future__ import annotations

import torch

from ..functional import LIFState, lif_sequence
from .base import Capabilities, LearningRule, StepResult

__all__ = ["BPTT"]


class BPTT(LearningRule):
    name = "bptt"
    capabilities = Capabilities(online=False, step_magnitude=False, whole_sequence=True)

    def __init__(self, net, loss="mse", *, backend: str = "auto") -> None:
        super().__init__(net, loss, backend=backend)
        self.states: list[LIFState] = []
        self.total: torch.Tensor | None = None
        self._saved: dict[int, int] = {}
        self._peak = 0

    def _reset(self, batch_size: int) -> None:
        self.states = self.net.init_state(batch_size)
        self.total: torch.Tensor | None = None
        self._saved: dict[int, int] = {}
        self._peak = 0
        self._param_ptrs = {p.untyped_storage().data_ptr() for p in self.net.parameters()}

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        # count each saved storage once; parameters exist anyway and are not training state
        ptr = t.untyped_storage().data_ptr()
        if ptr not in self._param_ptrs and ptr not in self._saved:
            self._saved[ptr] = t.untyped_storage().nbytes()
        return t

    def _step(self, x, target, weight, magnitude) -> StepResult:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t):
            y, self.states = self.net.step(x, self.states)
            if target is None:
                loss = y.new_zeros(())
            else:
                loss = self.loss(y, target, self._weight(weight, x))
                self.total = loss if self.total is None else self.total + loss
        self._peak = max(self._peak, sum(self._saved.values()))
        return StepResult(y.detach(), loss.detach())

    def _sequence(self, x, target, weights) -> StepResult:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t):
            states = []
            for layer, state in zip(self.net.layers, self.states):
                x, state = lif_sequence(x, state, layer.params(), layer.config)
                states.append(state)
            self.states = states
            loss = self.loss(x, target, weights)
            self.total = loss if self.total is None else self.total + loss
        self._peak = max(self._peak, sum(self._saved.values()))
        return StepResult(x.detach(), loss.detach())

    def flush(self) -> None:
        if self.total is not None and self.total.requires_grad:
            self.total.backward()
        self.total = None
        self._saved.clear()
        self.states = [LIFState(*(None if s is None else s.detach() for s in state)) for state in self.states]

    def train_state_bytes(self) -> int:
        return self._peak
