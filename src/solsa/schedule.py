"""Scheduled weight update (docs/model.md §4): the time steps at which the optimizer steps.

Gradients accumulate at every step; the optimizer steps only at the update
points. Points are kept as offsets from the last step of a sequence (offset 0
is the last step), so one schedule fits sequences of any length.

- ``end``: the last step only.
- ``every:K``: every K steps, and the last step.
- ``search:K``: start from the last step; every ``period`` epochs rank the offsets
  by the weight-gradient magnitude ``Σ|∂ℓ_t/∂W|`` accumulated since the last
  addition and add the strongest offset not yet chosen, until K points are fixed
  (the authors' approach).
"""

from __future__ import annotations

from collections import defaultdict

from .validation import OptionError, check_positive_int

__all__ = ["UpdateSchedule", "SCHEDULE_MODES"]

SCHEDULE_MODES = ("end", "every", "search")


class UpdateSchedule:
    def __init__(self, spec: str = "end", period: int = 5) -> None:
        self.spec = spec
        mode, _, arg = spec.partition(":")
        if not isinstance(spec, str) or mode not in SCHEDULE_MODES or (mode == "end") == bool(arg):
            raise OptionError("schedule", "schedule must be 'end', 'every:K' or 'search:K' (K a positive integer), "
                              f"got {spec!r}")
        k = 1
        if arg:
            if not arg.isdigit() or int(arg) < 1:
                raise OptionError("schedule", f"schedule {spec!r}: K must be a positive integer, got {arg!r}")
            k = int(arg)
        check_positive_int("search_period", period)
        self.mode, self.k, self.period = mode, k, period
        self.offsets: list[int] = [0]
        self._magnitude: dict[int, float] = defaultdict(float)

    @property
    def searching(self) -> bool:
        """Whether per-step gradient magnitudes are still needed."""
        return self.mode == "search" and len(self.offsets) < self.k

    def points(self, T: int) -> set[int]:
        """The step indices ``t`` (0-based) of a length-``T`` sequence after which the optimizer steps."""
        if self.mode == "every":
            return {t for t in range(T) if (t + 1) % self.k == 0} | {T - 1}
        return {T - 1 - off for off in self.offsets if off < T}

    def record(self, T: int, t: int, magnitude: float) -> None:
        """Add the weight-gradient magnitude of step ``t`` of a length-``T`` sequence."""
        self._magnitude[T - 1 - t] += magnitude

    def end_epoch(self, epoch: int) -> None:
        """After epoch ``epoch`` (1-based): every ``period`` epochs, fix the strongest new offset."""
        if not self.searching or epoch % self.period:
            return
        candidates = [(m, -off) for off, m in self._magnitude.items() if off not in self.offsets]
        if candidates:
            self.offsets.append(-max(candidates)[1])
        self._magnitude.clear()

    def state_dict(self) -> dict:
        """What a resumed run needs: the chosen offsets and the magnitudes recorded since the last addition."""
        return {"offsets": list(self.offsets), "magnitude": dict(self._magnitude)}

    def load_state_dict(self, state: dict) -> None:
        self.offsets = list(state["offsets"])
        self._magnitude = defaultdict(float, state["magnitude"])

    def to_dict(self) -> dict:
        return {"spec": self.spec, "period": self.period, "offsets_from_end": sorted(self.offsets)}
