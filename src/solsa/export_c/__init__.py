"""A network and its SOLSA learner as a portable C99 library (``solsa export CKPT DIR --format c``).

>>> from solsa.export_c import export_checkpoint  # doctest: +SKIP
>>> export_checkpoint("runs/x/checkpoint.pt", "device/", learn=True)  # solsa_model.h, solsa_model.c

The library needs no malloc, no threads and no libm beyond ``expf``: the parameters are a ``static``
array, everything else lives in one ``solsa_state`` struct whose size the header states
(``SOLSA_TRACE_BYTES`` equals the rule's ``train_state_bytes()`` at batch size 1). ``solsa_learn_step``
runs :class:`~solsa.rules.SOLSA` (any credit mode, reset feedback on or off) for one step;
``solsa_apply`` is SGD (with optional momentum) with the run's ``filter_lr_scale`` and ``filter_update``,
then the clamps of ``net.clamp_()``. ``dtype="float64"``: every value a ``double`` (to follow a float64
run); ``dtype="q15"``: fixed-point inference (int16 weights, int32 state).
docs/embedded.md walks through an example.
"""

from __future__ import annotations

from pathlib import Path

from ..config import TrainConfig, rule_credit
from ..layers import SNN
from ..rules import SOLSA, RULES, get_rule
from ..rules.credit import CREDIT_MODES
from ..validation import OptionError, check_choice, check_range
from .generate import LearnerSpec, write_c
from .q15 import write_q15

__all__ = ["DTYPES", "ENCODERS", "RULES_SUPPORTED", "CExportError", "LearnerSpec", "export_c", "export_checkpoint",
           "learner_spec"]

DTYPES = ("float32", "float64", "q15")  # float64: every value a double; q15: fixed-point inference only (q15.py)
ENCODERS = ("direct",)  # the device receives the network's input itself; other encoders would run on it
RULES_SUPPORTED = tuple(name for name, spec in RULES.items() if spec.cls is SOLSA)
LOSSES_SUPPORTED = ("mse", "ce")


class CExportError(OptionError):
    """A network, rule or option the C export does not support (names the option and what is supported)."""


def learner_spec(cfg: TrainConfig, momentum: float = 0.0) -> LearnerSpec:
    """The learner of a run's config, or a :class:`CExportError` naming what the C export does not support."""
    if cfg.rule not in RULES_SUPPORTED:
        raise CExportError("rule", f"rule {cfg.rule!r} cannot be exported as a C learner; supported rules: "
                                   f"{', '.join(RULES_SUPPORTED)}")
    credit = rule_credit(cfg)
    if credit not in CREDIT_MODES:
        raise CExportError("credit", f"credit {credit!r} cannot be exported; supported: {', '.join(CREDIT_MODES)}")
    if cfg.loss_name not in LOSSES_SUPPORTED:
        raise CExportError("loss", f"loss {cfg.loss_name!r} cannot be exported; supported: "
                                   f"{', '.join(LOSSES_SUPPORTED)}")
    if cfg.trace_dtype is not None:
        raise CExportError("trace_dtype", f"trace_dtype {cfg.trace_dtype!r} cannot be exported; the C learner stores "
                                          "its traces in float32 (supported: the network's dtype)")
    check_range("momentum", momentum, 0.0, 1.0, hi_open=True)
    options = get_rule(cfg.rule).options
    return LearnerSpec(credit=credit, reset_feedback=options.get("reset_feedback", True), loss=cfg.loss_name,
                       filter_update=cfg.filter_update, filter_lr_scale=cfg.filter_lr_scale, momentum=float(momentum))


def _check_encoder(cfg: TrainConfig, recorded: str | None = None) -> None:
    """``recorded``: the encoder the run's task resolved (checkpoints since the uea default became ``bank`` for one
    channel keep it); older checkpoints fall back to the option, then the task family's default."""
    from ..tasks import TASKS

    family = TASKS.get(cfg.task.partition(":")[0])
    encoder = recorded or cfg.encoder or (family.default_encoder if family is not None else None)
    if encoder not in ENCODERS:
        raise CExportError("encoder", f"encoder {encoder!r} cannot run on the device; supported encoders: "
                                      f"{', '.join(ENCODERS)} (the C library takes the network's input itself)")


def check_network(net: SNN) -> None:
    """A :class:`CExportError` for a network the C library does not implement (ALIF, recurrent, readout score)."""
    for i, layer in enumerate(net.layers):
        if layer.adaptive:
            raise CExportError("neuron", f"layer {i} is ALIF; the C export supports neuron 'lif' only")
        if layer.recurrent:
            raise CExportError("recurrent", f"layer {i} has recurrent weights; the C export supports "
                                            "feed-forward layers only (recurrent false)")
    if net.readout_score != "mean":
        raise CExportError("readout_score", f"readout_score {net.readout_score!r} cannot be exported; "
                                            "supported: mean (a loss and an output at every step)")


def _check_dtype(dtype: str, learn: bool) -> None:
    check_choice("dtype", dtype, DTYPES)
    if dtype == "q15" and learn:
        raise CExportError("dtype", "dtype 'q15' is inference only (the learner in fixed point is not implemented "
                                    "yet); with learn, supported: float32, float64")


def export_c(net: SNN, out_dir: str | Path, *, learn: bool = False, spec: LearnerSpec | None = None,
             dtype: str = "float32") -> dict:
    """Write ``net`` (and with ``learn`` its SOLSA learner, ``spec``) as ``solsa_model.h``/``.c`` into
    ``out_dir``; returns the manifest (also written as ``solsa_model.json``: the layout and the bytes)."""
    _check_dtype(dtype, learn)
    if not isinstance(net, SNN):
        raise TypeError(f"net must be a solsa.SNN, got {type(net).__name__}")
    check_network(net)
    if dtype == "q15":
        return write_q15(net, out_dir)
    return write_c(net, out_dir, learn, spec, dtype)


def export_checkpoint(path: str | Path, out_dir: str | Path, *, learn: bool = False, dtype: str = "float32",
                      momentum: float = 0.0) -> dict:
    """Export the network of a ``solsa train`` checkpoint (and with ``learn`` its rule as a C learner)."""
    from ..evaluation import network_from_checkpoint

    _check_dtype(dtype, learn)
    net, cfg, ckpt = network_from_checkpoint(path)
    _check_encoder(cfg, ckpt["config"].get("encoder"))
    spec = learner_spec(cfg, momentum) if learn else None
    return export_c(net, out_dir, learn=learn, spec=spec, dtype=dtype)
