"""Fast paths in compiled code.

SOLSA's fused step (:mod:`solsa.fast.fused`): a small C++ kernel,
compiled once per machine (:mod:`solsa.fast.build`) and called through
:mod:`ctypes`, that advances all layers, evaluates the loss and accumulates
every gradient in one call per time step, for LIF, ALIF and recurrent layers. ``SOLSA(..., backend="auto")`` (the
default) uses it whenever it is available; the plain PyTorch path
(``backend="reference"``) stays the definition it is tested against.

BPTT's whole-sequence layer (:mod:`solsa.fast.scan`, ``scan.cpp``): the filter and membrane time loops and
their adjoints in C++, one autograd function per layer and sequence; ``BPTT(..., backend="auto")`` uses it
for feedforward LIF layers on the CPU, and :mod:`solsa.fast.recurrent_scan` (``recurrent_adjoint.h``) for
recurrent and ALIF layers.

The online rules' whole sequence (:mod:`solsa.fast.online_seq`, ``online_seq.h`` in the scan library): e-prop,
OSTL and OTTT run a stretch of steps through the scan's forward and two trace loops
(``backend="auto"``/``"fused"``, :mod:`solsa.rules.compiled`).

Environment: ``SOLSA_DISABLE_FUSED=1`` turns the kernel off, ``SOLSA_DISABLE_SCAN=1`` the scan; ``SOLSA_CACHE_DIR``
moves its build cache; ``CXX`` picks the compiler.
"""

from __future__ import annotations

__all__ = ["fused_available", "fused_unavailable_reason"]


def fused_available() -> bool:
    """Whether the fused kernel is built and loadable here (builds it on first call, ~1-3 s)."""
    from .build import load_kernel

    return load_kernel() is not None


def fused_unavailable_reason() -> str:
    """Why the fused kernel is unavailable (empty when it is available)."""
    from .build import load_kernel, unavailable_reason

    return "" if load_kernel() is not None else unavailable_reason()
