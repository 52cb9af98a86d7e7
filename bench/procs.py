"""CPU time of process trees, read from /proc: where the cycles of a benchmark run went."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> list[int]:
    """`root` and every process below it."""
    listing = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=False).stdout
    children: dict[int, list[int]] = {}
    for line in listing.splitlines():
        pid, ppid = (int(field) for field in line.split())
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass
class CpuMeter:
    """CPU seconds spent by groups of processes between `start()` and `stop()`."""

    groups: dict[str, list[int]]

    def start(self) -> CpuMeter:
        self._before = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.groups.items()}
        return self

    def stop(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids) - self._before[name] for name, pids in self.groups.items()}


def machine_info() -> dict[str, str]:
    """What the figures were measured on."""
    import platform

    import mlflow
    import sklearn

    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal")))
            memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    wrk_version = wrk_version.split(" Copyright")[0].removeprefix("wrk ").strip()
    return {
        "cpu": f"{os.cpu_count()} x {model}",
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "mlflow": mlflow.__version__,
        "scikit-learn": sklearn.__version__,
        "wrk": wrk_version or "unknown",
        "load average before": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }
