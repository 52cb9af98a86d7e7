"""The Power BI (M) function of docs/sql.md: the requests it sends, replayed against a live backend.

Power Query cannot run here, so the test reads the function's constants from the page (batch size,
headers, body key, answer field) and sends what its M expressions produce: `Table.Split` into
batches, `Json.FromValue([dataframe_records = batch])` (a table becomes a list of records), the
Bearer header of `Text.Format`; then reads the answers as it does (`response[predictions]`,
`List.Combine`, appended by position with `Table.FromColumns`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from rtserve.server.process import BackendProcess

pytestmark = pytest.mark.api
DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"


@pytest.fixture(scope="module")
def function() -> str:
    return re.search(r"```m\n(.*?)```", DOC.read_text(), re.S).group(1)


def test_the_function_sends_batches_of_256_records_with_a_bearer_token(function: str):
    assert "Table.Split(dataset, 256)" in function
    assert "Content = Json.FromValue([dataframe_records = batch])" in function
    assert '#"Content-Type" = "application/json"' in function
    assert '#"Authorization" = Text.Format("Bearer #{0}", {apiToken})' in function
    assert "response[predictions]" in function
    assert "Table.FromColumns(\n        Table.ToColumns(dataset) & {predictionList}" in function


def test_its_requests_replayed_score_every_row_in_order(function: str, backend: BackendProcess, label_endpoint: str):
    batch_size = int(re.search(r"Table\.Split\(dataset, (\d+)\)", function).group(1))
    body_key = re.search(r"Json\.FromValue\(\[(\w+) = batch\]\)", function).group(1)
    answer_field = re.search(r"response\[(\w+)\]", function).group(1)
    headers = dict(re.findall(r'#"([\w-]+)" = "([^"]+)"', function))
    headers["Authorization"] = f"Bearer {backend.admin_token}"  # Text.Format("Bearer #{0}", {apiToken})
    dataset = [{"x": float(i % 20)} for i in range(600)]

    sent: list[httpx.Request] = []
    url = f"{backend.url}/serving-endpoints/{label_endpoint}/invocations"
    predictions: list = []
    with httpx.Client(event_hooks={"request": [sent.append]}) as http:
        for start in range(0, len(dataset), batch_size):  # Table.Split
            body = json.dumps({body_key: dataset[start : start + batch_size]}, separators=(",", ":"))
            response = http.post(url, content=body, headers=headers)  # Web.Contents
            assert response.status_code == 200, response.text
            predictions += response.json()[answer_field]  # List.Combine of response[predictions]

    assert [len(json.loads(request.content)[body_key]) for request in sent] == [256, 256, 88]
    assert all(request.headers["content-type"] == "application/json" for request in sent)
    assert all(request.headers["authorization"] == f"Bearer {backend.admin_token}" for request in sent)
    table = [{**row, "Prediction": prediction} for row, prediction in zip(dataset, predictions, strict=True)]
    assert table[3] == {"x": 3.0, "Prediction": {"label": "low", "score": 6.0}}
    assert table[599] == {"x": 19.0, "Prediction": {"label": "high", "score": 38.0}}
