"""A version's environment step, between the download of its artifacts and its first replica.

Decides where the model runs (`decision`), builds or reuses its environment (`builder`) when it
needs one, and writes the version's build log: the decision, then uv's whole output with timings.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from rtserve.server.environments.builder import Builder, BuildFailed
from rtserve.server.environments.decision import decide

BUILD_LOG = "build.log"
BUILDING_MESSAGE = (
    "Preparing the model's environment (built with uv unless the server's satisfies it); see the build logs"
)


def prepare(policy: str, model_dir: Path, log_dir: Path, builder: Builder) -> str | None:
    """The interpreter of the environment the model runs in (None: the server's own); raises BuildFailed.

    The build log (`<log_dir>/build.log`) is rewritten from its first line on each attempt.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / BUILD_LOG, "w", buffering=1) as out:

        def log(line: str) -> None:
            out.write(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {line}\n")

        decision = decide(policy, model_dir)
        log(f"Environment: {decision.reason}")
        if not decision.isolated:
            log("Serving from the server's environment (its shared fork server)")
            return None
        started = time.monotonic()
        try:
            environment = builder.ensure(decision.requirements, log)
        except BuildFailed as exc:
            log(f"FAILED after {time.monotonic() - started:.2f} s: {exc}")
            raise
        log(f"Environment ready in {time.monotonic() - started:.2f} s: {environment.path.name}")
        return environment.python


def read_build_log(log_dir: Path) -> str:
    """The version's build log, or an empty string if none was written."""
    try:
        return (log_dir / BUILD_LOG).read_text()
    except FileNotFoundError:
        return ""
