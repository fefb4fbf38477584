"""NeuroBench metrics: hand-counted on a tiny network, and equal to NeuroBench's own harness."""

import pytest
import torch

from solsa import SNN
from solsa.interop import NeuroBenchNet, activity_metrics
from solsa.tasks import Split


def _tiny() -> SNN:
    """2 inputs -> 3 spiking (λ = 0, hard reset, α = 0, β = 1) -> 2 leaky readout, no bias."""
    net = SNN(2, [3], 2, readout="leaky", alpha=0.0, beta=1.0, lam=0.0, bias=False, reset="zero")
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 3.0], [3.0, 3.0]]))
        net.layers[1].weight.copy_(torch.ones(2, 3))
    return net


def _split(x: torch.Tensor, lengths=None) -> Split:
    n = x.shape[1]
    lengths = torch.full((n,), x.shape[0], dtype=torch.int64) if lengths is None else torch.tensor(lengths)
    return Split(x=x, y=torch.zeros(n, dtype=torch.int64), lengths=lengths)


def _hand_data() -> torch.Tensor:
    x = torch.zeros(4, 2, 2)  # [T, B, C]; sample 1 is silent
    x[[0, 2], 0, 0] = 1.0  # channel 0 spikes at t = 0, 2
    x[[2, 3], 0, 1] = 1.0  # channel 1 spikes at t = 2, 3
    return x


def test_metrics_match_hand_counted_spikes():
    m = activity_metrics(_tiny(), _split(_hand_data()))
    # hidden spikes: n0 at t0, t2; n1 at t2, t3; n2 at t0, t2, t3 -> 7 of 3 neurons x 4 steps x 2 samples
    assert m["spikes_per_sample"] == 7 / 2
    assert m["activation_sparsity"] == pytest.approx(1 - 7 / 24)
    syn = m["synaptic_operations"]
    # layer 0: 4 input events x fan-out 2 (one zero weight per column) = 8; layer 1: 7 spikes x fan-out 2 = 14
    assert syn["effective_acs"] == (8 + 14) / 2 and syn["effective_macs"] == 0
    assert syn["dense"] == 4 * (2 * 3 + 3 * 2)  # every weight at every step, per sample
    # parameters: W0 6 + W1 6 + α, β per layer 2 + 2 (learnable); buffers: λ per layer 2; float32
    assert m["parameter_count"] == 16 and m["footprint_bytes"] == 18 * 4
    assert m["connection_sparsity"] == pytest.approx(2 / 12)


def test_padding_is_not_counted_and_real_inputs_are_macs():
    x = torch.zeros(4, 1, 2)
    x[:2, 0] = torch.tensor([[0.5, 0.0], [2.0, 1.0]])
    m = activity_metrics(_tiny(), _split(x, [2]))
    assert m["valid_steps"] == 2
    assert m["synaptic_operations"]["dense"] == 2 * 12
    assert m["synaptic_operations"]["effective_macs"] == 2 * 1 + 2 * 2  # non-binary input steps: MACs


def test_wrapper_computes_what_the_network_computes():
    torch.manual_seed(0)
    net = SNN(5, [7], 3, readout="leaky", filter_granularity="channel", alpha=0.4, weight_scale=3.0)
    x = (torch.rand(20, 4, 5) < 0.4).float()
    with torch.no_grad():
        torch.testing.assert_close(NeuroBenchNet(net)(x.transpose(0, 1)).transpose(0, 1), net(x))
    assert sum(p.numel() for p in NeuroBenchNet(net).parameters()) == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("options", [
    dict(readout="spike", filter_granularity="layer", alpha=0.0),  # event-driven: ACs only
    dict(readout="leaky", filter_granularity="channel", alpha=0.4),  # filtered traces: mostly MACs
])
def test_neurobench_harness_agrees_with_solsa(options):
    pytest.importorskip("neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
    from neurobench.metrics.workload import ActivationSparsity, ClassificationAccuracy, SynapticOperations
    from torch.utils.data import DataLoader

    from solsa.interop import neurobench_dataset, neurobench_model

    torch.manual_seed(0)
    net = SNN(6, [10, 8], 3, weight_scale=3.0, **options).eval()
    lengths = torch.randint(10, 26, (12,))
    x = (torch.rand(25, 12, 6) < 0.3).float() * (torch.arange(25)[:, None] < lengths[None, :])[..., None]
    split = Split(x=x, y=torch.randint(0, 3, (12,)), lengths=lengths)  # variable lengths, zero padded
    ours = activity_metrics(net, split, batch_size=5)
    model, post = neurobench_model(net)
    loader = DataLoader(neurobench_dataset(split), batch_size=1)  # each sample at its own length
    bench = Benchmark(model, loader, [], [post],
                      [[Footprint, ParameterCount, ConnectionSparsity],
                       [ActivationSparsity, SynapticOperations, ClassificationAccuracy]])
    theirs = bench.run(quiet=True)
    syn = ours["synaptic_operations"]
    assert ours["spikes_per_sample"] > 5 and syn["effective"] > 0  # active: the comparison is not vacuous
    assert theirs["ActivationSparsity"] == pytest.approx(ours["activation_sparsity"], abs=1e-12)
    assert theirs["SynapticOperations"] == pytest.approx(
        {"Dense": syn["dense"], "Effective_ACs": syn["effective_acs"], "Effective_MACs": syn["effective_macs"]})
    assert (theirs["Footprint"], theirs["ParameterCount"]) == (ours["footprint_bytes"], ours["parameter_count"])
    assert theirs["ConnectionSparsity"] == pytest.approx(ours["connection_sparsity"])
    acc = sum(int(net.predict(x[: int(n), [i]])[0] == split.y[i]) for i, n in enumerate(lengths)) / 12
    assert theirs["ClassificationAccuracy"] == pytest.approx(acc)


def test_cli_evaluate_metrics(tmp_path, capsys):
    import json

    import numpy as np

    from solsa.cli import main
    from solsa.io import save_checkpoint
    from solsa.config import TrainConfig
    from solsa.evaluation import checkpoint_task
    from solsa.factories import build_network

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=(rng.random((24, 10, 3)) < 0.4).astype(np.float32), y=np.arange(24) % 2)
    cfg = TrainConfig(task=f"npz:{tmp_path / 'd.npz'}", hidden=(6,), weight_scale=3.0)
    net = build_network(cfg, 3, 2)
    meta = {"train": cfg.to_dict(), "n_inputs": 3, "n_classes": 2, "task": cfg.task, "test_accuracy": None}
    save_checkpoint(tmp_path / "c.pt", {k: v.detach() for k, v in net.state_dict().items()}, meta)
    assert main(["evaluate", str(tmp_path / "c.pt"), "--metrics", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["neurobench"]
    _, _, _, task = checkpoint_task(tmp_path / "c.pt")
    expected = activity_metrics(net, task.test)
    assert got["synaptic_operations"] == expected["synaptic_operations"] and got["samples"] == len(task.test)
    assert got["activation_sparsity"] == expected["activation_sparsity"] < 1.0
    assert main(["evaluate", str(tmp_path / "c.pt"), "--metrics"]) == 0
    assert "synaptic operations per sample: dense" in capsys.readouterr().out
