"""score() answers like MLflow's scoring server, and every bad request is a 4xx in the error envelope."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from rtserve.server.worker.scoring import score
from tests.worker.models import iris_frame

pytestmark = pytest.mark.unit

JSON = "application/json"


@pytest.fixture(scope="module")
def raising_model(raising_path: Path) -> Any:
    return mlflow.pyfunc.load_model(str(raising_path))


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    features, _ = iris_frame()
    return features.iloc[[0, 60, 120, 149]].reset_index(drop=True)


def predictions(body: bytes, content_type: str, model: Any) -> Any:
    result = score(body, content_type, model)
    assert result.status == 200, result.body
    assert result.content_type == JSON
    return json.loads(result.body)["predictions"]


def iris_bodies(rows: pd.DataFrame) -> dict[str, tuple[str, bytes]]:
    split = json.loads(rows.to_json(orient="split", index=False))
    return {
        "dataframe_split": (JSON, json.dumps({"dataframe_split": split}).encode()),
        "dataframe_records": (JSON, json.dumps({"dataframe_records": rows.to_dict(orient="records")}).encode()),
        "instances": (JSON, json.dumps({"instances": rows.to_dict(orient="records")}).encode()),
        "inputs": (JSON, json.dumps({"inputs": rows.to_dict(orient="list")}).encode()),
        "csv": ("text/csv", rows.to_csv(index=False).encode()),
    }


@pytest.mark.parametrize("input_format", ["dataframe_split", "dataframe_records", "instances", "inputs", "csv"])
def test_each_input_format_predicts_what_the_loaded_model_predicts(iris: Any, rows: pd.DataFrame, input_format: str):
    content_type, body = iris_bodies(rows)[input_format]

    expected = iris.predict(rows)

    assert predictions(body, content_type, iris) == expected.tolist()


def test_a_charset_parameter_of_utf_8_is_accepted(iris: Any, rows: pd.DataFrame):
    _, body = iris_bodies(rows)["dataframe_split"]

    assert predictions(body, "application/json; charset=UTF-8", iris) == iris.predict(rows).tolist()


def test_numbers_sent_as_strings_are_converted_to_the_signature_type_like_mlflow(iris: Any, rows: pd.DataFrame):
    records = [{column: str(value) for column, value in row.items()} for row in rows.to_dict(orient="records")]

    got = predictions(json.dumps({"dataframe_records": records}).encode(), JSON, iris)

    assert got == iris.predict(rows).tolist()


def test_params_reach_the_model(params_model: Any):
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    body = {"dataframe_split": json.loads(frame.to_json(orient="split", index=False)), "params": {"multiplier": 2.5}}

    got = predictions(json.dumps(body).encode(), JSON, params_model)

    assert got == params_model.predict(frame, params={"multiplier": 2.5}) == [10.0, 15.0]


def test_params_default_to_the_signature_default_when_omitted(params_model: Any):
    got = predictions(json.dumps({"dataframe_records": [{"a": 1.0, "b": 3.0}]}).encode(), JSON, params_model)

    assert got == [4.0]


@pytest.mark.parametrize("input_format", ["instances", "inputs"])
def test_tensor_inputs_predict_what_the_loaded_model_predicts(tensor_model: Any, input_format: str):
    tensor = [[1.0, 2.0, 3.0], [4.5, 5.5, 6.5]]

    got = predictions(json.dumps({input_format: tensor}).encode(), JSON, tensor_model)

    assert got == tensor_model.predict(np.array(tensor, dtype=np.float32)).tolist()


def test_a_model_that_raises_is_a_400_carrying_the_models_message(raising_model: Any):
    result = score(json.dumps({"dataframe_records": [{"x": 1.0}]}).encode(), JSON, raising_model)

    error = json.loads(result.body)
    assert result.status == 400
    assert error["error_code"] == "BAD_REQUEST"
    assert "boom" in error["message"]
    assert "Traceback" not in error["message"]


def test_an_unsupported_content_type_is_a_415_listing_the_accepted_types(iris: Any):
    result = score(b"hello", "text/plain", iris)

    error = json.loads(result.body)
    assert result.status == 415
    assert error["error_code"] == "BAD_REQUEST"
    assert "application/json" in error["message"] and "text/csv" in error["message"]


def test_a_missing_column_is_named_in_the_message(iris: Any, rows: pd.DataFrame):
    body = {"dataframe_records": rows.drop(columns=["petal width (cm)"]).to_dict(orient="records")}

    result = score(json.dumps(body).encode(), JSON, iris)

    assert result.status == 400
    assert "petal width (cm)" in json.loads(result.body)["message"]


def test_error_messages_do_not_echo_the_request_body(iris: Any):
    body = json.dumps({"dataframe_split": {"columns": ["secret-column"], "data": [["secret-value"]]}}).encode()

    result = score(body, JSON, iris)

    assert result.status == 400
    assert b"secret-value" not in result.body


COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROW = dict(zip(COLUMNS, [5.1, 3.5, 1.4, 0.2], strict=True))


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


# (model fixture, content type, body): each must be a 4xx in the envelope, never a 5xx.
MALFORMED: dict[str, tuple[str, str | None, bytes]] = {
    "empty body": ("iris", JSON, b""),
    "not json": ("iris", JSON, b"{nope"),
    "json list": ("iris", JSON, b"[1, 2]"),
    "json null": ("iris", JSON, b"null"),
    "json string": ("iris", JSON, b'"hello"'),
    "json number": ("iris", JSON, b"42"),
    "two format keys": ("iris", JSON, _json({"instances": [ROW], "inputs": {c: [1.0] for c in COLUMNS}})),
    "zero format keys": ("iris", JSON, b"{}"),
    "unknown key only": ("iris", JSON, _json({"data": [[1, 2, 3, 4]]})),
    "params only": ("iris", JSON, _json({"params": {}})),
    "split without columns": ("iris", JSON, _json({"dataframe_split": {"data": [[1, 2, 3, 4]]}})),
    "split missing a column": ("iris", JSON, _json({"dataframe_split": {"columns": COLUMNS[:3], "data": [[1, 2, 3]]}})),
    "split wrong column type": ("iris", JSON, _json({"dataframe_split": {"columns": COLUMNS, "data": [list("abcd")]}})),
    "split row longer than columns": (
        "iris",
        JSON,
        _json({"dataframe_split": {"columns": COLUMNS, "data": [[1, 2, 3, 4, 5]]}}),
    ),
    "split is a list": ("iris", JSON, _json({"dataframe_split": [[1, 2, 3, 4]]})),
    "split data is a number": ("iris", JSON, _json({"dataframe_split": {"columns": COLUMNS, "data": 5}})),
    "records missing a column": ("iris", JSON, _json({"dataframe_records": [{c: 1.0 for c in COLUMNS[:3]}]})),
    "records with list values": ("iris", JSON, _json({"dataframe_records": [{c: [1.0, 2.0] for c in COLUMNS}]})),
    "records with object values": ("iris", JSON, _json({"dataframe_records": [{c: {"x": 1} for c in COLUMNS}]})),
    "records is a string": ("iris", JSON, _json({"dataframe_records": "abc"})),
    "records of nulls": ("iris", JSON, _json({"dataframe_records": [{c: None for c in COLUMNS}]})),
    "instances of words": ("iris", JSON, _json({"instances": [{c: "x" for c in COLUMNS}]})),
    "inputs missing columns": ("iris", JSON, _json({"inputs": {c: [1.0] for c in COLUMNS[:2]}})),
    "inputs of unequal lengths": ("iris", JSON, _json({"inputs": {COLUMNS[0]: [1.0, 2.0], COLUMNS[1]: [1.0]}})),
    "huge nesting": ("iris", JSON, b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "invalid utf-8": ("iris", JSON, b'\xff\xfe{"x'),
    "infinite number": ("iris", JSON, _json({"dataframe_records": [{**ROW, COLUMNS[0]: float("inf")}]})),
    "csv garbage bytes": ("iris", "text/csv", b"\x00\x01\x02garbage\n\xff"),
    "csv missing a column": ("iris", "text/csv", (",".join(COLUMNS[:3]) + "\n1,2,3\n").encode()),
    "csv words": ("iris", "text/csv", (",".join(COLUMNS) + "\na,b,c,d\n").encode()),
    "csv empty": ("iris", "text/csv", b""),
    "csv ragged rows": ("iris", "text/csv", (",".join(COLUMNS) + "\n1,2\n1,2,3,4,5,6\n").encode()),
    "parquet garbage": ("iris", "application/vnd.apache.parquet", b"PAR1 not really"),
    "content type text/plain": ("iris", "text/plain", b"hello"),
    "content type xml": ("iris", "application/xml", b"<a/>"),
    "no content type": ("iris", None, b"{}"),
    "charset latin-1": ("iris", "application/json; charset=latin-1", b"{}"),
    "unknown content type parameter": ("iris", "application/json; format=pandas-split", b"{}"),
    "tensor of the wrong shape": ("tensor_model", JSON, _json({"instances": [[1.0, 2.0]]})),
    "tensor of words": ("tensor_model", JSON, _json({"inputs": [["a", "b", "c"]]})),
    "ragged tensor": ("tensor_model", JSON, _json({"inputs": [[1.0, 2.0, 3.0], [1.0]]})),
    "param of the wrong type": (
        "params_model",
        JSON,
        _json({"dataframe_records": [{"a": 1.0, "b": 2.0}], "params": {"multiplier": "abc"}}),
    ),
    "params not an object": ("params_model", JSON, _json({"dataframe_records": [{"a": 1.0, "b": 2.0}], "params": [1]})),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_request_is_a_4xx_in_the_error_envelope(request: pytest.FixtureRequest, case: str):
    model_fixture, content_type, body = MALFORMED[case]
    model = request.getfixturevalue(model_fixture)

    result = score(body, content_type, model)

    assert 400 <= result.status < 500, result.body
    error = json.loads(result.body)
    assert set(error) == {"error_code", "message"}
    assert error["error_code"] in {"BAD_REQUEST", "INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST"}
    assert error["message"]


def test_a_bare_split_frame_names_the_format_to_send(iris: Any, rows: pd.DataFrame):
    body = _json(json.loads(rows.to_json(orient="split", index=False)))  # {"columns": ..., "data": ...}
    result = score(body, "application/json", iris)
    assert result.status == 400
    assert '{"dataframe_split": {"columns": [...], "data": [[...]]}}' in json.loads(result.body)["message"]


@pytest.mark.parametrize("key", ["inputs", "instances"])
def test_rows_without_names_against_named_columns_say_how_to_name_them(iris: Any, rows: pd.DataFrame, key: str):
    result = score(_json({key: rows.values.tolist()}), "application/json", iris)
    assert result.status == 400
    message = json.loads(result.body)["message"]
    assert message.startswith("This model's signature takes named columns (sepal length (cm),")
    assert "dataframe_split" in message and "Model is missing inputs" in message  # MLflow's own words follow
