"""The search space of ``solsa tune``: which settings a trial draws, from which range, and how they map to options.

:data:`DEFAULT_SPACE` (``solsa tune --show-space`` prints it) is a dict of key -> :class:`Dimension`:

==========================  ===========================  ===============================================
key                         default range                sets
==========================  ===========================  ===============================================
``alpha``                   float 0 .. 0.95              initial synaptic decay α₀ of the hidden layers
``beta``                    float 0.2 .. 2               initial synaptic gain β₀
``lam``                     float 0 .. 0.95              membrane decay λ
``readout_alpha``           float 0 .. 0.95              initial α₀ of the output layer
``filter_granularity``      layer, first, channel        one α, β per layer, per input channel of the first layer, or per input channel
``encoder``                 every registered encoder     the input encoder
``population.n_per_channel`` int 3 .. 9                  encoder option (only when the encoder is population)
``delta.threshold``         float 0.02 .. 0.5 (log)      encoder option (delta)
``rate.max_rate``           float 0.2 .. 1               encoder option (rate)
``latency.window``          int 2 .. 10                  encoder option (latency)
``delay.taps``              int 2 .. 9                   encoder option (delay: taps per dilation)
``delay.dilations``         int 1 .. 5                   encoder option (delay: log-spaced dilations)
``max_steps``               100, 200, 300                task option (only for a task that takes it: uea)
``lr``                      float 1e-4 .. 1e-2 (log)     learning rate
``filter_lr_scale``         float 0.01 .. 1 (log)        learning-rate multiplier of α, β, λ
``filter_update``           linear, log                  the coordinates α, β, λ are stepped in
``hidden_width``            int 16 .. 128 (log)          width of every hidden layer (``hidden``)
``hidden_layers``           int 1 .. 2                   number of hidden layers (``hidden``)
``batch_size``              8, 16, 32                    sequences per batch
``epochs``                  not searched by default      training epochs: each run stops on validation
                                                         (``val_patience``) within its planned epochs
``credit``                  same-step, next, cascade     SOLSA's cross-layer credit (SOLSA rules only)
==========================  ===========================  ===============================================

An encoder's options are searched when the encoder is searched or is the one the task uses: the named one,
else the one the loaded data resolves to (a one-channel uea set: ``delay``, although the family's default is
``direct``). A key leaves the space when the option it sets is given (on the command line or in ``--config``), and
when the rule's neuron model fixes it (e.g. e-prop's paper model has no synaptic filter: no α, β), and
``credit`` leaves it for the rules that have none (BPTT and the baselines), ``filter_lr_scale`` and
``filter_update`` when nothing learns α, β or λ.
Override or add a range with ``KEY=LOW:HIGH`` (``:log`` for a log scale) or a list ``KEY=A,B,C``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import TrainConfig, parse_scalar, rule_credit
from ..coordinates import FILTER_UPDATES
from ..factories import network_options
from ..layers import FILTER_GRANULARITIES
from ..rules.credit import CREDIT_MODES
from ..rules import get_rule
from ..tasks import ENCODERS, resolved_encoder
from ..validation import OptionError

__all__ = ["Dimension", "DEFAULT_SPACE", "parse_dimension", "space_from_file", "active_space", "config_changes",
           "suggest", "default_params", "space_text", "task_encoder"]


@dataclass(frozen=True)
class Dimension:
    """One searched setting: a float or int range (``low``..``high``, ``log`` scale, int ``step``) or ``choices``."""

    kind: str  # "float", "int" or "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any, name: str) -> Any:
        """Draw the value of ``name`` for an optuna ``trial``."""
        if self.kind == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log, step=self.step or 1)
        return trial.suggest_float(name, float(self.low), float(self.high), log=self.log)

    def contains(self, value: Any) -> bool:
        if self.kind == "categorical":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        in_range = self.low <= value <= self.high
        return in_range and (self.kind == "float" or (value == int(value) and (value - self.low) % (self.step or 1) == 0))

    def text(self) -> str:
        """The command-line spelling: ``0:0.95``, ``0.0001:0.01:log`` or ``8,16,32``."""
        if self.kind == "categorical":
            return ",".join(str(c) for c in self.choices)
        return f"{self.low:g}:{self.high:g}" + (":log" if self.log else "") + (f":step={self.step}" if self.step else "")


# key -> (the option it sets, the encoder it belongs to or None)
_KEYS: dict[str, tuple[str, str | None]] = {
    "alpha": ("alpha", None), "beta": ("beta", None), "lam": ("lam", None), "readout_alpha": ("readout_alpha", None),
    "filter_granularity": ("filter_granularity", None), "encoder": ("encoder", None),
    "population.n_per_channel": ("n_per_channel", "population"), "delta.threshold": ("threshold", "delta"),
    "rate.max_rate": ("max_rate", "rate"), "latency.window": ("window", "latency"),
    "delay.taps": ("taps", "delay"), "delay.dilations": ("dilations", "delay"), "max_steps": ("max_steps", None),
    "lr": ("lr", None), "filter_lr_scale": ("filter_lr_scale", None),
    "filter_update": ("filter_update", None),
    "hidden_width": ("hidden", None), "hidden_layers": ("hidden", None),
    "batch_size": ("batch_size", None), "epochs": ("epochs", None), "credit": ("credit", None),
}
_INT_KEYS = {"population.n_per_channel", "latency.window", "delay.taps", "delay.dilations", "hidden_width",
             "hidden_layers", "batch_size", "epochs", "max_steps"}
# keys that set a task option (a keyword of the task's loader); active only where the task takes it
_TASK_KEYS = {"max_steps"}
_CATEGORICAL_KEYS = {"filter_granularity", "encoder", "credit", "filter_update"}

DEFAULT_SPACE: dict[str, Dimension] = {
    "alpha": Dimension("float", 0.0, 0.95),
    "beta": Dimension("float", 0.2, 2.0),
    "lam": Dimension("float", 0.0, 0.95),
    "readout_alpha": Dimension("float", 0.0, 0.95),
    "filter_granularity": Dimension("categorical", choices=FILTER_GRANULARITIES),
    # the learned `linear` encoder is left out of the default (a study's draws stay as before); name it to search it
    "encoder": Dimension("categorical", choices=tuple(n for n in ENCODERS if n != "linear")),
    "population.n_per_channel": Dimension("int", 3, 9),
    "delta.threshold": Dimension("float", 0.02, 0.5, log=True),
    "rate.max_rate": Dimension("float", 0.2, 1.0),
    "latency.window": Dimension("int", 2, 10),
    "delay.taps": Dimension("int", 2, 9),
    "delay.dilations": Dimension("int", 1, 5),
    "max_steps": Dimension("categorical", choices=(100, 200, 300)),
    "lr": Dimension("float", 1e-4, 1e-2, log=True),
    "filter_lr_scale": Dimension("float", 0.01, 1.0, log=True),
    "filter_update": Dimension("categorical", choices=FILTER_UPDATES),
    "hidden_width": Dimension("int", 16, 128, log=True),
    "hidden_layers": Dimension("int", 1, 2),
    "batch_size": Dimension("categorical", choices=(8, 16, 32)),
    "credit": Dimension("categorical", choices=CREDIT_MODES),
}


def _check_key(key: str) -> None:
    if key not in _KEYS:
        raise OptionError("space", f"space key {key!r} is unknown; valid keys: {', '.join(_KEYS)}")


def parse_dimension(key: str, spec: str | list) -> Dimension:
    """``KEY=LOW:HIGH[:log]`` (a range) or ``KEY=A,B,C`` / a list (choices) -> :class:`Dimension`.

    Raises :class:`OptionError` (option ``space``) naming the key for an unknown key, an empty range
    (low > high), an unreadable bound, or a range for a key that only takes a list.
    """
    _check_key(key)
    if isinstance(spec, (list, tuple)):
        choices = tuple(spec)
    elif ":" not in str(spec):
        choices = tuple(parse_scalar(v.strip()) for v in str(spec).split(",") if v.strip())
    else:
        if key in _CATEGORICAL_KEYS:
            raise OptionError("space", f"space key {key!r} takes a list of values (A,B,C), got {spec!r}")
        parts = str(spec).split(":")
        log = parts[2:] == ["log"]
        step = parts[2][len("step="):] if len(parts) == 3 and parts[2].startswith("step=") else None
        if len(parts) != 2 and not log and step is None:
            raise OptionError("space", f"space key {key!r} must be LOW:HIGH, LOW:HIGH:log or LOW:HIGH:step=N, "
                              f"got {spec!r}")
        try:
            low, high = float(parts[0]), float(parts[1])
            step = int(step) if step is not None else None
        except ValueError:
            raise OptionError("space", f"space key {key!r}: bounds and step must be numbers, got {spec!r}") from None
        if low > high:
            raise OptionError("space", f"space key {key!r} has an empty range {spec!r} (low > high)")
        if log and low <= 0:
            raise OptionError("space", f"space key {key!r}: a log range needs low > 0, got {spec!r}")
        kind = "int" if key in _INT_KEYS else "float"
        if kind == "int" and (low != int(low) or high != int(high)):
            raise OptionError("space", f"space key {key!r} takes integer bounds, got {spec!r}")
        if step is not None and (kind != "int" or step < 1):
            raise OptionError("space", f"space key {key!r}: a step needs an integer key and step ≥ 1, got {spec!r}")
        return Dimension(kind, int(low) if kind == "int" else low, int(high) if kind == "int" else high, log=log,
                         step=step)
    if not choices:
        raise OptionError("space", f"space key {key!r} has no values")
    return Dimension("categorical", choices=choices)


def space_from_file(data: dict[str, Any]) -> dict[str, Dimension]:
    """A ``[space]`` table of a TOML file (key = "LOW:HIGH[:log]" or a list) -> dimensions."""
    return {str(k): parse_dimension(str(k), v) for k, v in data.items()}


def task_encoder(base: TrainConfig, task: Any = None) -> str:
    """The encoder ``base``'s task uses (:func:`solsa.tasks.resolved_encoder`; ``task`` is loaded here if None and
    the family picks its encoder by the data). An unknown task: ``direct`` (loading it names the error)."""
    def info() -> dict[str, Any]:
        from ..evaluation import load_task_of

        return (task if task is not None else load_task_of(base)).info

    return resolved_encoder(base.task, base.encoder, info) or "direct"


def _encoder(cfg: TrainConfig, params: dict[str, Any], encoder: str | None) -> str:
    """The encoder of a point: drawn, else named, else ``encoder`` (the task's, :func:`task_encoder`)."""
    if "encoder" in params:
        return params["encoder"]
    return cfg.encoder or encoder or task_encoder(cfg)


def _task_takes(base: TrainConfig, option: str) -> bool:
    from ..tasks import task_option_defaults

    try:
        return option in task_option_defaults(base.task)
    except ValueError:  # an unknown task: loading it names the error
        return False


def active_space(space: dict[str, Dimension], base: TrainConfig, given: dict[str, Any],
                 encoder: str | None = None) -> dict[str, Dimension]:
    """``space`` without the keys whose option is ``given`` or fixed by the rule's model, the options of encoders
    the task does not use (unless ``encoder`` is searched) and the task options the task does not take; every
    bound is checked against the option's own valid values (an :class:`OptionError` naming the key).
    ``encoder``: the encoder the loaded task resolved to (:func:`task_encoder`; None: found here, which loads
    the task where its family picks the encoder by the data)."""
    fixed = set(given) | set(get_rule(base.rule).model_options(base.model))
    fixed_task_options = set(given.get("task_options", {}))
    encoder_searched = "encoder" in space and "encoder" not in fixed
    if not encoder_searched and any(_KEYS.get(key, ("", None))[1] for key in space):
        encoder = _encoder(base, {}, encoder)  # once (it may load the task)
    active = {}
    for key, dim in space.items():
        _check_key(key)
        option, enc = _KEYS[key]
        if (option in fixed_task_options) if enc or key in _TASK_KEYS else (option in fixed):
            continue
        if key in _TASK_KEYS and not _task_takes(base, option):
            continue  # not an option of this task
        if key == "credit" and rule_credit(base) is None:
            continue  # the rule has no credit option
        if key in ("filter_lr_scale", "filter_update") and not _learns_dynamics(base):
            continue  # nothing for it to scale
        if enc is not None and not encoder_searched and _encoder(base, {}, encoder) != enc:
            continue  # the encoder is fixed to another one: its options never apply
        if key == "encoder" and set(dim.choices) - set(ENCODERS):
            raise OptionError("space", f"space key 'encoder': unknown encoder(s) {sorted(set(dim.choices) - set(ENCODERS))}; "
                              f"valid: {', '.join(ENCODERS)}")
        if enc is None and key not in _TASK_KEYS:
            values = dim.choices if dim.kind == "categorical" else (dim.low, dim.high)
            for value in values:
                try:
                    base.replace(**config_changes(base, {key: value}))
                except ValueError as err:
                    raise OptionError("space", f"space key {key!r}: {value!r} is not a valid {option}: {err}") from None
        active[key] = dim
    return active


def _learns_dynamics(base: TrainConfig) -> bool:
    options = network_options(base)
    return any(options[k] for k in ("learn_alpha", "learn_beta", "learn_lam"))


def suggest(trial: Any, space: dict[str, Dimension], base: TrainConfig, encoder: str | None = None) -> dict[str, Any]:
    """Draw one point of ``space`` (an encoder's options only when that encoder is drawn, else named, else the one
    the task resolved to: ``encoder``, as for :func:`active_space`)."""
    params: dict[str, Any] = {}
    for key, dim in space.items():
        enc = _KEYS[key][1]
        if enc is None or _encoder(base, params, encoder) == enc:
            params[key] = dim.suggest(trial, key)
    return params


def config_changes(base: TrainConfig, params: dict[str, Any]) -> dict[str, Any]:
    """The option changes of one point: ``{key: value}`` -> arguments of :meth:`TrainConfig.replace`."""
    changes: dict[str, Any] = {}
    task_options = dict(base.task_options)
    for key, value in params.items():
        option, enc = _KEYS[key]
        if enc is not None or key in _TASK_KEYS:
            task_options[option] = value
        elif option != "hidden":
            changes[option] = value
    if "hidden_width" in params or "hidden_layers" in params:
        width = params.get("hidden_width", base.hidden[0] if base.hidden else 100)
        changes["hidden"] = [width] * params.get("hidden_layers", len(base.hidden))
    if task_options != base.task_options:
        changes["task_options"] = task_options
    return changes


def default_params(space: dict[str, Dimension], base: TrainConfig, encoder: str | None = None) -> dict[str, Any]:
    """The point of ``space`` that is ``base`` itself (keys whose base value lies outside the space are left out).
    ``encoder``: the encoder the loaded task resolved to (:func:`task_encoder`; None: found here)."""
    from ..tasks import encoder_defaults, task_option_defaults

    values: dict[str, Any] = {"alpha": base.alpha, "beta": base.beta, "lam": base.lam, "lr": base.lr,
                              "filter_lr_scale": base.filter_lr_scale, "filter_update": base.filter_update,
                              "readout_alpha": base.alpha if base.readout_alpha is None else base.readout_alpha,
                              "filter_granularity": base.filter_granularity, "batch_size": base.batch_size,
                              "epochs": base.epochs, "encoder": _encoder(base, {}, encoder),
                              "hidden_layers": len(base.hidden),
                              "credit": rule_credit(base)}
    if base.hidden and len(set(base.hidden)) == 1:
        values["hidden_width"] = base.hidden[0]
    enc = values["encoder"]
    for key, (option, key_enc) in _KEYS.items():
        if key_enc == enc:
            values[key] = base.task_options.get(option, encoder_defaults(enc).get(option))
    if _TASK_KEYS & set(space):
        task_defaults = task_option_defaults(base.task)
        values |= {key: base.task_options.get(_KEYS[key][0], task_defaults.get(_KEYS[key][0])) for key in _TASK_KEYS}
    return {k: values[k] for k, dim in space.items() if k in values and dim.contains(values[k])}


def space_text(space: dict[str, Dimension]) -> dict[str, str]:
    """Key -> its command-line spelling (for ``tune.json`` and ``--show-space``)."""
    return {key: dim.kind + " " + dim.text() for key, dim in space.items()}
