"""Provider configuration: host and token from the config or from RTSERVE_HOST / RTSERVE_TOKEN."""

from __future__ import annotations

import pytest
from tf.types import Unknown
from tf.utils import Diagnostics

from rtserve.provider.plugin import RtserveProvider

pytestmark = pytest.mark.unit


def test_host_and_token_come_from_the_config() -> None:
    provider = RtserveProvider(environ={"RTSERVE_HOST": "http://env:1", "RTSERVE_TOKEN": "env-token"})
    diags = Diagnostics()
    provider.configure_provider(diags, {"host": "http://cfg:2/", "token": "cfg-token"})
    assert not diags.has_errors()
    assert provider.client.host == "http://cfg:2"
    assert provider.client._http.headers["authorization"] == "Bearer cfg-token"


def test_host_and_token_fall_back_to_the_environment() -> None:
    provider = RtserveProvider(environ={"RTSERVE_HOST": "http://env:1", "RTSERVE_TOKEN": "env-token"})
    provider.configure_provider(Diagnostics(), {"host": None, "token": None})
    assert provider.client.host == "http://env:1"
    assert provider.client._http.headers["authorization"] == "Bearer env-token"


def test_a_missing_host_is_a_diagnostic_naming_both_ways_to_set_it() -> None:
    provider = RtserveProvider(environ={})
    diags = Diagnostics()
    provider.configure_provider(diags, {"host": None, "token": None})
    [error] = diags.diagnostics
    assert error.summary == "Missing rtserve host"
    assert "RTSERVE_HOST" in error.detail and provider.client is None


def test_a_host_without_scheme_is_rejected_at_validation() -> None:
    diags = Diagnostics()
    RtserveProvider(environ={}).validate_config(diags, {"host": "localhost:8080"})
    assert diags.diagnostics[0].summary == "Invalid rtserve host"


def test_a_host_unknown_at_plan_time_is_explained() -> None:
    diags = Diagnostics()
    RtserveProvider(environ={}).configure_provider(diags, {"host": Unknown, "token": None})
    assert diags.diagnostics[0].summary == "rtserve provider `host` is unknown at plan time"


def test_every_schema_has_version_zero() -> None:
    provider = RtserveProvider(environ={})
    schemas = [provider.get_provider_schema(Diagnostics())]
    schemas += [cls.get_schema() for cls in [*provider.get_resources(), *provider.get_data_sources()]]
    assert [s.version for s in schemas] == [0] * 8
    for schema in schemas[1:]:
        assert all(a.description for a in schema.attributes), schema.description
