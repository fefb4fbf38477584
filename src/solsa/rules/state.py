"""Copies of an online rule's per-layer state and traces, by dotted name, and loading them back in place
(checkpoints of :class:`~solsa.StreamClassifier`, the benchmarks and tests read them)."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping

import torch

__all__ = ["trace_tensors", "load_trace_tensors"]


def _tensors(obj: Any, key: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """``(dotted key, tensor)`` of every tensor in a rule's layer state: dataclass fields, the LIFState's names,
    list indices and dict keys (SOLSA's cross-layer credit nests its traces in lists and dicts)."""
    if isinstance(obj, torch.Tensor):
        yield key, obj
        return
    if dataclasses.is_dataclass(obj):
        items = [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):
        items = list(zip(obj._fields, obj))
    elif isinstance(obj, list):
        items = list(enumerate(obj))
    elif isinstance(obj, dict):
        items = list(obj.items())
    else:
        return
    for name, value in items:
        yield from _tensors(value, f"{key}.{name}" if key else str(name))


def trace_tensors(traces: Any) -> dict[str, torch.Tensor]:
    """Copies of one layer's state and traces (an online rule's ``rule.traces[i]``: a dataclass of tensors,
    a LIFState, Nones and, for SOLSA's cross-layer credit, nested lists and dicts of tensors), by dotted name
    (``state.V``, ``e``, ``credit.stages.0.e.1``, ...)."""
    return {path: t.detach().clone() for path, t in _tensors(traces)}


def load_trace_tensors(traces: Any, saved: Mapping[str, torch.Tensor]) -> None:
    """Copy saved tensors into one layer's traces, in place (the fused kernel holds pointers to them)."""
    here = dict(_tensors(traces))
    if set(here) != set(saved):
        raise ValueError(f"state_dict: the saved traces do not fit this rule and network "
                         f"(missing {sorted(set(here) - set(saved))[:3]}, extra {sorted(set(saved) - set(here))[:3]})")
    for key, value in saved.items():
        if here[key].shape != value.shape:
            raise ValueError(f"state_dict: trace {key!r} does not fit this rule and network")
    for key, value in saved.items():
        here[key].copy_(value)
