"""The shape of the code: options written once, layering, file sizes, the backend notice."""

import ast
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import solsa.compare as compare_module
from solsa.cli import build_parser, main
from solsa.config import TrainConfig, option_fields
from solsa.progress import Progress

SRC = Path(__file__).resolve().parents[1] / "src" / "solsa"


def test_every_option_has_one_flag_with_help_and_group():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    flags = {opt for action in train._actions for opt in action.option_strings}
    for f in option_fields():
        flag = "--task-option" if f.name == "task_options" else "--" + f.name.replace("_", "-")
        assert flag in flags, f.name
        assert f.metadata["help"] and f.metadata["group"]


def test_library_errors_name_options_and_the_cli_names_flags(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^batch_size must be a positive integer"):
        TrainConfig(batch_size=0)
    assert main(["train", "--batch-size", "0", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "error: --batch-size must be a positive integer" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"^readout_lam must be in"):
        TrainConfig(readout_lam=1.5)


def test_suite_settings_merged_in_the_library_and_given_options_win():
    """The readout_alpha bug: `compare --suite paper --readout-alpha 0.5` used 0.0 on patterns."""
    tasks = compare_module.plan_tasks(TrainConfig(), "paper", {"readout_alpha": 0.5, "epochs": 2})
    assert all(o["readout_alpha"] == 0.5 and o["epochs"] == 2 for o in tasks.values())
    assert compare_module.plan_tasks(TrainConfig(), "paper", {})["patterns"]["readout_alpha"] == 0.0


def test_cli_suite_passes_every_given_option(monkeypatch, tmp_path):
    seen = {}

    def fake_compare(base, rules, seeds, out, **kw):
        seen["tasks"] = kw.get("tasks") or compare_module.plan_tasks(base, kw.get("suite"), kw.get("given"))
        raise ValueError("stop here")

    monkeypatch.setattr(compare_module, "compare", fake_compare)
    assert main(["compare", "--suite", "paper", "--readout-alpha", "0.5", "--out", str(tmp_path / "c")]) == 2
    assert seen["tasks"]["patterns"]["readout_alpha"] == 0.5


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[-1] if node.level else node.module)
    return names


def test_nothing_imports_the_trainer_but_the_cli_compare_and_tune():
    # solsa/__init__: the public API re-exports train(); tune drives runs like compare
    allowed = {"cli", "compare", "tune"}
    for path in SRC.rglob("*.py"):
        if path.parent.name in allowed or path == SRC / "__init__.py":
            continue
        assert "training" not in _imports(path) and "solsa.training" not in _imports(path), path


def _module(path: Path) -> str:
    parts = ["solsa", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the solsa modules its module-level imports run (importing ``a.b.c`` runs ``a.b`` too).

    Imports inside functions (late, e.g. the CLI's per-command imports) and under ``if TYPE_CHECKING:``
    (annotations only) do not run at import time and are left out."""
    modules = {_module(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Try):
                nodes = [n for block in (node.body, node.orelse, node.finalbody) for n in block]
            else:
                nodes = [node]
            for n in nodes:
                if isinstance(n, ast.Import):
                    targets = [a.name for a in n.names]
                elif isinstance(n, ast.ImportFrom):
                    base = n.module or ""
                    if n.level:
                        parts = package.split(".")[: len(package.split(".")) - n.level + 1]
                        base = ".".join(parts + ([n.module] if n.module else []))
                    targets = [base] + [f"{base}.{a.name}" for a in n.names]
                else:
                    continue
                for target in targets:
                    while target and target not in modules:
                        target = target.rpartition(".")[0]
                    while target:  # the module and every package above it run
                        if target != name and not name.startswith(target + "."):
                            deps.add(target)
                        target = target.rpartition(".")[0]
        graph[name] = deps
    return graph


def test_the_import_graph_has_no_cycle():
    """The layering rule: a module never imports (at module level) one that imports it back."""
    graph = import_graph()
    assert {"solsa.cli", "solsa.tune", "solsa.stream", "solsa.compare", "solsa.rules.base"} <= set(graph)
    assert "solsa.rules.base" in graph["solsa.rules"] and "solsa.learner" in graph["solsa.rules.base"]
    done, on_path, cycles = set(), [], []

    def visit(name: str) -> None:
        on_path.append(name)
        for dep in sorted(graph[name]):
            if dep in on_path:
                cycles.append(on_path[on_path.index(dep):] + [dep])
            elif dep not in done:
                visit(dep)
        on_path.pop()
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name)
    assert not cycles, [" -> ".join(c) for c in cycles]


def test_no_source_file_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def test_progress_prints_a_line_per_epoch_when_not_a_terminal():
    out = io.StringIO()
    bar = Progress(2, 5, True, "solsa on tiny", stream=out)
    for epoch in (1, 2):
        for _ in range(5):
            bar.batch(epoch, 1.0, 0.5)
        bar.epoch(epoch, 0.2, 0.9)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines == ["solsa on tiny: epoch 1/2  loss 0.2000  val 0.9000",
                     "solsa on tiny: epoch 2/2  loss 0.2000  val 0.9000"]


def test_fallback_is_printed_once_and_recorded(tmp_path):
    """No compiler: one line says the rule fell back and why; metrics.json records the backend."""
    env = {**os.environ, "CXX": "false", "SOLSA_CACHE_DIR": str(tmp_path / "cache"), "SOLSA_BACKEND": ""}
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "solsa.cli", "train", "--task", "digits", "--epochs", "1",
                           "--hidden", "8", "--out", str(out), "--quiet"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    notices = [line for line in proc.stderr.splitlines() if "falls back" in line]
    assert len(notices) == 1 and "reference" in notices[0] and "compiler" in notices[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"] == "reference" and "compiler" in metrics["backend_note"]
