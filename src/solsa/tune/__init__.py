"""``solsa tune``: search a task's settings on validation data with optuna; test the chosen configuration once.

Each trial is a normal :func:`~solsa.training.train` run with its own run folder (``OUT/trials/NNNN``),
drawn by optuna's TPE sampler from the search space (:mod:`solsa.tune.space`); each of its runs stops after
:data:`VAL_PATIENCE` epochs or :data:`VAL_PATIENCE_BATCHES` updates without a better validation accuracy, whichever
is more (``val_patience``, :func:`solsa.config.trial_patience`). A trial is scored on
validation only (:mod:`solsa.tune.trial`):

- **holdout**: the task's validation split (accuracy of the epoch chosen on it); a percentile pruner stops
  the trial when its per-epoch validation curve is in the worst quarter of the finished trials at the
  same epoch (from a third of its epochs on);
- **repeated k-fold cross-validation** when the training data (train + validation) hold fewer than
  :data:`CV_BELOW` samples: :data:`REPEATS` shuffles of :data:`CV_FOLDS` stratified folds of the training
  data, the same folds for every trial; the score is the mean validation accuracy over the R x k folds,
  their standard deviation its spread; the pruner stops a trial after a fold when the mean of its folds
  so far is in the worst quarter of the finished trials after the same folds.

The configuration with the best score (ties: the lower validation loss) is chosen only if it beats the start
(trial 0) by more than the noise — cross-validation: its fold-by-fold lead over the start exceeds
:data:`KEEP_START_SE` standard errors; holdout: a strictly higher accuracy — else the start is kept
(:func:`choose`). The chosen configuration is written to ``best.toml`` and trained once more on the task's own train/validation split (``OUT/best``): the only run that reads
the test split (``seeds`` N: on N seeds, with the mean and standard deviation). Trial 0 is the starting
configuration itself, so the search is measured against it.

The study lives in a database (default: SQLite ``OUT/study.db``; any optuna storage URL). Rerunning
with the same storage continues the study; several processes on one storage share its trials.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from ..config import VAL_PATIENCE, VAL_PATIENCE_BATCHES, TrainConfig
from ..evaluation import load_task_of
from ..io import make_folder
from ..runs import RunLock, finished_run
from .report import plot_tune, trial_rows, write_best_toml, write_tune_files
from .space import DEFAULT_SPACE, Dimension, active_space, config_changes, default_params, space_text, task_encoder
from .trial import Objective, TrialFailed, spread
from ..validation import OptionError, check_positive_int, check_range

__all__ = ["tune", "CV_BELOW", "CV_FOLDS", "REPEATS", "KEEP_START_SE", "VAL_PATIENCE", "VAL_PATIENCE_BATCHES", "open_study"]

CV_BELOW = 200  # training samples (train + validation) below which trials are scored by cross-validation
CV_FOLDS = 5
REPEATS = 2  # shuffles of the k folds (repeated k-fold); chosen in docs/tune.md, "How the defaults were chosen"
KEEP_START_SE = 2.0  # the best trial replaces the start only if it leads it by more than this many standard errors
# settings that do not change what a trial computes: workers may differ in them
_RUN_ONLY = ("threads", "device", "backend")


def _quiet_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # solsa prints one line per trial itself
    return optuna


def open_study(storage: str, study_name: str, *, grace: int = 20):
    """Create or load the study ``study_name`` in ``storage`` (an optuna storage URL).

    Trials of a process that died are failed after ``grace`` seconds without a heartbeat (and then
    run again). A storage that cannot be opened is an :class:`OptionError` naming ``storage``.
    """
    optuna = _quiet_optuna()
    # Workers started together on a new database race to create its tables and the study (optuna fails the
    # loser with "UNIQUE constraint failed" or "table ... already exists"): on SQLite they take turns through
    # a lock file beside the database; on a server the loser tries again once the winner has created them.
    database = storage.partition("sqlite:///")[2] if storage.startswith("sqlite:///") else ""
    folder = Path(database).parent
    lock = RunLock(folder, f".{Path(database).name}.lock", wait=True) \
        if database not in ("", ":memory:") and folder.is_dir() else None  # no folder: sqlite names the error
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            if lock is None:
                return _create_study(optuna, storage, study_name, grace)
            with lock:
                return _create_study(optuna, storage, study_name, grace)
        except Exception as err:  # sqlalchemy raises many kinds: bad URL, missing driver, unreachable server
            text = str(err)
            raced = "already exists" in text or "UNIQUE constraint" in text
            if not raced or attempt + 1 == _OPEN_ATTEMPTS:
                reason = text.strip().splitlines()[0] if text.strip() else type(err).__name__
                raise OptionError("storage", f"storage {storage!r} cannot be opened: {reason}") from None
            time.sleep(0.2 * (attempt + 1))


_OPEN_ATTEMPTS = 5


def _create_study(optuna, storage: str, study_name: str, grace: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat: stable in use
        store = optuna.storages.RDBStorage(storage, heartbeat_interval=max(1, grace // 4), grace_period=grace)
    # prune a trial in the worst quarter of the finished trials at the same epoch (holdout: judged from a third of
    # its epochs on) or after the same folds (k-fold); optuna's percentile is the share kept: 75 (tune/trial.py)
    pruner = optuna.pruners.PercentilePruner(75.0, n_startup_trials=5)
    return optuna.create_study(storage=store, study_name=study_name, direction="maximize", pruner=pruner,
                               load_if_exists=True)


def _counts(study) -> tuple[int, int]:
    """(trials done: complete, pruned or failed by their own error; trials running now)."""
    from optuna.trial import TrialState

    done = running = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and "error" in t.user_attrs):
            done += 1
        elif t.state == TrialState.RUNNING:
            running += 1
    return done, running


def _fail_dead_trials(study, grace: int) -> None:
    """Fail the running trials whose process died: no heartbeat for ``grace`` seconds (optuna's check), or
    killed between their creation and their first heartbeat (never started, created over ``grace`` s ago)."""
    import datetime

    optuna = _quiet_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    now = datetime.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if "started" not in t.user_attrs and (now - t.datetime_start).total_seconds() > grace:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


def _settings(base: TrainConfig, space: dict[str, Dimension], cv: int, repeats: int,
              patience_batches: int | None = None) -> dict[str, Any]:
    config = {k: v for k, v in base.to_dict().items() if k not in _RUN_ONLY}
    settings = {"config": config, "space": space_text(space), "cv_folds": cv}
    if patience_batches is not None:  # the trials' patience follows their batches per epoch
        settings["val_patience_batches"] = patience_batches
    if repeats != 1:  # a study of single k-fold reads as it did before repeats existed
        settings["repeats"] = repeats
    return json.loads(json.dumps(settings))


def _check_settings(study, settings: dict[str, Any]) -> bool:
    """Record the study's settings when it is new (True); refuse to continue one started with others."""
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", settings)
        return True
    if stored != settings:
        # an option added since the study began reads as its default there
        before = {**TrainConfig().to_dict(), **stored["config"]}
        changed = sorted({*(k for k in settings["config"] if before.get(k) != settings["config"][k]),
                          *(k for k in ("space", "cv_folds", "repeats", "val_patience_batches") if stored.get(k) != settings.get(k))})
        raise ValueError(f"study {study.study_name!r} was started with other settings ({', '.join(changed)}); "
                         "continue it with the same options or choose another --out / --study-name")
    return False


def _best_trial(study):
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not complete:
        return None
    loss = lambda t: t.user_attrs.get("val_loss") if t.user_attrs.get("val_loss") is not None else math.inf  # noqa: E731
    return max(complete, key=lambda t: (t.value, -loss(t), -t.number))


def _trial_line(t, total: str, best) -> str:
    state = t.state.name.lower()
    params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
    if state == "complete":
        std = t.user_attrs.get("val_std")
        head = f"val {t.value:.4f}" + (f" ± {std:.4f}" if std is not None else "")
    elif state == "pruned":
        at = t.user_attrs.get("pruned_at_fold")
        head = f"pruned after fold {at}" if at else f"pruned at epoch {t.user_attrs.get('pruned_at_epoch', '?')}"
    else:
        head = f"failed: {t.user_attrs.get('error', 'interrupted')}"
    tail = f"  [best {best.value:.4f}, trial {best.number}]" if best is not None else ""
    return f"solsa tune: trial {t.number} ({total}): {head} in {t.user_attrs.get('seconds', 0):.1f} s{tail}  {params}"


def tune(
    base: TrainConfig,
    out: str | Path,
    *,
    given: dict[str, Any] | None = None,
    trials: int | None = None,
    budget: float | None = None,
    space: dict[str, Dimension] | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    cv_folds: int | None = None,
    repeats: int | None = None,
    final: bool = True,
    seeds: int = 1,
    train_fn: Callable[..., dict[str, Any]] | None = None,
    log: Callable[[str], None] | None = None,
    grace: int = 20,
) -> dict[str, Any]:
    """Search ``space`` (default :data:`~solsa.tune.space.DEFAULT_SPACE`) around ``base``; returns the report.

    ``given``: options the user set; they are fixed and leave the space. ``trials``: the study's total
    (trials already in it count); ``budget``: seconds of search in this call (no trial starts after it);
    at least one of the two. ``cv_folds``: None picks k-fold (k = :data:`CV_FOLDS`) below
    :data:`CV_BELOW` training samples, else holdout; 0 forces holdout; k ≥ 2 forces k folds.
    ``repeats``: shuffles of the k folds (repeated k-fold, R x k runs per trial; default :data:`REPEATS` under
    k-fold; only with k-fold). Each run of a trial stops after :data:`VAL_PATIENCE` epochs or
    :data:`VAL_PATIENCE_BATCHES` updates without a better validation accuracy, whichever is more
    (:func:`~solsa.config.trial_patience` of the run's batches per epoch; or ``base.val_patience`` epochs if
    ``val_patience`` is ``given``: then the final runs use it too; otherwise they train every epoch of the chosen
    configuration, and so does its ``best.toml``).
    ``final``: train the chosen configuration on the task's split and report its test accuracy
    (the only read of the test split); ``seeds`` N: on seeds ``base.seed`` … ``base.seed + N - 1``, reporting
    the mean and standard deviation. ``grace``: seconds without a heartbeat after which a trial whose
    process died is failed and run again (every worker of a study should use the same). Writes
    ``OUT/best.toml``, ``trials.csv``, ``tune.json``, ``tune.png`` and, by default, the study ``OUT/study.db``.
    """
    if trials is None and budget is None:
        raise OptionError("trials", "trials or budget is required (how many trials, or how many seconds)")
    if trials is not None:
        check_positive_int("trials", trials)
    if budget is not None:
        check_range("budget", budget, 0.0, math.inf, lo_open=True)
    check_positive_int("grace", grace, minimum=2)
    if cv_folds is not None and cv_folds != 0:
        check_positive_int("cv_folds", cv_folds, minimum=2)
    if repeats is not None:
        check_positive_int("repeats", repeats)
    check_positive_int("seeds", seeds)
    if train_fn is None:
        from ..training import train as train_fn
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    given = dict(given or {})
    # trials stop on validation to save time; the chosen configuration keeps the patience only if it was given
    patience_batches = None if "val_patience" in given else VAL_PATIENCE_BATCHES  # None: the given val_patience
    start = time.perf_counter()
    first = load_task_of(base)  # loads and checks the task before any trial (and sizes the scoring)
    encoder = task_encoder(base, first)  # the encoder its data resolved to (uea, one channel: delay)
    space = active_space(DEFAULT_SPACE if space is None else space, base, given, encoder)
    if not space:
        raise OptionError("space", "space is empty: every key is fixed by a given option; nothing to search")
    n_train = len(first.train) + len(first.val)
    cv = (CV_FOLDS if n_train < CV_BELOW else 0) if cv_folds is None else cv_folds
    why = (f"fewer than {CV_BELOW}" if n_train < CV_BELOW else f"{CV_BELOW} or more") if cv_folds is None \
        else "as asked"
    if repeats is not None and repeats > 1 and not cv:
        raise OptionError("repeats", f"repeats={repeats} repeats k-fold cross-validation, but this study is scored "
                          f"on the validation split ({n_train} training samples; {why}); give cv_folds too")
    repeats = (REPEATS if repeats is None else repeats) if cv else 1
    shuffles = f" repeated {repeats} times ({repeats * cv} folds)" if repeats > 1 else ""
    scoring = (f"{cv}-fold cross-validation{shuffles} over the {n_train} training samples ({why})" if cv
               else f"the validation split ({len(first.val)} samples; {why})")

    study_name = study_name or f"{base.task}-{base.rule}"
    shared = storage is not None
    storage = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    study = open_study(storage, study_name, grace=grace)
    n_before = len(study.trials)
    # a fresh study in its own folder is reproducible; a resumed one draws a new stream, and so does each
    # worker on a shared storage (else two workers would draw the same points)
    seed = base.seed * 1_000_003 + n_before + (os.getpid() if shared else 0)
    study.sampler = _quiet_optuna().samplers.TPESampler(seed=seed % 2**32, n_startup_trials=5)
    if _check_settings(study, _settings(base, space, cv, repeats, patience_batches)) and n_before == 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna warns when a fixed value is not in a distribution
            study.enqueue_trial(default_params(space, base, encoder), user_attrs={"start": True})

    seen: set[str] = set()

    def notice(message: str) -> None:
        if log is not None and message not in seen:
            seen.add(message)
            log(message)

    objective = Objective(base, space, cv, repeats, out, train_fn, notice, encoder, patience_batches)
    objective.tasks(base, first)
    if log is not None:
        log(f"solsa tune: {base.rule} on {base.task}, study {study_name!r} ({n_before} trials so far), "
            f"scored on {scoring}; searching {', '.join(space)}")
    _search(study, objective, trials, budget, start, grace, out, log)
    start_trial = next((t for t in study.trials if t.user_attrs.get("start")), None)
    top = _best_trial(study)
    best, kept_start = choose(top, start_trial)
    if best is None:
        raise ValueError(f"study {study_name!r} has no finished trial to choose from (all failed or pruned); "
                         "see trials.csv")
    chosen = base.replace(**config_changes(base, best.params))
    report: dict[str, Any] = {
        "task": base.task, "rule": base.rule, "study": study_name, "storage": storage, "scoring": scoring,
        "cv_folds": cv, "repeats": repeats, "val_patience": base.val_patience if patience_batches is None else None,
        "val_patience_batches": patience_batches, "space": space_text(space),
        "fixed": sorted(given), "trials": len(study.trials),
        "trial_states": {s: sum(t.state.name.lower() == s for t in study.trials) for s in ("complete", "pruned", "fail")},
        "start_trial": None if start_trial is None else {"number": start_trial.number, "params": start_trial.params,
                                                          "val_accuracy": start_trial.value,
                                                          "val_std": start_trial.user_attrs.get("val_std"),
                                                          "val_loss": start_trial.user_attrs.get("val_loss")},
        "best_trial": best.number, "best_params": best.params, "best_val_accuracy": best.value,
        "best_val_std": best.user_attrs.get("val_std"),
        "best_fold_val_accuracy": best.user_attrs.get("fold_val_accuracy"),
        "best_val_loss": best.user_attrs.get("val_loss"), "changes": config_changes(base, best.params),
        "search_seconds": sum(t.user_attrs.get("seconds", 0.0) for t in study.trials),
        "best_minus_start": _paired(best, start_trial), "start_kept": kept_start,
        "top_trial": None if top is None else top.number, "top_val_accuracy": None if top is None else top.value,
        "top_minus_start": _paired(top, start_trial),
    }
    write_best_toml(out / "best.toml", chosen, report)
    if final:
        runs = [_final_run(chosen.replace(seed=chosen.seed + i), out / ("best" if i == 0 else f"best_seed{i}"),
                           train_fn, notice) for i in range(seeds)]
        report["final"] = runs[0]
        report["final_seeds"] = _seed_summary(runs, [chosen.seed + i for i in range(seeds)])
    report["wall_seconds_this_call"] = time.perf_counter() - start
    write_tune_files(out, trial_rows(study), report)
    plot_tune(out / "tune.png", study)
    return report


def _search(study, objective: Objective, trials: int | None, budget: float | None, start: float, grace: int,
            out: Path, log: Callable[[str], None] | None) -> None:
    """Run trials until the study holds ``trials`` done ones or ``budget`` seconds have passed since ``start``;
    wait for other workers' last trials rather than start more than the total."""
    waiting = False
    while True:
        _fail_dead_trials(study, grace)
        done, running = _counts(study)
        if trials is not None and done >= trials:
            return
        if budget is not None and time.perf_counter() - start >= budget:
            return
        if trials is not None and done + running >= trials:
            if log is not None and not waiting:
                log(f"solsa tune: waiting for {running} running trial(s) of other workers (a dead one is run "
                    f"again after {grace} s without a heartbeat)")
            waiting = True
            time.sleep(1.0)
            continue
        study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        write_tune_files(out, trial_rows(study))
        if log is not None and objective.last is not None:
            last = study.get_trials(deepcopy=False)[objective.last]
            log(_trial_line(last, f"{_counts(study)[0]}/{trials}" if trials else "budget", _best_trial(study)))


def choose(best, start) -> tuple[Any, bool]:
    """``(best, False)``, or ``(start, True)`` where ``best`` does not beat the start by more than the noise (paired
    over the same folds: lead ≤ :data:`KEEP_START_SE` standard errors; one score each: not higher)."""
    if best is None or start is None or best.number == start.number or start.value is None \
            or start.state.name != "COMPLETE":
        return best, False
    paired = _paired(best, start)
    if paired is not None:
        beats = paired["mean"] > KEEP_START_SE * paired["standard_error"]
    else:
        beats = best.value > start.value
    return (best, False) if beats else (start, True)


def _paired(best, start) -> dict[str, Any] | None:
    """The chosen trial minus the start one, fold by fold (the same folds): mean and its standard error; None
    without two trials scored on the same folds."""
    a, b = (None if t is None else t.user_attrs.get("fold_val_accuracy") for t in (best, start))
    if not a or not b or len(a) != len(b) or len(a) < 2:
        return None
    diff = [x - y for x, y in zip(a, b)]
    return {"mean": statistics.fmean(diff), "standard_error": statistics.stdev(diff) / math.sqrt(len(diff)),
            "folds": len(diff)}


def _seed_summary(runs: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """Validation and test accuracy of the chosen configuration per seed, their mean and standard deviation."""
    summary: dict[str, Any] = {"seeds": seeds, "runs": [r["run"] for r in runs]}
    for split in ("val", "test"):
        values = [r[f"{split}_accuracy"] for r in runs]
        summary |= {f"{split}_accuracy": values, f"{split}_mean": statistics.fmean(values),
                    f"{split}_std": spread(values)}
    return summary


def _final_run(cfg: TrainConfig, run_dir: Path, train_fn: Callable, notice: Callable[[str], None]) -> dict[str, Any]:
    """The chosen configuration trained on the task's own split; reused if this exact run is finished.
    Workers sharing the out folder take turns (the second reuses the first's run when they chose alike)."""
    make_folder(run_dir.parent, "out folder")
    with RunLock(run_dir.parent, f".{run_dir.name}.lock", wait=True):
        try:
            m = finished_run(cfg, run_dir)
        except ValueError:  # a configuration chosen before the study went on: replaced
            m = None
        if m is None:
            m = train_fn(cfg, run_dir, force=True, progress=False, log=notice)
    return {k: m[k] for k in ("val_accuracy", "val_loss", "test_accuracy", "best_epoch", "epochs", "wall_seconds",
                              "seconds_per_epoch")} | {"run": str(run_dir)}
