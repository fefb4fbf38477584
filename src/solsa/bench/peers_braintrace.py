"""The braintrace rows of ``solsa bench peers`` (optional: imported only when braintrace is installed).

The peer network, built from braintrace's own layers, as close to solsa's paper
network as its building blocks allow (docs/benchmarks.md lists what differs):
two hidden layers of ``Linear → Expon synapse → LIF`` (soft reset, its default
surrogate) and a ``LeakyRateReadout``, with a cross-entropy loss per step over
the valid steps. Its rows:

* ``braintrace bptt`` — ``jax.grad`` through a ``brainstate`` ``for_loop`` of
  the same model, jitted (the whole sequence in one XLA program);
* ``braintrace es-d-rtrl`` — ``braintrace.compile(model, "es_d_rtrl")`` (the
  factorised input × output traces; decay 0.9) driven by ``etrace_grad``;
* ``braintrace d-rtrl`` — ``braintrace.compile(model, "d_rtrl")`` (the exact
  diagonal trace, one per weight).

Each is jitted once per distinct sequence length during the warm-up epoch.
Gradients are computed, not applied (an optimizer step is a few hundred
microseconds of solsa's rows too; the issue's table compares the gradient work).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable

__all__ = ["single_thread_jax", "peer_runners"]

_XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def single_thread_jax() -> None:
    """Ask XLA for one CPU thread; effective only before jax is first imported."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " " + _XLA_ONE_THREAD).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def peer_runners(batches, n_inputs: int, hidden: tuple[int, ...], n_classes: int, seed: int,
                 log: Callable[[str], None] = lambda s: None) -> dict[str, Callable[[], None]]:
    """One epoch function per peer row over ``batches`` (solsa :class:`~solsa.tasks.Batch` es)."""
    single_thread_jax()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _runners(batches, n_inputs, hidden, n_classes, seed)


def _runners(batches, n_inputs, hidden, n_classes, seed) -> dict[str, Callable[[], None]]:
    import brainpy.state as bp
    import brainstate
    import braintools
    import braintrace
    import brainunit as u
    import jax
    import jax.numpy as jnp
    import numpy as np

    brainstate.environ.set(dt=1.0 * u.ms)
    data = [(jnp.asarray(np.asarray(b.x)), jnp.asarray(np.asarray(b.y)), jnp.asarray(np.asarray(b.mask)))
            for b in batches]
    B = data[0][0].shape[1]
    zero = braintools.init.Constant(0.0)

    class Layer(brainstate.nn.Module):
        def __init__(self, n_in: int, n_out: int) -> None:
            super().__init__()
            self.ff = braintrace.nn.Linear(n_in, n_out, w_init=brainstate.init.KaimingNormal())
            self.syn = bp.Expon(n_out, tau=5.0 * u.ms, g_initializer=zero)  # α = exp(-dt/τ) ≈ 0.82
            self.neu = bp.LIF(n_out, R=1.0, tau=2.0 * u.ms, V_th=1.0, V_reset=0.0, V_rest=0.0,
                              V_initializer=zero, spk_reset="soft")  # λ ≈ 0.61

        def update(self, x):
            return self.neu(self.syn(self.ff(x)))

    class Net(brainstate.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            sizes = (n_inputs, *hidden)
            self.layers = [Layer(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
            self.out = braintrace.nn.LeakyRateReadout(sizes[-1], n_classes, tau=5.0 * u.ms)

        def update(self, x):
            for layer in self.layers:
                x = layer(x)
            return self.out(x)

    def step_loss(model):
        def loss(x, y, m):
            logits = model(x)
            lp = jax.nn.log_softmax(logits, axis=-1)
            return -jnp.sum(jnp.take_along_axis(lp, y[:, None], axis=-1)[:, 0] * m) / B
        return loss

    runners: dict[str, Callable[[], None]] = {}

    # BPTT: grad of the summed loss through a for_loop, jitted
    with brainstate.random.seed_context(seed):
        bptt_net = Net()
        brainstate.nn.init_all_states(bptt_net, batch_size=B)
    weights = bptt_net.states(brainstate.ParamState)

    @brainstate.transform.jit
    def bptt_grad(xs, ys, ms):
        brainstate.nn.init_all_states(bptt_net, batch_size=B)
        loss = step_loss(bptt_net)

        def total():
            return brainstate.transform.for_loop(lambda x, m: loss(x, ys, m), xs, ms).sum()

        return brainstate.transform.grad(total, weights)()

    def bptt_epoch() -> None:
        for xs, ys, ms in data:
            jax.block_until_ready(bptt_grad(xs, ys, ms))

    runners["braintrace bptt"] = bptt_epoch

    for label, algo, options in (("braintrace es-d-rtrl", "es_d_rtrl", {"decay_or_rank": 0.9}),
                                 ("braintrace d-rtrl", "d_rtrl", {})):
        runners[label] = _online_epoch(Net, algo, options, data, B, seed, step_loss)
    return runners


def _online_epoch(Net, algo: str, options: dict[str, Any], data, B: int, seed: int, step_loss):
    import brainstate
    import braintrace
    import jax

    with brainstate.random.seed_context(seed):
        model = Net()
    learner = braintrace.compile(model, algo, data[0][0][0], batch_size=B, seed=seed, **options)
    loss = step_loss(learner)

    @brainstate.transform.jit
    def grads(xs, ys, ms):
        return learner.etrace_grad(xs, ms, step_fn=lambda x, m: loss(x, ys, m), reduction="sum")

    def epoch() -> None:
        for xs, ys, ms in data:
            brainstate.nn.reset_all_states(learner, batch_size=B)  # zero states and traces: a new sequence
            jax.block_until_ready(grads(xs, ys, ms))

    return epoch
