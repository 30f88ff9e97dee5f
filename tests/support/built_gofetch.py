"""The gofetch executable scripts/build made (`swift build --show-bin-path`), with the
preload shim beside it."""

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def gofetch_binary(release: bool = False) -> str:
    command = ["swift", "build", "--show-bin-path"] + (["-c", "release"] if release else [])
    bin_dir = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    path = os.path.join(bin_dir, "gofetch")
    build = "CONFIG=release scripts/build" if release else "scripts/build"
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: run {build} first")
    if not os.path.exists(os.path.join(bin_dir, "libgofetch_preload.so")):
        raise FileNotFoundError(f"the shim is missing beside {path}: run {build} first")
    return path
