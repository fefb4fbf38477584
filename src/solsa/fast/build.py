"""Compile the fused SOLSA kernel once and load it with :mod:`ctypes`.

The shared library is cached under ``$SOLSA_CACHE_DIR`` (default
``~/.cache/solsa``, or a per-user folder in the temp dir when that is not
writable), keyed by a hash of the source, the compiler command and the CPU, so
a rebuild happens only when one of them changes. Building takes about a second
with g++ (no PyTorch headers, no ninja).

Nothing here raises when the compiler is missing or the build fails:
:func:`load_kernel` returns ``None`` and :func:`unavailable_reason` says why,
so callers fall back to the plain PyTorch path.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from importlib import resources

__all__ = ["load_kernel", "unavailable_reason", "cache_dir", "compiler_command", "kernel_source", "build_library",
           "ABI_VERSION"]

ABI_VERSION = 17
_LOCK = threading.Lock()
_STATE: dict[str, object] = {"tried": False, "lib": None, "reason": "not built yet"}


def cache_dir() -> Path:
    """Where compiled kernels are kept (created if needed)."""
    env = os.environ.get("SOLSA_CACHE_DIR")
    candidates = [Path(env)] if env else []
    xdg = os.environ.get("XDG_CACHE_HOME")
    candidates.append((Path(xdg) if xdg else Path.home() / ".cache") / "solsa")
    candidates.append(Path(tempfile.gettempdir()) / f"solsa-cache-{os.getuid() if hasattr(os, 'getuid') else 0}")
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            return path
        except OSError:
            continue
    raise OSError("no writable cache folder for the fused kernel")


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def compiler_command(cxx: str, src: Path, out: Path, openmp: bool = True) -> list[str]:
    """The compile command: optimised for this CPU, OpenMP for the large sizes."""
    cmd = [cxx, "-O3", "-std=c++17", "-shared", "-fPIC", "-march=native", "-fno-math-errno"]
    if openmp:
        cmd.append("-fopenmp")
    else:
        cmd.append("-fopenmp-simd")
    return cmd + [str(src), "-o", str(out)]


def _cpu_key() -> str:
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "model name", "Features", "CPU part")):
                    flags += line
    except OSError:
        pass
    return platform.machine() + platform.system() + flags


# the sources, shipped beside this module as package data
KERNEL_FILES = ("kernel.cpp", "plan.h", "surrogate.h", "forward.h", "backward.h", "flush.h", "credit.h",
                "credit_backward.h", "storage.h", "sequence.h", "denormals.h", "alif.h")


def kernel_source(files: tuple[str, ...] = KERNEL_FILES) -> dict[str, str]:
    """The C++ sources of a library by file name (default the fused step's: ``kernel.cpp`` includes the others)."""
    return {name: resources.files(__package__).joinpath(name).read_text(encoding="utf-8") for name in files}


def build_library(files: tuple[str, ...], stem: str, openmp: bool = False) -> Path:
    """Compile ``files`` (sources beside this module; the first is compiled, it includes the others) into a
    cached shared library ``<stem>_<hash>.so`` and return its path. Raises RuntimeError when there is no
    compiler or the build fails."""
    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX, or install g++)")
    return _build(cxx, openmp, files, stem)


def _build(cxx: str, openmp: bool, files: tuple[str, ...] = KERNEL_FILES, stem: str = "solsa_fused") -> Path:
    sources = kernel_source(files)
    folder = cache_dir()
    probe = compiler_command(cxx, Path("k.cpp"), Path("k.so"), openmp)
    key = hashlib.sha256("\0".join([*sources.values(), " ".join(probe), _cpu_key(), sys.platform]).encode()
                         ).hexdigest()
    target = folder / f"{stem}_{key[:20]}.so"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for name, text in sources.items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        src = Path(tmp) / files[0]
        out = Path(tmp) / f"{stem}.so"
        proc = subprocess.run(compiler_command(cxx, src, out, openmp), capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            detail = proc.stderr.strip()[-2000:]
            raise RuntimeError(f"compiler {cxx} failed (exit {proc.returncode})" + (f": {detail}" if detail else ""))
        os.replace(out, target)  # atomic: concurrent builders never see a half-written file
    return target


def _declare(lib: ctypes.CDLL) -> None:
    vp, i64 = ctypes.c_void_p, ctypes.c_int64
    for suffix in ("f32", "f64"):
        getattr(lib, f"solsa_forward_{suffix}").argtypes = [vp, vp, vp]
        getattr(lib, f"solsa_forward_{suffix}").restype = None
        getattr(lib, f"solsa_predict_{suffix}").argtypes = [vp, vp, vp, vp]
        getattr(lib, f"solsa_predict_{suffix}").restype = None
        getattr(lib, f"solsa_backward_{suffix}").argtypes = [vp, vp]
        getattr(lib, f"solsa_backward_{suffix}").restype = None
        getattr(lib, f"solsa_settle_{suffix}").argtypes = [vp]
        getattr(lib, f"solsa_settle_{suffix}").restype = None
        getattr(lib, f"solsa_zero_state_{suffix}").argtypes = [vp]
        getattr(lib, f"solsa_zero_state_{suffix}").restype = None
        getattr(lib, f"solsa_flush_{suffix}").argtypes = [vp, vp, vp]
        getattr(lib, f"solsa_flush_{suffix}").restype = None
        fn = getattr(lib, f"solsa_step_{suffix}")
        fn.argtypes = [vp, vp, vp, i64, vp, i64, vp, vp, vp]
        fn.restype = i64
        fn = getattr(lib, f"solsa_sequence_{suffix}")
        fn.argtypes = [vp, i64, vp, vp, i64, i64, vp, i64, vp, vp, vp]
        fn.restype = i64
    lib.solsa_abi_version.restype = i64


def load_kernel() -> ctypes.CDLL | None:
    """The compiled kernel library, building it on first use; ``None`` when it cannot be built.

    ``SOLSA_DISABLE_FUSED=1`` disables it (for testing the fallback).
    """
    with _LOCK:
        if os.environ.get("SOLSA_DISABLE_FUSED", "") not in ("", "0"):
            _STATE["reason"] = "disabled by SOLSA_DISABLE_FUSED"
            return None
        if _STATE["tried"]:
            return _STATE["lib"]  # type: ignore[return-value]
        _STATE["tried"] = True
        cxx = _compiler()
        if cxx is None:
            _STATE["reason"] = "no C++ compiler found (set CXX, or install g++)"
            return None
        errors = []
        for openmp in (True, False):  # a compiler without OpenMP still gives the single-threaded kernel
            try:
                # torch is imported first so that its own libgomp is the one the kernel binds to
                import torch  # noqa: F401

                lib = ctypes.CDLL(str(_build(cxx, openmp)))
                _declare(lib)
                if lib.solsa_abi_version() != ABI_VERSION:
                    raise RuntimeError("kernel ABI version mismatch")
                _STATE["lib"], _STATE["reason"] = lib, ""
                return lib
            except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as exc:
                errors.append(f"{'openmp' if openmp else 'no openmp'}: {exc}")
        _STATE["reason"] = "; ".join(errors)
        return None


def unavailable_reason() -> str:
    """Why :func:`load_kernel` returned ``None`` (empty when the kernel is loaded)."""
    return str(_STATE["reason"])
