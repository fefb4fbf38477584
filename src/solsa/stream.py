"""A river-style facade for streams: ``learn_one`` / ``predict_one``, one time step at a time.

>>> clf = StreamClassifier(SNN(12, [100, 100], 9, readout="leaky"), update_every=10)  # doctest: +SKIP
>>> for x_t in sequence:                                          # doctest: +SKIP
...     clf.learn_one(x_t, label)        # forward one step, learn online
>>> clf.end_sequence()                   # apply the last update, start the next sequence fresh

Memory and work per step are constant whatever the stream's length (the rule's
traces); the optimizer steps every ``update_every`` learning steps and at
``end_sequence``.
"""

from __future__ import annotations

import torch

from .layers import SNN
from .learner import Learner
from .rules import LearningRule, get_rule
from .validation import check_input, check_positive_int

__all__ = ["StreamClassifier"]


class StreamClassifier:
    """Learn a class online from a stream of single time steps (batch size 1).

    Args:
        net: the network; its readout decides the default loss (leaky: ``ce``, spike: ``mse``).
        rule: a rule name from ``solsa rules`` (must learn online: not ``bptt``) or a rule instance.
        optimizer: a ``torch.optim`` optimizer over ``net``'s parameters (default Adam, ``lr``).
        update_every: learning steps between optimizer steps (None: only at ``end_sequence``).
    """

    def __init__(
        self,
        net: SNN,
        rule: str | LearningRule = "solsa",
        *,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float = 1e-3,
        update_every: int | None = None,
    ) -> None:
        if isinstance(rule, str):
            rule = get_rule(rule).build(net, "ce" if net.readout == "leaky" else "mse")
        if not rule.capabilities.online:
            raise ValueError(f"StreamClassifier needs an online rule; {rule.name} must wait for the sequence to end")
        self.net, self.rule = net, rule
        self.optimizer = optimizer or torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
        self.learner = Learner(rule, self.optimizer)
        self.update_every = None if update_every is None else check_positive_int("update_every", update_every)
        self._since_update = 0
        self._score = torch.zeros(net.n_outputs)
        self.rule.reset(1)

    def _as_step(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=self.net.layers[0].weight.dtype)
        check_input(x.reshape(1, -1), self.net.n_inputs, rank=2, name="x")
        return x.reshape(1, -1)

    def _record(self, y: torch.Tensor) -> int:
        self._score += y[0].detach().cpu().to(self._score.dtype)
        return int(self._score.argmax())

    def learn_one(self, x: torch.Tensor, y: int) -> int:
        """One time step ``x`` ``[N_in]`` with its label ``y``; returns the class predicted so far."""
        if not 0 <= int(y) < self.net.n_outputs:
            raise ValueError(f"y must be a class in [0, {self.net.n_outputs}), got {y!r}")
        out = self.rule.step(self._as_step(x), torch.tensor([int(y)]))
        self._since_update += 1
        if self.update_every is not None and self._since_update >= self.update_every:
            self._update()
        return self._record(out.output)

    def predict_one(self, x: torch.Tensor) -> int:
        """One time step without learning; returns the class predicted so far in this sequence."""
        return self._record(self.rule.step(self._as_step(x)).output)

    def end_sequence(self) -> None:
        """Apply the pending update and start the next sequence from rest."""
        if self._since_update:
            self._update()
        self._score.zero_()
        self.rule.reset(1)

    def _update(self) -> None:
        self.learner.update()
        self._since_update = 0
