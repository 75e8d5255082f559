"""A two-node Ray cluster on loopback for tests: a head and a worker node, each its own raylet.

Each node is a `ray start --block` process that the test owns, in its own process group and with
its own temp dir, so that one node can be killed alone and nothing is left running afterwards.
`ray stop` is never used: it stops every Ray process on the machine, other users' too.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# A loopback test cluster: no token authentication (Ray 2.60 turns it on for `ray start`), no usage stats, and
# worker nodes allowed even where flows/ray_runner.py set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 in this process.
CLUSTER_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
RAY_START = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())", "start"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RayNode:
    """One `ray start --block` process (and everything it started), killed by process group."""

    name: str
    temp_dir: Path
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL, wait: float = 10) -> None:
        """Kill this node's processes: its process group, then any stray process that names its temp dir."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        for pid in session_pids(self.temp_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        try:
            self.process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass


def session_pids(temp_dir: Path) -> list[int]:
    """Pids of the processes whose command line names `temp_dir` (a node's raylet, agents, workers)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if str(temp_dir).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def node_ip(index: int) -> str:
    """Each node its own loopback address, from 127.0.0.2 on: Ray swaps 127.0.0.1 for the host's network
    address (and binds there), but keeps any other address of the loopback range."""
    return f"127.0.0.{2 + index}"


@dataclass
class RayCluster:
    """A head node on loopback plus worker nodes; `address` is what `ray.init` and `sample.ray_address` take."""

    root: Path
    port: int = field(default_factory=free_port)
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{node_ip(0)}:{self.port}"

    def start_node(self, name: str, resources: dict[str, float] | None = None, head: bool = False) -> RayNode:
        """Start one node with 1 CPU (and `resources`) and wait until the cluster counts it."""
        temp_dir = self.root / name
        head_ports = ["--ray-client-server-port", "--dashboard-port"] if head else []
        where = ["--head", "--port", str(self.port), "--include-dashboard", "false"] if head else \
            ["--address", self.address]
        # Every port explicit and free: the defaults (10001, 8265, 52365, ...) clash with any other Ray on the host.
        ports = [*head_ports, "--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"]
        cmd = [*RAY_START, "--block", *where, "--node-ip-address", node_ip(len(self.nodes)), "--num-cpus", "1",
               "--resources", json.dumps(resources or {}), "--temp-dir", str(temp_dir), "--disable-usage-stats",
               *[arg for flag in ports for arg in (flag, str(free_port()))]]
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                       env={**os.environ, **CLUSTER_ENV})
        node = RayNode(name, temp_dir, process, log)
        self.nodes.append(node)
        self.wait_for(len([n for n in self.nodes if n.alive()]), node)
        return node

    def wait_for(self, count: int, node: RayNode, timeout: float = 180) -> None:
        """Block until `count` nodes are alive in the cluster."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not node.alive():
                raise RuntimeError(f"ray node {node.name} exited: {node.log.read_text()[-2000:]}")
            if len(self.alive_nodes()) >= count:
                return
            time.sleep(1)
        raise TimeoutError(f"ray node {node.name} did not join in {timeout}s: {node.log.read_text()[-2000:]}")

    def alive_nodes(self) -> dict[str, list[str]]:
        """Resource names by node id of the live nodes, asked by a short-lived driver; {} while none answers."""
        probe = ("import json, ray; ray.init(address=%r, log_to_driver=False); "
                 "print(json.dumps({n['NodeID']: sorted(n['Resources']) for n in ray.nodes() if n['Alive']}))")
        result = subprocess.run([sys.executable, "-c", probe % self.address], capture_output=True, text=True,
                                timeout=120, env={**os.environ, **CLUSTER_ENV})
        return json.loads(result.stdout.splitlines()[-1]) if result.returncode == 0 and result.stdout.strip() else {}

    def node_ids(self) -> dict[str, str]:
        """Node id by node name (`head`, or the custom resource a worker node was started with)."""
        names = {n.name for n in self.nodes}
        ids = {}
        for node_id, resources in self.alive_nodes().items():
            custom = [r for r in resources if r in names]
            ids[custom[0] if custom else "head"] = node_id
        return ids

    def stop(self) -> None:
        """Kill the worker nodes first, then the head."""
        for node in reversed(self.nodes):
            node.kill(signal.SIGTERM, wait=3)
        for node in reversed(self.nodes):
            node.kill(signal.SIGKILL)


@pytest.fixture
def ray_cluster():
    """A Ray head (1 CPU) and a second node (1 CPU, resource `node2`) on loopback; killed afterwards."""
    pytest.importorskip("ray")
    # Unix socket paths must stay short: a system temp dir, not pytest's long tmp_path.
    root = Path(tempfile.mkdtemp(prefix="synthgen-ray-"))
    cluster = RayCluster(root)
    try:
        cluster.start_node("head", head=True)
        cluster.start_node("node2", resources={"node2": 1})
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
