"""A throw-away two-node Ray cluster on this machine, for the Ray engine's tests.

Each node is `ray start --block` in a session of its own, with explicit ports (nothing of Ray's
defaults, which another cluster on the machine may hold), its own HOME, RAY_AUTH_MODE set (Ray turns
token authentication on by itself once `~/.ray/auth_token` exists) and a short temp dir of its own
(Ray's Unix socket paths must stay under 108 bytes). It is stopped by signalling every process of
those sessions (Ray's workers have process groups of their own, but keep the session): never with
`ray stop`, which stops every Ray cluster on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAD_IP = "127.0.0.2"
NODE_B_LABELS = {"rtserve.test/node": "b"}  # the second node's labels (`ray start --labels`)
WORKER_IP = "127.0.0.3"
WORKER_PORTS = 40  # per node: one per worker process
# The variables a driver of the cluster (a test, a backend it starts) must share with its nodes.
DRIVER_VARIABLES = ("HOME", "RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")
# How soon the head declares a silent node dead (Ray's defaults take 15-45 s): a node's raylet is asked every
# second and given 5 misses, slow enough for a loaded two-core machine, fast enough for a test of a lost node.
NODE_HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "2000",
    "RAY_health_check_failure_threshold": "5",
}


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))  # Ray's servers listen on every interface
        except OSError:
            return False
    return True


# Ports are picked below the kernel's ephemeral range (32768-60999 here), which it hands out to every outgoing
# connection and to bind(0): a port picked there can be taken by a client before the node binds it.
PORT_RANGE = (20000, 32000)


def free_range(size: int, taken: set[int]) -> int:
    """The first port of `size` consecutive free ports, none in `taken`."""
    for _ in range(200):
        base = random.randrange(PORT_RANGE[0], PORT_RANGE[1] - size)
        if all(port not in taken and _port_free(port) for port in range(base, base + size)):
            return base
    raise RuntimeError(f"no {size} consecutive free ports")


def free_ports(count: int, taken: set[int] | None = None) -> list[int]:
    """`count` free ports, none in `taken`, spread over PORT_RANGE."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_range(1, (taken or set()) | ports))
    return sorted(ports)


def _sessions_processes(session_ids: list[int]) -> list[int]:
    """The live processes (zombies aside) of these sessions."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.getsid(int(entry)) not in session_ids:
                continue
            with open(f"/proc/{entry}/stat") as stat:
                if stat.read().rsplit(")", 1)[-1].split()[0] != "Z":
                    pids.append(int(entry))
    return pids


class NodeExited(RuntimeError):
    """A node's `ray start --block` ended while the cluster waited for it; says the end of the node's log."""

    def __init__(self, returncode: int, log: Path) -> None:
        tail = log.read_text(errors="replace").splitlines()[-30:] if log.exists() else []
        super().__init__(f"a Ray node exited with {returncode}; the end of {log}:\n" + "\n".join(tail))


@dataclass
class RayCluster:
    root: Path  # HOME and logs of the cluster's processes
    temp_dir: Path  # Ray's own temp dir (short)
    address: str = ""
    env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def driver_env(self) -> dict[str, str]:
        """What a driver of this cluster (a backend it starts) needs in its environment: DRIVER_VARIABLES."""
        return {name: self.env[name] for name in DRIVER_VARIABLES}

    @classmethod
    def start(cls, root: Path, cpus: int = 4, timeout: float = 90.0, attempts: int = 3) -> RayCluster:
        """A two-node cluster; a node that exits while starting (a port taken under it by another process of a
        busy machine) is tried again with other ports, up to `attempts` times in all."""
        for _ in range(attempts - 1):
            with contextlib.suppress(NodeExited):
                return cls._start_once(root, cpus, timeout)
        return cls._start_once(root, cpus, timeout)

    @classmethod
    def _start_once(cls, root: Path, cpus: int, timeout: float) -> RayCluster:
        home = root / "home"
        home.mkdir(parents=True, exist_ok=True)
        cluster = cls(root=root, temp_dir=Path(tempfile.mkdtemp(prefix="rtray-", dir="/tmp")))
        (cluster.temp_dir / "tmp").mkdir()
        cluster.env = {
            **os.environ,
            "HOME": str(home),
            "TMPDIR": str(cluster.temp_dir / "tmp"),  # the replicas' work dirs, removed with the cluster
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            **NODE_HEALTH_CHECKS,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        try:
            head_port = cluster._node(HEAD_IP, {"nodeA": 1}, cpus, head=True)
            cluster.address = f"{HEAD_IP}:{head_port}"
            cluster._wait_for_nodes(1, timeout)
            cluster._node(WORKER_IP, {"nodeB": 1}, cpus, head=False, labels=NODE_B_LABELS)
            cluster._wait_for_nodes(2, timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def add_node(
        self, ip: str, resources: dict[str, float], cpus: int = 2, *, wait: bool = True, timeout: float = 90.0
    ) -> subprocess.Popen:
        """One more worker node (at `ip`, with `resources`), once it is alive (without `wait`: once it is
        starting, for a caller that is a driver and asks Ray itself); `kill_node` ends it."""
        self._node(ip, resources, cpus, head=False)
        if wait:
            self._wait_for_nodes(self.running_nodes(), timeout)
        return self.processes[-1]

    def kill_node(self, node: subprocess.Popen) -> None:
        """SIGKILL a node's raylet and every process of its session (its workers): a machine lost at once."""
        for pid in _sessions_processes([node.pid]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        node.wait(10)

    def _log(self, node: subprocess.Popen) -> Path:
        """Where `node`'s output goes: ray-<its IP>.log in the cluster's root."""
        return self.root / f"ray-{node.args[node.args.index('--node-ip-address') + 1]}.log"

    def running_nodes(self) -> int:
        return sum(1 for process in self.processes if process.poll() is None)

    def _node(
        self, ip: str, resources: dict[str, float], cpus: int, *, head: bool, labels: dict[str, str] | None = None
    ) -> int:
        workers = free_range(WORKER_PORTS, set())
        ports = free_ports(9, set(range(workers, workers + WORKER_PORTS)))
        argv = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--disable-usage-stats"]
        argv += ["--node-ip-address", ip, "--num-cpus", str(cpus), "--resources", json.dumps(resources)]
        argv += ["--temp-dir", str(self.temp_dir)]
        if labels:
            argv += ["--labels", ",".join(f"{key}={value}" for key, value in labels.items())]
        argv += ["--node-manager-port", str(ports[0]), "--object-manager-port", str(ports[1])]
        argv += ["--dashboard-agent-listen-port", str(ports[2]), "--dashboard-agent-grpc-port", str(ports[3])]
        argv += ["--metrics-export-port", str(ports[4]), "--runtime-env-agent-port", str(ports[5])]
        argv += ["--min-worker-port", str(workers), "--max-worker-port", str(workers + WORKER_PORTS - 1)]
        argv += ["--object-store-memory", str(200 * 1024 * 1024)]
        if head:
            argv += ["--head", "--port", str(ports[6]), "--ray-client-server-port", str(ports[7])]
            argv += ["--include-dashboard", "false", "--dashboard-port", str(ports[8])]
        else:
            argv += ["--address", self.address]
        log = open(self.root / f"ray-{ip}.log", "ab")  # noqa: SIM115 - the child keeps it
        process = subprocess.Popen(
            argv, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.processes.append(process)
        return ports[6]

    def _wait_for_nodes(self, count: int, timeout: float) -> None:
        """Until `count` nodes are alive (asked in a child process, so this one stays no Ray driver)."""
        probe = (
            "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False, logging_level='ERROR'); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise NodeExited(process.returncode, self._log(process))
            result = subprocess.run(
                [sys.executable, "-c", probe, self.address],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if result.returncode == 0 and result.stdout.strip().isdigit() and int(result.stdout.strip()) >= count:
                return
            time.sleep(0.5)
        raise TimeoutError(f"the Ray cluster did not reach {count} node(s) in {timeout:g} s; see {self.root}")

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM each node's session, then SIGKILL whatever of those sessions is left."""
        sessions = [process.pid for process in self.processes]
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _sessions_processes(sessions):
            time.sleep(0.1)
        for pid in _sessions_processes(sessions):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _sessions_processes(sessions):
            time.sleep(0.1)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    @property
    def node_tmp(self) -> Path:
        """The nodes' TMPDIR: where replica actors keep their files."""
        return self.temp_dir / "tmp"

    def leftovers(self) -> list[int]:
        return _sessions_processes([process.pid for process in self.processes])


@contextmanager
def running_cluster(root: Path) -> Iterator[RayCluster]:
    """A two-node cluster (resources nodeA and nodeB, node B labelled NODE_B_LABELS) for a test module, with
    HOME and RAY_AUTH_MODE of its own set for this process too (its Ray driver, and the backends it starts,
    must match the nodes)."""
    saved = {name: os.environ.get(name) for name in DRIVER_VARIABLES}
    os.environ.update(HOME=str(root / "home"), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    started = RayCluster.start(root)
    try:
        yield started
    finally:
        started.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    assert started.leftovers() == []
