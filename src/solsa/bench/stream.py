"""``solsa bench stream`` and ``solsa bench longrun``: the stream learner's cost per step, and a long run.

* **facade** (``run_facade``): the time per step of :class:`~solsa.stream.StreamClassifier` against the
  rule's own step, on the same network (batch 1), in one run: the rule alone (``rule.step`` with a
  target, :meth:`Learner.update` every ``update_every`` steps), ``learn_one`` on a tensor, ``learn_one``
  on a dict of floats, and river's predict-then-learn loop (``predict_one`` + ``learn_one`` on a dict).
  The modes take turns in blocks of steps (a slow moment of a shared machine hits all alike); each
  block's time per step is one sample, the median is reported.
* **long run** (``run_longrun``): one endless segment of ``steps`` steps (no reset, ever) through
  ``learn_one``: steps per second, resident memory (RSS) at the start, at the end and at its largest,
  the largest |trace| and |parameter| seen, and whether any trace, parameter or output went NaN/inf;
  sampled ``samples`` times along the way. The stream: a label held for ``segment`` steps at a time,
  each class a fixed random prototype plus noise.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..io import save_figure
from ..stream import StreamClassifier, trace_tensors
from .common import NetSpec, build_learner, machine_info, summarize

__all__ = ["run_facade", "run_longrun", "plot_facade", "plot_longrun", "FACADE_MODES", "TARGET_RATIO"]

FACADE_MODES = ("rule", "learn_one(tensor)", "learn_one(dict)", "predict_one+learn_one(dict)")
TARGET_RATIO = 2.0  # the bound: facade step / rule step


def _classifier(spec: NetSpec, update_every: int | None, seed: int = 0) -> StreamClassifier:
    learner = build_learner("solsa", spec, seed=seed)
    return StreamClassifier(learner.rule.net, learner.rule, optimizer=learner.optimizer, update_every=update_every,
                            classes=list(range(spec.classes)))


def run_facade(spec: NetSpec | None = None, *, update_every: int | None = 10, block: int = 100, repeats: int = 30,
               log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Time per step of each of :data:`FACADE_MODES` (see the module docstring); returns the JSON-ready result."""
    spec = spec or NetSpec()
    gen = torch.Generator().manual_seed(0)
    n = block
    xs = torch.randn(n, spec.inputs, generator=gen)
    labels = torch.randint(0, spec.classes, (n,), generator=gen).tolist()
    dicts = [{f"x{i}": float(v) for i, v in enumerate(row)} for row in xs]
    rows = [x.reshape(1, -1).contiguous() for x in xs]
    targets = [torch.tensor([y]) for y in labels]
    clfs = {mode: _classifier(spec, update_every) for mode in FACADE_MODES}
    rule_clf = clfs["rule"]
    learner, since = rule_clf.learner, [0]

    def rule_block() -> None:
        step = learner.rule.step
        for t in range(n):
            step(rows[t], targets[t])
            since[0] += 1
            if update_every is not None and since[0] >= update_every:
                learner.update()
                since[0] = 0

    def tensor_block() -> None:
        learn = clfs["learn_one(tensor)"].learn_one
        for t in range(n):
            learn(xs[t], labels[t])

    def dict_block() -> None:
        learn = clfs["learn_one(dict)"].learn_one
        for t in range(n):
            learn(dicts[t], labels[t])

    def river_block() -> None:
        clf = clfs["predict_one+learn_one(dict)"]
        predict, learn = clf.predict_one, clf.learn_one
        for t in range(n):
            predict(dicts[t])
            learn(dicts[t], labels[t])

    blocks = dict(zip(FACADE_MODES, (rule_block, tensor_block, dict_block, river_block)))
    samples: dict[str, list[float]] = {mode: [] for mode in FACADE_MODES}
    for rep in range(repeats + 1):  # repeat 0 warms up
        for mode, run in blocks.items():
            t0 = time.perf_counter()
            run()
            if rep:
                samples[mode].append((time.perf_counter() - t0) / n * 1e6)
    result_rows = []
    rule_us = summarize(samples["rule"])["median"]
    for mode in FACADE_MODES:
        s = summarize(samples[mode])
        result_rows.append({"mode": mode, "step_us": s, "ratio_to_rule": s["median"] / rule_us})
        log(f"{mode:<30} median {s['median']:8.1f} us/step  ({s['median'] / rule_us:.2f}x the rule's step)")
    learn_ratio = summarize(samples["learn_one(dict)"])["median"] / rule_us
    return {
        "benchmark": "stream-facade",
        "rows": result_rows,
        "targets": {"facade_ratio": learn_ratio, "facade_ratio_target": TARGET_RATIO,
                    "facade_ratio_met": learn_ratio <= TARGET_RATIO,
                    "river_loop_ratio": summarize(samples["predict_one+learn_one(dict)"])["median"] / rule_us},
        "config": {"net": spec.to_dict(), "batch": 1, "update_every": update_every, "block": block,
                   "repeats": repeats, "backend": rule_clf.rule.active_backend, "threads": torch.get_num_threads()},
        "machine": machine_info(),
    }


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _largest(tensors) -> tuple[float, bool]:
    """(max |value|, all finite) over tensors (None skipped)."""
    top, finite = 0.0, True
    for t in tensors:
        if t is None or not t.numel():
            continue
        t = t.detach()
        finite = finite and bool(torch.isfinite(t).all())
        top = max(top, float(t.abs().max()))
    return top, finite


def run_longrun(steps: int = 1_000_000, spec: NetSpec | None = None, *, update_every: int | None = 10,
                segment: int = 50, samples: int = 100, seed: int = 0,
                log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """One endless segment of ``steps`` steps through ``learn_one`` (see the module docstring)."""
    spec = spec or NetSpec()
    clf = _classifier(spec, update_every, seed)
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(spec.classes, spec.inputs, generator=gen)
    chunk = max(segment, 10_000 // segment * segment)
    every = max(1, steps // samples)
    series: list[dict[str, Any]] = []
    rss_start = _rss_bytes()
    all_finite, max_trace, max_param = True, 0.0, 0.0
    t0 = time.perf_counter()
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        labels = torch.randint(0, spec.classes, (math.ceil(n / segment),), generator=gen).repeat_interleave(segment)[:n]
        xs = prototypes[labels] + 0.5 * torch.randn(n, spec.inputs, generator=gen)
        ys = labels.tolist()
        learn = clf.learn_one
        for t in range(n):
            learn(xs[t], ys[t])
            if (done + t + 1) % every == 0:
                trace, ok_t = _largest([t for tr in clf.rule.traces for t in trace_tensors(tr).values()])
                param, ok_p = _largest(list(clf.net.parameters()))
                ok_p = ok_p and bool(torch.isfinite(clf._score).all())  # the segment's summed output
                all_finite = all_finite and ok_t and ok_p
                max_trace, max_param = max(max_trace, trace), max(max_param, param)
                seconds = time.perf_counter() - t0
                series.append({"step": done + t + 1, "seconds": seconds, "rss_bytes": _rss_bytes(),
                               "max_abs_trace": trace, "max_abs_param": param, "finite": ok_t and ok_p})
                if len(series) % 10 == 0:
                    log(f"step {done + t + 1:>10,}  {(done + t + 1) / seconds:8.0f} steps/s  "
                        f"RSS {series[-1]['rss_bytes'] / 2**20:7.1f} MiB  max|trace| {trace:.3g}")
        done += n
    seconds = time.perf_counter() - t0
    rss = [r["rss_bytes"] for r in series] or [_rss_bytes()]
    return {
        "benchmark": "stream-longrun",
        "steps": steps,
        "seconds": seconds,
        "steps_per_second": steps / seconds,
        "rss_start_bytes": rss_start,
        "rss_end_bytes": _rss_bytes(),
        "rss_max_bytes": max(rss),
        "rss_growth_after_first_sample_bytes": rss[-1] - rss[0],
        "max_abs_trace": max_trace,
        "max_abs_param": max_param,
        "all_finite": all_finite,
        "updates": clf.updates,
        "train_state_bytes": clf.rule.train_state_bytes(),
        "series": series,
        "config": {"net": spec.to_dict(), "batch": 1, "update_every": update_every, "segment": segment,
                   "resets": 0, "backend": clf.rule.active_backend, "threads": torch.get_num_threads(),
                   "seed": seed},
        "machine": machine_info(),
    }


def plot_facade(result: dict[str, Any], path: str | Path) -> Path:
    """Bars: µs per step of each mode, the rule's step and twice it marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(8, 4))
    med = [r["step_us"]["median"] for r in rows]
    ax.bar(range(len(rows)), med, yerr=[[m - r["step_us"]["q25"] for m, r in zip(med, rows)],
                                        [r["step_us"]["q75"] - m for m, r in zip(med, rows)]],
           color=[f"C{i}" for i in range(len(rows))])
    for i, r in enumerate(rows):
        ax.text(i, med[i], f"{r['ratio_to_rule']:.2f}x", ha="center", va="bottom", fontsize=8)
    ax.axhline(TARGET_RATIO * med[0], color="k", ls="--", lw=0.8, label=f"{TARGET_RATIO:g}x the rule's step")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["mode"] for r in rows], rotation=15, fontsize=8)
    cfg = result["config"]
    ax.set_ylabel("µs per step (median over blocks, IQR)")
    ax.set_title(f"stream learner vs rule step, batch 1, net {cfg['net']['inputs']}-"
                 f"{'-'.join(map(str, cfg['net']['hidden']))}-{cfg['net']['classes']}, update every "
                 f"{cfg['update_every']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)


def plot_longrun(result: dict[str, Any], path: str | Path) -> Path:
    """Steps/s, RSS and max |trace| along the long run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["series"]
    steps = [r["step"] for r in s]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(steps, [r["step"] / r["seconds"] for r in s])
    axes[0].set_ylabel("steps/s (cumulative)")
    axes[1].plot(steps, [r["rss_bytes"] / 2**20 for r in s])
    axes[1].set_ylabel("RSS (MiB)")
    axes[2].plot(steps, [r["max_abs_trace"] for r in s])
    axes[2].set_ylabel("max |trace| at the sample")
    for ax in axes:
        ax.set_xlabel("stream step")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{result['steps']:,} steps, one endless segment: {result['steps_per_second']:,.0f} steps/s, "
                 f"all finite: {result['all_finite']}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)
