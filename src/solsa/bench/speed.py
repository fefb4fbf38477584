"""``solsa bench speed``: training throughput, streaming latency and seconds per epoch, per rule.

Three measurements, each with the rules interleaved inside every repeat (so a
slow moment of a shared machine hits every rule alike and the ratios hold):

* throughput — sample-steps per second training whole sequences (all steps,
  ``flush``, optimizer step) for each batch size and hidden width;
* streaming latency — the wall time of one ``rule.step`` call (learning: with
  a target) at batch 1, step by step; the rules take turns in blocks of steps.
  Sequences are flushed every ``stream_T`` steps outside the timed calls, so
  BPTT's backward pass is not in these numbers (see ``solsa bench workload``);
* seconds per training epoch on a task (default JapaneseVowels, the trainer's
  defaults: batch 8, hidden 100,100, update at the end of each sequence), on
  ``epoch_threads`` threads (default 1), evaluation excluded — what the
  trainer reports as ``epoch_seconds``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..io import save_figure
from .common import NetSpec, build_learner, machine_info, make_batch, summarize, train_one_sequence

__all__ = ["run_speed", "plot_speed", "TARGETS", "epoch_seconds"]

TARGETS = {"epoch_ratio_max": 0.8, "stream_step_median_us_max": 100.0, "epoch_seconds_ideal": 0.06}


def _throughput(rules, batches, hiddens, T, repeats, spec, log) -> list[dict[str, Any]]:
    rows = []
    for hidden in hiddens:
        hspec = NetSpec(spec.inputs, tuple(hidden), spec.classes, spec.filter_granularity, spec.model,
                        spec.readout, spec.options)
        for B in batches:
            x, y, _ = make_batch(T, B, hspec)
            built = {name: build_learner(name, hspec) for name in rules}
            samples: dict[str, list[float]] = {name: [] for name in rules}
            for rep in range(repeats + 1):  # repeat 0 warms up
                for name in rules:
                    t0 = time.perf_counter()
                    train_one_sequence(built[name], x, y)
                    seconds = time.perf_counter() - t0
                    if rep:
                        samples[name].append(B * T / seconds)
            for name in rules:
                s = summarize(samples[name])
                rows.append({"rule": name, "backend": built[name].rule.active_backend, "batch": B,
                             "hidden": list(hidden), "T": T, "sample_steps_per_second": s})
                log(f"throughput {name:<16} hidden {hidden} batch {B:<3} {s['median']:>12.0f} sample-steps/s")
            del built
    return rows


def _streaming(rules, hidden, steps, block, stream_T, spec, log) -> list[dict[str, Any]]:
    hspec = NetSpec(spec.inputs, tuple(hidden), spec.classes, spec.filter_granularity, spec.model,
                    spec.readout, spec.options)
    x, y, w = make_batch(stream_T, 1, hspec)
    built = {name: build_learner(name, hspec) for name in rules}
    samples: dict[str, list[float]] = {name: [] for name in rules}
    pos = dict.fromkeys(rules, 0)
    for learner in built.values():
        learner.rule.reset(1)

    def advance(name: str, record: bool) -> None:
        rule = built[name].rule
        t = pos[name]
        t0 = time.perf_counter()
        rule.step(x[t], y, w[t])
        elapsed = time.perf_counter() - t0
        if record:
            samples[name].append(elapsed)
        pos[name] = t + 1
        if pos[name] == stream_T:  # end of a sequence: update, untimed
            built[name].update()
            rule.reset(1)
            pos[name] = 0

    for name in rules:  # warm-up
        for _ in range(min(block, 50)):
            advance(name, False)
    done = 0
    while done < steps:
        n = min(block, steps - done)
        for name in rules:
            for _ in range(n):
                advance(name, True)
        done += n
    rows = []
    for name in rules:
        s = summarize([v * 1e6 for v in samples[name]])
        rows.append({"rule": name, "backend": built[name].rule.active_backend, "batch": 1, "hidden": list(hidden),
                     "step_us": s})
        log(f"streaming  {name:<16} median {s['median']:8.1f} us  (q25 {s['q25']:.1f}, q75 {s['q75']:.1f})")
    return rows


def epoch_seconds(rule_name: str, task, max_batches: int | None = None, seed: int = 0, **cfg_overrides):
    """A function that trains one epoch of ``task`` with the trainer's defaults and returns its seconds."""
    from ..config import TrainConfig
    from ..factories import build_learner as learner_of
    from ..factories import build_network
    from ..schedule import UpdateSchedule
    from ..tasks import iterate_batches

    base, _, backend = rule_name.partition("@")
    cfg = TrainConfig(rule=base, backend=backend or "auto", **cfg_overrides)
    torch.manual_seed(seed)
    learner = learner_of(cfg, build_network(cfg, task.n_inputs, task.n_classes))
    schedule = UpdateSchedule(cfg.schedule, cfg.search_period)
    gen = torch.Generator().manual_seed(seed)

    def one_epoch() -> float:
        t0 = time.perf_counter()
        for i, batch in enumerate(iterate_batches(task.train, cfg.batch_size, shuffle=True, generator=gen)):
            if max_batches is not None and i >= max_batches:
                break
            T = batch.x.shape[0]
            learner.sequence(batch.x, batch.y, batch.mask, points=schedule.points(T))
        return time.perf_counter() - t0

    return one_epoch, learner.rule


def _epochs(rules, task_spec, epochs, threads, max_batches, log) -> dict[str, Any]:
    from ..tasks import load_task

    task = load_task(task_spec, seed=0)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # the setting: batch 8, one α, β per layer (the paper's), whatever the trainer's defaults
        runners = {name: epoch_seconds(name, task, max_batches, batch_size=8, filter_granularity="layer")
                   for name in rules}
        samples: dict[str, list[float]] = {name: [] for name in rules}
        for rep in range(epochs + 1):  # epoch 0 warms up
            for name in rules:
                seconds = runners[name][0]()
                if rep:
                    samples[name].append(seconds)
    finally:
        torch.set_num_threads(before)
    rows = []
    for name in rules:
        s = summarize(samples[name])
        rows.append({"rule": name, "backend": runners[name][1].active_backend, "seconds_per_epoch": s})
        log(f"epoch      {name:<16} median {s['median']:.3f} s/epoch")
    return {"task": task.name, "threads": threads, "n_train": len(task.train), "max_batches": max_batches,
            "rows": rows}


def run_speed(
    rules: Sequence[str],
    batches: Sequence[int] = (1, 4, 32),
    hiddens: Sequence[Sequence[int]] = ((100, 100), (512, 512)),
    T: int = 30,
    repeats: int = 5,
    spec: NetSpec | None = None,
    stream_steps: int = 2000,
    stream_block: int = 100,
    stream_T: int = 100,
    stream_hidden: Sequence[int] = (100, 100),
    epoch_rules: Sequence[str] = ("solsa", "bptt", "solsa@reference"),
    epochs: int = 5,
    epoch_task: str | None = "uea:JapaneseVowels",
    epoch_threads: int = 1,
    epoch_batches: int | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Run the speed benchmark; returns the JSON-ready result (``throughput``, ``streaming``, ``epoch``)."""
    spec = spec or NetSpec()
    result: dict[str, Any] = {"benchmark": "speed"}
    result["throughput"] = _throughput(rules, batches, hiddens, T, repeats, spec, log)
    result["streaming"] = _streaming(rules, stream_hidden, stream_steps, stream_block, stream_T, spec, log)
    if epoch_task and epoch_rules:
        result["epoch"] = _epochs(epoch_rules, epoch_task, epochs, epoch_threads, epoch_batches, log)
    result["targets"] = _targets(result)
    result["config"] = {"rules": list(rules), "batches": list(batches), "hiddens": [list(h) for h in hiddens],
                        "T": T, "repeats": repeats, "net": spec.to_dict(), "threads": torch.get_num_threads(),
                        "stream_steps": stream_steps, "stream_block": stream_block, "stream_T": stream_T,
                        "stream_hidden": list(stream_hidden), "epoch_rules": list(epoch_rules), "epochs": epochs,
                        "epoch_task": epoch_task, "epoch_threads": epoch_threads, "epoch_batches": epoch_batches}
    result["machine"] = machine_info()
    return result


def _targets(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    epoch = {r["rule"]: r["seconds_per_epoch"]["median"] for r in result.get("epoch", {}).get("rows", [])}
    if "solsa" in epoch and "bptt" in epoch:
        ratio = epoch["solsa"] / epoch["bptt"]
        out.update(epoch_solsa_seconds=epoch["solsa"], epoch_bptt_seconds=epoch["bptt"], epoch_ratio=ratio,
                   epoch_ratio_target=TARGETS["epoch_ratio_max"], epoch_ratio_met=ratio <= TARGETS["epoch_ratio_max"],
                   epoch_ideal_seconds=TARGETS["epoch_seconds_ideal"],
                   epoch_ideal_met=epoch["solsa"] < TARGETS["epoch_seconds_ideal"])
        if "solsa@reference" in epoch:
            out["epoch_solsa_reference_seconds"] = epoch["solsa@reference"]
            out["epoch_speedup_over_reference"] = epoch["solsa@reference"] / epoch["solsa"]
    stream = {r["rule"]: r["step_us"]["median"] for r in result.get("streaming", [])}
    if "solsa" in stream:
        out.update(stream_solsa_median_us=stream["solsa"], stream_target_us=TARGETS["stream_step_median_us_max"],
                   stream_met=stream["solsa"] <= TARGETS["stream_step_median_us_max"])
    return out


def plot_speed(result: dict[str, Any], path: str | Path) -> Path:
    """Bars: throughput per rule and configuration (log scale), and streaming step latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["throughput"]
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    configs = list(dict.fromkeys((tuple(r["hidden"]), r["batch"]) for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / max(len(rules), 1)
    for i, rule in enumerate(rules):
        vals = []
        for hidden, batch in configs:
            match = [r for r in rows if r["rule"] == rule and tuple(r["hidden"]) == hidden and r["batch"] == batch]
            vals.append(match[0]["sample_steps_per_second"]["median"] if match else 0)
        axes[0].bar([c + i * width for c in range(len(configs))], vals, width, label=rule, color=f"C{i}")
    axes[0].set_xticks([c + 0.4 - width / 2 for c in range(len(configs))])
    axes[0].set_xticklabels([f"h={'x'.join(map(str, h))}\nB={b}" for h, b in configs], fontsize=8)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("sample-steps / s (median)")
    axes[0].set_title("training throughput")
    axes[0].legend(fontsize=7)
    stream = result.get("streaming", [])
    axes[1].bar(range(len(stream)), [r["step_us"]["median"] for r in stream],
                yerr=[[r["step_us"]["median"] - r["step_us"]["q25"] for r in stream],
                      [r["step_us"]["q75"] - r["step_us"]["median"] for r in stream]],
                color=[f"C{rules.index(r['rule']) if r['rule'] in rules else 0}" for r in stream])
    axes[1].set_xticks(range(len(stream)))
    axes[1].set_xticklabels([r["rule"] for r in stream], rotation=45, ha="right", fontsize=8)
    axes[1].axhline(TARGETS["stream_step_median_us_max"], color="k", ls="--", lw=0.8)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("µs per rule.step (batch 1; median, IQR)")
    axes[1].set_title("streaming latency")
    for ax in axes:
        ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    return Path(path)
