"""Build a network, a rule and an optimizer from a :class:`~solsa.config.TrainConfig`.

Training, ``compare``, the stream command and the benchmarks all build through
these three functions, so a run and a benchmark of the same options train the
same model.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

from .config import OPTIMIZERS, TrainConfig, takes_option
from .coordinates import DEFAULT_FILTER_UPDATE, FILTER_UPDATES, LOG_COORDINATES
from .distributed import DataParallel
from .fast import fused_available
from .fast.fused import unsupported_reason
from .layers import SNN
from .linear_encoder import learned_channels
from .learner import Learner
from .rules import LearningRule, get_rule
from .validation import INPUT_SCALE_WARN, check_choice

__all__ = ["network_options", "build_network", "build_rule", "trace_dtype_of", "make_optimizer", "build_learner", "parameter_groups"]

DYNAMICS = tuple(LOG_COORDINATES)  # the parameters filter_lr_scale and filter_update apply to


def network_options(cfg: TrainConfig) -> dict[str, Any]:
    """The :class:`~solsa.LIFLayer` options of a run, with the rule's model (paper or ablation) applied."""
    opts = dict(
        alpha=cfg.alpha, beta=cfg.beta, lam=cfg.lam, learn_alpha=cfg.learn_alpha, learn_beta=cfg.learn_beta,
        learn_lam=cfg.learn_lam, filter_granularity=cfg.filter_granularity, lam_granularity=cfg.lam_granularity,
        reset=cfg.reset, surrogate=cfg.surrogate, width=cfg.width, threshold=cfg.threshold,
        weight_scale=cfg.weight_scale, neuron=cfg.neuron, adapt=cfg.adapt, rho=cfg.rho, recurrent=cfg.recurrent,
        bias=cfg.bias,
    )
    opts.update(get_rule(cfg.rule).model_options(cfg.model))
    return opts


def build_network(cfg: TrainConfig, n_inputs: int, n_outputs: int) -> SNN:
    """The run's :class:`~solsa.SNN` in ``cfg.dtype``, on the CPU (move it with ``.to(device)``); with the
    ``linear`` encoder, its learned ``E`` (:mod:`solsa.linear_encoder`) of ``channels`` rows."""
    return SNN(n_inputs, cfg.hidden, n_outputs, readout=cfg.readout, readout_lam=cfg.readout_lam,
               readout_alpha=cfg.readout_alpha, readout_score=cfg.readout_score,
               encoder_channels=learned_channels(cfg.encoder, cfg.task_options), dtype=getattr(torch, cfg.dtype),
               **network_options(cfg))


def trace_dtype_of(cfg: TrainConfig, net: SNN, input_scale: float | None = None) -> str | None:
    """The storage ``cfg.trace_dtype`` gives SOLSA's ``[B, N_out, N_in]`` traces on ``net`` (None: the network's
    dtype). ``auto`` is float16 for a float32 SOLSA run the fused kernel takes in float16 — not on the reference
    path (float16 is ~9 x slower there: the reference backend, a GPU, no kernel built), not for float64
    exactness runs, and not for inputs beyond
    :data:`~solsa.validation.INPUT_SCALE_WARN` (``input_scale``, the largest ``|x|``: their traces would leave
    float16's range, 6.5e4). Chosen by the 10-seed check of docs/results/float16-default."""
    if cfg.trace_dtype == "full" or not takes_option(cfg.rule, "trace_dtype"):
        return None
    if cfg.trace_dtype != "auto":
        return cfg.trace_dtype
    param = next(net.parameters())
    narrow = (param.dtype == torch.float32 and param.device.type == "cpu" and cfg.backend != "reference"
              and not unsupported_reason(net.layers, "float16")
              and not (input_scale is not None and input_scale > INPUT_SCALE_WARN)
              and fused_available())
    return "float16" if narrow else None


def build_rule(cfg: TrainConfig, net: SNN, input_scale: float | None = None) -> LearningRule:
    """The run's rule on ``net`` (its loss, backend and trace storage from ``cfg``; ``input_scale``: the data's
    largest ``|x|`` where known, see :func:`trace_dtype_of`)."""
    options = {"credit": cfg.credit, "trace_dtype": trace_dtype_of(cfg, net, input_scale)}
    options = {name: value for name, value in options.items() if value is not None}
    return get_rule(cfg.rule).build(net, cfg.loss_name, backend=cfg.backend, **options)


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
                   lr: float) -> torch.optim.Optimizer:
    """A ``torch.optim`` optimizer by name (one of :data:`~solsa.config.OPTIMIZERS`); ``params`` as torch takes
    them: parameters or parameter groups."""
    check_choice("optimizer", name, OPTIMIZERS)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def build_learner(cfg: TrainConfig, net: SNN, sync: DataParallel | None = None,
                  input_scale: float | None = None) -> Learner:
    """``Learner(rule, optimizer)`` for ``net`` under ``cfg`` (the optimizer over its learnable parameters);
    ``sync`` makes it one process of a data-parallel run; ``input_scale`` as in :func:`build_rule`."""
    rule = build_rule(cfg, net, input_scale)
    groups = parameter_groups(net, cfg.lr, cfg.filter_lr_scale, cfg.filter_update)
    return Learner(rule, make_optimizer(cfg.optimizer, groups, cfg.lr), sync)


def parameter_groups(net: SNN, lr: float, filter_lr_scale: float, filter_update: str = DEFAULT_FILTER_UPDATE
                     ) -> list[dict[str, Any]]:
    """``net``'s learnable parameters as optimizer groups: weights and biases at ``lr``, the neuron dynamics
    (α, β, λ) at ``lr × filter_lr_scale`` (decays near 1 set time constants ~1/(1−α): one Adam step of the
    weights' size moves them far). ``filter_update`` "log" marks the dynamics' groups with the coordinates
    :class:`~solsa.Learner` steps them in (:mod:`solsa.coordinates`); "linear" steps the values. Step log
    groups through :meth:`~solsa.Learner.apply` (or inside ``solsa.coordinates.stepped_in_coordinates``): a
    bare ``optimizer.step()`` ignores the mark and steps the values. ``net.derived_parameters()`` (a learned
    encoder's ``W·E``) are left out: their factors are stepped."""
    check_choice("filter_update", filter_update, FILTER_UPDATES)
    derived = {id(p) for p in net.derived_parameters()}  # W·E of a learned encoder: W and E are stepped instead
    named = [(name.rpartition(".")[2], p) for name, p in net.named_parameters() if p.requires_grad and id(p) not in derived]
    weights = [p for kind, p in named if kind not in DYNAMICS]
    groups: list[dict[str, Any]] = [{"params": weights, "lr": lr}]
    if filter_update == "linear":
        dynamics = [p for kind, p in named if kind in DYNAMICS]
        if dynamics:
            groups.append({"params": dynamics, "lr": lr * filter_lr_scale})
        return groups
    for coordinates in dict.fromkeys(LOG_COORDINATES.values()):
        params = [p for kind, p in named if LOG_COORDINATES.get(kind) == coordinates]
        if params:
            groups.append({"params": params, "lr": lr * filter_lr_scale, "coordinates": coordinates})
    return groups
