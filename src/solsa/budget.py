"""A memory budget for training: the most exact settings whose train state fits (``memory_budget``).

An online rule's train state does not grow with the sequence length, so its bytes are known once the
network and batch size are: :func:`fit_memory_budget` builds the run's network and rule for each rung of
:data:`LADDER` (most exact first), resets it for the run's batch size and takes the first whose
``train_state_bytes`` fit. The rungs, from the configured run downwards:

1. the run as configured (``trace_dtype`` auto: with full storage, the most exact);
2. fewer α, β (``filter_granularity`` "first", then "layer": an exact gradient of a smaller model, no
   ``[B, N_out, N_in]`` α trace above the first layer, then in no layer);
3. the ``[B, N_out, N_in]`` traces stored in float16 (``trace_dtype``; the arithmetic stays in the
   run's dtype: ~1e-3 relative gradient error, docs/benchmarks.md), then both;
4. the same with a shorter ``credit`` (``next``, then ``same-step``: the gradient moves, docs/credit.md).

A rung never makes a setting the user chose more expensive (a run configured per layer has no
per-channel rung). Nothing fits: :class:`MemoryBudgetError` names the option and the smallest state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import TrainConfig, rule_credit, takes_option
from .layers import FILTER_GRANULARITIES
from .rules.credit import CREDIT_MODES
from .rules.solsa import TRACE_DTYPES
from .validation import OptionError

__all__ = ["LADDER", "BudgetChoice", "MemoryBudgetError", "fit_memory_budget", "state_bytes_of"]

# changes to a run, most exact first (applied where they make the run cheaper; see the module docstring)
LADDER: tuple[dict[str, Any], ...] = tuple(
    {**credit, **precision, **granularity}
    for credit in ({}, {"credit": "next"}, {"credit": "same-step"})
    for precision in ({}, {"trace_dtype": "float16"})
    for granularity in ({}, {"filter_granularity": "first"}, {"filter_granularity": "layer"})
)


class MemoryBudgetError(OptionError):
    """No setting of the run fits ``memory_budget``."""

    def __init__(self, message: str) -> None:
        super().__init__("memory_budget", message)


@dataclass(frozen=True)
class BudgetChoice:
    """What :func:`fit_memory_budget` chose: the config to build, its bytes and the sentence saying why."""

    config: TrainConfig
    changes: dict[str, Any]
    state_bytes: int
    reason: str


def state_bytes_of(cfg: TrainConfig, n_inputs: int, n_outputs: int) -> int:
    """The train-state bytes of ``cfg``'s rule on its network, reset for ``cfg.batch_size`` (online rules)."""
    from .factories import build_network, build_rule

    rule = build_rule(cfg, build_network(cfg, n_inputs, n_outputs))
    if not rule.capabilities.online:
        raise MemoryBudgetError(f"memory_budget applies to the online rules (their state does not grow with T), "
                                f"not to rule {cfg.rule!r}")
    rule.reset(cfg.batch_size)
    return int(rule.train_state_bytes())


def _cheaper(cfg: TrainConfig, changes: dict[str, Any]) -> bool:
    """Whether ``changes`` only make ``cfg`` cheaper (and apply to its rule)."""
    for name, value in changes.items():
        if name in ("credit", "trace_dtype") and not takes_option(cfg.rule, name):
            return False
        if name == "credit" and CREDIT_MODES.index(value) >= CREDIT_MODES.index(rule_credit(cfg)):
            return False
        if name == "trace_dtype" and cfg.trace_dtype in TRACE_DTYPES:  # the user chose the storage
            return False
        if name == "filter_granularity" and (FILTER_GRANULARITIES.index(value)  # fewest α, β first
                                             >= FILTER_GRANULARITIES.index(cfg.filter_granularity)):
            return False
    return True


def fit_memory_budget(cfg: TrainConfig, n_inputs: int, n_outputs: int) -> BudgetChoice:
    """The first rung of :data:`LADDER` whose train state fits ``cfg.memory_budget`` bytes.

    Raises:
        MemoryBudgetError: no rung fits (the message gives the smallest state found), or the rule is not online.
    """
    budget = cfg.memory_budget
    if budget is None:
        raise MemoryBudgetError("memory_budget is not set")
    if cfg.trace_dtype == "auto":  # most exact first: full storage is rung 1, float16 the precision rung
        cfg = cfg.replace(trace_dtype="full")
    tried = []
    for changes in LADDER:
        if changes and not _cheaper(cfg, changes):
            continue
        candidate = cfg.replace(**changes)
        size = state_bytes_of(candidate, n_inputs, n_outputs)
        tried.append((size, changes))
        if size <= budget:
            what = ", ".join(f"{k} {v}" for k, v in changes.items()) or "the run as configured"
            why = (f"memory_budget {budget} bytes: {what} holds {size} bytes of train state"
                   + (f" (the more exact settings hold {', '.join(str(s) for s, _ in tried[:-1])})"
                      if len(tried) > 1 else ""))
            return BudgetChoice(candidate, dict(changes), size, why)
    smallest, changes = min(tried, key=lambda item: item[0])
    setting = ", ".join(f"{k} {v}" for k, v in changes.items()) or "the run as configured"
    raise MemoryBudgetError(f"memory_budget {budget} bytes: no setting fits; the smallest train state is "
                            f"{smallest} bytes ({setting}, batch_size {cfg.batch_size}); raise memory_budget or "
                            "lower batch_size or hidden")
