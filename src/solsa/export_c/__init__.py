"""A network and its SOLSA learner as a portable C99 library (``solsa export CKPT DIR --format c``).

>>> from solsa.export_c import export_checkpoint  # doctest: +SKIP
>>> export_checkpoint("runs/x/checkpoint.pt", "device/", learn=True)  # solsa_model.h, solsa_model.c

The library needs no malloc, no threads and no libm beyond ``expf``: the parameters are a ``static``
array, everything else lives in one ``solsa_state`` struct whose size the header states
(``SOLSA_TRACE_BYTES`` equals the rule's ``train_state_bytes()`` at batch size 1). ``solsa_learn_step``
runs :class:`~solsa.rules.SOLSA` (any credit mode, reset feedback on or off) for one step;
``solsa_apply`` is SGD (with optional momentum) with the run's ``filter_lr_scale`` and ``filter_update``,
then the clamps of ``net.clamp_()``. ``dtype="float64"``: every value a ``double`` (to follow a float64
run); ``dtype="q15"``: fixed-point inference (int16 weights, int32 state). The input encoders built in:
``direct`` and ``delay`` (:mod:`solsa.export_c.inputs`). docs/embedded.md walks through an example.
"""

from __future__ import annotations

from pathlib import Path

from ..config import TrainConfig, rule_credit
from ..rules.solsa import TRACE_DTYPES
from ..layers import SNN
from ..rules import SOLSA, RULES, get_rule
from ..rules.credit import CREDIT_MODES
from ..validation import check_choice, check_range
from .generate import LearnerSpec, write_c
from .inputs import ENCODERS, CExportError, InputSpec, input_spec
from .q15 import write_q15

__all__ = ["DTYPES", "ENCODERS", "RULES_SUPPORTED", "CExportError", "InputSpec", "LearnerSpec", "export_c",
           "export_checkpoint", "learner_spec"]

DTYPES = ("float32", "float64", "q15")  # float64: every value a double; q15: fixed-point inference only (q15.py)
RULES_SUPPORTED = tuple(name for name, spec in RULES.items() if spec.cls is SOLSA)
LOSSES_SUPPORTED = ("mse", "ce")


def learner_spec(cfg: TrainConfig, momentum: float = 0.0) -> LearnerSpec:
    """The learner of a run's config, or a :class:`CExportError` naming what the C export does not support."""
    if cfg.rule not in RULES_SUPPORTED:
        raise CExportError("rule", f"rule {cfg.rule!r} cannot be exported as a C learner; supported rules: "
                                   f"{', '.join(RULES_SUPPORTED)}")
    if cfg.encoder == "linear":
        raise CExportError("encoder", "the linear encoder cannot be exported as a C learner: its E is folded into the "
                                      "first layer's weight, which the C learner would train itself instead of W and "
                                      "E (export it without learn: inference)")
    credit = rule_credit(cfg)
    if credit not in CREDIT_MODES:
        raise CExportError("credit", f"credit {credit!r} cannot be exported; supported: {', '.join(CREDIT_MODES)}")
    if cfg.loss_name not in LOSSES_SUPPORTED:
        raise CExportError("loss", f"loss {cfg.loss_name!r} cannot be exported; supported: "
                                   f"{', '.join(LOSSES_SUPPORTED)}")
    if cfg.trace_dtype in TRACE_DTYPES:  # auto (float16 in training) exports: on the device the traces are float32
        raise CExportError("trace_dtype", f"trace_dtype {cfg.trace_dtype!r} cannot be exported; the C learner stores "
                                          "its traces in float32 (supported: auto, full)")
    check_range("momentum", momentum, 0.0, 1.0, hi_open=True)
    options = get_rule(cfg.rule).options
    return LearnerSpec(credit=credit, reset_feedback=options.get("reset_feedback", True), loss=cfg.loss_name,
                       filter_update=cfg.filter_update, filter_lr_scale=cfg.filter_lr_scale, momentum=float(momentum))


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


def _check_dtype(dtype: str, learn: bool, inputs: InputSpec | None = None) -> None:
    check_choice("dtype", dtype, DTYPES)
    if dtype == "q15" and learn:
        raise CExportError("dtype", "dtype 'q15' is inference only (the learner in fixed point is not implemented "
                                    "yet); with learn, supported: float32, float64")
    if dtype == "q15" and inputs is not None and inputs.encoder != "direct":
        raise CExportError("dtype", f"dtype 'q15' takes the network's input itself (encoder direct); the "
                                    f"{inputs.encoder} encoder is built for float32, float64 only")


def export_c(net: SNN, out_dir: str | Path, *, learn: bool = False, spec: LearnerSpec | None = None,
             dtype: str = "float32", inputs: InputSpec | None = None) -> dict:
    """Write ``net`` (and with ``learn`` its SOLSA learner, ``spec``) as ``solsa_model.h``/``.c`` into
    ``out_dir``, fed as ``inputs`` says (default: the network's input itself; :meth:`InputSpec.delay`: raw
    samples through the delay line); returns the manifest (also written as ``solsa_model.json``: the layout
    and the bytes)."""
    _check_dtype(dtype, learn, inputs)
    if not isinstance(net, SNN):
        raise TypeError(f"net must be a solsa.SNN, got {type(net).__name__}")
    check_network(net)
    if dtype == "q15":
        return write_q15(net, out_dir, inputs)
    return write_c(net, out_dir, learn, spec, dtype, inputs)


def export_checkpoint(path: str | Path, out_dir: str | Path, *, learn: bool = False, dtype: str = "float32",
                      momentum: float = 0.0) -> dict:
    """Export the network of a ``solsa train`` checkpoint (and with ``learn`` its rule as a C learner), with the
    encoder its run used built in (:func:`~solsa.export_c.inputs.input_spec`)."""
    from ..evaluation import network_from_checkpoint

    _check_dtype(dtype, learn)
    net, cfg, ckpt = network_from_checkpoint(path)
    inputs = input_spec(cfg, ckpt)
    spec = learner_spec(cfg, momentum) if learn else None
    return export_c(net, out_dir, learn=learn, spec=spec, dtype=dtype, inputs=inputs)
