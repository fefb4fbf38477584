"""A stream learner with river's conventions: ``predict_proba_one`` / ``predict_one`` / ``learn_one``.

>>> clf = StreamClassifier(SNN(12, [100, 100], 9, readout="leaky"), update_every=10)  # doctest: +SKIP
>>> for x, y in stream:                  # x: a dict of floats (or a tensor [N_in]), y: any hashable label
...     y_pred = clf.predict_one(x)      # pure: the network does not move
...     clf.learn_one(x, y)              # the one call that advances the network by a time step

The rules of the game:

* **One step per sample.** ``predict_proba_one`` and ``predict_one`` compute the next step from the
  current neuron state with the rule's pure ``predict_step`` (the pure :func:`~solsa.functional.lif_step`
  through ``net.step``; SOLSA's fused kernel has its own pure step, tested equal) and change nothing;
  ``learn_one`` advances the state, accumulates the rule's gradient and returns None.
  River's ``progressive_val_score`` (predict, then learn) therefore steps the network once per sample.
  With river installed the class registers itself as a ``river.base.Classifier``.
* **Predictions** are "the class so far in this segment": the readout's output accumulated since the
  segment began, this step's included (leaky readout: softmax of the time-averaged output; spiking
  readout: spike counts, normalised).
* **Labels** are any hashable values, mapped to output neurons 0, 1, ... in the order given up front
  (``classes=``) or as they first appear, up to the readout size.
* **Segments** (sequences) end at ``end_sequence()`` or when ``x[boundary_key]`` is true: that sample
  is the first step of a new segment (the pending update is applied and the state starts from rest).
* **Late labels.** ``learn_one(x, None)`` advances the state without learning; once the label is known
  pass it. A label known only at a segment's last step still trains on the whole segment: the rule's
  traces carry every earlier input's influence on that step (SOLSA's update at the end). A label that
  arrives after its segment ended cannot be used (its traces are gone).
* **Updates**: the :class:`~solsa.learner.Learner` applies the gradient every ``update_every``
  labelled steps and at the end of each segment. Memory and work per step stay constant.
* **Bad input** (wrong width, NaN/inf, a new label when every output neuron is taken) raises a
  ``ValueError`` naming the step, before anything changes.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Hashable, Iterable, Iterator, Mapping

import torch

from .config import TrainConfig
from .factories import parameter_groups
from .layers import SNN
from .learner import Learner
from .rules import LearningRule, get_rule
from .validation import OptionError, check_positive_int

__all__ = ["StreamClassifier", "trace_tensors"]

Sample = Mapping[str, Any] | torch.Tensor


class StreamClassifier:
    """Learn to classify a stream of single time steps (batch size 1), online.

    Args:
        net: the network; its readout decides the default loss (leaky: ``ce``, spike: ``mse``) and its
            output size the number of labels it can learn.
        rule: a rule name from ``solsa rules`` that learns online (not ``bptt``) or a rule instance on ``net``.
        optimizer: a ``torch.optim`` optimizer over ``net``'s parameters (default Adam with ``lr``, α, β, λ
            stepped as by ``solsa train``'s defaults: :func:`solsa.factories.parameter_groups`).
        update_every: labelled steps between updates (None: only at the end of each segment).
        classes: labels known up front, mapped to output neurons in this order (more may be added as
            they appear, up to ``net.n_outputs``).
        features: the keys of dict inputs, in input-channel order (default: the first dict's keys).
        boundary_key: a key of dict inputs whose true value marks the first step of a new segment
            (not a feature).
    """

    _supervised = True  # river's estimator conventions
    _multiclass = True

    def __init__(
        self,
        net: SNN,
        rule: str | LearningRule = "solsa",
        *,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float = 1e-3,
        update_every: int | None = None,
        classes: Iterable[Hashable] | None = None,
        features: Iterable[str] | None = None,
        boundary_key: str | None = None,
    ) -> None:
        if isinstance(rule, str):
            rule = get_rule(rule).build(net, "ce" if net.readout == "leaky" else "mse")
        if not rule.capabilities.online or not hasattr(rule, "predict_step"):
            raise OptionError("rule", f"StreamClassifier needs an online rule; {rule.name} must wait for the "
                                      "sequence to end")
        if rule.net is not net:
            raise OptionError("rule", "rule must be built on the same network as net")
        self.net, self.rule = net, rule
        if optimizer is None:  # as `solsa train` builds it: the neuron dynamics stepped as its defaults say
            defaults = TrainConfig()
            optimizer = torch.optim.Adam(parameter_groups(net, lr, defaults.filter_lr_scale, defaults.filter_update))
        self.optimizer = optimizer
        self.learner = Learner(rule, optimizer)
        self.update_every = None if update_every is None else check_positive_int("update_every", update_every)
        self.boundary_key = boundary_key
        self.classes: list[Hashable] = []
        self._index: dict[Hashable, int] = {}
        for label in classes or ():
            self._new_label(label, "classes")
            if label in self._index:
                raise OptionError("classes", f"classes lists {label!r} twice")
            self._index[label] = len(self.classes)
            self.classes.append(label)
        self.features: list[str] | None = None
        if features is not None:
            self.features = [str(k) for k in features]
            if len(self.features) != net.n_inputs or len(set(self.features)) != net.n_inputs:
                raise OptionError("features", f"features must name {net.n_inputs} distinct keys (the network's "
                                              f"inputs), got {self.features}")
        self.steps = 0  # time steps advanced (learn_one calls)
        self.segment_steps = 0  # of them, in the current segment
        self.updates = 0  # updates applied
        self._since_update = 0  # labelled steps since the last update
        w = net.layers[0].weight
        self._device = w.device
        self._row = torch.zeros(1, net.n_inputs, dtype=w.dtype)  # reused for every dict input
        self._row_np = self._row.numpy() if w.dtype in (torch.float32, torch.float64) else None
        self._targets = [torch.tensor([i], device=w.device) for i in range(net.n_outputs)]  # one per neuron
        self._score = torch.zeros(1, net.n_outputs, dtype=w.dtype, device=w.device)  # the segment's summed output
        self._rest = net.init_state(1)
        rule.reset(1)
        _register_with_river()

    # ---- river's interface -------------------------------------------------------------------------------------

    def learn_one(self, x: Sample, y: Hashable | None = None) -> None:
        """Advance the network by the time step ``x`` and learn the label ``y`` there (None: not known yet)."""
        row, start, keys = self._parse(x)
        index = None if y is None else self._label_index(y)
        # validated: from here on the sample is taken
        if keys is not None and self.features is None:
            self.features = keys
        if index is not None and index == len(self.classes):
            self.classes.append(y)
            self._index[y] = index
        if start and self.segment_steps:
            self.end_sequence()
        if index is None:
            out = self.rule.step(row).output
        else:
            out = self.rule.step(row, self._targets[index]).output
            self._since_update += 1
        self._score.add_(out)
        self.steps += 1
        self.segment_steps += 1
        if self.update_every is not None and self._since_update >= self.update_every:
            self.update()

    def predict_proba_one(self, x: Sample) -> dict[Hashable, float]:
        """Probability of each known label for the segment so far, this step included (changes nothing)."""
        score, n = self._next_scores(x)
        k = len(self.classes)
        if not k:
            return {}
        score = score[:k]
        if self.net.readout == "leaky":
            p = torch.softmax(score / n, 0)
        else:
            total = float(score.sum())
            p = score / total if total > 0 else torch.full_like(score, 1.0 / k)
        return dict(zip(self.classes, p.tolist()))

    def predict_one(self, x: Sample) -> Hashable | None:
        """The most likely known label for the segment so far, this step included (None before any label)."""
        score, _ = self._next_scores(x)
        k = len(self.classes)
        if not k:
            return None
        return self.classes[int((score if k == score.shape[0] else score[:k]).argmax())]

    def check_one(self, x: Sample, y: Hashable | None = None) -> None:
        """Raise the error ``learn_one(x, y)`` would raise, changing nothing (a caller that must act before
        learning, e.g. end a segment, checks the sample first)."""
        self._parse(x)
        if y is not None:
            self._label_index(y)

    # ---- segments, updates, state ------------------------------------------------------------------------------

    def end_sequence(self) -> None:
        """End the current segment: apply the pending update and start the next segment from rest."""
        if self._since_update:
            self.update()
        self.rule.reset(1)
        self._score.zero_()
        self.segment_steps = 0

    def update(self) -> None:
        """Apply the gradient accumulated since the last update now (nothing happens without one)."""
        if self._since_update:
            self.learner.update()
            self.updates += 1
            self._since_update = 0

    @property
    def pending(self) -> bool:
        """Whether labelled steps since the last update hold a gradient not applied yet."""
        return self._since_update > 0

    def state_dict(self) -> dict[str, Any]:
        """A copy of everything needed to continue exactly here (tensors and plain data). Call
        :meth:`update` first: a snapshot holds no partial gradient."""
        if self._since_update:
            raise RuntimeError("state_dict: a gradient is pending; call update() first")
        return {
            "net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "traces": [trace_tensors(tr) for tr in self.rule.traces],
            "score": self._score.clone(),
            "classes": list(self.classes),
            "features": None if self.features is None else list(self.features),
            "counters": {"steps": self.steps, "segment_steps": self.segment_steps, "updates": self.updates},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict` (same network shape, rule and optimizer)."""
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        if len(state["traces"]) != len(self.rule.traces):
            raise ValueError("state_dict: the saved traces are of another network")
        for tr, saved in zip(self.rule.traces, state["traces"]):
            _load_trace_tensors(tr, saved)
        self._score.copy_(state["score"])
        self.classes = list(state["classes"])
        self._index = {label: i for i, label in enumerate(self.classes)}
        self.features = state["features"]
        c = state["counters"]
        self.steps, self.segment_steps, self.updates = c["steps"], c["segment_steps"], c["updates"]
        self._since_update = 0

    # ---- input ---------------------------------------------------------------------------------------------------

    def _parse(self, x: Sample) -> tuple[torch.Tensor, bool, list[str] | None]:
        """``(row [1, N_in], starts a segment, dict keys in order or None)``; validates without side effects
        (the row buffer is scratch)."""
        if isinstance(x, Mapping):
            return self._parse_dict(x)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x at step {self.steps} must be a dict of floats or a torch.Tensor, "
                            f"got {type(x).__name__}")
        n = self.net.n_inputs
        if x.numel() != n or x.dim() > 2 or not x.is_floating_point():
            raise ValueError(f"x at step {self.steps} must be a floating tensor of {n} features, "
                             f"got {x.dtype} of shape {tuple(x.shape)}")
        row = x.reshape(1, n)
        if not math.isfinite(row.sum().item()):  # NaN and inf survive the sum (cheaper than isfinite().all())
            raise ValueError(f"x at step {self.steps} contains NaN or inf")
        return (row if row.device == self._device else row.to(self._device)), False, None

    def _parse_dict(self, x: Mapping[str, Any]) -> tuple[torch.Tensor, bool, list[str] | None]:
        key = self.boundary_key
        start = bool(x.get(key, False)) if key is not None else False
        keys = self.features
        if keys is None:
            keys = [k for k in x if k != key]
            if len(keys) != self.net.n_inputs:
                raise ValueError(f"x at step {self.steps} has {len(keys)} features {keys}, the network takes "
                                 f"{self.net.n_inputs}")
        elif len(x) - (key is not None and key in x) != len(keys) or any(k not in x for k in keys):
            missing = [k for k in keys if k not in x]
            extra = [k for k in x if k not in keys and k != key]
            raise ValueError(f"x at step {self.steps} must have the features {keys}; missing {missing}, "
                             f"unknown {extra}")
        try:
            values = [float(x[k]) for k in keys]
        except (TypeError, ValueError) as err:
            raise ValueError(f"x at step {self.steps}: every feature must be a number ({err})") from None
        if not all(map(math.isfinite, values)):
            bad = [k for k, v in zip(keys, values) if not math.isfinite(v)]
            raise ValueError(f"x at step {self.steps} contains NaN or inf (features {bad})")
        if self._row_np is not None:
            self._row_np[0] = values
        else:
            self._row[0] = torch.tensor(values, dtype=self._row.dtype)
        row = self._row if self._device.type == "cpu" else self._row.to(self._device)
        return row, start, (keys if self.features is None else None)

    def _label_index(self, y: Hashable) -> int:
        try:
            index = self._index.get(y)
        except TypeError:  # unhashable
            index = None
        return index if index is not None else self._new_label(y, "y")

    def _new_label(self, y: Hashable, name: str) -> int:
        """The output neuron a new label would take (raises when it cannot have one)."""
        if isinstance(y, torch.Tensor) or not isinstance(y, Hashable):
            raise TypeError(f"{name} at step {self.steps}: labels must be hashable values (int, str, ...), "
                            f"got {type(y).__name__}")
        if len(self.classes) >= self.net.n_outputs:
            raise ValueError(f"label {y!r} at step {self.steps} is new, but all {self.net.n_outputs} output "
                             f"neurons already have labels {self.classes}: build the network with more outputs")
        return len(self.classes)

    def _next_scores(self, x: Sample) -> tuple[torch.Tensor, int]:
        """The segment's summed output with the next step's, and the step count, from the current state."""
        row, start, _ = self._parse(x)
        fresh = start or not self.segment_steps
        if fresh:
            with torch.no_grad():
                return self.net.step(row, self._rest)[0][0], 1
        return self._score.add(self.rule.predict_step(row)).view(-1), self.segment_steps + 1

    def __repr__(self) -> str:
        return (f"StreamClassifier({self.rule.name}, net={self.net.n_inputs}-"
                f"{'-'.join(str(layer.out_features) for layer in self.net.layers)}, "
                f"update_every={self.update_every}, classes={self.classes})")


def _tensors(obj: Any, key: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """``(dotted key, tensor)`` of every tensor in a rule's layer state: dataclass fields, the LIFState's names,
    list indices and dict keys (SOLSA's cross-layer credit nests its traces in lists and dicts)."""
    if isinstance(obj, torch.Tensor):
        yield key, obj
        return
    if dataclasses.is_dataclass(obj):
        items = [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    elif isinstance(obj, tuple) and hasattr(obj, "_fields"):
        items = list(zip(obj._fields, obj))
    elif isinstance(obj, list):
        items = list(enumerate(obj))
    elif isinstance(obj, dict):
        items = list(obj.items())
    else:
        return
    for name, value in items:
        yield from _tensors(value, f"{key}.{name}" if key else str(name))


def trace_tensors(traces: Any) -> dict[str, torch.Tensor]:
    """Copies of one layer's state and traces (an online rule's ``rule.traces[i]``: a dataclass of tensors,
    a LIFState, Nones and, for SOLSA's cross-layer credit, nested lists and dicts of tensors), by dotted name
    (``state.V``, ``e``, ``credit.stages.0.e.1``, ...)."""
    return {path: t.detach().clone() for path, t in _tensors(traces)}


def _load_trace_tensors(traces: Any, saved: Mapping[str, torch.Tensor]) -> None:
    """Copy saved tensors into one layer's traces, in place (the fused kernel holds pointers to them)."""
    here = dict(_tensors(traces))
    if set(here) != set(saved):
        raise ValueError(f"state_dict: the saved traces do not fit this rule and network "
                         f"(missing {sorted(set(here) - set(saved))[:3]}, extra {sorted(set(saved) - set(here))[:3]})")
    for key, value in saved.items():
        if here[key].shape != value.shape:
            raise ValueError(f"state_dict: trace {key!r} does not fit this rule and network")
    for key, value in saved.items():
        here[key].copy_(value)


_RIVER = {"registered": False}


def _register_with_river() -> None:
    """Make ``isinstance(clf, river.base.Classifier)`` true when river is installed (river's evaluators
    check it); river stays optional."""
    if _RIVER["registered"]:
        return
    _RIVER["registered"] = True
    try:
        from river import base
    except ImportError:
        return
    base.Classifier.register(StreamClassifier)

