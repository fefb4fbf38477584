"""NeuroBench's metrics for a solsa network: counted here, and runnable in NeuroBench's own harness.

Definitions (those of NeuroBench 2.3.0, https://neurobench.ai; docs/interop.md):

* **activation sparsity**: zero outputs / all outputs of the *spiking* layers over the valid
  time steps of a sample, averaged over samples (NeuroBench averages per batch, weighted by
  its size; a leaky readout's membrane is not an activation);
* **synaptic operations** per sample: the multiply-accumulates of each layer's synaptic
  matmul ``I = F Wᵀ`` on the filter state ``F`` it actually receives. *Dense* counts every
  weight at every step (``N_in·N_out`` per layer and step); *effective* counts only the pairs
  of a non-zero input and a non-zero weight, and calls them ACs when the layer's input at
  that step is all 0/±1 (spikes) and MACs otherwise. Biases are not synaptic operations.
  With α = 0 the filter state is ``βx``, so effective ops are the real spikes times their
  fan-out; with α > 0 a filtered trace stays non-zero after a spike and is counted as such;
* **footprint**: bytes of the network's parameters and buffers; **parameter count** and
  **connection sparsity** (zero weights / all weights), as NeuroBench computes them.

solsa counts valid steps only (padding excluded) and tells ACs from MACs per sample and step,
so its numbers do not depend on the batch size; NeuroBench's harness counts every step it is fed
and decides per batch and step. Feed it :func:`neurobench_dataset` (each sample at its own
length) with ``batch_size=1`` and the two agree exactly. :func:`neurobench_model` wraps a
network so that NeuroBench's hooks see it: its matmuls run through ``nn.Linear`` modules that *share* the
network's weights, and each spiking layer's output passes a :class:`SpikeActivation` module.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..functional import membrane_step, synaptic_filter
from ..layers import SNN
from ..tasks import Split, iterate_batches

__all__ = [
    "activity_metrics", "static_metrics", "checkpoint_metrics", "format_metrics", "neurobench_dataset",
    "SpikeActivation", "NeuroBenchNet", "neurobench_model",
]


def static_metrics(net: nn.Module) -> dict[str, Any]:
    """Footprint (bytes of parameters and buffers), parameter count and connection sparsity."""
    params = list(net.parameters())
    footprint = sum(p.numel() * p.element_size() for p in params)
    footprint += sum(b.numel() * b.element_size() for b in net.buffers())
    weights = [layer.weight for layer in net.layers] if isinstance(net, SNN) else \
        [m.weight for m in net.modules() if isinstance(m, nn.Linear)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return {"footprint_bytes": footprint, "parameter_count": sum(p.numel() for p in params),
            "connection_sparsity": zeros / max(sum(w.numel() for w in weights), 1)}


@torch.no_grad()
def activity_metrics(
    net: SNN, split: Split, batch_size: int = 256, device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """NeuroBench's workload and static metrics of ``net`` on ``split`` (see the module docstring).

    Returns a dict with ``activation_sparsity``, ``synaptic_operations`` (``dense``,
    ``effective_macs``, ``effective_acs``, ``effective``, all per sample), ``spikes_per_sample``,
    ``samples``, ``valid_steps`` and :func:`static_metrics`.
    """
    nnz_cols = [(layer.weight != 0).sum(0).to(torch.float64) for layer in net.layers]  # [N_in]: fan-out of each input
    dense = macs = acs = 0.0
    spikes = steps = 0
    sparsity_sum = 0.0  # Σ over samples of each sample's zero fraction
    n = 0
    for batch in iterate_batches(split, batch_size):
        x, mask = batch.x.to(device), batch.mask.to(device)
        states = net.init_state(x.shape[1])
        fired = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
        outputs = torch.zeros_like(fired)
        for x_t, m_t in zip(x, mask):
            valid = m_t > 0
            steps += int(valid.sum())
            inp = x_t
            new_states = []
            for layer, state, fan_out in zip(net.layers, states, nnz_cols):
                s = layer(inp, state)
                F = s.F[valid]
                ops = (F != 0).to(torch.float64) @ fan_out  # [B]: non-zero inputs x non-zero weights
                spiking = ((F == 0) | (F == 1) | (F == -1)).all(1)  # per sample: an AC if the input is spikes
                acs += float(ops[spiking].sum())
                macs += float(ops[~spiking].sum())
                dense += F.shape[0] * layer.in_features * layer.out_features
                if layer.spiking:
                    fired += ((s.o != 0) & valid[:, None]).sum(1)
                    outputs += valid * layer.out_features
                new_states.append(s)
                inp = s.o
            states = new_states
        n += x.shape[1]
        spikes += int(fired.sum())
        sparsity_sum += float((1.0 - fired / outputs.clamp(min=1)).masked_fill(outputs == 0, 0.0).sum())
    n = max(n, 1)
    return {
        "samples": n,
        "valid_steps": steps,
        "activation_sparsity": sparsity_sum / n,
        "spikes_per_sample": spikes / n,
        "synaptic_operations": {"dense": dense / n, "effective_macs": macs / n, "effective_acs": acs / n,
                                "effective": (macs + acs) / n},
        **static_metrics(net),
    }


def checkpoint_metrics(path: str, task_spec: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """:func:`activity_metrics` of a checkpoint's network on the test split of its task (or ``task_spec``)."""
    from ..evaluation import checkpoint_task

    net, _, _, task = checkpoint_task(path, task_spec)
    return {"split": "test", **activity_metrics(net.to(device), task.test, device=device)}


def format_metrics(m: dict[str, Any]) -> str:
    """The metrics as the few lines ``solsa evaluate --metrics`` prints."""
    syn = m["synaptic_operations"]
    return "\n".join([
        f"  NeuroBench metrics on the {m.get('split', 'given')} split ({m['samples']} samples, "
        f"{m['valid_steps']} valid steps):",
        f"  activation sparsity {m['activation_sparsity']:.4f} "
        f"(spiking layers; {m['spikes_per_sample']:.1f} spikes/sample)",
        f"  synaptic operations per sample: dense {syn['dense']:,.0f}, effective {syn['effective']:,.0f} "
        f"(MACs {syn['effective_macs']:,.0f}, ACs {syn['effective_acs']:,.0f})",
        f"  footprint {m['footprint_bytes']:,} bytes, {m['parameter_count']:,} parameters, "
        f"connection sparsity {m['connection_sparsity']:.4f}",
    ])


class SpikeActivation(nn.Identity):
    """Marks a spiking layer's output for NeuroBench's activation hooks (an identity)."""


class NeuroBenchNet(nn.Module):
    """A solsa :class:`~solsa.SNN` laid out for NeuroBench's hooks; computes exactly what it computes.

    Each layer's ``F Wᵀ + b`` runs through an ``nn.Linear`` sharing the layer's ``weight`` and
    ``bias`` (so footprint and parameter count are the network's), spiking outputs pass a
    :class:`SpikeActivation`. ``forward`` takes NeuroBench's ``[B, T, N_in]`` and returns ``[B, T, C]``.
    """

    def __init__(self, net: SNN) -> None:
        super().__init__()
        if not isinstance(net, SNN):
            raise ValueError(f"NeuroBenchNet needs a solsa SNN, got {type(net).__name__}")
        self.net = net
        self.linears = nn.ModuleList()
        for layer in net.layers:
            lin = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
            lin.weight = layer.weight
            if layer.bias is not None:
                lin.bias = layer.bias
            self.linears.append(lin)
        self.spikes = nn.ModuleList(SpikeActivation() for _ in net.layers)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        x = data.transpose(0, 1)
        states, outputs = self.net.init_state(x.shape[1]), []
        for x_t in x:
            inp, new_states = x_t, []
            for layer, lin, act, state in zip(self.net.layers, self.linears, self.spikes, states):
                p = layer.params()
                F = synaptic_filter(inp, state.F, p)
                s = membrane_step(lin(F), state, F, p, layer.config)
                inp = act(s.o) if layer.spiking else s.o
                new_states.append(s)
            states = new_states
            outputs.append(inp)
        return torch.stack(outputs, 1)


def neurobench_dataset(split: Split) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(x [T_i, C], y)`` per sample, each cut to its own length: NeuroBench's ``[B, T, C]`` batches with
    ``DataLoader(neurobench_dataset(split), batch_size=1)`` count no padding."""
    return [(split.x[: int(n), i], split.y[i]) for i, n in enumerate(split.lengths)]


def neurobench_model(net: SNN) -> tuple[Any, Callable[[torch.Tensor], torch.Tensor]]:
    """``(model, postprocessor)`` for ``neurobench.benchmarks.Benchmark``.

    ``model`` is a ``neurobench.models.TorchModel`` of :class:`NeuroBenchNet` with
    :class:`SpikeActivation` registered as an activation module; ``postprocessor`` turns its
    ``[B, T, C]`` outputs into class predictions the way solsa scores them.
    """
    from neurobench.models import TorchModel

    model = TorchModel(NeuroBenchNet(net))
    model.add_activation_module(SpikeActivation)

    def predict(outputs: torch.Tensor) -> torch.Tensor:
        return net.scores(outputs.transpose(0, 1)).argmax(-1)

    return model, predict
