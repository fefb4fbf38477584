"""TrainConfig.epochs' default: DEFAULT_EPOCHS, or as many epochs as MIN_BATCHES batches take on a small set."""

import math

import pytest

import solsa.config as config
from solsa.config import TrainConfig, planned_epochs
from solsa.training import train
from solsa.validation import OptionError

TINY = {"task": "patterns", "task_options": {"n_samples": 24, "steps": 30, "n_inputs": 8, "cue_len": 5},
        "hidden": (4,), "batch_size": 8}  # 19 training sequences: 3 batches an epoch


def test_planned_epochs_follow_the_training_set_size():
    cfg = TrainConfig()
    assert cfg.epochs is None
    big = config.MIN_BATCHES * cfg.batch_size  # one epoch holds MIN_BATCHES batches: the default epochs
    assert planned_epochs(cfg, big) == config.DEFAULT_EPOCHS
    for n in (1, 54, 216, 4000):
        batches = math.ceil(n / cfg.batch_size)
        expected = max(config.DEFAULT_EPOCHS, math.ceil(config.MIN_BATCHES / batches))
        assert planned_epochs(cfg, n) == expected
    assert planned_epochs(cfg, 54) > planned_epochs(cfg, 216) > config.DEFAULT_EPOCHS
    # a given epoch count is kept exactly, whatever the set's size
    assert planned_epochs(cfg.replace(epochs=7), 54) == 7


def test_a_run_trains_its_planned_epochs_and_says_so(monkeypatch):
    monkeypatch.setattr(config, "DEFAULT_EPOCHS", 2)
    monkeypatch.setattr(config, "MIN_BATCHES", 9)
    m = train(TrainConfig(**TINY), None, progress=False, log=None)
    assert m["epochs"] == m["epochs_trained"] == 3  # 9 batches of 3 an epoch: more than DEFAULT_EPOCHS
    monkeypatch.setattr(config, "MIN_BATCHES", 2)
    assert train(TrainConfig(**TINY), None, progress=False, log=None)["epochs_trained"] == 2  # DEFAULT_EPOCHS
    given = train(TrainConfig(**TINY, epochs=1), None, progress=False, log=None)
    assert given["epochs"] == given["epochs_trained"] == 1


@pytest.mark.parametrize("bad", [0, -3, 2.5, "ten"])
def test_bad_epochs_are_refused_by_name(bad):
    with pytest.raises(OptionError, match="epochs"):
        TrainConfig(epochs=bad)
