"""The fused SOLSA step: one native call per time step for all layers (forward, loss, traces, gradients).

:class:`FusedStepper` wires the tensors a :class:`~solsa.rules.SOLSA` learner
allocates at ``reset`` (states, traces, gradient accumulators) into a
:class:`Plan` the compiled kernel reads. The kernel updates them in place, so
``train_state_bytes``, ``flush`` and the traces are those of the reference
path. Parameter pointers are re-read before every call, so in-place updates
(optimizers, ``clamp_``, ``load_state_dict``) are always seen.

Requirements (checked by :func:`unsupported_reason`): CPU tensors, float32 or float64, contiguous
parameters; LIF, ALIF and recurrent layers (:mod:`solsa.fast.alif`). Anything else runs on the reference path. The
``[B, N_out, N_in]`` traces may be stored in float16 or bfloat16 (SOLSA's
``trace_dtype``): the kernel reads their dtype (:data:`STORAGE`) and computes in
the network's.
"""

from __future__ import annotations

import ctypes
from typing import Any, Sequence

import torch

from ..losses import CrossEntropy, Loss, SpikeMSE
from ..rules.credit import zero_decay
from .alif import alif_unsupported_reason, flush_recurrent, plumb_alif
from .build import load_kernel
from .plan import _DTYPES, _RESETS, _SURROGATES, PARALLEL_MIN_WORK, SHORT_ROWS, STORAGE, LayerDesc, Plan
from .sequence import FastPaths

__all__ = ["FusedStepper", "unsupported_reason", "LayerDesc", "Plan"]

def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def unsupported_reason(layers: Sequence[Any], trace_dtype: str | None = None) -> str:
    """Why the fused kernel cannot run these layers, their traces stored in ``trace_dtype`` (empty when it can)."""
    devices = {t.device.type for layer in layers for t in layer.parameters()}
    if devices - {"cpu"}:  # step aside before building anything: the kernel is CPU code
        return f"fused kernel runs on CPU only (the network is on {', '.join(sorted(devices - {'cpu'}))})"
    if load_kernel() is None:
        from .build import unavailable_reason

        return f"fused kernel unavailable: {unavailable_reason()}"
    for layer in layers:
        for name in ("weight", "bias", "alpha", "beta", "lam", "rec_weight"):
            t = getattr(layer, name, None)
            if t is None:
                continue
            if t.device.type != "cpu":
                return f"fused kernel runs on CPU only ({name} is on {t.device})"
            if t.dtype not in _DTYPES:
                return f"fused kernel supports float32 and float64 only ({name} is {t.dtype})"
            if t.dtype != layer.weight.dtype:
                return "fused kernel needs one dtype for all tensors of a layer"
            if not t.is_contiguous():
                return f"fused kernel needs contiguous parameters ({name} is not)"
        if layer.config.reset not in _RESETS or layer.config.surrogate not in _SURROGATES:
            return "fused kernel does not know this reset mode or surrogate"
    dtypes = {layer.weight.dtype for layer in layers}
    if len(dtypes) != 1:
        return "fused kernel needs one dtype for the whole network"
    return alif_unsupported_reason(layers, trace_dtype)


class FusedStepper(FastPaths):
    """Runs SOLSA time steps through the compiled kernel, on the tensors of a SOLSA learner.

    Args:
        layers: the network's :class:`~solsa.LIFLayer` list.
        traces: the learner's per-layer traces (``LayerTraces``), freshly reset.
        grads: the learner's per-layer gradient accumulators (dicts of tensors).
        batch_size: B.
        reset_feedback: SOLSA's ``reset_feedback`` flag.
        loss: the per-step loss; spike-MSE and cross-entropy run inside the kernel, any other
            :class:`~solsa.losses.Loss` is evaluated in Python between two kernel calls.
    """

    def __init__(self, layers, traces, grads, batch_size: int, reset_feedback: bool, loss: Loss) -> None:
        lib = load_kernel()
        if lib is None:
            raise RuntimeError("the fused kernel is not available")
        w0 = layers[0].weight
        self.dtype = w0.dtype
        suffix = _DTYPES[self.dtype]
        self._forward = getattr(lib, f"solsa_forward_{suffix}")
        self._predict = getattr(lib, f"solsa_predict_{suffix}")
        self._predict_scratch = None  # three buffers per layer for predict(), made on first use
        self._backward = getattr(lib, f"solsa_backward_{suffix}")
        self._step = getattr(lib, f"solsa_step_{suffix}")
        self._sequence = getattr(lib, f"solsa_sequence_{suffix}")
        self._flush = getattr(lib, f"solsa_flush_{suffix}")
        self._zero_state = getattr(lib, f"solsa_zero_state_{suffix}")
        self._settle = getattr(lib, f"solsa_settle_{suffix}")
        self.B = batch_size
        self.layers = list(layers)
        self.n_in = layers[0].in_features
        self.n_out = layers[-1].out_features
        self.loss = loss
        self.loss_kind = 0 if type(loss) is SpikeMSE else 1 if type(loss) is CrossEntropy else -1
        kw = {"dtype": self.dtype, "device": w0.device}
        self._keep: list[torch.Tensor] = []  # scratch tensors the plan points into
        self._keep_ctypes: list = []  # pointer arrays the plan points into
        descs = (LayerDesc * len(layers))()
        for desc, layer, tr, acc in zip(descs, layers, traces, grads):
            cfg = layer.config
            n_out, n_in = layer.weight.shape
            scratch = [torch.zeros(batch_size, n_out, **kw), torch.zeros(batch_size, n_in, **kw),
                       torch.zeros(n_out, n_in, **kw), torch.zeros(n_in, **kw),
                       torch.zeros(batch_size, n_out, **kw), torch.zeros(batch_size, n_out, **kw),
                       torch.zeros(batch_size, n_out, **kw)]  # then W^T and the W it was made from (forward.h):
            scratch += [torch.zeros(n_in, n_out, **kw), torch.full((n_out, n_in), float("nan"), **kw)] \
                if n_in < SHORT_ROWS else [None, None]
            self._keep += scratch
            desc.n_in, desc.n_out = n_in, n_out
            desc.reset, desc.surrogate = _RESETS[cfg.reset], _SURROGATES[cfg.surrogate]
            desc.spiking = int(cfg.spiking)
            desc.filter_per_channel = int(layer.filter_per_channel)
            desc.lam_per_neuron = int(layer.lam_per_neuron)
            desc.threshold, desc.reset_amount, desc.width = cfg.threshold, cfg.reset_amount, cfg.width
            desc.F, desc.V, desc.o = (_ptr(s) for s in tr.state[:3])  # a LIF state: b is None
            desc.eps, desc.e, desc.p, desc.a, desc.m, desc.n = (_ptr(t) for t in (tr.eps, tr.e, tr.p, tr.a, tr.m, tr.n))
            desc.gW, desc.gb = _ptr(acc.get("weight")), _ptr(acc.get("bias"))
            desc.galpha, desc.glam = _ptr(acc.get("alpha")), _ptr(acc.get("lam"))
            (desc.delta, desc.gbelow, desc.wtmp, desc.atmp,
             desc.cur, desc.wp, desc.d, desc.wT, desc.wcopy) = (_ptr(s) for s in scratch)
            credit = self._plumb_credit(desc, tr, batch_size, kw)
            plumb_alif(desc, layer, tr, acc, batch_size, self._keep, self._keep_ctypes)
            for t in [*tr.state, tr.eps, tr.e, tr.p, tr.a, tr.m, tr.n, *acc.values(), *credit]:
                if t is not None and not t.is_contiguous():
                    raise RuntimeError("fused kernel needs contiguous traces")
        self._descs = descs
        self._param_tensors = [getattr(layer, name) for layer in layers
                               for name in ("weight", "bias", "alpha", "beta", "lam")]
        self._param_tensors += [layer.rec_weight for layer in layers]  # W_rec after the 5 slots per layer
        self._params = (ctypes.c_void_p * len(self._param_tensors))()
        self._present_slots = [k for k, t in enumerate(self._param_tensors) if t is not None]
        self._present = [self._param_tensors[k] for k in self._present_slots]
        self._last_ptrs: list[int] = []
        self.plan = Plan(batch_size, len(layers), int(reset_feedback), 0, PARALLEL_MIN_WORK, 0,
                         ctypes.cast(descs, ctypes.POINTER(LayerDesc)), self._params, 0.0,
                         self._storage(traces))
        self._plan_ref = ctypes.addressof(self.plan)  # an int converts faster than a byref
        self._gbuf = torch.zeros(batch_size, self.n_out, **kw)
        self._scalar = torch.zeros((), **kw)  # the 0-dim loss tensor's prototype (quick_step)
        self._gbuf_ptr = self._gbuf.data_ptr()
        self._default_weight = torch.full((batch_size,), 1.0 / batch_size, **kw)
        self._x_shape = (batch_size, self.n_in)
        self._w_shape = (batch_size,)
        self._y_shape = (batch_size, self.n_out)
        self._kinds = {(torch.int64, torch.Size(self._w_shape)): 1, (self.dtype, torch.Size(self._y_shape)): 2}
        # flush: the learnable parameters in the kernel's 5-slot order (None where not learned)
        self._learned = [getattr(layer, name) if (layer.is_learnable(name) and (name == "beta" or name in acc))
                         else None
                         for layer, acc in zip(layers, grads) for name in ("weight", "bias", "alpha", "beta", "lam")]
        # for each slot: (layer index, accumulator name, LayerDesc field) where the kernel accumulates
        self._acc_slots = {5 * li + k: (li, name, field) for li, acc in enumerate(grads)
                           for k, (name, field) in enumerate((("weight", "gW"), ("bias", "gb"), ("alpha", "galpha"),
                                                              (None, None), ("lam", "glam")))
                           if name in acc}
        self._handed: list[int] = []  # slots whose accumulator became .grad at the last flush
        self._dsts = (ctypes.c_void_p * len(self._learned))()
        self._modes = (ctypes.c_int64 * len(self._learned))()
        self._key = self._identity(layers, batch_size, reset_feedback, loss)  # see restart()
        # trace tensors are referenced by the plan; keep them alive with it
        self._traces = traces
        self._grads = grads

    def _storage(self, traces) -> int:
        """Plan.storage: the one dtype of every layer's ``e`` (its ``a`` and credit stages follow it)."""
        dtypes = {tr.e.dtype for tr in traces}
        if len(dtypes) != 1:
            raise RuntimeError("fused kernel needs one trace dtype for the whole network")
        dtype = dtypes.pop()
        if dtype != self.dtype and dtype not in STORAGE:
            raise RuntimeError(f"fused kernel stores traces in {self.dtype}, float16 or bfloat16, not {dtype}")
        return STORAGE.get(dtype, 0)

    def _plumb_credit(self, desc: LayerDesc, tr, batch_size: int, kw: dict) -> list:
        """Point ``desc`` at the layer's credit state (``tr.credit``, updated in place); returns its tensors."""
        n_out = desc.n_out
        dbar = torch.zeros(batch_size, **kw)
        self._keep.append(dbar)
        desc.dbar = _ptr(dbar)
        credit = tr.credit
        if credit is None:
            return []
        tensors = [t for stage in credit.stages for name in ("e", "a", "m", "n")
                   for t in stage.get(name, (None, None))]
        slots = (ctypes.c_void_p * len(tensors))(*[_ptr(t) for t in tensors])
        self._keep_ctypes.append(slots)
        desc.credit_depth = len(credit.stages)
        desc.cstage = ctypes.cast(slots, ctypes.POINTER(ctypes.c_void_p))
        lag = [*(credit.lag or [None] * 4), credit.eps_lag]
        desc.lag_qE, desc.lag_uE, desc.lag_qN, desc.lag_uN, desc.eps_lag = (_ptr(t) for t in lag)
        h = credit.neuron
        desc.n_neuron = next(iter(h.values())).shape[1] if h else 0
        desc.h_a, desc.h_m, desc.h_n = (_ptr(h.get(name)) for name in ("a", "m", "n"))
        signals = torch.zeros(len(credit.stages), batch_size, n_out, **kw)
        self._keep.append(signals)
        desc.signals = _ptr(signals)
        mass = credit.mass or [None, None]
        desc.mass, desc.mass_bar = _ptr(mass[0]), _ptr(mass[1])
        return [t for t in tensors + lag + list(h.values()) + mass if t is not None]

    @staticmethod
    def _identity(layers, batch_size: int, reset_feedback: bool, loss: Loss) -> tuple:
        tensors = tuple(id(getattr(layer, name)) for layer in layers
                        for name in ("weight", "bias", "alpha", "beta", "lam", "rec_weight"))
        dtypes = tuple(layer.weight.dtype for layer in layers)
        passes = tuple(zero_decay(layer) for layer in layers)  # which credit stages store u is q
        return (tuple(id(layer) for layer in layers), tensors, dtypes, passes, batch_size, bool(reset_feedback),
                id(loss))

    def restart(self, layers, batch_size: int, reset_feedback: bool, loss: Loss) -> bool:
        """Start a new sequence on the same tensors (states and traces zeroed in place), if nothing changed.

        Returns False when the network, batch size, loss or settings differ (the caller builds a new stepper).
        """
        if self._identity(layers, batch_size, reset_feedback, loss) != self._key:
            return False
        self._renew()
        self._zero_state(self._plan_ref)
        return True

    def settle(self) -> None:
        """Leave the accumulators complete and private: add the last step's deferred weight gradient, and
        replace those handed over as ``.grad`` by the last flush. Call before anything else reads them."""
        self._renew()
        self._settle(self._plan_ref)

    def _renew(self) -> None:
        """New zero accumulators for those the last flush handed over as ``.grad``."""
        if not self._handed:
            return
        for slot in self._handed:
            li, name, field = self._acc_slots[slot]
            fresh = torch.zeros_like(self._grads[li][name], memory_format=torch.contiguous_format)
            self._grads[li][name] = fresh
            setattr(self._descs[li], field, fresh.data_ptr())
        self._handed = []

    def _refresh_params(self) -> None:
        """Re-read the parameters' data pointers (an optimizer or ``.data =`` may have moved them)."""
        ptrs = [t.data_ptr() for t in self._present]
        if ptrs != self._last_ptrs:
            for slot, ptr in zip(self._present_slots, ptrs):
                self._params[slot] = ptr
            self._last_ptrs = ptrs

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape != self._x_shape or x.dtype != self.dtype or not x.is_cpu or not x.is_contiguous():
            if x.shape != self._x_shape:
                raise ValueError(f"expected input of shape {list(self._x_shape)}, got {list(x.shape)}")
            x = x.to(device="cpu", dtype=self.dtype).contiguous()
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Advance every layer by one step without learning; returns the output ``[B, C]`` (a new tensor)."""
        x = self._input(x)
        self._renew()
        self._refresh_params()
        y = torch.empty(self._y_shape, dtype=self.dtype)
        self._forward(self._plan_ref, x.data_ptr(), y.data_ptr())
        return y

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The output ``[B, C]`` the next step would give, from the current state; nothing is advanced
        (states, traces and accumulators are not written)."""
        x = self._input(x)
        if self._predict_scratch is None:
            kw = {"dtype": self.dtype, "device": self.layers[0].weight.device}
            bufs = [torch.zeros(self.B, n, **kw) for layer in self.layers
                    for n in (layer.in_features, layer.out_features, layer.out_features)]
            self._keep += bufs
            self._predict_scratch = (ctypes.c_void_p * len(bufs))(*[b.data_ptr() for b in bufs])
        self._refresh_params()
        y = torch.empty(self._y_shape, dtype=self.dtype)
        self._predict(self._plan_ref, x.data_ptr(), y.data_ptr(), self._predict_scratch)
        return y

    def step(self, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
             track: bool) -> tuple[torch.Tensor, torch.Tensor, float]:
        """One learning step; returns ``(output [B, C], loss (0-dim), Σ|∂ℓ_t/∂W| or 0.0)``."""
        x = self._input(x)
        if weight is None:
            weight = self._default_weight
        elif (weight.shape != self._w_shape or weight.dtype != self.dtype or not weight.is_cpu
              or not weight.is_contiguous()):
            if weight.shape != self._w_shape:
                raise ValueError(f"expected weight of shape [{self.B}], got {list(weight.shape)}")
            weight = weight.to(device="cpu", dtype=self.dtype).contiguous()
        if self._handed:
            self._renew()
        self._refresh_params()
        if self.loss_kind < 0:
            return self._step_generic(x, target, weight, track)
        target, kind = self._target(target)
        y = torch.empty(self._y_shape, dtype=self.dtype)
        loss = torch.empty((), dtype=self.dtype)
        self.plan.track = int(track)  # back to 0 at once: the streaming call (quick_step) leaves it alone
        status = self._step(self._plan_ref, x.data_ptr(), target.data_ptr(), kind, weight.data_ptr(),
                            self.loss_kind, y.data_ptr(), loss.data_ptr(), self._gbuf_ptr)
        self.plan.track = 0
        if status:
            raise ValueError(f"class labels must be in [0, {self.n_out}); got {target.tolist()}")
        return y, loss, self.plan.magnitude if track else 0.0

    def _target(self, target: torch.Tensor) -> tuple[torch.Tensor, int]:
        """One step's target as the kernel reads it: ``(tensor, 1)`` for int64 labels ``[B]``, ``(tensor, 2)``
        for a dense ``[B, C]`` target of the kernel's dtype (converted where needed)."""
        if target.dtype == torch.int64 and target.shape == self._w_shape and target.is_cpu and target.is_contiguous():
            return target, 1  # labels: the common case, checked first
        if target.is_floating_point():
            if target.shape != self._y_shape:
                raise ValueError(f"expected a target of shape {list(self._y_shape)}, got {list(target.shape)}")
            return target.to(device="cpu", dtype=self.dtype).contiguous(), 2
        if target.shape != self._w_shape:
            raise ValueError(f"expected labels of shape [{self.B}], got {list(target.shape)}")
        return target.to(device="cpu", dtype=torch.int64).contiguous(), 1

    def flush(self) -> bool:
        """Add the accumulated gradients to ``.grad`` and zero them.

        Where ``.grad`` is ``None`` (after ``zero_grad(set_to_none=True)``) the accumulator itself becomes
        ``.grad`` (no copy) and a fresh one is allocated when the next sequence or step starts.
        Returns False, doing nothing, when an existing ``.grad`` is not a contiguous CPU tensor of the
        parameter's dtype and shape (the caller then flushes on the reference path).
        """
        self._renew()
        grads = [None if p is None else p.grad for p in self._learned]
        for param, g in zip(self._learned, grads):
            if g is not None and (g.dtype != self.dtype or g.shape != param.shape or not g.is_contiguous()
                                  or not g.is_cpu):
                self.settle()
                return False
        handed = []
        for slot, (param, g) in enumerate(zip(self._learned, grads)):
            if param is None:
                self._dsts[slot], self._modes[slot] = None, 0
            elif g is not None:
                self._dsts[slot], self._modes[slot] = g.data_ptr(), 1
            elif slot in self._acc_slots:
                li, name, _ = self._acc_slots[slot]
                acc = self._grads[li][name]
                param.grad = acc
                self._dsts[slot], self._modes[slot] = acc.data_ptr(), 2
                handed.append(slot)
            else:  # beta: computed by the kernel from the weight gradient
                g = torch.empty_like(param)
                param.grad = g
                self._dsts[slot], self._modes[slot] = g.data_ptr(), 0
        self._refresh_params()
        self._flush(self._plan_ref, self._dsts, self._modes)
        flush_recurrent(self.layers, self._grads)
        self._handed = handed
        return True

    def _step_generic(self, x, target, weight, track):
        y = torch.empty(self._y_shape, dtype=self.dtype)
        self._forward(self._plan_ref, x.data_ptr(), y.data_ptr())
        value, g = self.loss.grad(y, target, weight)
        g = g.to(dtype=self.dtype).contiguous()
        self.plan.track = int(track)
        self._backward(self._plan_ref, g.data_ptr())
        self.plan.track = 0
        return y, value, self.plan.magnitude if track else 0.0
