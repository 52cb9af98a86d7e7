"""Float requests to an all-double signature skip MLflow's second look, and nobody can tell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
import pytest
from mlflow.models import ModelSignature
from mlflow.models.utils import _enforce_schema
from mlflow.pyfunc import scoring_server
from mlflow.types import ColSpec, DataType, Schema

from rtserve.server.worker.exact import ExactFramePredictor
from rtserve.server.worker.parsing import float_rows as _float_rows
from rtserve.server.worker.rowwise import RowwiseScorer
from tests.worker import models
from tests.worker.models import iris_frame
from tests.worker.test_batching import CountingModel, alone, iris_requests, together
from tests.worker.test_scoring import MALFORMED

pytestmark = pytest.mark.unit

JSON = "application/json"
COLUMNS = list(iris_frame()[0].columns)
ROW, OTHER = [5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]


def split(data: list[list[Any]], columns: list[str] = COLUMNS, **extra: Any) -> tuple[bytes, str]:
    return json.dumps({"dataframe_split": {"columns": columns, "data": data, **extra}}).encode(), JSON


def records(data: list[list[Any]], order: list[str] = COLUMNS) -> tuple[bytes, str]:
    rows = [{name: values[COLUMNS.index(name)] for name in order} for values in data]
    return json.dumps({"dataframe_records": rows}).encode(), JSON


EXACT_REQUESTS = [
    split([ROW]),
    split([ROW, OTHER], index=[0, 100]),  # the body `make bench` sends
    split([OTHER, ROW], index=["a", "b"]),
    split([ROW, OTHER, ROW], index=[-3, 7, 7]),  # repeated labels stay repeated
    records([ROW, OTHER]),
    records([OTHER], order=COLUMNS[::-1]),  # another column order: put in signature order
    split([[v * 1e300 for v in ROW]]),
    split([[-0.0, 1e-320, 2.5, 3.0]]),  # negative zero and a subnormal survive as they are
]

NOT_EXACT_REQUESTS = [
    split([[5, 3, 1, 0]]),  # JSON integers: MLflow parses int64 and casts
    split([ROW], index=[True]),  # bool labels
    split([ROW[:3]], columns=COLUMNS[:3]),  # a missing column: MLflow's error
    split([[*ROW, 1.0]], columns=[*COLUMNS, "extra"]),  # an extra column: MLflow drops it, with a warning
    (json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [ROW]}, "params": {"a": 1}}).encode(), JSON),
    (json.dumps({"inputs": [ROW]}).encode(), JSON),
    (b"\n".join([",".join(COLUMNS).encode(), b"5.1,3.5,1.4,0.2"]), "text/csv"),
]


def mlflow_frame(model: Any, body: bytes) -> pd.DataFrame:
    """The frame MLflow's scoring server hands the flavor: its parser, then its schema enforcement."""
    schema = model.metadata.get_input_schema()
    parsed = scoring_server._parse_json_data(body, model.metadata, schema)
    return _enforce_schema(parsed.data, schema)


class Spy:
    """Counts the calls to an `ExactFramePredictor.predict` and the rows each one got."""

    def __init__(self, scorer: RowwiseScorer) -> None:
        assert scorer._exact is not None
        self.calls: list[int] = []
        predict = scorer._exact.predict

        def counted(frame: pd.DataFrame) -> Any:
            self.calls.append(len(frame))
            return predict(frame)

        scorer._exact.predict = counted  # type: ignore[method-assign]


@pytest.mark.parametrize("request_", EXACT_REQUESTS, ids=range(len(EXACT_REQUESTS)))
def test_the_frame_built_is_the_one_mlflow_hands_the_model(iris: Any, request_: tuple[bytes, str]):
    body, content_type = request_
    rows = _float_rows(body, content_type)
    assert rows is not None

    built = ExactFramePredictor.for_model(iris).frame(rows.columns, rows.rows, rows.index)

    expected = mlflow_frame(iris, body)
    pd.testing.assert_frame_equal(built, expected, check_exact=True, check_index_type=True, check_column_type=True)
    assert list(built.columns) == COLUMNS
    assert built.to_numpy().tobytes() == expected.to_numpy().tobytes()  # -0.0 and subnormals, bit for bit


def test_every_request_answers_exactly_like_mlflows_complete_path_alone(iris: Any):
    malformed = [(body, kind) for fixture, kind, body in MALFORMED.values() if fixture == "iris"]
    requests = EXACT_REQUESTS + NOT_EXACT_REQUESTS + iris_requests(seed=5, count=40) + malformed
    requests.append(split([[float("nan"), 3.5, 1.4, 0.2]]))  # exact, but the model refuses NaN
    scorer = RowwiseScorer(iris)
    spy = Spy(scorer)

    answers = [(result.status, result.body) for result in (scorer.score_one(*request) for request in requests)]

    assert answers == alone(iris, requests)
    assert answers[-1][0] == 400 and "NaN" in json.loads(answers[-1][1])["message"]
    # The exact requests, the all-float ones among the generated, and the NaN one took the exact path.
    assert len(spy.calls) >= len(EXACT_REQUESTS) + 1


def test_batches_of_exact_requests_answer_each_caller_like_mlflow_alone(iris: Any):
    requests = EXACT_REQUESTS + NOT_EXACT_REQUESTS + iris_requests(seed=6, count=24)
    scorer = RowwiseScorer(iris)
    spy = Spy(scorer)

    answers = together(scorer, requests)

    assert answers == alone(iris, requests)
    assert max(spy.calls) > 2  # requests were predicted together on the exact path


def test_a_model_raising_on_the_exact_path_fails_with_mlflows_message(raising_path: Path):
    raising = mlflow.pyfunc.load_model(str(raising_path))
    request = split([[1.0]], columns=["x"])
    scorer = RowwiseScorer(raising)
    assert scorer._exact is not None

    assert together(scorer, [request]) == alone(raising, [request])
    assert "boom" in json.loads(together(scorer, [request])[0][1])["message"]


def test_only_models_with_named_double_inputs_and_no_params_take_the_exact_path(
    iris: Any, params_model: Any, tensor_model: Any, tmp_path: Path
):
    signature = ModelSignature(inputs=Schema([ColSpec(DataType.double, "x"), ColSpec(DataType.long, "n")]))
    mixed = models._save_python_model(tmp_path / "mixed", models.RowFrame(), signature)
    unsigned = models.save_row_frame_model(tmp_path / "unsigned")

    assert ExactFramePredictor.for_model(iris) is not None
    assert ExactFramePredictor.for_model(CountingModel(iris)) is None  # not a loaded PyFuncModel
    assert ExactFramePredictor.for_model(params_model) is None  # a params schema fills in defaults
    assert ExactFramePredictor.for_model(tensor_model) is None
    assert ExactFramePredictor.for_model(mlflow.pyfunc.load_model(str(mixed))) is None  # a long column
    assert ExactFramePredictor.for_model(mlflow.pyfunc.load_model(str(unsigned))) is None  # no schema
