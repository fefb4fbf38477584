"""A stream learner with river's conventions: ``predict_proba_one`` / ``predict_one`` / ``learn_one``.

>>> clf = StreamClassifier(SNN(12, [100, 100], 9, readout="leaky"), update_every=10)  # doctest: +SKIP
>>> for x, y in stream:                  # x: a dict of floats (or a tensor [N_in]), y: any hashable label
...     y_pred = clf.predict_one(x)      # pure: the network does not move
...     clf.learn_one(x, y)              # the one call that advances the network by a time step

The rules of the game:

* **One step per sample.** ``predict_proba_one`` and ``predict_one`` compute the next step from the
  current neuron state with the rule's pure ``predict_step`` (the pure :func:`~solsa.functional.lif_step`
  through ``net.step``; SOLSA's fused kernel has its own pure step, tested equal) and change nothing;
  ``learn_one`` advances the state, accumulates the rule's gradient and returns None. River's
  ``progressive_val_score`` (predict, then learn) therefore steps the network once per sample.
* **Predictions** are "the class so far in this segment": the readout's output since the segment began,
  this step's included, a step ``k`` steps old weighted ``(1 - 1/horizon)^k`` (default :data:`DEFAULT_HORIZON`:
  short segments are summed almost evenly, an endless one predicts from about its last ``horizon`` steps;
  None: the plain sum). Leaky readout: softmax of the weighted time-average; spiking readout: weighted spike
  counts, normalised. :data:`LONG_SEGMENT` steps without a segment boundary warn (once).
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
* **Bad input** (wrong width, NaN/inf checked value by value after the cast to the network's dtype, a
  new label when every output neuron is taken) raises a ``ValueError`` naming the step, before anything
  changes; inputs that saturate the first layer warn once (:func:`~solsa.validation.warn_input_scale`).
* **river**: its estimator conventions (:mod:`solsa.stream.river`; a ``river.base.Classifier`` with river
  installed; its ``check_estimator`` passes). A factory ``net(n_inputs) -> SNN`` is built at the first sample.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any, Callable, Hashable, Iterable, Mapping

import torch

from ..config import TrainConfig
from ..factories import parameter_groups
from ..layers import SNN
from ..learner import Learner
from ..rules import LearningRule, get_rule
from ..rules.state import load_trace_tensors, trace_tensors
from .river import RiverConventions, register_with_river
from ..validation import OptionError, check_finite, check_positive_int, nonfinite_parameters, warn_input_scale

__all__ = ["StreamClassifier", "trace_tensors", "DEFAULT_HORIZON", "LONG_SEGMENT"]

DEFAULT_HORIZON = 1000  # steps: the time constant of the prediction's weighting (not tuned: see the docstring)
LONG_SEGMENT = 10_000  # steps without a segment boundary before a warning

Sample = Mapping[str, Any] | torch.Tensor


class StreamClassifier(RiverConventions):
    """Learn to classify a stream of single time steps (batch size 1), online.

    Args:
        net: the network (its readout decides the default loss — leaky: ``ce``, spike: ``mse`` — and its
            output size the number of labels it can learn), or a factory ``net(n_inputs) -> SNN`` called
            (under ``torch.manual_seed(seed)``) once the first sample shows how many features there are.
        rule: a rule name from ``solsa rules`` that learns online (not ``bptt``) or a rule instance on ``net``.
        optimizer: a ``torch.optim`` optimizer over ``net``'s parameters (default Adam with ``lr``, α, β, λ
            stepped as by ``solsa train``'s defaults: :func:`solsa.factories.parameter_groups`).
        update_every: labelled steps between updates (None: only at the end of each segment).
        classes: labels known up front, mapped to output neurons in this order (more may be added as
            they appear, up to ``net.n_outputs``).
        features: the keys of dict inputs, in input-channel order (default: the first dict's keys, sorted,
            so that the order of a dict's keys does not matter).
        boundary_key: a key of dict inputs whose true value marks the first step of a new segment
            (not a feature).
        horizon: steps over which a prediction's weight of earlier outputs decays (see the module; None:
            the plain sum since the segment began).
        seed: seeds a network built from a factory.
    """

    def __init__(
        self,
        net: SNN | Callable[[int], SNN],
        rule: str | LearningRule = "solsa",
        *,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float = 1e-3,
        update_every: int | None = None,
        classes: Iterable[Hashable] | None = None,
        features: Iterable[str] | None = None,
        boundary_key: str | None = None,
        horizon: int | None = DEFAULT_HORIZON,
        seed: int = 0,
    ) -> None:
        classes = None if classes is None else list(classes)
        features = None if features is None else [str(k) for k in features]
        self._params = dict(net=net, rule=rule, optimizer=optimizer, lr=lr, update_every=update_every,
                            classes=classes, features=features, boundary_key=boundary_key, horizon=horizon,
                            seed=seed)
        self.lr = lr
        self.update_every = None if update_every is None else check_positive_int("update_every", update_every)
        self.horizon = None if horizon is None else check_positive_int("horizon", horizon)
        self.seed = check_positive_int("seed", seed, minimum=0)
        self.boundary_key = boundary_key
        self._decay = 1.0 if horizon is None else 1.0 - 1.0 / horizon
        self.classes: list[Hashable] = []
        self._index: dict[Hashable, int] = {}
        self.features: list[str] | None = None
        self.steps = 0  # time steps advanced (learn_one calls)
        self.segment_steps = 0  # of them, in the current segment
        self.updates = 0  # updates applied
        self._since_update = 0  # labelled steps since the last update
        self._mass = 0.0  # the summed weights of the segment's outputs in the prediction
        self._warned: set[str] = set()
        self.net: SNN | None = None
        self.rule: LearningRule | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        if isinstance(net, SNN):
            self._build(net)
        elif not callable(net):
            raise OptionError("net", f"net must be an SNN or a factory net(n_inputs) -> SNN, got {type(net).__name__}")
        elif features is not None:
            self._build_for(len(features))
        register_with_river(StreamClassifier)

    def _build_for(self, n_inputs: int) -> None:
        """Build the network from the factory for ``n_inputs`` features (seeded), then the rest."""
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            net = self._params["net"](n_inputs)
        if not isinstance(net, SNN) or net.n_inputs != n_inputs:
            raise OptionError("net", f"the factory net({n_inputs}) must return an SNN with {n_inputs} inputs, got "
                                     f"{type(net).__name__}")
        self._build(net)

    def _build(self, net: SNN) -> None:
        rule, optimizer = self._params["rule"], self._params["optimizer"]
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
            optimizer = torch.optim.Adam(parameter_groups(net, self.lr, defaults.filter_lr_scale,
                                                          defaults.filter_update))
        self.optimizer = optimizer
        self.learner = Learner(rule, optimizer)
        for label in self._params["classes"] or ():
            self._new_label(label, "classes")
            if label in self._index:
                raise OptionError("classes", f"classes lists {label!r} twice")
            self._index[label] = len(self.classes)
            self.classes.append(label)
        features = self._params["features"]
        if features is not None:
            if len(features) != net.n_inputs or len(set(features)) != net.n_inputs:
                raise OptionError("features", f"features must name {net.n_inputs} distinct keys (the network's "
                                              f"inputs), got {features}")
            self.features = list(features)
        w = net.layers[0].weight
        self._device, self._dtype = w.device, w.dtype
        self._row = torch.zeros(1, net.n_inputs, dtype=w.dtype)  # reused for every dict input (and its numpy view)
        self._row_np, self._limit = self._row.numpy(), torch.finfo(w.dtype).max
        self._targets = [torch.tensor([i], device=w.device) for i in range(net.n_outputs)]  # one per neuron
        self._score = torch.zeros(1, net.n_outputs, dtype=w.dtype, device=w.device)  # the segment's weighted output
        self._rest = net.init_state(1)
        rule.reset(1)

    # ---- river's interface -------------------------------------------------------------------------------------

    def learn_one(self, x: Sample, y: Hashable | None = None) -> None:
        """Advance the network by the time step ``x`` and learn the label ``y`` there (None: not known yet)."""
        row, start, keys, peak = self._parse(x)
        index = None if y is None else self._label_index(y)
        # validated: from here on the sample is taken
        if keys is not None and self.features is None:
            self.features = keys
        if index is not None and index == len(self.classes):
            self.classes.append(y)
            self._index[y] = index
        if start and self.segment_steps:
            self.end_sequence()
        if "scale" not in self._warned and warn_input_scale(peak, f"StreamClassifier, step {self.steps}"):
            self._warned.add("scale")
        if index is None:
            out = self.rule.step(row).output
        else:
            out = self.rule.step(row, self._targets[index]).output
            self._since_update += 1
        self._score.mul_(self._decay).add_(out)
        self._mass = self._mass * self._decay + 1.0
        self.steps += 1
        self.segment_steps += 1
        if self.segment_steps == LONG_SEGMENT and "segment" not in self._warned:
            self._warned.add("segment")
            warnings.warn(f"StreamClassifier: {LONG_SEGMENT:,} steps without a segment boundary; the state and "
                          f"traces run on from step {self.steps - LONG_SEGMENT:,} and predictions weight about the "
                          f"last {self.horizon or 'all'} steps (horizon). If the stream has sequences, mark their "
                          "first steps (boundary_key, or end_sequence())", UserWarning, stacklevel=2)
        if self.update_every is not None and self._since_update >= self.update_every:
            self.update()

    def predict_proba_one(self, x: Sample) -> dict[Hashable, float]:
        """Probability of each known label for the segment so far, this step included (changes nothing)."""
        if not self.classes and self.net is None:
            return {}
        score, n = self._next_scores(x)
        k = len(self.classes)
        if not k:
            return {}
        score = score[:k].double()  # float64: the probabilities sum to 1 to 1e-15
        if self.net.readout == "leaky":
            p = torch.softmax(score / n, 0)
        else:
            total = float(score.sum())
            p = score / total if total > 0 else torch.full_like(score, 1.0 / k)
        return dict(zip(self.classes, p.tolist()))

    def predict_one(self, x: Sample) -> Hashable | None:
        """The most likely known label for the segment so far, this step included (None before any label)."""
        if not self.classes and self.net is None:
            return None
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
        if self.net is None:
            return
        if self._since_update:
            self.update()
        self.rule.reset(1)
        self._score.zero_()
        self._mass = 0.0
        self.segment_steps = 0

    def update(self) -> None:
        """Apply the gradient accumulated since the last update now (nothing happens without one); a
        ``ValueError`` if it makes a parameter NaN or inf (divergence)."""
        if self._since_update:
            self.learner.update()
            self.updates += 1
            self._since_update = 0
            bad = nonfinite_parameters(self.net)
            if bad:
                raise ValueError(f"learning diverged: the update at step {self.steps} made {', '.join(bad[:4])} NaN "
                                 f"or inf; try a smaller learning rate")

    @property
    def pending(self) -> bool:
        """Whether labelled steps since the last update hold a gradient not applied yet."""
        return self._since_update > 0

    def state_dict(self) -> dict[str, Any]:
        """A copy of everything needed to continue exactly here (tensors and plain data). Call
        :meth:`update` first: a snapshot holds no partial gradient."""
        if self._since_update:
            raise RuntimeError("state_dict: a gradient is pending; call update() first")
        if self.net is None:
            raise RuntimeError("state_dict: the network is built at the first sample; none came yet")
        return {
            "net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "traces": [trace_tensors(tr) for tr in self.rule.traces],
            "score": self._score.clone(),
            "classes": list(self.classes),
            "features": None if self.features is None else list(self.features),
            "counters": {"steps": self.steps, "segment_steps": self.segment_steps, "updates": self.updates,
                         "score_mass": self._mass},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict` (same network shape, rule and optimizer)."""
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        if len(state["traces"]) != len(self.rule.traces):
            raise ValueError("state_dict: the saved traces are of another network")
        for tr, saved in zip(self.rule.traces, state["traces"]):
            load_trace_tensors(tr, saved)
        self._score.copy_(state["score"])
        self.classes = list(state["classes"])
        self._index = {label: i for i, label in enumerate(self.classes)}
        self.features = state["features"]
        c = state["counters"]
        self.steps, self.segment_steps, self.updates = c["steps"], c["segment_steps"], c["updates"]
        self._mass = float(c.get("score_mass", c["segment_steps"]))  # written before horizon: the plain sum
        self._since_update = 0

    # ---- input ---------------------------------------------------------------------------------------------------

    def _parse(self, x: Sample) -> tuple[torch.Tensor, bool, list[str] | None, float]:
        """``(row [1, N_in] in the network's dtype, starts a segment, dict keys in order or None, max |x|)``;
        validates without side effects (the row buffer is scratch; a network built from a factory is
        built for the first dict's features)."""
        if isinstance(x, Mapping):
            return self._parse_dict(x)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x at step {self.steps} must be a dict of floats or a torch.Tensor, "
                            f"got {type(x).__name__}")
        if self.net is None:
            self._build_for(x.numel())
        n = self.net.n_inputs
        if x.numel() != n or x.dim() > 2 or not x.is_floating_point():
            raise ValueError(f"x at step {self.steps} must be a floating tensor of {n} features, "
                             f"got {x.dtype} of shape {tuple(x.shape)}")
        row = x.reshape(1, n).to(self._device, self._dtype)  # cast as every rule step casts
        peak = float(row.abs().max())  # NaN and inf survive the max, value by value (a sum would overflow)
        if not math.isfinite(peak):
            check_finite(row, f"x at step {self.steps}", x.reshape(1, n))
        return row, False, None, peak

    def _parse_dict(self, x: Mapping[str, Any]) -> tuple[torch.Tensor, bool, list[str] | None, float]:
        key = self.boundary_key
        start = bool(x.get(key, False)) if key is not None else False
        keys = self.features
        if keys is None:
            keys = sorted((k for k in x if k != key), key=str)
            if self.net is None:
                self._build_for(len(keys))
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
        peak = max(map(abs, values), default=0.0)  # the floats themselves: no tensor call per step
        if peak > self._limit:  # finite numbers beyond the network's dtype
            bad = [k for k, v in zip(keys, values) if abs(v) > self._limit]
            raise ValueError(f"x at step {self.steps}: features {bad} are beyond the range of {self._dtype} "
                             f"(up to {self._limit:.3g}); scale the input")
        if self._dtype in (torch.float32, torch.float64):
            self._row_np[0] = values  # cast to the network's dtype (the buffer is on the CPU; nothing overflows now)
        else:
            self._row[0] = torch.tensor(values, dtype=torch.float64).to(self._dtype)
        row = self._row
        return (row if self._device.type == "cpu" else row.to(self._device)), start, \
            (keys if self.features is None else None), peak

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
        if self.net is not None and len(self.classes) >= self.net.n_outputs:
            raise ValueError(f"label {y!r} at step {self.steps} is new, but all {self.net.n_outputs} output "
                             f"neurons already have labels {self.classes}: build the network with more outputs")
        return len(self.classes)

    def _next_scores(self, x: Sample) -> tuple[torch.Tensor, float]:
        """The segment's weighted output with the next step's, and the summed weights, from the current state."""
        row, start, _, _ = self._parse(x)
        if start or not self.segment_steps:
            with torch.no_grad():
                return self.net.step(row, self._rest)[0][0], 1.0
        score = self._score.mul(self._decay).add_(self.rule.predict_step(row)).view(-1)
        return score, self._mass * self._decay + 1.0

    def __repr__(self) -> str:
        sizes = "built at the first sample" if self.net is None else \
            f"{self.net.n_inputs}-{'-'.join(str(layer.out_features) for layer in self.net.layers)}"
        rule = self.rule.name if self.rule is not None else self._params["rule"]
        return (f"StreamClassifier({rule}, net={sizes}, update_every={self.update_every}, horizon={self.horizon}, "
                f"classes={self.classes})")
