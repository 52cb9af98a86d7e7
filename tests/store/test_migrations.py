"""Upgrading a store made by an earlier release keeps what it holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from rtserve.server.control.serving_endpoints import from_row
from rtserve.server.store import repo
from rtserve.server.store.db import MIGRATIONS_DIR, make_engine, migrate, session_factory

pytestmark = pytest.mark.unit
ENTITY = {
    "name": "m-1",
    "entity_name": "m",
    "entity_version": "1",
    "workload_size": "Small",
    "scale_to_zero_enabled": False,
}
PENDING = {
    "config_version": 1,
    "served_entities": [ENTITY],
    "routes": [{"served_model_name": "m-1", "traffic_percentage": 100}],
}


def test_a_serving_endpoint_stored_before_permissions_keeps_everything_and_has_no_grants(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "0003")
    with create_engine(url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO serving_endpoints (name, id, creator, creation_timestamp, last_updated_timestamp,"
                " config, pending_config, pending_since, tags) VALUES ('old', 'abc', 'admin', 1, 2, NULL,"
                ' :pending, 1, \'[{"key": "team", "value": "x"}]\')'
            ),
            {"pending": json.dumps(PENDING)},
        )

    migrate(url)

    with session_factory(make_engine(url))() as session:
        row = repo.get_serving_endpoint(session=session, name="old")
        assert row is not None and row.pending_config is not None
        endpoint = from_row(row)
    assert endpoint.pending is not None and endpoint.pending.served_entities[0].entity_name == "m"
    assert endpoint.tags == [{"key": "team", "value": "x"}] and endpoint.grants == ()
