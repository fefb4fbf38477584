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
from .base import Batch, Split, Task, iterate_batches
from .encoders import ENCODERS, delta, direct, encode, encoder_defaults, latency, list_encoders, population, rate
from .metrics import van_rossum_distance

__all__ = [
    "Split",
    "Task",
    "Batch",
    "iterate_batches",
    "load_task",
    "list_tasks",
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

_TASKS: list[tuple[str, str]] = [
    (
        "uea:NAME",
        "UEA/UCR classification set NAME via aeon (BasicMotions, JapaneseVowels offline); "
        "options: extract_path, normalize",
    ),
    ("digits", "sklearn 8x8 digits (64 ch, 10 classes) as spike trains; options: steps, test_fraction, split_seed"),
    (
        "patterns",
        "synthetic cue-order spike patterns that need memory; options: n_inputs, n_classes, steps, "
        "n_samples, n_test, n_cues, cue_len, min_gap, cue_rate, noise_rate, jitter, pattern_seed",
    ),
    ("patterns:generate", "map each input spike pattern to a target output spike train; options: n_outputs, ..."),
    ("npz:PATH", "your own .npz with X (samples, time, channels) and y; options: test_fraction, split_seed, normalize"),
    ("shd:PATH", "Spiking Heidelberg Digits, PATH/shd_{train,test}.h5 (700 ch, 20 classes); options: bin_ms, steps, "
     "max_ms, pool, binary, limit"),
    ("nmnist:PATH", "N-MNIST, PATH/{Train,Test}/<digit>/*.bin (34x34x2); options: bin_ms, steps, max_ms, pool, "
     "polarity, binary, limit"),
    ("tonic:NAME:ROOT", "tonic data set NAME with its files under ROOT/NAME (never downloads); options as nmnist"),
]


def list_tasks() -> list[tuple[str, str]]:
    """``(name pattern, one-line description)`` for every task family."""
    return list(_TASKS)


def _resolve(spec: str, options: dict[str, Any]) -> tuple[Callable[..., Task], tuple[Any, ...], str]:
    """Spec -> (loader, positional args, default encoder). May set ``options["mode"]``."""
    head, sep, arg = spec.partition(":")
    if head == "uea" and arg:
        return _uea.load_uea, (arg,), _uea.DEFAULT_ENCODER
    if head == "npz" and arg:
        return _npz.load_npz, (arg,), _npz.DEFAULT_ENCODER
    if head == "shd" and arg:
        return _events.load_shd, (arg,), _events.DEFAULT_ENCODER
    if head == "nmnist" and arg:
        return _events.load_nmnist, (arg,), _events.DEFAULT_ENCODER
    if head == "tonic" and ":" in arg and all(arg.partition(":")[::2]):
        return _tonic.load_tonic, tuple(arg.partition(":")[::2]), _tonic.DEFAULT_ENCODER
    if head == "digits" and not sep:
        return _digits.load_digits_task, (), _digits.DEFAULT_ENCODER
    if head == "patterns" and (not sep or arg in _patterns.MODES):
        if sep:
            if "mode" in options and _patterns.MODES.get(options["mode"]) != _patterns.MODES[arg]:
                raise ValueError(f"task spec {spec!r} conflicts with mode={options['mode']!r}")
            options["mode"] = arg
        return _patterns.load_patterns, (), _patterns.DEFAULT_ENCODER
    valid = ", ".join(name for name, _ in _TASKS)
    raise ValueError(f"unknown task {spec!r}; valid tasks: {valid}")


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
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    options = dict(options)
    loader, args, default_encoder = _resolve(spec.strip(), options)
    params = inspect.signature(loader).parameters
    task_keys = {p.name for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    task_keys -= {"seed", "val_fraction", "encoder", "encoder_options"}
    enc_name = default_encoder if encoder is None else encoder
    enc_keys = set(encoder_defaults(enc_name))  # raises for an unknown encoder
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
                f"options of encoder {enc_name!r}: {sorted(enc_keys) or 'none'}"
            )
    return loader(
        *args, seed=seed, val_fraction=val_fraction, encoder=encoder, encoder_options=enc_opts, **task_opts
    )
