"""One request on the row-wise path: the exact frame, else MLflow's parser, else MLflow's complete path.

Every answer is the one MLflow's complete path (`backend.worker.scoring`) would give: the shortcuts
only skip work whose result is known (see `backend.worker.exact` and `backend.worker.parsing`), and
any failure on them goes to the complete path, which predicts again and words the error its way.
"""

from __future__ import annotations

from typing import Any

from rtserve.server.worker import jsonbody
from rtserve.server.worker.joint import RowwiseModel, exact_frame, predict_parsed, predict_together
from rtserve.server.worker.parsing import float_rows
from rtserve.server.worker.types import InvocationResult


def score_one(
    target: RowwiseModel, body: bytes, content_type: str | None, decoded: Any = jsonbody.UNDECODED
) -> InvocationResult:
    """Score one request: the row-wise path when it applies, MLflow's complete path otherwise.

    `decoded` is the JSON body if the caller decoded it already (see `backend.worker.limits`)."""
    exact = target.exact
    if exact is not None:
        rows = float_rows(body, content_type, decoded)
        frame = None if rows is None else exact_frame(exact, [rows])
        if frame is not None:
            answers = predict_together(target, frame, [len(frame)], None, exact.predict)
            return answers[0] if isinstance(answers, list) else target.score_alone(body, content_type)
    parsed = target.parser.parse(body, content_type, decoded)
    if parsed is not None:
        answers = predict_parsed(target, [parsed])
        if isinstance(answers, list):
            return answers[0]
    return target.score_alone(body, content_type)
