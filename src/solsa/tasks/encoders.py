"""Input encoders: turn a real-valued time series into the input of a spiking network.

Every encoder takes ``x`` ``[T, N, C]`` (time-first, zero-padded after ``lengths``) and
``lengths`` ``[N]`` and returns ``(encoded [T', N, C'], new_lengths [N])``. Padded steps of
the output (beyond the new lengths) are always zero. Encoders that draw random numbers take
a ``generator`` (a seeded ``torch.Generator`` makes them reproducible); the others accept and
ignore it so that all encoders can be called the same way.

Several encoders first squash values to ``[0, 1]``:

* ``squash="sigmoid"`` (default): ``sigmoid(x)``, meant for z-scored data (0 -> 0.5);
* ``squash="clip"``: ``clamp(x, 0, 1)``, for data already scaled to ``[0, 1]`` (images, spikes).
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import torch

from ..functional import LIFParams, synaptic_filter
from ..linear_encoder import learned_channels, linear
from ..validation import check_positive_int, check_range
from .base import length_mask

__all__ = [
    "direct",
    "population",
    "delta",
    "bank",
    "bank_timescales",
    "delay",
    "delay_lags",
    "delay_lags_for",
    "rate",
    "latency",
    "linear",
    "learned_channels",
    "encode",
    "encoder_defaults",
    "list_encoders",
    "ENCODERS",
]

_SQUASHES = ("sigmoid", "clip")


def _prepare(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate inputs; return float32 ``x``, int64 ``lengths`` and a ``[T, N, 1]`` float mask."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError(f"x must be a [T, N, C] tensor, got {getattr(x, 'shape', type(x))}")
    lengths = torch.as_tensor(lengths, dtype=torch.int64)
    if tuple(lengths.shape) != (x.shape[1],):
        raise ValueError(f"lengths must have shape ({x.shape[1]},), got {tuple(lengths.shape)}")
    if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > x.shape[0]):
        raise ValueError(f"lengths must lie in 1..{x.shape[0]}")
    x = x.to(torch.float32)
    mask = length_mask(lengths, x.shape[0]).unsqueeze(-1).to(torch.float32)
    return x, lengths, mask


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, else raise ``ValueError`` (so "false" strings are not truthy)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false (a bool), got {value!r}")
    return value


def _squash(x: torch.Tensor, squash: str) -> torch.Tensor:
    if squash == "sigmoid":
        return torch.sigmoid(x)
    if squash == "clip":
        return x.clamp(0.0, 1.0)
    raise ValueError(f"squash must be one of {_SQUASHES}, got {squash!r}")


def direct(x: torch.Tensor, lengths: torch.Tensor, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Identity: the (normalised) signal itself is the input current of the first synaptic filter."""
    x, lengths, mask = _prepare(x, lengths)
    return x * mask, lengths.clone()


def population(
    x: torch.Tensor,
    lengths: torch.Tensor,
    *,
    n_per_channel: int = 5,
    sigma: float | None = None,
    lo: float = -2.5,
    hi: float = 2.5,
    spikes: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian receptive fields: each channel drives ``n_per_channel`` neurons.

    Neuron ``j`` of channel ``c`` (output channel ``c * n_per_channel + j``) has its centre
    ``mu_j`` on an even grid over ``[lo, hi]`` and outputs ``exp(-(x - mu_j)^2 / (2 sigma^2))``
    in ``[0, 1]``. ``sigma`` defaults to the grid spacing ``(hi - lo) / (n - 1)`` (``(hi - lo) / 2``
    for a single neuron). With ``spikes=True`` the activations are used as Bernoulli spike
    probabilities. ``C' = C * n_per_channel``, ``T' = T``.
    """
    x, lengths, mask = _prepare(x, lengths)
    spikes = check_bool("spikes", spikes)
    check_positive_int("n_per_channel", n_per_channel)
    if not hi > lo:
        raise ValueError(f"population needs hi > lo, got lo={lo}, hi={hi}")
    if n_per_channel == 1:
        centres = torch.tensor([(lo + hi) / 2.0])
        default_sigma = (hi - lo) / 2.0
    else:
        centres = torch.linspace(lo, hi, n_per_channel)
        default_sigma = (hi - lo) / (n_per_channel - 1)
    sigma = default_sigma if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    act = torch.exp(-0.5 * ((x.unsqueeze(-1) - centres) / sigma) ** 2)  # [T, N, C, n]
    act = act.reshape(x.shape[0], x.shape[1], -1) * mask
    if spikes:
        act = torch.bernoulli(act, generator=generator) * mask
    return act, lengths.clone()


def delta(
    x: torch.Tensor,
    lengths: torch.Tensor,
    *,
    threshold: float = 0.1,
    start: float | None = None,
    adapt: float = 0.0,
    rho: float = 0.9,
    level: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Level-crossing ("send-on-delta") encoding into ON and OFF spike channels; fixed or adaptive threshold.

    Per input channel a reference level ``r`` starts at the first sample ``x[0]`` (or at
    ``start`` if given, which lets the first step spike too). At each step ``t`` the number of
    whole thresholds the signal has moved, ``k = floor(|x[t] - r| / threshold)``, is computed;
    if ``k >= 1`` a single spike is emitted on the ON channel (rising) or the OFF channel
    (falling) and ``r`` moves by ``k * threshold`` towards ``x[t]``. Several crossings within
    one step therefore give ONE spike (the output stays binary) but are not forgotten by the
    reference. Output channels ``0..C-1`` are ON, ``C..2C-1`` are OFF (``C' = 2C``, ``T' = T``).

    With ``adapt > 0`` the threshold adapts per sample and channel: each spike raises it by
    ``adapt * threshold`` and it relaxes back towards ``threshold`` by the factor ``rho`` per step,
    ``theta[t+1] = threshold + rho * (theta[t] - threshold) + adapt * threshold * spiked[t]``,
    so a fast-changing stretch is sent with fewer spikes (``adapt = 0``: a fixed threshold).
    With ``level=True`` the signal itself follows as channels ``2C..3C-1`` (``C' = 3C``): the network
    gets the level and its changes.
    """
    x, lengths, mask = _prepare(x, lengths)
    level = check_bool("level", level)
    threshold, adapt, rho = float(threshold), float(adapt), float(rho)
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    if not adapt >= 0:
        raise ValueError(f"adapt must be >= 0, got {adapt}")
    if not 0.0 <= rho < 1.0:
        raise ValueError(f"rho must be in [0, 1), got {rho}")
    steps, n, c = x.shape
    on = torch.zeros_like(x)
    off = torch.zeros_like(x)
    levels = [x * mask] if level else []
    if steps == 0:
        return torch.cat([on, off, *levels], dim=-1), lengths.clone()
    eps = 1e-6  # tolerate float rounding when the signal moves by exactly one threshold
    if start is None:
        ref = x[0].clone()
        first = 1
    else:
        ref = torch.full((n, c), float(start))
        first = 0
    theta = torch.full((n, c), threshold)
    for t in range(first, steps):
        d = x[t] - ref
        k = torch.floor(d.abs() / theta + eps)
        fired = k >= 1
        on[t] = (fired & (d > 0)).to(torch.float32)
        off[t] = (fired & (d < 0)).to(torch.float32)
        ref = ref + torch.sign(d) * k * theta
        if adapt > 0:
            theta = threshold + rho * (theta - threshold) + adapt * threshold * fired.to(torch.float32)
    return torch.cat([on * mask, off * mask, *levels], dim=-1), lengths.clone()


def bank_timescales(n: int, tau_min: float, tau_max: float) -> torch.Tensor:
    """``n`` time constants (in steps) spread log-uniformly over ``[tau_min, tau_max]`` (``tau_min`` for ``n = 1``)."""
    if n == 1:
        return torch.tensor([tau_min], dtype=torch.float64)
    return torch.logspace(math.log10(tau_min), math.log10(tau_max), n, dtype=torch.float64)


def bank(
    x: torch.Tensor,
    lengths: torch.Tensor,
    *,
    n_per_channel: int = 4,
    tau_min: float = 1.0,
    tau_max: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Temporal filter bank: each channel becomes ``n_per_channel`` low-passed copies at log-spread time constants.

    The time constants ``τ_k`` are spread log-uniformly from ``tau_min`` to ``tau_max`` steps (default: half
    the series' padded length ``T``).

    Copy ``k`` of channel ``c`` (output channel ``c * n_per_channel + k``) is the network's own synaptic filter
    (docs/model.md §1) with ``α_k = 1 - 1/τ_k`` and unit gain ``β_k = 1 - α_k``:
    ``y[t] = α_k y[t-1] + (1 - α_k) x[t]``, ``y[-1] = 0`` (``τ = 1`` is the signal itself). Layer 0 then sees
    one signal per timescale instead of a single one, so its neurons can weigh slow against fast copies
    (differences of low-passes are band-passes) where a single input drives every neuron alike.
    ``C' = C * n_per_channel``, ``T' = T``.
    """
    x, lengths, mask = _prepare(x, lengths)
    check_positive_int("n_per_channel", n_per_channel)
    tau_min = check_range("tau_min", tau_min, 1.0, math.inf)
    steps, n, c = x.shape
    tau_max = max(steps / 2.0, tau_min) if tau_max is None else check_range("tau_max", tau_max, tau_min, math.inf)
    alpha = (1.0 - 1.0 / bank_timescales(n_per_channel, tau_min, tau_max)).to(torch.float32)
    params = LIFParams(None, None, alpha, 1.0 - alpha, None, None)
    y = x.new_zeros(n, c, n_per_channel)
    out = x.new_zeros(steps, n, c, n_per_channel)
    for t in range(steps):
        y = synaptic_filter(x[t].unsqueeze(-1), y, params)
        out[t] = y
    return out.reshape(steps, n, c * n_per_channel) * mask, lengths.clone()


def delay_lags(taps: int, dilations: int, max_dilation: int) -> list[int]:
    """The distinct delays (in steps, ascending) of a tapped delay line: ``k * d`` for taps ``k = 0..taps-1`` and
    ``d`` in ``dilations`` log-spaced (base 2, floored, duplicates dropped) dilations from 1 to ``max_dilation``."""
    check_positive_int("taps", taps)
    check_positive_int("dilations", dilations)
    check_positive_int("max_dilation", max_dilation)
    ds = torch.logspace(0.0, math.log2(max_dilation), dilations, base=2.0, dtype=torch.float64)
    dils = sorted({max(1, min(max_dilation, int(math.floor(d + 1e-9)))) for d in ds.tolist()})
    return sorted({k * d for k in range(taps) for d in dils})


def delay_lags_for(steps: int, *, taps: int = 5, dilations: int = 3, max_dilation: int | None = None) -> list[int]:
    """The delays :func:`delay` uses on series padded to ``steps`` steps with these options (``max_dilation``
    None: ``(steps - 1) // (taps - 1)``, at least 1; 1 for ``taps = 1``): :func:`delay_lags` of the resolved
    maximum dilation. The C export (:mod:`solsa.export_c`) builds its delay line from these."""
    if max_dilation is None:
        max_dilation = max(1, (steps - 1) // (taps - 1)) if taps > 1 else 1
    return delay_lags(taps, dilations, max_dilation)


def delay(
    x: torch.Tensor,
    lengths: torch.Tensor,
    *,
    taps: int = 5,
    dilations: int = 3,
    max_dilation: int | None = None,
    smooth: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tapped, dilated delay line: each channel becomes its copies ``x[t - k*d]`` (dilated convolution taps).

    Dilations: ``dilations`` values log-spaced from 1 to ``max_dilation`` (default ``(T - 1) // (taps - 1)``,
    so the widest kernel spans the padded length ``T``, as in MiniRocket; 1 for ``taps = 1``). The delays are the
    distinct products ``k * d`` (:func:`delay_lags`; a delay shared by two dilations appears once: layer 0 is
    linear in its inputs, so the copy would add nothing) — ``M`` of them, delay 0 (the signal) first.
    Output channel ``c * M + m`` is channel ``c`` delayed by the ``m``-th delay, zero before the series starts
    (causal, memory ``max delay`` steps). Layer 0's weights on these channels are learned convolution kernels
    and its neurons' spikes, averaged over time by the readout, are MiniRocket-like PPV features.
    ``smooth > 0`` appends the :func:`bank` (``n_per_channel = smooth``, its default τ's) after the ``C * M``
    delay channels. ``C' = C * M + C * smooth``, ``T' = T``. For a stream (series of other lengths) pass
    ``max_dilation`` so that ``M`` does not depend on ``T``. The defaults (5 taps, 3 dilations, no bank) are the
    one-channel uea default, chosen on validation (docs/series.md §8).
    """
    x, lengths, mask = _prepare(x, lengths)
    check_positive_int("taps", taps)
    check_positive_int("smooth", smooth, minimum=0)
    steps, n, c = x.shape
    lags = delay_lags_for(steps, taps=taps, dilations=dilations, max_dilation=max_dilation)
    x = x * mask
    padded = torch.cat([x.new_zeros(lags[-1], n, c), x], dim=0)
    out = torch.stack([padded[lags[-1] - lag : lags[-1] - lag + steps] for lag in lags], dim=-1)
    out = out.reshape(steps, n, c * len(lags)) * mask
    if smooth:
        out = torch.cat([out, bank(x, lengths, n_per_channel=smooth)[0]], dim=-1)
    return out, lengths.clone()


def rate(
    x: torch.Tensor,
    lengths: torch.Tensor,
    *,
    max_rate: float = 1.0,
    squash: str = "sigmoid",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bernoulli rate code: at each step a spike with probability ``max_rate * squash(x)``.

    ``squash`` maps values to ``[0, 1]`` (see the module docstring: ``"sigmoid"`` for z-scored
    data, ``"clip"`` for data already in ``[0, 1]``). ``T' = T``, ``C' = C``. Seeded via ``generator``.
    """
    x, lengths, mask = _prepare(x, lengths)
    max_rate = float(max_rate)
    if not 0.0 <= max_rate <= 1.0:
        raise ValueError(f"max_rate must be in [0, 1], got {max_rate}")
    p = (_squash(x, squash) * max_rate).clamp(0.0, 1.0) * mask
    return torch.bernoulli(p, generator=generator) * mask, lengths.clone()


def latency(
    x: torch.Tensor,
    lengths: torch.Tensor,
    *,
    window: int = 5,
    floor: float = 0.1,
    squash: str = "sigmoid",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Time-to-first-spike code: each input step becomes ``window`` sub-steps.

    With ``v = squash(x)`` in ``[0, 1]``, channel ``c`` at input step ``t`` spikes once, at
    sub-step ``t * window + round((1 - v) * (window - 1))``: larger values spike earlier
    (``v = 1`` at the first sub-step, ``v = 0`` at the last). Values with ``v < floor`` emit no
    spike. ``T' = T * window``, new lengths ``= lengths * window``, ``C' = C``.
    """
    x, lengths, mask = _prepare(x, lengths)
    check_positive_int("window", window)
    steps, n, c = x.shape
    v = _squash(x, squash)
    fire = (v >= float(floor)).to(torch.float32) * mask  # [T, N, C]
    pos = torch.round((1.0 - v) * (window - 1)).to(torch.int64).clamp(0, window - 1)
    onehot = torch.nn.functional.one_hot(pos, window).to(torch.float32) * fire.unsqueeze(-1)  # [T, N, C, W]
    out = onehot.permute(0, 3, 1, 2).reshape(steps * window, n, c)
    return out, lengths * window


ENCODERS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    "direct": direct,
    "population": population,
    "delta": delta,
    "bank": bank,
    "delay": delay,
    "rate": rate,
    "latency": latency,
    "linear": linear,
}


def _get(name: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; valid encoders: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name]


def encoder_defaults(name: str) -> dict[str, Any]:
    """The options of encoder ``name`` with their default values (``generator`` excluded)."""
    params = inspect.signature(_get(name)).parameters
    return {
        p.name: p.default
        for p in params.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "generator"
    }


def encode(
    name: str,
    x: torch.Tensor,
    lengths: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    **opts: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply encoder ``name`` (see :func:`list_encoders`) with options ``opts``.

    Raises ``ValueError`` for an unknown encoder or an option the encoder does not take.
    """
    fn = _get(name)
    valid = encoder_defaults(name)
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        raise ValueError(
            f"encoder {name!r} got unknown option(s) {unknown}; valid options: {sorted(valid) or 'none'}"
        )
    return fn(x, lengths, generator=generator, **opts)


def list_encoders() -> list[tuple[str, str]]:
    """``(name, one-line description)`` for every encoder."""
    return [(name, (fn.__doc__ or "").strip().splitlines()[0]) for name, fn in ENCODERS.items()]

