"""What the device feeds ``solsa_step`` and how the C library turns it into the network's input: the encoders the
export builds in C.

- ``direct``: the sample is the network's input itself (``SOLSA_N_INPUTS`` values a step).
- ``delay`` (:func:`solsa.tasks.encoders.delay`, the one-channel UEA default): the device feeds one raw sample of
  each channel a step; a ring buffer per channel in ``solsa_state`` keeps its last ``max delay + 1`` samples
  (zero before the sequence starts: ``solsa_reset`` clears it) and the network's input ``c * M + m`` is channel
  ``c`` delayed by the ``m``-th of the ``M`` delays, in the PyTorch encoder's order. ``smooth > 0`` (the filter
  bank ``bank`` appended) is refused: ``bank`` is not built in C.

The samples the device feeds are those the task's loader hands the encoder: after its pooling and normalisation
(``uea``: average-pooled by ``pool`` steps and z-scored with the training statistics), which the C library does
not do; :func:`input_spec` copies them from the checkpoint into the manifest (``input.preprocess``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import TrainConfig
from ..tasks.encoders import delay_lags_for
from ..validation import OptionError

__all__ = ["ENCODERS", "CExportError", "InputSpec", "input_spec"]

ENCODERS = ("direct", "delay")  # built in C (direct: nothing to build)
_PREPROCESS = ("pool", "original_T", "normalization")  # task_info entries on what the loader did before the encoder


class CExportError(OptionError):
    """A network, rule or option the C export does not support (names the option and what is supported)."""


@dataclass(frozen=True)
class InputSpec:
    """The C library's input: ``encoder`` ``"direct"`` (``channels`` None: the network's inputs) or ``"delay"``
    (``channels`` raw channels, each delayed by ``lags``, ascending from 0); ``preprocess``: what the task did to
    the samples before its encoder (pooling, normalisation), recorded in the manifest for the device's code."""

    encoder: str = "direct"
    channels: int | None = None
    lags: tuple[int, ...] = ()
    preprocess: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def delay(cls, channels: int, lags: list[int] | tuple[int, ...], preprocess: dict[str, Any] | None = None
              ) -> InputSpec:
        """The delay line of ``channels`` raw channels with delays ``lags`` (:func:`~solsa.tasks.encoders.delay_lags_for`)."""
        lags = tuple(int(v) for v in lags)
        if channels < 1 or not lags or lags[0] != 0 or list(lags) != sorted(set(lags)):
            raise ValueError(f"a delay line needs channels >= 1 and distinct ascending delays from 0, got "
                             f"{channels} channel(s), delays {list(lags)}")
        return cls("delay", int(channels), lags, dict(preprocess or {}))

    def n_raw(self, n_inputs: int) -> int:
        """Values fed per step (``SOLSA_N_INPUTS``) for a network of ``n_inputs`` inputs."""
        return n_inputs if self.channels is None else self.channels

    def span(self) -> int:
        """Samples each channel's ring keeps (max delay + 1; 0: no ring)."""
        return self.lags[-1] + 1 if self.encoder == "delay" else 0

    def check(self, n_inputs: int) -> None:
        """A ``ValueError`` when the encoder's output is not ``n_inputs`` wide."""
        if self.encoder == "delay" and self.channels * len(self.lags) != n_inputs:
            raise ValueError(f"the delay line gives {self.channels} x {len(self.lags)} = "
                             f"{self.channels * len(self.lags)} inputs; the network has {n_inputs}")

    def manifest(self, n_inputs: int) -> dict[str, Any]:
        """The ``input`` entry of ``solsa_model.json``."""
        return {"encoder": self.encoder, "channels": self.n_raw(n_inputs), "lags": list(self.lags),
                "ring_samples": self.span(), "preprocess": self.preprocess}


def _recorded_info(cfg: TrainConfig, ckpt: dict) -> dict[str, Any]:
    """The task facts of the run (``task_info``, recorded in checkpoints since the delay line was exported);
    older checkpoints: the task loaded again as at training (the same options, seed and data)."""
    info = ckpt["config"].get("task_info")
    if info is not None:
        return info
    from ..evaluation import load_task_of

    try:
        return load_task_of(cfg).info
    except (ValueError, OSError) as err:
        raise CExportError("encoder", f"the checkpoint does not record its encoder's options and its task "
                                      f"{cfg.task!r} cannot be loaded to find them: {err}") from err


def _delay_spec(cfg: TrainConfig, ckpt: dict, opts: dict[str, Any] | None = None) -> InputSpec:
    """The delay line of the run (``opts``: its options, default the recorded encoder's)."""
    info = _recorded_info(cfg, ckpt)
    opts = dict(info.get("encoder_options") or {}) if opts is None else dict(opts)
    smooth = int(opts.pop("smooth", 0) or 0)
    if smooth:
        raise CExportError("encoder", f"encoder 'delay' with smooth={smooth} cannot run on the device: its filter "
                                      "bank (encoder 'bank') is not built in C; supported encoders: "
                                      f"{', '.join(ENCODERS)} (delay with smooth=0)")
    lags = delay_lags_for(int(info["T"]), **opts)
    n_inputs = int(ckpt["config"]["n_inputs"])
    if n_inputs % len(lags):
        raise CExportError("encoder", f"the network's {n_inputs} inputs are not whole channels of the "
                                      f"{len(lags)} delays {lags} its task's delay line gives")
    return InputSpec.delay(n_inputs // len(lags), lags, {k: info[k] for k in _PREPROCESS if k in info})


def input_spec(cfg: TrainConfig, ckpt: dict) -> InputSpec:
    """The input of a checkpoint's network as the C library builds it, or a :class:`CExportError` naming the
    encoder. The encoder is the one the run's task resolved (recorded in the checkpoint; a one-channel uea run
    takes ``delay``); older checkpoints fall back to the option, then the task family's default, or, for a
    family that picks its encoder by the data (uea), the task loaded again."""
    from ..tasks import resolved_encoder

    named = ckpt["config"].get("encoder") or cfg.encoder
    encoder = resolved_encoder(cfg.task, named, lambda: _recorded_info(cfg, ckpt))
    opts, label = None, f"encoder {encoder!r}"
    if encoder == "linear":  # its E is folded into layer 0's weight (M = W·E, solsa.linear_encoder): the device
        recorded = _recorded_info(cfg, ckpt).get("encoder_options") or {}  # runs the base encoder
        encoder, opts = recorded.get("base"), dict(recorded.get("base_options") or {})
        label = f"the linear encoder's base {encoder!r}"
    if encoder not in ENCODERS:
        raise CExportError("encoder", f"{label} cannot run on the device; supported encoders: "
                                      f"{', '.join(ENCODERS)} (direct: the C library takes the network's input "
                                      "itself; delay: its delay line runs in C, without smooth)")
    if encoder == "delay":
        return _delay_spec(cfg, ckpt, opts)
    info = ckpt["config"].get("task_info") or {}
    return InputSpec(preprocess={k: info[k] for k in _PREPROCESS if k in info})
