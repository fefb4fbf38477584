"""BPTT: autograd through time on exactly the model of docs/model.md §1.

The forward pass is the same :func:`solsa.functional.lif_step` as every other
rule, with the reset path in the graph and the same surrogate. A whole sequence
(:meth:`~solsa.rules.LearningRule.run_sequence`, which the learner takes when
nothing asks for each step) runs layer by layer through
:func:`solsa.functional.lif_sequence` and takes the loss of all steps in one
call: the same gradient with fewer operations per step. ``backend="fused"``
(what ``"auto"`` takes when it can) runs each layer of that path through the
compiled scans: a feedforward LIF layer through
:func:`solsa.fast.scan.lif_sequence_scan` (the filter and the membrane as time
loops in compiled C++ with their own backward, the synaptic current of all steps
in one matrix product), a recurrent and/or ALIF layer through
:func:`solsa.fast.recurrent_scan.recurrent_sequence_scan` (the recursion through
the layer's own output and its adjoint as C loops over t); tensors off the CPU,
other dtypes, or no compiler run the PyTorch path
(:attr:`~solsa.rules.LearningRule.fallback_reason` says why).
``backend="compiled"`` runs the PyTorch path's layers through ``torch.compile``
(inductor), which compiles each new sequence length and layer shape first (about
a minute on a small CPU); if compiling fails the rule falls back to plain PyTorch
and says why. ``backend="reference"`` is plain PyTorch, the definition the others
are tested against. ``flush``
backpropagates the loss accumulated since the last flush, then detaches the
state (so a mid-sequence flush is truncated BPTT).
"""

from __future__ import annotations

import functools

import torch

from ..functional import LIFState, lif_sequence
from .base import Capabilities, LearningRule, StepResult

__all__ = ["BPTT"]


class BPTT(LearningRule):
    name = "bptt"
    capabilities = Capabilities(online=False, step_magnitude=False, backends=("reference", "fused", "compiled"),
                                whole_sequence=True)

    def __init__(self, net, loss="mse", *, backend: str = "auto") -> None:
        super().__init__(net, loss, backend=backend)
        self.states: list[LIFState] = []
        self.total: torch.Tensor | None = None
        self._saved: dict[int, int] = {}
        self._peak = 0
        self._fallback_reason = ""
        self._layer_runs = [lif_sequence] * len(net.layers)  # the whole-sequence function of each layer
        self._chosen_for: tuple | None = None  # the layers' (config, device, dtype) the runs were chosen for
        self._params = list(net.parameters())

    def _choose_scan(self) -> None:
        """Each layer on its compiled scan (feedforward LIF, or recurrent / ALIF); a layer the scans cannot run
        (and all, without a compiler) in PyTorch."""
        from ..fast.recurrent_scan import recurrent_sequence_scan
        from ..fast.scan import lif_sequence_scan, scan_unsupported_reason

        key = tuple((layer.config, layer.weight.device, layer.weight.dtype, layer.rec_weight is None)
                    for layer in self.net.layers)
        if key == self._chosen_for:
            return
        self._chosen_for = key
        reasons = [scan_unsupported_reason(layer.params(), layer.config, recurrent=True) for layer in self.net.layers]
        self._layer_runs = [lif_sequence if r else recurrent_sequence_scan if _feeds_back(layer) else lif_sequence_scan
                            for r, layer in zip(reasons, self.net.layers)]
        self._fallback_reason = next((r for r in reasons if r), "")
        if self.backend == "fused" and all(reasons):
            raise RuntimeError(f"backend='fused' is not available: {self._fallback_reason}")

    @property
    def active_backend(self) -> str:
        if self.backend == "compiled":
            return "reference" if self._fallback_reason else "compiled"
        return "fused" if any(run is not lif_sequence for run in self._layer_runs) else "reference"

    @property
    def fallback_reason(self) -> str:
        return self._fallback_reason

    def _reset(self, batch_size: int) -> None:
        self.states = self.net.init_state(batch_size)
        self.total: torch.Tensor | None = None
        self._saved: dict[int, int] = {}
        self._peak = 0
        self._param_ptrs = {_storage_ptr(p) for p in self._params}
        if self.backend in ("auto", "fused"):
            self._choose_scan()

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        # count each saved storage once; parameters exist anyway and are not training state
        ptr = _storage_ptr(t)
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
        if self.active_backend == "compiled":
            try:
                return self._layers_and_loss([compiled_lif_sequence()] * len(self.net.layers), x, target, weights)
            except Exception as exc:  # noqa: BLE001 - any compiler failure: run the same path uncompiled
                self._fallback_reason = f"torch.compile failed: {type(exc).__name__}: {exc}"[:500]
                self._saved.clear()
                return self._layers_and_loss([lif_sequence] * len(self.net.layers), x, target, weights)
        return self._layers_and_loss(self._layer_runs, x, target, weights)

    def _layers_and_loss(self, runs, x, target, weights) -> StepResult:
        from ..fast.recurrent_scan import recurrent_sequence_scan
        from ..fast.scan import lif_sequence_scan, sequence_loss

        kept: list[torch.Tensor] = []  # what the compiled layers save for backward (counted below, without hooks)
        states = []
        with torch.enable_grad():
            for run, layer, state in zip(runs, self.net.layers, self.states):
                if run in (lif_sequence_scan, recurrent_sequence_scan):  # it reports what it keeps for backward
                    x, state = run(x, state, layer.params(), layer.config, saved=kept)
                else:
                    with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t):
                        x, state = run(x, state, layer.params(), layer.config)
                states.append(state)
            with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t):
                loss = sequence_loss(self.loss, x, target, weights) if kept else self.loss(x, target, weights)
        for t in kept:
            self._pack(t)
        self.states = states
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


def _feeds_back(layer) -> bool:
    """Whether ``layer`` has recurrent weights or the adaptive threshold (its own output enters its next step)."""
    return layer.params().rec_weight is not None or layer.config.neuron == "alif"


def _storage_ptr(t: torch.Tensor) -> int:
    """Where the storage under ``t`` starts (without building a storage object: this runs per saved tensor)."""
    return t.data_ptr() - t.storage_offset() * t.element_size()


@functools.lru_cache(maxsize=1)
def compiled_lif_sequence():
    """:func:`~solsa.functional.lif_sequence` through ``torch.compile`` (built once, compiled per shape on first
    use). Each layer shape and sequence length is a new compilation: the limit on them is raised to 64."""
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    return torch.compile(lif_sequence, dynamic=False)
