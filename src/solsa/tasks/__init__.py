"""Datasets ("tasks") and input encoders behind one small interface.

>>> task = load_task("uea:BasicMotions", seed=0)            # doctest: +SKIP
>>> task = load_task("digits", encoder="latency", steps=30)  # doctest: +SKIP
>>> for batch in iterate_batches(task.train, 32, shuffle=True): ...  # doctest: +SKIP

Tensors are time-first (``[T, N, C]``). See :func:`load_task` for the task specs and how
encoder options are passed.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from . import digits as _digits
from . import events as _events
from . import npz as _npz
from . import patterns as _patterns
from . import tonic_sets as _tonic
from . import uea as _uea
from ..validation import check_positive_int
from .base import Batch, Split, Task, TaskFamily, iterate_batches
from .encoders import ENCODERS, delta, direct, encode, encoder_defaults, latency, list_encoders, population, rate
from .metrics import van_rossum_distance

__all__ = [
    "Split",
    "Task",
    "TaskFamily",
    "TASKS",
    "Batch",
    "iterate_batches",
    "load_task",
    "list_tasks",
    "task_option_defaults",
    "resolved_encoder",
    "list_encoders",
    "encode",
    "encoder_defaults",
    "direct",
    "population",
    "delta",
    "rate",
    "latency",
    "ENCODERS",
    "van_rossum_distance",
]

# One entry per task family: a new task is its loader file (with its FAMILY) plus one line here.
TASKS: dict[str, TaskFamily] = {f.name: f for f in (_uea.FAMILY, _digits.FAMILY, _patterns.FAMILY, _npz.FAMILY,
                                                      _events.SHD_FAMILY, _events.NMNIST_FAMILY, _tonic.FAMILY)}


def resolved_encoder(spec: str, encoder: str | None, info: Callable[[], dict[str, Any]]) -> str | None:
    """The encoder a run of task ``spec`` uses: ``encoder`` when named, else the family's default, unless the
    family picks one by the data (``data_encoders``; uea: ``delay`` for one channel): then the one recorded in
    ``info()`` (the loaded task's ``info``, called only then). None for an unknown family. Tune's search space
    and the C export both read a run's encoder through this."""
    if encoder:
        return encoder
    family = TASKS.get(spec.strip().partition(":")[0])
    if family is None:
        return None
    if not family.data_encoders:
        return family.default_encoder
    return info().get("encoder", family.default_encoder)


def list_tasks() -> list[tuple[str, str]]:
    """``(name pattern, one-line description)`` for every task family."""
    return [row for family in TASKS.values() for row in family.listing]


def _resolve(spec: str, options: dict[str, Any]) -> tuple[Callable[..., Task], tuple[Any, ...], tuple[str, ...]]:
    """Spec -> (loader, positional args, default encoders: the family's, then those it picks by the data).
    May set ``options["mode"]``."""
    head, sep, arg = spec.partition(":")
    family = TASKS.get(head)
    args = family.loader_args(spec, arg if sep else None, options) if family is not None else None
    if args is None:
        valid = ", ".join(name for name, _ in list_tasks())
        raise ValueError(f"unknown task {spec!r}; valid tasks: {valid}")
    return family.loader, args, family.default_encoders


def _task_keys(loader: Callable[..., Task]) -> dict[str, Any]:
    """The task options a loader takes (its keyword-only parameters but the common ones) with their defaults."""
    params = inspect.signature(loader).parameters
    return {p.name: p.default for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
            and p.name not in ("seed", "val_fraction", "encoder", "encoder_options")}


def task_option_defaults(spec: str) -> dict[str, Any]:
    """The task options of task ``spec`` (e.g. ``max_steps`` for ``uea:NAME``) with their default values.

    Raises:
        ValueError: unknown task spec.
    """
    return _task_keys(_resolve(spec.strip(), {})[0])


def load_task(
    spec: str,
    *,
    seed: int = 0,
    encoder: str | None = None,
    val_fraction: float = 0.2,
    encoder_options: dict[str, Any] | None = None,
    **options: Any,
) -> Task:
    """Load a task by spec.

    Specs: ``"uea:NAME"``, ``"digits"``, ``"patterns"``, ``"patterns:generate"``,
    ``"npz:PATH"``, ``"shd:PATH"``, ``"nmnist:PATH"``, ``"tonic:NAME:ROOT"`` (see :func:`list_tasks`).

    Args:
        spec: Task spec.
        seed: Seeds every random choice (validation split, encoder spikes, generated data).
        encoder: Encoder name (see :func:`list_encoders`); None = the task's default
            (``direct`` for uea/npz/patterns, ``rate`` for digits).
        val_fraction: Fraction of the training set carved out (stratified) as validation.
        encoder_options: Options for the encoder, e.g. ``{"n_per_channel": 7}``.
        **options: Task options (e.g. ``steps=30`` for digits, ``extract_path=...`` for uea).
            A keyword that is not a task option but is an option of the chosen encoder is
            passed to the encoder, so ``load_task("digits", max_rate=0.5)`` works too.

    Raises:
        ValueError: unknown task, encoder or option, or data that cannot be loaded.
    """
    if not isinstance(spec, str):
        raise ValueError(f"task spec must be a string, got {type(spec).__name__}")
    check_positive_int("seed", seed, minimum=0)
    options = dict(options)
    loader, args, default_encoders = _resolve(spec.strip(), options)
    task_keys = set(_task_keys(loader))
    enc_names = default_encoders if encoder is None else (encoder,)
    enc_keys = set().union(*(encoder_defaults(name) for name in enc_names))  # raises for an unknown encoder
    enc_opts = dict(encoder_options or {})
    task_opts: dict[str, Any] = {}
    for key, value in options.items():
        if key in task_keys:
            task_opts[key] = value
        elif key in enc_keys:
            if key in enc_opts and enc_opts[key] != value:
                raise ValueError(f"encoder option {key!r} given twice with different values")
            enc_opts[key] = value
        else:
            raise ValueError(
                f"unknown option {key!r} for task {spec!r}; task options: {sorted(task_keys)}, "
                + ", ".join(f"options of encoder {name!r}: {sorted(encoder_defaults(name)) or 'none'}"
                            for name in enc_names)
            )
    return loader(
        *args, seed=seed, val_fraction=val_fraction, encoder=encoder, encoder_options=enc_opts, **task_opts
    )
