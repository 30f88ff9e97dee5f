"""`gofetch cache`: page counts that agree with fincore (util-linux), and warming and
evicting that fincore sees."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import ROOT
from test_run import evict

PAGE = os.sysconf("SC_PAGE_SIZE")


def file_system(path):
    """The type of the file system holding `path`, from /proc/self/mounts."""
    best, kind = "", None
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            _, point, fs, *_ = line.split()
            point = point.replace("\\040", " ")
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, kind = point, fs
    return kind


@pytest.fixture
def disk_dir(tmp_path):
    """A scratch folder on a disk file system: on tmpfs every page is always resident."""
    if file_system(str(tmp_path)) not in ("tmpfs", "ramfs"):
        yield tmp_path
        return
    path = os.path.join(ROOT, ".build", "cache-test")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    yield type(tmp_path)(path)
    shutil.rmtree(path, ignore_errors=True)


def write(path, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(os.urandom(size) if size else b"")
    evict([path])  # written, synced and dropped: cold


def read(path, length=None):
    """Reads the first `length` bytes (all by default) and, with POSIX_FADV_RANDOM,
    nothing ahead of them."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        size = os.fstat(fd).st_size if length is None else length
        done = 0
        while done < size:
            chunk = os.pread(fd, min(1 << 20, size - done), done)
            if not chunk:
                break
            done += len(chunk)
    finally:
        os.close(fd)


def fincore(paths):
    """{path: (resident bytes, resident pages, size)} as util-linux's fincore sees them."""
    assert shutil.which("fincore"), "fincore (util-linux) is not installed: scripts/setup installs it"
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES,PAGES,SIZE,FILE", *paths],
        capture_output=True, text=True, check=True,
    ).stdout
    rows = {}
    for line in out.splitlines():
        res, pages, size, path = line.split(" ", 3)
        rows[path] = (int(res), int(pages), int(size))
    return rows


def cache(gofetch_bin, *args):
    return subprocess.run([gofetch_bin, "cache", *args], capture_output=True, text=True, timeout=120)


def make_states(root):
    """Files in several residency states, some in a folder tree; returns {path: state}."""
    states = {
        "full.bin": ("full", 1 << 20),
        "evicted.bin": ("evicted", 1 << 20),
        "half.bin": ("half", (1 << 20) + 1000),
        "empty": ("empty", 0),
        "tiny.bin": ("full", 100),
        "folder/a.bin": ("full", 300_000),
        "folder/b.bin": ("evicted", 70_000),
        "folder/deeper/c.bin": ("half", 2 << 20),
        "folder/deeper/d.bin": ("quarter", 1 << 20),
    }
    paths = {}
    for name, (state, size) in states.items():
        path = os.path.join(root, name)
        write(path, size)
        if state == "full":
            read(path)
        elif state == "half":
            read(path, size // 2)
        elif state == "quarter":
            read(path, size // 4)
        paths[path] = state
    return paths


def test_page_counts_agree_with_fincore(disk_dir, gofetch_bin):
    paths = make_states(str(disk_dir))
    result = cache(gofetch_bin, "-v", "--json", str(disk_dir))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    ours = {f["path"]: f for f in report["files"]}
    theirs = fincore(list(paths))
    assert set(ours) == set(paths)

    for path, state in paths.items():
        res, pages, size = theirs[path]
        mine = ours[path]
        print(f"{state:8} {os.path.relpath(path, disk_dir):22} gofetch {mine['resident']}/{mine['pages']}  fincore {pages} ({res} B of {size} B)")
        assert mine["resident"] == pages, (path, mine, theirs[path])
        assert mine["resident"] * PAGE == res
        assert mine["size"] == size
        assert mine["pages"] == (size + PAGE - 1) // PAGE
    # The states really differ, so the agreement covers each of them.
    by_state = {}
    for path, state in paths.items():
        by_state.setdefault(state, []).append(ours[path])
    assert all(f["resident"] == f["pages"] > 0 for f in by_state["full"])
    assert all(f["resident"] == 0 < f["pages"] for f in by_state["evicted"])
    assert all(0 < f["resident"] < f["pages"] for f in by_state["half"] + by_state["quarter"])
    assert by_state["empty"][0]["pages"] == 0

    total = report["total"]
    assert total["files"] == len(paths)
    assert total["directories"] == 3  # the root, folder, folder/deeper
    assert total["resident"] == sum(pages for _, pages, _ in theirs.values())
    assert total["pages"] == sum(f["pages"] for f in ours.values())


def test_text_output_agrees_with_fincore(disk_dir, gofetch_bin):
    paths = make_states(str(disk_dir))
    result = cache(gofetch_bin, "-v", *sorted(paths))
    assert result.returncode == 0, result.stderr
    theirs = fincore(sorted(paths))
    lines = result.stdout.splitlines()
    for line in lines[: len(paths)]:
        counts, _, path = line.split(maxsplit=2)
        resident, pages = map(int, counts.split("/"))
        assert resident == theirs[path][1], line
    assert "Files: %d" % len(paths) in result.stdout
    resident_line = next(line for line in lines if "Resident Pages:" in line)
    assert resident_line.split(":")[1].split()[0] == "%d/%d" % (
        sum(r[1] for r in theirs.values()), sum((r[2] + PAGE - 1) // PAGE for r in theirs.values()))


def test_warm_then_evict_as_fincore_sees_it(disk_dir, gofetch_bin):
    paths = make_states(str(disk_dir))
    result = cache(gofetch_bin, "--warm", "--json", str(disk_dir))
    assert result.returncode == 0, result.stderr
    total = json.loads(result.stdout)["total"]
    pages = total["pages"]
    assert total["resident"] == pages
    assert total["warming"]["loadedBytes"] == (pages - total["residentBefore"]) * PAGE
    # fincore (mincore) counts a page once its read has finished; hints return before.
    deadline = time.monotonic() + 10
    while sum(r[1] for r in fincore(list(paths)).values()) < pages and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sum(r[1] for r in fincore(list(paths)).values()) == pages
    result = cache(gofetch_bin, "--evict", "--json", str(disk_dir))
    assert result.returncode == 0, result.stderr
    total = json.loads(result.stdout)["total"]
    assert total["residentBefore"] == pages and total["resident"] == 0
    assert sum(r[1] for r in fincore(list(paths)).values()) == 0


def test_budget_limits_warming(disk_dir, gofetch_bin):
    paths = [os.path.join(disk_dir, f"f{i}.bin") for i in range(4)]
    for path in paths:
        write(path, 1 << 20)
    result = cache(gofetch_bin, "--warm", "--budget", "1.5", "--json", *paths)
    assert result.returncode == 0, result.stderr
    warming = json.loads(result.stdout)["total"]["warming"]
    assert warming["loadedBytes"] == 3 << 19
    assert warming["leftFiles"] == 3 and warming["leftBytes"] == 5 << 19
    rows = fincore(paths)
    assert [rows[path][1] for path in paths] == [256, 128, 0, 0]


def test_missing_path_is_named_and_the_rest_still_counted(disk_dir, gofetch_bin):
    present = os.path.join(disk_dir, "present.bin")
    write(present, 10_000)
    missing = os.path.join(disk_dir, "missing.bin")
    result = cache(gofetch_bin, missing, present)
    assert result.returncode == 1
    assert missing in result.stderr and "No such file or directory" in result.stderr
    assert "Files: 1" in result.stdout


def test_warm_and_evict_together_are_refused(disk_dir, gofetch_bin):
    result = cache(gofetch_bin, "--warm", "--evict", str(disk_dir))
    assert result.returncode != 0
    assert "--warm and --evict cannot go together" in result.stderr
