"""A job that turns the client on with the preload shim present (no store: the shim
reports the accesses, the client only announces), sits idle, then sets an epoch.

    python idle_job.py '{"idle_s": 1.5}'

Prints one JSON line: the sender's passes during the idle stretch, the CPU the
process used in it, and the monotonic time (ns) right before set_epoch.
"""
import json
import sys
import time

config = json.loads(sys.argv[1])

import gofetch  # noqa: E402
from gofetch import _runtime  # noqa: E402

gofetch.enable_hook(None)
rt = _runtime.current_runtime()
time.sleep(0.2)  # connected, the first passes done
ticks, cpu = rt.ticks, time.process_time()
time.sleep(config["idle_s"])
ticks, cpu = rt.ticks - ticks, time.process_time() - cpu
called_ns = time.monotonic_ns()
gofetch.set_epoch(3)
time.sleep(0.5)
print(json.dumps({"idle_ticks": ticks, "idle_cpu_s": cpu, "epoch_called_ns": called_ns,
                  "stats": gofetch.stats()}))
