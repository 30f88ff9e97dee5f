"""scripts/install: a staged install (DESTDIR) runs `run`, `trace` and `daemon` from
another folder, through a symlink on PATH, with its own shim and Python client."""
import json
import os
import signal
import subprocess
import time

from conftest import ROOT, make_files, opened_files


def test_a_staged_install_runs_from_any_folder(tmp_path, python_bin):
    stage = tmp_path / "stage"
    # The debug build the tests already have (CONFIG=release links the Swift runtime in, for machines without it).
    result = subprocess.run([os.path.join(ROOT, "scripts", "install")], capture_output=True, text=True, timeout=900,
                            env={**os.environ, "DESTDIR": str(stage), "PREFIX": "/opt/gf", "CONFIG": "debug"})
    assert result.returncode == 0, result.stderr + result.stdout
    root = stage / "opt" / "gf"
    for relative in ("bin/gofetch", "lib/gofetch/libgofetch_preload.so", "lib/gofetch/python/gofetch/__init__.py",
                     "lib/gofetch/python/inject/sitecustomize.py", "lib/systemd/system/gofetch.service"):
        assert (root / relative).is_file(), relative
    unit = (root / "lib/systemd/system/gofetch.service").read_text()
    assert "ExecStart=/opt/gf/bin/gofetch daemon" in unit and "@PREFIX@" not in unit
    assert "StateDirectory=gofetch" in unit and "RuntimeDirectory=gofetch" in unit

    # On PATH through a symlink, started from a folder that is not the repository.
    path_dir = tmp_path / "path"
    path_dir.mkdir()
    os.symlink(root / "bin" / "gofetch", path_dir / "gofetch")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOFETCH_")}
    env["PATH"] = f"{path_dir}:{env['PATH']}"
    data = tmp_path / "data"
    files = make_files(str(data), 6, seed=1, max_size=5_000)
    job = [python_bin, "-c", "import sys, os\nfor d, _, ns in os.walk(sys.argv[1]):\n    for n in ns: open(os.path.join(d, n), 'rb').read()", str(data)]

    run = subprocess.run(["gofetch", "run", "--json", "--db", str(tmp_path / "t.db"), "--", *job],
                         capture_output=True, text=True, cwd=elsewhere, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    text = "\n" + run.stderr
    report = json.loads(text[text.rindex("\n{\n") + 1:])
    assert report["summary"]["opens"] >= len(files)  # the installed shim traced the job
    assert report["pythonHook"]["started"] == 1  # the installed client started in it
    assert report["pythonHook"]["enabled"]

    trace = subprocess.run(["gofetch", "trace", "--db", str(tmp_path / "t.db"), "--", *job],
                           capture_output=True, text=True, cwd=elsewhere, env=env, timeout=120)
    assert trace.returncode == 0, trace.stderr
    assert "files recorded" in trace.stderr

    socket = tmp_path / "d.sock"
    daemon = subprocess.Popen(["gofetch", "daemon", "--db", str(tmp_path / "d.db"), "--socket", str(socket)],
                              cwd=elsewhere, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert socket.exists(), "the installed daemon did not listen"
        exports = subprocess.run(["gofetch", "env", "--socket", str(socket)], capture_output=True, text=True,
                                 cwd=elsewhere, env=env, timeout=30).stdout
        assert f"LD_PRELOAD='{root}/lib/gofetch/libgofetch_preload.so'" in exports
        assert f"PYTHONPATH='{root}/lib/gofetch/python/inject" in exports
        attached = subprocess.run(["sh", "-c", f'eval "$(gofetch env --socket {socket})"; exec "$@"', "sh", *job],
                                  cwd=elsewhere, env=env, timeout=60)
        assert attached.returncode == 0
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=20)
    assert daemon.returncode == 0, stderr
    # The job attached through `gofetch env` was recorded by the installed daemon.
    assert set(files) <= opened_files(str(tmp_path / "d.db"))
