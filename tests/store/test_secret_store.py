"""The secret store on a real SQLite database: values are sealed with the key file's key, never stored plainly."""

from pathlib import Path

import pytest

from rtserve.server.secret_store import load_key, open_store
from rtserve.server.store import db

pytestmark = pytest.mark.unit


def sessions(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'rtserve.db'}"
    db.migrate(url)
    return db.session_factory(db.make_engine(url))


def test_a_value_is_encrypted_at_rest_and_readable_only_with_its_key(tmp_path: Path):
    made = sessions(tmp_path)
    store = open_store(made, tmp_path / "secrets.key")
    store.create_scope("team")
    store.put("team", "token", "plain-value-123")

    assert store.value("team", "token") == "plain-value-123"
    assert b"plain-value-123" not in (tmp_path / "rtserve.db").read_bytes()
    assert (tmp_path / "secrets.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match="sealed with another key"):
        open_store(made, tmp_path / "other.key").value("team", "token")


def test_a_key_file_that_holds_no_key_is_refused_by_name(tmp_path: Path):
    bad = tmp_path / "secrets.key"
    bad.write_text("not a key")

    with pytest.raises(ValueError, match="secrets.key does not hold a Fernet key"):
        load_key(bad)
