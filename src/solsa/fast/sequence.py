"""The fused kernel's two fast entry points, beside the per-step :meth:`FusedStepper.step
<solsa.fast.fused.FusedStepper.step>`: a stretch of time steps in one call (``solsa_sequence``,
kernel source ``sequence.h``) and the lean streaming step.

Both give the bits of the per-step path: :meth:`FastPaths.run` loops the same compiled step over ``T``
steps inside the kernel (the parameters cannot change within one call), :meth:`FastPaths.quick_step`
takes the same kernel call with fewer Python operations when the input needs no conversion.
"""

from __future__ import annotations

import torch

from ..rules.base import StepResult

__all__ = ["FastPaths"]

_DATA_PTR = torch.Tensor.data_ptr
_new_tuple = tuple.__new__  # StepResult(y, loss) without its Python-level __new__


class FastPaths:
    """Mixed into :class:`~solsa.fast.fused.FusedStepper` (its attributes: the plan, shapes, kernel functions)."""

    def quick_step(self, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> StepResult | None:
        """:meth:`step` without tracking for the common streaming call -- ``x`` ``[B, N_in]`` and labels
        ``[B]`` (int64) or a dense target ``[B, C]``, all contiguous CPU tensors of the kernel's dtypes, a
        built-in loss -- with no conversion and few Python operations: ``StepResult(output, loss)``, the
        bits of :meth:`step`. Returns None, touching nothing, for any other call (the caller then takes
        :meth:`step`)."""
        if (type(x) is not torch.Tensor or type(target) is not torch.Tensor  # noqa: E721 - exact type, fast
                or x.dtype is not self.dtype or x.shape != self._x_shape or not x.is_contiguous() or not x.is_cpu
                or self.loss_kind < 0 or self._handed):
            return None
        if weight is None:
            weight = self._default_weight
        elif (weight.dtype is not self.dtype or weight.shape != self._w_shape or not weight.is_contiguous()
              or not weight.is_cpu):
            return None
        kind = self._kinds.get((target.dtype, target.shape))
        if kind is None or not target.is_contiguous() or not target.is_cpu:
            return None
        ptrs = list(map(_DATA_PTR, self._present))  # _refresh_params, inlined
        if ptrs != self._last_ptrs:
            self._refresh_params()
        y = torch.empty_like(self._gbuf)  # [B, C] of the kernel's dtype; empty_like parses no arguments
        loss = torch.empty_like(self._scalar)
        if self._step(self._plan_ref, x.data_ptr(), target.data_ptr(), kind, weight.data_ptr(), self.loss_kind,
                      y.data_ptr(), loss.data_ptr(), self._gbuf_ptr):
            raise ValueError(f"class labels must be in [0, {self.n_out}); got {target.tolist()}")
        return _new_tuple(StepResult, (y, loss, None))

    def run(self, x: torch.Tensor, target: torch.Tensor, weights: torch.Tensor):
        """``T`` learning steps in one kernel call (``solsa_sequence``), the bits of ``T`` calls of :meth:`step`:
        ``x`` ``[T, B, N_in]``, ``target`` labels ``[B]``, per-step labels ``[T, B]`` or a dense ``[T, B, C]``
        target, ``weights`` ``[T, B]``. Returns ``(outputs [T, B, C], summed loss)``, or None, touching
        nothing, where only the per-step path can run it (a custom loss, another target layout)."""
        T = x.shape[0]
        if self.loss_kind < 0 or x.shape[1:] != self._x_shape or weights.shape != (T, self.B):
            return None
        if target.dim() == 1:
            target, kind = self._target(target)
            stride = 0
        elif T and target.shape[0] == T and target.shape[1:] == self._w_shape and not target.is_floating_point():
            target, kind = target.to(device="cpu", dtype=torch.int64).contiguous(), 1  # labels per step
            stride = target[0].numel() * target.element_size()
        elif T and target.shape[0] == T and target.shape[1:] == self._y_shape and target.is_floating_point():
            target, kind = target.to(device="cpu", dtype=self.dtype).contiguous(), 2  # a dense target per step
            stride = target[0].numel() * target.element_size()
        else:
            return None
        x = x.to(device="cpu", dtype=self.dtype).contiguous()
        weights = weights.to(device="cpu", dtype=self.dtype).contiguous()
        self._renew()
        self._refresh_params()
        self.plan.track = 0
        y = torch.empty((T, *self._y_shape), dtype=self.dtype)
        loss = torch.zeros((), dtype=self.dtype)
        status = self._sequence(self._plan_ref, T, x.data_ptr(), target.data_ptr(), kind, stride,
                                weights.data_ptr(), self.loss_kind, y.data_ptr(), loss.data_ptr(), self._gbuf_ptr)
        if status:
            bad = target if stride == 0 else target[status - 1]
            raise ValueError(f"class labels must be in [0, {self.n_out}); got {bad.tolist()}")
        return y, loss
