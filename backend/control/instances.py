"""The backend instances sharing one database, and the traffic of all of them.

The autoscaler and scale to zero must count every instance's requests, not only the leader's: a
version busy behind another instance must never be scaled to zero. So at every controller tick each
instance writes what its gateway sees (requests in flight or queued, and the time of the last one,
per version) into its row of `backend_instances`, and reads the rows of every instance seen recently:
their sum is the traffic the reconciler decides on. A request waiting at any instance for a version
scaled to zero thus reaches the leader within a tick.

Blocking: call these in a thread, never on the event loop.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping

from sqlalchemy.orm import Session, sessionmaker

from rtserve.server.control.traffic import VersionTraffic
from rtserve.server.store import repo
from rtserve.server.store.models import BackendInstance

VersionKey = tuple[str, str]


def exchange(
    sessions: sessionmaker[Session],
    instance_id: str,
    started_at: float,
    own: Mapping[VersionKey, VersionTraffic],
    now: float,
    stale_after: float,
) -> dict[VersionKey, VersionTraffic]:
    """Report this instance's traffic, and return every live instance's added up (in flight) and latest (last request).

    An instance not seen for `stale_after` seconds (dead) counts no more.
    """
    rows = [[model, version, t.in_flight, t.last_request_at] for (model, version), t in own.items()]
    with sessions.begin() as session:
        repo.save_instance(
            session=session,
            instance=BackendInstance(
                id=instance_id,
                host=socket.gethostname(),
                started_at=int(started_at * 1000),
                seen_at=int(now * 1000),
                traffic=json.dumps(rows),
            ),
        )
        live = repo.list_instances_seen_since(session=session, seen_at=int((now - stale_after) * 1000))
        reports = [instance.traffic for instance in live]
    total: dict[VersionKey, VersionTraffic] = {}
    for report in reports:
        for model, version, in_flight, last_request_at in json.loads(report):
            stats = total.setdefault((model, version), VersionTraffic())
            stats.in_flight += int(in_flight)
            stats.last_request_at = max(stats.last_request_at, float(last_request_at))
    return total


def leave(sessions: sessionmaker[Session], instance_id: str) -> None:
    """Remove this instance's row (a graceful stop): its traffic counts no more."""
    with sessions.begin() as session:
        repo.delete_instance(session=session, instance_id=instance_id)
