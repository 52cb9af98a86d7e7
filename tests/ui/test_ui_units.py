"""The UI's pure pieces: sessions, redirects after sign-in, prediction tables, input examples."""

from __future__ import annotations

import json

import pytest

from rtserve.server.logged_files import compact_json, scoring_body
from rtserve.server.ui.model_views import duration
from rtserve.server.ui.query import invalid_body, prediction_table
from rtserve.server.ui.session import BrowserAuth, SessionStore, cookie_value, csrf_matches, safe_next

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_expires_after_idling_and_after_its_maximum_age():
    clock = FakeClock()
    store = SessionStore(idle_seconds=10, max_age_seconds=25, clock=clock)
    session = store.create("tok")
    clock.now += 9
    assert store.get(session.session_id) is session  # a request keeps it alive
    clock.now += 9
    assert store.get(session.session_id) is session
    clock.now += 9  # 27 s old: past its maximum age, though never idle for 10 s
    assert store.get(session.session_id) is None
    idle = store.create("tok")
    clock.now += 11
    assert store.get(idle.session_id) is None


def test_the_oldest_session_makes_room_when_the_store_is_full():
    clock = FakeClock()
    store = SessionStore(max_sessions=2, clock=clock)
    first = store.create("a")
    clock.now += 1
    second = store.create("b")
    clock.now += 1
    third = store.create("c")
    assert store.get(first.session_id) is None
    assert store.get(second.session_id) is second and store.get(third.session_id) is third


def test_sessions_have_distinct_unguessable_ids_and_csrf_tokens():
    store = SessionStore()
    one, two = store.create("t"), store.create("t")
    assert one.session_id != two.session_id and one.csrf_token != two.csrf_token
    assert len(one.session_id) >= 40 and len(one.csrf_token) >= 40


def test_csrf_tokens_must_match_exactly():
    session = SessionStore().create("t")
    assert csrf_matches(session, session.csrf_token)
    assert not csrf_matches(session, None)
    assert not csrf_matches(session, "")
    assert not csrf_matches(session, session.csrf_token[:-1])


def test_flash_messages_are_shown_once():
    session = SessionStore().create("t")
    session.flash("ok", "done")
    assert session.pop_flashes() == [("ok", "done")]
    assert session.pop_flashes() == []


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/models/x?version=2", "/ui/models/x?version=2"),
        (None, "/ui/"),
        ("", "/ui/"),
        ("https://evil.example/ui/", "/ui/"),
        ("//evil.example/", "/ui/"),
        ("/api/2.0/preview/mlflow/endpoints-v2/enable", "/ui/"),
        ("/ui/\\evil", "/ui/"),
    ],
)
def test_after_sign_in_only_ui_paths_are_followed(target, expected):
    assert safe_next(target) == expected


@pytest.mark.parametrize(
    ("path", "handled"),
    [
        ("/", True),
        ("/ui", True),
        ("/ui/", True),
        ("/ui/models/x", True),
        ("/uix", False),
        ("/api/2.0/x", False),
        ("/model/x/1/invocations", False),
        ("/health", False),
    ],
)
def test_the_cookie_is_honoured_on_ui_paths_only(path, handled):
    assert BrowserAuth.handles(path) is handled


def test_a_list_of_values_is_a_two_column_table():
    table = prediction_table([0, 2, 1.23456789])
    assert table is not None
    assert table.columns == ["#", "prediction"]
    assert table.rows == [[0, "0"], [1, "2"], [2, "1.23457"]]


def test_records_and_columns_become_one_column_per_key():
    records = prediction_table([{"label": "a", "p": 0.9}, {"label": "b"}])
    assert records is not None and records.columns == ["#", "label", "p"]
    assert records.rows == [[0, "a", "0.9"], [1, "b", ""]]
    columnar = prediction_table({"label": ["a", "b"], "p": [0.9, 0.1]})
    assert columnar is not None and columnar.columns == ["#", "label", "p"] and len(columnar.rows) == 2


def test_rows_of_values_get_numbered_columns_and_long_results_are_cut():
    table = prediction_table([[1, 2], [3, 4]])
    assert table is not None and table.columns == ["#", "0", "1"]
    long = prediction_table(list(range(250)))
    assert long is not None and len(long.rows) == 100 and long.truncated


@pytest.mark.parametrize("predictions", [None, "text", 3, [], {}, {"a": 1}])
def test_anything_else_is_shown_raw(predictions):
    assert prediction_table(predictions) is None


def test_a_body_that_is_not_a_json_object_is_explained_before_it_is_sent():
    broken = invalid_body("{not json")
    assert broken is not None and not broken.sent and broken.status_code == 400
    assert (
        broken.error is not None and "not valid JSON" in broken.error["message"] and "line 1" in broken.error["message"]
    )
    listed = invalid_body("[1, 2]")
    assert listed is not None and "must be a JSON object" in listed.error["message"]  # type: ignore[index]
    assert invalid_body('{"inputs": [1]}') is None


def test_the_serving_input_example_is_already_a_request_body():
    text = json.dumps({"dataframe_split": {"columns": ["a"], "data": [[1]]}})
    assert json.loads(scoring_body("serving_input_example.json", text)) == json.loads(text)


def test_an_older_input_example_is_wrapped_in_the_matching_request_format():
    split = json.dumps({"columns": ["a"], "data": [[1]]})
    assert json.loads(scoring_body("input_example.json", split)) == {
        "dataframe_split": {"columns": ["a"], "data": [[1]]}
    }
    assert json.loads(scoring_body("input_example.json", "[[1, 2]]")) == {"instances": [[1, 2]]}
    assert json.loads(scoring_body("input_example.json", '{"t": [1]}')) == {"inputs": {"t": [1]}}


def test_the_session_cookie_is_found_among_other_apps_malformed_cookies():
    scope = {"headers": [(b"cookie", b'other=a b; "broken; rtserve_session=abc123; x=1')]}
    assert cookie_value(scope, "rtserve_session") == "abc123"
    assert cookie_value({"headers": []}, "rtserve_session") is None


@pytest.mark.parametrize(
    ("seconds", "text"), [(1800, "30 minutes"), (3600, "1 hour"), (60, "1 minute"), (45, "45 seconds")]
)
def test_durations_read_as_words(seconds, text):
    assert duration(seconds) == text


def test_examples_keep_each_data_row_on_one_line():
    body = {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2.5], [3, 4]]}, "params": {"k": [{"x": 1}]}}
    text = compact_json(body)
    assert json.loads(text) == body
    assert "[1, 2.5]" in text.splitlines()[4] and '"columns": ["a", "b"]' in text
