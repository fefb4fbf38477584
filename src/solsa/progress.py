"""Progress of a long run: a redrawn bar on a terminal, one line per epoch in a file or a CI log."""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["Progress", "RunProgress"]


class Progress:
    """Progress over ``epochs × batches``.

    On a terminal a tqdm bar is redrawn per batch (with the running loss and accuracy); when the
    stream is not a terminal (redirected to a file, a CI log) nothing is drawn per batch and one
    line is printed per epoch instead.
    """

    def __init__(self, epochs: int, batches: int, enabled: bool, desc: str, stream: TextIO | None = None,
                 start_epoch: int = 0) -> None:
        self.epochs, self.batches, self.desc = epochs, batches, desc
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.done = start_epoch * batches  # a resumed run starts after its finished epochs
        self.bar = None
        if enabled and _is_terminal(self.stream):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=epochs * batches, initial=self.done, desc=desc, unit="batch", leave=False,
                            dynamic_ncols=True, file=self.stream)

    def batch(self, epoch: int, epoch_loss: float, accuracy: float | None) -> None:
        """One batch of ``epoch`` done: ``epoch_loss`` summed so far, running training accuracy."""
        self.done += 1
        if self.bar is None:
            return
        seen = max(self.done - (epoch - 1) * self.batches, 1)
        running = {"acc": f"{accuracy:.3f}"} if accuracy is not None else {}
        self.bar.update(1)
        self.bar.set_postfix(epoch=epoch, loss=f"{epoch_loss / seen:.4f}", **running)

    def epoch(self, epoch: int, loss: float, val_accuracy: float) -> None:
        """End of ``epoch``: its mean loss and validation accuracy."""
        if self.bar is not None:
            self.bar.set_postfix(epoch=epoch, loss=f"{loss:.4f}", val=f"{val_accuracy:.3f}")
        elif self.enabled:
            print(f"{self.desc}: epoch {epoch}/{self.epochs}  loss {loss:.4f}  val {val_accuracy:.4f}",
                  file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class RunProgress:
    """Progress over ``total`` runs (``solsa compare``): on a terminal a tqdm bar naming the run in progress;
    elsewhere (a file, a CI log, a pipe) one line per finished run and nothing drawn."""

    def __init__(self, total: int, enabled: bool, desc: str, stream: TextIO | None = None) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled
        self.stream = stream or sys.stderr
        self.done_runs = 0
        self.bar = None
        if enabled and _is_terminal(self.stream):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="run", dynamic_ncols=True, file=self.stream)

    def start(self, what: str) -> None:
        """The run ``what`` begins."""
        if self.bar is not None:
            self.bar.set_postfix_str(what)

    def done(self, what: str, result: str = "", runs: int = 1) -> None:
        """``runs`` runs (``what``) finished, with a short ``result``."""
        self.done_runs += runs
        if self.bar is not None:
            self.bar.update(runs)
        elif self.enabled:
            print(f"{self.desc}: run {self.done_runs}/{self.total}  {what}  {result}".rstrip(), file=self.stream,
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
