"""``solsa bench peers``: milliseconds per training batch beside a compiled peer library (braintrace).

The table of issue 20: JapaneseVowels, batch 8, the paper network 12-100-100-9,
one thread, the same batches for every row. solsa's rows are BPTT, SOLSA with
its default credit (``cascade``) and SOLSA ``same-step``; when braintrace (an
optional extra: ``pip install 'solsa[peers]'``) is installed, its BPTT, its
factorised ES-D-RTRL and its exact diagonal D-RTRL on a LIF network with
exponential synapses of the same sizes (:mod:`solsa.bench.peers_braintrace`).

Every row trains the same batches of one epoch (sequence length = the batch's
longest sample, as the trainer cuts them); epoch 0 warms up (for the peer it
compiles one program per distinct length), then ``repeats`` epochs are timed
with the rows interleaved, so a slow moment of a shared machine hits all rows
alike. A row's figure is the median over the timed epochs of seconds ÷ batches.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch

from .common import machine_info, summarize

__all__ = ["SOLSA_ROWS", "COMPILED_ROW", "PEER_ROWS", "RATIOS", "PEER_INSTALL", "peer_available", "run_peers", "peers_markdown"]

# label -> (rule, options of TrainConfig, whether to step one call per time step even where the rule has a
# whole-sequence path, whether to apply the update). "solsa bptt" is the trainer's default (backend auto: the
# compiled scan); "reference" is the PyTorch whole-sequence path it replaced and "per-step" the loop before that,
# timed in the same run ("solsa cascade per-step": SOLSA one kernel call per step, as before its
# whole-sequence call); "gradients" computes the batch's gradients and applies nothing, as the peer rows do.
SOLSA_ROWS: dict[str, tuple[str, dict[str, Any], bool, bool]] = {
    "solsa bptt": ("bptt", {}, False, True),
    "solsa bptt gradients": ("bptt", {}, False, False),
    "solsa bptt reference": ("bptt", {"backend": "reference"}, False, True),
    "solsa bptt per-step": ("bptt", {"backend": "reference"}, True, True),
    "solsa cascade": ("solsa", {}, False, True),
    "solsa cascade per-step": ("solsa", {}, True, True),
    "solsa same-step": ("solsa", {"credit": "same-step"}, False, True),
}
# asked for with compiled=True (--compiled): each sequence length and layer shape compiles first (warm-up epoch)
COMPILED_ROW = ("solsa bptt compiled", ("bptt", {"backend": "compiled"}, False, True))
PEER_ROWS = ("braintrace bptt", "braintrace es-d-rtrl", "braintrace d-rtrl")
# (solsa row, peer row, the target on solsa ÷ peer: at most when > 0, at least 1/x faster when < 0)
RATIOS = (
    ("solsa bptt", "braintrace bptt", 2.0),
    ("solsa bptt gradients", "braintrace bptt", 2.0),  # like for like: gradients of the batch, no update
    ("solsa cascade", "braintrace es-d-rtrl", 1.5),
    ("solsa same-step", "braintrace es-d-rtrl", 1.0),
    ("solsa cascade", "braintrace d-rtrl", 0.2),
    ("solsa bptt", "solsa bptt reference", 1.0),  # the compiled scan against the PyTorch whole-sequence path
    ("solsa bptt reference", "solsa bptt per-step", 1.0),  # the whole-sequence path against the per-step one
    ("solsa cascade", "solsa cascade per-step", 1.0),  # SOLSA's fused kernel: one call per batch against one per step
    ("solsa bptt compiled", "braintrace bptt", 2.0),
    ("solsa bptt compiled", "solsa bptt", 1.0),
)
PEER_INSTALL = "braintrace is not installed: pip install 'solsa[peers]' (or pip install braintrace) adds its rows"


def peer_available() -> bool:
    """Whether braintrace can be imported."""
    import importlib.util

    return importlib.util.find_spec("braintrace") is not None


def _solsa_runner(rule: str, options: dict[str, Any], per_step: bool, update: bool, batches, hidden,
                  n_classes: int, seed: int):
    """An epoch function over ``batches`` for one solsa row, and the rule (its active backend is reported).
    ``update`` False: the learner has no optimizer (the gradients are computed, nothing is applied)."""
    from ..config import TrainConfig
    from ..factories import build_learner, build_network
    from ..learner import Learner

    cfg = TrainConfig(rule=rule, hidden=hidden, batch_size=batches[0].x.shape[1], filter_granularity="layer",
                      **options)
    torch.manual_seed(seed)
    learner = build_learner(cfg, build_network(cfg, batches[0].x.shape[2], n_classes))
    if not update:
        learner = Learner(learner.rule, None)

    on_step = (lambda t: None) if per_step else None  # asking for each step keeps the per-step loop

    def epoch() -> None:
        for b in batches:
            learner.sequence(b.x, b.y, b.mask, keep_outputs=False, on_step=on_step)

    return epoch, learner.rule


def run_peers(
    task_spec: str = "uea:JapaneseVowels",
    batch_size: int = 8,
    hidden: Sequence[int] = (100, 100),
    repeats: int = 5,
    max_batches: int | None = None,
    peer: bool = True,
    compiled: bool = False,
    seed: int = 0,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Time one epoch of every row (ms per batch, median over ``repeats``); returns the JSON-ready result.

    ``compiled`` adds BPTT's ``backend="compiled"`` row (its compile time is in the warm-up, ``warmup_seconds``).
    Runs on one torch thread; the peer (when ``peer`` and braintrace is installed) on one XLA thread
    (:func:`solsa.bench.peers_braintrace.single_thread_jax` must run before jax is imported).
    """
    from ..tasks import iterate_batches, load_task

    task = load_task(task_spec, seed=0)
    batches = list(iterate_batches(task.train, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)))
    if max_batches is not None:
        batches = batches[:max_batches]
    n_classes = task.n_classes
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runners: dict[str, Callable[[], None]] = {}
        rules: dict[str, Any] = {}
        rows_asked = {**SOLSA_ROWS, **dict([COMPILED_ROW] if compiled else [])}
        for label, (rule, options, per_step, update) in rows_asked.items():
            runners[label], rules[label] = _solsa_runner(rule, options, per_step, update, batches, tuple(hidden),
                                                         n_classes, seed)
        peer_note = ""
        if peer and peer_available():
            from .peers_braintrace import peer_runners

            runners.update(peer_runners(batches, task.n_inputs, tuple(hidden), n_classes, seed, log))
        elif peer:
            peer_note = PEER_INSTALL
        samples: dict[str, list[float]] = {label: [] for label in runners}
        warmup: dict[str, float] = {}
        for rep in range(repeats + 1):  # epoch 0 warms up (and compiles the peer)
            for label, run in runners.items():
                t0 = time.perf_counter()
                run()
                seconds = time.perf_counter() - t0
                if rep:
                    samples[label].append(seconds * 1e3 / len(batches))
                else:
                    warmup[label] = seconds
                    log(f"warm-up {label:<22} {seconds:.2f} s")
    finally:
        torch.set_num_threads(before)
    rows = []
    for label, values in samples.items():
        s = summarize(values)
        built = rules.get(label)
        rows.append({"row": label, "ms_per_batch": s, "warmup_seconds": warmup[label],
                     "backend": built.active_backend if built is not None else "jax",
                     "backend_note": built.fallback_reason if built is not None else ""})
        log(f"{label:<22} median {s['median']:8.2f} ms/batch")
    medians = {r["row"]: r["ms_per_batch"]["median"] for r in rows}
    ratios = []
    for mine, theirs, target in RATIOS:  # a row missing (no peer) drops its ratios
        if mine in medians and theirs in medians:
            ratio = medians[mine] / medians[theirs]
            ratios.append({"solsa": mine, "peer": theirs, "ratio": ratio, "target_max": target,
                           "met": ratio <= target})
    return {"benchmark": "peers", "task": task.name, "batch_size": batch_size, "hidden": list(hidden),
            "n_batches": len(batches), "steps_per_epoch": sum(int(b.x.shape[0]) for b in batches),
            "repeats": repeats, "threads": 1, "rows": rows, "ratios": ratios, "peer_note": peer_note,
            "machine": _machine()}


def _machine() -> dict[str, Any]:
    import os

    info = machine_info()
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    if peer_available():
        from importlib.metadata import version

        for pkg in ("braintrace", "brainstate", "jax"):
            try:
                info[pkg] = version(pkg)
            except Exception:  # noqa: BLE001 - a version is informative only
                info[pkg] = None
    return info


def peers_markdown(result: dict[str, Any]) -> str:
    """The result as markdown: ms per batch of every row, then solsa ÷ peer with the issue's targets."""
    lines = [f"{result['task']}, batch {result['batch_size']}, network {result['hidden']}, one thread, "
             f"{result['n_batches']} batches per epoch, median of {result['repeats']} epochs "
             f"(load average {result['machine'].get('load_average', '?')})", "",
             "| row | ms per batch (median) | q25 | q75 |", "|---|---|---|---|"]
    for r in result["rows"]:
        s = r["ms_per_batch"]
        lines.append(f"| {r['row']} | {s['median']:.2f} | {s['q25']:.2f} | {s['q75']:.2f} |")
    if result["ratios"]:
        lines += ["", "| A ÷ B | ratio | target | met |", "|---|---|---|---|"]
        for c in result["ratios"]:
            lines.append(f"| {c['solsa']} ÷ {c['peer']} | {c['ratio']:.2f} | ≤ {c['target_max']} | "
                         f"{'yes' if c['met'] else 'no'} |")
    if result["peer_note"]:
        lines += ["", result["peer_note"]]
    return "\n".join(lines) + "\n"
