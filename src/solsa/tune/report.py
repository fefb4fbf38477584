"""Files of ``solsa tune``: ``trials.csv``, ``tune.json``, ``best.toml`` and the plot ``tune.png``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..io import atomic_write, write_csv, write_json

__all__ = ["trial_rows", "write_tune_files", "config_toml", "write_best_toml", "plot_tune"]


def trial_rows(study) -> list[dict[str, Any]]:
    """One row per trial: number, state, validation accuracy (mean over folds), its spread (std over folds) and
    loss, seconds, epochs trained (mean over folds), where it was pruned, parameters, error."""
    keys = list(dict.fromkeys(k for t in study.trials for k in t.params))
    rows = []
    for t in study.trials:
        a = t.user_attrs
        rows.append({"trial": t.number, "state": t.state.name.lower(), "val_accuracy": t.value,
                     "val_std": a.get("val_std"), "val_loss": a.get("val_loss"), "seconds": a.get("seconds"),
                     "seconds_per_epoch": a.get("seconds_per_epoch"), "epochs_trained": a.get("epochs_trained"),
                     "pruned_at_epoch": a.get("pruned_at_epoch"), "pruned_at_fold": a.get("pruned_at_fold"),
                     "start_configuration": bool(a.get("start")),
                     **{k: t.params.get(k) for k in keys}, "error": a.get("error")})
    return rows


def write_tune_files(out: Path, rows: list[dict[str, Any]], report: dict[str, Any] | None = None) -> None:
    """``trials.csv`` (after every trial) and, at the end, ``tune.json``."""
    write_csv(out / "trials.csv", rows)
    if report is not None:
        write_json(out / "tune.json", report)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a TOML basic string is a JSON string


def config_toml(cfg: TrainConfig) -> str:
    """Every option of ``cfg`` as TOML (options that are None, i.e. "the default", are left out)."""
    d = cfg.to_dict()
    lines = [f"{k} = {_toml_value(v)}" for k, v in d.items() if v is not None and k != "task_options"]
    if d["task_options"]:
        lines += ["", "[task_options]"] + [f"{k} = {_toml_value(v)}" for k, v in d["task_options"].items()]
    return "\n".join(lines) + "\n"


def write_best_toml(path: Path, cfg: TrainConfig, report: dict[str, Any]) -> None:
    """The chosen configuration, readable by ``solsa train --config``."""
    std = report.get("best_val_std")
    header = [f"# solsa tune: study {report['study']!r}, trial {report['best_trial']} of {report['trials']}",
              f"# validation accuracy {report['best_val_accuracy']:.4f}" + (f" ± {std:.4f}" if std is not None else "")
              + f", scored on {report['scoring']}",
              f"# train it: solsa train --config {path.name}", ""]
    atomic_write(path, lambda f: f.write("\n".join(header) + config_toml(cfg)))


def _importances(study) -> tuple[dict[str, float], str | None]:
    import warnings

    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "few trials per regime": the plot is a rough guide either way
            return optuna.importance.get_param_importances(study), None
    except (ValueError, RuntimeError) as err:  # too few trials, or parameters not shared by the trials
        return {}, str(err).splitlines()[0]


def plot_tune(path: Path, study) -> None:
    """Validation accuracy per trial (pruned and failed marked, the running best drawn) and parameter importance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import save_figure

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    best, line = -math.inf, []
    for state, marker, color in (("COMPLETE", "o", "C0"), ("PRUNED", "x", "C1"), ("FAIL", "v", "C3")):
        pts = [t for t in study.trials if t.state.name == state]
        if state == "PRUNED":  # where it was stopped: its last intermediate value (best epoch so far, folds' mean)
            ys = [t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else math.nan
                  for t in pts]
        else:
            ys = [t.value if t.value is not None else 0.0 for t in pts]
        if pts:
            ax.scatter([t.number for t in pts], ys, marker=marker, color=color, label=state.lower())
    for t in study.trials:
        if t.state.name == "COMPLETE":
            best = max(best, t.value)
        line.append(best if best > -math.inf else math.nan)
    ax.step(range(len(line)), line, where="post", color="k", lw=1, label="best so far")
    ax.set_xlabel("trial"), ax.set_ylabel("validation accuracy"), ax.legend(), ax.set_title(study.study_name)
    importance, why = _importances(study)
    if importance:
        names = list(importance)[::-1]
        bx.barh(names, [importance[n] for n in names], color="C2")
        bx.set_xlabel("importance (optuna default evaluator)"), bx.set_title("parameter importance")
    else:
        bx.text(0.5, 0.5, f"importance unavailable:\n{why}", ha="center", va="center", wrap=True)
        bx.set_axis_off()
    fig.tight_layout()
    save_figure(fig, path)
