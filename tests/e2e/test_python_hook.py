"""`gofetch run` with no change to the job: the Python client is loaded into every
interpreter and announces each DataLoader epoch (issue: the headline command), and
a job no announcement helps gets its data set warmed from the first epoch."""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import ROOT, make_files, opened_files
from test_accounting import evict, needs_fuse
from test_run import resident_pages

FAKE_TORCH = os.path.join(ROOT, "python", "tests", "fake_torch")

# A training loop that knows nothing of gofetch: an ImageFolder-like dataset, a
# shuffled DataLoader with worker processes started by the context named on the
# command line, one epoch; prints the files in the order the batches came. With
# JOB_ITEM_DELAY_S set, each item first works that long (decoding, augmenting).
JOB = textwrap.dedent(
    """
    import json, os, sys, time
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Folder(Dataset):
        def __init__(self, root):
            self.samples = sorted((os.path.join(d, f), 0) for d, _, names in os.walk(root) for f in names)
        def __len__(self):
            return len(self.samples)
        def __getitem__(self, index):
            time.sleep(float(os.environ.get("JOB_ITEM_DELAY_S", "0")))
            with open(self.samples[index][0], "rb") as f:
                return [index, len(f.read())]

    def collate(batch):
        return batch

    if __name__ == "__main__":
        torch.manual_seed(7)
        data = Folder(sys.argv[1])
        loader = DataLoader(data, batch_size=4, shuffle=True, num_workers=2,
                            multiprocessing_context=sys.argv[2], collate_fn=collate)
        order = [data.samples[item[0]][0] for batch in loader for item in batch]
        print(json.dumps({"order": order, "client": "gofetch" in sys.modules}))
    """
)


def last_json(stderr):
    """gofetch's JSON report: the last object printed on standard error, from a line that is just "{"."""
    text = "\n" + stderr
    return json.loads(text[text.rindex("\n{\n") + 1:])


def run_job(tmp_path, gofetch_bin, python_bin, data, *, context="spawn", gofetch_args=(), python_args=(), pythonpath=(), item_delay_s=0.0):
    script = tmp_path / "train.py"
    script.write_text(JOB)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOFETCH_")}
    env["JOB_ITEM_DELAY_S"] = str(item_delay_s)
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, FAKE_TORCH])
    command = [python_bin, *python_args, str(script), str(data), context]
    if gofetch_bin is None:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout), None
    result = subprocess.run([gofetch_bin, "run", "--json", "--db", str(tmp_path / "t.db"), *gofetch_args, "--", *command],
                            capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = last_json(result.stderr)
    return json.loads(result.stdout), report


@pytest.mark.parametrize("context", ["spawn", "forkserver", "fork"])
def test_the_client_announces_a_loader_without_a_change_to_the_script(tmp_path, gofetch_bin, python_bin, context):
    data = tmp_path / "data"
    files = make_files(str(data), 40, seed=3, max_size=20_000)
    plain, _ = run_job(tmp_path, None, python_bin, data, context=context)
    assert not plain["client"]
    traced, report = run_job(tmp_path, gofetch_bin, python_bin, data, context=context)
    hook = report["pythonHook"]
    print("python hook:", hook, "announced:", report["summary"]["prefetch"]["announced"])
    # Every interpreter started loaded the client: the main process and, under spawn,
    # each worker (and multiprocessing's resource tracker); under forkserver the
    # server, whose forked workers inherit it; fork workers inherit it from the main process.
    assert hook["enabled"] and hook["started"] >= {"spawn": 3, "forkserver": 2, "fork": 1}[context] and not hook["notStarted"]
    assert "preload shim" in hook["detail"]
    assert traced["client"]
    # The epoch's files were announced, and the loader read what it would have read anyway.
    assert report["summary"]["prefetch"]["announced"] == len(files)
    assert traced["order"] == plain["order"]
    # The client's own modules are not the job's data.
    stored = opened_files(str(tmp_path / "t.db"))
    assert set(files) <= stored
    assert not [p for p in stored if p.startswith(os.path.join(ROOT, "python") + os.sep)]


def test_a_job_with_its_own_sitecustomize_keeps_it(tmp_path, gofetch_bin, python_bin):
    data = tmp_path / "data"
    files = make_files(str(data), 12, seed=4, max_size=10_000)
    own = tmp_path / "own"
    own.mkdir()
    marker = tmp_path / "marker"
    (own / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'a').write('ran\\n')\n")
    traced, report = run_job(tmp_path, gofetch_bin, python_bin, data, context="fork", pythonpath=[str(own)])
    assert marker.read_text().count("ran") == 1  # the job's own sitecustomize ran, once
    assert report["pythonHook"]["started"] == 1  # fork workers inherit the client
    assert report["summary"]["prefetch"]["announced"] == len(files)
    assert len(traced["order"]) == len(files)


def test_an_isolated_interpreter_runs_as_before_and_the_summary_says_why(tmp_path, gofetch_bin, python_bin):
    data = tmp_path / "data"
    files = make_files(str(data), 8, seed=5, max_size=10_000)
    script = tmp_path / "plain.py"
    script.write_text("import sys, os\nfor d, _, names in os.walk(sys.argv[1]):\n    for n in names:\n        open(os.path.join(d, n), 'rb').read()\nprint('gofetch' in sys.modules)\n")
    result = subprocess.run([gofetch_bin, "run", "--db", str(tmp_path / "t.db"), "--", python_bin, "-I", str(script), str(data)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert "no Python process loaded the client" in result.stderr and "-I" in result.stderr
    off = subprocess.run([gofetch_bin, "run", "--no-python-hook", "--json", "--db", str(tmp_path / "t.db"), "--",
                          python_bin, str(script), str(data)], capture_output=True, text=True, timeout=120)
    assert off.returncode == 0 and off.stdout.strip() == "False"
    hook = last_json(off.stderr)["pythonHook"]
    assert hook == {"enabled": False, "disabledBecause": "--no-python-hook", "started": 0, "notStarted": {}}
    assert len(files) == 8


def test_env_prints_the_exports_of_a_client_shell(tmp_path, gofetch_bin, python_bin):
    result = subprocess.run([gofetch_bin, "env", "--socket", str(tmp_path / "d.sock")], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": "/somewhere"}, cwd="/")
    assert result.returncode == 0, result.stderr
    lines = dict(line[len("export "):].split("=", 1) for line in result.stdout.splitlines())
    assert lines["GOFETCH_SOCKET"] == f"'{tmp_path / 'd.sock'}'"
    assert lines["LD_PRELOAD"].endswith("libgofetch_preload.so'")
    assert lines["PYTHONPATH"] == f"'{ROOT}/python/inject:/somewhere'"
    # What it prints works: a shell that evaluates it starts Python with the client on.
    check = subprocess.run(["sh", "-c", f'eval "$({gofetch_bin} env --socket {tmp_path / "d.sock"})"; exec {python_bin} -c "import sys; print(\'gofetch\' in sys.modules)"'],
                           capture_output=True, text=True, timeout=60)
    assert check.stdout.strip() == "True", check.stderr


def shuffled_epochs(tmp_path, files, probes, epochs):
    """One shuffled list an epoch, and probe links PROBES/<epoch>/<index> to each file."""
    lists = []
    for epoch in range(epochs):
        order = list(files)
        random.Random(epoch + 1).shuffle(order)
        (probes / str(epoch)).mkdir(parents=True)
        for i, path in enumerate(order):
            os.symlink(path, probes / str(epoch) / str(i))
        listing = tmp_path / f"epoch{epoch}.txt"
        listing.write_text("\n".join(order) + "\n")
        lists.append(str(listing))
    return lists


def cold_reader(tmp_path):
    reader = tmp_path / "cold_reader"
    subprocess.run(["cc", "-O2", "-o", str(reader), os.path.join(ROOT, "tests", "e2e", "jobs", "cold_reader.c")], check=True)
    return str(reader)


def reader_epochs(stdout):
    """cold_reader's lines: (warm before open, files, not warm with pages reclaimed) per epoch."""
    return [tuple(int(n) for n in re.findall(r"\d+", line)) for line in stdout.splitlines() if line.startswith("warm ")]


def untraced(tmp_path, probes):
    """A config that leaves the probe links out of the trace."""
    config = tmp_path / "config.yaml"
    config.write_text(f"trace:\n  exclude_prefixes: [/proc, /sys, /dev, /usr, /lib, /lib64, /etc, /run, {probes}]\n")
    return str(config)


@needs_fuse
def test_a_non_python_reader_of_a_shuffled_folder_finds_its_first_epoch_warm(tmp_path, gofetch_bin):
    sys.path.insert(0, os.path.join(ROOT, "bench", "emulator"))
    from mount import SlowMount

    reader = cold_reader(tmp_path)
    source = tmp_path / "source"
    make_files(str(source), 400, seed=9, min_size=20_000, max_size=120_000)
    probes = tmp_path / "probe"
    with SlowMount(source, latency_ms=3, keep_cache=True) as mount:
        files = sorted(os.path.join(d, f) for d, _, names in os.walk(mount.path) for f in names)
        evict(files)
        lists = shuffled_epochs(tmp_path, files, probes, 1)
        # Nothing names the folder ahead (its list would: docs/prefetch.md): the tree
        # finds it from the job's opens.
        result = subprocess.run([gofetch_bin, "run", "--json", "--no-command-line-hints", "--config", untraced(tmp_path, probes),
                                 "--db", str(tmp_path / "t.db"), "--", reader, str(probes), "3", *lists],
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ((warm, total, _),) = reader_epochs(result.stdout)
    summary = last_json(result.stderr)["summary"]
    prefetch = summary["prefetch"]
    print(f"warm before open: {warm} of {total}; tree {prefetch['treeRoot']}: {prefetch['treeFiles']} files;",
          "fates:", {k: prefetch["accounting"][k] for k in ("useful", "late", "wasted", "skipped")})
    assert total == len(files)
    assert prefetch["treeRoot"] == mount.path and prefetch["treeFiles"] == len(files)
    assert warm >= 0.8 * total


def run_twice(tmp_path, gofetch_bin, probes, files, job):
    """`gofetch run` of `job` twice on one store, the files evicted before each, with
    --no-command-line-hints (the first run finds the tree from its opens alone):
    [(warm before open, total, reclaimed before open, summary's prefetch)] of the two."""
    runs = []
    for _ in range(2):
        evict(files)
        result = subprocess.run([gofetch_bin, "run", "--json", "--no-command-line-hints", "--config", untraced(tmp_path, probes),
                                 "--db", str(tmp_path / "t.db"), "--", *job], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        ((warm, total, reclaimed),) = reader_epochs(result.stdout)
        runs.append((warm, total, reclaimed, last_json(result.stderr)["summary"]["prefetch"]))
    return runs


@needs_fuse
def test_a_job_run_again_gets_the_folder_its_last_run_read_warmed_during_its_start_up(tmp_path, gofetch_bin):
    """The second `gofetch run` of a command whose last run read a folder tree in an
    order nothing predicted warms that tree from the start: what the job reads after
    its start-up (here a 2 s sleep, as importing torch takes) is warm at its first open."""
    sys.path.insert(0, os.path.join(ROOT, "bench", "emulator"))
    from mount import SlowMount

    reader = cold_reader(tmp_path)
    source = tmp_path / "source"
    make_files(str(source), 300, seed=11, min_size=20_000, max_size=120_000)
    probes = tmp_path / "probe"
    with SlowMount(source, latency_ms=3, keep_cache=True) as mount:
        files = sorted(os.path.join(d, f) for d, _, names in os.walk(mount.path) for f in names)
        lists = shuffled_epochs(tmp_path, files, probes, 1)
        # It reads its list first, as a script its configuration: gofetch runs as root
        # here, and warms as the job's first traced process (docs/prefetch.md). The
        # command line names the folder's list: without --no-command-line-hints the
        # first run would warm it from the start too (the test below).
        job = ["sh", "-c", f"head -c 1 {lists[0]} >/dev/null; sleep 2; exec {reader} {probes} 3 {lists[0]}"]
        (first_warm, total, _, first), (second_warm, _, reclaimed, second) = run_twice(tmp_path, gofetch_bin, probes, files, job)
    print(f"warm before open: first run {first_warm} of {total}, second run {second_warm} of {total}",
          f"(and {reclaimed} warmed but partly reclaimed by the kernel before the open);",
          f"second run's tree {second['treeRoot']} from the last run: {second.get('treeFromLastRun')};",
          "fates (first, second):", [{k: run["accounting"].get(k) for k in ("useful", "late", "evictedBeforeUse", "leadP50")}
                                     for run in (first, second)])
    assert total == len(files)
    assert first["treeRoot"] == mount.path and first.get("treeFromLastRun") is None
    assert second["treeFromLastRun"] == mount.path and second["treeRoot"] == mount.path
    # The first run found the tree only after its first opens; the second warmed it
    # during the 2 s before its first: its prefetches led the reads by over a second,
    # and every file was warm at its open but those the kernel took back. This machine's
    # proactive reclaim (a DAMON pageout scheme) takes idle page cache in regions it
    # deems cold, warmed pages included: the ledger sees it when the job's first read of
    # a file is cold (evicted before use), the probe (every page resident just before
    # the open) also when only later pages went. A fresh-clone run had the ledger at 296
    # warm + 3 evicted and the probe at 280 warm; those the probe found partly reclaimed
    # are counted apart (shadow entries: nothing else here leaves them).
    assert first["accounting"]["leadP50"] < 1e9 <= second["accounting"]["leadP50"]
    assert second["accounting"]["useful"] + second["accounting"]["evictedBeforeUse"] >= total - 3
    assert second_warm + reclaimed >= total - 3



@needs_fuse
@pytest.mark.parametrize("folders", [1, 5])
def test_a_job_run_again_gets_its_last_runs_order_first(tmp_path, gofetch_bin, folders):
    """A job whose order repeats from run to run (a seeded shuffle) run again: the tree
    of its last run is warmed from the start in the order that run first opened its
    files, not the walk's. On a 2 MiB/s link the 3 s start-up moves about 85 of the 300
    files: in the walk's order about 11 of the 40 the job reads would be among them; in
    the last run's order 35-40 were warm at their open (ten runs). In five folders the
    walk (as no one: gofetch runs as root) lists the last ones after the tree has
    queued its first requests: the files first in the order that it lists then must
    go out at once, not behind those (they found 19-21 of 40 warm when they did not)."""
    sys.path.insert(0, os.path.join(ROOT, "bench", "emulator"))
    from mount import SlowMount

    reader = cold_reader(tmp_path)
    source = tmp_path / "source"
    rng = random.Random(17)
    for i in range(300):
        folder = source / f"class_{i % folders}" if folders > 1 else source
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"sample_{i:04d}.bin").write_bytes(rng.randbytes(rng.randint(20_000, 120_000)))
    probes = tmp_path / "probe"
    with SlowMount(source, latency_ms=3, bandwidth_mbps=2, keep_cache=True) as mount:
        files = sorted(os.path.join(d, f) for d, _, names in os.walk(mount.path) for f in names)
        order = random.Random(5).sample(files, 40)
        (probes / "0").mkdir(parents=True)
        for i, path in enumerate(order):
            os.symlink(path, probes / "0" / str(i))
        listing = tmp_path / "order.txt"
        listing.write_text("\n".join(order) + "\n")
        job = ["sh", "-c", f"head -c 1 {listing} >/dev/null; sleep 3; exec {reader} {probes} 3 {listing}"]
        (first_warm, total, _, first), (second_warm, _, reclaimed, second) = run_twice(tmp_path, gofetch_bin, probes, files, job)
    print(f"warm before open: first run {first_warm} of {total}, second run {second_warm} of {total}",
          f"(and {reclaimed} warmed but partly reclaimed by the kernel before the open);",
          f"second run's tree {second['treeFromLastRun']}, {second.get('treeOrderFromLastRun')} files in the last run's order;",
          "fates (second):", {k: second["accounting"].get(k) for k in ("useful", "late", "evictedBeforeUse", "leadP50")})
    assert total == 40
    assert first.get("treeOrderFromLastRun") is None
    assert second["treeFromLastRun"] == mount.path and second["treeOrderFromLastRun"] == 40
    assert second_warm + second["accounting"]["evictedBeforeUse"] >= 32
    # Warmed during the start-up, not while the job read: in five folders, before the
    # tree's requests were ranked, the prefetches led the reads by under 0.5 s in every
    # run (8-9 of the 40 still in flight at their open), against 2.2 s here.
    assert second["accounting"]["leadP50"] >= 1e9


@needs_fuse
def test_a_job_run_again_gets_every_epoch_warmed_in_its_last_runs_order(tmp_path, gofetch_bin):
    """A job whose every epoch's order repeats from run to run (a seeded shuffle), its
    data set five times the prefetch budget, each file dropped from the cache once
    read (as memory pressure drops it when the data does not fit): every epoch starts
    cold. Run again, it gets epoch 2 warmed in the order its last run read epoch 2,
    just ahead of its reads, so that most files are warm at their open; the first run
    cannot know that order and holds what the budget holds, a share of the data set."""
    sys.path.insert(0, os.path.join(ROOT, "bench", "emulator"))
    from mount import SlowMount

    reader = cold_reader(tmp_path)
    source = tmp_path / "source"
    make_files(str(source), 300, seed=19, min_size=20_000, max_size=120_000)
    probes = tmp_path / "probe"
    config = tmp_path / "budget.yaml"
    config.write_text(open(untraced(tmp_path, probes)).read() + "prefetcher:\n  memory_budget_mb: 4\n")
    runs = []
    with SlowMount(source, latency_ms=3, keep_cache=True) as mount:
        files = sorted(os.path.join(d, f) for d, _, names in os.walk(mount.path) for f in names)
        lists = shuffled_epochs(tmp_path, files, probes, 2)
        size = sum(os.path.getsize(f) for f in files)
        for _ in range(2):
            evict(files)
            result = subprocess.run(
                [gofetch_bin, "run", "--json", "--no-command-line-hints", "--config", str(config), "--db",
                 str(tmp_path / "t.db"), "--", "env", "COLD_READER_DROP=1", reader, str(probes), "3", *lists],
                capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, result.stderr
            warm = [warm for warm, _, _ in reader_epochs(result.stdout)]
            runs.append((warm, last_json(result.stderr)["summary"]["prefetch"]))
    (first_warm, first), (second_warm, second) = runs
    print(f"data set {size / 2**20:.1f} MiB, budget 4 MiB; warm before open per epoch: first run {first_warm},",
          f"second run {second_warm} of {len(files)}; second run: {second.get('treeOrderFromLastRun')} files in the",
          f"last run's first order, {second.get('treeEpochsInLastRunsOrder')} later epochs in its order;",
          "fates (first, second):", [{k: run["accounting"].get(k) for k in ("useful", "late", "evictedBeforeUse", "unread")}
                                     for run in (first, second)])
    assert size > 4.5 * 2**20 * 4
    assert len(first_warm) == len(second_warm) == 2
    assert first.get("treeEpochsInLastRunsOrder") is None and first.get("treeStoppedAtLastRunsEpochs") is None
    assert second["treeOrderFromLastRun"] == len(files) and second["treeEpochsInLastRunsOrder"] == 1
    # Nothing warmed for a third epoch: the last run read two. The first run, which
    # cannot know, warms a third's first files up to the budget (59 of them here), read
    # for nothing.
    assert second["treeStoppedAtLastRunsEpochs"] == 2
    assert second["accounting"]["unread"] <= 3 < 20 <= first["accounting"]["unread"]
    assert second_warm[1] >= 0.8 * len(files)
    # Without the order, the budget holds a share of the data set.
    assert first_warm[1] <= 0.6 * len(files)


@needs_fuse
def test_a_first_run_warms_the_folder_its_configuration_names_from_its_start(tmp_path, gofetch_bin):
    """A job's first `gofetch run`: the configuration file on its command line names the
    data folder (and a checkpoint folder it never reads). Both are warmed from the
    job's start; what the job reads after its start-up (a 2 s sleep) is warm at its
    first open, and the folder it never reads is dropped once its opens show that."""
    sys.path.insert(0, os.path.join(ROOT, "bench", "emulator"))
    from mount import SlowMount

    reader = cold_reader(tmp_path)
    source = tmp_path / "source"
    make_files(str(source), 300, seed=13, min_size=20_000, max_size=120_000)
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    for i in range(4):
        (checkpoints / f"step{i}.pt").write_bytes(os.urandom(100_000))
    probes = tmp_path / "probe"
    with SlowMount(source, latency_ms=3, keep_cache=True) as mount:
        files = sorted(os.path.join(d, f) for d, _, names in os.walk(mount.path) for f in names)
        lists = shuffled_epochs(tmp_path, files, probes, 1)
        config = tmp_path / "train.json"
        config.write_text(json.dumps({"data": {"root": mount.path}, "checkpoints": str(checkpoints), "lr": 0.1}))
        evict(files)
        # The reader takes its order from a list (cold_reader.c), named in the environment
        # so that only the configuration names folders (a list of them would too).
        # It reads its configuration first, as a script does: gofetch runs as root here,
        # and warms as the job's first traced process (docs/prefetch.md).
        job = ["sh", "-c", f'head -c 1 "$1" >/dev/null; sleep 2; exec {reader} {probes} 3 "$ORDER"', "train", str(config)]
        result = subprocess.run([gofetch_bin, "run", "--json", "--config", untraced(tmp_path, probes), "--db", str(tmp_path / "t.db"),
                                 "--", *job], capture_output=True, text=True, timeout=300, env={**os.environ, "ORDER": lists[0]})
    assert result.returncode == 0, result.stderr
    ((warm, total, reclaimed),) = reader_epochs(result.stdout)
    prefetch = last_json(result.stderr)["summary"]["prefetch"]
    print(f"warm before open: {warm} of {total} (and {reclaimed} warmed but partly reclaimed by the kernel before the open); hints {prefetch.get('treeHints')}, dropped {prefetch.get('treeHintsDropped')};",
          "fates:", {k: prefetch["accounting"].get(k) for k in ("useful", "late", "evictedBeforeUse", "leadP50")})
    assert total == len(files)
    assert set(prefetch["treeHints"]) >= {mount.path, str(checkpoints)}
    assert str(checkpoints) in prefetch["treeHintsDropped"] and mount.path not in prefetch["treeHintsDropped"]
    assert prefetch["treeRoot"] == mount.path and prefetch.get("treeFromLastRun") is None
    # Warmed during the 2 s before the first open: the prefetches led the reads by over
    # a second, and every file was warm at its open but those the kernel took back (see
    # the test above: a fresh-clone run had the probe at 283 warm, the ledger at 293
    # reads served warm and 5 evicted before use).
    assert prefetch["accounting"]["leadP50"] >= 1e9
    assert prefetch["accounting"]["useful"] + prefetch["accounting"]["evictedBeforeUse"] >= total - 3
    assert warm + reclaimed >= total - 3


def run_root_job_over_a_mixed_folder(tmp_path, gofetch_bin, wrapper=()):
    """gofetch run as root (under `wrapper`) over a FUSE folder of 30 world-readable files,
    6 root-only (0600) files and a 0700 sub-folder of 6; the job's first traced event
    comes 2 s after its start, its reads of the folder 2 s after that. Returns the
    count of each kind resident before the first event, 1.3 s after it, and the
    summary's prefetch figures."""
    sys.path.insert(0, os.path.join(ROOT, "bench", "emulator"))
    from mount import SlowMount

    source = tmp_path / "source"
    open_files = list(make_files(str(source / "open"), 30, seed=21, min_size=20_000, max_size=60_000))
    private = []
    for i, path in enumerate(make_files(str(tmp_path / "made"), 6, seed=22, min_size=20_000, max_size=60_000)):
        moved = str(source / "open" / f"class_{i % 5}" / f"private_{i}.bin")
        os.rename(path, moved)
        os.chmod(moved, 0o600)
        private.append(moved)
    hidden = list(make_files(str(source / "hidden"), 6, seed=23, min_size=20_000, max_size=60_000))
    os.chmod(source / "hidden", 0o700)
    with SlowMount(source, latency_ms=3, keep_cache=True) as mount:
        def under(paths):
            return [os.path.join(mount.path, os.path.relpath(p, source)) for p in paths]
        everyone, root_only, unlisted = under(open_files), under(private), under(hidden)
        evict(everyone + root_only + unlisted)
        # Nothing traced for 2 s (sh, sleep and find read only what the trace leaves out),
        # then cat reads a file beside the folder, the job's first event; 2 s later the folder.
        first = tmp_path / "first.txt"
        first.write_text("the job's first traced read\n")
        job = ["sh", "-c", 'sleep 2; cat "$2" >/dev/null; sleep 2; find "$1" -type f -exec cat {} + >/dev/null',
               "train", mount.path, str(first)]
        process = subprocess.Popen([*wrapper, gofetch_bin, "run", "--json", "--db", str(tmp_path / "t.db"), "--", *job],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def resident():
            return {name: sum(resident_pages(p) > 0 for p in paths)
                    for name, paths in (("everyone", everyone), ("root only", root_only), ("unlisted", unlisted))}
        time.sleep(1.5)
        before = resident()
        # After the first event, before the job reads the folder.
        time.sleep(1.8)
        taken_over = resident()
        out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    prefetch = last_json(err)["summary"]["prefetch"]
    print("resident before the first event:", before, "1.3 s after it:", taken_over, "tree:", prefetch["treeRoot"],
          prefetch["treeFiles"], {k: prefetch[k] for k in ("released", "completed", "skipped", "denied")})
    # The first event's process walked the folder, the 0700 one too.
    assert prefetch["treeRoot"] == mount.path
    assert prefetch["treeFiles"] == len(everyone) + len(root_only) + len(unlisted)
    return before, taken_over, prefetch


@needs_fuse
def test_a_job_root_starts_is_warmed_from_its_start_with_only_what_every_user_may_read(tmp_path, gofetch_bin):
    """gofetch run as root, a job that may change its user: until its first traced event
    names the process, the folder its command line names is listed and warmed as no one
    (a uid and gid no one has, no groups), so only what every user may read is read
    ahead; the first event's process (root here) then takes the folder over: its own
    walk adds what only it may list, and what no one was denied goes out again as it."""
    before, taken_over, prefetch = run_root_job_over_a_mixed_folder(tmp_path, gofetch_bin)
    assert before["everyone"] >= 30 - 2
    assert before["root only"] == 0 and before["unlisted"] == 0
    assert taken_over["root only"] == 6 and taken_over["unlisted"] == 6
    assert prefetch["denied"] == 6


@needs_fuse
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) (util-linux) to start a user namespace")
def test_in_a_user_namespace_without_the_no_one_uid_nothing_is_read_before_the_first_event(tmp_path, gofetch_bin):
    """Root of a user namespace that maps only itself (a rootless container): the kernel
    refuses to act as no one, so the walk as no one lists nothing and reads nothing (never
    as root instead); the warming starts at the job's first event, as that process, which
    may read every file."""
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"this kernel does not let root make a user namespace: {probe.stderr.strip()}")
    before, taken_over, prefetch = run_root_job_over_a_mixed_folder(
        tmp_path, gofetch_bin, wrapper=("unshare", "--user", "--map-root-user"))
    assert before == {"everyone": 0, "root only": 0, "unlisted": 0}
    assert taken_over["everyone"] >= 30 - 2 and taken_over["root only"] == 6 and taken_over["unlisted"] == 6
    assert prefetch["denied"] == 0


MEMORY = "/sys/fs/cgroup/memory"


@needs_fuse
@pytest.mark.skipif(not os.access(MEMORY, os.W_OK), reason="needs the cgroup v1 memory controller to limit the job's memory")
def test_a_data_set_twice_the_memory_cgroup_gets_the_budgets_share_warm(tmp_path, gofetch_bin):
    sys.path.insert(0, os.path.join(ROOT, "bench", "emulator"))
    from mount import SlowMount

    reader = cold_reader(tmp_path)
    source = tmp_path / "source"
    source.mkdir()
    for i in range(160):
        (source / f"s{i:03d}.bin").write_bytes(os.urandom(800_000))  # 122 MiB
    data_bytes = 160 * 800_000
    limit = 64 << 20  # about half the data
    probes = tmp_path / "probe"
    cgroup = os.path.join(MEMORY, f"gofetch-test-tree-{os.getpid()}")
    os.mkdir(cgroup)
    try:
        with open(os.path.join(cgroup, "memory.limit_in_bytes"), "w") as f:
            f.write(str(limit))
        with SlowMount(source, latency_ms=3, keep_cache=True) as mount:
            files = sorted(os.path.join(mount.path, name) for name in os.listdir(mount.path))
            evict(files)
            lists = shuffled_epochs(tmp_path, files, probes, 3)
            # gofetch and the job in the cgroup, as a job's container would hold them.
            command = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup,
                       gofetch_bin, "run", "--json", "--config", untraced(tmp_path, probes), "--db", str(tmp_path / "t.db"),
                       "--", reader, str(probes), "2", *lists]
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    finally:
        os.rmdir(cgroup)
    assert result.returncode == 0, result.stderr
    epochs = [(warm, total) for warm, total, _ in reader_epochs(result.stdout)]
    prefetch = last_json(result.stderr)["summary"]["prefetch"]
    accounting = prefetch["accounting"]
    budget = prefetch["effectiveBudget"]
    share = budget / data_bytes
    print("warm before open per epoch:", epochs, f"budget {budget >> 20} MiB = {share:.2f} of the data;",
          "fates:", {k: accounting[k] for k in ("issued", "useful", "late", "wasted", "evictedBeforeUse", "skipped")},
          "given back:", prefetch["givenBack"])
    assert len(epochs) == 3 and all(total == len(files) for _, total in epochs)
    assert prefetch["treeFiles"] == len(files)
    # From the second epoch on, at least 0.8 x budget / data of the epoch's reads are warm.
    for warm, total in epochs[1:]:
        assert warm >= 0.8 * share * total
    # The stable subset is not evicted to make room for other guesses.
    assert accounting["evictedBeforeUse"] <= 0.05 * accounting["issued"]


def test_file_names_that_are_not_utf8_are_announced_and_warmed_by_their_bytes(tmp_path, gofetch_bin, python_bin):
    """Latin-1 names (the bytes of "café" as an older tool wrote them): the client sends
    their bytes, the daemon keeps them (U+EF00 + byte for each byte that is not UTF-8)
    and opens exactly those files; before, the client left them out and the daemon
    refused such paths."""
    data = tmp_path / "data"
    files = []
    for i in range(24):
        folder = os.path.join(os.fsencode(str(data)), b"class_%d" % (i % 3))
        os.makedirs(folder, exist_ok=True)
        name = os.path.join(folder, b"caf\xe9_%02d.bin" % i)
        with open(name, "wb") as f:
            f.write(os.urandom(40_000))
        files.append(name)
    evict([os.fsdecode(f) for f in files])
    # Only the announcements: the folder named on the command line is not warmed ahead.
    # Each item works 50 ms first, as a decoding job does: without it the job read
    # every file before its hint was sent and ended with some still queued.
    traced, report = run_job(tmp_path, gofetch_bin, python_bin, data, context="fork", gofetch_args=["--no-command-line-hints"], item_delay_s=0.05)
    prefetch = report["summary"]["prefetch"]
    print("announced:", prefetch["announced"], {k: prefetch[k] for k in ("released", "completed", "skipped", "missing", "failed", "leftQueued", "droppedAtEnd")})
    assert report["pythonHook"]["enabled"] and traced["client"]
    assert prefetch["announced"] == len(files)

    def as_text(raw):  # the daemon's text for a path's bytes (PathName)
        out = []
        for ch in raw.decode("utf-8", "surrogateescape"):
            out.append(chr(0xEF00 + ord(ch) - 0xDC00) if 0xDC80 <= ord(ch) <= 0xDCFF else ch)
        return "".join(out)

    assert {as_text(f) for f in files} <= opened_files(str(tmp_path / "t.db"))
    # The daemon opened every one (warmed, or found resident as the job had read it
    # first): a repaired name would have been missing.
    assert prefetch["missing"] == 0 and prefetch["failed"] == 0
    assert prefetch["completed"] + prefetch["skipped"] == prefetch["released"] == len(files)
    assert prefetch["leftQueued"] == prefetch["droppedAtEnd"] == 0
    # Warmed by their bytes ahead of the job, not only found resident after it.
    assert prefetch["completed"] >= len(files) // 2
