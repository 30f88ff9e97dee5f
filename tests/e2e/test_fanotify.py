"""The fanotify trace source: the job runs untouched (no LD_PRELOAD) and the store
gets the same files and opens as with the preload shim. fanotify carries no byte
ranges, so only the shim's events have lengths."""
import os
import sqlite3
import subprocess
import textwrap

import pytest

from conftest import make_files

JOB = textwrap.dedent(
    """
    import os, sys
    for d, _, names in sorted(os.walk(sys.argv[1])):
        for n in sorted(names):
            with open(os.path.join(d, n), "rb") as f:
                f.read()
    """
)


def traced(db, root):
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT file_path, access_type FROM traces WHERE file_path LIKE ?", (root + "/%",)).fetchall()
        sources = {r[0] for r in c.execute("SELECT DISTINCT source FROM events")}
    files = {p for p, _ in rows}
    opens = sum(1 for _, kind in rows if kind == "open")
    return files, opens, sources


@pytest.mark.skipif(os.geteuid() != 0, reason="fanotify marks need CAP_SYS_ADMIN (root)")
def test_fanotify_sees_the_files_the_shim_sees(tmp_path, gofetch_bin, python_bin):
    root = tmp_path / "data"
    make_files(str(root), 500, seed=2, min_size=1_000, max_size=20_000)
    script = tmp_path / "job.py"
    script.write_text(JOB)
    results = {}
    for backend in ("preload", "fanotify"):
        db = tmp_path / f"{backend}.db"
        command = [gofetch_bin, "trace", "--backend", backend, "--mark", str(tmp_path), "--db", str(db), "--",
                   python_bin, str(script), str(root)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        results[backend] = traced(db, str(root))
    shim_files, shim_opens, shim_sources = results["preload"]
    kernel_files, kernel_opens, kernel_sources = results["fanotify"]
    print(f"preload: {len(shim_files)} files, {shim_opens} opens; fanotify: {len(kernel_files)} files, {kernel_opens} opens")
    assert len(shim_files) == 500
    assert kernel_files == shim_files
    assert kernel_opens == shim_opens == 500
    assert shim_sources == {1} and kernel_sources == {3}  # preload, fanotify


def test_fanotify_without_privileges_says_why_and_how_to_fall_back(tmp_path, gofetch_bin):
    if os.geteuid() == 0:
        # Drop to nobody for this one run (setpriv is in util-linux).
        os.chmod(tmp_path, 0o777)
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", gofetch_bin]
    else:
        command = [gofetch_bin]
    result = subprocess.run(command + ["trace", "--backend", "fanotify", "--db", str(tmp_path / "t.db"), "--", "true"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode != 0
    assert "needs root" in result.stderr and "--backend preload" in result.stderr
