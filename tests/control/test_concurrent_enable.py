"""Two stacks that serve one model enable it at the same moment: each call succeeds, one endpoint results."""

from __future__ import annotations

import threading
from pathlib import Path

from rtserve.server.control.model_endpoints import ModelEndpointService
from rtserve.server.store import db, repo


def enable_at_once(service: ModelEndpointService, model: str, callers: int) -> list[object]:
    """What each of `callers` threads got from enabling `model` at the same moment."""
    start = threading.Barrier(callers)
    outcomes: list[object] = []

    def enable() -> None:
        start.wait()
        try:
            outcomes.append(service._add_endpoint(model, "ci"))
        except Exception as error:  # noqa: BLE001 - the assertion names it
            outcomes.append(error)

    threads = [threading.Thread(target=enable) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_enables_racing_on_one_model_make_one_endpoint_and_no_error(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    db.migrate(url)
    sessions = db.session_factory(db.make_engine(url))
    service = ModelEndpointService(sessions, registry=None, controller=None)  # type: ignore[arg-type]
    for attempt in range(10):
        model = f"iris-{attempt}"
        outcomes = enable_at_once(service, model, callers=4)
        assert sorted(outcomes, key=str) == [False, False, False, True], outcomes
        with sessions() as session:
            assert len(repo.compute_configs(session=session, model_name=model)) == 2
