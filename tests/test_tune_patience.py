"""``solsa tune``'s trial patience: counted in updates (batches), so a small set waits more epochs than a large one."""

import math

from solsa.cli import main
from solsa.config import VAL_PATIENCE, VAL_PATIENCE_BATCHES, TrainConfig, trial_patience
from solsa.tune import tune
from solsa.tune.space import parse_dimension
from solsa.tune.trial import Objective

TINY = {"task": "patterns", "task_options": {"n_samples": 24, "steps": 30, "n_inputs": 8, "cue_len": 5}, "hidden": (6,),
        "epochs": 1}
SPACE = {"alpha": parse_dimension("alpha", "0:0.9")}


def _objective(patience_batches):
    return Objective(TrainConfig(**TINY), {}, 0, 1, None, None, print, None, patience_batches)


def test_a_trials_patience_in_epochs_follows_its_batches_per_epoch():
    objective, cfg = _objective(VAL_PATIENCE_BATCHES), TrainConfig(**TINY, batch_size=16)
    small, large = (objective.run_config(cfg, n).val_patience for n in (80, 8000))  # 5 and 500 batches an epoch
    assert small == math.ceil(VAL_PATIENCE_BATCHES / 5) > large == VAL_PATIENCE  # the floor holds on a large set
    assert small * 5 >= VAL_PATIENCE_BATCHES > (small - 1) * 5  # as many updates as the constant, rounded up
    # the drawn batch size counts: batch 32 halves the batches of an epoch, so the patience doubles in epochs
    assert objective.run_config(cfg.replace(batch_size=32), 160).val_patience == small
    assert trial_patience(5, 0) == 0 and _objective(0).run_config(cfg, 80).val_patience == 0  # 0: never stop


def test_a_given_val_patience_wins(tmp_path):
    cfg = TrainConfig(**TINY, val_patience=7)
    assert _objective(None).run_config(cfg, 80) is cfg  # tune passes None when the user gave --val-patience
    seen = []

    def fake_train(cfg, out, **kw):
        seen.append((cfg.val_patience, len(kw["task"].train)))
        return {"val_accuracy": 0.5, "val_loss": 0.5, "seconds_per_epoch": 0.0, "epochs": cfg.epochs}

    report = tune(cfg, tmp_path / "given", given={"val_patience": 7}, trials=2, cv_folds=0, final=False,
                  train_fn=fake_train, space=SPACE)
    assert [p for p, _ in seen] == [7, 7] and report["val_patience"] == 7 and report["val_patience_batches"] is None
    seen.clear()
    report = tune(cfg.replace(val_patience=0), tmp_path / "auto", trials=1, cv_folds=0, final=False,
                  train_fn=fake_train, space=SPACE)
    patience, n_train = seen[0]
    assert patience == trial_patience(math.ceil(n_train / 16)) and report["val_patience_batches"] == VAL_PATIENCE_BATCHES


def test_the_help_text_states_the_constants(capsys):
    for command in ("tune", "train"):
        try:
            main([command, "--help"])
        except SystemExit:
            pass
        text = " ".join(capsys.readouterr().out.split())
        assert f"{VAL_PATIENCE} epochs or {VAL_PATIENCE_BATCHES:,} batches, whichever is more" in text, command


def test_the_start_is_kept_unless_the_best_trial_beats_it_by_more_than_the_noise():
    from types import SimpleNamespace

    from solsa.tune import choose

    def trial(number, value, folds=None):
        attrs = {"fold_val_accuracy": folds} if folds else {}
        return SimpleNamespace(number=number, value=value, user_attrs=attrs, state=SimpleNamespace(name="COMPLETE"))

    start = trial(0, 0.80)
    assert choose(trial(5, 0.80), start) == (start, True)  # a tie on one split: the start
    better = trial(5, 0.825)
    assert choose(better, start) == (better, False)
    assert choose(start, start) == (start, False)
    folds_start = trial(0, 0.5, [0.5, 0.6, 0.4, 0.5])
    noisy = trial(3, 0.55, [0.7, 0.5, 0.5, 0.5])  # lead 0.05, SE 0.05: within 2 SE
    assert choose(noisy, folds_start) == (folds_start, True)
    steady = trial(4, 0.6, [0.6, 0.7, 0.5, 0.6])  # lead 0.1 on every fold: SE 0
    assert choose(steady, folds_start) == (steady, False)
