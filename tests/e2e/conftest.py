"""Fixtures for end-to-end tests of the `gofetch` executable.

The executable and the shim are built by scripts/build (scripts/test runs it first).
"""
import os
import random
import sqlite3
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from built_gofetch import gofetch_binary  # noqa: E402
from job_interpreter import job_python  # noqa: E402


@pytest.fixture(scope="session")
def gofetch_bin():
    return gofetch_binary()


@pytest.fixture(scope="session")
def python_bin():
    """The venv's interpreter by its own path (tests/support/job_interpreter.py): its
    packages (Pillow) apply, and it is a real binary, not a wrapper script."""
    return job_python()


def make_files(root, count, seed=0, min_size=1, max_size=300_000):
    rng = random.Random(seed)
    paths = {}
    for i in range(count):
        folder = os.path.join(root, f"class_{i % 5}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"sample_{i:04d}.bin")
        size = rng.randint(min_size, max_size)
        with open(path, "wb") as f:
            f.write(rng.randbytes(size))
        paths[path] = size
    return paths


def query(db, sql, *args):
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, args).fetchall()


def bytes_read_per_file(db):
    return dict(query(db, "SELECT file_path, SUM(length) FROM traces WHERE access_type = 'read' GROUP BY file_path"))


def opened_files(db):
    return {row[0] for row in query(db, "SELECT DISTINCT file_path FROM traces WHERE access_type = 'open'")}
