"""Where every array of the exported C library lives: the parameters and the state struct, in floats.

The state struct ``solsa_state`` of ``solsa_model.h`` is five groups of ``solsa_real`` arrays (``float``, or
``double`` with ``--dtype float64``), in this order:

- ``traces``: what the rule's ``train_state_bytes()`` counts at batch size 1 (the neuron state F, V, o and,
  when learning, ε and SOLSA's traces e, p, a, m, n with the cross-layer credit's copies, rules/credit.py);
- ``encoder``: the input encoder's state (the delay line's rings ``ring`` and the write position ``ring_at``,
  a whole number kept as a ``solsa_real``; empty for ``direct``), cleared with the traces by ``solsa_reset``;
- ``grads``: the gradient accumulators (W, b, α, λ; β's comes from W's at the update);
- ``momentum``: the SGD momentum buffers (only with momentum > 0);
- ``work``: per-step scratch (the current, d[t], δ, the errors sent down, the credit signals, the encoder's output
  ``net_in``).

Only values of one type, so the struct has no padding and its ``sizeof`` is 4 (8 in double) × the values
listed here (the offsets and sizes below count values).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..layers import SNN
from ..rules.credit import CREDIT_TRACES, credit_depth, zero_decay

__all__ = ["GROUPS", "LayerPlan", "Layout", "plan_layers", "build_layout"]

GROUPS = ("traces", "encoder", "grads", "momentum", "work")


@dataclass
class LayerPlan:
    """One layer's shapes, settings and credit structure (as SOLSA._new_traces builds them, batch 1)."""

    n_in: int
    n_out: int
    fpc: bool  # one alpha, beta per input channel
    lpn: bool  # one lambda per neuron
    bias: bool
    learn: dict[str, bool]  # alpha, beta, lam, bias
    depth: int = 0  # credit stages
    lag: bool = False
    n_neuron: int = 0  # per-upper-neuron copies of the [n_out] traces
    n_mass: int = 0  # decay-kernel masses of the layer above
    pass_through: tuple[bool, ...] = ()  # per stage: its layer keeps nothing (zero_decay), so u is q

    def trace_size(self, name: str) -> int:
        """Floats of trace ``name`` (e, a, m, n) at batch 1."""
        if name == "e" or (name == "a" and self.fpc):
            return self.n_out * self.n_in
        return self.n_out

    def traced(self) -> list[str]:
        """The traces of :data:`~solsa.rules.credit.CREDIT_TRACES` this layer keeps."""
        keep = {"e": True, "a": self.learn["alpha"], "m": self.learn["lam"], "n": self.learn["bias"]}
        return [n for n in CREDIT_TRACES if keep[n]]


@dataclass
class Layout:
    """Float offsets of every named array: ``params`` in ``solsa_param[]``, ``state`` in ``solsa_state``."""

    params: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (offset, size)
    state: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # name -> (offset, size, group)
    aliases: dict[str, str] = field(default_factory=dict)  # name -> the array it shares (a credit stage's u is q)
    value_bytes: int = 4  # 4: float, 8: double

    def add_param(self, name: str, size: int) -> None:
        self.params[name] = (self.n_params, size)

    @property
    def n_params(self) -> int:
        return sum(size for _, size in self.params.values())

    def add(self, name: str, size: int, group: str) -> None:
        self.state[name] = (self.n_state, size, group)

    def alias(self, name: str, target: str) -> None:
        """``name`` is stored as ``target`` (no floats of its own), as the rule stores ``u is q``."""
        self.aliases[name] = target

    @property
    def n_state(self) -> int:
        return sum(v[1] for v in self.state.values())

    def bytes_of(self, group: str) -> int:
        return self.value_bytes * sum(size for _, size, g in self.state.values() if g == group)

    def off(self, name: str) -> int:
        """The state offset of ``name`` (-1: absent)."""
        name = self.aliases.get(name, name)
        return self.state[name][0] if name in self.state else -1

    def poff(self, name: str) -> int:
        return self.params[name][0] if name in self.params else -1


def plan_layers(net: SNN, credit: str, learn: bool) -> list[LayerPlan]:
    """The layers as the exported learner keeps them (credit depths as :class:`~solsa.rules.SOLSA` sets them)."""
    layers = list(net.layers)
    plans = []
    for i, layer in enumerate(layers):
        n_out, n_in = layer.weight.shape
        plan = LayerPlan(n_in, n_out, layer.filter_per_channel, layer.lam_per_neuron, layer.bias is not None,
                         {n: learn and layer.is_learnable(n) for n in ("alpha", "beta", "lam", "bias")})
        if learn:
            cascade = credit == "cascade"
            upper = layers[i + 1].weight.shape[0] if i + 1 < len(layers) else 0
            plan.depth = credit_depth(credit, i, len(layers))
            if plan.depth:
                plan.lag = cascade and i > 0
                plan.n_neuron = upper if cascade and i == len(layers) - 2 else 0
                plan.n_mass = upper if cascade else 0
                plan.pass_through = tuple(zero_decay(lay) for lay in layers[i + 1:])
        plans.append(plan)
    return plans


def build_layout(plans: list[LayerPlan], learn: bool, momentum: bool, value_bytes: int = 4,
                 ring: tuple[int, int] | None = None) -> Layout:
    """Every array of the export, in the order the header declares them (traces first); value_bytes 4 (float)
    or 8 (double); ``ring``: (channels, samples per channel) of the delay encoder's rings (None: no encoder
    state)."""
    lay = Layout(value_bytes=value_bytes)
    if ring is not None:
        lay.add("ring", ring[0] * ring[1], "encoder")
        lay.add("ring_at", 1, "encoder")
    for l, p in enumerate(plans):
        lay.add_param(f"W{l}", p.n_out * p.n_in)
        if p.bias:
            lay.add_param(f"b{l}", p.n_out)
        lay.add_param(f"alpha{l}", p.n_in if p.fpc else 1)
        lay.add_param(f"beta{l}", p.n_in if p.fpc else 1)
        lay.add_param(f"lam{l}", p.n_out if p.lpn else 1)
    for l, p in enumerate(plans):
        for name, size in (("F", p.n_in), ("V", p.n_out), ("o", p.n_out)):
            lay.add(f"{name}{l}", size, "traces")
        if not learn:
            continue
        lay.add(f"eps{l}", p.n_out, "traces")
        lay.add(f"e{l}", p.trace_size("e"), "traces")
        if p.learn["alpha"]:
            lay.add(f"p{l}", p.n_in, "traces")
        for name in p.traced()[1:]:
            lay.add(f"{name}{l}", p.trace_size(name), "traces")
        same = [s < len(p.pass_through) and p.pass_through[s] for s in range(p.depth)]
        for s in range(p.depth):
            for name in p.traced():
                lay.add(f"q{s}_{name}{l}", p.trace_size(name), "traces")
                if same[s]:
                    lay.alias(f"u{s}_{name}{l}", f"q{s}_{name}{l}")
                else:
                    lay.add(f"u{s}_{name}{l}", p.trace_size(name), "traces")
        if p.lag:
            for q, u in (("qE", "uE"), ("qN", "uN")):
                lay.add(f"{q}{l}", p.n_out, "traces")
                if same[0]:
                    lay.alias(f"{u}{l}", f"{q}{l}")
                else:
                    lay.add(f"{u}{l}", p.n_out, "traces")
            lay.add(f"eps_lag{l}", p.n_out, "traces")
        if p.n_neuron:
            for name in p.traced():
                if p.trace_size(name) == p.n_out:
                    lay.add(f"h_{name}{l}", p.n_neuron * p.n_out, "traces")
        if p.n_mass:
            lay.add(f"M{l}", p.n_mass, "traces")
            lay.add(f"Mbar{l}", 1, "traces")
    if learn:
        for group, prefix in (("grads", "g"), ("momentum", "v")):
            if group == "momentum" and not momentum:
                continue
            for l, p in enumerate(plans):
                lay.add(f"{prefix}W{l}", p.n_out * p.n_in, group)
                if p.learn["bias"]:
                    lay.add(f"{prefix}b{l}", p.n_out, group)
                if p.learn["alpha"]:
                    lay.add(f"{prefix}alpha{l}", p.n_in if p.fpc else 1, group)
                if p.learn["beta"] and group == "momentum":
                    lay.add(f"{prefix}beta{l}", p.n_in if p.fpc else 1, group)
                if p.learn["lam"]:
                    lay.add(f"{prefix}lam{l}", p.n_out if p.lpn else 1, group)
    if ring is not None:
        lay.add("net_in", plans[0].n_in, "work")
    for l, p in enumerate(plans):
        lay.add(f"cur{l}", p.n_out, "work")
        if not learn:
            continue
        for name, size in (("d", p.n_out), ("delta", p.n_out)):
            lay.add(f"{name}{l}", size, "work")
        if l > 0:
            lay.add(f"gbelow{l}", p.n_in, "work")
        if p.depth:
            lay.add(f"P{l}", p.depth * p.n_out, "work")
        if p.learn["beta"]:
            lay.add(f"gbeta{l}", p.n_in if p.fpc else 1, "work")
    if learn:
        lay.add("g_out", plans[-1].n_out, "work")
        lay.add("scratch", (max(p.depth for p in plans) + 1) * max(p.n_out for p in plans), "work")
    return _aligned(lay)


def _aligned(lay: Layout, line: int = 64) -> Layout:
    """The same arrays, within each group those of a whole number of ``line`` bytes first, and the gradient and
    momentum groups padded (``pad_grads``, ``pad_momentum``: under ``line`` bytes) to start on a ``line`` boundary:
    in a ``line``-aligned state every synapse-sized array (100 x 100, 100 x 12 floats) then starts on a cache line,
    where the learner's row passes read and write them (measured ~20 % faster than from the offsets before). The
    traces group keeps its bytes (``train_state_bytes()``)."""
    out = Layout(params=lay.params, aliases=lay.aliases, value_bytes=lay.value_bytes)
    for group in GROUPS:
        items = [(name, size) for name, (_, size, g) in lay.state.items() if g == group]
        whole = [item for item in items if (item[1] * lay.value_bytes) % line == 0]
        if whole and group in ("grads", "momentum") and (out.n_state * lay.value_bytes) % line:
            out.add(f"pad_{group}", (line - (out.n_state * lay.value_bytes) % line) // lay.value_bytes, group)
        for name, size in whole + [item for item in items if item not in whole]:
            out.add(name, size, group)
    return out
