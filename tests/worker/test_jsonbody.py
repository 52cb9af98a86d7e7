"""Request bodies mean what `json.loads` makes of them, whichever decoder reads them."""

from __future__ import annotations

import json
import math

import pytest

from rtserve.server.worker import jsonbody

pytestmark = pytest.mark.unit

BODIES = [
    b'{"dataframe_records": [{"a": 5.1, "b": 3}, {"a": -0.0, "b": 1E5}]}',
    b'{"a": 1, "a": 2, "b": 3}',  # a repeated key: the last value, in the first key's place
    b"[18446744073709551616, -9223372036854775809, 123456789012345678901234567890]",  # past 64 bits
    b"[1.7976931348623157e308, 5e-324, 1e-400, 0.1234567890123456789012]",
    b'["\\ud83d\\ude00", "\\u00e9", "caf\xc3\xa9"]',
    b'{"dataframe_split": {"columns": ["x"], "data": [[NaN], [Infinity], [-Infinity]]}}',  # json's extensions
    b'["\\ud800"]',  # a lone surrogate
    b"[1e400]",  # a float out of range: json reads infinity
    b"\xef\xbb\xbf[1]",  # a byte order mark
    '{"a": [1, 2.5]}'.encode("utf-16"),
    '{"a": [1, 2.5]}'.encode("utf-32"),
]
INVALID = [b"", b"[1,]", b"[01]", b"[.5]", b'["a\tb"]', b"[1] [2]", b"[True]", b"\xff[1]", b"{", b"[1e]"]


@pytest.mark.parametrize("body", BODIES)
def test_bodies_decode_as_json_loads_does(body: bytes) -> None:
    decoded, expected = jsonbody.loads(body), json.loads(body)
    # repr tells an int from an equal float, and NaN from NaN compares equal in it
    assert repr(decoded) == repr(expected)
    if isinstance(expected, dict):
        assert list(decoded) == list(expected)


@pytest.mark.parametrize("body", INVALID)
def test_invalid_bodies_raise_what_json_loads_raises(body: bytes) -> None:
    with pytest.raises(Exception) as expected:
        json.loads(body)
    with pytest.raises(type(expected.value)):
        jsonbody.loads(body)


def test_nan_stays_a_float() -> None:
    assert math.isnan(jsonbody.loads(b"[NaN]")[0])
