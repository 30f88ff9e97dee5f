"""`gofetch daemon`: clients attach with LD_PRELOAD; SIGTERM flushes; SIGKILL loses no committed batch."""
import json
import os
import shutil
import signal
import sys
import sqlite3
import subprocess
import textwrap
import time

from conftest import ROOT, make_files, query

BURST = textwrap.dedent(
    """
    import os, sys
    fd = os.open(sys.argv[1], os.O_RDONLY)
    for i in range(int(sys.argv[2])):
        os.pread(fd, 64, (i * 64) % 65536)
    os.close(fd)
    """
)


def shim_env(gofetch_bin, socket):
    env = dict(os.environ)
    env["LD_PRELOAD"] = os.path.join(os.path.dirname(gofetch_bin), "libgofetch_preload.so")
    env["GOFETCH_SOCKET"] = socket
    return env


def listening(daemon):
    """The daemon, once it logs that it listens (its signal handlers are installed by then)."""
    for line in daemon.stderr:
        if "listening" in line:
            return daemon
    raise AssertionError(f"daemon exited with {daemon.wait()} before listening")


def start_daemon(gofetch_bin, db, socket):
    return listening(subprocess.Popen(
        [gofetch_bin, "daemon", "--db", db, "--socket", socket, "--report-commits", "--log-level", "info"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ))


def start_shared_daemon(tmp_path, gofetch_bin, config_text):
    """A daemon with `config_text` whose socket other users can reach (tmp_path's
    parents are 0700): returns the daemon, the socket's folder, the store and the socket."""
    import tempfile
    config = tmp_path / "config.yaml"
    config.write_text(config_text)
    reachable = tempfile.mkdtemp(prefix="gofetch-test-")
    os.chmod(reachable, 0o755)
    db, path = str(tmp_path / "traces.db"), os.path.join(reachable, "d.sock")
    daemon = listening(subprocess.Popen(
        [gofetch_bin, "daemon", "--config", str(config), "--db", db, "--socket", path, "--log-level", "info"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return daemon, reachable, db, path


def test_sigterm_commits_everything(tmp_path, gofetch_bin, python_bin):
    db, socket = str(tmp_path / "traces.db"), str(tmp_path / "d.sock")
    daemon = start_daemon(gofetch_bin, db, socket)
    files = make_files(str(tmp_path / "data"), 50, seed=4)
    listing = "\n".join(files)
    job = "import sys\nfor p in sys.argv[1].split():\n    open(p, 'rb').read()\n"
    subprocess.run([python_bin, "-c", job, listing.replace("\n", " ")], env=shim_env(gofetch_bin, socket), check=True, timeout=60)
    daemon.send_signal(signal.SIGTERM)
    out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "gofetch daemon summary" in err
    per_file = dict(query(db, "SELECT file_path, SUM(length) FROM traces WHERE access_type = 'read' GROUP BY file_path"))
    assert {p: per_file.get(p, 0) for p in files} == files
    assert query(db, "SELECT COUNT(*) FROM runs WHERE ended_ns IS NOT NULL") == [(1,)]


def test_sigkill_during_write_burst_loses_no_committed_batch(tmp_path, gofetch_bin, python_bin):
    db, socket = str(tmp_path / "traces.db"), str(tmp_path / "d.sock")
    target = tmp_path / "burst.bin"
    target.write_bytes(os.urandom(65536))
    daemon = start_daemon(gofetch_bin, db, socket)
    burst = subprocess.Popen(
        [python_bin, "-c", BURST, str(target), "3000000"], env=shim_env(gofetch_bin, socket),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    reported = 0
    deadline = time.monotonic() + 60
    while reported < 100_000:
        line = daemon.stdout.readline()
        assert line, "daemon ended before committing: " + daemon.stderr.read()
        reported = int(line.split("events=")[1])
        assert time.monotonic() < deadline, f"only {reported} events committed in 60 s"
    daemon.kill()  # SIGKILL, mid-burst
    rest, _ = daemon.communicate(timeout=30)
    for line in rest.splitlines():  # commits reported before the kill landed
        reported = max(reported, int(line.split("events=")[1]))
    assert daemon.returncode == -signal.SIGKILL
    # The job must not notice the daemon's death.
    assert burst.wait(timeout=120) == 0, burst.stderr.read()

    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    stored = query(db, "SELECT COUNT(*) FROM events")[0][0]
    assert stored >= reported, f"daemon reported {reported} committed, store holds {stored}"

    # A restarted daemon opens the same store and appends to it.
    assert os.path.exists(socket)  # left behind by the killed daemon; the new one must replace it
    daemon = start_daemon(gofetch_bin, db, socket)
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    assert query(db, "SELECT COUNT(*) FROM runs") == [(2,)]


def test_a_socket_folder_someone_else_made_first_is_refused(tmp_path, gofetch_bin):
    """The socket's folder must be the daemon's own and closed to others: in /tmp, another
    user could otherwise make it first and put a socket of theirs where clients look.
    The daemon names the folder and what it must be, and does not start."""
    if os.geteuid() != 0:
        import pytest
        pytest.skip("making a folder another user owns needs root")
    squatted = tmp_path / "squatted"
    squatted.mkdir(mode=0o700)
    os.chown(squatted, 65534, 65534)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    for folder in (squatted, shared):
        result = subprocess.run([gofetch_bin, "daemon", "--db", str(tmp_path / "t.db"), "--socket", str(folder / "gofetch.sock")],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode != 0
        assert f"{folder} must be a directory owned by uid 0 and not writable by group or others" in result.stderr
        assert not (folder / "gofetch.sock").exists()


def test_roots_default_socket_is_the_system_daemons_under_run(gofetch_bin):
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    result = subprocess.run([gofetch_bin, "env"], capture_output=True, text=True, env=env, check=True)
    expected = "/run/gofetch/gofetch.sock" if os.geteuid() == 0 else f"/tmp/gofetch-{os.getuid()}/gofetch.sock"
    assert f"export GOFETCH_SOCKET='{expected}'" in result.stdout.splitlines()


def announce(socket_path, paths):
    """Sends one lookahead announcement of `paths` to the daemon, as a client would."""
    import socket as sockets
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
    from gofetch import wire

    client = sockets.socket(sockets.AF_UNIX, sockets.SOCK_SEQPACKET)
    client.connect(socket_path)
    records = wire.lookahead_records([(p, -1, 0) for p in paths], epoch=0)
    for message in wire.split_messages(records, pid=os.getpid()):
        client.send(message)
    return client


def test_sigterm_ends_the_daemon_while_the_storage_never_answers(tmp_path, gofetch_bin, python_bin):
    """A FUSE server that never answers holds every prefetch thread in read(); SIGTERM still
    ends the daemon within 2 s, with every event it received committed."""
    import sys
    import pytest
    if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
        pytest.skip("needs the FUSE emulator: /dev/fuse and root")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench", "emulator"))
    from mount import SlowMount

    source = tmp_path / "source"
    make_files(str(source), 40, seed=5, min_size=4096, max_size=8192)
    db, socket = str(tmp_path / "traces.db"), str(tmp_path / "d.sock")
    with SlowMount(source, latency_ms=120_000, keep_cache=True) as mount:
        daemon = start_daemon(gofetch_bin, db, socket)
        files = make_files(str(tmp_path / "data"), 20, seed=6)
        job = "import sys\nfor p in sys.argv[1].split():\n    open(p, 'rb').read()\n"
        subprocess.run([python_bin, "-c", job, " ".join(files)], env=shim_env(gofetch_bin, socket), check=True, timeout=60)
        stuck = sorted(os.path.join(d, name) for d, _, names in os.walk(mount.path) for name in names)
        client = announce(socket, stuck)
        time.sleep(2)  # the executor's threads take the announced files and wait on the mount
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        try:
            out, err = daemon.communicate(timeout=30)
        finally:
            daemon.kill()
        took = time.monotonic() - started
        client.close()
    assert daemon.returncode == 0, err
    assert "prefetch threads still waiting on storage were left behind at stop" in err
    assert took <= 2.0, f"SIGTERM took {took:.1f} s"
    per_file = dict(query(db, "SELECT file_path, SUM(length) FROM traces WHERE access_type = 'read' GROUP BY file_path"))
    assert {p: per_file.get(p, 0) for p in files} == files
    # The announced files no thread reached are counted as never sent or dropped unread
    # (the queue also holds other predictors' guesses about the job's files: at least).
    prefetch = json.loads(query(db, "SELECT summary FROM run_results")[-1][0])["prefetch"]
    print("at the end:", {k: prefetch[k] for k in ("announced", "released", "leftQueued", "droppedAtEnd")})
    assert prefetch["leftQueued"] + prefetch["droppedAtEnd"] > 0
    assert prefetch["announced"] == len(stuck)
    assert prefetch["released"] + prefetch["leftQueued"] >= len(stuck)


def test_one_user_holds_at_most_half_the_connections(tmp_path, gofetch_bin):
    """One user's clients cannot take every connection: with max_clients 4, root's third
    connection is refused and another user's still gets in."""
    import socket as sockets
    import pytest
    if os.geteuid() != 0:
        pytest.skip("connecting as another user (nobody) needs root")
    daemon, reachable, db, socket = start_shared_daemon(tmp_path, gofetch_bin, "daemon:\n  max_clients: 4\n  socket_mode: '0666'\n")
    try:
        def refused(client):
            client.settimeout(2)
            try:
                return client.recv(1) == b""  # closed by the daemon
            except (TimeoutError, sockets.timeout):
                return False  # still open: accepted

        clients = []
        for _ in range(3):
            client = sockets.socket(sockets.AF_UNIX, sockets.SOCK_SEQPACKET)
            client.connect(socket)
            clients.append(client)
        as_nobody = subprocess.run(
            ["/usr/bin/python3", "-c", "import socket, sys\ns = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
             "s.connect(sys.argv[1]); s.settimeout(2)\ntry:\n    print('refused' if s.recv(1) == b'' else 'data')\n"
             "except TimeoutError:\n    print('accepted')\n", socket],
            user=65534, group=65534, capture_output=True, text=True, timeout=30)
        assert [refused(c) for c in clients] == [False, False, True]
        assert as_nobody.stdout.strip() == "accepted", as_nobody.stderr
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
        os.rmdir(reachable)
    assert "its user holds half the connections" in err


# Opens of ever new paths, as fast as the socket takes them: the costliest flood
# (each is catalogued, stored and predicted on). The template message's paths hold
# "00000000", replaced by a counter in each message.
FLOODER = """
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.setblocking(False)
template = bytes.fromhex(sys.argv[3])
sent = 0
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        s.send(template.replace(b"00000000", b"%08d" % sent))
        sent += 1
    except BlockingIOError:
        time.sleep(0.0005)
print(sent)
"""


def flood_template(folder):
    sys.path.insert(0, os.path.join(ROOT, "python"))
    from gofetch import wire
    records = [wire.Record(kind=wire.Kind.OPEN, fd=3 + k, dev=1, ino=1000 + k, length=4096,
                           path=f"{folder}/flood/00000000/{k}.bin") for k in range(8)]
    return wire.encode_message(records, pid=1).hex()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_flooding_user_gets_its_share_of_the_receive_thread_and_no_more(tmp_path, gofetch_bin):
    """A user sending opens of new paths as fast as it can: alone, the daemon reads them
    all; once another user is connected, the flooder's sockets are read only within its
    share of a core (daemon.user_cpu_share 0.1), and the daemon's CPU falls with it."""
    import pytest
    if os.geteuid() != 0:
        pytest.skip("flooding as another user (nobody) needs root")
    daemon, reachable, db, path = start_shared_daemon(tmp_path, gofetch_bin, "daemon:\n  socket_mode: '0666'\n  user_cpu_share: 0.1\n")
    import socket as sockets
    try:
        template = flood_template(reachable)

        def flood(seconds):
            before = cpu_seconds(daemon.pid)
            out = subprocess.run(["/usr/bin/python3", "-c", FLOODER, path, str(seconds), template], user=65534, group=65534,
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            return (cpu_seconds(daemon.pid) - before) / seconds, int(out.stdout)

        def settle():
            """Until the daemon has worked through what the flood left queued."""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                before = cpu_seconds(daemon.pid)
                time.sleep(0.5)
                if cpu_seconds(daemon.pid) - before < 0.05:
                    return
            raise AssertionError("the daemon stayed busy a minute after the flood")

        alone, sent_alone = flood(1.5)
        settle()
        other = sockets.socket(sockets.AF_UNIX, sockets.SOCK_SEQPACKET)
        other.connect(path)  # root, a second user, who opens 150 files while the flood goes on
        time.sleep(0.2)
        import threading
        sys.path.insert(0, os.path.join(ROOT, "python"))
        from gofetch import wire

        def victim():
            for n in range(150):
                other.send(wire.encode_message([wire.Record(kind=wire.Kind.OPEN, fd=3, dev=2, ino=n + 1, length=100,
                                                            path=f"{reachable}/victim/{n}.bin")], pid=os.getpid()))
                time.sleep(0.01)

        opener = threading.Thread(target=victim)
        opener.start()
        shared, sent_shared = flood(1.5)
        opener.join()
        other.close()
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
        shutil.rmtree(reachable, ignore_errors=True)
    print(f"daemon CPU per second of flood: alone {alone:.2f} ({sent_alone} messages sent), "
          f"beside another user {shared:.2f} ({sent_shared} sent)")
    assert daemon.returncode == 0, err
    held = [line for line in err.splitlines() if "held back" in line]
    assert held and int(held[0].split()[2]) > 0, err
    assert shared <= 0.5 * alone
    # The other user was never held back: every one of its opens is in the store.
    victims = {row[0] for row in query(db, "SELECT path FROM files WHERE path LIKE ?", f"{reachable}/victim/%")}
    assert len(victims) == 150


HOLDER = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
for message in sys.argv[2:]:
    s.send(bytes.fromhex(message))
print("sent", flush=True)
sys.stdin.read()  # keeps the connection until the test is done
"""


def test_a_storage_that_never_answers_holds_only_its_users_prefetches(tmp_path, gofetch_bin):
    """A user announces files on a FUSE mount that never answers (it could run such a
    server itself): the prefetch threads that take them wait forever. Another user's
    announced files are still warmed, since no user holds more than three quarters of
    the threads and a stuck read stops counting against the window."""
    import pytest
    if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
        pytest.skip("needs the FUSE emulator (/dev/fuse, root) and a second user")
    sys.path.insert(0, os.path.join(ROOT, "bench", "emulator"))
    sys.path.insert(0, os.path.join(ROOT, "python"))
    from mount import SlowMount
    from gofetch import wire
    from test_run import evict, resident_pages

    source = tmp_path / "source"
    make_files(str(source), 60, seed=8, min_size=4096, max_size=8192)
    victim_files = sorted(make_files(str(tmp_path / "data"), 30, seed=9, min_size=20_000, max_size=40_000))
    evict(victim_files)
    holder = daemon = client = None
    reachable = None
    try:
        with SlowMount(source, latency_ms=120_000, keep_cache=True) as mount:
            daemon, reachable, db, path = start_shared_daemon(tmp_path, gofetch_bin, "daemon:\n  socket_mode: '0666'\n")
            stuck = sorted(os.path.join(d, name) for d, _, names in os.walk(mount.path) for name in names)
            messages = [m.hex() for m in wire.split_messages(wire.lookahead_records([(p, -1, 0) for p in stuck], epoch=0), pid=1)]
            holder = subprocess.Popen(["/usr/bin/python3", "-c", HOLDER, path, *messages], user=65534, group=65534,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert holder.stdout.readline().strip() == "sent"
            time.sleep(3)  # the threads take the hung files, and their reads pass two seconds
            client = announce(path, victim_files)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                warm = sum(1 for p in victim_files if resident_pages(p) > 0)
                if warm == len(victim_files):
                    break
                time.sleep(0.2)
            daemon.send_signal(signal.SIGTERM)
            _, err = daemon.communicate(timeout=30)
    finally:
        for process in (holder, daemon):
            if process and process.poll() is None:
                process.kill()
                process.wait()
        if client:
            client.close()
        if reachable:
            shutil.rmtree(reachable, ignore_errors=True)
    print(f"the other user's files warm: {warm} of {len(victim_files)}")
    assert "prefetch threads still waiting on storage were left behind at stop" in err
    assert warm == len(victim_files)
