"""The epoch loop: train one run end to end, with the three enhancements of docs/model.md §4.

- scheduled weight update (:class:`~solsa.schedule.UpdateSchedule`),
- early stop training (:class:`~solsa.early_stop.EarlyStop`),
- adaptive synapse filter (α, β learned through their traces, clamped after each update).

:func:`train` runs a :class:`~solsa.config.TrainConfig`; each batch goes through
the one learner loop (:class:`~solsa.learner.Learner`); the epoch is chosen on
validation (:mod:`solsa.evaluation`), and ``val_patience`` ends the run once
validation accuracy has not improved for that many epochs. Given an output folder, the run locks it,
writes its resume state after every epoch and its run files at the end
(:mod:`solsa.runs`); :func:`resume` continues a killed run to the same result.
Launched by ``torchrun``, the processes train one run data-parallel
(:mod:`solsa.distributed`).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .config import TrainConfig, planned_epochs
from .distributed import DataParallel
from .early_stop import EarlyStop
from .evaluation import evaluate, load_task_of
from .budget import fit_memory_budget
from .factories import build_learner, build_network
from .layers import SNN, filter_summary
from .progress import Progress
from .rules import sequence_weights
from .runs import load_resume, prepare_out_dir, save_resume, write_run
from .schedule import UpdateSchedule
from .tasks import Task, iterate_batches
from .validation import check_device, nonfinite_parameters

__all__ = ["train", "resume", "TrainingDiverged"]


class TrainingDiverged(ValueError):
    """The loss or a parameter became NaN or infinite; the last good epoch's state is kept."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train(
    cfg: TrainConfig,
    out: str | Path | None = None,
    *,
    force: bool = False,
    resume: bool = False,
    progress: bool = True,
    task: Task | None = None,
    log: Callable[[str], None] | None = _stderr,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train one run; returns the metrics dict (also written to ``out/metrics.json`` if ``out``).

    ``out`` is locked while the run trains and gets a resume state after every epoch; ``resume``
    continues the unfinished run in ``out`` (trained with the same ``cfg``) where it stopped.
    ``log`` receives one-line notices (e.g. that the rule fell back to its reference backend, and
    why); None silences them. ``on_epoch(epoch, row)`` is called after each epoch with its
    ``history.csv`` row; an exception it raises stops the run (``solsa tune`` prunes poor trials this
    way) and no run files are written.
    """
    sync = DataParallel.from_environment(check_device(cfg.device))
    lock = None
    threads = torch.get_num_threads()
    try:
        out_dir = None
        if out is not None and sync.is_main:  # rank 0 writes; the others train and evaluate alike
            out_dir, lock = prepare_out_dir(out, force, resume)
        state = load_resume(Path(out)) if resume else None
        if state is not None:
            _check_resume(state, cfg, Path(out))
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        return _Run(cfg, out_dir, progress, task, log or (lambda message: None), sync).run(state, on_epoch)
    finally:
        torch.set_num_threads(threads)  # leave the caller's setting as it was
        if lock is not None:
            lock.release()
        sync.close()


def resume(out: str | Path, *, progress: bool = True, log: Callable[[str], None] | None = _stderr) -> dict[str, Any]:
    """Continue the unfinished run in ``out`` with its own settings; returns its metrics."""
    out = Path(out)
    if not (out / "resume.pt").is_file():
        done = " (its run is finished)" if (out / "metrics.json").is_file() else ""
        raise FileNotFoundError(f"{out / 'resume.pt'} does not exist: nothing to resume in {out}{done}")
    cfg = TrainConfig.from_dict(load_resume(out)["config"])
    return train(cfg, out, resume=True, progress=progress, log=log)


def _check_resume(state: dict[str, Any], cfg: TrainConfig, out: Path) -> None:
    """Refuse a resume state of other settings, or one whose epoch count does not fit the run's epochs."""
    stored = TrainConfig.from_dict(state["config"]).to_dict()  # options added since take their defaults
    if stored != cfg.to_dict():
        changed = sorted(k for k, v in cfg.to_dict().items() if stored.get(k) != v)
        raise ValueError(f"{out} was trained with other settings ({', '.join(changed)}); "
                         "resume it with its own settings (solsa.training.resume)")
    epoch = state["epoch"]
    if not isinstance(epoch, int) or epoch < 0 or len(state["history"]) != epoch:
        raise ValueError(f"resume file {out / 'resume.pt'} records epoch {epoch!r} and a history of "
                         f"{len(state['history'])} epoch(s): it is not a state this run "
                         "wrote; start the run again with --force")


class _Run:
    """One run's state between epochs, so that it can be saved and resumed exactly."""

    def __init__(self, cfg: TrainConfig, out_dir: Path | None, progress: bool, task: Task | None,
                 log: Callable[[str], None], sync: DataParallel) -> None:
        self.cfg, self.out_dir, self.sync = cfg, out_dir, sync
        self.log = log if sync.is_main else (lambda message: None)
        torch.manual_seed(cfg.seed)
        self.task = task if task is not None else load_task_of(cfg)
        if self.task.kind == "generation" and cfg.readout != "spike":
            raise ValueError(f"task {self.task.name} generates spike trains: it needs readout 'spike'")
        self.device = torch.device(cfg.device)
        self.dtype = getattr(torch, cfg.dtype)
        self.budget = None  # memory_budget: the settings chosen to fit it (solsa.budget)
        self.built = cfg  # what the network and rule are built with (cfg, or memory_budget's choice)
        if cfg.memory_budget is not None:
            self.budget = fit_memory_budget(cfg, self.task.n_inputs, self.task.n_classes)
            self.built = self.budget.config
            self.log(f"solsa: {self.budget.reason}")
        self.net = build_network(self.built, self.task.n_inputs, self.task.n_classes).to(self.device)
        self.learner = build_learner(self.built, self.net, sync, self.task.train.peak)
        self.schedule = UpdateSchedule(cfg.schedule, cfg.search_period)
        if self.schedule.mode == "search" and not self.learner.rule.capabilities.step_magnitude:
            raise ValueError(f"schedule {cfg.schedule!r} ranks steps by their gradient, which rule {cfg.rule!r} "
                             "does not report per step; use 'end' or 'every:K'")
        self.early = EarlyStop(cfg.early_stop_rho, cfg.early_stop_p, cfg.early_stop_h) if cfg.early_stop else None
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.n_batches = math.ceil(len(self.task.train) / cfg.batch_size)
        self.epochs = planned_epochs(cfg, len(self.task.train))
        self.progress = progress and sync.is_main
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.totals = {"state_bytes": 0, "updates": 0, "steps_done": 0, "steps_seen": 0, "seconds": 0.0}

    # ---- resume state --------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"config": self.cfg.to_dict(), "epoch": self.epoch, "net": self.net.state_dict(),
                "optimizer": self.learner.optimizer.state_dict(), "history": self.history, "best": self.best,
                "totals": self.totals, "schedule": self.schedule.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "batches": self.gen.get_state()}}

    def load(self, state: dict[str, Any]) -> None:
        if state["epoch"] > self.epochs:
            raise ValueError(f"resume state records epoch {state['epoch']}, but the run trains {self.epochs} "
                             "epochs: it is not a state this run wrote; start the run again with --force")
        self.epoch, self.history, self.best, self.totals = state["epoch"], state["history"], state["best"], state["totals"]
        self.net.load_state_dict(state["net"])
        self.learner.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"]["torch"])
        self.gen.set_state(state["rng"]["batches"])

    # ---- the loop ------------------------------------------------------------------------------------------

    def run(self, state: dict[str, Any] | None,
            on_epoch: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
        cfg, rule = self.cfg, self.learner.rule
        if state is not None:
            self.load(state)
        rule.reset(min(cfg.batch_size, len(self.task.train)))  # settles the backend before the first batch
        if rule.fallback_reason:
            self.log(f"solsa: rule {cfg.rule!r} falls back to its {rule.active_backend} backend (slower): "
                     f"{rule.fallback_reason}")
        bar = Progress(self.epochs, self.n_batches, self.progress, f"{cfg.rule} on {self.task.name}",
                       start_epoch=self.epoch)
        while self.epoch < self.epochs and not self._out_of_patience():
            t0 = time.perf_counter()
            row = self._epoch(self.epoch + 1, bar)
            self.totals["seconds"] += time.perf_counter() - t0
            self.epoch += 1
            self.history.append(row)
            bar.epoch(self.epoch, row["loss"], row["val_accuracy"])
            if on_epoch is not None:
                on_epoch(self.epoch, row)
            # model selection on validation only: best accuracy, ties to the lower validation loss
            key = [row["val_accuracy"], -row["val_loss"]]
            if self.best is None or key > self.best["key"]:
                self.best = {"key": key, "row": row, "state": copy.deepcopy(self.net.state_dict())}
            if self.out_dir is not None:
                save_resume(self.out_dir, self.state())
        bar.close()
        metrics = self._metrics()
        if self.out_dir is not None:
            # the checkpoint rebuilds the network: the settings it was built with (memory_budget's choice)
            write_run(self.out_dir, self.net, self.built, metrics, self.history, self.task)
            (self.out_dir / "resume.pt").unlink(missing_ok=True)  # finished: metrics.json says so
        return metrics

    def _out_of_patience(self) -> bool:
        """``val_patience`` epochs have passed since validation accuracy last rose above its best (checked before
        each epoch, so a resumed run stops where the uninterrupted one would). Accuracy alone: a validation loss
        that keeps creeping down on a plateau does not keep the run going."""
        patience, accuracy = self.cfg.val_patience, [row["val_accuracy"] for row in self.history]
        return bool(patience and accuracy) and self.epoch - (accuracy.index(max(accuracy)) + 1) >= patience

    def _epoch(self, epoch: int, bar: Progress) -> dict[str, Any]:
        cfg, task, net, sync = self.cfg, self.task, self.net, self.sync
        t0 = time.perf_counter()
        net.train()
        loss, done, seen, updates, correct, count = 0.0, 0, 0, 0, 0.0, 0.0
        stopper = self.early if (epoch > cfg.early_stop_warmup and task.kind != "generation") else None
        searching = self.schedule.searching
        for b, batch in enumerate(iterate_batches(task.train, cfg.batch_size, shuffle=True, generator=self.gen)):
            idx, valid = sync.shard(len(batch.y))
            weights = sequence_weights(batch.mask, net.readout_score)[:, idx] * valid
            x = batch.x[:, idx].to(self.device, self.dtype)
            y, mask, valid = batch.y[idx].to(self.device), batch.mask[:, idx].to(self.device), valid.to(self.device)
            target = batch.target[:, idx].to(self.device, self.dtype) if batch.target is not None else y
            res = self.learner.sequence(x, target, mask, points=self.schedule.points(x.shape[0]), early_stop=stopper,
                                        on_magnitude=self.schedule.record if searching else None,
                                        weights=weights.to(self.device), valid=valid if sync.active else None)
            batch_loss = float(res.loss)
            self._check_finite(epoch, b + 1, batch_loss)
            loss += batch_loss
            updates += res.updates
            self.totals["state_bytes"] = max(self.totals["state_bytes"], res.state_bytes)
            done += res.steps
            seen += x.shape[0]
            if task.kind != "generation":
                right = net.scores(res.outputs, mask[: res.steps]).argmax(-1) == y
                correct += float((right & valid).sum())
                count += float(valid.sum())
            bar.batch(epoch, loss, correct / count if count else None)
        self.schedule.end_epoch(epoch)
        loss, correct, count = sync.sum([loss, correct, count])
        train_seconds = time.perf_counter() - t0
        self.totals["updates"] += updates
        self.totals["steps_done"] += done
        self.totals["steps_seen"] += seen
        net.eval()
        ev = {name: evaluate(net, split, cfg.loss_name, device=cfg.device)
              for name, split in (("train", task.train), ("val", task.val), ("test", task.test))}
        self._check_finite(epoch, None, ev["val"]["loss"])
        row = {
            "epoch": epoch,
            "loss": loss / self.n_batches,
            "online_train_accuracy": correct / count if count else float("nan"),
            "train_accuracy": ev["train"]["accuracy"],
            "val_accuracy": ev["val"]["accuracy"],
            "val_loss": ev["val"]["loss"],
            "test_accuracy": ev["test"]["accuracy"],
            "steps_processed_fraction": done / seen,
            "update_steps": updates,
            "epoch_seconds": train_seconds,
            **_alpha_stats(net),
        }
        if "van_rossum" in ev["test"]:
            row["val_van_rossum"] = ev["val"]["van_rossum"]
            row["test_van_rossum"] = ev["test"]["van_rossum"]
        return row

    def _check_finite(self, epoch: int, batch: int | None, loss: float) -> None:
        """Stop a diverged run with a clear error; the resume state of the last good epoch stays."""
        bad = nonfinite_parameters(self.net)
        if math.isfinite(loss) and not bad:
            return
        where = f"epoch {epoch}" + (f", batch {batch}" if batch is not None else " (validation)")
        what = f"the loss is {loss}" if not math.isfinite(loss) else "the loss is finite"
        if bad:
            what += f", parameters {', '.join(bad[:4])} hold NaN or inf"
        kept = (f"; the last good state (epoch {self.epoch}) is kept in {self.out_dir / 'resume.pt'}"
                if self.out_dir is not None and self.epoch else "")
        raise TrainingDiverged(f"training diverged at {where}: {what}{kept}; try a smaller lr "
                               f"(lr={self.cfg.lr}, optimizer={self.cfg.optimizer})")

    def _metrics(self) -> dict[str, Any]:
        cfg, task, history, rule = self.cfg, self.task, self.history, self.learner.rule
        chosen = self.best["row"]
        self.net.load_state_dict(self.best["state"])
        metrics = {
            "task": task.name,
            "rule": cfg.rule,
            "seed": cfg.seed,
            "epochs": self.epochs,
            "epochs_trained": len(history),
            "best_epoch": chosen["epoch"],
            "train_accuracy": chosen["train_accuracy"],
            "val_accuracy": chosen["val_accuracy"],
            "val_loss": chosen["val_loss"],
            "test_accuracy": chosen["test_accuracy"],
            "best_test_accuracy": max(r["test_accuracy"] for r in history),
            "final_test_accuracy": history[-1]["test_accuracy"],
            "wall_seconds": self.totals["seconds"],
            "seconds_per_epoch": sum(r["epoch_seconds"] for r in history) / len(history),
            "train_state_bytes": self.totals["state_bytes"],
            "steps_processed_fraction": self.totals["steps_done"] / max(self.totals["steps_seen"], 1),
            "update_steps": self.totals["updates"],
            "schedule": self.schedule.to_dict(),
            "backend": rule.active_backend,
            "backend_note": rule.fallback_reason,
            "trace_storage": str(getattr(rule, "trace_dtype", None) or cfg.dtype),
            "processes": self.sync.world,
            "learned_filters": filter_summary(self.net),
            "n_parameters": sum(p.numel() for p in self.net.parameters()
                                if p.requires_grad and all(p is not d for d in self.net.derived_parameters())),
            "n_inputs": task.n_inputs,
            "n_classes": task.n_classes,
            "task_info": task.info,
            "config": cfg.to_dict(),
        }
        if self.budget is not None:
            metrics["memory_budget_choice"] = {"changes": self.budget.changes, "state_bytes": self.budget.state_bytes,
                                               "reason": self.budget.reason}
        if "test_van_rossum" in chosen:
            metrics["test_van_rossum"] = chosen["test_van_rossum"]
        return metrics


def _alpha_stats(net: SNN) -> dict[str, float]:
    a = torch.cat([layer.alpha.detach().flatten() for layer in net.layers])
    b = torch.cat([layer.beta.detach().flatten() for layer in net.layers])
    return {"alpha_mean": a.mean().item(), "alpha_min": a.min().item(), "alpha_max": a.max().item(),
            "beta_mean": b.mean().item()}
