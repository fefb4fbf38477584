"""Files: atomic writes (nothing already written is lost) and config files (TOML or YAML)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = ["atomic_write", "strict_json", "write_json", "write_csv", "save_checkpoint", "load_checkpoint", "load_config_file"]


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write through ``write(fileobj)`` into a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a corrupt file
        raise ValueError(f"checkpoint {path} could not be read: {type(err).__name__}: {err}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != "solsa-checkpoint-1":
        raise ValueError(f"checkpoint {path} is not a solsa checkpoint (no 'format': 'solsa-checkpoint-1')")
    return ckpt


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
