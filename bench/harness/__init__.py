"""The gofetch benchmark harness (run it with bench/run; bench/README.md explains it).

Standard library only; Pillow is used when installed (JPEG data and decoding).
Modules: datasets (deterministic data under bench/data), storage (slow storage:
FUSE slowfs or a blkio-throttled loop mount), cgroups (v1 memory and blkio),
cleanup (undo everything on exit and on signals), pagecache (drop, residency,
pre-warm), loader (the training job), warmup (the naive warm-up), modes (one run
of one mode), scenarios (S1-S4), report (results.json, table.md, goals).
"""

import os

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(BENCH_DIR)
