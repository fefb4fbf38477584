"""Every option of a training run, each written once: name, type, default, valid values, help.

Options are the fields of :class:`TrainConfig`, grouped (run, task, model,
neuron and filter, readout, optimizer, enhancements) through their metadata.
Validation, config files (``from_dict``), ``metrics.json`` (``to_dict``) and the
command line (:mod:`solsa.cli.options` generates the flags from these fields)
all read them from here, so an option added here exists everywhere.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .coordinates import DEFAULT_FILTER_UPDATE, FILTER_UPDATES
from .functional import NEURONS, RESET_MODES
from .layers import ADAPT, ALPHA_MAX, BETA_MIN, FILTER_GRANULARITIES, LAM_GRANULARITIES, READOUT_SCORES, READOUTS, RHO
from .losses import LOSSES
from .rules import BACKENDS, get_rule
from .rules.credit import CREDIT_MODES, DEFAULT_CREDIT
from .rules.solsa import TRACE_DTYPES
from .schedule import UpdateSchedule
from .surrogate import SURROGATES
from .validation import OptionError, check_choice, check_device, check_positive_int, check_range

__all__ = ["TrainConfig", "DEFAULT_EPOCHS", "MIN_BATCHES", "VAL_PATIENCE", "VAL_PATIENCE_BATCHES", "planned_epochs", "batches_per_epoch",
           "default_epochs", "trial_patience", "trial_patience_text", "GROUPS", "OPTIMIZERS", "MODELS", "DTYPES", "TRACE_STORAGE", "option_fields", "parse_hidden", "parse_scalar"]

OPTIMIZERS = ("adam", "rmsprop", "sgd", "adamw")
MODELS = ("full", "paper", "native")
DTYPES = ("float32", "float64")
# where SOLSA stores its [B, N_out, N_in] traces (trace_dtype): auto resolves per run (solsa.factories.trace_dtype_of),
# full is the network's dtype, the rest are TRACE_DTYPES
TRACE_STORAGE = ("auto", "full", *TRACE_DTYPES)
# epochs=None: DEFAULT_EPOCHS, or as many epochs as MIN_BATCHES batches take where the training set is small
# (chosen on the development sets' validation splits, docs/series.md §7)
DEFAULT_EPOCHS = 60
MIN_BATCHES = 1875
# solsa tune's trials stop after max(VAL_PATIENCE epochs, VAL_PATIENCE_BATCHES updates) without a better validation
# accuracy (0 batches: never stop); chosen by replay on validation histories, docs/tune.md, docs/results/tune-patience
VAL_PATIENCE = 15
VAL_PATIENCE_BATCHES = 500
GROUPS = ("run", "task", "model", "neuron", "readout", "optimizer", "enhancements")


def _opt(default: Any, group: str, help: str, *, choices: Any = None,
         check: Callable[[str, Any], Any] | None = None, factory: Callable[[], Any] | None = None) -> Any:
    """A :class:`TrainConfig` field: default, group, help, valid values (``choices``: a tuple, or a
    callable returning one, for registries) and an extra ``check(name, value)``."""
    meta = {"group": group, "help": help, "choices": choices, "check": check}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _positive(name: str, v: Any) -> None:
    check_positive_int(name, v)


def _non_negative(name: str, v: Any) -> None:
    check_positive_int(name, v, minimum=0)


def _decay(name: str, v: Any) -> None:
    check_range(name, v, 0.0, ALPHA_MAX, hi_open=False)


def _positive_number(name: str, v: Any) -> None:
    check_range(name, v, 0.0, math.inf, lo_open=True)


def _fraction(name: str, v: Any) -> None:
    check_range(name, v, 0.0, 1.0, lo_open=True, hi_open=False)


def _open_fraction(name: str, v: Any) -> None:
    check_range(name, v, 0.0, 1.0, lo_open=True, hi_open=True)


def _optional(check: Callable[[str, Any], None]) -> Callable[[str, Any], None]:
    return lambda name, v: None if v is None else check(name, v)


def _schedule(name: str, v: Any) -> None:
    UpdateSchedule(v)  # validates the spec; raises naming "schedule"


def _hidden(name: str, v: Any) -> None:
    for h in v:
        check_positive_int("hidden layer size", h)


def trial_patience(batches: int, patience_batches: int | None = None) -> int:
    """The ``val_patience`` (epochs) of a ``solsa tune`` trial's run at ``batches`` updates per epoch:
    :data:`VAL_PATIENCE` epochs or ``patience_batches`` (default :data:`VAL_PATIENCE_BATCHES`) updates, whichever
    is more, so a small set (a few batches an epoch, hundreds of planned epochs) waits as many updates as a
    large one; 0 where ``patience_batches`` is 0 (never stop)."""
    patience_batches = VAL_PATIENCE_BATCHES if patience_batches is None else patience_batches
    return max(VAL_PATIENCE, math.ceil(patience_batches / max(1, batches))) if patience_batches else 0


def trial_patience_text(patience_batches: int | None = None) -> str:
    """:func:`trial_patience` in words (help text, reports)."""
    patience_batches = VAL_PATIENCE_BATCHES if patience_batches is None else patience_batches
    return (f"{VAL_PATIENCE} epochs or {patience_batches:,} batches, whichever is more" if patience_batches
            else "0 (every planned epoch)")


@dataclass
class TrainConfig:
    """Every option of ``solsa train``; the defaults are the main job (SOLSA on JapaneseVowels).

    The training defaults (one α, β per *input channel*, batch 16, lr 2e-3) were chosen on
    JapaneseVowels' validation split (mean over seeds 0-2; see README); SOLSA's ``cascade`` credit on the
    mean validation accuracy of the paper suite (docs/credit.md §6); ``filter_update`` log with
    ``filter_lr_scale`` 1 on the same, with α₀ set per task and with α₀ = 0 (docs/credit.md §7).
    :class:`~solsa.LIFLayer`'s own default stays one α, β per layer, as in the paper.
    """

    # run
    task: str = _opt("uea:JapaneseVowels", "task", "task spec, see `solsa tasks`")
    rule: str = _opt("solsa", "run", "learning rule, see `solsa rules`", check=lambda n, v: get_rule(v))
    model: str = _opt("full", "model", "full: the SOLSA model; paper: the neuron model of the rule's own paper; "
                      "native: e-prop's recurrent ALIF network (no synaptic filter) for every rule", choices=MODELS)
    epochs: int | None = _opt(None, "run", f"training epochs (default: {DEFAULT_EPOCHS}, or as many as {MIN_BATCHES:,} "
                              "batches take where the training set is small; docs/series.md §7)",
                              check=_optional(_positive))
    val_patience: int = _opt(0, "run", "stop training once validation accuracy has not improved for this many "
                             "epochs (0: train every epoch; solsa tune's trials default to "
                             f"{trial_patience_text()})",
                             check=_non_negative)
    seed: int = _opt(0, "run", "seeds the initial weights, the validation split and the batch order",
                     check=_non_negative)
    batch_size: int = _opt(16, "optimizer", "sequences per batch", check=_positive)
    lr: float = _opt(2e-3, "optimizer", "learning rate", check=_positive_number)
    filter_lr_scale: float = _opt(1.0, "optimizer", "learning-rate multiplier for the neuron dynamics α, β, λ "
                                  "(their learning rate is lr × filter_lr_scale)", check=_positive_number)
    filter_update: str = _opt(DEFAULT_FILTER_UPDATE, "optimizer",
                              "coordinates the optimizer steps α, β, λ in: linear (their values) or log (α, λ as "
                              "ln of the time constant 1/(1−α), β as ln β)", choices=FILTER_UPDATES)
    optimizer: str = _opt("adam", "optimizer", "torch.optim optimizer (sgd uses momentum 0.9)", choices=OPTIMIZERS)
    hidden: tuple[int, ...] = _opt((100, 100), "model", "hidden layer sizes, e.g. 100,100 ('' for none)",
                                   check=_hidden)
    bias: bool = _opt(True, "model", "a bias in every layer; false (with filter_granularity layer and the spike "
                      "readout) exports to NIR as CubaLIF, which snnTorch and Norse import (docs/interop.md)")
    readout: str = _opt("leaky", "readout", "leaky: non-spiking integrator scored by per-step cross-entropy; "
                        "spike: spiking layer scored by spike-MSE", choices=READOUTS)
    loss: str | None = _opt(None, "readout", "per-step loss (default: mse for the spiking readout, ce for the leaky)",
                            choices=(None, *LOSSES))
    readout_lam: float = _opt(0.0, "readout", "membrane decay of the leaky readout", check=_decay)
    readout_alpha: float | None = _opt(None, "readout", "initial α of the output layer (default: alpha)",
                                       check=_optional(_decay))
    readout_score: str = _opt("mean", "readout", "class score over time, and the loss weights that follow it: mean "
                              "(per-step loss, time-averaged output), last (loss and score at the last valid step) or "
                              "max (maximum over time; trained with the per-step loss, docs/memory.md)",
                              choices=READOUT_SCORES)
    alpha: float = _opt(0.0, "neuron", "initial synaptic decay α", check=_decay)
    beta: float = _opt(1.0, "neuron", "initial synaptic gain β",
                       check=lambda n, v: check_range(n, v, BETA_MIN, math.inf))
    lam: float = _opt(0.5, "neuron", "membrane decay λ", check=_decay)
    learn_alpha: bool = _opt(True, "neuron", "learn α (the adaptive synapse filter)")
    learn_beta: bool = _opt(True, "neuron", "learn β")
    learn_lam: bool = _opt(False, "neuron", "learn λ")
    filter_granularity: str = _opt("first", "neuron", "one α, β per layer, per input channel, or first: per "
                                   "input channel in the first layer, per layer above (the default: chosen on "
                                   "validation, docs/benchmarks.md §0b)", choices=FILTER_GRANULARITIES)
    lam_granularity: str = _opt("layer", "neuron", "one λ per layer or per neuron", choices=LAM_GRANULARITIES)
    reset: str = _opt("subtract", "neuron", "reset after a spike", choices=RESET_MODES)
    surrogate: str = _opt("gaussian", "neuron", "surrogate derivative of the spike", choices=lambda: tuple(SURROGATES))
    width: float | None = _opt(None, "neuron", "surrogate width (default: the surrogate's)",
                               check=_optional(_positive_number))
    threshold: float = _opt(1.0, "neuron", "firing threshold θ", check=_positive_number)
    weight_scale: float = _opt(1.0, "neuron", "initial weight scale (std = scale / sqrt(N_in))", check=_positive_number)
    neuron: str = _opt("lif", "neuron", "spiking neuron: lif, or alif (threshold θ + adapt·b, b[t] = rho·b[t-1] + "
                       "o[t-1]; docs/memory.md)", choices=NEURONS)
    adapt: float = _opt(ADAPT, "neuron", "ALIF threshold rise per spike β_a",
                        check=lambda n, v: check_range(n, v, 0.0, math.inf))
    rho: float = _opt(RHO, "neuron", "ALIF adaptation decay ρ", check=_decay)
    recurrent: bool = _opt(False, "neuron", "recurrent weights within each spiking layer (the online rules' traces "
                           "drop the paths through other neurons' spikes; docs/memory.md)")
    schedule: str = _opt("end", "enhancements", "weight-update schedule: end, every:K or search:K", check=_schedule)
    search_period: int = _opt(5, "enhancements", "epochs between additions of a search:K point", check=_positive)
    early_stop: bool = _opt(False, "enhancements", "skip the rest of confidently-right sequences")
    early_stop_rho: float = _opt(0.9, "enhancements", "fraction of the batch that must be confidently right",
                                 check=_fraction)
    early_stop_p: float = _opt(0.9, "enhancements", "class probability that counts as confident", check=_fraction)
    early_stop_h: int = _opt(2, "enhancements", "confident checks before the rest of a sequence is skipped",
                             check=_positive)
    early_stop_warmup: int = _opt(5, "enhancements", "epochs before early stop is allowed", check=_non_negative)
    encoder: str | None = _opt(None, "task", "input encoder, see `solsa tasks` (default: the task's)")
    task_options: dict[str, Any] = _opt(None, "task", "options passed to the task loader, e.g. steps=30",
                                        factory=dict)
    val_fraction: float = _opt(0.2, "task", "fraction of the training set held out for validation",
                               check=_open_fraction)
    device: str = _opt("cpu", "run", "torch device, e.g. cpu or cuda", check=lambda n, v: check_device(v, n, here=False))
    dtype: str = _opt("float32", "run", "floating-point precision of the network and data", choices=DTYPES)
    # 1 by default: at these sizes per-op overhead dominates, and on a shared 2-core machine extra
    # threads made small ops (log_softmax) ~1000x slower (docs/benchmarks.md)
    threads: int | None = _opt(1, "run", "torch CPU threads", check=_optional(_positive))
    credit: str | None = _opt(None, "model", "SOLSA's cross-layer credit (docs/credit.md): same-step, next or "
                              "cascade (default: the rule's own)", choices=(None, *CREDIT_MODES))
    backend: str = _opt("auto", "run", "implementation of the rule: auto picks the fastest available "
                        "(SOLSA: its fused C++ step; BPTT: fused, its whole-sequence path with the time loops in "
                        "C++; e-prop, OSTL, OTTT: fused, the whole sequence with the trace loops in C++); "
                        "reference: plain PyTorch; compiled: BPTT's whole-sequence "
                        "path through torch.compile (each new sequence length or layer shape compiles first, "
                        "about a minute here: for long runs)", choices=BACKENDS)
    trace_dtype: str = _opt("auto", "model", "SOLSA: where to store the [B, N_out, N_in] traces; the arithmetic "
                            "stays in dtype. auto: float16 for a float32 run on the fused kernel (docs/benchmarks.md: "
                            "0.56 x the bytes, gradient cosine 1.0000000, chosen by the 10-seed check of "
                            "docs/results/float16-default), else the network's dtype; full: the network's dtype",
                            choices=TRACE_STORAGE)
    memory_budget: int | None = _opt(None, "model", "train-state bytes an online rule may hold: the most exact "
                                     "credit, trace_dtype and filter_granularity that fit are chosen and printed "
                                     "(solsa.budget); refused if none fits", check=_optional(_positive))

    def __post_init__(self) -> None:
        self.hidden = tuple(self.hidden)
        for f in option_fields():
            value = getattr(self, f.name)
            if f.metadata["choices"] is not None:
                check_choice(f.name, value, _choices(f))
            if f.metadata["check"] is not None:
                f.metadata["check"](f.name, value)
            if _base_type(f) is bool and not isinstance(value, bool):
                raise OptionError(f.name, f"{f.name} must be true or false, got {value!r}")
        if self.credit is not None and not takes_option(self.rule, "credit"):
            raise OptionError("credit", f"credit applies to the SOLSA rules only, not to rule {self.rule!r}")
        if self.trace_dtype in TRACE_DTYPES and not takes_option(self.rule, "trace_dtype"):
            raise OptionError("trace_dtype", f"trace_dtype {self.trace_dtype} applies to the SOLSA rules only, "
                                             f"not to rule {self.rule!r}")
        if not isinstance(self.task_options, dict):
            raise OptionError("task_options", f"task_options must be a table of KEY = VALUE, got {self.task_options!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a dict (config file, ``metrics.json``); keys may use - or _; unknown keys are refused."""
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        names = {f.name for f in option_fields()}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; valid options: {sorted(names)}")
        if isinstance(data.get("hidden"), str):
            data["hidden"] = parse_hidden(data["hidden"])
        if "trace_dtype" in data and data["trace_dtype"] is None:
            data["trace_dtype"] = "full"  # a file from before "auto" (null was the network's dtype then)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes`` applied (and validated)."""
        return self.from_dict({**self.to_dict(), **changes})

    @property
    def loss_name(self) -> str:
        return self.loss or ("mse" if self.readout == "spike" else "ce")


def planned_epochs(cfg: "TrainConfig", n_train: int) -> int:
    """The epochs a run of ``cfg`` trains on ``n_train`` sequences: ``cfg.epochs`` where given, else
    :data:`DEFAULT_EPOCHS`, or as many as :data:`MIN_BATCHES` batches take where that is more (a set of a
    few dozen series gets a few batches per epoch, and 60 epochs of them leave it undertrained)."""
    if cfg.epochs is not None:
        return cfg.epochs
    return default_epochs(batches_per_epoch(cfg, n_train))


def batches_per_epoch(cfg: "TrainConfig", n_train: int) -> int:
    """The optimizer updates one epoch of ``cfg`` makes on ``n_train`` sequences (at least 1)."""
    return max(1, math.ceil(n_train / cfg.batch_size))


def default_epochs(batches: int) -> int:
    """The epochs a run with no ``epochs`` given trains at ``batches`` updates per epoch: :data:`DEFAULT_EPOCHS`,
    or as many as :data:`MIN_BATCHES` updates take where that is more."""
    return max(DEFAULT_EPOCHS, math.ceil(MIN_BATCHES / batches))


def takes_option(rule: str, name: str) -> bool:
    """Whether ``rule``'s class takes the keyword ``name`` (SOLSA's ``credit``, ``trace_dtype``)."""
    return name in inspect.signature(get_rule(rule).cls).parameters


def takes_credit(rule: str) -> bool:
    """Whether ``rule`` has SOLSA's cross-layer ``credit`` option."""
    return takes_option(rule, "credit")


def rule_credit(cfg: "TrainConfig") -> str | None:
    """The credit mode a run trains with (the option, else its rule's own; None for rules without one)."""
    if not takes_credit(cfg.rule):
        return None
    return cfg.credit or get_rule(cfg.rule).options.get("credit", DEFAULT_CREDIT)


def option_fields() -> tuple[dataclasses.Field, ...]:
    """The options, in declaration order (each field's metadata: group, help, choices, check)."""
    return dataclasses.fields(TrainConfig)


def _choices(f: dataclasses.Field) -> tuple:
    choices = f.metadata["choices"]
    return tuple(choices()) if callable(choices) else tuple(choices)


def _base_type(f: dataclasses.Field) -> type:
    """The option's value type: ``int``, ``float``, ``str``, ``bool``, ``tuple`` or ``dict``."""
    text = str(f.type).replace(" ", "")
    for name, kind in (("bool", bool), ("int|None", int), ("float", float), ("tuple", tuple), ("dict", dict),
                       ("int", int), ("str", str)):
        if text.startswith(name):
            return kind
    raise TypeError(f"option {f.name}: unsupported type {f.type}")


def option_choices(f: dataclasses.Field) -> tuple | None:
    """The valid values of option ``f`` (None: any value its check accepts)."""
    return _choices(f) if f.metadata["choices"] is not None else None


def option_type(f: dataclasses.Field) -> type:
    return _base_type(f)


def parse_scalar(text: str) -> Any:
    """``"true"`` -> True, ``"3"`` -> 3, ``"0.5"`` -> 0.5, anything else stays a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_hidden(text: str) -> tuple[int, ...]:
    """``"100,100"`` -> ``(100, 100)``; ``""`` -> no hidden layer."""
    try:
        return tuple(int(h) for h in text.split(",") if h.strip())
    except ValueError:
        raise OptionError("hidden", f"hidden must be comma-separated layer sizes like '100,100', got {text!r}") from None
