"""``trace_dtype = "auto"`` (the default): where SOLSA's ``[B, N_out, N_in]`` traces are stored for each run.

Chosen by the 10-seed check of docs/results/float16-default: float16 for a float32 SOLSA run on the fused kernel,
the network's dtype wherever float16 would be slow (reference backend), inexact where exactness is asked (float64),
unsupported (ALIF in the kernel) or out of range (inputs beyond INPUT_SCALE_WARN).
"""

from __future__ import annotations

import pytest
import torch

from solsa.config import TrainConfig
from solsa.export_c import CExportError, learner_spec
from solsa.factories import build_network, build_rule, trace_dtype_of
from solsa.training import train
from solsa.validation import INPUT_SCALE_WARN, OptionError
from test_training import tiny_task


def _storage(cfg: TrainConfig, **kw) -> str | None:
    net = build_network(cfg, 6, 3)
    return trace_dtype_of(cfg, net, **kw)


def test_the_default_stores_float16_and_holds_fewer_bytes():
    cfg = TrainConfig(hidden=(9, 7), batch_size=3)
    assert cfg.trace_dtype == "auto" and _storage(cfg) == "float16"
    sizes = {}
    for name in ("auto", "full", "float16"):
        c = cfg.replace(trace_dtype=name)
        rule = build_rule(c, build_network(c, 6, 3))
        rule.reset(3)
        sizes[name] = rule.train_state_bytes()
    assert sizes["auto"] == sizes["float16"] < sizes["full"]


@pytest.mark.parametrize("options, kw", [
    ({"dtype": "float64"}, {}),                        # exactness runs keep the network's dtype
    ({"backend": "reference"}, {}),                    # float16 is ~9x slower on the reference path
    ({"neuron": "alif"}, {}),                          # the kernel keeps ALIF traces in the network's dtype
    ({"trace_dtype": "full"}, {}),                     # asked for
    ({}, {"input_scale": 10 * INPUT_SCALE_WARN}),      # traces would leave float16's range
    ({"rule": "bptt"}, {}),                            # no traces to store
])
def test_auto_keeps_the_networks_dtype_where_float16_does_not_fit(options, kw):
    assert _storage(TrainConfig(hidden=(5,), **options), **kw) is None


def test_auto_follows_the_networks_dtype_not_the_configs():
    cfg = TrainConfig(hidden=(5,))
    assert trace_dtype_of(cfg, build_network(cfg, 6, 3).to(torch.float64)) is None


def test_old_files_with_null_mean_full_and_bad_values_are_named():
    assert TrainConfig.from_dict({"trace_dtype": None}).trace_dtype == "full"
    with pytest.raises(OptionError) as err:
        TrainConfig(trace_dtype="int8")
    assert err.value.option == "trace_dtype"
    TrainConfig(rule="bptt")  # auto is fine for every rule; an explicit narrow dtype is SOLSA's only
    with pytest.raises(OptionError, match="SOLSA rules only"):
        TrainConfig(rule="bptt", trace_dtype="float16")


def test_training_records_the_storage_and_saturating_inputs_keep_full():
    cfg = TrainConfig(task="tiny", hidden=(8,), epochs=1, batch_size=8, lr=0.01)
    m = train(cfg, task=tiny_task(), progress=False)
    assert m["trace_storage"] == "float16" and m["config"]["trace_dtype"] == "auto"
    loud = tiny_task()
    loud.train.x.mul_(INPUT_SCALE_WARN * 10)
    assert train(cfg, task=loud, progress=False)["trace_storage"] == "float32"


def test_c_export_takes_auto_and_full_but_not_a_chosen_narrow_dtype():
    assert learner_spec(TrainConfig()).credit
    assert learner_spec(TrainConfig(trace_dtype="full")).credit
    with pytest.raises(CExportError, match="trace_dtype 'float16' cannot be exported"):
        learner_spec(TrainConfig(trace_dtype="float16"))


def test_auto_keeps_full_storage_where_the_kernel_cannot_run(monkeypatch):
    """Without the fused kernel (no compiler) SOLSA runs its reference path, where float16 is ~9x slower."""
    import solsa.factories as factories

    cfg = TrainConfig(hidden=(5,))
    assert _storage(cfg) == "float16"
    monkeypatch.setattr(factories, "fused_available", lambda: False)
    assert _storage(cfg) is None
