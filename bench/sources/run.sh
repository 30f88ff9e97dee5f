#!/usr/bin/env bash
# Overhead of each trace source on the job: the same job (3 passes over 5,000 cached
# files of 8 KiB) run bare and under `gofetch trace --backend preload|fanotify|ebpf`,
# RUNS times each, interleaved; prints the median run time of each. Needs root for
# the kernel backends and a release build (CONFIG=release scripts/build).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-11}
work=${GOFETCH_SOURCES_DIR:-/var/tmp/gofetch-sources}
bin=$(swift build -c release --show-bin-path)/gofetch
python=$(readlink -f .venv/bin/python)
mkdir -p "$work/data"
"$python" -c "
import os, sys
for i in range(5000):
    path = os.path.join(sys.argv[1], f'f{i:04d}.bin')
    if not os.path.exists(path):
        open(path, 'wb').write(os.urandom(8192))
" "$work/data"
results=$(mktemp)
for _ in $(seq "$runs"); do
    bare=$("$python" bench/sources/job.py "$work/data" 2>&1)
    row="$bare"
    for backend in preload fanotify ebpf; do
        output=$("$bin" trace --backend "$backend" --mark "$work" --db "$work/t.db" -- "$python" bench/sources/job.py "$work/data" 2>&1 >/dev/null)
        seconds=${output%%$'\n'*}  # the job's line comes before gofetch's summary
        rm -f "$work"/t.db*
        row="$row $seconds"
    done
    echo "$row" >> "$results"
done
"$python" - "$results" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
for i, name in enumerate(["none", "preload", "fanotify", "ebpf"]):
    values = [float(r[i]) for r in rows if len(r) > i and r[i].replace(".", "", 1).isdigit()]
    print(f"{name:9s} median {statistics.median(values):.3f} s over {len(values)} runs" if values else f"{name:9s} failed: {rows[0][i:]}")
PY
rm -f "$results"
