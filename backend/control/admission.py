"""Admission: whether a scoring request may go on to an endpoint. One path for both APIs.

A request needs CAN_QUERY on the endpoint (its token's own permission, or more through one of the
endpoint's grants; 403), then a place in each of the endpoint's rate limits (429). Everything comes
from the published snapshot, so admission never waits on the store, except for the rate limits of
instances sharing a database, whose buckets live there (counted off the event loop; while the
database is out of reach, requests are not counted, and pass). A model endpoint has no grants
and no rate limits: its token's permission decides. An endpoint not in the snapshot (unknown, so a
404 follows, or created a moment ago) is judged by the token's own permission and has no limits yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from rtserve.server.auth import Permission, Principal
from rtserve.server.control import endpoint_permissions
from rtserve.server.control.endpoint import EndpointKind
from rtserve.server.control.rate_limits import BucketStore, RateLimiter
from rtserve.server.control.snapshot import Snapshot

log = logging.getLogger("rtserve.admission")


class Admission:
    def __init__(self, clock: Callable[[], float] = time.monotonic, buckets: BucketStore | None = None) -> None:
        self.limiter = RateLimiter(clock, buckets)

    async def admit(self, snapshot: Snapshot, kind: EndpointKind, name: str, principal: Principal, action: str) -> None:
        """Let one scoring request through, or refuse it (403, then 429); `action` words the refusal."""
        endpoint = snapshot.endpoint(kind, name)
        held = self.held(snapshot, kind, name, principal)
        endpoint_id = endpoint.id if endpoint else None
        endpoint_permissions.check(f"{kind.noun} '{name}'", endpoint_id, held, Permission.CAN_QUERY, action)
        if endpoint is not None and endpoint.rate_limits:
            if self.limiter.store.blocking:
                try:
                    await asyncio.to_thread(self.limiter.admit, name, endpoint.rate_limits, principal.name)
                except SQLAlchemyError as exc:
                    # Scoring goes on while the database is out of reach; its limits wait for it.
                    log.warning("Rate limits of %r not counted (database unavailable): %s", name, exc)
            else:
                self.limiter.admit(name, endpoint.rate_limits, principal.name)

    @staticmethod
    def held(snapshot: Snapshot, kind: EndpointKind, name: str, principal: Principal) -> Permission:
        """What `principal` may do on the endpoint: its token's permission, or more from a grant."""
        endpoint = snapshot.endpoint(kind, name)
        return endpoint.permission_of(principal) if endpoint else principal.permission

    def forget(self, name: str) -> None:
        """Drop the rate limit counts of an endpoint (deleted, or its limits changed). May block on the store."""
        self.limiter.forget(name)
