"""The interpreter the tests' jobs run with: the one running pytest, by the path it
was started as.

scripts/test starts pytest as .venv/bin/python, the environment scripts/setup
provisions (pytest and Pillow). That path is a symlink to the interpreter binary;
resolving it would run the base interpreter, outside the venv and without its
packages. The target must be an ELF binary itself: a wrapper script (pyenv's
`python3` shim) would add processes to every trace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict


def job_python() -> str:
    path = sys.executable
    if not path:
        raise RuntimeError("sys.executable is empty: run pytest as .venv/bin/python -m pytest (scripts/test does)")
    real = os.path.realpath(path)
    try:
        with open(real, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise RuntimeError(f"cannot read the interpreter {path} ({real}): {e}") from e
    if magic != b"\x7fELF":
        raise RuntimeError(f"{path} resolves to {real}, which is not an ELF binary (a wrapper script?): "
                           "run pytest as .venv/bin/python -m pytest; scripts/setup creates .venv from the real interpreter")
    return path


def interpreter_paths(python: str) -> Dict[str, str]:
    """Where `python` keeps its files, asked of that interpreter: its prefix (a venv's
    own folder), its install (sys.base_prefix, which a venv shares with the
    interpreter it was made from) and its standard library (under the latter)."""
    code = ("import json, sys, sysconfig\n"
            "print(json.dumps({'prefix': sys.prefix, 'base_prefix': sys.base_prefix,\n"
            "                  'stdlib': sysconfig.get_paths()['stdlib']}))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOFETCH_", "PYTHON", "LD_PRELOAD"))}
    out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)
