"""Files: atomic writes (nothing already written is lost) and config files (TOML or YAML)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = ["save_figure", "atomic_write", "strict_json", "write_json", "write_csv", "save_checkpoint", "load_checkpoint",
           "load_torch_file", "load_config_file", "make_folder"]


def make_folder(path: str | Path, what: str = "folder") -> Path:
    """Create the folder ``path`` (and its parents); an :class:`OSError` that says why it cannot be made
    (a file in the way, a name too long, no permission), naming ``what`` and the path."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"{what} {path} exists and is a file, not a folder")
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise NotADirectoryError(f"{what} {path} cannot be created: {parent} is a file, not a folder")
                break
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if err.strerror is None:  # one of the messages above
            raise
        raise type(err)(err.errno, f"{what} {path} cannot be created: {err.strerror}") from None
    return path


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write through ``write(fileobj)`` into a temporary file beside ``path``, then rename it into place
    (a folder at ``path`` is refused: nothing is replaced)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: give the path of a file to write")
    make_folder(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def strict_json(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (JSON has no NaN; strict parsers refuse it)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Write strict JSON atomically: NaN and infinities become null."""
    atomic_write(path, lambda f: json.dump(strict_json(obj), f, indent=2, sort_keys=False, default=str,
                                           allow_nan=False))


def write_csv(path: str | Path, rows: list[dict]) -> None:
    def _write(f):
        if not rows:
            return
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    atomic_write(path, _write)


def save_checkpoint(path: str | Path, state_dict: dict, config: dict) -> None:
    """A checkpoint that loads with ``torch.load(..., weights_only=True)``: tensors and plain data only."""
    buf = io.BytesIO()
    torch.save({"format": "solsa-checkpoint-1", "state_dict": state_dict, "config": config}, buf)
    atomic_write(path, lambda f: f.write(buf.getvalue()), mode="wb")


def load_torch_file(path: str | Path, what: str, fmt: str) -> dict:
    """The dict in the torch file ``path`` that solsa wrote as ``what`` (e.g. "solsa checkpoint") with
    ``"format": fmt``. Read with ``weights_only=True`` (tensors and plain data; nothing of the file runs);
    anything else — random bytes, a truncated file, a pickle of other objects — is a ``ValueError``
    saying the file is not a ``what``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles before refusing them
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds; its message may advise loading unsafely: not shown
        why = ("it holds Python objects other than tensors and plain data, which solsa never writes; "
               "it was not loaded" if "GLOBAL" in str(err)
               else "it is not a torch file, or it is damaged or truncated")
        raise ValueError(f"{path} is not a {what}: {why}") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise ValueError(f"{path} is not a {what} (no 'format': '{fmt}')")
    return data


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by :func:`save_checkpoint` (see :func:`load_torch_file`)."""
    return load_torch_file(path, "solsa checkpoint", "solsa-checkpoint-1")


def load_config_file(path: str | Path) -> dict:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file of options; keys may use - or _."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise ValueError(f"config file {path} must end in .toml, .yaml or .yml")
    try:
        text = path.read_text()
        if path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover
                import tomli as tomllib
            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as err:  # parse errors of either format, undecodable bytes
        raise ValueError(f"config file {path} is malformed: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a table of options, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def save_figure(fig, path: str | Path) -> None:
    """Save a matplotlib figure atomically as PNG."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()), mode="wb")
