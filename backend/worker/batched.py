"""Adaptive batching: concurrent requests to one row-wise model, predicted together where they fit.

Requests with the same columns, dtypes and params share one predict call, and the output is cut
back so that each caller gets exactly its own rows. All-float DataFrame requests (numeric features,
the common case) are checked one by one and built into one DataFrame; everything else is parsed one
by one by MLflow's parser and grouped. A group that cannot be predicted together (the model raised,
or its output is not one entry per row) is scored request by request, so a bad request fails alone.

`score_many` returns the answers and, per group predicted together, a verdict on whether the model
behaved row-wise; the caller (`backend.worker.rowwise.RowwiseScorer`) keeps the count that turns
batching off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rtserve.server.worker import jsonbody, single
from rtserve.server.worker.joint import (
    Failure,
    RowwiseModel,
    Unanswered,
    exact_frame,
    predict_parsed,
    predict_together,
)
from rtserve.server.worker.parsing import FloatRows, Parsed, float_rows
from rtserve.server.worker.types import InvocationResult

ROW_WISE = None  # the verdict on a group whose output had one entry per input row
RAISED_TOGETHER_ONLY = "a batched prediction failed although every request succeeded alone"


@dataclass(frozen=True)
class Batch:
    """The answers to a batch, in request order, and what its predictions said about the model."""

    answers: list[InvocationResult]
    # In order, for each group predicted together: ROW_WISE, or why the model seems not row-wise.
    verdicts: list[str | None]


def score_many(
    target: RowwiseModel, requests: list[tuple[bytes, str | None]], decoded: list[Any] | None = None
) -> Batch:
    """Score concurrent requests, predicting those with the same columns, dtypes and params together.

    `decoded` holds each request's JSON body where the caller decoded it already (else `jsonbody.UNDECODED`)."""
    if decoded is None:
        decoded = [jsonbody.UNDECODED] * len(requests)
    results: list[InvocationResult | None] = [None] * len(requests)
    verdicts: list[str | None] = []
    # All-float DataFrame requests are checked one by one and then built into one DataFrame: the
    # very frame that parsing each and concatenating gives.
    floats: dict[tuple[Any, ...], list[tuple[int, FloatRows]]] = {}
    others = []
    for index, (body, content_type) in enumerate(requests):
        rows = float_rows(body, content_type, decoded[index])
        if rows is None:
            others.append(index)
        else:
            floats.setdefault(rows.key, []).append((index, rows))
    for members in floats.values():
        if len(members) == 1:
            others.append(members[0][0])
            continue
        indexes = [index for index, _ in members]
        group = [rows for _, rows in members]
        outcome = _predict_floats(target, group)
        answers, said = _settle(target, indexes, outcome, requests, decoded)
        _record(results, indexes, answers)
        verdicts.extend(said)
    # Everything else: parsed one by one by MLflow's parser, grouped by columns, dtypes and params.
    parsed = {index: target.parser.parse(*requests[index], decoded[index]) for index in sorted(others)}
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, item in parsed.items():
        if item is not None:
            groups.setdefault(item.key, []).append(index)
    for indexes in groups.values():
        parsed_group: list[Parsed] = [parsed[index] for index in indexes]  # type: ignore[misc]
        answers, said = _settle(target, indexes, predict_parsed(target, parsed_group), requests, decoded)
        _record(results, indexes, answers)
        verdicts.extend(said)
    answered = [
        result if result is not None else target.score_alone(body, content_type)
        for result, (body, content_type) in zip(results, requests, strict=True)
    ]
    return Batch(answered, verdicts)


def _predict_floats(target: RowwiseModel, group: list[FloatRows]) -> list[InvocationResult] | Unanswered | None:
    """Predict all-float requests together: on the exact frame if they allow it; None if no frame could be built."""
    sizes = [rows.count for rows in group]
    exact = target.exact
    if exact is not None:
        frame = exact_frame(exact, group)
        if frame is not None:
            return predict_together(target, frame, sizes, None, exact.predict)
    data = target.parser.float_frame(group)
    if data is None:
        return None
    return predict_together(target, data, sizes, group[0].params)


def _settle(
    target: RowwiseModel,
    indexes: list[int],
    outcome: list[InvocationResult] | Unanswered | None,
    requests: list[tuple[bytes, str | None]],
    decoded: list[Any],
) -> tuple[list[InvocationResult] | None, list[str | None]]:
    """A group's answers (None: left to MLflow's complete path) and its verdicts.

    If it could not be predicted together, each request is scored alone, so a bad one fails by itself.
    """
    together = len(indexes) > 1
    if isinstance(outcome, list):
        return outcome, [ROW_WISE] if together else []
    verdicts: list[str | None] = []
    if together and outcome is not None:
        if outcome.failure is Failure.NOT_ONE_PER_ROW:
            verdicts.append(outcome.detail)
        elif outcome.failure is Failure.NOT_SERIALIZABLE:
            verdicts.append(ROW_WISE)  # the output was cut per row before a piece failed to serialize
    if not together:
        return None, verdicts
    answers = [single.score_one(target, *requests[index], decoded[index]) for index in indexes]
    raised = outcome is not None and outcome.failure is Failure.RAISED
    if raised and all(answer.status == 200 for answer in answers):
        verdicts.append(RAISED_TOGETHER_ONLY)
    return answers, verdicts


def _record(results: list[InvocationResult | None], indexes: list[int], answers: list[InvocationResult] | None) -> None:
    if answers is not None:
        for index, answer in zip(indexes, answers, strict=True):
            results[index] = answer
