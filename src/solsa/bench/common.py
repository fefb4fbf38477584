"""Shared pieces of the benchmarks: the benchmark network, rule variants, statistics, machine facts, output.

A rule is named as in :data:`solsa.rules.RULES`; ``NAME@BACKEND`` picks a
backend of a rule that has several (``solsa@reference`` is the plain PyTorch
SOLSA, ``solsa@fused`` the compiled kernel, plain ``solsa`` the default
``auto``).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

__all__ = [
    "NetSpec",
    "default_rules",
    "parse_rules",
    "parse_ints",
    "build_learner",
    "make_batch",
    "train_one_sequence",
    "summarize",
    "machine_info",
    "write_result",
    "Timer",
]


@dataclass(frozen=True)
class NetSpec:
    """The benchmark network: the trainer's model (``solsa.factories.build_network``) at a given size.

    Defaults are the paper's network: 12 inputs, two hidden layers of 100, 9 classes.
    """

    inputs: int = 12
    hidden: tuple[int, ...] = (100, 100)
    classes: int = 9
    filter_granularity: str = "layer"
    model: str = "full"
    readout: str | None = None  # None: the trainer's default
    options: dict[str, Any] = field(default_factory=dict)

    def config(self, rule: str):
        """The :class:`~solsa.config.TrainConfig` that builds this network for ``rule`` (``NAME@BACKEND``)."""
        from ..config import TrainConfig

        extra = dict(self.options)
        if self.readout is not None:
            extra["readout"] = self.readout
        name, _, backend = rule.partition("@")
        return TrainConfig(rule=name, hidden=self.hidden, filter_granularity=self.filter_granularity,
                           model=self.model, backend=backend or "auto", **extra)

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "hidden": list(self.hidden), "classes": self.classes,
                "filter_granularity": self.filter_granularity, "model": self.model,
                "readout": self.config("bptt").readout, "options": dict(self.options)}


def default_rules() -> list[str]:
    """Every rule in the registry except the ablations (looked up at run time)."""
    from ..rules import RULES

    return [name for name, spec in RULES.items() if not spec.ablation]


def parse_rules(text: str | None, extra: Sequence[str] = ()) -> list[str]:
    """``"solsa,bptt"`` -> names (validated); ``None``/``"all"`` -> :func:`default_rules` plus ``extra``."""
    from ..rules import get_rule

    if text is None or text.strip() in ("", "all"):
        names = default_rules() + [e for e in extra if e.split("@")[0] in default_rules()]
    else:
        names = [r.strip() for r in text.split(",") if r.strip()]
    for name in names:
        base, _, backend = name.partition("@")
        get_rule(base)  # ValueError listing the valid names
        if backend and backend not in _backends(base):
            raise ValueError(f"rule {base!r} has no backend {backend!r}; valid: {_backends(base) or 'none'}")
    return list(dict.fromkeys(names))


def _backends(rule: str) -> tuple[str, ...]:
    from ..rules import get_rule

    return get_rule(rule).cls.capabilities.backends


def parse_ints(text: str | Iterable[int], name: str) -> list[int]:
    """``"30,100"`` -> ``[30, 100]``, each a positive integer."""
    from ..validation import OptionError, check_positive_int

    if not isinstance(text, str):
        return [check_positive_int(name, v) for v in text]
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
        if not values:
            raise ValueError
        return [check_positive_int(name, v) for v in values]
    except ValueError:
        raise OptionError(name, f"{name} must be comma-separated positive integers, got {text!r}") from None


def build_learner(name: str, spec: NetSpec, seed: int = 0, dtype: torch.dtype = torch.float32):
    """The :class:`~solsa.learner.Learner` (rule and optimizer) of rule ``name`` (``NAME@BACKEND`` allowed)
    on the network ``spec``, built by the trainer's factories."""
    from .. import factories

    cfg = spec.config(name)
    torch.manual_seed(seed)
    return factories.build_learner(cfg, factories.build_network(cfg, spec.inputs, spec.classes).to(dtype))


def make_batch(T: int, batch: int, spec: NetSpec, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random sequence ``x [T, B, N_in]`` (a real-valued signal, as in the UEA tasks), labels ``[B]``
    and the per-step sample weights ``[T, B]`` of the trainer."""
    from ..rules import sequence_weights

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, batch, spec.inputs, generator=gen)
    y = torch.randint(0, spec.classes, (batch,), generator=gen)
    return x, y, sequence_weights(torch.ones(T, batch))


def train_one_sequence(learner, x: torch.Tensor, y: torch.Tensor,
                       on_step: Callable[[int], None] | None = None) -> float:
    """Train one sequence (all steps, one update at the end); keeps no outputs. Returns the loss."""
    return float(learner.sequence(x, y, on_step=on_step, keep_outputs=False).loss)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, min, max and count of repeated measurements."""
    v = sorted(values)
    if not v:
        return {"median": float("nan"), "q25": float("nan"), "q75": float("nan"), "min": float("nan"),
                "max": float("nan"), "n": 0}
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return {"median": statistics.median(v), "q25": q[0], "q75": q[2], "min": v[0], "max": v[-1], "n": len(v)}


def machine_info() -> dict[str, Any]:
    """The facts a benchmark result needs: CPU, cores, threads, versions, backend availability."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from ..fast import fused_available, fused_unavailable_reason

    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "fused_kernel": fused_available(),
        "fused_kernel_note": fused_unavailable_reason(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write_result(path: str | Path, result: dict[str, Any]) -> Path:
    """Write the JSON result atomically (parent folders created)."""
    from ..io import write_json

    path = Path(path)
    write_json(path, result)
    return path


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
