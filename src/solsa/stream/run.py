"""``solsa stream``: prequential (test-then-train) learning on a stream, with checkpoints and resume.

Every step is first predicted (``predict_one``: the state does not move), then learned (``learn_one``:
the one step of the network). The run prints a line every ``print_every`` steps and writes into its
folder: ``metrics.json`` (strict JSON: undefined values are null), ``accuracy.csv`` (step, prequential
accuracy, windowed accuracy, segment accuracy), ``stream.png`` and ``checkpoint.pt``.

Checkpoints (every ``checkpoint_every`` steps, and at the end) are written atomically and hold the
network, the optimizer, the rule's state and traces, the label map, the metrics so far, the position
in the stream and the RNG state. A checkpoint applies the pending update first (it holds no partial
gradient), so a run resumed from one reproduces the uninterrupted run with the same options: a crash
resumes from the last periodic checkpoint; a run stopped with ``steps`` matches exactly when ``steps``
is a multiple of ``checkpoint_every``.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Hashable

import torch

from ..config import TrainConfig
from ..factories import build_learner, build_network
from ..io import load_checkpoint, save_checkpoint, write_csv, write_json
from ..runs import RunLock, prepare_out_dir
from . import DEFAULT_HORIZON, StreamClassifier
from .sources import CsvStream, TaskStream
from ..validation import OptionError, check_positive_int

__all__ = ["STREAM_OPTIONS", "run_stream", "resume_stream", "plot_stream"]

# The stream's own options and their defaults (the network, rule and optimizer come from TrainConfig).
STREAM_OPTIONS: dict[str, Any] = {
    "csv": None, "drift_at": None, "passes": 1, "steps": None, "update_every": None, "checkpoint_every": None,
    "print_every": 1000, "window": 500, "classes": None, "max_classes": None, "horizon": DEFAULT_HORIZON,
}


class Prequential:
    """Running test-then-train metrics; :meth:`state` / :meth:`load` make them checkpointable."""

    def __init__(self, window: int) -> None:
        self.steps = self.labelled = self.correct = 0
        self.recent: deque[int] = deque(maxlen=window)
        self.segments = self.segment_correct = 0
        self.segment_hit: int | None = None  # the current segment's last labelled prediction: right (1) or not
        self.drift_labelled = self.drift_correct = 0
        self.window_before_drift: float | None = None
        self.seconds = 0.0  # wall time of the steps, over every resumed part
        self.rows: list[dict[str, Any]] = []
        self._since = time.perf_counter()

    def start_clock(self) -> None:
        self._since = time.perf_counter()

    def tick(self) -> None:
        """Add the time since the last tick to :attr:`seconds`."""
        now = time.perf_counter()
        self.seconds += now - self._since
        self._since = now

    def record(self, predicted: Hashable | None, label: Hashable | None, after_drift: bool) -> None:
        self.steps += 1
        if label is None:
            return
        hit = int(predicted == label)
        self.labelled += 1
        self.correct += hit
        self.recent.append(hit)
        self.segment_hit = hit
        if after_drift:
            self.drift_labelled += 1
            self.drift_correct += hit

    def end_segment(self) -> None:
        if self.segment_hit is not None:
            self.segments += 1
            self.segment_correct += self.segment_hit
        self.segment_hit = None

    @property
    def accuracy(self) -> float | None:
        return _ratio(self.correct, self.labelled)

    @property
    def window_accuracy(self) -> float | None:
        return _ratio(sum(self.recent), len(self.recent))

    @property
    def segment_accuracy(self) -> float | None:
        return _ratio(self.segment_correct, self.segments)

    def row(self) -> dict[str, Any]:
        return {"step": self.steps, "prequential_accuracy": self.accuracy, "window_accuracy": self.window_accuracy,
                "segment_accuracy": self.segment_accuracy}

    def state(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, deque) else v) for k, v in vars(self).items() if not k.startswith("_")}

    def load(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, deque(value, maxlen=self.recent.maxlen) if key == "recent" else value)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _open(cfg: TrainConfig, opts: dict[str, Any], header: list[str] | None = None):
    """The source and a fresh classifier for ``cfg`` and the stream options (``header``: a resumed CSV
    stream's columns)."""
    if opts["csv"] is not None:
        source: CsvStream | TaskStream = CsvStream(opts["csv"], header)
        if opts["drift_at"] is not None:
            raise OptionError("drift_at", "drift_at applies to task streams only (it permutes a task's labels)")
        if not source.has_segments and opts["update_every"] is None:
            raise OptionError("update_every", f"update_every must be given: {source.name} has no 'segment' column "
                                              "(one endless segment, never ended)")
        classes = opts["classes"]
        n_outputs = opts["max_classes"] or (len(classes) if classes else None)
        if n_outputs is None:
            raise OptionError("max_classes", "max_classes (the readout size) or classes must be given for a CSV "
                                             "stream")
    else:
        source = TaskStream(cfg.task, seed=cfg.seed, passes=opts["passes"], drift_at=opts["drift_at"],
                            encoder=cfg.encoder, **cfg.task_options)
        classes, n_outputs = source.classes, len(source.classes)
    torch.manual_seed(cfg.seed)
    net = build_network(cfg, source.n_inputs, check_positive_int("max_classes", n_outputs))
    # a CSV's range is unknown before it is read: trace_dtype auto keeps full storage there (float16 could overflow)
    learner = build_learner(cfg, net, input_scale=source.input_scale)
    clf = StreamClassifier(net, learner.rule, optimizer=learner.optimizer, update_every=opts["update_every"],
                           classes=classes, horizon=opts["horizon"])
    return source, clf


def _check_options(opts: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(opts) - set(STREAM_OPTIONS))
    if unknown:
        raise ValueError(f"unknown stream option(s) {unknown}; valid: {sorted(STREAM_OPTIONS)}")
    opts = {**STREAM_OPTIONS, **opts}
    for name in ("passes", "print_every", "window"):
        check_positive_int(name, opts[name])
    for name in ("steps", "update_every", "checkpoint_every", "max_classes", "horizon"):
        if opts[name] is not None:
            check_positive_int(name, opts[name])
    if opts["classes"] is not None:
        opts["classes"] = [str(c) for c in opts["classes"]]
    return opts


def run_stream(cfg: TrainConfig, out: str | Path, *, force: bool = False,
               log: Callable[[str], None] = print, **options: Any) -> dict[str, Any]:
    """Learn the stream of ``cfg.task`` (or ``options["csv"]``) prequentially; returns the metrics (also in
    ``out/metrics.json``). ``options``: the keys of :data:`STREAM_OPTIONS`."""
    opts = _check_options(options)
    out_dir, lock = prepare_out_dir(out, force)  # locked: one process per run folder
    try:
        source, clf = _open(cfg, opts)
        return _loop(cfg, opts, source, clf, Prequential(opts["window"]), out_dir, log)
    finally:
        lock.release()


def resume_stream(out: str | Path, *, steps: int | None = None, print_every: int | None = None,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Continue the run in ``out`` from its checkpoint (to ``steps`` in all, or to the stream's end)."""
    out_dir = Path(out)
    if not (out_dir / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"{out_dir / 'checkpoint.pt'} does not exist: nothing to resume in {out_dir}")
    with RunLock(out_dir):
        return _resume(out_dir, steps, print_every, log)


def _resume(out_dir: Path, steps: int | None, print_every: int | None, log: Callable[[str], None]) -> dict[str, Any]:
    ckpt = load_checkpoint(out_dir / "checkpoint.pt")
    if ckpt["config"].get("kind") != "stream":
        raise ValueError(f"{out_dir / 'checkpoint.pt'} is not a checkpoint of `solsa stream`")
    cfg = TrainConfig.from_dict(ckpt["config"]["train"])
    changes = {k: v for k, v in (("steps", steps), ("print_every", print_every)) if v is not None}
    opts = _check_options({**ckpt["config"]["stream"], **changes})
    state = ckpt["state_dict"]
    if state.get("finished") and opts["csv"] is None:
        raise ValueError(_used_up(out_dir, state["prequential"]["steps"], opts))
    source, clf = _open(cfg, opts, state.get("csv_header"))
    clf.load_state_dict(state["classifier"])
    pq = Prequential(opts["window"])
    pq.load(state["prequential"])
    torch.set_rng_state(state["rng"])
    log(f"resuming {out_dir} at step {pq.steps}")
    return _loop(cfg, opts, source, clf, pq, out_dir, log, used_up=bool(state.get("finished")))


def _used_up(out_dir: Path, steps: int, opts: dict[str, Any]) -> str:
    """Why a finished stream has nothing to resume, and how to go on."""
    how = {None: f"start a new run with more --passes (now {opts['passes']}) into another --out or with --force",
           "-": "pipe the next rows into --resume (the header line may be left out: the run keeps its columns)"
           }.get(opts["csv"], f"append rows to {opts['csv']} and resume again")
    return f"the stream of {out_dir} is used up: all {steps:,} steps were learned and nothing came after; to go on, {how}"


def _loop(cfg, opts, source, clf: StreamClassifier, pq: Prequential, out_dir: Path, log,
          used_up: bool = False) -> dict[str, Any]:
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    limit, every, ckpt_every = opts["steps"], opts["print_every"], opts["checkpoint_every"]
    record_every = max(1, every // 10)  # rows of accuracy.csv: ten per progress line
    drift_step = getattr(source, "drift_step", None)
    name = getattr(source, "name", "stream")
    finished = limit is None or pq.steps < limit
    first = pq.steps
    pq.start_clock()
    try:
        for item in (source.steps(pq.steps) if finished else ()):
            try:
                clf.check_one(item.x, item.label)  # nothing moves for a bad sample
            except (ValueError, TypeError) as err:
                where = f"line {item.line} of {name}" if item.line is not None else f"step {pq.steps}"
                raise type(err)(f"{where}: {err}") from None
            if item.start and clf.segment_steps:
                pq.end_segment()
                clf.end_sequence()
            after_drift = drift_step is not None and pq.steps >= drift_step
            if after_drift and pq.steps == drift_step:
                pq.window_before_drift = pq.window_accuracy
            predicted = clf.predict_one(item.x)
            clf.learn_one(item.x, item.label)
            pq.record(predicted, item.label, after_drift)
            if pq.steps % record_every == 0:
                pq.rows.append(pq.row())
            if pq.steps % every == 0:
                log(_line(pq))
            if ckpt_every is not None and pq.steps % ckpt_every == 0:
                _save(out_dir, cfg, opts, clf, pq, source)
                _write(out_dir, cfg, opts, source, clf, pq, finished=False, plot=False)  # what a crash leaves
            if limit is not None and pq.steps >= limit:
                finished = False  # stopped at `steps` (the source is not read further)
                break
        if used_up and pq.steps == first:  # a finished CSV stream with no new rows: nothing is rewritten
            raise ValueError(_used_up(out_dir, pq.steps, opts))
        if finished:
            pq.end_segment()
            clf.end_sequence()
        if not pq.rows or pq.rows[-1]["step"] != pq.steps:
            pq.rows.append(pq.row())
        _save(out_dir, cfg, opts, clf, pq, source, finished)
    finally:
        torch.set_num_threads(threads)
    return _write(out_dir, cfg, opts, source, clf, pq, finished=finished, plot=True)


def _write(out_dir: Path, cfg, opts, source, clf: StreamClassifier, pq: Prequential, *, finished: bool,
           plot: bool) -> dict[str, Any]:
    """``accuracy.csv``, ``stream.png`` (with ``plot``) and, last, ``metrics.json``; returns the metrics."""
    metrics = _metrics(cfg, opts, source, clf, pq, finished)
    write_csv(out_dir / "accuracy.csv", pq.rows)
    if plot:
        title = f"{cfg.rule} on {getattr(source, 'name', 'stream')}"
        plot_stream(out_dir / "stream.png", pq.rows, getattr(source, "drift_step", None), title)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def _line(pq: Prequential) -> str:
    def fmt(v: float | None) -> str:
        return "  -   " if v is None else f"{v:.4f}"

    return (f"step {pq.steps:>9,}  prequential {fmt(pq.accuracy)}  window {fmt(pq.window_accuracy)}  "
            f"segments {pq.segments:,} (accuracy at their end {fmt(pq.segment_accuracy)})")


def _save(out_dir: Path, cfg: TrainConfig, opts: dict, clf: StreamClassifier, pq: Prequential, source,
          finished: bool = False) -> None:
    """An atomic checkpoint here (the pending update applied first); ``finished``: the source is used up."""
    clf.update()
    pq.tick()
    state = {"classifier": clf.state_dict(), "prequential": pq.state(), "rng": torch.get_rng_state(),
             "finished": finished, "csv_header": getattr(source, "header", None)}
    save_checkpoint(out_dir / "checkpoint.pt", state, {"kind": "stream", "train": cfg.to_dict(), "stream": opts})


def _metrics(cfg, opts, source, clf: StreamClassifier, pq: Prequential, finished: bool) -> dict[str, Any]:
    return {
        "source": source.describe(),
        "finished": finished,
        "steps": pq.steps,
        "labelled_steps": pq.labelled,
        "prequential_accuracy": pq.accuracy,
        "window": opts["window"],
        "window_accuracy": pq.window_accuracy,
        "segments": pq.segments,
        "segment_accuracy": pq.segment_accuracy,
        "drift_step": getattr(source, "drift_step", None),
        "window_accuracy_before_drift": pq.window_before_drift,
        "accuracy_after_drift": _ratio(pq.drift_correct, pq.drift_labelled),
        "updates": clf.updates,
        "classes": [str(c) for c in clf.classes],
        "wall_seconds": pq.seconds,
        "steps_per_second": _ratio(pq.steps, pq.seconds),
        "train_state_bytes": clf.rule.train_state_bytes(),
        "backend": clf.rule.active_backend,
        "config": cfg.to_dict(),
        "stream_options": opts,
    }


def plot_stream(path: str | Path, rows: list[dict[str, Any]], drift_step: int | None, title: str) -> None:
    """Prequential, windowed and end-of-segment accuracy against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import save_figure

    fig, ax = plt.subplots(figsize=(8, 4))
    steps = [r["step"] for r in rows]
    for key, label in (("prequential_accuracy", "prequential (all labelled steps so far)"),
                       ("window_accuracy", "window (recent labelled steps)"),
                       ("segment_accuracy", "at the end of each segment, so far")):
        ax.plot(steps, [float("nan") if r[key] is None else r[key] for r in rows], label=label)
    if drift_step is not None:
        ax.axvline(drift_step, color="grey", ls=":", label=f"label drift (step {drift_step:,})")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("stream step"), ax.set_ylabel("accuracy"), ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
