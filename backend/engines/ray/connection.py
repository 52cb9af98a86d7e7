"""Ray, once per process: the driver's connection the process's engines share, ending an actor, and Ray's errors
in one line.

Ray is imported when an engine connects, never at import: the server runs without the `ray` extra.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

# Engines of one process share its Ray connection; the last one to close ends it, if an engine opened it.
_connections = 0
_opened_here = False


def connect(address: str, namespace: str, options: Mapping[str, Any]) -> Any:
    """`ray.init` unless this process is connected already (then that connection is used, and left open)."""
    global _connections, _opened_here
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("the Ray engine needs the 'ray' extra: pip install 'rtserve[ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=address, namespace=namespace, log_to_driver=False, **options)
        _opened_here = True
    _connections += 1
    return ray


def disconnect() -> None:
    global _connections, _opened_here
    import ray

    _connections = max(0, _connections - 1)
    if _connections == 0 and _opened_here:
        _opened_here = False
        ray.shutdown()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def kill(ray: Any, handle: Any) -> None:
    """End an actor at once (it is not restarted)."""
    with contextlib.suppress(Exception):  # already gone
        ray.kill(handle, no_restart=True)
