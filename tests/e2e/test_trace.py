"""`gofetch trace` on real Python jobs: every file and byte the job read is in the store."""
import json
import os
import subprocess
import textwrap
import time

from conftest import bytes_read_per_file, make_files, opened_files, query

READER = textwrap.dedent(
    """
    import sys
    paths = [line.strip() for line in open(sys.argv[1])]
    for p in paths:
        with open(p, "rb") as f:
            f.read()
    """
)

FORKED_READER = textwrap.dedent(
    """
    import multiprocessing as mp, sys
    def work(paths):
        for p in paths:
            with open(p, "rb") as f:
                f.read()
    if __name__ == "__main__":
        paths = [line.strip() for line in open(sys.argv[1])]
        ctx = mp.get_context("fork")
        procs = [ctx.Process(target=work, args=(paths[w::4],)) for w in range(4)]
        for p in procs: p.start()
        for p in procs: p.join()
        sys.exit(max(p.exitcode for p in procs))
    """
)


def run_trace(gofetch_bin, db, argv, **kwargs):
    return subprocess.run(
        [gofetch_bin, "trace", "--db", db, "--", *argv], capture_output=True, text=True, timeout=120, **kwargs
    )


def write_job(tmp_path, files, source):
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(files) + "\n")
    script = tmp_path / "job.py"
    script.write_text(source)
    return str(script), str(listing)


def test_200_files_exact_bytes(tmp_path, gofetch_bin, python_bin):
    files = make_files(str(tmp_path / "data"), 200)
    script, listing = write_job(tmp_path, list(files), READER)
    db = str(tmp_path / "traces.db")
    result = run_trace(gofetch_bin, db, [python_bin, script, listing])
    assert result.returncode == 0, result.stderr
    assert "gofetch trace summary" in result.stderr

    opened = opened_files(db)
    assert set(files) <= opened
    # Only the job's own files, the listing and the script: nothing of Python's install.
    assert opened - set(files) <= {listing, script}
    per_file = bytes_read_per_file(db)
    assert {p: per_file.get(p, 0) for p in files} == files
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


def test_200_files_in_forked_workers(tmp_path, gofetch_bin, python_bin):
    files = make_files(str(tmp_path / "data"), 200, seed=1)
    script, listing = write_job(tmp_path, list(files), FORKED_READER)
    db = str(tmp_path / "traces.db")
    result = run_trace(gofetch_bin, db, [python_bin, script, listing])
    assert result.returncode == 0, result.stderr
    per_file = bytes_read_per_file(db)
    assert {p: per_file.get(p, 0) for p in files} == files
    reader_pids = query(
        db, "SELECT COUNT(DISTINCT pid) FROM traces WHERE access_type = 'read' AND file_path LIKE ?", str(tmp_path / "data") + "%"
    )[0][0]
    assert reader_pids == 4


def test_pil_images(tmp_path, gofetch_bin, python_bin):
    # Pillow is a dependency: scripts/setup installs it into .venv, whose interpreter runs the job.
    probe = subprocess.run([python_bin, "-c", "import PIL"], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, f"Pillow is not importable in {python_bin} (scripts/setup installs it into .venv):\n{probe.stderr}"
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    sizes = {}
    for i in range(100):
        path = folder / f"img_{i:03d}.jpg"
        Image.new("RGB", (64 + i, 48 + i), (i, 2 * i % 256, 3 * i % 256)).save(path, "JPEG")
        sizes[str(path)] = path.stat().st_size
    plain = make_files(str(tmp_path / "plain"), 100, seed=2)
    job = textwrap.dedent(
        """
        import sys
        from PIL import Image
        for line in open(sys.argv[1]):
            p = line.strip()
            if p.endswith(".jpg"):
                with Image.open(p) as im:
                    im.convert("RGB").load()
            else:
                with open(p, "rb") as f:
                    f.read()
        """
    )
    script, listing = write_job(tmp_path, list(sizes) + list(plain), job)
    db = str(tmp_path / "traces.db")
    result = run_trace(gofetch_bin, db, [python_bin, script, listing])
    assert result.returncode == 0, result.stderr
    assert set(sizes) | set(plain) <= opened_files(db)
    per_file = bytes_read_per_file(db)
    assert {p: per_file.get(p, 0) for p in plain} == plain
    # PIL may read a header twice; every byte of every image must have been read.
    for path, size in sizes.items():
        ranges = query(db, "SELECT offset, length FROM traces WHERE access_type = 'read' AND file_path = ? ORDER BY offset", path)
        covered = 0
        for offset, length in ranges:
            if offset <= covered:
                covered = max(covered, offset + length)
        assert covered >= size, (path, ranges)


def test_exit_code_and_stats(tmp_path, gofetch_bin, python_bin):
    files = make_files(str(tmp_path / "data"), 20, seed=3)
    job = READER + "\nsys.exit(3)\n"
    script, listing = write_job(tmp_path, list(files), job)
    db = str(tmp_path / "traces.db")
    result = run_trace(gofetch_bin, db, [python_bin, script, listing])
    assert result.returncode == 3

    stats = subprocess.run([gofetch_bin, "stats", "--db", db, "--json"], capture_output=True, text=True, timeout=60)
    assert stats.returncode == 0, stats.stderr
    summary = json.loads(stats.stdout)
    per_file = bytes_read_per_file(db)
    others = sum(n for p, n in per_file.items() if p not in files)
    assert set(per_file) - set(files) <= {script, listing}
    assert summary["bytesRead"] == sum(files.values()) + others
    assert summary["eventsByKind"]["open"] >= 20
    assert summary["runs"][0]["command"].endswith(listing)
    text = subprocess.run([gofetch_bin, "stats", "--db", db], capture_output=True, text=True, timeout=60).stdout
    assert "top files by bytes read" in text
    assert max(files, key=files.get) in text


def test_stats_over_a_time_window(tmp_path, gofetch_bin, python_bin):
    files = make_files(str(tmp_path / "data"), 10, seed=4)
    script, listing = write_job(tmp_path, list(files), READER)
    db = str(tmp_path / "traces.db")
    assert run_trace(gofetch_bin, db, [python_bin, script, listing]).returncode == 0

    def stats(*args):
        r = subprocess.run([gofetch_bin, "stats", "--db", db, "--json", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    whole = stats()
    first, last = whole["firstNanoseconds"], whole["lastNanoseconds"]
    assert whole["events"] > 20 and last > first
    # ISO 8601 and seconds since the Unix epoch name the same instants.
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(first // 10**9)) + "Z"
    assert stats("--since", iso)["events"] == whole["events"]
    assert stats("--since", f"{first / 1e9 - 1:.3f}", "--until", f"{last / 1e9 + 1:.3f}")["events"] == whole["events"]
    assert stats("--until", iso)["events"] == 0
    # The events before the middle and from it add up to all of them, and each epoch
    # counts the files that had a cold read.
    middle = f"{(first + last) / 2e9:.9f}"
    before, after = stats("--until", middle), stats("--since", middle)
    assert before["events"] + after["events"] == whole["events"]
    for epoch in whole["epochs"]:
        assert 0 <= epoch["coldFiles"] <= min(epoch["files"], epoch["coldReads"])

    bad = subprocess.run([gofetch_bin, "stats", "--db", db, "--since", "yesterday"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert "'yesterday' is not a time" in bad.stderr and "ISO 8601" in bad.stderr
    backwards = subprocess.run([gofetch_bin, "stats", "--db", db, "--since", "2000", "--until", "1000"],
                               capture_output=True, text=True, timeout=60)
    assert backwards.returncode != 0 and "--until must be later than --since" in backwards.stderr


def test_command_not_found(tmp_path, gofetch_bin):
    result = run_trace(gofetch_bin, str(tmp_path / "t.db"), ["/nonexistent/program"])
    assert result.returncode != 0
    assert "command not found" in result.stderr


def test_bad_config_is_rejected_with_key_value_and_allowed(tmp_path, gofetch_bin):
    config = tmp_path / "config.yaml"
    config.write_text("prefetcher:\n  confidence_threshold: 1.5\n")
    result = subprocess.run([gofetch_bin, "stats", "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "prefetcher.confidence_threshold" in result.stderr
    assert "1.5" in result.stderr and "allowed 0 to 1" in result.stderr
    config.write_text("prefetcher:\n  polcy_type: heap\n")
    result = subprocess.run([gofetch_bin, "trace", "--config", str(config), "--", "true"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "prefetcher.polcy_type" in result.stderr and "policy_type" in result.stderr


def test_root_help_lists_every_subcommand(gofetch_bin):
    result = subprocess.run([gofetch_bin, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("trace", "daemon", "stats"):
        assert f"  {command}" in result.stdout
