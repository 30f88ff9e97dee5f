"""The GRU live: trained by `gofetch train --model gru` on one job's trace, loaded by
`gofetch run` (predictor.ml.enabled), chosen by the hybrid where it measures better,
and its prefetches really used: on folders no trace ever saw, which the daemon lists
as the job reaches them."""
import json
import os
import subprocess
import textwrap

from test_run import evict

# Folders in listing order; in folder d every (1 + d mod 3)-th file: regular moves.
JOB = textwrap.dedent(
    """
    import os, sys, time
    root = sys.argv[1]
    for d, folder in enumerate(sorted(os.listdir(root))):
        names = sorted(os.listdir(os.path.join(root, folder)))
        for name in names[::1 + d % 3]:
            with open(os.path.join(root, folder, name), "rb") as f:
                f.read()
            time.sleep(0.005)
    """
)


def make_folders(root, folders, seed):
    paths = []
    for d in range(folders):
        folder = os.path.join(root, f"d{d:03d}")
        os.makedirs(folder)
        for k in range(20 + (d * 7 + seed) % 13):
            path = os.path.join(folder, f"img{k:04d}.jpg")
            with open(path, "wb") as f:
                f.write(os.urandom(16_384))
            paths.append(path)
    return paths


def test_a_trained_gru_is_used_live_on_folders_it_never_saw(tmp_path, gofetch_bin, python_bin):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    train_root, job_root = tmp_path / "train", tmp_path / "job"
    make_folders(str(train_root), 60, seed=1)
    job_files = make_folders(str(job_root), 40, seed=5)
    db, model = tmp_path / "t.db", tmp_path / "gru.safetensors"

    subprocess.run([gofetch_bin, "trace", "--db", str(db), "--", python_bin, str(script), str(train_root)],
                   check=True, capture_output=True, timeout=120)
    trained = subprocess.run([gofetch_bin, "train", "--model", "gru", "--db", str(db), "--output", str(model)],
                             capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    evict(job_files)

    config = tmp_path / "config.yaml"
    config.write_text(f"predictor:\n  ml:\n    enabled: true\n    model_path: {model}\n  baseline:\n    model_path: {tmp_path / 'none.gfmk'}\n")
    result = subprocess.run(
        # The GRU's predictions only: the folder named on the command line is not warmed
        # ahead (a fresh-clone run with it on had 92 of 804 prefetches never read, and
        # the share read fell under the 0.8 asked of the GRU).
        [gofetch_bin, "run", "--config", str(config), "--db", str(db), "--json", "--no-command-line-hints", "--",
         python_bin, str(script), str(job_root)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stderr[result.stderr.index("{"):])["summary"]
    prefetch = summary["prefetch"]
    # The job's folders were never seen: the daemon listed each one (as the job's user)
    # when the job opened its first file there, so the GRU could name the rest.
    print("listing:", {k: summary[k] for k in ("foldersListed", "foldersNotListed", "filesListed")})
    assert summary["foldersListed"] >= 40 and summary["foldersNotListed"] == 0
    assert summary["filesListed"] > 0.5 * len(job_files)
    print("GRU run:", {k: prefetch[k] for k in ("gruChoices", "markovChoices", "remainingSetChoices")}, prefetch["accounting"])
    assert prefetch["gruChoices"] > 100
    # Its prefetches were read by the job: most of the job's files were covered.
    accounting = prefetch["accounting"]
    assert accounting["useful"] + accounting["late"] > 0.8 * accounting["issued"]
    assert accounting["useful"] > 0.3 * accounting["issued"]
    # The lister stays a folder ahead, so even the first file of each folder is warm:
    # fewer cold reads than folders (listing only the folders entered left 102 cold).
    assert accounting["coldAccesses"] < 40
