"""Tasks for scoring a configuration without the test split: the holdout task and k-fold tasks.

``solsa tune`` trains its trials on these. Both put the split that is scored in the ``test`` slot too,
so :func:`~solsa.training.train` (which evaluates every split each epoch) never reads the real test
samples during a search; a trial's ``test_accuracy`` is therefore a validation number.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..tasks import Split, Task
from ..validation import OptionError, check_positive_int

__all__ = ["concat_splits", "stratified_folds", "holdout_task", "fold_tasks"]


def concat_splits(a: Split, b: Split) -> Split:
    """The samples of ``a`` then ``b`` (padded to the longer ``T``)."""
    steps = max(a.steps, b.steps)

    def pad(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t, t.new_zeros(steps - t.shape[0], *t.shape[1:])])

    x = torch.cat([pad(a.x), pad(b.x)], 1)
    target = None if a.target is None else torch.cat([pad(a.target), pad(b.target)], 1)
    index = None if a.index is None or b.index is None else torch.cat([a.index, b.index])
    return Split(x, torch.cat([a.y, b.y]), torch.cat([a.lengths, b.lengths]), target, index)


def stratified_folds(y: torch.Tensor, k: int, seed: int) -> list[torch.Tensor]:
    """``k`` disjoint index sets covering every sample, each class spread evenly over them (seeded)."""
    check_positive_int("cv_folds", k, minimum=2)
    if len(y) < k:
        raise OptionError("cv_folds", f"cv_folds={k} needs at least {k} training samples, got {len(y)}")
    rng = np.random.default_rng(seed)
    labels = y.numpy()
    fold_of = np.empty(len(labels), dtype=np.int64)
    start = 0
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        fold_of[members] = (start + np.arange(len(members))) % k  # continue where the last class stopped
        start += len(members)
    return [torch.from_numpy(np.flatnonzero(fold_of == f)) for f in range(k)]


def holdout_task(task: Task) -> Task:
    """``task`` with its validation split in the test slot (scored on validation; test never read)."""
    info = {**task.info, "scored_on": "validation split (the test split is not used)"}
    return dataclasses.replace(task, test=task.val, info=info)


def fold_tasks(task: Task, k: int, seed: int, repeats: int = 1) -> list[Task]:
    """``k`` tasks from the training data (``task.train`` + ``task.val``): fold ``i`` validates on the ``i``-th
    stratified fold and trains on the rest. The same ``seed`` gives the same folds (for every trial).

    ``repeats`` R > 1: repeated k-fold, R x k tasks, repeat ``r`` shuffled with seed ``seed + r`` (so its first
    k tasks are those of ``repeats=1``)."""
    check_positive_int("repeats", repeats)
    pool = concat_splits(task.train, task.val)
    tasks = []
    for r in range(repeats):
        folds = stratified_folds(pool.y, k, seed + r)
        for i, held in enumerate(folds):
            keep = torch.cat([f for j, f in enumerate(folds) if j != i]).sort().values
            if len(pool.y[keep].unique()) < 2:
                raise OptionError("cv_folds", f"cv_folds={k}: fold {i + 1}'s training part has only one class "
                                              f"(class counts {pool.y.bincount().tolist()}); use fewer folds or more data")
            val = pool.subset(held)
            which = f"fold {i + 1} of {k}" + (f", repeat {r + 1} of {repeats}" if repeats > 1 else "")
            info = {**task.info, "scored_on": f"{which} of the training data (the test split is not used)",
                    "n_train": len(keep), "n_val": len(held)}
            tasks.append(dataclasses.replace(task, name=task.name, train=pool.subset(keep), val=val, test=val,
                                             info=info))
    return tasks
