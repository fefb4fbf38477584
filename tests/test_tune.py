"""``solsa tune``: the search space, the folds, the study (resume, shared by two workers), errors, failures."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from solsa.cli import main
from solsa.config import TrainConfig
from solsa.tune.folds import fold_tasks, holdout_task, stratified_folds
from solsa.io import load_config_file
from solsa.tasks import load_task
from solsa.tune import tune
from solsa.tune.space import DEFAULT_SPACE, active_space, config_changes, default_params, parse_dimension
from solsa.validation import OptionError

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = {"task": "patterns", "task_options": {"n_samples": 24, "steps": 30, "n_inputs": 8, "cue_len": 5}, "hidden": (6,), "epochs": 1}
TINY_FLAGS = ["--task", "patterns", "--task-option", "n_samples=24", "--task-option", "steps=30",
              "--task-option", "n_inputs=8", "--task-option", "cue_len=5", "--hidden", "6", "--epochs", "1"]
SMALL_SPACE = {"alpha": parse_dimension("alpha", "0:0.9"), "lr": parse_dimension("lr", "1e-3:1e-2:log")}


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_space_errors_name_the_key():
    with pytest.raises(OptionError, match=r"^space key 'speed' is unknown; valid keys: alpha"):
        parse_dimension("speed", "1:2")
    with pytest.raises(OptionError, match=r"^space key 'alpha' has an empty range '0.9:0.1'"):
        parse_dimension("alpha", "0.9:0.1")
    with pytest.raises(OptionError, match=r"^space key 'alpha': 2.0 is not a valid alpha"):
        active_space({"alpha": parse_dimension("alpha", "0:2")}, TrainConfig(), {})
    with pytest.raises(OptionError, match=r"^space key 'encoder': unknown encoder"):
        active_space({"encoder": parse_dimension("encoder", "direct,morse")}, TrainConfig(), {})


def test_cli_errors_are_one_line(tmp_path, capsys):
    cases = [(["--space", "speed=1:2"], "--space key 'speed' is unknown"),
             (["--space", "lr=1e-2:1e-4:log"], "--space key 'lr' has an empty range"),
             (["--storage", f"sqlite:///{tmp_path}/no/such/dir/s.db"], "--storage 'sqlite:///"),
             (["--storage", "nosuchdb://x"], "--storage 'nosuchdb://x' cannot be opened")]
    for extra, expected in cases:
        assert main(["tune", *TINY_FLAGS, "--trials", "1", "--out", str(tmp_path / "t"), "--quiet", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("solsa tune: error: " + expected) and "\n" not in err, err


def test_given_options_leave_the_space(capsys):
    space = active_space(DEFAULT_SPACE, TrainConfig(), {"lr": 1e-3, "hidden": (8,), "task_options": {"n_per_channel": 3}})
    assert "lr" not in space and "hidden_width" not in space and "population.n_per_channel" not in space
    assert {"alpha", "encoder"} <= set(space) and "epochs" not in space  # runs stop on validation instead
    assert "epochs" in active_space({**DEFAULT_SPACE, "epochs": parse_dimension("epochs", "10:60")}, TrainConfig(), {})
    # the rule's paper model fixes the filter: no α, β to search for e-prop
    assert not {"alpha", "beta"} & set(active_space(DEFAULT_SPACE, TrainConfig(rule="eprop", model="paper"), {}))
    # a fixed encoder keeps its own options and drops the others'
    fixed = active_space(DEFAULT_SPACE, TrainConfig(encoder="delta"), {"encoder": "delta"})
    assert "delta.threshold" in fixed and "rate.max_rate" not in fixed and "encoder" not in fixed
    assert main(["tune", "--epochs", "2", "--rule", "bptt", "--show-space"]) == 0
    shown = capsys.readouterr().out
    assert "alpha" in shown and "epochs" not in shown


def test_start_point_is_the_base_configuration():
    base = TrainConfig(task="patterns", alpha=0.3, lr=3e-3, hidden=(32, 32))
    space = active_space(DEFAULT_SPACE, base, {})
    point = default_params(space, base)
    assert point["alpha"] == 0.3 and point["hidden_width"] == 32 and point["hidden_layers"] == 2
    again = base.replace(**config_changes(base, point))
    # readout α = α, the task's encoder by name, the rule's own credit mode by name
    assert again.replace(readout_alpha=None, encoder=None, credit=None) == base
    assert point["filter_granularity"] == "first"  # the trainer's default is a point of the space


def test_start_point_takes_the_encoder_the_task_resolved():
    # a one-channel uea set trains on the bank although the uea family's default is direct
    base = TrainConfig(task="uea:ItalyPowerDemand")
    space = active_space(DEFAULT_SPACE, base, {})
    assert default_params(space, base, "bank")["encoder"] == "bank"
    assert default_params(space, base.replace(encoder="delta"), "bank")["encoder"] == "delta"  # a named one wins


def test_folds_are_stratified_disjoint_and_seeded():
    task = load_task("patterns", n_samples=40, steps=30, n_inputs=8, cue_len=5)
    pool = torch.cat([task.train.y, task.val.y])
    folds = stratified_folds(pool, 5, seed=3)
    assert sorted(torch.cat(folds).tolist()) == list(range(len(pool)))
    assert all(torch.bincount(pool[f], minlength=4).tolist() == [2, 2, 2, 2] for f in folds)
    assert all(torch.equal(a, b) for a, b in zip(folds, stratified_folds(pool, 5, seed=3)))
    parts = fold_tasks(task, 5, seed=3)
    assert all(torch.equal(p.test.x, p.val.x) and len(p.train) + len(p.val) == 40 for p in parts)
    assert holdout_task(task).test is task.val
    with pytest.raises(OptionError, match="^cv_folds=50 needs at least 50"):
        stratified_folds(pool, 50, seed=0)


def test_tune_writes_the_study_and_continues_it(tmp_path):
    base = TrainConfig(**TINY)
    given = {"epochs": 1, "hidden": (6,), "task_options": TINY["task_options"]}
    r = tune(base, tmp_path, given=given, trials=2, space=SMALL_SPACE, cv_folds=0, log=None)
    rows = _rows(tmp_path / "trials.csv")
    assert len(rows) == 2 and rows[0]["start_configuration"] == "True"
    assert float(rows[0]["alpha"]) == 0.0 and float(rows[0]["lr"]) == base.lr  # trial 0: the defaults
    assert r["scoring"].startswith("the validation split") and r["scoring"].endswith("as asked)")
    assert r["final"]["test_accuracy"] >= 0
    chosen = TrainConfig.from_dict(load_config_file(tmp_path / "best.toml"))  # `solsa train --config` reads it
    assert chosen.alpha == r["best_params"]["alpha"] and chosen.epochs == 1
    assert (tmp_path / "tune.png").is_file() and (tmp_path / "study.db").is_file()
    assert (tmp_path / "trials" / "0001" / "metrics.json").is_file()
    report = json.loads((tmp_path / "tune.json").read_text())
    assert report["best_trial"] == r["best_trial"] and report["trials"] == 2
    r2 = tune(base, tmp_path, given=given, trials=3, space=SMALL_SPACE, cv_folds=0, log=None)
    rows2 = _rows(tmp_path / "trials.csv")
    assert len(rows2) == 3 and rows2[:2] == rows  # the finished trials are kept, --trials is the total
    assert r2["trials"] == 3
    with pytest.raises(ValueError, match="was started with other settings"):
        tune(base.replace(lam=0.7), tmp_path, given=given, trials=4, space=SMALL_SPACE, cv_folds=0, log=None)


def test_cross_validation_below_the_threshold_and_a_failing_trial(tmp_path):
    from solsa.training import train

    calls = []

    def flaky_train(cfg, out, **kw):  # the second trial diverges; the study must go on
        calls.append(str(out))
        if "0001" in str(out):
            raise FloatingPointError("training loss is nan at epoch 1 (diverged)")
        return train(cfg, out, **kw)

    r = tune(TrainConfig(**TINY), tmp_path, given={"epochs": 1}, trials=3, space=SMALL_SPACE, cv_folds=None,
             repeats=1, final=False, train_fn=flaky_train, log=None)
    assert r["cv_folds"] == 5 and "5-fold cross-validation" in r["scoring"] and "(fewer than 200)" in r["scoring"]
    assert "final" not in r
    rows = _rows(tmp_path / "trials.csv")
    assert [row["state"] for row in rows] == ["complete", "fail", "complete"]
    assert rows[1]["error"].startswith("FloatingPointError: training loss is nan")
    assert sum("0000" in c for c in calls) == 5  # one run per fold


def test_a_diverging_run_fails_its_trial_through_the_epoch_hook():
    from solsa.tune.trial import pruning_hook

    hook = pruning_hook(trial=None, report=False)
    with pytest.raises(FloatingPointError, match="diverged"):
        hook(1, {"loss": float("nan"), "val_accuracy": 0.0})


def _tune_cmd(out, *extra):
    return [sys.executable, "-m", "solsa.cli", "tune", *TINY_FLAGS, "--space", "alpha=0:0.9", "--space-file",
            str(_space_file(out)), "--cv-folds", "0", "--no-final", "--out", str(out), *extra]


def _space_file(out: Path) -> Path:
    path = out.parent / "space.toml"
    path.write_text('[space]\nalpha = "0:0.9"\nlr = "1e-3:1e-2:log"\n')
    return path


def _env():
    return {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _study_trials(db: Path, name: str):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}").trials


def test_two_workers_share_one_study(tmp_path):
    db = tmp_path / "shared.db"
    cmd = ["--trials", "6", "--storage", f"sqlite:///{db}", "--study-name", "shared", "--quiet"]
    first = subprocess.Popen(_tune_cmd(tmp_path / "w1", *cmd), env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    second = subprocess.Popen(_tune_cmd(tmp_path / "w2", *cmd), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    for proc in (first, second):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    trials = _study_trials(db, "shared")
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) and all(t.state.name == "COMPLETE" for t in trials)
    assert 6 <= len(trials) <= 7  # the total; a 7th only if both workers started the last one in the same instant
    ran = [{p.name for p in (tmp_path / w / "trials").iterdir()} for w in ("w1", "w2")]
    assert ran[0] and ran[1] and not ran[0] & ran[1]  # both worked, no trial ran twice
    assert len(ran[0] | ran[1]) == len(trials)


def test_workers_started_together_on_a_new_study_all_open_it(tmp_path):
    """Before the lock, 9 of 20 such processes died on "UNIQUE constraint failed: alembic_version" or
    "table ... already exists" (optuna creating the schema twice)."""
    code = "import sys; from solsa.tune import open_study; open_study(sys.argv[1], 'together')"
    for round_ in range(1):
        (tmp_path / f"new{round_}").mkdir()
        url = f"sqlite:///{tmp_path / f'new{round_}' / 'study.db'}"
        procs = [subprocess.Popen([sys.executable, "-c", code, url], env=_env(), stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err


def test_two_tune_workers_started_together_share_the_study_and_the_final_run(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "solsa.cli", "tune", *TINY_FLAGS, "--space", "alpha=0:0.9", "--cv-folds", "0",
           "--trials", "1", "--out", str(out), "--quiet"]
    procs = [subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    assert json.loads((out / "best" / "metrics.json").read_text())["epochs"] >= 1


def test_killed_tune_resumes_with_its_finished_trials(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(_tune_cmd(out, "--trials", "5", "--quiet"), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # the loop ends as soon as 2 trials are in; the long margin is for loaded machines
    csv_file, deadline = out / "trials.csv", time.time() + 300
    while time.time() < deadline and (not csv_file.is_file() or len(_rows(csv_file)) < 2):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = {t.number: t.value for t in _study_trials(out / "study.db", "patterns-solsa") if t.state.name == "COMPLETE"}
    assert len(before) >= 2
    done = subprocess.run(_tune_cmd(out, "--trials", "5", "--quiet", "--grace", "2"), env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    after = _study_trials(out / "study.db", "patterns-solsa")
    assert {t.number: t.value for t in after if t.number in before} == before  # kept, not rerun
    assert sum(t.state.name == "COMPLETE" for t in after) == 5


def test_compare_tune_gives_every_rule_the_same_study(tmp_path):
    from solsa.compare import compare

    options = {**TINY["task_options"], "n_samples": 250}  # ≥ 200 training samples: scored on the validation split
    base = TrainConfig(**{**TINY, "task_options": options}, model="paper")
    given = {"epochs": 1, "hidden": (6,), "task_options": options, "batch_size": 32, "lr": 3e-3,
             "filter_granularity": "layer", "readout_alpha": 0.0, "encoder": "direct"}
    report = compare(base, ["solsa", "eprop"], [0], tmp_path, given=given, tune=2, progress=False)
    found = {f["rule"]: f for f in report["search_results"]}
    assert found["solsa"]["trials"] == found["eprop"]["trials"] == 2
    assert set(found["solsa"]["params"]) == {"alpha", "beta", "lam", "credit", "filter_lr_scale", "filter_update"}
    assert "alpha" not in found["eprop"]["params"]  # e-prop's paper model has no filter to tune
    for run in report["runs"]:
        assert all(run["config"][k] == v for k, v in found[run["rule"]]["params"].items())
    text = (tmp_path / "summary.md").read_text()
    assert "an optuna study of 2 trials per task and rule" in text and "| patterns | eprop |" in text
    assert len(_rows(tmp_path / "tune" / "patterns" / "eprop" / "trials.csv")) == 2


def test_compare_cli_one_suite_task_and_tune_instead_of_the_grid(monkeypatch, tmp_path, capsys):
    import solsa.compare as compare_module

    seen = {}

    def fake_compare(base, rules, seeds, out, **kw):
        seen.update(kw)
        raise ValueError("stop here")

    monkeypatch.setattr(compare_module, "compare", fake_compare)
    assert main(["compare", "--suite", "paper", "--task", "patterns", "--tune", "3", "--epochs", "2",
                 "--out", str(tmp_path / "c")]) == 2
    assert list(seen["tasks"]) == ["patterns"] and seen["tune"] == 3 and seen["search"] == {}
    assert seen["tasks"]["patterns"]["alpha"] == 0.9 and seen["tasks"]["patterns"]["epochs"] == 2
    assert main(["compare", "--tune", "3", "--search", "lr=0.001,0.002", "--out", str(tmp_path / "c")]) == 2
    assert "error: --tune replaces the grid search" in capsys.readouterr().err


def test_the_pruner_stops_only_the_worst_quarter(tmp_path):
    from solsa.tune import open_study

    study = open_study(f"sqlite:///{tmp_path}/p.db", "p")
    for v in (0.2, 0.4, 0.6, 0.8, 1.0):
        study.add_trial(optuna.trial.create_trial(value=v, intermediate_values={5: v}))
    verdict = {}
    for v in (0.3, 0.5):
        with pytest.warns(UserWarning, match="Heartbeat"):  # solsa runs trials through optimize(); ask() here
            trial = study.ask()
        trial.report(v, 5)
        verdict[v] = trial.should_prune()
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert verdict == {0.3: True, 0.5: False}  # below / above the finished trials' 25th percentile (0.4)


def test_credit_is_searched_for_solsa_rules_only():
    from solsa.tune.space import DEFAULT_SPACE, active_space, default_params

    solsa_space = active_space(DEFAULT_SPACE, TrainConfig(rule="solsa"), {})
    assert "credit" in solsa_space
    assert default_params(solsa_space, TrainConfig(rule="solsa"))["credit"] == "cascade"
    assert default_params(solsa_space, TrainConfig(rule="solsa-samestep"))["credit"] == "same-step"
    assert "credit" not in active_space(DEFAULT_SPACE, TrainConfig(rule="bptt"), {})
    assert "credit" not in active_space(DEFAULT_SPACE, TrainConfig(rule="solsa"), {"credit": "next"})


def test_filter_lr_scale_is_searched_only_where_something_learns_the_dynamics():
    from solsa.tune.space import DEFAULT_SPACE, active_space, default_params

    space = active_space(DEFAULT_SPACE, TrainConfig(rule="solsa"), {})
    assert default_params(space, TrainConfig(rule="solsa", filter_lr_scale=0.5))["filter_lr_scale"] == 0.5
    assert "filter_lr_scale" not in active_space(DEFAULT_SPACE, TrainConfig(rule="eprop", model="paper"), {})
    assert "filter_lr_scale" not in active_space(DEFAULT_SPACE, TrainConfig(rule="solsa-fixedfilter"), {})
    assert "filter_lr_scale" in active_space(DEFAULT_SPACE, TrainConfig(rule="solsa-fixedfilter", learn_lam=True), {})
    assert default_params(space, TrainConfig(rule="solsa", filter_update="log"))["filter_update"] == "log"
    assert "filter_update" not in active_space(DEFAULT_SPACE, TrainConfig(rule="solsa-fixedfilter"), {})


def test_val_patience_stops_a_run_that_no_longer_improves():
    from solsa.training import train

    flat = TrainConfig(**{**TINY, "epochs": 20}, lr=1e-12, val_patience=2)  # nothing learns: accuracy stays flat
    m = train(flat, None, progress=False, log=None)
    assert m["epochs_trained"] == 3 and m["best_epoch"] == 1 and m["epochs"] == 20
    assert train(flat.replace(epochs=4, val_patience=0), None, progress=False, log=None)["epochs_trained"] == 4


def _scored_by_lr(calls):
    """A stand-in for train: 0.1 on every fold with a terrible lr (≤ 1e-8), else 0.8; trial 6 gets lr 1e-9."""

    def fake_train(cfg, out, **kw):
        if "0006" in str(out):
            cfg = cfg.replace(lr=1e-9)
        calls.append(Path(out).parent.name)
        accuracy = 0.1 if cfg.lr <= 1e-8 else 0.8
        return {"val_accuracy": accuracy, "val_loss": 1 - accuracy, "seconds_per_epoch": 0.0, "epochs": cfg.epochs}

    return fake_train


def test_a_terrible_trial_is_pruned_after_its_first_fold(tmp_path):
    calls = []
    r = tune(TrainConfig(**TINY), tmp_path, given={"epochs": 1}, trials=8, space=SMALL_SPACE, cv_folds=3,
             repeats=2, final=False, train_fn=_scored_by_lr(calls), log=None)
    rows = _rows(tmp_path / "trials.csv")
    assert [row["state"] for row in rows] == ["complete"] * 6 + ["pruned", "complete"]
    assert rows[6]["pruned_at_fold"] == "1" and calls.count("0006") == 1  # stopped after 1 of its 6 folds
    assert calls.count("0005") == calls.count("0007") == 6  # good trials run every fold, before and after
    assert r["trial_states"] == {"complete": 7, "pruned": 1, "fail": 0}


def test_repeated_k_fold_scores_r_times_k_folds_and_reports_the_spread(tmp_path):
    import statistics

    task = load_task("patterns", n_samples=24, steps=30, n_inputs=8, cue_len=5)
    once, twice = fold_tasks(task, 3, seed=0), fold_tasks(task, 3, seed=0, repeats=2)
    assert len(twice) == 6 and all(torch.equal(a.val.x, b.val.x) for a, b in zip(once, twice))  # repeat 1 = k-fold
    assert not torch.equal(twice[0].val.y, twice[3].val.y) or not torch.equal(twice[0].val.x, twice[3].val.x)
    assert sum(len(t.val) for t in twice[3:]) == 24  # each repeat holds every sample out once
    r = tune(TrainConfig(**TINY), tmp_path, given={"epochs": 1}, trials=1, space=SMALL_SPACE, cv_folds=3, repeats=2,
             final=False, log=None)
    scores = r["best_fold_val_accuracy"]
    assert len(scores) == 6 and r["repeats"] == 2 and "3-fold cross-validation repeated 2 times" in r["scoring"]
    assert r["best_val_accuracy"] == pytest.approx(statistics.fmean(scores))
    assert r["best_val_std"] == pytest.approx(statistics.stdev(scores))
    assert float(_rows(tmp_path / "trials.csv")[0]["val_std"]) == pytest.approx(statistics.stdev(scores))
    assert r["best_minus_start"] == {"mean": 0.0, "standard_error": 0.0, "folds": 6}  # one trial: it is the start
    assert len(list((tmp_path / "trials" / "0000").glob("fold*"))) == 6
    with pytest.raises(OptionError, match="^repeats=2 repeats k-fold cross-validation"):
        tune(TrainConfig(**TINY), tmp_path / "h", trials=1, space=SMALL_SPACE, cv_folds=0, repeats=2, log=None)


def test_seeds_retrain_the_chosen_configuration_and_report_mean_and_std(tmp_path, capsys):
    from solsa.config import trial_patience
    from solsa.tune import VAL_PATIENCE, VAL_PATIENCE_BATCHES

    out = tmp_path / "s"
    assert main(["tune", *TINY_FLAGS, "--space", "alpha=0:0.9", "--space-file", str(_space_file(out)), "--trials", "1",
                 "--cv-folds", "0", "--seeds", "3", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "tune.json").read_text())
    seeds = report["final_seeds"]
    assert seeds["seeds"] == [0, 1, 2] and len(seeds["test_accuracy"]) == 3
    assert seeds["test_accuracy"][0] == report["final"]["test_accuracy"]
    assert seeds["test_std"] == pytest.approx(torch.tensor(seeds["test_accuracy"]).std().item())
    assert all((out / d / "metrics.json").is_file() for d in ("best", "best_seed1", "best_seed2"))
    assert f"on 3 seeds (0, 1, 2): val {seeds['val_mean']:.4f}" in printed and "(mean ± std)" in printed
    # tune's trials stop on validation unless told otherwise, after VAL_PATIENCE_BATCHES updates (or VAL_PATIENCE epochs)
    assert report["val_patience"] is None and report["val_patience_batches"] == VAL_PATIENCE_BATCHES
    batches = int(_rows(out / "trials" / "0000" / "history.csv")[0]["update_steps"])
    trial_cfg = json.loads((out / "trials" / "0000" / "metrics.json").read_text())["config"]
    assert trial_cfg["val_patience"] == trial_patience(batches) == max(VAL_PATIENCE, -(-VAL_PATIENCE_BATCHES // batches))
    assert load_config_file(out / "best.toml")["val_patience"] == 0  # the chosen configuration trains every epoch
    assert json.loads((out / "best_seed2" / "metrics.json").read_text())["config"]["val_patience"] == 0
