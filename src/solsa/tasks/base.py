"""Containers for datasets ("tasks") and a batch iterator.

All tensors are time-first: ``x`` is ``[T, N, C]`` (time, samples, channels). Samples
shorter than ``T`` are zero-padded at the end; ``lengths`` holds the number of valid steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import torch

from ..validation import check_positive_int

__all__ = ["Split", "Task", "Batch", "iterate_batches", "length_mask"]


def length_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """Boolean ``[steps, N]`` mask that is True on the first ``lengths[n]`` steps of sample ``n``."""
    return torch.arange(steps, device=lengths.device).unsqueeze(1) < lengths.unsqueeze(0)


@dataclass
class Split:
    """One part (train, validation or test) of a task.

    Attributes:
        x: ``[T, N, C]`` float32 inputs, zero after each sample's length.
        y: ``[N]`` int64 class labels (generation tasks: the pattern id).
        lengths: ``[N]`` int64 number of valid time steps per sample, each in ``1..T``.
        target: ``[T, N, C_out]`` float32 target spike trains for generation tasks, else None.
        index: ``[N]`` int64 position of each sample in its source, or None: for data with an
            official split, the original training set (train and validation) or test set
            (test); for data split by the loader (digits, npz without ``X_test``), the
            single original data set. Lets one check that no sample is shared between splits.
    """

    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor
    target: torch.Tensor | None = None
    index: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.x.dim() != 3 or self.x.dtype != torch.float32:
            raise ValueError(f"Split.x must be a float32 [T, N, C] tensor, got {self.x.dtype} {tuple(self.x.shape)}")
        steps, n = self.x.shape[0], self.x.shape[1]
        for name in ("y", "lengths", "index"):
            t = getattr(self, name)
            if t is None:
                continue
            if t.dtype != torch.int64 or tuple(t.shape) != (n,):
                raise ValueError(f"Split.{name} must be an int64 tensor of shape ({n},), got {t.dtype} {tuple(t.shape)}")
        if n and (int(self.lengths.min()) < 1 or int(self.lengths.max()) > steps):
            raise ValueError(f"Split.lengths must lie in 1..{steps}")
        if self.target is not None:
            if self.target.dim() != 3 or self.target.dtype != torch.float32 or tuple(self.target.shape[:2]) != (steps, n):
                raise ValueError(
                    f"Split.target must be a float32 [{steps}, {n}, C_out] tensor, "
                    f"got {self.target.dtype} {tuple(self.target.shape)}"
                )

    def __len__(self) -> int:
        return int(self.x.shape[1])

    @property
    def peak(self) -> float:
        """The largest ``|x|`` (0 for an empty split): the input scale checks read it."""
        return float(self.x.abs().max()) if self.x.numel() else 0.0

    @property
    def steps(self) -> int:
        """Padded number of time steps ``T``."""
        return int(self.x.shape[0])

    def mask(self) -> torch.Tensor:
        """``[T, N]`` float32 mask, 1 on valid steps and 0 on padding."""
        return length_mask(self.lengths, self.steps).to(torch.float32)

    def subset(self, idx: torch.Tensor | Sequence[int]) -> Split:
        """The samples at ``idx`` (integer indices or a boolean mask over samples); ``T`` is kept."""
        idx = torch.as_tensor(idx)
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        idx = idx.to(torch.int64)
        return Split(
            x=self.x[:, idx],
            y=self.y[idx],
            lengths=self.lengths[idx],
            target=None if self.target is None else self.target[:, idx],
            index=None if self.index is None else self.index[idx],
        )


@dataclass
class Task:
    """A dataset ready for training.

    Attributes:
        name: Spec-like name, e.g. ``"uea:JapaneseVowels"``.
        kind: ``"classification"`` or ``"generation"``.
        n_inputs: Number of input channels after encoding.
        n_classes: Number of classes (generation tasks: number of output neurons ``C_out``).
        train: Training samples (the validation samples removed).
        val: Validation samples carved from the original training set (stratified, seeded).
        test: The official / held-out test samples; never used for statistics or selection.
        info: JSON-serialisable facts (encoder, normalisation statistics, sizes, ``T``, ...).
    """

    name: str
    kind: str
    n_inputs: int
    n_classes: int
    train: Split
    val: Split
    test: Split
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("classification", "generation"):
            raise ValueError(f"Task.kind must be 'classification' or 'generation', got {self.kind!r}")
        for part in ("train", "val", "test"):
            split = getattr(self, part)
            if split.x.shape[2] != self.n_inputs:
                raise ValueError(f"Task.{part}.x has {split.x.shape[2]} channels, expected n_inputs={self.n_inputs}")


class Batch(NamedTuple):
    """A mini-batch: ``x [T_b, B, C]``, ``y [B]``, ``mask [T_b, B]`` float32, ``target [T_b, B, C_out]`` or None."""

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor | None


def iterate_batches(
    split: Split,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[Batch]:
    """Yield mini-batches of ``split``.

    Each batch is trimmed to ``T_b`` = the longest sample in the batch, so trailing padding
    shared by all its samples is dropped. With ``shuffle`` the order is a permutation drawn
    from ``generator`` (pass a seeded generator for reproducible order). ``drop_last`` skips
    a final batch smaller than ``batch_size``.
    """
    check_positive_int("batch_size", batch_size)
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if drop_last and len(idx) < batch_size:
            break
        lengths = split.lengths[idx]
        steps = int(lengths.max())
        yield Batch(
            x=split.x[:steps, idx],
            y=split.y[idx],
            mask=length_mask(lengths, steps).to(torch.float32),
            target=None if split.target is None else split.target[:steps, idx],
        )


@dataclass(frozen=True)
class TaskFamily:
    """A family of task specs, ``NAME`` or ``NAME:ARG``: one entry of :data:`solsa.tasks.TASKS`.

    Args:
        name: the spec's head (``"uea"`` in ``"uea:BasicMotions"``).
        loader: called as ``loader(*args, seed=, val_fraction=, encoder=, encoder_options=, **task_options)``;
            its keyword-only parameters are the family's task options.
        default_encoder: the encoder used when none is named.
        listing: ``(spec pattern, one-line description)`` rows shown by ``solsa tasks``.
        argument: ``"none"`` (no ``:ARG``), ``"required"`` (``ARG`` is the loader's first argument),
            ``"pair"`` (``A:B``, the loader's first two arguments) or ``"mode"`` (an optional ``:MODE``, one
            of ``modes``, passed as the option ``mode``).
        modes: the valid ``MODE`` values and what each means (``argument="mode"``).
        data_encoders: other encoders the loader picks by the data when none is named (uea: ``delay`` for a
            set with one channel); their options are accepted too, and the loader checks them against its choice.
    """

    name: str
    loader: Callable[..., "Task"]
    default_encoder: str
    listing: tuple[tuple[str, str], ...]
    argument: str = "none"
    modes: dict[str, str] = field(default_factory=dict)
    data_encoders: tuple[str, ...] = ()

    @property
    def default_encoders(self) -> tuple[str, ...]:
        """Every encoder the loader may use when none is named: the family's default, then those it picks by the data."""
        return (self.default_encoder, *self.data_encoders)

    def loader_args(self, spec: str, arg: str | None, options: dict[str, Any]) -> tuple[Any, ...] | None:
        """The loader's positional arguments for ``NAME[:arg]`` (None if the spec does not fit this family).

        May set ``options["mode"]``.
        """
        if self.argument == "none":
            return () if arg is None else None
        if self.argument == "required":
            return (arg,) if arg else None
        if self.argument == "pair":
            first, sep, second = (arg or "").partition(":")
            return (first, second) if first and sep and second else None
        if arg is None:
            return ()
        if arg not in self.modes:
            return None
        if "mode" in options and self.modes.get(options["mode"]) != self.modes[arg]:
            raise ValueError(f"task spec {spec!r} conflicts with mode={options['mode']!r}")
        options["mode"] = arg
        return ()
