"""A served entity's environment_vars: which need a fresh interpreter, and how references resolve."""

import pytest

from rtserve.server.control.environment_vars import needs_fresh_interpreter, parse_environment_vars, resolve
from rtserve.server.secret_store import MissingSecret

pytestmark = pytest.mark.unit


def test_variables_are_kept_as_configured_and_sorted():
    parsed = parse_environment_vars({"B": "{{secrets/s/k}}", "A": "plain"}, "entity.environment_vars")

    assert parsed == (("A", "plain"), ("B", "{{secrets/s/k}}"))


def test_a_reference_resolves_through_the_store_and_a_plain_value_stays():
    values = {("s", "k"): "the-secret"}

    env = resolve((("A", "plain"), ("B", "{{secrets/s/k}}")), lambda scope, key: values[(scope, key)])

    assert env == {"A": "plain", "B": "the-secret"}


def test_a_missing_secret_names_its_scope_and_key():
    def missing(scope: str, key: str) -> str:
        raise MissingSecret(scope, key)

    with pytest.raises(MissingSecret, match="secret 'k' does not exist in scope 's'"):
        resolve((("B", "{{secrets/s/k}}"),), missing)


@pytest.mark.parametrize(
    ("variables", "fresh"),
    [
        ({"LOG_LEVEL": "debug"}, False),
        ({"OMP_NUM_THREADS": "1"}, True),
        ({"MY_LIBRARY_MODE": "fast", "RTSERVE_FRESH_INTERPRETER": "true"}, True),
        ({"RTSERVE_FRESH_INTERPRETER": "false"}, False),
    ],
)
def test_variables_read_at_import_time_ask_for_a_fresh_interpreter(variables: dict, fresh: bool):
    assert needs_fresh_interpreter(parse_environment_vars(variables, "e")) is fresh
