"""The epoch loop: train one run end to end, with the three enhancements of SOLSA.md §4.

- scheduled weight update (:class:`~solsa.schedule.UpdateSchedule`),
- early stop training (:class:`~solsa.early_stop.EarlyStop`),
- adaptive synapse filter (α, β learned through their traces, clamped after each update).

:func:`train` runs a :class:`~solsa.config.TrainConfig`; each batch goes through
the one learner loop (:class:`~solsa.learner.Learner`); the epoch is chosen on
validation (:mod:`solsa.evaluation`); given an output folder the run files are
written by :mod:`solsa.runs`.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .config import TrainConfig
from .early_stop import EarlyStop
from .evaluation import evaluate, load_task_of
from .factories import build_learner, build_network
from .layers import SNN
from .progress import Progress
from .runs import filter_summary, prepare_out_dir, write_run
from .schedule import UpdateSchedule
from .tasks import Task, iterate_batches

__all__ = ["train"]


def _alpha_stats(net: SNN) -> dict[str, float]:
    a = torch.cat([layer.alpha.detach().flatten() for layer in net.layers])
    b = torch.cat([layer.beta.detach().flatten() for layer in net.layers])
    return {"alpha_mean": a.mean().item(), "alpha_min": a.min().item(), "alpha_max": a.max().item(),
            "beta_mean": b.mean().item()}


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train(
    cfg: TrainConfig,
    out: str | Path | None = None,
    *,
    force: bool = False,
    progress: bool = True,
    task: Task | None = None,
    log: Callable[[str], None] | None = _stderr,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train one run; returns the metrics dict (also written to ``out/metrics.json`` if ``out``).

    ``log`` receives one-line notices (e.g. that the rule fell back to its reference backend, and why);
    None silences them. ``on_epoch(epoch, row)`` is called after each epoch with its ``history.csv`` row;
    an exception it raises stops the run (``solsa tune`` prunes poor trials this way) and nothing is written.
    """
    out_dir = prepare_out_dir(out, force) if out is not None else None
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, out_dir, progress, task, log or (lambda message: None), on_epoch)
    finally:
        torch.set_num_threads(threads)  # leave the caller's setting as it was


def _train(cfg: TrainConfig, out_dir: Path | None, progress: bool, task: Task | None,
           log: Callable[[str], None], on_epoch: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    if task is None:
        task = load_task_of(cfg)
    if task.kind == "generation" and cfg.readout != "spike":
        raise ValueError(f"task {task.name} generates spike trains: it needs readout 'spike'")
    device = torch.device(cfg.device)
    net = build_network(cfg, task.n_inputs, task.n_classes).to(device)
    learner = build_learner(cfg, net)
    rule = learner.rule
    schedule = UpdateSchedule(cfg.schedule, cfg.search_period)
    if schedule.mode == "search" and not rule.capabilities.step_magnitude:
        raise ValueError(f"schedule {cfg.schedule!r} ranks steps by their gradient, which rule {cfg.rule!r} "
                         "does not report per step; use 'end' or 'every:K'")
    rule.reset(min(cfg.batch_size, len(task.train)))  # settles the backend before the first batch
    if rule.fallback_reason:
        log(f"solsa: rule {cfg.rule!r} falls back to its {rule.active_backend} backend (slower): {rule.fallback_reason}")
    early = EarlyStop(cfg.early_stop_rho, cfg.early_stop_p, cfg.early_stop_h) if cfg.early_stop else None
    gen = torch.Generator().manual_seed(cfg.seed)
    n_batches = math.ceil(len(task.train) / cfg.batch_size)

    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    state_bytes, total_updates, steps_done, steps_seen = 0, 0, 0, 0
    start = time.perf_counter()
    bar = Progress(cfg.epochs, n_batches, progress, f"{cfg.rule} on {task.name}")
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        net.train()
        epoch_loss, epoch_done, epoch_seen, epoch_updates, correct, count = 0.0, 0, 0, 0, 0, 0
        for batch in iterate_batches(task.train, cfg.batch_size, shuffle=True, generator=gen):
            x, y, mask = batch.x.to(device), batch.y.to(device), batch.mask.to(device)
            target = batch.target.to(device) if batch.target is not None else y
            T, B = x.shape[:2]
            stopper = early if (epoch > cfg.early_stop_warmup and task.kind != "generation") else None
            res = learner.sequence(x, target, mask, points=schedule.points(T), early_stop=stopper,
                                   on_magnitude=schedule.record if schedule.searching else None)
            epoch_loss += float(res.loss)
            epoch_updates += res.updates
            state_bytes = max(state_bytes, res.state_bytes)
            epoch_done += res.steps
            epoch_seen += T
            if task.kind != "generation":
                correct += (net.scores(res.outputs, mask[: res.steps]).argmax(-1) == y).sum().item()
                count += B
            bar.batch(epoch, epoch_loss, correct / count if count else None)
        schedule.end_epoch(epoch)
        total_updates += epoch_updates
        steps_done += epoch_done
        steps_seen += epoch_seen
        train_seconds = time.perf_counter() - t0
        net.eval()
        ev = {name: evaluate(net, split, cfg.loss_name, device=cfg.device)
              for name, split in (("train", task.train), ("val", task.val), ("test", task.test))}
        row = {
            "epoch": epoch,
            "loss": epoch_loss / n_batches,
            "online_train_accuracy": correct / count if count else float("nan"),
            "train_accuracy": ev["train"]["accuracy"],
            "val_accuracy": ev["val"]["accuracy"],
            "val_loss": ev["val"]["loss"],
            "test_accuracy": ev["test"]["accuracy"],
            "steps_processed_fraction": epoch_done / epoch_seen,
            "update_steps": epoch_updates,
            "epoch_seconds": train_seconds,
            **_alpha_stats(net),
        }
        if "van_rossum" in ev["test"]:
            row["val_van_rossum"] = ev["val"]["van_rossum"]
            row["test_van_rossum"] = ev["test"]["van_rossum"]
        history.append(row)
        bar.epoch(epoch, row["loss"], row["val_accuracy"])
        if on_epoch is not None:
            on_epoch(epoch, row)
        # model selection on validation only: best accuracy, ties to the lower validation loss
        key = (row["val_accuracy"], -row["val_loss"])
        if best is None or key > best["key"]:
            best = {"key": key, "row": row, "state": copy.deepcopy(net.state_dict())}
    bar.close()
    wall = time.perf_counter() - start

    chosen = best["row"]
    net.load_state_dict(best["state"])
    metrics = {
        "task": task.name,
        "rule": cfg.rule,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "best_epoch": chosen["epoch"],
        "train_accuracy": chosen["train_accuracy"],
        "val_accuracy": chosen["val_accuracy"],
        "val_loss": chosen["val_loss"],
        "test_accuracy": chosen["test_accuracy"],
        "best_test_accuracy": max(r["test_accuracy"] for r in history),
        "final_test_accuracy": history[-1]["test_accuracy"],
        "wall_seconds": wall,
        "seconds_per_epoch": sum(r["epoch_seconds"] for r in history) / len(history),
        "train_state_bytes": state_bytes,
        "steps_processed_fraction": steps_done / max(steps_seen, 1),
        "update_steps": total_updates,
        "schedule": schedule.to_dict(),
        "backend": rule.active_backend,
        "backend_note": rule.fallback_reason,
        "learned_filters": filter_summary(net),
        "n_parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
        "n_inputs": task.n_inputs,
        "n_classes": task.n_classes,
        "task_info": task.info,
        "config": cfg.to_dict(),
    }
    if "test_van_rossum" in chosen:
        metrics["test_van_rossum"] = chosen["test_van_rossum"]
    if out_dir is not None:
        write_run(out_dir, net, cfg, metrics, history, task)
    return metrics
