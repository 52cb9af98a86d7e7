"""UI sessions in PostgreSQL: a session made by one instance works, with its CSRF token, on another."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from rtserve.server.auth import hash_token
from rtserve.server.store import db
from rtserve.server.store.models import UiSessionRow
from rtserve.server.store.ui_sessions import DatabaseSessionStore

pytestmark = pytest.mark.postgres
KEY = b"k" * 32


@pytest.fixture
def clock() -> list[float]:
    return [1_000_000.0]


@pytest.fixture
def stores(postgres_url: str, clock: list[float]) -> Iterator[list[DatabaseSessionStore]]:
    """Two instances' stores (two connection pools) on one database, with one shared key."""
    engines = [db.make_engine(postgres_url) for _ in range(2)]
    try:
        yield [
            DatabaseSessionStore(db.session_factory(engine), KEY, idle_seconds=100, clock=lambda: clock[0])
            for engine in engines
        ]
    finally:
        with db.session_factory(engines[0]).begin() as session:
            session.query(UiSessionRow).delete()
        for engine in engines:
            engine.dispose()


def test_a_session_made_on_one_instance_is_found_with_the_same_csrf_token_on_the_other(stores):
    first, second = stores
    made = first.create(hash_token("rtsv-secret"))

    found = second.get(made.session_id)

    assert found is not None
    assert (found.token_hash, found.csrf_token) == (hash_token("rtsv-secret"), made.csrf_token)
    assert second.get("not-a-session") is None


def test_neither_the_token_nor_the_session_id_is_stored_in_clear(stores):
    first, _ = stores
    made = first.create(hash_token("rtsv-secret"))

    with first.sessions() as session:
        rows = session.execute(select(UiSessionRow)).scalars().all()

    stored = " ".join(f"{row.id_hash} {row.token_hash} {row.flashes}" for row in rows)
    assert "rtsv-secret" not in stored and made.session_id not in stored and made.csrf_token not in stored


def test_a_flash_left_through_one_instance_is_shown_once_through_the_other(stores):
    first, second = stores
    made = first.create(hash_token("t"))
    first.get(made.session_id).flash("ok", "Serving enabled.")  # type: ignore[union-attr]

    shown = second.get(made.session_id).pop_flashes()  # type: ignore[union-attr]

    assert shown == [("ok", "Serving enabled.")]
    assert first.get(made.session_id).pop_flashes() == []  # type: ignore[union-attr]


def test_sign_out_on_one_instance_ends_the_session_on_both(stores):
    first, second = stores
    made = first.create(hash_token("t"))

    second.delete(made.session_id)

    assert first.get(made.session_id) is None


def test_a_session_in_use_stays_and_an_idle_one_expires_with_its_row(stores, clock):
    first, second = stores
    made = first.create(hash_token("t"))
    clock[0] += 70  # within the idle time: the request counts as use
    assert second.get(made.session_id) is not None
    clock[0] += 90  # 160 s after sign-in, 90 s after the last use
    assert first.get(made.session_id) is not None
    clock[0] += 101  # more than the idle time without a request

    assert second.get(made.session_id) is None
    assert len(first) == 0
