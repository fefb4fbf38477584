"""ALIF and recurrent layers in the fused kernel (kernel source ``alif.h``): the Python side.

:func:`plumb_alif` gives such a layer's :class:`~solsa.fast.fused.LayerDesc` an :class:`AlifDesc` pointing at
the learner's tensors (the adaptation ``b`` in ``state``, the ALIF partners in ``traces.adapt``, the W_rec
accumulator); :func:`flush_recurrent` hands the W_rec gradient over at flush (the kernel flushes the five
per-layer slots W, b, α, β, λ; W_rec's pointer rides after them in ``Plan.params``).
"""

from __future__ import annotations

import ctypes

import torch

__all__ = ["AlifDesc", "plumb_alif", "flush_recurrent", "alif_unsupported_reason"]


class AlifDesc(ctypes.Structure):
    """Mirror of ``struct AlifDesc`` in ``alif.h``."""

    _fields_ = [("adaptive", ctypes.c_int64), ("recurrent", ctypes.c_int64), ("adapt", ctypes.c_double),
                ("rho", ctypes.c_double)]
    _fields_ += [(name, ctypes.c_void_p) for name in ("b", "we", "wa", "wm", "wn", "gWrec", "k", "h", "wrow")]


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def alif_unsupported_reason(layers, trace_dtype: str | None) -> str:
    """Why the fused kernel cannot run these ALIF / recurrent layers with ``trace_dtype`` (empty when it can)."""
    if trace_dtype is not None and any(layer.adaptive for layer in layers):
        return (f"fused kernel keeps ALIF traces in the network's dtype only (trace_dtype {trace_dtype!r} "
                "with neuron 'alif' runs on the reference path)")
    return ""


def plumb_alif(desc, layer, tr, acc: dict, batch_size: int, keep: list, keep_ctypes: list) -> None:
    """Point the kernel's ``desc`` (a :class:`~solsa.fast.fused.LayerDesc`) of an ALIF and/or recurrent ``layer``
    at an :class:`AlifDesc` on the learner's tensors; nothing for a plain LIF layer. The scratch tensors and the
    struct are appended to ``keep`` and ``keep_ctypes`` (they live as long as the plan)."""
    if not (layer.adaptive or layer.recurrent):
        return
    if layer.adaptive and tr.e.dtype != layer.weight.dtype:
        raise RuntimeError(alif_unsupported_reason([layer], str(tr.e.dtype).removeprefix("torch.")))
    n_out, n_in = layer.weight.shape
    kw = {"dtype": layer.weight.dtype, "device": layer.weight.device}
    scratch = [torch.zeros(batch_size, n_out, **kw), torch.zeros(batch_size, n_out, **kw),
               torch.zeros(n_out, tr.e.shape[-1], **kw)]
    keep += scratch
    adapt = tr.adapt or {}
    cfg = layer.config
    alif = AlifDesc(int(layer.adaptive), int(layer.recurrent), cfg.adapt, cfg.rho, _ptr(tr.state.b),
                    *(_ptr(adapt.get(name)) for name in ("e", "a", "m", "n")), _ptr(acc.get("rec_weight")),
                    *(_ptr(s) for s in scratch))
    for t in [tr.state.b, *adapt.values(), acc.get("rec_weight")]:
        if t is not None and not t.is_contiguous():
            raise RuntimeError("fused kernel needs contiguous traces")
    keep_ctypes.append(alif)
    desc.alif = ctypes.pointer(alif)


@torch.no_grad()
def flush_recurrent(layers, grads: list[dict]) -> None:
    """Add each recurrent layer's W_rec accumulator to ``rec_weight.grad`` and zero it (as OnlineRule.flush)."""
    for layer, acc in zip(layers, grads):
        g = acc.get("rec_weight")
        if g is None:
            continue
        param = layer.rec_weight
        param.grad = g.clone() if param.grad is None else param.grad + g
        g.zero_()
