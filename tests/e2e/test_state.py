"""State lands in a state folder, never in the folder the user is in: the trace store
and the metrics CSV under $XDG_STATE_HOME/gofetch (else ~/.local/state/gofetch),
created 0700; --db and storage.db_path still choose."""
import os
import stat
import subprocess

from conftest import make_files


def run_in(folder, gofetch_bin, python_bin, data, env, *extra):
    job = [python_bin, "-c", "import sys, os\nfor d, _, ns in os.walk(sys.argv[1]):\n    for n in ns: open(os.path.join(d, n), 'rb').read()", str(data)]
    result = subprocess.run([gofetch_bin, "run", *extra, "--", *job], capture_output=True, text=True, cwd=folder, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_run_keeps_its_state_in_the_state_folder(tmp_path, gofetch_bin, python_bin):
    data = tmp_path / "data"
    make_files(str(data), 4, seed=2, max_size=4_000)
    work = tmp_path / "work"
    work.mkdir()
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOFETCH_", "XDG_"))}
    env["HOME"] = str(home)

    text = run_in(work, gofetch_bin, python_bin, data, env)
    state = home / ".local" / "state" / "gofetch"
    assert (state / "traces.db").is_file()
    assert any(name.startswith("metrics_") and name.endswith(".csv") for name in os.listdir(state))
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert f"{state}/traces.db" in text  # the summary says where
    assert os.listdir(work) == []  # nothing in the folder the user is in

    env["XDG_STATE_HOME"] = str(tmp_path / "xdg")
    run_in(work, gofetch_bin, python_bin, data, env)
    assert (tmp_path / "xdg" / "gofetch" / "traces.db").is_file()

    run_in(work, gofetch_bin, python_bin, data, env, "--db", str(tmp_path / "chosen.db"))
    assert (tmp_path / "chosen.db").is_file()
    config = tmp_path / "c.yaml"
    config.write_text(f"storage:\n  db_path: {tmp_path / 'configured.db'}\n")
    run_in(work, gofetch_bin, python_bin, data, env, "--config", str(config))
    assert (tmp_path / "configured.db").is_file()
    assert os.listdir(work) == []


def test_the_store_and_its_journals_are_the_owner_s_alone(tmp_path, gofetch_bin, python_bin):
    """Every user's paths, uids and timings are in the store: 0600 for the database,
    its -wal and -shm (while a writer has them), and the lock, whoever made it first
    (the daemon, or the Python hook), and an older 0644 store is made so too."""
    import sqlite3
    import sys
    from conftest import ROOT

    data = tmp_path / "data"
    paths = make_files(str(data), 3, seed=3, max_size=4_000)
    db = tmp_path / "swift.db"
    # A job that looks at the store's files while the daemon holds them open.
    probe = ("import os, sys, time\n"
             "for p in sys.argv[2:]: open(p, 'rb').read()\n"
             "time.sleep(0.3)\n"
             "print({s: oct(os.stat(sys.argv[1] + s).st_mode & 0o777) for s in ('', '-wal', '-shm', '.lock') if os.path.exists(sys.argv[1] + s)})")
    result = subprocess.run([gofetch_bin, "trace", "--db", str(db), "--", python_bin, "-c", probe, str(db), *paths],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = eval(result.stdout.strip().splitlines()[-1])
    assert seen == {"": "0o600", "-wal": "0o600", "-shm": "0o600", ".lock": "0o600"}, seen

    # The Python hook's writer makes its store private too.
    sys.path.insert(0, os.path.join(ROOT, "python"))
    from gofetch import _store

    from gofetch._runtime import Counters

    hook_db = tmp_path / "hook.db"
    writer = _store.StoreWriter(str(hook_db), Counters())
    try:
        assert writer.ready()
        modes = {s: stat.S_IMODE(os.stat(str(hook_db) + s).st_mode) for s in ("", "-wal", "-shm") if os.path.exists(str(hook_db) + s)}
        assert set(modes.values()) == {0o600} and "" in modes, modes
    finally:
        writer.close()

    # An older store, world-readable, is made private when it is next written.
    old = tmp_path / "old.db"
    sqlite3.connect(old).execute("CREATE TABLE t (x)").connection.close()
    os.chmod(old, 0o644)
    subprocess.run([gofetch_bin, "trace", "--db", str(old), "--", "true"], check=True, capture_output=True, timeout=60)
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o600
