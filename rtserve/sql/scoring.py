"""Score batches of rows on a serving endpoint over HTTP, for `ai_query` on DuckDB and on Spark.

One batch is one request (`dataframe_records`), sent with the caller's own token, so permissions,
rate limits, metrics and inference tables apply as for any client. At most `max_in_flight` requests
are in flight at once across threads; a 429 is retried after its `Retry-After`, within a budget.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

# An error answer in the Databricks envelope; a plain httpx module, not the server's code.
from rtserve.server.client import BackendError as EndpointError

# Statuses a single row can cause (the model or the signature refused it): with failOnError => false,
# the batch is split until the rows at fault are found. Any other failure fails the query (a 5xx, which
# every row would meet, would otherwise cost a request per row to find that out).
ROW_STATUSES = frozenset({400, 422})
DEFAULT_MAX_IN_FLIGHT = 4  # a Small workload's concurrency


class AiQueryError(RuntimeError):
    """A failure that ends the query: an unknown endpoint, a refused token, an unreachable host, ..."""


def invocations_path(endpoint: str) -> str:
    """`iris` is a serving endpoint; `iris-classifier/Production` a model's stage, alias or version."""
    model, slash, route = endpoint.rpartition("/")
    if not slash:
        return f"/serving-endpoints/{quote(endpoint, safe='')}/invocations"
    if not model or not route:
        raise AiQueryError(
            f"ai_query: endpoint {endpoint!r} is neither a serving endpoint's name nor MODEL/ROUTE "
            "(e.g. 'iris-classifier/Production', 'iris-classifier/champion' or 'iris-classifier/3')."
        )
    return f"/model/{quote(model, safe='')}/{quote(route, safe='')}/invocations"


class EndpointClient:
    """Scores rows on rtserve's (or Databricks') serving endpoints; thread-safe.

    `host` and `token` default to RTSERVE_HOST / RTSERVE_TOKEN, then DATABRICKS_HOST / DATABRICKS_TOKEN.
    """

    def __init__(
        self,
        host: str | None = None,
        token: str | None = None,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_retries: int = 5,
        max_retry_seconds: float = 60.0,
        timeout: float = 300.0,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        environ = os.environ if environ is None else environ
        host = host or environ.get("RTSERVE_HOST") or environ.get("DATABRICKS_HOST")
        token = token or environ.get("RTSERVE_TOKEN") or environ.get("DATABRICKS_TOKEN")
        if not host:
            raise AiQueryError(
                "ai_query needs a server: set RTSERVE_HOST (e.g. http://127.0.0.1:8080), or give host= (--host)."
            )
        if not token:
            raise AiQueryError("ai_query needs a token: set RTSERVE_TOKEN (a token with CAN_QUERY) or pass token=.")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.host = host.rstrip("/")
        self.token = token
        self.max_in_flight = max_in_flight
        self.max_retries = max_retries
        self.max_retry_seconds = max_retry_seconds
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._http = httpx.Client(
            base_url=self.host,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight),
        )

    def close(self) -> None:
        self._http.close()

    def score(self, endpoint: str, rows: Sequence[str | None], fail_on_error: bool = True) -> list[str | None]:
        """One JSON text per row (each row given as JSON text; None for a NULL request, which gets NULL).

        With `fail_on_error`, the prediction; otherwise `{"result": ..., "errorMessage": ...}`, where a
        row the endpoint refuses gets its error message and the other rows still score.
        """
        present = [index for index, row in enumerate(rows) if row is not None]
        out: list[str | None] = [None] * len(rows)
        if not present:
            return out
        batch = [rows[index] or "" for index in present]
        if fail_on_error:
            for index, text in zip(present, self.score_records(endpoint, ",".join(batch), len(batch)), strict=True):
                out[index] = text
            return out
        for index, (prediction, error) in zip(present, self._isolate(endpoint, batch), strict=True):
            out[index] = json.dumps({"result": prediction, "errorMessage": error})
        return out

    def score_records(self, endpoint: str, records: str, rows: int) -> list[str]:
        """The prediction of each of `rows` rows given as one JSON text (their records joined by commas),
        as JSON text; any error fails the query. `score` with failOnError, for a caller that joined the
        rows itself (DuckDB's Arrow column, in one call)."""
        return json_texts(self.predictions(endpoint, records, rows))

    def predictions(self, endpoint: str, records: str, rows: int) -> list[Any]:
        """`score_records`' predictions as the endpoint answered them (decoded JSON), for a caller that
        builds its typed result from them (Spark's Arrow functions) rather than from JSON text."""
        try:
            return self._predict(endpoint, records, rows)
        except EndpointError as exc:
            raise AiQueryError(self._describe(endpoint, exc)) from None

    def score_batch(
        self, endpoints: Sequence[str | None], rows: Sequence[str | None], fail_on_error: Sequence[bool | None]
    ) -> list[str | None]:
        """`score` for a batch whose rows each name their endpoint and failOnError (NULL: NULL; NULL
        failOnError: true); one request per endpoint and flag, which in practice are constants."""
        if endpoints and len(set(endpoints)) == 1 and len(set(fail_on_error)) == 1 and endpoints[0] is not None:
            return self.score(endpoints[0], rows, fail_on_error=fail_on_error[0] is not False)  # the usual batch
        out: list[str | None] = [None] * len(rows)
        groups: dict[tuple[str, bool], list[int]] = defaultdict(list)
        for index, (endpoint, fail) in enumerate(zip(endpoints, fail_on_error, strict=True)):
            if endpoint is not None:
                groups[(endpoint, fail is not False)].append(index)
        for (endpoint, fail), indices in groups.items():
            scored = self.score(endpoint, [rows[index] for index in indices], fail_on_error=fail)
            for index, value in zip(indices, scored, strict=True):
                out[index] = value
        return out

    def _isolate(self, endpoint: str, batch: list[str]) -> list[tuple[Any, str | None]]:
        """Predictions of a batch, splitting it in halves while it fails, down to the rows at fault."""
        try:
            return [(prediction, None) for prediction in self._predict(endpoint, ",".join(batch), len(batch))]
        except EndpointError as exc:
            if exc.status not in ROW_STATUSES:
                raise AiQueryError(self._describe(endpoint, exc)) from None
            if len(batch) == 1:
                return [(None, f"{exc.status} {exc.error_code}: {exc.message}")]
        half = len(batch) // 2
        return self._isolate(endpoint, batch[:half]) + self._isolate(endpoint, batch[half:])

    def _predict(self, endpoint: str, records: str, rows: int) -> list[Any]:
        # The rows arrive as JSON already (DuckDB's to_json, Spark's to_json): joined, not parsed again.
        body = '{"dataframe_records":[' + records + "]}"
        path = invocations_path(endpoint)
        retries, waited = 0, 0.0
        while True:
            with self._slots:
                try:
                    response = self._http.post(path, content=body)
                except httpx.HTTPError as exc:
                    raise AiQueryError(
                        f"ai_query: cannot reach {self.host} for endpoint '{endpoint}' ({type(exc).__name__}: {exc}). "
                        "Check RTSERVE_HOST (or DATABRICKS_HOST) and that the server is running."
                    ) from None
            if response.status_code == 429:
                wait = _retry_after(response)
                if retries < self.max_retries and waited + wait <= self.max_retry_seconds:
                    retries, waited = retries + 1, waited + wait
                    self._sleep(wait)
                    continue
                error = _error_of(response)
                raise AiQueryError(
                    f"ai_query: endpoint '{endpoint}' is rate limited ({error.message}); gave up after {retries} "
                    f"retries and {waited:g} s of waiting (the next wait was {wait:g} s). Score fewer rows at a "
                    "time, lower max_in_flight, or ask the endpoint's manager to raise its rate limit."
                )
            if response.status_code >= 400:
                raise _error_of(response)
            return self._predictions(endpoint, response, rows)

    def _predictions(self, endpoint: str, response: httpx.Response, rows: int) -> list[Any]:
        try:
            predictions = response.json()["predictions"]
        except (ValueError, KeyError, TypeError):
            raise AiQueryError(
                f"ai_query: endpoint '{endpoint}' answered without a 'predictions' list: {response.text[:200]!r}"
            ) from None
        if isinstance(predictions, dict):  # a model whose output is a dict of columns
            columns = list(predictions)
            predictions = [
                dict(zip(columns, values, strict=True)) for values in zip(*predictions.values(), strict=True)
            ]
        if not isinstance(predictions, list) or len(predictions) != rows:
            count = len(predictions) if isinstance(predictions, list) else "no list of"
            raise AiQueryError(
                f"ai_query: endpoint '{endpoint}' answered {count} predictions for {rows} rows; ai_query needs "
                "one prediction per row."
            )
        return predictions

    def _describe(self, endpoint: str, exc: EndpointError) -> str:
        """The message that fails the query, with what to do about it."""
        if exc.status == 404:
            return (
                f"ai_query: endpoint '{endpoint}' was not found on {self.host} ({exc.error_code}: {exc.message}). "
                "Name a serving endpoint, or MODEL/ROUTE for a registered model's stage, alias or version "
                "(e.g. 'iris-classifier/Production'); GET /api/2.0/serving-endpoints lists the endpoints."
            )
        if exc.status == 401:
            return (
                f"ai_query: {self.host} refused the token for endpoint '{endpoint}' ({exc.error_code}: "
                f"{exc.message}). Set RTSERVE_TOKEN (or DATABRICKS_TOKEN) to a valid token, or pass token=."
            )
        if exc.status == 403:
            return (
                f"ai_query: the token may not query endpoint '{endpoint}' ({exc.error_code}: {exc.message}). "
                "Ask the endpoint's manager for CAN_QUERY on it (docs/api.md, permissions)."
            )
        return f"ai_query: endpoint '{endpoint}' failed: {exc}"


def constant(values: Any) -> Any:
    """The one value of an Arrow array (or chunked array) that holds a single one and no NULL, else None:
    a batch's endpoint, which in practice is a literal."""
    if values.null_count or len(values) == 0:
        return None
    distinct = values.unique()
    return distinct[0].as_py() if len(distinct) == 1 else None


def json_texts(values: list[Any]) -> list[str]:
    """Each value as JSON text. Numbers, the usual prediction, in one `json.dumps` split apart (its ", "
    occurs in no number): a call per value costs several milliseconds per 2,048 rows."""
    if all(type(value) is int or type(value) is float for value in values):
        return json.dumps(values)[1:-1].split(", ") if values else []
    return [json.dumps(value) for value in values]


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:  # an HTTP date: rtserve and Databricks send seconds, so wait the usual second
        return 1.0


def _error_of(response: httpx.Response) -> EndpointError:
    try:
        body = response.json()
        return EndpointError(response.status_code, str(body["error_code"]), str(body["message"]))
    except (ValueError, KeyError, TypeError):
        return EndpointError(response.status_code, "UNKNOWN", response.text[:500])
