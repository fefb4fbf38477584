"""Streams for ``solsa stream``: a task's series one after another, or rows of a CSV file (or stdin).

Both yield :class:`StreamStep` s from any position (``steps(start)``), so a resumed run skips exactly
what it had consumed.

**Task stream** (:class:`TaskStream`): every series of the task (train, validation and test sets
together, in an order drawn from the seed; ``passes`` times, a new order each pass) is played one
time step after another; each series is a segment with its label, its first step marks the
boundary. ``drift_at`` (a fraction of the stream) permutes the label mapping from the first
segment that starts at or after that point: every class is renamed to another one (a cyclic
permutation of the classes in a seeded order), so a learner must relearn the mapping.

**CSV stream** (:class:`CsvStream`), the format::

    f1,f2,f3,label,segment        a header line names the columns
    0.1,0.5,-1.2,walk,7           one row per time step; every column but label and segment is a feature
    0.2,0.4,-1.0,,7               an empty label: not known at this step (the learner only advances)
    0.0,0.1,0.3,run,8             a new segment id: this row starts a new segment

``label`` and ``segment`` are optional columns (no ``segment`` column: one endless segment; give an
update interval then). Labels are strings; blank lines are skipped. A malformed row raises a
``ValueError`` naming its line.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import Hashable, Iterator, NamedTuple

import torch

from ..validation import OptionError, check_positive_int, check_range

__all__ = ["StreamStep", "TaskStream", "CsvStream", "LABEL_COLUMN", "SEGMENT_COLUMN"]

LABEL_COLUMN = "label"
SEGMENT_COLUMN = "segment"


class StreamStep(NamedTuple):
    x: torch.Tensor  # [N_in] (task: the task's dtype; CSV: float64, cast and checked by the learner)
    label: Hashable | None  # None: not known at this step
    start: bool  # the first step of a segment
    line: int | None  # the CSV line it came from (None for a task stream)


class TaskStream:
    """The series of task ``spec`` concatenated, a label per segment (see the module's docstring).

    Args:
        spec: a classification task spec (``solsa tasks``); ``load_options`` go to :func:`~solsa.tasks.load_task`.
        seed: the order of the series and the drift permutation (and the task's own seed).
        passes: times the whole set is played.
        drift_at: None, or the fraction of the stream in (0, 1) after which the labels are permuted.
    """

    def __init__(self, spec: str, *, seed: int = 0, passes: int = 1, drift_at: float | None = None,
                 **load_options) -> None:
        from ..tasks import load_task

        task = load_task(spec, seed=seed, **load_options)
        if task.kind != "classification":
            raise OptionError("task", f"task must be a classification task to stream, {spec!r} is {task.kind}")
        self.name, self.n_inputs = task.name, task.n_inputs
        self.input_scale = max(split.peak for split in (task.train, task.val, task.test))  # the largest |x| streamed
        self.classes: list[Hashable] = list(range(task.n_classes))
        self.passes = check_positive_int("passes", passes)
        self._series: list[tuple[torch.Tensor, int]] = []
        for split in (task.train, task.val, task.test):
            for i in range(len(split)):
                self._series.append((split.x[: int(split.lengths[i]), i].contiguous(), int(split.y[i])))
        gen = torch.Generator().manual_seed(seed)
        n = len(self._series)
        self._orders = [torch.randperm(n, generator=gen).tolist() for _ in range(self.passes)]
        self.total = self.passes * sum(len(x) for x, _ in self._series)
        order = torch.randperm(len(self.classes), generator=gen).tolist()
        self.drift_map = {order[i]: order[(i + 1) % len(order)] for i in range(len(order))}
        self.drift_at = None if drift_at is None else check_range("drift_at", drift_at, 0.0, 1.0, lo_open=True)
        self.drift_step: int | None = None
        if drift_at is not None:
            threshold, pos = math.floor(drift_at * self.total), 0
            for x, _ in self._segments():
                if pos >= threshold:
                    self.drift_step = pos
                    break
                pos += len(x)

    def _segments(self) -> Iterator[tuple[torch.Tensor, int]]:
        for order in self._orders:
            for i in order:
                yield self._series[i]

    def describe(self) -> dict:
        return {"kind": "task", "task": self.name, "series": len(self._series), "passes": self.passes,
                "total_steps": self.total, "drift_at": self.drift_at, "drift_step": self.drift_step}

    def steps(self, start: int = 0) -> Iterator[StreamStep]:
        """The stream from step ``start`` on."""
        pos = 0
        for x, label in self._segments():
            if pos + len(x) <= start:
                pos += len(x)
                continue
            if self.drift_step is not None and pos >= self.drift_step:
                label = self.drift_map[label]
            for t in range(max(start - pos, 0), len(x)):
                yield StreamStep(x[t], label, t == 0, None)
            pos += len(x)


class CsvStream:
    """Rows of a CSV file (``"-"``: standard input) as time steps (format in the module's docstring).

    ``header``: the columns of a run being resumed (its checkpoint keeps them). Standard input may then
    start with the header line again or go straight on with rows; a file must still have those columns.
    """

    input_scale = math.inf  # the largest |x|: unknown before the file is read

    def __init__(self, path: str, header: list[str] | None = None) -> None:
        self.path = path
        self.name = "stdin" if path == "-" else str(path)
        if path != "-" and not Path(path).is_file():
            raise FileNotFoundError(f"CSV file {path} does not exist")
        self._stdin = csv.reader(sys.stdin) if path == "-" else None
        self._first: list[str] | None = None  # a row of stdin read while looking for its header
        if self._stdin is not None:
            first = self._read(lambda: next(self._stdin, None), 1)
            if header is not None and first is not None and [h.strip() for h in first] != header:
                self._first = first  # the rows go straight on: the saved columns apply
            else:
                header = first if header is None else header
        else:
            with open(path, newline="", encoding="utf-8") as f:
                first = self._read(lambda: next(csv.reader(f), None), 1)
            if header is not None and first is not None and [h.strip() for h in first] != header:
                raise ValueError(f"line 1 of {self.name}: the columns {first} are not the run's {header}")
            header = first
        if not header:
            raise ValueError(f"line 1 of {self.name}: expected a header line naming the columns")
        header = [h.strip() for h in header]
        if len(set(header)) != len(header) or "" in header:
            raise ValueError(f"line 1 of {self.name}: column names must be distinct and non-empty, got {header}")
        self.header = header
        self.features = [h for h in header if h not in (LABEL_COLUMN, SEGMENT_COLUMN)]
        if not self.features:
            raise ValueError(f"line 1 of {self.name}: no feature columns (every column but "
                             f"{LABEL_COLUMN!r} and {SEGMENT_COLUMN!r} is a feature)")
        self._cols = [header.index(h) for h in self.features]
        self._label = header.index(LABEL_COLUMN) if LABEL_COLUMN in header else None
        self._segment = header.index(SEGMENT_COLUMN) if SEGMENT_COLUMN in header else None
        self.n_inputs = len(self.features)
        self.has_segments = self._segment is not None
        self.classes: list[Hashable] | None = None  # learned as they appear

    def _read(self, read, line: int):
        """``read()``, with the csv module's errors (a field over its size limit, a bad quote) named by line."""
        try:
            return read()
        except csv.Error as err:
            raise ValueError(f"line {line} of {self.name}: not a CSV row a stream can hold ({err})") from None

    def describe(self) -> dict:
        return {"kind": "csv", "file": self.name, "features": self.features,
                "label_column": self._label is not None, "segment_column": self.has_segments}

    def steps(self, start: int = 0) -> Iterator[StreamStep]:
        """The rows from data row ``start`` on (standard input cannot rewind: its rows are taken as the
        continuation)."""
        if self._stdin is not None:
            yield from self._rows(self._stdin, 0, self._first)
            return
        with open(self.path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            self._read(lambda: next(reader, None), 1)
            yield from self._rows(reader, start)

    def _rows(self, reader, skip: int, first: list[str] | None = None) -> Iterator[StreamStep]:
        width, previous, seen = len(self.header), None, 0
        rows = iter(reader)
        while True:
            if first is not None:
                row, first = first, None
            else:
                row = self._read(lambda: next(rows, None), reader.line_num + 1)
                if row is None:
                    return
            line = reader.line_num
            if not row or all(not field.strip() for field in row):
                continue
            if len(row) != width:
                raise ValueError(f"line {line} of {self.name}: expected {width} fields ({','.join(self.header)}), "
                                 f"got {len(row)}")
            segment = row[self._segment].strip() if self._segment is not None else None
            begins = segment != previous
            previous = segment
            seen += 1
            if seen <= skip:
                continue
            values = []
            for c in self._cols:
                try:
                    values.append(float(row[c]))
                except ValueError:
                    raise ValueError(f"line {line} of {self.name}: column {self.header[c]!r} must be a number, "
                                     f"got {row[c]!r}") from None
            label = row[self._label].strip() if self._label is not None else ""
            yield StreamStep(torch.tensor(values, dtype=torch.float64), label or None,  # the learner casts
                             begins and self._segment is not None, line)

