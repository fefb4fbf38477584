"""The default rule's memory against BPTT: per suite task, and the storage candidates (``solsa bench memory``).

* :func:`suite_ratios` — for every task of a ``solsa compare`` suite, the train-state bytes of the default
  ``solsa train`` rule (with the suite's per-task options) beside BPTT's on the same network, batch and the
  task's padded length ``T`` (exact accounting, :meth:`LearningRule.train_state_bytes`).
* :func:`storage_candidates` — ways to hold SOLSA's train state in fewer bytes on the paper network: bytes,
  seconds per sequence, and the gradient against the float64 reference path of the same model (cosine,
  largest error relative to the largest entry).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch

from .common import NetSpec, build_learner, make_batch, train_one_sequence

__all__ = ["suite_ratios", "storage_candidates", "CANDIDATES"]

# name -> (NetSpec options, rule or RULE@BACKEND)
CANDIDATES: dict[str, tuple[dict[str, Any], str]] = {
    "per channel": ({"trace_dtype": "full"}, "solsa"),
    "per-layer α, β": ({"filter_granularity": "layer", "trace_dtype": "full"}, "solsa"),
    "first layer per channel (the default before)": ({"filter_granularity": "first", "trace_dtype": "full"}, "solsa"),
    "float16 traces": ({"trace_dtype": "float16"}, "solsa"),
    "float16 traces, reference path": ({"trace_dtype": "float16"}, "solsa@reference"),
    "bfloat16 traces": ({"trace_dtype": "bfloat16"}, "solsa"),
    "first layer per channel + float16 (the default: trace_dtype auto)": ({"filter_granularity": "first"}, "solsa"),
    "per-layer + float16": ({"filter_granularity": "layer", "trace_dtype": "float16"}, "solsa"),
    "per-layer + bfloat16": ({"filter_granularity": "layer", "trace_dtype": "bfloat16"}, "solsa"),
    "same-step credit": ({"credit": "same-step", "trace_dtype": "full"}, "solsa"),
}


def _bptt_and_rule_bytes(cfg, n_in: int, n_out: int, T: int) -> tuple[int, int]:
    from .. import factories

    out = []
    for rule in (cfg.rule, "bptt"):
        c = cfg.replace(rule=rule, credit=None, trace_dtype=None) if rule == "bptt" else cfg
        torch.manual_seed(0)
        learner = factories.build_learner(c, factories.build_network(c, n_in, n_out))
        x = torch.randn(T, c.batch_size, n_in, dtype=getattr(torch, c.dtype))
        train_one_sequence(learner, x, torch.zeros(c.batch_size, dtype=torch.long))
        out.append(int(learner.rule.train_state_bytes()))
    return out[0], out[1]


def suite_ratios(suite: str = "paper", log: Callable[[str], None] = lambda s: None,
                 options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Per task of ``suite``: the default rule's train-state bytes, BPTT's, and their ratio.

    ``options`` replace the suite's and the defaults (e.g. ``{"trace_dtype": "float16"}``); BPTT keeps the
    network's options (its filter granularity too) but not SOLSA's ``credit`` and ``trace_dtype``."""
    from ..compare import SUITES
    from ..config import TrainConfig
    from ..evaluation import load_task_of

    rows = []
    for task, settings in SUITES[suite].items():
        cfg = TrainConfig(**{"task": task, **settings, **(options or {})})
        data = load_task_of(cfg)
        T = data.train.steps
        mine, bptt = _bptt_and_rule_bytes(cfg, data.n_inputs, data.n_classes, T)
        row = {"task": task, "T": T, "batch": cfg.batch_size, "filter_granularity": cfg.filter_granularity,
               "n_inputs": data.n_inputs, "n_classes": data.n_classes, "hidden": list(cfg.hidden),
               "solsa_bytes": mine, "bptt_bytes": bptt, "ratio_to_bptt": mine / bptt}
        log(f"suite {task:<24} T={T:<4} B={cfg.batch_size:<3} solsa {mine:>9} bptt {bptt:>9} "
            f"ratio {mine / bptt:.3f}")
        rows.append(row)
    return rows


def _flat_grad(net) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().double().flatten().clone() for n, p in net.named_parameters() if p.grad is not None}


def _gradient(name: str, spec: NetSpec, x, y, dtype, backend: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    learner = build_learner(name + (f"@{backend}" if backend else ""), spec, dtype=dtype)
    learner.optimizer.zero_grad(set_to_none=True)
    learner.rule.sequence(x.to(dtype), y)
    return _flat_grad(learner.rule.net), learner


def storage_candidates(T: int = 100, batch: int = 4, spec: NetSpec | None = None, repeats: int = 3,
                       names: Sequence[str] | None = None,
                       log: Callable[[str], None] = lambda s: None) -> list[dict[str, Any]]:
    """Bytes, seconds per sequence (median of ``repeats``, one thread) and gradient agreement of each candidate.

    The gradient is compared with the float64 reference path of the same model (same initial weights and
    data): ``cosine`` of the whole gradient, ``max_rel_error`` = max |g − g₆₄| / max |g₆₄| over parameters.
    """
    spec = spec or NetSpec(filter_granularity="channel")
    x, y, _ = make_batch(T, batch, spec)
    rows = []
    for name in names or CANDIDATES:
        options, rule = CANDIDATES[name]
        opts = dict(spec.options)
        gran = options.get("filter_granularity", spec.filter_granularity)
        opts.update({k: v for k, v in options.items() if k != "filter_granularity"})
        cspec = NetSpec(spec.inputs, spec.hidden, spec.classes, gran, spec.model, spec.readout, opts)
        ref_spec = NetSpec(spec.inputs, spec.hidden, spec.classes, gran, spec.model, spec.readout,
                           {k: v for k, v in opts.items() if k != "trace_dtype"})
        ref, _ = _gradient(rule.split("@")[0], ref_spec, x, y, torch.float64, "reference")
        got, learner = _gradient(rule, cspec, x, y, torch.float32)
        seconds = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            train_one_sequence(learner, x, y)
            seconds.append(time.perf_counter() - t0)
        a = torch.cat([ref[k] for k in ref])
        b = torch.cat([got[k] for k in ref])
        err = max(((got[k] - ref[k]).abs().max() / ref[k].abs().max().clamp_min(1e-30)).item() for k in ref)
        row = {"candidate": name, "options": options, "rule": rule, "T": T, "batch": batch,
               "train_state_bytes": int(learner.rule.train_state_bytes()),
               "backend": learner.rule.active_backend, "seconds_per_sequence": sorted(seconds)[len(seconds) // 2],
               "cosine_to_float64": float(torch.nn.functional.cosine_similarity(a, b, dim=0)),
               "max_rel_error_to_float64": err}
        log(f"candidate {name:<24} bytes {row['train_state_bytes']:>9} {row['backend']:<9} "
            f"{row['seconds_per_sequence']:.3f} s  cosine {row['cosine_to_float64']:.8f}  max rel err {err:.2e}")
        rows.append(row)
    return rows
