"""``nn.Module`` wrappers: a LIF layer holds its parameters, a network stacks layers.

The dynamics live in :func:`solsa.functional.lif_step`; the modules only hold
tensors, validate settings and run the one time loop.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from .functional import NEURONS, RESET_MODES, LIFConfig, LIFParams, LIFState, lif_step
from .linear_encoder import LinearEncoder
from .surrogate import check_surrogate
from .validation import check_choice, check_input, check_positive_int, check_range

__all__ = ["LIFLayer", "SNN", "filter_summary", "READOUTS", "READOUT_SCORES", "FILTER_GRANULARITIES", "LAM_GRANULARITIES",
           "ADAPT", "RHO"]

READOUTS = ("spike", "leaky")
# how the class scores (and the loss weights over time, rules.sequence_weights) are taken: the mean over
# the valid steps (a spiking readout: the spike count), the last valid step, or the maximum over time
READOUT_SCORES = ("mean", "last", "max")
ADAPT, RHO = 0.2, 0.95  # ALIF defaults (not tuned): threshold rise per spike β_a and its decay ρ
LAYER_FILTER_GRANULARITIES = ("layer", "channel")  # a layer's: one α, β per layer (the paper's) or per input channel
# a network's, fewest α, β first: the same in every layer, or "first": per input channel in the first layer
# (its few inputs make it cheap), one per layer above
FILTER_GRANULARITIES = ("layer", "first", "channel")
LAM_GRANULARITIES = ("layer", "neuron")  # one λ per layer or per neuron
ALPHA_MAX = 0.999  # α, λ are kept in [0, ALPHA_MAX] by clamp_()
BETA_MIN = 1e-2  # the β gradient divides by β: keep it away from 0 (docs/model.md §7)


def _granularity(name: str, value: str, allowed: tuple[str, str]) -> bool:
    """Whether ``value`` is the finer of the two ``allowed`` granularities."""
    return check_choice(name, value, allowed) == allowed[1]


class LIFLayer(nn.Module):
    """A layer of LIF neurons behind exponentially decayed synapses (docs/model.md §1).

    Args:
        in_features, out_features: N_in, N_out.
        alpha: initial synaptic decay α in [0, 1). 0 means no synaptic memory.
        beta: initial synaptic gain β > 0.
        lam: membrane decay λ in [0, 1).
        filter_granularity: ``"layer"`` (one α and β per layer, the paper's) or ``"channel"`` (one per input).
        learn_alpha, learn_beta, learn_lam: whether α, β, λ are parameters or fixed buffers.
        lam_granularity: ``"layer"`` or ``"neuron"``.
        bias: whether the layer has a bias b.
        threshold: θ > 0.  reset_amount: θ_r ≥ 0 (default θ).
        reset: ``"subtract"`` (soft reset, default), ``"zero"`` (hard reset) or ``"none"``.
        surrogate: ``"gaussian"``, ``"fast_sigmoid"``, ``"atan"`` or ``"triangle"``; width: its width.
        spiking: False makes a leaky-integrator readout: no threshold, no reset, output = V.
        neuron: ``"lif"`` or ``"alif"`` (adaptive threshold ``θ + adapt · b``, ``b[t] = rho b[t-1] + o[t-1]``).
        adapt, rho: β_a ≥ 0 and ρ in [0, 1) of an ALIF layer.
        recurrent: add recurrent weights ``W_rec`` ``[N_out, N_out]`` within the layer (``o[t-1] W_recᵀ``
            enters the current), drawn like W. A non-spiking layer has neither ALIF nor recurrence.
        weight_scale: W is drawn uniformly with standard deviation ``weight_scale / sqrt(N_in)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        alpha: float = 0.0,
        beta: float = 1.0,
        lam: float = 0.5,
        filter_granularity: str = "layer",
        learn_alpha: bool = True,
        learn_beta: bool = True,
        lam_granularity: str = "layer",
        learn_lam: bool = False,
        bias: bool = True,
        threshold: float = 1.0,
        reset_amount: float | None = None,
        reset: str = "subtract",
        surrogate: str = "gaussian",
        width: float | None = None,
        spiking: bool = True,
        neuron: str = "lif",
        adapt: float = ADAPT,
        rho: float = RHO,
        recurrent: bool = False,
        weight_scale: float = 1.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        alpha = check_range("alpha", alpha, 0.0, ALPHA_MAX, hi_open=False)
        beta = check_range("beta", beta, BETA_MIN, math.inf, hi_open=True)
        lam = check_range("lam", lam, 0.0, ALPHA_MAX, hi_open=False)
        threshold = check_range("threshold", threshold, 0.0, math.inf, lo_open=True)
        reset_amount = threshold if reset_amount is None else check_range("reset_amount", reset_amount, 0.0, math.inf)
        weight_scale = check_range("weight_scale", weight_scale, 0.0, math.inf, lo_open=True)
        check_choice("reset", reset, RESET_MODES)
        check_choice("neuron", neuron, NEURONS)
        adapt = check_range("adapt", adapt, 0.0, math.inf)
        rho = check_range("rho", rho, 0.0, ALPHA_MAX, hi_open=False)
        width = check_surrogate(surrogate, width)
        self.filter_per_channel = _granularity("filter_granularity", filter_granularity, LAYER_FILTER_GRANULARITIES)
        self.lam_per_neuron = _granularity("lam_granularity", lam_granularity, LAM_GRANULARITIES)
        self.config = LIFConfig(threshold, reset_amount, reset if spiking else "none", surrogate, width, bool(spiking),
                                neuron if spiking else "lif", adapt, rho)
        self.recurrent = bool(recurrent) and bool(spiking)

        kw = {"device": device, "dtype": dtype}
        bound = weight_scale * math.sqrt(3.0 / in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **kw).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(out_features, **kw)) if bias else None
        rec_bound = weight_scale * math.sqrt(3.0 / out_features)
        self.rec_weight = (nn.Parameter(torch.empty(out_features, out_features, **kw).uniform_(-rec_bound, rec_bound))
                           if self.recurrent else None)
        filter_shape = (in_features,) if self.filter_per_channel else ()
        lam_shape = (out_features,) if self.lam_per_neuron else ()
        self._add("alpha", torch.full(filter_shape, alpha, **kw), learn_alpha)
        self._add("beta", torch.full(filter_shape, beta, **kw), learn_beta)
        self._add("lam", torch.full(lam_shape, lam, **kw), learn_lam)

    def _add(self, name: str, value: torch.Tensor, learnable: bool) -> None:
        if learnable:
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    @property
    def spiking(self) -> bool:
        return self.config.spiking

    @property
    def adaptive(self) -> bool:
        """Whether the layer is ALIF (its state has the adaptation ``b``)."""
        return self.config.neuron == "alif"

    def is_learnable(self, name: str) -> bool:
        """Whether ``name`` (``weight``, ``bias``, ``alpha``, ``beta``, ``lam``, ``rec_weight``) is an ``nn.Parameter``."""
        return isinstance(getattr(self, name, None), nn.Parameter)

    def params(self) -> LIFParams:
        return LIFParams(self.weight, self.bias, self.alpha, self.beta, self.lam, self.rec_weight)

    def init_state(self, batch_size: int) -> LIFState:
        kw = {"device": self.weight.device, "dtype": self.weight.dtype}
        zeros = [torch.zeros(batch_size, n, **kw) for n in (self.in_features, self.out_features, self.out_features)]
        return LIFState(*zeros, torch.zeros(batch_size, self.out_features, **kw) if self.adaptive else None)

    def forward(self, x: torch.Tensor, state: LIFState) -> LIFState:
        """One time step: ``x`` is ``[B, N_in]``; returns the new state (output in ``.o``)."""
        return lif_step(x, state, self.params(), self.config)

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep α, λ in [0, 0.999] and β ≥ 0.01 (call after each optimizer step)."""
        self.alpha.clamp_(0.0, ALPHA_MAX)
        self.lam.clamp_(0.0, ALPHA_MAX)
        self.beta.clamp_(min=BETA_MIN)

    def extra_repr(self) -> str:
        c = self.config
        kind = "spiking" if c.spiking else "readout"
        return (
            f"{self.in_features}->{self.out_features}, {kind}, reset={c.reset}, surrogate={c.surrogate}({c.width}), "
            f"filter={LAYER_FILTER_GRANULARITIES[self.filter_per_channel]}"
            + (f", alif(adapt={c.adapt}, rho={c.rho})" if self.adaptive else "") + (", recurrent" if self.recurrent else "")
        )


class SNN(nn.Module):
    """A stack of :class:`LIFLayer`: ``n_inputs - hidden... - n_outputs``.

    Args:
        n_inputs: input channels (spikes or a real-valued signal; the first filter takes either).
        hidden: sizes of the hidden spiking layers, e.g. ``(100, 100)``.
        n_outputs: number of output neurons (classes).
        readout: ``"spike"`` — a spiking output layer (pair it with the spike-MSE loss; predicts by
            spike count) — or ``"leaky"`` — a non-spiking leaky integrator (pair it with per-step
            cross-entropy; predicts by its time-averaged output).
        readout_lam: membrane decay of the leaky readout (0: an instantaneous linear readout).
        readout_alpha: initial synaptic decay α of the output layer (None: the same as the other layers).
        encoder_channels: K of a learned linear encoder (:mod:`solsa.linear_encoder`): the first layer's weight
            becomes ``W·E`` with ``E`` ``[K, n_inputs]`` and ``W`` ``[hidden[0], K]`` learned (None: no encoder).
        readout_score: how :meth:`scores` reads the outputs over time, one of :data:`READOUT_SCORES`: ``"mean"``
            (today's: spike count / time-averaged output), ``"last"`` (the last valid step) or ``"max"``
            (the maximum over the valid steps). The loss weights over time follow it
            (:func:`~solsa.rules.sequence_weights`).
        **layer_options: passed to every :class:`LIFLayer` (alpha, beta, lam, reset, surrogate, ...);
            ``filter_granularity`` may also be ``"first"`` (one of :data:`FILTER_GRANULARITIES`): one α, β per
            input channel in the first layer, one per layer in the layers above.
    """

    def __init__(
        self,
        n_inputs: int,
        hidden: Sequence[int],
        n_outputs: int,
        *,
        readout: str = "spike",
        readout_lam: float = 0.0,
        readout_alpha: float | None = None,
        readout_score: str = "mean",
        encoder_channels: int | None = None,
        **layer_options,
    ) -> None:
        super().__init__()
        check_choice("readout", readout, READOUTS)
        self.readout_score = check_choice("readout_score", readout_score, READOUT_SCORES)
        hidden = list(hidden)
        for h in hidden:
            check_positive_int("hidden layer size", h)
        sizes = [check_positive_int("n_inputs", n_inputs)] + hidden + [check_positive_int("n_outputs", n_outputs)]
        per_layer = [dict(layer_options) for _ in range(len(sizes) - 1)]
        if check_choice("filter_granularity", layer_options.get("filter_granularity", "layer"),
                        FILTER_GRANULARITIES) == "first":
            for i, options in enumerate(per_layer):
                options["filter_granularity"] = "channel" if i == 0 else "layer"
        layers = [LIFLayer(sizes[i], sizes[i + 1], **per_layer[i]) for i in range(len(sizes) - 2)]
        last = per_layer[-1]
        if readout == "leaky":
            last.update(spiking=False, lam=readout_lam)
        if readout_alpha is not None:
            last["alpha"] = readout_alpha
        layers.append(LIFLayer(sizes[-2], sizes[-1], **last))
        self.layers = nn.ModuleList(layers)
        self.readout = readout
        self.n_inputs, self.n_outputs = n_inputs, n_outputs
        self.encoder: LinearEncoder | None = None
        if encoder_channels is not None:
            first = self.layers[0].weight
            self.encoder = LinearEncoder(n_inputs, encoder_channels, first.shape[0], device=first.device,
                                         dtype=first.dtype, weight_scale=layer_options.get("weight_scale", 1.0))
            self.encoder.sync_(first)

    def init_state(self, batch_size: int) -> list[LIFState]:
        return [layer.init_state(batch_size) for layer in self.layers]

    def step(self, x: torch.Tensor, states: list[LIFState]) -> tuple[torch.Tensor, list[LIFState]]:
        """One time step through every layer. ``x`` is ``[B, N_in]``; returns (output ``[B, C]``, states)."""
        new_states = []
        for layer, state in zip(self.layers, states):
            state = layer(x, state)
            new_states.append(state)
            x = state.o
        return x, new_states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run a whole sequence ``[T, B, N_in]``; returns the outputs ``[T, B, C]``."""
        check_input(x, self.n_inputs, rank=3, dtype=self.layers[0].weight.dtype)
        states = self.init_state(x.shape[1])
        outputs = []
        for x_t in x:
            y, states = self.step(x_t, states)
            outputs.append(y)
        return torch.stack(outputs)

    def scores(self, outputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class scores ``[B, C]`` from outputs ``[T, B, C]`` over the valid steps of ``mask`` ``[T, B]``.

        ``readout_score`` "mean": a spiking readout's spike count, ties broken in favour of earlier spikes;
        a leaky readout's time-averaged output. "last": the output at each sample's last valid step.
        "max": the largest output over the valid steps.
        """
        if mask is None:
            mask = outputs.new_ones(outputs.shape[:2])
        if self.readout_score == "last":
            steps = torch.arange(outputs.shape[0], device=outputs.device).unsqueeze(1)
            last = torch.where(mask > 0, steps, torch.zeros_like(steps)).amax(0)
            return outputs[last, torch.arange(outputs.shape[1], device=outputs.device)]
        m = mask.unsqueeze(-1)
        if self.readout_score == "max":
            return outputs.masked_fill(m == 0, float("-inf")).amax(0)
        total = (outputs * m).sum(0)
        if self.readout == "leaky":
            return total / m.sum(0).clamp(min=1.0)
        # earliest spike as tie-break: a spike at step t adds a little more the earlier it comes
        T = outputs.shape[0]
        w = torch.linspace(1.0, 0.5, T, dtype=outputs.dtype, device=outputs.device).view(T, 1, 1)
        return total + 1e-3 * (outputs * m * w).sum(0) / T

    def predict(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted classes ``[B]`` for inputs ``[T, B, N_in]``."""
        with torch.no_grad():
            return self.scores(self(x), mask).argmax(-1)

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp every layer's α, β, λ and, with a learned encoder, set the first layer's weight to ``W·E``
        (call after each optimizer step)."""
        for layer in self.layers:
            layer.clamp_()
        if self.encoder is not None:
            self.encoder.sync_(self.layers[0].weight)

    def derived_parameters(self) -> list[nn.Parameter]:
        """Parameters computed from others and never stepped: the first layer's weight ``W·E`` under a learned
        encoder (its gradient goes to ``W`` and ``E``, :meth:`encoder_grads_`); else none."""
        return [] if self.encoder is None else [self.layers[0].weight]

    def encoder_grads_(self) -> None:
        """With a learned encoder: the chain rule from the first layer's ``weight.grad`` to ``W`` and ``E``
        (:meth:`solsa.linear_encoder.LinearEncoder.chain_grad_`); :meth:`solsa.Learner.update` calls it after
        every flush. Without one: nothing."""
        if self.encoder is not None:
            self.encoder.chain_grad_(self.layers[0].weight)


def filter_summary(net: SNN) -> list[dict[str, Any]]:
    """Learned α, β, λ per layer (lists for per-channel values)."""
    return [{name: getattr(layer, name).detach().cpu().flatten().tolist() for name in ("alpha", "beta", "lam")}
            | {"layer": i} for i, layer in enumerate(net.layers)]
