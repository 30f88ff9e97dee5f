"""A socket squatter for the client-trust tests: another user (`nobody`) who made
the socket's folder first, listens where a client looks for its daemon, and
counts what it receives. A client must not send it anything.

    with Squatter() as squat:
        ... run a client with GOFETCH_SOCKET=squat.path ...
    squat.received -> {"connections": N, "bytes": N}

Needs root (to run the listener as `nobody`).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

LISTEN = r"""
import json, select, socket, sys
path, ready = sys.argv[1], sys.argv[2]
server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
server.bind(path)
server.listen(64)
open(ready, "w").close()
connections, received, peers = 0, 0, []
while True:  # until the test closes our standard input
    readable, _, _ = select.select([server, sys.stdin] + peers, [], [], 120)
    if not readable or sys.stdin in readable:
        break
    for s in readable:
        if s is server:
            peers.append(server.accept()[0])
            connections += 1
            continue
        data = s.recv(1 << 20)
        received += len(data)
        if not data:
            peers.remove(s)
            s.close()
print(json.dumps({"connections": connections, "bytes": received}), flush=True)
"""


class Squatter:
    def __init__(self, user: str = "nobody"):
        self.user = pwd.getpwnam(user)
        self.folder = tempfile.mkdtemp(prefix="gofetch-squat-")
        self.path = os.path.join(self.folder, "gofetch.sock")
        self.received = None
        self._process = None

    def __enter__(self) -> "Squatter":
        os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        ready = os.path.join(self.folder, "ready")
        uid, gid = self.user.pw_uid, self.user.pw_gid

        def become():
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

        # An interpreter `nobody` may run (a venv or pyenv under /root is not one).
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
        self._process = subprocess.Popen([python, "-c", LISTEN, self.path, ready], preexec_fn=become,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while not os.path.exists(ready):
            assert self._process.poll() is None and time.monotonic() < deadline, "the squatter did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        out, _ = self._process.communicate(input="", timeout=30)
        self.received = json.loads(out.strip().splitlines()[-1])
        shutil.rmtree(self.folder, ignore_errors=True)
