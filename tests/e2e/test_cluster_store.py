"""The cluster's store (`storage.url`, docs/store.md): daemons copy their committed
runs into one PostgreSQL database, and `stats`, `train` and `eval` read it.

A real PostgreSQL server from Debian's packages (scripts/postgres: a throwaway
cluster on a Unix socket, started for this module, stopped, killed and restarted by
the tests). Checked: several daemons write concurrently and every committed event
arrives once; readers filter by node and job; stopping or killing the server mid-run
loses nothing committed (the copier reconnects and resumes where the server says it
stopped); a daemon killed with SIGKILL leaves its runs in its own store, and the
next daemon on that store copies them; a model fitted on the cluster's runs is kept
there, and a daemon on a node without one starts from it."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
import threading
import time

import pytest

from conftest import ROOT, make_files, query
from test_daemon import listening, shim_env

POSTGRES = os.path.join(ROOT, "scripts", "postgres")

if os.geteuid() != 0:
    pytest.skip("scripts/postgres runs the server as the postgres user (needs root)", allow_module_level=True)


def postgres(command, folder):
    result = subprocess.run([POSTGRES, command, folder], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def server():
    folder = tempfile.mkdtemp(prefix="gfpg-", dir="/tmp")
    url = postgres("start", folder)
    try:
        yield folder, url
    finally:
        subprocess.run([POSTGRES, "stop", folder], capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def cluster(server):
    """The server, with a database of its own for this test."""
    folder, url = server
    name = f"t{os.getpid()}_{int(time.monotonic_ns() % 10**9)}"
    subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return folder, url.replace("/gofetch?", f"/{name}?")


def psql(url, sql):
    result = subprocess.run(["psql", url, "-AtF", "|", "-c", sql], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [tuple(line.split("|")) for line in result.stdout.splitlines() if line]


def config(tmp_path, name, node, job=""):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"storage:\n  node: {node}\n  job: '{job}'\n")
    return str(path)


def daemon_with_store(gofetch_bin, db, socket, url, *extra):
    return listening(subprocess.Popen(
        [gofetch_bin, "daemon", "--db", db, "--socket", socket, "--store-url", url, "--log-level", "info", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))


def trace(gofetch_bin, url, db, config_path, command):
    result = subprocess.run([gofetch_bin, "trace", "--config", config_path, "--db", db, "--store-url", url, "--json", "--", *command],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stderr[result.stderr.index("{"):])["summary"]


def test_daemons_write_one_store_concurrently_and_readers_filter_by_node_and_job(tmp_path, cluster, gofetch_bin, python_bin):
    _, url = cluster
    reader = "import sys\nfor _ in range(3):\n    for p in sys.argv[1:]:\n        open(p, 'rb').read()\n"
    nodes = {"node-a": ("train", 40), "node-b": ("train", 30), "node-c": ("eval", 20)}
    files = {node: make_files(str(tmp_path / node), count, seed=i) for i, (node, (_, count)) in enumerate(nodes.items())}
    summaries = {}

    def one(node):
        job = nodes[node][0]
        summaries[node] = trace(gofetch_bin, url, str(tmp_path / f"{node}.db"), config(tmp_path, node, node, job),
                                [python_bin, "-c", reader, *files[node]])

    threads = [threading.Thread(target=one, args=(node,)) for node in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(summaries) == set(nodes)
    for node, summary in summaries.items():
        cluster_figures = summary["cluster"]
        print(node, "committed", summary["committedEvents"], "cluster:", cluster_figures)
        assert cluster_figures["copiedEvents"] == summary["committedEvents"] > 0
        assert cluster_figures["pendingEvents"] == 0 and cluster_figures["runsCompleted"] == 1
        rows = psql(url, f"SELECT count(*), count(DISTINCT e.local_id) FROM events e JOIN runs r ON r.id = e.run_id WHERE r.node = '{node}'")
        assert rows == [(str(summary["committedEvents"]),) * 2]
        # The seed's view, with each event's node and job; every read of its files is there.
        reads = dict(psql(url, f"SELECT file_path, count(*) FROM traces WHERE node = '{node}' AND access_type = 'read' GROUP BY 1"))
        assert set(reads) == set(files[node])
    assert psql(url, "SELECT count(*) FROM runs WHERE summary IS NOT NULL AND ended_ns IS NOT NULL") == [("3",)]

    def stats(*filters):
        result = subprocess.run([gofetch_bin, "stats", "--store-url", url, "--json", *filters], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    whole, only_a, train_job = stats(), stats("--node", "node-a"), stats("--job", "train")
    assert whole["events"] == sum(s["committedEvents"] for s in summaries.values())
    assert whole["files"] == 90 and len(whole["runs"]) == 3
    assert only_a["events"] == summaries["node-a"]["committedEvents"] and only_a["files"] == 40
    assert train_job["events"] == summaries["node-a"]["committedEvents"] + summaries["node-b"]["committedEvents"]
    assert all(run["command"].startswith("[node-") for run in whole["runs"])

    # Readers that need the trace: a Markov model fitted on the cluster's runs, and the offline evaluation.
    model = tmp_path / "cluster.gfmk"
    result = subprocess.run([gofetch_bin, "train", "--store-url", url, "--job", "train", "--output", str(model)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "on 210 opens" in result.stdout and model.stat().st_size > 0
    assert psql(url, "SELECT name, length(data) FROM models") == [("markov", str(model.stat().st_size))]
    # A daemon on a new node, without a model file, starts from the cluster's.
    fresh = tmp_path / "new-node" / "models" / "markov.gfmk"
    new_config = tmp_path / "new-node.yaml"
    new_config.write_text(f"storage:\n  node: node-new\npredictor:\n  baseline:\n    model_path: {fresh}\n")
    daemon = daemon_with_store(gofetch_bin, str(tmp_path / "new-node.db"), str(tmp_path / "new.sock"), url, "--config", str(new_config))
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert fresh.read_bytes() == model.read_bytes()

    result = subprocess.run([gofetch_bin, "eval", "--store-url", url, "--node", "node-c", "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["events"] > 0

    # Filters without a cluster store are refused, naming what is wrong.
    result = subprocess.run([gofetch_bin, "stats", "--db", str(tmp_path / "node-a.db"), "--node", "node-a"], capture_output=True, text=True)
    assert result.returncode != 0 and "--node and --job filter the cluster's store" in result.stderr


JOB = textwrap.dedent(
    """
    import sys, time
    paths = sys.argv[2:]
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        for p in paths:
            with open(p, 'rb') as f:
                f.read()
        time.sleep(0.02)
    """
)


@pytest.mark.parametrize("outage", ["stop", "kill"])
def test_server_gone_mid_run_loses_nothing_committed(tmp_path, cluster, gofetch_bin, python_bin, outage):
    """The server stopped (or killed, as a crash) while the daemon traces, then started
    again: the job is not slowed by it, the copier reconnects, and the cluster's store
    holds every event the daemon committed, once."""
    folder, url = cluster
    files = make_files(str(tmp_path / "data"), 20, seed=9)
    db = str(tmp_path / "node.db")
    box = {}
    runner = threading.Thread(target=lambda: box.setdefault("summary", trace(
        gofetch_bin, url, db, config(tmp_path, "n", "node-x"), [python_bin, "-c", JOB, "5", *files])))
    runner.start()
    time.sleep(1.5)
    postgres(outage, folder)
    time.sleep(1.5)
    postgres("start", folder)
    runner.join(timeout=120)
    summary = box["summary"]
    figures = summary["cluster"]
    print(outage, "committed", summary["committedEvents"], "cluster:", figures)
    assert figures["failures"] >= 1 and figures["connections"] >= 2
    assert figures["pendingEvents"] == 0
    rows = psql(url, "SELECT count(*), count(DISTINCT local_id), min(local_id), max(local_id) FROM events")
    count, distinct, low, high = map(int, rows[0])
    assert count == distinct == summary["committedEvents"]
    local = query(db, "SELECT count(*), min(id), max(id) FROM events")[0]
    assert (count, low, high) == local


def test_daemon_killed_leaves_its_run_for_the_next_daemon(tmp_path, cluster, gofetch_bin, python_bin):
    """SIGKILL of a daemon whose server was down: its committed events stay in its own
    store, and the next daemon on that store copies them before anything else."""
    folder, url = cluster
    db, socket = str(tmp_path / "node.db"), str(tmp_path / "d.sock")
    postgres("stop", folder)
    try:
        daemon = daemon_with_store(gofetch_bin, db, socket, url)
        files = make_files(str(tmp_path / "data"), 30, seed=2)
        job = "import sys\nfor p in sys.argv[1:]:\n    open(p, 'rb').read()\n"
        subprocess.run([python_bin, "-c", job, *files], env=shim_env(gofetch_bin, socket), check=True, timeout=60)
        # Wait for the commit (the writer commits at most every 200 ms), then kill.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and query(db, "SELECT count(*) FROM events")[0][0] < 90:
            time.sleep(0.05)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=30)
    finally:
        postgres("start", folder)
    committed = query(db, "SELECT count(*) FROM events")[0][0]
    assert committed >= 90  # open, read(s), close of each of the 30 files
    daemon = daemon_with_store(gofetch_bin, db, socket, url)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if psql(url, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'events'") == [("1",)] and \
                int(psql(url, "SELECT count(*) FROM events")[0][0]) >= committed:
            break
        time.sleep(0.1)
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    runs = psql(url, "SELECT local_id, copied_event_id, ended_ns IS NULL FROM runs ORDER BY local_id")
    print("runs in the cluster's store:", runs, "committed by the killed daemon:", committed)
    assert runs[0][0] == "1" and runs[0][2] == "t"  # the killed run never ended
    assert int(psql(url, "SELECT count(*) FROM events e JOIN runs r ON r.id = e.run_id WHERE r.local_id = 1")[0][0]) == committed


def test_a_database_gofetch_did_not_make_is_refused_and_the_job_goes_on(tmp_path, cluster, gofetch_bin, python_bin):
    """A `runs` table gofetch did not make: the daemon copies nothing into it, says
    why, keeps every event in its own store, and the job runs as without the cluster."""
    _, url = cluster
    psql(url, "CREATE TABLE runs (id int)")
    files = make_files(str(tmp_path / "data"), 10, seed=3)
    reader = "import sys\nfor p in sys.argv[1:]:\n    open(p, 'rb').read()\n"
    summary = trace(gofetch_bin, url, str(tmp_path / "n.db"), config(tmp_path, "n", "node-y"), [python_bin, "-c", reader, *files])
    figures = summary["cluster"]
    print("cluster:", figures)
    assert figures["copiedEvents"] == 0 and figures["connections"] == 0 and figures["failures"] >= 1
    assert "has a table 'runs' that gofetch did not make" in figures["lastError"]
    assert figures["pendingEvents"] == summary["committedEvents"] > 0
    assert query(str(tmp_path / "n.db"), "SELECT count(*) FROM events")[0][0] == summary["committedEvents"]


def test_a_version_1_database_loses_its_foreign_keys_and_is_written(tmp_path, cluster, gofetch_bin, python_bin):
    """Version 1 of the cluster's schema had foreign keys from events and samples to
    runs (a trigger and a query per inserted row on the server): a daemon moves such a
    database to version 2, without them, and copies into it."""
    _, url = cluster
    reader = "import sys\nfor p in sys.argv[1:]:\n    open(p, 'rb').read()\n"
    first = make_files(str(tmp_path / "first"), 5, seed=4)
    trace(gofetch_bin, url, str(tmp_path / "a.db"), config(tmp_path, "a", "node-a"), [python_bin, "-c", reader, *first])
    # What version 1 made: the same tables, with the two foreign keys.
    psql(url, "ALTER TABLE events ADD CONSTRAINT events_run_id_fkey FOREIGN KEY (run_id) REFERENCES runs (id)")
    psql(url, "ALTER TABLE samples ADD CONSTRAINT samples_run_id_fkey FOREIGN KEY (run_id) REFERENCES runs (id)")
    psql(url, "UPDATE gofetch_meta SET value = '1' WHERE key = 'schema_version'")
    keys = "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid IN ('events'::regclass, 'samples'::regclass)"
    assert psql(url, keys) == [("2",)]
    second = make_files(str(tmp_path / "second"), 7, seed=5)
    summary = trace(gofetch_bin, url, str(tmp_path / "b.db"), config(tmp_path, "b", "node-b"), [python_bin, "-c", reader, *second])
    assert summary["cluster"]["failures"] == 0, summary["cluster"]
    assert psql(url, "SELECT value FROM gofetch_meta WHERE key = 'schema_version'") == [("2",)]
    assert psql(url, keys) == [("0",)]
    copied = psql(url, "SELECT count(*) FROM events e JOIN runs r ON r.id = e.run_id WHERE r.node = 'node-b'")
    assert int(copied[0][0]) == summary["committedEvents"] > 0
