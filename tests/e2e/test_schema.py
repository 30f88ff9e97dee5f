"""The store's schema exists twice: in Swift (StoreSchema.swift, written by the daemon)
and in Python (gofetch/_store.py, written by the hook), so either can create a store
the other then uses. They must stay identical."""
import os
import re
import sqlite3
import subprocess
import sys

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "python"))
from gofetch import _store  # noqa: E402


def schema(db):
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").fetchall()
    return {(kind, name): re.sub(r"\s+", " ", sql or "").strip() for kind, name, sql in rows}


def test_swift_and_python_create_the_same_schema(tmp_path, gofetch_bin):
    swift_db = tmp_path / "swift.db"
    subprocess.run([gofetch_bin, "trace", "--db", str(swift_db), "--", "true"], check=True, capture_output=True, timeout=60)
    python_db = tmp_path / "python.db"
    with sqlite3.connect(python_db) as connection:
        _store.create_schema(connection)
    swift, python = schema(swift_db), schema(python_db)
    assert ("table", "events") in swift and ("view", "traces") in swift
    # Everything Python creates must match Swift's exactly; Swift adds only GRDB's migration record.
    for key, sql in python.items():
        assert swift.get(key) == sql, f"{key} differs:\n swift:  {swift.get(key)}\n python: {sql}"
    assert set(swift) - set(python) == {("table", "grdb_migrations")}
