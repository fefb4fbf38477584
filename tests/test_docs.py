"""Every code block of README.md and docs/*.md runs as written (CI runs this file).

The rule:

* every ```python block runs, the blocks of one file in order and in one namespace (a later block
  may use an earlier one's names), in a scratch folder that holds ``runs/main/checkpoint.pt`` (a tiny
  ``solsa train --out runs/main`` on the main job's task, so snippets written "after solsa train --out
  runs/main" run as is). A block that must not run is preceded by a line ``<!-- no-run: REASON -->``;
  the test lists those and their reasons, and each still has to compile;
* every ``solsa`` command line of a ```bash block (``solsa ...``, ``python -m solsa.cli ...``,
  ``torchrun ... -m solsa.cli ...``; a trailing ``\\`` joins lines) is parsed by today's command line:
  a flag, choice or sub-command that no longer exists fails here. They are not run: they train full
  jobs or read data sets that are not on a CI machine;
* warnings a block emits must be ones the text announces (:data:`EXPECTED_WARNINGS`); any other
  warning fails the block.
"""

from __future__ import annotations

import os
import re
import shlex
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NO_RUN = re.compile(r"<!--\s*no-run:\s*(.+?)\s*-->")
EXPECTED_WARNINGS = ("NIRCompatibilityWarning",)  # docs/interop.md: "warns (NIRCompatibilityWarning) per node"


def code_blocks(path: Path) -> list[tuple[str, int, str, str | None]]:
    """``(language, first line number, code, no-run reason or None)`` of every fenced block of ``path``."""
    blocks, lines, i = [], path.read_text().splitlines(), 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = len(m.group(1)), m.group(2), i + 1
        j = start
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        previous = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        reason = NO_RUN.search(previous)
        code = "\n".join(line[indent:] for line in lines[start:j])
        blocks.append((lang, start + 1, code, reason.group(1) if reason else None))
        i = j + 1
    return blocks


def _cases(lang: str) -> list:
    return [pytest.param(path, id=str(path.relative_to(ROOT))) for path in FILES
            if any(b[0] == lang for b in code_blocks(path))]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch folder with ``runs/main`` trained (tiny: 1 epoch, one hidden layer of 8)."""
    from solsa.config import TrainConfig
    from solsa.training import train

    folder = tmp_path_factory.mktemp("docs")
    train(TrainConfig(hidden=(8,), epochs=1), folder / "runs" / "main", progress=False, log=None)
    return folder


@pytest.mark.parametrize("path", _cases("python"))
def test_python_blocks_run(path, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    namespace: dict = {"__name__": "__doc_block__"}
    for lang, line, code, reason in code_blocks(path):
        if lang != "python":
            continue
        compiled = compile(code, f"{path.name}:{line}", "exec")
        if reason is not None:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(compiled, namespace)
        unexpected = [f"{w.category.__name__}: {w.message}" for w in caught
                      if w.category.__name__ not in EXPECTED_WARNINGS]
        assert not unexpected, f"{path.name}:{line} warned: {unexpected}"
    capsys.readouterr()


def solsa_commands(code: str) -> list[list[str]]:
    """The arguments after ``solsa`` of every command line in a bash block."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        line = line.split(" #")[0].strip()
        if line.startswith("#") or not line:
            continue
        for part in re.split(r"\s*(?:\||&&|;)\s*", line):
            words = shlex.split(part.replace("$", "X"))
            if words[:1] == ["solsa"]:
                commands.append(words[1:])
            elif "solsa.cli" in words:
                commands.append(words[words.index("solsa.cli") + 1:])
    return commands


@pytest.mark.parametrize("path", _cases("bash"))
def test_bash_blocks_parse_with_the_command_line(path, capsys):
    from solsa.cli import build_parser

    parser = build_parser()
    checked = 0
    for lang, line, code, _ in code_blocks(path):
        if lang != "bash":
            continue
        for argv in solsa_commands(code):
            try:
                parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"{path.name}:{line}: `solsa {' '.join(argv)}` does not parse: "
                            f"{capsys.readouterr().err.strip().splitlines()[-1]}")
            checked += 1
    assert checked or path.name in ("README.md",), f"{path.name}: no solsa command found in its bash blocks"


def test_the_rule_sees_blocks_and_markers(tmp_path):
    """The extractor finds indented blocks and a no-run marker (the test above could not fail otherwise)."""
    doc = tmp_path / "x.md"
    doc.write_text("text\n\n<!-- no-run: needs a GPU -->\n```python\nraise SystemExit\n```\n\n  ```bash\n"
                   "  solsa train --epochs 2 \\\n      --out runs/x   # note\n  ```\n")
    blocks = code_blocks(doc)
    assert [(b[0], b[3]) for b in blocks] == [("python", "needs a GPU"), ("bash", None)]
    assert solsa_commands(blocks[1][2]) == [["train", "--epochs", "2", "--out", "runs/x"]]
    assert os.fspath(ROOT / "README.md") in map(os.fspath, FILES)
