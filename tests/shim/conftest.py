"""Fixtures for the preload-shim tests: build the shim, listen like the daemon, run traced programs."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Dict, Optional, Sequence

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

sys.path.insert(0, str(ROOT / "tests" / "support"))
from seqpacket_listener import Listener, Message, listener_fixture  # noqa: E402,F401
from job_interpreter import interpreter_paths, job_python  # noqa: E402

SHIM = ROOT / "preload" / "build" / "libgofetch_preload.so"

# The venv's interpreter by its own path (its packages, Pillow, apply), a real binary
# and not a wrapper script that would fork several processes.
PYTHON = job_python()
# Where that interpreter's own install and standard library are, asked of the
# interpreter itself: a venv's are under sys.base_prefix, not next to .venv/bin.
PYTHON_INSTALL = interpreter_paths(PYTHON)


@pytest.fixture(scope="session")
def shim() -> str:
    result = subprocess.run(["make", "-C", str(ROOT / "preload")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stderr, result.stderr
    assert SHIM.exists()
    return str(SHIM)


@pytest.fixture(scope="session")
def slow_connect(tmp_path_factory) -> str:
    """A library preloaded before the shim that holds its first connect() (slow_connect.c)."""
    out = tmp_path_factory.mktemp("slow_connect") / "slow_connect.so"
    src = pathlib.Path(__file__).with_name("slow_connect.c")
    subprocess.run(["cc", "-O2", "-Wall", "-shared", "-fPIC", "-o", str(out), str(src), "-ldl"], check=True)
    return str(out)


@pytest.fixture
def listener(tmp_path):
    yield from listener_fixture(tmp_path)


def traced_env(shim: Optional[str], socket_path: Optional[str], **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOFETCH_", "PYTHON", "LD_PRELOAD"))}
    if shim:
        env["LD_PRELOAD"] = shim
    if socket_path:
        env["GOFETCH_SOCKET"] = socket_path
    env.update(extra)
    return env


def run(
    args: Sequence[str],
    *,
    shim: Optional[str],
    socket_path: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
    cwd: Optional[str] = None,
    timeout: float = 60,
    check: bool = True,
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        list(args),
        env=traced_env(shim, socket_path, **(env or {})),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert result.returncode == 0, f"exit {result.returncode}\nstdout:{result.stdout}\nstderr:{result.stderr}"
    return result


def run_python(code: str, **kwargs) -> subprocess.CompletedProcess:
    return run([PYTHON, "-c", code], **kwargs)


@pytest.fixture(scope="session")
def cprog(tmp_path_factory) -> Dict[str, str]:
    """The C test program, built plain and fortified."""
    out = tmp_path_factory.mktemp("cprog")
    src = pathlib.Path(__file__).with_name("traced_prog.c")
    built = {}
    for name, flags in (("plain", ["-O2", "-U_FORTIFY_SOURCE"]), ("fortify", ["-O2", "-D_FORTIFY_SOURCE=2"])):
        exe = str(out / f"traced_prog_{name}")
        subprocess.run(["cc", *flags, "-Wall", "-o", exe, str(src), "-pthread"], check=True)
        built[name] = exe
    return built
