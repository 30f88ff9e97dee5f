"""The gofetch benchmark harness (run it with bench/run; bench/README.md explains it).

Standard library only; Pillow is used when installed (JPEG data and decoding).
Modules: datasets (deterministic data under bench/data), storage (slow storage:
FUSE slowfs or a blkio-throttled loop mount), cgroups (v1 memory and blkio),
cleanup (undo everything on exit and on signals), pagecache (drop, residency,
pre-warm), loader (the built-in training job), torch_job (the real-PyTorch job),
warmup (the naive warm-up), modes (one run of one mode), scenarios (S1, S1-cap,
S2, S3, S3-cap, S4, S5), report (results.json, table.md, goals).
"""

import os

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(BENCH_DIR)
