#!/usr/bin/env bash
# Cost of the preload shim on a hot pread() loop.
#
#   bench/shim/run.sh            # 1,000,000 preads x 3 rounds per mode
#   ROUNDS=5 CALLS=2000000 bench/shim/run.sh
#   GOFETCH_BENCH_LISTENER='.build/release/gofetch daemon --socket {socket}' bench/shim/run.sh
#
# Modes: none (no shim), no-daemon (shim, nothing listening), draining (shim and a
# listener reading everything). The listener is GOFETCH_BENCH_LISTENER, a command
# in which {socket} is replaced by the socket path (without {socket}, "--socket
# PATH" is appended), or bench/shim/drain.py. Output: median ns per call, and the
# ns the shim adds over "none".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$root/bench/out"
data="$root/bench/data"
calls=${CALLS:-1000000}
chunks=${CHUNKS:-20}
rounds=${ROUNDS:-3}
# The listener's interpreter: scripts/setup's .venv (a system python3 is not among what it installs).
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || { echo "run.sh: no interpreter at $python: run scripts/setup, or set PYTHON" >&2; exit 1; }

mkdir -p "$out" "$data"
make -s -C "$root/preload"
shim="$root/preload/build/libgofetch_preload.so"
cc -O2 -Wall -Wextra -o "$out/pread_bench" "$here/pread_bench.c"

file="$data/pread_64m.bin"
if [ ! -f "$file" ] || [ "$(stat -c %s "$file")" -ne $((64 << 20)) ]; then
    head -c $((64 << 20)) /dev/urandom > "$file"
fi
cat "$file" > /dev/null    # into the page cache

tmp=$(mktemp -d)
listener_pid=
cleanup() {
    if [ -n "$listener_pid" ]; then kill "$listener_pid" 2>/dev/null || true; wait "$listener_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

sock="$tmp/gofetch.sock"
listener_cmd=${GOFETCH_BENCH_LISTENER:-"$python $here/drain.py --socket {socket}"}
case "$listener_cmd" in
    *"{socket}"*) listener_cmd=${listener_cmd//\{socket\}/$sock} ;;
    *) listener_cmd="$listener_cmd --socket $sock" ;;
esac
# The listener's own output goes to a file; drain.py prints its totals there on SIGTERM.
$listener_cmd 2> "$tmp/listener.log" > /dev/null &
listener_pid=$!
for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "listener did not create $sock:" >&2; cat "$tmp/listener.log" >&2; exit 1; }

bench() {   # mode -> median ns/call of one run
    local line
    case "$1" in
        none)      line=$(env -u LD_PRELOAD "$out/pread_bench" "$file" "$calls" "$chunks") ;;
        no-daemon) line=$(LD_PRELOAD="$shim" GOFETCH_SOCKET="$tmp/absent.sock" "$out/pread_bench" "$file" "$calls" "$chunks") ;;
        draining)  line=$(LD_PRELOAD="$shim" GOFETCH_SOCKET="$sock" "$out/pread_bench" "$file" "$calls" "$chunks") ;;
    esac
    echo "$1 $line" >> "$tmp/runs.log"
    sed -E 's/.*median_ns=([0-9.]+).*/\1/' <<< "$line"
}

modes=(none no-daemon draining)
declare -A samples
for ((r = 0; r < rounds; r++)); do    # interleave modes so drift in machine load hits all alike
    for m in "${modes[@]}"; do samples[$m]+="$(bench "$m") "; done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "pread(4096) on a cached 64 MiB file: $calls calls in $chunks chunks, median over chunks, median of $rounds rounds"
printf '%-10s %16s %18s\n' mode "median ns/call" "added ns vs none"
base=$(median <<< "${samples[none]}")
for m in "${modes[@]}"; do
    v=$(median <<< "${samples[$m]}")
    printf '%-10s %16.1f %18.1f\n' "$m" "$v" "$(awk -v a="$v" -v b="$base" 'BEGIN {print a - b}')"
done
kill "$listener_pid" 2>/dev/null || true
wait "$listener_pid" 2>/dev/null || true
listener_pid=
echo "listener: $(tail -n 1 "$tmp/listener.log" 2>/dev/null)"
if [ -n "${VERBOSE:-}" ]; then cat "$tmp/runs.log"; fi
