"""The ``backend`` choice of the online rules whose whole sequence runs in compiled code (e-prop, OSTL, OTTT).

``backend="fused"`` (what ``"auto"`` takes when it can) runs :meth:`~solsa.rules.LearningRule.run_sequence` —
which the learner takes for each stretch of steps up to an update point — through
:mod:`solsa.fast.online_seq`: every layer's forward over the stretch, the loss, the same-step errors and the
traces in a few whole-sequence calls, with the result of ``T`` calls of ``step`` (float64 ≤ 1e-10,
tests/test_online_sequence.py). ``step`` itself (the streaming API) is the reference path on every backend,
and the two paths hand over through the same trace objects, so a stream may mix them. A stretch holds its
layers' ``[T, B, N]`` activations while it runs, so it is cut into calls of :data:`SEQUENCE_CHUNK` steps:
memory stays flat in T. ALIF and recurrent layers (model ``native``) run there too: their forward's
recursion through the layer's own output in C (``fast/recurrent_seq.h``), the ALIF traces' adaptation
partner in the trace loop. A custom loss, tensors off the CPU, or no C++ compiler: ``"auto"`` runs the
reference path and :attr:`fallback_reason` says why; ``"fused"`` raises at ``reset``.

A rule takes the path by subclassing :class:`CompiledSequence` (an :class:`~solsa.rules.online.OnlineRule`)
and implementing ``_sequence_grads(runs, g)``: accumulate the stretch's gradients and leave its traces
(all but state and ε, which this class writes) as ``T`` steps would.
"""

from __future__ import annotations

import torch

from ..functional import LIFState, split_presynaptic
from .base import Capabilities, StepResult
from .online import OnlineRule

__all__ = ["CompiledSequence", "COMPILED_CAPABILITIES", "SEQUENCE_CHUNK"]

# steps per compiled call: a stretch holds its layers' [T, B, N] activations while it runs (never a
# [T, B, N_out, N_in] trace), so longer stretches are cut into calls of this many steps to keep the memory
# flat in T (the online rules' promise): about 35 kB per step at 12-100-100-9, batch 4; at 64 steps the per-call
# overhead is already small against the work
SEQUENCE_CHUNK = 64

# what a rule with this path can do: online, the per-step magnitude (on the step path), a whole-sequence call
COMPILED_CAPABILITIES = Capabilities(online=True, step_magnitude=True, backends=("reference", "fused"),
                                     whole_sequence=True)


class CompiledSequence(OnlineRule):
    """An :class:`~solsa.rules.online.OnlineRule` with the compiled ``run_sequence``: the choice of path at
    ``reset`` and the part every such rule shares (the layers' forward, the loss, the state)."""

    capabilities = COMPILED_CAPABILITIES
    _eps_name = "eps"  # the traces' field holding ε[t] (e-prop calls it ψ)
    _active_backend = ""
    _fallback_reason = ""

    @property
    def active_backend(self) -> str:
        return self._active_backend or "reference"

    @property
    def fallback_reason(self) -> str:
        return self._fallback_reason

    def _reset(self, batch_size: int) -> None:
        super()._reset(batch_size)
        self._active_backend, self._fallback_reason = "reference", ""
        if self.backend == "reference":
            return
        from ..fast.online_seq import sequence_unsupported_reason

        reason = sequence_unsupported_reason(self.net.layers, self.loss)
        if reason and self.backend == "fused":
            raise RuntimeError(f"backend='fused' is not available: {reason}")
        self._active_backend, self._fallback_reason = ("reference", reason) if reason else ("fused", "")

    @torch.no_grad()
    def _sequence(self, x: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> StepResult:
        if self._active_backend != "fused":
            return self._steps(x, target, weights)
        outputs, total = [], x.new_zeros(())
        for start in range(0, x.shape[0], SEQUENCE_CHUNK):  # the traces carry over: the result of one call
            stop = start + SEQUENCE_CHUNK
            res = self._chunk(x[start:stop], target if target.dim() == 1 else target[start:stop],
                              weights[start:stop])
            outputs.append(res.output)
            total = total + res.loss
        return StepResult(torch.cat(outputs), total)

    def _chunk(self, x: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> StepResult:
        """At most :data:`SEQUENCE_CHUNK` steps: the layers' forward, the loss, then the rule's traces."""
        from ..fast.online_seq import layer_run

        runs, inp = [], x
        for layer, tr in zip(self.net.layers, self.traces):
            run = layer_run(layer, inp, tr.state, getattr(tr, self._eps_name))
            runs.append(run)
            inp = run.o
        value, g = self.loss.grad(inp, target, weights)
        self._sequence_grads(runs, g)
        for tr, run in zip(self.traces, runs):
            # copies: a view would keep the stretch's [T, ...] buffers alive
            b = None if run.b is None else run.b[-1].clone()
            tr.state = LIFState(run.F[-1].clone(), run.V[-1].clone(), run.o[-1].clone(), b)
            setattr(tr, self._eps_name, run.eps[-1].clone())
        return StepResult(inp, value)

    def _sequence_grads(self, runs: list, g: torch.Tensor) -> None:
        """Accumulate the gradients of the stretch (``g`` = ∂ℓ_t/∂y ``[T, B, C]``) and advance the traces."""
        raise NotImplementedError

    def _same_step_deltas(self, runs: list, g: torch.Tensor) -> list[torch.Tensor]:
        """δ[t] of every layer and step, ``[T, B, N_out]``: the error of :class:`~solsa.rules.online.OnlineRule`
        going down within each step (``δ = g ⊙ ε``, :func:`~solsa.functional.spatial_error` between layers)."""
        from ..functional import spatial_error

        deltas = []
        for layer, run in zip(reversed(self.net.layers), reversed(runs)):
            delta = g * run.eps
            deltas.append(delta)
            g = spatial_error(delta, layer.weight, layer.beta)
        return deltas[::-1]

    @staticmethod
    def _presynaptic_grad(layer, acc: dict[str, torch.Tensor]) -> torch.Tensor:
        """Where a stretch's ``Σ δ e`` over the :func:`~solsa.functional.presynaptic` input goes: ``acc["weight"]``
        itself for a feedforward layer, else a fresh ``[N_out, N_in + N_out]`` (:meth:`_add_presynaptic_grad`)."""
        if not layer.recurrent and "weight" in acc:
            return acc["weight"]
        n_out, n_in = layer.weight.shape
        return layer.weight.new_zeros(n_out, n_in + (n_out if layer.recurrent else 0))

    @staticmethod
    def _add_presynaptic_grad(layer, acc: dict[str, torch.Tensor], grad: torch.Tensor) -> None:
        """Add ``grad`` from :meth:`_presynaptic_grad` to the W and W_rec accumulators (no-op when it is one)."""
        if grad is acc.get("weight"):
            return
        for name, g in split_presynaptic(grad, layer.in_features).items():
            if name in acc:
                acc[name] += g
