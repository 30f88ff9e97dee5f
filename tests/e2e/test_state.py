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
