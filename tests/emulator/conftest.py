"""Fixtures for the slowfs tests: the emulator's Python helper, and the figures they measure."""

from __future__ import annotations

import pathlib
import sys
from typing import Callable, List

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "emulator"))

_FIGURES = pytest.StashKey[List[str]]()


@pytest.fixture
def figure(request) -> Callable[[str], None]:
    """Record a measured figure; they are listed at the end of the run."""
    figures = request.config.stash.setdefault(_FIGURES, [])

    def record(text: str) -> None:
        figures.append(f"{request.node.name}: {text}")
        print(text)

    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    figures = config.stash.get(_FIGURES, [])
    if figures:
        terminalreporter.section("slowfs figures")
        for line in figures:
            terminalreporter.write_line(line)
