"""Two leaders for a moment (PostgreSQL): a pending config decided twice is promoted once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from rtserve.server.control import serving_endpoints
from rtserve.server.control.serving_config import EndpointConfig, ServedEntity
from rtserve.server.store import db
from rtserve.server.store.models import ServingEndpoint

pytestmark = pytest.mark.postgres


def stored(version: str) -> str:
    config = EndpointConfig((ServedEntity("iris", "iris", version),), (("iris", 100),))
    return json.dumps(config.to_stored())


@pytest.fixture
def leaders(postgres_url: str) -> Iterator[list[sessionmaker[Session]]]:
    """Two instances' connection pools on one database, and an endpoint with a pending config."""
    engines = [db.make_engine(postgres_url) for _ in range(2)]
    factories = [db.session_factory(engine) for engine in engines]
    with factories[0].begin() as session:
        session.add(
            ServingEndpoint(
                name="fenced",
                id="f" * 32,
                creator="test",
                creation_timestamp=1,
                last_updated_timestamp=1,
                config=stored("1"),
                pending_config=stored("2"),
                pending_since=1,
            )
        )
    try:
        yield factories
    finally:
        with factories[0].begin() as session:
            session.query(ServingEndpoint).delete()
        for engine in engines:
            engine.dispose()


def test_a_promotion_decided_by_two_leaders_at_once_applies_once(leaders: list[sessionmaker[Session]]):
    states = []
    for factory in leaders:  # each leader read the endpoint, pending config and all, before either acts
        with factory() as session:
            states.append(serving_endpoints.from_row(session.get(ServingEndpoint, "fenced")))
    start = threading.Barrier(2)
    promoted: list[bool] = []

    def promote(factory: sessionmaker[Session], state: serving_endpoints.ServingEndpointState) -> None:
        start.wait()
        promoted.append(serving_endpoints.promote(factory, state, 2, state.stored_pending or ""))

    threads = [threading.Thread(target=promote, args=pair) for pair in zip(leaders, states, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with leaders[0]() as session:
        row = session.get(ServingEndpoint, "fenced")
        assert row is not None
        config, pending = row.config, row.pending_config
    assert sorted(promoted) == [False, True]
    assert (config, pending) == (stored("2"), None)


def test_a_promotion_of_a_config_replaced_since_it_was_read_is_not_applied(leaders: list[sessionmaker[Session]]):
    with leaders[0]() as session:
        state = serving_endpoints.from_row(session.get(ServingEndpoint, "fenced"))
    with leaders[1].begin() as session:  # the user sends another update meanwhile
        row = session.get(ServingEndpoint, "fenced")
        assert row is not None
        row.pending_config = stored("3")

    assert serving_endpoints.promote(leaders[0], state, 2, state.stored_pending or "") is False
    with leaders[0]() as session:
        row = session.get(ServingEndpoint, "fenced")
        assert row is not None
        assert (row.config, row.pending_config) == (stored("1"), stored("3"))
