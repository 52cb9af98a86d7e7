"""Secrets every instance of a deployment must share, kept in its database (`deployment_keys`)."""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from rtserve.server.store import repo
from rtserve.server.store.models import DeploymentKey


def shared_key(sessions: sessionmaker[Session], name: str) -> bytes:
    """The key called `name`, made at the first start of any instance; instances starting at once agree
    (the first to write it wins, the others read it). Blocks: call it in a thread."""
    with sessions.begin() as session:
        found = repo.get_deployment_key(session=session, name=name)
        if found is not None:
            return found.value.encode()
    try:
        with sessions.begin() as session:
            repo.add_deployment_key(session=session, key=DeploymentKey(name=name, value=secrets.token_hex(32)))
    except IntegrityError:
        pass  # another instance made it first
    with sessions.begin() as session:
        made = repo.get_deployment_key(session=session, name=name)
        assert made is not None
        return made.value.encode()
