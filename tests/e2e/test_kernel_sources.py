"""The kernel trace sources: the job runs untouched (no LD_PRELOAD).

fanotify: the same files and opens as the preload shim (it carries no byte ranges).
eBPF: the same files, opens, reads and bytes per file as the shim, and the pages
each file brought into the page cache (misses) match the reads that were cold."""
import json
import os
import sqlite3
import subprocess
import textwrap

import pytest

from conftest import make_files
from test_run import evict

JOB = textwrap.dedent(
    """
    import os, sys
    for d, _, names in sorted(os.walk(sys.argv[1])):
        for n in sorted(names):
            with open(os.path.join(d, n), "rb") as f:
                f.read()
    """
)


def bytes_per_file(db, root):
    with sqlite3.connect(db) as c:
        return dict(c.execute("SELECT file_path, SUM(length) FROM traces WHERE access_type = 'read' AND file_path LIKE ? "
                              "GROUP BY file_path", (root + "/%",)).fetchall())


def read_ranges(db, root):
    with sqlite3.connect(db) as c:
        return sorted(c.execute("SELECT file_path, offset, length FROM traces WHERE access_type = 'read' AND file_path LIKE ?",
                                (root + "/%",)).fetchall())


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


@pytest.mark.skipif(os.geteuid() != 0, reason="eBPF needs root (CAP_BPF, CAP_PERFMON)")
@pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"), reason="eBPF CO-RE needs the kernel's BTF")
@pytest.mark.skipif(not os.path.exists(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                                    "bpf", "build", "gofetch.bpf.o")),
                    reason="the eBPF program did not compile for this kernel (see .build/bpf.log)")
def test_ebpf_sees_the_files_and_bytes_the_shim_sees_and_the_misses_of_cold_reads(tmp_path, gofetch_bin, python_bin):
    root = tmp_path / "data"
    files = make_files(str(root), 500, seed=4, min_size=1_000, max_size=40_000)
    script = tmp_path / "job.py"
    script.write_text(JOB)

    def run(backend, db):
        command = [gofetch_bin, "trace", "--backend", backend, "--db", str(db), "--json", "--", python_bin, str(script), str(root)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stderr[result.stderr.index("{"):])

    run("preload", tmp_path / "shim.db")
    evict(list(files))
    cold = run("ebpf", tmp_path / "ebpf.db")
    warm = run("ebpf", tmp_path / "ebpf-warm.db")

    shim_files, shim_opens, _ = traced(tmp_path / "shim.db", str(root))
    ebpf_files, ebpf_opens, ebpf_sources = traced(tmp_path / "ebpf.db", str(root))
    assert len(shim_files) == 500 and ebpf_files == shim_files
    assert ebpf_opens == shim_opens == 500
    assert ebpf_sources == {4}  # ebpf
    shim_bytes = bytes_per_file(tmp_path / "shim.db", str(root))
    assert bytes_per_file(tmp_path / "ebpf.db", str(root)) == shim_bytes
    assert sum(shim_bytes.values()) == sum(files.values())
    # The same byte ranges: the kernel side reads each read's file position.
    assert read_ranges(tmp_path / "ebpf.db", str(root)) == read_ranges(tmp_path / "shim.db", str(root))

    # Cold: every file brought in at least its own pages (readahead may add a few);
    # warm: none. The shim-free timing agrees: the cold run's reads were cold.
    missed = cold["ebpf"]["missedPagesByFile"]
    pages = {path: (size + 4095) // 4096 for path, size in files.items()}
    assert all(missed.get(path, 0) >= pages[path] for path in files), \
        [(p, missed.get(p, 0), pages[p]) for p in files if missed.get(p, 0) < pages[p]][:5]
    assert all(warm["ebpf"]["missedPagesByFile"].get(path, 0) == 0 for path in files)
    assert cold["summary"]["coldReads"] > warm["summary"]["coldReads"]
    print(f"eBPF: {len(ebpf_files)} files, {sum(shim_bytes.values())} bytes as the shim; cold run missed "
          f"{sum(missed.get(p, 0) for p in files)} pages for {sum(pages.values())} pages of data; warm run 0")


@pytest.mark.parametrize("backend", ["fanotify", "ebpf"])
def test_without_privileges_each_kernel_backend_says_why_and_how_to_fall_back(tmp_path, gofetch_bin, backend):
    if os.geteuid() == 0:
        # Drop to nobody for this one run (setpriv is in util-linux).
        os.chmod(tmp_path, 0o777)
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", gofetch_bin]
    else:
        command = [gofetch_bin]
    result = subprocess.run(command + ["trace", "--backend", backend, "--db", str(tmp_path / "t.db"), "--", "true"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode != 0
    assert "needs root" in result.stderr and "--backend preload" in result.stderr
