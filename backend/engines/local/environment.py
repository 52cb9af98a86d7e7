"""The local engine's settings from environment variables, read here and only here.

`LocalEngine` calls these for the parameters its caller leaves out (None), once, when it is made;
the replicas get the values as arguments and read no environment themselves. `backend.settings`
is to pass these values in explicitly:

- RTSERVE_REPLICA_DRAIN_TIMEOUT_SECONDS -> `LocalEngine(stop_timeout=...)` (10 s)
- RTSERVE_REPLICA_LOG_MAX_BYTES -> `LocalEngine(log_max_bytes=...)` (5 MiB, at least 1 KiB)
- RTSERVE_MAX_INPUT_COLUMNS -> `LocalEngine(max_input_columns=...)` (1024)
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from rtserve.server.replica_logs import DEFAULT_MAX_BYTES
from rtserve.server.worker import limits
from rtserve.server.worker.replica import DEFAULT_DRAIN_TIMEOUT

DRAIN_TIMEOUT_ENV = "RTSERVE_REPLICA_DRAIN_TIMEOUT_SECONDS"
MAX_BYTES_ENV = "RTSERVE_REPLICA_LOG_MAX_BYTES"
MAX_INPUT_COLUMNS_ENV = limits.MAX_INPUT_COLUMNS_ENV


def drain_timeout_from_env(environ: Mapping[str, str] | None = None) -> float:
    """RTSERVE_REPLICA_DRAIN_TIMEOUT_SECONDS, or 10 s."""
    raw = (environ if environ is not None else os.environ).get(DRAIN_TIMEOUT_ENV, "")
    if not raw.strip():
        return DEFAULT_DRAIN_TIMEOUT
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ValueError(f"{DRAIN_TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None


def max_bytes_from_env(environ: Mapping[str, str] | None = None) -> int:
    """RTSERVE_REPLICA_LOG_MAX_BYTES, or 5 MiB; at least 1 KiB."""
    raw = (environ if environ is not None else os.environ).get(MAX_BYTES_ENV, "")
    if not raw.strip():
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{MAX_BYTES_ENV} must be a number of bytes, got {raw!r}") from None
    return max(1024, value)


def max_input_columns_from_env(environ: Mapping[str, str] | None = None) -> int:
    """RTSERVE_MAX_INPUT_COLUMNS, a positive integer; 1024 if unset or invalid (with a warning)."""
    return limits.max_input_columns(environ if environ is not None else os.environ)
