"""deploy/: the Kubernetes manifests and the container build name the daemon's real
config keys, paths and flags, checked against the gofetch binary. They are not
applied or built here (no Kubernetes, no container engine): what is checked is
that they agree with the program they deploy."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from built_gofetch import gofetch_binary  # noqa: E402
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def gofetch():
    return gofetch_binary()


@pytest.fixture(scope="module")
def cluster():
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "gofetch.yaml").read_text()))
    by_kind = {d["kind"]: d for d in documents}
    assert set(by_kind) == {"Namespace", "ConfigMap", "DaemonSet"}
    daemonset = by_kind["DaemonSet"]
    spec = daemonset["spec"]["template"]["spec"]
    container = spec["containers"][0]
    return {
        "config_text": by_kind["ConfigMap"]["data"]["config.yaml"],
        "config": yaml.safe_load(by_kind["ConfigMap"]["data"]["config.yaml"]),
        "configmap": by_kind["ConfigMap"]["metadata"]["name"],
        "spec": spec,
        "container": container,
        "volumes": {v["name"]: v for v in spec["volumes"]},
        "mounts": {m["mountPath"]: m for m in container["volumeMounts"]},
    }


def host_path_of(cluster, container_path: str) -> str:
    """The node path a container path lies on, through the container's hostPath mounts."""
    for mount_path, mount in sorted(cluster["mounts"].items(), key=lambda kv: -len(kv[0])):
        if container_path == mount_path or container_path.startswith(mount_path.rstrip("/") + "/"):
            volume = cluster["volumes"][mount["name"]]
            assert "hostPath" in volume, f"{container_path} is on volume {mount['name']}, not a node path"
            return volume["hostPath"]["path"] + container_path[len(mount_path):]
    raise AssertionError(f"{container_path} is on no mounted volume: it would not outlive the pod")


def test_the_config_is_the_daemons(cluster, gofetch, tmp_path):
    """The ConfigMap loads in gofetch (an unknown key or a bad value is an error naming it)."""
    config = tmp_path / "config.yaml"
    config.write_text(cluster["config_text"])
    result = subprocess.run([gofetch, "env", "--config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # And a typo would have been caught: the same check refuses an unknown key.
    config.write_text(cluster["config_text"].replace("socket_mode", "socket_mod"))
    refused = subprocess.run([gofetch, "env", "--config", str(config)], capture_output=True, text=True)
    assert refused.returncode != 0 and "socket_mod" in refused.stderr


def test_the_container_runs_the_daemon_with_its_own_flags(cluster, gofetch):
    args = cluster["container"]["args"]
    assert args[:2] == ["gofetch", "daemon"]
    help_text = subprocess.run([gofetch, "daemon", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in (a for a in args if a.startswith("--")):
        assert re.search(rf"(^|\s){re.escape(flag)}\b", help_text), f"gofetch daemon has no {flag}"
    config_path = args[args.index("--config") + 1]
    mount = cluster["mounts"][os.path.dirname(config_path)]
    assert cluster["volumes"][mount["name"]]["configMap"]["name"] == cluster["configmap"]


def test_socket_and_store_live_on_the_node(cluster):
    config = cluster["config"]
    socket_path = config["daemon"]["socket_path"]
    db_path = config["storage"]["db_path"]
    assert host_path_of(cluster, socket_path) == "/run/gofetch/gofetch.sock"
    assert host_path_of(cluster, db_path) == "/var/lib/gofetch/traces.db"
    assert len(socket_path.encode()) <= 107


def test_what_the_daemon_needs_of_the_node(cluster):
    spec, container = cluster["spec"], cluster["container"]
    # Client pids from SO_PEERCRED are the node's: /proc/PID must be the node's too.
    assert spec["hostPID"] is True
    added = set(container["securityContext"]["capabilities"]["add"])
    assert {"SETUID", "SETGID"} <= added  # reads each data set as the client that asked
    # The warmed pages are charged to the daemon's memory cgroup: its limit holds the budget.
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Mi")
    assert int(limit[:-2]) >= cluster["config"]["prefetcher"]["memory_budget_mb"] + 256
    assert cluster["mounts"]["/sys/fs/cgroup"]["readOnly"] is True
    assert cluster["mounts"]["/mnt/datasets"]["mountPropagation"] == "HostToContainer"


def test_a_training_pod_attaches_as_gofetch_env_says(cluster, gofetch, tmp_path):
    """The pod's variables are exactly what `gofetch env` prints where the shim and the
    client are where node-start copies them (/opt/gofetch on the node)."""
    pod = yaml.safe_load((DEPLOY / "kubernetes" / "training-pod.yaml").read_text())
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    # The node's /opt/gofetch, as node-start fills it from the image's /opt/gofetch/lib/gofetch.
    env_host_lib = {e["name"]: e["value"] for e in cluster["container"]["env"]}["GOFETCH_HOST_LIB"]
    host_lib = host_path_of(cluster, env_host_lib)
    assert host_lib == "/opt/gofetch"
    fake = tmp_path / host_lib.lstrip("/")
    (fake / "python").mkdir(parents=True)
    shutil.copytree(ROOT / "python" / "gofetch", fake / "python" / "gofetch", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "python" / "inject", fake / "python" / "inject", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "preload" / "build" / "libgofetch_preload.so", fake / "libgofetch_preload.so")
    socket_path = cluster["config"]["daemon"]["socket_path"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GOFETCH_", "LD_PRELOAD", "PYTHONPATH"))}
    clean.update(GOFETCH_PRELOAD=str(fake / "libgofetch_preload.so"), GOFETCH_PYTHON_CLIENT=str(fake / "python"))
    printed = subprocess.run([gofetch, "env", "--socket", socket_path], env=clean, capture_output=True, text=True,
                             check=True).stdout
    expected = {}
    for line in printed.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        expected[name] = value.strip("'").replace(str(tmp_path), "")
    # gofetch env prints what it changes; the client's folder was given to it (as a node's
    # shell would have it) and the pod must set it too: the injected sitecustomize needs it.
    expected.setdefault("GOFETCH_PYTHON_CLIENT", clean["GOFETCH_PYTHON_CLIENT"].replace(str(tmp_path), ""))
    assert env == expected
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[mounts[os.path.dirname(socket_path)]["name"]]["hostPath"]["path"] == \
        host_path_of(cluster, os.path.dirname(socket_path))
    assert volumes[mounts["/opt/gofetch"]["name"]]["hostPath"]["path"] == host_lib


def test_the_image_installs_what_the_manifests_name():
    dockerfile = (DEPLOY / "container" / "Dockerfile").read_text()
    assert "PREFIX=/opt/gofetch" in dockerfile and "scripts/install" in dockerfile
    # scripts/install puts the shim and client in $PREFIX/lib/gofetch, which node-start copies.
    install = (ROOT / "scripts" / "install").read_text()
    assert '"$root/lib/gofetch/libgofetch_preload.so"' in install
    start = (DEPLOY / "container" / "node-start").read_text()
    assert "/opt/gofetch/lib/gofetch/" in start
    assert subprocess.run(["sh", "-n", str(DEPLOY / "container" / "node-start")]).returncode == 0
    # The runtime libraries are the ones the README says the release build needs.
    readme = (ROOT / "README.md").read_text()
    for package in ("libsqlite3-0", "libopenblas0", "libbpf1"):
        assert package in dockerfile and package in readme
    for copied in re.findall(r"^COPY (deploy/\S+)", dockerfile, re.M):
        assert (ROOT / copied).exists(), copied
