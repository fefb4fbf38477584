"""One trial of ``solsa tune``: train a drawn configuration on the holdout split or on every fold, and score it.

- **holdout**: one run on the task's validation split; the pruner watches its per-epoch validation curve
  (best accuracy so far, from a third of its epochs on).
- **k-fold** (repeated R times: R x k runs): after each fold the running mean of the fold scores is reported
  to the pruner as the trial's intermediate value at step = the fold's number, so a trial that is poor on its
  first folds is stopped there; the score is the mean over the folds, their standard deviation its spread.

Every run stops when its validation accuracy has not improved for ``val_patience`` epochs: by default
:func:`~solsa.config.trial_patience` of the run's own batches per epoch (:data:`~solsa.config.VAL_PATIENCE`
epochs or :data:`~solsa.config.VAL_PATIENCE_BATCHES` updates, whichever is more; a fold's training set and the
drawn ``batch_size`` set it), so no trial, the first one included, trains long past its best epoch, and a
small set's run is not stopped a few dozen updates after its best.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from ..config import TrainConfig, batches_per_epoch, planned_epochs, trial_patience
from ..evaluation import load_task_of
from .folds import fold_tasks, holdout_task
from .space import Dimension, config_changes, suggest

__all__ = ["Objective", "TrialFailed", "pruning_hook", "spread"]


class TrialFailed(Exception):
    """A trial that failed by its own settings (recorded as failed; the study goes on)."""


def spread(scores: list[float]) -> float | None:
    """The standard deviation (n - 1) of ``scores`` (of the folds, or of the seeds); None for fewer than two."""
    return statistics.stdev(scores) if len(scores) > 1 else None


class Objective:
    """Train one trial (or its R x k folds) and return its validation score."""

    def __init__(self, base: TrainConfig, space: dict[str, Dimension], cv: int, repeats: int, out: Path,
                 train_fn: Callable, notice: Callable[[str], None], encoder: str | None = None,
                 patience_batches: int | None = None) -> None:
        """``encoder``: the encoder the loaded task resolved to (:func:`~solsa.tune.space.task_encoder`).
        ``patience_batches``: each run's ``val_patience`` is :func:`~solsa.config.trial_patience` of its batches
        per epoch and this; None keeps ``base.val_patience`` (the user gave it)."""
        self.base, self.space, self.cv, self.repeats, self.encoder = base, space, cv, repeats, encoder
        self.patience_batches = patience_batches
        self.out, self.train_fn, self.notice = out, train_fn, notice
        self._tasks: dict[str, Any] = {}
        self.last: int | None = None  # the number of the trial this process ran last

    def tasks(self, cfg: TrainConfig, loaded: Any = None) -> list:
        """The tasks a trial of ``cfg`` trains on (one load per encoder setting; the split is seeded the same)."""
        key = json.dumps([cfg.encoder, cfg.task_options], sort_keys=True, default=str)
        if key not in self._tasks:
            task = load_task_of(cfg) if loaded is None else loaded
            self._tasks[key] = (fold_tasks(task, self.cv, cfg.seed, self.repeats) if self.cv
                                else [holdout_task(task)])
        return self._tasks[key]

    def __call__(self, trial) -> float:
        import optuna

        self.last = trial.number
        # a first heartbeat now (optuna's thread may not have written one yet), then the mark that says so:
        # a trial killed before the mark is found dead by its age, one after it by its heartbeat
        storage = trial.study._storage
        if hasattr(storage, "record_heartbeat"):
            storage.record_heartbeat(trial._trial_id)
        trial.set_user_attr("started", True)
        t0 = time.perf_counter()
        try:
            cfg = self.base.replace(**config_changes(self.base, suggest(trial, self.space, self.base, self.encoder)))
            tasks = self.tasks(cfg)
            runs = []
            for i, task in enumerate(tasks):
                folder = self.out / "trials" / f"{trial.number:04d}" / (f"fold{i + 1}" if self.cv else "")
                hook = pruning_hook(trial, report=not self.cv, epochs=planned_epochs(cfg, len(task.train)))
                runs.append(self.train_fn(self.run_config(cfg, len(task.train)), folder, force=True, progress=False, task=task, log=self.notice,
                                          on_epoch=hook))
                if self.cv:
                    _report_fold(trial, runs, last=i + 1 == len(tasks))
        except optuna.TrialPruned:
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            raise
        except (ValueError, RuntimeError, ArithmeticError) as err:  # a bad point or a diverging run
            trial.set_user_attr("error", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            raise TrialFailed(str(err)) from err
        scores = [m["val_accuracy"] for m in runs]
        val_loss = statistics.fmean(m["val_loss"] for m in runs)
        trial.set_user_attr("val_loss", val_loss if math.isfinite(val_loss) else None)
        trial.set_user_attr("fold_val_accuracy", scores)
        trial.set_user_attr("val_std", spread(scores))
        trial.set_user_attr("seconds_per_epoch", statistics.fmean(m["seconds_per_epoch"] for m in runs))
        trial.set_user_attr("epochs_trained", statistics.fmean(m.get("epochs_trained", m["epochs"]) for m in runs))
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        return statistics.fmean(scores)

    def run_config(self, cfg: TrainConfig, n_train: int) -> TrainConfig:
        """``cfg`` with the patience of a run on ``n_train`` training sequences (see ``patience_batches``)."""
        if self.patience_batches is None:
            return cfg
        return cfg.replace(val_patience=trial_patience(batches_per_epoch(cfg, n_train), self.patience_batches))


def _report_fold(trial, runs: list[dict[str, Any]], last: bool) -> None:
    """Report the mean validation accuracy of the folds so far (step: the number of folds done); stop the trial
    when the pruner finds it in the worst quarter of the finished trials after the same folds."""
    import optuna

    scores = [m["val_accuracy"] for m in runs]
    trial.set_user_attr("fold_val_accuracy", scores)
    trial.report(statistics.fmean(scores), len(scores))
    if not last and trial.should_prune():
        trial.set_user_attr("pruned_at_fold", len(scores))
        raise optuna.TrialPruned()


def pruning_hook(trial, report: bool, epochs: int = 1) -> Callable[[int, dict], None]:
    """Stop a diverging run; report the best validation accuracy so far to the pruner (``report``), which may
    stop the trial from a third of its ``epochs`` on (spiking networks often sit at chance for a few epochs)."""
    import optuna

    best = [-math.inf]

    def on_epoch(epoch: int, row: dict[str, Any]) -> None:
        if not math.isfinite(row["loss"]):
            raise FloatingPointError(f"training loss is {row['loss']} at epoch {epoch} (diverged)")
        if report:
            best[0] = max(best[0], row["val_accuracy"])
            trial.report(best[0], epoch)
            if epoch >= max(3, epochs // 3) and trial.should_prune():
                trial.set_user_attr("pruned_at_epoch", epoch)
                raise optuna.TrialPruned()

    return on_epoch
