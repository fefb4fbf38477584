"""Synthetic spatiotemporal spike-pattern tasks that need memory across time.

Classification (``mode="classify"``, default)
    A small set of ``n_cues`` *cues* is drawn once (frozen): each cue is a random spike
    pattern on all input channels lasting ``cue_len`` steps. Every class presents ALL cues,
    each exactly once, in a class-specific order; cues are separated by silent delays of at
    least ``min_gap`` steps whose exact lengths are drawn per sample (so the onsets move from
    sample to sample). Because every class contains the same cues, the spike count of every
    channel over the whole trial has the same expectation for all classes: only the ORDER
    tells classes apart, so a model must remember earlier cues. The class orders are chosen
    (when possible) so that at every serial position each cue occurs in either none or at
    least two classes — no single cue slot identifies the class. Each spike is jittered by up
    to ``jitter`` steps and Bernoulli background noise with probability ``noise_rate`` per
    step and channel is added.

Generation (``mode="generate"``)
    ``n_classes`` frozen random input patterns (Bernoulli ``pattern_rate`` per step and
    channel over the whole trial) are each mapped to a frozen random target spike train on
    ``n_outputs`` output neurons (Bernoulli ``target_rate``, only after the first tenth of the
    trial, at least one spike per neuron). Samples are jittered, noisy copies of the input
    pattern; ``Split.target`` holds the exact target ``[T, N, n_outputs]``, ``y`` the pattern id.
    Compare outputs with :func:`solsa.tasks.metrics.van_rossum_distance`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch

from ._prep import UNIT_RANGE_DEFAULTS, build_task, encoder_settings
from .base import Task, TaskFamily

__all__ = ["load_patterns", "DEFAULT_ENCODER", "MODES", "FAMILY"]

DEFAULT_ENCODER = "direct"
MODES = {"classify": "classification", "classification": "classification", "generate": "generation", "generation": "generation"}
_MAX_PERMUTATION_CUES = 7  # 7! = 5040 orders


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"patterns: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"patterns: {name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _order_scores(orders: np.ndarray) -> np.ndarray:
    """For candidate order sets ``[K, n_classes, n_cues]``: the number of (class, position)
    slots whose cue no other class has at that position (0 = no single slot identifies a class)."""
    same = orders[:, :, None, :] == orders[:, None, :, :]  # [K, classes, classes, positions]
    return (same.sum(axis=2) == 1).sum(axis=(1, 2))


def _order_score(orders: np.ndarray) -> int:
    return int(_order_scores(orders[None])[0])


def _search_orders(
    n_classes: int, n_cues: int, rng: np.random.Generator, max_candidates: int = 20000
) -> tuple[np.ndarray, int]:
    """Pick ``n_classes`` distinct orders of ``n_cues`` cues with the lowest :func:`_order_scores`.

    All ``C(n_cues!, n_classes)`` sets are scored when there are at most ``max_candidates``
    (in a seeded random order, so ties are broken at random); otherwise that many random sets.
    """
    perms = np.array(list(itertools.permutations(range(n_cues))), dtype=np.int64)
    if math.comb(len(perms), n_classes) <= max_candidates:
        combos = np.array(list(itertools.combinations(range(len(perms)), n_classes)), dtype=np.int64)
        combos = combos[rng.permutation(len(combos))]
    else:
        combos = np.stack([rng.choice(len(perms), size=n_classes, replace=False) for _ in range(max_candidates // 10)])
    candidates = perms[combos]  # [K, n_classes, n_cues]
    scores = _order_scores(candidates)
    best = int(np.argmin(scores))
    return candidates[best][rng.permutation(n_classes)], int(scores[best])


def _choose_orders(
    n_classes: int, n_cues: int | None, fits: int, rng: np.random.Generator
) -> np.ndarray:
    """Class -> cue order ``[n_classes, n_cues]``; picks ``n_cues`` if not given."""
    if n_cues is not None:
        if n_cues > _MAX_PERMUTATION_CUES:
            raise ValueError(f"patterns: n_cues must be at most {_MAX_PERMUTATION_CUES}, got {n_cues}")
        if math.factorial(n_cues) < n_classes:
            raise ValueError(f"patterns: {n_cues} cues allow only {math.factorial(n_cues)} orders, fewer than n_classes={n_classes}")
        if n_cues > fits:
            raise ValueError(f"patterns: {n_cues} cues do not fit in the trial (at most {fits}); raise steps or lower cue_len/min_gap")
        return _search_orders(n_classes, n_cues, rng)[0]
    smallest = 2
    while math.factorial(smallest) < n_classes:
        smallest += 1
    if smallest > min(fits, _MAX_PERMUTATION_CUES):
        raise ValueError(
            f"patterns: n_classes={n_classes} needs {smallest} cues but at most "
            f"{min(fits, _MAX_PERMUTATION_CUES)} fit; raise steps or lower n_classes/cue_len/min_gap"
        )
    best, best_score = None, None
    for m in range(smallest, min(smallest + 2, fits, _MAX_PERMUTATION_CUES) + 1):
        orders, score = _search_orders(n_classes, m, rng)
        if best_score is None or score < best_score:
            best, best_score = orders, score
        if score == 0:
            break
    assert best is not None
    return best


def _random_spikes(shape: tuple[int, ...], p: float, rng: np.random.Generator) -> np.ndarray:
    return rng.random(shape) < p


def _jitter_and_noise(clean: np.ndarray, jitter: int, noise_rate: float, rng: np.random.Generator) -> np.ndarray:
    """``clean [N, T, C]`` bool -> each spike moved by U{-jitter..jitter} steps (dropped if it
    leaves the trial), OR background Bernoulli noise."""
    out = np.zeros_like(clean)
    n, t, c = np.nonzero(clean)
    if jitter > 0:
        t = t + rng.integers(-jitter, jitter + 1, size=t.shape)
        keep = (t >= 0) & (t < clean.shape[1])
        n, t, c = n[keep], t[keep], c[keep]
    out[n, t, c] = True
    if noise_rate > 0:
        out |= _random_spikes(clean.shape, noise_rate, rng)
    return out


def _cue_sequences(
    y: np.ndarray, orders: np.ndarray, cues: np.ndarray, steps: int, min_gap: int, rng: np.random.Generator
) -> np.ndarray:
    """Place each class's cues in order with random delays; returns clean ``[N, T, C]`` bool."""
    n_cues, cue_len, n_inputs = cues.shape
    free = steps - n_cues * cue_len - (n_cues - 1) * min_gap
    cuts = np.sort(rng.integers(0, free + 1, size=(len(y), n_cues)), axis=1)
    extra = np.diff(np.concatenate([np.zeros((len(y), 1), np.int64), cuts, np.full((len(y), 1), free)], axis=1), axis=1)
    # onset of slot k = lead silence + k * (cue + gap) + extra delay accumulated before slot k
    onsets = extra[:, :1] + np.arange(n_cues) * (cue_len + min_gap) + np.concatenate(
        [np.zeros((len(y), 1), np.int64), np.cumsum(extra[:, 1:n_cues], axis=1)], axis=1
    )
    clean = np.zeros((len(y), steps, n_inputs), dtype=bool)
    for i, label in enumerate(y):
        for k, cue in enumerate(orders[label]):
            clean[i, onsets[i, k] : onsets[i, k] + cue_len] = cues[cue]
    return clean


def _balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % n_classes).astype(np.int64)


def load_patterns(
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    encoder: str | None = None,
    encoder_options: dict[str, Any] | None = None,
    mode: str = "classify",
    n_inputs: int = 40,
    n_classes: int = 4,
    steps: int = 100,
    n_samples: int = 400,
    n_test: int | None = None,
    n_cues: int | None = None,
    cue_len: int = 10,
    min_gap: int = 5,
    cue_rate: float = 0.2,
    noise_rate: float = 0.02,
    jitter: int = 1,
    n_outputs: int = 4,
    pattern_rate: float = 0.05,
    target_rate: float = 0.03,
    pattern_seed: int | None = None,
) -> Task:
    """Generate the spike-pattern task (see the module docstring).

    Args:
        mode: ``"classify"`` (default) or ``"generate"``.
        n_inputs: Input channels.
        n_classes: Classes (classify) or input patterns (generate).
        steps: Trial length ``T``.
        n_samples: Training samples (validation is carved from these); ``n_test`` test
            samples (default ``n_samples // 2``). Classes are balanced.
        n_cues: Cues per trial (classify); default: the fewest cues whose orders can make
            no single serial position identify the class (``n_cues! >= n_classes``).
        cue_len, min_gap, cue_rate: Cue duration, minimum silent delay between cues, spike
            probability per step and channel inside a cue.
        noise_rate, jitter: Background spike probability per step and channel; maximum
            spike-time shift in steps.
        n_outputs, pattern_rate, target_rate: Generation mode: output neurons, input pattern
            and target spike probabilities per step.
        pattern_seed: Seed of the frozen cues / patterns / targets / class orders (default
            ``seed``); the samples themselves are always drawn from ``seed``.
    """
    if mode not in MODES:
        raise ValueError(f"patterns: mode must be one of {sorted(MODES)}, got {mode!r}")
    kind = MODES[mode]
    n_inputs = _positive_int("n_inputs", n_inputs)
    n_classes = _positive_int("n_classes", n_classes, 2)
    steps = _positive_int("steps", steps)
    n_samples = _positive_int("n_samples", n_samples, n_classes)
    n_test = n_samples // 2 if n_test is None else n_test
    n_test = _positive_int("n_test", n_test)
    jitter = _positive_int("jitter", jitter, 0)
    noise_rate = _probability("noise_rate", noise_rate)
    enc_name, enc_opts = encoder_settings(encoder, DEFAULT_ENCODER, encoder_options, UNIT_RANGE_DEFAULTS)

    pattern_seed = seed if pattern_seed is None else pattern_seed
    frozen = np.random.default_rng([int(pattern_seed), 11])
    rng_train = np.random.default_rng([int(seed), 12])
    rng_test = np.random.default_rng([int(seed), 13])
    y_tr = _balanced_labels(n_samples, n_classes, rng_train)
    y_te = _balanced_labels(n_test, n_classes, rng_test)
    info: dict[str, Any] = {
        "source": "generated spike patterns",
        "mode": kind,
        "steps": steps,
        "n_inputs": n_inputs,
        "noise_rate": noise_rate,
        "jitter": jitter,
        "pattern_seed": int(pattern_seed),
        "original_train_size": n_samples,
        "original_test_size": n_test,
    }
    target_tr = target_te = None

    if kind == "classification":
        cue_len = _positive_int("cue_len", cue_len)
        min_gap = _positive_int("min_gap", min_gap, 0)
        cue_rate = _probability("cue_rate", cue_rate)
        if n_cues is not None:
            n_cues = _positive_int("n_cues", n_cues, 2)
        fits = (steps + min_gap) // (cue_len + min_gap)
        orders = _choose_orders(n_classes, n_cues, fits, frozen)
        m = orders.shape[1]
        cues = _random_spikes((m, cue_len, n_inputs), cue_rate, frozen)
        for k in range(m):  # every cue must contain at least one spike
            if not cues[k].any():
                cues[k, frozen.integers(cue_len), frozen.integers(n_inputs)] = True
        clean_tr = _cue_sequences(y_tr, orders, cues, steps, min_gap, rng_train)
        clean_te = _cue_sequences(y_te, orders, cues, steps, min_gap, rng_test)
        info.update(
            {
                "n_cues": int(m),
                "cue_len": cue_len,
                "min_gap": min_gap,
                "cue_rate": cue_rate,
                "class_orders": orders.tolist(),
                "single_slot_identifying": _order_score(orders),
            }
        )
        n_out = n_classes
    else:
        n_outputs = _positive_int("n_outputs", n_outputs)
        pattern_rate = _probability("pattern_rate", pattern_rate)
        target_rate = _probability("target_rate", target_rate)
        inputs = _random_spikes((n_classes, steps, n_inputs), pattern_rate, frozen)
        start = steps // 10
        targets = np.zeros((n_classes, steps, n_outputs), dtype=bool)
        targets[:, start:] = _random_spikes((n_classes, steps - start, n_outputs), target_rate, frozen)
        for p, o in zip(*np.nonzero(~targets.any(axis=1))):  # at least one spike per output neuron
            targets[p, frozen.integers(start, steps), o] = True
        clean_tr, clean_te = inputs[y_tr], inputs[y_te]
        target_tr = torch.from_numpy(targets[y_tr].transpose(1, 0, 2).astype(np.float32))
        target_te = torch.from_numpy(targets[y_te].transpose(1, 0, 2).astype(np.float32))
        info.update(
            {
                "n_patterns": n_classes,
                "n_outputs": n_outputs,
                "pattern_rate": pattern_rate,
                "target_rate": target_rate,
                "target_spikes_per_pattern": [int(v) for v in targets.sum(axis=(1, 2))],
            }
        )
        n_out = n_outputs

    def to_tensor(spikes: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(spikes.transpose(1, 0, 2).astype(np.float32))  # [T, N, C]

    x_tr = to_tensor(_jitter_and_noise(clean_tr, jitter, noise_rate, rng_train))
    x_te = to_tensor(_jitter_and_noise(clean_te, jitter, noise_rate, rng_test))
    return build_task(
        name="patterns" if kind == "classification" else "patterns:generate",
        kind=kind,
        n_classes=n_out,
        x_train=x_tr,
        len_train=torch.full((n_samples,), steps, dtype=torch.int64),
        y_train=torch.from_numpy(y_tr),
        x_test=x_te,
        len_test=torch.full((n_test,), steps, dtype=torch.int64),
        y_test=torch.from_numpy(y_te),
        seed=seed,
        val_fraction=val_fraction,
        encoder=enc_name,
        encoder_options=enc_opts,
        normalize=False,
        target_train=target_tr,
        target_test=target_te,
        info=info,
    )


FAMILY = TaskFamily(
    "patterns", load_patterns, DEFAULT_ENCODER,
    (("patterns", "synthetic cue-order spike patterns that need memory; options: n_inputs, n_classes, steps, "
                  "n_samples, n_test, n_cues, cue_len, min_gap, cue_rate, noise_rate, jitter, pattern_seed"),
     ("patterns:generate", "map each input spike pattern to a target output spike train; options: n_outputs, ...")),
    argument="mode", modes=MODES,
)
