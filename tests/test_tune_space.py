"""``solsa tune``'s space: the encoder a task's data resolves to keeps its options; task-option keys."""

import optuna

from solsa.cli import main
from solsa.config import TrainConfig
from solsa.evaluation import load_task_of
from solsa.tune.space import DEFAULT_SPACE, active_space, config_changes, default_params, suggest
from solsa.tasks.uea import MAX_STEPS


def test_the_encoder_the_data_resolved_keeps_its_options(tmp_path, capsys):
    # a one-channel uea set loads with delay although the family's default is direct: with the encoder neither
    # searched nor named, delay's options stay in the space and are drawn (they were dropped: taken for direct's)
    base = TrainConfig(task="uea:ItalyPowerDemand")
    space = {key: DEFAULT_SPACE[key] for key in ("alpha", "delay.taps", "delay.dilations", "delta.threshold")}
    active = active_space(space, base, {})  # resolves the encoder by loading the task
    assert list(active) == ["alpha", "delay.taps", "delay.dilations"]
    assert list(active_space(space, base, {}, "delay")) == list(active)
    assert "delay.taps" not in active_space(space, TrainConfig(task="uea:BasicMotions"), {})  # several channels: direct
    point = suggest(optuna.trial.FixedTrial({"alpha": 0.5, "delay.taps": 7, "delay.dilations": 2}), active, base, "delay")
    assert point == {"alpha": 0.5, "delay.taps": 7, "delay.dilations": 2}
    cfg = base.replace(**config_changes(base, point))
    assert load_task_of(cfg).info["encoder_options"].items() >= {"taps": 7, "dilations": 2}.items()
    assert default_params(active, base, "delay") == {"alpha": 0.0, "delay.taps": 5, "delay.dilations": 3}
    (tmp_path / "space.toml").write_text('[space]\nalpha = "0:0.9"\n"delay.taps" = "2:9"\n"delta.threshold" = "0.02:0.5"\n')
    assert main(["tune", "--task", "uea:ItalyPowerDemand", "--space-file", str(tmp_path / "space.toml"), "--show-space"]) == 0
    shown = capsys.readouterr().out
    assert "delay.taps" in shown and "delta.threshold" not in shown


def test_task_option_keys_only_for_tasks_that_take_them():
    space = {"alpha": DEFAULT_SPACE["alpha"], "max_steps": DEFAULT_SPACE["max_steps"]}
    uea = TrainConfig(task="uea:ItalyPowerDemand", encoder="delay")
    assert list(active_space(space, uea, {})) == ["alpha", "max_steps"]
    assert list(active_space(space, TrainConfig(task="patterns"), {})) == ["alpha"]
    assert "max_steps" not in active_space(space, uea, {"task_options": {"max_steps": 50}})  # given: fixed
    assert default_params(space, uea)["max_steps"] == MAX_STEPS  # the loader's default
    assert config_changes(uea, {"max_steps": 200}) == {"task_options": {"max_steps": 200}}
